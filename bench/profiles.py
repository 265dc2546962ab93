"""The training profiles on MovieLens-100K: how long the whole default zoo takes to train, and how
close each model's quick-profile NDCG@10 comes to its full profile, written to docs/benchmarks.md.

    python bench/profiles.py [--dataset ml-100k|ml-1m-sas|PATH] [--runs quick-1,quick,full] [--keep DIR]

Each run is ``python -m recsys_core train --models all`` in a fresh process and a fresh artifact
store (a temporary folder), exactly as the home page's job starts it, embedding maps included:

- ``quick-1``: the quick profile, one model at a time (``--workers 1``), all cores to that model:
  the baseline the parallel runs are compared with, measured in the same run of this script;
- ``quick``: the quick profile with the default workers (one process per core, up to 4);
- ``full``: the full profile with the default workers.

Per run: the wall time until the last model landed (what a user waits for before every view is
complete), the maps' share after that, and per model its training seconds and test NDCG@10
(protocol of SPEC section 3). Bars (issue 8): on a 2-core CPU, quick < 5 min, full < 20 min, each
model within 10% of its full-profile NDCG@10 or the gap stated. ``--keep DIR`` trains the last run
into DIR (empty) and keeps it: a whole trained zoo for ``bench/ui.py --store DIR`` to serve.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scale import DATASETS as SCALE_DATASETS  # noqa: E402
from bench.sections import write_section  # noqa: E402
from recsys_core.data import load_dataset  # noqa: E402
from recsys_core.data.split import PROTOCOL  # noqa: E402
from recsys_core.models import DEFAULT_ZOO, REGISTRY, quick_settings  # noqa: E402
from recsys_core.training.jobs import progress_kind, read_events  # noqa: E402
from recsys_core.training.loop import STORED  # noqa: E402
from recsys_core.training.schedule import default_workers  # noqa: E402

MARKER = "<!-- profiles -->"
BARS_S = {"quick": 300.0, "full": 1200.0}
GAP_BAR = 0.10
# Each run's raw figures, {dataset: {run: result}}: one file, so that no file is named after a
# dataset whose licence keeps it out of the project (MovieLens-1M).
RESULTS = ROOT / "docs" / "profiles" / "runs.json"
RUNS = {"quick-1": ("--quick", "--workers", "1"), "quick": ("--quick",), "full": ()}


def train_zoo(dataset: str, run: str, keep: Path | None = None) -> dict:
    """One ``train --models all`` in a fresh store (``keep``, or a temporary folder): wall times and
    each model's figures."""
    folder_name = load_dataset(dataset).name  # a CSV's store folder is named by its content
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise SystemExit(f"{keep} is not empty: the zoo is timed from an empty store")
    with contextlib.nullcontext(str(keep)) if keep else tempfile.TemporaryDirectory(prefix=f"profile-{run}-") as store:
        journal = Path(store) / "progress.jsonl"
        command = [sys.executable, "-m", "recsys_core", "train", "--dataset", dataset, "--models", "all",
                   "--progress-jsonl", str(journal), *RUNS[run]]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, env={**os.environ, "DEEPREC_ARTIFACTS_DIR": store}, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        total = time.perf_counter() - started
        events = read_events(journal)
        start = next(e["time"] for e in events if e.get("event") == "start")
        stored = [e for e in events if e.get("event") == "progress" and progress_kind(e) == STORED]
        landed = {e["model"]: e["time"] - start for e in stored}
        manifest = json.loads((Path(store) / folder_name / "manifest.json").read_text())["models"]
        models = {}
        for name, entry in manifest.items():
            info = json.loads((Path(store) / folder_name / name / "info.json").read_text())
            models[name] = {"seconds": entry["seconds"], "ndcg": entry["test"]["NDCG@10"], "landed": landed.get(name),
                            "threads": info.get("threads"), "best_epoch": info.get("best_epoch")}  # fmt: skip
    return {"total_s": total, "all_landed_s": max(landed.values()), "models": models}


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def landing(run: str, models: dict[str, dict]) -> list[str]:
    """When each model of a run landed, in that order: what a user of the views waits for, model by
    model (the baselines first, then the sequential models: the home page trains them in that order)."""
    order = sorted((m for m in models if models[m].get("landed") is not None), key=lambda m: models[m]["landed"])
    first_sequential = next((m for m in order if m in REGISTRY and REGISTRY[m].predicts_next), None)
    lines = [f"Run `{run}`, model by model, in the order they landed:", "",
             "| model | landed after | training | test NDCG@10 |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {m} | {models[m]['landed'] / 60:.1f} min | {models[m]['seconds']:.0f} s | {models[m]['ndcg']:.4f} |"
              for m in order]  # fmt: skip
    if first_sequential:
        lines += ["", f"A usable lab (the baselines and a sequential model, {first_sequential}) after "
                  f"**{models[first_sequential]['landed'] / 60:.1f} min**."]  # fmt: skip
    return lines


def report(dataset: str, results: dict[str, dict], marker: str = MARKER) -> str:
    workers = default_workers("cpu")
    lines = [
        marker,
        "## Training profiles: the whole zoo, quick and full" + ("" if dataset == "ml-100k" else f", {dataset}"),
        "",
        f"`python bench/profiles.py` on {dataset}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {__import__('torch').__version__}, no GPU. Each run is "
        "`python -m recsys_core train --models all` in a fresh process and an empty store, as the home page "
        f"starts it (embedding maps included); the default runs train {workers} models at once, each in its own "
        "one-thread process. Test NDCG@10 on the one protocol: " + PROTOCOL + ".",
        "",
        "| run | all models landed | maps after that | whole run | bar |",
        "|---|---|---|---|---|",
    ]
    for run, result in results.items():
        profile = run.split("-")[0]
        bar = BARS_S[profile] if run in BARS_S and dataset == "ml-100k" else None  # issue 8's bars are for ML-100K
        verdict = "" if bar is None else ("met" if result["all_landed_s"] < bar else "**missed**")
        label = {"quick-1": "quick, one model at a time (baseline)", "quick": f"quick, {workers} at once",
                 "full": f"full, {workers} at once"}[run]  # fmt: skip
        lines.append(f"| {label} | {minutes(result['all_landed_s'])} | "
                     f"{result['total_s'] - result['all_landed_s']:.0f} s | {minutes(result['total_s'])} | "
                     f"{'' if bar is None else f'< {bar / 60:.0f} min: {verdict}'} |")  # fmt: skip
    if "quick-1" in results and "quick" in results:
        ratio = results["quick-1"]["all_landed_s"] / results["quick"]["all_landed_s"]
        lines += ["", f"Training {workers} models at once is **{ratio:.2f}x** as fast as one at a time (quick "
                  "profile, same machine, same run of this script)."]  # fmt: skip
    if "quick" in results:  # the run the home page's button starts
        lines += ["", *landing("quick", results["quick"]["models"])]
    if "quick" in results and "full" in results:
        quick, full = results["quick"]["models"], results["full"]["models"]
        lines += ["", "| model | quick settings | quick s | full s | quick NDCG@10 | full NDCG@10 | gap |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        outside = []
        for name in DEFAULT_ZOO:
            if name not in quick or name not in full:
                continue
            q, f = quick[name], full[name]
            gap = q["ndcg"] / f["ndcg"] - 1 if f["ndcg"] else 0.0
            settings = ", ".join(f"{k} {v}" for k, v in quick_settings(name).items()) or "same as full"
            mark = "" if gap >= -GAP_BAR else " **(over 10%)**"
            if gap < -GAP_BAR:
                outside.append(f"{name} {gap:+.0%}")
            lines.append(f"| {name} | {settings} | {q['seconds']:.1f} | {f['seconds']:.1f} | {q['ndcg']:.4f} | "
                         f"{f['ndcg']:.4f} | {gap:+.1%}{mark} |")  # fmt: skip
        lines += ["", "Models more than 10% below their full profile in the quick one: "
                  + (", ".join(outside) if outside else "none") + ". The quick profile is for first runs and "
                  "demos; the benchmarks above use the full one."]  # fmt: skip
    lines += ["", marker]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--runs", default="quick-1,quick,full")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--report-only", action="store_true", help="rebuild the section from the stored runs")
    parser.add_argument("--keep", type=Path, help="train the last run into this empty folder and keep it")
    args = parser.parse_args()
    label, source = args.dataset, SCALE_DATASETS.get(args.dataset, args.dataset)  # ml-1m-sas: the shared file
    marker = MARKER if label == "ml-100k" else f"<!-- profiles {label} -->"
    runs = args.runs.split(",")
    for run in runs:
        if not args.report_only:
            print(f"training the zoo: {run} …", flush=True)
            result = train_zoo(source, run, args.keep if run == runs[-1] else None)
            print(f"  all landed in {result['all_landed_s']:.0f} s, whole run {result['total_s']:.0f} s", flush=True)
            stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
            stored.setdefault(label, {})[run] = result
            RESULTS.write_text(json.dumps(stored, indent=1))  # each run kept: a later one failing loses nothing
    stored = json.loads(RESULTS.read_text())
    results = {run: stored[label][run] for run in args.runs.split(",")}
    section = report(label, results, marker)
    write_section(Path(args.out), marker, section)
    print(section)


if __name__ == "__main__":
    main()
