"""What the ranking models share: the feature fields they read and the labelled rows they learn from.

A ranker scores one row at a time: a (user, item, context) triple described by categorical
*fields*, in the vocabulary of Rendle's factorization machines and of every paper since:

    user, item, age, gender, occupation, year, popularity, weekday, hour, last_item   one code each
    genres, history_genres                                                            weighted bags
    recent_items                                                      the mean of the history's items

``history_genres`` is the user's genre affinity (the genre mix of their ``history_len`` most recent
items), ``recent_items`` those items themselves (so an FM term <v_recent, v_item> is an item-item
similarity, as in FISM) and ``last_item`` the item consumed just before, so a ranker reads the
history as well as the ids. Code 0 of every field is "unknown": a new user, an empty history, a request without a
time of day. The models differ only in how they combine the field embeddings (their ``logit``).

Training rows are the training interactions as positives plus, per positive, ``random_negatives``
items drawn uniformly and ``hard_negatives`` drawn from a retriever's top candidates for that user
(never the user's own training items), so the ranker learns to separate exactly the items it will
be asked to order. A negative shares its positive's user, history and context. Context (weekday,
hour) is dropped at random so the model also scores requests that come without a time.

A protocol may add fields of its own through ``row_fields`` (name -> number of codes): each is one
code per row, read from the batch under its name (0, unknown, when absent), after the fields above.
``drop_fields`` leaves fields out of the embeddings (the history fields, for rows that never carry
one). The explicit-label protocol (``recsys_core.protocols.ctr``) uses both; the top-K rankers use neither.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_core.data.features import SideFeatures, context_features
from recsys_core.data.sampling import sample_negatives
from recsys_core.data.sequences import prefix_histories
from recsys_core.data.split import Split
from recsys_core.models.base import LEARNING_RATE, Batch, Choice, Range, Recommender, TrainableConfig

SINGLE_FIELDS = ("user", "item", "age", "gender", "occupation", "year", "popularity", "weekday", "hour", "last_item")
BAG_FIELDS = ("genres", "history_genres")
FIELDS = (*SINGLE_FIELDS, *BAG_FIELDS, "recent_items")
# Bound on rows scored in one forward pass when a user's whole catalogue is scored.
MAX_ROWS_PER_PASS = 16_384
# What tuning searches for every ranker; the deep ones add their dropout.
RANKER_SPACE: dict[str, Range | Choice] = {
    "learning_rate": LEARNING_RATE,
    "embedding_dim": Choice((8, 16, 32), "k per field: half to twice the default"),
    "hard_negatives": Range(0, 4, "negatives per positive from the retriever's candidates: none to twice the default",
                            integer=True),
}
DEEP_DROPOUT = Range(0.0, 0.5, "dropout in the deep part: none to half its units")


@dataclass
class RankerConfig(TrainableConfig):
    # Quick profile: fewer negatives for two epochs, at a rate high enough to learn in two (docs/measurements.md).
    QUICK: ClassVar[dict[str, object]] = {
        "epochs": 2,
        "random_negatives": 1,
        "hard_negatives": 1,
        "learning_rate": 1e-2,
    }
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = RANKER_SPACE

    embedding_dim: int = 16  # k, per field
    random_negatives: int = 2  # uniformly drawn unseen items per positive
    hard_negatives: int = 2  # drawn from the retriever's candidates per positive
    candidates_from: str = "sasrec"  # the retriever for hard negatives and validation (the best one on ml-100k)
    n_candidates: int = 200
    history_len: int = 20
    context_dropout: float = 0.5
    epochs: int = 30
    batch_size: int = 2048
    learning_rate: float = 1e-3
    patience: int = 3
    # Extra single-valued fields a protocol reads from its rows: name -> codes (including 0, unknown).
    row_fields: dict[str, int] = field(default_factory=dict)
    # Fields left out of every embedding (say the history fields, for rows that never carry a history).
    drop_fields: tuple[str, ...] = ()
    # Ordinal auxiliary loss, for rows that carry a star rating (the explicit-label protocol): the
    # label is one threshold (rating >= 4), but the stars say more, a 3 is nearer a like than a 1.
    # Each threshold k here adds the cumulative-link term P(rating >= k) = sigmoid(logit + delta_k)
    # with a learned offset delta_k, so the one logit that is served orders rows at every threshold.
    # Their mean weighs as much as the label's own term (docs/ctr/trials.md has the weights tried).
    rating_levels: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.embedding_dim, self.history_len, self.n_candidates) < 1:
            raise ValueError("embedding_dim, history_len and n_candidates must be positive")
        if self.random_negatives < 0 or self.hard_negatives < 0 or self.random_negatives + self.hard_negatives < 1:
            raise ValueError("a ranker needs at least one negative per positive")
        if not 0 <= self.context_dropout <= 1:
            raise ValueError("context_dropout must be in [0, 1]")
        self.row_fields = dict(self.row_fields)
        self.drop_fields = tuple(self.drop_fields)
        self.rating_levels = tuple(float(k) for k in self.rating_levels)
        if len(set(self.rating_levels)) < len(self.rating_levels):
            raise ValueError("rating_levels must be distinct")
        if not set(self.drop_fields) <= {*FIELDS, *self.row_fields} or {"user", "item"} & set(self.drop_fields):
            raise ValueError("drop_fields must name known fields other than user and item")
        if any(n in FIELDS for n in self.row_fields) or min(self.row_fields.values(), default=2) < 2:
            raise ValueError("a row field needs a new name and at least one code besides unknown (0)")

    def retriever(self) -> str | None:
        return self.candidates_from or None


@dataclass
class FieldInput:
    """A block of rows: one code per single-valued field and a weight vector per bag field."""

    codes: torch.Tensor  # (N, len(SINGLE_FIELDS) + len(row_fields)) int64
    bags: torch.Tensor  # (N, len(BAG_FIELDS), n_genres) float, each row sums to 1 or is all 0
    recent: torch.Tensor  # (N, L) the most recent history items, left-padded with 0

    def __len__(self) -> int:
        return len(self.codes)


class FieldEmbedding(nn.Module):
    """Embeds the chosen fields of a row: (N, n_fields, dim), single-valued fields first.

    One table holds every single-valued field (each at its own offset, as in DLRM's and torchrec's
    embedding collections); a bag field is the weighted sum of its members' embeddings. With
    ``dim=1`` it gives the first-order weights w_i of a linear model.
    """

    def __init__(
        self,
        cardinalities: dict[str, int],
        n_genres: int,
        dim: int,
        fields: tuple[str, ...] = FIELDS,
        columns: tuple[str, ...] = SINGLE_FIELDS,
    ):
        """``columns``: the single-valued fields in the order of ``FieldInput.codes``' columns."""
        super().__init__()
        self.single = [columns.index(f) for f in fields if f in columns]
        self.bag = [BAG_FIELDS.index(f) for f in fields if f in BAG_FIELDS]
        sizes = [cardinalities[columns[i]] for i in self.single]
        self.register_buffer("offsets", torch.tensor(np.cumsum([0, *sizes[:-1]]), dtype=torch.long), persistent=False)
        self.table = nn.Embedding(int(sum(sizes)), dim)
        self.bag_tables = nn.Parameter(torch.empty(len(self.bag), n_genres, dim))
        self.recent = nn.Embedding(cardinalities["item"], dim, padding_idx=0) if "recent_items" in fields else None
        nn.init.normal_(self.table.weight, std=0.01)
        nn.init.normal_(self.bag_tables, std=0.01)
        if self.recent is not None:
            nn.init.normal_(self.recent.weight, std=0.01)
            with torch.no_grad():
                self.recent.weight[0].zero_()

    @property
    def n_fields(self) -> int:
        return len(self.single) + len(self.bag) + (self.recent is not None)

    def forward(self, x: FieldInput) -> torch.Tensor:
        parts = [self.table(x.codes[:, self.single] + self.offsets)]  # (N, Fs, dim)
        if self.bag:
            parts.append(torch.einsum("nbg,bgd->nbd", x.bags[:, self.bag], self.bag_tables))  # (N, Fb, dim)
        if self.recent is not None:
            count = (x.recent > 0).sum(dim=1, keepdim=True).clamp(min=1)
            parts.append((self.recent(x.recent).sum(dim=1) / count)[:, None, :])  # (N, 1, dim); padding is 0
        return torch.cat(parts, dim=1)


class Ranker(Recommender):
    """Base of the feature-interaction rankers; a subclass builds its layers and defines ``logit``."""

    family = "rankers"
    is_ranker = True
    trainable = True
    reads_history = True
    needs_features = True

    def __init__(self, config: RankerConfig, n_users: int, n_items: int, features: SideFeatures) -> None:
        super().__init__(config, n_users, n_items)
        users, items = features.users, features.items
        # Side features travel with the weights, so a loaded ranker needs no feature pipeline.
        self.register_buffer("age_bucket", torch.from_numpy(users.age_bucket))
        self.register_buffer("gender", torch.from_numpy(users.gender))
        self.register_buffer("occupation", torch.from_numpy(users.occupation))
        self.register_buffer("year_bucket", torch.from_numpy(items.year_bucket))
        self.register_buffer("popularity_bucket", torch.from_numpy(items.popularity_bucket))
        self.register_buffer("item_genres", torch.from_numpy(items.genres))  # (n_items + 1, G) multi-hot
        self.cardinalities = {
            "user": n_users + 1, "item": n_items + 1, "last_item": n_items + 1, "weekday": 8, "hour": 25,
            "age": users.vocabularies["age_bucket"], "gender": users.vocabularies["gender"],
            "occupation": users.vocabularies["occupation"], "year": items.vocabularies["year_bucket"],
            "popularity": items.vocabularies["popularity_bucket"],
        }  # fmt: skip
        self.cardinalities.update(config.row_fields)
        self.single_fields = (*SINGLE_FIELDS, *config.row_fields)  # the columns of FieldInput.codes
        every = (*self.single_fields, *BAG_FIELDS, "recent_items")
        self.fields = tuple(f for f in every if f not in config.drop_fields)  # the embedded ones
        self.n_genres = items.genres.shape[1]
        # Weight of the retriever's order in a pipeline's final score, tuned on validation after
        # training (see recsys_core.protocols.funnel.tune_blend); 0 means the ranker alone decides.
        self.register_buffer("retriever_blend", torch.zeros(()))
        if config.rating_levels:  # the offsets delta_k of the ordinal terms; only training reads them
            self.rating_offsets = nn.Parameter(torch.zeros(len(config.rating_levels)))
        # The retriever's top candidates per user (n_users + 1, N), set for training; never saved.
        self.candidate_pool: np.ndarray | None = None
        self._positives: dict[str, np.ndarray] | None = None

    def embedding(self, dim: int, fields: tuple[str, ...] | None = None) -> FieldEmbedding:
        """Embeddings of ``fields`` (every field, the row fields included, by default)."""
        return FieldEmbedding(self.cardinalities, self.n_genres, dim, self.fields if fields is None else fields,
                              self.single_fields)  # fmt: skip

    def logit(self, x: FieldInput) -> torch.Tensor:
        """(N,) logits of the rows."""
        raise NotImplementedError

    # ------------------------------------------------------------------ rows

    def field_input(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        recent: torch.Tensor,
        affinity: torch.Tensor,
        weekday: torch.Tensor | None = None,
        hour: torch.Tensor | None = None,
        row_codes: dict[str, torch.Tensor] | None = None,
    ) -> FieldInput:
        """Rows for (N,) users and items, their recent items (N, L) and genre affinities (N, G);
        ``row_codes`` holds the row fields' codes (a missing one is unknown, 0)."""
        unknown = torch.zeros_like(users)
        row_codes = row_codes or {}
        codes = torch.stack([
            users, items, self.age_bucket[users], self.gender[users], self.occupation[users],
            self.year_bucket[items], self.popularity_bucket[items],
            unknown if weekday is None else weekday, unknown if hour is None else hour, recent[:, -1],
            *(row_codes.get(name, unknown) for name in self.config.row_fields),
        ], dim=1)  # fmt: skip
        bags = torch.stack([normalise_rows(self.item_genres[items]), affinity], dim=1)
        return FieldInput(codes, bags, recent)

    def genre_affinity(self, history: torch.Tensor) -> torch.Tensor:
        """(B, G) genre mix of each history's ``history_len`` most recent items (all 0 when empty)."""
        return normalise_rows(self.item_genres[self.recent(history)].sum(dim=1))  # padding row 0 has no genres

    def recent(self, history: torch.Tensor) -> torch.Tensor:
        return history[:, -self.config.history_len :]

    def forward(self, batch: Batch) -> torch.Tensor:
        history = batch["history"]
        row_codes = {name: batch[name] for name in self.config.row_fields if name in batch}
        x = self.field_input(batch["user"], batch["item"], self.recent(history), self.genre_affinity(history),
                             batch.get("weekday"), batch.get("hour"), row_codes)  # fmt: skip
        return self.logit(x)

    # ------------------------------------------------------------------ training

    def use_candidates(self, pool: np.ndarray | None) -> None:
        """Hard negatives come from ``pool`` (n_users + 1, N): each user's top retriever candidates,
        and validation reorders them, as the ranker will serve."""
        self.candidate_pool = pool

    def validation_candidates(self) -> np.ndarray | None:
        return self.candidate_pool

    def batches(self, split: Split, rng: np.random.Generator) -> Iterator[Batch]:
        if self._positives is None:
            users = split.train["user"].to_numpy()
            items = split.train["item"].to_numpy()
            weekday, hour = context_features(split.train["timestamp"].to_numpy())
            self._positives = {"user": users, "item": items, "weekday": weekday, "hour": hour,
                               "history": prefix_histories(users, items, self.config.history_len)}  # fmt: skip
        positives = self._positives
        users, n = positives["user"], len(positives["user"])
        r = self.config.random_negatives
        h = self.config.hard_negatives if self.candidate_pool is not None else 0
        if r + h == 0:
            r = 1  # no retriever to draw hard negatives from: fall back to random ones
        # Row j of every block of n rows belongs to positive j: positives, r random blocks, h hard ones.
        source = np.tile(np.arange(n), 1 + r + h)
        negative_items = [sample_negatives(split, np.tile(users, r), rng)]
        if h:
            pool = self.candidate_pool[np.tile(users, h)]  # (n * h, N)
            hard = pool[np.arange(len(pool)), rng.integers(0, pool.shape[1], len(pool))]
            # A user with fewer candidates than N has padding (0) in the pool: use a random item there.
            missing = hard == 0
            hard[missing] = sample_negatives(split, np.tile(users, h)[missing], rng)
            negative_items.append(hard)
        items = np.concatenate([positives["item"], *negative_items])
        labels = np.concatenate([np.ones(n), np.zeros(len(items) - n)]).astype(np.float32)
        keep_context = rng.random(len(items)) >= self.config.context_dropout
        order = rng.permutation(len(items))
        for start in range(0, len(order), self.config.batch_size):
            rows = order[start : start + self.config.batch_size]
            origin = source[rows]
            yield {
                "user": torch.from_numpy(users[origin]),
                "item": torch.from_numpy(items[rows]),
                "history": torch.from_numpy(positives["history"][origin]),
                "weekday": torch.from_numpy(np.where(keep_context[rows], positives["weekday"][origin], 0)),
                "hour": torch.from_numpy(np.where(keep_context[rows], positives["hour"][origin], 0)),
                "label": torch.from_numpy(labels[rows]),
            }

    def loss(self, batch: Batch) -> torch.Tensor:
        logit = self(batch).float()
        loss = F.binary_cross_entropy_with_logits(logit, batch["label"])
        if self.config.rating_levels and "rating" in batch:
            levels = torch.tensor(self.config.rating_levels, device=logit.device)
            at_least = (batch["rating"][:, None] >= levels).float()  # (N, levels)
            ordinal = F.binary_cross_entropy_with_logits(logit[:, None] + self.rating_offsets, at_least)
            loss = loss + ordinal
        return loss

    def start_rating_offsets(self, ratings: np.ndarray, labels: np.ndarray) -> None:
        """Start each ordinal offset delta_k at the training rows' log-odds of rating >= k less those
        of the label, where training would take them: from 0, Adam's small steps leave them short
        for many epochs, far from where they belong (docs/measurements.md)."""

        def log_odds(p: np.ndarray) -> np.ndarray:
            p = np.clip(p, 1e-4, 1 - 1e-4)
            return np.log(p / (1 - p))

        at_least = (np.asarray(ratings)[:, None] >= np.array(self.config.rating_levels)).mean(axis=0)
        start = log_odds(at_least) - log_odds(np.asarray(labels, dtype=np.float64).mean())
        with torch.no_grad():
            self.rating_offsets.copy_(torch.from_numpy(start))

    # ------------------------------------------------------------------ serving

    def score_candidates(self, users: torch.Tensor, history: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Logits (B, C) of each user's candidate items (B, C); a candidate 0 (padding) gets -inf."""
        b, c = candidates.shape
        recent, affinity = self.recent(history), self.genre_affinity(history)  # read the history once per user
        scores = torch.empty(b, c, device=candidates.device)
        per_pass = max(1, MAX_ROWS_PER_PASS // max(c, 1))
        for start in range(0, b, per_pass):
            part = slice(start, start + per_pass)
            x = self.field_input(
                users[part].repeat_interleave(c), candidates[part].reshape(-1),
                recent[part].repeat_interleave(c, dim=0), affinity[part].repeat_interleave(c, dim=0),
            )  # fmt: skip
            scores[part] = self.logit(x).float().reshape(-1, c)
        return scores.masked_fill(candidates == 0, float("-inf"))

    def item_embeddings(self) -> torch.Tensor:
        return self.field_vectors("item")

    def user_embeddings(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.field_vectors("user")[users]

    def field_vectors(self, field: str) -> torch.Tensor:
        """(cardinality, D) a single-valued field's rows in every factor table (dim > 1) of the
        model, side by side: what the ranker has learned about each user or item."""
        index = SINGLE_FIELDS.index(field)
        parts = []
        for module in self.modules():
            if isinstance(module, FieldEmbedding) and module.table.embedding_dim > 1 and index in module.single:
                start = int(module.offsets[module.single.index(index)])
                parts.append(module.table.weight[start : start + self.cardinalities[field]])
        if not parts:
            raise NotImplementedError(f"{self.name} has no {field} factors")
        return torch.cat(parts, dim=1)

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        catalogue = torch.arange(self.n_items + 1, device=users.device).expand(len(users), -1)
        return self.score_candidates(users, history, catalogue)


def normalise_rows(weights: torch.Tensor) -> torch.Tensor:
    """Rows scaled to sum to 1 (all-zero rows stay 0): a bag's embedding is its members' mean."""
    return weights / weights.sum(dim=-1, keepdim=True).clamp(min=1e-12)


def pairwise_interactions(v: torch.Tensor) -> torch.Tensor:
    """sum_{i<j} <v_i, v_j> for (N, F, k) field vectors in O(F k): Rendle's identity
    0.5 * sum_f [(sum_i v_if)^2 - sum_i v_if^2]."""
    return 0.5 * (v.sum(dim=1).pow(2) - v.pow(2).sum(dim=1)).sum(dim=1)
