"""Models trained at once, each in its own process.

Each worker is a fresh ("spawn") process: forking a parent whose torch has started its thread
pools can deadlock the child. A worker loads the dataset once and reports progress to the parent
through a queue; the parent holds the training lock, so the workers need none of their own.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import types
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from queue import Empty

from recsys_core.data import load_dataset, temporal_leave_last_out
from recsys_core.training.devices import cpu_threads
from recsys_core.training.loop import ProgressCallback
from recsys_core.training.run import TrainingContext, TrainReport, add_notes, draw_stored_maps, train_one

_worker: dict[str, object] = {}


def _start_worker(threads: int, queue: multiprocessing.Queue, parent: int) -> None:
    os.environ["DEEPREC_NUM_THREADS"] = str(threads)  # read by cpu_threads, for resolve_device
    _worker["queue"] = queue
    _die_with(parent)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with(parent: int) -> None:
    """On Linux the kernel kills this worker when the training process dies (killed, out of
    memory), so no orphan stores a model after the job that held the dataset's lock is gone."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # elsewhere an orphan finishes its model (written atomically) and then exits
    if os.getppid() != parent:  # the parent died before the call above
        os._exit(1)


def _started() -> None:
    """Nothing: a first task that makes the pool start a worker."""


@contextlib.contextmanager
def _script_hidden_from_workers() -> Iterator[None]:
    """A spawned process first runs its parent's ``__main__`` again, when that is a script (a
    module run with ``python -m`` is left alone). Under Streamlit or its AppTest the script is a
    page, which must not run in a worker; the workers need nothing from it, so it is hidden from
    them while they start."""
    main = sys.modules.get("__main__")
    script = main is not None and getattr(getattr(main, "__spec__", None), "name", None) is None
    if script:
        sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if script:
            sys.modules["__main__"] = main


def _context(dataset_name: str, device: str = "cpu") -> TrainingContext:
    """The worker's dataset, split and features, built once."""
    context = _worker.get(dataset_name)
    if context is None:
        dataset = load_dataset(dataset_name)
        context = _worker[dataset_name] = TrainingContext.build(dataset, temporal_leave_last_out(dataset), device)
    return context


def _draw_in_worker(dataset_name: str, name: str) -> dict[str, str]:
    context = _context(dataset_name)
    return draw_stored_maps(context.dataset, context.split, name)


def _train_in_worker(dataset_name: str, name: str, settings: dict, device: str, quick: bool, seed: int) -> TrainReport:
    return train_one(_context(dataset_name, device), name, settings, quick, seed, _worker["queue"].put)


@dataclass
class RunPlan:
    """What a run trains and how: the models in training order, the stored models each waits for,
    and each model's settings."""

    dataset: str
    order: list[str]
    needs: dict[str, set[str]]
    settings: dict[str, dict]
    device: str
    quick: bool
    seed: int


def train_in_workers(
    plan: RunPlan, workers: int, maps: bool, progress: ProgressCallback | None
) -> dict[str, TrainReport]:
    """Train the models in ``workers`` processes, in the plan's order, each as soon as the models it
    needs are stored; then, with ``maps``, draw their maps in the same processes."""
    threads = max(1, cpu_threads() // workers)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()

    def forward_progress() -> None:
        while True:
            try:
                event = queue.get_nowait()
            except Empty:
                return
            if progress:
                progress(event)

    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(threads, queue, os.getpid())) as pool:  # fmt: skip
        with _script_hidden_from_workers():
            # The pool spawns a process per task while none is idle: one task each starts them all now.
            wait([pool.submit(_started) for _ in range(workers)])
        reports = _train_all(pool, plan, workers, forward_progress)
        if maps:
            _draw_all(pool, plan, reports)
    forward_progress()
    return reports


def _train_all(
    pool: ProcessPoolExecutor, plan: RunPlan, workers: int, forward_progress: Callable[[], None]
) -> dict[str, TrainReport]:
    pending = list(plan.order)
    running: dict[Future, str] = {}
    reports: dict[str, TrainReport] = {}
    while pending or running:
        for name in list(pending):
            if len(running) < workers and not plan.needs[name] & ({*pending, *running.values()}):
                pending.remove(name)
                args = (plan.dataset, name, plan.settings[name], plan.device, plan.quick, plan.seed)
                running[pool.submit(_train_in_worker, *args)] = name
        finished, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
        forward_progress()
        for future in finished:
            name = running.pop(future)
            try:
                reports[name] = future.result()
            except Exception as error:  # a worker that died (killed, out of memory), or a bug
                reports[name] = TrainReport(name, False, f"worker failed: {type(error).__name__}: {error}")
    return reports


def _draw_all(pool: ProcessPoolExecutor, plan: RunPlan, reports: dict[str, TrainReport]) -> None:
    drawing = {name: pool.submit(_draw_in_worker, plan.dataset, name) for name in plan.order if reports[name].ok}
    for name, future in drawing.items():
        try:
            add_notes(reports[name], future.result())
        except Exception as error:  # as above: the maps are extras, the models are stored
            add_notes(reports[name], {"maps": f"not drawn (worker failed: {type(error).__name__}: {error})"})
