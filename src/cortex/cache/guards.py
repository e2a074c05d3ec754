"""What makes two close questions need different answers, and which turns may never be cached.

A nearest neighbour above a similarity threshold is only a candidate: "where is order ORD-1234" and
"where is order ORD-5678" embed almost identically, and so do "I can log in" and "I can't log in".
Each guard compares one kind of detail that changes the answer; a candidate that differs in any of
them is rejected. The benchmark (bench/cache_quality.py) measures what each guard buys.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from cortex.pipeline.ports import HistoryTurn

# Words are what regex \w matches, plus inner - . / : @ ' so that ORD-1234, 12.5, 3/4, 10:30 and a@b.com
# stay whole.
_TOKEN = re.compile(r"[\w]+(?:[-./:@'\u2019][\w]+)*", re.UNICODE)

_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
    "fourteen": "14", "fifteen": "15", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50",
    "hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000",
    "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th", "half": "1/2",
    "twice": "x2", "once": "x1", "single": "1", "double": "x2", "triple": "x3", "dozen": "12",
}
_DATE_WORDS = {
    "today", "tonight", "tomorrow", "yesterday", "weekend", "weekday", "morning", "afternoon", "evening",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "january", "february", "march", "april", "june", "july", "august", "september", "october",
    "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
    "dec", "daily", "weekly", "monthly", "yearly", "annual", "annually", "hourly",
}
# "next"/"last" only matter beside a period: "next week" vs "last week".
_RELATIVE = {"next", "last", "previous", "this", "coming", "past"}
_PERIODS = {"day", "days", "week", "weeks", "month", "months", "year", "years", "hour", "hours", "minute",
            "minutes"}
_NEGATIONS = {"not", "no", "never", "nothing", "none", "nobody", "nowhere", "neither", "nor", "cannot",
              "without", "unable", "can't", "cant", "won't", "wont", "don't", "dont", "doesn't", "doesnt",
              "didn't", "didnt", "isn't", "isnt", "aren't", "arent", "wasn't", "wasnt", "weren't", "werent",
              "haven't", "havent", "hasn't", "hasnt", "hadn't", "hadnt", "shouldn't", "shouldnt",
              "wouldn't", "wouldnt", "couldn't", "couldnt", "mustn't", "mustnt", "failed", "fail", "fails"}
# Pairs of words that point in opposite directions: a question with one is not the other's question.
_OPPOSITES = [
    ("activate", "deactivate"), ("enable", "disable"), ("lock", "unlock"), ("block", "unblock"),
    ("freeze", "unfreeze"), ("subscribe", "unsubscribe"), ("add", "remove"), ("open", "close"),
    ("deposit", "withdraw"), ("deposit", "withdrawal"), ("buy", "sell"), ("send", "receive"),
    ("sent", "received"), ("incoming", "outgoing"), ("increase", "decrease"), ("upgrade", "downgrade"),
    ("before", "after"), ("maximum", "minimum"), ("max", "min"), ("import", "export"), ("login", "logout"),
    ("credit", "debit"), ("in", "out"), ("up", "down"), ("more", "less"), ("earliest", "latest"),
    ("domestic", "international"), ("physical", "virtual"), ("refund", "charge"), ("pay", "refund"),
]
_OPPOSITE_OF: dict[str, set[str]] = {}
for _a, _b in _OPPOSITES:
    _OPPOSITE_OF.setdefault(_a, set()).add(_b)
    _OPPOSITE_OF.setdefault(_b, set()).add(_a)

# Capitalised words that are not names (sentence starts are skipped separately).
_NOT_NAMES = {
    "i", "i'm", "i've", "i'd", "i'll", "ok", "okay", "hi", "hello", "hey", "please", "thanks", "thank", "dear",
    "mr", "mrs", "ms", "dr", "sir", "madam", "faq", "pin", "atm", "usd", "eur", "gbp", "uk", "us", "eu", "api",
    "app", "apple", "google", "pay", "id", "iban", "swift", "sepa", "visa", "mastercard", "paypal", "the",
}

# A follow-up leans on what was said before: "and for business accounts?", "what about that one?".
_FOLLOW_UP_START = re.compile(
    r"^(and|but|also|so|then|or|what about|how about|same|why not|why|ok so|okay so|yes|no|yeah|yep|nope|"
    r"that|this|those|these|it|they|them|he|she)\b", re.IGNORECASE)
_REFERRING = {"it", "its", "it's", "that", "this", "these", "those", "they", "them", "their", "theirs", "he",
              "she", "him", "her", "his", "hers", "one", "ones", "same", "above", "previous", "earlier",
              "again", "else", "instead", "former", "latter", "there", "then", "also", "too", "other",
              "another", "more"}


def normalize(text: str) -> str:
    """Case-, width- and punctuation-insensitive form used for the exact match; keeps every word."""
    folded = unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'")
    return " ".join(_TOKEN.findall(folded))


def tokens(text: str) -> list[str]:
    return normalize(text).split()


@dataclass(frozen=True)
class Features:
    """The details of a question that change its answer."""

    numbers: frozenset[str]
    dates: frozenset[str]
    names: frozenset[str]
    negated: bool
    words: frozenset[str]


def _numbers(words: Sequence[str]) -> frozenset[str]:
    found: set[str] = set()
    for word in words:
        if any(ch.isdigit() for ch in word):
            # 1,000 and 1000 are the same number; ids keep their letters (ord-1234).
            found.add(word.replace(",", ""))
        elif word in _NUMBER_WORDS:
            found.add(_NUMBER_WORDS[word])
    return frozenset(found)


def _dates(words: Sequence[str]) -> frozenset[str]:
    found = {w for w in words if w in _DATE_WORDS}
    for before, after in itertools.pairwise(words):
        if before in _RELATIVE and after in _PERIODS:
            found.add(f"{before} {after.rstrip('s')}")
    return frozenset(found)


def _names(text: str) -> frozenset[str]:
    """Capitalised words that do not start a sentence: people, places, products, brands."""
    found: set[str] = set()
    sentence_start = True
    for match in re.finditer(r"[^\W\d_][\w'\u2019-]*|[.!?]+", text):
        word = match.group(0)
        if word[0] in ".!?":
            sentence_start = True
            continue
        if not sentence_start and word[0].isupper() and not word.isupper() and word.casefold() not in _NOT_NAMES:
            found.add(word.casefold())
        elif not sentence_start and word.isupper() and len(word) > 1 and word.casefold() not in _NOT_NAMES:
            found.add(word.casefold())  # acronyms: product codes, places
        sentence_start = False
    return frozenset(found)


@lru_cache(maxsize=65_536)
def features(text: str) -> Features:
    words = tokens(text)
    return Features(numbers=_numbers(words), dates=_dates(words), names=_names(text),
                    negated=any(w in _NEGATIONS or w.endswith("n't") for w in words), words=frozenset(words))


@dataclass(frozen=True)
class GuardSet:
    """Which guards run; the benchmark turns them off one at a time to measure each."""

    numbers: bool = True
    dates: bool = True
    names: bool = True
    negation: bool = True
    opposites: bool = True

    @classmethod
    def none(cls) -> GuardSet:
        return cls(numbers=False, dates=False, names=False, negation=False, opposites=False)


ALL_GUARDS = GuardSet()


def conflict(query: str, candidate: str, guards: GuardSet = ALL_GUARDS) -> str | None:
    """The first detail in which the two questions differ, or None when the candidate may answer."""
    a, b = features(query), features(candidate)
    if guards.numbers and a.numbers != b.numbers:
        return "numbers"
    if guards.dates and a.dates != b.dates:
        return "dates"
    # A name is a difference only when the other question lacks the word entirely (casing varies).
    if guards.names and ((a.names - b.words) or (b.names - a.words)):
        return "names"
    if guards.negation and a.negated != b.negated:
        return "negation"
    if guards.opposites:
        for word in a.words - b.words:
            if _OPPOSITE_OF.get(word, set()) & (b.words - a.words):
                return "opposites"
    return None


def depends_on_history(message: str, history: Sequence[HistoryTurn]) -> bool:
    """True when the message only makes sense after earlier turns (so its answer does too)."""
    if not history:
        return False
    words = tokens(message)
    if len(words) <= 3:
        return True
    if _FOLLOW_UP_START.match(normalize(message)):
        return True
    return any(word in _REFERRING for word in words)


def never_cache(message: str, patterns: Sequence[str]) -> bool:
    return any(re.search(pattern, message, re.IGNORECASE) for pattern in patterns)
