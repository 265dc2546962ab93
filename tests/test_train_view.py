"""AppTest of the Train view: forms built from the config dataclasses, a job started with the
chosen settings, live curves, a bad setting refused, one job per dataset, training switched off."""

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from recsys_core.models import quick_settings
from recsys_core.training.jobs import job_status, start_job

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "app_pages/train.py"


pytestmark = pytest.mark.usefixtures("app_session")


def open_train() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def wait_for_job(timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while job_status("synthetic").running and time.monotonic() < deadline:
        time.sleep(0.2)
    return job_status("synthetic")


def test_a_job_starts_with_the_forms_settings_and_shows_its_curves(isolated_store):
    at = open_train()
    assert "cuda" in at.radio(key="train_device").options or at.radio(key="train_device").value == "cpu"
    at.multiselect(key="train_family_sequential").set_value(["sasrec"]).run()
    # The form is the config dataclass: every field, with the chosen profile's default.
    assert at.radio(key="train_profile").value == "quick"
    assert at.number_input(key="cfg_quick_sasrec_epochs").value == quick_settings("sasrec")["epochs"]
    at.radio(key="train_profile").set_value("full").run()
    assert at.number_input(key="cfg_full_sasrec_epochs").value == 200
    assert at.number_input(key="cfg_full_sasrec_n_layers").value == 2
    at.number_input(key="cfg_full_sasrec_epochs").set_value(3)
    at.number_input(key="cfg_full_sasrec_n_layers").set_value(1)
    at.button(key="start_training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    status = wait_for_job()
    assert status.state == "finished", status.log_tail
    config = json.loads((isolated_store / "synthetic" / "sasrec" / "config.json").read_text())["config"]
    assert config["epochs"] == 3 and config["n_layers"] == 1
    at.run()
    assert not at.exception
    assert any("Last training finished: sasrec" in s.value for s in at.success)
    curves = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert curves and curves[0]["layout"]["annotations"][0]["text"] == "training loss"
    assert len(curves[0]["data"]) == 2  # sasrec's loss and validation lines
    assert at.multiselect(key="train_family_sequential").format_func("sasrec") == "sasrec ✓"


def test_a_bad_setting_starts_nothing(isolated_store):
    at = open_train()
    at.multiselect(key="train_family_sequential").set_value(["gru4rec"]).run()
    at.number_input(key="cfg_quick_gru4rec_learning_rate").set_value(-1.0)
    at.button(key="start_training").click().run()
    assert not at.exception
    assert any("Nothing was started: gru4rec: learning_rate must be positive" in e.value for e in at.error)
    assert job_status("synthetic").state == "none"


def test_one_job_per_dataset_and_its_progress_is_shown_to_every_viewer(isolated_store):
    start_job("synthetic", ["sasrec"], quick=False, device="cpu")
    deadline = time.monotonic() + 60
    while job_status("synthetic").current != "sasrec" and time.monotonic() < deadline:
        time.sleep(0.1)
    at = open_train()
    assert "training sasrec" in at.get("progress")[0].proto.text
    assert not [m for m in at.multiselect if m.key.startswith("train_family_")]  # no second start offered
    at.button(key="cancel_job").click().run()
    assert not at.exception and job_status("synthetic").state == "cancelled"


def test_training_switched_off_for_a_shared_demo(monkeypatch):
    monkeypatch.setenv("DEEPREC_UI_TRAINING", "0")
    at = open_train()
    assert "switched off" in at.info[0].value
    assert not [m for m in at.multiselect if m.key.startswith("train_family_")]
    assert any("Uploads are switched off" in c.value for c in at.caption)
