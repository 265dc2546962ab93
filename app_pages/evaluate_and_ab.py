"""Evaluate and A/B: the metrics with CIs, per-user distributions, beyond-accuracy metrics, a paired
test between two models, and a simulated A/B test with its lift, tests, power and sample size."""

from __future__ import annotations

import streamlit as st

from recsys_core.data import PROTOCOL
from recsys_core.protocols.abtest import PROXIES
from recsys_core.store.artifacts import leaderboard
from ui import (
    ab_form,
    ab_result,
    beyond_accuracy_chart,
    cached_paired,
    cached_simulation,
    leaderboard_table,
    load_per_user,
    load_records,
    open_view,
    paired_result,
    per_user_box,
    require_models,
    stored_damage,
)

BEYOND = {
    "coverage@10": "catalogue coverage@10 (share of items in some top 10)",
    "popularity@10": "popularity@10 (mean percentile, 100 = most popular)",
    "diversity@10": "diversity@10 (intra-list genre distance)",
    "novelty@10": "novelty@10 (mean self-information, bits)",
}
dataset = open_view("Evaluate and A/B")
name = dataset.name
versions = require_models(name, "evaluate")
frames, problems = load_per_user(name, list(versions))
board = leaderboard(name)
best = board["model"].tolist() if not board.empty else list(versions)

st.header("Metrics")
if board.empty:
    st.warning("The stored test metrics cannot be read: retrain the models on the home page.")
else:
    leaderboard_table(board)
    st.download_button("Download the metrics (CSV)", board.assign(protocol=PROTOCOL).to_csv(index=False),
                       file_name=f"{name}-evaluation.csv", mime="text/csv", icon=":material/download:",
                       key="metrics_csv")  # fmt: skip
for problem in {**problems, **stored_damage(name)}.values():
    st.warning(problem)

st.header("Per-user distributions")
if not frames:
    st.info("No trained model has per-user metrics to show.")
else:
    shown = st.multiselect("Models", list(frames), default=[m for m in best if m in frames][:4], key="dist_models")
    metric = st.radio("Per-user metric", ["rank", "NDCG@10", "MRR@10", "NDCG@20"], horizontal=True, key="dist_metric")
    lacking = [m for m in shown if not {metric, "HR@10"} <= set(frames[m].columns)]
    if lacking:
        st.warning(f"No per-user {metric} stored for {', '.join(lacking)}: retrain to see it.")
    shown = [m for m in shown if m not in lacking]
    st.plotly_chart(per_user_box({m: frames[m] for m in shown}, metric), width="stretch")
    hits = ", ".join(f"{m} {frames[m]['HR@10'].mean():.1%}" for m in shown)
    st.caption(
        f"One value per test user; the dashed line is the mean. Share of users whose held-out item is in the "
        f"top 10: {hits or 'choose a model'}. Protocol: {PROTOCOL}."
    )

st.header("Beyond accuracy")
records, _ = load_records(name)  # a model whose files cannot be read is reported above
tests = {m: records[m].results.test for m in best if m in records}
st.plotly_chart(beyond_accuracy_chart(tests, list(BEYOND)), width="stretch")
st.caption("; ".join(BEYOND.values()) + f". Models ordered by test NDCG@10. Protocol: {PROTOCOL}.")

st.header("Paired test between two models")
if len(frames) < 2:
    st.info("A paired test compares two models on the same users: train at least two models to use it.")
else:
    options = list(frames)
    left, middle, right = st.columns(3)
    a = left.selectbox("Model A", options, index=options.index(best[0]) if best[0] in options else 0, key="pair_a")
    b = middle.selectbox("Model B", options, index=1 if options[0] == a else 0, key="pair_b")
    metric = right.selectbox("Per-user metric", list(PROXIES), key="pair_metric")
    if a == b:
        st.info("Choose two different models: a model compared with itself differs on no user.")
    else:
        try:
            comparison = cached_paired(name, a, b, metric, 0.05, versions[a], versions[b])
        except ValueError as error:
            st.warning(f"These two models cannot be compared: {error}.")
        else:
            paired_result(comparison, metric)

st.header("A/B simulator")
st.markdown(
    "What would an online A/B test between two models show? Users are drawn from the test users, split "
    "at random between a control and a treatment, and each counts as a success when their arm's model "
    "ranked their held-out item in the top 10 (or scores their NDCG). Press **Run the simulation**."
)
if len(frames) < 2:
    st.info("An A/B test needs two models (a control and a treatment): train at least two models to use it.")
    st.stop()
ab_form(name, list(frames), best[0])

settings = st.session_state.get("ab_settings")
if settings is None or settings["dataset"] != name:  # nothing asked yet on this dataset
    st.stop()
if settings["control"] not in frames or settings["treatment"] not in frames:
    st.warning("A model of the last simulation has no per-user metrics any more: run it again.")
    st.stop()
try:
    result = cached_simulation(name, settings, versions[settings["control"]], versions[settings["treatment"]])
except ValueError as error:
    st.warning(f"This test cannot be simulated: {error}.")
    st.stop()
ab_result(result)
