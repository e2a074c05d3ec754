"""The semantic cache component: lookup for service 05, storing of generated replies, warm, flush, stats.

Scope: an entry answers only within its company and agent, and only while the agent is at the
configuration version (prompt, FAQs, settings, actions) and knowledge version it was made under.
Warmed pairs are written by the company, so they carry knowledge version 0 and survive a knowledge
change; a configuration change (e.g. new FAQs) retires them like generated ones.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from difflib import SequenceMatcher
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, and_, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.agents.schemas import AgentConfig
from cortex.cache import guards
from cortex.cache.guards import ALL_GUARDS, GuardSet, normalize
from cortex.cache.index import Candidate, Row, ScopeIndex, ScopeKey, epoch, now
from cortex.db.models import Agent, Customer, SemanticCacheEntry
from cortex.events import outbox
from cortex.kit.runtime import Runtime
from cortex.memory import repository as memory_repository
from cortex.pipeline.background import BackgroundTasks
from cortex.pipeline.ports import CacheHit, CompletedTurn, HistoryTurn

logger = logging.getLogger(__name__)

INDEX_NAME = "ix_semantic_cache_embedding_hnsw"
EMBEDDING_MODEL = "minilm"  # the model memory and knowledge embed the customer message with: one embedding
# Calibrated on BANKING77 train (80% warmed, 20% held out as queries) by bench/cache_quality.py: precision
# at least 0.97 on the held-out questions, the best hit rate, and of those within a point of it the highest
# threshold (a sparse cache has no neighbours to vote, so the threshold must hold on its own).
DEFAULT_THRESHOLD = 0.71
# Neighbours this close to the nearest entry vote on the answer.
DISAGREEMENT_MARGIN = 0.08
# The share of the close neighbours' votes an answer needs to be served.
VOTE_SHARE = 0.8
TOP_K = 8
# Answers this similar (as text) count as the same answer: an LLM words one reply in several ways.
SAME_ANSWER_RATIO = 0.6
WARMED, GENERATED = "warmed", "generated"
MAX_HOT_SCOPES = 512
HIT_FLUSH_SECONDS = 1.0
MAX_HOT_ROWS = 250_000  # about 370 MB of float32 MiniLM vectors
# How far back (in sequence numbers) a refresh looks for rows committed out of order.
LOOKBACK_SEQS = 1000
# Long messages are not asked twice, and the unique index on the question has a size limit.
MAX_QUESTION_CHARS = 1000


@dataclass(frozen=True)
class Tuning:
    """How a lookup decides; the defaults are the product, the benchmark varies them."""

    threshold: float | None = None  # None: the agent's own, else DEFAULT_THRESHOLD
    guards: GuardSet = ALL_GUARDS
    disagreement_margin: float | None = DISAGREEMENT_MARGIN  # None: no disagreement rule
    vote_share: float = VOTE_SHARE
    exact_first: bool = True


DEFAULT_TUNING = Tuning()


@dataclass
class Decision:
    hit: CacheHit | None
    reason: str  # exact | semantic | never_cache | depends_on_history | empty | below_threshold | guard:<kind> | ...
    candidates: list[Candidate] = field(default_factory=list)


def same_answer(a: str, b: str) -> bool:
    na, nb = normalize(a), normalize(b)
    if na == nb:
        return True
    return SequenceMatcher(None, na.split(), nb.split(), autojunk=False).ratio() >= SAME_ANSWER_RATIO


def _scope_filter(key: ScopeKey) -> Any:
    entry = SemanticCacheEntry
    return and_(
        entry.company_id == key.company_id, entry.agent_id == key.agent_id,
        entry.config_version == key.config_version,
        or_(and_(entry.origin == GENERATED, entry.knowledge_version == key.knowledge_version),
            and_(entry.origin == WARMED, entry.knowledge_version == 0)),
    )


class SemanticCache:
    """Registered as `runtime.components[SEMANTIC_CACHE]`; one per process."""

    available = True

    def __init__(self, runtime: Runtime, *, hot_index: bool = True) -> None:
        self.runtime = runtime
        # False: every lookup asks PostgreSQL's HNSW index (the benchmark compares both).
        self.hot_index = hot_index
        self._scopes: OrderedDict[ScopeKey, ScopeIndex] = OrderedDict()
        self._locks: dict[ScopeKey, asyncio.Lock] = {}
        self.background = BackgroundTasks()
        self._pending_hits: dict[uuid.UUID, int] = {}
        self._flushing = False
        # Scope loads in progress on this worker, per company: what `stats` reports as `indexing`.
        self._loading: Counter[uuid.UUID] = Counter()

    async def aclose(self) -> None:
        await self.background.drain()

    # --- coherence across workers ---------------------------------------------------------------

    @staticmethod
    def _version_key(agent_id: uuid.UUID, kind: str) -> str:
        return f"cortex:semcache:{agent_id}:{kind}"

    async def _changed(self, agent_ids: Sequence[uuid.UUID], *, deleted: bool) -> dict[uuid.UUID, int]:
        """Bump the counters after a commit; returns each agent's new counter value."""
        versions: dict[uuid.UUID, int] = {}
        for agent_id in set(agent_ids):
            versions[agent_id] = await self.runtime.cache.incr(self._version_key(agent_id, "del" if deleted else "add"))
            if deleted:  # this worker drops its copies at once rather than at its next lookup
                for key in [k for k in self._scopes if k.agent_id == agent_id]:
                    self._scopes.pop(key, None)
        return versions

    async def _index(self, key: ScopeKey) -> ScopeIndex:
        cache = self.runtime.cache
        add_version = await cache.get(self._version_key(key.agent_id, "add"))
        del_version = await cache.get(self._version_key(key.agent_id, "del"))
        index = self._scopes.get(key)
        if index is not None and index.add_version == add_version and index.del_version == del_version:
            self._scopes.move_to_end(key)
            return index
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            index = self._scopes.get(key)
            if index is None or index.del_version != del_version:
                index = ScopeIndex(key)
                since = 0
            elif index.add_version != add_version:
                since = index.max_seq
            else:
                return index
            self._loading[key.company_id] += 1
            try:
                if since == 0:
                    index.add(await self._load(key, 0))
                else:
                    index.add(await self._load_added(key, index, since))
            finally:
                self._loading[key.company_id] -= 1
            index.add_version, index.del_version = add_version, del_version
            self._scopes[key] = index
            self._scopes.move_to_end(key)
            # Least recently used scopes go first; a worker's copies stay within a bounded memory.
            while len(self._scopes) > 1 and (len(self._scopes) > MAX_HOT_SCOPES or
                                             sum(len(i) for i in self._scopes.values()) > MAX_HOT_ROWS):
                self._scopes.popitem(last=False)
            return index

    async def _load(self, key: ScopeKey, since_seq: int, *, seqs: Sequence[int] | None = None) -> list[Row]:
        entry = SemanticCacheEntry
        chosen = entry.seq.in_(seqs) if seqs is not None else entry.seq > since_seq
        statement = (select(entry.id, entry.seq, entry.question, entry.normalized_question, entry.answer,
                            entry.origin, entry.embedding, entry.expires_at)
                     .where(_scope_filter(key), chosen,
                            or_(entry.expires_at.is_(None), entry.expires_at > func.now()))
                     .order_by(entry.seq))
        async with self.runtime.database.session() as session:
            result = (await session.execute(statement)).all()
        return [Row(r.id, r.seq, r.question, r.normalized_question, r.answer, r.origin,
                    np.asarray(r.embedding, dtype=np.float32), epoch(r.expires_at)) for r in result]

    async def _load_added(self, key: ScopeKey, index: ScopeIndex, max_seq: int) -> list[Row]:
        """The rows other workers stored since this copy's newest, and only those.

        Sequence numbers are allocated before commit, so a slower transaction can commit a lower one
        after a faster one: look back LOOKBACK_SEQS, but over ids and numbers only, and fetch answers
        and vectors just for the rows this copy does not hold.
        """
        entry = SemanticCacheEntry
        async with self.runtime.database.session() as session:
            recent = (await session.execute(
                select(entry.id, entry.seq).where(_scope_filter(key), entry.seq > max(0, max_seq - LOOKBACK_SEQS))
            )).all()
        missing = [r.seq for r in recent if not index.has(r.id, r.seq)]
        return await self._load(key, 0, seqs=missing) if missing else []

    # --- lookup ---------------------------------------------------------------------------------

    @staticmethod
    def scope_of(agent: AgentConfig) -> ScopeKey:
        return ScopeKey(agent.company_id, agent.id, agent.config_version, agent.knowledge_version)

    async def lookup(self, *, agent: AgentConfig, message: str, history: list[HistoryTurn],
                     customer_id: str) -> CacheHit | None:
        decision = await self.decide(agent=agent, message=message, history=history)
        self.background.spawn(self._record(agent, decision), name="cache-record")
        return decision.hit

    async def decide(self, *, agent: AgentConfig, message: str, history: Sequence[HistoryTurn] = (),
                     vector: np.ndarray | None = None, tuning: Tuning = DEFAULT_TUNING) -> Decision:
        """The whole lookup, with its reason. `vector` lets the benchmark embed in batches."""
        policy = agent.settings.cache
        if guards.never_cache(message, policy.never_cache_patterns):
            return Decision(None, "never_cache")
        if guards.depends_on_history(message, history):
            return Decision(None, "depends_on_history")
        if not normalize(message):
            return Decision(None, "empty")
        exact, candidates = await self.candidates(agent, message, vector, exact_first=tuning.exact_first)
        if exact is not None:
            return Decision(self._hit(exact), "exact", [exact])
        threshold = tuning.threshold or policy.similarity_threshold or DEFAULT_THRESHOLD
        return self.choose(message, candidates, threshold, tuning)

    async def candidates(self, agent: AgentConfig, message: str, vector: np.ndarray | None = None, *,
                         exact_first: bool = True) -> tuple[Candidate | None, list[Candidate]]:
        """The exact match on normalised text if any (then nothing is embedded), else the nearest entries."""
        normalized, scope = normalize(message), self.scope_of(agent)
        if not self.hot_index:
            return await self._database_candidates(scope, message, normalized, vector, exact_first)
        index = await self._index(scope)
        moment = now()
        if exact_first:
            exact = index.exact_match(normalized, moment)
            if exact is not None:
                return exact, []
        if len(index) == 0:
            return None, []
        if vector is None:
            vector = await self.runtime.embedder.embed_query(message, EMBEDDING_MODEL)
        return None, index.nearest(vector, TOP_K, moment)

    async def _database_candidates(self, scope: ScopeKey, message: str, normalized: str,
                                   vector: np.ndarray | None, exact_first: bool,
                                   ) -> tuple[Candidate | None, list[Candidate]]:
        entry = SemanticCacheEntry
        live = or_(entry.expires_at.is_(None), entry.expires_at > func.now())
        columns = (entry.id, entry.question, entry.answer, entry.origin)
        async with self.runtime.database.session() as session:
            if exact_first:
                row = (await session.execute(
                    select(*columns).where(_scope_filter(scope), live, entry.normalized_question == normalized)
                    .order_by(entry.origin.desc()).limit(1))).first()  # "warmed" sorts before "generated"
                if row is not None:
                    return Candidate(row.id, row.question, row.answer, row.origin, 1.0), []
            if vector is None:
                vector = await self.runtime.embedder.embed_query(message, EMBEDDING_MODEL)
            # pgvector >= 0.8: keep scanning the HNSW graph until enough rows pass the scope filter.
            await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            distance = entry.embedding.cosine_distance(vector)
            rows = (await session.execute(select(*columns, distance.label("distance"))
                                          .where(_scope_filter(scope), live).order_by(distance).limit(TOP_K))).all()
        found = [Candidate(r.id, r.question, r.answer, r.origin, 1.0 - float(r.distance)) for r in rows]
        return None, sorted(found, key=lambda c: -c.similarity)

    def choose(self, message: str, candidates: list[Candidate], threshold: float, tuning: Tuning) -> Decision:
        """Decide from the nearest entries (best first).

        The neighbours within `disagreement_margin` of the nearest one, less those a guard sets apart
        (other orders, other dates: other questions), vote for their answers with their similarity. The
        answer holding at least `vote_share` of the votes is served from its nearest entry, if that entry
        is above the threshold; otherwise the neighbours disagree and the lookup misses. With one entry
        per answer (generated replies), any close neighbour with another answer is a disagreement.
        """
        if not candidates or candidates[0].similarity < threshold:
            return Decision(None, "below_threshold", candidates)
        # The nearest entry must pass the guards: when one rejects it, the next one down is no safer.
        kind = guards.conflict(message, candidates[0].question, tuning.guards)
        if kind is not None:
            return Decision(None, f"guard:{kind}", candidates)
        margin = tuning.disagreement_margin
        if margin is None:
            return Decision(self._hit(candidates[0]), "semantic", candidates)
        floor = candidates[0].similarity - margin
        window = [candidates[0]] + [c for c in candidates[1:] if c.similarity >= floor
                                    and guards.conflict(message, c.question, tuning.guards) is None]
        groups: list[list[Candidate]] = []
        for candidate in window:
            group = next((g for g in groups if same_answer(g[0].answer, candidate.answer)), None)
            if group is None:
                groups.append([candidate])
            else:
                group.append(candidate)
        weight = [sum(c.similarity for c in group) for group in groups]
        best = max(range(len(groups)), key=weight.__getitem__)
        chosen = groups[best][0]
        if weight[best] < tuning.vote_share * sum(weight) or chosen.similarity < threshold:
            return Decision(None, "neighbours_disagree", candidates)
        return Decision(self._hit(chosen), "semantic", candidates)

    @staticmethod
    def _hit(candidate: Candidate) -> CacheHit:
        return CacheHit(entry_id=candidate.entry_id, answer=candidate.answer,
                        similarity=round(min(1.0, candidate.similarity), 6), matched_question=candidate.question)

    def _stats_key(self, company_id: uuid.UUID, kind: str) -> str:
        return f"cortex:semcache:stats:{company_id}:{kind}"

    async def _record(self, agent: AgentConfig, decision: Decision) -> None:
        """Counts and hit bookkeeping, off the response path."""
        hit = decision.hit
        await self.runtime.cache.incr(self._stats_key(agent.company_id, "hits" if hit else "misses"))
        if hit is not None:
            # A popular entry would see one UPDATE of the same row per hit; hits are summed and written
            # together, once per HIT_FLUSH_SECONDS.
            self._pending_hits[hit.entry_id] = self._pending_hits.get(hit.entry_id, 0) + 1
            if not self._flushing:
                self._flushing = True
                self.background.spawn(self._flush_hits(), name="cache-hit-counts")

    async def _flush_hits(self) -> None:
        try:
            await asyncio.sleep(HIT_FLUSH_SECONDS)
        finally:
            pending, self._pending_hits, self._flushing = self._pending_hits, {}, False
        if not pending:
            return
        entry = SemanticCacheEntry
        async with self.runtime.database.session() as session:
            for count in set(pending.values()):
                ids = [entry_id for entry_id, n in pending.items() if n == count]
                await session.execute(update(entry).where(entry.id.in_(ids))
                                      .values(hit_count=entry.hit_count + count, last_hit_at=func.now()))

    # --- storing --------------------------------------------------------------------------------

    async def store(self, turn: CompletedTurn) -> None:
        reason = await self.refusal(turn)
        if reason is not None:
            logger.debug("cache: not storing reply %s (%s)", turn.reply_message_id, reason)
            return
        agent = turn.agent
        vector = await self.runtime.embedder.embed_query(turn.message, EMBEDDING_MODEL)
        expires = datetime.now(UTC) + timedelta(seconds=agent.settings.cache.ttl_seconds)
        values = {
            "company_id": turn.company_id, "agent_id": agent.id, "origin": GENERATED,
            "config_version": agent.config_version, "knowledge_version": agent.knowledge_version,
            "question": turn.message, "normalized_question": normalize(turn.message), "answer": turn.reply,
            "embedding": vector, "customer_id": turn.customer_id, "conversation_id": turn.conversation_id,
            "reply_message_id": turn.reply_message_id, "expires_at": expires, "metadata_": {},
        }
        async with self.runtime.database.session() as session:
            # The lock a forget takes: a forget that committed while this reply was being embedded has
            # deleted the turn, and its answer must not come back as the forgotten customer's entry.
            await memory_repository.lock_customer(session, turn.company_id, turn.customer_id)
            if not await memory_repository.message_still_exists(session, turn.company_id, turn.customer_message_id):
                logger.debug("cache: not storing reply %s (the customer was forgotten)", turn.reply_message_id)
                return
            stored = await self._upsert_in(session, [values])
        versions = await self._changed([agent.id], deleted=False)
        self._append_own(self.scope_of(agent), versions[agent.id], [
            Row(entry_id, seq, turn.message, normalize(turn.message), turn.reply, GENERATED,
                np.asarray(vector, dtype=np.float32), epoch(expires)) for entry_id, seq in stored])

    def _append_own(self, key: ScopeKey, add_version: int, rows: list[Row]) -> None:
        """This worker's own store goes straight into its copy of the scope, with no fetch.

        Only when the copy was current just before this store's bump: a bump by another worker in
        between means rows this copy lacks, so it is left for the next lookup to fetch.
        """
        index = self._scopes.get(key)
        if index is not None and index.add_version == str(add_version - 1).encode():
            index.add(rows)
            index.add_version = str(add_version).encode()

    async def refusal(self, turn: CompletedTurn) -> str | None:
        """Why this turn must not be cached, or None. The rules are the cache's own, whatever calls it."""
        policy = turn.agent.settings.cache
        if not policy.enabled:
            return "cache disabled"
        if turn.actions_executed:
            return "a tool ran"
        if turn.memory_fact_ids:
            return "customer memory was used"
        if not turn.reply.strip() or not normalize(turn.message):
            return "empty"
        if len(turn.message) > MAX_QUESTION_CHARS:
            return "too long to be asked again"
        if guards.depends_on_history(turn.message, turn.history):
            return "depends on earlier turns"
        if guards.never_cache(turn.message, policy.never_cache_patterns):
            return "matches a never-cache pattern"
        if await self._mentions_customer(turn):
            return "the reply names the customer"
        return None

    async def _mentions_customer(self, turn: CompletedTurn) -> bool:
        """The prompt carries the customer's profile; a reply that repeats it is theirs alone."""
        async with self.runtime.database.session() as session:
            customer = await session.scalar(select(Customer).where(Customer.company_id == turn.company_id,
                                                                   Customer.customer_id == turn.customer_id))
        values = [turn.customer_id]
        if customer is not None:
            values += [customer.first_name or "", customer.last_name or "", customer.email or "",
                       customer.organization or ""]
        reply = turn.reply.casefold()
        return any(len(v) >= 2 and v.casefold() in reply for v in values)

    async def _upsert(self, rows: list[dict[str, Any]]) -> list[tuple[uuid.UUID, int]]:
        async with self.runtime.database.session() as session:
            return await self._upsert_in(session, rows)

    @staticmethod
    async def _upsert_in(session: AsyncSession, rows: list[dict[str, Any]]) -> list[tuple[uuid.UUID, int]]:
        """Insert or replace; returns each row's (id, seq)."""
        entry = cast(Table, SemanticCacheEntry.__table__)
        written: list[tuple[uuid.UUID, int]] = []
        for start in range(0, len(rows), 1000):
            batch = [{("metadata" if k == "metadata_" else k): v for k, v in row.items()}
                     for row in rows[start:start + 1000]]
            statement = insert(entry).values(batch)
            excluded = statement.excluded
            result = await session.execute(statement.on_conflict_do_update(
                constraint="uq_semantic_cache_scope_question",
                set_={"question": excluded.question, "answer": excluded.answer, "embedding": excluded.embedding,
                      "customer_id": excluded.customer_id, "conversation_id": excluded.conversation_id,
                      "reply_message_id": excluded.reply_message_id, "expires_at": excluded.expires_at,
                      # A fresh sequence number, so workers fetching "rows added since" see the change.
                      "seq": func.nextval(func.pg_get_serial_sequence("semantic_cache_entries", "seq"))},
            ).returning(entry.c.id, entry.c.seq))
            written += [(row.id, row.seq) for row in result]
        return written

    async def warm(self, agent: AgentConfig, pairs: Sequence[tuple[str, str]],
                   vectors: np.ndarray | None = None) -> tuple[int, int]:
        """Stores company-written pairs; returns (stored, errored). A repeated question keeps its last answer.

        `vectors` (one per pair, from the minilm model) spares embedding again what the caller already has.
        """
        usable: dict[str, tuple[str, str, int]] = {}
        errored = 0
        for position, (question, answer) in enumerate(pairs):
            normalized = normalize(question)
            if not normalized or not answer.strip():
                errored += 1
                continue
            usable.pop(normalized, None)  # the last answer wins, in the last position
            usable[normalized] = (question, answer, position)
        stored = len(pairs) - errored
        if not usable:
            return 0, errored
        items = list(usable.items())
        if vectors is None:
            embedded = await self.runtime.embedder.embed([q for _, (q, _, _) in items], EMBEDDING_MODEL)
        else:
            embedded = np.asarray(vectors, dtype=np.float32)[[position for _, (_, _, position) in items]]
        rows = [{
            "company_id": agent.company_id, "agent_id": agent.id, "origin": WARMED,
            "config_version": agent.config_version, "knowledge_version": 0, "question": question,
            "normalized_question": normalized, "answer": answer, "embedding": vector, "customer_id": None,
            "conversation_id": None, "reply_message_id": None, "expires_at": None, "metadata_": {},
        } for (normalized, (question, answer, _)), vector in zip(items, embedded, strict=True)]
        await self._upsert(rows)
        await self._changed([agent.id], deleted=False)
        return stored, errored

    # --- deleting -------------------------------------------------------------------------------

    async def flush(self, company_id: uuid.UUID, agent_id: uuid.UUID | None = None) -> int:
        statement = delete(SemanticCacheEntry).where(SemanticCacheEntry.company_id == company_id)
        if agent_id is not None:
            statement = statement.where(SemanticCacheEntry.agent_id == agent_id)
        return await self._delete(statement, flushed=(company_id, agent_id))

    async def forget_customer(self, *, company_id: uuid.UUID, customer_id: str) -> int:
        return await self._delete(delete(SemanticCacheEntry).where(SemanticCacheEntry.company_id == company_id,
                                                                   SemanticCacheEntry.customer_id == customer_id))

    async def _delete(self, statement: Any, flushed: tuple[uuid.UUID, uuid.UUID | None] | None = None) -> int:
        """`flushed`: (company, agent or None) when this is a flush, which writes its `cache.flushed` event."""
        async with self.runtime.database.session() as session:
            agent_ids = list((await session.scalars(statement.returning(SemanticCacheEntry.agent_id))).all())
            if flushed is not None:
                await outbox.record(session, flushed[0], "cache.flushed",
                                    {"agent_id": flushed[1], "entries_deleted": len(agent_ids)})
        await self._changed(agent_ids, deleted=True)
        return len(agent_ids)

    # --- stats ----------------------------------------------------------------------------------

    async def stats(self, company_id: uuid.UUID) -> dict[str, Any]:
        """What is true now: the company's entries by agent, the PostgreSQL index's state, this worker's
        hot index, and the hit and miss counters of the cache backend."""
        entry = SemanticCacheEntry
        reachable = and_(Agent.config_version == entry.config_version,
                         or_(and_(entry.origin == GENERATED, entry.knowledge_version == Agent.knowledge_version),
                             and_(entry.origin == WARMED, entry.knowledge_version == 0)),
                         or_(entry.expires_at.is_(None), entry.expires_at > func.now()))
        by_agent_statement = (
            select(entry.agent_id, func.count().filter(reachable), func.count())
            .join(Agent, Agent.id == entry.agent_id)
            .where(entry.company_id == company_id).group_by(entry.agent_id).order_by(entry.agent_id))
        index_statement = text("SELECT i.indisvalid AND i.indisready FROM pg_index i "
                               "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :name")
        async with self.runtime.database.session() as session:
            rows = (await session.execute(by_agent_statement)).all()
            index_valid = await session.scalar(index_statement, {"name": INDEX_NAME})
        by_agent = [{"agent_id": agent_id, "num_docs": int(docs), "num_records": int(records)}
                    for agent_id, docs, records in rows]
        hits = int(await self.runtime.cache.get(self._stats_key(company_id, "hits")) or 0)
        misses = int(await self.runtime.cache.get(self._stats_key(company_id, "misses")) or 0)
        loading = self._loading[company_id] > 0
        scopes = [index for key, index in self._scopes.items() if key.company_id == company_id]
        return {
            # pgvector maintains the HNSW index on every insert; it is only unready while being built.
            "status": "missing" if index_valid is None else ("ready" if index_valid else "building"),
            "index_name": INDEX_NAME,
            "num_docs": sum(a["num_docs"] for a in by_agent), "num_records": sum(a["num_records"] for a in by_agent),
            "indexing": loading, "hits": hits, "misses": misses,
            "hit_rate": round(hits / (hits + misses), 4) if hits + misses else 0.0,
            "by_agent": by_agent,
            "hot_index": {"enabled": self.hot_index,
                          "state": "building" if loading else ("complete" if scopes else "empty"),
                          "scopes": len(scopes), "entries": sum(len(index) for index in scopes)},
        }
