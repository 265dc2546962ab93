"""Embedding maps on MovieLens-100K: how long the first and later views of a map take, written to
docs/benchmarks.md.

    python bench/maps.py [--dataset ml-100k] [--models sasrec,ease] [--repeats 3]

- cold first view: a fresh Python process (as a freshly started server) asks for the map of a
  trained model that has none stored: UMAP's import, its numba kernels' compilation, the fit and
  the write; the process's own setup (imports, dataset, artifact) is timed apart, as a baseline;
- warm fit: the same, in a process that has already fitted one map (kernels compiled);
- stored read: the map read back from beside the artifact (what a view does once it exists, and
  what every view does for models trained by the lab's training job, which draws the maps);
- the Embedding maps page in AppTest with stored maps: first open, and a later widget change.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sections import write_section  # noqa: E402
from recsys_core.data import load_dataset, temporal_leave_last_out  # noqa: E402
from recsys_core.serving.embeddings import load_or_fit_map  # noqa: E402
from recsys_core.store.artifacts import dataset_root, load_artifact, read_manifest  # noqa: E402

MARKER = "<!-- maps -->"
BUDGET_S = {"first": 20.0, "later": 1.0}
FRESH_PROCESS = """
import json, sys, time
started = time.perf_counter()
from pathlib import Path
from recsys_core.store.artifacts import load_artifact
from recsys_core.data import load_dataset, temporal_leave_last_out
from recsys_core.serving.embeddings import load_or_fit_map
dataset = load_dataset(sys.argv[1])
split = temporal_leave_last_out(dataset)
timings = {"setup": time.perf_counter() - started}
for name in sys.argv[3].split(","):
    artifact = load_artifact(dataset, name, root=Path(sys.argv[2]))
    began = time.perf_counter()
    drawn = load_or_fit_map(artifact, split, "items")
    timings[name] = {"view": time.perf_counter() - began, "fit": drawn.seconds, "stored": drawn.from_disk}
print(json.dumps(timings))
"""


def store_without_maps(dataset_name: str, models: list[str], into: Path) -> Path:
    """A copy of the trained models' artifacts with no stored maps (what a CLI-trained model has)."""
    source = dataset_root(dataset_name)
    target = into / dataset_name
    target.mkdir(parents=True)
    for name in models:
        shutil.copytree(source / name, target / name, ignore=shutil.ignore_patterns("umap-*", "index-*"))
    manifest = read_manifest(dataset_name)
    manifest["models"] = {m: e for m, e in manifest["models"].items() if m in models}
    (target / "manifest.json").write_text(json.dumps(manifest))
    return into


def fresh_process(dataset_name: str, root: Path, models: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    out = subprocess.run([sys.executable, "-c", FRESH_PROCESS, dataset_name, str(root), ",".join(models)],
                         capture_output=True, text=True, env=env, check=True, cwd=ROOT)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def stored_reads(dataset_name: str, model: str, repeats: int) -> list[float]:
    dataset = load_dataset(dataset_name)
    split = temporal_leave_last_out(dataset)
    artifact = load_artifact(dataset, model)
    load_or_fit_map(artifact, split, "items")  # make sure one is stored
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        drawn = load_or_fit_map(artifact, split, "items")
        samples.append(time.perf_counter() - started)
        assert drawn.from_disk
    return samples


def page_timings(dataset_name: str, repeats: int) -> dict[str, list[float]]:
    from streamlit.testing.v1 import AppTest

    os.environ["DEEPREC_DATASET"] = dataset_name
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    started = time.perf_counter()
    at.switch_page("app_pages/embedding_maps.py").run()
    first = [time.perf_counter() - started]
    assert not at.exception, [e.value for e in at.exception]
    later = []
    colours = ["release year", "popularity", "genre"]
    for n in range(repeats):
        started = time.perf_counter()
        at.selectbox(key="map_colour_items").set_value(colours[n % 3]).run()
        later.append(time.perf_counter() - started)
    titles = load_dataset(dataset_name).items["title"].astype(str)
    for n in range(repeats):
        at.text_input(key="find_map_item").input(titles.iloc[37 * n % len(titles)]).run()
        started = time.perf_counter()  # from the click on a match: its neighbours listed, its point marked
        next(b for b in at.button if str(b.key).startswith("find_map_item_pick_")).click().run()
        later.append(time.perf_counter() - started)
    assert not at.exception, [e.value for e in at.exception]
    return {"first": first, "later": later}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", default="sasrec,ease", help="the first is timed cold, the others warm")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes (cold runs)")
    args = parser.parse_args()
    models = args.models.split(",")
    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(fresh_process(args.dataset, store_without_maps(args.dataset, models, Path(tmp)), models))
    reads = stored_reads(args.dataset, models[0], 20)
    page = page_timings(args.dataset, 10)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    setup = med([r["setup"] for r in runs])
    cold = med([r[models[0]]["view"] for r in runs])
    cold_fit = med([r[models[0]]["fit"] for r in runs])
    warm = {m: med([r[m]["view"] for r in runs]) for m in models[1:]}
    n_items = len(load_dataset(args.dataset).items)
    load = os.getloadavg()[0]
    first_page, later_page = page["first"][0], med(page["later"])
    lines = [
        MARKER,
        f"## Embedding maps on {args.dataset}",
        "",
        f"Measured by `python bench/maps.py` on {time.strftime('%Y-%m-%d')}: {platform.machine()}, "
        f"{os.cpu_count()} cores, load average at the end {load:.1f}; {n_items} items; UMAP 2-D, cosine, 15 "
        f"neighbours, seeded. Medians of {args.repeats} fresh processes (cold), 20 reads, 10 widget changes.",
        "",
        "| view of a map | budget | measured | against the baseline |",
        "|---|---|---|---|",
        f"| baseline: a fresh process's own setup (imports, dataset, artifact), not part of a view | - | "
        f"{setup:.1f} s | 1x |",
        f"| first view, no stored map, fresh process ({models[0]}: UMAP import + kernel compilation + fit "
        f"{cold_fit:.1f} s + write) | {BUDGET_S['first']:.0f} s | {cold:.1f} s | {cold / setup:.1f}x |",
        *[f"| first view of another model in the same process ({m}: compiled kernels) | "
          f"{BUDGET_S['first']:.0f} s | {warm[m]:.1f} s | {warm[m] / setup:.1f}x |" for m in warm],
        f"| first view of a map drawn at training (the lab's training job draws them): read from disk | "
        f"{BUDGET_S['first']:.0f} s | {med(reads) * 1000:.1f} ms | {med(reads) / setup:.3f}x |",
        f"| Embedding maps page, first open with stored maps (AppTest, two models) | {BUDGET_S['first']:.0f} s | "
        f"{first_page:.2f} s | {first_page / setup:.2f}x |",
        f"| later view: colour or item change, whole page rerun (AppTest) | {BUDGET_S['later']:.0f} s | "
        f"{later_page * 1000:.0f} ms (max {max(page['later']) * 1000:.0f} ms) | {later_page / setup:.3f}x |",
        "",
        "A map is fitted at most once per trained artifact: `python -m recsys_core train` (which the home "
        "page's and the Train view's jobs run) draws every model's maps after its models have landed; a view "
        "of a model trained without them (`--no-maps`) fits and stores its map on first view. Later views "
        "never refit.",
        MARKER,
    ]  # fmt: skip
    write_section(ROOT / "docs" / "benchmarks.md", MARKER, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
