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
    """The k best items per row, ties to the lower item id (a stable descending sort)."""
    k = min(k, scores.shape[1])
    values, indices = torch.sort(scores, dim=1, descending=True, stable=True)
    return indices[:, :k], values[:, :k]


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
