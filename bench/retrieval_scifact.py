"""SciFact retrieval through Cortex's real ingestion and retrieval path. Prints one JSON object.

The corpus (5,183 abstracts; title → heading path, abstract → body) is ingested into one knowledge
source with `cortex.knowledge.ingestion.ingest_documents` (chunking, batched MiniLM embedding, chunk
set written to an embedded PostgreSQL with pgvector). The 809 claims with judgements in
qrels/train.tsv are then searched lexical only, dense only and hybrid through `KnowledgeRetriever`,
with the levers measured on the same candidate lists: fusion (plain RRF, weighted RRF, min-max
weighted scores), title weighting in full-text ranking, English/'simple' configurations, and
chunk → document aggregation (fuse chunks then keep each document's best, or aggregate each list to
documents first). Ingestion throughput is compared with a plain sentence-transformers encode of a
sample of the same chunk texts in the same run.

    python bench/retrieval_scifact.py [--docs N] [--queries N] [--baseline-sample 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sqlalchemy import bindparam, text  # noqa: E402
from sqlalchemy.dialects.postgresql import ARRAY, UUID  # noqa: E402

from bench.common import log, percentile  # noqa: E402
from cortex.app import build_runtime, close_runtime  # noqa: E402
from cortex.auth import service as auth  # noqa: E402
from cortex.kit.runtime import Runtime  # noqa: E402
from cortex.knowledge import sources  # noqa: E402
from cortex.knowledge.chunking import Chunk, SourceDocument  # noqa: E402
from cortex.knowledge.ingestion import Progress, chunker_for, ingest_documents  # noqa: E402
from cortex.knowledge.retrieval import KnowledgeRetriever, ScoredChunk, rrf, weighted  # noqa: E402
from cortex.knowledge.schemas import KnowledgeSourceCreate  # noqa: E402
from cortex.settings import Settings  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "scifact"
POOL = 200  # candidates per list for recall@100 after aggregation to documents




def load(limit_docs: int | None) -> tuple[list[dict[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    corpus = [json.loads(line) for line in (DATASET / "corpus.jsonl").open()]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (DATASET / "queries.jsonl").open())}
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for line in list((DATASET / "qrels" / "train.tsv").open())[1:]:
        qid, did, score = line.split()
        qrels[qid][did] = int(score)
    if limit_docs:
        keep = {d for rel in qrels.values() for d in rel}
        corpus = [d for d in corpus if d["_id"] in keep] + [d for d in corpus if d["_id"] not in keep]
        corpus = corpus[:limit_docs]
        ids = {d["_id"] for d in corpus}
        qrels = defaultdict(dict, {q: r for q, r in qrels.items() if set(r) <= ids})
    return corpus, queries, qrels


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(relevant.values(), reverse=True)[:k]))
    return dcg / ideal if ideal else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


PRODUCT_CHUNKS = 50


def to_documents(chunks: list[ScoredChunk]) -> list[str]:
    """Max aggregation: a document ranks where its best chunk ranks."""
    seen: list[str] = []
    for chunk in chunks:
        if chunk.document_ref not in seen:
            seen.append(chunk.document_ref)
    return seen


def doc_level(chunks: list[ScoredChunk]) -> list[ScoredChunk]:
    """Aggregate one list to documents first (best chunk per document), keeping its scores."""
    best: dict[str, ScoredChunk] = {}
    for chunk in chunks:
        if chunk.document_ref not in best:
            best[chunk.document_ref] = replace(chunk, chunk_id=uuid.uuid5(uuid.NAMESPACE_URL, chunk.document_ref))
    return list(best.values())


def evaluate(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    qids = list(runs)
    return {"ndcg@10": round(statistics.fmean(ndcg_at(runs[q], qrels[q]) for q in qids), 4),
            "recall@10": round(statistics.fmean(recall_at(runs[q], qrels[q], 10) for q in qids), 4),
            "recall@100": round(statistics.fmean(recall_at(runs[q], qrels[q], 100) for q in qids), 4)}


async def ingest(runtime: Runtime, corpus: list[dict[str, str]]) -> tuple[uuid.UUID, uuid.UUID, dict[str, Any]]:
    async with runtime.database.session() as session:
        company = await auth.get_or_create_company(session, f"SciFact bench {uuid.uuid4().hex[:6]}")
        source = await sources.create_source(session, company.id, KnowledgeSourceCreate(name="SciFact"))
        company_id, source_id = company.id, source.id
    # Title as the document's heading (weight A in full-text search, context line for the embedder).
    documents = [SourceDocument(d["_id"], d["text"], [d["title"]] if d["title"] else []) for d in corpus]
    last = [0.0]

    async def progress(step: Progress) -> None:
        if time.monotonic() - last[0] > 10 or step.stage == "done":
            last[0] = time.monotonic()
            log(f"  ingest {step.stage}: {step.done}/{step.total}")

    started = time.perf_counter()
    outcome = await ingest_documents(runtime, company_id=company_id, source_id=source_id, documents=documents,
                                     embedding_model="minilm", progress=progress)
    seconds = time.perf_counter() - started
    return company_id, source_id, {"documents": len(documents), "chunks": outcome.chunks_created,
                                   "seconds": round(seconds, 1),
                                   "chunks_per_s": round(outcome.chunks_created / seconds, 2)}


def baseline_encode(runtime: Runtime, corpus: list[dict[str, str]], sample: int) -> dict[str, Any]:
    """Plain sentence-transformers on the same chunk texts (a uniform sample), same batch size."""
    from sentence_transformers import SentenceTransformer

    from cortex.embeddings.embedder import BATCH_SIZE
    from cortex.embeddings.models import minilm_path

    chunker = chunker_for(runtime)
    chunks: list[Chunk] = []
    for d in corpus:
        chunks.extend(chunker.split(SourceDocument(d["_id"], d["text"], [d["title"]] if d["title"] else [])))
    texts = [c.embedding_text() for c in random.Random(7).sample(chunks, min(sample, len(chunks)))]
    model = SentenceTransformer(str(minilm_path()), device="cpu", local_files_only=True)
    model.encode(texts[:64], batch_size=BATCH_SIZE)  # warm-up
    started = time.perf_counter()
    model.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True,
                 show_progress_bar=False)
    seconds = time.perf_counter() - started
    return {"chunks": len(texts), "seconds": round(seconds, 1), "chunks_per_s": round(len(texts) / seconds, 2)}


async def interleaved_throughput(runtime: Runtime, company_id: uuid.UUID, corpus: list[dict[str, str]],
                                 docs: int) -> dict[str, Any]:
    """Ingestion vs plain encode of the same chunks, alternated (plain, ingest, plain, ingest) so that
    load from other processes on a shared machine falls on both alike."""
    from sentence_transformers import SentenceTransformer

    from cortex.embeddings.embedder import BATCH_SIZE
    from cortex.embeddings.models import minilm_path

    sample = corpus[:docs]
    documents = [SourceDocument(d["_id"], d["text"], [d["title"]] if d["title"] else []) for d in sample]
    chunker = chunker_for(runtime)
    texts = [c.embedding_text() for d in documents for c in chunker.split(d)]
    model = SentenceTransformer(str(minilm_path()), device="cpu", local_files_only=True)
    model.encode(texts[:64], batch_size=BATCH_SIZE)
    async with runtime.database.session() as session:
        source = await sources.create_source(session, company_id, KnowledgeSourceCreate(name="throughput"))
        source_id = source.id
    plain, ingested = [], []
    for _ in range(2):
        started = time.perf_counter()
        await asyncio.to_thread(model.encode, texts, batch_size=BATCH_SIZE, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
        plain.append(len(texts) / (time.perf_counter() - started))
        started = time.perf_counter()
        outcome = await ingest_documents(runtime, company_id=company_id, source_id=source_id, documents=documents,
                                         embedding_model="minilm")
        ingested.append(outcome.chunks_created / (time.perf_counter() - started))
        log(f"  interleaved: plain {plain[-1]:.2f}/s, ingestion {ingested[-1]:.2f}/s")
    return {"documents": len(documents), "chunks": len(texts),
            "plain_chunks_per_s": [round(v, 2) for v in plain],
            "ingestion_chunks_per_s": [round(v, 2) for v in ingested],
            "ratio": round(sum(ingested) / sum(plain), 3)}


async def explain_dense(runtime: Runtime, source_id: uuid.UUID, vector: Any) -> dict[str, Any]:
    """Is the partial HNSW index used for the dense query shape the retriever sends?"""
    async with runtime.database.session() as session:
        set_ids = list((await session.execute(text(
            "SELECT id FROM knowledge_chunk_sets WHERE source_id = :s AND status = 'active'"),
            {"s": source_id})).scalars())
        await session.execute(text("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)"))
        literal = "[" + ",".join(map(repr, vector.tolist())) + "]"
        distance = "(c.embedding::vector(384) <=> CAST(CAST(:q AS text) AS vector(384)))"
        statement = text(
            f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT c.id FROM knowledge_chunks c "
            f"WHERE c.embedding_model = 'minilm' AND c.set_id = ANY(:set_ids) ORDER BY {distance} LIMIT 50"
        ).bindparams(bindparam("set_ids", type_=ARRAY(UUID(as_uuid=True))))
        plan = (await session.execute(statement, {"q": literal, "set_ids": set_ids})).scalar_one()
    dumped = json.dumps(plan)
    return {"hnsw_index_used": "ix_knowledge_chunks_hnsw_minilm" in dumped,
            "execution_ms": round(plan[0]["Execution Time"], 2)}


async def explain_lexical(runtime: Runtime, company_id: uuid.UUID, source_id: uuid.UUID,
                          query: str) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the full-text statement the retriever sends (captured as sent, re-run with
    the same parameters): are the GIN indexes used, and how long does the database take?"""
    from sqlalchemy import event

    engine = runtime.database.engine
    assert engine is not None
    captured: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if "ts_rank" in statement and "LIMIT" in statement:
            captured.append((statement, parameters))

    retriever = KnowledgeRetriever(runtime)
    await retriever.search(company_id=company_id, source_ids=[source_id], query=query, top_k=10, mode="lexical")
    event.listen(engine.sync_engine, "before_cursor_execute", grab)
    try:
        await retriever.search(company_id=company_id, source_ids=[source_id], query=query, top_k=10, mode="lexical")
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", grab)
    try:
        statement, parameters = captured[-1]
        async with engine.connect() as conn:
            plan = (await conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement,
                                               parameters)).scalar_one()
        if isinstance(plan, str):
            plan = json.loads(plan)
        dumped = json.dumps(plan)
        return {"gin_indexes_used": sorted({name for name in ("ix_knowledge_chunks_tsv_english",
                                                               "ix_knowledge_chunks_tsv_simple") if name in dumped}),
                "execution_ms": round(plan[0]["Execution Time"], 2), "planning_ms": round(plan[0]["Planning Time"], 2)}
    except Exception as exc:  # a measurement aid only: report why it could not run
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=None, help="ingest only N documents (judged ones first)")
    parser.add_argument("--queries", type=int, default=None)
    parser.add_argument("--baseline-sample", type=int, default=1000)
    parser.add_argument("--variants", default="lexical_default,lexical_idf_no_title_weight,"
                        "lexical_idf_title_weight_0.7",
                        help="full-text variants to measure (comma-separated; 'all')")
    parser.add_argument("--throughput-docs", type=int, default=120,
                        help="documents for the interleaved ingestion-vs-plain-encode measurement (0: skip)")
    parser.add_argument("--home", type=Path, default=None,
                        help="keep the embedded database here and reuse its ingestion on the next run")
    args = parser.parse_args()
    corpus, queries, qrels = load(args.docs)
    qids = sorted(qrels, key=int)[: args.queries] if args.queries else sorted(qrels, key=int)
    log(f"SciFact: {len(corpus)} documents, {len(qids)} judged queries")

    with tempfile.TemporaryDirectory(prefix="cortex-scifact-") as scratch:
        home = args.home or Path(scratch)
        marker = home / "scifact-ingested.json"
        settings = Settings(data_dir=home, database_url=os.environ.get("DATABASE_URL") or None,
                            redis_url=None, secret_key="bench-" + "x" * 40, preload_embeddings=False)
        runtime = await build_runtime(settings)
        try:
            await runtime.embedder.warm_up()
            if marker.exists():
                saved = json.loads(marker.read_text())
                company_id, source_id = uuid.UUID(saved["company_id"]), uuid.UUID(saved["source_id"])
                ingestion, baseline = saved["ingestion"], saved["baseline"]
                log(f"reusing the ingestion in {home}")
            else:
                company_id, source_id, ingestion = await ingest(runtime, corpus)
                log(f"ingested: {ingestion}")
                baseline = await asyncio.to_thread(baseline_encode, runtime, corpus, args.baseline_sample)
                log(f"baseline encode: {baseline}")
                if args.home:
                    marker.write_text(json.dumps({"company_id": str(company_id), "source_id": str(source_id),
                                                  "ingestion": ingestion, "baseline": baseline}))
            result = await run_queries(runtime, company_id, source_id, queries, qids, qrels, args.variants)
            if args.throughput_docs:
                result["throughput_interleaved"] = await interleaved_throughput(runtime, company_id, corpus,
                                                                                args.throughput_docs)
            result["explain"] = await explain_dense(runtime, source_id,
                                                    await runtime.embedder.embed_query(queries[qids[0]]))
            result["explain_lexical"] = await explain_lexical(runtime, company_id, source_id, queries[qids[0]])
        finally:
            await close_runtime(runtime)
    result = {
        "benchmark": "retrieval_scifact", "dataset": "SciFact train qrels", "queries": len(qids),
        "documents": len(corpus), "embedding_model": "all-MiniLM-L6-v2 (minilm)",
        "chunking": {"tokens": settings.knowledge_chunk_tokens, "overlap": settings.knowledge_chunk_overlap_tokens},
        "ingestion": {**ingestion, "plain_sentence_transformers_sample_after_ingestion": baseline,
                      "ratio_vs_plain_encode": round(ingestion["chunks_per_s"] / baseline["chunks_per_s"], 3)},
        **result,
    }
    print(json.dumps(result))


async def run_queries(runtime: Runtime, company_id: uuid.UUID, source_id: uuid.UUID, queries: dict[str, str],
                      qids: list[str], qrels: dict[str, dict[str, int]], chosen: str) -> dict[str, Any]:
    retriever = KnowledgeRetriever(runtime)
    default = retriever.tuning
    pool = replace(default, candidates=POOL)
    variants = {
        "lexical_default": pool,
        "lexical_no_title_weight": replace(pool, lexical_weights=(0.1, 0.2, 0.4, 0.4)),
        "lexical_english_only": replace(pool, simple_weight=0.0),
        "lexical_simple_only": replace(pool, english_weight=0.0),
        "lexical_ts_rank_cd": replace(pool, rank_function="ts_rank_cd"),
        "lexical_all_words_required": replace(pool, query_operator="and"),
        "lexical_idf": replace(pool, rank_function="idf"),
        "lexical_idf_no_title_weight": replace(pool, rank_function="idf", lexical_weights=(0.1, 0.2, 0.4, 0.4)),
        "lexical_idf_english_only": replace(pool, rank_function="idf", simple_weight=0.0),
        "lexical_idf_title_weight_0.7": replace(pool, rank_function="idf", lexical_weights=(0.1, 0.2, 0.4, 0.7)),
        "lexical_ts_rank": replace(pool, rank_function="ts_rank"),
    }
    # The idf ranking scores only chunks holding the query's rarest lexemes (a postings budget); the
    # exact form ranks every match. Measured on every 8th query, since the exact form is the slow one.
    exact = replace(pool, lexical_candidate_postings=10**9)
    lexical_exact: dict[str, list[ScoredChunk]] = {}
    if chosen != "all":
        names = {"lexical_default", *chosen.split(",")}
        variants = {name: tuning for name, tuning in variants.items() if name in names}
    dense: dict[str, list[ScoredChunk]] = {}
    lexical: dict[str, dict[str, list[ScoredChunk]]] = defaultdict(dict)
    latency: dict[str, list[float]] = defaultdict(list)
    hybrid_product: dict[str, list[str]] = {}
    for n, qid in enumerate(qids):
        query = queries[qid]
        started = time.perf_counter()
        await runtime.embedder.embed_query(query)  # memoised: the search below reuses it
        embedding_ms = (time.perf_counter() - started) * 1000
        latency["query_embedding"].append(embedding_ms)
        started = time.perf_counter()
        # 50 chunks (the search API's maximum) aggregated to documents: two chunks of one abstract would
        # otherwise take two of the ten places that nDCG@10 judges documents by.
        found = await retriever.search(company_id=company_id, source_ids=[source_id], query=query,
                                       top_k=PRODUCT_CHUNKS, mode="hybrid")
        latency["hybrid"].append((time.perf_counter() - started) * 1000)  # the query embedding excluded
        latency["hybrid_with_query_embedding"].append(latency["hybrid"][-1] + embedding_ms)
        hybrid_product[qid] = to_documents(found)
        started = time.perf_counter()
        dense[qid] = await retriever.search(company_id=company_id, source_ids=[source_id], query=query,
                                            top_k=POOL, mode="dense", tuning=pool)
        latency["dense"].append((time.perf_counter() - started) * 1000)
        for name, tuning in variants.items():
            started = time.perf_counter()
            lexical[name][qid] = await retriever.search(company_id=company_id, source_ids=[source_id],
                                                        query=query, top_k=POOL, mode="lexical", tuning=tuning)
            if name in ("lexical_default", "lexical_ts_rank"):
                latency[name].append((time.perf_counter() - started) * 1000)
        if n % 8 == 0:
            started = time.perf_counter()
            lexical_exact[qid] = await retriever.search(company_id=company_id, source_ids=[source_id],
                                                        query=query, top_k=POOL, mode="lexical", tuning=exact)
            latency["lexical_idf_exact"].append((time.perf_counter() - started) * 1000)
        if n % 25 == 0:
            log(f"  queries {n}/{len(qids)}")

    def fused(lex: dict[str, list[ScoredChunk]], how: str, alpha: float, aggregate_first: bool,
              k: int = 60) -> dict[str, list[str]]:
        runs = {}
        for qid in qids:
            d, lx = dense[qid], lex[qid]
            if aggregate_first:
                d, lx = doc_level(d), doc_level(lx)
            lists = [(d, alpha), (lx, 1 - alpha)]
            runs[qid] = to_documents(rrf(lists, k) if how == "rrf" else weighted(lists))
        return runs

    levers: dict[str, Any] = {
        "lexical": {name: evaluate({q: to_documents(v[q]) for q in qids}, qrels) for name, v in lexical.items()},
        "dense": evaluate({q: to_documents(dense[q]) for q in qids}, qrels),
    }
    fusion: dict[str, Any] = {}
    best_lexical = max(variants, key=lambda name: levers["lexical"][name]["ndcg@10"])
    for name in variants:
        lex = lexical[name]
        fusion[f"rrf_plain_fuse_then_docs|{name}"] = evaluate(fused(lex, "rrf", 0.5, False), qrels)
        if name not in ("lexical_default", best_lexical):
            continue
        for aggregate_first in (False, True):
            tag = "docs_then_fuse" if aggregate_first else "fuse_then_docs"
            fusion[f"rrf_plain_{tag}|{name}"] = evaluate(fused(lex, "rrf", 0.5, aggregate_first), qrels)
            for alpha in (0.3, 0.4, 0.5, 0.6, 0.7):
                fusion[f"rrf_dense{alpha}_{tag}|{name}"] = evaluate(fused(lex, "rrf", alpha, aggregate_first), qrels)
                fusion[f"minmax_dense{alpha}_{tag}|{name}"] = evaluate(
                    fused(lex, "weighted", alpha, aggregate_first), qrels)
    best = max(fusion.items(), key=lambda item: item[1]["ndcg@10"])
    subset = list(lexical_exact)

    def fused_subset(lex: dict[str, list[ScoredChunk]]) -> dict[str, list[str]]:
        return {q: to_documents(rrf([(dense[q], default.dense_weight), (lex[q], 1 - default.dense_weight)],
                                    default.rrf_k)) for q in subset}

    budget = {
        "queries": len(subset), "postings_budget": default.lexical_candidate_postings,
        "lexical_budgeted": evaluate({q: to_documents(lexical["lexical_default"][q]) for q in subset},
                                     {q: qrels[q] for q in subset}),
        "lexical_exact": evaluate({q: to_documents(lexical_exact[q]) for q in subset}, {q: qrels[q] for q in subset}),
        "hybrid_rrf_budgeted": evaluate(fused_subset(lexical["lexical_default"]), {q: qrels[q] for q in subset}),
        "hybrid_rrf_exact": evaluate(fused_subset(lexical_exact), {q: qrels[q] for q in subset}),
    }
    return {
        "lexical_only": levers["lexical"]["lexical_default"],
        "dense_only": levers["dense"],
        "hybrid_product_default": {**evaluate(hybrid_product, qrels), "tuning": default.__dict__},
        "hybrid_best_lever": {"name": best[0], **best[1]},
        "levers": {"lexical_variants": levers["lexical"], "fusion": fusion},
        "lexical_candidate_budget_vs_exact": budget,
        "latency_ms": {mode: {"p50": percentile(v, 50, 2), "p95": percentile(v, 95, 2)} for mode, v in latency.items()},
        "note": "hybrid_product_default is the retriever's own search (top 50 chunks → documents), so its "
                "recall@100 is bounded by 50 chunks; the lever rows fuse 200-chunk candidate lists offline with "
                "the retriever's own fusion functions.",
    }


if __name__ == "__main__":
    asyncio.run(main())
