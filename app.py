"""DeepRec Lab: ``streamlit run app.py``. Every page runs through here: the sidebar's grouped page list,
the dataset selector and the training status, then the page itself (``app_pages/``).

The views live in ``app_pages/``, not ``pages/``: Streamlit runs a fresh server's first script run
through its older folder-based navigation when a ``pages/`` folder exists, and a shared link to a
view then opened with a "Page not found" dialog."""

from __future__ import annotations

import sys

import streamlit as st

st.set_page_config(page_title="DeepRec Lab", page_icon="🎬", layout="wide")
# A fresh server's first visit imports PyTorch and the model zoo (seconds) before the dataset can be
# opened: a status box says so at once, and the dataset's own progress continues in it.
# Always drawn, even empty: the elements below keep their places (a tab stays chosen) on the runs
# that need no status box.
top = st.container()
status = None
if "ui" not in sys.modules:
    status = top.status("Starting the lab…", expanded=True)
    status.write("Loading PyTorch and the model zoo (once per server start).")

import torch  # noqa: E402 - loaded already by the model zoo

from ui.navigation import navigate  # noqa: E402 - after the status box, on purpose
from ui.views import select_dataset  # noqa: E402

# The views answer one request at a time with small tensors, where a second intra-op thread gains
# nothing; and while the browser draws on the same cores, torch's OpenMP threads wait on each other:
# the explorer's five models answered in ~200 ms with two threads, ~20 ms with one (2-core machine,
# Chromium drawing). Training never runs in this process: the job runner starts its own.
torch.set_num_threads(1)

page, view = navigate()
select_dataset(training_status=view.sidebar_status, status=status, place=top)
page.run()
