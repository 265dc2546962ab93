"""The optimiser of every torch model: Adam, with embedding tables updated a row at a time.

A batch of matrix factorisation touches a few thousand rows of its user and item tables. Dense Adam
still writes every row of both tables at every step (the gradient, two moments and the weight),
so a step's cost grows with the catalogue and the user base, not with the batch: BPR's and GMF's
seconds per training example grew faster than their work from ml-100k to ml-1m-sas, and far
faster on a synthetic 100k-item catalogue (docs/benchmarks.md, "The lab at ten times the data").
A table built with ``nn.Embedding(..., sparse=True)`` hands back a sparse gradient (the rows the
batch used), and ``LazyAdam`` below updates only those rows: the "lazy Adam" of large-scale
embedding training. Its moments of a row advance only when the row is used, which is what keeps the
step proportional to the batch; rows unseen in a step keep their weights exactly.

Models opt in by building their tables sparse; everything else keeps dense Adam.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LazyAdam(torch.optim.Optimizer):
    """Adam on the rows of a sparse gradient only: the update of ``torch.optim.SparseAdam``,
    written with row gathers and scatters.

    SparseAdam builds three sparse tensors and masks each moment table at every step; gathering the
    rows, updating them and writing them back does the same arithmetic with less bookkeeping. On
    BPR's and GMF's tables its step took 1.2-1.3x as long as this one's (docs/benchmarks.md, "The
    sparse tables' optimiser step"). Both use one step count per table for the bias
    correction, so their updates agree to rounding (tests/test_optimiser.py).
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for weight in group["params"]:
                if weight.grad is None:
                    continue
                if not weight.grad.is_sparse:
                    raise ValueError("LazyAdam takes the sparse gradients of nn.Embedding(..., sparse=True)")
                gradient = weight.grad.coalesce()  # a row used twice in the batch is one update
                rows, values = gradient.indices()[0], gradient.values()
                state = self.state[weight]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(weight)
                    state["exp_avg_sq"] = torch.zeros_like(weight)
                state["step"] += 1
                m = state["exp_avg"].index_select(0, rows).mul_(beta1).add_(values, alpha=1 - beta1)
                v = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(values, values, value=1 - beta2)
                state["exp_avg"].index_copy_(0, rows, m)
                state["exp_avg_sq"].index_copy_(0, rows, v)
                t = state["step"]
                step_size = group["lr"] * math.sqrt(1 - beta2**t) / (1 - beta1**t)
                weight.index_add_(0, rows, m.div_(v.sqrt_().add_(group["eps"])), alpha=-step_size)


class Optimiser:
    """Adam over the dense parameters and LazyAdam over sparse embedding tables, stepped together."""

    def __init__(self, model: nn.Module, learning_rate: float, weight_decay: float = 0.0) -> None:
        sparse = {id(m.weight): m.weight for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse}
        dense = [p for p in model.parameters() if id(p) not in sparse and p.requires_grad]
        if sparse and weight_decay:
            # Decaying every row at every step is exactly the dense work the sparse tables avoid.
            raise ValueError(
                f"{type(model).__name__} trains sparse embedding tables, which take no weight_decay: "
                "regularise them with the model's own l2 (on the rows of each batch)"
            )
        self.parts: list[torch.optim.Optimizer] = []
        if dense:
            self.parts.append(torch.optim.Adam(dense, lr=learning_rate, weight_decay=weight_decay))
        if sparse:
            self.parts.append(LazyAdam([p for p in sparse.values() if p.requires_grad], lr=learning_rate))

    def zero_grad(self) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=True)

    def step(self) -> None:
        for part in self.parts:
            part.step()
