"""Labelled-row evaluation of rankers: AUC and LogLoss, on two kinds of rows.

1. The explicit-label protocol (``evaluate --protocol ctr``), the usual click-through-rate setup
   that peers such as RecBole report, so our rankers can be compared with theirs: interactions
   split at random 80/10/10 (seeded), label = rating >= 4, user and item features plus the
   interaction's weekday and hour, and for most rankers the items the user rated in training as
   the history; each ranker is trained (``recsys_core.training.ctr``) on the 80%, its epoch chosen on
   validation AUC, and AUC/LogLoss reported on the 10% test rows. The rankers learn
   the label and, from the training rows' stars, the other thresholds of the rating (an ordinal
   auxiliary loss, ``RankerConfig.rating_levels``); validation and test rows are scored on the
   label alone. Statistics of the training rows (label and rating means, activity, recent labels,
   the row's place in the user's history) can be added as fields (``ROW_FEATURES``); on ml-100k
   only the last one raised validation AUC, and the rankers it helped read it.
2. Held-out rows of the top-K protocol (SPEC section 3): each evaluated user's held-out item as a
   positive against sampled unseen items as negatives, scored with the stage's input history.

A popularity-only scorer is evaluated on the same rows as the floor every ranker must clear.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from recsys_core.data import Dataset
from recsys_core.data.features import context_features
from recsys_core.data.split import Split
from recsys_core.metrics import auc, log_loss
from recsys_core.models.base import Batch, Recommender
from recsys_core.models.rankers.base import RankerConfig

CTR_PROTOCOL = (
    "explicit labels: interactions split at random 80/10/10 (seed 0), label = rating >= 4; user and item "
    "features, weekday and hour, the user's rated training items as history (most rankers); trained on the 80% "
    "(label, plus the other star thresholds as an ordinal auxiliary loss); epoch chosen on validation AUC "
    "(patience 10), AUC and LogLoss on test"
)
POSITIVE_RATING = 4.0
CTR_ROW_FEATURES: tuple[str, ...] = ()
FRACTIONS = (0.8, 0.1, 0.1)


class CtrUnavailable(ValueError):
    """The dataset cannot be evaluated on the explicit-label protocol (no ratings, say)."""


Rows = dict[str, np.ndarray]  # user, item, weekday, hour, label; training rows: rating; optionally history (N, L)


@dataclass
class CtrSplit:
    train: Rows
    valid: Rows
    test: Rows
    popularity: np.ndarray  # (n_items + 1,) training-row counts, for features and the popularity scorer
    timestamps: tuple[np.ndarray, np.ndarray, np.ndarray]  # of the train, valid and test rows


# --------------------------------------------------------------------------- row features
# Statistics of the training rows as extra ranker fields (``RankerConfig.row_fields``), for users
# and items whose ids are seen in few rows. A label or rating mean of a training row comes from
# the other folds only (out-of-fold), so no row ever reads its own label; validation and test rows
# read all training rows. Means are shrunk towards the global mean by ``PRIOR_ROWS`` pseudo-rows
# and cut at deciles of the users' (items') own means; counts are cut at deciles too.
ROW_FEATURES = {
    "user_label": ("user", "label"), "item_label": ("item", "label"),
    "user_rating": ("user", "rating"), "item_rating": ("item", "rating"),
    "user_activity": ("user", None), "user_recent_label": ("user", "recent"),
    "user_position": ("user", "position"),
}  # fmt: skip
RECENT_ROWS = 10  # user_recent_label: the mean label of the user's last RECENT_ROWS earlier training rows
N_FEATURE_BUCKETS = 10
N_FOLDS = 5
PRIOR_ROWS = 5.0


def shrunk_means(keys: np.ndarray, values: np.ndarray, n_keys: int, prior: float) -> tuple[np.ndarray, np.ndarray]:
    """Per key: the mean of ``values`` shrunk towards ``prior`` by PRIOR_ROWS pseudo-rows, and the count."""
    count = np.bincount(keys, minlength=n_keys).astype(np.float64)
    total = np.bincount(keys, weights=values, minlength=n_keys)
    return (total + PRIOR_ROWS * prior) / (count + PRIOR_ROWS), count


def decile_codes(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Codes 1..N_FEATURE_BUCKETS of ``values`` at the deciles of ``reference``."""
    edges = np.quantile(reference, np.linspace(0, 1, N_FEATURE_BUCKETS + 1)[1:-1])
    return (np.searchsorted(edges, values, side="right") + 1).astype(np.int64)


def out_of_fold_means(
    keys: np.ndarray, values: np.ndarray, n_keys: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each training row's key mean over the other folds' rows (and that count), and every key's mean
    over all rows (for rows outside training). A row's own value never enters its mean."""
    prior = float(values.mean())
    full, _ = shrunk_means(keys, values, n_keys, prior)
    fold = np.random.default_rng(seed).integers(0, N_FOLDS, len(keys))
    row_mean, row_count = np.empty(len(keys)), np.empty(len(keys))
    for k in range(N_FOLDS):
        inside = fold == k
        means, counts = shrunk_means(keys[~inside], values[~inside], n_keys, prior)
        row_mean[inside], row_count[inside] = means[keys[inside]], counts[keys[inside]]
    return row_mean, row_count, full


def recent_label_codes(
    train_users: np.ndarray, train_times: np.ndarray, train_labels: np.ndarray, users: np.ndarray, times: np.ndarray
) -> np.ndarray:
    """For rows (``users``, ``times``): the mean label of the user's last ``RECENT_ROWS`` training
    rows strictly earlier than the row, as code 1 + round(10 * mean) (0: none). Only the past is
    read, as a live system could, and a training row never reads itself (nor a row of its second)."""
    key = train_users.astype(np.int64) << 32 | train_times.astype(np.int64)
    order = np.argsort(key, kind="stable")
    key = key[order]
    cumulative = np.concatenate([[0.0], np.cumsum(train_labels[order], dtype=np.float64)])
    first = np.searchsorted(key, users.astype(np.int64) << 32)  # the user's first training row
    before = np.searchsorted(key, users.astype(np.int64) << 32 | times.astype(np.int64))  # rows earlier than the row
    window = np.minimum(before - first, RECENT_ROWS)
    mean = (cumulative[before] - cumulative[before - window]) / np.maximum(window, 1)
    return np.where(window > 0, 1 + np.rint(10 * mean), 0).astype(np.int64)


def position_codes(
    train_users: np.ndarray, train_times: np.ndarray, users: np.ndarray, times: np.ndarray
) -> np.ndarray:
    """For rows (``users``, ``times``): the share of the user's training rows strictly earlier than
    the row (where it sits in the user's history: MovieLens asked new users to rate films first),
    as code 1 + its decile (0: a user with no training rows). No label is read."""
    key = np.sort(train_users.astype(np.int64) << 32 | train_times.astype(np.int64))
    first = np.searchsorted(key, users.astype(np.int64) << 32)
    total = np.searchsorted(key, (users.astype(np.int64) + 1) << 32) - first
    before = np.searchsorted(key, users.astype(np.int64) << 32 | times.astype(np.int64)) - first
    share = before / np.maximum(total, 1)
    return np.where(total > 0, 1 + np.minimum((share * N_FEATURE_BUCKETS).astype(np.int64), N_FEATURE_BUCKETS - 1), 0)


def rated_histories(
    train_users: np.ndarray,
    train_items: np.ndarray,
    train_times: np.ndarray,
    users: np.ndarray,
    length: int,
    own_items: np.ndarray | None = None,
) -> np.ndarray:
    """(N, length) histories for rows of ``users``: the user's last ``length`` training items in
    time order, left-padded with 0, whatever their stars (the items a user chose to rate, as in
    SVD++'s implicit feedback N(u)); no label is read. For training rows, ``own_items`` are their
    items, each left out of its own row's history.

    Vectorised over rows (index arithmetic into the time-ordered items), so a million rows cost
    one pass, not a pass per user.
    """
    order = np.lexsort((train_times, train_users))
    items = train_items[order]
    bounds = np.searchsorted(train_users[order], np.arange(users.max(initial=0) + 2))
    # A row's history is its user's last `length` items; a training row among them is replaced by
    # the item before, so the window holds the last `length + 1` items (column 0 the oldest).
    positions = bounds[users + 1][:, None] - (length + 1) + np.arange(length + 1)[None, :]  # (N, length + 1)
    valid = positions >= bounds[users][:, None]
    window = np.where(valid, items[positions.clip(min=0)], 0)
    if own_items is None:
        return window[:, 1:]
    is_own = (window == np.asarray(own_items)[:, None]) & valid
    is_own[:, 0] = False  # the oldest column is outside the last `length` items
    has_own = is_own.any(axis=1)
    last_own = np.where(has_own, length - np.argmax(is_own[:, ::-1], axis=1), 0)  # (N,) its column, 0 when none
    columns = np.arange(length)[None, :]
    # Without its own item a row keeps columns 1..length; with it at column j, columns 0..length but j.
    take = np.where(has_own[:, None], columns + (columns >= last_own[:, None]), columns + 1)
    return np.take_along_axis(window, take, axis=1)


def prepare_rows(
    split: CtrSplit, dataset: Dataset, settings: dict[str, object], seed: int = 0
) -> tuple[CtrSplit, dict[str, int], dict[str, object]]:
    """The split as a ranker with ``settings`` reads it, its ``row_fields``, and the settings left
    for its config: ``row_features`` (default ``CTR_ROW_FEATURES``) names the ``ROW_FEATURES`` its
    rows carry, and ``rated_history`` gives every row its user's rated training items as history."""
    settings = dict(settings)
    split, row_fields = with_row_features(split, tuple(settings.pop("row_features", CTR_ROW_FEATURES)), dataset, seed)
    if settings.pop("rated_history", False):
        length = int(settings.get("history_len", RankerConfig.history_len))
        if split.train.get("history", np.zeros((0, 0))).shape[1:] != (length,):
            train, times = split.train, split.timestamps[0]
            for rows in (split.train, split.valid, split.test):
                own = rows["item"] if rows is split.train else None
                rows["history"] = rated_histories(train["user"], train["item"], times, rows["user"], length, own)
    return split, row_fields, settings


def with_row_features(
    split: CtrSplit, names: tuple[str, ...], dataset: Dataset, seed: int = 0
) -> tuple[CtrSplit, dict[str, int]]:
    """A copy of ``split`` whose rows carry the named ``ROW_FEATURES`` as codes (those it has already
    are kept), and the ``row_fields`` of a ranker that reads them: name -> number of codes."""
    split = CtrSplit({**split.train}, {**split.valid}, {**split.test}, split.popularity, split.timestamps)
    train = split.train
    sizes = {"user": dataset.n_users + 1, "item": dataset.n_items + 1}
    for name in names:
        if name not in ROW_FEATURES:
            raise ValueError(f"unknown row feature {name!r}; known: {', '.join(ROW_FEATURES)}")
        if all(name in rows for rows in (split.train, split.valid, split.test)):
            continue
        entity, target = ROW_FEATURES[name]
        keys, n_keys = train[entity], sizes[entity]
        seen = np.bincount(keys, minlength=n_keys) > 0
        if target is None:  # a count: no label involved, every part reads all training rows
            count = np.bincount(keys, minlength=n_keys).astype(np.float64)
            codes = np.where(seen, decile_codes(count, count[seen]), 0)
            for rows in (split.train, split.valid, split.test):
                rows[name] = codes[rows[entity]]
            continue
        if target == "position":
            for rows, times in zip((split.train, split.valid, split.test), split.timestamps, strict=True):
                rows[name] = position_codes(train["user"], split.timestamps[0], rows["user"], times)
            continue
        if target == "recent":
            for rows, times in zip((split.train, split.valid, split.test), split.timestamps, strict=True):
                rows[name] = recent_label_codes(train["user"], split.timestamps[0], train["label"], rows["user"], times)
            continue
        values = train["label"].astype(np.float64) if target == "label" else train["rating"].astype(np.float64)
        row_mean, row_count, full = out_of_fold_means(keys, values, n_keys, seed)
        reference = full[seen]
        train[name] = np.where(row_count > 0, decile_codes(row_mean, reference), 0)
        codes = np.where(seen, decile_codes(full, reference), 0)
        for rows in (split.valid, split.test):
            rows[name] = codes[rows[entity]]
    return split, {name: N_FEATURE_BUCKETS + (2 if ROW_FEATURES[name][1] == "recent" else 1) for name in names}


def ctr_split(dataset: Dataset, seed: int = 0) -> CtrSplit:
    """Rows of every interaction, shuffled with ``seed`` and cut 80/10/10."""
    frame = dataset.interactions
    ratings = frame["rating"].to_numpy(dtype=np.float64)
    if np.unique(ratings).size < 2:
        raise CtrUnavailable(f"{dataset.name} has no graded ratings, so there is no explicit label (rating >= 4)")
    weekday, hour = context_features(frame["timestamp"].to_numpy())
    rows = {
        "user": frame["user"].to_numpy(dtype=np.int64), "item": frame["item"].to_numpy(dtype=np.int64),
        "weekday": weekday.astype(np.int64), "hour": hour.astype(np.int64),
        "label": (ratings >= POSITIVE_RATING).astype(np.float32),
    }  # fmt: skip
    order = np.random.default_rng(seed).permutation(len(ratings))
    cuts = np.cumsum([round(f * len(order)) for f in FRACTIONS[:2]])
    parts = np.split(order, cuts)
    train, valid, test = ({k: v[p] for k, v in rows.items()} for p in parts)
    # Training rows keep their stars (the rankers' ordinal terms and the rating features read them);
    # validation and test rows carry only the label they are scored on.
    train["rating"] = ratings[parts[0]].astype(np.float32)
    popularity = np.bincount(train["item"], minlength=dataset.n_items + 1).astype(np.float64)
    times = frame["timestamp"].to_numpy(dtype=np.int64)
    return CtrSplit(train, valid, test, popularity, tuple(times[p] for p in parts))


def row_batches(rows: Rows, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[Batch]:
    """Batches of labelled rows (shuffled when ``rng`` is given); no history unless the rows carry one."""
    n = len(rows["label"])
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        batch = {k: torch.from_numpy(v[index]) for k, v in rows.items()}
        if "history" not in batch:
            batch["history"] = torch.zeros(len(index), 1, dtype=torch.long)
        yield batch


@torch.no_grad()
def row_logits(model: Recommender, rows: Rows, batch_size: int = 8192) -> np.ndarray:
    model.eval()
    device = model.device
    out = [model({k: v.to(device) for k, v in batch.items()}).float().cpu().numpy()
           for batch in row_batches(rows, batch_size)]  # fmt: skip
    return np.concatenate(out) if out else np.zeros(0)


def popularity_logits(rows: Rows, popularity: np.ndarray) -> np.ndarray:
    """The popularity-only scorer: log training count of the row's item (ordering is all AUC needs)."""
    return np.log1p(popularity[rows["item"]])


def scores_of(labels: np.ndarray, logits: np.ndarray, calibrated: bool = True) -> dict[str, float]:
    """AUC and, for a model trained on these labels, LogLoss (a popularity count is not a probability)."""
    result = {"AUC": auc(labels, logits)}
    if calibrated:
        result["LogLoss"] = log_loss(labels, logits)
    return result


# --------------------------------------------------------------------------- held-out rows, top-K protocol


def held_out_rows(split: Split, stage: str, n_negatives: int = 20, seed: int = 0) -> Rows:
    """Each evaluated user's held-out item (label 1) and ``n_negatives`` items they never saw in
    the stage's input nor as that target (label 0), with the stage's input history (last 50)."""
    rng = np.random.default_rng(seed)
    users = split.evaluated_users(stage)
    targets = split.targets(stage)
    inputs = split.input_sequences(stage)
    rows_user, rows_item, labels = [], [], []
    for user in users:
        seen = set(inputs[user].tolist()) | {int(targets[user])}
        negatives: list[int] = []
        while len(negatives) < n_negatives:
            drawn = rng.integers(1, split.n_items + 1, size=2 * n_negatives)
            negatives += [int(i) for i in drawn if int(i) not in seen and int(i) not in negatives]
        items = [int(targets[user]), *negatives[:n_negatives]]
        rows_user += [user] * len(items)
        rows_item += items
        labels += [1.0] + [0.0] * n_negatives
    length = 50
    history = np.zeros((len(users), length), dtype=np.int64)
    for row, user in enumerate(users):
        recent = inputs[user][-length:]
        if len(recent):
            history[row, -len(recent) :] = recent
    per_user = n_negatives + 1
    return {
        "user": np.array(rows_user, dtype=np.int64), "item": np.array(rows_item, dtype=np.int64),
        "history": np.repeat(history, per_user, axis=0),
        "weekday": np.zeros(len(rows_user), dtype=np.int64), "hour": np.zeros(len(rows_user), dtype=np.int64),
        "label": np.array(labels, dtype=np.float32),
    }  # fmt: skip
