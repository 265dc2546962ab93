"""Small tables as plain HTML (``st.html``): full text that wraps, a shade and a hover note per cell.

For a few dozen cells redrawn at every widget change, the browser draws an HTML table in a fraction
of the time of a data grid or a plotly figure (the User explorer's redraw, docs/benchmarks.md), and
a cell can carry its reason as a tooltip. Every piece of data is escaped here: a title from a user's
file is shown as written, never read as markup."""

from __future__ import annotations

import html
from dataclasses import dataclass

import streamlit as st

BORDER = "1px solid rgba(128, 128, 128, 0.25)"
CELL_STYLE = f"border: {BORDER}; padding: 0.3rem 0.5rem; vertical-align: top; text-align: left"


@dataclass(frozen=True)
class Cell:
    text: str
    style: str = ""  # extra CSS for this cell (a background shade)
    note: str = ""  # shown on hover


def html_table(columns: list[str], rows: list[tuple[str, list[Cell]]], css_class: str, caption: str = "") -> str:
    """A table with a header row (``columns``, the first one over the row labels) and one row per
    ``(label, cells)``; ``css_class`` names it for tests and the browser."""
    head = "".join(f'<th style="{CELL_STYLE}">{html.escape(c)}</th>' for c in columns)
    body = "".join(
        f'<tr><th style="{CELL_STYLE}; font-weight: 400">{html.escape(label)}</th>'
        + "".join(
            f'<td style="{CELL_STYLE}; {cell.style}" title="{html.escape(cell.note)}">{html.escape(cell.text)}</td>'
            for cell in cells
        )
        + "</tr>"
        for label, cells in rows
    )
    title = f'<caption style="caption-side: top; text-align: left">{html.escape(caption)}</caption>' if caption else ""
    return (f'<table class="{css_class}" style="border-collapse: collapse; width: 100%; font-size: 0.9rem">'
            f"{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")  # fmt: skip


def show_table(columns: list[str], rows: list[tuple[str, list[Cell]]], css_class: str, caption: str = "") -> None:
    st.html(html_table(columns, rows, css_class, caption))
