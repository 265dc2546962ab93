"""Training windows over each user's time-ordered training items, for the sequential models.

A sequential model is trained on every position of a sequence at once (the next item after each
prefix), so one window of ``length`` items yields ``length - 1`` training targets in one pass;
the prefixes are never materialised one by one. Windows are left-padded with 0 so that the most
recent item is always in the last column, as in every history the models score.

Users with more items than a window holds are cut into windows in one of two ways:

- ``"sliding"``: consecutive windows from the most recent item backwards, overlapping by one item
  (the last input of one window is the first item of the next), so each training item is a target
  exactly once per epoch;
- ``"crop"``: one window per user per epoch, ending at a random position; every item is a target
  in some epoch, and an epoch costs one window per user whatever the history length.
"""

from __future__ import annotations

import numpy as np

WINDOWINGS = ("sliding", "crop")
BATCHINGS = ("by_length", "random")


def training_windows(
    sequences: list[np.ndarray], length: int, rng: np.random.Generator, windowing: str = "sliding"
) -> np.ndarray:
    """(N, length) int64 windows, left-padded with 0, rows in a random order fixed by ``rng``.

    Sequences with fewer than two items have no next item to learn and give no window.
    """
    if windowing not in WINDOWINGS:
        raise ValueError(f"windowing must be one of {WINDOWINGS}, not {windowing!r}")
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if len(sequences) else np.zeros(0)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(sequences) else np.zeros(0, dtype=np.int64)
    keep = lengths >= 2
    lengths, starts = lengths[keep], starts[keep]

    if windowing == "sliding":
        # Window k of a user ends k * (length - 1) items before their last one.
        per_user = np.maximum(1, -(-(lengths - 1) // (length - 1)))  # ceil((n - 1) / (length - 1))
        owner = np.repeat(np.arange(len(lengths)), per_user)
        k = np.arange(per_user.sum()) - np.repeat(np.cumsum(per_user) - per_user, per_user)
        ends = lengths[owner] - k * (length - 1)  # (N,) exclusive end within the user's sequence
    else:
        owner = np.arange(len(lengths))
        # Any end from the first full window to the last item, uniformly; short users have one.
        lowest = np.minimum(lengths, length)
        ends = lowest + (rng.random(len(lengths)) * (lengths - lowest + 1)).astype(np.int64)

    offsets = np.arange(length) - length  # (length,) -length .. -1
    positions = ends[:, None] + offsets[None, :]  # (N, length) index within the user's sequence
    valid = positions >= 0
    index = starts[owner][:, None] + np.where(valid, positions, 0)  # (N, length) index into flat
    windows = np.where(valid, flat[index], 0)
    return windows[rng.permutation(len(windows))]


def batch_rows(windows: np.ndarray, batch_size: int, rng: np.random.Generator, batching: str = "by_length") -> list:
    """The rows of each training batch of ``windows``, batches in a random order.

    ``"random"``: ``batch_size`` consecutive rows (the windows come shuffled). ``"by_length"``: windows
    of similar length together, each batch holding about ``batch_size`` windows' worth of items (the
    mean length times ``batch_size``), so a batch of short histories has more rows. With random rows
    a batch is as wide as its longest history, and on MovieLens-1M (histories of 20 to 200 items, cut
    at 200) 44% of the positions the attention and recurrent layers computed were padding; sorted,
    almost none are. Every item is still a target once per epoch, and each batch holds about as many
    targets as before, so each target keeps about the same weight in the loss.
    """
    if batching not in BATCHINGS:
        raise ValueError(f"batching must be one of {BATCHINGS}, not {batching!r}")
    if batching == "random" or len(windows) == 0:
        return [np.arange(start, min(start + batch_size, len(windows))) for start in range(0, len(windows), batch_size)]
    lengths = (windows > 0).sum(axis=1)
    order = np.argsort(lengths, kind="stable")  # rows arrive shuffled, so equal lengths stay in random order
    budget = batch_size * lengths.mean()
    batch_of = ((np.cumsum(lengths[order]) - 1) // budget).astype(np.int64)  # (N,) non-decreasing
    batches = np.split(order, np.flatnonzero(np.diff(batch_of)) + 1)
    return [batches[i] for i in rng.permutation(len(batches))]


def trim_padding(windows: np.ndarray) -> np.ndarray:
    """The windows without their leading columns that are padding in every row.

    Positions count back from the most recent item, so this changes the cost, not the result.
    """
    filled = np.flatnonzero((windows > 0).any(axis=0))
    return windows[:, filled[0] :] if len(filled) else windows


def prefix_histories(users: np.ndarray, items: np.ndarray, length: int) -> np.ndarray:
    """For each interaction, the same user's ``length`` previous items, left-padded with 0: (N, length).

    ``users`` and ``items`` are grouped by user and in time order (as ``Split.train`` is), so each
    row sees only its user's past, never the interaction itself or anything after it.
    """
    starts = np.searchsorted(users, users)  # first row of each row's user
    positions = np.arange(len(items))[:, None] - length + np.arange(length)[None, :]  # (N, length)
    return np.where(positions >= starts[:, None], items[positions.clip(min=0)], 0)
