"""Session playground: build a viewing session title by title; every history-aware model's next
items, refreshed on each change; attention maps of the Transformers; what-if: drop one item."""

from __future__ import annotations

import streamlit as st

from recsys_core.models import REGISTRY, attention_models
from recsys_core.serving.explain import recommend_each, without_position
from recsys_core.serving.recommend import Answer, Request
from ui import (
    add_item,
    attention_map,
    cached_split,
    current_session,
    load_trained,
    move_item,
    next_items,
    open_view,
    point_home,
    remove_item,
    require_models,
    start_from_genre,
    start_from_user,
    title_options,
    titles_of,
    trained_among,
    what_changed,
)

K = 10
dataset = open_view("Session playground", "🎞️", "Session Playground")
name = dataset.name
versions = require_models(name, "predict with")
split = cached_split(name)
session = current_session(name)
title_ids, title_labels = title_options(name)
st.markdown(
    "Type a title to add it to the session (most recent last). Reorder or remove items, or start from a "
    "user's history or a genre: every model below answers again at each change."
)
st.selectbox("Add a title", title_ids, index=None, key="add_item", on_change=add_item, args=(dataset, session),
             format_func=title_labels.__getitem__, placeholder="Type a title…")  # fmt: skip
from_user, from_genre, clear = st.columns([2, 2, 1])
with from_user:
    st.selectbox("Start from a user's history", dataset.users["user_id"].tolist(), key="start_user")
    st.button("Use their last 15 items", on_click=start_from_user, args=(dataset, split, session), key="use_user")
with from_genre:
    if dataset.genre_names:
        st.selectbox("Start from a genre", dataset.genre_names, key="start_genre")
        st.button("Use its 5 most popular items", on_click=start_from_genre, args=(dataset, split, session),
                  key="use_genre")  # fmt: skip
with clear:
    st.button("Clear the session", on_click=session.clear, key="clear_session")
note = st.session_state.pop("session_note", None)
if note:
    st.warning(note)

st.subheader(f"The session ({len(session)} items)")
if not session:
    st.info("The session is empty: add a title above, or start from a user's history or a genre.")
    st.stop()
# One list and one set of controls, whatever the session's length: a change redraws little.
titles = titles_of(dataset, session)
st.text("\n".join(f"{n + 1}. {title}" for n, title in enumerate(titles)))
if st.session_state.get("edit_position", 0) >= len(session):
    st.session_state["edit_position"] = len(session) - 1
chosen, up, down, drop = st.columns([6, 1, 1, 1], vertical_alignment="bottom")
position = chosen.selectbox("Item to move or remove", range(len(session)), key="edit_position",
                            format_func=lambda n: f"{n + 1}. {titles[n]}")  # fmt: skip
up.button("↑ earlier", key="move_up", on_click=move_item, args=(session, position, -1), disabled=position == 0)
down.button("↓ later", key="move_down", on_click=move_item, args=(session, position, 1),
            disabled=position == len(session) - 1)  # fmt: skip
drop.button("✕ remove", key="remove_item", on_click=remove_item, args=(session, position))

readers = [m for m in versions if m in REGISTRY and REGISTRY[m].reads_history]
if not readers:
    point_home("No model that reads a history (sequential models, EASE, ItemKNN, the autoencoders, the two-tower) "
               "is trained yet: train them on the home page.")  # fmt: skip
    st.stop()
artifacts, problems = load_trained(name, readers)
models = {m: a.model for m, a in artifacts.items()}
answers: dict[str, Answer | str] = dict(problems)
answers.update(recommend_each(models, dataset, split, Request(None, history=list(session), k=K)))

st.subheader("Next-item predictions")
next_items(dataset, {m: answers[m] for m in readers}, K)

st.subheader("Attention")
attentive = trained_among(models, attention_models())
if not attentive:
    st.info("No Transformer model (sasrec, bert4rec) is trained yet: train them on the home page to see attention.")
else:
    layout = st.radio("Show", ["Averaged over layers and heads", "Per layer and head"], horizontal=True,
                      key="attention_view")  # fmt: skip
    for model in attentive:
        attention_map(model, models[model], dataset, session, per_head=layout == "Per layer and head")

st.subheader("What if: drop one item")
if len(session) < 2:
    st.info("Add a second item to see what dropping one changes.")
    st.stop()
if st.session_state.get("drop", 0) >= len(session):
    st.session_state["drop"] = 0
dropped = st.selectbox("Drop", range(len(session)), key="drop", format_func=lambda p: f"{p + 1}. {titles[p]}")
# The dropped item stays excluded: the question is how the rest of the session reads without it.
shorter = Request(None, history=without_position(list(session), dropped), exclude=[session[dropped]], k=K)
st.dataframe(what_changed(dataset, answers, recommend_each(models, dataset, split, shorter)), hide_index=True,
             width="stretch")  # fmt: skip
st.caption(f"Each model's top {K} for the session without item {dropped + 1} (chosen above), against the full session.")
