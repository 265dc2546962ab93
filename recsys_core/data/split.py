"""The one evaluation split: temporal leave-last-out per user (SPEC section 3).

Each user's interactions are ordered by timestamp, ties kept in file order (a stable sort); the
last one is the test item, the second to last the validation item, the rest is training data.
Users with fewer than three interactions keep everything in training and are not evaluated:
with fewer there is no history left to learn from once two items are held out. (Files users bring
are checked before this: such users are left out with a note, see ``keep_evaluable_users``.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_core.data.dataset import MIN_INTERACTIONS, Dataset

PROTOCOL = (
    "temporal leave-last-out per user; full-catalogue ranking; train+validation history excluded; "
    "tuned on validation, reported on test"
)


@dataclass
class Split:
    n_users: int
    n_items: int
    train: pd.DataFrame  # user, item, rating, timestamp; per user in time order
    valid_item: np.ndarray  # (n_users + 1,) internal item id, 0 where the user is not evaluated
    test_item: np.ndarray  # (n_users + 1,)

    @cached_property
    def train_sequences(self) -> list[np.ndarray]:
        """Per user (index = internal id) the training items in time order."""
        return _group_items(self.train, self.n_users)

    def input_sequences(self, stage: str) -> list[np.ndarray]:
        """What a model may read about each user when predicting ``stage``'s held-out item.

        For validation: the training items. For test: training items plus the validation item,
        which is also what is excluded from the ranking at that stage.
        """
        if stage == "valid":
            return self.train_sequences
        if stage == "test":
            return self._test_inputs
        raise ValueError(f"stage must be 'valid' or 'test', not {stage!r}")

    @cached_property
    def _test_inputs(self) -> list[np.ndarray]:
        return [
            np.append(seq, self.valid_item[u]) if self.valid_item[u] else seq
            for u, seq in enumerate(self.train_sequences)
        ]

    def targets(self, stage: str) -> np.ndarray:
        return {"valid": self.valid_item, "test": self.test_item}[stage]

    def evaluated_users(self, stage: str) -> np.ndarray:
        return np.flatnonzero(self.targets(stage))

    @cached_property
    def train_matrix(self) -> sp.csr_matrix:
        """Binary (n_users + 1, n_items + 1) matrix of training interactions."""
        users = self.train["user"].to_numpy()
        items = self.train["item"].to_numpy()
        data = np.ones(len(users), dtype=np.float32)
        matrix = sp.csr_matrix((data, (users, items)), shape=(self.n_users + 1, self.n_items + 1))
        matrix.data[:] = 1.0  # repeated pairs count once
        return matrix

    @cached_property
    def train_pair_keys(self) -> np.ndarray:
        """Sorted ``user * (n_items + 1) + item`` keys of training pairs, for fast membership tests."""
        return np.unique(self.train["user"].to_numpy() * (self.n_items + 1) + self.train["item"].to_numpy())

    def is_train_pair(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = np.asarray(users) * (self.n_items + 1) + np.asarray(items)
        position = np.searchsorted(self.train_pair_keys, keys).clip(max=len(self.train_pair_keys) - 1)
        return self.train_pair_keys[position] == keys

    @cached_property
    def item_popularity(self) -> np.ndarray:
        """Training interactions per item, (n_items + 1,); index 0 (padding) is 0."""
        return np.bincount(self.train["item"].to_numpy(), minlength=self.n_items + 1).astype(np.float64)


def temporal_leave_last_out(dataset: Dataset) -> Split:
    frame = dataset.interactions.reset_index(drop=True)
    # lexsort is stable: equal (user, timestamp) keep file order.
    order = np.lexsort((np.arange(len(frame)), frame["timestamp"].to_numpy(), frame["user"].to_numpy()))
    ordered = frame.iloc[order].reset_index(drop=True)
    users = ordered["user"].to_numpy()
    position_from_end = ordered.groupby("user").cumcount(ascending=False).to_numpy()
    counts = np.bincount(users, minlength=dataset.n_users + 1)
    evaluated = counts[users] >= MIN_INTERACTIONS
    is_test = evaluated & (position_from_end == 0)
    is_valid = evaluated & (position_from_end == 1)

    valid_item = np.zeros(dataset.n_users + 1, dtype=np.int64)
    test_item = np.zeros(dataset.n_users + 1, dtype=np.int64)
    valid_item[users[is_valid]] = ordered["item"].to_numpy()[is_valid]
    test_item[users[is_test]] = ordered["item"].to_numpy()[is_test]
    train = ordered[~(is_test | is_valid)].reset_index(drop=True)
    return Split(dataset.n_users, dataset.n_items, train, valid_item, test_item)


def _group_items(frame: pd.DataFrame, n_users: int) -> list[np.ndarray]:
    users = frame["user"].to_numpy()
    items = frame["item"].to_numpy()
    boundaries = np.searchsorted(users, np.arange(n_users + 2))
    return [items[boundaries[u] : boundaries[u + 1]] for u in range(n_users + 1)]
