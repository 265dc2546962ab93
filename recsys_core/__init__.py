"""recsys_core: the library behind DeepRec Lab. One entry point per operation:

- ``load_dataset(name_or_csv)`` and ``temporal_leave_last_out(dataset)``: data and the protocol;
- ``train_models(dataset, models)``: train, evaluate and store;
- ``evaluate_models(dataset)``: fresh test metrics of stored models; ``leaderboard(dataset)``: stored ones;
- ``load_artifact(dataset, model)`` then ``recommend(model, dataset, split, Request(...))``: serving;
- ``load_or_build_index(artifact, IndexParams("hnsw"))``: a FAISS index over an inner-product model's
  item vectors, passed to ``recommend(..., index=...)`` for approximate retrieval.
- ``session_attention(model, dataset, history)``: what sasrec and bert4rec attend to in a session.
- ``compare_paired(per_user_a, per_user_b, metric)`` and ``simulate_ab(control, treatment, ABDesign())``:
  two stored models compared on the same users, and a simulated A/B test between them.

Nothing in this package imports streamlit.
"""

from recsys_core.abtest import ABDesign, compare_paired, simulate_ab
from recsys_core.artifacts import leaderboard, load_artifact
from recsys_core.data import load_dataset, temporal_leave_last_out
from recsys_core.evaluate import evaluate_model, evaluate_models, paired_test
from recsys_core.models import REGISTRY
from recsys_core.retrieval import IndexParams, load_or_build_index
from recsys_core.serving import Request, parse_request, recommend, session_attention
from recsys_core.train import train_models

__all__ = [
    "REGISTRY",
    "ABDesign",
    "IndexParams",
    "Request",
    "compare_paired",
    "evaluate_model",
    "evaluate_models",
    "leaderboard",
    "load_artifact",
    "load_dataset",
    "load_or_build_index",
    "paired_test",
    "parse_request",
    "recommend",
    "session_attention",
    "simulate_ab",
    "temporal_leave_last_out",
    "train_models",
]
