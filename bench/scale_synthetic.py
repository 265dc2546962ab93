"""How far each model family goes on this machine: synthetic datasets of 1M, 5M and 20M interactions
(catalogues of 10k, 100k and 1M items), written to docs/benchmarks.md.

    python bench/scale_synthetic.py [--sizes 1M,5M,20M] [--models ease,bpr,...] [--reuse]
                                    [--memory-gb 24] [--epoch-cap-s 120] [--eval-cap-s 120]

For each size (``recsys_core.data.synthetic.make_scale_synthetic``, seeded) and one model per family,
a fresh process builds the data and the split, then:

- trains one epoch with the model's default settings (closed-form models: their fit), and reports
  training throughput in interactions per second; an epoch longer than ``--epoch-cap-s`` is cut
  there and the rest of its batches counted without training, so the rate is still per interaction;
- scores 1,000 users over the full catalogue (top 10, history excluded) and reports the time, and
  what the whole protocol's evaluation of every user would take at that rate; scoring stops at the
  first batch of users that ends past ``--eval-cap-s`` (a ranker scores every user-item pair: at a
  million items, about 5 s per user here), and the rate is per user scored;
- its peak resident memory is read by this script, which stops it at ``--memory-gb`` (the bar's
  24 GB, or less when the machine has less): a stopped or failed run says why.

The largest size that fits is, per family, what this machine handles. Results are kept as JSON
under docs/scale/synthetic/ as they come (``--reuse`` skips those there). Measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import rss_mb  # noqa: E402
from bench.sections import write_section  # noqa: E402

MARKER = "<!-- scale-synthetic -->"
RESULTS = ROOT / "docs" / "scale" / "synthetic"
SIZES = {"1M": (1_000_000, 10_000), "5M": (5_000_000, 100_000), "20M": (20_000_000, 1_000_000)}
# One model per family: the one whose cost says the most about the family's.
MODELS = ("ease", "bpr", "gmf", "lightgcn", "multvae", "two_tower", "sasrec", "dcn")
EVAL_USERS = 1000


# --------------------------------------------------------------------------- one run, in its own process


def one_run(size: str, name: str, epoch_cap_s: float, eval_cap_s: float) -> dict:
    import numpy as np
    import torch

    from recsys_core.data import temporal_leave_last_out
    from recsys_core.data.features import side_features
    from recsys_core.data.synthetic import make_scale_synthetic
    from recsys_core.models import build_model, data_settings
    from recsys_core.tensors import mask_history, pad_histories, top_k
    from recsys_core.training.optimiser import Optimiser

    n_interactions, n_items = SIZES[size]
    started = time.perf_counter()
    dataset = make_scale_synthetic(n_interactions, n_items)
    split = temporal_leave_last_out(dataset)
    prepared_s = time.perf_counter() - started
    features = side_features(dataset, split.item_popularity)
    model = build_model(name, dataset.n_users, dataset.n_items, features=features, **data_settings(name, split))
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    cut = False
    if not model.trainable:
        model.fit(split, lambda m: 0.0)  # every setting of its grid, as training does; no validation pass
        fraction = 1.0
    else:
        optimiser = Optimiser(model, model.config.learning_rate)  # the loop's: sparse tables where a model has them
        model.train()
        steps, total = 0, 0
        for batch in model.batches(split, rng):
            total += 1
            if cut:
                continue  # counted, not trained: how much of the epoch was done
            loss = model.loss(batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            steps += 1
            cut = time.perf_counter() - started > epoch_cap_s
        fraction = steps / max(total, 1)
    train_s = time.perf_counter() - started
    model.eval()
    users = rng.choice(split.evaluated_users("test"), size=min(EVAL_USERS, dataset.n_users), replace=False)
    inputs = split.input_sequences("test")
    per_batch = max(1, min(256, 2**24 // dataset.n_items))  # a (users, catalogue) block of at most 64 MB
    scored = 0
    started = time.perf_counter()
    with torch.no_grad():
        while scored < len(users) and (scored == 0 or time.perf_counter() - started < eval_cap_s):
            part = users[scored : scored + per_batch]
            history = pad_histories([inputs[u] for u in part])
            top_k(mask_history(model.score_all(torch.from_numpy(part), history).float(), history), 10)
            scored += len(part)
    eval_s = time.perf_counter() - started
    return {
        "size": size, "model": name, "family": type(model).family, "users": dataset.n_users, "items": dataset.n_items,
        "interactions": dataset.n_interactions, "train_interactions": len(split.train), "prepare_s": prepared_s,
        "train_s": train_s, "epoch_fraction": fraction, "cut": cut, "epoch_cap_s": epoch_cap_s,
        "throughput": fraction * len(split.train) / train_s if model.trainable else len(split.train) / train_s,
        "eval_users": scored, "eval_s": eval_s, "eval_all_s": eval_s / scored * dataset.n_users,
        "eval_cap_s": eval_cap_s,
    }  # fmt: skip


# --------------------------------------------------------------------------- the parent: limits and records


def run_child(size: str, name: str, memory_mb: float, epoch_cap_s: float, eval_cap_s: float) -> dict:
    command = [sys.executable, __file__, "--one", size, name, "--epoch-cap-s", str(epoch_cap_s),
               "--eval-cap-s", str(eval_cap_s)]  # fmt: skip
    load_before = os.getloadavg()[0]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    peak, stopped = 0.0, None
    while child.poll() is None:
        peak = max(peak, rss_mb(child.pid))
        if peak > memory_mb:
            os.killpg(child.pid, signal.SIGKILL)
            stopped = f"stopped at {peak / 1024:.1f} GB resident (limit {memory_mb / 1024:.0f} GB)"
        time.sleep(0.2)
    out, err = child.communicate()
    record = {"size": size, "model": name, "peak_rss_mb": peak, "load_before": load_before,
              "load_after": os.getloadavg()[0], "finished": time.strftime("%Y-%m-%d %H:%M")}  # fmt: skip
    if stopped or child.returncode != 0:
        last = (err.strip().splitlines() or ["killed"])[-1]
        return record | {"failed": stopped or f"exit {child.returncode}: {last[-300:]}"}
    return record | json.loads(out.strip().splitlines()[-1])


def report() -> str:
    rows = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    order = {size: n for n, size in enumerate(SIZES)}
    rows.sort(key=lambda r: (MODELS.index(r["model"]) if r["model"] in MODELS else 99, order.get(r["size"], 9)))
    loads = [r[k] for r in rows for k in ("load_before", "load_after")]
    lines = [
        MARKER, "## How far each family goes: synthetic 1M, 5M and 20M interactions", "",
        f"`python bench/scale_synthetic.py`: {platform.machine()}, {os.cpu_count()} cores, load average (1 min) "
        f"around the runs {min(loads, default=0):.1f} to {max(loads, default=0):.1f}. One model per family, default "
        "settings, one training epoch (cut at the cap, the rest of its batches counted), then up to 1,000 users "
        "scored over the full catalogue (fewer where scoring reached its cap). Synthetic data "
        "(`make_scale_synthetic`): about 100 interactions per user, power-law popularity within 64 regions of the "
        "catalogue. A ranker (dcn) scores every user-item pair here; the lab serves it over a retriever's few hundred "
        "candidates (the two-stage pipeline), so its full-catalogue time bounds what it would cost, not how it runs.",
        "",
        "| model (family) | size | users / items | train interactions/s | epoch s (extrapolated) | users scored "
        "| all users scored (extrapolated) | peak memory | result, day |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    families = {r["model"]: r["family"] for r in rows if "family" in r}  # a failed run never built its model
    largest: dict[str, str] = {}
    within_hour: dict[str, str] = {}
    for r in rows:
        label = f"{r['model']} ({families.get(r['model'], '?')})"
        if "failed" in r:
            lines.append(f"| {label} | {r['size']} | - | - | - | - | - | {r['peak_rss_mb'] / 1024:.1f} GB "
                         f"| **failed** ({r.get('finished', 'undated')[:10]}): {r['failed']} |")  # fmt: skip
            continue
        largest[label] = r["size"]
        epoch = r["train_s"] / r["epoch_fraction"]
        if epoch < 3600 and r["eval_all_s"] < 3600:
            within_hour[label] = r["size"]
        cut = f" (cut after {r['train_s']:.0f} s)" if r["cut"] else ""
        lines.append(
            f"| {label} | {r['size']} | {r['users']:,} / {r['items']:,} | {r['throughput']:,.0f} | {epoch:,.0f}"
            f"{cut} | {r['eval_users']:,} in "
            f"{r['eval_s']:.1f} s | {r['eval_all_s'] / 60:,.1f} min "
            f"| {r['peak_rss_mb'] / 1024:.1f} GB | ok, {r.get('finished', 'undated')[:10]} |"
        )
    tried = sorted({(r["model"], r["size"]) for r in rows})
    untried = [f"{m} at {size}" for m in MODELS for size in SIZES if (m, size) not in tried]
    lines += ["", "Largest size handled within the memory limit, per family, among the sizes run: "
              + (", ".join(f"{k}: {v}" for k, v in largest.items()) or "none yet") + ". Of those, the largest "
              "where an epoch and the scoring of every user each take under an hour on this machine: "
              + (", ".join(f"{k}: {v}" for k, v in within_hour.items()) or "none") + ". Not run yet: "
              + (", ".join(untried) or "none") + ".", "", MARKER]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--memory-gb", type=float, default=24.0)
    parser.add_argument("--epoch-cap-s", type=float, default=120.0)
    parser.add_argument("--eval-cap-s", type=float, default=120.0)
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(*args.one, args.epoch_cap_s, args.eval_cap_s)))
        return
    # The bar's 24 GB, or what the machine has less a margin for the rest of it.
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    memory_mb = min(args.memory_gb * 1024, total_mb - 1536)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        for size in args.sizes.split(","):
            for name in args.models.split(","):
                path = RESULTS / f"{size}-{name}.json"
                if args.reuse and path.exists():
                    continue
                print(f"{size} {name} …", flush=True)
                result = run_child(size, name, memory_mb, args.epoch_cap_s, args.eval_cap_s)
                path.write_text(json.dumps(result, indent=1))
                print("  " + (result.get("failed") or f"{result['throughput']:,.0f} interactions/s, "
                      f"{result['peak_rss_mb'] / 1024:.1f} GB"), flush=True)  # fmt: skip
    section = report()
    write_section(Path(args.out), MARKER, section)
    print(section)


if __name__ == "__main__":
    main()
