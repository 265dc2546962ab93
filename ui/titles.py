"""Finding a title by typing part of it: a text box, and the few best matches as buttons.

Not a select box of the whole catalogue: a select box sends every option at each run of its page,
and the browser re-renders them all at each choice, a cost that grows with the catalogue (1,682
titles on ml-100k, 3,416 on ml-1m-sas, any number in a user's own data). Here the server finds
the matches, and the page carries a handful of buttons whatever the catalogue's size.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import lru_cache

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from ui.cache import cached_dataset
from ui.text import literal

MATCHES = 8  # buttons shown at most: enough to pick from, few enough to read at a glance


@st.cache_resource(show_spinner=False)
def title_index(name: str) -> tuple[pd.Series, np.ndarray]:
    """The lower-cased titles of items 1..n (index: internal id), and the items ordered by
    popularity, most interactions first: a short query matches many titles, and the one a user
    means is more often a popular one."""
    dataset = cached_dataset(name)
    lowered = dataset.items["title"].astype(str).str.lower().str.split().str.join(" ")  # one space between words
    counts = np.bincount(dataset.interactions["item"].to_numpy(), minlength=dataset.n_items + 1)
    order = np.argsort(-counts[lowered.index.to_numpy()], kind="stable")
    return lowered, lowered.index.to_numpy()[order]


@lru_cache(maxsize=256)
def _matching(name: str, query: str) -> tuple[int, ...]:
    """Every item whose title holds each word of ``query`` (lower case), the title equal to it first,
    then the most popular. Kept per query: the box keeps its text, so every rerun of the page would
    search again."""
    lowered, by_popularity = title_index(name)
    hit = np.ones(len(lowered), dtype=bool)
    for word in query.split():
        hit &= lowered.str.contains(word, regex=False).to_numpy()
    matched = np.zeros(by_popularity.max(initial=0) + 1, dtype=bool)  # by internal id
    matched[lowered.index.to_numpy()[hit]] = True
    exact = set(lowered.index.to_numpy()[hit & (lowered == query).to_numpy()].tolist())  # the whole title typed
    ranked = by_popularity[matched[by_popularity]].tolist()
    return tuple([i for i in ranked if i in exact] + [i for i in ranked if i not in exact])


def find_titles(name: str, query: str, exclude: Collection[int] = ()) -> list[int]:
    """Internal ids of the items whose titles hold every word typed, most popular first, less ``exclude``."""
    if not query.split():
        return []
    return [i for i in _matching(name, " ".join(query.lower().split())) if i not in exclude]


def title_picker(place: DeltaGenerator, label: str, key: str, name: str, on_pick: Callable[[int], None],
                 exclude: Collection[int] = (), verb: str = "+") -> None:  # fmt: skip
    """A text box ``key``; under it, the best matches of what is typed as buttons, each calling
    ``on_pick`` with its item. ``exclude``: items not to offer (already chosen)."""
    query = place.text_input(label, key=key, placeholder="Part of a title, then Enter").strip()
    if not query:
        return
    found = find_titles(name, query, exclude)
    if not found:
        if find_titles(name, query):
            place.caption(f"Every title holding {literal(query)} is chosen already.")
        else:
            place.caption(f"No title in {literal(name)} holds {literal(query)}.")
        return
    shown = found[:MATCHES]
    with place.container(key=f"{key}_matches", horizontal=True, gap="small"):
        for item, title in zip(shown, cached_dataset(name).titles(shown), strict=True):
            # A button's label is markdown: the title goes in as written, and so does "+", which would
            # start a list (ui.text.literal).
            st.button(f"{literal(verb)} {literal(title)}", key=f"{key}_pick_{item}", on_click=on_pick, args=(item,))
    if len(found) > MATCHES:
        place.caption(f"The {MATCHES} most popular of {len(found):,} matching titles: type more to narrow them.")
