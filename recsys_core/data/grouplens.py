"""GroupLens' MovieLens-1M layout, wherever it is: ``ratings.dat``, ``movies.dat`` and ``users.dat``,
fields separated by ``::``, Latin-1 text.

The files are turned into the lab's CSV layout (interactions, items, users) and read by the same
checked CSV parser as any upload, so a damaged ``.dat`` file gets the same kind of message (its
file, line and column) and the same rules apply (users with too few interactions left out, a
repeated pair merged). An upload of the three files through the Train view is stored as those CSVs.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

from recsys_core.data.csv_loader import CsvError, dataset_from_csv, max_csv_bytes, read_limited
from recsys_core.data.dataset import Dataset

# The columns of each file, in the order GroupLens' README gives them.
DAT_COLUMNS = {
    "ratings.dat": ("user_id", "item_id", "rating", "timestamp"),
    "movies.dat": ("item_id", "title", "genres"),
    "users.dat": ("user_id", "gender", "age", "occupation", "zip_code"),
}
RATINGS, MOVIES, USERS = DAT_COLUMNS


def is_grouplens_folder(folder: Path) -> bool:
    """A folder with ``ratings.dat`` (``movies.dat`` and ``users.dat`` are optional)."""
    return (folder / RATINGS).is_file()


def dat_to_csv(payload: bytes, kind: str) -> bytes:
    """One ``.dat`` file (``kind`` is its GroupLens name) as CSV bytes with a header.

    Raises :class:`CsvError` naming the line whose field count is wrong. Line n of the file is
    line n + 1 of the CSV (its header comes first): read it with ``line_shift=-1``.
    """
    columns = DAT_COLUMNS[kind]
    # MovieLens-1M is Latin-1 ("Café" is b"Caf\\xe9"); every byte decodes, so this never fails.
    text = payload.decode("latin-1")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            out.write("\n")  # kept, so that CSV line n + 1 is still .dat line n
            continue
        fields = line.split("::")
        if len(fields) != len(columns):
            raise CsvError(f"{kind}: line {number} has {len(fields)} fields separated by '::' where "
                           f"{len(columns)} are expected ({'::'.join(columns)})")  # fmt: skip
        writer.writerow(field.strip() for field in fields)
    return out.getvalue().encode()


def as_csv(filename: str, payload: bytes) -> tuple[bytes, int]:
    """An uploaded file in the lab's CSV layout and the shift of its line numbers: a GroupLens
    ``.dat`` file is converted (by its name: ``ratings.dat``, ``movies.dat`` or ``users.dat``), a CSV
    is returned as it is."""
    name = Path(filename).name.lower()
    if name.endswith(".dat"):
        if name not in DAT_COLUMNS:
            raise CsvError(f"{filename}: a .dat file must be one of GroupLens' {', '.join(DAT_COLUMNS)}")
        return dat_to_csv(payload, name), -1
    return payload, 0


def load_grouplens_folder(folder: Path, name: str | None = None) -> Dataset:
    """The dataset in a GroupLens-layout folder, named after the folder and its ratings' content."""
    limit = max(max_csv_bytes(), *((folder / f).stat().st_size for f in DAT_COLUMNS if (folder / f).is_file()))
    ratings = read_limited(folder / RATINGS, limit)
    side = {kind: dat_to_csv(read_limited(folder / kind, limit), kind) if (folder / kind).is_file() else None
            for kind in (MOVIES, USERS)}  # fmt: skip
    digest = hashlib.sha256(ratings).hexdigest()[:10]
    return dataset_from_csv(
        dat_to_csv(ratings, RATINGS), side[MOVIES], side[USERS], name=name or f"{folder.name or 'grouplens'}-{digest}",
        source=f"GroupLens files in {folder}", reference=str(folder), file_names=tuple(DAT_COLUMNS),
        line_shifts=(-1, -1, -1),
    )  # fmt: skip
