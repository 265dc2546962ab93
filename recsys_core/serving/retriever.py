"""FAISS indexes over the item vectors of any model whose score is an inner product.

The index wraps a trained model rather than being a feature of it (as in ``implicit.ann.faiss``):
a model with ``inner_product = True`` gives ``item_vectors()`` (row 0 is padding) and
``query_vectors(users, history)``, and its scores are their inner products. The index is built on
exactly those vectors with ``METRIC_INNER_PRODUCT``, so exact search (``flat``) returns the model's
own top-K; an L2 index on dot-product vectors would answer a different question.

Kinds (Johnson et al., "Billion-scale similarity search with GPUs", 2017, for the library):

- ``flat``: ``IndexFlatIP``, brute force, exact;
- ``ivf``: ``IndexIVFFlat`` (Jégou et al., TPAMI 2011): items bucketed by k-means into ``nlist``
  lists, a query scans the ``nprobe`` lists whose centroids score highest;
- ``hnsw``: ``IndexHNSWFlat`` (Malkov and Yashunin, TPAMI 2018): a layered proximity graph with
  ``m`` links per node, built with beam ``ef_construction``, searched with beam ``ef_search``;
- ``ivfpq``: ``IndexIVFPQ`` (Jégou, Douze and Schmid, "Product quantization for nearest neighbor
  search", TPAMI 2011): the lists of ``ivf``, but each item is kept as a code of ``pq_m`` bytes (at
  8 bits) instead of D floats: its residual from the list's centroid is cut into ``pq_m``
  sub-vectors, each replaced by the nearest of ``2^pq_bits`` centroids learnt by k-means. For
  catalogues whose float vectors no longer fit comfortably: 16 B per item instead of 256 at d=64.

``nprobe`` and ``ef_search`` are search-time settings, passed per call (``faiss.SearchParameters``),
so changing them needs no rebuild and two threads sharing one index do not interfere.

PQ scores are approximate: items whose codes land near each other swap places, and the exact top-K
is often in the PQ top few K but not in its top K. So ``ivfpq`` asks FAISS for ``k_factor`` times
k and re-ranks that shortlist by exact inner products with the model's own item vectors (the
``rerank`` setting, on by default; ``IndexRefineFlat`` would do the same but store a second copy of
the floats inside the index, which is what PQ is there to avoid). The model holds those vectors
anyway, so the re-ranking costs no memory, k_factor x k x D multiply-adds per query, and gives the
caller the model's exact scores.

Inner product is not a metric: an item can score higher with another item than with itself. HNSW
prunes each node's links with a rule meant for metrics (drop a neighbour that is closer to an
already kept neighbour than to the node); under inner product long vectors are "close" to
everything, so the rule drops most links and many items are left with no way in. We
keep the bottom layer's lists full (``keep_max_size_level0``, the ``full_level0`` setting): on the
100k synthetic catalogue of ``bench/retrieval.py`` (vectors shaped like trained embeddings) that
lifts recall@100 well above what the pruned graph reaches at any search width (docs/benchmarks.md,
FAISS retrieval).

An index is built once per (artifact version, kind, build settings), kept in memory and saved
beside the artifact as ``index-<version>-<kind>-<settings>.faiss`` (FAISS's own format, never a
pickle).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import torch

from recsys_core.models import inner_product_models
from recsys_core.models.base import Recommender
from recsys_core.store.artifacts import Artifact
from recsys_core.tensors import mask_history, top_k

INDEX_KINDS = ("flat", "ivf", "hnsw", "ivfpq")
# FAISS's min_points_per_centroid: k-means with fewer training vectors per centroid warns and
# learns poor centroids. It bounds IVF's lists (n / 39) and the items PQ needs (39 x 2^pq_bits).
POINTS_PER_CENTROID = 39


class RetrievalError(ValueError):
    """An index that cannot serve this model; the message says why."""


def check_inner_product(model: Recommender) -> None:
    if not model.inner_product:
        raise RetrievalError(
            f"{model.name} does not score by an inner product of user and item vectors, so it has no "
            f"FAISS index; use exact scoring, or one of: {', '.join(inner_product_models())}"
        )


@dataclass(frozen=True)
class IndexParams:
    """What to build and how to search it. ``nlist``, ``m``, ``ef_construction``,
    ``full_level0``, ``pq_m`` and ``pq_bits`` shape the index (a change means a rebuild);
    ``nprobe``, ``ef_search``, ``rerank`` and ``k_factor`` only shape a search."""

    kind: str = "hnsw"
    nlist: int | None = None  # ivf, ivfpq lists; None: 4 sqrt(n), at most n / 39 (39 points per list)
    nprobe: int | None = None  # ivf, ivfpq lists scanned per query; None: 1/16 of the lists, at least 16
    m: int = 32  # hnsw links per node (2m on the bottom layer)
    ef_construction: int = 100  # hnsw beam while building
    full_level0: bool = True  # hnsw: keep 2m links on the bottom layer (see the module note)
    ef_search: int = 128  # hnsw beam while searching; at least k is used (a narrower beam loses results)
    pq_m: int | None = None  # ivfpq sub-quantisers, must divide D; None: see default_pq_m
    # ivfpq bits per sub-quantiser code, 2^pq_bits centroids each; None: 8, or as many as the
    # catalogue can train (39 x 2^pq_bits items: 5 bits for MovieLens-100K's 1,682)
    pq_bits: int | None = None
    rerank: bool = True  # ivfpq: re-rank the PQ shortlist by exact inner products (see the module note)
    # ivfpq with rerank: the shortlist is k_factor x k. At the default nprobe, shortlists of 4k, 16k,
    # 64k give recall@10 0.91, 0.98, 0.99 on 100k items and 0.61, 0.82, 0.96 on 1M, at 0.9, 1.6,
    # 3.5 ms per query of k=100 there (docs/benchmarks.md): 16 is the middle of the trade.
    k_factor: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", str(self.kind).lower())
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"index kind must be one of {', '.join(INDEX_KINDS)}, not {self.kind!r}")
        if self.nlist is not None and self.nlist < 1:
            raise ValueError("nlist must be positive")
        if min(1 if self.nprobe is None else self.nprobe, self.m, self.ef_construction, self.ef_search) < 1:
            raise ValueError("nprobe, m, ef_construction and ef_search must be positive")
        if min(1 if self.pq_m is None else self.pq_m, self.k_factor) < 1:
            raise ValueError("pq_m and k_factor must be positive")
        # 2^16 centroids per sub-quantiser is already slow to train.
        if self.pq_bits is not None and not 1 <= self.pq_bits <= 16:
            raise ValueError(f"pq_bits must be between 1 and 16, not {self.pq_bits}")

    def resolved(self, n_items: int, dim: int | None = None) -> IndexParams:
        """These settings with ``nlist`` and ``nprobe`` fixed for a catalogue of ``n_items``, and
        ``pq_m`` for vectors of ``dim`` dimensions when it is given."""
        if self.kind not in ("ivf", "ivfpq"):
            return self
        nlist = self.nlist or max(1, min(round(4 * math.sqrt(n_items)), n_items // POINTS_PER_CENTROID))
        pq_m = self.pq_m or (default_pq_m(dim) if self.kind == "ivfpq" and dim is not None else None)
        pq_bits = self.pq_bits
        if self.kind == "ivfpq" and pq_bits is None:
            pq_bits = max(1, min(8, int(math.log2(max(n_items // POINTS_PER_CENTROID, 1)))))
        return dataclasses.replace(self, nlist=nlist, nprobe=self.nprobe or max(16, nlist // 16), pq_m=pq_m,
                                   pq_bits=pq_bits)  # fmt: skip

    def min_items(self) -> int:
        """The fewest items this index can be built on: ``nlist`` (one per list) and, for ``ivfpq``,
        39 training vectors for each of a sub-quantiser's 2^pq_bits centroids."""
        if self.kind == "ivfpq":
            return max(self.nlist or 1, POINTS_PER_CENTROID * 2 ** (self.pq_bits or 8))
        return (self.nlist or 1) if self.kind == "ivf" else 1

    @property
    def code_bytes(self) -> int | None:
        """Bytes of an item's ivfpq code (the inverted lists add an 8-byte id per item); None
        until ``pq_m`` is known."""
        if self.kind != "ivfpq" or self.pq_m is None or self.pq_bits is None:
            return None
        return math.ceil(self.pq_m * self.pq_bits / 8)

    def build_key(self) -> str:
        """The build settings as a file-name-safe string, e.g. ``hnsw-m32-efc100``."""
        nlist = self.nlist if self.nlist is not None else "auto"
        if self.kind == "ivf":
            return f"ivf-nlist{nlist}"
        if self.kind == "ivfpq":
            return f"ivfpq-nlist{nlist}-m{self.pq_m if self.pq_m is not None else 'auto'}-b{self.pq_bits or 'auto'}"
        if self.kind == "hnsw":
            return f"hnsw-m{self.m}-efc{self.ef_construction}" + ("" if self.full_level0 else "-pruned")
        return "flat"

    def describe(self) -> str:
        if self.kind == "ivf":
            return f"IVF nlist={self.nlist}, nprobe={self.nprobe}"
        if self.kind == "ivfpq":
            code = f"m={self.pq_m or 'auto'}, {self.pq_bits or 'auto'} bits" + (
                f" ({self.code_bytes} B/item)" if self.code_bytes else ""
            )
            rerank = f"top {self.k_factor}k re-ranked exactly" if self.rerank else "PQ scores (approximate)"
            return f"IVF-PQ nlist={self.nlist}, {code}, nprobe={self.nprobe}, {rerank}"
        if self.kind == "hnsw":
            pruned = "" if self.full_level0 else ", pruned bottom layer"
            return f"HNSW M={self.m}, efConstruction={self.ef_construction}{pruned}, efSearch={self.ef_search}"
        return "Flat (exact)"


def default_pq_m(dim: int) -> int:
    """Sub-quantisers for vectors of ``dim`` dimensions: the most that divide ``dim`` and leave each
    at least 4 dimensions (dim / 4 when 4 divides it: 16 at the usual 64).

    At 8 bits a code then costs a quarter of a byte per dimension, 1/16 of float32, and 256
    centroids still cover a 4-dimensional sub-vector finely, so the shortlist stays good enough for
    exact re-ranking to recover the top-K. Longer sub-vectors save bytes but quantise coarsely: on
    the 100k catalogue of ``bench/retrieval.py`` (nprobe=64, top 4k re-ranked) m=8 (8 B/item)
    reached recall@10 0.79 where m=16 (16 B/item) reached 0.91."""
    return max((m for m in range(1, dim + 1) if dim % m == 0 and dim // m >= 4), default=1)


class ItemIndex:
    """A FAISS index over items 1..n; searches return internal item ids (never the padding 0).

    ``ItemIndex(params).fit(item_vectors)`` builds it from the (n_items + 1, D) vectors a model
    scores with. Fitted state: ``index_`` (the FAISS index), ``n_items_``, ``dim_``,
    ``build_seconds_``, and for ``ivfpq`` ``vectors_``: the (n_items, D) vectors it re-ranks with
    (the model's own, not copied when they are float32 on the CPU already).
    """

    def __init__(self, params: IndexParams | None = None) -> None:
        self.params = params or IndexParams()

    def fit(self, item_vectors: np.ndarray | torch.Tensor) -> ItemIndex:
        vectors = as_float32(item_vectors)[1:]  # FAISS id j is item j + 1: padding never enters
        n, dim = vectors.shape
        if n < 1:
            raise RetrievalError("no items to index")
        self.params = params = self.params.resolved(n, dim)
        if params.kind in ("ivf", "ivfpq") and params.nlist > n:
            raise RetrievalError(f"nlist={params.nlist} is more lists than there are items ({n})")
        if params.kind == "ivfpq":
            check_pq(params, n, dim)
        started = time.perf_counter()
        if params.kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif params.kind == "ivf":
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, params.nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(vectors)
        elif params.kind == "ivfpq":
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFPQ(quantizer, dim, params.nlist, params.pq_m, params.pq_bits,
                                     faiss.METRIC_INNER_PRODUCT)  # fmt: skip
            index.train(vectors)
        else:
            index = faiss.IndexHNSWFlat(dim, params.m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = params.ef_construction
            index.keep_max_size_level0 = params.full_level0
        index.add(vectors)
        self._set_fitted(index, time.perf_counter() - started, vectors if params.kind == "ivfpq" else None)
        return self

    def _set_fitted(self, index: faiss.Index, seconds: float, vectors: np.ndarray | None = None) -> None:
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise RetrievalError("the index does not use inner product; rebuild it")
        if self.params.kind == "ivfpq" and self.params.rerank and vectors is None:
            raise RetrievalError("ivfpq re-ranks with the model's item vectors: none were given")
        if vectors is not None and vectors.shape != (index.ntotal, index.d):
            raise RetrievalError(f"{vectors.shape[0]} item vectors of {vectors.shape[1]} dimensions for an index "
                                 f"of {index.ntotal} items of {index.d}")  # fmt: skip
        self.index_ = index
        self.n_items_ = int(index.ntotal)
        self.dim_ = int(index.d)
        self.build_seconds_ = seconds
        self.vectors_ = vectors

    def search(
        self, queries: np.ndarray | torch.Tensor, k: int, nprobe: int | None = None, ef_search: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Item ids (B, k) and their inner products (B, k), best first (PQ's estimates of them for
        ``ivfpq`` without ``rerank``); k is capped at the number of items. A slot the index could not
        fill (IVF probing too few lists) has id 0, score -inf."""
        queries = as_float32(queries)
        if queries.ndim != 2 or queries.shape[1] != self.dim_:
            raise RetrievalError(f"queries must be (B, {self.dim_}), not {tuple(queries.shape)}")
        k = max(1, min(k, self.n_items_))
        reranks = self.params.kind == "ivfpq" and self.params.rerank
        wanted = min(self.n_items_, k * self.params.k_factor) if reranks else k
        scores, ids = self.index_.search(queries, wanted, params=self._search_parameters(wanted, nprobe, ef_search))
        if reranks:
            scores, ids = rerank(queries, ids, self.vectors_, k)
        missing = ids < 0
        ids = np.where(missing, 0, ids + 1)
        scores = np.where(missing, -np.inf, scores).astype(np.float32)
        return ids, scores

    def _search_parameters(self, k: int, nprobe: int | None, ef_search: int | None) -> faiss.SearchParameters | None:
        if self.params.kind in ("ivf", "ivfpq"):
            return faiss.SearchParametersIVF(nprobe=min(nprobe or self.params.nprobe, self.params.nlist))
        if self.params.kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=max(k, ef_search or self.params.ef_search))
        return None

    def with_search(
        self,
        nprobe: int | None = None,
        ef_search: int | None = None,
        rerank: bool | None = None,
        k_factor: int | None = None,
    ) -> ItemIndex:
        """The same built index with other search settings (no rebuild, no copy of the data)."""
        other = ItemIndex(dataclasses.replace(self.params, nprobe=nprobe or self.params.nprobe,
                                              ef_search=ef_search or self.params.ef_search,
                                              rerank=self.params.rerank if rerank is None else rerank,
                                              k_factor=k_factor or self.params.k_factor))  # fmt: skip
        other._set_fitted(self.index_, self.build_seconds_, self.vectors_)
        return other

    def save(self, path: Path) -> Path:
        """Write atomically (temporary file, then rename), so a reader never sees half an index."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            faiss.write_index(self.index_, str(tmp))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: Path, params: IndexParams, item_vectors: np.ndarray | torch.Tensor | None = None) -> ItemIndex:
        """Read an index written by :meth:`save` (``faiss.read_index``: FAISS's format, no pickle).
        An ``ivfpq`` index re-ranks with ``item_vectors``, the (n_items + 1, D) vectors it was built on."""
        index = faiss.read_index(str(path))
        expected = {"flat": faiss.IndexFlat, "ivf": faiss.IndexIVFFlat, "hnsw": faiss.IndexHNSWFlat,
                    "ivfpq": faiss.IndexIVFPQ}[params.kind]  # fmt: skip
        if not isinstance(index, expected):
            raise RetrievalError(f"{path} holds a {type(index).__name__}, not a {params.kind} index")
        vectors = None
        if params.kind == "ivfpq":
            params = params.resolved(index.ntotal, index.d)
            found = (index.nlist, index.pq.M, index.pq.nbits)
            if found != (params.nlist, params.pq_m, params.pq_bits):
                raise RetrievalError(f"{path} holds nlist, pq_m, pq_bits = {found}, not those of {params.build_key()}")
            vectors = None if item_vectors is None else as_float32(item_vectors)[1:]
        loaded = cls(params)
        loaded._set_fitted(index, 0.0, vectors)
        return loaded


def check_pq(params: IndexParams, n_items: int, dim: int) -> None:
    """``params`` (resolved) can train an IVF-PQ index on ``n_items`` vectors of ``dim``: a clear
    error here rather than FAISS's assertion or its warning about too few training points."""
    if dim % params.pq_m:
        divisors = ", ".join(str(m) for m in range(1, dim + 1) if dim % m == 0)
        raise RetrievalError(f"pq_m={params.pq_m} does not divide the vector dimension {dim}; use one of {divisors}")
    needed = params.min_items()
    if n_items < needed:
        fits = int(math.log2(n_items // POINTS_PER_CENTROID)) if n_items >= 2 * POINTS_PER_CENTROID else 0
        advice = f"pq_bits={fits} fits it" if fits else "use flat, ivf or hnsw"
        raise RetrievalError(
            f"ivfpq with {params.pq_bits}-bit codes needs at least {needed:,} items to train (2^{params.pq_bits} "
            f"centroids per sub-quantiser, {POINTS_PER_CENTROID} vectors each); this catalogue has {n_items:,}: "
            f"{advice}"
        )


def rerank(queries: np.ndarray, ids: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each row's shortlist ``ids`` (B, S) (FAISS ids into ``vectors`` (n, D), -1
    for an empty slot) by exact inner products with ``queries`` (B, D): scores and ids (B, k)."""
    scores = np.empty(ids.shape, dtype=np.float32)  # (B, S)
    for start in range(0, len(ids), 32):  # in blocks: the gathered vectors are (32, S, D) at most
        rows = slice(start, start + 32)
        shortlist = vectors[np.maximum(ids[rows], 0)]  # (b, S, D)
        scores[rows] = np.matmul(shortlist, queries[rows, :, None])[:, :, 0]  # (b, S)
    scores[ids < 0] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (B, k)
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def as_float32(vectors: np.ndarray | torch.Tensor) -> np.ndarray:
    """C-contiguous float32 on the CPU, as FAISS wants it."""
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().float().cpu().numpy()
    return np.ascontiguousarray(vectors, dtype=np.float32)


def build_index(model: Recommender, params: IndexParams | str = "hnsw") -> ItemIndex:
    """An index over ``model``'s item vectors (the ones it scores with)."""
    check_inner_product(model)
    params = IndexParams(params) if isinstance(params, str) else params
    with torch.no_grad():
        return ItemIndex(params).fit(model.item_vectors())


# --------------------------------------------------------------------------- cache and store

_CACHE: dict[tuple[str, str, str, str], ItemIndex] = {}
_CACHE_LOCK = threading.Lock()


def index_path(artifact: Artifact, params: IndexParams) -> Path:
    return artifact.path / f"index-{artifact.version}-{params.build_key()}.faiss"


def load_or_build_index(artifact: Artifact, params: IndexParams | str = "hnsw") -> ItemIndex:
    """The index of this trained model: from memory, else from beside the artifact, else built
    (and saved there). The key holds the artifact's version, so after a retrain the old index is
    neither served from memory nor read from disk. The returned index searches with ``params``'
    ``nprobe``, ``ef_search``, ``rerank`` and ``k_factor`` whatever the settings it was first built with."""
    model = artifact.model
    check_inner_product(model)
    params = IndexParams(params) if isinstance(params, str) else params
    dim = None
    if params.kind == "ivfpq" and params.pq_m is None:  # its default, part of the file name, follows D
        with torch.no_grad():
            dim = model.item_vectors().shape[1]
    params = params.resolved(model.n_items, dim)
    key = (artifact.info.get("dataset", ""), model.name, params.build_key(), artifact.version)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is None:
        cached = _read_or_build(artifact, params)
        with _CACHE_LOCK:
            # One entry per model and build setting: a retrained model's old index is dropped.
            for stale in [k for k in _CACHE if k[:3] == key[:3] and k != key]:
                del _CACHE[stale]
            _CACHE[key] = cached
    return cached.with_search(params.nprobe, params.ef_search, params.rerank, params.k_factor)


def _read_or_build(artifact: Artifact, params: IndexParams) -> ItemIndex:
    path = index_path(artifact, params)
    if path.is_file():
        try:
            with torch.no_grad():
                vectors = artifact.model.item_vectors()
            index = ItemIndex.load(path, params, vectors)
            if (index.n_items_, index.dim_) == (artifact.model.n_items, vectors.shape[1]):
                return index
        except (RuntimeError, RetrievalError):
            pass  # unreadable or not the expected kind: rebuild and overwrite it below
    index = build_index(artifact.model, params)
    with contextlib.suppress(OSError):
        index.save(path)  # a read-only store, or a retrain replaced the directory: memory cache only
    return index


def clear_index_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


# --------------------------------------------------------------------------- serving and measuring


def check_index(model: Recommender, index: ItemIndex) -> None:
    """``index`` can answer for ``model``: an inner-product model with the same catalogue."""
    check_inner_product(model)
    if index.n_items_ != model.n_items:
        raise RetrievalError(f"the index holds {index.n_items_} items, {model.name} scores {model.n_items}")


@dataclass
class Retrieved:
    """The top n of a batch of queries, and what answered them."""

    items: torch.Tensor  # (B, n) item ids, best first; 0 where a row has fewer items left to give
    scores: torch.Tensor  # (B, n) the model's scores of them (the index's inner products); -inf at 0s
    source: str  # "exact", the index's description, or exact scoring standing in for an index


def best_available(scores: torch.Tensor, excluded: torch.Tensor, n: int, source: str = "exact") -> Retrieved:
    """The top ``n`` of full-catalogue ``scores`` (B, n_items + 1), padding and ``excluded`` (B, E)
    left out; a row with fewer items left ends in 0s (score -inf)."""
    items, values = top_k(mask_history(scores, excluded), n)
    return Retrieved(items.masked_fill(~torch.isfinite(values), 0), values, source)


class Retriever:
    """A trained model plus an optional FAISS index over its item vectors, answering "top n for
    these queries, leaving these items out" (after ``implicit.ann.faiss.FaissModel``).

    With an index the answer comes from it: it is asked for n plus the number of excluded slots,
    so that filtering still leaves n. When it finds too few for any row (IVF probing near-empty
    lists), exact scoring answers instead and ``source`` says so; every caller gets the same rule.
    """

    def __init__(self, model: Recommender, index: ItemIndex | None = None) -> None:
        if index is not None:
            check_index(model, index)
        self.model = model
        self.index = index

    @torch.no_grad()
    def top_n(
        self, users: torch.Tensor, histories: torch.Tensor, n: int, excluded: torch.Tensor | None = None
    ) -> Retrieved:
        """Top ``n`` for users (B,) with left-padded histories (B, L), none of them in ``excluded``
        (B, E) (default: the history) and never padding."""
        excluded = histories if excluded is None else excluded
        n = min(n, self.model.n_items)
        source = "exact"
        if self.index is not None:
            found = self._search(users, histories, excluded, n)
            if found is not None:
                return found
            source = f"exact ({self.index.params.describe()} returned fewer than {n} items)"
        return best_available(self.model.score_all(users, histories).float(), excluded, n, source)

    def _search(self, users: torch.Tensor, histories: torch.Tensor, excluded: torch.Tensor, n: int) -> Retrieved | None:
        ids, scores = self.index.search(self.model.query_vectors(users, histories), n + excluded.shape[1])
        rows, row_scores = [], []
        for found, found_scores, banned in zip(ids, scores, excluded.cpu().numpy(), strict=True):
            banned = set(banned.tolist()) | {0}
            kept = [(int(i), float(s)) for i, s in zip(found, found_scores, strict=True) if int(i) not in banned][:n]
            if len(kept) < min(n, self.model.n_items - len(banned - {0})):
                return None
            rows.append([i for i, _ in kept] + [0] * (n - len(kept)))
            row_scores.append([s for _, s in kept] + [float("-inf")] * (n - len(kept)))
        device = users.device
        return Retrieved(torch.tensor(rows, dtype=torch.long, device=device),
                         torch.tensor(row_scores, dtype=torch.float32, device=device),
                         self.index.params.describe())  # fmt: skip

    @torch.no_grad()
    def index_recall(self, users: torch.Tensor, histories: torch.Tensor, n: int) -> float:
        """Share of the exact inner-product top n that the index returns, before any filtering:
        how ANN indexes are judged (an index that returns too few shows it)."""
        query = self.model.query_vectors(users, histories)
        n = min(n, self.model.n_items)
        approx, _ = self.index.search(query, n)
        scores = (query @ self.model.item_vectors().T).float()
        scores[:, 0] = -torch.inf
        return recall_at_k(np.asarray(approx), torch.topk(scores, n).indices.cpu().numpy())


def retrieve(
    model: Recommender,
    users: torch.Tensor,
    histories: torch.Tensor,
    n: int,
    excluded: torch.Tensor | None = None,
    index: ItemIndex | None = None,
) -> torch.Tensor:
    """The items of :meth:`Retriever.top_n`: (B, n), best first, 0 where a row ran out."""
    return Retriever(model, index).top_n(users, histories, n, excluded).items


def recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean over queries of |approx ∩ exact| / |exact|: the share of the true top-k an ANN index
    finds (ids 0, unfilled slots, are not items)."""
    hits = [len(set(a[a > 0].tolist()) & set(e[e > 0].tolist())) / max(1, int((e > 0).sum()))
            for a, e in zip(approx_ids, exact_ids, strict=True)]  # fmt: skip
    return float(np.mean(hits)) if hits else float("nan")


@contextlib.contextmanager
def faiss_threads(n: int) -> Iterator[None]:
    """FAISS's OpenMP threads within the block (it has its own OpenMP runtime, apart from torch's).

    One query is searched on one thread whatever this says; the setting matters for builds and
    batches, and for timings, which should compare indexes on the same number of threads.
    """
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(max(1, n))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
