"""Datasets by name or path: ``load_dataset("ml-100k")``, an upload by its name, ``load_dataset("my_data.csv")``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from recsys_core.data.csv_loader import CsvError, load_interactions_csv
from recsys_core.data.dataset import Dataset, build_dataset, normalise_id
from recsys_core.data.movielens import (
    ChecksumMismatch,
    DatasetUnavailable,
    load_movielens_1m,
    load_movielens_100k,
    load_movielens_latest_small,
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
    "DatasetUnavailable", "Split", "build_dataset", "dataset_names", "load_dataset", "make_synthetic",
    "normalise_id", "save_upload", "temporal_leave_last_out",
]  # fmt: skip


def dataset_names(root: Path | None = None) -> list[str]:
    """The built-in datasets, then the ones users uploaded (``data/uploads/``)."""
    return [*DATASETS, *(n for n in uploaded_datasets(root or data_dir()) if n not in DATASETS)]


def load_dataset(name_or_path: str, root: Path | None = None) -> Dataset:
    """A registered dataset name, or the path of an interactions CSV.

    A CSV's dataset name is its file stem plus a content hash, so that artifacts trained on one
    version of a file are never mistaken for another's.
    """
    root = root or data_dir()
    if name_or_path in DATASETS:
        return DATASETS[name_or_path](root)
    if name_or_path in uploaded_datasets(root):
        return load_uploaded(name_or_path, root=root)
    path = Path(name_or_path)
    if path.suffix.lower() == ".csv" or path.is_file():
        items = path.with_name(path.stem + ".items.csv")
        return load_interactions_csv(path, items if items.is_file() else None)
    known = ", ".join(dataset_names(root))
    raise DatasetUnavailable(f"unknown dataset {name_or_path!r}: use one of {known}, or the path of a CSV file")
