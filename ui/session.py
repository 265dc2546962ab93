"""The Session playground's session: external item ids kept in ``st.session_state`` (the Embedding
maps draw it too), the callbacks that edit it, and the blocks showing what the models make of it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from recsys_core.data import Dataset, Split
from recsys_core.data.stats import popular_in_genre
from recsys_core.models.base import Recommender
from recsys_core.serving.explain import rank_changes
from recsys_core.serving.recommend import Answer, session_attention
from ui.charts import heatmap_grid
from ui.links import SEPARATOR
from ui.tables import Cell, heat, html_table, note, show_html
from ui.text import family_label, literal

MAX_SESSION = 200


EXAMPLE_LENGTH = 15


def current_session(dataset: Dataset, split: Split) -> list[str]:
    """The session being built on ``dataset``. A new one (first visit, or after a change of dataset)
    starts as an example, so that the page shows predictions at once: the last items of the first
    user whose history is long enough."""
    if st.session_state.get("session_dataset") != dataset.name:  # a session's ids belong to one dataset
        user = example_user(split)
        st.session_state["session"] = [] if user is None else _recent_items(dataset, split, user)
        st.session_state["session_dataset"] = dataset.name
        # The example's user and items, for the page to say what it shows until the session is edited.
        example = (str(dataset.user_ids[user]), tuple(st.session_state["session"])) if user is not None else None
        st.session_state["session_example"] = example
    return st.session_state["session"]


def example_note(session: list[str]) -> str | None:
    """What the page should say while the session is still the example it opened on."""
    example = st.session_state.get("session_example")
    if not example or tuple(session) != example[1]:
        return None
    return (f"An example to start from: the last {len(session)} items of user {example[0]}. Edit it, clear it, "
            "or start from another user or a genre.")  # fmt: skip


def example_user(split: Split) -> int | None:
    """The first user (internal id) with at least EXAMPLE_LENGTH items before the test item."""
    for user, sequence in enumerate(split.input_sequences("test")):
        if user and len(sequence) >= EXAMPLE_LENGTH:
            return user
    return None


def _recent_items(dataset: Dataset, split: Split, user: int) -> list[str]:
    return [str(dataset.item_ids[i]) for i in split.input_sequences("test")[user][-EXAMPLE_LENGTH:]]


def set_session(dataset: Dataset, session: list[str], external_ids: list[str]) -> list[str]:
    """Replace the session with ``external_ids`` (a link's), keeping the known ones; returns the unknown."""
    known = [i for i in external_ids if dataset.item_index(i)][:MAX_SESSION]
    session[:] = known
    st.session_state["session_example"] = None
    return [i for i in external_ids if not dataset.item_index(i)]


def titles_of(dataset: Dataset, externals: list[str]) -> list[str]:
    return dataset.titles([dataset.item_index(e) for e in externals])


# --------------------------------------------------------------------------- callbacks of the widgets


def add_item(dataset: Dataset, session: list[str], item: int) -> None:
    if len(session) >= MAX_SESSION:
        st.session_state["session_note"] = f"A session holds at most {MAX_SESSION} items: remove some first."
    else:
        session.append(str(dataset.item_ids[item]))


EDIT_POSITION = "edit_position"  # the position chosen to move or remove, whichever widget shows it


def position_key(name: str, session: list[str]) -> str:
    """The key of a widget that chooses a position in this very session: a new widget for each
    session, because a browser keeps a kept widget's shown label, so after a change it would show,
    and send back, the title that used to be at that position."""
    return f"{name}:{SEPARATOR.join(session)}"


def move_item(session: list[str], position: int, step: int) -> None:
    other = position + step
    if 0 <= other < len(session):
        session[position], session[other] = session[other], session[position]
        st.session_state[EDIT_POSITION] = other  # the selection follows the item


def remove_item(session: list[str], position: int) -> None:
    if 0 <= position < len(session):
        session.pop(position)


def start_from_user(dataset: Dataset, split: Split, session: list[str]) -> None:
    typed = str(st.session_state.get("start_user") or "").strip()
    user = dataset.user_index(typed)
    if user:
        session[:] = _recent_items(dataset, split, user)
    else:  # the session stays as it was
        st.session_state["session_note"] = f"No user {literal(typed)} in {dataset.name}: the session is unchanged."


def start_from_genre(dataset: Dataset, split: Split, session: list[str]) -> None:
    popular = popular_in_genre(dataset, split, st.session_state.get("start_genre"), 5)
    session[:] = [str(dataset.item_ids[i]) for i in popular[::-1]]  # the most popular last: the most recent


# --------------------------------------------------------------------------- what the models make of it


def next_items(dataset: Dataset, answers: dict[str, Answer | str], k: int) -> None:
    """Every model's next ``k`` items side by side (title · score), or why a model has none."""
    columns, notes = {}, []
    for model, answer in answers.items():
        if isinstance(answer, str):
            st.warning(answer)
            continue
        titles = titles_of(dataset, answer.items)
        columns[f"{model} ({family_label(model)})"] = [
            Cell(f"{t} · {v:.2f}", note=f"{model}, rank {n + 1}: {t}, score {v:.3f}")
            for n, (t, v) in enumerate(zip(titles, answer.scores, strict=True))
        ]
        notes += [f"{model}: {n}" for n in [answer.fallback, *answer.notes] if n]
        if answer.ignored:
            notes.append(f"{model} ignored ids not in the catalogue: {', '.join(answer.ignored)}")
    if columns:
        rows = [(str(r + 1), [cells[r] if r < len(cells) else Cell("") for cells in columns.values()])
                for r in range(k)]  # fmt: skip
        show_html(html_table(["rank", *columns], rows, "next-items"),
                  note("Title · score, per model, rank 1 first. " + "; ".join(notes)))  # fmt: skip


def attention_map(name: str, model: Recommender, dataset: Dataset, session: list[str], per_head: bool) -> None:
    """What ``model`` attends to over the session: averaged over layers and heads, or one map per head."""
    try:
        view = session_attention(model, dataset, list(session))
    except Exception as error:  # one model's attention failing leaves the rest of the page intact
        st.warning(f"{name}: no attention to show ({type(error).__name__}: {error})")
        return
    labels = [f"{n + 1}. {titles_of(dataset, [i])[0][:30]}" if i != "[mask]" else f"{n + 1}. [mask]"
              for n, i in enumerate(view.items)]  # fmt: skip
    n_layers, n_heads = view.weights.shape[:2]
    explained = (
        "Row t: how position t spreads its attention over the positions it may read (earlier ones for sasrec; all "
        "of them for bert4rec, whose last position is the [mask] it fills in); the darker, the more. "
        + "; ".join(view.notes + ([f"ignored: {', '.join(view.ignored)}"] if view.ignored else []))
    )
    if per_head:
        stacked = view.weights.reshape(n_layers * n_heads, *view.weights.shape[2:])  # (L * H, T, T)
        titles = [f"layer {n // n_heads + 1}, head {n % n_heads + 1}" for n in range(n_layers * n_heads)]
        st.plotly_chart(heatmap_grid(stacked, labels, titles, n_heads, f"{name}: attention per layer and head"),
                        width="stretch", key=f"attention_{name}")  # fmt: skip
        st.caption(explained)
    else:
        title = f"{name}: attention averaged over {n_layers} layers x {n_heads} heads"
        show_html(attention_table(view.weights.mean(axis=(0, 1)), labels, f"attention {name}", title), note(explained))


def attention_table(weights: np.ndarray, labels: list[str], css_class: str, caption: str) -> str:
    """A (T, T) attention map as a shaded table, row t over the positions t reads, each weight on hover.
    The averaged map is redrawn at every change of the session, and a table is far lighter for the
    browser to draw than a plotly heat map."""
    top = float(weights.max())
    rows = [(label, [Cell("", heat(w, top, 0.9), f"{label} attends to {labels[j]}: {w:.3f}")
                     for j, w in enumerate(row)]) for label, row in zip(labels, weights, strict=True)]  # fmt: skip
    return html_table(["position · attends to →", *(str(n + 1) for n in range(len(labels)))], rows, css_class, caption)


def what_changed(dataset: Dataset, before: dict[str, Answer | str], after: dict[str, Answer | str]) -> pd.DataFrame:
    """Per model, which items entered and left its top K after an edit of the session, and how many moved."""
    rows = []
    for model, answer in before.items():
        edited = after.get(model)
        if isinstance(answer, Answer) and isinstance(edited, Answer):
            moved = rank_changes(answer.items, edited.items).groupby("change")["item"].apply(list).to_dict()
            rows.append({
                "model": model,
                "entered the top 10": ", ".join(titles_of(dataset, moved.get("new", []))) or "—",
                "left the top 10": ", ".join(titles_of(dataset, moved.get("gone", []))) or "—",
                "moved up": len(moved.get("up", [])),
                "moved down": len(moved.get("down", [])),
            })  # fmt: skip
    return pd.DataFrame(rows)
