"""Parts several models share, each written once: the ReLU MLP (NCF's towers, the two-tower
encoders, the rankers' deep parts) and the pre-norm Transformer block of SASRec and BERT4Rec,
with self-attention that can hand back its weights.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel


def mlp(sizes: tuple[int, ...], dropout: float) -> nn.Sequential:
    """ReLU layers of the given widths (input first); BatchNorm-free so batch size 1 scores the same."""
    layers: list[nn.Module] = []
    for width_in, width_out in itertools.pairwise(sizes):
        layers += [nn.Linear(width_in, width_out), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


# On a GPU, every fused attention but cuDNN's, which PyTorch prefers for bf16 there and which is
# prepared for each new shape: batches by length bring up to max_len sequence lengths, and on an H200
# the bf16 steps of SASRec and BERT4Rec at lengths not yet seen ran 30 to 40 times slower than
# float32 ones (docs/benchmarks.md, Training on a GPU against the CPU). Other devices keep PyTorch's choice.
ATTENTION_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


class MultiHeadSelfAttention(nn.Module):
    """Scaled dot-product self-attention (Vaswani et al., 2017) over ``n_heads`` heads.

    Written out rather than ``nn.MultiheadAttention`` so that the weights of every head can be
    returned. They are computed only when asked for: the default path is PyTorch's fused
    ``scaled_dot_product_attention``, which never materialises them.
    """

    def __init__(self, embedding_dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if embedding_dim % n_heads:
            raise ValueError(f"embedding_dim {embedding_dim} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(embedding_dim, 3 * embedding_dim)
        self.out = nn.Linear(embedding_dim, embedding_dim)

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, need_weights: bool = False, last_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` (B, T, D); ``allowed`` (B, 1, T, T) True where query t may attend to key s.

        Returns the output (B, T, D) and, when ``need_weights``, the weights (B, H, T, T); with
        ``last_only``, only the last position's query is computed: (B, 1, D) and (B, H, 1, T).
        """
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).split(dim, dim=-1)  # 3 x (B, T, D)
        q, k, v = (t.view(batch, length, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D/H)
        if last_only:
            q, allowed = q[:, :, -1:], allowed[:, :, -1:]  # (B, H, 1, D/H), (B, 1, 1, T)
        dropout = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T, T)
            weights = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)  # (B, H, T, T)
            context = F.dropout(weights, dropout, self.training) @ v  # (B, H, T, D/H)
        else:
            with sdpa_kernel(ATTENTION_BACKENDS) if q.is_cuda else contextlib.nullcontext():
                context = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout)
        context = context.transpose(1, 2).reshape(batch, q.shape[2], dim)  # (B, T or 1, D)
        return self.out(context), weights


class TransformerBlock(nn.Module):
    """Pre-norm self-attention, then a point-wise feed-forward network, each with a residual and
    dropout on its output. SASRec and BERT4Rec differ only in the mask they pass and in
    ``feed_forward`` (the paper's d x d ReLU network, or BERT's 4d-wide GELU one). It is built
    here, after the attention, so a seed gives the same initial weights in every layer order."""

    def __init__(
        self, dim: int, n_heads: int, dropout: float, attention_dropout: float, feed_forward: Callable[[], nn.Module]
    ) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = MultiHeadSelfAttention(dim, n_heads, attention_dropout)
        self.feed_forward_norm = nn.LayerNorm(dim)
        self.feed_forward = feed_forward()
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, need_weights: bool, last_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, T, D) in, (B, T, D) out, or (B, 1, D), the last position's, with ``last_only``."""
        attended, weights = self.attention(self.attention_norm(x), allowed, need_weights, last_only)
        x = (x[:, -1:] if last_only else x) + self.dropout(attended)  # (B, T or 1, D)
        x = x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))
        return x, weights


def run_blocks(
    blocks: nn.ModuleList, x: torch.Tensor, allowed: torch.Tensor, need_weights: bool, last_only: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The stack of blocks over (B, T, D) inputs: outputs (B, T, D), and with ``need_weights`` the
    weights (B, n_layers, H, T, T).

    With ``last_only``, the outputs of the last position alone, (B, 1, D): all a query vector reads
    when scoring. Every block but the last still needs every position (they are the last one's keys
    and values), but the last one computes one query and one feed-forward row: at T = 200, where
    validating every epoch over every user is a large share of a sequential model's training, that
    leaves out most of the last block's work (docs/measurements.md, the `layers.run_blocks` row)."""
    if last_only and need_weights:
        raise ValueError("the attention maps need every position: last_only and need_weights exclude each other")
    weights = []
    for depth, block in enumerate(blocks):
        x, w = block(x, allowed, need_weights, last_only and depth == len(blocks) - 1)
        weights.append(w)
    return x, torch.stack(weights, dim=1) if need_weights else None
