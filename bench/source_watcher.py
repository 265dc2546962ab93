"""What Streamlit's source watcher costs the server while another process reads the project's
files (as every training worker does when it imports torch from .venv), written to
docs/benchmarks.md.

    python bench/source_watcher.py

For each watcher type, `streamlit run app.py` over a scratch store, one Chromium session on the home
page (the watcher starts with a session), then three fresh interpreters import torch, pandas, plotly,
scikit-learn and scipy from the project's .venv; the server's CPU seconds over that time are read from
/proc. ``auto`` is Streamlit's default (watchdog's recursive inotify watch of the whole project
folder); ``poll`` is what .streamlit/config.toml sets.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sections import write_section  # noqa: E402
from bench.ui import CHROMIUM, LAUNCH_ARGS, streamlit_server  # noqa: E402

MARKER = "<!-- source-watcher -->"
WATCHERS = ("auto", "poll")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def server_cpu(watcher: str) -> tuple[float, float]:
    """CPU seconds of the server and wall seconds while three interpreters import from .venv."""
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="deeprec-watcher-"))
    env = {"DEEPREC_DATASET": "synthetic", "DEEPREC_ARTIFACTS_DIR": str(folder / "artifacts"),
           "DEEPREC_DATA_DIR": str(folder / "data"), "STREAMLIT_SERVER_FILE_WATCHER_TYPE": watcher}  # fmt: skip
    with sync_playwright() as p, streamlit_server(ROOT / "app.py", env) as url:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_page()
        page.goto(url)
        page.wait_for_timeout(15_000)  # the first run of the page, and the watcher it starts
        pid = int(subprocess.check_output(["pgrep", "-f", f"streamlit run {ROOT / 'app.py'}"]).split()[0])
        before, started = cpu_seconds(pid), time.perf_counter()
        for _ in range(3):
            subprocess.run([sys.executable, "-B", "-c", "import torch, pandas, plotly, sklearn, scipy.sparse"],
                           check=True)  # fmt: skip
        page.wait_for_timeout(20_000)
        used, wall = cpu_seconds(pid) - before, time.perf_counter() - started
        browser.close()
    return used, wall


def main() -> None:
    load = os.getloadavg()[0]
    lines = [
        MARKER, "## Streamlit's source watcher while training reads the project's files", "",
        f"`python bench/source_watcher.py` on {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores, load average "
        f"{load:.1f} at the start, the .venv inside the project as the README makes it. Server CPU seconds while "
        "three interpreters import torch, pandas, plotly, scikit-learn and scipy from it, then 20 s idle.", "",
        "| `server.fileWatcherType` | server CPU s | over wall s | share of one core |", "|---|---|---|---|",
    ]  # fmt: skip
    for watcher in WATCHERS:
        used, wall = server_cpu(watcher)
        lines.append(f"| {watcher}{' (the lab: .streamlit/config.toml)' if watcher == 'poll' else ''} | {used:.1f} "
                     f"| {wall:.0f} | {used / wall:.0%} |")  # fmt: skip
        print(lines[-1], flush=True)
    lines += ["", "With `auto`, watchdog's inotify queue overflows on the reads, it re-walks the tree, which "
              "overflows it again: the server keeps a core busy for as long as training runs (py-spy: "
              "`InotifyWatchGroup.on_queue_overflow` → `os.walk`).", "", MARKER]  # fmt: skip
    write_section(ROOT / "docs" / "benchmarks.md", MARKER, "\n".join(lines))


if __name__ == "__main__":
    main()
