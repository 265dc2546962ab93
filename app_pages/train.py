"""Train: choose models by family, their hyperparameters (forms built from the config dataclasses),
the device and the profile; start a background job, watch its loss and validation curves, cancel it.
Tune: the same Optuna trial budget for each chosen model, in the background; the search's figures.
Bring your own data: upload an interactions CSV (and an items CSV) as a new dataset."""

from __future__ import annotations

import math
import time

import streamlit as st

from recsys_core.data import DATASETS, CsvError
from recsys_core.data.csv_loader import max_csv_bytes
from recsys_core.data.uploads import save_uploaded_files
from recsys_core.models import by_family, data_settings
from recsys_core.store.artifacts import TrainingLocked
from recsys_core.training.devices import available_devices, gpu_count
from recsys_core.training.distributed import torchrun_command
from recsys_core.training.forms import ConfigError, parse_overrides
from recsys_core.training.jobs import job_status, lock_holder, start_job
from recsys_core.training.schedule import default_workers
from ui import cached_split, config_form, literal, open_view, trained_versions, training_allowed, training_panel
from ui.tuning import tune_section

dataset = open_view("Train")
name = dataset.name
if not training_allowed():
    st.info(
        "Training from the browser is switched off here (DEEPREC_UI_TRAINING=0), as for a shared demo: "
        "use `python -m recsys_core train` on the server. Every view still shows the models trained so far."
    )
train_tab, tune_tab, data_tab = st.tabs(["Train models", "Tune", "Bring your own data"])

with train_tab:
    st.caption(
        f"Training runs in a background process on **{name}** (one job per dataset): it survives a browser "
        "refresh, every viewer sees its progress, and a cancelled or failed job leaves the stored models as "
        "they were. Each model lands in every view as soon as it is stored."
    )
    training_panel(name, curves=True)
    running = job_status(name).running or lock_holder(name) is not None
    if training_allowed() and not running:
        trained = trained_versions(name)
        st.subheader("Models")
        chosen: list[str] = []
        for column, (family, members) in zip(st.columns(4) * 3, by_family().items(), strict=False):
            chosen += column.multiselect(family, members, key=f"train_family_{family}",
                                         format_func=lambda m: f"{m} ✓" if m in trained else m)  # fmt: skip
        st.caption("✓: trained on this dataset already (training again replaces it if it finishes).")
        devices = available_devices()
        left, right = st.columns(2)
        device = left.radio(
            "Device", list(devices), format_func=lambda d: f"{d}: {devices[d]}", key="train_device",
            help="Detected on this server. CUDA trains one model at a time, in float32 unless its cuda_bf16 is on; "
            f"the CPU trains {default_workers('cpu')} models at once, each in its own process.",
        )  # fmt: skip
        profile = right.radio("Profile", ["quick", "full"], horizontal=True, key="train_profile",
                              help="quick: each model's quick settings (fewer epochs, a faster learning rate or "
                              "fewer negatives), for first runs and demos; full: the settings behind the "
                              "benchmarks. The form below shows the chosen profile's values.")  # fmt: skip
        quick = profile == "quick"
        processes = 1
        if device == "cuda" and gpu_count() > 1:
            processes = left.number_input(
                "Processes (data-parallel, one per GPU)", min_value=1, max_value=gpu_count(), value=1,
                key="train_processes",
                help="More than one: PyTorch DistributedDataParallel under torchrun, each process on its own GPU "
                "with its share of every batch; the batch size and learning rate stay the whole run's. Worth it when "
                "an epoch takes minutes, not for the small datasets.",
            )  # fmt: skip
            if processes > 1:
                left.code(torchrun_command(dataset.reference or name, chosen or ["MODELS"], processes, device="cuda"),
                          language="bash")  # fmt: skip
        # Settings that follow the data (a sequential model's history length) at this dataset's values.
        data = {m: data_settings(m, cached_split(name)) for m in chosen}
        with st.form("train_form"):
            values = config_form(chosen, profile, data)
            submitted = st.form_submit_button(
                "Start training", type="primary", disabled=not chosen, key="start_training"
            )
        if not chosen:
            st.info("Choose at least one model above.")
        if submitted and chosen:
            try:
                overrides = {m: o for m in chosen if (o := parse_overrides(m, values.get(m, {}), quick, data[m]))}
                start_job(name, chosen, quick=quick, device=device, maps=True, overrides=overrides,
                          reference=dataset.reference, processes=int(processes))  # fmt: skip
            except ConfigError as error:
                st.error(f"Nothing was started: {error}")
            except (TrainingLocked, ValueError, OSError) as error:
                st.warning(f"Nothing was started: {error}")
            else:
                time.sleep(0.3)  # let the job write its first line before the panel polls it
                st.rerun()

with tune_tab:
    tune_section(dataset)

with data_tab:
    message = st.session_state.pop("upload_message", None)
    if message:
        st.success(message)
    limit_mib = max_csv_bytes() / 2**20
    st.markdown(
        "Upload your own interactions as a CSV with a header: `user_id,item_id[,rating][,timestamp]` "
        "(timestamps in Unix seconds or ISO dates; without them the file's order is the time order). An optional "
        "items CSV `item_id,title[,genres]` (genres separated by `|`) gives titles to every view, and an optional "
        "users CSV `user_id,gender,age,occupation` gives the two-tower model and the rankers their user features. "
        "GroupLens' MovieLens-1M files (`ratings.dat`, `movies.dat`, `users.dat`) work as they are. The files are "
        f"checked in full first (each problem with its line and column; at most {limit_mib:g} MiB each, "
        "`DEEPREC_MAX_UPLOAD_MB`): a bad file changes nothing. The new dataset appears in the sidebar's selector "
        "for every view, and trains here like MovieLens."
    )
    if not training_allowed():
        st.caption("Uploads are switched off with training (DEEPREC_UI_TRAINING=0).")
    else:
        with st.form("upload_form", clear_on_submit=False):
            # The same limit in the widget (whole MiB), so an oversized file is refused before it is sent.
            widget_limit = max(1, math.ceil(limit_mib))
            interactions = st.file_uploader("Interactions CSV (or ratings.dat)", type=["csv", "dat"],
                                            key="upload_interactions", max_upload_size=widget_limit)  # fmt: skip
            items = st.file_uploader("Items CSV (or movies.dat, optional)", type=["csv", "dat"], key="upload_items",
                                     max_upload_size=widget_limit)  # fmt: skip
            users = st.file_uploader("Users CSV (or users.dat, optional)", type=["csv", "dat"], key="upload_users",
                                     max_upload_size=widget_limit)  # fmt: skip
            new_name = st.text_input("Dataset name", placeholder="e.g. my-shop", key="upload_name",
                                     help="lower-case letters, digits, '-' and '_'")  # fmt: skip
            added = st.form_submit_button("Add the dataset", key="add_dataset")
        if added:
            if interactions is None:
                st.error("Choose an interactions CSV first.")
            else:
                label = new_name or interactions.name.rsplit(".", 1)[0]
                try:
                    stored = save_uploaded_files(label, interactions, items, users, reserved=set(DATASETS))
                except CsvError as error:
                    st.error(f"Nothing was stored: {literal(error)}")
                else:
                    st.session_state["chosen_dataset"] = stored.name  # every view switches to it
                    summary = stored.summary()
                    st.session_state["upload_message"] = (
                        f"Dataset **{stored.name}** added: {summary['users']:,} users, {summary['items']:,} items, "
                        f"{summary['interactions']:,} interactions. It is now selected in the sidebar: train "
                        "models on it in the first tab. " + literal(" ".join(stored.notes))
                    )
                    st.rerun()
