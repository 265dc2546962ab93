"""What every view begins with and shares: the page frame, the dataset selector, the guards that
stop a view with a way forward, and the dataset's and leaderboard's standard rendering."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.elements.lib.mutable_status_container import StatusContainer

from recsys_core.data import DEFAULT_DATASET, CsvError, Dataset, DatasetUnavailable, dataset_names, obtain_dataset
from recsys_core.data.split import PROTOCOL
from recsys_core.data.uploads import uploads_dir
from recsys_core.training.jobs import job_status
from ui.cache import cached_dataset, is_open, trained_versions
from ui.links import from_link, to_link
from ui.navigation import HOME
from ui.text import literal
from ui.training import sidebar_progress


def open_view(title: str) -> Dataset:
    """Every view's first lines: the browser tab, the page title, and the dataset the sidebar chose
    (``app.py`` draws the sidebar before the view runs)."""
    st.set_page_config(page_title=f"{title} · DeepRec Lab")
    st.title(title)
    return cached_dataset(st.session_state["chosen_dataset"])


def _remember_dataset() -> None:
    st.session_state["chosen_dataset"] = st.session_state["dataset"]


def select_dataset(
    training_status: bool = True, status: StatusContainer | None = None, place: DeltaGenerator | None = None
) -> Dataset:
    """The sidebar's dataset selector (shared by every page; DEEPREC_DATASET sets the default, a
    link's ``?dataset=`` chooses it) and the loaded dataset; a dataset opened for the first time
    reports its progress in ``status`` (app.py's, when it is already on the page) or in a new status
    box in ``place``. When it cannot be loaded the page explains and stops. While a background training runs,
    the sidebar shows its progress and the page reruns as each model lands."""
    names = dataset_names()
    default = os.environ.get("DEEPREC_DATASET", DEFAULT_DATASET)
    if default not in names and Path(default).exists():
        names.append(default)  # a CSV file or GroupLens folder named on the command line, as --dataset takes it
    linked = from_link("dataset")
    if linked is not None and linked in names:
        st.session_state["chosen_dataset"] = linked
    # Widget state does not survive a page switch (each page's selectbox is a new widget), so the
    # choice lives under its own key and is handed to the widget on every page.
    if st.session_state.get("chosen_dataset") not in names:
        st.session_state["chosen_dataset"] = default if default in names else names[0]
    st.session_state["dataset"] = st.session_state["chosen_dataset"]
    name = st.sidebar.selectbox("Dataset", names, key="dataset", on_change=_remember_dataset)
    to_link(dataset=name)
    if linked is not None and linked not in names:
        (place or st).warning(
            f"The link's dataset {literal(linked)} is not on this server: showing {literal(name)} instead."
        )
    if training_status and job_status(name).running:
        with st.sidebar:
            sidebar_progress(name)
    try:
        return _open(name, status, place)
    except DatasetUnavailable as error:
        st.error(f"The dataset is not available. {literal(error)}")
        st.info("The synthetic dataset needs no download: choose **synthetic** in the sidebar to use the lab now.")
        st.stop()
    except CsvError as error:  # an upload whose stored files were damaged or edited since
        st.error(f"The dataset {name} cannot be read: {literal(error)}")
        st.info(f"Upload its files again under the same name on the Train page (they are in "
                f"{literal(uploads_dir() / name)}), or choose another dataset in the sidebar.")  # fmt: skip
        st.stop()


def _open(name: str, status: StatusContainer | None, place: DeltaGenerator | None) -> Dataset:
    """The dataset; the first time this server opens it, inside a status box that says what it is
    waiting for: which source it is trying, the download's progress, the parsing."""
    if is_open(name):
        if status is not None:
            status.update(label="The lab is ready.", state="complete", expanded=False)
        return cached_dataset(name)
    box = status or (place or st).status(f"Opening the dataset {name}…", expanded=True)
    box.update(label=f"Opening the dataset {name}…", expanded=True)
    with box:
        try:
            obtain_dataset(name, progress=lambda line: box.write(literal(line)))
            box.write("Reading the data and building the user and item tables…")
            dataset = cached_dataset(name)
        except Exception:  # the attempts stay on the page, marked as failed, above the message that says why
            box.update(label=f"Could not open the dataset {name}.", state="error", expanded=True)
            raise
        box.update(label=f"Opened the dataset {name}: {dataset.n_interactions:,} interactions.", state="complete",
                   expanded=False)  # fmt: skip
    return dataset


def point_home(message: str) -> None:
    """``message`` and a link to the home page, where models are trained."""
    st.info(message)
    st.page_link(HOME.path, label="Go to the home page", icon=HOME.icon)


def require_models(dataset_name: str, what: str) -> dict[str, str]:
    """The trained models' versions; when there are none, a short explanation and a way forward."""
    versions = trained_versions(dataset_name)
    if not versions:
        point_home(
            f"No model is trained on **{dataset_name}** yet, so there is nothing to {what}. "
            "Start training on the home page (**Home** in the sidebar): models appear here as they land."
        )
        st.stop()
    return versions


def trained_among(versions: dict[str, str], names: list[str]) -> list[str]:
    """The trained models among registry ``names`` (``rankers()``, ``retrievers()``...), in the order trained."""
    wanted = set(names)
    return [name for name in versions if name in wanted]


def dataset_metrics(summary: dict) -> None:
    """Users, items, interactions and density in one row, as the home page and the Overview show them."""
    cells = st.columns(4)
    cells[0].metric("Users", f"{summary['users']:,}")
    cells[1].metric("Items", f"{summary['items']:,}")
    cells[2].metric("Interactions", f"{summary['interactions']:,}")
    cells[3].metric("Density", f"{summary['density']:.2%}")


def leaderboard_table(board: pd.DataFrame) -> None:
    """The leaderboard as every page shows it: the protocol label first, metrics with their CIs."""
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
