"""What the optimiser step of the sparse embedding tables costs, written to docs/benchmarks.md.

    python bench/optimiser.py [--repeats 5] [--steps 150]

BPR and GMF build their user and item tables sparse, so a step's gradient holds only the rows its
batch used (recsys_core/training/optimiser.py). Per model and dataset (ml-100k, and ml-1m-sas read
from ../shared as bench/scale.py reads it), on the model's own training batches of its first epoch:

- the forward and backward pass;
- the optimiser step with ``torch.optim.SparseAdam`` and with the project's ``LazyAdam`` (the same
  update, written with row gathers and scatters), each from the same starting weights;
- the distinct table rows a step touches, the work a lazy update cannot avoid.

Median over ``--repeats`` runs of ``--steps`` steps each (the first 10 steps of a run are warm-up).
The ratio ml-1m-sas / ml-100k of a step's seconds is what bench/scale.py's cost bar compares.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scale import DATASETS  # noqa: E402
from bench.sections import write_section  # noqa: E402
from recsys_core.data import load_dataset, temporal_leave_last_out  # noqa: E402
from recsys_core.models import build_model  # noqa: E402
from recsys_core.training import optimiser as optimisers  # noqa: E402

MARKER = "<!-- optimiser -->"
MODELS = ("bpr", "gmf")
WARM_UP = 10


def build_optimiser(model: torch.nn.Module, kind: str) -> optimisers.Optimiser:
    """The training loop's optimiser, its sparse part swapped for torch's SparseAdam when asked."""
    optimiser = optimisers.Optimiser(model, model.config.learning_rate)
    if kind == "SparseAdam":
        sparse = [part for part in optimiser.parts if isinstance(part, optimisers.LazyAdam)]
        assert len(sparse) == 1, "the model trains no sparse table"
        index = optimiser.parts.index(sparse[0])
        tables = sparse[0].param_groups[0]["params"]
        optimiser.parts[index] = torch.optim.SparseAdam(tables, lr=model.config.learning_rate)
    return optimiser


def one_run(name: str, split, kind: str, steps: int) -> dict[str, float]:
    """Mean seconds per step of the forward and backward pass and of the optimiser step."""
    torch.manual_seed(0)
    model = build_model(name, split.n_users, split.n_items)
    optimiser = build_optimiser(model, kind)
    passes, updates, rows = [], [], []
    for step, batch in enumerate(model.batches(split, np.random.default_rng(0))):
        if step == steps + WARM_UP:
            break
        started = time.perf_counter()
        optimiser.zero_grad()
        model.loss(batch).backward()
        backward_done = time.perf_counter()
        optimiser.step()
        if step >= WARM_UP:
            passes.append(backward_done - started)
            updates.append(time.perf_counter() - backward_done)
            rows.append(sum(len(p.grad.coalesce().indices()[0]) for p in model.parameters() if p.grad is not None
                            and p.grad.is_sparse))  # fmt: skip
    return {"pass": statistics.mean(passes), "step": statistics.mean(updates), "rows": statistics.mean(rows)}


def measure(repeats: int, steps: int) -> dict[tuple[str, str, str], dict[str, float]]:
    results = {}
    for label, source in DATASETS.items():
        split = temporal_leave_last_out(load_dataset(source))
        for name in MODELS:
            for kind in ("SparseAdam", "LazyAdam"):
                runs = [one_run(name, split, kind, steps) for _ in range(repeats)]
                results[label, name, kind] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                print(label, name, kind, {k: round(v, 5) for k, v in results[label, name, kind].items()}, flush=True)
    return results


def report(results: dict, repeats: int, steps: int, load: float) -> str:
    lines = [
        MARKER,
        "## The sparse tables' optimiser step: SparseAdam against LazyAdam",
        "",
        f"`python bench/optimiser.py`: {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch "
        f"threads, torch {torch.__version__}, load average {load:.1f} at the start. Median of {repeats} runs of "
        f"{steps} training steps of each model's first epoch (default settings, seed 0), after {WARM_UP} warm-up "
        "steps; milliseconds per step.",
        "",
        "| model | dataset | rows touched | forward + backward | SparseAdam step | LazyAdam step | step ratio "
        "| whole step, SparseAdam | whole step, LazyAdam |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in MODELS:
        for label in DATASETS:
            torch_, ours = results[label, name, "SparseAdam"], results[label, name, "LazyAdam"]
            lines.append(
                f"| {name} | {label} | {ours['rows']:.0f} | {1000 * ours['pass']:.2f} | {1000 * torch_['step']:.2f} | "
                f"{1000 * ours['step']:.2f} | {torch_['step'] / ours['step']:.2f} | "
                f"{1000 * (torch_['pass'] + torch_['step']):.2f} | {1000 * (ours['pass'] + ours['step']):.2f} |"
            )
    lines += ["", "Growth from ml-100k to ml-1m-sas, per step (the batch is the same size on both):", ""]
    small, large = DATASETS
    for name in MODELS:
        growth = {
            kind: sum(results[large, name, kind][k] for k in ("pass", "step"))
            / sum(results[small, name, kind][k] for k in ("pass", "step"))
            for kind in ("SparseAdam", "LazyAdam")
        }
        rows = results[large, name, "LazyAdam"]["rows"] / results[small, name, "LazyAdam"]["rows"]
        lines.append(f"- {name}: rows touched {rows:.2f}x; whole step {growth['SparseAdam']:.2f}x with SparseAdam, "
                     f"{growth['LazyAdam']:.2f}x with LazyAdam.")  # fmt: skip
    lines += ["", "Both optimisers make the same update to float32 rounding (`tests/test_optimiser.py`).", "", MARKER]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    load = os.getloadavg()[0]
    section = report(measure(args.repeats, args.steps), args.repeats, args.steps, load)
    write_section(Path(args.out), MARKER, section)
    print(section)


if __name__ == "__main__":
    main()
