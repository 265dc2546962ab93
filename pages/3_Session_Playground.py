"""Session playground: build a viewing session title by title; every history-aware model's next
items, refreshed on each change; attention maps of the Transformers; what-if: drop one item."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from recsys_core.explain import rank_changes, recommend_each, without_position
from recsys_core.serving import Answer, Request, session_attention
from ui import (
    cached_split,
    family_of,
    heatmap,
    heatmap_grid,
    load_trained,
    open_view,
    reads_history,
    require_models,
    title_options,
)

K = 10
MAX_SESSION = 200
dataset = open_view("Session playground", "🎞️", "Session Playground")
name = dataset.name
versions = require_models(name, "predict with")
split = cached_split(name)
if st.session_state.get("session_dataset") != name:  # a session's ids belong to one dataset
    st.session_state["session"], st.session_state["session_dataset"] = [], name
session: list[str] = st.session_state["session"]


def title_of(external: str) -> str:
    return titles_of([external])[0]


def titles_of(externals: list[str]) -> list[str]:
    return dataset.titles([dataset.item_index(e) for e in externals])


def add_item() -> None:
    item = st.session_state.get("add_item")
    if item is not None:
        if len(session) >= MAX_SESSION:
            st.session_state["session_note"] = f"A session holds at most {MAX_SESSION} items: remove some first."
        else:
            session.append(str(dataset.item_ids[item]))
    st.session_state["add_item"] = None


def move(position: int, step: int) -> None:
    other = position + step
    if 0 <= other < len(session):
        session[position], session[other] = session[other], session[position]
        st.session_state["edit_position"] = other  # the selection follows the item


def remove(position: int) -> None:
    if 0 <= position < len(session):
        session.pop(position)


def start_from_user() -> None:
    user = dataset.user_index(st.session_state.get("start_user"))
    items = split.input_sequences("test")[user][-15:] if user else []
    session[:] = [str(dataset.item_ids[i]) for i in items]


def start_from_genre() -> None:
    genre = st.session_state.get("start_genre")
    in_genre = dataset.items.index[dataset.items["genres"].str.split("|").apply(lambda g: genre in g)].to_numpy()
    popular = in_genre[np.argsort(-split.item_popularity[in_genre], kind="stable")][:5]
    session[:] = [str(dataset.item_ids[i]) for i in popular[::-1]]


title_ids, title_labels = title_options(name)
st.markdown(
    "Type a title to add it to the session (most recent last). Reorder or remove items, or start from a "
    "user's history or a genre: every model below answers again at each change."
)
st.selectbox(
    "Add a title",
    title_ids,
    index=None,
    key="add_item",
    on_change=add_item,
    format_func=title_labels.__getitem__,
    placeholder="Type a title…",
)
from_user, from_genre, clear = st.columns([2, 2, 1])
with from_user:
    st.selectbox("Start from a user's history", dataset.users["user_id"].tolist(), key="start_user")
    st.button("Use their last 15 items", on_click=start_from_user, key="use_user")
with from_genre:
    genres = dataset.genre_names
    if genres:
        st.selectbox("Start from a genre", genres, key="start_genre")
        st.button("Use its 5 most popular items", on_click=start_from_genre, key="use_genre")
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
st.text("\n".join(f"{n + 1}. {title_of(e)}" for n, e in enumerate(session)))
if st.session_state.get("edit_position", 0) >= len(session):
    st.session_state["edit_position"] = len(session) - 1
chosen, up, down, drop = st.columns([6, 1, 1, 1], vertical_alignment="bottom")
position = chosen.selectbox(
    "Item to move or remove",
    range(len(session)),
    key="edit_position",
    format_func=lambda n: f"{n + 1}. {title_of(session[n])}",
)
up.button("↑ earlier", key="move_up", on_click=move, args=(position, -1), disabled=position == 0)
down.button("↓ later", key="move_down", on_click=move, args=(position, 1), disabled=position == len(session) - 1)
drop.button("✕ remove", key="remove_item", on_click=remove, args=(position,))

readers = [m for m in versions if reads_history(m)]
if not readers:
    st.info(
        "No model that reads a history (sequential models, EASE, ItemKNN, the autoencoders, the two-tower) is "
        "trained yet: train them on the home page."
    )
    st.page_link("app.py", label="Go to the home page", icon="🏠")
    st.stop()
artifacts, problems = load_trained(name, readers)
models = {m: a.model for m, a in artifacts.items()}
answers: dict[str, Answer | str] = dict(problems)
answers.update(recommend_each(models, dataset, split, Request(None, history=list(session), k=K)))

st.subheader("Next-item predictions")
side_by_side, notes = {}, []
for model in readers:
    answer = answers[model]
    if isinstance(answer, str):
        st.warning(answer)
        continue
    cells = [f"{t} · {v:.2f}" for t, v in zip(titles_of(answer.items), answer.scores, strict=True)]
    side_by_side[f"{model} ({family_of(model)})"] = cells + [""] * (K - len(cells))
    notes += [f"{model}: {n}" for n in [answer.fallback, *answer.notes] if n]
    if answer.ignored:
        notes.append(f"{model} ignored ids not in the catalogue: {', '.join(answer.ignored)}")
if side_by_side:
    st.dataframe(pd.DataFrame(side_by_side, index=pd.RangeIndex(1, K + 1, name="rank")), width="stretch")
    st.caption("Title · score, per model, rank 1 first. " + "; ".join(notes))

attentive = [m for m in models if hasattr(models[m], "score_with_attention")]
st.subheader("Attention")
if not attentive:
    st.info("No Transformer model (sasrec, bert4rec) is trained yet: train them on the home page to see attention.")
else:
    layout = st.radio(
        "Show", ["Averaged over layers and heads", "Per layer and head"], horizontal=True, key="attention_view"
    )
    for model in attentive:
        try:
            view = session_attention(models[model], dataset, list(session))
        except Exception as error:  # one model's attention failing leaves the rest of the page intact
            st.warning(f"{model}: no attention to show ({type(error).__name__}: {error})")
            continue
        labels = [
            f"{n + 1}. {title_of(i)[:30]}" if i != "[mask]" else f"{n + 1}. [mask]"
            for n, i in enumerate(view.items)
        ]
        n_layers, n_heads = view.weights.shape[:2]
        if layout.startswith("Averaged"):
            figure = heatmap(
                view.weights.mean(axis=(0, 1)),
                labels,
                labels,
                x_title="attends to",
                y_title="position",
                title=f"{model}: attention averaged over {n_layers} layers x {n_heads} heads",
            )
        else:
            stacked = view.weights.reshape(n_layers * n_heads, *view.weights.shape[2:])
            titles = [f"layer {n // n_heads + 1}, head {n % n_heads + 1}" for n in range(n_layers * n_heads)]
            figure = heatmap_grid(stacked, labels, titles, n_heads, f"{model}: attention per layer and head")
        st.plotly_chart(figure, width="stretch", key=f"attention_{model}")
        st.caption(
            "Row t: how position t spreads its attention over the positions it may read (earlier ones for "
            "sasrec; all of them for bert4rec, whose last position is the [mask] it fills in). "
            + "; ".join(view.notes + ([f"ignored: {', '.join(view.ignored)}"] if view.ignored else []))
        )

st.subheader("What if: drop one item")
if len(session) < 2:
    st.info("Add a second item to see what dropping one changes.")
    st.stop()
if st.session_state.get("drop", 0) >= len(session):
    st.session_state["drop"] = 0
dropped = st.selectbox(
    "Drop", range(len(session)), key="drop", format_func=lambda p: f"{p + 1}. {title_of(session[p])}"
)
# The dropped item stays excluded: the question is how the rest of the session reads without it.
shorter = Request(None, history=without_position(list(session), dropped), exclude=[session[dropped]], k=K)
without = recommend_each(models, dataset, split, shorter)
rows = []
for model in models:
    before, after = answers.get(model), without.get(model)
    if isinstance(before, Answer) and isinstance(after, Answer):
        changes = rank_changes(before.items, after.items)
        moved = changes.groupby("change")["item"].apply(list).to_dict()
        rows.append(
            {
                "model": model,
                "entered the top 10": ", ".join(titles_of(moved.get("new", []))) or "—",
                "left the top 10": ", ".join(titles_of(moved.get("gone", []))) or "—",
                "moved up": len(moved.get("up", [])),
                "moved down": len(moved.get("down", [])),
            }
        )
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
st.caption(f"Each model's top {K} for the session without item {dropped + 1} (chosen above), against the full session.")
