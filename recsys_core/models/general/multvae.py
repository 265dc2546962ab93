"""Mult-VAE: a variational auto-encoder with a multinomial likelihood for implicit feedback.

Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018. A user's row x_u
is L2-normalised, dropped out, and encoded to a Gaussian q(z_u | x_u) = N(mu, diag(sigma^2)); a
decoder maps z_u to a probability over all items, pi(z_u) = softmax(f(z_u)). The objective is

    -E_q[ sum_i x_ui log pi_i(z_u) ] + beta * KL(q(z_u | x_u) || N(0, I))

with beta annealed linearly from 0 to ``beta_max`` (the paper's partially regularised ELBO: the
full KL term over-regularises on sparse data). The multinomial likelihood makes the items compete
for probability mass, which suits top-N ranking. At inference the score is the decoder at the
mean mu, never a sample, so a user's list is deterministic; any history can be folded in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_core.data.sampling import user_row_batches
from recsys_core.data.split import Split
from recsys_core.models.base import LEARNING_RATE, Batch, Choice, Range, Recommender, TrainableConfig, multi_hot


@dataclass
class MultVAEConfig(TrainableConfig):
    # Quick profile: beta annealed over fewer updates, so it reaches beta_max in the few epochs (docs/measurements.md).
    QUICK: ClassVar[dict[str, object]] = {"epochs": 60, "anneal_steps": 400}
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {
        "learning_rate": LEARNING_RATE,
        "dropout": Range(0.2, 0.8, "input dropout either side of the paper's 0.5"),
        "beta_max": Range(0.05, 1.0, "the KL weight's cap, up to the full ELBO's 1 (the paper found about 0.2 best)"),
        "anneal_steps": Range(200, 20_000, "how fast beta grows: from a few epochs to most of training", log=True,
                              integer=True),
    }

    hidden_dim: int = 600
    latent_dim: int = 200
    dropout: float = 0.5  # on the normalised input
    beta_max: float = 0.2
    anneal_steps: int = 2000  # updates over which beta grows from 0 to beta_max
    epochs: int = 1000
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 50

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.hidden_dim, self.latent_dim, self.anneal_steps) < 1 or not 0 <= self.dropout < 1:
            raise ValueError("sizes and anneal_steps must be positive, dropout in [0, 1)")
        if self.beta_max < 0:
            raise ValueError("beta_max must be non-negative")


class MultVAE(Recommender):
    name = "multvae"
    family = "autoencoders"
    paper = "Liang et al., Variational Autoencoders for Collaborative Filtering, WWW 2018"
    config_class = MultVAEConfig
    trainable = True
    reads_history = True

    def __init__(self, config: MultVAEConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        self.encoder = nn.Linear(n_items + 1, config.hidden_dim)
        self.to_posterior = nn.Linear(config.hidden_dim, 2 * config.latent_dim)  # mu and log sigma^2
        self.decoder = nn.Sequential(
            nn.Linear(config.latent_dim, config.hidden_dim), nn.Tanh(), nn.Linear(config.hidden_dim, n_items + 1)
        )
        self.updates = 0  # drives the KL annealing; not part of the model

    def batches(self, split: Split, rng: np.random.Generator) -> Iterator[Batch]:
        return user_row_batches(split, self.config.batch_size, rng)

    def encode(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.dropout(F.normalize(rows, dim=-1), p=self.config.dropout, training=self.training)
        mu, log_variance = self.to_posterior(torch.tanh(self.encoder(x))).chunk(2, dim=-1)  # (B, Z) each
        return mu, log_variance

    def epoch_work(self, split: Split) -> float:
        return float(split.n_users) * self.n_items  # every user's row over the whole catalogue

    def loss(self, batch: Batch) -> torch.Tensor:
        rows = batch["row"]
        mu, log_variance = self.encode(rows)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_variance)  # reparameterisation
        log_pi = F.log_softmax(self.decoder(z)[:, 1:], dim=-1)  # (B, n_items)
        reconstruction = -(log_pi * rows[:, 1:]).sum(-1).mean()
        kl = 0.5 * (torch.exp(log_variance) + mu.pow(2) - 1 - log_variance).sum(-1).mean()
        beta = self.config.beta_max * min(1.0, self.updates / self.config.anneal_steps)
        self.updates += 1
        return reconstruction + beta * kl

    def item_embeddings(self) -> torch.Tensor:
        return self.decoder[-1].weight  # the decoder's output row of each item

    def user_embeddings(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.encode(multi_hot(history, self.n_items))[0]  # the posterior mean mu

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        mu, _ = self.encode(multi_hot(history, self.n_items))
        return self.decoder(mu)  # (B, n+1)
