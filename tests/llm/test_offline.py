"""The offline responder through POST /v1/chat (no model configured), on real PostgreSQL and the real
MiniLM embedder: FAQ questions and answers matched by words and meaning, Arabic normalised, "I don't
know" in the agent's language, and knowledge passages never embedded per request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from cortex.agents.schemas import AgentConfig
from cortex.db.models import Agent
from cortex.demo.seed import DEMO_AGENT, DEMO_FAQS, seed_demo
from cortex.kit.runtime import Runtime
from cortex.llm.lexical import Document, LexicalIndex, normalise, sound_key, word_forms, words
from cortex.llm.offline import DONT_KNOW, dont_know
from cortex.pipeline.ports import KNOWLEDGE, KnowledgePort
from tests.knowledge.test_ingestion import ingest_file, make_source, upload
from tests.support import Tenant, chat, create_agent

PAYMENT_EN, HOURS_AR = DEMO_FAQS[4], DEMO_FAQS[5]
FLIGHT = "Can you book me a flight to Paris?"


@pytest.fixture
async def demo(runtime: Runtime) -> tuple[Tenant, str]:
    async with runtime.database.session() as session:
        seed = await seed_demo(session)
    return Tenant(seed.company_id, seed.email, seed.password, seed.api_key), str(seed.agent_id)


async def _reply(client: httpx.AsyncClient, tenant: Tenant, agent_id: str, message: str) -> str:
    response = await chat(client, tenant, agent_id, message)
    assert response.status_code == 200, response.text
    assert response.json()["model_used"] == "offline"
    reply: str = response.json()["reply"]
    return reply


async def test_a_keyword_question_is_answered_from_the_faq_answer_that_names_it(
        client: httpx.AsyncClient, demo: tuple[Tenant, str]) -> None:
    # "Apple Pay" is in no FAQ question, only in the answer of "Which payment methods do you accept?".
    assert PAYMENT_EN.question == "Which payment methods do you accept?" and "Apple Pay" in PAYMENT_EN.answer
    assert await _reply(client, *demo, "Do you take Apple Pay?") == PAYMENT_EN.answer
    assert await _reply(client, *demo, "Apple Pay?") == PAYMENT_EN.answer


async def test_an_arabic_question_gets_the_arabic_faq_answer(client: httpx.AsyncClient,
                                                             demo: tuple[Tenant, str]) -> None:
    assert await _reply(client, *demo, "ما هي مواعيد العمل لديكم؟") == HOURS_AR.answer
    # Egyptian, with its filler words ("I want to know ... of yours"), which plain MiniLM cosine matched
    # to the order-tracking FAQ.
    assert await _reply(client, *demo, "عايز أعرف مواعيد العمل بتاعتكم") == HOURS_AR.answer
    # Diacritics, tatweel and hamza forms do not stop the match.
    assert await _reply(client, *demo, "مَا هِيَ مـواعيـد الْعَمَل لديكم؟") == HOURS_AR.answer


async def test_an_unrelated_question_gets_i_dont_know_in_the_agents_language(
        client: httpx.AsyncClient, tenant: Tenant, demo: tuple[Tenant, str]) -> None:
    assert await _reply(client, *demo, FLIGHT) == DONT_KNOW["en"]
    # The demo agent speaks English: an Arabic question it cannot answer is answered in English.
    assert await _reply(client, *demo, "ممكن تحجزلي تذكرة طيران لباريس؟") == DONT_KNOW["en"]
    faqs = [faq.model_dump() for faq in DEMO_FAQS]
    egyptian = await create_agent(client, tenant, faqs=faqs,
                                  dialect={"name": "Egyptian Arabic", "primary_language": "ar-EG"})
    assert await _reply(client, tenant, egyptian["id"], FLIGHT) == DONT_KNOW["ar"]
    assert await _reply(client, tenant, egyptian["id"], "Do you take Apple Pay?") == PAYMENT_EN.answer


async def test_knowledge_passages_are_answered_verbatim_and_never_embedded_per_request(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    passage = ("The Quasar kettle comes with a warranty of two years from the date of purchase. "
               "Keep the receipt: it is the proof of purchase.")
    source = await make_source(client, tenant)
    ingested = await ingest_file(client, tenant, source["id"], upload(runtime, tenant, "kettle.md", passage.encode()))
    assert ingested.status_code == 200 and ingested.json()["status"] == "completed", ingested.text
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]],
                               faqs=[{"question": "Do you ship abroad?", "answer": "Yes, to 40 countries."}])
    # A thin wrapper around the real embedder: every text it embeds is recorded (query embeddings go
    # through `embed` too, batched by `embed_query`).
    embedded: list[str] = []
    real_embed: Callable[..., Awaitable[np.ndarray]] = runtime.embedder.embed

    async def counting_embed(texts: list[str], *args: Any, **kwargs: Any) -> np.ndarray:
        embedded.extend(texts)
        return await real_embed(texts, *args, **kwargs)

    # The Context Engine hands each chunk over with the cosine its vector search computed.
    config = AgentConfig.model_validate({**agent, "action_definitions": []})
    knowledge: KnowledgePort = runtime.components[KNOWLEDGE]
    retrieved = await knowledge.retrieve(company_id=tenant.company_id, agent=config,
                                         query="Quasar kettle warranty", top_k=3)
    assert retrieved and retrieved[0].similarity is not None and 0.3 < retrieved[0].similarity <= 1.0
    monkeypatch.setattr(runtime.embedder, "embed", counting_embed)
    for question in ("How long is the warranty of the Quasar kettle?", "What warranty does the Quasar kettle have?"):
        assert await _reply(client, tenant, agent["id"], question) == passage
    assert passage not in embedded and not any("Quasar kettle comes" in t for t in embedded)
    # The FAQ vectors were computed on the first offline answer, once; the second embedded only its question.
    assert embedded.count("Do you ship abroad?") == 1
    embedded.clear()
    await _reply(client, tenant, agent["id"], "Does the Quasar kettle have a guarantee?")
    assert embedded and not {passage, "Do you ship abroad?", "Yes, to 40 countries."} & set(embedded)


async def test_the_demo_seed_gives_an_existing_demo_agent_the_faqs_it_lacks(runtime: Runtime) -> None:
    async with runtime.database.session() as session:
        seed = await seed_demo(session)
    async with runtime.database.session() as session:
        agent = await session.scalar(select(Agent).where(Agent.id == seed.agent_id))
        assert agent is not None and agent.name == DEMO_AGENT
        # As an older seed left it: the English FAQs only, and one the user added.
        agent.faqs = [*(f.model_dump() for f in DEMO_FAQS[:5]), {"question": "Own?", "answer": "Mine."}]
        before = agent.config_version
    async with runtime.database.session() as session:
        again = await seed_demo(session)
    assert again.agent_id == seed.agent_id
    async with runtime.database.session() as session:
        agent = await session.scalar(select(Agent).where(Agent.id == seed.agent_id))
        assert agent is not None
        questions = [f["question"] for f in agent.faqs]
        assert questions == [*(f.question for f in DEMO_FAQS[:5]), "Own?", *(f.question for f in DEMO_FAQS[5:])]
        assert agent.config_version == before + 1
        version = agent.config_version
    async with runtime.database.session() as session:
        await seed_demo(session)  # nothing missing: nothing changes
    async with runtime.database.session() as session:
        agent = await session.scalar(select(Agent).where(Agent.id == seed.agent_id))
        assert agent is not None and len(agent.faqs) == 11 and agent.config_version == version


def test_arabic_is_normalised_and_prefixes_are_tried() -> None:
    assert normalise("أإآٱ ى ة مـــواعيد عَمَلٌ ٣") == "اااا ي ه مواعيد عمل 3"  # noqa: RUF001 (Arabic)
    # Conjunction, article and preposition prefixes: all match the bare word.
    for prefixed in ("والدفع", "بالدفع", "فالدفع", "للدفع", "الدفع"):
        assert "دفع" in word_forms(prefixed), prefixed
    assert words("نقبل فيزا وApple Pay") == ["نقبل", "فيزا", "و", "apple", "pay"]
    assert word_forms("ما") == set() and word_forms("the") == set()  # function words carry no topic


def test_word_coverage_counts_words_no_faq_holds_against_every_faq() -> None:
    index = LexicalIndex.build([Document.of("Which payment methods do you accept?",
                                            "We accept Visa, Mastercard, Apple Pay and cash on delivery."),
                                Document.of("How long does delivery take?", "Two to four working days.")])
    apple, flight = index.coverage("Apple Pay?", (1.0, 0.7)), index.coverage(FLIGHT, (1.0, 0.7))
    assert apple[0] > 0.6 and apple[1] == 0
    assert flight == [0.0, 0.0]


@pytest.mark.parametrize(("language", "expected"), [("ar-EG", "ar"), ("AR", "ar"), ("en_GB", "en"), ("xx", "en")])
def test_dont_know_reads_language_tags(language: str, expected: str) -> None:
    assert dont_know(language) == DONT_KNOW[expected]



async def test_an_egyptian_question_naming_a_brand_in_arabic_letters_gets_the_arabic_answer(
        client: httpx.AsyncClient, demo: tuple[Tenant, str]) -> None:
    # "أبل باي" is Apple Pay in Arabic letters; the Arabic payment FAQ writes it in Latin ones.
    payment_ar = DEMO_FAQS[9]
    assert "Apple Pay" in payment_ar.answer
    assert await _reply(client, *demo, "بتقبلوا أبل باي؟") == payment_ar.answer
    # Egyptian "is it possible" carries no topic: the question is about paying by Visa.
    assert await _reply(client, *demo, "ينفع أدفع بالفيزا؟") == payment_ar.answer


def _best(index: LexicalIndex, question: str) -> list[float]:
    return index.coverage(question, (1.0, 0.7), 0.8)


def test_words_customers_use_for_the_same_thing_match_through_a_concept() -> None:
    index = LexicalIndex.build([Document.of("How do I recharge my line?", "Buy a scratch card and dial it."),
                                Document.of("How do I cancel my line?", "Visit a store with your ID."),
                                Document.of("إزاي أشحن الخط؟", "اشتري كارت شحن.")])
    top_up, terminate = _best(index, "top up"), _best(index, "I want to terminate my line")
    assert top_up[0] > 0.5 and top_up[1] == top_up[2] == 0  # a phrase, read as one concept
    assert terminate[1] > terminate[0] and terminate[2] == 0
    assert "~cancel" in word_forms("terminate") and "~cancel:ar" in word_forms("الغاء")
    # Concepts are kept apart per script: an Arabic word never reaches the English FAQ through one.
    assert _best(index, "اشحن")[0] == 0 and _best(index, "اشحن")[2] > 0
    # A stem of Snowball's English stemmer folds derivations the light one leaves apart.
    assert word_forms("activation") & word_forms("activate")


def test_arabic_participles_negation_and_doubled_roots_reach_the_stem() -> None:
    assert word_forms("مسافر") & word_forms("السفر")  # the participle's م: traveller / travel
    assert word_forms(words("أسترد")[0]) & word_forms("الاسترداد")  # a doubled root
    assert word_forms("مبيشتغلش") & word_forms("بتشتغل")  # Egyptian negation ما...ش around the verb
    # A function word with a proclitic ("to where") says nothing about the topic.
    assert word_forms("لفين") == set() and word_forms("فين") == set()


def test_a_loanword_in_arabic_letters_matches_its_latin_original_only_in_an_arabic_faq() -> None:
    assert sound_key("Apple".casefold()) == sound_key("ابل") and sound_key("router") == sound_key("راوتر")
    index = LexicalIndex.build([Document.of("ما هي طرق الدفع المتاحة؟", "نقبل فيزا وApple Pay."),
                                Document.of("Which payment methods do you accept?", "Visa and Apple Pay.")])
    scores = _best(index, "أبل باي؟")
    assert scores[0] > 0.5 and scores[1] == 0  # found in the answer, through a stem-like key
    # Without a Latin original in an Arabic FAQ, an unknown Arabic word stays unknown.
    assert _best(index, "راوتر") == [0.0, 0.0]
