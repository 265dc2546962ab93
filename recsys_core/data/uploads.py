"""Datasets users bring: an interactions CSV (and optionally items and users CSVs, or GroupLens'
three ``.dat`` files, converted to those CSVs) stored under ``data/uploads/<name>/`` and served by
name like MovieLens.

A file is validated in full before anything is written (every problem names its line and column,
see :mod:`recsys_core.data.csv_loader`); it is then written to a temporary folder that is renamed
into place, so a bad or interrupted upload changes nothing and a good one appears whole.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from recsys_core.data.csv_loader import CsvError, dataset_from_csv, load_interactions_csv, max_csv_bytes, size_error
from recsys_core.data.dataset import Dataset
from recsys_core.data.grouplens import as_csv
from recsys_core.paths import data_dir

UPLOADS = "uploads"
INTERACTIONS, ITEMS, USERS = "interactions.csv", "items.csv", "users.csv"
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
    users: bytes | None = None,
    source: UploadSource | None = None,
) -> Dataset:
    """Validate the files, store them as dataset ``name`` and return it loaded.

    ``source`` names the files as the user sent them (messages then point into those files).
    Raises :class:`CsvError` (with line numbers) for a bad file, a bad or taken name, or a file over
    the size limit; nothing is written then.
    """
    name = check_name(name, reserved)
    limit = max_csv_bytes()
    files = {INTERACTIONS: interactions, ITEMS: items, USERS: users}
    for label, payload in files.items():
        if payload is not None and len(payload) > limit:
            raise size_error(f"the {label.removesuffix('.csv')} file", len(payload), limit)
    source = source or UploadSource()
    # Raises with the line and column, in the file the user sent.
    dataset_from_csv(interactions, items, users, name, "", file_names=source.names, line_shifts=source.line_shifts)
    final = uploads_dir(root) / name
    if final.exists() and not replace:
        raise CsvError(f"a dataset called {name!r} exists already: choose another name")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for file_name, payload in files.items():
            if payload is not None:
                (tmp / file_name).write_bytes(payload)
        dataset = load_uploaded(name, tmp)  # the whole dataset builds before it is put in place
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dataset


@dataclass(frozen=True)
class UploadSource:
    """What the uploaded files were called, and the line shift of files converted from ``.dat``."""

    names: tuple[str, str, str] = (INTERACTIONS, ITEMS, USERS)
    line_shifts: tuple[int, int, int] = (0, 0, 0)


def save_uploaded_files(
    name: str,
    interactions: NamedFile,
    items: NamedFile | None = None,
    users: NamedFile | None = None,
    reserved: set[str] | None = None,
) -> Dataset:
    """:func:`save_upload` for files as the browser sends them (anything with ``.name`` and
    ``.getvalue()``): CSVs, or GroupLens' ``ratings.dat``, ``movies.dat`` and ``users.dat``."""
    sent = (interactions, items, users)
    converted = [None if f is None else as_csv(f.name, f.getvalue()) for f in sent]
    defaults = (INTERACTIONS, ITEMS, USERS)
    names = tuple(default if f is None else f.name for f, default in zip(sent, defaults, strict=True))
    shifts = tuple(0 if c is None else c[1] for c in converted)
    payloads = [None if c is None else c[0] for c in converted]
    return save_upload(name, payloads[0], payloads[1], reserved=reserved, users=payloads[2],
                       source=UploadSource(names, shifts))  # fmt: skip


class NamedFile(Protocol):
    name: str

    def getvalue(self) -> bytes: ...


def load_uploaded(name: str, folder: Path | None = None, root: Path | None = None) -> Dataset:
    """A stored upload by name (``folder`` overrides where its files are)."""
    folder = folder or uploads_dir(root) / name
    items, users = (p if p.is_file() else None for p in (folder / ITEMS, folder / USERS))
    largest = max(p.stat().st_size for p in (folder / INTERACTIONS, items, users) if p is not None)
    return load_interactions_csv(folder / INTERACTIONS, items, name=name, max_bytes=max(max_csv_bytes(), largest),
                                 users_path=users)  # fmt: skip


def delete_upload(name: str, root: Path | None = None) -> None:
    folder = uploads_dir(root) / check_name(name)
    if folder.is_dir():
        shutil.rmtree(folder)
