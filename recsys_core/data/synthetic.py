"""A synthetic dataset with a planted answer, for tests and for running the lab offline.

Users belong to one of ``n_clusters`` taste groups; each group owns a contiguous block of items
(its "genre"). A user walks through their group's block in order, one step at a time, starting
at a random offset, with a small chance of a random item instead. So

- the held-out items of a user lie in their own block (collaborative models should find them);
- the next item usually follows the last one (sequential models should find that rule);
- popularity alone knows nothing of either.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys_core.data.dataset import Dataset, build_dataset

AGES = (18, 25, 35, 45, 56)
OCCUPATIONS = ("student", "engineer", "artist", "writer", "other")


def make_synthetic(
    n_users: int = 300,
    n_items: int = 120,
    n_clusters: int = 6,
    min_length: int = 12,
    max_length: int = 20,
    noise: float = 0.05,
    seed: int = 0,
) -> Dataset:
    if n_items % n_clusters:
        raise ValueError("n_items must be a multiple of n_clusters")
    rng = np.random.default_rng(seed)
    block = n_items // n_clusters
    if max_length > block:
        raise ValueError("max_length must not exceed the items per cluster")
    rows = []
    clusters = rng.integers(0, n_clusters, size=n_users)
    start_time = 1_600_000_000
    for user, cluster in enumerate(clusters, start=1):
        length = int(rng.integers(min_length, max_length + 1))
        offset = int(rng.integers(0, block))
        seen: set[int] = set()
        t = start_time + int(rng.integers(0, 86_400 * 30))
        step = 0
        while len(seen) < length:
            if rng.random() < noise:
                item = int(rng.integers(0, n_items))
            else:
                item = int(cluster) * block + (offset + step) % block
                step += 1
            if item in seen:
                continue
            seen.add(item)
            t += int(rng.integers(60, 86_400))
            rows.append((f"u{user}", f"i{item + 1}", float(rng.integers(3, 6)), t))
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame(
        {
            "item_id": [f"i{i + 1}" for i in range(n_items)],
            "title": [f"Item {i + 1} (group {i // block})" for i in range(n_items)],
            "genres": [f"Group{i // block}" for i in range(n_items)],
            "year": [1950 + (i * 7) % 70 for i in range(n_items)],
        }
    )
    users = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in range(1, n_users + 1)],
            "age": rng.choice(AGES, size=n_users),
            "gender": rng.choice(["F", "M"], size=n_users),
            "occupation": rng.choice(OCCUPATIONS, size=n_users),
            "cluster": clusters,
        }
    )
    return build_dataset("synthetic", ratings, items, users, source=f"synthetic generator (seed {seed})")


def planted_block(dataset: Dataset, item: int) -> int:
    """The taste group (cluster) an internal item id belongs to, read from its genre."""
    return int(str(dataset.items.at[item, "genres"]).removeprefix("Group"))


def write_grouplens_files(dataset: Dataset, folder: Path) -> Path:
    """``dataset`` in GroupLens' MovieLens-1M layout (``ratings.dat``, ``movies.dat``, ``users.dat``,
    ``::``-separated): an ML-1M-shaped folder for tests and demos that have no MovieLens copy."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = dataset.interactions
    users, items = dataset.user_ids[frame["user"]], dataset.item_ids[frame["item"]]
    ratings = (f"{u}::{i}::{int(r)}::{t}" for u, i, r, t in zip(users, items, frame["rating"], frame["timestamp"],
                                                                    strict=True))  # fmt: skip
    (folder / "ratings.dat").write_text("\n".join(ratings) + "\n", encoding="latin-1")
    movies = (f"{row.item_id}::{row.title}::{row.genres}" for row in dataset.items.itertuples())
    (folder / "movies.dat").write_text("\n".join(movies) + "\n", encoding="latin-1")
    user_rows = (f"{row.user_id}::{getattr(row, 'gender', '')}::{getattr(row, 'age', '')}::"
                 f"{getattr(row, 'occupation', '')}::00000" for row in dataset.users.itertuples())  # fmt: skip
    (folder / "users.dat").write_text("\n".join(user_rows) + "\n", encoding="latin-1")
    return folder


def make_scale_synthetic(n_interactions: int, n_items: int, mean_history: int = 100, seed: int = 0) -> Dataset:
    """About ``n_interactions`` implicit interactions over ``n_items`` items, built without a Python
    loop or a string per row, for measuring how the lab scales (20M rows in seconds).

    Users (``n_interactions / mean_history`` of them, history lengths Poisson around the mean, at
    least 3) each walk one of 64 regions of the catalogue; item popularity falls off as a power law
    within a region, as real catalogues do. Repeated (user, item) pairs are dropped, so the count
    comes out a little under ``n_interactions``. Timestamps are positions in a history.
    """
    rng = np.random.default_rng(seed)
    n_users = max(MIN_SCALE_USERS, n_interactions // mean_history)
    lengths = np.maximum(rng.poisson(mean_history, n_users), 3)
    users = np.repeat(np.arange(1, n_users + 1), lengths)
    region = rng.integers(0, 64, n_users)[users - 1]
    # u ** 2 puts most draws near the region's start: its popular items.
    offset = (rng.random(len(users)) ** 2 * (n_items / 4)).astype(np.int64)
    items = 1 + (region * (n_items // 64) + offset) % n_items
    frame = pd.DataFrame({"user": users, "item": items}).drop_duplicates(ignore_index=True)
    frame["rating"] = np.float32(1.0)
    frame["timestamp"] = frame.groupby("user").cumcount().to_numpy(dtype=np.int64)
    item_ids = pd.Index(np.arange(1, n_items + 1).astype(str))
    item_frame = pd.DataFrame({"item_id": item_ids, "title": "Item " + item_ids, "genres": "", "year": np.nan},
                              index=pd.RangeIndex(1, n_items + 1))  # fmt: skip
    user_frame = pd.DataFrame({"user_id": np.arange(1, n_users + 1).astype(str)}, index=pd.RangeIndex(1, n_users + 1))
    source = f"scale generator ({n_interactions:,} interactions, {n_items:,} items, seed {seed})"
    return Dataset(f"scale-{n_interactions}-{n_items}", frame, item_frame, user_frame, source=source)


MIN_SCALE_USERS = 10
