"""Dataset statistics for the pages."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_core.data.dataset import Dataset
from recsys_core.data.split import Split


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
    """Items and interactions per genre (an item with several genres counts in each)."""
    genres = dataset.items["genres"].str.split("|")
    per_item = pd.DataFrame({"item": dataset.items.index, "genre": genres}).explode("genre")
    per_item = per_item[per_item["genre"].fillna("") != ""]
    interactions = np.bincount(dataset.interactions["item"].to_numpy(), minlength=dataset.n_items + 1)
    per_item["interactions"] = interactions[per_item["item"].to_numpy()]
    table = per_item.groupby("genre").agg(items=("item", "size"), interactions=("interactions", "sum"))
    return table.sort_values("interactions", ascending=False).reset_index()


def popular_head(dataset: Dataset, share: float = 0.5) -> tuple[int, float]:
    """The head of the long tail: how many of the most popular items account for ``share`` of all
    interactions, and what fraction of the catalogue that is."""
    items = long_tail(dataset, "item")
    head = int((items["cumulative share"] < share).sum()) + 1
    return head, head / max(len(items), 1)


def items_with_genre(dataset: Dataset, genre: str) -> np.ndarray:
    """Internal ids of the items tagged ``genre`` (an item's genres are stored "|"-joined)."""
    tagged = dataset.items["genres"].str.split("|").apply(lambda genres: genre in genres)
    return dataset.items.index[tagged].to_numpy()


def popular_in_genre(dataset: Dataset, split: Split, genre: str, n: int) -> list[int]:
    """The ``n`` items of ``genre`` with the most training interactions, most popular first."""
    items = items_with_genre(dataset, genre)
    return items[np.argsort(-split.item_popularity[items], kind="stable")][:n].tolist()


def interactions_over_time(dataset: Dataset, freq: str = "MS") -> pd.DataFrame:
    """Interactions and mean rating per period (calendar months by default)."""
    when = pd.to_datetime(dataset.interactions["timestamp"], unit="s")
    frame = pd.DataFrame({"period": when.dt.to_period(freq[0]).dt.start_time,
                          "rating": dataset.interactions["rating"]})  # fmt: skip
    table = frame.groupby("period").agg(interactions=("rating", "size"), mean_rating=("rating", "mean"))
    return table.reset_index().rename(columns={"mean_rating": "mean rating"})


def rating_counts(dataset: Dataset) -> pd.DataFrame:
    counts = dataset.interactions["rating"].value_counts().sort_index()
    return pd.DataFrame({"rating": counts.index.to_numpy(), "interactions": counts.to_numpy()})


def user_activity(dataset: Dataset) -> pd.DataFrame:
    """Interactions per user, indexed by internal user id, with the external id."""
    counts = np.bincount(dataset.interactions["user"].to_numpy(), minlength=dataset.n_users + 1)[1:]
    return pd.DataFrame({"user_id": dataset.users["user_id"].to_numpy(), "interactions": counts},
                        index=dataset.users.index)  # fmt: skip


def user_history(dataset: Dataset, split: Split, user: int) -> pd.DataFrame:
    """A user's interactions in time order with titles, genres, dates and the protocol's part
    (train, validation, or the held-out test item)."""
    rows = dataset.interactions[dataset.interactions["user"] == user]
    rows = rows.iloc[np.lexsort((np.arange(len(rows)), rows["timestamp"].to_numpy()))]
    items = rows["item"].to_numpy()
    part = np.full(len(rows), "train", dtype=object)
    if len(rows) and split.test_item[user]:
        part[-1] = "test (held out)"
        if len(rows) > 1:
            part[-2] = "validation"
    return pd.DataFrame({
        "date": pd.to_datetime(rows["timestamp"].to_numpy(), unit="s"),
        "item_id": dataset.item_ids[items],
        "title": dataset.items.loc[items, "title"].to_numpy(),
        "genres": dataset.items.loc[items, "genres"].str.replace("|", ", ").to_numpy(),
        "rating": rows["rating"].to_numpy(),
        "part": part,
    })  # fmt: skip
