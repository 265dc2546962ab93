"""Small cached helpers shared by the pages (no model or metric code lives here).

Loaded models, splits and reason vectors are cached with ``st.cache_resource`` keyed on the
dataset name and the artifact's version (its weights' hash), so a widget change never reloads
anything and a retrained model is picked up on the next rerun without a restart.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from recsys_core.artifacts import (
    Artifact,
    ArtifactError,
    ArtifactMissing,
    load_artifact,
    read_manifest,
    read_per_user,
    retrain_hint,
)
from recsys_core.data import DATASETS, DEFAULT_DATASET, Dataset, DatasetUnavailable, Split, load_dataset, stats
from recsys_core.data import temporal_leave_last_out as _split
from recsys_core.data.split import PROTOCOL
from recsys_core.explain import ReasonVectors, reason_vectors
from recsys_core.jobs import job_status
from recsys_core.models import REGISTRY

MARKDOWN_SPECIALS = set("\\`*_{}[]()<>#+-.!|$~")
HOME_HINT = "train it on the home page (DeepRec Lab), or with `python -m recsys_core train`"


@st.cache_resource(show_spinner="Loading the dataset…")
def cached_dataset(name: str) -> Dataset:
    return load_dataset(name)


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


@st.cache_resource(show_spinner=False)
def title_options(name: str) -> tuple[list[int], dict[int, str]]:
    """Internal item ids sorted by title, and their titles: the options of a type-ahead box."""
    items = cached_dataset(name).items
    ids = items.sort_values("title", kind="stable").index.tolist()
    return ids, dict(zip(items.index.tolist(), items["title"].astype(str).tolist(), strict=True))


@st.cache_data(show_spinner=False)
def cached_user_activity(name: str) -> pd.DataFrame:
    return stats.user_activity(cached_dataset(name))


def markdown_text(text: str) -> str:
    """``text`` (a title from a user's file, say) shown literally inside markdown: no links, images,
    emphasis or math."""
    return "".join("\\" + c if c in MARKDOWN_SPECIALS else c for c in str(text))


def dataset_metrics(summary: dict) -> None:
    """Users, items, interactions and density in one row, as the home page and the Overview show them."""
    cells = st.columns(4)
    cells[0].metric("Users", f"{summary['users']:,}")
    cells[1].metric("Items", f"{summary['items']:,}")
    cells[2].metric("Interactions", f"{summary['interactions']:,}")
    cells[3].metric("Density", f"{summary['density']:.2%}")


def leaderboard_table(board: pd.DataFrame) -> None:
    """The leaderboard as every page shows it: the protocol label first, metrics with their CIs."""
    st.caption(f"Test metrics. Protocol: {PROTOCOL}. 95% confidence intervals over users.")
    metric_format = st.column_config.NumberColumn(format="%.4f")
    st.dataframe(
        board,
        hide_index=True,
        width="stretch",
        column_config={
            **{c: metric_format for c in ("NDCG@10", "HR@10", "MRR@10", "NDCG@20")},
            "coverage@10": st.column_config.NumberColumn(format="%.3f"),
            "train seconds": st.column_config.NumberColumn(format="%.1f"),
        },
    )


def dataset_error_message(error: Exception) -> str:
    return f"The dataset is not available. {error}"


def _remember_dataset() -> None:
    st.session_state["chosen_dataset"] = st.session_state["dataset"]


def select_dataset(training_status: bool = True) -> Dataset:
    """The sidebar's dataset selector (shared by every page; DEEPREC_DATASET sets the default) and
    the loaded dataset. When it cannot be loaded the page explains and stops. While a background
    training runs, the sidebar shows its progress and the page reruns as each model lands."""
    names = list(DATASETS)
    # Widget state does not survive a page switch (each page's selectbox is a new widget), so the
    # choice lives under its own key and is handed to the widget on every page.
    if st.session_state.get("chosen_dataset") not in names:
        default = os.environ.get("DEEPREC_DATASET", DEFAULT_DATASET)
        st.session_state["chosen_dataset"] = default if default in names else names[0]
    st.session_state["dataset"] = st.session_state["chosen_dataset"]
    name = st.sidebar.selectbox("Dataset", names, key="dataset", on_change=_remember_dataset)
    if training_status and job_status(name).running:
        with st.sidebar:
            _training_progress(name)
    try:
        return cached_dataset(name)
    except DatasetUnavailable as error:
        st.error(dataset_error_message(error))
        st.info("The synthetic dataset needs no download: choose **synthetic** in the sidebar to use the lab now.")
        st.stop()


@st.fragment(run_every=3.0)
def _training_progress(name: str) -> None:
    status = job_status(name)
    key = f"models_landed_{name}"
    landed = len(status.done)
    changed = st.session_state.get(key, landed) != landed
    st.session_state[key] = landed
    if changed or not status.running:
        st.rerun()  # a model landed (or the job ended): the page picks it up
    now = f"; training {status.current}" if status.current else ""
    st.caption(f"Background training on {name}: {landed} of {len(status.models)} models stored{now}.")
    st.progress(status.fraction)


def trained_versions(dataset_name: str) -> dict[str, str]:
    """``{model: version}`` of every trained model, in registry order (unknown names last)."""
    models = read_manifest(dataset_name)["models"]
    order = {name: i for i, name in enumerate(REGISTRY)}
    names = sorted(models, key=lambda n: (order.get(n, len(order)), n))
    return {name: models[name].get("version", "") for name in names}


def load_trained(dataset_name: str, names: list[str] | None = None) -> tuple[dict[str, Artifact], dict[str, str]]:
    """Loaded artifacts of the trained models (all, or ``names``), and a message per model that
    could not be loaded, so a broken model is reported in its own place while the others render."""
    versions = trained_versions(dataset_name)
    loaded, problems = {}, {}
    for name in names if names is not None else versions:
        if name not in versions:
            problems[name] = f"{name} is not trained on {dataset_name} yet: {HOME_HINT}."
            continue
        try:
            loaded[name] = cached_artifact(dataset_name, name, versions[name])
        except ArtifactError as error:
            problems[name] = str(error)
    return loaded, problems


@st.cache_data(show_spinner=False, max_entries=128)
def cached_per_user(dataset_name: str, model_name: str, version: str) -> pd.DataFrame:
    """A stored model's per-user test metrics; ``version`` as in :func:`cached_artifact`."""
    return read_per_user(dataset_name, model_name)


def load_per_user(dataset_name: str, names: list[str]) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Per-user test metrics of ``names``, and a message per model whose metrics cannot be read."""
    versions = trained_versions(dataset_name)
    frames, problems = {}, {}
    for name in names:
        if name not in versions:
            problems[name] = f"{name} is not trained on {dataset_name} yet: {HOME_HINT}."
            continue
        try:
            frames[name] = cached_per_user(dataset_name, name, versions[name])
        except ArtifactMissing as error:
            problems[name] = f"{error}; {retrain_hint(dataset_name, name)}."
        except ArtifactError as error:
            problems[name] = str(error)
    return frames, problems


def family_of(name: str) -> str:
    cls = REGISTRY.get(name)
    return getattr(cls, "family", "unknown") if cls else "unknown"


def reads_history(name: str) -> bool:
    """Whether a registered model answers from a history alone (sequential and history-aware models)."""
    return bool(getattr(REGISTRY.get(name), "reads_history", False))


def require_models(dataset_name: str, what: str) -> dict[str, str]:
    """The trained models' versions; when there are none, a short explanation and a way forward."""
    versions = trained_versions(dataset_name)
    if not versions:
        st.info(
            f"No model is trained on **{dataset_name}** yet, so there is nothing to {what}. "
            "Start training on the home page (**DeepRec Lab** in the sidebar): models appear here as they land."
        )
        st.page_link("app.py", label="Go to the home page", icon="🏠")
        st.stop()
    return versions


def heatmap(
    z: np.ndarray,
    x: list[str],
    y: list[str],
    title: str,
    zmax: float | None = None,
    text: bool = False,
    x_title: str = "",
    y_title: str = "",
) -> go.Figure:
    """A heat map with the first row on top (plotly graph objects: a tenth of plotly express's time,
    which matters on pages that redraw at every widget change)."""
    zmax = float(np.max(z)) if zmax is None else zmax
    trace = go.Heatmap(z=z, x=x, y=y, zmin=0, zmax=zmax, colorscale="Blues", texttemplate="%{z:.2f}" if text else None)
    figure = go.Figure(trace)
    figure.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, yaxis_autorange="reversed")
    return figure


def heatmap_grid(stack: np.ndarray, labels: list[str], titles: list[str], columns: int, title: str) -> go.Figure:
    """One heat map per (T, T) slice of ``stack`` (N, T, T), ``columns`` per row, sharing one colour scale."""
    rows = -(-len(stack) // columns)
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.12)
    for n, matrix in enumerate(stack):
        figure.add_trace(
            go.Heatmap(z=matrix, x=labels, y=labels, coloraxis="coloraxis"),
            row=n // columns + 1,
            col=n % columns + 1,
        )
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(
        title=title, height=380 * rows, coloraxis={"colorscale": "Blues", "cmin": 0, "cmax": float(stack.max())}
    )
    return figure
