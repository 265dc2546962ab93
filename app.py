"""DeepRec Lab home: what the lab is, the dataset, which models are trained, first-run training."""

from __future__ import annotations

import os

import plotly.express as px
import streamlit as st

from recsys_core.artifacts import TrainingLocked, leaderboard
from recsys_core.data import DATASETS, DEFAULT_DATASET, PROTOCOL, DatasetUnavailable
from recsys_core.data.stats import long_tail
from recsys_core.models import DEFAULT_ZOO
from recsys_core.train import Progress, train_models
from ui import cached_dataset, dataset_error_message

st.set_page_config(page_title="DeepRec Lab", page_icon="🎬", layout="wide")

st.title("DeepRec Lab")
st.markdown(
    "An interactive lab for deep-learning recommender systems: every model of the canon trained on "
    "real data and compared on **one honest protocol**. Pick a dataset in the sidebar, train the "
    "models, and compare them on the leaderboard below."
)

names = list(DATASETS)
default = os.environ.get("DEEPREC_DATASET", DEFAULT_DATASET)
dataset_name = st.sidebar.selectbox(
    "Dataset", names, index=names.index(default) if default in names else 0, key="dataset"
)

try:
    dataset = cached_dataset(dataset_name)
except DatasetUnavailable as error:
    st.error(dataset_error_message(error))
    st.info("The synthetic dataset needs no download: choose **synthetic** in the sidebar to use the lab now.")
    st.stop()

st.subheader(f"Dataset: {dataset_name}")
summary = dataset.summary()
columns = st.columns(4)
columns[0].metric("Users", f"{summary['users']:,}")
columns[1].metric("Items", f"{summary['items']:,}")
columns[2].metric("Interactions", f"{summary['interactions']:,}")
columns[3].metric("Density", f"{summary['density']:.2%}")
st.caption(f"Source: {summary['source']}")

tail = long_tail(dataset, "item")
figure = px.line(tail, x="rank", y="interactions", log_y=True,
                 title="Item popularity long tail (interactions per item, most popular first)")  # fmt: skip
st.plotly_chart(figure, width="stretch")

st.subheader("Leaderboard")
board = leaderboard(dataset_name)
if board.empty:
    st.info(
        "No model is trained on this dataset yet. Train the default zoo ("
        + ", ".join(DEFAULT_ZOO)
        + ") now with the quick profile (at most 15 epochs per model): a few minutes on a laptop CPU."
    )
    if st.button("Train the default zoo", type="primary", key="train_baselines"):
        bar = st.progress(0.0, text="Starting…")
        done: list[str] = []

        def report(progress: Progress) -> None:
            finished = len(done) + (progress.epoch / max(progress.epochs, 1))
            if progress.done:
                done.append(progress.model)
            bar.progress(min(finished / len(DEFAULT_ZOO), 1.0), text=f"Training {progress.model}…")

        try:
            reports = train_models(dataset_name, list(DEFAULT_ZOO), quick=True, progress=report)
        except TrainingLocked as error:
            st.warning(str(error))
            st.stop()
        failed = [r for r in reports if not r.ok]
        for r in failed:
            st.error(f"{r.model} failed: {r.message}")
        bar.progress(1.0, text="Done")
        st.rerun()
    st.stop()

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
best = board.iloc[0]
st.success(f"Best so far: **{best['model']}** with NDCG@10 {best['NDCG@10']:.4f} {best['NDCG@10 95% CI']}.")
