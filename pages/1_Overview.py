"""Overview: the dataset's statistics, the leaderboard with its protocol and CIs, training curves, model cards."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from recsys_core.artifacts import ArtifactError, leaderboard, read_record
from recsys_core.data import PROTOCOL
from recsys_core.data import stats as data_stats
from ui import (
    HOME_HINT,
    chart_text,
    dataset_metrics,
    family_of,
    leaderboard_table,
    literal,
    open_view,
    trained_versions,
)

dataset = open_view("Overview", "📊")
name = dataset.name


@st.cache_data(show_spinner=False)
def dataset_tables(name: str, fingerprint: str) -> dict[str, pd.DataFrame]:
    tails = pd.concat(
        [
            data_stats.long_tail(dataset, "user").assign(of="users: interactions per user"),
            data_stats.long_tail(dataset, "item").assign(of="items: interactions per item"),
        ]
    )
    return {
        "tails": tails,
        "genres": data_stats.genre_counts(dataset),
        "time": data_stats.interactions_over_time(dataset),
        "ratings": data_stats.rating_counts(dataset),
    }


tables = dataset_tables(name, dataset.fingerprint)
summary = dataset.summary()
items = tables["tails"][tables["tails"]["of"].str.startswith("items")]
head = int((items["cumulative share"] < 0.5).sum()) + 1
st.header(f"The data: {name}")
dataset_metrics(summary)
st.caption(
    f"The {head:,} most popular items ({head / max(len(items), 1):.0%} of the catalogue) account for half of "
    f"all interactions. Source: {literal(summary['source'])}. Charts of the long tails, genres and time below."
)

st.header("Leaderboard")
board = leaderboard(name)
versions = trained_versions(name)
if board.empty:
    st.info(f"No model is trained on {name} yet: {HOME_HINT}.")
    st.page_link("app.py", label="Go to the home page", icon="🏠")
records, problems = {}, {}
for model in versions:
    try:
        records[model] = read_record(name, model)
    except ArtifactError as error:
        problems[model] = str(error)
for model, problem in problems.items():
    st.warning(f"{model}: {problem}")
if not board.empty:
    leaderboard_table(board)

# One chart at a time: each plotly figure costs the browser a few hundred milliseconds to draw,
# and a page switch should stay well under a second and a half.
st.header("Charts")
CHARTS = [
    "Leaderboard with 95% CIs",
    "Training curves",
    "Training loss",
    "Long tails",
    "Genres",
    "Ratings over time",
    "Rating distribution",
]
available = CHARTS if records else CHARTS[3:]
if st.session_state.get("chart") not in available:
    st.session_state["chart"] = available[0]
chart = st.radio("Chart", available, horizontal=True, key="chart")
if chart == "Leaderboard with 95% CIs":
    intervals = pd.DataFrame(
        [
            {
                "model": m,
                "NDCG@10": r["metrics"]["test"]["NDCG@10"],
                "low": r["metrics"]["test"]["NDCG@10 CI"][0],
                "high": r["metrics"]["test"]["NDCG@10 CI"][1],
                "family": r["info"].get("family", family_of(m)),
            }
            for m, r in records.items()
            if "NDCG@10 CI" in r["metrics"].get("test", {})
        ]
    ).sort_values("NDCG@10")
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
    st.plotly_chart(figure, width="stretch")
    st.caption(f"Protocol: {PROTOCOL}. Overlapping intervals are not a test: see the paired tests in the README.")
elif chart in ("Training curves", "Training loss"):
    curves = pd.DataFrame(
        [
            {"model": m, "epoch": row["epoch"], "loss": row.get("loss"), "valid NDCG@10": row.get("valid NDCG@10")}
            for m, r in records.items()
            for row in r["history"]
            if isinstance(row, dict) and "epoch" in row
        ]
    )
    if curves.empty:
        st.info("No model trained by gradient descent yet (closed-form models have a tuning grid: see their cards).")
    elif chart == "Training loss":
        st.plotly_chart(
            px.line(curves, x="epoch", y="loss", color="model", log_y=True, title="Training loss per epoch"),
            width="stretch",
        )
    else:
        st.plotly_chart(
            px.line(
                curves,
                x="epoch",
                y="valid NDCG@10",
                color="model",
                title="Validation NDCG@10 per epoch (early stopping keeps the best)",
            ),
            width="stretch",
        )
elif chart == "Long tails":
    st.plotly_chart(
        px.line(
            tables["tails"],
            x="rank",
            y="interactions",
            color="of",
            log_y=True,
            title="Long tails: user activity and item popularity, most active first",
        ),
        width="stretch",
    )
elif chart == "Genres":
    if tables["genres"].empty:
        st.info("This dataset has no genres.")
    else:
        genres = tables["genres"].assign(genre=tables["genres"]["genre"].map(chart_text))
        st.plotly_chart(
            px.bar(genres, x="genre", y="interactions", hover_data=["items"], title="Interactions per genre"),
            width="stretch",
        )
elif chart == "Ratings over time":
    figure = px.bar(
        tables["time"],
        x="period",
        y="interactions",
        color="mean rating",
        color_continuous_scale="RdBu",
        title="Interactions per month, coloured by their mean rating",
    )
    st.plotly_chart(figure, width="stretch")
else:
    st.plotly_chart(
        px.bar(tables["ratings"], x="rating", y="interactions", title="Ratings (all read as implicit interactions)"),
        width="stretch",
    )

st.header("Model cards")
if not records:
    st.stop()
model = st.selectbox(
    "Model",
    list(records),
    key="card_model",
    format_func=lambda m: f"{m} · {records[m]['info'].get('family', family_of(m))}",
)
record = records[model]
info, config = record["info"], record["config"].get("config", {})
test = record["metrics"].get("test", {})
st.markdown(f"**{model}** ({info.get('family', family_of(model))}). **Paper:** {info.get('paper', 'n/a')}")
cells = st.columns(5)
cells[0].metric("Parameters", f"{info.get('parameters') or 0:,}")
cells[1].metric("Training time", f"{info.get('seconds') or 0:.1f} s")
cells[2].metric("Device", str(info.get("device_name", info.get("device", "?"))))
cells[3].metric("Best epoch", str(info.get("best_epoch", "–")))
cells[4].metric("Test NDCG@10", f"{test.get('NDCG@10') or float('nan'):.4f}")
st.caption(
    f"Profile: {info.get('profile', '?')}; trained at {info.get('trained_at', '?')}; seed {info.get('seed', '?')}. "
    f"Protocol: {PROTOCOL}."
)
for note in info.get("notes", []):
    st.caption(f"Note: {note}")
st.caption("Settings: " + "; ".join(f"{k} = {v}" for k, v in config.items()))
if record["history"] and "epoch" not in record["history"][0]:
    st.caption("Tuning grid on validation (the best setting is kept):")
    st.dataframe(pd.DataFrame(record["history"]), hide_index=True)
