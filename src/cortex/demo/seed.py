"""The demo company, user, agent and key that let a newcomer chat within a minute."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.agents import service as agents
from cortex.agents.schemas import AgentCreate, Dialect, Faq, Personality
from cortex.auth import service as auth
from cortex.auth.schemas import ApiKeyCreate
from cortex.db.models import Agent, User

DEMO_COMPANY = "Demo Company"
DEMO_EMAIL = "demo@cortex.local"
DEMO_AGENT = "Demo Support Agent"

DEMO_FAQS = [
    Faq(question="What are your opening hours?",
        answer="We are open Sunday to Thursday, 9:00 to 18:00 (GMT+3). Chat support answers around the clock."),
    Faq(question="How can I track my order?",
        answer="Open 'My orders' in the app or website and select the order to see its live tracking status."),
    Faq(question="What is your return policy?",
        answer="Unused items can be returned within 30 days of delivery for a full refund "
               "to the original payment method."),
    Faq(question="How long does delivery take?",
        answer="Standard delivery takes 2 to 4 working days; express delivery arrives the next working day."),
    Faq(question="Which payment methods do you accept?",
        answer="We accept Visa, Mastercard, Apple Pay and cash on delivery."),
    # The same five in Arabic (Modern Standard, in the words Egyptian customers use), so that the demo
    # answers an Arabic question from an Arabic FAQ.
    Faq(question="ما هي مواعيد العمل؟",
        answer="نعمل من الأحد إلى الخميس، من الساعة 9:00 إلى 18:00 (بتوقيت GMT+3). "
               "ودعم المحادثة متاح على مدار الساعة."),
    Faq(question="إزاي أتابع طلبي؟",
        answer="افتح «طلباتي» في التطبيق أو على الموقع واختر الطلب لتعرف حالة الشحن أولًا بأول."),
    Faq(question="ما هي سياسة الإرجاع والاسترداد؟",
        answer="يمكنك إرجاع المنتجات غير المستخدمة خلال 30 يومًا من الاستلام واسترداد المبلغ كاملًا "
               "بنفس طريقة الدفع."),
    Faq(question="التوصيل بياخد قد إيه؟",
        answer="التوصيل العادي من 2 إلى 4 أيام عمل، والتوصيل السريع يوصل في يوم العمل التالي."),
    Faq(question="ما هي طرق الدفع المتاحة؟",
        answer="نقبل فيزا وماستركارد وApple Pay والدفع عند الاستلام."),
]

DEMO_PROMPT = (
    "You are {{ personality.name }}, the support agent of {{ company_name | default('Demo Company') }}. "
    "Answer in {{ dialect.name }}. Be brief, friendly and accurate; if you do not know, say so."
)


@dataclass(frozen=True)
class DemoSeed:
    company_id: uuid.UUID
    agent_id: uuid.UUID
    email: str
    password: str
    api_key: str

    def as_json_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


async def _add_missing_faqs(session: AsyncSession, agent: Agent) -> None:
    """A demo agent seeded by an older version gains the FAQs it lacks; the ones it has (and any the
    user edited or added) are kept as they are."""
    known = {faq.get("question") for faq in agent.faqs}
    missing = [faq.model_dump(mode="json") for faq in DEMO_FAQS if faq.question not in known]
    if missing:
        agent.faqs = [*agent.faqs, *missing]
        # A new config version: answers and cached vectors keyed by the old one are retired.
        agent.config_version = Agent.config_version + 1
        agent.updated_at = func.now()
        await session.flush()


async def seed_demo(session: AsyncSession) -> DemoSeed:
    """Idempotent: reuses the company, user and agent; issues a fresh key and a fresh password
    (only hashes are stored, so the old ones cannot be shown again)."""
    company = await auth.get_or_create_company(session, DEMO_COMPANY)
    password = secrets.token_urlsafe(12)
    user = await session.scalar(select(User).where(User.email == DEMO_EMAIL))
    if user is None:
        await auth.create_user(session, company, DEMO_EMAIL, password)
    else:
        await auth.set_password(session, user, password)
    agent = await session.scalar(select(Agent).where(Agent.company_id == company.id, Agent.name == DEMO_AGENT))
    if agent is None:
        agent = await agents.create_agent(session, company.id, AgentCreate(
            name=DEMO_AGENT, system_prompt=DEMO_PROMPT, faqs=DEMO_FAQS,
            personality=Personality(name="Nora", traits=["friendly", "concise"]),
            dialect=Dialect(name="English", primary_language="en"),
        ))
    else:
        await _add_missing_faqs(session, agent)
    key = await auth.create_api_key(session, company.id, ApiKeyCreate(name="demo key"))
    return DemoSeed(company_id=company.id, agent_id=agent.id, email=DEMO_EMAIL, password=password,
                    api_key=key.key)
