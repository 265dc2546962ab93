"""What changes with the size of the data: settings that follow the data's statistics, work that
grows with it (and nothing that grows faster), memory that stays bounded."""

import numpy as np
import pandas as pd
import pytest

from recsys_core import metrics
from recsys_core.data import build_dataset, temporal_leave_last_out
from recsys_core.models import build_model, data_settings
from recsys_core.models.sequential.base import FULL_SOFTMAX_MAX_ITEMS, history_length
from recsys_core.protocols.ctr import rated_histories
from recsys_core.store.artifacts import read_model_record
from recsys_core.training.run import TrainingContext, train_one


def histories(lengths: list[int], n_items: int = 500):
    """A split whose users have training histories of about these lengths (the protocol holds out 2)."""
    rows = [(f"u{u}", f"i{(u * 7 + k) % n_items}", 1.0, k) for u, n in enumerate(lengths) for k in range(n + 2)]
    dataset = build_dataset("lengths", pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]))
    return dataset, temporal_leave_last_out(dataset)


@pytest.mark.parametrize(
    ("lengths", "expected"),
    [([12, 20, 16], 50), ([60, 148], 50), ([150, 150], 50), ([150, 152], 200), ([100, 222], 200), ([400, 500], 200)],
)
def test_the_history_length_follows_the_mean_history(lengths, expected):
    # Mean 104 (MovieLens-100K) reads 50 items, mean 161 (MovieLens-1M) 200: the SASRec paper's two settings.
    _, split = histories(lengths)
    assert history_length(split) == expected
    # Long windows over mixed lengths are batched by length (mostly padding otherwise).
    batching = "by_length" if expected == 200 else "random"
    assert data_settings("sasrec", split) == {"max_len": expected, "batching": batching, "loss": "softmax"}
    # GRU4Rec takes a few dozen steps an epoch over long windows: twice its rate there.
    gru4rec = {"max_len": expected, "batching": batching, "loss": "softmax",
               **({"learning_rate": 6e-3} if expected == 200 else {})}  # fmt: skip
    assert data_settings("gru4rec", split) == gru4rec
    assert data_settings("bpr", split) == {} and data_settings("no-such-model", split) == {}


def test_a_large_catalogue_trains_the_sequential_models_with_the_sampled_softmax():
    # One user per item group, so that the catalogue passes the threshold with few interactions.
    n_items = FULL_SOFTMAX_MAX_ITEMS + 10
    rows = [(f"u{u}", f"i{u * 5 + k}", 1.0, k) for u in range(n_items // 5 + 1) for k in range(5)]
    large = build_dataset("large", pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]))
    split = temporal_leave_last_out(large)
    assert split.n_items > FULL_SOFTMAX_MAX_ITEMS
    for name in ("sasrec", "gru4rec", "bert4rec"):
        assert data_settings(name, split)["loss"] == "sampled_softmax"
    _, small = histories([12, 20, 16])
    assert data_settings("bert4rec", small)["loss"] == "softmax"


def test_a_trained_sequential_model_reads_the_datas_length_unless_told_otherwise(isolated_store):
    dataset, split = histories([100, 222] * 6, n_items=300)
    context = TrainingContext.build(dataset, split, "cpu")
    assert train_one(context, "gru4rec", {"epochs": 1}).ok
    assert read_model_record(dataset.name, "gru4rec").settings["max_len"] == 200
    assert read_model_record(dataset.name, "gru4rec").settings["learning_rate"] == 6e-3
    assert train_one(context, "gru4rec", {"epochs": 1, "max_len": 30, "learning_rate": 1e-3}).ok  # the user's wins
    assert read_model_record(dataset.name, "gru4rec").settings["max_len"] == 30
    assert read_model_record(dataset.name, "gru4rec").settings["learning_rate"] == 1e-3


def test_epoch_work_grows_with_the_catalogue_only_for_models_that_score_it(synthetic, synthetic_split):
    n_train, n_users, n_items = len(synthetic_split.train), synthetic.n_users, synthetic.n_items
    build = lambda name, **kw: build_model(name, n_users, n_items, **kw)  # noqa: E731
    assert build("bpr").epoch_work(synthetic_split) == n_train
    assert build("sasrec").epoch_work(synthetic_split) == n_train * n_items
    assert build("gru4rec", loss="sampled_softmax", n_negatives=10).epoch_work(synthetic_split) == n_train * 11
    assert build("multvae").epoch_work(synthetic_split) == n_users * n_items
    steps = -(-n_train // 4096)
    assert build("lightgcn").epoch_work(synthetic_split) == steps * 2 * n_train


def reference_rated_histories(users, items, times, rows, length, own=None):
    """Row by row, as the definition reads: the user's last `length` training items in time order,
    without the row's own item (the one before takes its place)."""
    out = np.zeros((len(rows), length), dtype=np.int64)
    for r, user in enumerate(rows):
        mine = np.flatnonzero(users == user)
        ordered = list(items[mine[np.argsort(times[mine], kind="stable")]])
        if own is not None and own[r] in ordered[-length:]:
            del ordered[len(ordered) - 1 - ordered[::-1].index(own[r])]
        kept = ordered[-length:]
        if kept:
            out[r, length - len(kept) :] = kept
    return out


@pytest.mark.parametrize("seed", range(8))
def test_rated_histories_match_their_definition_on_random_logs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    users, items, times = rng.integers(1, 12, n), rng.integers(1, 30, n), rng.integers(0, 50, n)  # repeats, ties
    length = int(rng.integers(1, 7))
    rows = rng.integers(1, 14, 40)  # users 12 and 13 have no training rows
    assert (rated_histories(users, items, times, rows, length)
            == reference_rated_histories(users, items, times, rows, length)).all()  # fmt: skip
    assert (rated_histories(users, items, times, users, length, own_items=items)
            == reference_rated_histories(users, items, times, users, length, own=items)).all()  # fmt: skip


def test_the_bootstrap_draws_in_blocks_and_gives_the_same_interval(monkeypatch):
    a, b = np.random.default_rng(1).random((2, 3000))
    whole = metrics.paired_test(a, b, n_bootstrap=500)
    monkeypatch.setattr(metrics, "BOOTSTRAP_BLOCK", 3000 * 7)  # 7 resamples per block, a ragged last one
    assert metrics.paired_test(a, b, n_bootstrap=500) == whole
    assert len(metrics.bootstrap_means(a, 500, seed=0)) == 500


def test_lightgcn_keeps_its_steps_per_epoch_as_the_data_grows(monkeypatch):
    from recsys_core.models.general import lightgcn

    _, split = histories([30] * 200)  # 6,000 training pairs
    assert data_settings("lightgcn", split) == {"batch_size": 4096}  # small data: the default batch
    monkeypatch.setattr(lightgcn, "STEPS_PER_EPOCH", 2)
    assert data_settings("lightgcn", split) == {"batch_size": 4096}
    monkeypatch.setattr(lightgcn, "STEPS_PER_EPOCH", 1)  # as if the data were 24 times larger
    grown = data_settings("lightgcn", split)
    assert grown["batch_size"] == len(split.train)
    # The rate follows the batch by the square-root rule (a 4x batch would take twice the rate).
    ratio = grown["batch_size"] / 4096
    assert grown["learning_rate"] == pytest.approx(5e-3 * ratio**0.5)


def test_the_scale_generator_gives_unique_ordered_interactions_without_a_row_loop():
    from recsys_core.data.synthetic import make_scale_synthetic

    dataset = make_scale_synthetic(20_000, 5_000, mean_history=40, seed=1)
    frame = dataset.interactions
    assert 0.8 * 20_000 < len(frame) <= 21_000 and dataset.n_items == 5_000 and dataset.n_users == 500
    assert not frame.duplicated(["user", "item"]).any() and frame["item"].between(1, 5_000).all()
    # Timestamps count each user's history from 0, so the split's order is the generator's.
    assert (frame.groupby("user")["timestamp"].agg(lambda t: list(t) == list(range(len(t))))).all()
    split = temporal_leave_last_out(dataset)
    assert len(split.evaluated_users("test")) == dataset.n_users
    assert dataset.fingerprint == make_scale_synthetic(20_000, 5_000, mean_history=40, seed=1).fingerprint
