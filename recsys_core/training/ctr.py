"""Rankers trained and scored on the explicit-label protocol (the rows: ``protocols/ctr.py``).

Each ranker trains on the 80% of labelled rows with its settings for this protocol, its epoch
chosen on validation AUC by the one training loop; AUC and LogLoss are reported on the test rows,
with a popularity-only scorer as the floor every ranker must clear.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from recsys_core.data import Dataset, load_dataset
from recsys_core.data.features import side_features
from recsys_core.metrics import auc, log_loss
from recsys_core.models import REGISTRY, build_model, rankers
from recsys_core.models.base import Recommender
from recsys_core.protocols.ctr import (
    CtrSplit,
    ctr_split,
    popularity_logits,
    prepare_rows,
    row_batches,
    row_logits,
)
from recsys_core.results import CtrScores
from recsys_core.training.devices import resolve_device, seed_everything
from recsys_core.training.loop import ProgressCallback, fit

# RecBole-like early stopping for this protocol (its defaults: up to 300 epochs, 10 without a
# better validation score); an epoch is one pass over the rows, with no sampled negatives. A light
# L2 on the weights, because ids seen in few rows overfit.
CTR_TRAINING = {"epochs": 200, "patience": 10, "weight_decay": 1e-5}
RATING_LEVELS = (2.0, 3.0, 5.0)  # the star thresholds besides POSITIVE_RATING the ordinal terms learn
# The rated items as history: pooled (recent_items) and as a genre mix (history_genres); the most
# recent one as a field of its own (last_item) lowered validation AUC, so it is left out.
RATED_HISTORY = {"rated_history": True, "history_len": 200, "drop_fields": ("last_item",)}
# Each ranker's settings on this protocol: the best validation AUC of those tried on ml-100k, a
# setting taken only when it beat the best run without it by 0.001 or more (differences under about
# 0.003 are mostly seed noise). The trials and their scores: docs/ctr/trials.md.
CTR_MODEL_SETTINGS = {
    "ffm": {"embedding_dim": 16, "row_features": ("user_position",)},
    "fm": {"embedding_dim": 32, "batch_size": 512, "learning_rate": 2e-3, **RATED_HISTORY},
    "dcn": {"weight_decay": 1e-4, "batch_size": 512, "row_features": ("user_position",), **RATED_HISTORY},
    "deepfm": {"batch_size": 512, "weight_decay": 1e-4, "row_features": ("user_position",), **RATED_HISTORY},
    "wide_deep": {"batch_size": 512, "row_features": ("user_position",), **RATED_HISTORY},
    "xdeepfm": {"batch_size": 512, "row_features": ("user_position",), **RATED_HISTORY},
    "dlrm": {"batch_size": 512, "rating_levels": ()},
}


def ctr_settings(name: str, **overrides: object) -> dict[str, object]:
    """A ranker's settings on this protocol: the protocol's, the model's own, then ``overrides``."""
    return {**CTR_TRAINING, "rating_levels": RATING_LEVELS, **CTR_MODEL_SETTINGS.get(name, {}), **overrides}


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
    floor = CtrScores(auc(labels, popularity_logits(split.test, split.popularity)))
    results: dict[str, dict] = {"popularity": floor.to_json()}
    for name in models or rankers():
        if name not in REGISTRY or not REGISTRY[name].is_ranker:
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
        logits = row_logits(model, featured.test)
        scores = CtrScores(auc(labels, logits), log_loss(labels, logits), time.perf_counter() - started,
                           info["best_epoch"], info["valid AUC"], info["notes"])  # fmt: skip
        results[name] = scores.to_json()
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


