"""The model registry: adding a model is one file in this package and one line here."""

from __future__ import annotations

from recsys_core.data.features import SideFeatures
from recsys_core.models.base import Recommender
from recsys_core.models.bert4rec import BERT4Rec
from recsys_core.models.bpr import BPR
from recsys_core.models.cdae import CDAE
from recsys_core.models.dcn import DCN
from recsys_core.models.deepfm import DeepFM
from recsys_core.models.dlrm import DLRM
from recsys_core.models.ease import EASE
from recsys_core.models.ffm import FFM
from recsys_core.models.fm import FM
from recsys_core.models.gmf import GMF
from recsys_core.models.gru4rec import GRU4Rec
from recsys_core.models.itemknn import ItemKNN
from recsys_core.models.lightgcn import LightGCN
from recsys_core.models.mlp import MLP
from recsys_core.models.multvae import MultVAE
from recsys_core.models.neumf import NeuMF
from recsys_core.models.pop import Pop
from recsys_core.models.sasrec import SASRec
from recsys_core.models.two_tower import TwoTower
from recsys_core.models.wide_deep import WideDeep
from recsys_core.models.xdeepfm import XDeepFM

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


def build_model(
    name: str,
    n_users: int,
    n_items: int,
    config: object | None = None,
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
