"""Evaluate and A/B: the metrics with CIs, per-user distributions, beyond-accuracy metrics, a paired
test between two models, and a simulated A/B test with its lift, tests, power and sample size."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from recsys_core.abtest import PROXIES, ABDesign, ABResult, align_users, compare_paired, format_p, simulate_ab
from recsys_core.artifacts import ArtifactError, damaged_models, leaderboard, read_record
from recsys_core.data import PROTOCOL
from ui import leaderboard_table, load_per_user, open_view, require_models

dataset = open_view("Evaluate and A/B", "⚖️")
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
for problem in {**problems, **damaged_models(name)}.values():
    st.warning(problem)


@st.cache_data(show_spinner="Running the paired test…", max_entries=64)
def paired(dataset_name: str, a: str, b: str, metric: str, alpha: float, version_a: str, version_b: str):
    return compare_paired(frames[a], frames[b], metric, (a, b), alpha)


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
    figure = go.Figure()
    for model in shown:
        values = frames[model][metric] + (1 if metric == "rank" else 0)
        figure.add_trace(go.Box(y=values, name=model, boxmean=True, boxpoints=False))
    if metric == "rank":
        figure.update_yaxes(type="log", title="rank of the held-out item (1 = first; log scale)")
    else:
        figure.update_yaxes(title=f"per-user {metric}")
    figure.update_layout(title=f"Per-user {metric} on the test set", showlegend=False)
    st.plotly_chart(figure, width="stretch")
    hits = ", ".join(f"{m} {frames[m]['HR@10'].mean():.1%}" for m in shown)
    st.caption(
        f"One value per test user; the dashed line is the mean. Share of users whose held-out item is in the "
        f"top 10: {hits or 'choose a model'}. Protocol: {PROTOCOL}."
    )

st.header("Beyond accuracy")
BEYOND = {
    "coverage@10": "catalogue coverage@10 (share of items in some top 10)",
    "popularity@10": "popularity@10 (mean percentile, 100 = most popular)",
    "diversity@10": "diversity@10 (intra-list genre distance)",
    "novelty@10": "novelty@10 (mean self-information, bits)",
}
rows = {}
for model in versions:
    try:
        rows[model] = read_record(name, model)["metrics"].get("test", {})
    except ArtifactError:
        continue  # reported above
figure = make_subplots(rows=1, cols=len(BEYOND), subplot_titles=[k for k in BEYOND])
for column, key in enumerate(BEYOND, start=1):
    models = [m for m in best if m in rows and key in rows[m]]
    figure.add_trace(go.Bar(x=models, y=[rows[m][key] for m in models], name=key), row=1, col=column)
figure.update_layout(title="Beyond accuracy: the top 10 lists on the test set", showlegend=False, height=420)
st.plotly_chart(figure, width="stretch")
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
            comparison = paired(name, a, b, metric, 0.05, versions[a], versions[b])
        except ValueError as error:
            st.warning(f"These two models cannot be compared: {error}.")
        else:
            cells = st.columns([1, 1, 1, 1.5])
            cells[0].metric(f"Mean difference (A − B), {metric}", f"{comparison.mean_difference:+.4f}")
            cells[1].metric("Paired t-test p", format_p(comparison.t_test_p))
            cells[2].metric("Wilcoxon signed-rank p", format_p(comparison.wilcoxon_p))
            cells[3].metric("Bootstrap 95% CI", f"{comparison.ci_low:+.3f} to {comparison.ci_high:+.3f}")
            (st.success if comparison.significant else st.info)(comparison.sentence)
            st.caption(f"Per-user test {metric} of the same {comparison.n_users:,} users. Protocol: {PROTOCOL}.")

st.header("A/B simulator")
st.markdown(
    "What would an online A/B test between two models show? Users are drawn from the test users, split "
    "at random between a control and a treatment, and each counts as a success when their arm's model "
    "ranked their held-out item in the top 10 (or scores their NDCG). Press **Run the simulation**."
)
if len(frames) < 2:
    st.info("An A/B test needs two models (a control and a treatment): train at least two models to use it.")
    st.stop()
options = list(frames)
PROXY_HELP = "HR@10: 1 when the held-out item is in the top 10, else 0. The others: a continuous score per user."
with st.form("ab_form"):
    left, right = st.columns(2)
    control = left.selectbox("Control (today's model)", options, key="ab_control")
    treatment = right.selectbox(
        "Treatment (the challenger)", options, index=options.index(best[0]) if best[0] in options else 1,
        key="ab_treatment",
    )  # fmt: skip
    left, middle, right = st.columns(3)
    split = left.slider("Traffic to the treatment (%)", 5, 95, 50, step=5, key="ab_split")
    n_users = middle.number_input("Users in the test", 20, 2_000_000, 2000, step=500, key="ab_users")
    proxy = right.selectbox("Success proxy", list(PROXIES), key="ab_proxy", help=PROXY_HELP)
    left, middle, right, last = st.columns(4)
    alpha = left.select_slider("Significance level α", [0.01, 0.05, 0.1], 0.05, key="ab_alpha")
    power = middle.select_slider("Desired power", [0.7, 0.8, 0.9, 0.95], 0.8, key="ab_power")
    mde = right.number_input("Minimum detectable effect (relative lift, %)", 1, 500, 5, key="ab_mde")
    seed = last.number_input("Random seed", 0, 1_000_000, 0, key="ab_seed")
    if st.form_submit_button("Run the simulation", type="primary", key="ab_run"):
        st.session_state["ab_settings"] = {"dataset": name, "control": control, "treatment": treatment,
                                           "split": split, "n_users": int(n_users), "proxy": proxy,
                                           "alpha": alpha, "power": power, "mde": mde, "seed": int(seed)}  # fmt: skip


@st.cache_data(show_spinner="Simulating the A/B test…", max_entries=32)
def simulation(dataset_name: str, settings: dict, version_control: str, version_treatment: str) -> ABResult:
    """The simulated test (cached: a million users take a few seconds, and the page reruns often)."""
    design = ABDesign(settings["split"] / 100, settings["n_users"], settings["alpha"], settings["power"],
                      settings["mde"] / 100, settings["seed"])  # fmt: skip
    control, treatment = settings["control"], settings["treatment"]
    values = align_users(frames[control], frames[treatment], settings["proxy"])
    return simulate_ab(*values, design, settings["proxy"], (control, treatment))


settings = st.session_state.get("ab_settings")
if settings is None or settings["dataset"] != name:  # nothing asked yet on this dataset
    st.stop()
if settings["control"] not in frames or settings["treatment"] not in frames:
    st.warning("A model of the last simulation has no per-user metrics any more: run it again.")
    st.stop()
try:
    result = simulation(name, settings, versions[settings["control"]], versions[settings["treatment"]])
except ValueError as error:
    st.warning(f"This test cannot be simulated: {error}.")
    st.stop()

st.subheader(f"{result.treatment} against {result.control} on {result.proxy}")
show = (lambda v: f"{v:.1%}") if result.binary else (lambda v: f"{v:.4f}")
cells = st.columns(4)
cells[0].metric(f"Control: {result.control}", show(result.control_rate), help=f"{result.n_control:,} users")
cells[1].metric(
    f"Treatment: {result.treatment}",
    show(result.treatment_rate),
    delta=f"{result.absolute_lift * 100:+.1f} pp" if result.binary else f"{result.absolute_lift:+.4f}",
    help=f"{result.n_treatment:,} users",
)
if result.relative_lift is None:
    cells[2].metric("Relative lift", "undefined", help="The control's value is 0.")
else:
    low, high = result.relative_ci
    cells[2].metric("Relative lift", f"{result.relative_lift:+.1%}")
    cells[2].caption(f"95% CI {low:+.1%} to {high:+.1%}")
cells[3].metric("Users per arm", f"{result.n_control:,} / {result.n_treatment:,}", help="control / treatment")
cells = st.columns(4)
cells[0].metric("Welch's t-test p", format_p(result.welch_p))
cells[1].metric("Mann-Whitney U p", format_p(result.mann_whitney_p))
cells[2].metric("Power for the observed lift", f"{result.power:.0%}")
cells[3].metric(
    f"Users needed for {result.design.mde:+.0%}",
    f"{result.required.total:,}" if result.required else "n/a",
    help=f"{result.required.control:,} control + {result.required.treatment:,} treatment"
    if result.required
    else "No sample size can be planned for this lift (see the verdict).",
)
{"success": st.success, "warning": st.warning, "info": st.info}[result.tone](result.verdict)
st.caption(
    f"{result.ci_method}. Power and sample size: two-proportion z-test (pooled null variance) for a 0/1 proxy, "
    f"two-sample z-test for a continuous one, with the chosen traffic split. Per-user test metrics; protocol: "
    f"{PROTOCOL}."
)
