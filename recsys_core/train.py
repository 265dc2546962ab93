"""The one training loop, for every torch model; closed-form models fit directly.

Early stopping on validation NDCG@10 (full ranking, the protocol's own metric), best weights kept,
fixed seeds and batch order, CUDA with bf16 autocast when there is a GPU. A non-finite loss stops
training and keeps the best weights seen so far rather than saving a diverged model.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import math
import multiprocessing
import os
import random
import signal
import sys
import time
import types
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from queue import Empty

import numpy as np
import torch

from recsys_core.artifacts import ArtifactError, load_artifact, save_artifact, training_lock
from recsys_core.configs import quick_settings
from recsys_core.data import Dataset, load_dataset, temporal_leave_last_out
from recsys_core.data.features import SideFeatures, side_features
from recsys_core.data.split import PROTOCOL, Split
from recsys_core.embeddings import draw_maps
from recsys_core.evaluate import evaluate_lists, evaluate_model
from recsys_core.models import REGISTRY, build_model
from recsys_core.models.base import Batch, Recommender, Validator
from recsys_core.pipeline import candidate_pool, evaluate_pipeline, rerank_lists, tune_blend


@dataclass
class Progress:
    """What the loop reports, per epoch and every ``report_every`` steps."""

    model: str
    epoch: int
    epochs: int
    step: int
    steps: int | None
    loss: float | None
    valid_ndcg: float | None = None
    best_ndcg: float | None = None
    elapsed_s: float = 0.0
    done: bool = False  # training ended (the model is evaluated and stored next)
    stored: bool = False  # the model is in the artifact store: every view can use it now
    message: str = ""


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


def cpu_threads() -> int:
    """The CPU threads training may use: all cores, unless DEEPREC_NUM_THREADS caps them for a
    machine shared with other jobs (oversubscribed torch threads spin-wait and run many times slower)."""
    return int(os.environ.get("DEEPREC_NUM_THREADS", 0)) or os.cpu_count() or 1


def mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device_name(choice: str = "auto") -> str:
    """``auto`` as what it means here: CUDA if available, else Apple MPS, else the CPU."""
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if mps_available() else "cpu"


def resolve_device(choice: str = "auto") -> torch.device:
    """CUDA if available, else Apple MPS, else the CPU with all its cores."""
    choice = resolve_device_name(choice)
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but no CUDA GPU is available")
    if choice == "cpu":
        torch.set_num_threads(cpu_threads())
    return torch.device(choice)


def available_devices() -> dict[str, str]:
    """The devices training can use here, best first, each with what it is (GPU name and memory)."""
    devices = {}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        count = torch.cuda.device_count()
        devices["cuda"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB" + (
            f" (GPU 0 of {count})" if count > 1 else ""
        )
    if mps_available():
        devices["mps"] = "Apple MPS"
    cap = int(os.environ.get("DEEPREC_NUM_THREADS", 0))
    devices["cpu"] = f"CPU, {os.cpu_count()} cores" + (f" (capped at {cap} threads)" if cap else "")
    return devices


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({os.cpu_count()} cores)"


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (otherwise bf16 is emulated, and slow)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def seed_everything(seed: int) -> np.random.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


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
) -> FitResult:
    """Train ``model`` on ``split.train``; validation NDCG@10 chooses the epoch (or the setting).

    Another protocol passes its own ``batches`` (one epoch per call) and ``validate`` (higher is
    better), as the rankers' explicit-label protocol does with AUC; ``split`` is then not read.
    """
    device = device or resolve_device()
    rng = seed_everything(seed)
    model.to(device)
    started = time.perf_counter()
    result = FitResult(device=device.type, device_name=device_name(device))

    def validate_ndcg(candidate: Recommender) -> float:
        pool = getattr(candidate, "candidate_pool", None)
        if pool is not None:
            # A ranker with a retriever is validated as it serves: reordering that retriever's candidates.
            users = split.evaluated_users("valid")
            lists = rerank_lists(candidate, split, "valid", users, pool[users])
            return evaluate_lists(split, "valid", users, lists).ndcg_at_10
        return evaluate_model(candidate, split, "valid", accuracy_only=True).ndcg_at_10

    validate = validate or validate_ndcg
    batches = batches or (lambda generator: model.batches(split, generator))

    if not model.trainable:
        result.history = model.fit(split, validate)
        model.to(device)
        scores = [row["valid NDCG@10"] for row in result.history]
        result.best_valid_ndcg = max(scores)
        result.seconds = time.perf_counter() - started
        if progress:
            progress(Progress(model.name, 1, 1, 1, 1, None, result.best_valid_ndcg, result.best_valid_ndcg,
                              result.seconds, done=True))  # fmt: skip
        return result

    config = model.config
    epochs = min(config.epochs, max_epochs) if max_epochs else config.epochs
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    autocast = device.type == "cuda" or (device.type == "cpu" and config.cpu_bf16 and cpu_has_bf16())
    pin = device.type == "cuda"
    best_state, best_ndcg, stale = None, -1.0, 0
    for epoch in range(1, epochs + 1):
        model.train()
        epoch_started = time.perf_counter()
        losses = []
        for step, batch in enumerate(batches(rng), start=1):
            # Page-locked host memory lets the copy to a GPU run asynchronously with the previous step.
            batch = {k: (v.pin_memory() if pin else v).to(device, non_blocking=pin) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = model.loss(batch)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            if progress and step % report_every == 0:
                progress(Progress(model.name, epoch, epochs, step, None, losses[-1],
                                  elapsed_s=time.perf_counter() - started))  # fmt: skip
        epoch_loss = float(np.mean(losses)) if losses else float("nan")
        if not math.isfinite(epoch_loss):
            result.notes.append(f"training diverged at epoch {epoch} (loss {epoch_loss}); kept the best epoch")
            break
        valid_ndcg = validate(model)
        result.history.append({
            "epoch": epoch, "loss": epoch_loss, validation_label: valid_ndcg,
            "seconds": time.perf_counter() - epoch_started,
        })  # fmt: skip
        if valid_ndcg > best_ndcg:
            best_ndcg, stale, result.best_epoch = valid_ndcg, 0, epoch
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        else:
            stale += 1
        if progress:
            progress(Progress(model.name, epoch, epochs, 0, None, epoch_loss, valid_ndcg, best_ndcg,
                              time.perf_counter() - started))  # fmt: skip
        if stale >= config.patience:
            result.notes.append(f"early stop at epoch {epoch}: no better {validation_label} for {stale} epochs")
            break
    if best_state is None:
        raise FloatingPointError(f"{model.name} diverged in its first epoch; try a lower learning rate")
    model.load_state_dict(best_state)
    model.eval()
    result.best_valid_ndcg = best_ndcg
    result.seconds = time.perf_counter() - started
    if progress:
        progress(Progress(model.name, result.best_epoch, epochs, 0, None, None, best_ndcg, best_ndcg,
                          result.seconds, done=True))  # fmt: skip
    return result


# --------------------------------------------------------------------------- train and store


def prerequisites(name: str, settings: dict[str, object] | None = None) -> set[str]:
    """The stored models a model starts from: pre-trained weights, or a retriever's candidates."""
    config = REGISTRY[name].config_class(**(settings or {}))
    needs = set(REGISTRY[name].pretrained_from) if getattr(config, "pretrained", False) else set()
    if getattr(config, "candidates_from", None):
        needs.add(config.candidates_from)
    return needs


MAX_WORKERS = 4


def default_workers(device: str = "auto", cores: int | None = None) -> int:
    """Models trained at once. On a CPU, one model per core or two: these models are too small to
    keep several threads busy (mlp and fm trained faster on one thread than on two here), so two
    one-thread processes on a 2-core machine train about twice as much as one two-thread process.
    A GPU trains one model at a time."""
    if resolve_device_name(device) != "cpu":
        return 1
    return max(1, min(MAX_WORKERS, cores or os.cpu_count() or 1))


@dataclass
class TrainReport:
    model: str
    ok: bool
    message: str
    seconds: float = 0.0
    test_ndcg: float | None = None


def train_models(
    dataset_name: str,
    models: list[str],
    device: str = "auto",
    quick: bool = False,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    overrides: dict[str, dict] | None = None,
    maps: bool = False,
    workers: int = 1,
) -> list[TrainReport]:
    """Train, evaluate and store each model (see :func:`train_one`); one model failing does not
    stop the others. Holds the dataset's training lock throughout. With ``maps``, the embedding
    maps of the stored models are drawn once all of them are trained (so models land first), by
    the workers when there are several.

    ``quick`` applies each model's quick settings (:func:`quick_settings`) under ``overrides``.
    Models that others of the run start from (:func:`prerequisites`) are trained first; with
    ``workers`` > 1, that many models train at once, each in its own process with its share of the
    CPU threads, and a model waits until the ones it starts from are stored. Reports come in the
    order of ``models``.
    """
    dataset = load_dataset(dataset_name)
    settings = {name: {**(quick_settings(name) if quick else {}), **(overrides or {}).get(name, {})} for name in models}
    workers = max(1, min(workers, len(models)))
    needs = {name: prerequisites(name, settings[name]) & set(models) for name in models}
    waited_for = set().union(*needs.values())
    # Closed-form models first (they land in seconds, so every view has something at once), then
    # those others start from; otherwise the given order (the sort is stable).
    order = sorted(models, key=lambda name: (REGISTRY[name].trainable, name not in waited_for))
    with training_lock(dataset.name):
        if workers == 1:
            context = TrainingContext.build(dataset, temporal_leave_last_out(dataset), device)
            done = {name: train_one(context, name, settings[name], quick, seed, progress) for name in order}
            for name in order if maps else ():
                if done[name].ok:
                    add_notes(done[name], draw_stored_maps(dataset, context.split, name))
        else:
            done = _train_in_workers(dataset_name, order, needs, settings, device, quick, seed, progress, workers, maps)
    return [done[name] for name in models]


@dataclass
class TrainingContext:
    """What every model of a run trains on: the dataset, its split, side features, the device."""

    dataset: Dataset
    split: Split
    features: SideFeatures
    device: torch.device

    @classmethod
    def build(cls, dataset: Dataset, split: Split, device: str) -> TrainingContext:
        return cls(dataset, split, side_features(dataset, split.item_popularity), resolve_device(device))


def train_one(
    context: TrainingContext,
    name: str,
    settings: dict[str, object],
    quick: bool = False,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> TrainReport:
    """Train, evaluate (test; validation too in the full profile) and store one model; an expected
    failure becomes a report, never a raise."""
    dataset, split, features, torch_device = context.dataset, context.split, context.features, context.device
    genres = features.items.genres
    try:
        seed_everything(seed)  # initial weights depend on the seed alone, not on models trained before
        model = build_model(name, dataset.n_users, dataset.n_items, features=features, **settings)
        notes = []
        if getattr(model.config, "pretrained", False):
            sources = pretrained_models(dataset, model.pretrained_from)
            if sources is None:
                model.config.pretrained = False  # the stored config says what really happened
                notes.append(f"trained from scratch: pre-training needs {', '.join(model.pretrained_from)} "
                             "trained first")  # fmt: skip
            else:
                model.initialise_from(**sources)
        retriever = None
        if getattr(model.config, "candidates_from", None):
            retriever = pretrained_models(dataset, (model.config.candidates_from,))
            if retriever is None:
                notes.append(f"no hard negatives: {model.config.candidates_from} is not trained, so only "
                             "random negatives and full-ranking validation")  # fmt: skip
            else:
                retriever = retriever[model.config.candidates_from].to(torch_device)
                model.use_candidates(candidate_pool(retriever, split, model.config.n_candidates))
        result = fit(model, split, torch_device, seed, progress)
        notes += result.notes
        if retriever is not None:
            blend, tried = tune_blend(model, split, model.candidate_pool)
            model.retriever_blend.fill_(blend)
            notes.append(f"retriever blend {blend:g} (validation NDCG@10 {tried[blend]:.4f}; ranker alone "
                         f"{tried[0.0]:.4f})")  # fmt: skip
        test = evaluate_model(model, split, "test", genres)
        info = {
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": result.seconds,
            "device": result.device,
            "device_name": result.device_name,
            "threads": torch.get_num_threads() if torch_device.type == "cpu" else None,
            "best_epoch": result.best_epoch,
            "seed": seed,
            "profile": "quick" if quick else "full",
            "notes": notes,
            "family": model.family,
            "paper": model.paper,
        }
        metrics = {"protocol": PROTOCOL, "test": test.summary()}
        if not quick:
            # Validation metrics in full, for choosing among trained models (bench/). The quick profile
            # leaves them out: for a ranker, a second pass over the whole catalogue costs as much as
            # its quick training (dcn: 14 s of 53 s on one thread), and the fit's own validation
            # NDCG@10 per epoch is in the history either way.
            metrics["valid"] = evaluate_model(model, split, "valid", genres).summary()
        if retriever is not None:
            # What the ranker is for: reordering its retriever's candidates (the funnel on test).
            funnel = evaluate_pipeline(retriever, model, split, "test", model.config.n_candidates, genres)
            metrics["pipeline"] = {**funnel.summary(), "retriever_model": retriever.name}
            model.use_candidates(None)
        save_artifact(dataset, model.cpu(), metrics, result.history, info, per_user=test.per_user)
        if progress:
            progress(Progress(name, result.best_epoch, result.best_epoch, 0, None, None, result.best_valid_ndcg,
                              result.best_valid_ndcg, result.seconds, done=True, stored=True))  # fmt: skip
        return TrainReport(name, True, "; ".join(notes), result.seconds, test.ndcg_at_10)
    except (ValueError, KeyError, RuntimeError, FloatingPointError, MemoryError) as error:
        return TrainReport(name, False, f"{type(error).__name__}: {error}")


# --------------------------------------------------------------------------- several models at once
# Each worker is a fresh ("spawn") process: forking a parent whose torch has started its thread
# pools can deadlock the child. A worker loads the dataset once and reports progress to the parent
# through a queue; the parent holds the training lock, so the workers need none of their own.

_worker: dict[str, object] = {}


def _start_worker(threads: int, queue: multiprocessing.Queue, parent: int) -> None:
    os.environ["DEEPREC_NUM_THREADS"] = str(threads)  # read by cpu_threads, for resolve_device
    _worker["queue"] = queue
    _die_with(parent)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with(parent: int) -> None:
    """On Linux the kernel kills this worker when the training process dies (killed, out of
    memory), so no orphan stores a model after the job that held the dataset's lock is gone."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # elsewhere an orphan finishes its model (written atomically) and then exits
    if os.getppid() != parent:  # the parent died before the call above
        os._exit(1)


def _started() -> None:
    """Nothing: a first task that makes the pool start a worker."""


@contextlib.contextmanager
def _script_hidden_from_workers() -> Iterator[None]:
    """A spawned process first runs its parent's ``__main__`` again, when that is a script (a
    module run with ``python -m`` is left alone). Under Streamlit or its AppTest the script is a
    page, which must not run in a worker; the workers need nothing from it, so it is hidden from
    them while they start."""
    main = sys.modules.get("__main__")
    script = main is not None and getattr(getattr(main, "__spec__", None), "name", None) is None
    if script:
        sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if script:
            sys.modules["__main__"] = main


def _context(dataset_name: str, device: str = "cpu") -> TrainingContext:
    """The worker's dataset, split and features, built once."""
    context = _worker.get(dataset_name)
    if context is None:
        dataset = load_dataset(dataset_name)
        context = _worker[dataset_name] = TrainingContext.build(dataset, temporal_leave_last_out(dataset), device)
    return context


def _draw_in_worker(dataset_name: str, name: str) -> dict[str, str]:
    context = _context(dataset_name)
    return draw_stored_maps(context.dataset, context.split, name)


def _train_in_worker(dataset_name: str, name: str, settings: dict, device: str, quick: bool, seed: int) -> TrainReport:
    return train_one(_context(dataset_name, device), name, settings, quick, seed, _worker["queue"].put)


def _train_in_workers(
    dataset_name: str,
    order: list[str],
    needs: dict[str, set[str]],
    settings: dict[str, dict],
    device: str,
    quick: bool,
    seed: int,
    progress: ProgressCallback | None,
    workers: int,
    maps: bool,
) -> dict[str, TrainReport]:
    """Train the models in ``workers`` processes, in ``order``, each as soon as the models it
    ``needs`` are stored; then, with ``maps``, draw their maps in the same processes."""
    pending = list(order)
    threads = max(1, cpu_threads() // workers)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    reports: dict[str, TrainReport] = {}
    running: dict[Future, str] = {}

    def forward_progress() -> None:
        while True:
            try:
                event = queue.get_nowait()
            except Empty:
                return
            if progress:
                progress(event)

    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(threads, queue, os.getpid())) as pool:  # fmt: skip
        with _script_hidden_from_workers():
            # The pool spawns a process per task while none is idle: one task each starts them all now.
            wait([pool.submit(_started) for _ in range(workers)])
        while pending or running:
            for name in list(pending):
                if len(running) < workers and not needs[name] & ({*pending, *running.values()}):
                    pending.remove(name)
                    args = (dataset_name, name, settings[name], device, quick, seed)
                    running[pool.submit(_train_in_worker, *args)] = name
            finished, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
            forward_progress()
            for future in finished:
                name = running.pop(future)
                try:
                    reports[name] = future.result()
                except Exception as error:  # a worker that died (killed, out of memory), or a bug
                    reports[name] = TrainReport(name, False, f"worker failed: {type(error).__name__}: {error}")
        drawing = {
            name: pool.submit(_draw_in_worker, dataset_name, name) for name in order if maps and reports[name].ok
        }
        for name, future in drawing.items():
            try:
                add_notes(reports[name], future.result())
            except Exception as error:  # as above: the maps are extras, the models are stored
                add_notes(reports[name], {"maps": f"not drawn (worker failed: {type(error).__name__}: {error})"})
    forward_progress()
    return reports


def draw_stored_maps(dataset: Dataset, split: Split, model: str) -> dict[str, str]:
    """Embedding maps of a freshly stored model, as notes; a map that cannot be drawn is noted, never fatal."""
    try:
        drawn = draw_maps(load_artifact(dataset, model), split)
    except (ArtifactError, ValueError, RuntimeError, MemoryError) as error:
        return {"maps": f"not drawn ({type(error).__name__}: {error})"}
    return {f"{kind} map": note for kind, note in drawn.items()}


def add_notes(report: TrainReport, notes: dict[str, str]) -> None:
    report.message = "; ".join(filter(None, [report.message, *(f"{k}: {v}" for k, v in notes.items())]))


def pretrained_models(dataset: Dataset, names: tuple[str, ...]) -> dict[str, Recommender] | None:
    """The stored models another one starts from, or None when one of them is not usable."""
    try:
        return {name: load_artifact(dataset, name).model for name in names}
    except ArtifactError:
        return None
