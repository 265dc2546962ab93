"""Training on a GPU against the CPU, measured on one machine in one run, written to docs/benchmarks.md.

    python bench/gpu.py --dataset PATH/ml-1m-sas.csv --out DIR [--budget-s 400] [--models all]
                        [--full sasrec,...] [--seconds 3] [--note "what this run is for"]
    python bench/gpu.py --report [DIR/gpu.json ...]   # here: runs into docs/gpu/, the report from all

A GPU may be at hand for minutes rather than hours, so the run is sized to ``--budget-s`` and
writes ``gpu.json`` after every step (what finished is kept if the machine is taken back). On the
machine with the GPU:

1. sasrec (when ``--full`` names it), the default retriever and the rankers' source of hard
   negatives, trains in full on the GPU exactly as ``python -m recsys_core train`` trains it (its
   settings for the data, early stopping on validation, test on the one protocol) into a store of
   its own;
2. every torch model's training step is timed three ways, each with its default settings for the
   data, its own batches and the one training loop (``recsys_core.training.loop.fit``): on the GPU
   with bf16 autocast, on the GPU in float32, and on the same machine's CPU with all its cores.
   Warm-up steps first (CUDA context, kernels chosen or compiled, allocator), then as many steps as
   fit in ``--seconds``; an epoch's seconds are the seconds per step times the steps of one epoch,
   counted by drawing one whole epoch of batches (which also times the batches alone: the floor
   under an epoch on any device, since batches are built on the CPU);
3. with the budget left, the other models of ``--full``, then the ones slowest on this project's
   2-core CPU (docs/scale/runs.json), train in full on the GPU when the timed epochs say they fit.

A ranker times its step over sasrec's candidates (its hard negatives, more examples per epoch) when
sasrec is in the run's store, over random negatives otherwise, which the report uses only when no
run has the first. NeuMF times from scratch unless GMF and MLP are in the store. ``--accelerator
cpu`` runs the same steps without a GPU (the "GPU" rows then time the CPU), to check the script
before using a GPU's time.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from bench.scale import stored_results, with_ci  # noqa: E402
from bench.sections import write_section  # noqa: E402
from recsys_core.data import load_dataset, temporal_leave_last_out  # noqa: E402
from recsys_core.data.split import PROTOCOL  # noqa: E402
from recsys_core.models import REGISTRY  # noqa: E402
from recsys_core.store.artifacts import read_record  # noqa: E402
from recsys_core.training.loop import fit  # noqa: E402
from recsys_core.training.run import TrainingContext, prepare_run, train_one  # noqa: E402

MARKER = "<!-- gpu -->"
FIGURES = ROOT / "docs" / "gpu"
# Timing order: the next-item models first (the slowest on a CPU), then the rest of the retrievers,
# then the rankers (they need sasrec's candidates, trained in step 1).
ORDER = ("sasrec", "bert4rec", "gru4rec", "two_tower", "lightgcn", "multvae", "cdae", "bpr", "gmf", "mlp",
         "neumf", "dlrm", "deepfm", "fm", "ffm", "wide_deep", "dcn", "xdeepfm")  # fmt: skip
# Warm-up until both: a model's first steps on a device pay for the CUDA context, the kernels chosen
# on first use and the allocator's growth, which 3 steps alone did not always cover.
WARMUP_STEPS, WARMUP_S = 5, 1.5
VARIANTS = (("gpu_bf16", True), ("gpu_fp32", False), ("cpu", None))


class Budget:
    """Seconds left of the run; a step starts only when what it is expected to take is left."""

    def __init__(self, seconds: float) -> None:
        self.ends = time.perf_counter() + seconds

    def left(self) -> float:
        return self.ends - time.perf_counter()


def environment(accelerator: str) -> dict[str, object]:
    found = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "python": platform.python_version(),
             "torch": torch.__version__, "numpy": np.__version__, "pandas": pd.__version__,
             "accelerator": accelerator}  # fmt: skip
    if accelerator == "cuda":
        props = torch.cuda.get_device_properties(0)
        found |= {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                  "cuda": torch.version.cuda, "gpus": torch.cuda.device_count(),
                  "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}  # fmt: skip
    return found


def epoch_of_batches(context: TrainingContext, model: torch.nn.Module) -> tuple[int, float]:
    """Steps in one epoch, and the seconds its batches take to build with no training at all."""
    started = time.perf_counter()
    steps = sum(1 for _ in model.batches(context.split, np.random.default_rng(0)))
    return steps, time.perf_counter() - started


def step_seconds(context: TrainingContext, model: torch.nn.Module, seconds: float, bf16: bool | None) -> dict:
    """Seconds per training step of ``model`` (a fresh copy of it) through the one training loop: a
    warm-up epoch (``WARMUP_STEPS`` and ``WARMUP_S``), then an epoch of as many steps as fit in ``seconds``."""
    model = copy.deepcopy(model)
    if bf16 is not None:
        model.config.cuda_bf16 = bf16
    drawn = []

    def batches(rng: np.random.Generator):
        batch_iter = model.batches(context.split, rng)
        started = time.perf_counter()
        if not drawn:  # the warm-up epoch
            for batch in batch_iter:
                drawn.append(0)
                yield batch
                if len(drawn) >= WARMUP_STEPS and time.perf_counter() - started >= WARMUP_S:
                    return
            return
        for batch in batch_iter:
            drawn.append(1)
            yield batch
            if time.perf_counter() - started >= seconds:
                return

    cuda = context.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    # A constant validation score: this times steps, not models (and keeps the epoch to these steps).
    result = fit(model, None, context.device, 0, max_epochs=2, batches=batches, validate=lambda _: 0.0)
    timed = sum(drawn)
    found = {"step_s": result.history[1]["train_seconds"] / timed, "steps_timed": timed}
    if cuda:
        found["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return found


def time_model(contexts: dict[str, TrainingContext], name: str, seconds: float) -> dict[str, object]:
    """``name`` built once, with its settings for the data (and a ranker's candidates, drawn on the
    GPU), then timed on each device from the same initial weights."""
    run = prepare_run(contexts["gpu"], name, {}, quick=False, seed=0)
    steps, data_s = epoch_of_batches(contexts["gpu"], run.model)
    row: dict[str, object] = {"steps_per_epoch": steps, "data_s_per_epoch": data_s,
                              "batch_size": run.model.config.batch_size, "notes": run.notes}  # fmt: skip
    for variant, bf16 in VARIANTS:
        context = contexts["cpu" if bf16 is None else "gpu"]
        timed = step_seconds(context, run.model, seconds, bf16)
        row[variant] = {**timed, "epoch_s": timed["step_s"] * steps}
    return row


def full_run(context: TrainingContext, name: str) -> dict[str, object]:
    """``name`` trained in full on the GPU exactly as ``recsys_core train`` trains it; what the store says."""
    report = train_one(context, name, {}, quick=False, seed=0)
    if not report.ok:
        return {"ok": False, "message": report.message}
    record = read_record(context.dataset.name, name)
    test = record["metrics"]["test"]
    epochs = [row for row in record["history"] if "train_seconds" in row]
    bf16 = record["config"]["config"].get("cuda_bf16")
    return {
        "ok": True, "seconds": report.seconds, "precision": "bf16" if bf16 else "fp32",
        "best_epoch": record["info"].get("best_epoch"),
        "epochs_run": len(epochs), "s_per_epoch": sum(r["train_seconds"] for r in epochs) / max(1, len(epochs)),
        "test": {k: [test[k], *test.get(f"{k} CI", [None, None])] for k in ("NDCG@10", "HR@10")},
        "message": report.message,
    }  # fmt: skip


def guarded(step, *args) -> dict[str, object]:
    """``step(*args)``, or what went wrong: a lease is minutes long, so one model failing (on a device
    path the CPU tests cannot reach) is recorded with its traceback and the run goes on."""
    try:
        return step(*args)
    except Exception as error:  # any failure is a finding here, not a reason to stop
        return {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-2000:]}


def default_bf16(name: str) -> bool:
    return bool(getattr(REGISTRY[name].config_class(), "cuda_bf16", False))


def cpu_runs(dataset_label: str) -> dict[str, dict]:
    """The full runs on this project's 2-core CPU (bench/scale.py) on the same dataset."""
    return stored_results().get(dataset_label, {})


def measure(args: argparse.Namespace) -> None:
    budget = Budget(args.budget_s)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # A store of its own: whole runs never replace the lab's models, nor do the lab's stand in as a
    # ranker's retriever.
    os.environ["DEEPREC_ARTIFACTS_DIR"] = str(out / "store")
    names = [n for n in ORDER if args.models == "all" or n in args.models.split(",")]
    dataset = load_dataset(args.dataset)
    split = temporal_leave_last_out(dataset)
    label = args.label or dataset.name
    contexts = {"gpu": TrainingContext.build(dataset, split, args.accelerator),
                "cpu": TrainingContext.build(dataset, split, "cpu")}  # fmt: skip
    # The CPU context set torch to every core; the GPU rows keep the same threads for building batches.
    results: dict[str, object] = {
        "dataset": label, "dataset_name": dataset.name, "users": dataset.n_users, "items": dataset.n_items,
        "interactions": dataset.n_interactions, "protocol": PROTOCOL,
        "started": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "environment": environment(args.accelerator), "budget_s": args.budget_s, "note": args.note,
        "full": {}, "steps": {},
    }  # fmt: skip

    def keep() -> None:
        results["elapsed_s"] = args.budget_s - budget.left()
        (out / "gpu.json").write_text(json.dumps(results, indent=1))

    def log(message: str) -> None:
        print(f"[{args.budget_s - budget.left():6.0f} s] {message}", flush=True)

    keep()
    full = [n for n in args.full.split(",") if n]
    if "sasrec" in full:  # first: the rankers' candidates (their hard negatives), and the paper's model
        results["full"]["sasrec"] = guarded(full_run, contexts["gpu"], "sasrec")
        log(f"sasrec in full: {results['full']['sasrec']}")
        keep()
    for name in names:
        if budget.left() < args.reserve_s:
            log(f"budget: {name} and later not timed")
            break
        results["steps"][name] = guarded(time_model, contexts, name, args.seconds)
        log(f"{name}: {json.dumps(results['steps'][name])[:400]}")
        keep()
    cpu = cpu_runs(args.cpu_runs_label)
    slowest_first = sorted((n for n in names if n in cpu), key=lambda n: -cpu[n]["wall_s"])
    for name in dict.fromkeys([*full, *slowest_first]):  # the ones asked for, then the slowest first
        # Timed as it will train: in the precision its config defaults to.
        timed = results["steps"].get(name, {}).get("gpu_bf16" if default_bf16(name) else "gpu_fp32")
        if name in results["full"] or name not in cpu or not timed:
            continue
        # Its epochs on this project's CPU, each one timed epoch plus validation (about as long again, at most).
        expected = cpu[name]["epochs_run"] * timed["epoch_s"] * 2 + 30
        if expected > budget.left() - 10:
            log(f"{name} in full: expected {expected:.0f} s, {budget.left():.0f} s left; skipped")
            continue
        results["full"][name] = guarded(full_run, contexts["gpu"], name)
        log(f"{name} in full: {results['full'][name]}")
        keep()
    keep()
    log("done")


# The report, written here from a run's gpu.json (kept in docs/gpu/).


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}x" if a and b else "–"


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def cell(text: object) -> str:
    """One line of ``text`` that cannot break a markdown table (an error's first line, say)."""
    lines = str(text).strip().splitlines()
    return lines[0].replace("|", "\\|") if lines else "–"


def step_rows(steps: dict[str, dict]) -> list[str]:
    rows = ["| model | run | batch | steps per epoch | batches alone, s/epoch | GPU fp32, s/epoch | "
            "GPU bf16, s/epoch | CPU, s/epoch | CPU / GPU fp32 | fp32 / bf16 | GPU peak MB (fp32) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, row in steps.items():
        if "error" in row:
            rows.append(f"| {name} | {row['run']} | failed: {cell(row['error'])} |||||||||")
            continue
        bf16, fp32, cpu = row["gpu_bf16"], row["gpu_fp32"], row["cpu"]
        peak = f"{fp32['peak_gpu_mb']:.0f}" if "peak_gpu_mb" in fp32 else "–"
        rows.append(
            f"| {name} | {row['run']} | {row['batch_size']} | {row['steps_per_epoch']} | "
            f"{seconds(row['data_s_per_epoch'])} | {seconds(fp32['epoch_s'])} | {seconds(bf16['epoch_s'])} | "
            f"{seconds(cpu['epoch_s'])} | {ratio(cpu['epoch_s'], fp32['epoch_s'])} | "
            f"{ratio(fp32['epoch_s'], bf16['epoch_s'])} | {peak} |"
        )
    return rows


def full_rows(full: dict[str, dict], cpu: dict[str, dict]) -> list[str]:
    rows = ["| model | run | precision | GPU: minutes | epochs (best) | s/epoch | test NDCG@10 [95% CI] | "
            "2-core CPU: minutes | s/epoch | test NDCG@10 [95% CI] | CPU / GPU time |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, run in full.items():
        if not run.get("ok"):
            failure = cell(run.get("error") or run.get("message"))
            rows.append(f"| {run.get('model', name)} | {run['run']} | failed: {failure} |||||||||")
            continue
        here = cpu.get(run.get("model", name))
        cpu_cells = (f"{here['train_s'] / 60:.1f} | {seconds(here['s_per_epoch'])} | {with_ci(here['test']['NDCG@10'])}"
                     f" | {ratio(here['train_s'], run['seconds'])}" if here else "– | – | – | –")  # fmt: skip
        rows.append(f"| {run.get('model', name)} | {run['run']} | {run['precision']} | {run['seconds'] / 60:.1f} | "
                    f"{run['epochs_run']} ({run['best_epoch']}) | {seconds(run['s_per_epoch'])} | "
                    f"{with_ci(run['test']['NDCG@10'])} | {cpu_cells} |")  # fmt: skip
    return rows


def in_order(rows: dict[str, dict]) -> dict[str, dict]:
    """Rows in the timing order of their models (any model it does not name last), then by run."""

    def key(item: tuple[str, dict]) -> tuple[int, int]:
        model = item[1]["model"]
        return (ORDER.index(model) if model in ORDER else len(ORDER), item[1]["run"])

    return dict(sorted(rows.items(), key=key))


def as_trained(row: dict) -> bool:
    """Whether a timed row is the model as the lab trains it: a ranker timed without its retriever's
    candidates (random negatives only) draws other batches."""
    return not any("no hard negatives" in note for note in row.get("notes", []))


def latest(runs: list[dict], part: str) -> dict[str, dict]:
    """Each model's row of ``part`` from the latest run that has it best: measured, and as the lab
    trains it; a failure only where no run measured the model. Tagged with that run's number."""

    def rank(row: dict) -> tuple[bool, bool]:
        return ("error" not in row, as_trained(row))

    found: dict[str, dict] = {}
    for number, run in enumerate(runs, start=1):
        for name, row in run[part].items():
            if name not in found or rank(row) >= rank(found[name]):
                found[name] = {**row, "run": number, "model": name}
    return in_order(found)


def every(runs: list[dict], part: str) -> dict[str, dict]:
    """Every run's rows of ``part``, keyed "model (run N)", in the order of the models."""
    return in_order({f"{name} (run {number})": {**row, "run": number, "model": name}
                     for number, run in enumerate(runs, start=1) for name, row in run[part].items()})  # fmt: skip


def run_line(number: int, run: dict) -> str:
    env = run["environment"]
    gpu = f"{env.get('gpu')} ({env.get('gpu_memory_gib')} GiB, CUDA {env.get('cuda')})" if "gpu" in env else "no GPU"
    return (f"- run {number}, {run['started']} UTC: {gpu}; {env['machine']}; torch {env['torch']}, "
            f"Python {env['python']}, pandas {env.get('pandas')}; TF32 matrix products "
            f"{'on' if env.get('tf32_matmul') else 'off'}; {run.get('note', '')}".rstrip("; "))  # fmt: skip


def report(runs: list[dict], cpu: dict[str, dict]) -> str:
    latest_run = runs[-1]
    data = f"{latest_run['users']:,} users, {latest_run['items']:,} items, {latest_run['interactions']:,} interactions"
    lines = [
        MARKER,
        "## Training on a GPU against the CPU",
        "",
        f"`python bench/gpu.py` on {latest_run['dataset']} ({data}), on a machine lent for minutes at a time "
        "(runs kept in docs/gpu/):",
        "",
        *(run_line(number, run) for number, run in enumerate(runs, start=1)),
        "",
        "Each model's training step is timed over a few seconds rather than whole runs: default settings "
        "for the data, the model's own batches and the one training loop; warm-up steps first, then as many "
        "steps as fit in the time; an epoch is seconds per step times the steps of one epoch. The CPU "
        "column is the same machine's CPU with all its cores, in the same run. fp32 is the default; bf16 "
        'is autocast (`cuda_bf16 = true`). "Batches alone" is one epoch of batches '
        "built with no training: they are built on the CPU, so no device makes an epoch shorter than that.",
        "",
        *step_rows(latest(runs, "steps")),
        "",
        "Trained in full on the GPU (as `python -m recsys_core train --device cuda` trains them: early "
        f"stopping on validation, test on the one protocol: {latest_run['protocol']}), against the same "
        "models trained in full on this project's 2-core CPU (`bench/scale.py`, docs/scale/runs.json; "
        "another machine, so the ratio is a user's choice between the two, not a speed-up of one chip "
        "over another):",
        "",
        *full_rows(every(runs, "full"), cpu),
        "",
        MARKER,
    ]
    return "\n".join(lines)


def keep_runs(paths: list[str], label: str) -> list[dict]:
    """The given runs copied into docs/gpu/ (one file per run), then every run kept there on the
    dataset ``label``, oldest first."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    for path in paths:
        run = json.loads(Path(path).read_text())
        stamp = run["started"].replace("-", "").replace(" ", "-").replace(":", "")
        (FIGURES / f"run-{stamp}.json").write_text(json.dumps(run, indent=1))
    runs = [json.loads(path.read_text()) for path in sorted(FIGURES.glob("run-*.json"))]
    runs = [run for run in runs if run["dataset"] == label]
    return sorted(runs, key=lambda run: run["started"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", help="the interactions CSV (ml-1m-sas.csv)")
    parser.add_argument("--label", default="ml-1m-sas", help="the dataset's name in the report")
    parser.add_argument("--cpu-runs-label", default="ml-1m-sas", help="its key in docs/scale/runs.json")
    parser.add_argument("--out", default=str(ROOT / "artifacts" / "bench-gpu"))
    parser.add_argument("--models", default="all")
    parser.add_argument("--budget-s", type=float, default=400.0)
    parser.add_argument("--reserve-s", type=float, default=30.0, help="no model is timed with less left")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed steps per model and variant")
    parser.add_argument("--full", default="sasrec", help="models trained in full first (sasrec before the timing)")
    parser.add_argument("--accelerator", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument(
        "--report", nargs="*", help="runs' gpu.json to keep in docs/gpu/; the report from all kept there"
    )
    parser.add_argument("--note", default="", help="what this run is for, kept with it")
    args = parser.parse_args()
    if args.report is not None:
        runs = keep_runs(args.report, args.label)
        write_section(ROOT / "docs" / "benchmarks.md", MARKER, report(runs, cpu_runs(args.cpu_runs_label)))
        return
    if args.accelerator == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA GPU here: --accelerator cpu checks the script without one")
    measure(args)


if __name__ == "__main__":
    main()
