"""Warm interaction timings of the lab's views, written to docs/benchmarks.md (a section per dataset).

    python bench/ui.py [--dataset ml-100k|ml-1m-sas|PATH] [--store DIR] [--repeats 20] [--no-browser]

``ml-1m-sas`` is the SASRec file of MovieLens-1M read from ../shared (as bench/scale.py reads it), served
by the models bench/scale.py trained: ``--store`` defaults to its store for that dataset.

Three layers, each measured warm (models and indexes already loaded and cached, as after the first
visit):
- library: the recsys_core calls a view makes (the explorer's default models' top 10 for one user
  with reasons, and every trained model's, as with "All models"; the playground's default models'
  next items plus the attention maps for one session);
- AppTest: a whole script rerun of the page after the widget change (no browser, no network);
- browser: Playwright and Debian's Chromium against `streamlit run app.py`, from the click or key
  press until the new content is shown and Streamlit has stopped running (what a user waits for).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.scale import DATASETS as SCALE_DATASETS  # noqa: E402
from bench.scale import STORE as SCALE_STORE  # noqa: E402
from bench.sections import write_section  # noqa: E402
from recsys_core.data import load_dataset, temporal_leave_last_out  # noqa: E402
from recsys_core.models import history_readers  # noqa: E402
from recsys_core.serving.explain import explain_items, reason_vectors, recommend_each  # noqa: E402
from recsys_core.serving.recommend import Request, session_attention  # noqa: E402
from recsys_core.store.artifacts import best_per_family, load_artifact, read_manifest  # noqa: E402

MARKER = "<!-- ui -->"
CHROMIUM = Path("/usr/bin/chromium")
BUDGET_MS = {"user": 300, "session": 200, "page": 1500}
FIRST_STATUS_MS, FIRST_VISITS = 2000, 5
EXPLORER_DEFAULT = PLAYGROUND_DEFAULT = 5  # the models the explorer and the playground show on opening


def summary(samples: list[float]) -> str:
    """Median and 90th percentile in milliseconds."""
    ms = np.array(samples) * 1000
    return f"{statistics.median(ms):.0f} ms (p90 {np.percentile(ms, 90):.0f} ms, n={len(ms)})"


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def library(dataset_name: str, repeats: int) -> dict[str, list[float]]:
    dataset = load_dataset(dataset_name)
    split = temporal_leave_last_out(dataset)
    names = list(read_manifest(dataset.name)["models"])
    artifacts = {n: load_artifact(dataset, n) for n in names}
    every = {n: a.model for n, a in artifacts.items()}
    vectors = {n: reason_vectors(m, split) for n, m in every.items()}
    # What the views show on opening: the explorer's best of each family, the playground's first five readers.
    shown = {n: every[n] for n in best_per_family(dataset.name, EXPLORER_DEFAULT)}
    readers = {n: every[n] for n in history_readers(names)[:PLAYGROUND_DEFAULT]}
    rng = np.random.default_rng(0)
    users = [str(u) for u in rng.choice(dataset.user_ids[1:], size=repeats + 1, replace=False)]
    timings: dict[str, list[float]] = {"user": [], "user, all models": [], "session": [], "session+what-if": []}
    for key, models in (("user", shown), ("user, all models", every)):
        for number, user_id in enumerate(users):
            started = time.perf_counter()
            answers = recommend_each(models, dataset, split, Request(user_id, k=10))
            history = [int(i) for i in split.input_sequences("test")[dataset.user_index(user_id)]]
            for name, answer in answers.items():
                explain_items(models[name], vectors[name], dataset, history, answer.items)
            if number:  # the first call warms up
                timings[key].append(time.perf_counter() - started)
    sessions = [[str(dataset.item_ids[i]) for i in split.input_sequences("test")[dataset.user_index(u)][-10:]]
                for u in users]  # fmt: skip
    for number, session in enumerate(sessions):
        started = time.perf_counter()
        answers = recommend_each(readers, dataset, split, Request(None, history=session, k=10))
        for model in readers.values():
            if model.has_attention:
                session_attention(model, dataset, session)
        middle = time.perf_counter()
        recommend_each(readers, dataset, split, Request(None, history=session[1:], exclude=session[:1], k=10))
        if number:
            timings["session"].append(middle - started)
            timings["session+what-if"].append(time.perf_counter() - started)
    timings["models"] = [len(every)]
    timings["shown"] = [len(shown)]
    timings["readers"] = [len(readers)]
    return timings


def apptest(dataset_name: str, repeats: int) -> dict[str, list[float]]:
    from streamlit.testing.v1 import AppTest

    os.environ["DEEPREC_DATASET"] = dataset_name
    dataset = load_dataset(dataset_name)
    timings: dict[str, list[float]] = {"user": [], "search": [], "session": [], "page": []}
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    pages = [
        "app_pages/overview.py",
        "app_pages/user_explorer.py",
        "app_pages/session_playground.py",
        "app_pages/home.py",
    ]
    for page in pages:  # warm every page once
        at.switch_page(page).run()
    for number in range(repeats + 1):
        for page in pages:
            started = time.perf_counter()
            at.switch_page(page).run()
            if number:
                timings["page"].append(time.perf_counter() - started)
            assert not at.exception, [e.value for e in at.exception]
    at.switch_page("app_pages/user_explorer.py").run()
    rng = np.random.default_rng(1)
    for number, user in enumerate(rng.choice(dataset.user_ids[1:], size=repeats + 1, replace=False)):
        started = time.perf_counter()
        at.text_input(key="user").input(str(user)).run()
        if number:
            timings["user"].append(time.perf_counter() - started)
        assert not at.exception
    at.switch_page("app_pages/session_playground.py").run()
    at.button(key="use_genre").click().run()
    titles = dataset.items["title"].astype(str).tolist()
    for number in range(repeats + 1):
        started = time.perf_counter()
        at.text_input(key="find_title").input(titles[int(rng.integers(len(titles)))]).run()
        searched = time.perf_counter()
        next(b for b in at.button if str(b.key).startswith("find_title_pick_")).click().run()  # the exact match
        if number:
            timings["search"].append(searched - started)
            timings["session"].append(time.perf_counter() - searched)
        assert not at.exception
        if len(at.session_state["session"]) > 20:
            at.session_state["session"] = at.session_state["session"][-10:]
    return timings


FLOOR_APP = """import streamlit as st
st.session_state.setdefault("n", 0)
if st.button("click"):
    st.session_state.n += 1
st.write(f"count {st.session_state.n}.")
"""
# The least a first visit can cost: a fresh server whose page draws the same status box and nothing else.
FIRST_FLOOR_APP = """import time
import streamlit as st
st.set_page_config(page_title="floor", layout="wide")
st.container().status("Starting the lab…", expanded=True).write("Loading")
time.sleep(3)
"""
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@contextlib.contextmanager
def streamlit_server(script: Path, env: dict[str, str]) -> Iterator[str]:
    """`streamlit run script` on 127.0.0.1 and a free port; yields its URL, stops it by its pid."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


# Performance.now() once the page shows ``text`` and Streamlit has finished the run (stale elements
# cleared): the whole redraw, not just its first element. Checked at every animation frame.
DONE_JS = """text => document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState === 'notRunning'
    && document.body.innerText.includes(text) && performance.now()"""
# The press that starts an interaction (a pointer or a key: Enter in a text box), timed in the page
# (Playwright's own checks before a click are not the user's wait).
ARM_JS = """() => { window.__pressed = null; const press = () => { window.__pressed ??= performance.now(); };
    for (const kind of ['pointerdown', 'keydown'])
        document.addEventListener(kind, press, {capture: true, once: true}); }"""


def browser(dataset_name: str, repeats: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    timings: dict[str, list[float]] = {"user": [], "search": [], "session": [], "page": [], "floor": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})

        def settle(text: str) -> float:
            return page.wait_for_function(DONE_JS, arg=text, timeout=120_000, polling="raf").json_value()

        def timed(click, text: str) -> float:
            """Seconds from the press of ``click()`` until the page shows ``text``, its run finished."""
            page.evaluate(ARM_JS)
            click()
            end = settle(text)
            return (end - page.evaluate("window.__pressed")) / 1000

        # The floor: one button and one line of text, the least a Streamlit rerun costs here.
        with tempfile.TemporaryDirectory() as folder:
            script = Path(folder) / "floor.py"
            script.write_text(FLOOR_APP)
            with streamlit_server(script, {}) as url:
                page.goto(url)
                settle("count 0")
                for number in range(1, repeats + 2):
                    seconds = timed(page.get_by_role("button", name="click").click, f"count {number}.")
                    if number > 1:
                        timings["floor"].append(seconds)

        with streamlit_server(ROOT / "app.py", {"DEEPREC_DATASET": dataset_name}) as url:
            page.goto(url)
            settle("Best so far")
            views = [("Overview", "Model cards"), ("User explorer", "How much do the models agree"),
                     ("Session playground", "Add a title"), ("Home", "Best so far")]  # fmt: skip
            for link, _ in views:
                timings[f"page {link}"] = []
            for number in range(repeats + 1):
                for link, ready in views:
                    seconds = timed(page.locator('[data-testid="stSidebarNav"] a', has_text=link).first.click, ready)
                    if number:
                        timings["page"].append(seconds)
                        timings[f"page {link}"].append(seconds)
            page.locator('[data-testid="stSidebarNav"] a', has_text="User Explorer").first.click()
            settle("How much do the models agree")
            dataset = load_dataset(dataset_name)
            rng = np.random.default_rng(2)
            for number, user in enumerate(rng.choice(dataset.user_ids[1:], size=repeats + 1, replace=False)):
                box = page.get_by_role("textbox", name="User id").first
                box.fill(str(user))
                seconds = timed(partial(box.press, "Enter"), f"History of user {user} (")  # "(": user 2 is not user 25
                if number:
                    timings["user"].append(seconds)
            page.locator('[data-testid="stSidebarNav"] a', has_text="Session Playground").first.click()
            settle("The session")
            page.get_by_role("button", name="Use its 5 most popular items").click()
            settle("What if: drop one item")
            titles = dataset.items["title"].astype(str).tolist()
            chosen = rng.choice(len(titles), size=repeats + 1, replace=False)  # none of them offered twice
            for number, title in enumerate(titles[i] for i in chosen):
                box = page.get_by_label("Add a title").first
                box.fill(title)
                found = timed(partial(box.press, "Enter"), f"+ {title}")  # its match shown, the run finished
                match = page.get_by_role("button", name=f"+ {title}", exact=True).first
                seconds = timed(match.click, f"The session ({6 + number} items)")
                if number:
                    timings["search"].append(found)
                    timings["session"].append(seconds)
        browser.close()
    return timings


def first_visit(runs: int) -> dict[str, list[float]]:
    """A fresh server's first visit on ml-100k with a fresh data folder and no network (a GroupLens
    mirror that never answers, a package index that refuses): seconds from the page's request until
    the status box is drawn, and until it names the source it is trying. Each run is a new server."""
    from playwright.sync_api import sync_playwright

    timings: dict[str, list[float]] = {"status": [], "source": [], "floor": []}
    with sync_playwright() as p, socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        offline = {"DEEPREC_GROUPLENS_URL": f"http://127.0.0.1:{silent.getsockname()[1]}", "PIP_RETRIES": "0",
                   "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "DEEPREC_DATASET": "ml-100k"}  # fmt: skip
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)

        def until_status(url: str) -> tuple[object, float]:
            """A new page on ``url`` once it shows the status box, and when it was requested."""
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            started = time.perf_counter()
            page.goto(url, wait_until="commit")
            page.get_by_text("Starting the lab", exact=False).first.wait_for(timeout=120_000)
            return page, started

        for _ in range(runs):
            with tempfile.TemporaryDirectory() as folder:
                script = Path(folder) / "floor.py"
                script.write_text(FIRST_FLOOR_APP)
                with streamlit_server(script, {}) as url:
                    page, started = until_status(url)
                    timings["floor"].append(time.perf_counter() - started)
                    page.close()
            with tempfile.TemporaryDirectory() as data, tempfile.TemporaryDirectory() as store:
                fresh = {**offline, "DEEPREC_DATA_DIR": data, "DEEPREC_ARTIFACTS_DIR": store}
                with streamlit_server(ROOT / "app.py", fresh) as url:
                    page, started = until_status(url)
                    timings["status"].append(time.perf_counter() - started)
                    page.get_by_text("Trying the GroupLens zip", exact=False).first.wait_for(timeout=120_000)
                    timings["source"].append(time.perf_counter() - started)
                    page.close()
        browser.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--store", default=None, help="the artifact store to serve from (DEEPREC_ARTIFACTS_DIR)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    label = args.dataset
    if args.dataset in SCALE_DATASETS and args.dataset != "ml-100k":
        args.dataset = SCALE_DATASETS[args.dataset]
        args.store = args.store or str(SCALE_STORE)  # served by the models bench/scale.py trained
    if args.store:
        os.environ["DEEPREC_ARTIFACTS_DIR"] = args.store  # read here, and by the app servers started below
    lib = library(args.dataset, args.repeats)
    print("library", {k: summary(v) for k, v in lib.items() if k not in ("models", "shown", "readers")}, flush=True)
    app = apptest(args.dataset, args.repeats)
    print("apptest", {k: summary(v) for k, v in app.items()}, flush=True)
    web = browser(args.dataset, args.repeats) if CHROMIUM.exists() and not args.no_browser else None
    if web:
        print("browser", {k: summary(v) for k, v in web.items() if v}, flush=True)
    fresh = first_visit(FIRST_VISITS) if web and label == "ml-100k" else None
    if fresh:
        print("first visit", {k: summary(v) for k, v in fresh.items()}, flush=True)

    def verdict(kind: str, samples: list[float]) -> str:
        return "within" if median_ms(samples) < BUDGET_MS[kind] else "**over**"

    def cell(timings: dict | None, key: str) -> str:
        return summary(timings[key]) if timings else "not run"

    n_models, n_shown, n_readers = lib["models"][0], lib["shown"][0], lib["readers"][0]
    given = Path(args.store).resolve() if args.store else None
    store = f" --store {given.relative_to(ROOT) if given.is_relative_to(ROOT) else given}" if given else ""
    marker = MARKER if label == "ml-100k" else f"<!-- ui {label} -->"
    lines = [
        marker,
        f"## Interactive views on {label} (warm)",
        "",
        f"Measured by `python bench/ui.py --dataset {label}{store}` on {time.strftime('%Y-%m-%d')}: "
        f"{platform.machine()}, "
        f"{os.cpu_count()} cores, {torch.get_num_threads()} torch threads, load average at the end "
        f"{os.getloadavg()[0]:.1f}; {n_models} trained models ({n_readers} read a history). Median (p90) over "
        f"{args.repeats} warm repetitions after one warm-up; models, splits and reason vectors cached as the "
        "pages cache them.",
        "",
        "| interaction | budget | library calls | AppTest: whole script rerun | real browser (Chromium) |",
        "|---|---|---|---|---|",
        f"| user explorer: the {n_shown} default models' top 10 for one user (best of each family), with reasons "
        f"| {BUDGET_MS['user']} ms | {summary(lib['user'])} | {summary(app['user'])} | {cell(web, 'user')} |",
        f'| the same with "All models" ({n_models}) | - | {summary(lib["user, all models"])} | - | - |',
        f"| session change (a title's match clicked): the {n_readers} default history-aware models' next items + "
        "attention maps (+ what-if) "
        f"| {BUDGET_MS['session']} ms | {summary(lib['session'])} (with the what-if: "
        f"{summary(lib['session+what-if'])}) | {summary(app['session'])} | {cell(web, 'session')} |",
        f"| the playground's title search: part of a title typed, Enter, its best matches shown as buttons | - | - "
        f"| {summary(app['search'])} | {cell(web, 'search')} |",
        f"| page switch (Home, Overview, User explorer, Session playground) | {BUDGET_MS['page']} ms | - "
        f"| {summary(app['page'])} | {cell(web, 'page')} |",
        f"| floor: a one-button Streamlit page, press to new text | - | - | - | {cell(web, 'floor')} |",
        "",
        f"Against the budgets, server side (AppTest: the whole page script after the widget change, every "
        f"model call, table and figure included): the explorer's lists for one user {verdict('user', app['user'])}, "
        f"a session change {verdict('session', app['session'])}, a page switch {verdict('page', app['page'])}.",
    ]
    if web:
        views = {k.removeprefix("page "): median_ms(v) for k, v in web.items() if k.startswith("page ") and v}
        per_view = ", ".join(f"{view} {ms:.0f} ms" for view, ms in views.items())
        slow = [view for view, ms in views.items() if ms >= BUDGET_MS["page"]]
        lines += [
            "",
            "In the browser, from the press (pointer down, or the Enter key in a text box, timed in the page) until "
            "the whole page is redrawn: the "
            "new content shown and Streamlit's run finished, its stale elements gone. (Before 2026-12-03 this bench "
            "stopped the clock at the first new element, which under-stated a redraw by about half.) A page "
            f"switch is {verdict('page', web['page'])} the budget in the median over all views (per view: {per_view}"
            + (f"; **over** for {', '.join(slow)}" if slow else "; every view within")
            + f"); one user's lists and a session change are {verdict('user', web['user'])} and "
            f"{verdict('session', web['session'])} theirs. Of each of these, {median_ms(web['floor']):.0f} ms is the "
            "floor that any Streamlit rerun costs in this browser on this machine (a one-button page, last row); the "
            "rest is the page's script, run while the browser draws on the same two cores, and the browser's "
            "drawing of the new elements.",
        ]
    if fresh:
        within = "within" if median_ms(fresh["status"]) < FIRST_STATUS_MS else "**over**"
        lines += [
            "",
            f"A fresh server's first visit ({FIRST_VISITS} runs, each a new server and an empty data folder, no "
            f"network): the status box is drawn {summary(fresh['status'])} after the page is requested ({within} the "
            f"{FIRST_STATUS_MS / 1000:.0f} s budget), and names the source it is trying (the GroupLens zip) "
            f"{summary(fresh['source'])} after the request, once PyTorch and the model zoo are imported. The floor, "
            f"a fresh server whose page draws the same status box and nothing else, measured in the same runs: "
            f"{summary(fresh['floor'])}; the lab's own part of the wait is the difference, "
            f"{median_ms(fresh['status']) - median_ms(fresh['floor']):+.0f} ms in the medians.",
        ]
    lines.append(marker)
    write_section(ROOT / "docs" / "benchmarks.md", marker, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
