"""What the general and retrieval models promise beyond the shared contract."""

import numpy as np
import pytest
import torch

from recsys_core.data.features import side_features
from recsys_core.models import build_model
from recsys_core.models.general.lightgcn import normalised_adjacency
from recsys_core.serving.recommend import Request, recommend
from recsys_core.tensors import pad_histories
from recsys_core.training.loop import fit


@pytest.fixture(scope="module")
def features(synthetic, synthetic_split):
    return side_features(synthetic, synthetic_split.item_popularity)


def test_neumf_pretrained_from_gmf_and_mlp_blends_their_scores(synthetic, synthetic_split):
    """With the paper's initialisation, NeuMF's logit is alpha * GMF's + (1 - alpha) * MLP's."""
    n_users, n_items = synthetic.n_users, synthetic.n_items
    gmf, mlp = build_model("gmf", n_users, n_items), build_model("mlp", n_users, n_items)
    for model in (gmf, mlp):
        fit(model, synthetic_split, torch.device("cpu"), max_epochs=2)
    neumf = build_model("neumf", n_users, n_items, pretrained=True, alpha=0.3)
    neumf.initialise_from(gmf=gmf, mlp=mlp)
    neumf.eval()
    users, history = torch.arange(1, 6), pad_histories([np.array([1])] * 5)
    with torch.no_grad():
        expected = 0.3 * gmf.score_all(users, history) + 0.7 * mlp.score_all(users, history)
        assert torch.allclose(neumf.score_all(users, history), expected, atol=1e-5)


def test_neumf_refuses_pretrained_models_of_another_shape(synthetic):
    gmf = build_model("gmf", synthetic.n_users, synthetic.n_items, embedding_dim=8)
    mlp = build_model("mlp", synthetic.n_users, synthetic.n_items)
    with pytest.raises(ValueError, match="gmf_dim"):
        build_model("neumf", synthetic.n_users, synthetic.n_items).initialise_from(gmf=gmf, mlp=mlp)


def test_neumf_without_trained_halves_trains_from_scratch_and_says_so(synthetic, monkeypatch):
    from recsys_core.store.artifacts import load_artifact
    from recsys_core.training import schedule as train

    monkeypatch.setattr(train, "load_dataset", lambda name: synthetic)
    [report] = train.train_models("synthetic", ["neumf"], device="cpu", overrides={"neumf": {"epochs": 2}})
    assert report.ok and "trained from scratch: pre-training needs gmf, mlp" in report.message
    assert load_artifact(synthetic, "neumf").model.config.pretrained is False


def test_lightgcn_adjacency_is_symmetric_and_normalised(synthetic_split):
    a = normalised_adjacency(synthetic_split).to_dense()
    n_users = synthetic_split.n_users + 1
    assert torch.allclose(a, a.T)
    assert a[:n_users, :n_users].abs().sum() == 0 and a[n_users:, n_users:].abs().sum() == 0  # bipartite
    user, item = synthetic_split.train["user"].iloc[0], synthetic_split.train["item"].iloc[0]
    degree_u = synthetic_split.train_matrix[user].sum()
    degree_i = synthetic_split.train_matrix[:, item].sum()
    assert a[user, n_users + item].item() == pytest.approx(1 / np.sqrt(degree_u * degree_i))


def test_lightgcn_serves_its_propagated_vectors_after_training(synthetic, synthetic_split):
    model = build_model("lightgcn", synthetic.n_users, synthetic.n_items)
    fit(model, synthetic_split, torch.device("cpu"), max_epochs=2)
    users, items = model.propagate()
    assert torch.allclose(model.item_vectors(), items) and torch.allclose(model.user_vectors, users)
    assert not torch.allclose(model.item_vectors(), model.item_embedding.weight)  # layers did propagate


def test_lightgcn_propagates_in_float32_under_bf16_autocast(synthetic, synthetic_split):
    # CUDA has no bf16 sparse product: under the training loop's autocast the propagation must stay
    # float32 (an H200 run failed on it), and give what it gives without autocast.
    model = build_model("lightgcn", synthetic.n_users, synthetic.n_items)
    model.attach_graph(synthetic_split)
    plain_users, plain_items = model.propagate()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        users, items = model.propagate()
    assert users.dtype == items.dtype == torch.float32
    assert torch.equal(users, plain_users) and torch.equal(items, plain_items)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the graph is no buffer)")
def test_lightgcn_graph_follows_its_weights_to_the_gpu_and_back(synthetic, synthetic_split):
    model = build_model("lightgcn", synthetic.n_users, synthetic.n_items)
    model.attach_graph(synthetic_split)  # built on the CPU, as batches() builds it before a fit moves it
    users, _ = model.to("cuda").propagate()
    assert users.is_cuda
    back, _ = model.cpu().propagate()
    assert torch.allclose(back, users.cpu(), atol=1e-5)


def test_multvae_scores_with_the_mean_so_lists_are_deterministic(synthetic, synthetic_split):
    model = build_model("multvae", synthetic.n_users, synthetic.n_items)
    fit(model, synthetic_split, torch.device("cpu"), max_epochs=2)
    history = pad_histories([np.array([1, 2, 3])])
    with torch.no_grad():
        assert torch.equal(model.score_all(torch.tensor([0]), history), model.score_all(torch.tensor([0]), history))


def test_multvae_anneals_beta_from_zero(synthetic, synthetic_split):
    model = build_model("multvae", synthetic.n_users, synthetic.n_items, anneal_steps=10, beta_max=0.2)
    batch = next(model.batches(synthetic_split, np.random.default_rng(0)))
    torch.manual_seed(0)
    first = model.loss(batch)  # beta = 0: reconstruction alone
    model.updates = 10
    torch.manual_seed(0)
    later = model.loss(batch)  # beta = 0.2: the same reconstruction plus 0.2 KL
    assert later > first


def test_cdae_loss_covers_unobserved_items(synthetic, synthetic_split):
    """A loss over observed items alone is minimised by predicting 1 everywhere; ours is not."""
    model = build_model("cdae", synthetic.n_users, synthetic.n_items)
    batch = next(model.batches(synthetic_split, np.random.default_rng(0)))
    with torch.no_grad():
        model.decoder.bias.fill_(20.0)  # "everything is relevant"
        model.decoder.weight.zero_()
    assert model.loss(batch).item() > 100


def test_two_tower_history_features_come_only_from_the_past(synthetic, synthetic_split, features):
    model = build_model("two_tower", synthetic.n_users, synthetic.n_items, features=features, history_len=5)
    users, items, history = model._training_examples(synthetic_split)
    for row in (0, 1, 7, len(users) - 1):
        sequence = synthetic_split.train_sequences[users[row]]
        position = np.flatnonzero(sequence == items[row])[0]
        past = sequence[max(0, position - 5) : position]
        assert list(history[row][history[row] > 0]) == list(past)


def test_two_tower_temperature_stays_positive_and_outputs_are_unit_vectors(synthetic, synthetic_split, features):
    model = build_model("two_tower", synthetic.n_users, synthetic.n_items, features=features, random_negatives=16)
    fit(model, synthetic_split, torch.device("cpu"), max_epochs=2)
    assert model.log_temperature.exp().item() > 0
    with torch.no_grad():
        vectors = model.item_vectors()
    assert torch.allclose(vectors.norm(dim=1), torch.ones(len(vectors)), atol=1e-5)


def test_two_tower_serves_a_history_only_request_from_the_history(synthetic, synthetic_split, features):
    """A cold user is folded in through the history tower: different histories, different lists."""
    model = build_model("two_tower", synthetic.n_users, synthetic.n_items, features=features)
    fit(model, synthetic_split, torch.device("cpu"), max_epochs=15)
    first_block = recommend(model, synthetic, synthetic_split, Request(None, history=["i1", "i2", "i3"], k=5))
    last_block = recommend(model, synthetic, synthetic_split, Request(None, history=["i101", "i102", "i103"], k=5))
    assert first_block.fallback is None and last_block.fallback is None
    assert set(first_block.items) != set(last_block.items)
    # the planted blocks are 20 items wide: the next items of a walk sit in the same block
    assert sum(int(i[1:]) <= 20 for i in first_block.items) >= 3
