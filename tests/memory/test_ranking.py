"""The ranking pieces that need no database: identifiers, subjects, diversity."""

from __future__ import annotations

import uuid

import numpy as np

from cortex.memory.repository import RecalledFact, diversify, identifiers, normalise_subject, subject_words


def _fact(text: str, score: float) -> RecalledFact:
    return RecalledFact(uuid.uuid4(), text, "general", 1.0, score, score)


def test_identifiers_are_tokens_with_digits_or_emails() -> None:
    assert identifiers("Where is ORD-1234? Call +966 55 123, or mail sara@mail.example.") == {
        "ord-1234", "966", "123", "sara@mail.example"}
    assert identifiers("my address please") == frozenset()


def test_subjects_are_normalised_keys() -> None:
    assert normalise_subject("Home Address") == "home_address"
    assert normalise_subject("  order ORD-12 / status ") == "order_ord_12_status"
    assert normalise_subject("") is None and normalise_subject("---") is None
    assert subject_words("home_address") == "home address"


def test_diversity_lets_a_distinct_fact_past_near_copies() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(size=384)
    copies = [base + rng.normal(scale=0.05, size=384) for _ in range(3)]
    distinct = rng.normal(size=384)
    visits = [_fact(f"visit {i}", 0.5 - i * 0.01) for i in range(3)]
    wheelchair = _fact("uses a wheelchair", 0.4)
    ranked = diversify([*zip(visits, copies, strict=True), (wheelchair, distinct)])
    assert [f.fact for f in ranked[:2]] == ["visit 0", "uses a wheelchair"]
    assert diversify([]) == [] and diversify([(wheelchair, distinct)]) == [wheelchair]
