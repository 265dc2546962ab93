"""Labelled-row evaluation of rankers: AUC and LogLoss, on two kinds of rows.

1. The explicit-label protocol (``evaluate --protocol ctr``), the usual click-through-rate setup
   that peers such as RecBole report, so our rankers can be compared with theirs: interactions
   split at random 80/10/10 (seeded), label = rating >= 4, user and item features plus the
   interaction's weekday and hour (no history: with a random split the history fields made the
   rankers overfit, validation AUC -0.007 for fm and -0.018 for deepfm in our runs; most rankers
   also leave the always-empty history fields out); each ranker is trained on the 80%, its epoch
   chosen on validation AUC, and AUC/LogLoss reported on the 10% test rows. Statistics of the
   training rows (label and rating means, activity, recent labels, the row's place in the user's
   history) can be added as fields (``ROW_FEATURES``); on ml-100k only the last one raised
   validation AUC, of dcn and xdeepfm, which read it.
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
from recsys_core.train import ProgressCallback, fit, resolve_device, seed_everything

CTR_PROTOCOL = (
    "explicit labels: interactions split at random 80/10/10 (seed 0), label = rating >= 4; user and item "
    "features, weekday and hour; epoch chosen on validation AUC (patience 10), AUC and LogLoss on test"
)
POSITIVE_RATING = 4.0
# RecBole-like early stopping for this protocol (its defaults: up to 300 epochs, 10 without a
# better validation score); an epoch here is one pass over the rows, with no sampled negatives.
# A light L2 on the weights: ids seen in few rows overfit; it raised validation AUC of fm and dcn
# (0.7914 -> 0.7929, 0.7958 -> 0.7988) and cost deepfm 0.0015 in our runs.
CTR_TRAINING = {"epochs": 200, "patience": 10, "weight_decay": 1e-5}
# Per-model settings for this protocol, each the best validation AUC of those tried on ml-100k:
# ffm k 4/8/16: 0.8017/0.8051/0.8035 (batch 512: 0.8046, weight decay 1e-4: 0.8039); fm k 16/32:
# 0.7929/0.7952, then batch 2048/512/256: 0.7952/0.7956/0.7955, then at batch 512 learning rate
# 2e-3: 0.7972, weight decay 1e-4: 0.7970, both: 0.7967; dcn weight decay 1e-5/1e-4: 0.7976/0.7993, then batch
# 2048/512/256: 0.7993/0.8004/0.8002; deepfm batch 2048/512: 0.7971/0.8006.
# Then, from those settings (training seed 0 unless noted; "no history fields" is HISTORY_FIELDS
# left out of the embeddings, as these rows never carry a history):
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
# The label and rating features all lowered validation AUC; user_position raised dcn's and xdeepfm's,
# so those two read it, and no other ranker reads a row feature (CTR_ROW_FEATURES is empty).
HISTORY_FIELDS = ("last_item", "history_genres", "recent_items")
CTR_ROW_FEATURES: tuple[str, ...] = ()
CTR_MODEL_SETTINGS = {
    "ffm": {"embedding_dim": 8},
    "fm": {"embedding_dim": 32, "batch_size": 512, "learning_rate": 2e-3, "drop_fields": HISTORY_FIELDS},
    "dcn": {"weight_decay": 1e-4, "batch_size": 512, "drop_fields": HISTORY_FIELDS, "row_features": ("user_position",)},
    "deepfm": {"batch_size": 512, "drop_fields": HISTORY_FIELDS},
    "wide_deep": {"batch_size": 512, "drop_fields": HISTORY_FIELDS},
    "xdeepfm": {"batch_size": 512, "drop_fields": HISTORY_FIELDS, "row_features": ("user_position",)},
    "dlrm": {"batch_size": 512},
}
FRACTIONS = (0.8, 0.1, 0.1)


class CtrUnavailable(ValueError):
    """The dataset cannot be evaluated on the explicit-label protocol (no ratings, say)."""


Rows = dict[str, np.ndarray]  # user, item, weekday, hour, label; optionally history (N, L)


@dataclass
class CtrSplit:
    train: Rows
    valid: Rows
    test: Rows
    popularity: np.ndarray  # (n_items + 1,) training-row counts, for features and the popularity scorer
    train_rating: np.ndarray  # (len(train),) the training rows' ratings, for the rating-mean features
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


def row_features_of(model: str) -> tuple[str, ...]:
    """The ``ROW_FEATURES`` a ranker reads on this protocol."""
    return tuple(CTR_MODEL_SETTINGS.get(model, {}).get("row_features", CTR_ROW_FEATURES))


def with_row_features(
    split: CtrSplit, names: tuple[str, ...], dataset: Dataset, seed: int = 0
) -> tuple[CtrSplit, dict[str, int]]:
    """A copy of ``split`` whose rows carry the named ``ROW_FEATURES`` as codes (those it has already
    are kept), and the ``row_fields`` of a ranker that reads them: name -> number of codes."""
    split = CtrSplit({**split.train}, {**split.valid}, {**split.test}, split.popularity, split.train_rating,
                     split.timestamps)  # fmt: skip
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
        values = train["label"].astype(np.float64) if target == "label" else split.train_rating
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
    popularity = np.bincount(train["item"], minlength=dataset.n_items + 1).astype(np.float64)
    times = frame["timestamp"].to_numpy(dtype=np.int64)
    return CtrSplit(train, valid, test, popularity, ratings[parts[0]], tuple(times[p] for p in parts))


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
    """A ranker trained on the explicit-label rows; validation AUC picks the epoch. The setting
    ``row_features`` (default ``CTR_ROW_FEATURES``) names the ``ROW_FEATURES`` it reads."""
    seed_everything(seed)
    features = side_features(dataset, split.popularity)
    settings = {**CTR_TRAINING, **CTR_MODEL_SETTINGS.get(name, {}), **overrides}
    split, row_fields = with_row_features(split, settings.pop("row_features", CTR_ROW_FEATURES), dataset, seed)
    model = build_model(name, dataset.n_users, dataset.n_items, features=features, row_fields=row_fields,
                        **settings).to(device)  # fmt: skip
    config = model.config
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
) -> dict[str, dict]:
    """Train and evaluate rankers on the explicit-label protocol: ``{model: {AUC, LogLoss, ...}}``,
    with ``"popularity"`` as the floor. A ranker that fails gets ``{"error": message}``."""
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
            featured, _ = with_row_features(split, row_features_of(name), dataset, seed)
            model, info = train_on_rows(name, dataset, featured, torch_device, seed, max_epochs, progress)
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
