"""Several models in one run: the order they train in (closed-form first, then the models others
start from), how many train at once, and the dataset's training lock held throughout."""

from __future__ import annotations

import contextlib
import os

from recsys_core.data import Dataset, load_dataset, temporal_leave_last_out
from recsys_core.models import REGISTRY, quick_settings
from recsys_core.store.artifacts import training_lock
from recsys_core.training.devices import resolve_device_name
from recsys_core.training.distributed import SINGLE, World
from recsys_core.training.loop import ProgressCallback
from recsys_core.training.run import TrainingContext, TrainReport, add_notes, draw_stored_maps, train_one
from recsys_core.training.workers import RunPlan, train_in_workers


def prerequisites(name: str, settings: dict[str, object] | None = None) -> set[str]:
    """The stored models a model starts from: pre-trained weights, or a retriever's candidates."""
    config = REGISTRY[name].config_class(**(settings or {}))
    return set(config.pretrained_from()) | ({config.retriever()} - {None})


MAX_WORKERS = 4


def default_workers(device: str = "auto", cores: int | None = None) -> int:
    """Models trained at once. On a CPU, one model per core or two: these models are too small to
    keep several threads busy (mlp and fm trained faster on one thread than on two here), so
    one-thread processes, one per core, get through much more training than one process on every
    core (docs/benchmarks.md, Training profiles).
    A GPU trains one model at a time."""
    if resolve_device_name(device) != "cpu":
        return 1
    return max(1, min(MAX_WORKERS, cores or os.cpu_count() or 1))


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
    world: World = SINGLE,
) -> list[TrainReport]:
    """Train, evaluate and store each model (:func:`recsys_core.training.run.train_one`); one model
    failing does not stop the others. Holds the dataset's training lock throughout. With ``maps``, the embedding
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
    needs = {name: prerequisites(name, settings[name]) & set(models) for name in models}
    waited_for = set().union(*needs.values())
    # Closed-form models first (they land in seconds, so every view has something at once), then the
    # next-item models (what the session views are about, and the strongest on long histories), then
    # those others start from; otherwise the given order (the sort is stable).
    order = sorted(models, key=lambda name: (REGISTRY[name].trainable, not REGISTRY[name].predicts_next,
                                             name not in waited_for))  # fmt: skip
    plan = RunPlan(dataset_name, order, needs, settings, device, quick, seed)
    workers = max(1, min(workers, len(models)))
    # In a data-parallel run (``world``) every process trains each model in turn, and process 0 alone
    # holds the lock, stores and draws the maps.
    with training_lock(dataset.name) if world.is_main else contextlib.nullcontext():
        if world.distributed:
            done = train_in_process(dataset, plan, maps and world.is_main, progress, world)
        elif workers == 1:
            done = train_in_process(dataset, plan, maps, progress)
        else:
            done = train_in_workers(plan, workers, maps, progress)
    return [done[name] for name in models]


def train_in_process(
    dataset: Dataset, plan: RunPlan, maps: bool, progress: ProgressCallback | None, world: World = SINGLE
) -> dict[str, TrainReport]:
    """The plan, one model after another in this process; then, with ``maps``, their maps."""
    context = TrainingContext.build(dataset, temporal_leave_last_out(dataset), plan.device, world)
    done = {name: train_one(context, name, plan.settings[name], plan.quick, plan.seed, progress) for name in plan.order}
    for name in plan.order if maps else ():
        if done[name].ok:
            add_notes(done[name], draw_stored_maps(dataset, context.split, name))
    return done
