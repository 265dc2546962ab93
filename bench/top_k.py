"""The top 10 of a batch of score rows: ``recsys_core.tensors.top_k`` against the full stable sort
it replaced, at the evaluation's batch shapes (``users_per_batch``), written to docs/benchmarks.md.

    python bench/top_k.py [--repeats 5]

Both give the same items in the same order (tests/test_metrics.py); this measures what the
shortcut saves. Scores are random normal numbers with the history-like share of -inf that
evaluation masks in (a user's items; here 2%). One torch thread, the median of ``--repeats``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.sections import write_section  # noqa: E402
from recsys_core.tensors import top_k, users_per_batch  # noqa: E402

MARKER = "<!-- top-k -->"
CATALOGUES = (1_682, 3_416, 100_000, 1_000_000)


def full_sort(scores: torch.Tensor, k: int) -> torch.Tensor:
    return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]


def timed(function, scores: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function(scores, 10)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    load = os.getloadavg()[0]
    rows = ["| catalogue | users per batch | full stable sort | top_k | ratio |", "|---|---|---|---|---|"]
    for n_items in CATALOGUES:
        users = users_per_batch(n_items)
        scores = torch.randn(users, n_items + 1, generator=generator)
        scores[torch.rand(scores.shape, generator=generator) < 0.02] = float("-inf")
        assert torch.equal(top_k(scores, 10)[0], full_sort(scores, 10))
        sort_s, top_s = timed(full_sort, scores, args.repeats), timed(top_k, scores, args.repeats)
        rows.append(f"| {n_items:,} | {users} | {sort_s * 1000:.1f} ms | {top_s * 1000:.1f} ms | "
                    f"{sort_s / top_s:.1f}x |")  # fmt: skip
    section = "\n".join([
        MARKER,
        "## The top 10 of a batch of scores: top_k against a full stable sort",
        "",
        f"`python bench/top_k.py` on {time.strftime('%Y-%m-%d')}: {platform.machine()}, {os.cpu_count()} cores, one "
        f"torch thread, torch {torch.__version__}, load average {load:.1f} at the start; median of {args.repeats}. "
        "A batch is as many users as `users_per_batch` scores together; both ways give the same items in the "
        "same order (ties to the lower item id).",
        "",
        *rows,
        MARKER,
    ])  # fmt: skip
    write_section(ROOT / "docs" / "benchmarks.md", MARKER, section)
    print(section)


if __name__ == "__main__":
    main()
