"""Fair tuning: the same number of Optuna trials for every model, on validation, in a real study database.

Which model wins a comparison often says more about how long each was tuned than about the models
(Ferrari Dacrema et al., RecSys 2019; Rendle et al., 2019). So every model here gets one study with
the same trial budget over the space its config declares (``SEARCH_SPACE``, a reason beside each
range), searched by a seeded TPE sampler, with a median pruner stopping trials whose validation
curve falls behind. The objective is the protocol's validation NDCG@10, as training's early
stopping uses it; the default settings are the first trial, so tuning never reports a model worse
than its default. Test is computed once, for the retrained best trial (and for the defaults, to
show what tuning changed); it never chooses anything.

Studies live in Optuna's RDB storage: SQLite beside the dataset's models by default, any
SQLAlchemy URL otherwise. Processes pointed at one study share its budget: each takes the next
trial number from the database, and a trial numbered past the budget is dropped before it trains,
so N trials run in all, whoever runs them. A process that dies stops beating its heartbeat; once
its trial is ``grace_s`` seconds silent, another process (or a re-run) marks it failed and runs a
replacement, so a killed tune loses only the trial it was running.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import ArgumentError

from recsys_core.data import Dataset, load_dataset, temporal_leave_last_out
from recsys_core.data.split import PROTOCOL
from recsys_core.metrics import mean_ci
from recsys_core.models import REGISTRY, data_settings
from recsys_core.models.base import Choice, Range
from recsys_core.protocols.topk import Evaluation, evaluate_model
from recsys_core.store.artifacts import TrainingLocked, dataset_root, training_lock
from recsys_core.training.loop import EPOCH, Progress, fit
from recsys_core.training.run import ModelRun, TrainingContext, evaluate_and_store, prepare_run, tune_retriever_blend

OBJECTIVE = "validation NDCG@10"
# Prune no trial before its 5th epoch, and only once 5 trials have finished: early epochs of a good
# setting can trail a poor one's, and the median of fewer trials says little.
PRUNER_STARTUP_TRIALS, PRUNER_WARMUP_EPOCHS = 5, 5
HEARTBEAT_S = 10
GRACE_S = 60
STORE_WAIT_S = 3600  # how long the best model waits for another training of the dataset to end
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
CLAIMED = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)


class TuningError(ValueError):
    """Bad tuning arguments, or a study that does not match them; the message says which."""


class _BudgetSpent(Exception):
    """A trial numbered past the budget: dropped before it trains."""


def default_storage(dataset: Dataset) -> str:
    return f"sqlite:///{dataset_root(dataset.name) / 'tuning.db'}"


def study_name(dataset: Dataset, model: str, prefix: str | None = None) -> str:
    return f"{prefix or dataset.name}/{model}"


def open_storage(url: str, grace_s: int = GRACE_S, attempts: int = 5) -> optuna.storages.RDBStorage:
    # SQLite lets one writer in at a time: the others wait up to a minute instead of failing.
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    heartbeat = max(1, min(HEARTBEAT_S, grace_s // 3))
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                # Optuna marks heartbeats experimental; they are what lets a killed process lose only its trial.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat,
                                                  grace_period=grace_s)  # fmt: skip
        except Exception as error:  # SQLAlchemy's errors for a bad URL or an unreachable server are many
            # Processes started together on a new database race to create its tables: try again.
            if isinstance(error, ImportError | ArgumentError) or attempt == attempts - 1:
                raise storage_error(url, error) from error
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def storage_error(url: str, error: Exception) -> TuningError:
    hint = ""
    if isinstance(error, ImportError):
        hint = " (install the database's driver: for PostgreSQL, pip install 'psycopg[binary]' and a " \
               "postgresql+psycopg:// URL)"
    return TuningError(f"cannot open the study storage {safe_url(url)}: {type(error).__name__}: "
                       f"{str(error).replace(url, safe_url(url))}{hint}")


def suggest(trial: optuna.Trial, name: str, space: Range | Choice) -> object:
    if isinstance(space, Choice):
        return trial.suggest_categorical(name, list(space.options))
    if space.integer:
        return trial.suggest_int(name, int(space.low), int(space.high), log=space.log)
    return trial.suggest_float(name, space.low, space.high, log=space.log)


def default_params(model: str, context: TrainingContext) -> dict[str, object]:
    """The default settings inside the model's search space: the first trial's. A default outside
    it (ItemKNN's and EASE's "choose from a grid on validation") is left to the config."""
    config_class = REGISTRY[model].config_class
    defaults = config_class(**data_settings(model, context.split))
    return {k: getattr(defaults, k) for k, space in config_class.SEARCH_SPACE.items() if getattr(defaults, k) in space}


@dataclass
class TuneEvent:
    """What a study reports while it runs: an epoch of a trial, or a finished trial."""

    model: str
    trial: int
    trials: int  # the budget
    kind: str  # "epoch" (of a running trial), "trial" (finished) or "done" (the study ended, its best stored)
    epoch: int = 0
    valid_ndcg: float | None = None  # this epoch's, or the trial's result
    state: str = ""  # a finished trial's: COMPLETE, PRUNED or FAIL
    params: dict[str, object] = field(default_factory=dict)


TuneCallback = Callable[[TuneEvent], None]


@dataclass
class TuneReport:
    """What one model's study found, for the command line and the browser."""

    model: str
    study: str
    trials: int
    finished: int = 0
    pruned: int = 0
    best_trial: int | None = None
    best_params: dict[str, object] = field(default_factory=dict)
    default_valid: float | None = None
    tuned_valid: float | None = None
    default_test: list[float] | None = None  # NDCG@10 and its 95% CI
    tuned_test: list[float] | None = None
    seconds: float = 0.0
    stored: bool = False
    message: str = ""

    @property
    def ok(self) -> bool:
        """The study ended with a best trial, or there was nothing to tune."""
        return self.best_trial is not None or not REGISTRY[self.model].config_class.SEARCH_SPACE


@dataclass
class Tuner:
    """One model's study: its budget, its objective and the loop that shares the budget."""

    context: TrainingContext
    model: str
    trials: int
    storage: optuna.storages.RDBStorage
    study_name: str
    seed: int = 0
    progress: TuneCallback | None = None

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise TuningError(f"--trials must be at least 1, not {self.trials}")
        self.space = REGISTRY[self.model].config_class.SEARCH_SPACE
        self._beaten: set[int] = set()  # running trials given a heartbeat (_beat_once_for_running_trials)
        pruner = optuna.pruners.MedianPruner(PRUNER_STARTUP_TRIALS, PRUNER_WARMUP_EPOCHS)
        self.study = optuna.create_study(storage=self.storage, study_name=self.study_name, direction="maximize",
                                         pruner=pruner, load_if_exists=True)  # fmt: skip
        self._record_budget()

    def _record_budget(self) -> None:
        """The budget and what is searched, recorded in the study; a study started with another
        budget is refused, since an equal budget for every model is the point."""
        attrs = self.study.user_attrs
        if "trials" in attrs and attrs["trials"] != self.trials:
            raise TuningError(f"study {self.study_name!r} was started with a budget of {attrs['trials']} trials; "
                              f"every model gets the same budget: pass --trials {attrs['trials']} or name a new "
                              "--study")  # fmt: skip
        if "trials" not in attrs:
            recorded = {"trials": self.trials, "model": self.model, "dataset": self.context.dataset.name,
                        "protocol": PROTOCOL, "objective": OBJECTIVE, "sampler": f"TPE (seed {self.seed})",
                        "pruner": f"median ({PRUNER_STARTUP_TRIALS} trials, {PRUNER_WARMUP_EPOCHS} epochs)",
                        "search_space": {k: repr(v) for k, v in self.space.items()}}  # fmt: skip
            for key, value in recorded.items():
                self.study.set_user_attr(key, value)
            self.study.enqueue_trial(default_params(self.model, self.context), user_attrs={"defaults": True},
                                     skip_if_exists=True)  # fmt: skip

    # ------------------------------------------------------------------ the shared budget

    def counts(self) -> tuple[int, int]:
        """(finished trials, trials finished, running or waiting: the budget claimed so far)."""
        trials = self.study.get_trials(deepcopy=False)
        return (sum(t.state in FINISHED for t in trials), sum(t.state in CLAIMED for t in trials))

    def run(self, deadline: float = math.inf, poll_s: float = 2.0) -> None:
        """Trials until the study has its budget, shared with any other process on the same study;
        with a ``deadline`` (time.monotonic()), no trial starts after it."""
        while time.monotonic() < deadline:
            finished, claimed = self.counts()
            if finished >= self.trials:
                return
            if claimed >= self.trials:
                # The rest of the budget is running in other processes: wait for it, or for it to go
                # silent (a dead process), after which it is failed and replaced.
                self._beat_once_for_running_trials()
                optuna.storages.fail_stale_trials(self.study)
                time.sleep(poll_s)
                continue
            self.study.optimize(self.objective, n_trials=1, catch=(_BudgetSpent,), callbacks=[self._finished])

    def _finished(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.progress and not trial.user_attrs.get("surplus"):
            value = trial.value
            if trial.state == TrialState.PRUNED and trial.last_step is not None:
                value = trial.intermediate_values[trial.last_step]  # where the pruner stopped it
            self.progress(TuneEvent(self.model, trial.number, self.trials, "trial", trial.last_step or 0, value,
                                    trial.state.name, dict(trial.params)))  # fmt: skip

    def _beat_once_for_running_trials(self) -> None:
        """One heartbeat for each running trial this process has not seen yet. Optuna only fails a
        trial whose heartbeat went stale, and a process killed before its trial's first beat
        leaves none: this one makes such a trial go stale ``grace_s`` later too. A live trial beats
        on by itself, so the extra beat changes nothing for it."""
        study_id = self.storage.get_study_id_from_name(self.study_name)
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.number not in self._beaten:
                self._beaten.add(trial.number)
                self.storage.record_heartbeat(self.storage.get_trial_id_from_study_id_trial_number(study_id,
                                                                                                   trial.number))

    def objective(self, trial: optuna.Trial) -> float:
        claimed = [t for t in self.study.get_trials(deepcopy=False, states=CLAIMED) if t.number < trial.number]
        if len(claimed) >= self.trials:
            trial.set_user_attr("surplus", True)
            raise _BudgetSpent(f"trial {trial.number}: the budget of {self.trials} trials is taken")
        # A sampler seeded by the trial number: one process re-runs exactly; several never propose
        # the same settings from the same seed.
        self.study.sampler = optuna.samplers.TPESampler(seed=self.seed * 1_000_003 + trial.number)
        is_default = bool(trial.user_attrs.get("defaults"))
        names = default_params(self.model, self.context) if is_default else self.space
        settings = {name: suggest(trial, name, self.space[name]) for name in names}

        def report(progress: Progress) -> None:
            if progress.kind != EPOCH or progress.valid_ndcg is None:
                return
            trial.report(progress.valid_ndcg, progress.epoch)
            if self.progress:
                self.progress(TuneEvent(self.model, trial.number, self.trials, "epoch", progress.epoch,
                                        progress.valid_ndcg, params=settings))  # fmt: skip
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {progress.epoch}: below the median of earlier trials")

        started = time.perf_counter()
        try:
            run = prepare_run(self.context, self.model, settings, quick=False, seed=self.seed)
            result = fit(run.model, self.context.split, self.context.device, self.seed, report)
        except (ValueError, FloatingPointError, RuntimeError, MemoryError) as error:
            # A setting that cannot train (it diverges, or runs out of memory) is a result, not a
            # lost trial: it scores nothing and uses its share of the budget.
            trial.set_user_attr("failed", f"{type(error).__name__}: {error}")
            return 0.0
        trial.set_user_attr("seconds", time.perf_counter() - started)
        trial.set_user_attr("best_epoch", result.best_epoch)
        if run.notes:
            trial.set_user_attr("notes", "; ".join(run.notes))
        if is_default:
            # The defaults' test figure, beside the tuned one in the report; it chooses nothing.
            test = evaluate_model(run.model, self.context.split, "test", accuracy_only=True)
            trial.set_user_attr("test NDCG@10", with_ci(test))
            # Per user, in the split's order of evaluated users: a paired test against the tuned model.
            trial.set_user_attr("test NDCG@10 per user", test.per_user["NDCG@10"].round(6).tolist())
        return result.best_valid_ndcg

    # ------------------------------------------------------------------ the outcome

    def report(self) -> TuneReport:
        return summarise(self.study, self.model)

    def finish(self, store: bool = True) -> TuneReport:
        """Retrain the best trial's settings (same seed, same validation), evaluate it on test once,
        and with ``store`` make it the dataset's stored model, with the study named in its record.
        Of several processes on one study, the first to get the dataset's training lock stores it;
        the others find it stored."""
        out = self.report()
        if out.best_trial is None:
            out.message = "no trial completed"
            return out
        best = self.study.trials[out.best_trial]
        if not store:
            run = self._retrain(best)
            out.tuned_test = with_ci(evaluate_model(run.model, self.context.split, "test", accuracy_only=True))
            return self._compare(out, run, best)
        with self._waiting_lock():
            attrs = self.study.user_attrs
            if attrs.get("stored trial") == best.number:
                out.stored, out.tuned_test = True, attrs.get("tuned test NDCG@10")
                out.message = "already stored by this study (an earlier run, or another process)"
                return out
            run = self._retrain(best)
            info = {"tuning": {"study": self.study_name, "trial": best.number, "trials": self.trials,
                               "valid NDCG@10": best.value, "settings": dict(best.params),
                               "storage": safe_url(self.storage.url)}}  # fmt: skip
            out.tuned_test = with_ci(evaluate_and_store(run, info))
            out.stored = True
            self.study.set_user_attr("stored trial", best.number)
            self.study.set_user_attr("tuned test NDCG@10", out.tuned_test)
        return self._compare(out, run, best)

    def _retrain(self, best: FrozenTrial) -> ModelRun:
        # The best trial's settings (a default outside the space stays the config's own), same seed.
        run = prepare_run(self.context, self.model, dict(best.params), quick=False, seed=self.seed)
        run.result = fit(run.model, self.context.split, self.context.device, self.seed)
        run.notes += run.result.notes
        tune_retriever_blend(run)
        return run

    @staticmethod
    def _compare(out: TuneReport, run: ModelRun, best: FrozenTrial) -> TuneReport:
        if not math.isclose(run.result.best_valid_ndcg, best.value, rel_tol=1e-6, abs_tol=1e-9):
            out.message = (f"retrained best trial: validation {run.result.best_valid_ndcg:.4f} against the "
                           f"trial's {best.value:.4f} (training is not bit-exact here)")  # fmt: skip
        return out

    @contextlib.contextmanager
    def _waiting_lock(self) -> Iterator[None]:
        """The dataset's training lock, waiting while another training holds it (another process of
        this study, or a training started from the browser)."""
        given_up = time.monotonic() + STORE_WAIT_S
        with contextlib.ExitStack() as held:
            while True:
                try:
                    held.enter_context(training_lock(self.context.dataset.name))
                    break
                except TrainingLocked:
                    if time.monotonic() > given_up:
                        raise
                    time.sleep(2)
            yield


def summarise(study: optuna.Study, model: str) -> TuneReport:
    """What a study has found so far: its trials, the defaults' and the best trial's figures."""
    trials = study.get_trials(deepcopy=False, states=FINISHED)
    attrs = study.user_attrs
    out = TuneReport(model, study.study_name, attrs.get("trials", 0), finished=len(trials),
                     pruned=sum(t.state == TrialState.PRUNED for t in trials),
                     seconds=sum(t.user_attrs.get("seconds", 0.0) for t in trials))  # fmt: skip
    default = next((t for t in trials if t.user_attrs.get("defaults") and t.state == TrialState.COMPLETE), None)
    if default is not None:
        out.default_valid, out.default_test = default.value, default.user_attrs.get("test NDCG@10")
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    if completed:
        best = max(completed, key=lambda t: (t.value, -t.number))
        out.best_trial, out.best_params, out.tuned_valid = best.number, dict(best.params), best.value
        if attrs.get("stored trial") == best.number:
            out.stored, out.tuned_test = True, attrs.get("tuned test NDCG@10")
    return out


def dataset_studies(dataset: Dataset) -> dict[str, optuna.Study]:
    """The studies in the dataset's default storage, by model (none when nothing was tuned)."""
    if not (dataset_root(dataset.name) / "tuning.db").exists():
        return {}
    storage = open_storage(default_storage(dataset))
    studies = {}
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        model = summary.user_attrs.get("model")
        if model in REGISTRY and summary.study_name == study_name(dataset, model):
            studies[model] = optuna.load_study(study_name=summary.study_name, storage=storage)
    return studies


def with_ci(evaluation: Evaluation) -> list[float | None]:
    """NDCG@10 and its 95% CI, as a study's attributes keep it."""
    return [float(x) for x in mean_ci(evaluation.per_user["NDCG@10"].to_numpy())]


def safe_url(url: str) -> str:
    """A storage URL without its password, for records and pages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL was refused when the storage opened; never echo it raw
        return "(storage)"


def tune_models(
    dataset_name: str,
    models: list[str],
    trials: int,
    timeout_s: float | None = None,
    storage: str | None = None,
    study: str | None = None,
    seed: int = 0,
    device: str = "auto",
    store: bool = True,
    grace_s: int = GRACE_S,
    progress: TuneCallback | None = None,
) -> list[TuneReport]:
    """One study per model, each with ``trials`` trials (``timeout_s``: no trial of a model's study
    starts after that many seconds of it; the report says when its budget was not reached). Studies
    are named ``STUDY/MODEL`` (``STUDY`` defaults to the dataset's name) in ``storage`` (default:
    SQLite beside the dataset's models)."""
    if trials < 1:
        raise TuningError(f"--trials must be at least 1, not {trials}")
    if timeout_s is not None and timeout_s <= 0:
        raise TuningError(f"--timeout must be positive, not {timeout_s}")
    unknown = [m for m in models if m not in REGISTRY]
    if unknown:
        raise TuningError(f"unknown model(s) {', '.join(unknown)}; registered: {', '.join(REGISTRY)}")
    dataset = load_dataset(dataset_name)
    context = TrainingContext.build(dataset, temporal_leave_last_out(dataset), device)
    if storage is None:
        dataset_root(dataset.name).mkdir(parents=True, exist_ok=True)
    opened = open_storage(storage or default_storage(dataset), grace_s)
    reports = []
    for model in models:
        if not REGISTRY[model].config_class.SEARCH_SPACE:
            reports.append(TuneReport(model, "", trials, message="nothing to tune: it has no settings"))
            continue
        tuner = Tuner(context, model, trials, opened, study_name(dataset, model, study), seed, progress)
        tuner.run(time.monotonic() + timeout_s if timeout_s else math.inf)
        report = tuner.finish(store)
        if progress:
            progress(TuneEvent(model, report.best_trial or 0, trials, "done", valid_ndcg=report.tuned_valid,
                               params=report.best_params))  # fmt: skip
        if report.finished < trials:
            report.message = "; ".join(filter(None, [f"budget not reached: {report.finished} of {trials} trials "
                                                     "finished before the timeout", report.message]))  # fmt: skip
        reports.append(report)
    return reports
