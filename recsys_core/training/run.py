"""One model's run, as the named steps a reader can follow: build it, start it from the models it
is pre-trained from, give a ranker its retriever's candidates (its hard negatives, and what it is
validated on), fit, tune the ranker's blend with its retriever, evaluate on the protocol, and store
it with what happened along the way.

Every expected failure becomes a :class:`TrainReport` (never a raise), so one model failing
leaves the rest of a run going.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch

from recsys_core.data import Dataset
from recsys_core.data.features import SideFeatures, side_features
from recsys_core.data.split import PROTOCOL, Split
from recsys_core.models import REGISTRY, build_model, data_settings
from recsys_core.models.base import Recommender
from recsys_core.protocols.funnel import evaluate_pipeline, tune_blend
from recsys_core.protocols.topk import Evaluation, evaluate_model
from recsys_core.results import StoredResults
from recsys_core.serving.embeddings import draw_maps
from recsys_core.serving.pipeline import candidate_pool
from recsys_core.store.artifacts import ArtifactError, load_artifact, save_artifact
from recsys_core.training.devices import resolve_device, seed_everything
from recsys_core.training.distributed import SINGLE, World, process_device
from recsys_core.training.loop import STORED, FitResult, Progress, ProgressCallback, fit


@dataclass
class TrainReport:
    model: str
    ok: bool
    message: str
    seconds: float = 0.0
    test_ndcg: float | None = None


@dataclass
class TrainingContext:
    """What every model of a run trains on: the dataset, its split, side features, the device, and
    this process's place in a data-parallel run (``World()`` alone)."""

    dataset: Dataset
    split: Split
    features: SideFeatures
    device: torch.device
    world: World = SINGLE

    @classmethod
    def build(cls, dataset: Dataset, split: Split, device: str, world: World = SINGLE) -> TrainingContext:
        features = side_features(dataset, split.item_popularity)
        here = process_device(world, resolve_device(device))
        return cls(dataset, split, features, here, replace(world, devices=tuple(map(str, world.gather(here)))))


@dataclass
class ModelRun:
    """One model in training, and what its steps have found out so far."""

    context: TrainingContext
    model: Recommender
    quick: bool
    seed: int
    notes: list[str] = field(default_factory=list)
    retriever: Recommender | None = None  # the trained model whose candidates a ranker reorders
    result: FitResult = field(default_factory=FitResult)


def train_one(
    context: TrainingContext,
    name: str,
    settings: dict[str, object],
    quick: bool = False,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    info: dict[str, object] | None = None,
) -> TrainReport:
    """Train, evaluate (test; validation too in the full profile) and store one model. ``info`` is
    added to what the artifact records about the run (a tuned model's study).

    In a data-parallel run every process trains; process 0 alone evaluates and stores, and the
    others wait for it. There a failure is raised, not reported: the processes would otherwise wait
    for each other in different places, and torchrun ends the run when one process fails."""
    world = context.world
    if world.distributed:
        if world.is_main:
            report = _train_and_store(context, name, settings, quick, seed, progress, info)
        else:
            report = _train_share(context, name, settings, quick, seed)
        world.barrier()  # the artifact is stored: every process may load it (a model started from it)
        return report
    try:
        return _train_and_store(context, name, settings, quick, seed, progress, info)
    except (ValueError, KeyError, RuntimeError, FloatingPointError, MemoryError) as error:
        return TrainReport(name, False, f"{type(error).__name__}: {error}")


def _train_share(context: TrainingContext, name: str, settings: dict, quick: bool, seed: int) -> TrainReport:
    """A process other than 0: its share of every step, nothing evaluated or stored."""
    world = context.world
    if not REGISTRY[name].trainable:
        return TrainReport(name, True, f"closed-form: fitted by process 0 alone (process {world.rank} waited)")
    run = prepare_run(context, name, settings, quick, seed)
    result = fit(run.model, context.split, context.device, seed, None, world=world)
    return TrainReport(name, True, f"process {world.rank} of {world.size}: trained its share", result.seconds)


def _train_and_store(
    context: TrainingContext,
    name: str,
    settings: dict[str, object],
    quick: bool,
    seed: int,
    progress: ProgressCallback | None,
    info: dict[str, object] | None,
) -> TrainReport:
    run = prepare_run(context, name, settings, quick, seed)
    run.result = fit(run.model, context.split, context.device, seed, progress, world=context.world)
    run.notes += run.result.notes
    tune_retriever_blend(run)
    test_ndcg = evaluate_and_store(run, info).ndcg_at_10
    if progress:
        best = run.result.best_valid_ndcg
        progress(Progress(model=name, kind=STORED, epoch=run.result.best_epoch, epochs=run.result.best_epoch,
                          valid_ndcg=best, best_ndcg=best, elapsed_s=run.result.seconds))  # fmt: skip
    return TrainReport(name, True, "; ".join(run.notes), run.result.seconds, test_ndcg)


def prepare_run(context: TrainingContext, name: str, settings: dict[str, object], quick: bool, seed: int) -> ModelRun:
    """The model built from its settings (over the ones the data sets), started from the models it
    is pre-trained from and given its retriever's candidates: ready to fit."""
    seed_everything(seed)  # initial weights depend on the seed alone, not on models trained before
    settings = {**data_settings(name, context.split), **settings}
    model = build_model(name, context.dataset.n_users, context.dataset.n_items, features=context.features,
                        **settings)  # fmt: skip
    run = ModelRun(context, model, quick, seed)
    start_from_pretrained(run)
    attach_retriever(run)
    return run


def start_from_pretrained(run: ModelRun) -> None:
    """Load the stored models the config starts from (NeuMF from GMF and MLP); without them the
    model trains from scratch, and its stored config says so."""
    names = run.model.config.pretrained_from()
    if not names:
        return
    sources = pretrained_models(run.context.dataset, names)
    if sources is None:
        run.model.config = run.model.config.from_scratch()
        run.notes.append(f"trained from scratch: pre-training needs {', '.join(names)} trained first")
    else:
        run.model.initialise_from(**sources)


def attach_retriever(run: ModelRun) -> None:
    """A ranker draws hard negatives from its retriever's candidates and is validated on them."""
    name = run.model.config.retriever()
    if not name:
        return
    found = pretrained_models(run.context.dataset, (name,))
    if found is None:
        run.notes.append(f"no hard negatives: {name} is not trained, so only random negatives and "
                         "full-ranking validation")  # fmt: skip
        return
    run.retriever = found[name].to(run.context.device)
    run.model.use_candidates(candidate_pool(run.retriever, run.context.split, run.model.config.n_candidates))


def tune_retriever_blend(run: ModelRun) -> None:
    """The weight of the retriever's order in the ranker's final score, chosen on validation."""
    if run.retriever is None:
        return
    blend, tried = tune_blend(run.model, run.context.split, run.model.candidate_pool)
    run.model.retriever_blend.fill_(blend)
    run.notes.append(f"retriever blend {blend:g} (validation NDCG@10 {tried[blend]:.4f}; ranker alone "
                     f"{tried[0.0]:.4f})")  # fmt: skip


def evaluate_and_store(run: ModelRun, info: dict[str, object] | None = None) -> Evaluation:
    """Test metrics (validation ones too in the full profile; a ranker's funnel over its
    retriever's candidates), then the model into the store. Returns the test evaluation."""
    model, split, genres = run.model, run.context.split, run.context.features.items.genres
    test = evaluate_model(model, split, "test", genres)
    # Validation metrics in full, for choosing among trained models (bench/). The quick profile
    # leaves them out: for a ranker, a second pass over the whole catalogue costs about as much as
    # its quick training, and the fit's own validation score per epoch is in the history.
    valid = None if run.quick else evaluate_model(model, split, "valid", genres).result()
    funnel = None
    if run.retriever is not None:
        # What the ranker is for: reordering its retriever's candidates (the funnel on test).
        evaluation = evaluate_pipeline(run.retriever, model, split, "test", model.config.n_candidates, genres)
        funnel = evaluation.result(retriever_model=run.retriever.name)
        model.use_candidates(None)
    results = StoredResults(PROTOCOL, test.result(), valid, funnel)
    save_artifact(run.context.dataset, model.cpu(), results.to_json(), run.result.history,
                  {**run_info(run), **(info or {})}, per_user=test.per_user)  # fmt: skip
    return test


def run_info(run: ModelRun) -> dict[str, object]:
    result, device = run.result, run.context.device
    return {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": result.seconds,
        "device": result.device,
        "device_name": result.device_name,
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        **run.context.world.describe(),  # one process, or data-parallel over the devices listed
        "best_epoch": result.best_epoch,
        "seed": run.seed,
        "profile": "quick" if run.quick else "full",
        "notes": run.notes,
        "family": run.model.family,
        "paper": run.model.paper,
    }


def pretrained_models(dataset: Dataset, names: tuple[str, ...]) -> dict[str, Recommender] | None:
    """The stored models another one starts from, or None when one of them is not usable."""
    try:
        return {name: load_artifact(dataset, name).model for name in names}
    except ArtifactError:
        return None


def draw_stored_maps(dataset: Dataset, split: Split, model: str) -> dict[str, str]:
    """Embedding maps of a freshly stored model, as notes; a map that cannot be drawn is noted, never fatal."""
    try:
        drawn = draw_maps(load_artifact(dataset, model), split)
    except (ArtifactError, ValueError, RuntimeError, MemoryError) as error:
        return {"maps": f"not drawn ({type(error).__name__}: {error})"}
    return {f"{kind} map": note for kind, note in drawn.items()}


def add_notes(report: TrainReport, notes: dict[str, str]) -> None:
    report.message = "; ".join(filter(None, [report.message, *(f"{k}: {v}" for k, v in notes.items())]))
