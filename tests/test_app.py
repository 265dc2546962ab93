"""Streamlit AppTest of the home page: fresh machine, background training with progress, cancel,
leaderboard, no network."""

import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from recsys_core import models as registry
from recsys_core.data import movielens
from recsys_core.store.artifacts import training_lock
from recsys_core.training.jobs import job_status, start_job

APP = str(Path(__file__).resolve().parent.parent / "app.py")


pytestmark = pytest.mark.usefixtures("app_session")


def wait_until_done(timeout=300.0):
    deadline = time.monotonic() + timeout
    while job_status("synthetic").running and time.monotonic() < deadline:
        time.sleep(0.2)
    return job_status("synthetic")


def test_fresh_machine_offers_training_then_shows_the_leaderboard(monkeypatch):
    zoo = ("pop", "ease", "bpr")  # the page trains DEFAULT_ZOO; a small one keeps the test short
    monkeypatch.setattr(registry, "DEFAULT_ZOO", zoo)
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    assert [m.label for m in at.metric] == ["Users", "Items", "Interactions", "Density"]
    assert "Train the default zoo (pop, ease, bpr)" in at.info[0].value
    at.button(key="train_zoo").click().run()
    assert not at.exception and not at.error
    assert job_status("synthetic").models == list(zoo)
    status = wait_until_done()
    assert status.state == "finished", status.log_tail
    at.run()  # what the polling fragment triggers once the job has ended
    assert not at.exception and not at.error
    assert set(at.dataframe[0].value["model"]) == set(zoo)
    assert any("Protocol: temporal leave-last-out" in c.value for c in at.caption)
    assert any("Best so far" in s.value for s in at.success)
    assert any("Last training finished" in s.value for s in at.success)
    # The job also drew the embedding maps, so the maps view's first look is a read.
    store = Path(os.environ["DEEPREC_ARTIFACTS_DIR"]) / "synthetic"
    assert list((store / "bpr").glob("umap-items-*.npz")) and not list((store / "pop").glob("umap-*"))


def test_a_running_job_shows_progress_and_can_be_cancelled():
    start_job("synthetic", ["sasrec"], quick=False, device="cpu")
    deadline = time.monotonic() + 60
    while job_status("synthetic").current != "sasrec" and time.monotonic() < deadline:
        time.sleep(0.1)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert "training sasrec" in at.get("progress")[0].proto.text
    assert not [b for b in at.button if b.key == "train_zoo"]  # no second start while one runs
    at.button(key="cancel_job").click().run()
    assert not at.exception
    assert job_status("synthetic").state == "cancelled"
    at.run()
    assert any("cancelled" in w.value for w in at.warning)


def test_a_training_outside_the_browser_is_reported_and_not_duplicated():
    with training_lock("synthetic"):
        at = AppTest.from_file(APP, default_timeout=60).run()
        assert not at.exception
        assert "running on synthetic" in at.info[0].value
        assert not [b for b in at.button if b.key == "train_zoo"]


def test_training_can_be_switched_off_for_shared_demos(monkeypatch):
    monkeypatch.setenv("DEEPREC_UI_TRAINING", "0")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert "switched off" in at.info[0].value
    assert not [b for b in at.button if b.key == "train_zoo"]


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
