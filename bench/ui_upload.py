"""A million interactions through the browser: upload them in the Train view, train with the quick
profile there, watch the progress, then open every view on the new dataset. Written to
docs/benchmarks.md.

    python bench/ui_upload.py [--csv PATH] [--models pop,ease,sasrec]

By default the files are the SASRec file of MovieLens-1M and its items and users files, read from
../shared/data/ml-1m-sas/ (987,019 interactions; as bench/scale.py reads them). They are uploaded
into a scratch data folder and store under the system's temporary directory, never into the
project. Playwright drives Debian's Chromium against `streamlit run app.py`, as a user would: pick
the files, name the dataset, add it; choose the models and the quick profile, start; then each
view through the sidebar. What is timed is what the user waits for, from the click until the page
shows the result and Streamlit has stopped running.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scale import ML1M_SAS  # noqa: E402
from bench.sections import write_section  # noqa: E402
from bench.ui import CHROMIUM, LAUNCH_ARGS, streamlit_server  # noqa: E402
from recsys_core.data.csv_loader import side_files  # noqa: E402
from recsys_core.models import REGISTRY  # noqa: E402

MARKER = "<!-- ui-upload -->"
NAME = "ml1m-upload"
VIEWS = [("Overview", f"The data: {NAME}"), ("User Explorer", "History of user"),
         ("Session Playground", "The session"), ("Embedding Maps", "UMAP fit"),
         ("Pipeline", "Final list next to"), ("Evaluate and AB", "A/B simulator")]  # fmt: skip


def run(csv: Path, models: list[str], train_timeout_s: float) -> dict:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="deeprec-ui-upload-"))
    env = {"DEEPREC_ARTIFACTS_DIR": str(folder / "artifacts"), "DEEPREC_DATA_DIR": str(folder / "data"),
           "DEEPREC_DATASET": "synthetic", "OMP_WAIT_POLICY": "PASSIVE"}  # fmt: skip
    out: dict = {"files": {}, "progress": [], "views_ms": {}, "errors": []}
    with sync_playwright() as p, streamlit_server(ROOT / "app.py", env) as url:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})

        def settle(text: str, timeout_s: float = 300) -> None:
            page.get_by_text(text, exact=False).first.wait_for(timeout=timeout_s * 1000)
            page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=timeout_s * 1000)

        def errors() -> list[str]:
            shown = page.locator('[data-testid="stException"]')
            return [shown.nth(i).inner_text()[:300] for i in range(shown.count())]

        page.goto(f"{url}/Train")
        settle("Start training")
        page.get_by_role("tab", name="Bring your own data").click()
        uploads = page.locator('input[type="file"]')
        for n, path in enumerate((csv, *side_files(csv))):
            if path is not None:
                uploads.nth(n).set_input_files(str(path))
                out["files"][("interactions", "items", "users")[n]] = {"name": path.name, "bytes": path.stat().st_size}
        page.get_by_role("textbox", name="Dataset name").fill(NAME)
        started = time.perf_counter()
        page.get_by_role("button", name="Add the dataset").click()
        settle(f"Dataset {NAME} added")
        out["upload_s"] = time.perf_counter() - started
        out["added"] = page.get_by_text(f"Dataset {NAME} added", exact=False).first.inner_text()
        out["errors"] += errors()

        page.get_by_role("tab", name="Train models").click()
        for model in models:
            family = REGISTRY[model].family
            page.get_by_label(family, exact=True).first.click()
            page.keyboard.type(model)
            page.get_by_role("option", name=model, exact=True).first.click()
            page.keyboard.press("Escape")
        page.get_by_text("quick", exact=True).first.click()  # the profile
        started = time.perf_counter()
        page.get_by_role("button", name="Start training").click()
        deadline = started + train_timeout_s
        finished = page.get_by_text("Last training finished", exact=False)
        failed = page.get_by_text("Last training failed", exact=False)
        while time.perf_counter() < deadline and not finished.count() and not failed.count():
            bar = page.get_by_text("models done;", exact=False)
            if bar.count():
                text = bar.first.inner_text()
                if not out["progress"] or out["progress"][-1][1] != text:
                    out["progress"].append([round(time.perf_counter() - started, 1), text])
            page.wait_for_timeout(5000)
        out["train_s"] = time.perf_counter() - started
        out["finished"] = finished.first.inner_text() if finished.count() else None
        out["failed"] = failed.first.inner_text() if failed.count() else None
        page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=120_000)
        out["errors"] += errors()

        for link, ready in VIEWS:
            started = time.perf_counter()
            page.locator('[data-testid="stSidebarNav"] a', has_text=link).first.click()
            try:
                settle(ready, timeout_s=180)
            except PlaywrightTimeout as error:  # a view that never settles is the finding, not a crash
                out["errors"].append(f"{link}: did not show {ready!r}: {type(error).__name__}")
                continue
            out["views_ms"][link] = round((time.perf_counter() - started) * 1000)
            selected = page.get_by_label("Dataset", exact=True).first.input_value()
            if selected != NAME:
                out["errors"].append(f"{link}: the sidebar shows {selected!r}, not {NAME!r}")
            out["errors"] += [f"{link}: {e}" for e in errors()]
        browser.close()
    info = {}
    for model in models:
        stored = next((folder / "artifacts").glob(f"{NAME}*/{model}/info.json"), None)
        if stored is not None:
            record = json.loads(stored.read_text())
            info[model] = {"seconds": record.get("seconds"), "profile": record.get("profile")}
    out["models"] = info
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", default=str(ML1M_SAS), help="interactions CSV; NAME.items.csv, NAME.users.csv beside")
    parser.add_argument("--models", default="pop,ease,sasrec")
    parser.add_argument("--train-timeout-min", type=float, default=90)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    csv, models = Path(args.csv), [m.strip() for m in args.models.split(",") if m.strip()]
    load = os.getloadavg()[0]
    result = run(csv, models, args.train_timeout_min * 60)
    print(json.dumps(result, indent=1), flush=True)
    rows = sum(1 for _ in csv.open()) - 1
    progress = result["progress"]
    shown = "; ".join(f"{t:.0f} s: {text}" for t, text in progress[:: max(1, len(progress) // 6)])
    trained = ", ".join(f"{m} {r['seconds']:.0f} s ({r['profile']})" for m, r in result["models"].items())
    lines = [
        MARKER, "## A million interactions through the browser: upload, quick training, every view", "",
        f"`python bench/ui_upload.py --models {','.join(models)}` on {time.strftime('%Y-%m-%d')}: "
        f"{platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} at the start; Chromium driven by "
        "Playwright against "
        f"`streamlit run app.py` over a fresh scratch store. Files: {csv.name} ({rows:,} interactions) with "
        + ", ".join(f"{k} {v['name']}" for k, v in result["files"].items() if k != "interactions") + ".", "",
        f"- Upload and full check, click to the confirmation: {result['upload_s']:.1f} s. The page said: "
        f"\"{result['added'].strip()[:160]}\"",
        f"- Training from the Train view ({', '.join(models)}, quick profile), click to \"Last training finished\": "
        f"{result['train_s'] / 60:.1f} min; "
        + (f"it ended with \"{result['finished'] or result['failed']}\"" if result['finished'] or result['failed']
           else "**it had not finished**") + f". Stored: {trained or 'none'}.",
        f"- Progress shown while it ran ({len(progress)} distinct states, a sample): {shown or 'none seen'}.",
        "- Every view after it, through the sidebar, on the new dataset (click to drawn, ms): "
        + ", ".join(f"{view} {ms}" for view, ms in result["views_ms"].items()) + ".",
        f"- Errors shown on a page: {'; '.join(result['errors']) or 'none'}.", "", MARKER,
    ]  # fmt: skip
    write_section(Path(args.out), MARKER, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
