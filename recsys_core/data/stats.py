"""Dataset statistics for the pages: long tails, genres, activity over time."""

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


def genre_counts(dataset: Dataset) -> pd.DataFrame:
    """Interactions per genre (an item with two genres counts for both)."""
    genres = dataset.items["genres"].str.split("|")
    per_item = np.bincount(dataset.interactions["item"].to_numpy(), minlength=dataset.n_items + 1)
    frame = pd.DataFrame({"genre": genres, "interactions": per_item[dataset.items.index]}).explode("genre")
    frame = frame[frame["genre"].fillna("") != ""]
    return frame.groupby("genre", as_index=False)["interactions"].sum().sort_values("interactions", ascending=False)


def interactions_over_time(dataset: Dataset, freq: str = "MS") -> pd.DataFrame:
    """Interactions per period (months by default)."""
    moments = pd.to_datetime(dataset.interactions["timestamp"], unit="s", utc=True)
    counts = moments.dt.tz_localize(None).dt.to_period(freq[0]).value_counts().sort_index()
    return pd.DataFrame({"period": counts.index.to_timestamp(), "interactions": counts.to_numpy()})
