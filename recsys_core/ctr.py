"""Labelled-row evaluation of rankers: AUC and LogLoss, on two kinds of rows.

1. The explicit-label protocol (``evaluate --protocol ctr``), the usual click-through-rate setup
   that peers such as RecBole report, so our rankers can be compared with theirs: interactions
   split at random 80/10/10 (seeded), label = rating >= 4, user and item features plus the
   interaction's weekday and hour (no history: with a random split the history fields made the
   rankers overfit, validation AUC -0.007 for fm and -0.018 for deepfm in our runs); each ranker
   is trained on the 80%, its epoch chosen on validation AUC, and AUC/LogLoss reported on the 10%
   test rows.
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
# 2048/512/256: 0.7993/0.8004/0.8002; deepfm batch 2048/512: 0.7971/0.8006. Others: not tried.
CTR_MODEL_SETTINGS = {
    "ffm": {"embedding_dim": 8},
    "fm": {"embedding_dim": 32, "batch_size": 512, "learning_rate": 2e-3},
    "dcn": {"weight_decay": 1e-4, "batch_size": 512},
    "deepfm": {"batch_size": 512},
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
    return CtrSplit(train, valid, test, popularity)


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
    """A ranker trained on the explicit-label rows; validation AUC picks the epoch."""
    seed_everything(seed)
    features = side_features(dataset, split.popularity)
    model = build_model(name, dataset.n_users, dataset.n_items, features=features,
                        **{**CTR_TRAINING, **CTR_MODEL_SETTINGS.get(name, {}), **overrides}).to(device)  # fmt: skip
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
            model, info = train_on_rows(name, dataset, split, torch_device, seed, max_epochs, progress)
        except (ValueError, RuntimeError, FloatingPointError) as error:
            results[name] = {"error": f"{type(error).__name__}: {error}"}
            continue
        info.pop("history")
        results[name] = {**scores_of(labels, row_logits(model, split.test)), **info,
                         "seconds": time.perf_counter() - started}  # fmt: skip
    return results


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
