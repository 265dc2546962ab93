"""Small cached helpers shared by the pages (no model or metric code lives here).

Loaded models, splits and reason vectors are cached with ``st.cache_resource`` keyed on the
dataset name and the artifact's version (its weights' hash), so a widget change never reloads
anything and a retrained model is picked up on the next rerun without a restart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import DEFAULT_PLOTLY_COLORS
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
from recsys_core.data import (
    DEFAULT_DATASET,
    CsvError,
    Dataset,
    DatasetUnavailable,
    Split,
    dataset_names,
    load_dataset,
    stats,
)
from recsys_core.data import temporal_leave_last_out as _split
from recsys_core.data.split import PROTOCOL
from recsys_core.data.uploads import uploads_dir
from recsys_core.embeddings import EmbeddingMap, load_or_fit_map, map_path, map_points
from recsys_core.explain import ReasonVectors, reason_vectors
from recsys_core.jobs import cancel_job, job_status
from recsys_core.models import REGISTRY

# The characters with which markdown (GitHub-flavoured, plus Streamlit's :colour[...] directives,
# :emoji: shortcodes and $math$) can begin any syntax; "&" begins a character reference itself.
MARKDOWN_PUNCTUATION = frozenset("!#$%&()*+-.:<=>[\\]^_`{|}~")
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


def literal(text: object) -> str:
    """``text`` (a message quoting a user's file, a path) shown as written inside markdown (st.error,
    st.caption): ASCII punctuation as numeric character references, which markdown decodes to the
    character and never reads as syntax, where backslash escapes would show inside URLs. A bare URL
    may still become a link (GitHub-flavoured markdown's autolinks), but no image, emphasis, math,
    HTML or colour directive is ever made from data."""
    return "".join(f"&#{ord(c)};" if c in MARKDOWN_PUNCTUATION else c for c in str(text).replace("\n", " "))


def chart_text(text: object) -> str:
    """Data (a title from a user's file, say) as plotly text: plotly reads a subset of HTML in every
    label (links included), so the angle brackets of tags become look-alike quotation marks. Data
    never goes into markdown at all: pages show it with ``st.text`` or in tables."""
    return str(text).replace("<", "‹").replace(">", "›")


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


def open_view(title: str, icon: str, tab_title: str | None = None, training_status: bool = True) -> Dataset:
    """Every view's first lines: the browser tab, the page title, and the sidebar's dataset."""
    st.set_page_config(page_title=f"{tab_title or title} · DeepRec Lab", page_icon=icon, layout="wide")
    st.title(title)
    return select_dataset(training_status)


def _remember_dataset() -> None:
    st.session_state["chosen_dataset"] = st.session_state["dataset"]


def select_dataset(training_status: bool = True) -> Dataset:
    """The sidebar's dataset selector (shared by every page; DEEPREC_DATASET sets the default) and
    the loaded dataset. When it cannot be loaded the page explains and stops. While a background
    training runs, the sidebar shows its progress and the page reruns as each model lands."""
    names = dataset_names()
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
    except CsvError as error:  # an upload whose stored files were damaged or edited since
        st.error(f"The dataset {name} cannot be read: {literal(error)}")
        st.info(f"Upload its files again under the same name on the Train page (they are in "
                f"{literal(uploads_dir() / name)}), or choose another dataset in the sidebar.")  # fmt: skip
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
    now = f"; training {', '.join(status.training)}" if status.training else ""
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
    return _each_trained(dataset_name, names, cached_artifact)


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


def _each_trained(dataset_name: str, names: list[str] | None, load) -> tuple[dict, dict[str, str]]:
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
    which matters on pages that redraw at every widget change); labels and title from data are
    made safe for plotly here (:func:`chart_text`)."""
    zmax = float(np.max(z)) if zmax is None else zmax
    x, y = [chart_text(v) for v in x], [chart_text(v) for v in y]
    trace = go.Heatmap(z=z, x=x, y=y, zmin=0, zmax=zmax, colorscale="Blues", texttemplate="%{z:.2f}" if text else None)
    figure = go.Figure(trace)
    figure.update_layout(title=chart_text(title), xaxis_title=x_title, yaxis_title=y_title, yaxis_autorange="reversed")
    return figure


def heatmap_grid(stack: np.ndarray, labels: list[str], titles: list[str], columns: int, title: str) -> go.Figure:
    """One heat map per (T, T) slice of ``stack`` (N, T, T), ``columns`` per row, sharing one colour scale."""
    rows = -(-len(stack) // columns)
    labels = [chart_text(label) for label in labels]
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


@dataclass
class Overlay:
    """Points drawn over a map: a user's history, a session path, recommendations, a chosen item."""

    name: str
    ids: list[int]  # internal ids, in order (a path is drawn in this order)
    symbol: str
    colour: str
    path: bool = False
    size: int = 13


CONTINUOUS_COLOURS = {"release year": "year", "popularity": "popularity", "activity": "activity"}


def embedding_figure(points: pd.DataFrame, colour: str, title: str, overlays: list[Overlay]) -> go.Figure:
    """A map's points coloured by a category (one trace per value, toggled in the legend) or a
    number (one trace with a colour bar), hover showing titles, with ``overlays`` on top. Every
    point carries its id as ``customdata``, which a click hands back."""
    figure = go.Figure()
    hover = "%{text}<extra>%{fullData.name}</extra>"
    if colour in CONTINUOUS_COLOURS:
        values = points[CONTINUOUS_COLOURS[colour]].to_numpy(dtype=np.float64)
        shown = np.log10(1 + values) if colour in ("popularity", "activity") else values
        bar_title = f"log10(1 + {colour})" if colour in ("popularity", "activity") else colour
        figure.add_trace(go.Scatter(
            x=points["x"], y=points["y"], mode="markers", text=points["label"], customdata=points["id"],
            name=colour, hovertemplate=hover, showlegend=False,
            marker={"size": 6, "opacity": 0.75, "color": shown, "colorscale": "Viridis",
                    "colorbar": {"title": bar_title}},
        ))  # fmt: skip
    else:
        for value, group in points.groupby("genre", sort=True):
            figure.add_trace(go.Scatter(
                x=group["x"], y=group["y"], mode="markers", text=group["label"], customdata=group["id"],
                name=chart_text(value), hovertemplate=hover, marker={"size": 6, "opacity": 0.7},
            ))  # fmt: skip
    where = points.set_index("id")
    for overlay in overlays:
        ids = [i for i in overlay.ids if i in where.index]
        if not ids:
            continue
        spot = where.loc[ids]
        figure.add_trace(go.Scatter(
            x=spot["x"], y=spot["y"], mode="lines+markers" if overlay.path else "markers",
            name=chart_text(overlay.name), text=spot["label"], customdata=ids, hovertemplate=hover,
            line={"color": overlay.colour, "width": 2}, legendrank=1,
            marker={"symbol": overlay.symbol, "size": overlay.size, "color": overlay.colour,
                    "line": {"width": 2, "color": overlay.colour}},
        ))  # fmt: skip
    figure.update_layout(
        title=title, height=560, xaxis={"visible": False}, yaxis={"visible": False},
        legend={"itemsizing": "constant"}, margin={"l": 10, "r": 10, "t": 50, "b": 10}, clickmode="event+select",
    )  # fmt: skip
    return figure


# --------------------------------------------------------------------------- training jobs


def training_allowed() -> bool:
    """Shared demos switch training (and uploads) from the browser off: DEEPREC_UI_TRAINING=0."""
    return os.environ.get("DEEPREC_UI_TRAINING", "1") != "0"


def training_panel(name: str, curves: bool = False) -> None:
    """The dataset's background job as every viewer sees it: live progress (polled every 2 s while
    it runs), a cancel button, how the last job ended; with ``curves``, each model's training loss
    and validation NDCG@10 per epoch as they arrive."""
    running = job_status(name).running
    st.fragment(run_every=2.0 if running else None)(_job_progress)(name, curves)


def _job_progress(name: str, curves: bool) -> None:
    status = job_status(name)
    landed = len(status.done)
    key = f"job_landed_{name}"
    if status.running and st.session_state.get(key, landed) != landed:
        st.session_state[key] = landed
        st.rerun()  # a model landed: refresh the whole page (model lists, leaderboards)
    st.session_state[key] = landed
    if status.running:
        st.session_state["watching_job"] = True
        label = f"training {status.describe_training()}" if status.training else "starting…"
        st.progress(status.fraction, text=f"{landed} of {len(status.models)} models done; {label}")
        st.caption(
            "The job runs in its own process: closing or refreshing the page does not stop it, and every "
            "viewer sees the same progress. Views pick up each model as soon as it is stored."
        )
        if status.done:
            st.write("Stored so far: " + ", ".join(status.done))
        if training_allowed() and st.button("Cancel training", key="cancel_job"):
            cancel_job(name)
            st.rerun()
    else:
        if st.session_state.pop("watching_job", False):
            st.rerun()  # the job just ended: refresh the whole page (leaderboard, model list)
        if status.state == "finished":
            st.success(f"Last training finished: {', '.join(status.done)}.")
        elif status.state == "cancelled":
            st.warning(f"Last training was cancelled; stored before that: {', '.join(status.done) or 'none'}.")
        elif status.state == "failed":
            st.error(f"Last training failed: {status.message}")
            if status.log_tail:
                with st.expander("Training output"):
                    st.code(status.log_tail, language=None)
    if curves and status.epochs_seen:
        st.plotly_chart(training_curves(status.epochs_seen), width="stretch", key="job_curves")


def training_curves(epochs: list[dict]) -> go.Figure:
    """Loss and validation NDCG@10 per epoch, one line per model, from a job's progress events."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=["training loss", "validation NDCG@10 (protocol: valid)"])
    frame = pd.DataFrame(epochs)
    for n, (model, rows) in enumerate(frame.groupby("model", sort=False)):
        colour = DEFAULT_PLOTLY_COLORS[n % len(DEFAULT_PLOTLY_COLORS)]
        for column, (key, label) in enumerate((("loss", "loss"), ("valid_ndcg", "NDCG@10")), start=1):
            values = rows.dropna(subset=[key])
            figure.add_trace(
                go.Scatter(x=values["epoch"], y=values[key], mode="lines+markers", name=model, legendgroup=model,
                           showlegend=column == 1, line={"color": colour}, hovertemplate=f"{model} %{{x}}: %{{y:.4f}}"
                           f"<extra>{label}</extra>"),
                row=1, col=column,
            )  # fmt: skip
    figure.update_xaxes(title_text="epoch")
    figure.update_layout(height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure
