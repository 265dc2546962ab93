"""Interactions from a user's CSV: ``user_id,item_id[,rating][,timestamp]`` plus an optional items
CSV ``item_id,title[,genres]``. Every problem is reported with its line and column; a bad file
raises :class:`CsvError` and nothing is written anywhere.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_core.data.dataset import Dataset, build_dataset

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
REQUIRED = ("user_id", "item_id")


class CsvError(ValueError):
    """A user-supplied CSV that cannot be used; the message names the line and column."""


def load_interactions_csv(
    path: str | Path,
    items_path: str | Path | None = None,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Dataset:
    path = Path(path)
    payload = _read_limited(path, max_bytes)
    ratings, notes = parse_interactions_csv(payload, source_name=path.name)
    items = None
    if items_path is not None:
        items = parse_items_csv(_read_limited(Path(items_path), max_bytes), source_name=Path(items_path).name)
    digest = hashlib.sha256(payload).hexdigest()[:10]
    return build_dataset(
        name or f"{_safe_stem(path.stem)}-{digest}", ratings, items, None, source=f"CSV file {path}", notes=notes
    )


def parse_interactions_csv(payload: bytes, source_name: str = "the file") -> tuple[pd.DataFrame, list[str]]:
    """Validate and normalise an interactions CSV; returns the frame and notes on what was fixed."""
    frame = _read_frame(payload, source_name)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise CsvError(
            f"{source_name}: line 1 (header) lacks column(s) {', '.join(missing)}; found "
            f"{', '.join(frame.columns) or 'none'}. Expected user_id,item_id[,rating][,timestamp]."
        )
    if frame.empty:
        raise CsvError(f"{source_name}: no interaction rows after the header")
    for column in REQUIRED:
        _require_non_empty(frame, column, source_name)
    notes: list[str] = []
    rating = _numeric_column(frame, "rating", source_name) if "rating" in frame else np.ones(len(frame))
    if "timestamp" in frame:
        timestamp = _timestamp_column(frame, source_name)
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
    return ratings, notes


def parse_items_csv(payload: bytes, source_name: str = "the items file") -> pd.DataFrame:
    frame = _read_frame(payload, source_name)
    missing = [c for c in ("item_id", "title") if c not in frame.columns]
    if missing:
        raise CsvError(
            f"{source_name}: line 1 (header) lacks column(s) {', '.join(missing)}; found "
            f"{', '.join(frame.columns) or 'none'}. Expected item_id,title[,genres]."
        )
    _require_non_empty(frame, "item_id", source_name)
    duplicated = frame["item_id"].str.strip().duplicated()
    if duplicated.any():
        line = int(np.flatnonzero(duplicated.to_numpy())[0]) + 2
        raise CsvError(
            f"{source_name}: line {line}, column 'item_id': item {frame['item_id'].iloc[line - 2]!r} is listed twice"
        )
    return pd.DataFrame(
        {
            "item_id": frame["item_id"].str.strip(),
            "title": frame["title"].fillna("").str.strip(),
            "genres": frame["genres"].fillna("").str.strip() if "genres" in frame else "",
            "year": np.nan,
        }
    )


def _read_limited(path: Path, max_bytes: int) -> bytes:
    if not path.is_file():
        raise CsvError(f"{path}: no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise CsvError(f"{path}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.1f} MB limit")
    return path.read_bytes()


def _read_frame(payload: bytes, source_name: str) -> pd.DataFrame:
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = payload[: error.start].count(b"\n") + 1
        raise CsvError(f"{source_name}: line {line} is not valid UTF-8 text") from error
    if not text.strip():
        raise CsvError(f"{source_name}: the file is empty")
    try:
        # dtype=str keeps ids exactly as written ("007" stays "007"); numbers are parsed below.
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""], skipinitialspace=True)
    except pd.errors.ParserError as error:
        raise CsvError(f"{source_name}: {_parser_message(error)}") from error
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    return frame


def _parser_message(error: Exception) -> str:
    # pandas says "Expected 3 fields in line 5, saw 4"; that already names the line.
    text = str(error).strip().splitlines()[-1]
    return text.replace("Error tokenizing data. C error: ", "")


def _require_non_empty(frame: pd.DataFrame, column: str, source_name: str) -> None:
    empty = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
    if empty.any():
        line = int(np.flatnonzero(empty.to_numpy())[0]) + 2
        raise CsvError(f"{source_name}: line {line}, column '{column}': empty value")


def _numeric_column(frame: pd.DataFrame, column: str, source_name: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise CsvError(f"{source_name}: line {row + 2}, column '{column}': {frame[column].iloc[row]!r} is not a number")
    return values.to_numpy(dtype=np.float32)


def _timestamp_column(frame: pd.DataFrame, source_name: str) -> np.ndarray:
    """Unix seconds, or ISO dates/times (converted to Unix seconds, UTC)."""
    raw = frame["timestamp"]
    numeric = pd.to_numeric(raw, errors="coerce")
    if numeric.notna().all():
        return numeric.to_numpy(dtype=np.float64).astype(np.int64)
    parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise CsvError(
            f"{source_name}: line {row + 2}, column 'timestamp': {raw.iloc[row]!r} is neither Unix "
            "seconds nor an ISO date"
        )
    # Resolution-independent (pandas 3 may store microseconds rather than nanoseconds).
    epoch = pd.Timestamp(0, tz="UTC")
    return ((parsed - epoch) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


def _safe_stem(stem: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem).strip("-")
    return cleaned[:40] or "csv"
