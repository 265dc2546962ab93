"""Interactions from a user's CSV: ``user_id,item_id[,rating][,timestamp]`` plus optional side files,
an items CSV ``item_id,title[,genres][,year]`` and a users CSV ``user_id`` plus categorical columns
(MovieLens' ``gender``, ``age``, ``occupation`` become the models' user features). Every problem
is reported with its line (the file's own line, also when a quoted cell spans several), column
and value; a bad file raises :class:`CsvError` and nothing is written anywhere.

Ids are kept as written (``007`` stays ``007``, case matters) except for spaces around them, which
are dropped here and in requests alike (:func:`recsys_core.data.dataset.normalise_id`).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_core.data.dataset import Dataset, DatasetTooSmall, build_dataset, keep_evaluable_users

DEFAULT_MAX_MIB = 50.0
REQUIRED = ("user_id", "item_id")
# Unix seconds that a date can show (pandas' datetime range, 1677-09-21 to 2262-04-11): the views
# draw timestamps as dates and the rankers read weekday and hour from them. Positions in a history
# (0, 1, 2, ...) fit too; milliseconds do not.
TIMESTAMP_RANGE = (-9_223_372_036, 9_223_372_036)
TITLE_YEAR = r"\((\d{4})\)\s*$"


class CsvError(ValueError):
    """A user-supplied CSV that cannot be used; the message names the line and column."""


def max_csv_bytes() -> int:
    """The size limit of one CSV file, from the command line or an upload alike:
    ``DEEPREC_MAX_UPLOAD_MB`` mebibytes (MiB; default 50)."""
    try:
        mebibytes = float(os.environ.get("DEEPREC_MAX_UPLOAD_MB", DEFAULT_MAX_MIB))
    except ValueError:
        mebibytes = DEFAULT_MAX_MIB
    return int(max(mebibytes, 0.001) * 2**20)


def size_error(label: str, size: int, limit: int) -> CsvError:
    return CsvError(f"{label} is {binary_size(size)}; the limit is {binary_size(limit)} "
                    "(set DEEPREC_MAX_UPLOAD_MB, in MiB, to change it)")  # fmt: skip


def binary_size(n_bytes: int) -> str:
    """``n_bytes`` in the unit that reads best, in powers of 1024 (the limit is set in MiB)."""
    if n_bytes < 1024:
        return f"{n_bytes} bytes"
    if n_bytes < 2**20:
        return f"{n_bytes / 1024:.1f} KiB"
    return f"{n_bytes / 2**20:.1f} MiB"


def side_files(path: Path) -> tuple[Path | None, Path | None]:
    """The items and users files beside an interactions CSV ``NAME.csv``: ``NAME.items.csv`` and
    ``NAME.users.csv``, each ``None`` when absent."""
    items, users = (path.with_name(f"{path.stem}.{side}.csv") for side in ("items", "users"))
    return (items if items.is_file() else None), (users if users.is_file() else None)


def load_interactions_csv(
    path: str | Path,
    items_path: str | Path | None = None,
    name: str | None = None,
    max_bytes: int | None = None,
    users_path: str | Path | None = None,
) -> Dataset:
    """``max_bytes`` defaults to :func:`max_csv_bytes`."""
    path = Path(path)
    max_bytes = max_csv_bytes() if max_bytes is None else max_bytes
    payload = read_limited(path, max_bytes)
    items, users = (None if p is None else read_limited(Path(p), max_bytes) for p in (items_path, users_path))
    digest = hashlib.sha256(payload).hexdigest()[:10]
    # Named by content: artifacts trained on one version of a file are never taken for another's.
    # Commands that name the dataset again (retrain hints) use ``reference``: the path itself.
    return dataset_from_csv(
        payload, items, users, name=name or f"{_safe_stem(path.stem)}-{digest}", source=f"CSV file {path}",
        reference=name or str(path),
        file_names=(path.name, *(Path(p).name if p else "" for p in (items_path, users_path))),
    )  # fmt: skip


def dataset_from_csv(
    interactions: bytes,
    items: bytes | None,
    users: bytes | None,
    name: str,
    source: str,
    reference: str = "",
    file_names: tuple[str, ...] = ("interactions.csv", "items.csv", "users.csv"),
    line_shifts: tuple[int, ...] = (0, 0, 0),
) -> Dataset:
    """A dataset from the CSV payloads; ``file_names`` name them in messages, ``line_shifts`` are
    added to each file's line numbers (-1 for a file converted from a layout without a header)."""
    ratings, notes = parse_interactions_csv(interactions, file_names[0], line_shifts[0])
    item_frame = None if items is None else parse_items_csv(items, file_names[1], line_shifts[1])
    user_frame = None
    if users is not None:
        user_rows = parse_users_csv(users, file_names[2], line_shifts[2])
        user_frame, user_notes = users_with_interactions(user_rows, ratings)
        notes += user_notes
    return build_dataset(name, ratings, item_frame, user_frame, source=source, notes=notes, reference=reference)


def parse_interactions_csv(
    payload: bytes, source_name: str = "the file", line_shift: int = 0
) -> tuple[pd.DataFrame, list[str]]:
    """Validate and normalise an interactions CSV; returns the frame and notes on what was fixed.

    Users with fewer interactions than the protocol holds out are left out (with a note); too few
    users left is a :class:`CsvError` (see :func:`recsys_core.data.dataset.keep_evaluable_users`).
    """
    table = _read_table(payload, source_name, line_shift)
    frame = table.frame
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise CsvError(
            f"{source_name}: line 1 (header) lacks column(s) {', '.join(missing)}; found "
            f"{', '.join(frame.columns) or 'none'}. Expected user_id,item_id[,rating][,timestamp]."
        )
    if frame.empty:
        raise CsvError(f"{source_name}: no interaction rows after the header")
    for column in REQUIRED:
        table.require_non_empty(column)
    notes: list[str] = []
    rating = _numeric_column(table, "rating") if "rating" in frame else np.ones(len(frame))
    if "timestamp" in frame:
        timestamp = _timestamp_column(table)
    else:
        # Without timestamps, file order is the only order there is.
        timestamp = np.arange(len(frame), dtype=np.int64)
        notes.append("no timestamp column: file order is used as time order")
    ratings = pd.DataFrame(
        {
            "user_id": frame["user_id"].str.strip(),
            "item_id": frame["item_id"].str.strip(),
            "rating": rating,
            "timestamp": timestamp,
        }
    )
    # Implicit feedback: a repeated (user, item) pair is one interaction, dated at its first time.
    order = np.argsort(ratings["timestamp"].to_numpy(), kind="stable")
    duplicated = ratings.iloc[order].duplicated(["user_id", "item_id"], keep="first")
    n_duplicates = int(duplicated.sum())
    if n_duplicates:
        keep = np.sort(order[~duplicated.to_numpy()])
        ratings = ratings.iloc[keep].reset_index(drop=True)
        notes.append(f"{n_duplicates} repeated (user_id, item_id) rows merged into their first occurrence")
    try:
        ratings, dropped = keep_evaluable_users(ratings)
    except DatasetTooSmall as error:
        raise CsvError(f"{source_name}: {error}") from None
    return ratings, notes + dropped


def parse_items_csv(payload: bytes, source_name: str = "the items file", line_shift: int = 0) -> pd.DataFrame:
    table = _read_table(payload, source_name, line_shift)
    frame = table.frame
    missing = [c for c in ("item_id", "title") if c not in frame.columns]
    if missing:
        raise CsvError(
            f"{source_name}: line 1 (header) lacks column(s) {', '.join(missing)}; found "
            f"{', '.join(frame.columns) or 'none'}. Expected item_id,title[,genres]."
        )
    table.require_non_empty("item_id")
    duplicated = frame["item_id"].str.strip().duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise table.error(row, "item_id", f"item {frame['item_id'].iloc[row]!r} is listed twice")
    title = frame["title"].fillna("").str.strip()
    if "year" in frame:
        year = pd.to_numeric(frame["year"].str.strip(), errors="coerce")
    else:
        # MovieLens writes the release year into the title, "Toy Story (1995)": the year feature's source.
        year = pd.to_numeric(title.str.extract(TITLE_YEAR, expand=False), errors="coerce")
    return pd.DataFrame(
        {
            "item_id": frame["item_id"].str.strip(),
            "title": title,
            "genres": frame["genres"].fillna("").str.strip() if "genres" in frame else "",
            "year": year.astype(float),
        }
    )


def parse_users_csv(payload: bytes, source_name: str = "the users file", line_shift: int = 0) -> pd.DataFrame:
    """``user_id`` plus categorical columns, all kept as written (strings). The models read
    ``gender``, ``age`` (years or MovieLens-1M's age-group codes) and ``occupation``; other
    columns are shown with the user, not fed to the models."""
    table = _read_table(payload, source_name, line_shift)
    frame = table.frame
    if "user_id" not in frame.columns:
        raise CsvError(
            f"{source_name}: line 1 (header) lacks column user_id; found {', '.join(frame.columns) or 'none'}. "
            "Expected user_id plus categorical columns such as gender,age,occupation."
        )
    table.require_non_empty("user_id")
    ids = frame["user_id"].str.strip()
    duplicated = ids.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise table.error(row, "user_id", f"user {frame['user_id'].iloc[row]!r} is listed twice")
    if "age" in frame:
        age = frame["age"].str.strip()
        bad = age.notna() & pd.to_numeric(age, errors="coerce").isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise table.error(row, "age", f"{frame['age'].iloc[row]!r} is not a number (years or an age-group code)")
    columns = {c: frame[c].str.strip() for c in frame.columns if c != "user_id"}
    return pd.DataFrame({"user_id": ids, **columns})


def users_with_interactions(users: pd.DataFrame, ratings: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The users file's rows for users who have interactions: a listed user with none (or one left
    out for having too few) could be neither trained on nor evaluated."""
    known = users["user_id"].isin(pd.unique(ratings["user_id"]))
    if known.all():
        return users, []
    note = f"{int((~known).sum()):,} users in the users file have no interactions kept here and were left out"
    return users[known].reset_index(drop=True), [note]


def read_limited(path: Path, max_bytes: int) -> bytes:
    if not path.is_file():
        raise CsvError(f"{path}: no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise size_error(str(path), size, max_bytes)
    return path.read_bytes()


class _Table:
    """A parsed CSV with what its messages need: the file's name and the line each row starts on."""

    def __init__(self, frame: pd.DataFrame, text: str, source_name: str, line_shift: int = 0) -> None:
        self.frame, self.text, self.source_name, self.line_shift = frame, text, source_name, line_shift

    @functools.cached_property
    def _starts(self) -> list[int]:
        return record_lines(self.text)  # read again only once a message needs a line

    def line(self, row: int) -> int:
        """The file line (1-based, the header is line 1) on which data row ``row`` starts."""
        line = self._starts[row + 1] if row + 1 < len(self._starts) else row + 2
        return line + self.line_shift

    def error(self, row: int, column: str, problem: str) -> CsvError:
        return CsvError(f"{self.source_name}: line {self.line(row)}, column '{column}': {problem}")

    def require_non_empty(self, column: str) -> None:
        values = self.frame[column]
        empty = values.isna() | (values.astype(str).str.strip() == "")
        if empty.any():
            raise self.error(int(np.flatnonzero(empty.to_numpy())[0]), column, "empty value")


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(the line it starts on, its cells) per CSV record, blank lines skipped as pandas skips them:
    a quoted cell may hold line breaks, so record n is not always on line n + 1. A line the csv
    module rejects ends the walk; callers then fall back to one record per line."""
    reader = csv.reader(io.StringIO(text), skipinitialspace=True)
    line = 1
    with contextlib.suppress(csv.Error):
        for record in reader:
            if record:
                yield line, record
            line = reader.line_num + 1


def record_lines(text: str) -> list[int]:
    """The line each CSV record starts on."""
    return [line for line, _ in _records(text)]


def _read_table(payload: bytes, source_name: str, line_shift: int = 0) -> _Table:
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = payload[: error.start].count(b"\n") + 1
        raise CsvError(f"{source_name}: line {line} is not valid UTF-8 text") from error
    if not text.strip():
        raise CsvError(f"{source_name}: the file is empty")
    try:
        with warnings.catch_warnings():
            # index_col=False: a row with one cell too many is an error, not a silent shift of every
            # column into pandas' implicit index (which it announces only with this warning).
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # dtype=str keeps ids exactly as written ("007" stays "007"); numbers are parsed below.
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""],
                                skipinitialspace=True, index_col=False)  # fmt: skip
    except pd.errors.ParserWarning as error:
        raise CsvError(f"{source_name}: {_long_record_message(text) or error}") from None
    except pd.errors.ParserError as error:
        raise CsvError(f"{source_name}: {_parser_message(error, text)}") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    return _Table(frame, text, source_name, line_shift)


def _parser_message(error: Exception, text: str) -> str:
    """pandas' tokenizer error with its record number turned into the file's line."""
    message = str(error).strip().splitlines()[-1].replace("Error tokenizing data. C error: ", "")
    starts = record_lines(text)
    unclosed = re.search(r"EOF inside string starting at row (\d+)", message)
    if unclosed:
        record = int(unclosed.group(1))  # 0 is the header
        line = starts[record] if record < len(starts) else record + 1
        return f"line {line}: a quoted cell is never closed (a \" without its closing \")"
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if fields:
        expected, record, seen = (int(g) for g in fields.groups())
        line = starts[record - 1] if record - 1 < len(starts) else record
        return f"line {line}: {seen} cells where the header has {expected}"
    return message


def _long_record_message(text: str) -> str | None:
    """Which line has more cells than the header, as the csv module reads the file."""
    records = _records(text)
    _, header = next(records, (1, []))
    for line, record in records:
        if len(record) > len(header):
            return f"line {line}: {len(record)} cells where the header has {len(header)}"
    return None


def _numeric_column(table: _Table, column: str) -> np.ndarray:
    table.require_non_empty(column)
    raw = table.frame[column]
    values = pd.to_numeric(raw.str.strip(), errors="coerce")
    bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        kind = "a number" if pd.isna(values.iloc[row]) else "a finite number"
        raise table.error(row, column, f"{raw.iloc[row]!r} is not {kind}")
    return values.to_numpy(dtype=np.float32)


def _timestamp_column(table: _Table) -> np.ndarray:
    """Unix seconds in :data:`TIMESTAMP_RANGE` (or positions in a history), or ISO dates/times
    (converted to Unix seconds, UTC); one form for the whole column."""
    table.require_non_empty("timestamp")
    raw = table.frame["timestamp"].str.strip()
    numeric = pd.to_numeric(raw, errors="coerce")
    is_number = numeric.notna().to_numpy()
    if is_number.all():
        low, high = TIMESTAMP_RANGE
        as_float = numeric.to_numpy(dtype=np.float64)  # exact for every whole number in the range
        outside = ~np.isfinite(as_float) | (as_float < low) | (as_float > high)
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            raise table.error(row, "timestamp", f"{raw.iloc[row]!r} is outside the range of timestamps: Unix "
                              f"seconds from {low:,} to {high:,} (1677-09-21 to 2262-04-11); for milliseconds, "
                              "divide by 1,000")  # fmt: skip
        return np.floor(as_float).astype(np.int64)
    dates = pd.to_datetime(raw.where(~is_number), errors="coerce", utc=True, format="ISO8601")
    neither = ~is_number & dates.isna().to_numpy()
    if neither.any():
        row = int(np.flatnonzero(neither)[0])
        raise table.error(row, "timestamp", f"{raw.iloc[row]!r} is neither Unix seconds nor an ISO date "
                          "(from 1677 to 2262, e.g. 2024-01-31 or 2024-01-31T18:05:00)")  # fmt: skip
    if is_number.any():
        number, date = int(np.flatnonzero(is_number)[0]), int(np.flatnonzero(~is_number)[0])
        raise CsvError(
            f"{table.source_name}: column 'timestamp' mixes Unix seconds (line {table.line(number)}: "
            f"{raw.iloc[number]!r}) and ISO dates (line {table.line(date)}: {raw.iloc[date]!r}); use one form"
        )
    # Resolution-independent (pandas 3 may store microseconds rather than nanoseconds).
    epoch = pd.Timestamp(0, tz="UTC")
    return ((dates - epoch) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


def _safe_stem(stem: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem).strip("-")
    return cleaned[:40] or "csv"
