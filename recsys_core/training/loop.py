"""The one training loop, for every torch model; closed-form models fit directly.

Early stopping on a validation score (full-ranking NDCG@10 by default, the protocol's own metric),
best weights kept, fixed seeds and batch order, bf16 autocast where the config asks for it. A
non-finite loss stops training and keeps the best weights seen so far rather than saving a
diverged model. The loop never asks what kind of model it trains: a model validated on given
candidates says so (``validation_candidates``, a ranker over its retriever's), and a protocol with
other rows passes its own ``validate`` (AUC on labelled rows) and ``batches``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from recsys_core.data.split import Split
from recsys_core.models.base import Batch, Recommender, Validator
from recsys_core.protocols.topk import evaluate_lists, evaluate_model
from recsys_core.serving.pipeline import rerank_lists
from recsys_core.training.devices import cpu_has_bf16, device_name, resolve_device, seed_everything
from recsys_core.training.distributed import SINGLE, World, data_parallel, share
from recsys_core.training.optimiser import Optimiser

# What a progress report is about.
STEP = "step"  # every ``report_every`` optimiser steps: the last loss
EPOCH = "epoch"  # the end of an epoch: its mean loss and validation score
TRAINED = "trained"  # training ended; the model is evaluated and stored next
STORED = "stored"  # the model is in the artifact store: every view can use it now
PROGRESS_KINDS = (STEP, EPOCH, TRAINED, STORED)


@dataclass(kw_only=True)
class Progress:
    """What training reports while it runs (and what a background job's journal holds)."""

    model: str
    kind: str  # one of PROGRESS_KINDS
    epoch: int
    epochs: int
    step: int = 0
    loss: float | None = None
    valid_ndcg: float | None = None  # the validation score (NDCG@10, or the protocol's own)
    best_ndcg: float | None = None
    elapsed_s: float = 0.0
    message: str = ""

    def __post_init__(self) -> None:
        if self.kind not in PROGRESS_KINDS:
            raise ValueError(f"progress kind must be one of {PROGRESS_KINDS}, not {self.kind!r}")

    @property
    def done(self) -> bool:
        """Training has ended (the model may not be stored yet)."""
        return self.kind in (TRAINED, STORED)

    @property
    def stored(self) -> bool:
        return self.kind == STORED


ProgressCallback = Callable[[Progress], None]


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_valid_ndcg: float = float("nan")
    seconds: float = 0.0
    device: str = "cpu"
    device_name: str = "CPU"
    notes: list[str] = field(default_factory=list)


def ndcg_validation(model: Recommender, split: Split) -> Validator:
    """Validation NDCG@10, the top-K protocol's choice of epoch and setting: over the whole catalogue,
    or for a model validated on given candidates (a ranker over its retriever's), over those."""
    pool = model.validation_candidates()
    if pool is None:
        return lambda candidate: evaluate_model(candidate, split, "valid", accuracy_only=True).ndcg_at_10
    users = split.evaluated_users("valid")

    def reranked_ndcg(candidate: Recommender) -> float:
        lists = rerank_lists(candidate, split, "valid", users, pool[users])
        return evaluate_lists(split, "valid", users, lists).ndcg_at_10

    return reranked_ndcg


def fit(
    model: Recommender,
    split: Split | None,
    device: torch.device | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    report_every: int = 50,
    max_epochs: int | None = None,
    batches: Callable[[np.random.Generator], Iterator[Batch]] | None = None,
    validate: Validator | None = None,
    validation_label: str = "valid NDCG@10",
    world: World = SINGLE,
) -> FitResult:
    """Train ``model`` on ``split.train``; the validation score (higher is better) chooses the epoch,
    or the setting of a closed-form model. ``validate`` defaults to :func:`ndcg_validation` on
    ``split`` and ``batches`` (one epoch per call) to the model's own; a protocol with other rows
    passes both, and ``split`` is then not read.

    In a data-parallel run (``world``, see ``training/distributed.py``) every process trains on its
    share of each batch; process 0 validates and decides when to stop, and ends with the best
    weights (the others' copies are not used)."""
    device = device or resolve_device()
    rng = seed_everything(seed)
    model.to(device)
    result = FitResult(device=device.type, device_name=device_name(device))
    validate = validate or ndcg_validation(model, split)
    started = time.perf_counter()
    epoch = epochs = 1
    if not model.trainable:
        _fit_closed_form(model, split, device, validate, result)
    else:
        batches = batches or (lambda generator: model.batches(split, generator))
        epochs = min(model.config.epochs, max_epochs) if max_epochs else model.config.epochs
        loop = _Loop(model, device, progress if world.is_main else None, report_every, started, world)
        _train_epochs(loop, epochs, batches, rng, validate, validation_label, result)
        epoch = result.best_epoch
    result.seconds = time.perf_counter() - started
    if progress:
        progress(Progress(model=model.name, kind=TRAINED, epoch=epoch, epochs=epochs, valid_ndcg=result.best_valid_ndcg,
                          best_ndcg=result.best_valid_ndcg, elapsed_s=result.seconds))  # fmt: skip
    return result


def _fit_closed_form(
    model: Recommender, split: Split | None, device: torch.device, validate: Validator, result: FitResult
) -> None:
    """A closed-form model chooses its setting itself; its log holds one row per setting tried."""
    result.history = model.fit(split, validate)
    model.to(device)
    result.best_valid_ndcg = max(row["valid NDCG@10"] for row in result.history)


@dataclass
class _Loop:
    """What every epoch of one fit shares: the model, its optimiser and how it reports."""

    model: Recommender
    device: torch.device
    progress: ProgressCallback | None
    report_every: int
    started: float
    world: World = SINGLE

    def __post_init__(self) -> None:
        config = self.model.config
        self.step_module = data_parallel(self.model, self.world)
        self.optimiser = Optimiser(self.model, config.learning_rate, config.weight_decay)
        cpu_bf16 = self.device.type == "cpu" and config.cpu_bf16 and cpu_has_bf16()
        self.autocast = (self.device.type == "cuda" and config.cuda_bf16) or cpu_bf16
        # Page-locked host memory lets the copy to a GPU run asynchronously with the previous step.
        self.pin = self.device.type == "cuda"

    def report(self, **fields: object) -> None:
        if self.progress:
            self.progress(Progress(model=self.model.name, elapsed_s=time.perf_counter() - self.started, **fields))

    def run_epoch(self, epoch: int, epochs: int, batches: Iterator[Batch]) -> float:
        """One pass over ``batches``; the mean loss (NaN when there were none). In a data-parallel
        run each loss is this process's weighted share, and the shares add up over processes to the
        batch's loss."""
        self.model.train()
        losses = []
        for step, batch in enumerate(batches, start=1):
            batch, weight = share(self.model, batch, self.world)
            batch = {k: (v.pin_memory() if self.pin else v).to(self.device, non_blocking=self.pin)
                     for k, v in batch.items()}  # fmt: skip
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                loss = self.step_module(batch) * weight
            self.optimiser.zero_grad()
            loss.backward()
            self.optimiser.step()
            losses.append(loss.item() / self.world.size)
            if step % self.report_every == 0:
                # This process's share, weighted: about the whole batch's loss (exactly it alone).
                self.report(kind=STEP, epoch=epoch, epochs=epochs, step=step, loss=loss.item())
        if not losses:
            return float("nan")
        return self.world.total(float(np.sum(losses))) / len(losses)


def _train_epochs(
    loop: _Loop,
    epochs: int,
    batches: Callable[[np.random.Generator], Iterator[Batch]],
    rng: np.random.Generator,
    validate: Validator,
    label: str,
    result: FitResult,
) -> None:
    """Epochs until ``epochs`` or ``patience`` epochs without a better validation score; the model
    ends with its best epoch's weights."""
    model, patience = loop.model, loop.model.config.patience
    best_state, best, stale = None, -1.0, 0
    for epoch in range(1, epochs + 1):
        epoch_started = time.perf_counter()
        epoch_loss = loop.run_epoch(epoch, epochs, batches(rng))
        trained_s = time.perf_counter() - epoch_started
        if not math.isfinite(epoch_loss):
            result.notes.append(f"training diverged at epoch {epoch} (loss {epoch_loss}); kept the best epoch")
            break
        # Process 0 validates; the others wait for its score, and so stop at the same epoch.
        score = loop.world.decide(validate(model) if loop.world.is_main else 0.0)
        # "seconds" is the whole epoch; "train_seconds" leaves validation out (the cost of the work).
        result.history.append({"epoch": epoch, "loss": epoch_loss, label: score, "train_seconds": trained_s,
                               "seconds": time.perf_counter() - epoch_started})  # fmt: skip
        if score > best:
            best, stale, result.best_epoch = score, 0, epoch
            if loop.world.is_main:  # the only process whose weights are stored
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        else:
            stale += 1
        loop.report(kind=EPOCH, epoch=epoch, epochs=epochs, loss=epoch_loss, valid_ndcg=score, best_ndcg=best)
        if stale >= patience:
            result.notes.append(f"early stop at epoch {epoch}: no better {label} for {stale} epochs")
            break
    result.best_valid_ndcg = best
    if not loop.world.is_main:
        model.eval()
        return
    if best_state is None:
        raise FloatingPointError(f"{model.name} diverged in its first epoch; try a lower learning rate")
    model.load_state_dict(best_state)
    model.eval()
