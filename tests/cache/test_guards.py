"""The guards alone: what makes two close questions different, and which turns depend on earlier ones."""

from __future__ import annotations

import pytest

from cortex.cache.guards import GuardSet, conflict, depends_on_history, never_cache, normalize
from cortex.pipeline.ports import HistoryTurn


def test_normalize_keeps_words_and_ids_but_not_case_or_punctuation() -> None:
    assert normalize("  Where is   order ORD-1234?? ") == "where is order ord-1234"
    assert normalize("\uff37here\u2019s my card!") == "where's my card"
    assert normalize("???") == ""


@pytest.mark.parametrize(("a", "b", "kind"), [
    ("where is order ORD-1234", "where is order ORD-5678", "numbers"),
    ("Can I send 200 euros?", "Can I send 2000 euros?", "numbers"),
    ("I need two cards", "I need three cards", "numbers"),
    ("Are you open on Monday?", "Are you open on Friday?", "dates"),
    ("What did I spend last week?", "What did I spend next week?", "dates"),
    ("Is Sarah Connor my advisor?", "Is John Smith my advisor?", "names"),
    ("Why was my card declined?", "Why was my card not declined?", "negation"),
    ("I can log in", "I can't log in", "negation"),
    ("How do I activate my card?", "How do I deactivate my card?", "opposites"),
])
def test_conflicting_details_are_found(a: str, b: str, kind: str) -> None:
    assert conflict(a, b) == kind
    assert conflict(b, a) == kind
    assert conflict(a, b, GuardSet.none()) is None


def test_a_specific_entry_never_answers_a_general_question_but_a_general_one_may() -> None:
    assert conflict("where is my order?", "where is my order ORD-1234?") == "numbers"
    assert conflict("where is my order ORD-1234?", "where is my order?") is None
    assert conflict("Please help me get a refund", "I asked for a refund last week") == "dates"


def test_negation_counts_only_when_it_is_what_differs() -> None:
    assert conflict("My card has not arrived yet, where is it?", "Where is my card?") is None
    assert conflict("I don't have my card after 1 week", "I have my card after 1 week") == "negation"


@pytest.mark.parametrize(("a", "b"), [
    ("where is order ORD-1234", "Where's order ord-1234?"),
    ("How do I reset my password?", "how can i reset my password"),
    ("Do you deliver to Paris?", "Can you deliver to paris?"),  # a name differing only in case
    ("What are your opening hours?", "When are you open?"),
    ("Which ATM's accept my card?", "What ATMs accept my card?"),
    ("I tried to send money but they haven't received it", "I sent money but they haven't got it"),
])
def test_paraphrases_pass(a: str, b: str) -> None:
    assert conflict(a, b) is None


def test_follow_ups_depend_on_history_only_when_there_is_history() -> None:
    history = [HistoryTurn("customer", "Do you ship to Canada?"), HistoryTurn("assistant", "Yes.")]
    assert depends_on_history("And how much does it cost?", history)
    assert depends_on_history("what about Mexico?", history)
    assert depends_on_history("Yes please", history)
    assert not depends_on_history("What are your opening hours on weekdays?", history)
    assert not depends_on_history("And how much does it cost?", [])


def test_never_cache_patterns() -> None:
    assert never_cache("I want a REFUND now", [r"\brefund"])
    assert not never_cache("opening hours", [r"\brefund"])
