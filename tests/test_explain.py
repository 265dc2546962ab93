"""Overlap measures (hand-computed values), reasons, what-if, and the dataset statistics the pages chart."""

import numpy as np
import pytest

from recsys_core.data.stats import genre_counts, interactions_over_time, rating_counts, user_activity, user_history
from recsys_core.models import build_model, history_readers
from recsys_core.serving.explain import (
    ReasonVectors,
    because_you_watched,
    compare_lists,
    final_attention,
    jaccard,
    overlap_matrix,
    rank_biased_overlap,
    rank_changes,
    reason_vectors,
    recommend_each,
    without_position,
)
from recsys_core.serving.recommend import Request


def test_jaccard_by_hand():
    assert jaccard([1, 2, 3], [2, 3, 4]) == pytest.approx(2 / 4)
    assert jaccard([], []) == 1.0 and jaccard([1], [2]) == 0.0


def test_rank_biased_overlap_by_hand():
    assert rank_biased_overlap(list("abcde"), list("abcde")) == pytest.approx(1.0)
    assert rank_biased_overlap(list("abc"), list("xyz")) == 0.0
    # depth 2, p = 0.5: agreement A1 = 0, A2 = 1 -> 1 * 0.25 + (1 - 0.5) / 0.5 * (0 * 0.5 + 1 * 0.25) = 0.5
    assert rank_biased_overlap(["a", "b"], ["b", "a"], p=0.5) == pytest.approx(0.5)
    # the top weighs more: swapping the first two costs more than swapping the last two
    top = rank_biased_overlap(list("abcde"), list("bacde"))
    bottom = rank_biased_overlap(list("abcde"), list("abced"))
    assert top < bottom < 1.0


def test_overlap_matrix_is_symmetric_with_ones_on_the_diagonal():
    lists = {"x": [1, 2, 3], "y": [3, 2, 1], "z": [7, 8, 9]}
    for measure in ("jaccard", "rbo"):
        table = overlap_matrix(lists, measure)
        assert np.allclose(table.to_numpy(), table.to_numpy().T) and np.allclose(np.diag(table), 1.0)
        assert table.loc["x", "z"] == 0.0
    assert overlap_matrix(lists)["x"]["y"] == 1.0 and overlap_matrix(lists, "rbo")["x"]["y"] < 1.0


def test_because_you_watched_picks_the_nearest_history_items():
    vectors = np.array([[0, 0], [1, 0], [0, 1], [0.9, 0.1], [0.1, 0.9]], dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    reasons = because_you_watched(ReasonVectors(vectors, "test"), history=[1, 2], recommended=[3, 4], n=1)
    assert reasons == [[1], [2]]
    # attention on item 2 only: item 1 carries no evidence any more
    weighted = because_you_watched(ReasonVectors(vectors, "test"), [1, 2], [3, 4], n=2, weights=np.array([0.0, 1]))
    assert weighted == [[2], [2]]
    assert because_you_watched(ReasonVectors(vectors, "test"), [], [3]) == [[]]


def test_reason_vectors_use_the_model_or_co_watching(synthetic, synthetic_split):
    bpr = build_model("bpr", synthetic.n_users, synthetic.n_items)
    ease = build_model("ease", synthetic.n_users, synthetic.n_items)
    assert "item vectors" in reason_vectors(bpr, synthetic_split).source
    co = reason_vectors(ease, synthetic_split)
    assert "co-watching" in co.source and co.vectors.shape[0] == synthetic.n_items + 1


def test_final_attention_averages_layers_and_heads():
    weights = np.zeros((2, 2, 3, 3))
    weights[0, :, -1] = [0.5, 0.5, 0.0]
    weights[1, :, -1] = [0.0, 0.5, 0.5]
    assert np.allclose(final_attention(weights, 3), [0.25, 0.5, 0.25])
    assert np.allclose(final_attention(weights, 2), [0.25, 0.5])  # bert4rec: the [mask] column is dropped


def test_compare_lists_counts_in_how_many_lists_each_item_is():
    frame = compare_lists({"a": ["x", "y", "z"], "b": ["y", "x"], "c": ["w"]})
    assert frame["model"].tolist() == ["a", "a", "a", "b", "b", "c"]
    assert frame["rank"].tolist() == [1, 2, 3, 1, 2, 1]
    assert dict(zip(frame["item"], frame["shared by"], strict=False)) == {"x": 2, "y": 2, "z": 1, "w": 1}
    assert compare_lists({}).empty


def test_history_readers_put_the_next_item_models_first():
    trained = ["pop", "ease", "bpr", "two_tower", "sasrec", "itemknn", "gru4rec", "fm"]
    assert history_readers(trained) == ["sasrec", "gru4rec", "ease", "two_tower", "itemknn", "fm"]


def test_what_if_helpers():
    assert without_position(["a", "b", "a"], 2) == ["a", "b"]
    with pytest.raises(IndexError):
        without_position(["a"], 3)
    table = rank_changes(["a", "b", "c"], ["b", "a", "d"])
    assert dict(zip(table["item"], table["change"], strict=True)) == {"b": "up", "a": "down", "d": "new", "c": "gone"}


def test_recommend_each_keeps_going_when_one_model_fails(synthetic, synthetic_split):
    class Broken:
        name = "broken"

    good = build_model("pop", synthetic.n_users, synthetic.n_items)
    good.fit(synthetic_split, lambda m: 0.0)
    answers = recommend_each({"pop": good, "broken": Broken()}, synthetic, synthetic_split, Request("u1", k=5))
    assert len(answers["pop"].items) == 5
    assert isinstance(answers["broken"], str) and "could not answer" in answers["broken"]


def test_dataset_statistics(synthetic, synthetic_split):
    assert genre_counts(synthetic)["items"].sum() == synthetic.n_items
    assert interactions_over_time(synthetic)["interactions"].sum() == synthetic.n_interactions
    assert rating_counts(synthetic)["interactions"].sum() == synthetic.n_interactions
    assert user_activity(synthetic)["interactions"].sum() == synthetic.n_interactions
    user = synthetic.user_index("u3")
    history = user_history(synthetic, synthetic_split, user)
    assert list(history["part"][-2:]) == ["validation", "test (held out)"]
    assert history["item_id"].iloc[-1] == synthetic.item_ids[synthetic_split.test_item[user]]
    assert history["item_id"].iloc[-2] == synthetic.item_ids[synthetic_split.valid_item[user]]
    assert history["date"].is_monotonic_increasing


def test_popularity_is_explained_as_popularity(synthetic, synthetic_split):
    from recsys_core.serving.explain import explain_items

    pop = build_model("pop", synthetic.n_users, synthetic.n_items)
    reasons, source = explain_items(pop, reason_vectors(pop, synthetic_split), synthetic, [1, 2], ["i5", "i6"])
    assert reasons == ["popular with everyone"] * 2 and "same list" in source
