"""The in-memory dataset every other module works on.

External ids (as written in the source files) are kept as strings, exactly as read, so an id
like ``u17`` or ``007`` survives every round trip. Internal ids are contiguous and start at 1;
0 is reserved for padding and for "unknown", which is why every per-user or per-item array in the
library has ``n_users + 1`` or ``n_items + 1`` rows.
"""

from __future__ import annotations

import functools
import hashlib
import reprlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

INTERACTION_COLUMNS = ("user", "item", "rating", "timestamp")
# The protocol holds out each user's last two interactions (validation, test) and trains on the rest.
MIN_INTERACTIONS = 3
# Fewer evaluated users than this and every metric's 95% interval is wider than the metric itself.
MIN_EVALUATED_USERS = 10


class DatasetTooSmall(ValueError):
    """Too few users with enough interactions for the evaluation protocol; the message says how many."""


@dataclass
class Dataset:
    """Interactions plus catalogue and user metadata, with external <-> internal id maps.

    ``interactions`` has int columns ``user`` and ``item`` (internal ids), float ``rating`` and
    int ``timestamp``; its row order is the order of the source file, which the split uses to
    break timestamp ties.
    ``items`` is indexed by internal item id (1..n_items) with ``item_id`` (external), ``title``,
    ``genres`` ("|"-joined, possibly empty) and ``year`` (float, NaN when unknown).
    ``users`` is indexed by internal user id with ``user_id`` and, where the source has them,
    ``age``, ``gender``, ``occupation``.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    source: str = ""
    notes: list[str] = field(default_factory=list)
    reference: str = ""  # what loads it again (``--dataset``): its name, or a CSV file's path

    def __post_init__(self) -> None:
        self.reference = self.reference or self.name
        self.user_ids = np.array(["<pad>", *self.users["user_id"].tolist()], dtype=object)
        self.item_ids = np.array(["<pad>", *self.items["item_id"].tolist()], dtype=object)
        self._user_index = {uid: i for i, uid in enumerate(self.user_ids) if i > 0}
        self._item_index = {iid: i for i, iid in enumerate(self.item_ids) if i > 0}

    @property
    def n_users(self) -> int:
        return len(self.user_ids) - 1

    @property
    def n_items(self) -> int:
        return len(self.item_ids) - 1

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)

    def user_index(self, external_id: object) -> int:
        """Internal id of an external user id (int or str), 0 when unknown."""
        return self._user_index.get(normalise_id(external_id), 0)

    def item_index(self, external_id: object) -> int:
        """Internal id of an external item id (int or str), 0 when unknown."""
        return self._item_index.get(normalise_id(external_id), 0)

    def titles(self, items: np.ndarray | list[int]) -> list[str]:
        return [str(self.items.at[int(i), "title"]) for i in items]

    @property
    def genre_names(self) -> list[str]:
        names = {g for gs in self.items["genres"] for g in str(gs).split("|") if g}
        return sorted(names)

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 over the interactions and both id maps: what a trained artifact depends on."""
        digest = hashlib.sha256()
        digest.update("\x1f".join(self.user_ids[1:]).encode())
        digest.update(b"\x1e")
        digest.update("\x1f".join(self.item_ids[1:]).encode())
        for column in INTERACTION_COLUMNS:
            values = self.interactions[column].to_numpy()
            digest.update(np.ascontiguousarray(values.astype(np.float64)).tobytes())
        return digest.hexdigest()

    def summary(self) -> dict[str, float | int | str]:
        n_cells = max(self.n_users * self.n_items, 1)
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "density": self.n_interactions / n_cells,
            "source": self.source,
        }


def normalise_id(external_id: object) -> str:
    """External ids are compared as strings; JSON may hand us 196 or "196" for the same user.

    A float such as 196.0 is accepted only when it is integral (a spreadsheet artefact); booleans,
    lists and the like are rejected because they cannot be anyone's id.
    """
    if isinstance(external_id, bool) or external_id is None:
        raise TypeError(f"an id must be a string or an integer, not {reprlib.repr(external_id)}")
    if isinstance(external_id, str):
        return external_id.strip()  # as CSV cells are read: " 196" and "196" are one id
    if isinstance(external_id, (int, np.integer)):
        return str(int(external_id))
    if isinstance(external_id, float) and external_id.is_integer():
        return str(int(external_id))
    raise TypeError(f"an id must be a string or an integer, not {reprlib.repr(external_id)}")


def build_dataset(
    name: str,
    ratings: pd.DataFrame,
    items: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
    source: str = "",
    notes: list[str] | None = None,
    reference: str = "",
) -> Dataset:
    """Assign internal ids and assemble a :class:`Dataset`.

    ``ratings`` has string columns ``user_id``, ``item_id`` and numeric ``rating``, ``timestamp``
    in file order. ``items`` (``item_id``, ``title``, ``genres``, ``year``) and ``users``
    (``user_id`` plus optional side columns) may list ids that have no interactions; the
    catalogue is the union, so cold items stay recommendable by models that can reach them.
    """
    item_ids = _ordered_ids(
        pd.concat([ratings["item_id"], items["item_id"]]) if items is not None else ratings["item_id"]
    )
    user_ids = _ordered_ids(
        pd.concat([ratings["user_id"], users["user_id"]]) if users is not None else ratings["user_id"]
    )
    item_frame = pd.DataFrame({"item_id": item_ids}, index=pd.RangeIndex(1, len(item_ids) + 1))
    if items is not None:
        meta = items.drop_duplicates("item_id").set_index("item_id")
        for column in ("title", "genres", "year"):
            if column in meta:
                item_frame[column] = item_frame["item_id"].map(meta[column]).to_numpy()
    if "title" not in item_frame:
        item_frame["title"] = None
    item_frame["title"] = item_frame["title"].where(item_frame["title"].notna(), "Item " + item_frame["item_id"])
    item_frame["genres"] = item_frame.get("genres", pd.Series("", index=item_frame.index)).fillna("").astype(str)
    year = item_frame["year"] if "year" in item_frame else pd.Series(np.nan, index=item_frame.index)
    item_frame["year"] = pd.to_numeric(year, errors="coerce").astype(float)

    user_frame = pd.DataFrame({"user_id": user_ids}, index=pd.RangeIndex(1, len(user_ids) + 1))
    if users is not None:
        meta = users.drop_duplicates("user_id").set_index("user_id")
        for column in meta.columns:
            user_frame[column] = user_frame["user_id"].map(meta[column]).to_numpy()

    user_index = pd.Series(user_frame.index.to_numpy(), index=user_frame["user_id"].to_numpy())
    item_index = pd.Series(item_frame.index.to_numpy(), index=item_frame["item_id"].to_numpy())
    interactions = pd.DataFrame(
        {
            "user": user_index.loc[ratings["user_id"].to_numpy()].to_numpy().astype(np.int64),
            "item": item_index.loc[ratings["item_id"].to_numpy()].to_numpy().astype(np.int64),
            "rating": ratings["rating"].to_numpy(dtype=np.float32),
            "timestamp": ratings["timestamp"].to_numpy(dtype=np.int64),
        }
    )
    return Dataset(name, interactions, item_frame, user_frame, source=source, notes=list(notes or []),
                   reference=reference)  # fmt: skip


def keep_evaluable_users(ratings: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``ratings`` (``user_id`` per row) without the users who have fewer than
    :data:`MIN_INTERACTIONS` rows, and a note saying how many were left out; raises
    :class:`DatasetTooSmall` when fewer than :data:`MIN_EVALUATED_USERS` users remain.

    Such a user could be neither trained on nor evaluated: with one or two interactions, holding out
    the validation and test items leaves nothing to learn from.
    """
    counts = ratings["user_id"].value_counts()
    short = counts.index[counts < MIN_INTERACTIONS]
    kept = len(counts) - len(short)
    if kept < MIN_EVALUATED_USERS:
        raise DatasetTooSmall(
            f"{kept} of {len(counts)} users have the {MIN_INTERACTIONS} interactions the protocol needs (one each "
            f"for training, validation and test); at least {MIN_EVALUATED_USERS} such users are needed"
        )
    if len(short) == 0:
        return ratings, []
    dropped = ratings["user_id"].isin(short)
    note = (f"{len(short):,} of {len(counts):,} users have fewer than {MIN_INTERACTIONS} interactions (the protocol "
            f"holds out 2 per user) and were left out with their {int(dropped.sum()):,} rows; {kept:,} users remain")
    return ratings[~dropped].reset_index(drop=True), [note]


def _ordered_ids(ids: pd.Series) -> list[str]:
    """Unique ids in a stable, human order: numeric order when every id is an integer string."""
    unique = pd.unique(ids.astype(str))
    if all(u.isdigit() for u in unique):
        return sorted(unique, key=lambda u: (int(u), u))
    return sorted(unique)
