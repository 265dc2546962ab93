"""Fair tuning: Optuna studies in a real SQLite storage, shared by processes, resumed after a kill."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import optuna
import pytest
import sqlalchemy.exc
import torch
from optuna.trial import TrialState

from recsys_core.__main__ import main
from recsys_core.data import make_synthetic, temporal_leave_last_out
from recsys_core.models import REGISTRY
from recsys_core.models.base import ModelConfig, Range, Recommender, Validator
from recsys_core.store.artifacts import load_artifact
from recsys_core.training.run import TrainingContext
from recsys_core.training.tuning import FINISHED, Tuner, TuningError, open_storage, tune_models

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class StepConfig(ModelConfig):
    # The synthetic users walk their group's items one step at a time: the planted step is 1.
    SEARCH_SPACE: ClassVar[dict] = {"step": Range(-6, 6, "how far ahead of the last item", integer=True)}
    step: int = 4


class NextByStep(Recommender):
    """Scores items by their distance from ``last item + step``: right only at the planted step."""

    name, family, paper, config_class = "next_by_step", "test", "-", StepConfig

    def __init__(self, config: StepConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        self.register_buffer("device_anchor", torch.zeros(1))  # a model's device is its tensors'

    def fit(self, split, validate: Validator) -> list[dict[str, float]]:
        return [{"step": self.config.step, "valid NDCG@10": validate(self)}]

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        target = history[:, -1:] + self.config.step  # (B, 1)
        items = torch.arange(self.n_items + 1)[None, :]
        return -(items - target).abs().float()


def test_a_study_finds_the_planted_setting(monkeypatch, tmp_path):
    monkeypatch.setitem(REGISTRY, "next_by_step", NextByStep)
    dataset = make_synthetic(noise=0.0)
    context = TrainingContext.build(dataset, temporal_leave_last_out(dataset), "cpu")
    storage = open_storage(f"sqlite:///{tmp_path / 'tuning.db'}")
    tuner = Tuner(context, "next_by_step", 12, storage, "planted")
    tuner.run()
    report = tuner.report()
    assert report.finished == 12
    assert report.best_params == {"step": 1}
    # The defaults are trial 0 and the study never reports worse than them.
    assert tuner.study.trials[0].params == {"step": 4} and tuner.study.trials[0].user_attrs["defaults"]
    assert report.tuned_valid >= report.default_valid
    assert tuner.study.user_attrs["trials"] == 12
    assert "step" in tuner.study.user_attrs["search_space"]


def test_the_best_trial_becomes_the_stored_model_with_its_study(tmp_path, capsys):
    code = main(["tune", "--dataset", "synthetic", "--models", "ease,pop", "--trials", "3",
                 "--storage", f"sqlite:///{tmp_path / 't.db'}", "--study", "mine"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "pop" in out.out and "nothing to tune" in out.out
    artifact = load_artifact(make_synthetic(), "ease")
    tuning = artifact.info["tuning"]
    assert tuning["study"] == "mine/ease" and tuning["trials"] == 3
    study = optuna.load_study(study_name="mine/ease", storage=f"sqlite:///{tmp_path / 't.db'}")
    best = max((t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert tuning["trial"] == best.number
    assert artifact.model.config.l2 == best.params.get("l2", artifact.model.config.l2)
    assert study.user_attrs["tuned test NDCG@10"][0] == pytest.approx(artifact.metrics["test"]["NDCG@10"])


def test_no_store_only_reports(tmp_path, isolated_store):
    reports = tune_models("synthetic", ["ease"], 2, storage=f"sqlite:///{tmp_path / 't.db'}", store=False)
    assert reports[0].tuned_test is not None and not reports[0].stored
    assert not (isolated_store / make_synthetic().name / "ease").exists()


def test_a_study_refuses_another_budget(tmp_path):
    url = f"sqlite:///{tmp_path / 't.db'}"
    tune_models("synthetic", ["ease"], 2, storage=url, store=False)
    with pytest.raises(TuningError, match="budget of 2 trials"):
        tune_models("synthetic", ["ease"], 3, storage=url, store=False)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--trials", "0"], "--trials must be at least 1"),
        (["--trials", "2", "--models", "nope"], "unknown model"),
        (["--trials", "2", "--timeout", "-5"], "--timeout must be positive"),
        (["--trials", "2", "--storage", "nosuchdb://x"], "cannot open the study storage"),
    ],
)
def test_bad_arguments_get_a_message_not_a_traceback(arguments, message, capsys):
    code = main(["tune", "--dataset", "synthetic", "--models", "ease", *arguments])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def tune_process(url: str, trials: int, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "recsys_core", "tune", "--dataset", "synthetic", "--models", "ease",
               "--trials", str(trials), "--storage", url, "--no-store", *extra]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip


def running_trials(url: str) -> list[optuna.trial.FrozenTrial]:
    try:
        study = optuna.load_study(study_name="synthetic/ease", storage=url)
        return [t for t in study.trials if t.state == TrialState.RUNNING]
    except KeyError:
        return []  # not created yet
    except sqlalchemy.exc.OperationalError:
        return []  # locked: the process was frozen while writing; look again later


def finished_trials(url: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="synthetic/ease", storage=url)
    return [t for t in study.trials if t.state in FINISHED]


def test_two_processes_share_one_study_without_losing_or_repeating_a_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    processes = [tune_process(url, 8) for _ in range(2)]
    logs = []
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        logs.append(re.findall(r"^ease trial (\d+): ", err, flags=re.MULTILINE))
    finished = finished_trials(url)
    assert len(finished) == 8
    assert len({t.number for t in finished}) == 8
    searched = [t.params["l2"] for t in finished if not t.user_attrs.get("defaults")]
    assert len(set(searched)) == len(searched)  # no setting proposed twice
    # Each trial was run by exactly one of the two processes.
    ran = [int(n) for log in logs for n in log]
    assert sorted(ran) == sorted(t.number for t in finished)


def test_a_killed_tune_loses_only_its_running_trial_and_resumes(tmp_path):
    # An ease trial is short: on a busy machine the process can finish every trial between two looks
    # at the study. The kill must land inside a trial, so a run that was never caught in one is
    # started again on a fresh study (at most three times).
    caught = False
    for attempt in range(3):
        url = f"sqlite:///{tmp_path / f'killed-{attempt}.db'}"
        first = tune_process(url, 5, "--grace", "2")
        deadline = time.monotonic() + 300
        while first.poll() is None and time.monotonic() < deadline:  # kill it in the middle of a trial
            if running_trials(url):
                first.send_signal(signal.SIGSTOP)  # frozen, then checked: the trial may have ended meanwhile
                if running_trials(url):
                    caught = True
                    break
                first.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        if caught:
            break
        first.kill()
        first.wait()
    assert caught, "no try was caught inside a trial"
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = tune_process(url, 5, "--grace", "2")
    _, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    study = optuna.load_study(study_name="synthetic/ease", storage=url)
    assert len(finished_trials(url)) == 5
    lost = [t for t in study.trials if t.state == TrialState.FAIL and not t.user_attrs.get("surplus")]
    assert len(lost) == 1  # the trial that was running when the process died
    assert not any(t.state == TrialState.RUNNING for t in study.trials)


def test_each_config_declares_a_search_space_with_reasons_and_its_defaults_mostly_inside():
    for name, cls in REGISTRY.items():
        space = cls.config_class.SEARCH_SPACE
        defaults = cls.config_class()
        for setting, spec in space.items():
            assert setting in {f.name for f in dataclasses.fields(defaults)}, (name, setting)
            assert spec.reason, (name, setting)
        if cls.trainable:
            assert "learning_rate" in space, name
            assert all(getattr(defaults, s) in spec for s, spec in space.items()), name
    assert not REGISTRY["pop"].config_class.SEARCH_SPACE

