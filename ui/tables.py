"""Small tables as plain HTML (``st.html``): full text that wraps, a shade and a hover note per cell.

For a few dozen cells redrawn at every widget change, the browser draws an HTML table in a fraction
of the time of a data grid or a plotly figure (the User explorer's redraw, docs/benchmarks.md), and
a cell can carry its reason as a tooltip. A block's heading, table and notes go out as one element:
in the browser each Streamlit element costs a React render of its own, and a markdown one a parse.
Every piece of data is escaped here: a title from a user's file is shown as written, never read as
markup."""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd
import streamlit as st

# One rule set per element rather than a style on every cell: a smaller page to parse and sanitise.
STYLE = (
    "<style>"
    "table.lab-table { border-collapse: collapse; width: 100%; font-size: 0.9rem }"
    ".lab-table th, .lab-table td { border: 1px solid rgba(128, 128, 128, 0.25); padding: 0.3rem 0.5rem;"
    " vertical-align: top; text-align: left }"
    ".lab-table tbody th { font-weight: 400 }"
    ".lab-table caption { caption-side: top; text-align: left }"
    "</style>"
)


@dataclass(frozen=True)
class Cell:
    text: str
    style: str = ""  # extra CSS for this cell (a background shade)
    note: str = ""  # shown on hover


def html_table(columns: list[str], rows: list[tuple[str, list[Cell]]], css_class: str, caption: str = "") -> str:
    """A table with a header row (``columns``, the first one over the row labels) and one row per
    ``(label, cells)``; ``css_class`` names it for tests and the browser."""

    def td(cell: Cell) -> str:
        style = f' style="{cell.style}"' if cell.style else ""
        note = f' title="{html.escape(cell.note)}"' if cell.note else ""
        return f"<td{style}{note}>{html.escape(cell.text)}</td>"

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(f"<tr><th>{html.escape(label)}</th>{''.join(map(td, cells))}</tr>" for label, cells in rows)
    title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="lab-table {css_class}">{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def heat(value: float, top: float = 1.0, darkest: float = 0.6) -> str:
    """A cell's blue shade for ``value`` on a scale up to ``top`` (overlaps, attention weights)."""
    return f"background-color: rgba(28, 131, 225, {darkest * value / (top or 1.0):.2f})"


def frame_table(frame: pd.DataFrame, css_class: str, caption: str = "") -> str:
    """A data frame as :func:`html_table`, its first column as the row labels."""
    rows = [(str(row[0]), [Cell(str(v)) for v in row[1:]]) for row in frame.itertuples(index=False)]
    return html_table([str(c) for c in frame.columns], rows, css_class, caption)


def heading(text: str) -> str:
    """A section heading, sized as ``st.subheader``'s."""
    return f'<h3 style="font-size: 1.5rem; font-weight: 600; margin: 0.5rem 0 0.25rem">{html.escape(text)}</h3>'


def note(text: str) -> str:
    """A line of small, muted text, as ``st.caption``'s."""
    return f'<p style="font-size: 0.875rem; opacity: 0.65; margin: 0.25rem 0">{html.escape(text)}</p>'


def side_by_side_tables(*tables: str) -> str:
    """Tables next to each other while the page is wide enough, one under the other when it is not."""
    cells = "".join(f'<div style="flex: 1 1 22rem; min-width: 0">{t}</div>' for t in tables)
    return f'<div style="display: flex; flex-wrap: wrap; gap: 1rem">{cells}</div>'


def show_html(*parts: str) -> None:
    """Parts built by this module (each already escaped) as one element."""
    st.html(STYLE + "".join(parts))
