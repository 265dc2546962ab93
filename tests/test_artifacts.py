import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import stored_metrics

from recsys_core.data import make_synthetic
from recsys_core.models import build_model
from recsys_core.store import artifacts
from recsys_core.store.artifacts import (
    ArtifactCorrupted,
    ArtifactMismatch,
    ArtifactMissing,
    TrainingLocked,
    best_per_family,
    damaged_models,
    leaderboard,
    load_artifact,
    read_manifest,
    save_artifact,
    training_lock,
)
from recsys_core.training.loop import fit

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def ease(synthetic, synthetic_split):
    model = build_model("ease", synthetic.n_users, synthetic.n_items)
    fit(model, synthetic_split, torch.device("cpu"))
    return model


def test_round_trip_keeps_config_metrics_and_manifest(synthetic, ease, isolated_store):
    metrics = stored_metrics(0.5)
    path = save_artifact(synthetic, ease, metrics, [{"l2": 10.0}], {"seconds": 1.5, "device": "cpu"})
    assert path == isolated_store / "synthetic" / "ease"
    assert sorted(p.name for p in path.iterdir()) == sorted(artifacts.FILES)
    artifact = load_artifact(synthetic, "ease")
    assert artifact.model.config == ease.config and artifact.metrics == metrics
    assert artifact.info["dataset_fingerprint"] == synthetic.fingerprint
    manifest = read_manifest("synthetic")
    assert manifest["models"]["ease"]["version"] == artifact.version
    assert not list((isolated_store / "synthetic").glob(".tmp-*"))


def test_missing_truncated_and_mismatched_artifacts_are_clear_errors(synthetic, ease):
    with pytest.raises(ArtifactMissing, match="not trained on synthetic yet; retrain it with"):
        load_artifact(synthetic, "ease")
    path = save_artifact(synthetic, ease, stored_metrics(), [], {})
    weights = path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ArtifactCorrupted, match=r"damaged.*python -m recsys_core train"):
        load_artifact(synthetic, "ease")
    save_artifact(synthetic, ease, stored_metrics(), [], {})
    with pytest.raises(ArtifactMismatch, match="different data"):
        load_artifact(make_synthetic(seed=3), "ease")
    (path / "config.json").write_text("{not json")
    with pytest.raises(ArtifactCorrupted, match=r"config.json is damaged \(it cannot be read"):
        load_artifact(synthetic, "ease")


def test_a_failed_write_leaves_the_previous_model(synthetic, ease, monkeypatch, isolated_store):
    save_artifact(synthetic, ease, stored_metrics(), [], {})
    before = load_artifact(synthetic, "ease").version

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # what a Ctrl-C in the middle of writing looks like

    monkeypatch.setattr(artifacts, "_write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        save_artifact(synthetic, ease, stored_metrics(), [], {})
    assert load_artifact(synthetic, "ease").version == before
    assert not list((isolated_store / "synthetic").glob(".tmp-*"))


def test_a_kill_between_the_two_renames_is_recovered(synthetic, ease, isolated_store):
    path = save_artifact(synthetic, ease, stored_metrics(), [], {})
    path.rename(path.with_name(".old-ease-deadbeef"))  # the state right after the first rename
    assert load_artifact(synthetic, "ease").model.config == ease.config
    assert "ease" in read_manifest("synthetic")["models"]


def test_the_training_lock_refuses_a_second_holder(isolated_store):
    with training_lock("synthetic"):
        second = training_lock("synthetic")
        with pytest.raises(TrainingLocked, match="already running"):
            second.__enter__()
    with training_lock("synthetic"):  # released again
        pass


def test_leaderboard_sorts_by_ndcg_with_cis(synthetic, synthetic_split, isolated_store):
    from recsys_core.training.schedule import train_models

    reports = train_models("synthetic", ["pop", "ease"])
    assert all(r.ok for r in reports)
    board = leaderboard("synthetic")
    assert board["model"].tolist() == ["ease", "pop"]
    assert board["NDCG@10 95% CI"].str.startswith("[").all()


def test_a_damaged_manifest_is_rebuilt_from_the_model_folders(synthetic, ease, isolated_store):
    save_artifact(synthetic, ease, stored_metrics(0.3), [], {"seconds": 2.0})
    version = load_artifact(synthetic, "ease").version
    manifest = isolated_store / "synthetic" / "manifest.json"
    for damage in ('{"dataset": "synthetic", "models": []}', "not json{", '{"models": {"ease": 3}}', "[]"):
        manifest.write_text(damage)
        assert read_manifest("synthetic")["models"]["ease"]["version"] == version, damage
        assert leaderboard("synthetic")["model"].tolist() == ["ease"]
    manifest.unlink()
    assert list(read_manifest("synthetic")["models"]) == ["ease"]
    save_artifact(synthetic, ease, stored_metrics(0.4), [], {})  # the next store writes it whole again
    assert json.loads(manifest.read_text())["models"]["ease"]["test"] == {"NDCG@10": 0.4, "HR@10": 0.8}


@pytest.mark.parametrize(
    ("file", "damage", "message"),
    [
        ("metrics.json", lambda m: m["test"].pop("NDCG@10 CI"), "its test metrics lack the interval 'NDCG@10 CI'"),
        ("metrics.json", lambda m: m.pop("test"), "it has no test metrics"),
        ("metrics.json", lambda m: m["test"].update({"NDCG@10": "high"}), "its test NDCG@10 is not a number"),
        ("info.json", lambda m: m.pop("weights_sha256"), "it lacks weights_sha256"),
        ("config.json", lambda m: m.update({"n_items": -1}), "it lacks n_items"),
    ],
)
def test_any_damage_to_a_model_file_is_the_same_damaged_message(synthetic, ease, file, damage, message):
    path = save_artifact(synthetic, ease, stored_metrics(), [], {})
    payload = json.loads((path / file).read_text())
    damage(payload)
    (path / file).write_text(json.dumps(payload))
    expected = f"{file} is damaged ({message}); retrain it with: python -m recsys_core train --dataset synthetic"
    with pytest.raises(ArtifactCorrupted) as error:
        load_artifact(synthetic, "ease")
    assert expected in str(error.value)
    assert expected in damaged_models("synthetic")["ease"]
    assert leaderboard("synthetic").empty  # left out of the table, reported by damaged_models
    assert "ease" in read_manifest("synthetic")["models"]  # still listed, so every view reports it


def test_nan_metrics_are_never_stored(synthetic, ease, isolated_store):
    with pytest.raises(ValueError, match="ease was not stored: its test NDCG@10 is not a number"):
        save_artifact(synthetic, ease, stored_metrics(float("nan")), [], {})
    assert not (isolated_store / "synthetic" / "ease").exists()


def children(pid: int) -> list[int]:
    """The pids of a process's children (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cli(*args, env):
    return subprocess.Popen([sys.executable, "-m", "recsys_core", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_kill_9_during_training_and_a_concurrent_start_leave_artifacts_intact(isolated_store):
    env = {**os.environ, "DEEPREC_ARTIFACTS_DIR": str(isolated_store)}
    first = _cli("train", "--dataset", "synthetic", "--models", "ease", "--no-maps", env=env)
    assert first.wait(timeout=120) == 0, first.stderr.read()
    good = json.loads((isolated_store / "synthetic" / "ease" / "info.json").read_text())["weights_sha256"]

    # A second `train` that has already imported everything and waits for a go on stdin, so that
    # it asks for the lock while the victim is certainly still training.
    code = "import sys; from recsys_core.__main__ import main; sys.stdin.readline(); " + (
        "sys.exit(main(['train', '--dataset', 'synthetic', '--models', 'ease', '--no-maps']))"
    )
    second = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    (isolated_store / "synthetic" / ".train.lock").write_text("")  # the first holder is gone
    victim = _cli("train", "--dataset", "synthetic", "--models", "sasrec,ease", "--no-maps", "--workers", "2", env=env)
    # The holder writes its pid into the lock file once it has the lock.
    lock = isolated_store / "synthetic" / ".train.lock"
    deadline = time.time() + 60
    while time.time() < deadline and lock.read_text().strip() != f"pid {victim.pid}":
        time.sleep(0.05)
    second.stdin.write("go\n")
    second.stdin.flush()
    assert second.wait(timeout=120) == 3
    assert "already running" in second.stderr.read()
    assert victim.poll() is None, "the training finished before it could be killed"
    workers = []  # it trains its two models in two worker processes
    while time.time() < deadline + 60 and len(workers) < 2:
        workers = [pid for pid in children(victim.pid) if b"spawn_main" in cmdline(pid)]
        time.sleep(0.05)
    assert len(workers) == 2 and victim.poll() is None
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    # The workers die with it: none stores a model after the lock holder is gone.
    deadline = time.time() + 30
    while time.time() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not [pid for pid in workers if alive(pid)]

    from recsys_core.data import make_synthetic

    artifact = load_artifact(make_synthetic(), "ease")
    assert artifact.info["weights_sha256"] == good
    # the kernel released the dead process's lock: a new training starts at once
    with training_lock("synthetic"):
        pass


def test_best_per_family_is_chosen_on_validation_never_on_test(synthetic, isolated_store):
    """Planted: each model's validation figure (a full profile's stored metrics, or its history's
    best epoch or setting) and a test figure that would rank them the other way."""
    planted = {  # model: (validation NDCG@10 as stored, test NDCG@10)
        "pop": ({"history": [{"valid NDCG@10": 0.05}]}, 0.9),
        "ease": ({"history": [{"l2": 1, "valid NDCG@10": 0.20}, {"l2": 10, "valid NDCG@10": 0.30}]}, 0.1),
        "itemknn": ({"history": [{"valid NDCG@10": 0.25}]}, 0.8),
        "gmf": ({"history": [{"epoch": 1, "valid NDCG@10": 0.10}, {"epoch": 2, "valid NDCG@10": 0.15}]}, 0.7),
        "mlp": ({"valid": 0.18, "history": [{"epoch": 1, "valid NDCG@10": 0.02}]}, 0.2),
        "bpr": ({"valid": 0.12, "history": []}, 0.6),
        "sasrec": ({"history": [{"epoch": 1}]}, 0.95),  # no validation figure recorded: last
    }
    for name, (valid, test) in planted.items():
        metrics = stored_metrics(test)
        if "valid" in valid:
            metrics["valid"] = stored_metrics(valid["valid"])["test"]
        save_artifact(synthetic, build_model(name, synthetic.n_users, synthetic.n_items), metrics, valid["history"], {})
    # baselines: ease (0.30) beats itemknn and pop; NCF: mlp's stored 0.18 beats gmf's best epoch 0.15
    assert best_per_family("synthetic") == ["ease", "mlp", "bpr", "sasrec"]
    assert best_per_family("synthetic", limit=2) == ["ease", "mlp"]
