"""Fair tuning on MovieLens-100K: every model with the same Optuna trial budget, the default and the
tuned figures side by side, and a paired test of tuned against default per model, written to
docs/benchmarks.md.

    python bench/tuning.py [--dataset ml-100k] [--models all|NAME,...] [--trials 20] [--reuse]
    python bench/tuning.py --report-only

Each model is tuned alone, in a fresh ``python -m recsys_core tune --trials N`` process (all cores
to it), in a bench store of its own (``artifacts/bench-tuning/``, studies in its ``tuning.db``), so
the lab's own models are untouched. A model that starts from stored models (NeuMF from GMF and
MLP) or reorders a retriever's candidates (the rankers, sasrec's) builds on what that store holds:
the tuned model where its study ran first, else one trained there with its defaults, and the
report says which. Per model: validation and test NDCG@10 of the defaults (the study's first
trial) and of the best trial, with 95% CIs; trials finished and pruned; the study's time; and a
paired test (t-test, Wilcoxon, bootstrap CI of the difference) of the tuned model's per-user test
NDCG@10 against the defaults'. Test chooses nothing: it is computed once for each of the two.
Results are kept in ``docs/tuning/runs.json`` as each model finishes, and ``--reuse`` skips those
already there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import optuna  # noqa: E402

from bench.scale import with_ci  # noqa: E402
from bench.sections import write_section  # noqa: E402
from recsys_core.data import load_dataset  # noqa: E402
from recsys_core.data.split import PROTOCOL  # noqa: E402
from recsys_core.metrics import paired_test  # noqa: E402
from recsys_core.models import DEFAULT_ZOO, REGISTRY, rankers  # noqa: E402
from recsys_core.models.rankers.base import RankerConfig  # noqa: E402
from recsys_core.store.artifacts import read_per_user  # noqa: E402
from recsys_core.training.schedule import prerequisites  # noqa: E402
from recsys_core.training.tuning import default_storage, open_storage, study_name, summarise  # noqa: E402

MARKER = "<!-- tuning -->"
STORE = ROOT / "artifacts" / "bench-tuning"
RESULTS = ROOT / "docs" / "tuning" / "runs.json"
# Per-user test NDCG@10 of the defaults and of the tuned model, apart from runs.json so that it stays
# readable: the leaderboard's paired tests between models are computed from it.
PER_USER = ROOT / "docs" / "tuning" / "per_user.json"


def run(command: list[str], log: Path) -> float:
    started = time.perf_counter()
    with log.open("w") as out:
        subprocess.run(command, cwd=ROOT, env={**os.environ, "DEEPREC_ARTIFACTS_DIR": str(STORE)}, check=True,
                       stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    return time.perf_counter() - started


def tune_one(dataset: str, model: str, trials: int) -> dict:
    os.environ["DEEPREC_ARTIFACTS_DIR"] = str(STORE)  # this process reads the bench store too
    data = load_dataset(dataset)
    builds_on = prepare_prerequisites(dataset, data.name, model)
    load = os.getloadavg()[0]
    earlier_s = finished_trial_seconds(dataset, model, trials)  # a study stopped before resumes here
    command = [sys.executable, "-m", "recsys_core", "tune", "--dataset", dataset, "--models", model,
               "--trials", str(trials), "--study", f"bench-{trials}"]  # fmt: skip
    seconds = earlier_s + run(command, STORE / f"{dataset}-{model}-tune.log")
    study = load_bench_study(dataset, model, trials)
    report = summarise(study, model)
    default = next(t for t in study.trials if t.user_attrs.get("defaults"))
    before, tuned = keep_per_user(dataset, model, study)
    # The defaults won: the stored model is that trial, and a test of it against itself would only
    # read the last digits of two roundings as a difference.
    best_is_default = study.best_trial.number == default.number
    return {"model": model, "dataset": dataset, "trials": trials, "finished": report.finished, "pruned": report.pruned,
            "default_valid": report.default_valid, "default_test": report.default_test,
            "tuned_valid": report.tuned_valid, "tuned_test": report.tuned_test, "best_params": report.best_params,
            "study_s": seconds, "resumed_after_s": earlier_s or None, "load_before": load,
            "load_after": os.getloadavg()[0],
            "best_is_default": best_is_default, "builds_on": builds_on,
            "paired": paired_test(tuned, before) if len(tuned) == len(before) and not best_is_default else None,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores"}  # fmt: skip


def prepare_prerequisites(dataset: str, name: str, model: str) -> dict[str, str]:
    """Train, with their defaults, the stored models ``model`` starts from (NeuMF: GMF and MLP) or
    reorders (a ranker: its retriever) that the bench store lacks; a model tuned before stays its
    tuned self there. Default and tuned trials build on the same ones, so their comparison is fair;
    which ones they were (the tuned study, or "defaults") is returned for the record."""
    needed = sorted(prerequisites(model))
    missing = [m for m in needed if not (STORE / name / m / "metrics.json").exists()]
    if missing:
        run([sys.executable, "-m", "recsys_core", "train", "--dataset", dataset, "--models", ",".join(missing),
             "--no-maps"], STORE / f"{dataset}-{'-'.join(missing)}-train.log")  # fmt: skip
    return stored_prerequisites(name, model)


def stored_prerequisites(name: str, model: str) -> dict[str, str]:
    """What the bench store holds of ``model``'s prerequisites: the study that tuned each, or "defaults"."""
    out = {}
    for m in sorted(prerequisites(model)):
        info = json.loads((STORE / name / m / "info.json").read_text())
        out[m] = info["tuning"]["study"] if "tuning" in info else "defaults"
    return out


def finished_trial_seconds(dataset: str, model: str, trials: int) -> float:
    """The summed durations of the trials an earlier, stopped run of this study finished (0 for a
    new study): with them, a resumed study's time is still the whole search's."""
    try:
        study = load_bench_study(dataset, model, trials)
    except KeyError:  # no such study yet
        return 0.0
    return sum((t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials
               if t.state.is_finished() and t.datetime_start and t.datetime_complete)  # fmt: skip


def load_bench_study(dataset: str, model: str, trials: int) -> optuna.Study:
    data = load_dataset(dataset)  # in the bench store: tune_one has pointed DEEPREC_ARTIFACTS_DIR there
    return optuna.load_study(study_name=study_name(data, model, f"bench-{trials}"),
                             storage=open_storage(default_storage(data)))  # fmt: skip


def keep_per_user(dataset: str, model: str, study: optuna.Study) -> tuple[np.ndarray, np.ndarray]:
    """Copy the defaults' and the tuned model's per-user test NDCG@10 from the bench store (the
    study's first trial; the stored best trial) into docs/tuning/per_user.json; return both."""
    os.environ["DEEPREC_ARTIFACTS_DIR"] = str(STORE)
    default = next(t for t in study.trials if t.user_attrs.get("defaults"))
    tuned = read_per_user(load_dataset(dataset).name, model)
    kept = per_user()
    entry = kept.setdefault(dataset, {"users": tuned["user"].tolist(), "models": {}})
    if entry["users"] != tuned["user"].tolist():
        raise RuntimeError(f"{model}'s test users on {dataset} differ from the other models'")
    entry["models"][model] = {"default": default.user_attrs["test NDCG@10 per user"],
                              "tuned": tuned["NDCG@10"].round(6).tolist()}  # fmt: skip
    PER_USER.write_text(json.dumps(kept, separators=(",", ":")))
    return np.array(default.user_attrs["test NDCG@10 per user"]), tuned["NDCG@10"].to_numpy()


def per_user() -> dict:
    return json.loads(PER_USER.read_text()) if PER_USER.exists() else {}


def stored() -> dict[str, dict]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def keep(result: dict) -> None:
    results = stored()
    results[f"{result['dataset']}/{result['model']}"] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, default=float))


def format_p(paired: dict, key: str) -> str:
    return f"{paired[key]:.3g}" if key in paired else "-"


def test_ci(estimate: list | None) -> str:
    return with_ci(estimate) if estimate else "-"


def report(dataset: str) -> str:
    rows = [r for r in stored().values() if r["dataset"] == dataset]
    if not rows:
        return f"{MARKER}\n## Fair tuning on {dataset}\n\nNot run yet: `python bench/tuning.py`.\n{MARKER}"
    budgets = sorted({r["trials"] for r in rows})
    loads = [x for r in rows for x in (r["load_before"], r["load_after"])]
    lines = [MARKER, f"## Fair tuning on {dataset}: the same budget for every model", "",
             f"`python bench/tuning.py --trials {budgets[0]}`, {rows[0]['machine']}; each model's study in its own "
             f"`python -m recsys_core tune` process. Budget: {', '.join(map(str, budgets))} trials per model "
             "(TPE, seeded; median pruner; the defaults as trial 0). Objective: validation NDCG@10; test computed "
             "once for the defaults and once for the best trial. The studies took "
             f"{sum(r['study_s'] for r in rows) / 3600:.1f} hours together. Load average (1 min) {min(loads):.1f} to "
             f"{max(loads):.1f}. Protocol: {PROTOCOL}. A ranker ({', '.join(rankers())}) is validated, as it is "
             f"trained, on reordering its retriever's top {RankerConfig.n_candidates} candidates by its own score (no "
             "blend with the retriever), so its "
             "validation columns are not comparable with the other models'; its test figures, like every model's, "
             "rank the whole catalogue by the model's own score.", "",
             "| model | trials (pruned) | default valid | tuned valid | default test [95% CI] | tuned test [95% CI] "
             "| difference [bootstrap 95% CI] | paired t p | Wilcoxon p | study min | best settings |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    tunable, missing = untuned(rows)
    if missing:  # a partial run: say so, so that the table is not read as the whole zoo
        lines[-2:-2] = [f"Tuned so far: {len(tunable) - len(missing)} of the {len(tunable)} models with a search "
                        f"space; still to run (`python bench/tuning.py --reuse`): {', '.join(missing)}.",
                        ""]  # fmt: skip
    for r in sorted(rows, key=lambda r: list(DEFAULT_ZOO).index(r["model"])):
        # Runs before "best_is_default" was recorded: the defaults won when no trial beat them.
        defaults_won = r.get("best_is_default", r["tuned_valid"] <= r["default_valid"])
        p = {} if defaults_won else r["paired"] or {}
        diff = "none: the defaults were the best trial" if defaults_won else "-"
        if p:
            diff = f"{p['mean_difference']:+.4f} [{p['bootstrap_ci_low']:+.4f}, {p['bootstrap_ci_high']:+.4f}]"
        settings = (
            "the defaults"
            if defaults_won
            else ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["best_params"].items())
        )
        lines.append(f"| {r['model']} | {r['finished']} ({r['pruned']}) | {r['default_valid']:.4f} | "
                     f"{r['tuned_valid']:.4f} | {test_ci(r['default_test'])} | {test_ci(r['tuned_test'])} | {diff} | "
                     f"{format_p(p, 't_test_p')} | {format_p(p, 'wilcoxon_p')} | "
                     f"{r['study_s'] / 60:.1f} | {settings} |")  # fmt: skip
    built = [f"{r['model']} on " + ", ".join(f"{m} ({how})" for m, how in r["builds_on"].items())
             for r in rows if r.get("builds_on")]  # fmt: skip
    if built:  # default and tuned trials of one model build on the same stored models
        lines += ["", "Stored models each study built on (pre-trained weights, or the retriever whose candidates a "
                  f"ranker reorders; the study that tuned them, or their defaults): {'; '.join(built)}."]  # fmt: skip
    extra = cited(dataset)
    lines += ["", *leaderboard(dataset, rows), "", *extra, *([""] if extra else []), MARKER]
    return "\n".join(lines)


def untuned(rows: list[dict]) -> tuple[list[str], list[str]]:
    """The models with a search space, and those of them without a result in ``rows``."""
    tunable = [m for m in DEFAULT_ZOO if REGISTRY[m].config_class.SEARCH_SPACE]
    return tunable, [m for m in tunable if m not in {r["model"] for r in rows}]


def leaderboard(dataset: str, rows: list[dict]) -> list[str]:
    """The models ordered by test NDCG@10 with their default settings and after tuning, and each
    pair whose order tuning reverses, with a paired test of the two tuned models on the same users."""
    default = {r["model"]: r["default_test"][0] for r in rows}
    tuned = {r["model"]: r["tuned_test"][0] for r in rows}
    before, after = sorted(default, key=default.get, reverse=True), sorted(tuned, key=tuned.get, reverse=True)
    lines = ["### The leaderboard before and after tuning", "",
             f"The {len(rows)} models tuned{' so far' if untuned(rows)[1] else ''}, by test NDCG@10 (the same "
             "protocol; the defaults are the study's first trial).", "",
             "| place | default settings | test NDCG@10 | tuned | test NDCG@10 |", "|---|---|---|---|---|"]  # fmt: skip
    for place, (a, b) in enumerate(zip(before, after, strict=True), start=1):
        lines.append(f"| {place} | {a} | {default[a]:.4f} | {b} | {tuned[b]:.4f} |")
    # (a, b): a above b after tuning, below it before.
    flips = [(a, b) for i, a in enumerate(after) for b in after[i + 1 :] if before.index(a) > before.index(b)]
    users = per_user().get(dataset, {}).get("models", {})
    heading = ("Pairs whose order tuning reverses (the first now above the second), with a paired test of the two "
               "tuned models' per-user test NDCG@10:")  # fmt: skip
    lines += ["", heading if flips else "Tuning reverses the order of no pair of models.", ""]
    for a, b in flips:
        line = (f"- **{a}** above **{b}**: with the defaults {default[a]:.4f} against {default[b]:.4f}; tuned "
                f"{tuned[a]:.4f} against {tuned[b]:.4f}")  # fmt: skip
        if a in users and b in users:
            line += "; " + difference(users[a]["tuned"], users[b]["tuned"])
        lines.append(line + ".")
    return lines


# The pairs that the hand-written paragraph below the section compares beyond the reversed pairs, as
# (model, "default" or "tuned", model, "default" or "tuned"): generated here, so that every figure the
# paragraph quotes comes from this command.
CITED = [("deepfm", "default", "fm", "default"), ("dcn", "default", "fm", "default"),
         ("sasrec", "default", "gru4rec", "default"), ("fm", "tuned", "deepfm", "tuned"),
         ("gru4rec", "tuned", "bert4rec", "tuned"), ("wide_deep", "tuned", "two_tower", "tuned"),
         ("deepfm", "tuned", "two_tower", "tuned"), ("fm", "tuned", "two_tower", "tuned"),
         ("neumf", "default", "itemknn", "tuned"), ("neumf", "default", "ease", "tuned"),
         ("neumf", "default", "bpr", "tuned"), ("neumf", "tuned", "gmf", "tuned"), ("cdae", "tuned", "ease", "tuned"),
         ("lightgcn", "tuned", "ease", "tuned")]  # fmt: skip


def cited(dataset: str) -> list[str]:
    users = per_user().get(dataset, {}).get("models", {})
    pairs = [pair for pair in CITED if pair[0] in users and pair[2] in users]
    if not pairs:
        return []
    lines = ["Other pairs the paragraph below compares (per-user test NDCG@10 of the first minus the second):", ""]
    for a, a_settings, b, b_settings in pairs:
        lines.append(f"- **{a}** ({a_settings}) against **{b}** ({b_settings}): "
                     f"{difference(users[a][a_settings], users[b][b_settings])}.")  # fmt: skip
    return lines


def difference(first: list[float], second: list[float]) -> str:
    """A paired test of two models' per-user figures, as the report writes it."""
    p = paired_test(np.array(first), np.array(second))
    return (f"difference {p['mean_difference']:+.4f} [{p['bootstrap_ci_low']:+.4f}, {p['bootstrap_ci_high']:+.4f}], "
            f"paired t p {p['t_test_p']:.3g}, Wilcoxon p {p['wilcoxon_p']:.3g}: {verdict(p)}")  # fmt: skip


def verdict(paired: dict, level: float = 0.05) -> str:
    t, w = paired["t_test_p"] < level, paired["wilcoxon_p"] < level
    if t and w:
        return f"significant at {level} by both tests"
    if t or w:
        return f"significant at {level} by the {'paired t-test' if t else 'Wilcoxon test'} only"
    return f"not significant at {level}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", default="all")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="skip models already in docs/tuning/runs.json")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    models = [m for m in (DEFAULT_ZOO if args.models == "all" else args.models.split(","))
              if REGISTRY[m].config_class.SEARCH_SPACE]  # fmt: skip
    STORE.mkdir(parents=True, exist_ok=True)
    for model in [] if args.report_only else models:
        if args.reuse and f"{args.dataset}/{model}" in stored():
            continue
        print(f"tuning {model} ({args.trials} trials) …", flush=True)
        result = tune_one(args.dataset, model, args.trials)
        keep(result)
        print(f"  valid {result['default_valid']:.4f} -> {result['tuned_valid']:.4f} in "
              f"{result['study_s'] / 60:.1f} min", flush=True)  # fmt: skip
    section = report(args.dataset)
    write_section(ROOT / "docs" / "benchmarks.md", MARKER, section)
    print(section)


if __name__ == "__main__":
    main()
