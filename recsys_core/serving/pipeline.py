"""The two-stage pipeline: a retriever proposes N candidates, a ranker orders them, top K is returned.

Retrieval is cheap per item and recall-oriented (any model that scores the whole catalogue, exact
or through a FAISS index); ranking is expensive per item and precision-oriented (a feature-
interaction model that only ever sees the N candidates). The ranker's pool is the retriever's
candidates and nothing else, the history and the request's exclusions are never candidates, and
each stage's latency is measured. Its evaluation on the protocol (the funnel's candidate recall@N
and the final list's HR/NDCG@10 against the held-out item) is ``recsys_core.protocols.funnel``.

Pipelines are named ``RETRIEVER+RANKER`` (``two_tower+deepfm``) wherever a model name is taken.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from recsys_core.data.dataset import Dataset
from recsys_core.data.split import Split
from recsys_core.models import REGISTRY, rankers
from recsys_core.models.base import Recommender
from recsys_core.serving.recommend import Answer, Request, recommend, resolve_request
from recsys_core.serving.retriever import ItemIndex, Retriever
from recsys_core.store.artifacts import load_artifact
from recsys_core.tensors import mask_history, pad_histories, rank_of_targets, users_per_batch

DEFAULT_CANDIDATES = 200
MAX_CANDIDATES = 10_000  # a ranker scores every candidate per request: more is no longer a second stage
SEPARATOR = "+"


class PipelineError(ValueError):
    """A pipeline name or combination that cannot work; the message says why."""


def split_name(name: str) -> tuple[str, str | None]:
    """``"two_tower+deepfm"`` -> ``("two_tower", "deepfm")``; a plain model name has no ranker."""
    if SEPARATOR not in name:
        return name, None
    retriever, _, ranker = name.partition(SEPARATOR)
    for part in (retriever, ranker):
        if part not in REGISTRY:
            raise PipelineError(f"unknown model {part!r} in {name!r}; registered: {', '.join(REGISTRY)}")
    second_is_ranker = REGISTRY[ranker].is_ranker
    if REGISTRY[retriever].is_ranker:
        example = f"two_tower+{ranker if second_is_ranker else retriever}"  # a valid pipeline, whichever was wrong
        raise PipelineError(f"{retriever} is a ranker; a pipeline starts with a retriever, e.g. {example}")
    if not second_is_ranker:
        raise PipelineError(f"{ranker} is not a ranker; the second stage must be one of: {', '.join(rankers())}")
    return retriever, ranker


def check_candidates(n_candidates: int, k: int | None = None, label: str = "the number of candidates") -> None:
    """A pipeline's number of candidates: 1 to MAX_CANDIDATES; with ``k`` given (the command
    line's default k), at least k. A request's own larger k gets every candidate and a note."""
    if not 1 <= n_candidates <= MAX_CANDIDATES:
        raise PipelineError(f"{label} must be from 1 to {MAX_CANDIDATES:,}, not {n_candidates}")
    if k is not None and k > n_candidates:
        raise PipelineError(f"k={k} is more than the {n_candidates} candidates the ranker orders; ask for at "
                            f"least {k} candidates")  # fmt: skip


BLEND_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def retrieval_prior(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """-log(1 + r) for retrieval ranks r = 0..n-1: what the retriever's order says about a candidate."""
    return -torch.log1p(torch.arange(n, dtype=torch.float32, device=device))


def blend_for(retriever: Recommender, ranker: Recommender) -> float:
    """The weight of the retriever's order in the final score, tuned on validation for the
    retriever the ranker was trained with (0, the ranker alone, for any other retriever)."""
    if not ranker.is_ranker or ranker.config.retriever() != retriever.name:
        return 0.0
    return float(ranker.retriever_blend)


@torch.no_grad()
def rerank(
    ranker: Recommender, users: torch.Tensor, histories: torch.Tensor, candidates: torch.Tensor, blend: float = 0.0
):
    """Candidates (B, N), in retrieval order, reordered by the ranker: (items, scores), padding last.

    With ``blend`` > 0 the score is the ranker's logit plus ``blend`` times the retrieval prior, a
    one-parameter stacking of the two stages (tuned on validation, see :func:`recsys_core.protocols.funnel.tune_blend`).
    """
    return order_by(candidates, ranker.score_candidates(users, histories, candidates), blend)


def order_by(candidates: torch.Tensor, scores: torch.Tensor, blend: float = 0.0):
    """Candidates (B, N) sorted by their ranker scores plus ``blend`` times the retrieval prior:
    (items, scores); ties keep the retrieval order."""
    if blend:
        scores = scores + blend * retrieval_prior(candidates.shape[1], scores.device)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    return candidates.gather(1, order), scores.gather(1, order)


# --------------------------------------------------------------------------- one request


@dataclass
class PipelineAnswer:
    answer: Answer  # the final top K, in the JSON-lines contract (model = "retriever+ranker")
    candidates: list[str]  # the retriever's N candidates, best first
    retriever_items: list[str]  # the retriever's own top K, to compare with the final list
    latency_ms: dict[str, float] = field(default_factory=dict)  # retrieve, rank, total
    ranked: list[str] = field(default_factory=list)  # every candidate in the final order


@torch.no_grad()
def recommend_pipeline(
    retriever: Recommender,
    ranker: Recommender | None,
    dataset: Dataset,
    split: Split,
    request: Request,
    n_candidates: int = DEFAULT_CANDIDATES,
    index: ItemIndex | None = None,
    blend: float | None = None,
) -> PipelineAnswer:
    """Top K for one request through both stages, with each stage's wall time; ``blend`` defaults
    to the one tuned for this retriever and ranker (:func:`blend_for`). Without a ranker the
    candidates keep the retriever's order (scored -log(1 + rank)): the retriever alone, cut at N."""
    check_candidates(n_candidates)
    started = time.perf_counter()
    name = retriever.name if ranker is None else f"{retriever.name}{SEPARATOR}{ranker.name}"
    resolved = resolve_request(retriever, dataset, split, request)
    if not resolved.history:
        # Nothing personal to retrieve from: the retriever's own answer is the popularity fallback.
        answer = recommend(retriever, dataset, split, request)
        answer.model = name
        total = (time.perf_counter() - started) * 1000
        return PipelineAnswer(answer, answer.items, answer.items, {"retrieve": total, "rank": 0.0, "total": total},
                              answer.items)  # fmt: skip
    users, histories, excluded = resolved.tensors(retriever.device)
    retrieved = Retriever(retriever, index).top_n(users, histories, n_candidates, excluded)
    candidates = retrieved.items[:, retrieved.items[0] > 0]  # a catalogue smaller than N leaves padding
    retrieve_done = time.perf_counter()
    if ranker is None or candidates.shape[1] == 0:
        ranked, scores = candidates, retrieval_prior(candidates.shape[1], candidates.device)[None, :]
    else:
        blend = blend_for(retriever, ranker) if blend is None else blend
        device = ranker.device
        ranked, scores = rerank(ranker, users.to(device), histories.to(device), candidates.to(device), blend)
    done = time.perf_counter()
    k = min(request.k, ranked.shape[1])
    ids = dataset.item_ids
    answer = Answer(
        user_id=request.user_id,
        items=[str(ids[i]) for i in ranked[0, :k].tolist()],
        scores=[round(float(v), 6) for v in scores[0, :k].tolist()],
        model=name,
        fallback=None if resolved.user or retriever.reads_history else retriever.cold_start_fallback,
        notes=resolved.notes + candidate_notes(candidates.shape[1], request.k),
        ignored=resolved.ignored,
        retrieval=retrieved.source,
    )
    latency = {"retrieve": (retrieve_done - started) * 1000, "rank": (done - retrieve_done) * 1000,
               "total": (done - started) * 1000}  # fmt: skip
    items = [str(ids[i]) for i in candidates[0].tolist()]
    return PipelineAnswer(answer, items, items[:k], latency, [str(ids[i]) for i in ranked[0].tolist()])


def candidate_notes(n_found: int, k: int) -> list[str]:
    """What a request is told when the pool is empty or smaller than its k."""
    if n_found == 0:
        return ["no candidates: every item is in the history or excluded, so there is nothing to rank"]
    if k > n_found:
        return [f"k={k}, but the pipeline ranks {n_found} candidates: all of them returned"]
    return []


@dataclass
class PipelineTrace:
    """One known user's request through the pipeline, for looking inside it: latency per stage
    (median of several runs), how much of the exact candidate set an ANN index found, and where
    the user's held-out test item sits at each stage (1-based; None when it dropped out)."""

    result: PipelineAnswer  # the last run's answer (final list, candidates, latency)
    latency_ms: dict[str, list[float]]  # every run's retrieve, rank and total times
    ann_recall: float | None  # share of the exact top N (inner product) the index returns; None without one
    exact_retrieve_ms: float | None  # exact retrieval's median time, to compare with the index's
    held_out: int  # the user's held-out test item (internal id; 0 when the user has none)
    catalogue_rank: int | None  # its rank in the retriever's exact ranking of the whole catalogue
    candidate_rank: int | None  # its position among the N candidates
    final_rank: int | None  # its position after ranking


@torch.no_grad()
def trace_request(
    retriever: Recommender,
    ranker: Recommender | None,
    dataset: Dataset,
    split: Split,
    user_id: str,
    n_candidates: int = DEFAULT_CANDIDATES,
    index: ItemIndex | None = None,
    k: int = 10,
    repeats: int = 9,
) -> PipelineTrace:
    """Run a known user's request ``repeats`` times (live latency) and trace the held-out item.

    The request reads the user's training and validation items, exactly as the test stage of the
    protocol does, so the held-out item is one the pipeline has never been shown for this user.
    Without a ranker the "pipeline" is the retriever alone, cut at N.
    """
    request = Request(user_id, k=k)
    runs = [recommend_pipeline(retriever, ranker, dataset, split, request, n_candidates, index) for _ in range(repeats)]
    result = runs[-1]
    latency = {stage: [run.latency_ms[stage] for run in runs] for stage in ("retrieve", "rank", "total")}
    resolved = resolve_request(retriever, dataset, split, request)
    user = dataset.user_index(user_id)
    held_out = int(split.test_item[user]) if user else 0
    trace = PipelineTrace(result, latency, None, None, held_out, None, None, None)
    if not resolved.history:  # the popularity fallback answered: no retrieval to look into
        return trace
    users, histories, excluded = resolved.tensors(retriever.device)
    if index is not None:
        exact = Retriever(retriever)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            exact.top_n(users, histories, n_candidates, excluded)
            times.append((time.perf_counter() - started) * 1000)
        trace.exact_retrieve_ms = float(np.median(times))
        trace.ann_recall = Retriever(retriever, index).index_recall(users, histories, n_candidates)
    if held_out:
        scores = mask_history(retriever.score_all(users, histories).float(), excluded)
        trace.catalogue_rank = int(rank_of_targets(scores, torch.tensor([held_out], device=users.device))[0]) + 1
        external = str(dataset.item_ids[held_out])
        if external in result.candidates:
            trace.candidate_rank = result.candidates.index(external) + 1
            trace.final_rank = result.ranked.index(external) + 1
    return trace


# --------------------------------------------------------------------------- evaluation


def candidate_lists(
    retriever: Recommender, split: Split, stage: str, n: int = DEFAULT_CANDIDATES, index: ItemIndex | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(users, candidates (U, n)) for every user evaluated at ``stage``, from that stage's input."""
    users = split.evaluated_users(stage)
    return users, _retrieve_for(retriever, users, split.input_sequences(stage), n, index)


def candidate_pool(retriever: Recommender, split: Split, n: int = DEFAULT_CANDIDATES) -> np.ndarray:
    """(n_users + 1, n): each user's top-n retriever candidates given their training items (the
    validation stage's input), for a ranker's hard negatives and its validation; 0 where none."""
    users = np.arange(1, split.n_users + 1)
    found = _retrieve_for(retriever, users, split.input_sequences("valid"), n)
    return np.concatenate([np.zeros((1, found.shape[1]), dtype=np.int64), found])


def _retrieve_for(
    retriever: Recommender, users: np.ndarray, inputs: list[np.ndarray], n: int, index: ItemIndex | None = None
) -> np.ndarray:
    device, source = retriever.device, Retriever(retriever, index)
    found = [np.zeros((0, min(n, retriever.n_items)), dtype=np.int64)]
    step = users_per_batch(retriever.n_items, 256)  # scores of the whole catalogue per user, within bounds
    for start in range(0, len(users), step):
        batch = users[start : start + step]
        histories = pad_histories([inputs[u] for u in batch], device)
        found.append(source.top_n(torch.from_numpy(batch).to(device), histories, n).items.cpu().numpy())
    return np.concatenate(found)


def rerank_lists(
    ranker: Recommender,
    split: Split,
    stage: str,
    users: np.ndarray,
    lists: np.ndarray,
    blend: float = 0.0,
) -> np.ndarray:
    """Every user's candidate list reordered by the ranker, reading the stage's input history."""
    scores = candidate_scores(ranker, split, stage, users, lists)
    return order_by(torch.from_numpy(lists), scores, blend)[0].numpy()


@torch.no_grad()
def candidate_scores(
    ranker: Recommender, split: Split, stage: str, users: np.ndarray, lists: np.ndarray, batch_size: int = 256
) -> torch.Tensor:
    """(len(users), N) the ranker's scores of every user's candidates (on the CPU), reading the
    stage's input history; padding (0) scores -inf."""
    inputs = split.input_sequences(stage)
    device = ranker.device
    scores = torch.empty(lists.shape, dtype=torch.float32)
    ranker.eval()
    for start in range(0, len(users), batch_size):
        batch = slice(start, start + batch_size)
        histories = pad_histories([inputs[u] for u in users[batch]], device)
        candidates = torch.from_numpy(lists[batch]).to(device)
        scores[batch] = ranker.score_candidates(torch.from_numpy(users[batch]).to(device), histories, candidates).cpu()
    return scores


def load_pipeline(dataset: Dataset, name: str) -> tuple[Recommender, Recommender | None]:
    """The trained retriever and ranker of ``RETRIEVER+RANKER`` (ArtifactError when one is missing)."""
    retriever_name, ranker_name = split_name(name)
    retriever = load_artifact(dataset, retriever_name).model
    return retriever, (load_artifact(dataset, ranker_name).model if ranker_name else None)


