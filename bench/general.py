"""The general and retrieval zoo on MovieLens-100K, written to docs/benchmarks.md.

    python bench/general.py [--dataset ml-100k] [--models gmf,mlp,...]

Trains each model exactly as `python -m recsys_core train` does (same loop, same store, epochs
chosen on validation), evaluates it afresh on the test split and records test metrics with 95%
CIs, the epoch validation chose, training time and device, next to the peer figures measured on
this protocol with RecBole 1.2.1 (its defaults, CPU). BPR is trained in the same run as the
yardstick the issue names. NeuMF is trained twice: pre-trained from the gmf and mlp of this run
(the paper's scheme, its default), and from scratch; the stored neumf is the one validation prefers.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sections import write_section  # noqa: E402
from recsys_core.data import load_dataset  # noqa: E402
from recsys_core.data.split import PROTOCOL  # noqa: E402
from recsys_core.protocols.topk import evaluate_models  # noqa: E402
from recsys_core.store.artifacts import load_artifact  # noqa: E402
from recsys_core.training.schedule import train_models  # noqa: E402

MODELS = ["bpr", "gmf", "mlp", "neumf", "lightgcn", "cdae", "multvae", "two_tower"]
# RecBole 1.2.1 with its defaults on this protocol and machine kind (issue 3): NDCG@10, HR@10, note.
REFERENCE = {
    "bpr": (0.0673, 0.1241, ""),
    "neumf": (0.0649, 0.1209, "236 s to train"),
    "lightgcn": (0.0489, 0.0923, "99 s to train"),
    "multvae": (0.0433, 0.0891, ""),
    "cdae": (0.0377, 0.0700, ""),
}
MARKER = "<!-- general -->"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    models = args.models.split(",")
    started = time.perf_counter()
    reports = {}
    for name in models:
        print(f"training {name} ...", flush=True)
        [reports[name]] = train_models(args.dataset, [name])
        print(f"  {reports[name]}", flush=True)
    notes = []
    if {"gmf", "mlp", "neumf"} <= set(models):
        notes += neumf_with_pretraining(args.dataset, reports)
    results = evaluate_models(args.dataset, models)
    dataset = load_dataset(args.dataset)
    lines = [
        MARKER,
        f"## General and retrieval models on {args.dataset}",
        "",
        f"Protocol: {PROTOCOL}. Test metrics, 95% CI over users (normal approximation); epochs chosen on "
        "validation NDCG@10 (early stopping), nothing chosen on test.",
        f"Measured by `python bench/general.py` on {time.strftime('%Y-%m-%d')}: {platform.machine()}, "
        f"{os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}; load average at the end {os.getloadavg()[0]:.1f}.",
        "",
        "| model | NDCG@10 [95% CI] | HR@10 [95% CI] | MRR@10 | coverage@10 | best epoch | train s "
        "| RecBole 1.2.1 NDCG@10 / HR@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in models:
        m, r = results[name], reports[name]
        if "error" in m or not r.ok:
            lines.append(f"| {name} | failed: {m.get('error') or r.message} | | | | | | |")
            continue
        info = load_artifact(dataset, name).info
        ref = REFERENCE.get(name)
        peer = f"{ref[0]:.4f} / {ref[1]:.4f} {ref[2]}".strip() if ref else "-"
        lines.append(
            f"| {name} | {m['NDCG@10']:.4f} [{m['NDCG@10 CI'][0]:.4f}, {m['NDCG@10 CI'][1]:.4f}] "
            f"| {m['HR@10']:.4f} [{m['HR@10 CI'][0]:.4f}, {m['HR@10 CI'][1]:.4f}] | {m['MRR@10']:.4f} "
            f"| {m['coverage@10']:.3f} | {info['best_epoch']} | {info['seconds']:.1f} | {peer} |"
        )
    lines += ["", *notes, f"Whole run: {time.perf_counter() - started:.0f} s.", MARKER]
    write_section(ROOT / "docs" / "benchmarks.md", MARKER, "\n".join(lines))
    print("\n".join(lines))


def neumf_with_pretraining(dataset_name: str, reports: dict) -> list[str]:
    """NeuMF as stored (pre-trained from this run's gmf and mlp) against NeuMF from scratch;
    the store keeps whichever validation prefers."""
    dataset = load_dataset(dataset_name)
    pretrained = load_artifact(dataset, "neumf")
    pretrained_valid = pretrained.metrics["valid"]["NDCG@10"]
    [scratch] = train_models(dataset_name, ["neumf"], overrides={"neumf": {"pretrained": False}})
    scratch_valid = load_artifact(dataset, "neumf").metrics["valid"]["NDCG@10"]
    lines = [
        f"NeuMF pre-trained from gmf + mlp (the default): valid NDCG@10 {pretrained_valid:.4f}, "
        f"test {reports['neumf'].test_ndcg:.4f}, {reports['neumf'].seconds:.0f} s (plus the gmf and mlp "
        f"training); from scratch: valid {scratch_valid:.4f}, test {scratch.test_ndcg:.4f}, {scratch.seconds:.0f} s."
    ]
    if pretrained_valid >= scratch_valid:
        [reports["neumf"]] = train_models(dataset_name, ["neumf"])  # store the validation choice again
        lines.append("Validation prefers the pre-trained NeuMF; the table shows that one.")
    else:
        reports["neumf"] = scratch
        lines.append("Validation prefers NeuMF from scratch; the table shows that one.")
    return [*lines, ""]


if __name__ == "__main__":
    main()
