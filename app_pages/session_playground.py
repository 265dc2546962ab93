"""Session playground: build a viewing session title by title (it opens on an example); the chosen
history-aware models' next items, sequential models first, refreshed on each change; each
Transformer's attention beside its own list; what-if: drop one item. The session and the models are
in the URL, so the view can be shared."""

from __future__ import annotations

from functools import partial

import streamlit as st

from recsys_core.models import attention_models, history_readers
from recsys_core.serving.explain import recommend_each, without_position
from recsys_core.serving.recommend import Answer, Request
from ui import (
    EDIT_POSITION,
    add_item,
    attention_map,
    cached_split,
    copy_link,
    current_session,
    example_note,
    frame_table,
    list_from_link,
    literal,
    load_trained,
    move_item,
    next_items,
    note,
    open_view,
    point_home,
    position_key,
    remove_item,
    require_models,
    set_session,
    show_html,
    start_from_genre,
    start_from_user,
    title_picker,
    titles_of,
    to_link,
    trained_among,
    what_changed,
)

K = 10
SHOWN_BY_DEFAULT = 5
dataset = open_view("Session playground")
name = dataset.name
versions = require_models(name, "predict with")
split = cached_split(name)
session = current_session(dataset, split)
linked_session = list_from_link("session")
if linked_session is not None:
    unknown = set_session(dataset, session, linked_session)
    if unknown:
        st.warning(f"Not in {name}'s catalogue, so left out of the session: {literal(', '.join(unknown[:10]))}.")
st.markdown(
    "Type part of a title and press Enter, then click a match to add it to the session (most recent last). "
    "Reorder or remove items, or start from a user's history or a genre: every model below answers again at "
    "each change."
)


@st.fragment
def play() -> None:
    """The session, its controls and every model's answer: a change reruns this part alone, not the
    sidebar and the page's frame (docs/benchmarks.md)."""
    title_picker(st, "Add a title", "find_title", name, partial(add_item, dataset, session),
                 exclude={dataset.item_index(e) for e in session})  # fmt: skip
    from_user, from_genre, clear = st.columns([2, 2, 1])
    with from_user:
        # A text box, not a select box of every user: it stays quick with thousands of users.
        st.session_state.setdefault("start_user", str(dataset.user_ids[1]))
        st.text_input("Start from a user's history (user id)", key="start_user")
        st.button("Use their last 15 items", on_click=start_from_user, args=(dataset, split, session), key="use_user")
    with from_genre:
        if dataset.genre_names:
            st.selectbox("Start from a genre", dataset.genre_names, key="start_genre")
            st.button("Use its 5 most popular items", on_click=start_from_genre, args=(dataset, split, session),
                      key="use_genre")  # fmt: skip
    with clear:
        st.button("Clear the session", on_click=session.clear, key="clear_session")
    edit_note = st.session_state.pop("session_note", None)
    if edit_note:
        st.warning(edit_note)

    heading, share = st.columns([6, 1], vertical_alignment="bottom")
    heading.subheader(f"The session ({len(session)} items)")
    example = example_note(session)
    if example:
        st.caption(example)
    if not session:
        to_link(session=None)
        with share:
            copy_link("share_playground")
        st.info("The session is empty: add a title above, or start from a user's history or a genre.")
        st.stop()
    # One list and one set of controls, whatever the session's length: a change redraws little.
    titles = titles_of(dataset, session)
    st.text("\n".join(f"{n + 1}. {title}" for n, title in enumerate(titles)))
    chosen, up, down, drop = st.columns([6, 1, 1, 1], vertical_alignment="bottom")
    position = chosen.selectbox(
        "Item to move or remove", range(len(session)),
        index=min(st.session_state.get(EDIT_POSITION, 0), len(session) - 1),
        key=position_key(EDIT_POSITION, session), format_func=lambda n: f"{n + 1}. {titles[n]}",
    )  # fmt: skip
    st.session_state[EDIT_POSITION] = position
    up.button("↑ earlier", key="move_up", on_click=move_item, args=(session, position, -1), disabled=position == 0)
    down.button("↓ later", key="move_down", on_click=move_item, args=(session, position, 1),
                disabled=position == len(session) - 1)  # fmt: skip
    drop.button("✕ remove", key="remove_item", on_click=remove_item, args=(session, position))

    readers = history_readers(versions)
    if not readers:
        to_link(session=session)
        point_home("No model that reads a history (sequential models, EASE, ItemKNN, the autoencoders, the two-tower) "
                   "is trained yet: train them on the home page.")  # fmt: skip
        st.stop()
    linked_models = list_from_link("models")
    if linked_models is not None:
        unknown = [m for m in linked_models if m not in readers]
        if unknown:
            st.warning(f"Not trained on {name}, or not a model that reads a session, so left out: "
                       f"{literal(', '.join(unknown))}.")  # fmt: skip
        if any(m in readers for m in linked_models):
            st.session_state["playground_choice"] = [m for m in linked_models if m in readers]
    # The choice lives under its own key: Streamlit forgets a widget's state on a run that does not draw
    # it (an empty session stops the page above), and the models would be lost with it.
    if not set(st.session_state.get("playground_choice", [None])) <= set(readers):
        st.session_state["playground_choice"] = readers[:SHOWN_BY_DEFAULT]
    st.session_state["playground_models"] = st.session_state["playground_choice"]
    chosen = st.multiselect(
        "Models", readers, key="playground_models",
        on_change=lambda: st.session_state.update(playground_choice=st.session_state["playground_models"]),
        help="Every trained model that reads a history; the sequential models come first.",
    )  # fmt: skip
    to_link(session=session, models=chosen)
    with share:
        copy_link("share_playground")
    if not chosen:
        st.info("Choose at least one model.")
        st.stop()
    artifacts, problems = load_trained(name, chosen)
    models = {m: a.model for m, a in artifacts.items()}
    answers: dict[str, Answer | str] = dict(problems)
    answers.update(recommend_each(models, dataset, split, Request(None, history=list(session), k=K)))

    st.subheader("Next-item predictions")
    next_items(dataset, {m: answers[m] for m in chosen}, K)

    st.subheader("Attention")
    attentive = trained_among(models, attention_models())
    if not attentive:
        st.info("Choose a Transformer (sasrec, bert4rec) above, or train one on the home page, to see its attention.")
    else:
        layout = st.radio("Show", ["Averaged over layers and heads", "Per layer and head"], horizontal=True,
                          key="attention_view")  # fmt: skip
        for model in attentive:  # each map beside the list it explains
            listing, drawing = st.columns([2, 3])
            with listing:
                next_items(dataset, {model: answers[model]}, K)
            with drawing:
                attention_map(model, models[model], dataset, session, per_head=layout == "Per layer and head")

    st.subheader("What if: drop one item")
    if len(session) < 2:
        st.info("Add a second item to see what dropping one changes.")
        st.stop()
    dropped = st.selectbox("Drop", range(len(session)), key=position_key("drop", session),
                           format_func=lambda p: f"{p + 1}. {titles[p]}")  # fmt: skip
    # The dropped item stays excluded: the question is how the rest of the session reads without it.
    shorter = Request(None, history=without_position(list(session), dropped), exclude=[session[dropped]], k=K)
    changes = what_changed(dataset, answers, recommend_each(models, dataset, split, shorter))
    show_html(frame_table(changes, "what-if"),
              note(f"Each model's top {K} for the session without item {dropped + 1} (chosen above), against the full "
                   "session."))  # fmt: skip


play()
