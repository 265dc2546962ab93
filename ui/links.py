"""Shareable views: a view's state (the dataset, the user, the session, the chosen models, its main
controls) mirrored in the URL's query string, so that a copied link reopens what its sender saw.

A view reads each parameter with :func:`from_link` before drawing the widget it sets, checks it
against what exists, and writes its state back with :func:`to_link` on every run. A link's value
is applied once: when it is new to this browser session (a link just opened, or the back button).
After that the widgets lead and the URL follows them, so a user's change is never undone by the
value still in the address bar.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode

import streamlit as st

_WRITTEN = "_link_written"  # session state: what this session last wrote to the URL, per parameter
SEPARATOR = ","  # lists (item ids, model names) as one readable parameter: ?models=sasrec,ease


def from_link(param: str) -> str | None:
    """The URL's value of ``param`` when this session has not applied or written it yet, else None."""
    value = st.query_params.get(param)
    if value is None or st.session_state.get(_WRITTEN, {}).get(param) == value:
        return None
    st.session_state.setdefault(_WRITTEN, {})[param] = value  # applied: the widgets lead from now on
    return value


def list_from_link(param: str) -> list[str] | None:
    """:func:`from_link` for a list parameter: its comma-separated values, blanks dropped."""
    value = from_link(param)
    return None if value is None else [v.strip() for v in value.split(SEPARATOR) if v.strip()]


def to_link(**params: str | int | Iterable[str | int] | None) -> None:
    """Write the view's state to the URL; None or an empty list removes a parameter."""
    written = st.session_state.setdefault(_WRITTEN, {})
    for param, value in params.items():
        text = _text(value)
        if not text:
            if param in st.query_params:
                del st.query_params[param]
            written.pop(param, None)
        elif st.query_params.get(param) != text:
            st.query_params[param] = text
            written[param] = text
        else:
            written[param] = text


def _text(value: str | int | Iterable[str | int] | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str | int):
        return str(value)
    return SEPARATOR.join(str(v) for v in value)


def current_link() -> str:
    """The address of this view as it is now: the page's URL (the browser's) and its parameters."""
    query = urlencode(st.query_params.to_dict())
    base = st.context.url or ""  # None outside a browser (AppTest): the link is then relative
    return f"{base}?{query}" if query else base or "?"


def copy_link(key: str) -> None:
    """A "Copy link" control: the view's address in a code box, whose button copies it."""
    with st.popover("Share", icon=":material/link:", key=key):
        st.caption("This link opens this view as you see it now: the dataset, the user or session, the models "
                   "and the main controls. Copy it with the button at the box's right.")  # fmt: skip
        st.code(current_link(), language=None, wrap_lines=True)
