"""Answering "top-K for this user and/or this ordered history, excluding these items".

The same path serves the CLI's JSON-lines contract and the pages. A known user's history is what
the model could know at test time (train + validation interactions), so the lists shown match the
evaluation and the held-out test item can still appear in them. A request's history is read as
given, in order and with repeats (sequential models care about both); its items are excluded once.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field

import numpy as np
import torch

from recsys_core.data.dataset import Dataset, normalise_id
from recsys_core.data.split import Split
from recsys_core.models.base import Recommender
from recsys_core.serving.retriever import ItemIndex, Retriever, best_available
from recsys_core.tensors import pad_histories

POPULARITY_FALLBACK = "no known history items to read: most popular items"
MAX_K = 1000


class RequestError(ValueError):
    """A request that cannot be answered as asked; the message says what is wrong."""


@dataclass
class Request:
    user_id: str | None
    history: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    k: int = 10


@dataclass
class Answer:
    user_id: str | None
    items: list[str]
    scores: list[float]
    model: str
    fallback: str | None
    notes: list[str] = field(default_factory=list)  # what was done to the request, e.g. a cut history
    ignored: list[str] = field(default_factory=list)  # request ids not in the catalogue
    retrieval: str = "exact"  # exact scoring, or the FAISS index (kind and settings) that answered

    def contract(self) -> dict:
        """The JSON-lines answer of SPEC section 8, exactly these keys."""
        return {"user_id": self.user_id, "items": self.items, "scores": self.scores, "model": self.model,
                "fallback": self.fallback}  # fmt: skip


def parse_request(payload: object, default_k: int = 10) -> Request:
    if not isinstance(payload, dict):
        raise RequestError('a request must be a JSON object such as {"user_id": "196", "k": 10}')
    unknown = set(payload) - {"user_id", "history", "k", "exclude"}
    if unknown:
        names = ", ".join(sorted(unknown))
        names = names if len(names) <= 200 else names[:200] + "…"
        raise RequestError(f"unknown field(s) {names}; use user_id, history, k, exclude")
    user_id = payload.get("user_id")
    history = payload.get("history", [])
    exclude = payload.get("exclude", [])
    k = payload.get("k", default_k)
    if user_id is None and not history:
        raise RequestError("give a user_id, a history, or both")
    for label, value in (("history", history), ("exclude", exclude)):
        if not isinstance(value, list):
            raise RequestError(f"{label} must be a list of item ids")
    check_k(k)
    try:
        request = Request(
            user_id=None if user_id is None else normalise_id(user_id),
            history=[normalise_id(i) for i in history],
            exclude=[normalise_id(i) for i in exclude],
            k=k,
        )
    except TypeError as error:
        raise RequestError(str(error)) from error
    for external in (request.user_id or "", *request.history, *request.exclude):
        shown = printable(external)
        if shown != external:
            # A JSON escape such as "\udcff" decodes to half a character: no id, and no valid output.
            raise RequestError(f'id "{shown}" is not valid Unicode text (it holds a lone surrogate)')
    return request


def check_k(k: object, label: str = "k") -> None:
    """A request's ``k`` (and the command line's default for it, ``label`` "--k"): 1 to MAX_K."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise RequestError(f"{label} must be an integer from 1 to {MAX_K}, not {reprlib.repr(k)}")


def printable(text: str) -> str:
    """``text`` with anything that is not valid Unicode (lone surrogates) shown as an escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass
class ResolvedRequest:
    """A request in internal ids: what the model reads and what it must not recommend."""

    user: int  # 0 for a user the dataset does not know
    history: list[int]  # the known user's train+validation items, then the request's history
    excluded: list[int]  # the history plus the request's exclude list
    ignored: list[str]  # request ids not in the catalogue
    notes: list[str]

    def tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The user (1,), the history (1, L) and the excluded items (1, E), padded, on ``device``."""
        users = torch.tensor([self.user], device=device)
        history = pad_histories([np.array(self.history, dtype=np.int64)], device)
        return users, history, pad_histories([np.array(self.excluded, dtype=np.int64)], device)


def resolve_request(model: Recommender, dataset: Dataset, split: Split, request: Request) -> ResolvedRequest:
    user = dataset.user_index(request.user_id) if request.user_id is not None else 0
    history = list(split.input_sequences("test")[user]) if user else []
    ignored = []
    for external in request.history:
        item = dataset.item_index(external)
        if item == 0:
            ignored.append(external)
        else:
            history.append(item)
    excluded = history + [i for i in (dataset.item_index(e) for e in request.exclude) if i]
    ignored += [e for e in request.exclude if dataset.item_index(e) == 0]
    return ResolvedRequest(user, history, excluded, ignored, truncation_notes(model, len(history)))


@torch.no_grad()
def recommend(
    model: Recommender, dataset: Dataset, split: Split, request: Request, index: ItemIndex | None = None
) -> Answer:
    """The model's top-K for the request; with ``index`` (a FAISS index over the model's item
    vectors, see :mod:`recsys_core.serving.retriever`) the items come from it, with the same exclusions.
    """
    retriever = Retriever(model, index)
    resolved = resolve_request(model, dataset, split, request)
    notes, fallback = list(resolved.notes), None
    users, history, excluded = resolved.tensors(model.device)
    # Without any history there is nothing personal to read, whatever the model: even a known user
    # with no interactions has an untrained vector (and a sequential model an empty sequence).
    if not resolved.history and model.personalised:
        fallback = POPULARITY_FALLBACK
        popularity = torch.as_tensor(split.item_popularity, dtype=torch.float32, device=model.device)[None, :]
        found = best_available(popularity, excluded, min(request.k, model.n_items))
    else:
        if resolved.user == 0 and not model.reads_history:
            fallback = model.cold_start_fallback
        found = retriever.top_n(users, history, request.k, excluded)
    kept = found.items[0] > 0
    items, scores = found.items[0, kept].tolist(), found.scores[0, kept].tolist()
    if len(items) < request.k:
        notes.append(f"only {len(items)} items are neither in the history nor excluded: all of them returned"
                     if items else "every item is in the history or excluded: nothing left to recommend")  # fmt: skip
    return Answer(
        user_id=request.user_id,
        items=[str(dataset.item_ids[i]) for i in items],
        scores=[round(float(v), 6) for v in scores],
        model=model.name,
        fallback=fallback,
        notes=notes,
        ignored=resolved.ignored,
        retrieval=found.source,
    )


def truncation_notes(model: Recommender, length: int) -> list[str]:
    """What a model that reads only the most recent items says about a longer history."""
    if model.max_history is None or length <= model.max_history:
        return []
    return [f"history of {length} items is longer than the {model.max_history} that {model.name} reads: "
            f"kept the most recent {model.max_history}"]  # fmt: skip


@dataclass
class SessionAttention:
    """What a Transformer model (sasrec, bert4rec) attends to when it reads one history."""

    items: list[str]  # the positions read, oldest first: external ids, then "[mask]" for bert4rec
    weights: np.ndarray  # (n_layers, n_heads, T, T); row t spreads position t's attention over the T
    notes: list[str]
    ignored: list[str]  # history ids not in the catalogue, skipped


@torch.no_grad()
def session_attention(model: Recommender, dataset: Dataset, history: list[str]) -> SessionAttention:
    """Per-layer, per-head attention weights of ``model`` over an ordered history of external ids."""
    if not model.has_attention:
        raise RequestError(f"{model.name} has no attention weights to show")
    items = [dataset.item_index(external) for external in history]
    ignored = [external for external, item in zip(history, items, strict=True) if item == 0]
    known = [item for item in items if item]
    if not known:
        raise RequestError("the history has no known items, so there is nothing to attend to")
    kept = known[-model.max_history :]
    _, weights = model.score_with_attention(pad_histories([np.array(kept)], model.device))
    labels = [str(dataset.item_ids[i]) for i in kept] + ["[mask]"] * (weights.shape[-1] - len(kept))
    return SessionAttention(labels, weights[0].float().cpu().numpy(), truncation_notes(model, len(known)), ignored)
