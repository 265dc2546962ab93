"""FAISS retrieval: recall@10 and @100 of IVF, HNSW and IVF-PQ against exact search, memory per
item, and latency per query.

    python bench/retrieval.py [--sizes 100000,1000000] [--queries 1000] [--timed 200]
                              [--kinds ivf,hnsw,ivfpq] [--kinds-1m ivf,hnsw,ivfpq]

Catalogues, all in one run:
- the real one: item vectors of the trained ``bpr`` on MovieLens-100K (trained first if missing),
  queried with the vectors of its 943 users;
- synthetic ones of 100k and 1M items, d=64, shaped like trained embeddings (see ``catalogue``).

Exact search is ``IndexFlatIP`` (brute force), always built; ``--kinds`` are the approximate ones
measured against it (``--kinds-1m`` on catalogues of 1M items or more, where the IVF and HNSW builds
take minutes on 2 cores). Recall is measured on ``--queries`` queries, each k searched on its own
(IVF-PQ's re-ranked shortlist grows with k); memory per item is the serialized index over the items;
latency on ``--timed`` single queries (one vector per call, as a user request), FAISS on one
thread for every index, and the indexes taking turns query by query so that load from other
processes falls on all of them alike: the speed-up over exact search is measured in the same run,
on the same queries.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import faiss  # noqa: E402

from bench.sections import write_section  # noqa: E402
from recsys_core.data import load_dataset, temporal_leave_last_out  # noqa: E402
from recsys_core.serving.retriever import IndexParams, ItemIndex, faiss_threads, recall_at_k  # noqa: E402
from recsys_core.store.artifacts import ArtifactError, load_artifact  # noqa: E402
from recsys_core.tensors import pad_histories  # noqa: E402
from recsys_core.training.schedule import train_models  # noqa: E402

MARKER = "<!-- retrieval -->"
K = 100
NPROBES = (8, 16, 32, 64, 128, 256)
EF_SEARCHES = (100, 200, 400)  # FAISS's beam; below k=100 it would be raised to 100 anyway
K_FACTORS = (4, 64)  # IVF-PQ shortlists tried beside the default, at the default nprobe
ANN_KINDS = "ivf,hnsw,ivfpq"


@dataclass
class Row:
    index: str
    build_s: float
    bytes_per_item: float
    setting: str
    recall10: float
    recall: float
    median_ms: float
    p95_ms: float
    speedup: float


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000", help="synthetic catalogue sizes")
    parser.add_argument("--queries", type=int, default=1000, help="queries for recall")
    parser.add_argument("--timed", type=int, default=200, help="single queries timed per index")
    parser.add_argument("--kinds", default=ANN_KINDS, help="approximate index kinds measured against flat")
    parser.add_argument("--kinds-1m", default=None, help="kinds on catalogues of 1M items or more (default: --kinds)")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    kinds_1m = kinds if args.kinds_1m is None else [k for k in args.kinds_1m.split(",") if k]
    started, load_before = time.perf_counter(), os.getloadavg()
    print(f"load average (1, 5, 15 min) at the start: {load_before[0]:.2f}, {load_before[1]:.2f}, "
          f"{load_before[2]:.2f}", flush=True)  # fmt: skip
    threads = faiss.omp_get_max_threads()
    sections = []

    vectors, queries = ml100k_bpr()
    sections.append(("MovieLens-100K, item vectors of the trained `bpr`; queries: its 943 users",
                     *measure(vectors, queries, kinds, [IndexParams("hnsw")], args.timed)))  # fmt: skip
    for n in [int(s) for s in args.sizes.split(",") if s]:
        print(f"synthetic catalogue of {n:,} items", flush=True)
        vectors, queries = catalogue(n, n_queries=args.queries)
        # Once, at 100k: FAISS's own pruning of the bottom layer, to show what keeping it full buys.
        hnsw = [IndexParams("hnsw", full_level0=False), IndexParams("hnsw")] if n <= 100_000 else [IndexParams("hnsw")]
        measured = measure(vectors, queries, kinds if n < 1_000_000 else kinds_1m, hnsw, args.timed)
        sections.append((f"synthetic, {n:,} items, d=64", *measured))
        del vectors, queries

    seconds, load_after = time.perf_counter() - started, os.getloadavg()
    command = " ".join(["python bench/retrieval.py", *sys.argv[1:]])
    loads = ", ".join(f"{title.split(', item')[0].removesuffix(', d=64')} {load:.1f}" for title, _, load in sections)
    lines = [
        MARKER,
        "## FAISS retrieval: recall@10 and @100 against exact search, memory per item, latency per query",
        "",
        f"Measured by `{command}` on {time.strftime('%Y-%m-%d')}: {platform.machine()}, "
        f"{os.cpu_count()} cores, faiss {faiss.__version__}, torch {torch.__version__}, Python "
        f"{platform.python_version()}; whole run {seconds:.0f} s. The machine was shared with other jobs "
        f"(1-minute load average {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end; while each "
        f"catalogue was timed: {loads}), "
        "so times are indicative only; the speed-up column is the more robust figure: exact and approximate "
        "searches took turns query by query in the same run.",
        "",
        f"- Exact = `IndexFlatIP` (brute force). Recall@k = share of the exact top-k found, over "
        f"{args.queries} queries (943 on MovieLens), k=10 and k=100 each searched on its own. Latency: "
        f"{args.timed} single-vector queries of k=100 per index, FAISS on 1 thread for every index (one query "
        "uses one thread anyway); median and 95th percentile in ms, through `ItemIndex.search`. Builds used "
        f"all {threads} threads. B/item: the index written by `faiss.write_index`, divided by the items.",
        "- Every index is built on the vectors the model scores with, inner product throughout "
        "(`METRIC_INNER_PRODUCT`). IVF: `nlist` = 4 sqrt(n) (at most n/39), k-means on the items. HNSW: "
        "FAISS prunes each node's links with a rule made for metrics, which under inner product leaves "
        "many items with no way in; the library keeps the bottom layer's 2M links full "
        "(`keep_max_size_level0`); the 100k catalogue shows both.",
        "- IVF-PQ: the lists of IVF, each item stored as a 16-byte code (m=16 sub-quantisers of 4 "
        "dimensions, 8 bits each) plus its 8-byte id, instead of 256 bytes of floats. The PQ top k_factor x k "
        "(default 16 x k) is re-ranked by exact inner products with the model's own item vectors, which the "
        "model holds anyway (not counted in B/item); 'PQ only' rows skip that. 8-bit codes need 9,984 items "
        "to train (39 per centroid): MovieLens-100K's 1,682 get 5-bit codes.",
        "- Synthetic catalogues: a Gaussian mixture shaped like trained embeddings. Component variances "
        "fall as 1/j over the 64 dimensions (as the spectrum of `bpr`'s item vectors on MovieLens-100K: "
        "the top 1, 16 and 32 directions hold 21%, 78% and 92% of the variance, against 31%, 77% and 91% "
        "there); one cluster (a genre) per 1,000 items with log-normal popularity; item = its cluster "
        "centre + noise at half the centres' scale, times a log-normal norm (sigma 0.2; `bpr`'s item "
        "norms: 0.16). Queries are drawn like user vectors, not like items: a mix of 1 to 3 cluster "
        "centres (Dirichlet weights) + noise at half scale, times a log-normal norm (sigma 0.15).",
        "",
        "| catalogue | index | build s | B/item | search setting | recall@10 | recall@100 | median ms | p95 ms "
        "| speed-up vs exact |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for title, rows, _ in sections:
        for row in rows:
            lines.append(f"| {title} | {row.index} | {row.build_s:.1f} | {row.bytes_per_item:.0f} | {row.setting} "
                         f"| {row.recall10:.4f} | {row.recall:.4f} | {row.median_ms:.3f} | {row.p95_ms:.3f} "
                         f"| {row.speedup:.1f}x |")  # fmt: skip
    lines += ["", *pq_lines(sections), *bar_lines(sections), MARKER]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        write_section(ROOT / "docs" / "benchmarks.md", MARKER, section)


def ml100k_bpr() -> tuple[np.ndarray, np.ndarray]:
    """(n_items + 1, D) item vectors and (n_users, D) query vectors of the stored ``bpr``."""
    dataset = load_dataset("ml-100k")
    try:
        artifact = load_artifact(dataset, "bpr")
    except ArtifactError:
        print("no trained bpr on ml-100k: training it", flush=True)
        train_models("ml-100k", ["bpr"])
        artifact = load_artifact(dataset, "bpr")
    model, split = artifact.model, temporal_leave_last_out(dataset)
    users = torch.arange(1, dataset.n_users + 1)
    history = pad_histories([split.input_sequences("test")[u] for u in users.tolist()])
    with torch.no_grad():
        queries = model.query_vectors(users, history).numpy()
        vectors = model.item_vectors().numpy()
        # Flat must return the model's own top-100: check it against score_all once.
        scores = model.score_all(users, history)[:, 1:]
        own = torch.topk(scores, K, dim=1).indices.numpy() + 1
    flat = ItemIndex(IndexParams("flat")).fit(vectors)
    agreement = recall_at_k(flat.search(queries, K)[0], own)
    print(f"ml-100k bpr: Flat top-{K} vs the model's score_all top-{K}: {agreement:.4f}", flush=True)
    if agreement < 0.999:
        raise SystemExit("Flat search disagrees with the model's own scores")
    return vectors, queries


def catalogue(n: int, dim: int = 64, n_queries: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n + 1, dim) item vectors (row 0 padding) and (n_queries, dim) user-like queries."""
    rng = np.random.default_rng(seed)
    scale = np.arange(1, dim + 1, dtype=np.float32) ** -0.5  # variance 1/j
    scale /= np.linalg.norm(scale)
    n_clusters = max(16, n // 1000)
    weights = rng.lognormal(0.0, 1.0, n_clusters)
    weights /= weights.sum()
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32) * scale
    items = np.zeros((n + 1, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # in blocks: a 1M x 64 temporary per step is enough
        size = min(100_000, n - start)
        cluster = rng.choice(n_clusters, size, p=weights)
        block = centres[cluster] + 0.5 * rng.standard_normal((size, dim), dtype=np.float32) * scale
        items[1 + start : 1 + start + size] = block * rng.lognormal(0.0, 0.2, (size, 1)).astype(np.float32)
    queries = np.zeros((n_queries, dim), dtype=np.float32)
    for row in range(n_queries):
        tastes = rng.choice(n_clusters, int(rng.integers(1, 4)), p=weights)
        mix = rng.dirichlet(np.ones(len(tastes))).astype(np.float32)
        queries[row] = mix @ centres[tastes] + 0.5 * rng.standard_normal(dim, dtype=np.float32) * scale
    queries *= rng.lognormal(0.0, 0.15, (n_queries, 1)).astype(np.float32)
    return items, queries


def measure(
    vectors: np.ndarray, queries: np.ndarray, kinds: list[str], hnsw: list[IndexParams], timed: int
) -> tuple[list[Row], float]:
    """Rows of every index and search setting, and the 1-minute load average while they were timed."""
    built: list[tuple[str, ItemIndex, list[tuple[str, ItemIndex]]]] = []
    exact = timed_build(IndexParams("flat"), vectors)
    built.append(("Flat (exact)", exact, [("-", exact)]))
    if "ivf" in kinds:
        ivf = timed_build(IndexParams("ivf"), vectors)
        settings = [(f"nprobe={p}", ivf.with_search(nprobe=p)) for p in NPROBES if p <= ivf.params.nlist]
        built.append((f"IVF nlist={ivf.params.nlist}", ivf, settings))
    if "hnsw" in kinds:
        for params in hnsw:
            graph = timed_build(params, vectors)
            name = f"HNSW M={params.m}, efConstruction={params.ef_construction}, " + (
                "bottom layer kept full" if params.full_level0 else "bottom layer pruned (FAISS default)"
            )
            built.append((name, graph, [(f"efSearch={ef}", graph.with_search(ef_search=ef)) for ef in EF_SEARCHES]))
    if "ivfpq" in kinds:
        pq = timed_build(pq_params(len(vectors) - 1), vectors)
        p = pq.params
        nprobes = sorted({n for n in NPROBES if n <= p.nlist} | {p.nprobe})  # and the default
        settings = [(f"nprobe={n}, top {p.k_factor}k re-ranked", pq.with_search(nprobe=n)) for n in nprobes]
        settings += [(f"nprobe={p.nprobe}, top {f}k re-ranked", pq.with_search(k_factor=f)) for f in K_FACTORS]
        settings += [
            (f"nprobe={n}, PQ only", pq.with_search(nprobe=n, rerank=False)) for n in sorted({p.nprobe, nprobes[-1]})
        ]
        built.append((f"IVF-PQ nlist={p.nlist}, m={p.pq_m}, {p.pq_bits} bits", pq, settings))

    truth = exact.search(queries, K)[0]
    variants = [(name, index, setting, searched) for name, index, settings in built for setting, searched in settings]
    load = os.getloadavg()[0]
    print(f"  timing {len(variants)} settings, load average {load:.2f}", flush=True)
    latencies = time_single_queries([searched for *_, searched in variants], queries[:timed])
    exact_median = float(np.median(latencies[0]))
    rows = []
    for (name, index, setting, searched), times in zip(variants, latencies, strict=True):
        recall10 = recall_at_k(searched.search(queries, 10)[0], truth[:, :10])
        recall = recall_at_k(searched.search(queries, K)[0], truth)
        median = float(np.median(times))
        rows.append(Row(name, index.build_seconds_, index_bytes(index) / index.n_items_, setting, recall10, recall,
                        median * 1e3, float(np.percentile(times, 95)) * 1e3, exact_median / median))  # fmt: skip
        print(f"  {name:<40} {setting:<28} recall@10 {recall10:.4f} recall@{K} {recall:.4f}  "
              f"median {median * 1e3:.3f} ms  x{exact_median / median:.1f}", flush=True)  # fmt: skip
    return rows, load


def pq_params(n_items: int) -> IndexParams:
    """The library's IVF-PQ, with fewer bits per code when the catalogue is too small to train 8."""
    bits = next((b for b in range(8, 0, -1) if IndexParams("ivfpq", pq_bits=b).min_items() <= n_items), 1)
    return IndexParams("ivfpq", pq_bits=bits)


def index_bytes(index: ItemIndex) -> int:
    """Size of the index as FAISS writes it: vectors or codes, ids, centroids, graph links."""
    return int(faiss.serialize_index(index.index_).nbytes)


def timed_build(params: IndexParams, vectors: np.ndarray) -> ItemIndex:
    print(f"  building {params.kind} ...", end=" ", flush=True)
    index = ItemIndex(params).fit(vectors)
    print(f"{index.build_seconds_:.1f} s", flush=True)
    return index


def time_single_queries(indexes: list[ItemIndex], queries: np.ndarray) -> list[np.ndarray]:
    """Seconds per single-vector search, per index; the indexes take turns on each query."""
    times = np.zeros((len(indexes), len(queries)))
    with faiss_threads(1):
        for index in indexes:  # warm-up: first touches of the memory
            index.search(queries[:1], K)
        for q in range(len(queries)):
            one = queries[q : q + 1]
            for i, index in enumerate(indexes):
                started = time.perf_counter()
                index.search(one, K)
                times[i, q] = time.perf_counter() - started
    return list(times)


def pq_lines(sections: list[tuple[str, list[Row], float]]) -> list[str]:
    """What IVF-PQ buys on each synthetic catalogue: memory against flat, at its default search."""
    lines = []
    for title, rows, _ in sections:
        flat = rows[0]
        pq = [r for r in rows if r.index.startswith("IVF-PQ") and "re-ranked" in r.setting]
        if not title.startswith("synthetic") or not pq:
            continue
        n = int(title.split(", ")[1].split()[0].replace(",", ""))
        default = next(r for r in pq if r.setting.endswith(f"top {IndexParams('ivfpq').k_factor}k re-ranked")
                       and f"nprobe={IndexParams('ivfpq').resolved(n).nprobe}," in r.setting)  # fmt: skip
        lines.append(f"IVF-PQ on {title}: index {default.bytes_per_item * n / 1e6:.0f} MB "
                     f"({default.bytes_per_item:.0f} B/item) against {flat.bytes_per_item * n / 1e6:.0f} MB flat "
                     f"({flat.bytes_per_item:.0f} B/item); at the default {default.setting}: recall@10 "
                     f"{default.recall10:.4f}, recall@100 {default.recall:.4f}, median {default.median_ms:.3f} ms "
                     f"against {flat.median_ms:.3f} ms exact.")  # fmt: skip
    return [*lines, ""] if lines else []


def bar_lines(sections: list[tuple[str, list[Row], float]]) -> list[str]:
    """The issue's bar: HNSW at 1M items, recall@100 >= 0.95 at least 10x faster than exact."""
    lines = []
    for title, rows, _ in sections:
        if "1,000,000" not in title:
            continue
        if not any(r.index.startswith("HNSW") for r in rows):
            lines.append(f"Bar (HNSW at 1M items, recall@100 >= 0.95 at least 10x faster than exact): not "
                         f"measured in this run (no HNSW on {title}: `--kinds-1m`).")  # fmt: skip
            continue
        passing = [r for r in rows if r.index.startswith("HNSW") and r.recall >= 0.95]
        if not passing:
            lines.append(f"Bar (HNSW at 1M, recall@100 >= 0.95, >= 10x faster than exact): NOT MET on {title}.")
            continue
        best = max(passing, key=lambda r: r.speedup)
        verdict = "met" if best.speedup >= 10 else "NOT MET"
        lines.append(f"Bar (HNSW at 1M items, recall@100 >= 0.95 at least 10x faster than exact): {verdict}: "
                     f"{best.index}, {best.setting}: recall@100 {best.recall:.4f}, median {best.median_ms:.3f} ms "
                     f"against {best.median_ms * best.speedup:.3f} ms exact, {best.speedup:.1f}x.")  # fmt: skip
    return lines


if __name__ == "__main__":
    main()
