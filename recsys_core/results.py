"""What is stored and shown about a trained model, as typed values with one way in and out of JSON.

- :class:`TopKResult`: a model's metrics on one stage of the top-K protocol, means with 95% CIs;
- :class:`FunnelResult`: a two-stage pipeline on that protocol (candidate recall@N, then the
  retriever's own list and the ranker's order of the same candidates);
- :class:`StoredResults`: what a model's ``metrics.json`` holds (test, validation, its funnel);
- :class:`CtrScores`: a ranker on the explicit-label protocol (AUC, LogLoss).

``to_json`` writes the layout the store has always held, so models trained before these types
load unchanged; ``from_json`` checks what the lab reads and says what is missing
(:class:`ResultsDamaged`), which is how the store tells a damaged file from a good one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from recsys_core.metrics import ACCURACY_METRICS, BEYOND_ACCURACY


class ResultsDamaged(ValueError):
    """Stored results that lack what the lab reads; the message says what."""


# What every stored stage must hold: the views' headline numbers and their intervals.
REQUIRED_MEANS = ("NDCG@10", "HR@10", "MRR@10", "NDCG@20")
REQUIRED_INTERVALS = ("NDCG@10", "HR@10")


@dataclass(frozen=True)
class Estimate:
    """A mean over users with its 95% confidence interval (None when none was stored)."""

    mean: float
    low: float | None = None
    high: float | None = None

    @property
    def interval(self) -> tuple[float, float] | None:
        return None if self.low is None or self.high is None else (self.low, self.high)


@dataclass(frozen=True)
class TopKResult:
    """A model's metrics on one stage ("valid" or "test") of the top-K protocol."""

    stage: str
    protocol: str
    users: int
    coverage_at_10: float
    estimates: dict[str, Estimate]  # by metric name as the tables show it: "NDCG@10", "HR@20", ...

    # The headline metrics as fields; every other metric is in ``estimates`` by its name.
    ndcg_at_10 = property(lambda self: self.estimates["NDCG@10"], doc="NDCG@10 over users")
    hr_at_10 = property(lambda self: self.estimates["HR@10"], doc="HR@10 (recall@10 with one held-out item)")
    mrr_at_10 = property(lambda self: self.estimates["MRR@10"], doc="MRR@10 over users")
    ndcg_at_20 = property(lambda self: self.estimates["NDCG@20"], doc="NDCG@20 over users")

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for name, estimate in self.estimates.items():
            out[name] = estimate.mean
            if estimate.interval is not None:
                out[f"{name} CI"] = list(estimate.interval)
        return out | {"coverage@10": self.coverage_at_10, "users": self.users, "stage": self.stage,
                      "protocol": self.protocol}  # fmt: skip

    @classmethod
    def from_json(cls, payload: object, where: str = "test") -> TopKResult:
        _require(isinstance(payload, dict), f"its {where} metrics are not an object")
        for name in REQUIRED_MEANS:
            _require(name in payload, f"its {where} metrics lack {name!r}")
            _require(_is_finite(payload[name]), f"its {where} {name} is not a number")
        for name in REQUIRED_INTERVALS:
            interval = payload.get(f"{name} CI")
            _require(isinstance(interval, list) and len(interval) == 2 and all(_is_number(v) for v in interval),
                     f"its {where} metrics lack the interval {name + ' CI'!r}")  # fmt: skip
        _require(_is_number(payload.get("coverage@10")), f"its {where} metrics lack 'coverage@10'")
        _require(isinstance(payload.get("users"), int), f"its {where} metrics lack the number of users")
        estimates = {}
        for name in (*ACCURACY_METRICS, *BEYOND_ACCURACY):
            if _is_number(payload.get(name)):
                interval = payload.get(f"{name} CI")
                low, high = interval if isinstance(interval, list) and len(interval) == 2 else (None, None)
                estimates[name] = Estimate(float(payload[name]), low, high)
        return cls(str(payload.get("stage", where)), str(payload.get("protocol", "")), payload["users"],
                   float(payload["coverage@10"]), estimates)  # fmt: skip


@dataclass(frozen=True)
class FunnelResult:
    """A retriever's N candidates reordered by a ranker, on one stage of the top-K protocol."""

    stage: str
    n_candidates: int
    candidate_recall: float  # share of held-out items among the N candidates (recall@N)
    retriever: TopKResult  # the retriever's own list (the candidates in its order)
    final: TopKResult  # the ranker's order of the same candidates
    retriever_model: str | None = None  # the retriever's registry name, when stored with a ranker

    @property
    def recall_label(self) -> str:
        return f"recall@{self.n_candidates}"

    @property
    def ndcg_gain(self) -> float:
        """What ranking added to the retriever's own order, in test NDCG@10."""
        return self.final.ndcg_at_10.mean - self.retriever.ndcg_at_10.mean

    def to_json(self) -> dict[str, object]:
        out = {"stage": self.stage, "n_candidates": self.n_candidates, self.recall_label: self.candidate_recall,
               "retriever": self.retriever.to_json(), "final": self.final.to_json()}  # fmt: skip
        return out | ({"retriever_model": self.retriever_model} if self.retriever_model else {})

    @classmethod
    def from_json(cls, payload: object) -> FunnelResult:
        _require(isinstance(payload, dict) and isinstance(payload.get("n_candidates"), int), "its funnel is damaged")
        n = payload["n_candidates"]
        _require(_is_number(payload.get(f"recall@{n}")), "its funnel lacks the candidate recall")
        stages = {name: TopKResult.from_json(payload.get(name), f"funnel {name}") for name in ("retriever", "final")}
        return cls(str(payload.get("stage", "test")), n, float(payload[f"recall@{n}"]), stages["retriever"],
                   stages["final"], payload.get("retriever_model"))  # fmt: skip


@dataclass(frozen=True)
class StoredResults:
    """A trained model's ``metrics.json``: test metrics, validation ones (full profile), and for a
    ranker trained over a retriever, its funnel on test."""

    protocol: str
    test: TopKResult
    valid: TopKResult | None = None
    pipeline: FunnelResult | None = None

    def stage(self, name: str) -> TopKResult | None:
        """The metrics of stage ``name`` ("test" or "valid"), None when not stored."""
        return {"test": self.test, "valid": self.valid}.get(name)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"protocol": self.protocol, "test": self.test.to_json()}
        if self.valid is not None:
            out["valid"] = self.valid.to_json()
        if self.pipeline is not None:
            out["pipeline"] = self.pipeline.to_json()
        return out

    @classmethod
    def from_json(cls, payload: object) -> StoredResults:
        _require(isinstance(payload, dict), "it is not a JSON object")
        _require("test" in payload, "it has no test metrics")
        test = TopKResult.from_json(payload["test"], "test")
        valid = TopKResult.from_json(payload["valid"], "validation") if "valid" in payload else None
        pipeline = FunnelResult.from_json(payload["pipeline"]) if "pipeline" in payload else None
        return cls(str(payload.get("protocol", test.protocol)), test, valid, pipeline)


@dataclass
class CtrScores:
    """A scorer on the explicit-label protocol's test rows; training facts for a trained ranker."""

    auc: float
    log_loss: float | None = None  # only for a model trained on these labels (a count is not a probability)
    seconds: float | None = None
    best_epoch: int | None = None
    valid_auc: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"AUC": self.auc}
        if self.log_loss is not None:
            out["LogLoss"] = self.log_loss
        if self.seconds is None:
            return out
        return out | {"seconds": self.seconds, "best_epoch": self.best_epoch, "valid AUC": self.valid_auc,
                      "notes": self.notes}  # fmt: skip

    @classmethod
    def from_json(cls, payload: dict) -> CtrScores:
        return cls(payload["AUC"], payload.get("LogLoss"), payload.get("seconds"), payload.get("best_epoch"),
                   payload.get("valid AUC"), list(payload.get("notes", [])))  # fmt: skip


def _require(condition: bool, problem: str) -> None:
    if not condition:
        raise ResultsDamaged(problem)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite(value: object) -> bool:
    return _is_number(value) and math.isfinite(value)
