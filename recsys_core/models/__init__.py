"""The model registry: adding a model is one file in a family folder (``general/``, ``sequential/``,
``rankers/``) and one line here. What a model can do is declared on its class (``models.base``);
the questions below read those declarations, so no caller compares family names."""

from __future__ import annotations

from collections.abc import Iterable

from recsys_core.data.features import SideFeatures
from recsys_core.data.split import Split
from recsys_core.models.base import ModelConfig, Recommender
from recsys_core.models.general.bpr import BPR
from recsys_core.models.general.cdae import CDAE
from recsys_core.models.general.ease import EASE
from recsys_core.models.general.gmf import GMF
from recsys_core.models.general.itemknn import ItemKNN
from recsys_core.models.general.lightgcn import LightGCN
from recsys_core.models.general.mlp import MLP
from recsys_core.models.general.multvae import MultVAE
from recsys_core.models.general.neumf import NeuMF
from recsys_core.models.general.pop import Pop
from recsys_core.models.general.two_tower import TwoTower
from recsys_core.models.rankers.dcn import DCN
from recsys_core.models.rankers.deepfm import DeepFM
from recsys_core.models.rankers.dlrm import DLRM
from recsys_core.models.rankers.ffm import FFM
from recsys_core.models.rankers.fm import FM
from recsys_core.models.rankers.wide_deep import WideDeep
from recsys_core.models.rankers.xdeepfm import XDeepFM
from recsys_core.models.sequential.bert4rec import BERT4Rec
from recsys_core.models.sequential.gru4rec import GRU4Rec
from recsys_core.models.sequential.sasrec import SASRec

REGISTRY: dict[str, type[Recommender]] = {
    "pop": Pop,
    "itemknn": ItemKNN,
    "ease": EASE,
    "bpr": BPR,
    "gmf": GMF,
    "mlp": MLP,
    "neumf": NeuMF,
    "lightgcn": LightGCN,
    "cdae": CDAE,
    "multvae": MultVAE,
    "two_tower": TwoTower,
    "gru4rec": GRU4Rec,
    "sasrec": SASRec,
    "bert4rec": BERT4Rec,
    "fm": FM,
    "ffm": FFM,
    "deepfm": DeepFM,
    "wide_deep": WideDeep,
    "dcn": DCN,
    "xdeepfm": XDeepFM,
    "dlrm": DLRM,
}

# What `--models all` and the home page train on a fresh machine.
DEFAULT_ZOO = tuple(REGISTRY)


def rankers() -> list[str]:
    """The feature-interaction rankers: a pipeline's second stage."""
    return [name for name, cls in REGISTRY.items() if cls.is_ranker]


def retrievers() -> list[str]:
    """Every model that scores the whole catalogue: a pipeline's first stage, a ranker's source of candidates."""
    return [name for name, cls in REGISTRY.items() if not cls.is_ranker]


def inner_product_models() -> list[str]:
    """The models whose scores are inner products of user and item vectors (they can have a FAISS index)."""
    return [name for name, cls in REGISTRY.items() if cls.inner_product]


def attention_models() -> list[str]:
    """The models that can show what they attend to in a history."""
    return [name for name, cls in REGISTRY.items() if cls.has_attention]


def history_readers(trained: Iterable[str]) -> list[str]:
    """The models among ``trained`` that answer from a history (a session), those trained to predict
    the next item first: they are what a session is for; the others (EASE, ItemKNN, the autoencoders,
    the two-tower) follow in the order given."""
    readers = [name for name in trained if name in REGISTRY and REGISTRY[name].reads_history]
    return sorted(readers, key=lambda name: not REGISTRY[name].predicts_next)


def by_family() -> dict[str, list[str]]:
    """Registry names grouped by family label, in registry order."""
    families: dict[str, list[str]] = {}
    for name, cls in REGISTRY.items():
        families.setdefault(cls.family, []).append(name)
    return families


def quick_settings(name: str) -> dict[str, object]:
    """What the quick profile changes for a model (its config class's ``QUICK``): fewer epochs, and
    the faster settings that still land near the full profile (docs/benchmarks.md measures both)."""
    return dict(REGISTRY[name].config_class.QUICK)


def data_settings(name: str, split: Split) -> dict[str, object]:
    """The settings of ``name`` that its config derives from the data (``ModelConfig.data_defaults``)."""
    return REGISTRY[name].config_class.data_defaults(split) if name in REGISTRY else {}


def build_model(
    name: str,
    n_users: int,
    n_items: int,
    config: ModelConfig | None = None,
    features: SideFeatures | None = None,
    **overrides: object,
) -> Recommender:
    """A fresh, untrained model by registry name, from its config (defaults plus overrides).

    ``features`` (see ``recsys_core.data.features.side_features``) is required by the models
    that read side features and ignored by the others.
    """
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(REGISTRY)}")
    cls = REGISTRY[name]
    if config is None:
        config = cls.config_class(**overrides)
    if not cls.needs_features:
        return cls(config, n_users, n_items)
    if features is None:
        raise ValueError(f"{name} reads side features: pass features=side_features(dataset, ...)")
    return cls(config, n_users, n_items, features)
