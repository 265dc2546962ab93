"""Embedding maps: 2-D UMAP layouts of a model's item (and user) vectors, and nearest neighbours by
the model's own similarity.

A layout is fitted once per trained artifact and stored beside it (``umap-<kind>-<version>.npz``,
plain arrays, read without pickle), so a later view only reads it back. UMAP compiles its numba
kernels on the first fit of a process (seconds; bench/maps.py measures it in docs/benchmarks.md)
and then fits a MovieLens-sized catalogue in a few seconds; ``python -m recsys_core train`` draws
the maps of every model it trains, so the lab's first view of a map is a read as well.

Distances are cosine: a dot-product model's vector lengths mostly encode popularity, and a map of
lengths would put every blockbuster in one corner; the direction is what says what an item is like.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsys_core.data import Dataset
from recsys_core.data.features import item_features
from recsys_core.data.split import Split
from recsys_core.models.base import Recommender
from recsys_core.store.artifacts import Artifact
from recsys_core.tensors import pad_histories

KINDS = ("items", "users")
UMAP_SETTINGS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine", "random_state": 0}
MIN_POINTS = 5  # UMAP needs a neighbourhood; fewer points make no map worth drawing
USER_BATCH = 512


class NoVectors(ValueError):
    """The model has no vectors of this kind to draw (popularity, say); the message says why."""


@dataclass
class EmbeddingMap:
    kind: str  # "items" or "users"
    ids: np.ndarray  # (N,) internal ids of the points (1-based; 0 is padding)
    coords: np.ndarray  # (N, 2) float32 layout
    seconds: float  # how long the fit took when it was made
    from_disk: bool  # True when read back rather than fitted now


def has_vectors(model_class: type[Recommender], kind: str) -> bool:
    """Whether a registered model has vectors of this kind to draw, without loading it."""
    return model_class.draws_embeddings(kind)


@torch.no_grad()
def map_vectors(model: Recommender, split: Split, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, vectors)`` of every item (or every user, reading the history the test stage reads)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    model.eval()
    try:
        if kind == "items":
            ids = np.arange(1, model.n_items + 1)
            vectors = model.item_embeddings()[1:]
        else:
            ids = np.arange(1, model.n_users + 1)
            inputs = split.input_sequences("test")
            parts = []
            for start in range(0, len(ids), USER_BATCH):
                batch = ids[start : start + USER_BATCH]
                history = pad_histories([inputs[u] for u in batch], model.device)
                parts.append(model.user_embeddings(torch.from_numpy(batch).to(model.device), history))
            vectors = torch.cat(parts)
    except NotImplementedError as error:
        what = "item" if kind == "items" else "user"
        raise NoVectors(f"{model.name} learns no {what} vectors, so it has no map of its {kind}") from error
    return ids, vectors.detach().float().cpu().numpy()


def fit_layout(vectors: np.ndarray) -> np.ndarray:
    """(N, 2) UMAP coordinates of (N, D) vectors, the same for the same input (seeded)."""
    if len(vectors) < MIN_POINTS:
        raise NoVectors(f"only {len(vectors)} points: a map needs at least {MIN_POINTS}")
    import umap  # imported here: it takes seconds, and only maps need it

    vectors = np.asarray(vectors, dtype=np.float32)
    # A zero vector (an item never trained) has no direction; nudge it so cosine is defined.
    zero = np.linalg.norm(vectors, axis=1) == 0
    vectors[zero] = 1e-6
    settings = {**UMAP_SETTINGS, "n_neighbors": min(UMAP_SETTINGS["n_neighbors"], len(vectors) - 1)}
    layout = umap.UMAP(n_components=2, n_jobs=1, **settings).fit_transform(vectors)
    return np.asarray(layout, dtype=np.float32)


def map_path(artifact: Artifact, kind: str) -> Path:
    return artifact.path / f"umap-{kind}-{artifact.version}.npz"


def load_or_fit_map(artifact: Artifact, split: Split, kind: str = "items") -> EmbeddingMap:
    """The stored layout of this artifact's vectors, fitted and stored first when there is none.

    The file name holds the artifact's version, so a retrained model never shows an old map.
    """
    path = map_path(artifact, kind)
    stored = _read_map(path, kind)
    if stored is not None:
        return stored
    ids, vectors = map_vectors(artifact.model, split, kind)
    start = time.perf_counter()
    coords = fit_layout(vectors)
    seconds = time.perf_counter() - start
    with contextlib.suppress(OSError):  # a read-only store: the map is still shown, just not kept
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, ids=ids, coords=coords, seconds=np.float64(seconds))
        os.replace(tmp, path)
    return EmbeddingMap(kind, ids, coords, seconds, from_disk=False)


def _read_map(path: Path, kind: str) -> EmbeddingMap | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            ids, coords, seconds = stored["ids"], stored["coords"], float(stored["seconds"])
    except (OSError, ValueError, KeyError):
        return None  # unreadable: fit again and overwrite it
    if coords.shape != (len(ids), 2):
        return None
    return EmbeddingMap(kind, ids, coords, seconds, from_disk=True)


def draw_maps(artifact: Artifact, split: Split) -> dict[str, str]:
    """Fit and store every map the model has; ``{kind: outcome}`` for the training log."""
    outcome = {}
    for kind in KINDS:
        try:
            drawn = load_or_fit_map(artifact, split, kind)
            outcome[kind] = f"{len(drawn.ids)} points in {drawn.seconds:.1f} s"
        except NoVectors as error:
            outcome[kind] = str(error)
    return outcome


@torch.no_grad()
def nearest_items(model: Recommender, item: int, k: int = 10) -> tuple[list[int], list[float]]:
    """The ``k`` items the model finds most like ``item`` (by :meth:`Recommender.item_similarity`),
    most similar first; the item itself and padding are left out."""
    if not 1 <= item <= model.n_items:
        raise ValueError(f"item {item} is outside the catalogue (1..{model.n_items})")
    model.eval()
    try:
        similarity = model.item_similarity(torch.tensor([item], device=model.device))[0].float().cpu()
    except NotImplementedError as error:
        raise NoVectors(f"{model.name} learns no item vectors, so it has no notion of similar items") from error
    similarity[0] = -torch.inf
    similarity[item] = -torch.inf
    k = min(k, model.n_items - 1)
    scores, ids = torch.topk(similarity, k)
    return ids.tolist(), scores.tolist()


def map_points(dataset: Dataset, split: Split, drawn: EmbeddingMap) -> pd.DataFrame:
    """One row per point of a map with what it can be coloured and hovered by.

    Items: title, first genre, release year, training popularity. Users: external id, training
    activity and favourite genre (the one most over-represented among their training items).
    """
    x, y = drawn.coords[:, 0], drawn.coords[:, 1]
    ids = drawn.ids
    popularity = split.item_popularity
    if drawn.kind == "items":
        items = dataset.items.loc[ids]
        genres = items["genres"].fillna("").astype(str).str.split("|").str[0].replace("", "(no genre)")
        return pd.DataFrame({"id": ids, "x": x, "y": y, "label": items["title"].astype(str).to_numpy(),
                             "genre": genres.to_numpy(), "year": items["year"].to_numpy(dtype=np.float64),
                             "popularity": popularity[ids]})  # fmt: skip
    genre_matrix = item_features(dataset, popularity).genres  # (n_items + 1, G) multi-hot
    per_user = np.asarray(split.train_matrix[ids] @ genre_matrix)  # (N, G) genres of each user's training items
    # The genre whose share of the user's items most exceeds its overall share, in percentage
    # points: Drama is not everyone's favourite, and one documentary does not make a documentary
    # fan (a ratio would).
    overall = per_user.sum(axis=0) / max(per_user.sum(), 1)
    lift = per_user / np.maximum(per_user.sum(axis=1, keepdims=True), 1) - overall
    names = np.array(dataset.genre_names or ["(no genre)"])
    favourite = names[lift.argmax(axis=1)] if lift.shape[1] == len(names) else np.full(len(ids), names[0])
    activity = np.asarray(split.train_matrix[ids].sum(axis=1)).ravel()
    return pd.DataFrame({"id": ids, "x": x, "y": y, "label": dataset.user_ids[ids].astype(str),
                         "genre": favourite, "activity": activity})  # fmt: skip
