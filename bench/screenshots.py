"""The README's tour pictures: every view in Chromium against a trained store, saved to docs/screenshots/.

    python bench/screenshots.py [--dataset ml-100k] --store DIR

``DIR`` is an artifact store with the zoo trained on the dataset (``python -m recsys_core train
--models all --quick`` with ``DEEPREC_ARTIFACTS_DIR=DIR``, or ``bench/profiles.py --keep DIR``). The
explorer, playground and pipeline are opened through shared links, as a stakeholder would open them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ui import CHROMIUM, LAUNCH_ARGS, streamlit_server  # noqa: E402

SHOTS = ROOT / "docs" / "screenshots"
# (file, path and query, text the finished page shows)
VIEWS = [
    ("1_home.png", "", "Best so far"),
    ("2_overview.png", "Overview", "Model cards"),
    ("3_user_explorer.png", "User_Explorer?user=196&models=sasrec,lightgcn,ease,bpr,deepfm", "How much do the"),
    ("4_session_playground.png", "Session_Playground", "What if: drop one item"),
    ("6_embedding_maps.png", "Embedding_Maps", "UMAP fit"),
    ("7_pipeline.png", "Pipeline?user=196", "Final list next to"),
    ("evaluate_ab.png", "Evaluate_and_AB", "A/B simulator"),
    ("9_train.png", "Train", "Start training"),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--store", required=True, help="a store with the zoo trained on --dataset")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    env = {"DEEPREC_DATASET": args.dataset, "DEEPREC_ARTIFACTS_DIR": str(Path(args.store).resolve())}
    with sync_playwright() as p, streamlit_server(ROOT / "app.py", env) as url:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1500})  # a view's first screen and a half
        for name, path, ready in VIEWS:
            page.goto(f"{url}/{path}")
            page.get_by_text(ready, exact=False).first.wait_for(timeout=300_000)
            page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=300_000)
            page.wait_for_timeout(1500)  # plotly draws after its element mounts
            page.screenshot(path=str(SHOTS / name), full_page=False)
            print(name, os.path.getsize(SHOTS / name), "bytes", flush=True)
        browser.close()


if __name__ == "__main__":
    main()
