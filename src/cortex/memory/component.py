"""The memory component behind the pipeline's MemoryPort: recall for 02, extraction after 08.

Extraction runs after the reply, in the durable `memory.extract_facts` job the reply's transaction
queued (cortex.pipeline.post_actions): the turn goes to the nano-tier model with a strict
JSON schema; output that is empty or does not match the schema is logged and counted, never stored.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from typing import Any

from pydantic import ValidationError

from cortex.agents.schemas import AgentConfig
from cortex.kit.errors import CortexError
from cortex.kit.runtime import Runtime
from cortex.memory import repository
from cortex.memory.repository import NewFact
from cortex.memory.schemas import EXTRACTION_SCHEMA, ExtractionOutput
from cortex.pipeline.model_router import resolve_models
from cortex.pipeline.ports import CompletedTurn, MemoryFact
from cortex.settings import TIERS, Settings

logger = logging.getLogger(__name__)

EXTRACTION_TIER = "nano"
EXTRACTION_TIMEOUT_SECONDS = 30.0
# Facts the model itself is unsure of are not worth remembering.
MIN_EXTRACTED_CONFIDENCE = 0.5
FACT_TOKEN_OVERHEAD = 4  # the "- " bullet and line break around each fact in the prompt
# How an extraction run ends: the bounded `outcome` label of cortex_memory_extraction_runs_total.
EXTRACTION_OUTCOMES = ("stored", "no_facts", "empty_output", "invalid_output", "model_error", "source_gone",
                       "already_done")

EXTRACTION_PROMPT = """You extract durable facts about a customer from one turn of a support conversation.
Return only facts the customer stated about themselves that will still be true in later conversations:
preferences (language, channel, contact times), personal details they gave (address, phone, e-mail),
what they own or use (plan, devices, pets), their history with the company (orders, issues), and
standing context (allergies, accessibility needs). Do not return facts about the assistant, the
company, questions, greetings, or one-off requests.
For each fact give:
- fact: a short third-person sentence ("The customer's preferred language is Arabic.")
- category: preference | history | sentiment | context | general
- confidence: 0.0-1.0, how clearly the customer stated it
- subject: a snake_case key naming the single attribute the fact sets (home_address, phone_number,
  preferred_language, subscription_plan). When the customer can have several of a thing, make the key
  name the one meant (pet_dog_name, order_ORD-1234_status), so that a new value replaces only the old
  value of the same attribute.
- value: the attribute's value as stated.
Return {"facts": []} when the turn holds no such fact."""


def extraction_models(runtime: Runtime, agent: AgentConfig) -> list[str]:
    """The nano-tier model (the agent's own, else the service's, else the nearest configured tier)."""
    if not runtime.settings.memory_extraction:
        return []
    return resolve_models(agent, runtime.settings, EXTRACTION_TIER)[0]


def extraction_status(settings: Settings) -> str:
    """For /health/detailed: is extraction on, and with which service-wide model."""
    if not settings.memory_extraction:
        return "off: disabled by CORTEX_MEMORY_EXTRACTION"
    tiers = (EXTRACTION_TIER, *(t for t in TIERS if t != EXTRACTION_TIER))
    model = next((m for m in (settings.model_for_tier(t) for t in tiers) if m), None)
    if model is None:
        return "off: no model is configured (set CORTEX_MODEL_NANO)"
    return "ok"


class MemoryComponent:
    available = True

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # Extraction outcomes since start: runs, facts_created, facts_confirmed, facts_superseded, and one of
        # EXTRACTION_OUTCOMES per run (no_model counts turns that had no model to run on). The same
        # counts go to Prometheus (cortex_memory_extraction_runs_total, cortex_memory_facts_total).
        self.stats: Counter[str] = Counter()

    def _finished(self, outcome: str, facts: Counter[str] | None = None) -> None:
        self.stats[outcome] += 1
        self.runtime.telemetry.memory_extraction(outcome, dict(facts or {}))

    # --- 02 Memory Recall -------------------------------------------------------------------------------

    async def recall(self, *, company_id: uuid.UUID, agent_id: uuid.UUID, customer_id: str, query: str,
                     token_budget: int) -> list[MemoryFact]:
        # Read-only statements on the pooled asyncpg connection itself, outside any transaction (no
        # BEGIN/COMMIT round trips); asyncpg keeps them prepared per connection.
        async with self.runtime.database.driver() as driver:
            if not await repository.has_recallable_facts(driver, company_id=company_id, customer_id=customer_id,
                                                         agent_id=agent_id):
                return []
            vector = await self.runtime.embedder.embed_query(query)  # shared with the cache check and retrieval
            recalled = await repository.recall(driver, company_id=company_id,
                                               customer_id=customer_id, agent_id=agent_id, query=query,
                                               query_vector=vector)
        kept: list[MemoryFact] = []
        spent = 0
        for fact in recalled:
            tokens = fact.token_count if fact.token_count is not None else repository.count_tokens(fact.fact)
            cost = tokens + FACT_TOKEN_OVERHEAD
            if spent + cost > token_budget:
                continue  # a shorter fact further down may still fit
            spent += cost
            kept.append(MemoryFact(id=fact.id, fact=fact.fact, category=fact.category,
                                   confidence=fact.confidence, score=round(fact.score, 4)))
        return kept

    # --- 08 Post Actions --------------------------------------------------------------------------------

    def extracts_for(self, agent: AgentConfig) -> bool:
        if extraction_models(self.runtime, agent):
            return True
        self.stats["no_model"] += 1
        return False

    async def after_turn(self, turn: CompletedTurn) -> None:
        """Run by the turn's job, which a crash or restart runs again: a message already used is skipped."""
        models = extraction_models(self.runtime, turn.agent)
        if not models:
            self.stats["no_model"] += 1
            return
        async with self.runtime.database.session() as session:
            done = await repository.extracted_from(session, turn.company_id, turn.customer_message_id)
        if done:
            self._finished("already_done")
            return
        await self.extract(turn, models)

    async def extract(self, turn: CompletedTurn, models: list[str]) -> list[repository.StoreOutcome]:
        self.stats["runs"] += 1
        try:
            parsed, completion = await self.runtime.llm.complete_json(
                models=models, messages=self._messages(turn), schema=EXTRACTION_SCHEMA, name="customer_facts",
                timeout_seconds=EXTRACTION_TIMEOUT_SECONDS)
        except CortexError as exc:
            self._finished("model_error")
            logger.warning("memory extraction: model call failed", extra={
                "message_id": str(turn.customer_message_id), "error": exc.detail})
            return []
        if not completion.text.strip():
            self._finished("empty_output")
            logger.warning("memory extraction: empty model output",
                           extra={"message_id": str(turn.customer_message_id), "model": completion.model})
            return []
        try:
            output = ExtractionOutput.model_validate(parsed) if parsed is not None else None
        except ValidationError as exc:
            logger.warning("memory extraction: output does not match the schema", extra={
                "message_id": str(turn.customer_message_id), "model": completion.model,
                "errors": [".".join(map(str, e["loc"])) + ": " + e["msg"] for e in exc.errors()][:5]})
            output = None
        else:
            if output is None:
                logger.warning("memory extraction: output is not a JSON object",
                               extra={"message_id": str(turn.customer_message_id), "model": completion.model})
        if output is None:
            self._finished("invalid_output")
            return []
        facts = [f for f in output.facts if f.confidence >= MIN_EXTRACTED_CONFIDENCE and f.fact.strip()]
        if not facts:
            self._finished("no_facts")
            return []
        subjects = [repository.normalise_subject(f.subject) for f in facts]
        texts = [f.fact for f in facts] + [repository.subject_words(s) for s in subjects if s]
        vectors = await self.runtime.embedder.embed(texts)  # one batch: facts, then their subjects
        subject_vectors = iter(vectors[len(facts):])
        outcomes: list[repository.StoreOutcome] = []
        facts_by_action: Counter[str] = Counter()
        async with self.runtime.database.session() as session:
            await repository.lock_customer(session, turn.company_id, turn.customer_id)
            if not await repository.message_still_exists(session, turn.company_id, turn.customer_message_id):
                self._finished("source_gone")  # the customer was forgotten while the model answered
                return []
            for fact, subject, vector in zip(facts, subjects, vectors[:len(facts)], strict=True):
                outcome = await repository.store_fact(
                    session, company_id=turn.company_id, customer_id=turn.customer_id,
                    new=NewFact(fact=fact.fact.strip(), category=fact.category, confidence=fact.confidence,
                                embedding=vector, source="extraction", subject=subject, value=fact.value,
                                source_message_id=turn.customer_message_id,
                                subject_embedding=next(subject_vectors) if subject else None))
                outcomes.append(outcome)
                facts_by_action[outcome.action] += 1
                facts_by_action["superseded"] += len(outcome.superseded)
        self.stats.update({"facts_" + action: n for action, n in facts_by_action.items()})
        self._finished("stored", facts_by_action)
        return outcomes

    @staticmethod
    def _messages(turn: CompletedTurn) -> list[dict[str, Any]]:
        earlier = [{"role": t.role, "content": t.content} for t in turn.history[-4:]]
        payload = {"earlier_turns": earlier, "customer_message": turn.message, "assistant_reply": turn.reply}
        return [{"role": "system", "content": EXTRACTION_PROMPT},
                {"role": "user", "content": json.dumps(payload, ensure_ascii=False)}]
