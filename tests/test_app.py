"""Streamlit AppTest of the home page: fresh machine, first-run training, leaderboard, no network."""

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from recsys_core.data import movielens
from recsys_core.models import DEFAULT_ZOO

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch):
    st.cache_resource.clear()
    st.cache_data.clear()
    monkeypatch.setenv("DEEPREC_DATASET", "synthetic")
    yield
    st.cache_resource.clear()


def test_fresh_machine_offers_training_then_shows_the_leaderboard():
    at = AppTest.from_file(APP, default_timeout=300).run()
    assert not at.exception
    assert "No model is trained" in at.info[0].value
    assert [m.label for m in at.metric] == ["Users", "Items", "Interactions", "Density"]
    at.button(key="train_baselines").click().run()
    assert not at.exception
    assert not at.error
    board = at.dataframe[0].value
    assert set(board["model"]) == set(DEFAULT_ZOO)
    assert any("Protocol: temporal leave-last-out" in c.value for c in at.caption)
    assert "Best so far" in at.success[0].value


def test_without_any_source_of_the_real_dataset_the_page_explains_and_offers_synthetic(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setenv("DEEPREC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DEEPREC_DATASET", "ml-100k")
    monkeypatch.setattr(movielens, "_download_grouplens_zip", offline)
    monkeypatch.setattr(movielens, "_fetch_recbole_copy", offline)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert "could not be obtained" in at.error[0].value
    assert "synthetic" in at.info[0].value
    at.sidebar.selectbox(key="dataset").select("synthetic").run()
    assert not at.exception and not at.error
    assert at.metric[0].value == "300"
