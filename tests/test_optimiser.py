"""The training loop's optimiser: sparse embedding tables updated a row at a time, the rest dense."""

import pytest
import torch
from torch import nn

from recsys_core.models import build_model
from recsys_core.training.optimiser import LazyAdam, Optimiser


class TwoTables(nn.Module):
    """A sparse table and a dense layer, the shape of GMF."""

    def __init__(self, sparse: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = nn.Embedding(50, 4, sparse=sparse)
        self.out = nn.Linear(4, 1)

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        return self.out(self.table(rows)).pow(2).mean()


def test_rows_outside_the_batch_are_untouched_and_the_rest_follows_adam():
    sparse, dense = TwoTables(sparse=True), TwoTables(sparse=False)
    sparse_optimiser, dense_optimiser = Optimiser(sparse, 0.1), Optimiser(dense, 0.1)
    assert [type(p) for p in sparse_optimiser.parts] == [torch.optim.Adam, LazyAdam]
    assert [type(p) for p in dense_optimiser.parts] == [torch.optim.Adam]
    before = sparse.table.weight.detach().clone()
    rows = torch.tensor([3, 7, 7, 11])
    for model, optimiser in ((sparse, sparse_optimiser), (dense, dense_optimiser)):
        optimiser.zero_grad()
        model.loss(rows).backward()
        optimiser.step()
    assert sparse.table.weight.grad is None or sparse.table.weight.grad.is_sparse
    untouched = torch.ones(50, dtype=torch.bool)
    untouched[rows] = False
    assert torch.equal(sparse.table.weight[untouched], before[untouched])
    # On the first step Adam's moments start at zero for every row, so lazy and dense Adam agree on
    # the rows the batch used and on the dense layer.
    assert not torch.equal(sparse.table.weight[rows], before[rows])
    torch.testing.assert_close(sparse.table.weight, dense.table.weight)
    torch.testing.assert_close(sparse.out.weight, dense.out.weight)


def test_weight_decay_on_sparse_tables_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="l2"):
        Optimiser(TwoTables(sparse=True), 0.1, weight_decay=1e-4)


@pytest.mark.parametrize("name", ["bpr", "gmf"])
def test_matrix_factorisation_trains_its_tables_sparse(name):
    model = build_model(name, 30, 40)
    assert model.user_embedding.sparse and model.item_embedding.sparse
    assert any(isinstance(part, LazyAdam) for part in Optimiser(model, 1e-3).parts)


def test_lazy_adam_makes_the_updates_of_torch_sparse_adam():
    # Repeated rows, rows unused for a few steps (their moments wait), a changing set of rows.
    torch.manual_seed(1)
    ours, torchs = nn.Embedding(40, 3, sparse=True), nn.Embedding(40, 3, sparse=True)
    torchs.weight.data.copy_(ours.weight.data)
    optimisers = LazyAdam([ours.weight], lr=0.05), torch.optim.SparseAdam([torchs.weight], lr=0.05)
    for step in range(6):
        rows = torch.randint(0, 20 if step < 3 else 40, (25,))
        for table, optimiser in zip((ours, torchs), optimisers, strict=True):
            optimiser.zero_grad()
            table(rows).sin().sum().backward()
            optimiser.step()
    torch.testing.assert_close(ours.weight, torchs.weight)


def test_lazy_adam_refuses_a_dense_gradient():
    table = nn.Embedding(5, 2)
    optimiser = LazyAdam([table.weight])
    table(torch.tensor([1])).sum().backward()
    with pytest.raises(ValueError, match="sparse"):
        optimiser.step()
