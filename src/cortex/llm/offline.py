"""The offline responder: answers from the agent's own FAQs and retrieved knowledge, never invents.

Used when no model is configured at all (the demo), or when the agent enables `offline_fallback` and
the provider is unreachable. The reply is an FAQ answer or a knowledge passage, verbatim, when one
matches closely enough, else an honest "I don't know" in the agent's language (`dialect.primary_language`,
whatever the language of the question).

An FAQ is matched on its question and its answer, two ways: by words (`cortex.llm.lexical`: the share
of the question's information found in the FAQ, language-neutral, Arabic normalised and stemmed, English
stemmed, synonyms of `cortex.llm.synonyms` and loanwords in Arabic letters matched) and by meaning
(MiniLM cosine, the embedder the rest of the pipeline uses). The two are fused into one score. MiniLM
was trained on English and reads only Latin script, so for a question in another script, and against
an FAQ in another script, only the words count. Knowledge passages are scored the same way, with the
cosine the retrieval query computed against the chunk's stored vector (`KnowledgeChunk.similarity`):
no passage is embedded here. Thresholds and weights: bench/offline_answers.py (dev questions).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cortex.agents.schemas import AgentConfig, Faq
from cortex.embeddings.embedder import Embedder
from cortex.llm.lexical import Document, LexicalIndex, mostly_latin
from cortex.pipeline.ports import KnowledgeChunk

MODEL_NAME = "offline"

DONT_KNOW = {
    "en": "I'm sorry, I don't know the answer to that. Let me connect you with a member of our team.",
    "ar": "عذرًا، لا أعرف إجابة هذا السؤال. سأحوّلك إلى أحد أعضاء فريقنا.",
    "fr": "Désolé, je ne connais pas la réponse. Je vous mets en relation avec un membre de notre équipe.",
    "es": "Lo siento, no sé la respuesta. Le pondré en contacto con un miembro de nuestro equipo.",
    "de": "Das weiß ich leider nicht. Ich verbinde Sie mit einem Mitglied unseres Teams.",
    "pt": "Desculpe, não sei a resposta. Vou colocá-lo em contato com um membro da nossa equipe.",
    "it": "Mi dispiace, non conosco la risposta. La metto in contatto con un membro del nostro team.",
    "tr": "Üzgünüm, bunun cevabını bilmiyorum. Sizi ekibimizden birine bağlayacağım.",  # noqa: RUF001 (real Turkish)
    "hi": "क्षमा करें, मुझे इसका उत्तर नहीं पता। मैं आपको हमारी टीम के किसी सदस्य से जोड़ता हूँ।",
    "ur": "معذرت، مجھے اس کا جواب معلوم نہیں۔ میں آپ کو ہماری ٹیم کے کسی رکن سے ملاتا ہوں۔",  # noqa: RUF001 (real Urdu)
    "fa": "متأسفم، پاسخ این را نمی‌دانم. شما را به یکی از اعضای تیم‌مان وصل می‌کنم.",
    "id": "Maaf, saya tidak tahu jawabannya. Saya akan menghubungkan Anda dengan anggota tim kami.",
}


def dont_know(language: str) -> str:
    """The agent's language tag ("ar", "ar-EG", "EN") to its sentence; English for one not listed."""
    return DONT_KNOW.get(language.strip().lower().replace("_", "-").split("-")[0], DONT_KNOW["en"])


@dataclass(frozen=True)
class OfflineTuning:
    """Fusion weights and thresholds, chosen on the dev questions of bench/offline_answers.py (a region
    where neighbouring values score alike, not the single best point)."""

    # Share of the meaning score in the fused score of a Latin-script question (the rest: words).
    dense_weight: float = 0.5
    # MiniLM cosines mapped linearly onto 0..1 between these: unrelated questions score ~0.1-0.35,
    # paraphrases ~0.45-0.85.
    dense_floor: float = 0.25
    dense_ceiling: float = 0.75
    # A word of the question found only in an FAQ's answer counts this much (in its question: 1).
    answer_word_weight: float = 0.7
    # A word matched only through a stem counts this much (the word as written: 1), and one matched only
    # through a concept of cortex.llm.synonyms this much.
    stem_weight: float = 0.8
    synonym_weight: float = 0.8
    # A word no FAQ holds counts this much of its information against every FAQ.
    unknown_word_weight: float = 1.0
    # Fused score an FAQ needs; the word score alone for a question MiniLM cannot read.
    faq_threshold: float = 0.25
    faq_words_only_threshold: float = 0.4
    # The best FAQ must lead the best one with another answer by this much, else the question is
    # ambiguous between them and the reply is "I don't know": what keeps wrong answers rare.
    margin: float = 0.15
    # Passages (not measured by the benchmark, which has no knowledge base): the retrieval cosine that
    # a passage needs, or the share of the question's words it must hold.
    passage_cosine_threshold: float = 0.5
    passage_words_threshold: float = 0.75


@dataclass(frozen=True)
class Match:
    index: int
    score: float


@dataclass(frozen=True)
class FaqIndex:
    """What the responder keeps per agent configuration: the FAQs' words, and MiniLM vectors of their
    questions and answers (`readable`: whether MiniLM reads the FAQ's script at all)."""

    faqs: tuple[Faq, ...]
    lexical: LexicalIndex
    question_vectors: np.ndarray
    answer_vectors: np.ndarray
    readable: np.ndarray  # bool per FAQ

    @classmethod
    async def build(cls, faqs: Sequence[Faq], embedder: Embedder) -> FaqIndex:
        lexical = LexicalIndex.build([Document.of(f.question, f.answer) for f in faqs])
        vectors = await embedder.embed([*(f.question for f in faqs), *(f.answer for f in faqs)])
        readable = np.array([mostly_latin(f.question + " " + f.answer) for f in faqs], dtype=bool)
        return cls(tuple(faqs), lexical, vectors[: len(faqs)], vectors[len(faqs):], readable)


class OfflineResponder:
    def __init__(self, embedder: Embedder, max_agents: int = 256, tuning: OfflineTuning | None = None) -> None:
        self.embedder = embedder
        self.tuning = tuning or OfflineTuning()
        # Per (agent, config version): computed once, dropped when the FAQs change. A plain LRU:
        # cachetools is not among the runtime's dependencies.
        self._indexes: OrderedDict[tuple[str, int], FaqIndex] = OrderedDict()
        self._max_agents = max_agents

    async def faq_index(self, agent: AgentConfig) -> FaqIndex:
        key = (str(agent.id), agent.config_version)
        cached = self._indexes.get(key)
        if cached is not None:
            self._indexes.move_to_end(key)
            return cached
        index = await FaqIndex.build([*agent.faqs, *agent.workflow_faqs], self.embedder)
        self._indexes[key] = index
        while len(self._indexes) > self._max_agents:
            self._indexes.popitem(last=False)
        return index

    async def answer(self, agent: AgentConfig, message: str, chunks: Sequence[KnowledgeChunk]) -> str:
        if not message.strip():
            return dont_know(agent.dialect.primary_language)
        latin = mostly_latin(message)
        query = await self.embedder.embed_query(message) if latin else None
        if agent.faqs or agent.workflow_faqs:
            index = await self.faq_index(agent)
            match = self.best_faq(index, message, query)
            if match is not None:
                return index.faqs[match.index].answer
        passage = self.best_passage(message, chunks, latin)
        if passage is not None:
            return chunks[passage.index].text
        return dont_know(agent.dialect.primary_language)

    def faq_scores(self, index: FaqIndex, message: str, query: np.ndarray | None) -> np.ndarray:
        """Fused score per FAQ: words alone when MiniLM cannot read the question (`query` None)."""
        t = self.tuning
        words = np.asarray(index.lexical.coverage(message, (1.0, t.answer_word_weight), t.stem_weight),
                           dtype=np.float32)
        if query is None:
            return words
        cosine = np.maximum(index.question_vectors @ query, index.answer_vectors @ query)
        meaning = np.clip((cosine - t.dense_floor) / (t.dense_ceiling - t.dense_floor), 0.0, 1.0)
        meaning = np.where(index.readable, meaning, 0.0)
        return np.asarray(t.dense_weight * meaning + (1 - t.dense_weight) * words, dtype=np.float32)

    def best_faq(self, index: FaqIndex, message: str, query: np.ndarray | None) -> Match | None:
        if not index.faqs:
            return None
        scores = self.faq_scores(index, message, query)
        best = int(np.argmax(scores))
        threshold = self.tuning.faq_threshold if query is not None else self.tuning.faq_words_only_threshold
        if scores[best] < threshold:
            return None
        answer = index.faqs[best].answer
        runner_up = max((float(s) for s, f in zip(scores, index.faqs, strict=True) if f.answer != answer),
                        default=0.0)
        return Match(best, float(scores[best])) if scores[best] - runner_up >= self.tuning.margin else None

    def best_passage(self, message: str, chunks: Sequence[KnowledgeChunk], latin: bool) -> Match | None:
        """The passage with the strongest evidence: its retrieval cosine (when MiniLM read the question
        and the chunk was found by vector) or the share of the question's words it holds."""
        if not chunks:
            return None
        t = self.tuning
        words = LexicalIndex.build([Document.of(c.text) for c in chunks]).coverage(
            message, (1.0,), t.stem_weight, t.synonym_weight, t.unknown_word_weight)
        best: Match | None = None
        for i, chunk in enumerate(chunks):
            cosine = chunk.similarity if latin and chunk.similarity is not None else None
            passes = (cosine is not None and cosine >= t.passage_cosine_threshold) or \
                words[i] >= t.passage_words_threshold
            score = max(cosine or 0.0, words[i])
            if passes and (best is None or score > best.score):
                best = Match(i, score)
        return best
