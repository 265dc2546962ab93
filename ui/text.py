"""Text for people: data shown as written (a user's file never turns into markdown or plotly's HTML)
and the labels of models."""

from __future__ import annotations

from recsys_core.models import REGISTRY

# The characters with which markdown (GitHub-flavoured, plus Streamlit's :colour[...] directives,
# :emoji: shortcodes and $math$) can begin any syntax; "&" begins a character reference itself.
MARKDOWN_PUNCTUATION = frozenset("!#$%&()*+-.:<=>[\\]^_`{|}~")
HOME_HINT = "train it on the home page (Home, first in the sidebar), or with `python -m recsys_core train`"


def literal(text: object) -> str:
    """``text`` (a message quoting a user's file, a path) shown as written inside markdown (st.error,
    st.caption): ASCII punctuation as numeric character references, which markdown decodes to the
    character and never reads as syntax, where backslash escapes would show inside URLs. A bare URL
    may still become a link (GitHub-flavoured markdown's autolinks), but no image, emphasis, math,
    HTML or colour directive is ever made from data."""
    return "".join(f"&#{ord(c)};" if c in MARKDOWN_PUNCTUATION else c for c in str(text).replace("\n", " "))


def chart_text(text: object) -> str:
    """Data (a title from a user's file, say) as plotly text: plotly reads a subset of HTML in every
    label (links included), so the angle brackets of tags become look-alike quotation marks. Data
    never goes into markdown at all: pages show it with ``st.text`` or in tables."""
    return str(text).replace("<", "‹").replace(">", "›")


def family_label(name: str) -> str:
    """A model's family as people read it ("sequential", "rankers"); never a test of what it can do."""
    return REGISTRY[name].family if name in REGISTRY else "unknown"
