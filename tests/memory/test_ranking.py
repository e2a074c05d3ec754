"""The ranking pieces that need no database: identifiers, subjects, diversity."""

from __future__ import annotations

import struct
import uuid

import numpy as np

from cortex.memory.concepts import concepts_of, fact_concepts
from cortex.memory.repository import (
    RecalledFact,
    diversify,
    halfvec_matrix,
    identifiers,
    normalise_subject,
    subject_words,
)


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
    ranked = diversify([*visits, wheelchair], [_halfvec(v) for v in [*copies, distinct]])
    assert [f.fact for f in ranked[:2]] == ["visit 0", "uses a wheelchair"]
    assert diversify([], []) == [] and diversify([wheelchair], [_halfvec(distinct)]) == [wheelchair]


def _halfvec(vector: np.ndarray) -> bytes:
    """pgvector's binary halfvec (halfvec_send): dimensions, unused, big-endian float16 values."""
    return struct.pack(">hh", len(vector), 0) + vector.astype(">f2").tobytes()


def test_halfvec_matrix_decodes_the_binary_form() -> None:
    vectors = [np.array([1.0, -0.5, 0.25], dtype=np.float32), np.array([0.0, 2.0, -3.0], dtype=np.float32)]
    assert np.array_equal(halfvec_matrix([_halfvec(v) for v in vectors]), np.stack(vectors))


def test_concepts_link_everyday_words_to_fact_subjects() -> None:
    assert "employer" in concepts_of("Do you offer a corporate discount for my company?")
    assert concepts_of("employer") == {"employer"}
    assert "accessibility" in concepts_of("Is the entrance accessible for a wheelchair?")
    assert concepts_of("hello there") == frozenset()
    # The subject the model named wins over the fact's wording; a manual save has only its text.
    assert fact_concepts("pet_dog_name", "The customer has a dog named Max.") == ["pet"]
    assert fact_concepts(None, "I am allergic to peanuts") == ["allergy"]
    assert "phone" in concepts_of("What number will you call me on?")
