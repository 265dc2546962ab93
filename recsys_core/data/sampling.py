"""Negative sampling shared by the models trained on (user, item) pairs."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from recsys_core.data.split import Split


def sample_negatives(split: Split, users: np.ndarray, rng: np.random.Generator, max_rounds: int = 20) -> np.ndarray:
    """One uniformly drawn item per row that the row's user has not interacted with in training.

    Collisions with the user's training items are redrawn (a few rounds suffice on sparse data).
    """
    negatives = rng.integers(1, split.n_items + 1, size=len(users))
    pending = np.flatnonzero(split.is_train_pair(users, negatives))
    for _ in range(max_rounds):
        if not len(pending):
            break
        negatives[pending] = rng.integers(1, split.n_items + 1, size=len(pending))
        pending = pending[split.is_train_pair(users[pending], negatives[pending])]
    return negatives


def pointwise_rows(
    split: Split, n_negatives: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every training pair as a positive plus ``n_negatives`` sampled unseen items per pair.

    Returns shuffled (users, items, labels) for a pointwise (BCE) loss, as in NCF.
    """
    users = split.train["user"].to_numpy()
    positives = split.train["item"].to_numpy()
    negative_users = np.repeat(users, n_negatives)
    negatives = sample_negatives(split, negative_users, rng)
    all_users = np.concatenate([users, negative_users])
    all_items = np.concatenate([positives, negatives])
    labels = np.concatenate([np.ones(len(users)), np.zeros(len(negatives))]).astype(np.float32)
    order = rng.permutation(len(all_users))
    return all_users[order], all_items[order], labels[order]


def pointwise_batches(
    split: Split, n_negatives: int, batch_size: int, rng: np.random.Generator
) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of NCF-style batches: user, item, label, with fresh negatives every epoch."""
    users, items, labels = pointwise_rows(split, n_negatives, rng)
    for start in range(0, len(users), batch_size):
        rows = slice(start, start + batch_size)
        yield {
            "user": torch.from_numpy(users[rows]),
            "item": torch.from_numpy(items[rows]),
            "label": torch.from_numpy(labels[rows]),
        }


def triplet_batches(split: Split, batch_size: int, rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of BPR triplets: each training pair (u, i) with a fresh unseen item j."""
    users = split.train["user"].to_numpy()
    positives = split.train["item"].to_numpy()
    negatives = sample_negatives(split, users, rng)
    order = rng.permutation(len(users))
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield {
            "user": torch.from_numpy(users[index]),
            "positive": torch.from_numpy(positives[index]),
            "negative": torch.from_numpy(negatives[index]),
        }


def user_row_batches(split: Split, batch_size: int, rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of whole training rows (B, n_items + 1), for the auto-encoders, users shuffled."""
    matrix = split.train_matrix
    users = rng.permutation(np.flatnonzero(np.diff(matrix.indptr)))  # users with any training item
    for start in range(0, len(users), batch_size):
        index = users[start : start + batch_size]
        yield {"user": torch.from_numpy(index), "row": torch.from_numpy(matrix[index].toarray())}
