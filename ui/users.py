"""Choosing a user by id: a text box, not a select box of every user. A select box sends all its
options at every run and re-renders them at every choice, a cost that grows with the number of
users; a text box answers at once whatever that number. A mistyped id keeps what the view showed
and says so, with ids like it."""

from __future__ import annotations

from collections.abc import Collection

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from ui.text import literal


def like(typed: str, ids: Collection[str], limit: int = 5) -> list[str]:
    """Ids sharing the longest start with a mistyped one: what to suggest instead."""
    for n in range(len(typed), 0, -1):
        close = [u for u in ids if u.startswith(typed[:n])]
        if close:
            return close[:limit]
    return []


def user_box(place: DeltaGenerator, label: str, key: str, ids: Collection[str], fallback: str | None,
             dataset_name: str, **text_input) -> str | None:  # fmt: skip
    """The id typed in the text box ``key`` when ``ids`` has it; else the last user this box showed
    (or ``fallback`` at first), after a message. An empty box means ``fallback``, without a message."""
    typed = place.text_input(label, key=key, **text_input).strip()
    shown = f"{key}_shown"  # the last valid user, in session state
    if typed in ids:
        st.session_state[shown] = typed
        return typed
    if st.session_state.get(shown) in ids and typed:
        fallback = st.session_state[shown]
    if typed:
        close = like(typed, ids)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        kept = f"still showing user {literal(fallback)}" if fallback else "no user shown"
        st.warning(f"No user {literal(typed)} in {dataset_name}: {kept}.{hint}")
    return fallback
