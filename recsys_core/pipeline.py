"""The two-stage pipeline: a retriever proposes N candidates, a ranker orders them, top K is returned.

Retrieval is cheap per item and recall-oriented (any model that scores the whole catalogue, exact
or through a FAISS index); ranking is expensive per item and precision-oriented (a feature-
interaction model that only ever sees the N candidates). The ranker's pool is the retriever's
candidates and nothing else, the history and the request's exclusions are never candidates, and
each stage's latency is measured. Evaluation follows the one protocol (SPEC section 3): the
funnel's candidate recall@N and the final list's HR/NDCG@10 against the held-out item.

Pipelines are named ``RETRIEVER+RANKER`` (``two_tower+deepfm``) wherever a model name is taken.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from recsys_core.artifacts import ArtifactError, load_artifact
from recsys_core.data import load_dataset, temporal_leave_last_out
from recsys_core.data.dataset import Dataset
from recsys_core.data.features import item_features
from recsys_core.data.split import Split
from recsys_core.evaluate import Evaluation, evaluate_lists, mask_history, pad_histories, rank_of_targets, top_k
from recsys_core.models import REGISTRY
from recsys_core.models.base import Recommender
from recsys_core.retrieval import ItemIndex, check_index, recall_at_k
from recsys_core.serving import Answer, Request, recommend, resolve_request

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
    second_is_ranker = hasattr(REGISTRY[ranker], "score_candidates")
    if REGISTRY[retriever].family == "rankers":
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


def rankers() -> list[str]:
    return [name for name, cls in REGISTRY.items() if cls.family == "rankers"]


def retrievers() -> list[str]:
    return [name for name, cls in REGISTRY.items() if cls.family != "rankers"]


@torch.no_grad()
def retrieve(
    retriever: Recommender,
    users: torch.Tensor,
    histories: torch.Tensor,
    n: int,
    excluded: torch.Tensor | None = None,
    index: ItemIndex | None = None,
) -> torch.Tensor:
    """(B, n) candidate items per row, best first, none of them in ``excluded`` (default: the
    history) and never padding; rows with fewer available items end in 0s."""
    return retrieve_with_source(retriever, users, histories, n, excluded, index)[0]


@torch.no_grad()
def retrieve_with_source(
    retriever: Recommender,
    users: torch.Tensor,
    histories: torch.Tensor,
    n: int,
    excluded: torch.Tensor | None = None,
    index: ItemIndex | None = None,
) -> tuple[torch.Tensor, str]:
    """:func:`retrieve`, and what answered: the index's description, or "exact" (also when the
    index returned too few items and exact scoring stood in, which the text then says)."""
    excluded = histories if excluded is None else excluded
    n = min(n, retriever.n_items)
    source = "exact"
    if index is not None:
        check_index(retriever, index)
        found = _search_excluding(retriever, index, users, histories, excluded, n)
        if found is not None:
            return found, index.params.describe()
        source = f"exact ({index.params.describe()} returned fewer than {n} items)"
    scores = mask_history(retriever.score_all(users, histories).float(), excluded)
    items, values = top_k(scores, n)
    return items.masked_fill(~torch.isfinite(values), 0), source


def _search_excluding(retriever, index, users, histories, excluded, n) -> torch.Tensor | None:
    """The index's top n per row without excluded items; None when it returns too few for any row."""
    ids, _ = index.search(retriever.query_vectors(users, histories), n + excluded.shape[1])
    rows = []
    for found, banned in zip(ids, excluded.cpu().numpy(), strict=True):
        banned = set(banned.tolist()) | {0}
        kept = [int(i) for i in found if i > 0 and int(i) not in banned][:n]
        if len(kept) < min(n, retriever.n_items - len(banned - {0})):
            return None  # IVF probing near-empty lists, say: the exact path answers instead
        rows.append(kept + [0] * (n - len(kept)))
    return torch.tensor(rows, dtype=torch.long, device=users.device)


BLEND_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def retrieval_prior(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """-log(1 + r) for retrieval ranks r = 0..n-1: what the retriever's order says about a candidate."""
    return -torch.log1p(torch.arange(n, dtype=torch.float32, device=device))


def blend_for(retriever: Recommender, ranker: Recommender) -> float:
    """The weight of the retriever's order in the final score, tuned on validation for the
    retriever the ranker was trained with (0, the ranker alone, for any other retriever)."""
    if getattr(ranker.config, "candidates_from", None) != retriever.name or not hasattr(ranker, "retriever_blend"):
        return 0.0
    return float(ranker.retriever_blend)


@torch.no_grad()
def rerank(
    ranker: Recommender, users: torch.Tensor, histories: torch.Tensor, candidates: torch.Tensor, blend: float = 0.0
):
    """Candidates (B, N), in retrieval order, reordered by the ranker: (items, scores), padding last.

    With ``blend`` > 0 the score is the ranker's logit plus ``blend`` times the retrieval prior, a
    one-parameter stacking of the two stages (tuned on validation, see :func:`tune_blend`).
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
        latency = {"retrieve": total, "rank": 0.0, "total": total}
        return PipelineAnswer(answer, answer.items, answer.items, latency, answer.items)
    device = retriever.device
    users = torch.tensor([resolved.user], device=device)
    histories = pad_histories([np.array(resolved.history)], device)
    excluded = pad_histories([np.array(resolved.excluded, dtype=np.int64)], device)
    candidates, source = retrieve_with_source(retriever, users, histories, n_candidates, excluded, index)
    retrieved = time.perf_counter()
    candidates = candidates[:, candidates[0] > 0]  # a catalogue smaller than N leaves padding
    notes = list(resolved.notes)
    if candidates.shape[1] == 0:
        notes.append("no candidates: every item is in the history or excluded, so there is nothing to rank")
    elif request.k > candidates.shape[1]:
        notes.append(f"k={request.k}, but the pipeline ranks {candidates.shape[1]} candidates: all of them returned")
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
        notes=notes,
        ignored=resolved.ignored,
        retrieval=source,
    )
    latency = {"retrieve": (retrieved - started) * 1000, "rank": (done - retrieved) * 1000,
               "total": (done - started) * 1000}  # fmt: skip
    items = [str(ids[i]) for i in candidates[0].tolist()]
    return PipelineAnswer(answer, items, items[:k], latency, [str(ids[i]) for i in ranked[0].tolist()])


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
    ann_recall = exact_ms = catalogue_rank = candidate_rank = final_rank = None
    if not resolved.history:  # the popularity fallback answered: no retrieval to look into
        return PipelineTrace(result, latency, None, None, held_out, None, None, None)
    device = retriever.device
    users = torch.tensor([resolved.user], device=device)
    histories = pad_histories([np.array(resolved.history)], device)
    excluded = pad_histories([np.array(resolved.excluded, dtype=np.int64)], device)
    if index is not None:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            retrieve(retriever, users, histories, n_candidates, excluded)
            times.append((time.perf_counter() - started) * 1000)
        exact_ms = float(np.median(times))
        # ANN recall as indexes are judged: the index's top N against exact inner-product search
        # over the same vectors, before any filtering (so an index that returns too few shows it).
        query = retriever.query_vectors(users, histories)
        n = min(n_candidates, retriever.n_items)
        approx, _ = index.search(query, n)
        scores = (query @ retriever.item_vectors().T).float()
        scores[:, 0] = -torch.inf
        ann_recall = recall_at_k(np.asarray(approx), torch.topk(scores, n).indices.cpu().numpy())
    if held_out:
        scores = mask_history(retriever.score_all(users, histories).float(), excluded)
        catalogue_rank = int(rank_of_targets(scores, torch.tensor([held_out], device=device))[0]) + 1
        external = str(dataset.item_ids[held_out])
        if external in result.candidates:
            candidate_rank = result.candidates.index(external) + 1
            final_rank = result.ranked.index(external) + 1
    return PipelineTrace(result, latency, ann_recall, exact_ms, held_out, catalogue_rank, candidate_rank, final_rank)


# --------------------------------------------------------------------------- evaluation


@dataclass
class PipelineEvaluation:
    """The funnel on one stage of the split: what retrieval found, and what ranking made of it."""

    stage: str
    n_candidates: int
    candidate_recall: float  # share of held-out items among the N candidates (recall@N)
    retriever: Evaluation  # the retriever's own list (the candidates in its order)
    final: Evaluation  # the ranker's order of the same candidates

    def summary(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "n_candidates": self.n_candidates,
            f"recall@{self.n_candidates}": self.candidate_recall,
            "retriever": self.retriever.summary(),
            "final": self.final.summary(),
        }


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
    device = retriever.device
    found = [np.zeros((0, min(n, retriever.n_items)), dtype=np.int64)]
    for start in range(0, len(users), 256):
        batch = users[start : start + 256]
        histories = pad_histories([inputs[u] for u in batch], device)
        found.append(retrieve(retriever, torch.from_numpy(batch).to(device), histories, n, index=index).cpu().numpy())
    return np.concatenate(found)


def evaluate_pipeline(
    retriever: Recommender,
    ranker: Recommender | None,
    split: Split,
    stage: str = "test",
    n_candidates: int = DEFAULT_CANDIDATES,
    genres: np.ndarray | None = None,
    index: ItemIndex | None = None,
    candidates: tuple[np.ndarray, np.ndarray] | None = None,
    blend: float | None = None,
) -> PipelineEvaluation:
    """The funnel metrics of retriever -> ranker on ``stage``; pass ``candidates`` (from
    :func:`candidate_lists`) to reuse one retrieval for several rankers, and ``blend`` to override
    the tuned weight of the retriever's order (0: the ranker alone)."""
    if candidates is None:
        candidates = candidate_lists(retriever, split, stage, n_candidates, index)
    users, lists = candidates
    targets = split.targets(stage)[users]
    recall = float((lists == targets[:, None]).any(axis=1).mean()) if len(users) else float("nan")
    retrieved = evaluate_lists(split, stage, users, lists, genres)
    final = retrieved
    if ranker is not None:
        blend = blend_for(retriever, ranker) if blend is None else blend
        final = evaluate_lists(split, stage, users, rerank_lists(ranker, split, stage, users, lists, blend), genres)
    return PipelineEvaluation(stage, lists.shape[1], recall, retrieved, final)


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


def tune_blend(
    ranker: Recommender, split: Split, pool: np.ndarray, grid: tuple[float, ...] = BLEND_GRID
) -> tuple[float, dict[float, float]]:
    """The blend with the best validation NDCG@10 over the pool's candidates (ties: the smaller
    blend, so the ranker keeps the most say), and the NDCG@10 of every blend tried. The ranker
    scores the candidates once; only their order changes with the blend."""
    users = split.evaluated_users("valid")
    lists = pool[users]
    scores = candidate_scores(ranker, split, "valid", users, lists)
    tried = {}
    for blend in grid:
        ranked = order_by(torch.from_numpy(lists), scores, blend)[0].numpy()
        tried[blend] = evaluate_lists(split, "valid", users, ranked).ndcg_at_10
    best = max(grid, key=lambda b: (tried[b], -b))
    return best, tried


def load_pipeline(dataset: Dataset, name: str) -> tuple[Recommender, Recommender | None]:
    """The trained retriever and ranker of ``RETRIEVER+RANKER`` (ArtifactError when one is missing)."""
    retriever_name, ranker_name = split_name(name)
    retriever = load_artifact(dataset, retriever_name).model
    return retriever, (load_artifact(dataset, ranker_name).model if ranker_name else None)


def evaluate_pipelines(dataset_name: str, names: list[str], n_candidates: int = DEFAULT_CANDIDATES) -> dict[str, dict]:
    """Fresh test evaluation of ``RETRIEVER+RANKER`` pipelines: ``{name: final summary + recall@N}``;
    a pipeline whose models cannot be loaded gets ``{"error": message}``."""
    dataset = load_dataset(dataset_name)
    split = temporal_leave_last_out(dataset)
    genres = item_features(dataset, split.item_popularity).genres
    results: dict[str, dict] = {}
    for name in names:
        try:
            retriever, ranker = load_pipeline(dataset, name)
        except (ArtifactError, PipelineError) as error:
            results[name] = {"error": str(error)}
            continue
        funnel = evaluate_pipeline(retriever, ranker, split, "test", n_candidates, genres)
        results[name] = {**funnel.final.summary(), f"recall@{funnel.n_candidates}": funnel.candidate_recall}
    return results
