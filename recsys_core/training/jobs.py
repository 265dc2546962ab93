"""Background jobs: ``python -m recsys_core train`` (or ``tune``) as a detached process per dataset.

A job runs in its own session (process group), so a browser refresh, a closed tab or a second
viewer neither kills nor duplicates it; every viewer reads the same status from the files it
leaves under ``artifacts/<dataset>/.job/``:

- ``job.json``: what was started (models, profile, device), the pid, when;
- ``progress.jsonl``: one JSON object per line, written by the CLI (``--progress-jsonl``):
  ``start``, ``progress`` (a :class:`recsys_core.training.loop.Progress`) or, for a tuning job,
  ``tune`` (a :class:`recsys_core.training.tuning.TuneEvent`), ``finished`` (with a report per
  model), or ``cancelled``;
- ``output.log``: the CLI's own output, for when something goes wrong.

The dataset's training lock (:func:`recsys_core.store.artifacts.training_lock`) is what keeps two
trainings apart; :func:`start_job` refuses early, with the holder named, when it is taken.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from recsys_core.paths import PROJECT_ROOT
from recsys_core.store.artifacts import TrainingLocked, dataset_root, json_default
from recsys_core.training.loop import EPOCH, STEP, STORED, TRAINED

JOB_DIR = ".job"
STATES = ("none", "running", "finished", "failed", "cancelled")

# Popen handles of the jobs this process started: polling them reaps finished children, which
# would otherwise linger as zombies that still look alive to a signal-0 probe.
_CHILDREN: dict[int, subprocess.Popen] = {}


class ProgressJournal:
    """Appends one JSON object per line and flushes it at once, so readers see live progress."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: dict) -> None:
        line = json.dumps({"time": time.time(), **event}, default=json_default)
        with open(self.path, "a") as handle:
            handle.write(line + "\n")
            handle.flush()


@dataclass
class JobStatus:
    """What a job is doing, read from its files and its process."""

    dataset: str
    state: str = "none"  # one of STATES
    kind: str = "train"  # or "tune": a study per model
    models: list[str] = field(default_factory=list)
    pid: int | None = None
    started_at: float | None = None
    quick: bool = True
    device: str = "auto"
    done: list[str] = field(default_factory=list)  # models trained and stored so far (their "stored" events)
    failed: dict[str, str] = field(default_factory=dict)  # model -> why
    # The models in training now, each with (epoch, epochs): several when a job trains models in
    # parallel processes (``train --workers``); for a tuning job, (trials finished, the budget).
    training: dict[str, tuple[int, int]] = field(default_factory=dict)
    trials_seen: list[dict] = field(default_factory=list)  # a tuning job's finished trials, as they come
    message: str = ""
    epochs_seen: list[dict] = field(default_factory=list)  # per-epoch progress events, for live curves
    log_tail: str = ""

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def current(self) -> str | None:
        """The model in training (the first, when several are), or None."""
        return next(iter(self.training), None)

    def describe_training(self) -> str:
        """``sasrec (epoch 3/20), fm (epoch 1/3)``, or ``sasrec (trial 4/20)``: what is in training now."""
        unit = "trial" if self.kind == "tune" else "epoch"
        return ", ".join(f"{model} ({unit} {done}/{total})" for model, (done, total) in self.training.items())

    @property
    def fraction(self) -> float:
        """Share of the job done, counting the epochs of the models in training."""
        if not self.models:
            return 0.0
        if self.state == "finished":
            return 1.0
        partial = sum(epoch / epochs for epoch, epochs in self.training.values() if epochs)
        return min((len(self.done) + len(self.failed) + partial) / len(self.models), 1.0)


def job_dir(dataset: str, root: Path | None = None) -> Path:
    return dataset_root(dataset, root) / JOB_DIR


def start_job(
    dataset: str,
    models: list[str],
    quick: bool = True,
    device: str = "auto",
    seed: int = 0,
    root: Path | None = None,
    maps: bool = False,
    overrides: dict[str, dict] | None = None,
    reference: str | None = None,
    processes: int = 1,
) -> JobStatus:
    """Start training ``models`` on ``dataset`` (its name) in the background and return its first
    status; ``reference`` is what loads it again when that is not its name (a CSV file's path).
    With ``processes`` > 1 the job is a data-parallel run of that many processes under torchrun
    (one per GPU on a machine with several).

    Raises :class:`TrainingLocked` when a job or any other training holds the dataset's lock.
    """
    if not models:
        raise ValueError("choose at least one model to train")
    if processes < 1:
        raise ValueError(f"processes must be at least 1, not {processes}")
    arguments = ["train", "--dataset", reference or dataset, "--models", ",".join(models), "--device", device,
                 "--seed", str(seed)]  # fmt: skip
    if quick:
        arguments.append("--quick")
    # Maps are drawn after every model has landed, so a view's first map is a read, not a fit.
    arguments.append("--maps" if maps else "--no-maps")
    if overrides:
        arguments += ["--overrides", json.dumps(overrides, default=json_default)]
    record = {"kind": "train", "models": models, "quick": quick, "device": device, "overrides": overrides or {},
              "processes": processes}  # fmt: skip
    return _launch(dataset, arguments, record, root, processes)


def start_tune_job(
    dataset: str,
    models: list[str],
    trials: int,
    timeout_s: float | None = None,
    device: str = "auto",
    seed: int = 0,
    root: Path | None = None,
    reference: str | None = None,
) -> JobStatus:
    """Start ``python -m recsys_core tune`` on ``models`` in the background: a study per model with
    ``trials`` trials each, in the dataset's default study storage, the best of each stored.
    One job per dataset, training or tuning: both want every core."""
    if not models:
        raise ValueError("choose at least one model to tune")
    if trials < 1:
        raise ValueError(f"trials must be at least 1, not {trials}")
    arguments = ["tune", "--dataset", reference or dataset, "--models", ",".join(models), "--trials", str(trials),
                 "--device", device, "--seed", str(seed)]  # fmt: skip
    if timeout_s:
        arguments += ["--timeout", str(timeout_s)]
    record = {"kind": "tune", "models": models, "trials": trials, "timeout_s": timeout_s, "device": device}
    return _launch(dataset, arguments, record, root)


def _launch(dataset: str, arguments: list[str], record: dict, root: Path | None, processes: int = 1) -> JobStatus:
    """The CLI with ``arguments`` as the dataset's detached job, unless one is running already."""
    current = job_status(dataset, root)
    if current.running:
        raise TrainingLocked(f"a {current.kind} job on {dataset} is already running (pid {current.pid}); wait or "
                             "cancel it")  # fmt: skip
    holder = lock_holder(dataset, root)
    if holder:
        raise TrainingLocked(f"a training on {dataset} is already running ({holder}); wait for it to finish")
    folder = job_dir(dataset, root)
    folder.mkdir(parents=True, exist_ok=True)
    journal = folder / "progress.jsonl"
    journal.write_text("")
    # torchrun's launcher (torch.distributed.run) starts the processes of a data-parallel job; the
    # job's process group holds all of them, so cancelling stops every one.
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes > 1 else []
    command = [sys.executable, *launcher, "-m", "recsys_core", *arguments, "--progress-jsonl", str(journal)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    if root is not None:
        env["DEEPREC_ARTIFACTS_DIR"] = str(root)
    with open(folder / "output.log", "w") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    _CHILDREN[process.pid] = process
    record = {**record, "pid": process.pid, "started_at": time.time(), "command": command}
    tmp = folder / ".job.json.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, folder / "job.json")
    return job_status(dataset, root)


def job_status(dataset: str, root: Path | None = None) -> JobStatus:
    """The latest job's status on ``dataset`` (state ``none`` when there never was one)."""
    folder = job_dir(dataset, root)
    status = JobStatus(dataset)
    try:
        record = json.loads((folder / "job.json").read_text())
    except (OSError, json.JSONDecodeError):
        return status
    status.kind = record.get("kind", "train")
    status.models = list(record.get("models", []))
    status.pid = record.get("pid")
    status.started_at = record.get("started_at")
    status.quick = bool(record.get("quick", True))
    status.device = record.get("device", "auto")
    events = read_events(folder / "progress.jsonl")
    finished = cancelled = None
    for event in events:
        kind = event.get("event")
        if kind == "progress":
            _apply_progress(status, event)
        elif kind == "tune":
            _apply_trial(status, event)
        elif kind == "finished":
            finished = event
        elif kind == "cancelled":
            cancelled = event
    if finished is not None:
        for report in finished.get("reports", []):
            if not report.get("ok"):
                status.failed[report["model"]] = report.get("message", "")
        status.training.clear()
        status.state = "finished" if finished.get("ok") else "failed"
        status.message = finished.get("message") or "; ".join(f"{m}: {why}" for m, why in status.failed.items())
    elif _alive(status.pid):
        status.state = "running"
    elif cancelled is not None:
        status.state, status.message = "cancelled", "cancelled"
        status.training.clear()
    else:
        status.state = "failed"
        status.training.clear()
        status.message = "the training process ended without finishing (killed, or out of memory)"
    if status.state == "failed":
        status.log_tail = _tail(folder / "output.log")
    return status


def cancel_job(dataset: str, root: Path | None = None, grace_s: float = 5.0) -> JobStatus:
    """Stop a running job (its whole process group). Models stored before it stop stay intact:
    every artifact is written atomically."""
    status = job_status(dataset, root)
    if not status.running or status.pid is None:
        return status
    journal = job_dir(dataset, root) / "progress.jsonl"
    # A data-parallel job's processes, as its first line names them: torchrun starts each in a
    # session of its own, so a SIGKILL to the launcher's group would leave them running.
    trainers = next((e.get("pids", []) for e in read_events(journal) if e.get("event") == "start"), [])
    ProgressJournal(journal).write({"event": "cancelled"})
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(status.pid, sig)
        deadline = time.monotonic() + grace_s
        while _alive(status.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _alive(status.pid):
            break
    for pid in trainers if trainers != [status.pid] else []:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return job_status(dataset, root)


def read_events(path: Path) -> list[dict]:
    """Every complete JSON line of a progress file; a half-written last line is skipped."""
    try:
        text = path.read_text()
    except OSError:
        return []
    events = []
    for line in text.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(line)
            if isinstance(value, dict):
                events.append(value)
    return events


def lock_holder(dataset: str, root: Path | None = None) -> str | None:
    """Who holds the dataset's training lock (e.g. ``"pid 123"``), or None when it is free."""
    path = dataset_root(dataset, root) / ".train.lock"
    if not path.exists():
        return None
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def _apply_progress(status: JobStatus, event: dict) -> None:
    model, kind = event.get("model"), progress_kind(event)
    if kind == STORED:
        if model not in status.done:
            status.done.append(model)
        status.training.pop(model, None)
        return
    if kind == TRAINED:
        return  # trained: it is evaluated and stored next, and stays "in training" until then
    status.training[model] = (int(event.get("epoch", 0)), int(event.get("epochs", 0)))
    if kind == EPOCH:
        status.epochs_seen.append({k: event.get(k) for k in ("model", "epoch", "loss", "valid_ndcg", "elapsed_s")})


def _apply_trial(status: JobStatus, event: dict) -> None:
    """A tuning job's event: a trial finished, or a model's study ended with its best stored."""
    model = event.get("model")
    if event.get("kind") == "done":
        if model not in status.done:
            status.done.append(model)
        status.training.pop(model, None)
    elif event.get("kind") == "trial":
        status.trials_seen.append({k: event.get(k) for k in ("model", "trial", "state", "valid_ndcg", "params")})
        finished = sum(t["model"] == model and t["state"] in ("COMPLETE", "PRUNED") for t in status.trials_seen)
        status.training[model] = (finished, int(event.get("trials", 0)))
    else:
        status.training.setdefault(model, (0, int(event.get("trials", 0))))


def progress_kind(event: dict) -> str:
    """The kind of a journal's progress event; a journal written before events carried their kind
    (a job started by an earlier version of the lab) said it with flags and a step of 0."""
    if "kind" in event:
        return str(event["kind"])
    if event.get("stored"):
        return STORED
    if event.get("done"):
        return TRAINED
    return EPOCH if event.get("step") == 0 else STEP


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    # A zombie has finished; a reused pid runs something else.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z" and b"recsys_core" in cmdline


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""

