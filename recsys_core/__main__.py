"""Command line: ``python -m recsys_core train|tune|evaluate|recommend``.

python -m recsys_core train --dataset ml-100k --models pop,itemknn,ease,bpr
torchrun --standalone --nproc_per_node 2 -m recsys_core train --dataset ml-1m-sas.csv --models sasrec
python -m recsys_core train --dataset ml-1m-sas.csv --models sasrec --print-torchrun 8 --nnodes 2
python -m recsys_core tune --dataset ml-100k --models bpr,sasrec --trials 20
python -m recsys_core tune --dataset ml-100k --models sasrec --trials 40 --storage postgresql+psycopg://host/db
python -m recsys_core evaluate --dataset ml-100k --json
python -m recsys_core recommend --dataset ml-100k --model ease --k 10 < requests.jsonl
python -m recsys_core recommend --dataset ml-100k --model bpr --index hnsw < requests.jsonl
python -m recsys_core recommend --dataset ml-100k --model two_tower+deepfm < requests.jsonl
python -m recsys_core evaluate --dataset ml-100k --models sasrec,sasrec+dcn
python -m recsys_core evaluate --dataset ml-100k --protocol ctr --models fm,deepfm
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from tqdm import tqdm

from recsys_core.data import DEFAULT_DATASET, CsvError, DatasetUnavailable, load_dataset, temporal_leave_last_out
from recsys_core.data.movielens import ChecksumMismatch
from recsys_core.data.split import PROTOCOL
from recsys_core.metrics import ACCURACY_METRICS
from recsys_core.models import DEFAULT_ZOO, REGISTRY, inner_product_models
from recsys_core.protocols.ctr import CTR_PROTOCOL, CtrUnavailable
from recsys_core.protocols.funnel import evaluate_pipelines
from recsys_core.protocols.topk import evaluate_models
from recsys_core.serving.pipeline import (
    DEFAULT_CANDIDATES,
    SEPARATOR,
    PipelineError,
    check_candidates,
    recommend_pipeline,
    split_name,
)
from recsys_core.serving.recommend import Request, RequestError, check_k, printable, recommend
from recsys_core.serving.request_stream import answer_lines
from recsys_core.serving.retriever import INDEX_KINDS, RetrievalError, load_or_build_index
from recsys_core.store.artifacts import ArtifactError, TrainingLocked, load_artifact
from recsys_core.training.ctr import evaluate_ctr, over_seeds
from recsys_core.training.devices import resolve_device_name
from recsys_core.training.distributed import SINGLE, join, launched, leave, slurm_script, torchrun_command
from recsys_core.training.forms import ConfigError, parse_overrides
from recsys_core.training.jobs import ProgressJournal
from recsys_core.training.loop import EPOCH, Progress
from recsys_core.training.schedule import default_workers, train_models

EXIT_BAD_INPUT, EXIT_LOCKED, EXIT_FAILED = 2, 3, 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recsys_core", description="DeepRec Lab command line")
    commands = parser.add_subparsers(dest="command", required=True)

    _add_train_command(commands)
    _add_tune_command(commands)

    evaluate = commands.add_parser("evaluate", help="evaluate trained models on the test split")
    evaluate.add_argument("--dataset", default=DEFAULT_DATASET)
    evaluate.add_argument("--models", default=None, help="comma-separated; default: every trained model")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--protocol", choices=["topk", "ctr"], default="topk",
                          help="topk: the one top-K protocol (trained models, RETRIEVER+RANKER pipelines too); "
                          "ctr: train and score rankers on explicit labels (AUC, LogLoss)")  # fmt: skip
    evaluate.add_argument("--max-epochs", type=int, default=None, help="ctr protocol: cap training epochs")
    evaluate.add_argument("--seeds", type=int, default=1,
                          help="ctr protocol: also split and train with seeds 1..N-1 and report each model's mean "
                          "and standard deviation over the N seeds (seed 0 stays the headline)")  # fmt: skip
    evaluate.add_argument("--label-only", action="store_true",
                          help="ctr protocol: train on the label alone, without the ordinal terms of the other "
                          "star thresholds (as RecBole trains)")  # fmt: skip
    evaluate.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])

    rec = commands.add_parser("recommend", help="answer JSON-lines requests from stdin")
    rec.add_argument("--dataset", default=DEFAULT_DATASET)
    rec.add_argument("--model", required=True, help="a trained model, or RETRIEVER+RANKER (e.g. two_tower+deepfm)")
    rec.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES, help="pipeline: candidates to rank")
    rec.add_argument("--k", type=int, default=10)
    scored_by_vectors = ", ".join(inner_product_models())
    rec.add_argument("--index", choices=INDEX_KINDS, default=None,
                     help=f"answer through a FAISS index ({scored_by_vectors}); default: exact scoring")  # fmt: skip

    args = parser.parse_args(argv)
    try:
        return {"train": _train, "tune": _tune, "evaluate": _evaluate, "recommend": _recommend}[args.command](args)
    except (DatasetUnavailable, CsvError, ChecksumMismatch, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingLocked as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_LOCKED


def _add_train_command(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train models and store them in artifacts/")
    train.add_argument("--dataset", default=DEFAULT_DATASET, help="registered name or path to a CSV")
    train.add_argument("--models", default="all", help="'all' or a comma-separated list: " + ",".join(REGISTRY))
    train.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    train.add_argument("--quick", action="store_true",
                       help="the quick profile (first runs, demos): each model's quick settings")  # fmt: skip
    train.add_argument("--workers", type=int, default=None,
                       help="models trained at once, each in its own process (default: up to 4 on a CPU, one per "
                       "core; 1 on a GPU)")  # fmt: skip
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--maps", action=argparse.BooleanOptionalAction, default=True,
                       help="draw the trained models' embedding maps (UMAP) at the end")  # fmt: skip
    train.add_argument("--overrides", default=None, metavar="JSON",
                       help='hyperparameters per model, e.g. \'{"sasrec": {"epochs": 5, "n_layers": 1}}\'')  # fmt: skip
    train.add_argument("--progress-jsonl", default=None, metavar="PATH",
                       help="also append progress as JSON lines to PATH (for background jobs)")  # fmt: skip
    train.add_argument("--print-torchrun", type=int, default=None, metavar="PROCESSES",
                       help="print the torchrun commands that train these models data-parallel with PROCESSES "
                       "per machine (one per GPU): on one machine, on --nnodes machines, under Slurm")  # fmt: skip
    train.add_argument("--nnodes", type=int, default=2, help="with --print-torchrun: the machines of a multi-node run")
    train.add_argument("--rdzv-endpoint", default="HOST:29400",
                       help="with --print-torchrun: host:port of the first machine, where all meet")  # fmt: skip


def _add_tune_command(commands: argparse._SubParsersAction) -> None:
    tune = commands.add_parser("tune", help="tune models on validation, the same number of Optuna trials each")
    tune.add_argument("--dataset", default=DEFAULT_DATASET, help="registered name or path to a CSV")
    tune.add_argument("--models", default="all", help="'all' or a comma-separated list: " + ",".join(REGISTRY))
    tune.add_argument("--trials", type=int, required=True, help="trials per model: the same budget for every model")
    tune.add_argument("--timeout", type=float, default=None, metavar="S",
                      help="start no trial of a model's study after S seconds (its report says if the budget was "
                      "not reached)")  # fmt: skip
    tune.add_argument("--storage", default=None, metavar="URL",
                      help="Optuna storage, any SQLAlchemy URL (default: sqlite:///artifacts/<dataset>/tuning.db); "
                      "processes on one storage and study share its trials")  # fmt: skip
    tune.add_argument("--study", default=None, metavar="NAME",
                      help="studies are named NAME/MODEL (default NAME: the dataset's store name)")  # fmt: skip
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    tune.add_argument("--store", action=argparse.BooleanOptionalAction, default=True,
                      help="make each model's best trial its stored model (--no-store: only report)")  # fmt: skip
    tune.add_argument("--grace", type=int, default=None, metavar="S",
                      help="seconds without a heartbeat before a running trial counts as lost (its process died) "
                      "and is run again (default 60)")  # fmt: skip
    tune.add_argument("--progress-jsonl", default=None, metavar="PATH",
                      help="also append each trial's progress as JSON lines to PATH (for background jobs)")  # fmt: skip


def _overrides(text: str | None, names: list[str]) -> dict[str, dict]:
    """``--overrides`` as validated config keyword arguments per model (bad input: exit 2, with why)."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"--overrides is not valid JSON: {error}") from error
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ConfigError('--overrides must map model names to settings, e.g. {"sasrec": {"epochs": 5}}')
    unknown = [m for m in raw if m not in names]
    if unknown:
        raise ConfigError(f"--overrides names model(s) not being trained: {', '.join(unknown)}")
    return {model: parse_overrides(model, values, explicit=True) for model, values in raw.items()}


def _model_list(text: str | None, pipelines: bool = False) -> list[str]:
    if text in (None, "", "all"):
        return list(DEFAULT_ZOO)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if pipelines:
        for name in names:
            try:
                split_name(name)
            except PipelineError as error:
                raise DatasetUnavailable(str(error)) from error
    unknown = [n for n in names if n not in REGISTRY and not (pipelines and SEPARATOR in n)]
    if unknown:
        raise DatasetUnavailable(f"unknown model(s) {', '.join(unknown)}; registered: {', '.join(REGISTRY)}")
    return names


def _train(args: argparse.Namespace) -> int:
    names = _model_list(args.models)
    overrides = _overrides(args.overrides, names)
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {args.workers}")
    if args.print_torchrun is not None:
        return _print_torchrun(args, names)
    # Started by torchrun as one of several processes: a data-parallel run (training/distributed.py).
    world = join(resolve_device_name(args.device)) if launched() else SINGLE
    try:
        return _train_models(args, names, overrides, world)
    finally:
        leave(world)


def _print_torchrun(args: argparse.Namespace, names: list[str]) -> int:
    if args.print_torchrun < 1 or args.nnodes < 1:
        raise ConfigError("--print-torchrun and --nnodes must be at least 1")
    processes, nodes = args.print_torchrun, args.nnodes
    one = torchrun_command(args.dataset, names, processes, device=args.device)
    several = torchrun_command(args.dataset, names, processes, nodes, args.rdzv_endpoint, args.device)
    print(f"# one machine, {processes} processes:\n{one}\n")
    print(f"# {nodes} machines: the same on each (the data and artifacts/ on storage they share):\n{several}\n")
    print(f"# under Slurm (sbatch FILE):\n{slurm_script(args.dataset, names, processes, nodes, args.device)}")
    return 0


def _train_models(args: argparse.Namespace, names: list[str], overrides: dict[str, dict], world) -> int:
    bars: dict[str, tqdm] = {}

    def show(progress: Progress) -> None:
        if progress.stored:
            return  # its bar closed when its training ended
        bar = bars.get(progress.model)
        if bar is None:
            bar = bars[progress.model] = tqdm(total=progress.epochs, desc=f"{progress.model:>8}", unit="epoch",
                                               file=sys.stderr, leave=True)  # fmt: skip
        if progress.kind == EPOCH or progress.done:
            bar.n = progress.epoch if not progress.done else bar.total
            postfix = {}
            if progress.loss is not None:
                postfix["loss"] = f"{progress.loss:.4f}"
            if progress.valid_ndcg is not None:
                postfix["valid NDCG@10"] = f"{progress.valid_ndcg:.4f}"
            bar.set_postfix(postfix, refresh=False)
            bar.refresh()
        if progress.done:
            bar.close()

    # Process 0 speaks for a data-parallel run: its progress, journal and reports are the run's.
    journal = ProgressJournal(args.progress_jsonl) if args.progress_jsonl and world.is_main else None
    pids = world.gather(os.getpid())
    if journal:
        journal.write({"event": "start", "models": names, "pid": os.getpid(), "pids": pids, "world_size": world.size})

    def report(progress: Progress) -> None:
        show(progress)
        if journal:
            journal.write({"event": "progress", **dataclasses.asdict(progress)})

    try:
        workers = args.workers if args.workers is not None else default_workers(args.device)
        reports = train_models(args.dataset, names, device=args.device, quick=args.quick, seed=args.seed,
                               progress=report if world.is_main else None, overrides=overrides, maps=args.maps,
                               workers=workers, world=world)  # fmt: skip
    except TrainingLocked as error:
        if journal:
            journal.write({"event": "finished", "ok": False, "message": str(error), "reports": []})
        raise
    if not world.is_main:
        return 0 if all(r.ok for r in reports) else EXIT_FAILED
    if journal:
        journal.write({"event": "finished", "ok": all(r.ok for r in reports), "message": "",
                       "reports": [dataclasses.asdict(r) for r in reports]})  # fmt: skip
    for report in reports:
        if report.ok:
            line = f"{report.model}: test NDCG@10 {report.test_ndcg:.4f} in {report.seconds:.1f} s {report.message}"
            print(line.rstrip())
        else:
            print(f"{report.model}: FAILED: {report.message}", file=sys.stderr)
    return 0 if all(r.ok for r in reports) else EXIT_FAILED


def _tune(args: argparse.Namespace) -> int:
    # Importing Optuna takes seconds here: only the command that needs it pays for it.
    import optuna

    from recsys_core.training.tuning import GRACE_S, TuneEvent, TuningError, tune_models

    names = _model_list(args.models)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # each trial gets one line of ours below
    journal = ProgressJournal(args.progress_jsonl) if args.progress_jsonl else None
    if journal:
        journal.write({"event": "start", "models": names, "pid": os.getpid(), "trials": args.trials})

    def report(event: TuneEvent) -> None:
        if journal:
            journal.write({"event": "tune", **dataclasses.asdict(event)})
        if event.kind == "trial":
            value = "-" if event.valid_ndcg is None else f"{event.valid_ndcg:.4f}"
            print(f"{event.model} trial {event.trial}: {event.state.lower()}, valid NDCG@10 {value} "
                  f"{json.dumps(event.params)}", file=sys.stderr, flush=True)  # fmt: skip

    try:
        reports = tune_models(args.dataset, names, args.trials, args.timeout, args.storage, args.study, args.seed,
                              args.device, args.store, args.grace or GRACE_S, report)  # fmt: skip
    except TuningError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if journal:
        journal.write({"event": "finished", "ok": all(r.ok for r in reports), "message": "",
                       "reports": [{**dataclasses.asdict(r), "ok": r.ok} for r in reports]})  # fmt: skip
    print(f"Tuned on validation NDCG@10 ({PROTOCOL}); test NDCG@10 of the best trial, 95% CI")
    print(f"{'model':<11}{'trials':>8}{'pruned':>8}{'default valid':>15}{'tuned valid':>13}{'tuned test':>27}  stored")
    for r in reports:
        if r.best_trial is None:
            print(f"{r.model:<11}  {r.message}")
            continue
        default = "-" if r.default_valid is None else f"{r.default_valid:.4f}"
        test = "-" if not r.tuned_test else f"{r.tuned_test[0]:.4f} [{r.tuned_test[1]:.4f}, {r.tuned_test[2]:.4f}]"
        print(f"{r.model:<11}{r.finished:>8}{r.pruned:>8}{default:>15}{r.tuned_valid:>13.4f}{test:>27}  "
              f"{'yes' if r.stored else 'no'}{'  ' + r.message if r.message else ''}")  # fmt: skip
    return 0 if all(r.ok for r in reports) else EXIT_FAILED


def _evaluate(args: argparse.Namespace) -> int:
    if args.protocol == "ctr":
        return _evaluate_ctr(args)
    names = _model_list(args.models, pipelines=True) if args.models else None
    results = evaluate_models(args.dataset, [n for n in names if SEPARATOR not in n] if names else None)
    results.update(evaluate_pipelines(args.dataset, [n for n in names or [] if SEPARATOR in n]))
    if args.json:
        print(json.dumps({"dataset": args.dataset, "protocol": PROTOCOL, "models": results}, indent=2))
    else:
        print(f"Test metrics on {args.dataset} ({PROTOCOL})")
        width = max([10, *(len(n) + 2 for n in results)])
        print(f"{'model':<{width}}" + "".join(f"{m:>10}" for m in ACCURACY_METRICS))
        for name, summary in results.items():
            if "error" in summary:
                print(f"{name:<{width}}  {summary['error']}")
            else:
                print(f"{name:<{width}}" + "".join(f"{summary[m]:>10.4f}" for m in ACCURACY_METRICS))
        if not results:
            print("no trained models; train some with: python -m recsys_core train --dataset " + args.dataset)
    return 0 if results and all("error" not in s for s in results.values()) else EXIT_FAILED


def _evaluate_ctr(args: argparse.Namespace) -> int:
    names = _model_list(args.models) if args.models else None
    if args.seeds < 1:
        print("error: --seeds must be at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        runs = [evaluate_ctr(args.dataset, names, device=args.device, seed=seed, max_epochs=args.max_epochs,
                             label_only=args.label_only)
                for seed in range(args.seeds)]  # fmt: skip
    except CtrUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    results = runs[0]
    spread = over_seeds(runs) if args.seeds > 1 else {}
    protocol = CTR_PROTOCOL + ("; label only, no ordinal terms" if args.label_only else "")
    if args.json:
        out = {"dataset": args.dataset, "protocol": protocol, "models": results}
        print(json.dumps(out | ({"over_seeds": spread} if spread else {}), indent=2))
    else:
        print(f"Test AUC and LogLoss on {args.dataset} ({protocol})")
        print(f"{'model':<12}{'AUC':>10}{'LogLoss':>10}{'epoch':>7}{'seconds':>9}")
        for name, row in results.items():
            if "error" in row:
                print(f"{name:<12}  {row['error']}")
                continue
            logloss = f"{row['LogLoss']:>10.4f}" if "LogLoss" in row else f"{'-':>10}"
            epoch = f"{row['best_epoch']:>7}" if "best_epoch" in row else f"{'-':>7}"
            seconds = f"{row['seconds']:>9.1f}" if "seconds" in row else f"{'-':>9}"
            print(f"{name:<12}{row['AUC']:>10.4f}{logloss}{epoch}{seconds}")
        if spread:
            print(f"\nOver split and training seeds 0..{args.seeds - 1}: mean (standard deviation)")
            print(f"{'model':<12}{'AUC':>20}{'LogLoss':>20}")
            for name, row in spread.items():
                logloss = f"{row['LogLoss mean']:.4f} ({row['LogLoss std']:.4f})" if "LogLoss mean" in row else "-"
                print(f"{name:<12}{row['AUC mean']:>11.4f} ({row['AUC std']:.4f}){logloss:>20}")
    failed = any("error" in r for run in runs for r in run.values())
    return EXIT_FAILED if failed else 0


def _recommend(args: argparse.Namespace) -> int:
    try:
        retriever_name, ranker_name = split_name(args.model)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # Checked before any line is read: a bad default would fail every line that has no k of its own.
    try:
        check_k(args.k, "--k")
        if ranker_name:
            check_candidates(args.candidates, args.k, "--candidates")
    except (RequestError, PipelineError) as error:
        raise ConfigError(str(error)) from None
    dataset = load_dataset(args.dataset)
    try:
        artifact = load_artifact(dataset, retriever_name)
        ranker = load_artifact(dataset, ranker_name).model if ranker_name else None
    except ArtifactError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    index = None
    if args.index:
        try:
            index = load_or_build_index(artifact, args.index)
        except RetrievalError as error:
            print(f"error: --index {args.index}: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
    split = temporal_leave_last_out(dataset)

    def answer(request: Request, number: int) -> dict:
        if ranker is None:
            found = recommend(artifact.model, dataset, split, request, index)
        else:
            found = recommend_pipeline(artifact.model, ranker, dataset, split, request, args.candidates, index).answer
        notes = list(found.notes)
        if found.ignored:
            notes.insert(0, f"ids not in the catalogue were ignored: {', '.join(found.ignored)}")
        for note in notes:
            print(printable(f"warning: line {number}: {note}"), file=sys.stderr)
        return found.contract()

    answer_lines(sys.stdin, answer, lambda text: print(text, flush=True), default_k=args.k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
