"""Embedding maps: a 2-D UMAP of any trained model's item (or user) vectors, two models side by
side, with a user's history, the playground's session and the model's recommendations drawn on
top; pick an item (search or click) to list its nearest neighbours by the model's own similarity."""

from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

from recsys_core.embeddings import UMAP_SETTINGS, NoVectors, has_vectors, nearest_items
from recsys_core.models import REGISTRY
from recsys_core.serving import Request, recommend
from ui import (
    Overlay,
    cached_artifact,
    cached_map,
    cached_map_points,
    cached_split,
    embedding_figure,
    family_of,
    map_is_stored,
    open_view,
    require_models,
    title_options,
)

K = 10
COLOURS = {"items": ["genre", "release year", "popularity"], "users": ["favourite genre", "activity"]}
dataset = open_view("Embedding maps", "🗺️", "Embedding Maps")
name = dataset.name
versions = require_models(name, "draw")
split = cached_split(name)
st.caption(
    f"Each point is an item (or a user) placed by UMAP ({UMAP_SETTINGS['metric']} distance, "
    f"{UMAP_SETTINGS['n_neighbors']} neighbours) from the vectors the model learned: points close together are "
    "ones the model finds alike. A map is fitted once per trained model and stored beside it."
)

kind = st.radio("Points", ["items", "users"], horizontal=True, key="map_kind")
drawable = [m for m in versions if m in REGISTRY and has_vectors(REGISTRY[m], kind)]
if not drawable:
    st.info(f"None of the trained models learns {kind[:-1]} vectors: train a vector model (bpr, sasrec, …) first.")
    st.stop()
preferred = [m for m in ("sasrec", "lightgcn", "two_tower") if m in drawable]
preferred += [m for m in drawable if m not in preferred]
chosen_models, colour_box = st.columns([3, 1])
models = chosen_models.multiselect(
    "Models (one, or two side by side)", drawable, default=preferred[:2],
    max_selections=2,
    key=f"map_models_{kind}",
)  # fmt: skip
colour = colour_box.selectbox("Colour by", COLOURS[kind], key=f"map_colour_{kind}")
if not models:
    st.info("Choose a model to draw.")
    st.stop()

title_ids, title_labels = title_options(name)
user_ids = dataset.users["user_id"].astype(str).tolist()
session = st.session_state.get("session", []) if st.session_state.get("session_dataset") == name else []
who, what, path = st.columns([2, 3, 2])
user_id = who.selectbox(
    "A user's history and top 10" if kind == "items" else "Find a user", user_ids, index=None,
    placeholder="No user", key="map_user",
)  # fmt: skip
if kind == "items":
    item = what.selectbox(
        "An item's nearest neighbours (search, or click a point)", title_ids, index=None,
        format_func=title_labels.__getitem__, placeholder="Type a title…", key="map_item",
    )  # fmt: skip
    show_session = path.toggle(
        f"The playground's session ({len(session)} items)", value=bool(session), disabled=not session,
        key="map_session", help="Build a session on the Session playground page; it is drawn here as a path.",
    )  # fmt: skip
else:
    item, show_session = None, False


def select_clicked(chart_key: str) -> None:
    """A click on a point chooses it: an item for the neighbour list, a user for the overlay."""
    points = st.session_state[chart_key].selection.points
    ids = [p["customdata"] for p in points if isinstance(p.get("customdata"), int | float)]
    if not ids:
        return
    if kind == "items" and int(ids[0]) in title_labels:
        st.session_state["map_item"] = int(ids[0])
    elif kind == "users" and 0 < int(ids[0]) < len(dataset.user_ids):
        st.session_state["map_user"] = str(dataset.user_ids[int(ids[0])])


def overlays_for(model: str) -> tuple[list[Overlay], list[str]]:
    """What is drawn over this model's map, and a line about each."""
    layers, notes = [], []
    user = dataset.user_index(user_id) if user_id else 0
    if kind == "users":
        if user:
            layers.append(Overlay(f"user {user_id}", [user], "star", "black", size=18))
        return layers, notes
    if user:
        history = [int(i) for i in split.input_sequences("test")[user]]
        layers.append(Overlay(f"history of {user_id}", history, "circle-open", "black", size=10))
        try:
            trained = cached_artifact(name, model, versions[model]).model
            answer = recommend(trained, dataset, split, Request(user_id, k=K))
            layers.append(Overlay(f"{model}'s top {K}", [dataset.item_index(i) for i in answer.items], "star", "red"))
        except Exception as error:  # the map still shows without the overlay
            notes.append(f"no recommendations ({type(error).__name__}: {error})")
    if show_session and session:
        layers.append(Overlay("session path", [dataset.item_index(e) for e in session], "circle", "orange", path=True))
    if item:
        layers.append(Overlay(title_labels[item], [item], "x", "magenta", size=18))
    return layers, notes


for n, (column, model) in enumerate(zip(st.columns(len(models)), models, strict=True)):
    with column:
        st.markdown(f"**{model}** · {family_of(model)}")
        version = versions[model]
        try:
            if map_is_stored(name, model, version, kind):
                drawn = cached_map(name, model, version, kind)
            else:
                with st.status(f"Fitting UMAP on {model}'s {kind} (first time for this model)…") as status:
                    st.write("The first fit in a fresh server also compiles UMAP's kernels (about 15 s).")
                    drawn = cached_map(name, model, version, kind)
                    status.update(label=f"Map of {model}'s {kind} fitted in {drawn.seconds:.1f} s and stored",
                                  state="complete", expanded=False)  # fmt: skip
            points = cached_map_points(name, model, version, kind)
        except NoVectors as error:
            st.info(str(error))
            continue
        except Exception as error:  # one model's map failing never hides the other
            st.warning(f"The map of {model} could not be drawn: {type(error).__name__}: {error}")
            continue
        layers, notes = overlays_for(model)
        figure = embedding_figure(points, colour.replace("favourite ", ""), f"{model}: {len(points):,} {kind}", layers)
        chart_key = f"map_chart_{n}_{kind}"
        st.plotly_chart(figure, width="stretch", key=chart_key, on_select=partial(select_clicked, chart_key),
                        selection_mode="points")  # fmt: skip
        source = "read from the stored map" if drawn.from_disk else "fitted in this server"
        st.caption("; ".join([f"UMAP fit {drawn.seconds:.1f} s, {source}", *notes]))
        if item:
            try:
                ids, similarity = nearest_items(cached_artifact(name, model, version).model, item, K)
            except NoVectors as error:
                st.info(str(error))
                continue
            st.text(f"Nearest to {title_labels[item]} by {model}")
            st.dataframe(
                pd.DataFrame({"title": dataset.titles(ids), "similarity": similarity}),
                hide_index=True, width="stretch",
                column_config={"similarity": st.column_config.NumberColumn(format="%.3f")},
            )  # fmt: skip
if item:
    st.caption(
        "Similarity is each model's own: the inner product for models that score by one (what their FAISS "
        "index searches), the item-item weights for ease and itemknn, cosine of the item vectors otherwise."
    )
