"""Tensor helpers every scorer shares: padded histories in, ranked items out.

Histories are left-padded with item 0 (most recent item last); ties in a ranking go to the lower
item id, a stable descending sort, so every list the lab shows agrees with its metrics.
"""

from __future__ import annotations

import numpy as np
import torch


def rank_of_targets(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each row's target among its scores; ties go to the lower item id."""
    target_scores = scores.gather(1, targets[:, None])  # (B, 1)
    ids = torch.arange(scores.shape[1], device=scores.device)[None, :]
    ahead = (scores > target_scores) | ((scores == target_scores) & (ids < targets[:, None]))
    return ahead.sum(dim=1)


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best items per row, ties to the lower item id: the first k of a stable descending sort.

    Sorting a whole row costs n log n; at a million items that sort was most of an evaluation
    (11x slower than this, docs/benchmarks.md, "The top 10 of a batch of scores"). So
    the k-th best value is found first (``torch.topk``, linear), and only the items scoring at least
    that much, k of them plus any tied with the k-th, are sorted stably in item order, which gives
    the same k items in the same order as the full sort."""
    k = min(k, scores.shape[1])
    if k == 0 or scores.shape[1] <= 64 * k:
        values, indices = torch.sort(scores, dim=1, descending=True, stable=True)
        return indices[:, :k], values[:, :k]
    kth = torch.topk(scores, k, dim=1).values[:, -1:]  # (B, 1)
    chosen = scores >= kth  # (B, n): at least k per row, unless a row holds NaN
    counts = chosen.sum(dim=1)
    if bool((counts < k).any()) or int(counts.max()) > scores.shape[1] // 4:
        # NaN scores, or most of a row tied (a row of -inf after masking): the full sort is as cheap.
        values, indices = torch.sort(scores, dim=1, descending=True, stable=True)
        return indices[:, :k], values[:, :k]
    rows, columns = chosen.nonzero(as_tuple=True)  # row by row, columns ascending
    position = torch.arange(len(rows), device=scores.device) - (counts.cumsum(0) - counts)[rows]
    candidates = torch.zeros((len(scores), int(counts.max())), dtype=torch.long, device=scores.device)
    candidates[rows, position] = columns
    found = torch.zeros(candidates.shape, dtype=torch.bool, device=scores.device)
    found[rows, position] = True
    values = scores.gather(1, candidates).masked_fill(~found, float("-inf"))
    order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]
    return candidates.gather(1, order), values.gather(1, order)


def mask_history(scores: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """Scores with padding (item 0) and every item of the (padded) history set to -inf."""
    masked = scores.clone()
    masked.scatter_(1, history, float("-inf"))
    masked[:, 0] = float("-inf")
    return masked


def pad_histories(sequences: list[np.ndarray], device: torch.device | str = "cpu") -> torch.Tensor:
    """Left-padded (B, L) LongTensor, most recent item last; L >= 1 so empty histories work."""
    length = max(1, max((len(s) for s in sequences), default=0))
    padded = np.zeros((len(sequences), length), dtype=np.int64)
    for row, seq in enumerate(sequences):
        if len(seq):
            padded[row, -len(seq) :] = seq
    return torch.from_numpy(padded).to(device)


# Scores held at once while ranking a batch of users against the whole catalogue. A batch is
# scored in full, all its items at once, so that a target's rank is counted among scores computed by
# the same matrix product (exact ties included): memory is bounded by scoring fewer users per batch
# as the catalogue grows, not by cutting the catalogue. About 20 bytes a score at the peak (the
# scores, the history-masked copy, ranking), so ~350 MB: 512 users up to 32k items, 16 users at 1M.
SCORES_PER_BATCH = 2**24


def users_per_batch(n_items: int, most: int = 512) -> int:
    """Users scored together against ``n_items`` items within :data:`SCORES_PER_BATCH`."""
    return max(1, min(most, SCORES_PER_BATCH // (n_items + 1)))
