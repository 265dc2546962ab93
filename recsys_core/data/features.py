"""Side features for rankers and the two-tower model, as small integer codes.

Index 0 of every categorical vocabulary is reserved for "unknown", so a new occupation, a missing
age or an unseen genre never breaks an embedding lookup. Popularity buckets are computed from the
training split only, so no held-out interaction leaks into a feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_core.data.dataset import Dataset

# MovieLens-1M's own age groups; ML-100K's exact ages are bucketed the same way.
AGE_EDGES = (18, 25, 35, 45, 50, 56)
YEAR_EDGES = (1940, 1960, 1970, 1980, 1990, 1995, 1998)
N_POPULARITY_BUCKETS = 10


@dataclass
class Vocabulary:
    """Category -> code, with 0 reserved for unknown."""

    values: list[str]

    def encode(self, raw: pd.Series | list) -> np.ndarray:
        index = {v: i + 1 for i, v in enumerate(self.values)}
        return np.array([index.get(str(v), 0) for v in raw], dtype=np.int64)

    @property
    def size(self) -> int:
        return len(self.values) + 1


def bucketize(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """1-based bucket codes for numbers; NaN -> 0 (unknown)."""
    values = np.asarray(values, dtype=np.float64)
    codes = np.searchsorted(np.asarray(edges), values, side="right") + 1
    return np.where(np.isnan(values), 0, codes).astype(np.int64)


@dataclass
class UserFeatures:
    age_bucket: np.ndarray  # (n_users + 1,)
    gender: np.ndarray
    occupation: np.ndarray
    vocabularies: dict[str, int]  # feature -> number of codes (including unknown)


@dataclass
class ItemFeatures:
    genres: np.ndarray  # (n_items + 1, n_genres) multi-hot float32
    year_bucket: np.ndarray  # (n_items + 1,)
    popularity_bucket: np.ndarray  # (n_items + 1,)
    genre_names: list[str]
    vocabularies: dict[str, int]


def user_features(dataset: Dataset) -> UserFeatures:
    users = dataset.users
    n = dataset.n_users + 1

    def column(name: str) -> pd.Series:
        return users[name] if name in users else pd.Series([None] * (n - 1), index=users.index)

    gender_vocab = Vocabulary(sorted(column("gender").dropna().astype(str).unique()))
    occupation_vocab = Vocabulary(sorted(column("occupation").dropna().astype(str).unique()))
    age = pd.to_numeric(column("age"), errors="coerce").to_numpy(dtype=np.float64)
    return UserFeatures(
        age_bucket=np.concatenate([[0], bucketize(age, AGE_EDGES)]),
        gender=np.concatenate([[0], gender_vocab.encode(column("gender"))]),
        occupation=np.concatenate([[0], occupation_vocab.encode(column("occupation"))]),
        vocabularies={
            "age_bucket": len(AGE_EDGES) + 2,
            "gender": gender_vocab.size,
            "occupation": occupation_vocab.size,
        },
    )


def item_features(dataset: Dataset, train_popularity: np.ndarray) -> ItemFeatures:
    """Genres, release-year bucket and training-popularity decile for every item."""
    names = dataset.genre_names
    column = {g: j for j, g in enumerate(names)}
    genres = np.zeros((dataset.n_items + 1, len(names)), dtype=np.float32)
    for item, value in zip(dataset.items.index, dataset.items["genres"], strict=True):
        for genre in str(value).split("|"):
            if genre in column:
                genres[item, column[genre]] = 1.0
    year = dataset.items["year"].to_numpy(dtype=np.float64)
    return ItemFeatures(
        genres=genres,
        year_bucket=np.concatenate([[0], bucketize(year, YEAR_EDGES)]),
        popularity_bucket=popularity_buckets(train_popularity),
        genre_names=names,
        vocabularies={"year_bucket": len(YEAR_EDGES) + 2, "popularity_bucket": N_POPULARITY_BUCKETS + 1},
    )


def popularity_buckets(popularity: np.ndarray) -> np.ndarray:
    """Deciles of training popularity among items that have any (code 1..10); unseen items get 0."""
    codes = np.zeros(len(popularity), dtype=np.int64)
    seen = np.flatnonzero(popularity[1:] > 0) + 1
    if len(seen):
        ranks = popularity[seen].argsort(kind="stable").argsort(kind="stable")
        codes[seen] = 1 + (ranks * N_POPULARITY_BUCKETS) // len(seen)
    return codes


def context_features(timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weekday (1..7) and hour (1..24) of Unix timestamps, UTC; 0 is kept for unknown."""
    moments = pd.to_datetime(np.asarray(timestamps, dtype=np.int64), unit="s", utc=True)
    return moments.day_of_week.to_numpy() + 1, moments.hour.to_numpy() + 1


@dataclass
class SideFeatures:
    """What feature-aware models (two-tower, rankers) read; their lookup tables are built from it."""

    users: UserFeatures
    items: ItemFeatures


def side_features(dataset: Dataset, train_popularity: np.ndarray | None = None) -> SideFeatures:
    """User and item features of ``dataset``. Without training popularity the popularity buckets
    are unknown (0); a model loaded from an artifact gets its stored tables back anyway."""
    if train_popularity is None:
        train_popularity = np.zeros(dataset.n_items + 1)
    return SideFeatures(user_features(dataset), item_features(dataset, train_popularity))
