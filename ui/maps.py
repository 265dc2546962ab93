"""The Embedding maps' blocks: a stored map read (or fitted once, with a status box), what is drawn
over it, a click that chooses a point, and an item's nearest neighbours."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from recsys_core.data import Dataset
from recsys_core.serving.embeddings import EmbeddingMap, NoVectors, nearest_items
from recsys_core.serving.recommend import Request, recommend
from ui.cache import cached_artifact, cached_map, cached_map_points, cached_split, map_is_stored
from ui.charts import Overlay

MAP_ITEM = "map_item"  # session state, per dataset: the internal id of the item whose neighbours are listed


def drawn_map(dataset_name: str, model: str, version: str, kind: str) -> tuple[EmbeddingMap, pd.DataFrame] | None:
    """A model's map and its points, fitted the first time with a status box; None, said, when it cannot be drawn."""
    try:
        if map_is_stored(dataset_name, model, version, kind):
            drawn = cached_map(dataset_name, model, version, kind)
        else:
            with st.status(f"Fitting UMAP on {model}'s {kind} (first time for this model)…") as status:
                st.write("The first fit in a fresh server also compiles UMAP's kernels (about 15 s).")
                drawn = cached_map(dataset_name, model, version, kind)
                status.update(label=f"Map of {model}'s {kind} fitted in {drawn.seconds:.1f} s and stored",
                              state="complete", expanded=False)  # fmt: skip
        return drawn, cached_map_points(dataset_name, model, version, kind)
    except NoVectors as error:
        st.info(str(error))
    except Exception as error:  # one model's map failing never hides the other
        st.warning(f"The map of {model} could not be drawn: {type(error).__name__}: {error}")
    return None


def map_overlays(
    dataset: Dataset,
    model: str,
    version: str,
    kind: str,
    user_id: str | None,
    item: int | None,
    session: list[str],
    k: int,
) -> tuple[list[Overlay], list[str]]:
    """What is drawn over a model's map (a user, or their history and the model's top ``k``; the
    session as a path; the chosen item), and a line about each that could not be drawn."""
    layers, notes = [], []
    user = dataset.user_index(user_id) if user_id else 0
    if kind == "users":
        return ([Overlay(f"user {user_id}", [user], "star", "black", size=18)] if user else []), notes
    if user:
        history = [int(i) for i in cached_split(dataset.name).input_sequences("test")[user]]
        layers.append(Overlay(f"history of {user_id}", history, "circle-open", "black", size=10))
        try:
            trained = cached_artifact(dataset.name, model, version).model
            answer = recommend(trained, dataset, cached_split(dataset.name), Request(user_id, k=k))
            layers.append(Overlay(f"{model}'s top {k}", [dataset.item_index(i) for i in answer.items], "star", "red"))
        except Exception as error:  # the map still shows without the overlay
            notes.append(f"no recommendations ({type(error).__name__}: {error})")
    if session:
        layers.append(Overlay("session path", [dataset.item_index(e) for e in session], "circle", "orange", path=True))
    if item:
        layers.append(Overlay(dataset.titles([item])[0], [item], "x", "magenta", size=18))
    return layers, notes


def choose_item(dataset_name: str, item: int | None) -> None:
    """The item whose neighbours the maps list (from a search, a click or a link); None: no item.
    Kept per dataset: an internal id means another item in another dataset."""
    st.session_state[f"{MAP_ITEM}:{dataset_name}"] = item


def chosen_item(dataset: Dataset) -> int | None:
    item = st.session_state.get(f"{MAP_ITEM}:{dataset.name}")
    return item if isinstance(item, int) and 0 < item <= dataset.n_items else None


def select_clicked(chart_key: str, kind: str, dataset: Dataset) -> None:
    """A click on a point chooses it: an item for the neighbour list, a user for the overlay."""
    points = st.session_state[chart_key].selection.points
    ids = [p["customdata"] for p in points if isinstance(p.get("customdata"), int | float)]
    if not ids:
        return
    if kind == "items" and 0 < int(ids[0]) <= dataset.n_items:
        choose_item(dataset.name, int(ids[0]))
    elif kind == "users" and 0 < int(ids[0]) < len(dataset.user_ids):
        st.session_state["map_user"] = str(dataset.user_ids[int(ids[0])])


def nearest_table(dataset: Dataset, model: str, version: str, item: int, k: int) -> None:
    """The ``k`` items most alike ``item`` by the model's own similarity."""
    try:
        ids, similarity = nearest_items(cached_artifact(dataset.name, model, version).model, item, k)
    except NoVectors as error:
        st.info(str(error))
        return
    st.text(f"Nearest to {dataset.titles([item])[0]} by {model}")
    st.dataframe(
        pd.DataFrame({"title": dataset.titles(ids), "similarity": similarity}),
        hide_index=True, width="stretch",
        column_config={"similarity": st.column_config.NumberColumn(format="%.3f")},
    )  # fmt: skip
