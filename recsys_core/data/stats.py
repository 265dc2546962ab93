"""Dataset statistics for the pages."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_core.data.dataset import Dataset


def long_tail(dataset: Dataset, by: str) -> pd.DataFrame:
    """Interactions per user (``by="user"``) or per item (``by="item"``), most active first,
    with the cumulative share of all interactions: the shape of the long tail."""
    counts = np.sort(np.bincount(dataset.interactions[by].to_numpy())[1:])[::-1]
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(counts) + 1),
            "interactions": counts,
            "cumulative share": np.cumsum(counts) / max(counts.sum(), 1),
        }
    )
