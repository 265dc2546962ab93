"""The lab at ten times the data: every model on MovieLens-100K and on MovieLens-1M (the SASRec
file), training time, peak memory and test quality side by side, written to docs/benchmarks.md.

    python bench/scale.py [--datasets ml-100k,ml-1m-sas] [--models all|NAME,...] [--reuse] [--quick]
    python bench/scale.py --report-only

Each model trains alone, in a fresh process, exactly as ``python -m recsys_core train --dataset D
--models M --workers 1`` trains it (all cores to that model), into a bench store kept under
``artifacts/bench-scale/`` so that the models others start from (NeuMF's GMF and MLP, each ranker's
retriever) are there when they train. Per model and dataset:

- the wall time of the training process and its peak resident memory (``ru_maxrss`` of that
  process, from ``os.wait4``);
- seconds per epoch without validation, and the model's own measure of an epoch's work
  (``Recommender.epoch_work``: training examples, times the catalogue for a full softmax), whose
  ratio ML-1M / ML-100K says whether cost grows faster than the work;
- test NDCG@10 and HR@10 with 95% CIs on the one protocol, and validation NDCG@10.

A full-profile model on ml-1m-sas can take most of an hour on 2 cores, so every result is kept in
``docs/scale/runs.json`` (our own figures, no interactions or titles: one file keyed by dataset and
model, committed, so that the next session or machine resumes from it and the report is rebuilt
from every run, not only this machine's) the moment it exists, and ``--reuse`` skips what is
there: the bench resumes where it stopped. A model that
starts from another stored model (NeuMF from GMF and MLP, a ranker from its retriever) gets that one
trained first when the store under ``artifacts/bench-scale/`` lacks it. Never run two of these at
once while measuring. ml-1m-sas is read from ``../shared/data/ml-1m-sas/`` (``DEEPREC_ML1M_SAS`` to
point elsewhere): research use only, never copied into the project.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sections import write_section  # noqa: E402
from recsys_core.data import Dataset, load_dataset, temporal_leave_last_out  # noqa: E402
from recsys_core.data.split import PROTOCOL, Split  # noqa: E402
from recsys_core.models import DEFAULT_ZOO, REGISTRY  # noqa: E402
from recsys_core.store.artifacts import load_artifact  # noqa: E402

MARKER = "<!-- scale -->"
STORE = ROOT / "artifacts" / "bench-scale"
FIGURES = ROOT / "docs" / "scale"
RESULTS = FIGURES / "runs.json"
ML1M_SAS = Path(os.environ.get("DEEPREC_ML1M_SAS", ROOT.parent / "shared" / "data" / "ml-1m-sas" / "ml-1m-sas.csv"))
DATASETS = {"ml-100k": "ml-100k", "ml-1m-sas": str(ML1M_SAS)}
COST_BAR = 1.3  # seconds per unit of work on ML-1M over ML-100K
MEMORY_BAR_MB = 6 * 1024
SEQUENTIAL_BAR_S = 30 * 60
# Published NDCG@10 / HR@10 on the SASRec file, full catalogue, last item held out, seen items
# excluded: Klenitskiy & Vasilev, "Turning Dross Into Gold Loss: is BERT4Rec really better than
# SASRec?", RecSys 2023 (github.com/antklen/sasrec-bert4rec-recsys23), and Petrov & Macdonald,
# "gSASRec", RecSys 2023 (NDCG@10 only).
PUBLISHED = [
    ("sasrec", "SASRec, full cross-entropy", 0.1821, 0.3152, "Klenitskiy & Vasilev 2023"),
    ("bert4rec", "BERT4Rec", 0.1537, 0.2843, "Klenitskiy & Vasilev 2023"),
    ("gru4rec", "GRU4Rec", 0.1648, 0.2811, "as cited in Klenitskiy & Vasilev 2023"),
    (None, "SASRec, BCE with one negative (the original paper's loss)", 0.1341, 0.2500, "Klenitskiy & Vasilev 2023"),
    (None, "gSASRec", 0.1726, None, "Petrov & Macdonald 2023"),
]


def result_key(model: str, quick: bool) -> str:
    return f"{model}-quick" if quick else model


def stored_results() -> dict[str, dict[str, dict]]:
    """{dataset: {model (or model-quick): result}}, every run kept so far."""
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def keep_result(dataset: str, key: str, result: dict) -> None:
    results = stored_results()
    results.setdefault(dataset, {})[key] = result
    temporary = RESULTS.with_suffix(".tmp")
    temporary.write_text(json.dumps(results, indent=1))
    temporary.replace(RESULTS)  # atomic: an interrupted write never loses the runs kept before


def host_gflops(seconds: float = 1.0) -> float:
    """This host's float32 matrix-product rate on the threads a training run uses, kept with each
    run: sessions may land on hosts of different speeds (SASRec's ml-1m-sas epoch took 35.6 s on
    2026-12-03 and 18.1 s on 2026-12-04, with nothing in between that changed its CPU path), so a
    ratio between two runs is only about the code when their hosts ran alike."""
    import torch

    a, b = torch.randn(512, 512), torch.randn(512, 512)
    products, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        products += 1
    return products * 2 * 512**3 / (time.perf_counter() - started) / 1e9


def train_alone(dataset: str, model: str, quick: bool) -> dict:
    """One model in a fresh ``train`` process: wall time and peak resident memory of that process."""
    command = [sys.executable, "-m", "recsys_core", "train", "--dataset", DATASETS[dataset], "--models", model,
               "--workers", "1", "--no-maps", *(["--quick"] if quick else [])]  # fmt: skip
    load_before, gflops = os.getloadavg()[0], host_gflops()
    started = time.perf_counter()
    log = (STORE / f"{dataset}-{model}.log").open("w")
    child = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    log.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{model} on {dataset} failed: see {log.name}")
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "load_before": load_before,
            "load_after": os.getloadavg()[0], "finished": time.strftime("%Y-%m-%d %H:%M"),
            "host_gflops": gflops}  # fmt: skip


@functools.cache
def dataset_and_split(label: str) -> tuple[Dataset, Split]:
    dataset = load_dataset(DATASETS[label])
    return dataset, temporal_leave_last_out(dataset)


def describe(dataset_label: str, model: str, run: dict, quick: bool) -> dict:
    """What the stored artifact says about the run, plus the model's work per epoch."""
    dataset, split = dataset_and_split(dataset_label)
    artifact = load_artifact(dataset, model)
    folder = STORE / dataset.name / model
    metrics = json.loads((folder / "metrics.json").read_text())
    history = json.loads((folder / "history.json").read_text())
    info = json.loads((folder / "info.json").read_text())
    epochs = [row for row in history if "train_seconds" in row]
    test = metrics["test"]
    return {
        **run,
        "dataset": dataset_label, "dataset_name": dataset.name, "model": model, "profile": "quick" if quick else "full",
        "users": dataset.n_users, "items": dataset.n_items, "interactions": dataset.n_interactions,
        "train_s": info.get("seconds"), "threads": info.get("threads"), "best_epoch": info.get("best_epoch"),
        "epochs_run": len(epochs),
        "s_per_epoch": sum(r["train_seconds"] for r in epochs) / len(epochs) if epochs else None,
        "work_per_epoch": artifact.model.epoch_work(split) if artifact.model.trainable else None,
        "test": {k: [test[k], *test.get(f"{k} CI", [None, None])] for k in ("NDCG@10", "HR@10")},
        "pipeline_final": pipeline_final(metrics),
        "valid_ndcg": metrics.get("valid", {}).get("NDCG@10"),
        "config": json.loads((folder / "config.json").read_text()),
        # The validation curve, for what another patience would have given (patience_rows).
        "curve": [[r["epoch"], r.get("valid NDCG@10"), r["seconds"]] for r in epochs],
        "torch": __import__("torch").__version__, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }  # fmt: skip


def prerequisites(dataset: str, model: str) -> list[str]:
    """The stored models ``model`` starts from (pre-training, a ranker's retriever) that the bench's
    store lacks: without them it would train differently from the lab's own run."""
    config = REGISTRY[model].config_class()
    needed = [*config.pretrained_from(), *([config.retriever()] if config.retriever() else [])]
    name = dataset_and_split(dataset)[0].name
    return [m for m in needed if not (STORE / name / m / "metrics.json").exists()]


def run_models(datasets: list[str], models: list[str], quick: bool, reuse: bool) -> None:
    STORE.mkdir(parents=True, exist_ok=True)
    for dataset in datasets:
        for model in models:
            key = result_key(model, quick)
            if reuse and key in stored_results().get(dataset, {}):
                continue
            missing = prerequisites(dataset, model)
            if missing:
                print(f"{dataset} {model} starts from {', '.join(missing)}, not in the store: training it first")
                run_models([dataset], missing, quick, reuse=False)
            print(f"{dataset} {model}{' (quick)' if quick else ''} …", flush=True)
            result = describe(dataset, model, train_alone(dataset, model, quick), quick)
            keep_result(dataset, key, result)  # kept at once: a later model failing loses nothing
            print(f"  {result['wall_s']:.0f} s, {result['peak_rss_mb']:.0f} MB, test NDCG@10 "
                  f"{result['test']['NDCG@10'][0]:.4f}", flush=True)  # fmt: skip


# --------------------------------------------------------------------------- report


def load_results(quick: bool) -> dict[str, dict[str, dict]]:
    """{dataset: {model: result}} of one profile, in the zoo's order."""
    stored = stored_results()
    out: dict[str, dict[str, dict]] = {}
    for dataset in DATASETS:
        for model in DEFAULT_ZOO:
            if result_key(model, quick) in stored.get(dataset, {}):
                out.setdefault(dataset, {})[model] = stored[dataset][result_key(model, quick)]
    return out


def with_ci(estimate: list) -> str:
    mean, low, high = estimate
    return f"{mean:.4f}" if low is None else f"{mean:.4f} [{low:.3f}, {high:.3f}]"


def model_rows(results: dict[str, dict[str, dict]]) -> list[str]:
    small, large = results.get("ml-100k", {}), results.get("ml-1m-sas", {})
    lines = [
        "| model | ml-100k: train s | peak MB | test NDCG@10 [95% CI] | ml-1m-sas: train s | peak MB | s/epoch | "
        "test NDCG@10 [95% CI] | HR@10 | time x | memory x | cost per work x |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in DEFAULT_ZOO:
        a, b = small.get(model), large.get(model)
        if a is None and b is None:
            continue
        cells = [model]
        cells += [f"{a['wall_s']:.0f}", f"{a['peak_rss_mb']:.0f}", with_ci(a["test"]["NDCG@10"])] if a else ["-"] * 3
        if b:
            per_epoch = f"{b['s_per_epoch']:.1f}" if b["s_per_epoch"] else "-"
            cells += [f"{b['wall_s']:.0f}", f"{b['peak_rss_mb']:.0f}", per_epoch, with_ci(b["test"]["NDCG@10"]),
                      with_ci(b["test"]["HR@10"])]  # fmt: skip
        else:
            cells += ["-"] * 5
        cells += ratios(a, b)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def ratios(a: dict | None, b: dict | None) -> list[str]:
    """ML-1M / ML-100K of wall time, of peak memory, and of seconds per unit of an epoch's work."""
    if not a or not b:
        return ["-"] * 3
    value = cost_ratio(a, b)
    cost = "-" if value is None else f"{value:.2f}" + ("" if value <= COST_BAR else " **(over 1.3)**")
    return [f"{b['wall_s'] / a['wall_s']:.1f}", f"{b['peak_rss_mb'] / a['peak_rss_mb']:.1f}", cost]


def cost_ratio(a: dict, b: dict) -> float | None:
    """Seconds per epoch per unit of work, ``b`` over ``a``; None for a model without epochs."""
    if not (a["s_per_epoch"] and b["s_per_epoch"] and a["work_per_epoch"] and b["work_per_epoch"]):
        return None
    return (b["s_per_epoch"] / b["work_per_epoch"]) / (a["s_per_epoch"] / a["work_per_epoch"])


def session_lines(small: dict[str, dict], large: dict[str, dict]) -> list[str]:
    """The models whose two sides ran on different days, or on days not recorded (so, here, maybe in
    different sessions, on hosts that may differ): their time ratios compare hosts as well as data."""

    def day(result: dict) -> str:
        return (result.get("finished") or "undated")[:10]

    def maybe_apart(a: dict, b: dict) -> bool:
        return day(a) != day(b) or day(a) == "undated"

    pairs = [f"{m} ({day(small[m])} / {day(large[m])})" for m in DEFAULT_ZOO
             if m in small and m in large and maybe_apart(small[m], large[m])]  # fmt: skip
    probed = [f"{m} on {r['dataset']} {r['host_gflops']:.0f}" for d in (small, large) for m, r in d.items()
              if r.get("host_gflops")]  # fmt: skip
    if not pairs:
        return []
    return ["Ratios over runs on different or unrecorded days, whose hosts may differ in speed (each run "
            "records its host's float32 matrix-product rate, `host_gflops`, since 2026-12-04): "
            + ", ".join(pairs) + "." + (f" Recorded rates (GFLOP/s): {', '.join(probed)}." if probed else ""),
            ""]  # fmt: skip


def published_rows(large: dict[str, dict]) -> list[str]:
    lines = ["| model | published NDCG@10 | published HR@10 | source | ours (ml-1m-sas, test) NDCG@10 [95% CI] | "
             "ours HR@10 [95% CI] | ours / published NDCG@10 |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for model, label, ndcg, hr, source in PUBLISHED:
        ours = large.get(model) if model else None
        mine = [with_ci(ours["test"]["NDCG@10"]), with_ci(ours["test"]["HR@10"]),
                f"{ours['test']['NDCG@10'][0] / ndcg:.2f}"] if ours else ["not trained here"] + ["-"] * 2  # fmt: skip
        lines.append(f"| {label} | {ndcg:.4f} | {'-' if hr is None else f'{hr:.4f}'} | {source} | " + " | ".join(mine)
                     + " |")  # fmt: skip
    return lines


def pipeline_final(metrics: dict) -> list | None:
    """A ranker's two-stage figure, [NDCG@10, low, high]: its retriever's candidates reordered by the
    ranker's score blended with the retriever's (the blend chosen on validation), as the lab serves them.
    The table's test figure is the ranker alone over the same candidates."""
    final = metrics.get("pipeline", {}).get("final")
    return [final["NDCG@10"], *final.get("NDCG@10 CI", [None, None])] if final else None


def pipeline_lines(results: dict[str, dict[str, dict]]) -> list[str]:
    out = []
    for dataset, runs in results.items():
        ranked = [(m, r) for m, r in runs.items() if r.get("pipeline_final")]
        if ranked:
            retriever = runs.get("sasrec")
            alone = f"; sasrec alone {with_ci(retriever['test']['NDCG@10'])}" if retriever else ""
            out.append(f"- Rankers in the two-stage pipeline on {dataset} (test NDCG@10, the ranker's score blended "
                       f"with its retriever's over sasrec's candidates){alone}: "
                       + ", ".join(f"{m} {with_ci(r['pipeline_final'])}" for m, r in ranked) + ".")  # fmt: skip
    return out


def backfill_pipeline(results: dict[str, dict[str, dict]]) -> None:
    """Runs kept before ``pipeline_final`` was read: taken from the bench store's metrics when they are here."""
    for dataset, runs in results.items():
        for model, run in runs.items():
            path = STORE / run.get("dataset_name", "") / model / "metrics.json"
            if "pipeline_final" not in run and run.get("profile") == "full" and path.is_file():
                keep_result(dataset, result_key(model, False), {**run, "pipeline_final":
                            pipeline_final(json.loads(path.read_text()))})  # fmt: skip


def bars(small: dict[str, dict], large: dict[str, dict]) -> list[str]:
    if not large:
        return ["- No model has been measured on ml-1m-sas yet."]
    out = []
    heavy = [m for m, r in large.items() if r["peak_rss_mb"] > MEMORY_BAR_MB]
    out.append(f"- Peak memory on ml-1m-sas: largest {max((r['peak_rss_mb'] for r in large.values()), default=0):.0f} "
               f"MB; over 6 GB: {', '.join(heavy) or 'none'}.")  # fmt: skip
    for model in ("gru4rec", "sasrec", "bert4rec"):
        if model in large:
            seconds = large[model]["wall_s"]
            verdict = "met" if seconds < SEQUENTIAL_BAR_S else "**missed**"
            out.append(f"- {model} full profile on ml-1m-sas: {seconds / 60:.1f} min (bar < 30 min: {verdict}).")
    measured = {m: cost_ratio(small[m], r) for m, r in large.items() if m in small}
    measured = {m: ratio for m, ratio in measured.items() if ratio is not None}
    over = [f"{m} ({ratio:.2f})" for m, ratio in measured.items() if ratio > COST_BAR]
    out.append(f"- Cost per work over {COST_BAR}: {', '.join(over) or 'none'}, of {len(measured)} torch models "
               "measured on both datasets. Each ratio divides two runs that may be hours apart, and this VM's "
               "speed drifts through the day (an epoch's time varies by a third within one run): a ratio near the "
               "bar is settled by running both datasets back to back (`--models M` without `--reuse`).")  # fmt: skip
    pop = large.get("pop")
    if pop:
        below = [m for m, r in large.items() if r["test"]["NDCG@10"][0] < pop["test"]["NDCG@10"][0]]
        out.append(f"- Below popularity on ml-1m-sas: {', '.join(below) or 'none'}.")
    return out + pipeline_lines({"ml-100k": small, "ml-1m-sas": large})


def stopped(curve: list[list], patience: int) -> tuple[int, int, float, float]:
    """Where early stopping with ``patience`` ends on a recorded validation curve (epoch, valid NDCG@10,
    seconds): the last epoch run, the best epoch, its validation NDCG@10 and the seconds spent."""
    best, best_epoch, stale, spent = -1.0, 0, 0, 0.0
    for epoch, score, seconds in curve:
        spent += seconds
        if score > best:
            best, best_epoch, stale = score, epoch, 0
        else:
            stale += 1
        if stale >= patience:
            break
    return epoch, best_epoch, best, spent


def patience_rows(large: dict[str, dict]) -> list[str]:
    """Each trained torch model's ml-1m-sas validation curve replayed under other patiences: what
    stopping sooner would have saved and cost, on validation only."""
    rows = []
    for model, result in large.items():
        curve = [c for c in result.get("curve", []) if c[1] is not None]
        used = result["config"]["config"].get("patience")
        if not curve or used is None:
            continue
        full = stopped(curve, used)
        for patience in sorted({2, 3, 5, used}):
            if patience > used:
                continue  # the recorded curve ends where the patience used stopped it
            last, best_epoch, best, spent = stopped(curve, patience)
            rows.append(f"| {model} | {patience}{' (used)' if patience == used else ''} | {last} | {best_epoch} | "
                        f"{best:.4f} | {best - full[2]:+.4f} | {spent / 60:.1f} |")  # fmt: skip
    if not rows:
        return []
    return ["### Early stopping on ml-1m-sas: the recorded validation curves under other patiences", "",
            "Replayed from each run's per-epoch validation NDCG@10 (no retraining); epochs include validation.", "",
            "| model | patience | stops after epoch | best epoch | valid NDCG@10 | against the patience used | "
            "minutes of epochs |", "|---|---|---|---|---|---|---|", *rows, ""]  # fmt: skip


def figure(results: dict[str, dict[str, dict]]) -> Path | None:
    """Training time against interactions, one line per model (log-log), as HTML beside the JSON."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for model in DEFAULT_ZOO:
        points = [(r[model]["interactions"], r[model]["wall_s"]) for r in results.values() if model in r]
        if len(points) == 2:
            fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers",
                                     name=model))  # fmt: skip
    if not fig.data:
        return None
    fig.update_layout(
        title="Training time against interactions (2-core CPU, full profile)",
        xaxis={"title": "interactions", "type": "log"},
        yaxis={"title": "seconds", "type": "log"},
    )
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / "time_vs_interactions.html"
    fig.write_html(path, include_plotlyjs="cdn")  # the library from its CDN keeps the file small
    return path


def report(quick: bool) -> str:
    results = load_results(quick)
    large = results.get("ml-1m-sas", {})
    loads = [r[k] for d in results.values() for r in d.values() for k in ("load_before", "load_after")]
    sample = next((r for d in results.values() for r in d.values()), None)
    machine = f"{sample['machine']}, torch {sample['torch']}, no GPU" if sample else "no runs yet"
    plot = figure(results)
    lines = [
        MARKER,
        "## The lab at ten times the data: ml-100k against ml-1m-sas",
        "",
        f"`python bench/scale.py --reuse` ({'quick' if quick else 'full'} profile), {machine}; each model trained "
        "alone in a fresh `python -m recsys_core train --workers 1` process. Load average (1 min) around the runs: "
        f"{min(loads, default=0):.1f} to {max(loads, default=0):.1f}. Test figures on the one protocol: {PROTOCOL}. "
        "ml-1m-sas is the SASRec file of MovieLens-1M with each user's last two interactions withheld "
        "(../shared/data/ml-1m-sas/README.md), so its test item is the third from last of the whole file.",
        "",
        "*time x*, *memory x*: ML-1M over ML-100K. *cost per work x*: seconds per epoch (validation left out) per "
        "unit of the model's epoch work (`Recommender.epoch_work`: training examples, times the catalogue for a "
        "full softmax), ML-1M over ML-100K; the bar is 1.3 for every torch model.",
        "",
        *model_rows(results),
        "",
        *session_lines(results.get("ml-100k", {}), large),
        *bars(results.get("ml-100k", {}), large),
        "",
        f"Time against interactions: `{plot.relative_to(ROOT)}` (plotly)." if plot else "",
        "",
        *patience_rows(large),
        "### Published figures beside ours (ml-1m-sas)",
        "",
        "Same file and protocol as the papers (full catalogue, last item is the test, seen items excluded), with one "
        "difference: this copy withholds each user's last two interactions, so our test item is the third from "
        "last and the models train on two fewer items per user. The figures are near the published ones, not "
        "equal to them; the CI is the 95% normal interval over 6,040 users.",
        "",
        *published_rows(large),
        "",
        MARKER,
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="ml-100k,ml-1m-sas")
    parser.add_argument("--models", default="all", help="'all' or a comma-separated list, in training order")
    parser.add_argument("--quick", action="store_true", help="the quick profile instead of the full one")
    parser.add_argument("--reuse", action="store_true", help="skip models whose result JSON exists")
    parser.add_argument("--report-only", action="store_true", help="rebuild the section from the stored JSON")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    os.environ["DEEPREC_ARTIFACTS_DIR"] = str(STORE)  # the training processes' store, read back here
    datasets = args.datasets.split(",")
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}: use {', '.join(DATASETS)}")
    if "ml-1m-sas" in datasets and not ML1M_SAS.is_file():
        parser.error(f"{ML1M_SAS} is missing: set DEEPREC_ML1M_SAS to your copy of the SASRec file")
    models = list(DEFAULT_ZOO) if args.models == "all" else args.models.split(",")
    if not args.report_only:
        run_models(datasets, models, args.quick, args.reuse)
    backfill_pipeline(stored_results())
    section = report(args.quick)
    write_section(Path(args.out), MARKER, section)
    print(section)


if __name__ == "__main__":
    main()
