"""The offline responder: answers from the agent's own FAQs and retrieved knowledge, never invents.

Used when no model is configured at all (the demo), or when the agent enables `offline_fallback` and
the provider is unreachable. It returns the best-matching FAQ answer or knowledge passage when the
match is close enough, else an honest "I don't know" in the agent's language.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from cortex.agents.schemas import AgentConfig
from cortex.embeddings.embedder import Embedder
from cortex.pipeline.ports import KnowledgeChunk

MODEL_NAME = "offline"
# Cosine similarity of MiniLM embeddings: paraphrased questions score ~0.7+, unrelated ones < 0.4.
FAQ_THRESHOLD = 0.68
# A passage is compared with a question, which scores lower than question to question.
PASSAGE_THRESHOLD = 0.5

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
    return DONT_KNOW.get(language.lower().split("-")[0], DONT_KNOW["en"])


class OfflineResponder:
    def __init__(self, embedder: Embedder, max_agents: int = 256) -> None:
        self.embedder = embedder
        # FAQ question embeddings per (agent, config version): computed once, dropped when the FAQs change.
        self._faq_vectors: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._max_agents = max_agents

    async def _faq_matrix(self, agent: AgentConfig) -> np.ndarray:
        key = (str(agent.id), agent.config_version)
        cached = self._faq_vectors.get(key)
        if cached is not None:
            self._faq_vectors.move_to_end(key)
            return cached
        questions = [faq.question for faq in [*agent.faqs, *agent.workflow_faqs]]
        matrix = await self.embedder.embed(questions) if questions else np.zeros((0, 1), dtype=np.float32)
        self._faq_vectors[key] = matrix
        while len(self._faq_vectors) > self._max_agents:
            self._faq_vectors.popitem(last=False)
        return matrix

    async def answer(self, agent: AgentConfig, message: str, chunks: list[KnowledgeChunk]) -> str:
        query = await self.embedder.embed_query(message)
        faqs = [*agent.faqs, *agent.workflow_faqs]
        if faqs:
            scores = (await self._faq_matrix(agent)) @ query
            best = int(np.argmax(scores))
            if float(scores[best]) >= FAQ_THRESHOLD:
                return faqs[best].answer
        if chunks:
            passages = await self.embedder.embed([c.text for c in chunks[:5]])
            scores = passages @ query
            best = int(np.argmax(scores))
            if float(scores[best]) >= PASSAGE_THRESHOLD:
                return chunks[best].text
        return dont_know(agent.dialect.primary_language)
