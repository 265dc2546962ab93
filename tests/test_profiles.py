"""Training profiles and parallel training: each model's quick settings reach its stored config
under the user's overrides, a model waits for the models it starts from, and training several
models in worker processes stores the same models as training them one at a time."""

import json
import sys
import types

import pytest

from recsys_core.__main__ import main
from recsys_core.models import REGISTRY, quick_settings
from recsys_core.store.artifacts import load_artifact
from recsys_core.training.forms import config_fields, parse_overrides
from recsys_core.training.jobs import JobStatus, _apply_progress
from recsys_core.training.schedule import default_workers, prerequisites, train_models


def stored_config(store, model):
    return json.loads((store / "synthetic" / model / "config.json").read_text())["config"]


def test_every_trainable_model_has_a_quick_profile_its_config_accepts():
    for name, cls in REGISTRY.items():
        settings = quick_settings(name)
        if cls.trainable:
            assert settings.get("epochs"), name  # the quick profile bounds every training
        cls.config_class(**settings)  # valid settings (a typo would raise here, not in a demo)


def test_quick_settings_reach_the_stored_config_under_the_users_overrides(isolated_store, synthetic):
    quick = quick_settings("bpr")
    assert set(quick) - {"epochs"}, "bpr's quick profile changes more than the epochs"
    [report] = train_models("synthetic", ["bpr"], device="cpu", quick=True, overrides={"bpr": {"epochs": 2}})
    assert report.ok, report.message
    config = stored_config(isolated_store, "bpr")
    assert config["epochs"] == 2  # the override wins
    assert all(config[k] == v for k, v in quick.items() if k != "epochs")
    assert load_artifact(synthetic, "bpr").info["profile"] == "quick"


def test_the_forms_show_and_compare_against_the_chosen_profile():
    quick = quick_settings("sasrec")
    fields = {f.name: f.default for f in config_fields("sasrec", quick=True)}
    assert all(fields[k] == v for k, v in quick.items())
    assert {f.name: f.default for f in config_fields("sasrec")}["epochs"] == 200
    # Form values equal to the quick defaults are no overrides; a change is one.
    assert parse_overrides("sasrec", dict(fields), quick=True) == {}
    assert parse_overrides("sasrec", {**fields, "n_layers": 1}, quick=True) == {"n_layers": 1}


def test_prerequisites_name_the_stored_models_a_model_starts_from():
    assert prerequisites("neumf") == {"gmf", "mlp"}
    assert prerequisites("neumf", {"pretrained": False}) == set()
    assert prerequisites("fm") == {"sasrec"}
    assert prerequisites("fm", {"candidates_from": "ease"}) == {"ease"}
    assert prerequisites("bpr") == set()


def test_workers_by_device():
    assert default_workers("cpu", cores=2) == 2
    assert default_workers("cpu", cores=1) == 1
    assert default_workers("cpu", cores=64) == 4
    assert default_workers("cuda") == 1


def test_parallel_training_stores_the_same_models_as_one_at_a_time(tmp_path, monkeypatch, synthetic):
    """Run twice, in two stores: in-process on one thread, and in two worker processes with one
    thread each. The same seeds give the same weights; neumf starts from the gmf and mlp trained
    in the same run, though it is listed first."""
    models = ["neumf", "gmf", "mlp", "pop", "bpr"]
    overrides = {name: {"epochs": 3} for name in ("neumf", "gmf", "mlp", "bpr")}
    results = {}
    for run, workers in (("one at a time", 1), ("parallel", 2)):
        monkeypatch.setenv("DEEPREC_NUM_THREADS", str(workers))  # one thread per model either way
        monkeypatch.setenv("DEEPREC_ARTIFACTS_DIR", str(tmp_path / run))
        reports = train_models("synthetic", models, device="cpu", overrides=overrides, workers=workers)
        assert [r.model for r in reports] == models and all(r.ok for r in reports), reports
        assert "from scratch" not in reports[0].message  # gmf and mlp were stored before neumf began
        results[run] = {r.model: r.test_ndcg for r in reports}
        results[run]["neumf weights"] = load_artifact(synthetic, "neumf").info["weights_sha256"]
    assert results["one at a time"] == results["parallel"]


def test_the_cli_refuses_zero_workers(isolated_store, capsys):
    assert main(["train", "--dataset", "synthetic", "--models", "pop", "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_a_job_status_follows_several_models_in_training():
    status = JobStatus("synthetic", state="running", models=["sasrec", "fm", "bpr"])
    for event in (
        {"model": "sasrec", "epoch": 2, "epochs": 4, "step": 0},
        {"model": "bpr", "epoch": 1, "epochs": 2, "step": 0},
        {"model": "sasrec", "epoch": 4, "epochs": 4, "done": True},  # trained, not yet stored
        {"model": "fm", "epoch": 1, "epochs": 3, "step": 0},
        {"model": "sasrec", "epoch": 4, "epochs": 4, "done": True, "stored": True},
    ):
        _apply_progress(status, event)
    assert status.done == ["sasrec"] and status.training == {"bpr": (1, 2), "fm": (1, 3)}
    assert status.current == "bpr" and status.describe_training() == "bpr (epoch 1/2), fm (epoch 1/3)"
    assert status.fraction == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)


def test_workers_never_run_a_script_that_is_main(tmp_path, monkeypatch, isolated_store):
    """Streamlit (and its AppTest) runs a page as ``__main__``; a spawned worker would run it again."""
    page = tmp_path / "page.py"
    page.write_text("raise SystemExit('a page ran in a training worker')\n")
    script = types.ModuleType("__main__")
    script.__file__ = str(page)
    monkeypatch.setitem(sys.modules, "__main__", script)
    reports = train_models("synthetic", ["pop", "ease"], device="cpu", workers=2)
    assert all(r.ok for r in reports), reports
    assert sys.modules["__main__"] is script


def test_parallel_training_draws_the_maps_in_the_workers(isolated_store, synthetic):
    reports = train_models("synthetic", ["bpr", "pop", "ease"], device="cpu", quick=True, maps=True, workers=2)
    assert all(r.ok for r in reports), reports
    bpr = next(r for r in reports if r.model == "bpr")
    assert "items map" in bpr.message and "users map" in bpr.message, bpr.message
    folder = isolated_store / "synthetic" / "bpr"
    assert len(list(folder.glob("umap-*.npz"))) == 2
