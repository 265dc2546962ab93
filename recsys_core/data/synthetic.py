"""A synthetic dataset with a planted answer, for tests and for running the lab offline.

Users belong to one of ``n_clusters`` taste groups; each group owns a contiguous block of items
(its "genre"). A user walks through their group's block in order, one step at a time, starting
at a random offset, with a small chance of a random item instead. So

- the held-out items of a user lie in their own block (collaborative models should find them);
- the next item usually follows the last one (sequential models should find that rule);
- popularity alone knows nothing of either.
"""

from __future__ import annotations

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
