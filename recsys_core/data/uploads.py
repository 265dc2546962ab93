"""Datasets users bring: an interactions CSV (and optionally an items CSV) stored under
``data/uploads/<name>/`` and served by name like MovieLens.

A file is validated in full before anything is written (every problem names its line and column,
see :mod:`recsys_core.data.csv_loader`); it is then written to a temporary folder that is renamed
into place, so a bad or interrupted upload changes nothing and a good one appears whole.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

from recsys_core.data.csv_loader import (
    CsvError,
    load_interactions_csv,
    max_csv_bytes,
    parse_interactions_csv,
    parse_items_csv,
    size_error,
)
from recsys_core.data.dataset import Dataset
from recsys_core.paths import data_dir

UPLOADS = "uploads"
INTERACTIONS, ITEMS = "interactions.csv", "items.csv"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def uploads_dir(root: Path | None = None) -> Path:
    return (root or data_dir()) / UPLOADS


def uploaded_datasets(root: Path | None = None) -> list[str]:
    """Names of the stored uploads, alphabetically."""
    folder = uploads_dir(root)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / INTERACTIONS).is_file() and NAME_PATTERN.match(p.name))


def check_name(name: str, reserved: set[str] | None = None) -> str:
    name = name.strip().lower()
    if not NAME_PATTERN.match(name):
        raise CsvError(
            f"dataset name {name!r}: use 1 to 40 lower-case letters, digits, '-' or '_', starting with a "
            "letter or digit"
        )
    if reserved and name in reserved:
        raise CsvError(f"dataset name {name!r} is taken by a built-in dataset: choose another")
    return name


def save_upload(
    name: str,
    interactions: bytes,
    items: bytes | None = None,
    root: Path | None = None,
    reserved: set[str] | None = None,
    replace: bool = False,
) -> Dataset:
    """Validate the files, store them as dataset ``name`` and return it loaded.

    Raises :class:`CsvError` (with line numbers) for a bad file, a bad or taken name, or a file over
    the size limit; nothing is written then.
    """
    name = check_name(name, reserved)
    limit = max_csv_bytes()
    for label, payload in (("the interactions file", interactions), ("the items file", items)):
        if payload is not None and len(payload) > limit:
            raise size_error(label, len(payload), limit)
    parse_interactions_csv(interactions, source_name=INTERACTIONS)  # raises with the line and column
    if items is not None:
        parse_items_csv(items, source_name=ITEMS)
    final = uploads_dir(root) / name
    if final.exists() and not replace:
        raise CsvError(f"a dataset called {name!r} exists already: choose another name")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        (tmp / INTERACTIONS).write_bytes(interactions)
        if items is not None:
            (tmp / ITEMS).write_bytes(items)
        dataset = load_uploaded(name, tmp)  # the whole dataset builds before it is put in place
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dataset


def load_uploaded(name: str, folder: Path | None = None, root: Path | None = None) -> Dataset:
    """A stored upload by name (``folder`` overrides where its files are)."""
    folder = folder or uploads_dir(root) / name
    items = folder / ITEMS
    return load_interactions_csv(folder / INTERACTIONS, items if items.is_file() else None, name=name,
                                 max_bytes=max(max_csv_bytes(), (folder / INTERACTIONS).stat().st_size))  # fmt: skip


def delete_upload(name: str, root: Path | None = None) -> None:
    folder = uploads_dir(root) / check_name(name)
    if folder.is_dir():
        shutil.rmtree(folder)
