"""Data-parallel training on this machine: 1 and 2 gloo processes under torchrun, written to
docs/benchmarks.md.

    python bench/distributed.py [--models sasrec,two_tower] [--processes 1,2] [--reuse]
    python bench/distributed.py --synthetic [--models sasrec,two_tower] [--processes 1,2] [--reuse]
    python bench/distributed.py --report-only

ml-1m-sas (``../shared/data/ml-1m-sas/``, ``DEEPREC_ML1M_SAS`` to point elsewhere; research use
only, never copied into the project): each model trains in full, its default settings, with 1
process (``python -m recsys_core train``, every core) and with N processes (``torchrun --standalone
--nproc_per_node N -m recsys_core train``, each process with its share of the cores), each into its
own store under ``artifacts/bench-distributed/``. Per run: seconds per epoch without validation
(the median over epochs), epochs, wall time, test NDCG@10 and HR@10 with 95% CIs, and the peak
resident memory of the largest process (``ru_maxrss`` of torchrun and the processes it waited for).
The global batch and learning rate are the same in every run, so N processes take the same steps
as one (tests/test_distributed.py): the test figures should agree within their CIs.

``--synthetic``: the 20M-interaction, 1M-item synthetic dataset (``make_scale_synthetic``, seeded),
built by every process; each trains for ``--epoch-cap-s`` seconds through the library's
data-parallel step (``training/distributed.py``) and reports the global training rate
(interactions per second, all processes together) and its own peak memory; then process 0 ranks
the full catalogue for 1,000 users (the protocol's evaluation, memory bounded by users per batch),
and the time for every user is extrapolated. The parent stops a run whose processes together pass
``--memory-gb``.

Results are kept in docs/distributed/runs.json as they come (our figures only; ``--reuse`` skips
those there).
Measure on a quiet machine: the runs use every core.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import rss_mb  # noqa: E402
from bench.scale import ML1M_SAS, with_ci  # noqa: E402
from bench.sections import write_section  # noqa: E402

MARKER = "<!-- distributed -->"
RESULTS = ROOT / "docs" / "distributed" / "runs.json"
STORE = ROOT / "artifacts" / "bench-distributed"
# interactions, items (DEEPREC_BENCH_SYNTHETIC="200000,20000" for a quick try of the script)
SYNTHETIC = tuple(int(n) for n in os.environ.get("DEEPREC_BENCH_SYNTHETIC", "20000000,1000000").split(","))
EVAL_USERS = 1000


def launch(processes: int, arguments: list[str]) -> list[str]:
    if processes == 1:
        return [sys.executable, *arguments]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *arguments]


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (torchrun's workers)."""
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        found += map(int, children)
        frontier += map(int, children)
    return found


def run(command: list[str], log: Path, memory_mb: float | None = None) -> dict:
    """Run ``command``; its wall time, the peak RSS of its largest process, and the load average."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        stopped, together = None, 0.0
        while True:  # os.wait4, not poll(): poll would reap the process and lose its resource usage
            pid, status, usage = os.wait4(child.pid, os.WNOHANG if memory_mb else 0)
            if pid:
                break
            together = max(together, sum(map(rss_mb, descendants(child.pid))))
            if together > memory_mb and not stopped:
                # torchrun's workers run in sessions of their own: each is killed, not only the group.
                for pid in descendants(child.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                stopped = f"stopped at {together / 1024:.1f} GB resident in all (limit {memory_mb / 1024:.0f} GB)"
            time.sleep(0.5)
    record = {"wall_s": time.perf_counter() - started, "peak_rss_mb": usage.ru_maxrss / 1024,
              "load_before": load_before, "load_after": os.getloadavg()[0],
              "finished": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "torch": __import__("torch").__version__}  # fmt: skip
    if together:
        record["peak_rss_all_mb"] = together
    code = os.waitstatus_to_exitcode(status)
    if stopped or code != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        record["failed"] = stopped or f"exit {code}: {tail[0][-300:]}"
    return record


# --------------------------------------------------------------------------- ml-1m-sas, the lab's own training


def ml1m_run(model: str, processes: int) -> dict:
    store = STORE / f"p{processes}"
    store.mkdir(parents=True, exist_ok=True)
    os.environ["DEEPREC_ARTIFACTS_DIR"] = str(store)
    arguments = ["-m", "recsys_core", "train", "--dataset", str(ML1M_SAS), "--models", model, "--device", "cpu",
                 "--workers", "1", "--no-maps"]  # fmt: skip
    record = run(launch(processes, arguments), store / f"{model}.log")
    record |= {"model": model, "processes": processes, "dataset": "ml-1m-sas"}
    if "failed" in record:
        return record
    return record | stored_run(model, processes)


def stored_run(model: str, processes: int) -> dict:
    """What the run's artifact says: epochs, their time, test figures, how it was trained."""
    (folder,) = (STORE / f"p{processes}").glob(f"ml-1m-sas*/{model}")  # the store names a file's dataset by its hash
    info = json.loads((folder / "info.json").read_text())
    test = json.loads((folder / "metrics.json").read_text())["test"]
    epochs = [row for row in json.loads((folder / "history.json").read_text()) if "train_seconds" in row]
    return {
        "world_size": info.get("world_size"), "backend": info.get("backend"), "threads": info.get("threads"),
        "best_epoch": info.get("best_epoch"), "epochs_run": len(epochs), "train_s": info.get("seconds"),
        "s_per_epoch": statistics.median(r["train_seconds"] for r in epochs),
        "test": {k: [test[k], *test[f"{k} CI"]] for k in ("NDCG@10", "HR@10")},
    }  # fmt: skip


# --------------------------------------------------------------------------- synthetic, one process of a run


def synthetic_process(model_name: str, epoch_cap_s: float, out: Path) -> None:
    """One process of the synthetic run (started by torchrun, or alone): train for the cap, then
    process 0 evaluates; each process writes its own JSON line to ``out``."""
    import numpy as np
    import torch

    from recsys_core.data import temporal_leave_last_out
    from recsys_core.data.features import side_features
    from recsys_core.data.synthetic import make_scale_synthetic
    from recsys_core.models import build_model, data_settings
    from recsys_core.protocols.topk import evaluate_model
    from recsys_core.training.devices import resolve_device, seed_everything
    from recsys_core.training.distributed import SINGLE, data_parallel, join, launched, leave, share
    from recsys_core.training.optimiser import Optimiser

    world = join("cpu") if launched() else SINGLE
    resolve_device("cpu")  # this process's share of the cores
    started = time.perf_counter()
    dataset = make_scale_synthetic(*SYNTHETIC)
    split = temporal_leave_last_out(dataset)
    prepare_s = time.perf_counter() - started
    settings = data_settings(model_name, split)
    rng = seed_everything(0)
    features = side_features(dataset, split.item_popularity)
    model = build_model(model_name, dataset.n_users, dataset.n_items, features=features, **settings)
    step, optimiser = data_parallel(model, world), Optimiser(model, model.config.learning_rate)
    model.train()
    world.barrier()
    started, batches, total = time.perf_counter(), 0, 0
    go_on = 1.0
    for batch in model.batches(split, rng):
        total += 1
        if not go_on:
            continue  # counted, not trained: how much of the epoch was done
        part, weight = share(model, batch, world)
        loss = step(part) * weight
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        batches += 1
        # Process 0's clock decides for all: every process must take the same number of steps.
        go_on = world.decide(float(time.perf_counter() - started < epoch_cap_s))
    train_s = time.perf_counter() - started
    record = {"rank": world.rank, "world_size": world.size, "model": model_name, "prepare_s": prepare_s,
              "train_s": train_s, "batches": batches, "epoch_batches": total, "settings": settings,
              "throughput": batches / max(total, 1) * len(split.train) / train_s,
              "threads": torch.get_num_threads()}  # fmt: skip
    if world.is_main:
        users = np.random.default_rng(0).choice(split.evaluated_users("test"), EVAL_USERS, replace=False)
        started = time.perf_counter()
        evaluation = evaluate_model(model, split, "test", users=users)
        eval_s = time.perf_counter() - started
        record |= {"eval_users": EVAL_USERS, "eval_s": eval_s, "eval_all_s": eval_s / EVAL_USERS * dataset.n_users,
                   "sample_ndcg": evaluation.ndcg_at_10}  # fmt: skip
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with out.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    world.barrier()
    leave(world)


def synthetic_run(model: str, processes: int, epoch_cap_s: float, memory_gb: float) -> dict:
    STORE.mkdir(parents=True, exist_ok=True)
    out = STORE / f"synthetic-{model}-p{processes}.jsonl"
    out.unlink(missing_ok=True)
    arguments = [str(Path(__file__).resolve()), "--synthetic-process", model, "--epoch-cap-s", str(epoch_cap_s),
                 "--out", str(out)]  # fmt: skip
    record = run(launch(processes, arguments), STORE / f"synthetic-{model}-p{processes}.log", memory_gb * 1024)
    record |= {"model": model, "processes": processes, "dataset": "synthetic 20M / 1M items"}
    if "failed" in record or not out.exists():
        return record
    ranks = sorted((json.loads(line) for line in out.read_text().splitlines()), key=lambda r: r["rank"])
    return record | {"ranks": ranks, "throughput": ranks[0]["throughput"], "settings": ranks[0]["settings"],
                     "eval_s": ranks[0].get("eval_s"), "eval_all_s": ranks[0].get("eval_all_s"),
                     "peak_rss_per_process_mb": [r["peak_rss_mb"] for r in ranks]}  # fmt: skip


# --------------------------------------------------------------------------- records and the report


def stored() -> dict[str, dict[str, dict]]:
    """{"ml-1m-sas" or "synthetic": {"MODEL-pN": record}}: every run kept so far."""
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def keep(kind: str, run: str, record: dict) -> None:
    results = stored()
    results.setdefault(kind, {})[run] = record
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    temporary = RESULTS.with_suffix(".tmp")
    temporary.write_text(json.dumps(results, indent=1))
    temporary.replace(RESULTS)  # atomic: an interrupted write never loses the runs kept before


def load(kind: str) -> list[dict]:
    return [record for _, record in sorted(stored().get(kind, {}).items())]


def loads(record: dict) -> str:
    """The 1-minute load average before and after a run."""
    return " / ".join("-" if v is None else f"{v:.1f}" for v in (record["load_before"], record["load_after"]))


def minutes(seconds: float | None) -> str:
    return "not recorded" if seconds is None else f"{seconds / 60:.1f} min"


def gigabytes(megabytes: float | None) -> str:
    return "not recorded" if megabytes is None else f"{megabytes / 1024:.1f} GB"


def ml1m_rows(records: list[dict]) -> list[str]:
    lines = ["| model | processes | threads each | s / epoch (median) | epochs (best) | wall | test NDCG@10 [95% CI] | "
             "test HR@10 | peak RSS, largest process | load before / after |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    by_model: dict[str, dict[int, dict]] = {}
    for r in records:
        by_model.setdefault(r["model"], {})[r["processes"]] = r
    notes = []
    for model, runs in sorted(by_model.items()):
        for processes, r in sorted(runs.items()):
            if "failed" in r:
                lines.append(f"| {model} | {processes} | | | | | failed: {r['failed']} | | | |")
                continue
            lines.append(
                f"| {model} | {processes} | {r['threads']} | {r['s_per_epoch']:.1f} | "
                f"{r['epochs_run']} ({r['best_epoch']}) | "
                f"{minutes(r.get('wall_s'))} | {with_ci(r['test']['NDCG@10'])} | {with_ci(r['test']['HR@10'])} | "
                f"{gigabytes(r.get('peak_rss_mb'))} | {loads(r)} |"
            )
        one = runs.get(1)
        for processes, r in sorted(runs.items()):
            if processes == 1 or not one or "failed" in r or "failed" in one:
                continue
            low, high = one["test"]["NDCG@10"][1:]
            inside = low <= r["test"]["NDCG@10"][0] <= high
            ratio = r["s_per_epoch"] / one["s_per_epoch"]
            notes.append(
                f"- {model}: {processes} processes against 1, seconds per epoch x{ratio:.2f}; "
                f"test NDCG@10 {r['test']['NDCG@10'][0]:.4f} against {one['test']['NDCG@10'][0]:.4f}, "
                f"{'inside' if inside else 'outside'} the 1-process CI [{low:.3f}, {high:.3f}]."
            )
    return [*lines, "", *notes]


def synthetic_rows(records: list[dict]) -> list[str]:
    lines = ["| model | processes | settings from the data | training rate, all processes | peak RSS per process "
             "| 1,000 users ranked | every user, at that rate | load before / after |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in sorted(records, key=lambda r: (r["model"], r["processes"])):
        if "failed" in r:
            lines.append(f"| {r['model']} | {r['processes']} | | failed: {r['failed']} | | | | |")
            continue
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items()) or "defaults"
        memory = " / ".join(f"{m / 1024:.1f} GB" for m in r["peak_rss_per_process_mb"])
        lines.append(
            f"| {r['model']} | {r['processes']} | {settings} | {r['throughput']:,.0f} interactions/s | {memory} | "
            f"{r['eval_s']:.1f} s | {r['eval_all_s'] / 60:.0f} min | {loads(r)} |"
        )
    return lines


def report() -> str:
    ml1m, synthetic = load("ml-1m-sas"), load("synthetic")
    when = sorted({r["finished"] for r in ml1m + synthetic})
    machine = next((f"{r['machine']}, torch {r['torch']}" for r in ml1m + synthetic), "not run yet")
    lines = [
        MARKER,
        "## More than one process: DistributedDataParallel under torchrun",
        "",
        f"`python bench/distributed.py` and `--synthetic`; {machine}, gloo on the CPU; runs finished "
        f"{when[0] if when else '-'} to {when[-1] if when else '-'}. No GPU was lent to these sessions, so there are "
        "no NCCL figures yet. On one 2-core machine two processes share the same two cores that one process uses "
        "with two threads: the point here is that the distributed path is correct and what it costs, not a speed-up, "
        "which needs more machines or GPUs.",
        "",
        "### ml-1m-sas, the lab's own training (full profile; protocol: temporal leave-last-out, full catalogue, "
        "seen items excluded, test)",
        "",
        *(ml1m_rows(ml1m) if ml1m else ["Not run yet."]),
        "",
        "### Synthetic 20M interactions, 1M items",
        "",
        f"Each process builds the data itself (data is replicated, as parameters are); training is cut after "
        f"`--epoch-cap-s` seconds; ranking covers {EVAL_USERS:,} sampled users against the whole catalogue, in "
        "batches bounded by `users_per_batch` (16 users at a million items).",
        "",
        *(synthetic_rows(synthetic) if synthetic else ["Not run yet."]),
        MARKER,
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="sasrec,two_tower")
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--epoch-cap-s", type=float, default=120.0)
    parser.add_argument("--memory-gb", type=float, default=21.0)
    parser.add_argument("--synthetic-process", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.synthetic_process:
        synthetic_process(args.synthetic_process, args.epoch_cap_s, Path(args.out))
        return
    if not args.report_only:
        for model in args.models.split(","):
            for processes in map(int, args.processes.split(",")):
                kind, run = "synthetic" if args.synthetic else "ml-1m-sas", f"{model}-p{processes}"
                if args.reuse and run in stored().get(kind, {}):
                    continue
                print(f"{model}, {processes} process(es){' (synthetic)' if args.synthetic else ''}...", flush=True)
                if args.synthetic:
                    record = synthetic_run(model, processes, args.epoch_cap_s, args.memory_gb)
                else:
                    record = ml1m_run(model, processes)
                keep(kind, run, record)
                print(json.dumps({k: v for k, v in record.items() if k != "ranks"})[:600], flush=True)
    write_section(ROOT / "docs" / "benchmarks.md", MARKER, report())


if __name__ == "__main__":
    main()
