"""A worker's in-process copy of one agent scope's entries: exact-match dict plus a numpy matrix.

Entries live in PostgreSQL. Each worker keeps the scopes it serves in memory and checks two counters
in the shared cache backend before every lookup: `add` (entries were stored: fetch the rows added
since) and `del` (entries were deleted or flushed: reload the scope). Both counters are bumped after
the database commit, so a worker that reads them first and queries second never misses a write. A
worker that stored an entry itself appends it at once (`SemanticCache.store`), with no fetch at all.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from cortex.cache.guards import normalize

DIMENSIONS = 384


@dataclass(frozen=True)
class ScopeKey:
    company_id: uuid.UUID
    agent_id: uuid.UUID
    config_version: int
    knowledge_version: int


@dataclass(frozen=True)
class Row:
    id: uuid.UUID
    seq: int
    question: str
    normalized: str
    answer: str
    origin: str
    vector: np.ndarray
    expires_at: float  # epoch seconds; inf when it never expires


@dataclass(frozen=True)
class Candidate:
    entry_id: uuid.UUID
    question: str
    answer: str
    origin: str
    similarity: float


@dataclass
class ScopeIndex:
    key: ScopeKey
    add_version: bytes | None = None
    del_version: bytes | None = None
    max_seq: int = 0
    ids: list[uuid.UUID] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    expires: list[float] = field(default_factory=list)
    position_of: dict[uuid.UUID, int] = field(default_factory=dict)
    seq_of: dict[uuid.UUID, int] = field(default_factory=dict)
    exact: dict[str, int] = field(default_factory=dict)
    _matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, DIMENSIONS), dtype=np.float32))
    _rows: int = 0

    def __len__(self) -> int:
        return self._rows

    def add(self, rows: list[Row]) -> None:
        """Insert or replace rows (an upsert elsewhere arrives again with a new seq)."""
        fresh = [row for row in rows if row.id not in self.position_of]
        needed = self._rows + len(fresh)
        if needed > self._matrix.shape[0]:
            grown = np.zeros((max(needed, self._matrix.shape[0] * 2, 64), DIMENSIONS), dtype=np.float32)
            grown[: self._rows] = self._matrix[: self._rows]
            self._matrix = grown
        for row in rows:
            self.max_seq = max(self.max_seq, row.seq)
            self.seq_of[row.id] = row.seq
            position = self.position_of.get(row.id)
            if position is None:
                position = self._rows
                self._rows += 1
                self.position_of[row.id] = position
                self.ids.append(row.id)
                self.questions.append(row.question)
                self.answers.append(row.answer)
                self.origins.append(row.origin)
                self.expires.append(row.expires_at)
            else:
                old = self.questions[position]
                if self.exact.get(normalize(old)) == position:
                    del self.exact[normalize(old)]
                self.questions[position] = row.question
                self.answers[position] = row.answer
                self.origins[position] = row.origin
                self.expires[position] = row.expires_at
            self._matrix[position] = row.vector
            # A warmed pair wins the exact match over a generated one: the company wrote it.
            current = self.exact.get(row.normalized)
            if current is None or row.origin == "warmed" or self.origins[current] != "warmed":
                self.exact[row.normalized] = position

    def has(self, entry_id: uuid.UUID, seq: int) -> bool:
        """Whether this copy holds the entry as of sequence number `seq` (an upsert gives it a new one)."""
        return self.seq_of.get(entry_id) == seq

    def live(self, position: int, now: float) -> bool:
        return self.expires[position] > now

    def exact_match(self, normalized: str, now: float) -> Candidate | None:
        position = self.exact.get(normalized)
        if position is None or not self.live(position, now):
            return None
        return self._candidate(position, 1.0)

    def nearest(self, vector: np.ndarray, k: int, now: float) -> list[Candidate]:
        if self._rows == 0:
            return []
        scores = self._matrix[: self._rows] @ vector
        k = min(k, self._rows)
        top = np.argpartition(-scores, k - 1)[:k] if k < self._rows else np.arange(self._rows)
        ordered = top[np.argsort(-scores[top])]
        return [self._candidate(int(i), float(scores[i])) for i in ordered if self.live(int(i), now)]

    def _candidate(self, position: int, similarity: float) -> Candidate:
        return Candidate(self.ids[position], self.questions[position], self.answers[position],
                         self.origins[position], similarity)


def epoch(value: object) -> float:
    """A timestamp column as epoch seconds (None: never expires)."""
    if value is None:
        return math.inf
    return float(value.timestamp())  # type: ignore[attr-defined]


def now() -> float:
    return time.time()
