"""Cached loaders: every page reads the library through these.

Loaded models, splits and reason vectors are cached with ``st.cache_resource`` keyed on the
dataset name and the artifact's version (its weights' hash), so a widget change never reloads
anything and a retrained model is picked up on the next rerun without a restart. Frames are
cached with ``st.cache_data``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pandas as pd
import streamlit as st

from recsys_core.data import Dataset, Split, load_dataset, stats
from recsys_core.data import temporal_leave_last_out as _split
from recsys_core.models import REGISTRY
from recsys_core.protocols.abtest import ABDesign, ABResult, PairedComparison, align_users, compare_paired, simulate_ab
from recsys_core.results import FunnelResult
from recsys_core.serving.embeddings import EmbeddingMap, load_or_fit_map, map_path, map_points
from recsys_core.serving.explain import ReasonVectors, reason_vectors
from recsys_core.store.artifacts import (
    Artifact,
    ArtifactError,
    ArtifactMissing,
    ModelRecord,
    best_per_family,
    damaged_models,
    dataset_root,
    load_artifact,
    read_manifest,
    read_model_record,
    read_per_user,
    retrain_hint,
)
from ui.text import HOME_HINT, chart_text

# Dataset name -> what loads it, for datasets opened by path: a CSV's name carries a content hash
# (``ml-1m-sas-80fd908807``) that the views key everything on, but only its path loads it.
REFERENCES: dict[str, str] = {}
# The datasets this server process has loaded once: a first visit shows a status while the others
# are obtained and parsed (obtaining cannot report from inside a cached function).
OPENED: set[str] = set()


def cached_dataset(name: str) -> Dataset:
    """A dataset by its name, or by what loads it (a registered name, an upload, a path)."""
    dataset = _cached_dataset(REFERENCES.get(name, name))
    REFERENCES.setdefault(dataset.name, dataset.reference)
    OPENED.update((name, dataset.name))
    return dataset


def is_open(name: str) -> bool:
    """Whether this server has loaded the dataset already (opening it again takes no time)."""
    return name in OPENED


@st.cache_resource(show_spinner=False)
def _cached_dataset(reference: str) -> Dataset:
    return load_dataset(reference)


@st.cache_resource(show_spinner=False)
def cached_split(name: str) -> Split:
    return _split(cached_dataset(name))


@st.cache_resource(show_spinner="Loading a model…", max_entries=64)
def cached_artifact(dataset_name: str, model_name: str, version: str) -> Artifact:
    """``version`` is the manifest's weights hash: a retrained model is a new cache entry."""
    return load_artifact(cached_dataset(dataset_name), model_name)


@st.cache_resource(show_spinner=False, max_entries=64)
def cached_reason_vectors(dataset_name: str, model_name: str, version: str) -> ReasonVectors:
    return reason_vectors(cached_artifact(dataset_name, model_name, version).model, cached_split(dataset_name))


@st.cache_data(show_spinner=False)
def cached_user_activity(name: str) -> pd.DataFrame:
    return stats.user_activity(cached_dataset(name))


@st.cache_data(show_spinner=False)
def cached_dataset_tables(name: str, fingerprint: str) -> dict[str, pd.DataFrame]:
    """The Overview's tables of the data; ``fingerprint`` tells an upload from its replacement."""
    dataset = cached_dataset(name)
    tails = pd.concat([stats.long_tail(dataset, "user").assign(of="users: interactions per user"),
                       stats.long_tail(dataset, "item").assign(of="items: interactions per item")])  # fmt: skip
    return {
        "tails": tails,
        "genres": stats.genre_counts(dataset),
        "time": stats.interactions_over_time(dataset),
        "ratings": stats.rating_counts(dataset),
    }


# --------------------------------------------------------------------------- trained models


def trained_versions(dataset_name: str) -> dict[str, str]:
    """``{model: version}`` of every trained model, in registry order (unknown names last)."""
    models = read_manifest(dataset_name)["models"]
    order = {name: i for i, name in enumerate(REGISTRY)}
    names = sorted(models, key=lambda n: (order.get(n, len(order)), n))
    return {name: models[name].get("version", "") for name in names}


@st.cache_data(show_spinner=False, max_entries=16)
def cached_best_per_family(dataset_name: str, versions: tuple[tuple[str, str], ...], limit: int) -> list[str]:
    """:func:`best_per_family`, read once per set of trained ``versions`` (a retrain is a new entry)."""
    del versions  # the cache key only
    return best_per_family(dataset_name, limit)


def stored_damage(dataset_name: str) -> dict[str, str]:
    """:func:`damaged_models`, read again only when a stored model's files change (their paths, sizes
    and times): the explorer asks at every widget change, and reading every model's files each time
    cost 10 ms of its redraw with 21 models; a stat of each costs a sixth of that."""
    files = sorted((str(p), *_stamp(p)) for p in dataset_root(dataset_name).glob("*/*.json"))
    return dict(_cached_damage(dataset_name, tuple(files)))


def _stamp(path) -> tuple[int, int]:
    try:
        stat = path.stat()
        return stat.st_mtime_ns, stat.st_size
    except OSError:  # removed between the listing and the stat: a change like any other
        return -1, -1


# Not st.cache_data: its hashing of the key, a stamp per file, would cost more than the stats.
@functools.lru_cache(maxsize=16)
def _cached_damage(dataset_name: str, files: tuple) -> dict[str, str]:
    del files  # the cache key only
    return damaged_models(dataset_name)


def load_trained(dataset_name: str, names: list[str] | None = None) -> tuple[dict[str, Artifact], dict[str, str]]:
    """Loaded artifacts of the trained models (all, or ``names``), and a message per model that
    could not be loaded, so a broken model is reported in its own place while the others render."""
    return _each_trained(dataset_name, names, cached_artifact)


def load_records(dataset_name: str) -> tuple[dict[str, ModelRecord], dict[str, str]]:
    """Every trained model's :class:`ModelRecord` (read afresh: a damaged file is reported at once), and
    a message per model whose files cannot be read."""

    def load(dataset_name: str, model_name: str, version: str) -> ModelRecord:
        return read_model_record(dataset_name, model_name)

    return _each_trained(dataset_name, None, load)


@st.cache_data(show_spinner=False, max_entries=128)
def cached_per_user(dataset_name: str, model_name: str, version: str) -> pd.DataFrame:
    """A stored model's per-user test metrics; ``version`` as in :func:`cached_artifact`."""
    try:
        return read_per_user(dataset_name, model_name)
    except ArtifactMissing as error:
        raise ArtifactMissing(f"{error}; {retrain_hint(dataset_name, model_name)}.") from error


def load_per_user(dataset_name: str, names: list[str]) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Per-user test metrics of ``names``, and a message per model whose metrics cannot be read."""
    return _each_trained(dataset_name, names, cached_per_user)


def _each_trained(dataset_name: str, names: list[str] | None, load: Callable) -> tuple[dict, dict[str, str]]:
    """``load(dataset, model, version)`` of each trained model (all, or ``names``), and the reason
    for each one that is not trained or cannot be read."""
    versions = trained_versions(dataset_name)
    loaded, problems = {}, {}
    for name in names if names is not None else versions:
        if name not in versions:
            problems[name] = f"{name} is not trained on {dataset_name} yet: {HOME_HINT}."
            continue
        try:
            loaded[name] = load(dataset_name, name, versions[name])
        except ArtifactError as error:
            problems[name] = str(error)
    return loaded, problems


def stored_funnels(
    dataset_name: str, versions: dict[str, str], rankers: list[str], retriever_name: str
) -> dict[str, FunnelResult]:
    """The funnels stored with those of ``rankers`` trained over ``retriever_name``: what ranking
    its candidates gained over all test users at training time."""
    funnels = {}
    for ranker in rankers:
        try:
            artifact = cached_artifact(dataset_name, ranker, versions[ranker])
        except ArtifactError:
            continue  # said when it is chosen
        if artifact.model.config.retriever() == retriever_name and artifact.results.pipeline is not None:
            funnels[ranker] = artifact.results.pipeline
    return funnels


# --------------------------------------------------------------------------- embedding maps


@st.cache_resource(show_spinner=False, max_entries=64)
def cached_map(dataset_name: str, model_name: str, version: str, kind: str) -> EmbeddingMap:
    """A model's embedding map, fitted at most once per artifact version (and then read from disk)."""
    return load_or_fit_map(cached_artifact(dataset_name, model_name, version), cached_split(dataset_name), kind)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_map_points(dataset_name: str, model_name: str, version: str, kind: str) -> pd.DataFrame:
    drawn = cached_map(dataset_name, model_name, version, kind)
    points = map_points(cached_dataset(dataset_name), cached_split(dataset_name), drawn)
    return points.assign(label=points["label"].map(chart_text))  # once per map, not at every redraw


def map_is_stored(dataset_name: str, model_name: str, version: str, kind: str) -> bool:
    return map_path(cached_artifact(dataset_name, model_name, version), kind).is_file()


# --------------------------------------------------------------------------- tests between models


@st.cache_data(show_spinner="Running the paired test…", max_entries=64)
def cached_paired(
    dataset_name: str, a: str, b: str, metric: str, alpha: float, version_a: str, version_b: str
) -> PairedComparison:
    frames = cached_per_user(dataset_name, a, version_a), cached_per_user(dataset_name, b, version_b)
    return compare_paired(*frames, metric, (a, b), alpha)


@st.cache_data(show_spinner="Simulating the A/B test…", max_entries=32)
def cached_simulation(dataset_name: str, settings: dict, version_control: str, version_treatment: str) -> ABResult:
    """The simulated test (cached: a million users take a few seconds, and the page reruns often);
    ``settings`` as the A/B form stores them (percentages as the widgets show them)."""
    design = ABDesign(settings["split"] / 100, settings["n_users"], settings["alpha"], settings["power"],
                      settings["mde"] / 100, settings["seed"])  # fmt: skip
    control, treatment = settings["control"], settings["treatment"]
    frames = (cached_per_user(dataset_name, control, version_control),
              cached_per_user(dataset_name, treatment, version_treatment))  # fmt: skip
    return simulate_ab(*align_users(*frames, settings["proxy"]), design, settings["proxy"], (control, treatment))
