"""Each benchmark owns one section of docs/benchmarks.md, between two copies of its marker."""

from __future__ import annotations

from pathlib import Path

HEADER = "# Benchmarks\n\nEvery figure here was produced by a script in bench/.\n"


def write_section(path: Path, marker: str, section: str) -> None:
    """Replace the section between ``marker`` lines (``section`` starts and ends with the marker),
    keeping the rest of the file; append it when the file has none yet."""
    text = path.read_text() if path.exists() else HEADER
    if marker in text:
        before, _, rest = text.partition(marker)
        _, _, after = rest.partition(marker)
        text = before + section + after
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
