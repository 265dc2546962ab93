"""The lab's pages as the sidebar groups them (``st.navigation``), and the paths pages link to.

The URL paths are the ones the lab has always had (``/User_Explorer``...), so that a link shared
before the pages were grouped still opens its view.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from streamlit.navigation.page import StreamlitPage


@dataclass(frozen=True)
class View:
    path: str  # the page's script, relative to app.py
    title: str
    icon: str  # a Material Symbols name: Streamlit ships the font, while emoji need one the machine may lack
    url_path: str  # "" for the home page, which is the default
    # The sidebar shows a running training's progress; the home and Train pages show the job themselves.
    sidebar_status: bool = True


HOME = View("app_pages/home.py", "Home", ":material/home:", "", sidebar_status=False)
EXPLORER = View("app_pages/user_explorer.py", "User explorer", ":material/person_search:", "User_Explorer")
PLAYGROUND = View(
    "app_pages/session_playground.py", "Session playground", ":material/playlist_play:", "Session_Playground"
)
MAPS = View("app_pages/embedding_maps.py", "Embedding maps", ":material/scatter_plot:", "Embedding_Maps")
OVERVIEW = View("app_pages/overview.py", "Overview", ":material/leaderboard:", "Overview")
EVALUATE = View("app_pages/evaluate_and_ab.py", "Evaluate and A/B", ":material/balance:", "Evaluate_and_AB")
PIPELINE = View("app_pages/pipeline.py", "Pipeline", ":material/filter_alt:", "Pipeline")
TRAIN = View("app_pages/train.py", "Train", ":material/model_training:", "Train", sidebar_status=False)

GROUPS: dict[str, list[View]] = {
    "": [HOME],
    "Explore": [EXPLORER, PLAYGROUND, MAPS],
    "Analyse": [OVERVIEW, EVALUATE, PIPELINE],
    "Build": [TRAIN],
}


def navigate() -> tuple[StreamlitPage, View]:
    """The sidebar's page list, grouped, and the view this run shows (not yet run)."""
    pages = {
        group: [st.Page(v.path, title=v.title, icon=v.icon, url_path=v.url_path or None, default=v is HOME)
                for v in views]
        for group, views in GROUPS.items()
    }  # fmt: skip
    page = st.navigation(pages)
    shown = next(v for views in GROUPS.values() for v in views if v.title == page.title)
    return page, shown
