"""What a sequential model's training step costs on this CPU, and the two choices that cut it at
MovieLens-1M's shapes, written to docs/benchmarks.md.

    python bench/sequential_step.py [--repeats 6]

1. The full-softmax loss alone (forward and backward, the (N, D) hidden states and the item table
   given): PyTorch's ``F.cross_entropy`` over the (N, n_items) logits against
   ``FullSoftmaxCrossEntropy``, which computes the same loss and gradients a block of rows at a time.
2. A whole SASRec step and a whole BERT4Rec step (forward, loss, backward, Adam; batch of 128 full
   windows) with dropout on the attention weights (both papers' code) and without
   (``AttentionConfig.attention_dropout``'s default).
3. A whole SASRec epoch on ml-1m-sas's real training histories (read from ../shared, as
   bench/scale.py reads it), batches of random windows against windows of similar length
   (``SequentialConfig.batching``): what the padding of mixed lengths costs.

Random item ids and hidden states: the cost does not depend on them. Ratios are from the same run.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cpu_bf16 import BATCH, SHAPES, step_arguments, step_seconds  # noqa: E402
from bench.scale import ML1M_SAS  # noqa: E402
from bench.sections import write_section  # noqa: E402
from recsys_core.data import load_dataset, temporal_leave_last_out  # noqa: E402
from recsys_core.data.split import Split  # noqa: E402
from recsys_core.models import build_model, data_settings  # noqa: E402
from recsys_core.models.sequential.base import FullSoftmaxCrossEntropy  # noqa: E402

MARKER = "<!-- sequential-step -->"
DIM = 64


def loss_seconds(blocked: bool, n_items: int, length: int, repeats: int) -> float:
    """Median seconds of the loss's forward and backward for one batch's targets (every position)."""
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(BATCH * length, DIM, generator=generator, requires_grad=True)
    weight = (0.1 * torch.randn(n_items, DIM, generator=generator)).requires_grad_()
    targets = torch.randint(0, n_items, (BATCH * length,), generator=generator)
    times = []
    for repeat in range(repeats + 2):  # two warm-up runs
        started = time.perf_counter()
        if blocked:
            loss = FullSoftmaxCrossEntropy.apply(hidden, weight, targets)
        else:
            loss = F.cross_entropy(hidden @ weight.T, targets)
        loss.backward()
        if repeat >= 2:
            times.append(time.perf_counter() - started)
        hidden.grad = weight.grad = None
    return statistics.median(times)


def epoch_seconds(split: Split, n_users: int, n_items: int, batching: str) -> float:
    """Seconds of one SASRec training epoch (its default settings for this data) over ``split``."""
    torch.manual_seed(0)
    model = build_model("sasrec", n_users, n_items, **{**data_settings("sasrec", split), "batching": batching})
    optimiser = torch.optim.Adam(model.parameters(), lr=model.config.learning_rate)
    model.train()
    started = time.perf_counter()
    for batch in model.batches(split, np.random.default_rng(0)):
        loss = model.loss(batch)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return time.perf_counter() - started


def main() -> None:
    args = step_arguments(__doc__)
    load = os.getloadavg()[0]
    lines = [
        MARKER, "## The sequential models' training step: the softmax loss and attention dropout", "",
        f"`python bench/sequential_step.py`: {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} "
        f"torch threads, torch {torch.__version__}, load average {load:.1f} at the start. Median of {args.repeats} "
        f"warm runs; batch of {BATCH} windows at each dataset's history length, every position a target (BERT4Rec: "
        "its masked positions).", "",
        "| shape (catalogue, history) | what | before s | after s | before / after |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for shape, (n_items, length) in SHAPES.items():
        label = f"{shape} ({n_items}, {length})"
        for what, before, after in (
            ("full-softmax loss, forward and backward: `F.cross_entropy` → blocked",
             loss_seconds(False, n_items, length, args.repeats), loss_seconds(True, n_items, length, args.repeats)),
            ("SASRec step: attention dropout 0.2 → 0",
             step_seconds("sasrec", n_items, length, False, args.repeats, attention_dropout=0.2),
             step_seconds("sasrec", n_items, length, False, args.repeats, attention_dropout=0.0)),
            ("BERT4Rec step: attention dropout 0.2 → 0",
             step_seconds("bert4rec", n_items, length, False, args.repeats, attention_dropout=0.2),
             step_seconds("bert4rec", n_items, length, False, args.repeats, attention_dropout=0.0)),
        ):  # fmt: skip
            lines.append(f"| {label} | {what} | {before:.3f} | {after:.3f} | {before / after:.2f} |")
            print(lines[-1], flush=True)
    if ML1M_SAS.exists():
        dataset = load_dataset(str(ML1M_SAS))
        split = temporal_leave_last_out(dataset)
        random_s, by_length_s = (epoch_seconds(split, dataset.n_users, dataset.n_items, batching)
                                 for batching in ("random", "by_length"))  # fmt: skip
        lines.append(f"| ml-1m-sas, its own histories | SASRec epoch (one run each): random batches → by length "
                     f"| {random_s:.1f} | {by_length_s:.1f} | {random_s / by_length_s:.2f} |")  # fmt: skip
        print(lines[-1], flush=True)
    lines += [
        "", "Above 1, the change is faster. Both losses give the same value and gradients to float32 rounding "
        "(`tests/test_sequential.py`); attention dropout's effect on quality is in docs/measurements.md.", "", MARKER,
    ]  # fmt: skip
    write_section(Path(args.out), MARKER, "\n".join(lines))


if __name__ == "__main__":
    main()
