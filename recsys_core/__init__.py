"""recsys_core: the library behind DeepRec Lab. Layers, bottom first (imports only point down):
``data`` -> ``models`` -> ``metrics``, ``tensors``, ``results`` -> ``store`` -> ``serving`` ->
``protocols`` -> ``training`` -> the command line (``__main__``) and the app. One entry point per
operation:

- ``load_dataset(name_or_csv)`` and ``temporal_leave_last_out(dataset)``: data and the protocol;
- ``train_models(dataset, models)``: train, evaluate and store;
- ``evaluate_models(dataset)``: fresh test metrics of stored models; ``leaderboard(dataset)``: stored ones;
- ``load_artifact(dataset, model)`` then ``recommend(model, dataset, split, Request(...))``: serving;
- ``load_or_build_index(artifact, IndexParams("hnsw"))``: a FAISS index over an inner-product model's
  item vectors; ``Retriever(model, index)`` answers top-N through it with exclusions, and
  ``recommend(..., index=...)`` serves through it.
- ``session_attention(model, dataset, history)``: what sasrec and bert4rec attend to in a session.
- ``compare_paired(per_user_a, per_user_b, metric)`` and ``simulate_ab(control, treatment, ABDesign())``:
  two stored models compared on the same users, and a simulated A/B test between them.

Nothing in this package imports streamlit.
"""

from recsys_core.data import load_dataset, temporal_leave_last_out
from recsys_core.metrics import paired_test
from recsys_core.models import REGISTRY
from recsys_core.protocols.abtest import ABDesign, compare_paired, simulate_ab
from recsys_core.protocols.topk import evaluate_model, evaluate_models
from recsys_core.serving.recommend import Request, parse_request, recommend, session_attention
from recsys_core.serving.retriever import IndexParams, Retriever, load_or_build_index
from recsys_core.store.artifacts import leaderboard, load_artifact
from recsys_core.training.schedule import train_models

__all__ = [
    "REGISTRY",
    "ABDesign",
    "IndexParams",
    "Request",
    "Retriever",
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
