"""Rankers and the two-stage pipeline on MovieLens-100K, written to docs/benchmarks.md.

    python bench/pipeline.py [--dataset ml-100k] [--retriever NAME] [--reuse] [--no-ctr]

1. The retriever: the trained non-ranker with the best validation NDCG@10 (or ``--retriever``).
2. Every ranker trained as ``python -m recsys_core train`` does, with hard negatives from that
   retriever's candidates (``--reuse`` keeps rankers already trained over it).
3. On test, in one run: NDCG@10 of retriever -> top 200 -> ranker against the retriever alone
   (same users, paired test), with the ranker alone (blend 0) and with its validation-tuned blend
   of the retriever's order; AUC/LogLoss of each ranker and of a popularity-only scorer on the
   held-out labelled rows (test item against 20 unseen items); per-stage latency for one user.
4. The explicit-label protocol (``evaluate --protocol ctr``) against RecBole 1.2.1's figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

# Passive OpenMP waiting: spinning threads stall when other processes share the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sections import write_section  # noqa: E402
from recsys_core.data import load_dataset, temporal_leave_last_out  # noqa: E402
from recsys_core.data.features import item_features  # noqa: E402
from recsys_core.data.split import PROTOCOL  # noqa: E402
from recsys_core.metrics import auc, log_loss, paired_test  # noqa: E402
from recsys_core.models import rankers, retrievers  # noqa: E402
from recsys_core.protocols.ctr import CTR_PROTOCOL, held_out_rows, popularity_logits, row_logits  # noqa: E402
from recsys_core.protocols.funnel import evaluate_pipeline  # noqa: E402
from recsys_core.serving.pipeline import DEFAULT_CANDIDATES, blend_for, candidate_lists, recommend_pipeline  # noqa: E402
from recsys_core.serving.recommend import Request  # noqa: E402
from recsys_core.store.artifacts import ArtifactError, load_artifact, read_manifest  # noqa: E402
from recsys_core.training.ctr import CTR_MODEL_SETTINGS, CTR_TRAINING, RATING_LEVELS, evaluate_ctr  # noqa: E402
from recsys_core.training.schedule import train_models  # noqa: E402

MARKER = "<!-- pipeline -->"
# RecBole 1.2.1 with its defaults on the explicit-label protocol, measured on this kind of machine (issue 5).
RECBOLE_CTR = {"dcn": (0.7906, 0.5628), "deepfm": (0.7858, 0.5659), "wide_deep": (0.7849, 0.5660),
               "fm": (0.7831, 0.5654), "xdeepfm": (0.7805, 0.5615)}  # fmt: skip
LATENCY_USERS = 200


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--retriever", default=None, help="default: best validation NDCG@10 among trained models")
    parser.add_argument("--reuse", action="store_true", help="keep rankers already trained over the retriever")
    parser.add_argument("--no-ctr", action="store_true")
    parser.add_argument("--ctr-from", type=Path, default=None,
                        help="reuse the JSON of `python -m recsys_core evaluate --protocol ctr --json`")  # fmt: skip
    parser.add_argument("--ctr-label-only-from", type=Path, default=None,
                        help="reuse the JSON of the same command with --label-only")  # fmt: skip
    parser.add_argument("--ctr-seeds-from", type=Path, default=None,
                        help="also report the JSON of the same command with --seeds N (mean and spread)")  # fmt: skip
    args = parser.parse_args()
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    dataset = load_dataset(args.dataset)
    split = temporal_leave_last_out(dataset)
    genres = item_features(dataset, split.item_popularity).genres
    retriever_name = args.retriever or best_retriever(dataset)
    retriever = load_artifact(dataset, retriever_name).model

    trained = {}
    for name in rankers():
        if args.reuse and trained_over(dataset, name, retriever_name):
            trained[name] = load_artifact(dataset, name).info["seconds"]
            continue
        report = train_models(dataset.name, [name], overrides={name: {"candidates_from": retriever_name}})[0]
        trained[name] = report.seconds if report.ok else report.message
        print(name, report, flush=True)

    candidates = candidate_lists(retriever, split, "test", DEFAULT_CANDIDATES)
    alone = evaluate_pipeline(retriever, None, split, "test", genres=genres, candidates=candidates)
    rows = held_out_rows(split, "test", n_negatives=20)
    labels = rows["label"]
    lines = [
        MARKER,
        f"## Rankers and the two-stage pipeline on {args.dataset}",
        "",
        f"Protocol: {PROTOCOL}. Retriever: **{retriever_name}** (the best validation NDCG@10 among the trained "
        f"models), top {DEFAULT_CANDIDATES} candidates with the history excluded; candidate recall@"
        f"{DEFAULT_CANDIDATES} on test {alone.candidate_recall:.4f}. Each ranker is trained on the training "
        "interactions with 2 random and 2 hard negatives (from the retriever's candidates) per positive, its "
        "epoch chosen on the pipeline's validation NDCG@10. *Ranker alone* orders the candidates by its own "
        "score; *blended* adds the retriever's order (score + b * -log(1 + retrieval rank)), with b chosen on "
        "validation from {0, 0.25, ..., 8}. AUC/LogLoss: each test user's held-out item against 20 unseen "
        "items. Paired test: per-user NDCG@10 of the blended pipeline minus the retriever alone.",
        f"Measured by `python bench/pipeline.py` on {time.strftime('%Y-%m-%d')}: {platform.processor() or 'CPU'}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}. Other jobs shared the machine (load "
        f"{load_before:.1f} on {os.cpu_count()} cores at the start), so times are upper bounds.",
        "",
        "| pipeline | NDCG@10 ranker alone | NDCG@10 blended [95% CI] | HR@10 blended | b | vs retriever "
        "(diff, bootstrap 95% CI, t-test p) | AUC | LogLoss | train s | latency p50 / p95 ms (retrieve, rank, total) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {retriever_name} alone | | {fmt_ci(alone.final.summary(), 'NDCG@10')} | "
        f"{alone.final.summary()['HR@10']:.4f} | | | {retriever_auc(retriever, rows):.4f} | | | |",
        f"| popularity scorer | | | | | | {auc(labels, popularity_logits(rows, split.item_popularity)):.4f} | | | |",
    ]
    for name in rankers():
        if not isinstance(trained[name], float):
            lines.append(f"| {retriever_name}+{name} | failed: {trained[name]} |||||||||")
            continue
        ranker = load_artifact(dataset, name).model
        blend = blend_for(retriever, ranker)
        pure = evaluate_pipeline(retriever, ranker, split, "test", candidates=candidates, blend=0.0)
        blended = evaluate_pipeline(retriever, ranker, split, "test", genres=genres, candidates=candidates)
        test = paired_test(blended.final.per_user["NDCG@10"].to_numpy(), alone.final.per_user["NDCG@10"].to_numpy())
        logits = row_logits(ranker, rows)
        latency = pipeline_latency(retriever, ranker, dataset, split)
        summary = blended.final.summary()
        lines.append(
            f"| {retriever_name}+{name} | {pure.final.ndcg_at_10:.4f} | {fmt_ci(summary, 'NDCG@10')} | "
            f"{summary['HR@10']:.4f} | {blend:g} | {test['mean_difference']:+.4f} [{test['bootstrap_ci_low']:+.4f}, "
            f"{test['bootstrap_ci_high']:+.4f}], p={test['t_test_p']:.3g} | {auc(labels, logits):.4f} | "
            f"{log_loss(labels, logits):.4f} | {trained[name]:.0f} | {latency} |"
        )
    lines += [
        "",
        f"Latency: {LATENCY_USERS} known users, one request each (200 candidates, ranking, top 10) after "
        "warm-up, exact retrieval, one process; p50 / p95 of each stage.",
        "",
    ]
    if not args.no_ctr:
        lines += ctr_table(args.dataset, args.ctr_from, args.ctr_label_only_from)
        if args.ctr_seeds_from:
            lines += seeds_line(args.ctr_seeds_from)
    lines += [f"Whole run: {time.perf_counter() - started:.0f} s.", MARKER]
    write_section(ROOT / "docs" / "benchmarks.md", MARKER, "\n".join(lines))
    print("\n".join(lines))


def best_retriever(dataset) -> str:
    """The trained non-ranker with the best stored validation NDCG@10."""
    scores = {}
    for name in read_manifest(dataset.name)["models"]:
        if name in retrievers():
            with contextlib.suppress(ArtifactError, AttributeError):
                scores[name] = load_artifact(dataset, name).results.valid.ndcg_at_10.mean
    if not scores:
        raise SystemExit("no trained retriever: train one first, e.g. python -m recsys_core train --models sasrec")
    return max(scores, key=scores.get)


def trained_over(dataset, name: str, retriever: str) -> bool:
    try:
        return load_artifact(dataset, name).model.config.candidates_from == retriever
    except ArtifactError:
        return False


def fmt_ci(summary: dict, metric: str) -> str:
    low, high = summary[f"{metric} CI"]
    return f"{summary[metric]:.4f} [{low:.4f}, {high:.4f}]"


@torch.no_grad()
def retriever_auc(retriever, rows) -> float:
    """The retriever's own scores on the labelled rows (its full-catalogue scores, gathered)."""
    users, first, row_of = np.unique(rows["user"], return_index=True, return_inverse=True)
    histories = torch.from_numpy(rows["history"][first])  # every row of a user has the same history
    scores = retriever.score_all(torch.from_numpy(users), histories).float().numpy()
    logits = scores[row_of, rows["item"]]
    return auc(rows["label"], logits)


def pipeline_latency(retriever, ranker, dataset, split) -> str:
    rng = np.random.default_rng(0)
    users = rng.choice(split.evaluated_users("test"), LATENCY_USERS, replace=False)
    timings = {"retrieve": [], "rank": [], "total": []}
    for warm_up in users[:10]:
        recommend_pipeline(retriever, ranker, dataset, split, Request(str(dataset.user_ids[warm_up])))
    for user in users:
        answer = recommend_pipeline(retriever, ranker, dataset, split, Request(str(dataset.user_ids[user])))
        for stage, ms in answer.latency_ms.items():
            timings[stage].append(ms)
    return ", ".join(f"{np.percentile(t, 50):.1f} / {np.percentile(t, 95):.1f}" for t in timings.values())


def ctr_table(dataset_name: str, from_file: Path | None = None, label_only_file: Path | None = None) -> list[str]:
    started = time.perf_counter()

    def models(path: Path | None, label_only: bool) -> dict[str, dict]:
        return json.loads(path.read_text())["models"] if path else evaluate_ctr(dataset_name, label_only=label_only)

    results, label_only = models(from_file, False), models(label_only_file, True)
    lines = [
        f"### Explicit-label protocol (`python -m recsys_core evaluate --protocol ctr`), {dataset_name}",
        "",
        f"{CTR_PROTOCOL}. Settings for this protocol: {CTR_TRAINING}, ordinal thresholds {RATING_LEVELS}, and per "
        f'model {CTR_MODEL_SETTINGS}, each chosen on validation AUC (see docs/ctr/trials.md). "label only": the '
        "same rankers trained on the label alone (`--label-only`), as RecBole trains; the validation and test rows "
        "are the same. RecBole 1.2.1 with its defaults on this protocol (its own random split), measured on this "
        "kind of machine (issue 5). Popularity: the item's training-row count as the score.",
        "",
        "| model | test AUC | test LogLoss | valid AUC | best epoch | train s | test AUC, label only "
        "| RecBole AUC / LogLoss | AUC >= RecBole |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in results.items():
        if "error" in row:
            lines.append(f"| {name} | failed: {row['error']} ||||||||")
            continue
        ref = RECBOLE_CTR.get(name)
        reference = f"{ref[0]:.4f} / {ref[1]:.4f}" if ref else "-"
        verdict = ("yes" if row["AUC"] >= ref[0] else "**no**") if ref else "-"
        logloss = f"{row['LogLoss']:.4f}" if "LogLoss" in row else "-"
        valid = f"{row['valid AUC']:.4f}" if "valid AUC" in row else "-"
        epoch = row.get("best_epoch", "-")
        seconds = f"{row['seconds']:.0f}" if "seconds" in row else "-"
        alone = label_only.get(name, {})
        alone = f"{alone['AUC']:.4f}" if "AUC" in alone and name != "popularity" else "-"
        lines.append(f"| {name} | {row['AUC']:.4f} | {logloss} | {valid} | {epoch} | {seconds} | {alone} "
                     f"| {reference} | {verdict} |")  # fmt: skip
    source = (
        f"read from `{from_file.as_posix()}` and `{label_only_file.as_posix()}`, the CLI's output in the same session"
        if from_file and label_only_file
        else (f"{time.perf_counter() - started:.0f} s")
    )
    lines += ["", f"Explicit-label run: {source}.", ""]
    return lines


def seeds_line(path: Path) -> list[str]:
    """Each model's test AUC over split seeds, from `evaluate --protocol ctr --seeds N --json`."""
    spread = json.loads(path.read_text())["over_seeds"]
    parts = [f"{name} {row['AUC mean']:.4f} ± {row['AUC std']:.4f}" for name, row in spread.items()]
    seeds = next(iter(spread.values()))["seeds"]
    return [f"Over split seeds 0..{seeds - 1} (`--seeds {seeds}`, read from `{path.as_posix()}`), test AUC mean ± "
            f"standard deviation: {', '.join(parts)}; the table above is seed 0.", ""]  # fmt: skip


if __name__ == "__main__":
    main()
