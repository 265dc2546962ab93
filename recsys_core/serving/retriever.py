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
  ``m`` links per node, built with beam ``ef_construction``, searched with beam ``ef_search``.

``nprobe`` and ``ef_search`` are search-time settings, passed per call (``faiss.SearchParameters``),
so changing them needs no rebuild and two threads sharing one index do not interfere.

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

INDEX_KINDS = ("flat", "ivf", "hnsw")


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
    """What to build and how to search it. ``nlist``, ``m``, ``ef_construction`` and
    ``full_level0`` shape the index (a change means a rebuild); ``nprobe`` and ``ef_search`` only
    shape a search."""

    kind: str = "hnsw"
    nlist: int | None = None  # ivf lists; None: 4 sqrt(n), at most n / 39 (FAISS wants 39 points per list)
    nprobe: int | None = None  # ivf lists scanned per query; None: 1/16 of the lists, at least 16
    m: int = 32  # hnsw links per node (2m on the bottom layer)
    ef_construction: int = 100  # hnsw beam while building
    full_level0: bool = True  # hnsw: keep 2m links on the bottom layer (see the module note)
    ef_search: int = 128  # hnsw beam while searching; at least k is used (a narrower beam loses results)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", str(self.kind).lower())
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"index kind must be one of {', '.join(INDEX_KINDS)}, not {self.kind!r}")
        if self.nlist is not None and self.nlist < 1:
            raise ValueError("nlist must be positive")
        if min(1 if self.nprobe is None else self.nprobe, self.m, self.ef_construction, self.ef_search) < 1:
            raise ValueError("nprobe, m, ef_construction and ef_search must be positive")

    def resolved(self, n_items: int) -> IndexParams:
        """These settings with ``nlist`` and ``nprobe`` fixed for a catalogue of ``n_items``."""
        if self.kind != "ivf" or (self.nlist is not None and self.nprobe is not None):
            return self
        nlist = self.nlist or max(1, min(round(4 * math.sqrt(n_items)), n_items // 39))
        return dataclasses.replace(self, nlist=nlist, nprobe=self.nprobe or max(16, nlist // 16))

    def build_key(self) -> str:
        """The build settings as a file-name-safe string, e.g. ``hnsw-m32-efc100``."""
        if self.kind == "ivf":
            return f"ivf-nlist{self.nlist if self.nlist is not None else 'auto'}"
        if self.kind == "hnsw":
            return f"hnsw-m{self.m}-efc{self.ef_construction}" + ("" if self.full_level0 else "-pruned")
        return "flat"

    def describe(self) -> str:
        if self.kind == "ivf":
            return f"IVF nlist={self.nlist}, nprobe={self.nprobe}"
        if self.kind == "hnsw":
            pruned = "" if self.full_level0 else ", pruned bottom layer"
            return f"HNSW M={self.m}, efConstruction={self.ef_construction}{pruned}, efSearch={self.ef_search}"
        return "Flat (exact)"


class ItemIndex:
    """A FAISS index over items 1..n; searches return internal item ids (never the padding 0).

    ``ItemIndex(params).fit(item_vectors)`` builds it from the (n_items + 1, D) vectors a model
    scores with. Fitted state: ``index_`` (the FAISS index), ``n_items_``, ``dim_``,
    ``build_seconds_``.
    """

    def __init__(self, params: IndexParams | None = None) -> None:
        self.params = params or IndexParams()

    def fit(self, item_vectors: np.ndarray | torch.Tensor) -> ItemIndex:
        vectors = as_float32(item_vectors)[1:]  # FAISS id j is item j + 1: padding never enters
        n, dim = vectors.shape
        if n < 1:
            raise RetrievalError("no items to index")
        self.params = self.params.resolved(n)
        started = time.perf_counter()
        if self.params.kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif self.params.kind == "ivf":
            if self.params.nlist > n:
                raise RetrievalError(f"nlist={self.params.nlist} is more lists than there are items ({n})")
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, self.params.nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(vectors)
        else:
            index = faiss.IndexHNSWFlat(dim, self.params.m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.params.ef_construction
            index.keep_max_size_level0 = self.params.full_level0
        index.add(vectors)
        self._set_fitted(index, time.perf_counter() - started)
        return self

    def _set_fitted(self, index: faiss.Index, seconds: float) -> None:
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise RetrievalError("the index does not use inner product; rebuild it")
        self.index_ = index
        self.n_items_ = int(index.ntotal)
        self.dim_ = int(index.d)
        self.build_seconds_ = seconds

    def search(
        self, queries: np.ndarray | torch.Tensor, k: int, nprobe: int | None = None, ef_search: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Item ids (B, k) and their inner products (B, k), best first; k is capped at the number
        of items. A slot the index could not fill (IVF probing too few lists) has id 0, score -inf."""
        queries = as_float32(queries)
        if queries.ndim != 2 or queries.shape[1] != self.dim_:
            raise RetrievalError(f"queries must be (B, {self.dim_}), not {tuple(queries.shape)}")
        k = max(1, min(k, self.n_items_))
        scores, ids = self.index_.search(queries, k, params=self._search_parameters(k, nprobe, ef_search))
        missing = ids < 0
        ids = np.where(missing, 0, ids + 1)
        scores = np.where(missing, -np.inf, scores).astype(np.float32)
        return ids, scores

    def _search_parameters(self, k: int, nprobe: int | None, ef_search: int | None) -> faiss.SearchParameters | None:
        if self.params.kind == "ivf":
            return faiss.SearchParametersIVF(nprobe=min(nprobe or self.params.nprobe, self.params.nlist))
        if self.params.kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=max(k, ef_search or self.params.ef_search))
        return None

    def with_search(self, nprobe: int | None = None, ef_search: int | None = None) -> ItemIndex:
        """The same built index with other search settings (no rebuild, no copy of the data)."""
        other = ItemIndex(dataclasses.replace(self.params, nprobe=nprobe or self.params.nprobe,
                                              ef_search=ef_search or self.params.ef_search))  # fmt: skip
        other._set_fitted(self.index_, self.build_seconds_)
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
    def load(cls, path: Path, params: IndexParams) -> ItemIndex:
        """Read an index written by :meth:`save` (``faiss.read_index``: FAISS's format, no pickle)."""
        index = faiss.read_index(str(path))
        expected = {"flat": faiss.IndexFlat, "ivf": faiss.IndexIVFFlat, "hnsw": faiss.IndexHNSWFlat}[params.kind]
        if not isinstance(index, expected):
            raise RetrievalError(f"{path} holds a {type(index).__name__}, not a {params.kind} index")
        loaded = cls(params)
        loaded._set_fitted(index, 0.0)
        return loaded


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
    ``nprobe`` and ``ef_search`` whatever the settings it was first built with."""
    model = artifact.model
    check_inner_product(model)
    params = (IndexParams(params) if isinstance(params, str) else params).resolved(model.n_items)
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
    return cached.with_search(params.nprobe, params.ef_search)


def _read_or_build(artifact: Artifact, params: IndexParams) -> ItemIndex:
    path = index_path(artifact, params)
    if path.is_file():
        try:
            index = ItemIndex.load(path, params)
            with torch.no_grad():
                dim = artifact.model.item_vectors().shape[1]
            if (index.n_items_, index.dim_) == (artifact.model.n_items, dim):
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

    def _search(
        self, users: torch.Tensor, histories: torch.Tensor, excluded: torch.Tensor, n: int
    ) -> Retrieved | None:
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
