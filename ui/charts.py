"""The views' figures (plotly only, no Streamlit): heat maps, embedding maps, the leaderboard's
intervals, training curves, the data's charts, per-user distributions and the pipeline's funnel.
Labels from data go through :func:`ui.text.chart_text`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.colors import DEFAULT_PLOTLY_COLORS
from plotly.subplots import make_subplots

from recsys_core.results import Estimate, TopKResult
from recsys_core.serving.pipeline import PipelineTrace
from ui.text import chart_text


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


# --------------------------------------------------------------------------- embedding maps


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


# --------------------------------------------------------------------------- models and training


def interval_chart(estimates: dict[str, Estimate], families: dict[str, str]) -> go.Figure:
    """Each model's test NDCG@10 with its 95% confidence interval, coloured by family, best on top."""
    intervals = pd.DataFrame([
        {"model": model, "NDCG@10": e.mean, "low": e.low, "high": e.high, "family": families[model]}
        for model, e in estimates.items() if e.interval is not None
    ]).sort_values("NDCG@10")  # fmt: skip
    figure = px.scatter(
        intervals,
        x="NDCG@10",
        y="model",
        color="family",
        error_x=intervals["high"] - intervals["NDCG@10"],
        error_x_minus=intervals["NDCG@10"] - intervals["low"],
        title="Test NDCG@10 with 95% confidence intervals",
    )
    figure.update_yaxes(categoryorder="array", categoryarray=intervals["model"].tolist())
    return figure


def epoch_chart(histories: dict[str, list[dict]], loss: bool) -> go.Figure | None:
    """Stored training loss (``loss``) or validation NDCG@10 per epoch, one line per model; None
    when no model was trained by epochs (closed-form models store a tuning grid instead)."""
    curves = pd.DataFrame([
        {"model": model, "epoch": row["epoch"], "loss": row.get("loss"), "valid NDCG@10": row.get("valid NDCG@10")}
        for model, history in histories.items() for row in history if isinstance(row, dict) and "epoch" in row
    ])  # fmt: skip
    if curves.empty:
        return None
    if loss:
        return px.line(curves, x="epoch", y="loss", color="model", log_y=True, title="Training loss per epoch")
    return px.line(curves, x="epoch", y="valid NDCG@10", color="model",
                   title="Validation NDCG@10 per epoch (early stopping keeps the best)")  # fmt: skip


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


# --------------------------------------------------------------------------- the data


def data_chart(chart: str, tables: dict[str, pd.DataFrame]) -> go.Figure:
    """One of the Overview's charts of the data ("Long tails", "Genres", "Ratings over time",
    "Rating distribution") from its tables (``ui.cache.cached_dataset_tables``)."""
    if chart == "Long tails":
        return px.line(tables["tails"], x="rank", y="interactions", color="of", log_y=True,
                       title="Long tails: user activity and item popularity, most active first")  # fmt: skip
    if chart == "Genres":
        genres = tables["genres"].assign(genre=tables["genres"]["genre"].map(chart_text))
        return px.bar(genres, x="genre", y="interactions", hover_data=["items"], title="Interactions per genre")
    if chart == "Ratings over time":
        return px.bar(tables["time"], x="period", y="interactions", color="mean rating", color_continuous_scale="RdBu",
                      title="Interactions per month, coloured by their mean rating")  # fmt: skip
    return px.bar(tables["ratings"], x="rating", y="interactions", title="Ratings (all read as implicit interactions)")


# --------------------------------------------------------------------------- evaluation


def per_user_box(frames: dict[str, pd.DataFrame], metric: str) -> go.Figure:
    """One box per model of its per-user test ``metric`` (ranks 1-based, on a log scale)."""
    figure = go.Figure()
    for model, frame in frames.items():
        values = frame[metric] + (1 if metric == "rank" else 0)
        figure.add_trace(go.Box(y=values, name=model, boxmean=True, boxpoints=False))
    if metric == "rank":
        figure.update_yaxes(type="log", title="rank of the held-out item (1 = first; log scale)")
    else:
        figure.update_yaxes(title=f"per-user {metric}")
    figure.update_layout(title=f"Per-user {metric} on the test set", showlegend=False)
    return figure


def beyond_accuracy_chart(tests: dict[str, TopKResult], metrics: list[str]) -> go.Figure:
    """One bar chart per beyond-accuracy metric, the models in the order of ``tests``."""
    figure = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics)
    for column, metric in enumerate(metrics, start=1):
        values = {model: value for model, test in tests.items() if (value := _value(test, metric)) is not None}
        figure.add_trace(go.Bar(x=list(values), y=list(values.values()), name=metric), row=1, col=column)
    figure.update_layout(title="Beyond accuracy: the top 10 lists on the test set", showlegend=False, height=420)
    return figure


def _value(test: TopKResult, metric: str) -> float | None:
    if metric == "coverage@10":
        return test.coverage_at_10
    return test.estimates[metric].mean if metric in test.estimates else None


def funnel_chart(trace: PipelineTrace, n_items: int, k: int) -> go.Figure:
    """The catalogue, the N candidates and the final top ``k``, with where the held-out item sits in each."""
    result = trace.result
    stages = ["Catalogue", f"Candidates (N = {len(result.candidates)})", f"Final top {k}"]
    counts = [n_items, len(result.candidates), len(result.answer.items)]
    text = [f"{c:,} items" for c in counts]
    if trace.held_out:
        where = [
            f"rank {trace.catalogue_rank:,}" if trace.catalogue_rank else "—",
            f"position {trace.candidate_rank}" if trace.candidate_rank else "not retrieved",
            f"position {trace.final_rank}" if trace.final_rank and trace.final_rank <= k
            else (f"position {trace.final_rank}, below the top {k}" if trace.final_rank else "—"),
        ]  # fmt: skip
        text = [f"{t} · held-out: {w}" for t, w in zip(text, where, strict=True)]
    funnel = go.Figure(go.Funnel(y=stages, x=counts, text=text, textinfo="text"))
    funnel.update_layout(height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_type="log")
    return funnel
