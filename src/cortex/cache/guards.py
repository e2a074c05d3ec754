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
    # "one" is left out: "one can", "in one go", "which one" are not quantities.
    "zero": "0", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
    "fourteen": "14", "fifteen": "15", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50",
    "million": "1000000", "billion": "1000000000", "third": "3rd", "fourth": "4th", "fifth": "5th",
    "half": "1/2", "twice": "x2", "double": "x2", "triple": "x3",
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
              "wouldn't", "wouldnt", "couldn't", "couldnt", "mustn't", "mustnt", "absence", "lack", "lacks"}
# Words that point in opposite directions, by stem: a question about one is not the other's question.
_OPPOSITES = [
    ("activat", "deactivat"), ("enabl", "disabl"), ("lock", "unlock"), ("block", "unblock"),
    ("freez", "unfreez"), ("subscrib", "unsubscrib"), ("deposit", "withdraw"), ("buy", "sell"),
    ("send", "receiv"), ("incoming", "outgoing"), ("increas", "decreas"),
    ("upgrad", "downgrad"), ("maximum", "minimum"), ("import", "export"), ("login", "logout"),
    ("credit", "debit"), ("earliest", "latest"), ("domestic", "international"), ("physical", "virtual"),
]
_STEM_ALIASES = {"sent": "send"}
_STEMS = sorted({stem for pair in _OPPOSITES for stem in pair}, key=len, reverse=True)
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


_NEGATION_BASE = {"can't": "can", "cant": "can", "cannot": "can", "won't": "will", "wont": "will"}


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
    # The words with negations removed or undone ("can't" -> "can"), to see whether negation is all that differs.
    affirmative: frozenset[str]
    directions: frozenset[str]


def _is_negation(word: str) -> bool:
    return word in _NEGATIONS or word.endswith("n't") or word.startswith("non-")


def _affirmative(words: Sequence[str]) -> frozenset[str]:
    kept = set()
    for word in words:
        if word in _NEGATION_BASE:
            kept.add(_NEGATION_BASE[word])
        elif word.endswith("n't"):
            kept.add(word[:-3])
        elif word.startswith("non-"):
            kept.add(word[4:])
        elif word not in _NEGATIONS:
            kept.add(word)
    return frozenset(kept)


def _directions(words: Sequence[str]) -> frozenset[str]:
    found = set()
    for word in words:
        if word in _STEM_ALIASES:
            found.add(_STEM_ALIASES[word])
            continue
        for stem in _STEMS:
            if word.startswith(stem):
                found.add(stem)
                break
    return frozenset(found)


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
    letters = [ch for ch in text if ch.isalpha()]
    shouting = bool(letters) and sum(ch.isupper() for ch in letters) > len(letters) / 2
    for match in re.finditer(r"[^\W\d_][\w'\u2019-]*|[.!?]+", text):
        word = match.group(0)
        if word[0] in ".!?":
            sentence_start = True
            continue
        if not sentence_start and word[0].isupper() and not word.isupper() and word.casefold() not in _NOT_NAMES:
            found.add(word.casefold())
        elif not sentence_start and not shouting and word.isupper() and len(word) > 1 \
                and word.casefold() not in _NOT_NAMES:
            found.add(word.casefold())  # acronyms: product codes, places
        sentence_start = False
    return frozenset(found)


@lru_cache(maxsize=65_536)
def features(text: str) -> Features:
    words = tokens(text)
    return Features(numbers=_numbers(words), dates=_dates(words), names=_names(text),
                    negated=any(_is_negation(w) for w in words), words=frozenset(words),
                    affirmative=_affirmative(words), directions=_directions(words))


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
    """The first detail in which the two questions differ, or None when the candidate may answer.

    Numbers and dates are compared one way: an entry that names one the query lacks was about something
    specific (another order, last week's transfer) and is refused; a query more specific than a general
    entry ("can I send 5000 euros?" against "can I send money?") may take the general answer.
    """
    a, b = features(query), features(candidate)
    if guards.numbers and b.numbers - a.numbers:
        return "numbers"
    if guards.dates and b.dates - a.dates:
        return "dates"
    # A name differs only when each question has one the other lacks (a substitution: "Sarah" for "John");
    # a paraphrase may drop or add a name, and writes some names differently ("Hugging Face", "Huggingface").
    if guards.names and _unmatched(a.names, b.words) and _unmatched(b.names, a.words):
        return "names"
    # Negation flips the question only when it is what differs: "I can log in" / "I can't log in". A
    # complaint phrased with "not" ("my card has not arrived") is not the opposite of "where is my card".
    if guards.negation and a.negated != b.negated and _overlap(a.affirmative, b.affirmative) >= 0.6:
        return "negation"
    if guards.opposites:
        only_a, only_b = a.directions - b.directions, b.directions - a.directions
        for stem in only_a:
            if _OPPOSITE_OF[stem] & only_b:
                return "opposites"
    return None


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def _unmatched(names: frozenset[str], words: frozenset[str]) -> set[str]:
    bare = {word.replace("'", "") for word in words}
    return {name for name in names if name.replace("'", "") not in bare
            and not any(len(word) >= 3 and (name in word or word in name) for word in bare)}


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
