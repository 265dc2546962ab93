"""Small cached helpers shared by the pages (no model or metric code lives here)."""

from __future__ import annotations

import streamlit as st

from recsys_core.data import Dataset, load_dataset


@st.cache_resource(show_spinner="Loading the dataset…")
def cached_dataset(name: str) -> Dataset:
    return load_dataset(name)


def dataset_error_message(error: Exception) -> str:
    return f"The dataset is not available. {error}"
