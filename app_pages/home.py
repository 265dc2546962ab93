"""Home: what the lab is, the dataset, which models are trained, the quick zoo in the background."""

from __future__ import annotations

import math
import time

import streamlit as st

from recsys_core.models import DEFAULT_ZOO, REGISTRY
from recsys_core.store.artifacts import TrainingLocked, leaderboard
from recsys_core.training.jobs import job_status, lock_holder, start_job
from recsys_core.training.schedule import default_workers
from ui import (
    dataset_metrics,
    leaderboard_table,
    literal,
    open_view,
    stored_damage,
    trained_versions,
    training_allowed,
    training_panel,
)

# The quick zoo on a 2-core CPU, measured by bench/profiles.py (docs/benchmarks.md, "Training
# profiles"): interactions, minutes until the first sequential model landed, until every model had.
# A dataset is told the figures of the measured one nearest its size, never a promise for another.
QUICK_ZOO_MEASURED = {"MovieLens-100K": (100_000, 0.8, 4.1), "MovieLens-1M (the SASRec file)": (987_020, 17.2, 93.0)}

dataset = open_view("DeepRec Lab")
st.markdown(
    "An interactive lab for deep-learning recommender systems: every model of the canon, from "
    "popularity and EASE to LightGCN, Mult-VAE, the two-tower and SASRec/BERT4Rec, trained on real "
    "data and compared on **one honest protocol**.\n\n"
    "**How to use it.** Pick a dataset in the sidebar and train the models below (they train in the "
    "background; every view picks them up as they land). Then open a view in the sidebar. The explorer, "
    "playground, maps and pipeline have a **Share** button: its link reopens the view as you see it.\n\n"
    "*Explore*\n"
    "- **User explorer**: pick a user; the best model of each family (or the ones you choose) side by "
    "side, rank by rank, the held-out item and the items models share marked, and why each item.\n"
    "- **Session playground**: a viewing session (it opens on an example) and the sequential models' "
    "next-item predictions and attention, changing as you edit it.\n"
    "- **Embedding maps**: what each model learned, drawn in 2-D: items (or users) it finds alike sit "
    "together; a user's history, a session and the recommendations on top.\n\n"
    "*Analyse*\n"
    "- **Overview**: the data's long tails, genres and time; the leaderboard with confidence "
    "intervals; training curves; a card per model.\n"
    "- **Evaluate and A/B**: the metrics with confidence intervals, per-user distributions, a paired "
    "significance test between two models, and an A/B test simulator with a plain-language verdict.\n"
    "- **Pipeline**: one request through retrieval (exact or FAISS) and ranking, timed live, with the "
    "held-out item followed through each stage.\n\n"
    "*Build*\n"
    "- **Train**: retrain or tune any model with your own settings, on a GPU when there is one, and "
    "bring your own interactions CSV."
)

name = dataset.name
summary = dataset.summary()
st.subheader(f"Dataset: {name}")
dataset_metrics(summary)
st.caption(f"Source: {literal(summary['source'])}")

st.subheader("Training")
trained = trained_versions(name)
damaged = stored_damage(name)
missing = [m for m in DEFAULT_ZOO if m not in trained or m in damaged]
st.write(f"**{len(trained)}** of {len(REGISTRY)} models trained on {name}: " + (", ".join(trained) or "none yet") + ".")
for problem in damaged.values():
    st.warning(problem)


def start(models: list[str]) -> None:
    try:
        start_job(name, models, quick=True, maps=True, reference=dataset.reference)
    except (TrainingLocked, ValueError, OSError) as error:
        st.session_state["job_error"] = str(error)


error = st.session_state.pop("job_error", None)
if error:
    st.warning(error)
training_panel(name)
holder = None if job_status(name).running else lock_holder(name)
if holder:
    st.info(
        f"A training started outside the browser is running on {name} ({holder}); models appear in every "
        "view as they land. Reload the page to see them."
    )
elif not job_status(name).running:
    if not training_allowed():
        st.info(
            "Training from the browser is switched off here (DEEPREC_UI_TRAINING=0); "
            "use `python -m recsys_core train` on the server."
        )
    elif missing:
        what = "the default zoo" if not trained else f"the {len(missing)} missing or damaged models"
        measured, (size, first, every) = min(
            QUICK_ZOO_MEASURED.items(), key=lambda entry: abs(math.log(dataset.n_interactions / entry[1][0]))
        )
        st.info(
            f"Train {what} ({', '.join(missing)}) with the quick profile (each model's quick settings: fewer "
            f"epochs, a faster learning rate), in the background, {default_workers('auto')} models at a time. Views "
            "become usable as each model lands: the baselines first, then the sequential models. Measured on a "
            f"2-core CPU for {measured} ({size:,} interactions; this dataset has {dataset.n_interactions:,}): "
            f"the first sequential model after {first:g} minutes, the whole zoo after {every:g} (docs/benchmarks.md)."
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
