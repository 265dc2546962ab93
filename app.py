"""DeepRec Lab home: what the lab is, the dataset, which models are trained, background training."""

from __future__ import annotations

import os
import time

import streamlit as st

from recsys_core.artifacts import TrainingLocked, leaderboard
from recsys_core.jobs import cancel_job, job_status, lock_holder, start_job
from recsys_core.models import DEFAULT_ZOO, REGISTRY
from ui import dataset_metrics, leaderboard_table, select_dataset, trained_versions

st.set_page_config(page_title="DeepRec Lab", page_icon="🎬", layout="wide")
# Shared demos can switch training from the browser off (SPEC section 10).
TRAINING_ALLOWED = os.environ.get("DEEPREC_UI_TRAINING", "1") != "0"

st.title("DeepRec Lab")
st.markdown(
    "An interactive lab for deep-learning recommender systems: every model of the canon, from "
    "popularity and EASE to LightGCN, Mult-VAE, the two-tower and SASRec/BERT4Rec, trained on real "
    "data and compared on **one honest protocol**.\n\n"
    "**How to use it.** Pick a dataset in the sidebar and train the models below (they train in the "
    "background; every view picks them up as they land). Then open a view in the sidebar:\n"
    "- **Overview**: the data's long tails, genres and time; the leaderboard with confidence "
    "intervals; training curves; a card per model.\n"
    "- **User Explorer**: pick a user and see every model's top 10 side by side, why, and how much "
    "the models agree.\n"
    "- **Session Playground**: build a viewing session title by title and watch the sequential "
    "models' next-item predictions and attention change."
)

dataset = select_dataset(training_status=False)  # this page shows the job itself
name = dataset.name
summary = dataset.summary()
st.subheader(f"Dataset: {name}")
dataset_metrics(summary)
st.caption(f"Source: {summary['source']}")

st.subheader("Training")
trained = trained_versions(name)
missing = [m for m in DEFAULT_ZOO if m not in trained]
st.write(f"**{len(trained)}** of {len(REGISTRY)} models trained on {name}: " + (", ".join(trained) or "none yet") + ".")


def start(models: list[str]) -> None:
    try:
        start_job(name, models, quick=True, maps=True)
    except (TrainingLocked, ValueError, OSError) as error:
        st.session_state["job_error"] = str(error)


@st.fragment(run_every=2.0 if job_status(name).running else None)
def training_panel() -> None:
    """Polls the background job: live progress while it runs, a full rerun when it ends."""
    status = job_status(name)
    landed = len(status.done)
    if status.running and st.session_state.get(f"home_landed_{name}", landed) != landed:
        st.session_state[f"home_landed_{name}"] = landed
        st.rerun()  # a model landed: refresh the whole page (model list, leaderboard)
    st.session_state[f"home_landed_{name}"] = landed
    if status.running:
        st.session_state["watching_job"] = True
        label = f"training {status.current} (epoch {status.epoch}/{status.epochs})" if status.current else "starting…"
        st.progress(status.fraction, text=f"{len(status.done)} of {len(status.models)} models done; {label}")
        st.caption(
            "The job runs in its own process: closing or refreshing the page does not stop it, and every "
            "viewer sees the same progress. Views pick up each model as soon as it is stored."
        )
        if status.done:
            st.write("Stored so far: " + ", ".join(status.done))
        if TRAINING_ALLOWED and st.button("Cancel training", key="cancel_job"):
            cancel_job(name)
            st.rerun()
        return
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


error = st.session_state.pop("job_error", None)
if error:
    st.warning(error)
training_panel()
holder = None if job_status(name).running else lock_holder(name)
if holder:
    st.info(
        f"A training started outside the browser is running on {name} ({holder}); models appear in every "
        "view as they land. Reload the page to see them."
    )
elif not job_status(name).running:
    if not TRAINING_ALLOWED:
        st.info(
            "Training from the browser is switched off here (DEEPREC_UI_TRAINING=0); "
            "use `python -m recsys_core train` on the server."
        )
    elif missing:
        what = "the default zoo" if not trained else f"the {len(missing)} missing models"
        st.info(
            f"Train {what} ({', '.join(missing)}) with the quick profile (at most 15 epochs per model): a few "
            "minutes on a laptop CPU, in the background. Views become usable as each model lands."
        )
        if st.button(f"Train {what} (quick profile)", type="primary", key="train_zoo"):
            start(missing)
            time.sleep(0.3)  # let the job write its first line before the page polls it
            st.rerun()
    else:
        st.caption("Every registered model is trained. Retrain any of them with `python -m recsys_core train`.")

st.subheader("Leaderboard")
board = leaderboard(name)
if board.empty:
    st.info("No model is trained on this dataset yet: the leaderboard appears as soon as the first one lands.")
    st.stop()
leaderboard_table(board)
best = board.iloc[0]
st.success(f"Best so far: **{best['model']}** with NDCG@10 {best['NDCG@10']:.4f} {best['NDCG@10 95% CI']}.")
