"""Real-browser tests: Playwright drives Debian's Chromium against `streamlit run app.py`.

Each view opens without an error, a user is picked, a session is built by typing and clicking, and
attention shows. Screenshots of every view land in test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="session")
def browser_type_launch_args():
    return {
        "executable_path": str(CHROMIUM),
        "headless": True,
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    }  # fmt: skip


@contextlib.contextmanager
def streamlit_app(store: Path, data: Path, log_name: str, dataset: str = "synthetic", env: dict | None = None):
    """`streamlit run app.py` on 127.0.0.1 and a free port over an artifact store and a data folder."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DEEPREC_ARTIFACTS_DIR": str(store), "DEEPREC_DATASET": dataset,
           "DEEPREC_DATA_DIR": str(data),
           "OMP_WAIT_POLICY": "PASSIVE", "DEEPREC_NUM_THREADS": os.environ.get("DEEPREC_NUM_THREADS", "1"),
           **(env or {})}  # fmt: skip
    SHOTS.mkdir(exist_ok=True)
    log = open(SHOTS / log_name, "w")  # noqa: SIM115 - closed at teardown
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],  # nothing edits the sources during a test
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start: {(SHOTS / log_name).read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
        log.close()


@pytest.fixture(scope="session")
def server(trained_synthetic_store, tmp_path_factory):
    """The app over the shared trained synthetic store, which these tests only read."""
    with streamlit_app(trained_synthetic_store, tmp_path_factory.mktemp("browser-data"), "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def training_server(trained_synthetic_store, tmp_path_factory):
    """The app over a private copy of the trained store and its own data folder: tests that train
    and upload change these, never the store the other tests read."""
    store = tmp_path_factory.mktemp("browser-training-store")
    shutil.copytree(trained_synthetic_store, store, dirs_exist_ok=True)
    with streamlit_app(store, tmp_path_factory.mktemp("browser-training-data"), "streamlit-training.log") as url:
        yield url


def settle(page, text: str, timeout: float = 60_000) -> None:
    """Wait for text that the finished run shows, for Streamlit to stop running, and for the page to
    stop changing: the running indicator can hide a moment before the last elements are drawn, and
    a fresh browser shows each kind of widget as a skeleton until its code has loaded."""
    page.get_by_text(text, exact=False).first.wait_for(timeout=timeout)
    running = page.locator('[data-testid="stStatusWidget"]')
    finished = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
    main = page.locator('[data-testid="stMain"]')
    skeletons = page.locator('[data-testid="stSkeleton"]')
    deadline = time.monotonic() + timeout / 1000
    before = None
    while time.monotonic() < deadline:
        running.wait_for(state="hidden", timeout=timeout)
        finished.wait_for(timeout=timeout)
        now = main.inner_text()
        if now == before and not skeletons.count():
            return
        before = now
        page.wait_for_timeout(500)
    raise AssertionError(f"the page kept changing for {timeout / 1000:.0f} s after {text!r} appeared")


def open_at(page, url: str, ready: str) -> None:
    """Open ``url`` in the usual window and wait until its run has finished showing ``ready``."""
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(url)
    settle(page, ready)


def check_no_error(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]'
    ).first.inner_text()
    assert "Traceback" not in page.locator('[data-testid="stMain"]').inner_text()


def screenshot(page, name: str) -> Path:
    """The whole main panel: Streamlit scrolls inside it, so the viewport is made as tall first."""
    SHOTS.mkdir(exist_ok=True)
    height = page.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                           " return m ? m.scrollHeight : document.body.scrollHeight; }")  # fmt: skip
    page.set_viewport_size({"width": 1400, "height": min(max(int(height) + 40, 800), 12_000)})
    page.wait_for_timeout(500)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 900})
    return path


VIEWS = [("", "DeepRec Lab", "Leaderboard", "home"), ("Overview", "Overview", "Model cards", "overview"),
         ("User_Explorer", "User explorer", "How much do the models agree", "user_explorer"),
         ("Session_Playground", "Session playground", "What if: drop one item", "session_playground_example"),
         ("Embedding_Maps", "Embedding maps", "UMAP fit", "embedding_maps"),
         ("Pipeline", "Two-stage pipeline", "Final list next to", "pipeline"),
         ("Evaluate_and_AB", "Evaluate and A/B", "A/B simulator", "evaluate_ab_open"),
         ("Train", "Train", "Start training", "train")]  # fmt: skip


@pytest.mark.parametrize(("path", "title", "ready", "shot"), VIEWS, ids=[v[3] for v in VIEWS])
def test_every_view_opens_without_an_error(server, page, path, title, ready, shot):
    open_at(page, f"{server}/{path}", ready)
    assert page.locator("h1").first.inner_text().startswith(title)
    check_no_error(page)
    assert screenshot(page, shot).stat().st_size > 10_000


def test_a_user_is_picked_in_the_explorer(server, page):
    open_at(page, f"{server}/User_Explorer", "How much do the models agree")
    box = page.get_by_role("textbox", name="User id")
    box.fill("u42")
    box.press("Enter")
    settle(page, "History of user u42 (")
    check_no_error(page)
    expect(page.locator("table.side-by-side")).to_be_visible()
    expect(page.locator("table.agreement")).to_have_count(2)  # rank-biased overlap and Jaccard
    screenshot(page, "user_explorer_u42")
    # A mistyped id: a message, and the lists of the last user stay.
    box.fill("u42x")
    box.press("Enter")
    settle(page, "No user u42x in synthetic")
    check_no_error(page)
    expect(page.get_by_text("still showing user u42. Did you mean u42", exact=False).first).to_be_visible()
    expect(page.get_by_text("History of user u42 (", exact=False).first).to_be_visible()


def test_a_session_is_built_by_typing_and_clicking_and_attention_shows(server, page):
    # It opens on an example session, with predictions.
    open_at(page, f"{server}/Session_Playground", "What if: drop one item")
    page.get_by_role("button", name="Clear the session").click()
    settle(page, "The session is empty")
    for n, title in enumerate(["Item 1 (group 0)", "Item 2 (group 0)", "Item 3 (group 0)"], start=1):
        box = page.get_by_label("Add a title").first
        box.fill(title.lower())  # any case: the whole title comes first
        box.press("Enter")
        page.get_by_role("button", name=f"+ {title}", exact=True).first.click()
        settle(page, f"The session ({n} items)")
    check_no_error(page)
    settle(page, "What if: drop one item")
    assert page.locator("table.attention").count() >= 2  # sasrec and bert4rec attention maps, shaded tables
    assert page.get_by_text("sasrec: attention averaged", exact=False).count() >= 1
    page.get_by_label("Item to move or remove").first.click()
    page.get_by_role("option", name="3. Item 3 (group 0)").first.click()
    page.get_by_role("option").first.wait_for(state="detached")
    settle(page, "What if: drop one item")  # the choice has reached the server before the button is pressed
    page.get_by_role("button", name="↑ earlier").click()
    # The rerun that applies the move may start a moment after the click: wait for its result, not a guess.
    session = page.locator('[data-testid="stText"]').filter(has_text="1. Item").first  # plain text, never markdown
    moved = r"1\. Item 1 \(group 0\)\s+2\. Item 3 \(group 0\)\s+3\. Item 2 \(group 0\)"
    expect(session).to_have_text(re.compile(moved), timeout=60_000)
    settle(page, "What if: drop one item")
    check_no_error(page)
    screenshot(page, "session_playground")


def chips(page, label: str) -> list[str]:
    """The chosen options of a multiselect, as its chips show them."""
    box = page.locator('[data-testid="stMultiSelect"]').filter(has_text=label).first
    tags = box.locator('[data-testid="stMultiSelectTagsContainer"]')
    return [t.strip() for t in tags.inner_text().splitlines() if t.strip()] if tags.count() else []


def test_a_shared_link_opens_exactly_that_view(server, page):
    shared = f"{server}/User_Explorer?dataset=synthetic&user=u42&models=sasrec,ease,gru4rec"
    open_at(page, shared, "History of user u42")
    check_no_error(page)
    assert chips(page, "Models to compare") == ["sasrec", "ease", "gru4rec"]
    expect(page.get_by_text("The held-out item is in the top 10 of", exact=False).first).to_be_visible()
    page.get_by_role("button", name="Share").click()
    link = page.locator('[data-testid="stCode"]').first
    expect(link).to_contain_text("/User_Explorer?dataset=synthetic&user=u42&models=sasrec%2Cease%2Cgru4rec")
    page.keyboard.press("Escape")
    # Another model added by hand: the table and the URL follow, and the held-out item is still marked.
    pick(page, "Models to compare", "bert4rec")
    expect(page).to_have_url(re.compile(r"models=sasrec%2Cease%2Cgru4rec%2Cbert4rec"), timeout=60_000)
    settle(page, "How much do the models agree")
    assert chips(page, "Models to compare") == ["sasrec", "ease", "gru4rec", "bert4rec"]
    caption = page.get_by_text("The held-out item is in the top 10 of", exact=False).first.inner_text()
    assert "sasrec (rank" in caption  # the planted next item: sasrec finds it for this user
    assert page.get_by_text("✔ (green): the user's held-out test item", exact=False).count() == 1
    # The held-out item's cell is shaded green in sasrec's column, its reason on hover.
    held = page.locator("table.side-by-side td", has_text="✔").first
    expect(held).to_have_css("background-color", "rgba(33, 195, 84, 0.3)")
    assert "sasrec, rank" in held.get_attribute("title") and "because you watched" in held.get_attribute("title")
    screenshot(page, "user_explorer_shared")
    # The playground: the session and the models from the link, predictions and attention at once.
    page.goto(f"{server}/Session_Playground?dataset=synthetic&session=i1,i2,i3&models=sasrec,bert4rec")
    settle(page, "What if: drop one item")
    check_no_error(page)
    session = page.locator('[data-testid="stText"]').filter(has_text="1. Item").first
    expect(session).to_have_text(re.compile(r"1\. Item 1 \(group 0\)\s+2\. Item 2 \(group 0\)\s+3\. Item 3"))
    assert chips(page, "Models") == ["sasrec", "bert4rec"]
    assert page.get_by_text("attention averaged", exact=False).count() == 2


def test_the_playground_opens_on_an_example_with_predictions(server, page):
    open_at(page, f"{server}/Session_Playground", "What if: drop one item")
    check_no_error(page)
    expect(page.get_by_text("An example to start from", exact=False).first).to_be_visible()
    assert page.locator("table.next-items").count() >= 2  # the predictions, then the attention's lists
    assert chips(page, "Models")[:3] == ["gru4rec", "sasrec", "bert4rec"]  # the next-item models first


def test_a_link_to_an_unknown_user_says_so_and_shows_another(server, page):
    open_at(page, f"{server}/User_Explorer?user=nobody&models=lightgcn", "History of user")
    check_no_error(page)
    expect(page.get_by_text("User nobody from the link is not in synthetic", exact=False).first).to_be_visible()
    expect(page.get_by_text("Not trained on synthetic, so left out: lightgcn", exact=False).first).to_be_visible()


def test_a_first_visit_says_which_source_it_is_trying(page, tmp_path_factory):
    """A fresh server and data folder on ml-100k, with no network: a GroupLens mirror that accepts
    the connection and never answers, and a package index that refuses. The page says at once that
    it is starting, then which source it tries, then why none worked, and offers synthetic data."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        offline = {"DEEPREC_GROUPLENS_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
                   "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2"}  # fmt: skip
        store, data = tmp_path_factory.mktemp("first-visit-store"), tmp_path_factory.mktemp("first-visit-data")
        with streamlit_app(store, data, "streamlit-first-visit.log", dataset="ml-100k", env=offline) as url:
            page.set_viewport_size({"width": 1400, "height": 900})
            page.goto(url)
            page.get_by_text("Starting the lab", exact=False).first.wait_for(timeout=30_000)
            page.get_by_text("Trying the GroupLens zip", exact=False).first.wait_for(timeout=60_000)
            settle(page, "could not be obtained", timeout=120_000)
            check_no_error(page)
            expect(page.get_by_text("choose synthetic in the sidebar", exact=False).first).to_be_visible()


def test_a_map_renders_with_points_and_a_click_lists_neighbours(server, page):
    open_at(page, f"{server}/Embedding_Maps", "UMAP fit")
    points = page.locator(".js-plotly-plot").first.locator(".scatterlayer .point")
    points.first.wait_for(timeout=30_000)  # plotly draws after the element mounts
    assert points.count() == 120  # every synthetic item is a point on the first map
    points.nth(0).click(force=True)  # a click on a point chooses it
    settle(page, "Nearest to")
    screenshot(page, "embedding_maps_neighbours")
    check_no_error(page)
    tables = page.locator('[data-testid="stDataFrame"]')
    tables.first.wait_for(timeout=30_000)
    assert tables.count() == 2  # one neighbour list per map
    page.locator(".st-key-clear_map_item button").first.click()  # the chosen item's button clears it
    page.get_by_text("Nearest to").first.wait_for(state="detached")
    check_no_error(page)


def test_a_pipeline_run_shows_timings_and_both_lists(server, page):
    open_at(page, f"{server}/Pipeline", "Final list next to")
    # The live latency of each stage (retrieve, rank, total) and the ANN recall, as metric values.
    expect(page.get_by_text(re.compile(r"^[\d.]+ ms$"))).to_have_count(3)
    expect(page.get_by_text(re.compile(r"^[\d.]+%$"))).to_have_count(1)
    choose(page, "Index", "ivf", exact=True)
    settle(page, "nprobe")
    check_no_error(page)
    assert "IVF nlist=" in page.locator('[data-testid="stMain"]').inner_text()
    screenshot(page, "pipeline_ivf")


def choose(page, label: str, option: str, exact: bool = False) -> None:
    """Pick an option with the keyboard: type to filter, Enter to choose (a click on the option can
    land on the box's own input while the list is still being laid out)."""
    box = page.get_by_label(label, exact=exact).first
    box.click()
    page.keyboard.type(option)
    listed(page, option).wait_for()
    page.keyboard.press("Enter")
    page.get_by_role("option").first.wait_for(state="detached")
    expect(box).to_have_value(option)


def test_an_ab_simulation_is_run_by_clicking_and_gives_a_verdict(server, page):
    open_at(page, f"{server}/Evaluate_and_AB", "A/B simulator")
    check_no_error(page)
    assert page.get_by_text("A/B test of", exact=False).count() == 0  # nothing runs until asked
    choose(page, "Control (today's model)", "pop")
    choose(page, "Treatment (the challenger)", "sasrec")
    page.get_by_role("button", name="Run the simulation").click()
    settle(page, "A/B test of sasrec (treatment) against pop (control)")
    check_no_error(page)
    verdict = page.get_by_text("A/B test of sasrec (treatment)", exact=False).first.inner_text()
    assert "statistically significant" in verdict and "nan" not in verdict.lower()
    assert page.get_by_text("Welch's t-test p", exact=False).count() >= 1
    assert screenshot(page, "evaluate_ab").stat().st_size > 10_000


def listed(page, option: str):
    """The open list's entry for ``option``; the Train view marks a model trained on the dataset already with " ✓"."""
    return page.get_by_role("option", name=re.compile(rf"^{re.escape(option)}( ✓)?$")).first


def pick(page, label: str, option: str) -> None:
    """Add an option to a multiselect by typing it and pressing Enter."""
    page.get_by_label(label, exact=True).first.click()
    page.keyboard.type(option)
    listed(page, option).wait_for()
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")


def test_an_uploaded_csv_is_trained_and_every_view_switches_to_it(training_server, page, tmp_path):
    server = training_server
    rows = ["user_id,item_id,rating,timestamp"]
    rows += [
        f"c{u},m{(3 * u + k) % 40},{1 + (u + k) % 5},{1_600_000_000 + 3600 * k}" for u in range(60) for k in range(9)
    ]
    interactions = tmp_path / "shop.csv"
    interactions.write_text("\n".join(rows) + "\n")
    items = tmp_path / "shop-items.csv"
    items.write_text("item_id,title,genres\n" + "".join(f"m{i},Product {i},Group{i % 4}\n" for i in range(40)))
    open_at(page, f"{server}/Train", "Start training")
    page.get_by_role("tab", name="Bring your own data").click()
    files = page.locator('input[type="file"]')
    files.nth(0).set_input_files(str(interactions))
    files.nth(1).set_input_files(str(items))
    page.get_by_role("textbox", name="Dataset name").fill("shop")
    page.get_by_role("button", name="Add the dataset").click()
    settle(page, "Dataset shop added", timeout=180_000)  # the first run on this server, under CI's load
    check_no_error(page)
    expect(page.get_by_label("Dataset", exact=True).first).to_have_value("shop")  # the sidebar switched
    page.get_by_role("tab", name="Train models").click()
    pick(page, "baselines", "ease")
    page.get_by_role("button", name="Start training").click()
    settle(page, "Last training finished: ease", timeout=180_000)
    check_no_error(page)
    screenshot(page, "train_uploaded")
    visit_every_view(page, "shop")


def visit_every_view(page, dataset: str) -> None:
    """Each view through the sidebar's links: it opens without an error, on ``dataset``."""
    for link, ready in [("Overview", f"The data: {dataset}"), ("User explorer", "History of user"),
                        ("Session playground", "The session ("), ("Embedding maps", "UMAP fit"),
                        ("Pipeline", "Final list next to"), ("Evaluate and A/B", "A/B simulator")]:  # fmt: skip
        page.get_by_role("link", name=link).first.click()
        settle(page, ready)
        check_no_error(page)
        expect(page.get_by_label("Dataset", exact=True).first).to_have_value(dataset)


def test_grouplens_files_upload_train_and_every_view_opens_on_an_ml1m_shaped_dataset(training_server, page, tmp_path):
    """GroupLens' three .dat files through the Train view, with MovieLens-1M's shape: users file,
    ages as codes, histories long enough (mean over 150) that the sequential models read 200 items."""
    from recsys_core.data.synthetic import make_synthetic, write_grouplens_files

    source = make_synthetic(n_users=40, n_items=1200, n_clusters=6, min_length=150, max_length=190, seed=3)
    folder = write_grouplens_files(source, tmp_path / "ml-1m-like")
    open_at(page, f"{training_server}/Train", "Start training")
    page.get_by_role("tab", name="Bring your own data").click()
    files = page.locator('input[type="file"]')
    for n, name in enumerate(("ratings.dat", "movies.dat", "users.dat")):
        files.nth(n).set_input_files(str(folder / name))
    page.get_by_role("textbox", name="Dataset name").fill("ml1m-like")
    page.get_by_role("button", name="Add the dataset").click()
    settle(page, "Dataset ml1m-like added")
    check_no_error(page)
    page.get_by_role("tab", name="Train models").click()
    pick(page, "sequential", "sasrec")
    page.get_by_text("max_len", exact=False).first.wait_for()  # the form shows the data's history length
    expect(page.get_by_label("max_len", exact=True).first).to_have_value("200")
    page.get_by_role("button", name="Start training").click()
    settle(page, "Last training finished: sasrec", timeout=240_000)
    check_no_error(page)
    visit_every_view(page, "ml1m-like")
    screenshot(page, "ml1m_like_evaluate")


def test_training_from_the_train_view_shows_progress_lands_on_the_overview_and_can_be_cancelled(training_server, page):
    server = training_server
    open_at(page, f"{server}/Train", "Start training")
    pick(page, "baselines", "itemknn")
    page.get_by_role("button", name="Start training").click()
    settle(page, "Last training finished: itemknn", timeout=180_000)
    check_no_error(page)
    page.get_by_role("link", name="Overview").first.click()  # the same server, never restarted
    settle(page, "Model cards")
    # itemknn's new artifact is in the leaderboard (a data grid cell, drawn on a canvas) and the charts.
    expect(page.get_by_text("itemknn", exact=True).first).to_be_attached()
    page.get_by_role("link", name="Train").first.click()
    settle(page, "Start training")
    # A job that cannot end before Cancel on any host: any model's default run on this small data
    # stops early within seconds on a fast one (bert4rec's whole full profile took 10 s), so the
    # form raises multvae's epochs and patience far past what it can reach.
    pick(page, "autoencoders", "multvae")
    for name in ("epochs", "patience"):
        box = page.get_by_label(name, exact=True).first
        box.fill("100000")
        box.press("Tab")
    settle(page, "Start training")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("models done; training", exact=False).first.wait_for(timeout=120_000)
    expect(page.get_by_text("multvae (epoch", exact=False).first).to_contain_text("/100000)")
    screenshot(page, "train_progress")
    page.get_by_role("button", name="Cancel training").click()
    settle(page, "Last training was cancelled")
    check_no_error(page)
    expect(page.get_by_text("Last training was cancelled", exact=False).first).to_contain_text("none")


def test_a_study_started_in_the_browser_shows_its_trials_and_figures(training_server, page):
    open_at(page, f"{training_server}/Train", "Start training")
    page.get_by_role("tab", name="Tune").click()
    pick(page, "Models to tune", "ease")
    trials = page.get_by_label("Trials per model (the same for each)")
    trials.fill("3")
    trials.press("Tab")
    page.get_by_role("button", name="Start tuning").click()
    # Trials show as they finish, then the study's figures and the default-against-tuned table.
    page.get_by_text("Trials of the", exact=False).first.wait_for(timeout=180_000)
    page.get_by_text("3 of 3 trials finished", exact=False).first.wait_for(timeout=180_000)
    settle(page, "Default against tuned")
    check_no_error(page)
    assert page.locator(".js-plotly-plot").count() >= 1
    expect(page.get_by_text("Optimization History", exact=False).first).to_be_visible()
    screenshot(page, "tune")


def test_a_damaged_upload_shows_its_words_literally_never_as_markup(page, tmp_path_factory):
    """The stored files of an upload edited since: the page says so, and the file's own words
    (here, markdown for an image every viewer's browser would fetch) are shown as written."""
    data = tmp_path_factory.mktemp("browser-damaged-data")
    folder = data / "uploads" / "shop"
    folder.mkdir(parents=True)
    (folder / "interactions.csv").write_text("user_id,item_id,rating\nu1,i1,![x](http://127.0.0.1:9/p.png)\n")
    store = tmp_path_factory.mktemp("browser-empty-store")
    with streamlit_app(store, data, "streamlit-damaged.log", dataset="shop") as url:
        page.goto(url)
        settle(page, "cannot be read")
        check_no_error(page)
        main = page.locator('[data-testid="stMain"]')
        assert "column 'rating': '![x](http://127.0.0.1:9/p.png)' is not a number" in main.inner_text()
        assert main.locator("img").count() == 0
        screenshot(page, "damaged_upload")
