"""The Tune section of the Train view: a study per model started in the background, its trials as
they finish, the search's figures, and what tuning changed against the defaults."""

from __future__ import annotations

import time

import optuna
import pandas as pd
import streamlit as st

from recsys_core.data import PROTOCOL, Dataset
from recsys_core.models import REGISTRY
from recsys_core.models.base import Choice
from recsys_core.store.artifacts import TrainingLocked
from recsys_core.training.jobs import job_status, lock_holder, start_tune_job
from recsys_core.training.tuning import (
    GRACE_S,
    OBJECTIVE,
    PRUNER_STARTUP_TRIALS,
    PRUNER_WARMUP_EPOCHS,
    TuneReport,
    dataset_studies,
    default_storage,
    summarise,
)
from ui.text import literal
from ui.training import training_allowed

TUNABLE = [name for name, cls in REGISTRY.items() if cls.config_class.SEARCH_SPACE]


def tune_section(dataset: Dataset) -> None:
    name = dataset.name
    st.caption(
        "Every model gets the same number of trials over the settings its config declares, searched on "
        f"{OBJECTIVE} by a seeded TPE sampler; the default settings are the first trial, and a median pruner "
        f"stops a trial that falls behind earlier ones (after {PRUNER_STARTUP_TRIALS} trials and "
        f"{PRUNER_WARMUP_EPOCHS} epochs). Test NDCG@10 is computed once, for the retrained best trial, which "
        "becomes the stored model. Studies are kept in an SQLite database beside the models; several "
        "processes, here or on other machines, can share one study from the command line:"
    )
    st.code(f"python -m recsys_core tune --dataset {dataset.reference} --models sasrec --trials 20 "
            f"--storage {default_storage(dataset)}", language="bash")  # fmt: skip
    running = job_status(name).running or lock_holder(name) is not None
    if training_allowed() and not running:
        with st.form("tune_form"):
            models = st.multiselect("Models to tune", TUNABLE, key="tune_models")
            left, right = st.columns(2)
            trials = left.number_input("Trials per model (the same for each)", min_value=1, max_value=500, value=10,
                                       step=1, key="tune_trials")  # fmt: skip
            minutes = right.number_input("Stop starting trials after (minutes per model, 0: never)", min_value=0,
                                         value=0, step=5, key="tune_minutes")  # fmt: skip
            submitted = st.form_submit_button("Start tuning", type="primary", key="start_tuning")
        if submitted:
            if not models:
                st.warning("Choose at least one model to tune.")
            else:
                try:
                    start_tune_job(name, models, int(trials), timeout_s=60 * minutes or None,
                                   reference=dataset.reference)  # fmt: skip
                except (TrainingLocked, ValueError, OSError) as error:
                    st.warning(f"Nothing was started: {literal(error)}")
                else:
                    time.sleep(0.3)  # let the job write its first line before the panel polls it
                    st.rerun()
    st.fragment(run_every=3.0 if running else None)(_studies)(dataset)


def _studies(dataset: Dataset) -> None:
    status = job_status(dataset.name)
    if status.kind == "tune" and status.trials_seen:
        with st.expander(f"Trials of the {'running' if status.running else 'last'} tuning job "
                         f"({len(status.trials_seen)})", expanded=status.running):  # fmt: skip
            rows = [{"model": t["model"], "trial": t["trial"], "state": t["state"].lower(), OBJECTIVE: t["valid_ndcg"],
                     "settings": str(t["params"])} for t in reversed(status.trials_seen)]  # fmt: skip
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    try:
        studies = dataset_studies(dataset)
    except ValueError as error:
        st.error(f"The study database could not be read: {literal(error)}")
        return
    if not studies:
        st.info("Nothing tuned on this dataset yet.")
        return
    reports = {model: summarise(study, model) for model, study in studies.items()}
    st.subheader("Default against tuned")
    st.dataframe(comparison_table(list(reports.values())), hide_index=True, width="stretch")
    st.caption(f"Validation chose; test was computed once per column. Protocol: {PROTOCOL}.")
    model = st.selectbox("Study", list(studies), key="tune_study")
    study, report = studies[model], reports[model]
    best = "" if report.best_trial is None else (f"; best: trial {report.best_trial}, {OBJECTIVE} "
                                                 f"{report.tuned_valid:.4f}")  # fmt: skip
    st.write(f"**{model}**: {report.finished} of {report.trials} trials finished ({report.pruned} pruned){best}.")
    left, right = st.columns(2)
    left.plotly_chart(optuna.visualization.plot_optimization_history(study, target_name=OBJECTIVE),
                      width="stretch", key=f"tune_history_{model}")  # fmt: skip
    try:
        importances = optuna.visualization.plot_param_importances(study)
    except (ValueError, RuntimeError):
        right.info("Parameter importances need at least two completed trials with different settings.")
    else:
        right.plotly_chart(importances, width="stretch", key=f"tune_importances_{model}")
    st.caption(f"What {model} searches (its config's SEARCH_SPACE). A trial silent for {GRACE_S} s (its process "
               "died) is run again.")  # fmt: skip
    st.dataframe(pd.DataFrame(space_rows(model)), hide_index=True, width="stretch")


def space_rows(model: str) -> list[dict[str, object]]:
    rows = []
    for setting, space in REGISTRY[model].config_class.SEARCH_SPACE.items():
        if isinstance(space, Choice):
            values = ", ".join(map(str, space.options))
        else:
            values = f"{space.low:g} to {space.high:g}" + (" (log scale)" if space.log else "")
        rows.append({"setting": setting, "values": values, "why": space.reason})
    return rows


def comparison_table(reports: list[TuneReport]) -> pd.DataFrame:
    def with_ci(estimate: list | None) -> str:
        if not estimate:
            return "-"
        mean, low, high = estimate
        return f"{mean:.4f}" if low is None else f"{mean:.4f} [{low:.3f}, {high:.3f}]"

    return pd.DataFrame([{
        "model": r.model,
        "trials": f"{r.finished} of {r.trials}" + (f" ({r.pruned} pruned)" if r.pruned else ""),
        "default valid NDCG@10": r.default_valid,
        "default test NDCG@10": with_ci(r.default_test),
        "tuned valid NDCG@10": r.tuned_valid,
        "tuned test NDCG@10": with_ci(r.tuned_test),
        "best settings": ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in r.best_params.items()),
        "minutes": round(r.seconds / 60, 1),
        "stored": "yes" if r.stored else "no",
    } for r in reports])  # fmt: skip
