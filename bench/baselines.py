"""Baselines on MovieLens-100K against the reference figures, written to docs/benchmarks.md.

    python bench/baselines.py [--dataset ml-100k]

Trains pop, itemknn, ease and bpr exactly as `python -m recsys_core train` does (same loop, same
store), evaluates them afresh on the test split, and records test metrics with 95% CIs, training
time and device next to the peer figures measured on this protocol.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sections import write_section  # noqa: E402
from recsys_core.data import load_dataset, temporal_leave_last_out  # noqa: E402
from recsys_core.data.split import PROTOCOL  # noqa: E402
from recsys_core.models.general.ease import EASE, LAMBDA_GRID, EASEConfig  # noqa: E402
from recsys_core.protocols.topk import evaluate_model, evaluate_models  # noqa: E402
from recsys_core.training.loop import fit  # noqa: E402
from recsys_core.training.schedule import train_models  # noqa: E402

MODELS = ["pop", "itemknn", "ease", "bpr"]
# NDCG@10 / HR@10 of peers on this exact protocol, measured on this kind of machine (issue 2).
REFERENCE = {
    "pop": (0.0443, 0.0838, "direct computation and RecTools"),
    "itemknn": (0.0629, 0.1145, "RecBole 1.2.1"),
    "ease": (0.0741, 0.1421, "RecTools, regularisation chosen on validation"),
    "bpr": (0.0673, 0.1241, "RecBole 1.2.1 (22 s to train)"),
}
MARKER = "<!-- baselines -->"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="ml-100k")
    args = parser.parse_args()
    started = time.perf_counter()
    reports = {r.model: r for r in train_models(args.dataset, MODELS)}
    results = evaluate_models(args.dataset, MODELS)
    lines = [
        MARKER,
        f"## Baselines on {args.dataset}",
        "",
        f"Protocol: {PROTOCOL}. Test metrics, 95% CI over users (normal approximation).",
        f"Measured by `python bench/baselines.py` on {time.strftime('%Y-%m-%d')}: {platform.processor() or 'CPU'}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, Python {platform.python_version()}.",
        "",
        "| model | NDCG@10 [95% CI] | HR@10 [95% CI] | MRR@10 | coverage@10 | train s | reference NDCG@10 / HR@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in MODELS:
        m, r = results[name], reports[name]
        ref = REFERENCE[name]
        lines.append(
            f"| {name} | {m['NDCG@10']:.4f} [{m['NDCG@10 CI'][0]:.4f}, {m['NDCG@10 CI'][1]:.4f}] "
            f"| {m['HR@10']:.4f} [{m['HR@10 CI'][0]:.4f}, {m['HR@10 CI'][1]:.4f}] | {m['MRR@10']:.4f} "
            f"| {m['coverage@10']:.3f} | {r.seconds:.1f} | {ref[0]:.4f} / {ref[1]:.4f} ({ref[2]}) |"
        )
    lines += ["", f"Whole run (train + evaluate, 4 models): {time.perf_counter() - started:.0f} s.", ""]
    lines += ease_lambda_diagnostic(args.dataset)
    lines.append(MARKER)
    write_section(ROOT / "docs" / "benchmarks.md", MARKER, "\n".join(lines))
    print("\n".join(lines))


def ease_lambda_diagnostic(dataset_name: str) -> list[str]:
    """EASE's validation and test NDCG@10 at every lambda of its grid. Diagnostic only: the model
    is chosen on validation; this shows how far the test figure could move with the choice."""
    dataset = load_dataset(dataset_name)
    split = temporal_leave_last_out(dataset)
    rows = ["EASE over its lambda grid (diagnostic only; the stored model uses the validation choice):", "",
            "| lambda | valid NDCG@10 | test NDCG@10 |", "|---|---|---|"]  # fmt: skip
    for l2 in LAMBDA_GRID:
        model = EASE(EASEConfig(l2=l2), dataset.n_users, dataset.n_items)
        fit(model, split)
        valid = evaluate_model(model, split, "valid", accuracy_only=True).ndcg_at_10
        test = evaluate_model(model, split, "test", accuracy_only=True).ndcg_at_10
        rows.append(f"| {l2:g} | {valid:.4f} | {test:.4f} |")
    return rows


if __name__ == "__main__":
    main()
