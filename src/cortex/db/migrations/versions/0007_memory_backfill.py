"""memory backfill: token counts and concepts for the facts stored before 0006_memory_tuning

Revision ID: 0007_memory_backfill
Revises: 0006_memory_tuning
"""

import re
from collections.abc import Sequence

import litellm
import sqlalchemy as sa
from alembic import op

revision: str = "0007_memory_backfill"
down_revision: str | Sequence[str] | None = "0006_memory_tuning"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1_000

# A frozen copy of the concept map and of how facts were given concepts and token counts when this
# migration was written: its result must not change when the application's map does later.
CONCEPTS: dict[str, frozenset[str]] = {name: frozenset(words.split()) for name, words in {
    "address": "address addresses home house live living reside resides residence street flat apartment "
               "postcode zip location",
    "phone": "phone mobile cell telephone number call ring text sms whatsapp",
    "email": "email e-mail mail inbox",
    "language": "language languages arabic english french urdu turkish spanish speak reply translate",
    "contact_time": "contact call callback reach time times hours morning mornings evening evenings weekend "
                    "weekends available availability",
    # Not "work": "does it work" is far more common in support than "where I work".
    "employer": "employer employed employee job company corporate business workplace office staff colleague",
    "accessibility": "accessibility accessible disability disabled wheelchair hearing deaf vision blind sight "
                     "mobility needs assistance impairment",
    "payment": "payment pay paying paid card visa mastercard paypal cash transfer billing bill charge checkout",
    "plan": "plan subscription subscribe subscribed package tier upgrade downgrade membership contract",
    "loyalty": "loyalty points rewards reward membership member tier status",
    "phone_device": "phone smartphone handset iphone galaxy pixel android ios device",
    "computer": "laptop computer notebook macbook pc thinkpad device",
    "car": "car vehicle automobile drive drives driving tyres tires",
    "allergy": "allergy allergies allergic react reaction intolerance intolerant ingredient ingredients",
    "diet": "diet dietary vegetarian vegan halal keto food meal meals eat menu",
    "pet": "pet pets dog dogs puppy cat cats animal",
    "children": "children child kids kid son daughter baby family twins boys girls",
    "birthday": "birthday born birth anniversary",
    "size": "size sizes shoe shoes clothing fit",
    "delivery": "delivery deliver courier driver doorman drop parcel instructions",
    "branch": "branch store shop mall pickup location",
    "internet": "internet broadband wifi fibre fiber connection speed mbps",
    "marketing": "newsletter marketing promotional promotions offers advertising emails sms unsubscribe",
    "warranty": "warranty guarantee covered coverage repair appliance",
    "insurance": "insurance policy cover coverage claim insured",
}.items()}

_WORD = re.compile(r"[a-z][a-z'-]+")
_BY_WORD: dict[str, frozenset[str]] = {}
for _name, _words in CONCEPTS.items():
    for _word in _words:
        _BY_WORD[_word] = _BY_WORD.get(_word, frozenset()) | {_name}


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def concepts_of(text: str) -> frozenset[str]:
    """The concepts any word of `text` (a message, a fact, or a snake_case subject) names."""
    found: set[str] = set()
    for word in _WORD.findall(text.casefold().replace("_", " ")):
        found |= _BY_WORD.get(word, frozenset()) | _BY_WORD.get(_stem(word), frozenset())
    return frozenset(found)



def fact_concepts(subject: str | None, fact: str) -> list[str]:
    return sorted(concepts_of(subject if subject else fact))


def count_tokens(fact: str) -> int:
    # LiteLLM's default tokenizer, as recall's budget counted a fact then.
    return int(litellm.token_counter(model="", text=fact)) if fact else 0


def upgrade() -> None:
    # Computed in Python, as new facts were given them when this ran first (the frozen helpers above).
    bind = op.get_bind()
    select_batch = sa.text("SELECT id, subject, fact FROM memory_facts "
                           "WHERE (token_count IS NULL OR concepts IS NULL) AND id > :after ORDER BY id LIMIT :n")
    update = sa.text("UPDATE memory_facts SET token_count = coalesce(token_count, :tokens), "
                     "concepts = coalesce(concepts, CAST(:concepts AS varchar(32)[])) WHERE id = :id")
    after = "00000000-0000-0000-0000-000000000000"
    while rows := bind.execute(select_batch, {"after": after, "n": BATCH}).all():
        bind.execute(update, [{"id": fact_id, "tokens": count_tokens(fact), "concepts": fact_concepts(subject, fact)}
                              for fact_id, subject, fact in rows])
        after = rows[-1][0]


def downgrade() -> None:
    pass  # the values are derived from each fact; 0006's downgrade drops the columns themselves
