import numpy as np
import pandas as pd

from recsys_core.data import build_dataset, temporal_leave_last_out


def test_no_leakage_and_time_order(synthetic, synthetic_split):
    split = synthetic_split
    frame = synthetic.interactions
    for user in split.evaluated_users("test")[:100]:
        rows = frame[frame["user"] == user]
        train = split.train_sequences[user]
        valid, test = split.valid_item[user], split.test_item[user]
        assert valid not in train and test not in train and valid != test
        time = dict(zip(rows["item"], rows["timestamp"], strict=True))
        assert max(time[i] for i in train) <= time[valid] <= time[test]
        assert len(train) + 2 == len(rows)
    assert len(split.train) + 2 * len(split.evaluated_users("test")) == len(frame)
    # the test-time input is the training history plus the validation item, in that order
    user = split.evaluated_users("test")[0]
    assert split.input_sequences("test")[user].tolist() == [*split.train_sequences[user], split.valid_item[user]]


def test_ties_keep_file_order_and_short_users_are_not_evaluated():
    ratings = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "a", "b", "b"],
            "item_id": ["x", "y", "z", "w", "x", "y"],
            "rating": [1.0] * 6,
            "timestamp": [5, 5, 5, 1, 1, 2],  # a's last three share one second
        }
    )
    dataset = build_dataset("ties", ratings)
    split = temporal_leave_last_out(dataset)
    a, b = dataset.user_index("a"), dataset.user_index("b")
    assert dataset.item_ids[split.test_item[a]] == "z"  # last in file order among the tie
    assert dataset.item_ids[split.valid_item[a]] == "y"
    assert [dataset.item_ids[i] for i in split.train_sequences[a]] == ["w", "x"]
    assert split.test_item[b] == 0 and split.valid_item[b] == 0  # two interactions: train only
    assert len(split.train_sequences[b]) == 2
    assert split.train_matrix.shape == (dataset.n_users + 1, dataset.n_items + 1)


def test_real_split_sizes(ml100k):
    split = temporal_leave_last_out(ml100k)
    assert (ml100k.n_users, ml100k.n_items, ml100k.n_interactions) == (943, 1682, 100_000)
    assert len(split.evaluated_users("test")) == 943
    assert len(split.train) == 100_000 - 2 * 943
    assert np.all(split.item_popularity[0] == 0)
