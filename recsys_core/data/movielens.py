"""MovieLens loaders: 100K (obtained at first use, checksummed), 1M and ml-latest-small.

GroupLens forbids redistribution, so nothing is committed. MovieLens-100K comes from the first
source that works, in this order:

1. a local copy under ``data/ml-100k/``: GroupLens layout (``u.data``, ``u.item``, ``u.user``) or
   the atomic-file layout (``ml-100k.inter``, ``.item``, ``.user``);
2. the official GroupLens zip (short timeout: many machines have no route to it);
3. the copy shipped inside the ``recbole==1.2.1`` wheel on PyPI, fetched with
   ``pip download --no-deps`` and unpacked; the package is never installed or imported.

Every file is checked against a recorded SHA-256 and a mismatch is an error. The atomic files are
checked byte for byte. The GroupLens files (whose own SHA-256 could not be recorded from a machine
without a route to GroupLens) are checked through the SHA-256 of their ratings in a canonical
form: sorted ``user, item, rating, timestamp`` lines, which both layouts must reproduce exactly;
the zip itself is also checked against the MD5 that GroupLens publishes beside it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_core.data.dataset import Dataset, build_dataset
from recsys_core.paths import sha256_file

# DEEPREC_GROUPLENS_URL: a mirror of GroupLens' folder, for machines that reach one but not GroupLens.
GROUPLENS = os.environ.get("DEEPREC_GROUPLENS_URL", "https://files.grouplens.org/datasets/movielens").rstrip("/")
GROUPLENS_TIMEOUT_S = 10
RECBOLE_WHEEL = "recbole==1.2.1"
RECBOLE_DIR = "recbole/dataset_example/ml-100k"

ATOMIC_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}
# SHA-256 of the 100,000 ratings in canonical form (see canonical_ratings_sha256).
ML100K_RATINGS_SHA256 = "6cfffb52c89b05fbc3afb75f6912eeda04c81c2add0dc58e773a0ef6c8adb160"
ZIP_MD5 = {
    "ml-100k": "0e33842e24a9c977be4e0107933c0723",
    "ml-1m": "c4d9eecfca2ab87c1945afe126590906",
}
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
CACHE_VERSION = 1
DOWNLOAD_MEMBERS = {
    "ml-1m": ("ratings.dat", "movies.dat", "users.dat"),
    "ml-latest-small": ("ratings.csv", "movies.csv"),
}
# A line of progress for people ("Trying the GroupLens zip..."): a page shows it while a first visit waits.
Progress = Callable[[str], None]


def _silent(line: str) -> None:
    del line


class DatasetUnavailable(RuntimeError):
    """No source of a dataset worked; the message says what was tried and what to do."""


class ChecksumMismatch(RuntimeError):
    """A dataset file does not match its recorded SHA-256."""


def canonical_ratings_sha256(ratings: pd.DataFrame) -> str:
    """SHA-256 of the ratings as sorted ``user\\titem\\trating\\ttimestamp`` lines.

    Independent of file layout and row order, so a GroupLens copy and the atomic-file copy of the
    same data give the same value.
    """
    frame = pd.DataFrame(
        {
            "u": ratings["user_id"].astype(int),
            "i": ratings["item_id"].astype(int),
            "r": ratings["rating"].astype(float).round(6),
            "t": ratings["timestamp"].astype(np.int64),
        }
    ).sort_values(["u", "i", "t", "r"], kind="stable")
    lines = (
        frame["u"].astype(str) + "\t" + frame["i"].astype(str) + "\t"
        + frame["r"].map(lambda r: f"{r:g}") + "\t" + frame["t"].astype(str)
    )  # fmt: skip
    return hashlib.sha256(("\n".join(lines) + "\n").encode()).hexdigest()


# --------------------------------------------------------------------------- MovieLens 100K


def obtain_movielens(name: str, root: Path, progress: Progress = _silent) -> str:
    """Make sure MovieLens ``name``'s files are under ``root``, verified, fetching them from the first
    source that works; returns a sentence naming the source. Each source is reported to ``progress``
    as it is tried, so that a first visit can say what it is waiting for. Parsing is the loader's."""
    folder = root / name
    if (folder / "cache" / "meta.json").is_file():
        progress(f"Found the parsed copy in {folder / 'cache'}.")
        return f"parsed copy in {folder / 'cache'}"
    if name == "ml-100k":
        return _obtain_ml100k(folder, progress)
    return _local_or_download(name, folder, DOWNLOAD_MEMBERS[name], progress)


def load_movielens_100k(root: Path) -> Dataset:
    """MovieLens-100K from the parsed cache, else from the first source that works."""
    folder = root / "ml-100k"
    cached = _read_cache(folder / "cache")
    if cached is not None:
        return cached
    source = _obtain_ml100k(folder, _silent)
    ratings, items, users = _parse_ml100k(folder)
    digest = canonical_ratings_sha256(ratings)
    if digest != ML100K_RATINGS_SHA256:
        raise ChecksumMismatch(
            f"the MovieLens-100K ratings in {folder} do not match the recorded SHA-256 "
            f"({digest[:12]}... != {ML100K_RATINGS_SHA256[:12]}...): the files are damaged or are "
            "another version. Delete the folder to fetch a fresh copy."
        )
    dataset = build_dataset("ml-100k", ratings, items, users, source=source)
    _write_cache(folder / "cache", dataset)
    return dataset


def _obtain_ml100k(folder: Path, progress: Progress) -> str:
    """Make sure ``folder`` holds a verified copy; returns a sentence naming the source."""
    progress(f"Looking for a local copy in {folder}.")
    if _has_grouplens_layout(folder):
        return f"local copy (GroupLens layout) in {folder}"
    if _has_atomic_layout(folder):
        progress("Checking the local files' SHA-256.")
        _check_atomic_files(folder)
        return f"local copy (atomic-file layout) in {folder}"
    failures = []
    try:
        _download_grouplens_zip("ml-100k", folder, ("u.data", "u.item", "u.user"), progress)
        return f"GroupLens zip ({GROUPLENS}/ml-100k.zip)"
    except (OSError, zipfile.BadZipFile, ChecksumMismatch) as error:
        failures.append(f"GroupLens zip: {error}")
        progress(f"The GroupLens zip failed ({str(error).rstrip('.')}).")
    try:
        progress(f"Trying the copy inside the {RECBOLE_WHEEL} wheel on PyPI (pip download; it is never installed).")
        _fetch_recbole_copy(folder)
        return f"the copy inside the {RECBOLE_WHEEL} wheel on PyPI (not installed)"
    except (OSError, subprocess.SubprocessError, zipfile.BadZipFile, ChecksumMismatch) as error:
        failures.append(f"{RECBOLE_WHEEL} wheel: {error}")
        progress(f"The {RECBOLE_WHEEL} wheel failed ({str(error).rstrip('.')}).")
    raise DatasetUnavailable(
        "MovieLens-100K could not be obtained. Tried: a local copy in "
        f"{folder} (none); " + "; ".join(f.rstrip(".") for f in failures) + ". Put u.data, u.item and u.user from "
        f"{GROUPLENS}/ml-100k.zip into {folder}, or use the synthetic dataset "
        "(--dataset synthetic) to run the lab without network."
    )


def _has_grouplens_layout(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ("u.data", "u.item", "u.user"))


def _has_atomic_layout(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ATOMIC_SHA256)


def _check_atomic_files(folder: Path) -> None:
    for name, expected in ATOMIC_SHA256.items():
        actual = sha256_file(folder / name)
        if actual != expected:
            raise ChecksumMismatch(
                f"{folder / name} has SHA-256 {actual[:12]}..., expected {expected[:12]}...: the "
                "file is damaged or is another version. Delete it to fetch a fresh copy."
            )


def _download_grouplens_zip(name: str, folder: Path, members: tuple[str, ...], progress: Progress = _silent) -> None:
    url = f"{GROUPLENS}/{name}.zip"
    progress(f"Trying the GroupLens zip ({url}; it gives up after {GROUPLENS_TIMEOUT_S} s without an answer).")
    with urllib.request.urlopen(url, timeout=GROUPLENS_TIMEOUT_S) as response:
        payload = _read_reporting(response, progress)
    expected = ZIP_MD5.get(name)
    if expected and hashlib.md5(payload).hexdigest() != expected:
        raise ChecksumMismatch(f"{url} does not match the MD5 GroupLens publishes ({expected})")
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        for member in members:
            _write_atomically(folder / member, archive.read(f"{name}/{member}"))


def _read_reporting(response, progress: Progress) -> bytes:
    """The body of an HTTP response, its progress reported at every fifth of its announced length."""
    total = int(response.headers.get("Content-Length") or 0)
    chunks, done, reported = [], 0, 0
    while chunk := response.read(1 << 18):
        chunks.append(chunk)
        done += len(chunk)
        if total and done * 5 // total > reported:
            reported = done * 5 // total
            progress(f"Downloaded {done / 1e6:.1f} of {total / 1e6:.1f} MB.")
    return b"".join(chunks)


def _fetch_recbole_copy(folder: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, RECBOLE_WHEEL],
                check=True,
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.CalledProcessError as error:  # pip's own last words say why, not its command line
            said = [line.strip() for line in (error.stderr or "").splitlines() if line.strip()]
            raise OSError(f"pip download failed ({said[-1] if said else f'exit status {error.returncode}'})") from None
        except subprocess.TimeoutExpired:
            raise OSError("pip download timed out after 300 s") from None
        wheels = list(Path(tmp).glob("recbole-*.whl"))
        if not wheels:
            raise OSError("pip download produced no recbole wheel")
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name, expected in ATOMIC_SHA256.items():
                payload = wheel.read(f"{RECBOLE_DIR}/{name}")
                actual = hashlib.sha256(payload).hexdigest()
                if actual != expected:
                    raise ChecksumMismatch(f"{name} in the recbole wheel has SHA-256 {actual[:12]}...")
                _write_atomically(folder / name, payload)


def _write_atomically(path: Path, payload: bytes) -> None:
    # A temporary name of its own: two processes fetching the dataset at first use (training
    # workers, say) would otherwise rename each other's file away.
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".partial", delete=False) as tmp:
        partial = Path(tmp.name)
        try:
            tmp.write(payload)
        except OSError:
            tmp.close()
            partial.unlink(missing_ok=True)
            raise
    partial.replace(path)


def _parse_ml100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    if _has_grouplens_layout(folder):
        return _parse_grouplens_100k(folder)
    return _parse_atomic_100k(folder)


def _parse_grouplens_100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = pd.read_csv(
        folder / "u.data", sep="\t", header=None, names=["user_id", "item_id", "rating", "timestamp"],
        dtype={"user_id": str, "item_id": str},
    )  # fmt: skip
    raw = pd.read_csv(folder / "u.item", sep="|", header=None, encoding="latin-1", dtype=str, keep_default_na=False)
    flags = raw.iloc[:, 5:24].astype(int).to_numpy()
    genres = ["|".join(g for g, f in zip(ML100K_GENRES, row, strict=True) if f) for row in flags]
    titles, years = zip(*(_split_title_year(t) for t in raw[1]), strict=True)
    items = pd.DataFrame({"item_id": raw[0], "title": titles, "genres": genres, "year": years})
    users = pd.read_csv(
        folder / "u.user", sep="|", header=None, dtype=str,
        names=["user_id", "age", "gender", "occupation", "zip_code"],
    )  # fmt: skip
    users["age"] = users["age"].astype(int)
    return ratings, items, users


def _parse_atomic_100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = pd.read_csv(folder / "ml-100k.inter", sep="\t", dtype=str)
    ratings.columns = ["user_id", "item_id", "rating", "timestamp"]
    ratings["rating"] = ratings["rating"].astype(float)
    ratings["timestamp"] = ratings["timestamp"].astype(float).astype(np.int64)
    raw = pd.read_csv(folder / "ml-100k.item", sep="\t", dtype=str, keep_default_na=False)
    raw.columns = ["item_id", "title", "year", "genres"]
    items = pd.DataFrame(
        {
            "item_id": raw["item_id"],
            "title": raw["title"],
            "genres": raw["genres"].str.split().str.join("|"),
            "year": pd.to_numeric(raw["year"], errors="coerce"),
        }
    )
    users = pd.read_csv(folder / "ml-100k.user", sep="\t", dtype=str)
    users.columns = ["user_id", "age", "gender", "occupation", "zip_code"]
    users["age"] = users["age"].astype(int)
    return ratings, items, users


_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


def _split_title_year(title: str) -> tuple[str, float]:
    match = _TITLE_YEAR.match(title)
    if match:
        return match.group(1), float(match.group(2))
    return title, float("nan")


# --------------------------------------------------------------------------- MovieLens 1M, latest-small


def load_movielens_1m(root: Path) -> Dataset:
    """MovieLens-1M from ``data/ml-1m/`` (``ratings.dat``, ``movies.dat``, ``users.dat``)."""
    folder = root / "ml-1m"
    cached = _read_cache(folder / "cache")
    if cached is not None:
        return cached
    source = _local_or_download("ml-1m", folder, DOWNLOAD_MEMBERS["ml-1m"])
    read = {"sep": "::", "engine": "python", "header": None, "encoding": "latin-1", "dtype": str}
    ratings = pd.read_csv(folder / "ratings.dat", names=["user_id", "item_id", "rating", "timestamp"], **read)
    ratings["rating"] = ratings["rating"].astype(float)
    ratings["timestamp"] = ratings["timestamp"].astype(np.int64)
    movies = pd.read_csv(folder / "movies.dat", names=["item_id", "title", "genres"], **read)
    titles, years = zip(*(_split_title_year(t) for t in movies["title"]), strict=True)
    items = movies.assign(title=titles, year=years)
    users = pd.read_csv(folder / "users.dat", names=["user_id", "gender", "age", "occupation", "zip_code"], **read)
    users["age"] = users["age"].astype(int)
    dataset = build_dataset("ml-1m", ratings, items, users, source=source)
    _write_cache(folder / "cache", dataset)
    return dataset


def load_movielens_latest_small(root: Path) -> Dataset:
    """ml-latest-small from ``data/ml-latest-small/`` (``ratings.csv``, ``movies.csv``).

    GroupLens revises this dataset, so there is no fixed checksum to hold it to.
    """
    folder = root / "ml-latest-small"
    cached = _read_cache(folder / "cache")
    if cached is not None:
        return cached
    source = _local_or_download("ml-latest-small", folder, DOWNLOAD_MEMBERS["ml-latest-small"])
    ratings = pd.read_csv(folder / "ratings.csv", dtype={"userId": str, "movieId": str})
    ratings = ratings.rename(columns={"userId": "user_id", "movieId": "item_id"})
    movies = pd.read_csv(folder / "movies.csv", dtype={"movieId": str}).rename(columns={"movieId": "item_id"})
    titles, years = zip(*(_split_title_year(t) for t in movies["title"]), strict=True)
    genres = movies["genres"].replace("(no genres listed)", "")
    items = movies.assign(title=titles, year=years, genres=genres)
    dataset = build_dataset("ml-latest-small", ratings, items, None, source=source)
    _write_cache(folder / "cache", dataset)
    return dataset


def _local_or_download(name: str, folder: Path, members: tuple[str, ...], progress: Progress = _silent) -> str:
    progress(f"Looking for a local copy in {folder}.")
    if all((folder / m).is_file() for m in members):
        return f"local copy in {folder}"
    try:
        _download_grouplens_zip(name, folder, members, progress)
    except (OSError, zipfile.BadZipFile, KeyError, ChecksumMismatch) as error:
        raise DatasetUnavailable(
            f"{name} is not in {folder} and the GroupLens download failed ({error}). Download "
            f"{GROUPLENS}/{name}.zip and unpack {', '.join(members)} into {folder}."
        ) from error
    return f"GroupLens zip ({GROUPLENS}/{name}.zip)"


# --------------------------------------------------------------------------- parsed cache


def _write_cache(folder: Path, dataset: Dataset) -> None:
    """Parquet copies of the parsed frames; written to a temp dir and renamed into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".cache-"))
    dataset.interactions.to_parquet(tmp / "interactions.parquet")
    dataset.items.to_parquet(tmp / "items.parquet")
    dataset.users.to_parquet(tmp / "users.parquet")
    meta = {"version": CACHE_VERSION, "name": dataset.name, "source": dataset.source, "notes": dataset.notes}
    (tmp / "meta.json").write_text(json.dumps(meta))
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _read_cache(folder: Path) -> Dataset | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("version") != CACHE_VERSION:
            return None
        return Dataset(
            meta["name"],
            pd.read_parquet(folder / "interactions.parquet"),
            pd.read_parquet(folder / "items.parquet"),
            pd.read_parquet(folder / "users.parquet"),
            source=meta["source"] + " (parsed cache)",
            notes=meta.get("notes", []),
        )
    except (OSError, ValueError, KeyError):
        # A missing or damaged cache is rebuilt from the verified source files.
        return None
