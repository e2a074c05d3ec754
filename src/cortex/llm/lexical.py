"""Language-neutral word matching for the offline responder: normalisation, light stemming, idf coverage.

What PostgreSQL's `simple` configuration does (lower-case words, no dictionary), plus what Arabic needs
to match at all: diacritics and tatweel dropped, the alef/hamza forms, taa marbuta/haa and alef
maqsura/yaa folded, Eastern Arabic digits read as digits, and each word also tried without its
conjunction, article, preposition, verb prefix, participle prefix, Egyptian negation or a common
suffix, and as its skeleton without inner long vowels (light stemming, in the manner of Larkey's
light10). English words are also tried without a plural or verb ending and as their Porter2 stem
(Snowball). A word matches a document when any of its forms is among the document's forms, so a stem
never has to be exactly right. Words and phrases of one concept (`cortex.llm.synonyms`) match each
other at a lower weight, and an Arabic word no document holds is tried as a loanword against the Latin
words of documents written in Arabic (`sound_key`).

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
from functools import lru_cache
from itertools import pairwise

import snowballstemmer

from cortex.llm.synonyms import CONCEPTS

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
s t m d ll re ve able possible way
ما ماذا هي هو هم هن هما هل في فيه فيها من مين على علي عن الي الى انا انت انتي انتم انتو احنا نحن هذا
هذه هذي ده دي دا دول ذلك تلك التي الذي اللي الذين او ام ثم لدي لديكم لديك عند عندي عندك عندكم عندنا
يمكن يمكنني يمكنك ممكن اريد اود عايز عاوزه عاوز عايزه ايه ازاي امتي امتى فين ليه كام كم كيف متي
متى اين لماذا يا يعني طيب شكرا لو بس كده كدا حاجه اي ايوه لا مش عايزين عاوزين اعرف
مع كل بعد قبل انه ان اني انك هناك هنا لكم لي لك له لها
ينفع اقدر تقدر نقدر يقدر محتاج محتاجه محتاجين لازم حضرتك حضرتكم عشان علشان بقي برضه برضو كمان لسه
خلاص اه هو هي اللي الي ايش شو
بتاع بتاعه بتاعي بتاعك بتاعكم بتاعنا بتاعهم بتاعت بتاعتي بتاعتك بتاعتكم بتاعتنا بتاعتهم بتوع بتوعكم
""".split())

_AR_CONJUNCTIONS = ("و", "ف")
_AR_ARTICLES = ("وال", "فال", "بال", "كال", "لل", "ال")
_AR_PREPOSITIONS = ("ب", "ل", "ك")
_AR_VERB_PERSONS = "اتني"  # I, you/she, we, he: the imperfect's prefixes
_AR_SUFFIXES = ("هما", "كم", "هم", "ها", "نا", "ان", "ات", "ون", "ين", "يه", "وا", "ه", "ي", "ك",
                # Egyptian: a preposition with its pronoun written onto the verb (تحجزلي, ابعتلك)
                "لي", "لك", "له", "لنا", "لكم")
_EN_SUFFIXES = (("ies", "y"), ("ied", "y"), ("ing", ""), ("ment", ""), ("ers", ""), ("er", ""), ("ed", ""),
                ("es", ""), ("s", ""), ("ly", ""), ("y", ""))
_PORTER2 = snowballstemmer.stemmer("english")


def normalise(text: str) -> str:
    """Case, compatibility forms, Arabic diacritics, tatweel and letter variants folded."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _ARABIC_MARKS.sub("", text).translate(_ARABIC_FOLD)


def _arabic_candidates(word: str) -> set[str]:
    """The word and the stems left by stripping a conjunction, then an article or a preposition, or a
    verb's person/tense prefix (Egyptian ب / ه / ح before it), or the participle's م, or the Egyptian
    negation ما...ش around a verb; then one suffix; then the word's skeleton (see `_skeleton`). The
    word as written is among them, so a word whose first letters only look like a prefix still matches
    itself. Unfiltered: `word_forms` drops the short ones, which collide."""
    bases = {word}
    if word[0] in _AR_CONJUNCTIONS and len(word) > 3:
        bases.add(word[1:])
    for base in list(bases):
        if len(base) >= 5 and base[0] == "م" and base[-1] == "ش":  # مبيشتغلش → بيشتغل
            bases.add(base[1:-1])
    stems = set(bases)
    for base in bases:
        for strip in (_strip_article_or_preposition, _strip_verb_prefix):
            stripped = strip(base)
            if stripped is not None:
                stems.add(stripped)
    for stem in list(stems):
        if len(stem) >= 5 and stem[0] == "م":  # the participles مفاعل / مفعول: مسافر → سافر → سفر
            stems.add(stem[1:])
    forms = set(stems)
    for stem in stems:
        forms.update(_strip_suffixes(stem))
        if len(stem) == 5 and stem[0] == "ت" and stem[3] == "ي":  # the verbal noun تفعيل: تحويل → حول
            forms.add(stem[1:3] + stem[4])
    for form in list(forms):
        skeleton = _skeleton(form)
        if skeleton is not None:
            forms.add(skeleton)
            if len(skeleton) >= 4 and skeleton[-1] == skeleton[-2]:  # a doubled root: استردد → استرد
                forms.add(skeleton[:-1])
    return forms


def _arabic_forms(word: str) -> set[str]:
    return {f for f in _arabic_candidates(word) if (f == word or len(f) >= 3) and len(f) >= 2 and f not in STOP_WORDS}


def _strip_article_or_preposition(word: str) -> str | None:
    for article in _AR_ARTICLES:
        if word.startswith(article) and len(word) - len(article) >= 2:
            return word[len(article):]
    return word[1:] if word[0] in _AR_PREPOSITIONS and len(word) > 3 else None


def _strip_verb_prefix(word: str) -> str | None:
    if word.startswith("ال"):
        return None
    if len(word) > 4 and word[0] in "بهح" and word[1] in _AR_VERB_PERSONS:
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


def _strip_suffixes(word: str) -> set[str]:
    """Every stem left by one suffix (a word ending in ها also ends in ا's neighbour ه: both are tried)."""
    return {word[: -len(suffix)] for suffix in _AR_SUFFIXES
            if word.endswith(suffix) and len(word) - len(suffix) >= 2}


def _english_forms(word: str) -> set[str]:
    """The word, a light stem (its plural or verb ending off) and its Porter2 stem (Snowball), which
    also folds derivations (activation / activate, installation / install)."""
    forms = {word}
    for suffix, replacement in _EN_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)] + replacement
            forms.add(stem)
            if len(stem) >= 4 and stem[-1] == stem[-2]:  # shipping → ship (and shipp, for calling → call)
                forms.add(stem[:-1])
            break
    if word.isalpha() and len(word) > 3:
        stem = _PORTER2.stemWord(word)
        if len(stem) >= 3:
            forms.add(stem)
    return forms


@lru_cache(maxsize=65536)
def _candidates(word: str) -> frozenset[str]:
    return frozenset(_arabic_candidates(word) if _ARABIC_LETTER.match(word) else _english_forms(word))


@lru_cache(maxsize=65536)
def word_forms(word: str) -> frozenset[str]:
    """The forms a normalised word may match in: itself, its light stems and the concepts
    (`cortex.llm.synonyms`) any of them names, without function words."""
    if word in STOP_WORDS:
        return frozenset()
    candidates = _candidates(word)
    concepts = {c for form in candidates | {word} for c in _WORD_CONCEPTS.get(form, ())}
    if not concepts and _ARABIC_LETTER.match(word) and 4 <= len(word) <= 5 and word[0] in "وفبلك" \
            and word[1:] in STOP_WORDS:  # a function word with a proclitic: لفين, وكمان
        return frozenset()
    forms = _arabic_forms(word) if _ARABIC_LETTER.match(word) else candidates
    return frozenset(forms | concepts)


def _concept_id(name: str, entry: str) -> str:
    # Kept apart per script (see cortex.llm.synonyms): "~cancel" and "~cancel:ar".
    return f"~{name}:ar" if _ARABIC_LETTER.search(entry) else f"~{name}"


def _build_lexicon() -> tuple[dict[str, tuple[str, ...]], dict[tuple[str, ...], str]]:
    single: dict[str, set[str]] = defaultdict(set)
    phrases: dict[tuple[str, ...], str] = {}
    for name, entries in CONCEPTS.items():
        for entry in entries:
            tokens = tuple(_WORD.findall(normalise(entry)))
            if len(tokens) == 1:
                single[tokens[0]].add(_concept_id(name, entry))
            elif tokens:
                phrases[tokens] = _concept_id(name, entry)
    return {w: tuple(sorted(c)) for w, c in single.items()}, phrases


_WORD_CONCEPTS, _PHRASES = _build_lexicon()
_PHRASE_FIRST: dict[str, list[tuple[str, ...]]] = defaultdict(list)
for _phrase in sorted(_PHRASES, key=len, reverse=True):
    _PHRASE_FIRST[_phrase[0]].append(_phrase)


def _token_is(token: str, expected: str) -> bool:
    return token == expected or expected in _candidates(token)


def words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


def terms(text: str, keep_phrase_words: bool = False) -> list[str]:
    """The words of a text, with each phrase of the lexicon ("top up", "كلمة السر") read as its concept
    token. A query's phrase becomes the concept alone (its words are one piece of information); a
    document keeps the words as well, so that either is found in it."""
    tokens = words(text)
    found: list[str] = []
    i = 0
    while i < len(tokens):
        for phrase in _candidate_phrases(tokens[i]):
            if i + len(phrase) <= len(tokens) and all(
                    _token_is(t, p) for t, p in zip(tokens[i:i + len(phrase)], phrase, strict=True)):
                found.append(_PHRASES[phrase])
                if keep_phrase_words:
                    found.extend(tokens[i:i + len(phrase)])
                i += len(phrase)
                break
        else:
            found.append(tokens[i])
            i += 1
    return found


def _candidate_phrases(token: str) -> list[tuple[str, ...]]:
    if not _PHRASE_FIRST:
        return []
    heads = {token} | (_candidates(token) if token not in STOP_WORDS else set())
    return sorted({p for head in heads for p in _PHRASE_FIRST.get(head, ())}, key=len, reverse=True)


# Loanwords written in Arabic letters ("أبل باي", "راوتر") against the Latin original in an Arabic FAQ
# ("نقبل ... وApple Pay"): both read as a rough consonant key, vowels and vowel letters dropped, letters
# that sound alike (p / b, v / f, c / k / q, s / z) made one.
_LATIN_DIGRAPHS = (("sh", "S"), ("ch", "S"), ("ph", "f"), ("th", "t"), ("ck", "k"), ("kh", "k"), ("gh", "g"))
_SOUND = str.maketrans({
    **dict.fromkeys("aeiouyhw", ""), "p": "b", "v": "f", "c": "k", "q": "k", "z": "s", "j": "g", "x": "ks",
    **dict.fromkeys("اويءهعح", ""), "ب": "b", "پ": "b", "ت": "t", "ث": "t", "ط": "t", "د": "d", "ذ": "d",
    "ض": "d", "ظ": "s", "س": "s", "ص": "s", "ز": "s", "ش": "S", "ك": "k", "ق": "k", "خ": "k", "ج": "g",
    "غ": "g", "ف": "f", "ڤ": "f", "ل": "l", "م": "m", "ن": "n", "ر": "r",
})


def sound_key(word: str) -> str:
    """A word's consonants as they sound, in one alphabet for Latin and Arabic script; digits and
    other characters are dropped, and a run of one consonant is one."""
    for digraph, sound in _LATIN_DIGRAPHS:
        word = word.replace(digraph, sound)
    key = "".join(ch for ch in word.translate(_SOUND) if ch.isascii() and ch.isalpha())
    return "".join(ch for i, ch in enumerate(key) if i == 0 or ch != key[i - 1])


def _loanword_forms(text: str) -> set[str]:
    """The sound keys of a text's Latin words and adjacent pairs of them, of at least three consonants
    (fewer collide)."""
    singles = [sound_key(w) for w in words(text) if not _ARABIC_LETTER.match(w)]
    keys = {k for k in singles if len(k) >= 3} | {a + b for a, b in pairwise(singles) if len(a + b) >= 3}
    return {"#" + k for k in keys}


@dataclass(frozen=True)
class Document:
    """One matchable entry: the forms of the words of each of its fields (an FAQ has a question and an
    answer)."""

    forms: tuple[frozenset[str], ...]

    @classmethod
    def of(cls, *texts: str) -> Document:
        # Loanwords only in a document mostly in another script, where a customer writes them in it too.
        foreign = not mostly_latin(" ".join(texts))
        return cls(tuple(frozenset({f for w in terms(t, keep_phrase_words=True) for f in _forms(w)}
                                   | (_loanword_forms(t) if foreign else set())) for t in texts))


def _forms(term: str) -> frozenset[str]:
    return frozenset({term}) if term.startswith("~") else word_forms(term)


@dataclass
class LexicalIndex:
    """Documents and, per form, the documents that hold it (in any field)."""

    documents: Sequence[Document]
    postings: dict[str, set[int]] = field(default_factory=dict)
    loanwords: bool = False  # whether any document holds a loanword's sound key

    @classmethod
    def build(cls, documents: Sequence[Document]) -> LexicalIndex:
        postings: dict[str, set[int]] = defaultdict(set)
        for i, doc in enumerate(documents):
            for forms in doc.forms:
                for form in forms:
                    postings[form].add(i)
        return cls(documents, dict(postings), any(form.startswith("#") for form in postings))

    def _held(self, forms: frozenset[str]) -> bool:
        return any(f in self.postings for f in forms)

    def _units(self, query: str) -> list[tuple[str, frozenset[str]]]:
        """The query's terms with their forms; an Arabic word no document holds is tried as a loanword
        (its sound key, or that of it and the next such word: "أبل باي" for "Apple Pay")."""
        units = [(t, _forms(t)) for t in terms(query)]
        if not self.loanwords:
            return units
        unknown = [bool(f) and bool(_ARABIC_LETTER.match(t)) and not self._held(f) for t, f in units]
        found: list[tuple[str, frozenset[str]]] = []
        i = 0
        while i < len(units):
            term, forms = units[i]
            if unknown[i]:
                key = sound_key(term)
                if i + 1 < len(units) and unknown[i + 1]:
                    pair = "#" + key + sound_key(units[i + 1][0])
                    if pair in self.postings:
                        found.append((term + " " + units[i + 1][0], frozenset({pair})))
                        i += 2
                        continue
                if len(key) >= 3 and "#" + key in self.postings:
                    forms = frozenset({"#" + key})
            found.append((term, forms))
            i += 1
        return found

    def idf(self, holders: int) -> float:
        n = len(self.documents)
        return math.log(1 + (n - holders + 0.5) / (holders + 0.5))

    def coverage(self, query: str, field_weights: Sequence[float], stem_weight: float = 1.0,
                 synonym_weight: float | None = None, unknown_weight: float = 1.0) -> list[float]:
        """Per document, the share of the query's information (idf mass of its content words) found in
        it, each word counted in the best-weighted field that holds one of its forms (with the idf of the
        word itself where the field holds it, else the stems' idf times `stem_weight`, or times
        `synonym_weight` where only a concept of the word's is there). A word no document holds counts
        against every document (its idf times `unknown_weight`): a question about something the FAQs
        never mention does not match an FAQ for sharing its filler words."""
        synonym_weight = stem_weight if synonym_weight is None else synonym_weight
        scores = [0.0] * len(self.documents)
        total = 0.0
        seen: set[str] = set()
        for word, forms in self._units(query):
            if word in seen or not forms:
                continue
            seen.add(word)
            # The word as written (or a form of it, "callers") is rarer evidence than a stem ("call"):
            # documents holding it get its own idf, documents holding only a stem the stems' idf.
            exact = self.postings.get(word, set())
            holders: set[int] = set(exact)
            for form in forms:
                holders |= self.postings.get(form, set())
            if not holders:
                total += self.idf(0) * unknown_weight
                continue
            exact_weight = self.idf(len(exact)) if exact else 0.0
            shared = self.idf(len(holders))
            stems = {f for f in forms if not f.startswith("~")}
            total += max(exact_weight, shared)
            for i in holders:
                best = 0.0
                for field_weight, field_forms in zip(field_weights, self.documents[i].forms, strict=False):
                    if word in field_forms:
                        weight = exact_weight
                    elif stems & field_forms:
                        weight = shared * stem_weight
                    elif forms & field_forms:
                        weight = shared * synonym_weight
                    else:
                        continue
                    best = max(best, field_weight * weight)
                scores[i] += best
        return [s / total for s in scores] if total > 0 else scores


def mostly_latin(text: str) -> bool:
    """Whether most letters are Latin: MiniLM (trained on English) reads nothing else."""
    letters = [ch for ch in text if ch.isalpha()]
    return not letters or sum(ch < "\u0250" for ch in letters) * 2 >= len(letters)
