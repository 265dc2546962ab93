"""Labelled-row evaluation of rankers: AUC and LogLoss, on two kinds of rows.

1. The explicit-label protocol (``evaluate --protocol ctr``), the usual click-through-rate setup
   that peers such as RecBole report, so our rankers can be compared with theirs: interactions
   split at random 80/10/10 (seeded), label = rating >= 4, user and item features plus the
   interaction's weekday and hour, and for most rankers the items the user rated in training as
   the history (``RATED_HISTORY``); each ranker is trained on the 80%, its epoch chosen on
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

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from recsys_core.data import Dataset, load_dataset
from recsys_core.data.features import context_features, side_features
from recsys_core.data.split import Split
from recsys_core.evaluate import auc, log_loss
from recsys_core.models import REGISTRY, build_model
from recsys_core.models.base import Batch, Recommender
from recsys_core.models.ranking import RankerConfig
from recsys_core.train import ProgressCallback, fit, resolve_device, seed_everything

CTR_PROTOCOL = (
    "explicit labels: interactions split at random 80/10/10 (seed 0), label = rating >= 4; user and item "
    "features, weekday and hour, the user's rated training items as history (most rankers); trained on the 80% "
    "(label, plus the other star thresholds as an ordinal auxiliary loss); epoch chosen on validation AUC "
    "(patience 10), AUC and LogLoss on test"
)
POSITIVE_RATING = 4.0
# RecBole-like early stopping for this protocol (its defaults: up to 300 epochs, 10 without a
# better validation score); an epoch here is one pass over the rows, with no sampled negatives.
# A light L2 on the weights: ids seen in few rows overfit; it raised validation AUC of fm and dcn
# (0.7914 -> 0.7929, 0.7958 -> 0.7988) and cost deepfm 0.0015 in our runs.
CTR_TRAINING = {"epochs": 200, "patience": 10, "weight_decay": 1e-5}
# Per-model settings for this protocol, each the best validation AUC of those tried on ml-100k (a
# feature or setting is taken only when it beats the best run without it by 0.001 or more):
# ffm k 4/8/16: 0.8017/0.8051/0.8035 (batch 512: 0.8046, weight decay 1e-4: 0.8039); fm k 16/32:
# 0.7929/0.7952, then batch 2048/512/256: 0.7952/0.7956/0.7955, then at batch 512 learning rate
# 2e-3: 0.7972, weight decay 1e-4: 0.7970, both: 0.7967; dcn weight decay 1e-5/1e-4: 0.7976/0.7993, then batch
# 2048/512/256: 0.7993/0.8004/0.8002; deepfm batch 2048/512: 0.7971/0.8006.
# Then, from those settings (training seed 0 unless noted; "no history fields" is last_item,
# history_genres and recent_items left out of the embeddings, as these rows carried no history):
# - the same ffm with training seed 1: 0.8026, dcn: 0.8033, so differences under ~0.003 are
#   mostly seed noise;
# - ffm + ROW_FEATURES user_label and item_label: 0.7996, user_rating and item_rating: 0.7999,
#   item_label: 0.7994 (validation and test rows reading out-of-fold means too: 0.7974),
#   user_activity: 0.8027, user_recent_label: 0.8026; learning rate 2e-3/5e-4: 0.8037/0.8048; no
#   history fields: 0.8042. Nothing beat 0.8051, so ffm is unchanged;
# - dcn + user_label and item_label: 0.7975; no history fields: 0.8023 (seed 1: 0.8042 against
#   0.8033), and with user_recent_label: 0.8013; deepfm no history fields: 0.8010, and with
#   user_recent_label: 0.7999; fm no history fields: 0.7977;
# - wide_deep batch 2048/512: 0.7971/0.8002, no history fields: 0.8011; xdeepfm batch 2048/512:
#   0.7940/0.7952, no history fields: 0.7959; dlrm batch 2048/512/256: 0.7877/0.7940/0.7924, k 32 at 512:
#   0.7934, no history fields: 0.7858.
# - every ranker given the user's liked training items as its history (out of fold, history fields
#   on, as FISM or SVD++'s implicit factors): fm 0.7976, dcn 0.8012, deepfm 0.7991, ffm 0.8046: no gain;
# - user_position (where the row sits in the user's training history; no label is read): dcn 0.8057
#   (with user_activity too 0.8055; then cross layers 2: 0.8039, k 32: 0.8043, weight decay 3e-4:
#   0.8033, hidden (512, 256): 0.8018), xdeepfm 0.7978, ffm 0.8052, wide_deep 0.8011, deepfm 0.7997,
#   fm 0.7969, dlrm 0.7870.
# The label and rating features all lowered validation AUC; user_position raised dcn's and xdeepfm's.
# - The ordinal auxiliary loss (RATING_LEVELS; the label's term plus the mean of the other
#   thresholds' terms, weighing alike): dcn 0.8057 -> 0.8090 (its mean weighing 0.3/3 times the
#   label's: 0.8085/0.8057; thresholds 3 and 5 only: 0.8087), ffm 0.8051 -> 0.8092 (weighing 3
#   times: 0.8061), fm 0.7972 -> 0.8012, deepfm 0.8010 -> 0.8057, wide_deep 0.8011 -> 0.8033,
#   xdeepfm 0.7978 -> 0.8051, dlrm 0.7940 -> 0.7925 (with user_position 0.7898): every ranker but
#   dlrm learns it. Offsets started at 0 cost ffm 0.0005 (they had not left 0.5 by the best epoch).
# - Then user_position, again: ffm 0.8100, deepfm 0.8074, wide_deep 0.8053 (these three now read
#   it), fm 0.8015 (under 0.001: not taken), xdeepfm without it 0.8030, dcn with item_position
#   too (the row's place in the item's history) 0.8087, ffm 0.8084; then ffm k 16: 0.8115 (learning
#   rate 5e-4: 0.8113; without user_position, k 8/16: 0.8092/0.8089, so the two are taken
#   together); deepfm weight decay 1e-4: 0.8087 (as a check of the code, the same runs of
#   the shipped settings: ffm 0.8115, deepfm 0.8095); wide_deep weight decay 1e-4: 0.8048; dcn +
#   user_activity 0.8094, weight decay 1e-5 0.8091, k 32 0.8085, learning rate 1e-3 0.8096, dropout
#   0.1/0.3 0.8098/0.8091, a second run from the best weights at a fifth of the rate: no better epoch.
#   The users' zip region (RecBole reads zip codes): dcn 0.8084, ffm 0.8106, deepfm 0.8081; the
#   user's training rows that day: dcn 0.8087, ffm 0.8097. None of those taken.
# - RATED_HISTORY, each row's history the items its user rated in training (the last 200, own
#   item left out; no label read, unlike the liked items above): dcn 0.8090 -> 0.8110 (the last
#   50/100 items 0.8105/0.8103; without the genre mix of them 0.8099), fm 0.8012 -> 0.8044,
#   deepfm 0.8095 -> 0.8105, wide_deep 0.8053 -> 0.8086, xdeepfm 0.8051 -> 0.8080; under 0.001:
#   ffm 0.8115 -> 0.8116 (the last 50 alike; and an epoch 6 to 7 times as long, 46 s against 7 s
#   for two on one thread: its field-aware pairs with the pooled field), dlrm 0.7940 -> 0.7913
#   (with the ordinal terms too: 0.7946). Taken by the five.
CTR_ROW_FEATURES: tuple[str, ...] = ()
RATING_LEVELS = (2.0, 3.0, 5.0)  # the star thresholds besides POSITIVE_RATING the ordinal terms learn
# The rated items as history: pooled (recent_items) and as a genre mix (history_genres); the most
# recent one as a field of its own (last_item) lowered validation AUC, dcn 0.8110 -> 0.8090 and
# wide_deep 0.8086 -> 0.8073.
RATED_HISTORY = {"rated_history": True, "history_len": 200, "drop_fields": ("last_item",)}
CTR_MODEL_SETTINGS = {
    "ffm": {"embedding_dim": 16, "row_features": ("user_position",)},
    "fm": {"embedding_dim": 32, "batch_size": 512, "learning_rate": 2e-3, **RATED_HISTORY},
    "dcn": {"weight_decay": 1e-4, "batch_size": 512, "row_features": ("user_position",), **RATED_HISTORY},
    "deepfm": {"batch_size": 512, "weight_decay": 1e-4, "row_features": ("user_position",), **RATED_HISTORY},
    "wide_deep": {"batch_size": 512, "row_features": ("user_position",), **RATED_HISTORY},
    "xdeepfm": {"batch_size": 512, "row_features": ("user_position",), **RATED_HISTORY},
    "dlrm": {"batch_size": 512, "rating_levels": ()},
}
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
    items, each left out of its own row's history."""
    order = np.lexsort((train_times, train_users))
    items, bounds = train_items[order], np.searchsorted(train_users[order], np.arange(users.max(initial=0) + 2))
    # A row's history is its user's last `length` items; a training row among them is replaced by
    # the item before, so only the last `length + 1` items of a user matter.
    tail = {}
    out = np.zeros((len(users), length), dtype=np.int64)
    for user in np.unique(users):
        kept = items[bounds[user] : bounds[user + 1]][-(length + 1) :]
        tail[user] = kept
        last = kept[-length:]
        if len(last):
            out[users == user, length - len(last) :] = last
    if own_items is None:
        return out
    for row in np.flatnonzero([own in tail[user][-length:] for user, own in zip(users, own_items, strict=True)]):
        kept = tail[users[row]]
        rest = np.delete(kept, np.flatnonzero(kept == own_items[row])[-1:])[-length:]
        out[row] = 0
        if len(rest):
            out[row, length - len(rest) :] = rest
    return out


def ctr_settings(name: str, **overrides: object) -> dict[str, object]:
    """A ranker's settings on this protocol: the protocol's, the model's own, then ``overrides``."""
    return {**CTR_TRAINING, "rating_levels": RATING_LEVELS, **CTR_MODEL_SETTINGS.get(name, {}), **overrides}


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


def train_on_rows(
    name: str,
    dataset: Dataset,
    split: CtrSplit,
    device: torch.device,
    seed: int = 0,
    max_epochs: int | None = None,
    progress: ProgressCallback | None = None,
    **overrides: object,
) -> tuple[Recommender, dict]:
    """A ranker trained on the explicit-label rows with its ``ctr_settings`` (``overrides`` last);
    validation AUC picks the epoch. Score other rows prepared alike (``prepare_rows``)."""
    seed_everything(seed)
    features = side_features(dataset, split.popularity)
    split, row_fields, settings = prepare_rows(split, dataset, ctr_settings(name, **overrides), seed)
    model = build_model(name, dataset.n_users, dataset.n_items, features=features, row_fields=row_fields,
                        **settings).to(device)  # fmt: skip
    config = model.config
    if config.rating_levels:
        model.start_rating_offsets(split.train["rating"], split.train["label"])
    result = fit(
        model, None, device, seed, progress, max_epochs=max_epochs,
        batches=lambda rng: row_batches(split.train, config.batch_size, rng),
        validate=lambda candidate: auc(split.valid["label"], row_logits(candidate, split.valid)),
        validation_label="valid AUC",
    )  # fmt: skip
    return model, {"seconds": result.seconds, "best_epoch": result.best_epoch, "valid AUC": result.best_valid_ndcg,
                   "notes": result.notes, "history": result.history}  # fmt: skip


def evaluate_ctr(
    dataset_name: str,
    models: list[str] | None = None,
    device: str = "auto",
    seed: int = 0,
    max_epochs: int | None = None,
    progress: ProgressCallback | None = None,
    label_only: bool = False,
) -> dict[str, dict]:
    """Train and evaluate rankers on the explicit-label protocol: ``{model: {AUC, LogLoss, ...}}``,
    with ``"popularity"`` as the floor. A ranker that fails gets ``{"error": message}``. With
    ``label_only`` the rankers learn the label alone (no ordinal terms), as RecBole's do."""
    dataset = load_dataset(dataset_name)
    split = ctr_split(dataset, seed)
    torch_device = resolve_device(device)
    labels = split.test["label"]
    results: dict[str, dict] = {
        "popularity": scores_of(labels, popularity_logits(split.test, split.popularity), calibrated=False)
    }
    for name in models or [n for n, cls in REGISTRY.items() if cls.family == "rankers"]:
        if REGISTRY.get(name) is None or REGISTRY[name].family != "rankers":
            results[name] = {"error": f"{name} is not a ranker; the explicit-label protocol scores rankers"}
            continue
        started = time.perf_counter()
        try:
            overrides = {"rating_levels": ()} if label_only else {}
            featured, _, _ = prepare_rows(split, dataset, ctr_settings(name, **overrides), seed)
            model, info = train_on_rows(name, dataset, featured, torch_device, seed, max_epochs, progress, **overrides)
        except (ValueError, RuntimeError, FloatingPointError) as error:
            results[name] = {"error": f"{type(error).__name__}: {error}"}
            continue
        info.pop("history")
        results[name] = {**scores_of(labels, row_logits(model, featured.test)), **info,
                         "seconds": time.perf_counter() - started}  # fmt: skip
    return results


def over_seeds(runs: list[dict[str, dict]]) -> dict[str, dict]:
    """Mean and standard deviation (n - 1) of each model's AUC and LogLoss over runs of
    ``evaluate_ctr`` with different seeds (a model that failed in any run is left out)."""
    summary: dict[str, dict] = {}
    for name in runs[0]:
        rows = [run.get(name, {"error": "missing"}) for run in runs]
        if any("error" in row for row in rows):
            continue
        summary[name] = {"seeds": len(rows)}
        for metric in ("AUC", "LogLoss"):
            if metric in rows[0]:
                values = np.array([row[metric] for row in rows])
                summary[name] |= {f"{metric} mean": float(values.mean()),
                                  f"{metric} std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}  # fmt: skip
    return summary


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
