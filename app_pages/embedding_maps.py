"""Embedding maps: a 2-D UMAP of any trained model's item (or user) vectors, two models side by
side, with a user's history, the playground's session and the model's recommendations drawn on
top; pick an item (search or click) to list its nearest neighbours by the model's own similarity.
The points, models, colouring, user and item are in the URL, so the view can be shared."""

from __future__ import annotations

from functools import partial

import streamlit as st

from recsys_core.models import REGISTRY
from recsys_core.serving.embeddings import UMAP_SETTINGS, has_vectors
from ui import (
    choose_item,
    chosen_item,
    copy_link,
    drawn_map,
    embedding_figure,
    family_label,
    from_link,
    list_from_link,
    literal,
    map_overlays,
    nearest_table,
    open_view,
    require_models,
    select_clicked,
    title_picker,
    to_link,
    user_box,
)

K = 10
COLOURS = {"items": ["genre", "release year", "popularity"], "users": ["favourite genre", "activity"]}
dataset = open_view("Embedding maps")
name = dataset.name
versions = require_models(name, "draw")
st.caption(
    f"Each point is an item (or a user) placed by UMAP ({UMAP_SETTINGS['metric']} distance, "
    f"{UMAP_SETTINGS['n_neighbors']} neighbours) from the vectors the model learned: points close together are "
    "ones the model finds alike. A map is fitted once per trained model and stored beside it."
)

linked = {param: from_link(param) for param in ("points", "colour", "user", "item")}
linked_models = list_from_link("models")
if linked["points"] in COLOURS:
    st.session_state["map_kind"] = linked["points"]
kind = st.radio("Points", list(COLOURS), horizontal=True, key="map_kind")
drawable = [m for m in versions if m in REGISTRY and has_vectors(REGISTRY[m], kind)]
if not drawable:
    st.info(f"None of the trained models learns {kind[:-1]} vectors: train a vector model (bpr, sasrec, …) first.")
    st.stop()
preferred = [m for m in ("sasrec", "lightgcn", "two_tower") if m in drawable]
preferred += [m for m in drawable if m not in preferred]
models_key, colour_key = f"map_models_{kind}", f"map_colour_{kind}"
if linked_models is not None:
    unknown = [m for m in linked_models if m not in drawable]
    if unknown:
        st.warning(f"No {kind[:-1]} map of {literal(', '.join(unknown))} on {name}, so left out.")
    if any(m in drawable for m in linked_models):
        st.session_state[models_key] = [m for m in linked_models if m in drawable][:2]
if models_key not in st.session_state:
    st.session_state[models_key] = preferred[:2]
if linked["colour"] in COLOURS[kind]:
    st.session_state[colour_key] = linked["colour"]
chosen_models, colour_box, share = st.columns([6, 2, 1], vertical_alignment="bottom")
models = chosen_models.multiselect("Models (one, or two side by side)", drawable, max_selections=2, key=models_key)
colour = colour_box.selectbox("Colour by", COLOURS[kind], key=colour_key)
if not models:
    to_link(points=kind, models=None)
    st.info("Choose a model to draw.")
    st.stop()

user_ids = dict.fromkeys(dataset.users["user_id"].astype(str))  # in order, for suggestions; quick to look up
session = st.session_state.get("session", []) if st.session_state.get("session_dataset") == name else []
if linked["user"] is not None:
    if linked["user"] in user_ids:
        st.session_state["map_user"] = linked["user"]
    else:
        st.warning(f"User {literal(linked['user'])} from the link is not in {name}.")
if linked["item"] is not None and kind == "items":
    if dataset.item_index(linked["item"]):
        choose_item(name, dataset.item_index(linked["item"]))
    else:
        st.warning(f"Item {literal(linked['item'])} from the link is not in {name}'s catalogue.")
who, what, path = st.columns([2, 3, 2])
user_id = user_box(who, "A user's history and top 10 (user id)" if kind == "items" else "Find a user (user id)",
                   "map_user", user_ids, None, name, placeholder="No user")  # fmt: skip
if kind == "items":
    item = chosen_item(dataset)
    title_picker(what, "An item's nearest neighbours (search, or click a point)", "find_map_item", name,
                 partial(choose_item, name), exclude={item}, verb="◎")  # fmt: skip
    if item:
        what.button(f"✕ {literal(dataset.titles([item])[0])}", key="clear_map_item", on_click=choose_item,
                    args=(name, None), help="Its neighbours are listed under each map: click to stop")  # fmt: skip
    show_session = path.toggle(
        f"The playground's session ({len(session)} items)", value=bool(session), disabled=not session,
        key="map_session", help="Build a session on the Session playground page; it is drawn here as a path.",
    )  # fmt: skip
else:
    item, show_session = None, False
to_link(points=kind, models=models, colour=colour, user=user_id,
        item=None if item is None else str(dataset.item_ids[item]))  # fmt: skip
with share:
    copy_link("share_maps")

for n, (column, model) in enumerate(zip(st.columns(len(models)), models, strict=True)):
    with column:
        st.markdown(f"**{model}** · {family_label(model)}")
        drawn = drawn_map(name, model, versions[model], kind)
        if drawn is None:
            continue
        fitted, points = drawn
        layers, notes = map_overlays(dataset, model, versions[model], kind, user_id, item,
                                 session if show_session else [], K)  # fmt: skip
        figure = embedding_figure(points, colour.replace("favourite ", ""), f"{model}: {len(points):,} {kind}", layers)
        chart_key = f"map_chart_{n}_{kind}"
        st.plotly_chart(figure, width="stretch", key=chart_key, selection_mode="points",
                        on_select=partial(select_clicked, chart_key, kind, dataset))  # fmt: skip
        source = "read from the stored map" if fitted.from_disk else "fitted in this server"
        st.caption("; ".join([f"UMAP fit {fitted.seconds:.1f} s, {source}", *notes]))
        if item:
            nearest_table(dataset, model, versions[model], item, K)
if item:
    st.caption(
        "Similarity is each model's own: the inner product for models that score by one (what their FAISS "
        "index searches), the item-item weights for ease and itemknn, cosine of the item vectors otherwise."
    )
