"""The sequential models: they learn a planted next-item rule, their attention is a proper
(causal, padding-blind) distribution, and sessions of external ids are served as given."""

import numpy as np
import pandas as pd
import pytest
import torch

from recsys_core.data import make_synthetic, temporal_leave_last_out
from recsys_core.data.dataset import build_dataset
from recsys_core.data.sequences import batch_rows, training_windows, trim_padding
from recsys_core.models import build_model
from recsys_core.models.sequential.base import FullSoftmaxCrossEntropy
from recsys_core.protocols.topk import evaluate_model
from recsys_core.serving.recommend import POPULARITY_FALLBACK, Request, RequestError, recommend, session_attention
from recsys_core.tensors import pad_histories
from recsys_core.training.devices import seed_everything
from recsys_core.training.loop import fit

SEQUENTIAL = ("gru4rec", "sasrec", "bert4rec")
TRANSFORMERS = ("sasrec", "bert4rec")


@pytest.fixture(scope="module")
def chain():
    """One taste group of 60 items that users walk through in order (5% noise): the next item is
    the only signal, popularity carries none."""
    dataset = make_synthetic(n_users=300, n_items=60, n_clusters=1, min_length=12, max_length=20, seed=1)
    return dataset, temporal_leave_last_out(dataset)


@pytest.fixture(scope="module")
def chain_models(chain):
    dataset, split = chain
    models = {}
    for name in SEQUENTIAL:
        seed_everything(0)
        # A short max_len keeps these tests fast and lets them cross it.
        models[name] = build_model(name, dataset.n_users, dataset.n_items, max_len=8, learning_rate=5e-3)
        fit(models[name], split, torch.device("cpu"), max_epochs=20)
    return models


def test_training_windows_cover_every_target_once():
    sequences = [np.array([], dtype=np.int64), np.array([7]), np.arange(1, 12), np.arange(20, 24)]
    windows = training_windows(sequences, 4, np.random.default_rng(0), "sliding")
    targets = sorted(int(t) for row in windows for t, prev in zip(row[1:], row[:-1], strict=True) if prev > 0)
    assert targets == [*range(2, 12), 21, 22, 23]  # every item after the first of its sequence
    for row in windows:
        real = row[row > 0]
        assert (row[: len(row) - len(real)] == 0).all()  # left-padded
        assert (np.diff(real) == 1).all()  # contiguous, in order


@pytest.mark.parametrize("batching", ["by_length", "random"])
def test_batches_take_every_window_once(batching):
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 201, 500)  # histories of every length up to a full window
    windows = training_windows([np.arange(1, n + 1) for n in lengths], 201, rng)
    batches = batch_rows(windows, 32, np.random.default_rng(1), batching)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(windows)))
    if batching == "random":
        assert [len(b) for b in batches[:-1]] == [32] * (len(batches) - 1)
        return
    items = np.array([(windows[b] > 0).sum() for b in batches])
    budget = 32 * (windows > 0).sum(axis=1).mean()
    assert abs(len(batches) - len(windows) / 32) <= 1 and items.max() <= budget + 201
    # Padding computed (each batch as wide as its longest window) nearly vanishes against random rows.
    width = sum(len(b) * trim_padding(windows[b]).shape[1] for b in batches)
    random_width = sum(len(b) * trim_padding(windows[b]).shape[1] for b in batch_rows(windows, 32, rng, "random"))
    assert width < 0.6 * random_width and width < 1.15 * (windows > 0).sum()


def test_random_crops_give_one_in_order_window_per_user():
    sequences = [np.arange(1, 40), np.arange(100, 103), np.array([5])]
    windows = training_windows(sequences, 10, np.random.default_rng(0), "crop")
    assert len(windows) == 2
    for row in windows:
        real = row[row > 0]
        assert (np.diff(real) == 1).all() and len(real) == min(10, 39 if real[0] < 100 else 3)


@pytest.mark.parametrize("name", ["gru4rec", "sasrec"])
def test_sequential_models_learn_the_planted_next_item_rule(name, chain, chain_models):
    dataset, split = chain
    popularity = build_model("pop", dataset.n_users, dataset.n_items)
    fit(popularity, split, torch.device("cpu"))
    popularity_hr = evaluate_model(popularity, split, "test", accuracy_only=True).per_user["HR@10"].mean()
    model = chain_models[name]
    hr = evaluate_model(model, split, "test", accuracy_only=True).per_user["HR@10"].mean()
    assert popularity_hr < 0.35
    assert hr > 0.8, f"{name} HR@10 {hr:.3f}"
    # And it is the rule itself, not just the neighbourhood: after i10, i11, i12 comes i13.
    answer = recommend(model, dataset, split, Request(None, history=["i10", "i11", "i12"], k=3))
    assert answer.items[0] == "i13"


@pytest.mark.parametrize("name", SEQUENTIAL)
def test_scores_do_not_depend_on_padding(name, chain, chain_models):
    model = chain_models[name]
    sessions = [np.array([3, 4, 5]), np.array([9]), np.array([20, 21, 22, 23, 24, 25, 26])]
    with torch.no_grad():
        together = model.score_all(torch.zeros(3, dtype=torch.long), pad_histories(sessions))
        for row, session in enumerate(sessions):
            alone = model.score_all(torch.zeros(1, dtype=torch.long), pad_histories([session]))
            assert torch.allclose(together[row], alone[0], atol=1e-5)


@pytest.mark.parametrize("block", [1, 64, 10**9])  # one row, blocks of ~5 rows, everything at once
def test_the_blocked_softmax_loss_equals_the_plain_one(block, monkeypatch):
    monkeypatch.setitem(FullSoftmaxCrossEntropy.BLOCK_ELEMENTS, "cpu", block)
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(37, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(13, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 13, (37,), generator=generator)
    plain = torch.nn.functional.cross_entropy(hidden @ weight.T, targets)
    expected = torch.autograd.grad(3.0 * plain, (hidden, weight))  # an upstream gradient other than 1
    blocked = FullSoftmaxCrossEntropy.apply(hidden, weight, targets)
    got = torch.autograd.grad(3.0 * blocked, (hidden, weight))
    # float32 inside (the dtype the models train in), so float32 rounding apart.
    assert blocked.item() == pytest.approx(plain.item(), rel=1e-6)
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == e.dtype and torch.allclose(g, e, atol=1e-6)


def test_the_blocked_softmax_loss_gives_only_the_gradients_asked_for():
    hidden = torch.randn(5, 4, requires_grad=True)
    weight = torch.randn(6, 4)  # frozen item table
    FullSoftmaxCrossEntropy.apply(hidden, weight, torch.tensor([0, 1, 2, 3, 5])).backward()
    assert hidden.grad is not None and weight.grad is None


@pytest.mark.parametrize("loss", ["sampled_softmax", "bce"])
@pytest.mark.parametrize("name", SEQUENTIAL)
def test_the_cheaper_losses_train(name, loss, chain):
    dataset, split = chain
    rng = seed_everything(0)
    model = build_model(name, dataset.n_users, dataset.n_items, max_len=8, loss=loss, n_negatives=16)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    epoch_losses = []
    for _ in range(4):
        losses = []
        for batch in model.batches(split, rng):
            loss = model.loss(batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        epoch_losses.append(np.mean(losses))
    assert np.isfinite(epoch_losses).all() and epoch_losses[-1] < epoch_losses[0]


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_attention_rows_are_distributions_over_real_items(name, chain_models):
    model = chain_models[name]
    history = pad_histories([np.array([3, 4, 5, 6]), np.array([10, 11])])  # second row has 2 padding columns
    with torch.no_grad():
        scores, attention = model.score_with_attention(history)
        plain = model.score_all(torch.zeros(2, dtype=torch.long), history)
    config = model.config
    extra = 1 if name == "bert4rec" else 0  # bert4rec reads an appended [mask]
    assert attention.shape == (2, config.n_layers, config.n_heads, 4 + extra, 4 + extra)
    assert torch.allclose(scores, plain, atol=1e-5), "asking for the weights must not change the scores"
    assert torch.allclose(attention[0].sum(-1), torch.ones(()), atol=1e-5)
    assert torch.allclose(attention[1, ..., 2:, :].sum(-1), torch.ones(()), atol=1e-5)
    assert (attention[1, ..., 2:, :2] == 0).all(), "padded keys get no weight"
    if name == "sasrec":
        upper = torch.ones(4, 4, dtype=torch.bool).triu(diagonal=1)
        assert (attention[..., upper] == 0).all(), "sasrec attends only to the past"
    else:
        assert (attention[0, ..., -1, :-1] > 0).all(), "bert4rec's [mask] sees the whole history"


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_the_last_position_alone_equals_the_last_row_of_the_full_pass(name, chain_models):
    # Scoring computes only the last position in the last block (layers.run_blocks).
    model = chain_models[name]
    tokens = pad_histories([np.array([3, 4, 5, 6, 7]), np.array([10, 11]), np.array([], dtype=np.int64)])
    with torch.no_grad():
        full, _ = model.encode(tokens)
        last, _ = model.encode(tokens, last_only=True)
    assert last.shape == (3, 1, model.config.embedding_dim)
    assert torch.allclose(last[:, 0], full[:, -1], atol=1e-5)


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_attention_dropout_reaches_every_block_and_is_off_by_default(name):
    # Off by default: dropout on the weights keeps attention off the fused kernel (docs/measurements.md).
    assert all(b.attention.dropout == 0.0 for b in build_model(name, 5, 20, max_len=8).blocks)
    model = build_model(name, 5, 20, max_len=8, attention_dropout=0.3)
    assert [b.attention.dropout for b in model.blocks] == [0.3] * model.config.n_layers
    history = pad_histories([np.array([3, 4, 5, 6])])
    model.eval()  # no dropout when scoring: the same scores twice
    with torch.no_grad():
        assert torch.equal(model.score_all(torch.zeros(1, dtype=torch.long), history),
                           model.score_all(torch.zeros(1, dtype=torch.long), history))  # fmt: skip
    with pytest.raises(ValueError, match="attention_dropout"):
        build_model(name, 5, 20, attention_dropout=1.0)


def test_a_session_keeps_order_and_repeats_and_reports_unknown_items(chain, chain_models):
    dataset, split = chain
    model = chain_models["sasrec"]
    plain = recommend(model, dataset, split, Request(None, history=["i20", "i21", "i22"], k=10))
    with_unknown = recommend(model, dataset, split, Request(None, history=["i20", "nope", "i21", "i22", "??"], k=10))
    assert with_unknown.ignored == ["nope", "??"]
    assert with_unknown.items == plain.items and with_unknown.scores == plain.scores

    repeated = recommend(model, dataset, split, Request(None, history=["i20", "i21", "i22", "i20"], k=10))
    assert not {"i20", "i21", "i22"} & set(repeated.items)
    assert repeated.scores != plain.scores, "the repeat is read as the most recent item"
    reordered = recommend(model, dataset, split, Request(None, history=["i22", "i21", "i20"], k=10))
    assert reordered.scores != plain.scores, "order matters to a sequential model"


@pytest.mark.parametrize("name", SEQUENTIAL)
def test_a_long_session_keeps_the_most_recent_items_and_says_so(name, chain, chain_models):
    dataset, split = chain
    model = chain_models[name]
    session = [f"i{i}" for i in range(1, 21)]
    answer = recommend(model, dataset, split, Request(None, history=session, k=5))
    capacity = model.max_history
    assert answer.notes == [
        f"history of 20 items is longer than the {capacity} that {name} reads: kept the most recent {capacity}"
    ]
    recent = recommend(model, dataset, split, Request(None, history=session[-capacity:], k=30))
    assert recent.notes == []
    # The model read the same items; the longer session only excludes its older items as well.
    assert answer.items == [item for item in recent.items if item not in session][:5]


def test_an_empty_session_gets_a_clear_answer(chain, chain_models):
    dataset, split = chain
    answer = recommend(chain_models["sasrec"], dataset, split, Request(None, history=["unknown"], k=5))
    assert answer.fallback == POPULARITY_FALLBACK and answer.ignored == ["unknown"] and len(answer.items) == 5
    with pytest.raises(RequestError, match="no known items"):
        session_attention(chain_models["sasrec"], dataset, ["unknown"])


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_session_attention_names_the_positions_it_read(name, chain, chain_models):
    dataset, _ = chain
    model = chain_models[name]
    view = session_attention(model, dataset, ["i5", "x", "i6", "i7"])
    expected = ["i5", "i6", "i7"] + (["[mask]"] if name == "bert4rec" else [])
    assert view.items == expected and view.ignored == ["x"] and view.notes == []
    assert view.weights.shape == (model.config.n_layers, model.config.n_heads, len(expected), len(expected))
    long_view = session_attention(model, dataset, [f"i{i}" for i in range(1, 31)])
    assert long_view.items[0] == f"i{31 - model.max_history}" and long_view.notes
    with pytest.raises(RequestError, match="no attention"):
        session_attention(chain_models["gru4rec"], dataset, ["i5"])


def test_a_known_user_without_interactions_gets_popularity_not_constant_scores(chain, chain_models):
    """A user listed in the users table but with no interactions has nothing to read: the answer
    is the popularity fallback, as for a stranger, not the model's scores of an empty sequence."""
    dataset, _ = chain
    frame = dataset.interactions
    ratings = pd.DataFrame({
        "user_id": dataset.user_ids[frame["user"].to_numpy()], "item_id": dataset.item_ids[frame["item"].to_numpy()],
        "rating": frame["rating"].to_numpy(), "timestamp": frame["timestamp"].to_numpy(),
    })  # fmt: skip
    users = pd.DataFrame({"user_id": [*map(str, dataset.user_ids[1:]), "newcomer"]})
    with_newcomer = build_dataset("chain-plus-newcomer", ratings, None, users, source="test")
    assert with_newcomer.user_index("newcomer") != 0
    answer = recommend(chain_models["sasrec"], with_newcomer, temporal_leave_last_out(with_newcomer),
                       Request("newcomer", k=5))  # fmt: skip
    assert answer.fallback == POPULARITY_FALLBACK and len(answer.items) == 5
