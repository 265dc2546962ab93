"""Datasets by name or path: ``load_dataset("ml-100k")``, an upload by its name, ``load_dataset("my_data.csv")``,
``load_dataset("path/to/ml-1m")`` (GroupLens' layout)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from recsys_core.data.csv_loader import CsvError, load_interactions_csv, side_files
from recsys_core.data.dataset import Dataset, build_dataset, normalise_id
from recsys_core.data.grouplens import is_grouplens_folder, load_grouplens_folder
from recsys_core.data.movielens import (
    ChecksumMismatch,
    DatasetUnavailable,
    Progress,
    load_movielens_1m,
    load_movielens_100k,
    load_movielens_latest_small,
    obtain_movielens,
)
from recsys_core.data.split import PROTOCOL, Split, temporal_leave_last_out
from recsys_core.data.synthetic import make_synthetic
from recsys_core.data.uploads import load_uploaded, save_upload, uploaded_datasets
from recsys_core.paths import data_dir

DATASETS: dict[str, Callable[[Path], Dataset]] = {
    "ml-100k": load_movielens_100k,
    "ml-1m": load_movielens_1m,
    "ml-latest-small": load_movielens_latest_small,
    "synthetic": lambda root: make_synthetic(),
}
DEFAULT_DATASET = "ml-100k"

__all__ = [
    "DATASETS", "DEFAULT_DATASET", "PROTOCOL", "ChecksumMismatch", "CsvError", "Dataset",
    "DatasetUnavailable", "Progress", "Split", "build_dataset", "dataset_names", "load_dataset", "make_synthetic",
    "normalise_id", "obtain_dataset", "save_upload", "temporal_leave_last_out",
]  # fmt: skip


def dataset_names(root: Path | None = None) -> list[str]:
    """The built-in datasets, then the ones users uploaded (``data/uploads/``)."""
    return [*DATASETS, *(n for n in uploaded_datasets(root or data_dir()) if n not in DATASETS)]


def obtain_dataset(name: str, root: Path | None = None, progress: Progress | None = None) -> str | None:
    """Fetch and verify a registered dataset's files when they are not here yet, reporting each source
    tried to ``progress`` (a page shows it on a first visit); returns where they came from. Only the
    MovieLens datasets are ever fetched: anything else returns None and is simply read by ``load_dataset``."""
    if name not in DATASETS or name == "synthetic":
        return None
    return obtain_movielens(name, root or data_dir(), progress or (lambda line: None))


def load_dataset(name_or_path: str, root: Path | None = None) -> Dataset:
    """A registered dataset name, an upload's name, the path of an interactions CSV (with its
    ``NAME.items.csv`` and ``NAME.users.csv`` when they are beside it), or a folder: GroupLens'
    MovieLens-1M layout (``ratings.dat``, ``movies.dat``, ``users.dat``) or one interactions CSV
    with its side files.

    A file's dataset name is its stem (a folder's name) plus a content hash, so that artifacts
    trained on one version of a file are never mistaken for another's.
    """
    root = root or data_dir()
    if name_or_path in DATASETS:
        return DATASETS[name_or_path](root)
    if name_or_path in uploaded_datasets(root):
        return load_uploaded(name_or_path, root=root)
    path = Path(name_or_path)
    if path.is_dir():
        return _load_folder(path)
    if path.suffix.lower() == ".csv" or path.is_file():
        items, users = side_files(path)
        return load_interactions_csv(path, items, users_path=users)
    known = ", ".join(dataset_names(root))
    raise DatasetUnavailable(
        f"unknown dataset {name_or_path!r}: use one of {known}, the path of a CSV file, or a folder with "
        "GroupLens' ratings.dat (movies.dat, users.dat)"
    )


def _load_folder(folder: Path) -> Dataset:
    if is_grouplens_folder(folder):
        return load_grouplens_folder(folder)
    interactions = [p for p in sorted(folder.glob("*.csv")) if not p.name.endswith((".items.csv", ".users.csv"))]
    if len(interactions) == 1:
        items, users = side_files(interactions[0])
        return load_interactions_csv(interactions[0], items, users_path=users)
    found = ", ".join(p.name for p in interactions) or "none"
    raise DatasetUnavailable(
        f"{folder}: a dataset folder holds GroupLens' ratings.dat (with movies.dat and users.dat), or one "
        f"interactions CSV with its NAME.items.csv and NAME.users.csv; interactions CSVs found: {found}"
    )
