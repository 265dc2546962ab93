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


def test_with_several_gpus_the_form_offers_data_parallel_training_and_shows_its_command(monkeypatch, isolated_store):
    # No GPU here: the view is shown what a machine with two would report.
    import recsys_core.training.devices as devices

    monkeypatch.setattr(devices, "gpu_count", lambda: 2)
    monkeypatch.setattr(devices, "available_devices", lambda: {"cuda": "H200, 141 GiB (GPU 0 of 2)", "cpu": "CPU"})
    at = open_train()
    at.multiselect(key="train_family_sequential").set_value(["sasrec"]).run()
    assert at.radio(key="train_device").value == "cuda"
    def torchrun() -> list[str]:
        return [c.value for c in at.code if c.value.startswith("torchrun")]

    assert at.number_input(key="train_processes").value == 1 and not torchrun()
    at.number_input(key="train_processes").set_value(2).run()
    assert not at.exception
    (command,) = torchrun()
    assert command.startswith("torchrun --nproc_per_node=2 --standalone -m recsys_core train --dataset synthetic")
    assert "--models sasrec --device cuda" in command
    # On the CPU the choice is not offered: one process per model, several models at once.
    at.radio(key="train_device").set_value("cpu").run()
    assert not any(n.key == "train_processes" for n in at.number_input)


def test_a_background_job_of_two_processes_stores_a_data_parallel_model(isolated_store):
    # The job runner's torchrun path, on the CPU's gloo backend (what the form starts on GPUs).
    start_job("synthetic", ["bpr"], quick=True, device="cpu", processes=2, overrides={"bpr": {"epochs": 2}})
    status = wait_for_job()
    assert status.state == "finished", status.log_tail
    assert status.done == ["bpr"]
    info = json.loads((isolated_store / "synthetic" / "bpr" / "info.json").read_text())
    assert info["world_size"] == 2 and info["backend"] == "gloo"
    record = json.loads((isolated_store / "synthetic" / ".job" / "job.json").read_text())
    assert record["processes"] == 2 and "torch.distributed.run" in record["command"]


def test_cancelling_a_data_parallel_job_stops_every_process(isolated_store):
    from recsys_core.training.jobs import cancel_job, job_dir, read_events

    start_job("synthetic", ["bpr"], quick=False, device="cpu", processes=2,
              overrides={"bpr": {"epochs": 100_000, "patience": 100_000}})  # fmt: skip
    journal = job_dir("synthetic") / "progress.jsonl"
    deadline, pids = time.monotonic() + 120, None
    while time.monotonic() < deadline and not (pids and any(e.get("kind") == "epoch" for e in read_events(journal))):
        time.sleep(0.3)
        pids = next((e["pids"] for e in read_events(journal) if e.get("event") == "start"), None)
    assert pids and len(pids) == 2
    assert cancel_job("synthetic").state == "cancelled"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids), "a training process outlived the cancel"
    assert not (isolated_store / "synthetic" / "bpr").exists()  # nothing stored by the cancelled run
