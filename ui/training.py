"""A background training job as the views show it: the sidebar's progress, the full panel (live
progress, cancel, how the last job ended, curves), and the widgets of the Train form."""

from __future__ import annotations

import os

import streamlit as st

from recsys_core.training.forms import ConfigField, config_fields
from recsys_core.training.jobs import cancel_job, job_status
from ui.charts import training_curves
from ui.text import family_label


def training_allowed() -> bool:
    """Shared demos switch training (and uploads) from the browser off: DEEPREC_UI_TRAINING=0."""
    return os.environ.get("DEEPREC_UI_TRAINING", "1") != "0"


@st.fragment(run_every=3.0)
def sidebar_progress(name: str) -> None:
    """One line and a bar in the sidebar of every view while ``name`` trains; the page reruns as each model lands."""
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
        what = "tuning" if status.kind == "tune" else "training"
        if status.state == "finished":
            st.success(f"Last {what} finished: {', '.join(status.done)}.")
        elif status.state == "cancelled":
            st.warning(f"Last {what} was cancelled; stored before that: {', '.join(status.done) or 'none'}.")
        elif status.state == "failed":
            st.error(f"Last {what} failed: {status.message}")
            if status.log_tail:
                with st.expander("Training output"):
                    st.code(status.log_tail, language=None)
    if curves and status.epochs_seen:
        st.plotly_chart(training_curves(status.epochs_seen), width="stretch", key="job_curves")


def config_form(models: list[str], profile: str, data: dict[str, dict] | None = None) -> dict[str, dict[str, object]]:
    """One expander per model with a widget per setting of its config dataclass, at the values a
    training would use: the profile's ("quick" or "full") over the settings derived from the
    dataset (``data``, per model); what each widget holds, by model and setting."""
    values: dict[str, dict[str, object]] = {}
    for model in models:
        fields = config_fields(model, profile == "quick", (data or {}).get(model))
        with st.expander(f"{model} · {family_label(model)}: {len(fields)} settings", expanded=len(models) == 1):
            if not fields:
                st.caption(f"{model} has no settings: it is computed in closed form.")
            cells = st.columns(3)
            values[model] = {}
            for n, field in enumerate(fields):
                values[model][field.name] = setting(cells[n % 3], field, f"cfg_{profile}_{model}_{field.name}")
    return values


def setting(cell, field: ConfigField, key: str) -> object:
    """One hyperparameter's widget, by the kind of its config field (help: the comment in its source)."""
    help_text = field.help or None
    if field.kind == "bool":
        return cell.checkbox(field.name, value=bool(field.default), key=key, help=help_text)
    if field.kind == "int":
        return cell.number_input(field.name, value=int(field.default), step=1, key=key, help=help_text)
    if field.kind == "float":
        return cell.number_input(field.name, value=float(field.default), format="%g", key=key, help=help_text)
    if field.choices:
        return cell.selectbox(field.name, field.choices, index=field.choices.index(field.default), key=key,
                              help=help_text)  # fmt: skip
    default = ",".join(map(str, field.default)) if field.kind == "ints" else str(field.default)
    return cell.text_input(field.name, value=default, key=key, help=help_text)
