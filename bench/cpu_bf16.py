"""bf16 autocast against float32 for the sequential models' training step on this CPU, at the
shapes of MovieLens-100K and of MovieLens-1M, written to docs/benchmarks.md.

    python bench/cpu_bf16.py [--repeats 6]

One training step (forward, full-softmax loss, backward, Adam) of a batch of 128 windows, with the
history length the data gives each dataset (``history_length``: 50 and 200) and its catalogue size,
timed warm with and without ``torch.autocast("cpu", dtype=torch.bfloat16)``. The ratio decides the
default of ``SequentialConfig.cpu_bf16``. Random item ids: the cost does not depend on them.
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

from bench.sections import write_section  # noqa: E402
from recsys_core.models import build_model  # noqa: E402
from recsys_core.training.devices import cpu_has_bf16  # noqa: E402

MARKER = "<!-- cpu-bf16 -->"
SHAPES = {"ml-100k": (1682, 50), "ml-1m-sas": (3416, 200)}  # catalogue, history length
BATCH = 128


def step_seconds(model_name: str, n_items: int, length: int, bf16: bool, repeats: int, **overrides: object) -> float:
    """Median seconds of one warm training step of a batch of full-length random windows."""
    torch.manual_seed(0)
    model = build_model(model_name, 6040, n_items, max_len=length, **overrides)
    rng = np.random.default_rng(0)
    sequences = [rng.integers(1, n_items + 1, length + 1) for _ in range(BATCH)]
    split = type("Sequences", (), {"train_sequences": sequences})()  # all batches() reads
    batch = next(iter(model.batches(split, rng)))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for repeat in range(repeats + 2):  # two warm-up steps
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss(batch)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if repeat >= 2:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def step_arguments(description: str) -> argparse.Namespace:
    """The command line of the training-step benches: how many warm repeats, where to write."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    return parser.parse_args()


def main() -> None:
    args = step_arguments(__doc__)
    load = os.getloadavg()[0]
    lines = [
        MARKER, "## bf16 autocast on this CPU: the sequential models' training step", "",
        f"`python bench/cpu_bf16.py`: {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch "
        f"threads, CPU with native bf16: {cpu_has_bf16()}, torch {torch.__version__}, load average {load:.1f}. "
        f"Median of {args.repeats} warm training steps (batch of {BATCH} windows, full softmax).", "",
        "| shape (catalogue, history) | model | bf16 step s | float32 step s | float32 time / bf16 time |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    faster = []
    for shape, (n_items, length) in SHAPES.items():
        for name in ("gru4rec", "sasrec", "bert4rec"):
            bf16 = step_seconds(name, n_items, length, True, args.repeats)
            fp32 = step_seconds(name, n_items, length, False, args.repeats)
            lines.append(f"| {shape} ({n_items}, {length}) | {name} | {bf16:.3f} | {fp32:.3f} | {fp32 / bf16:.2f} |")
            print(lines[-1], flush=True)
            if fp32 / bf16 > 1:
                faster.append(f"{name} at the {shape} shape ({fp32 / bf16:.2f}x)")
    lines += ["", "Below 1, float32 is the faster. bf16 is faster for: " + (", ".join(faster) or "none") + ".", "",
              MARKER]  # fmt: skip
    write_section(Path(args.out), MARKER, "\n".join(lines))


if __name__ == "__main__":
    main()
