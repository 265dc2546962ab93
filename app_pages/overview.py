"""Overview: the dataset's statistics, the leaderboard with its protocol and CIs, training curves, model cards."""

from __future__ import annotations

import streamlit as st

from recsys_core.data import PROTOCOL
from recsys_core.data.stats import popular_head
from recsys_core.store.artifacts import leaderboard
from ui import (
    HOME_HINT,
    cached_dataset_tables,
    data_chart,
    dataset_metrics,
    epoch_chart,
    family_label,
    interval_chart,
    leaderboard_table,
    literal,
    load_records,
    model_card,
    open_view,
    point_home,
)

# One chart at a time: each plotly figure costs the browser a few hundred milliseconds to draw,
# and a page switch should stay well under a second and a half.
CHARTS = [
    "Leaderboard with 95% CIs",
    "Training curves",
    "Training loss",
    "Long tails",
    "Genres",
    "Ratings over time",
    "Rating distribution",
]

dataset = open_view("Overview")
name = dataset.name
tables = cached_dataset_tables(name, dataset.fingerprint)
summary = dataset.summary()
head, head_share = popular_head(dataset)
st.header(f"The data: {name}")
dataset_metrics(summary)
st.caption(
    f"The {head:,} most popular items ({head_share:.0%} of the catalogue) account for half of "
    f"all interactions. Source: {literal(summary['source'])}. Charts of the long tails, genres and time below."
)

st.header("Leaderboard")
board = leaderboard(name)
if board.empty:
    point_home(f"No model is trained on {name} yet: {HOME_HINT}.")
records, problems = load_records(name)
for model, problem in problems.items():
    st.warning(f"{model}: {problem}")
if not board.empty:
    leaderboard_table(board)
families = {model: record.info.get("family", family_label(model)) for model, record in records.items()}

st.header("Charts")
available = CHARTS if records else CHARTS[3:]
if st.session_state.get("chart") not in available:
    st.session_state["chart"] = available[0]
chart = st.radio("Chart", available, horizontal=True, key="chart")
if chart == "Leaderboard with 95% CIs":
    estimates = {model: record.results.test.ndcg_at_10 for model, record in records.items()}
    st.plotly_chart(interval_chart(estimates, families), width="stretch")
    st.caption(f"Protocol: {PROTOCOL}. Overlapping intervals are not a test: see the paired tests in the README.")
elif chart in ("Training curves", "Training loss"):
    figure = epoch_chart({model: record.history for model, record in records.items()}, loss=chart == "Training loss")
    if figure is None:
        st.info("No model trained by gradient descent yet (closed-form models have a tuning grid: see their cards).")
    else:
        st.plotly_chart(figure, width="stretch")
elif chart == "Genres" and tables["genres"].empty:
    st.info("This dataset has no genres.")
else:
    st.plotly_chart(data_chart(chart, tables), width="stretch")

st.header("Model cards")
if not records:
    st.stop()
model = st.selectbox("Model", list(records), key="card_model", format_func=lambda m: f"{m} · {families[m]}")
model_card(model, records[model], families[model])
