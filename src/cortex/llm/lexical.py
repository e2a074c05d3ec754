"""Language-neutral word matching for the offline responder: normalisation, light stemming, idf coverage.

What PostgreSQL's `simple` configuration does (lower-case words, no dictionary), plus what Arabic needs
to match at all: diacritics and tatweel dropped, the alef/hamza forms, taa marbuta/haa and alef
maqsura/yaa folded, Eastern Arabic digits read as digits, and each word also tried without its
conjunction, article, preposition or a common suffix (light stemming, in the manner of Larkey's
light10). English words are also tried without a plural or verb ending. A word matches a document
when any of its forms is among the document's forms, so a stem never has to be exactly right.

An FAQ set is small (5 to a few thousand entries), so the index lives in memory, built once per agent
configuration.
"""

# ruff: noqa: RUF001, RUF002  (Arabic letters here are Arabic, not look-alikes of Latin ones)
from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

# A word is a run of Arabic-script or of other word characters: "وApple" is "و" and "Apple".
_WORD = re.compile("[\u0621-\u064a\u0660-\u0669\u0671-\u06d3\u06f0-\u06f9]+|[^\\W\u0600-\u06ff]+")
_ARABIC_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")  # harakat, tatweel
_ARABIC_FOLD = str.maketrans({
    "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ؤ": "و", "ئ": "ي", "ى": "ي", "ة": "ه", "ک": "ك", "ی": "ي",
    **{chr(0x0660 + d): str(d) for d in range(10)}, **{chr(0x06F0 + d): str(d) for d in range(10)},
})
_ARABIC_LETTER = re.compile("[\u0621-\u064a]")

# Function words that say nothing about the topic of a question (written as normalise() leaves them).
# An FAQ set is too small for idf alone to discount them: in five FAQs "you" is as rare as "refund".
STOP_WORDS = frozenset("""
a an the is are am was were be been being do does did done doing have has had having i me my mine myself
you your yours we us our ours they them their it its he she him her his this that these those there here
what which who whom whose when where why how can could would should shall will may might must of in on at
to for from by with about into over under as and or but if then so than too very just also any some no
not yes please pls thanks thank hi hello hey dear ok okay want wanted need like know tell let get got
still again ever already much many more most really one ones thing something anything whether
ما ماذا هي هو هم هن هما هل في فيه فيها من مين على علي عن الي الى انا انت انتي انتم انتو احنا نحن هذا
هذه هذي ده دي دا دول ذلك تلك التي الذي اللي الذين او ام ثم لدي لديكم لديك عند عندي عندك عندكم عندنا
يمكن يمكنني يمكنك ممكن اريد اود عايز عاوزه عاوز عايزه ايه ازاي امتي امتى فين ليه كام كم كيف متي
متى اين لماذا يا يعني طيب شكرا لو بس كده كدا حاجه اي ايوه لا مش عايزين عاوزين اعرف
مع كل بعد قبل انه ان اني انك هناك هنا لكم لي لك له لها
بتاع بتاعه بتاعي بتاعك بتاعكم بتاعنا بتاعهم بتاعت بتاعتي بتاعتك بتاعتكم بتاعتنا بتاعتهم بتوع بتوعكم
""".split())

_AR_CONJUNCTIONS = ("و", "ف")
_AR_ARTICLES = ("وال", "فال", "بال", "كال", "لل", "ال")
_AR_PREPOSITIONS = ("ب", "ل", "ك")
_AR_VERB_PERSONS = "اتني"  # I, you/she, we, he: the imperfect's prefixes
_AR_SUFFIXES = ("هما", "كم", "هم", "ها", "نا", "ان", "ات", "ون", "ين", "يه", "وا", "ه", "ي", "ك")
_EN_SUFFIXES = (("ies", "y"), ("ied", "y"), ("ing", ""), ("ment", ""), ("ers", ""), ("er", ""), ("ed", ""),
                ("es", ""), ("s", ""), ("ly", ""), ("y", ""))


def normalise(text: str) -> str:
    """Case, compatibility forms, Arabic diacritics, tatweel and letter variants folded."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _ARABIC_MARKS.sub("", text).translate(_ARABIC_FOLD)


def _arabic_forms(word: str) -> set[str]:
    """The word and the stems left by stripping a conjunction, then an article or a preposition, or a
    verb's person/tense prefix (Egyptian ب / ه before it), then one suffix. The word as written is kept,
    so a word whose first letters only look like a prefix still matches itself; stems are at least three
    letters, since two-letter ones collide."""
    bases = {word}
    if word[0] in _AR_CONJUNCTIONS and len(word) > 3:
        bases.add(word[1:])
    stems = set(bases)
    for base in bases:
        for strip in (_strip_article_or_preposition, _strip_verb_prefix):
            stripped = strip(base)
            if stripped is not None:
                stems.add(stripped)
    forms = set(stems)
    for stem in stems:
        stripped = _strip_suffix(stem)
        if stripped is not None:
            forms.add(stripped)
        if len(stem) == 5 and stem[0] == "ت" and stem[3] == "ي":  # the verbal noun تفعيل: تحويل → حول
            forms.add(stem[1:3] + stem[4])
    for form in list(forms):
        skeleton = _skeleton(form)
        if skeleton is not None:
            forms.add(skeleton)
    return {f for f in forms if (f == word or len(f) >= 3) and len(f) >= 2 and f not in STOP_WORDS}


def _strip_article_or_preposition(word: str) -> str | None:
    for article in _AR_ARTICLES:
        if word.startswith(article) and len(word) - len(article) >= 2:
            return word[len(article):]
    return word[1:] if word[0] in _AR_PREPOSITIONS and len(word) > 3 else None


def _strip_verb_prefix(word: str) -> str | None:
    if word.startswith("ال"):
        return None
    if len(word) > 4 and word[0] in "به" and word[1] in _AR_VERB_PERSONS:
        return word[2:]
    return word[1:] if len(word) > 3 and word[0] in _AR_VERB_PERSONS else None


def _skeleton(word: str) -> str | None:
    """The word without its inner long vowels (ا و ي): a pattern's vowels differ between forms of one
    root (ارجع / ارجاع, مواعيد / ميعاد) where its consonants do not."""
    if len(word) < 4:
        return None
    inner = "".join(ch for ch in word[1:-1] if ch not in "اوي")
    skeleton = word[0] + inner + word[-1]
    return skeleton if len(skeleton) >= 3 and skeleton != word else None


def _strip_suffix(word: str) -> str | None:
    for suffix in _AR_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            return word[: -len(suffix)]
    return None


def _english_forms(word: str) -> set[str]:
    forms = {word}
    for suffix, replacement in _EN_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)] + replacement
            forms.add(stem)
            if len(stem) >= 4 and stem[-1] == stem[-2]:  # shipping → ship (and shipp, for calling → call)
                forms.add(stem[:-1])
            break
    return forms


def word_forms(word: str) -> set[str]:
    """The forms a normalised word may match in: itself and its light stems, without function words."""
    if word in STOP_WORDS:
        return set()
    if _ARABIC_LETTER.match(word):
        return _arabic_forms(word)
    return _english_forms(word)


def words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


@dataclass(frozen=True)
class Document:
    """One matchable entry: the forms of the words of each of its fields (an FAQ has a question and an
    answer)."""

    forms: tuple[frozenset[str], ...]

    @classmethod
    def of(cls, *texts: str) -> Document:
        return cls(tuple(frozenset(f for w in words(t) for f in word_forms(w)) for t in texts))


@dataclass
class LexicalIndex:
    """Documents and, per form, the documents that hold it (in any field)."""

    documents: Sequence[Document]
    postings: dict[str, set[int]] = field(default_factory=dict)

    @classmethod
    def build(cls, documents: Sequence[Document]) -> LexicalIndex:
        postings: dict[str, set[int]] = defaultdict(set)
        for i, doc in enumerate(documents):
            for forms in doc.forms:
                for form in forms:
                    postings[form].add(i)
        return cls(documents, dict(postings))

    def idf(self, holders: int) -> float:
        n = len(self.documents)
        return math.log(1 + (n - holders + 0.5) / (holders + 0.5))

    def coverage(self, query: str, field_weights: Sequence[float], stem_weight: float = 1.0) -> list[float]:
        """Per document, the share of the query's information (idf mass of its content words) found in
        it, each word counted in the best-weighted field that holds one of its forms (with the idf of the
        word itself where the field holds it, else the stems' idf times `stem_weight`). A word no document
        holds counts fully against every document: a question about something the FAQs never mention
        does not match an FAQ for sharing its filler words."""
        scores = [0.0] * len(self.documents)
        total = 0.0
        seen: set[str] = set()
        for word in words(query):
            if word in seen:
                continue
            seen.add(word)
            forms = word_forms(word)
            if not forms:
                continue
            # The word as written (or a form of it, "callers") is rarer evidence than a stem ("call"):
            # documents holding it get its own idf, documents holding only a stem the stems' idf.
            exact = self.postings.get(word, set())
            holders: set[int] = set(exact)
            for form in forms:
                holders |= self.postings.get(form, set())
            if not holders:
                total += self.idf(0)
                continue
            exact_weight = self.idf(len(exact)) if exact else 0.0
            stem_only_weight = self.idf(len(holders)) * stem_weight
            total += max(exact_weight, self.idf(len(holders)))
            for i in holders:
                doc = self.documents[i]
                scores[i] += max(
                    field_weight * (exact_weight if word in field_forms else stem_only_weight)
                    for field_weight, field_forms in zip(field_weights, doc.forms, strict=False)
                    if forms & field_forms)
        return [s / total for s in scores] if total > 0 else scores


def mostly_latin(text: str) -> bool:
    """Whether most letters are Latin: MiniLM (trained on English) reads nothing else."""
    letters = [ch for ch in text if ch.isalpha()]
    return not letters or sum(ch < "\u0250" for ch in letters) * 2 >= len(letters)
