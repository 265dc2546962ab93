"""Embedding maps and nearest neighbours: planted groups stay together, maps are fitted once per
artifact and read back without pickle, and models without vectors say so."""

import numpy as np
import pytest

from recsys_core.models import REGISTRY
from recsys_core.serving.embeddings import (
    NoVectors,
    draw_maps,
    fit_layout,
    has_vectors,
    load_or_fit_map,
    map_path,
    map_points,
    map_vectors,
    nearest_items,
)
from recsys_core.store.artifacts import load_artifact


@pytest.fixture
def store(trained_synthetic_store, monkeypatch, tmp_path):
    """A private copy of the trained store, so maps written here never leak into other tests."""
    import shutil

    root = tmp_path / "artifacts"
    shutil.copytree(trained_synthetic_store, root, ignore=shutil.ignore_patterns("umap-*"))  # no maps yet
    monkeypatch.setenv("DEEPREC_ARTIFACTS_DIR", str(root))
    return root


def groups(dataset, ids) -> np.ndarray:
    return dataset.items.loc[ids, "genres"].to_numpy()  # the synthetic genre is the planted group


# Share of each item's 5 nearest neighbours from its own planted group (chance: 1/6). SASRec learns
# what comes next, and its inner product also weighs vector length, so it is held to 3x chance.
SAME_GROUP = {"bpr": 0.9, "ease": 0.9, "fm": 0.8, "sasrec": 0.45}


def test_nearest_items_share_the_planted_group(store, synthetic):
    for name, bar in SAME_GROUP.items():
        model = load_artifact(synthetic, name).model
        same = []
        for item in range(1, synthetic.n_items + 1, 7):
            ids, similarity = nearest_items(model, item, 5)
            assert item not in ids and 0 not in ids and len(ids) == 5
            assert similarity == sorted(similarity, reverse=True)
            same.append(np.mean(groups(synthetic, ids) == groups(synthetic, [item])[0]))
        assert np.mean(same) > bar, (name, np.mean(same))


def test_a_map_keeps_planted_groups_together_and_is_stored_once(store, synthetic, synthetic_split):
    artifact = load_artifact(synthetic, "bpr")
    first = load_or_fit_map(artifact, synthetic_split, "items")
    assert not first.from_disk and first.coords.shape == (synthetic.n_items, 2)
    assert np.isfinite(first.coords).all()
    path = map_path(artifact, "items")
    assert path.is_file() and artifact.version in path.name
    again = load_or_fit_map(artifact, synthetic_split, "items")
    assert again.from_disk and np.array_equal(again.coords, first.coords)
    # Planted answer: most of each item's 5 nearest points on the map are from its own group.
    labels = groups(synthetic, first.ids)
    distance = np.linalg.norm(first.coords[:, None] - first.coords[None], axis=-1)
    np.fill_diagonal(distance, np.inf)
    nearest = np.argsort(distance, axis=1)[:, :5]
    assert (labels[nearest] == labels[:, None]).mean() > 0.8


def test_a_damaged_map_file_is_fitted_again(store, synthetic, synthetic_split):
    artifact = load_artifact(synthetic, "sasrec")
    path = map_path(artifact, "items")
    path.write_bytes(b"not an npz file")
    drawn = load_or_fit_map(artifact, synthetic_split, "items")
    assert not drawn.from_disk and drawn.coords.shape == (synthetic.n_items, 2)
    assert load_or_fit_map(artifact, synthetic_split, "items").from_disk


def test_user_maps_and_what_they_are_coloured_by(store, synthetic, synthetic_split):
    drawn = load_or_fit_map(load_artifact(synthetic, "sasrec"), synthetic_split, "users")
    points = map_points(synthetic, synthetic_split, drawn)
    assert len(points) == synthetic.n_users
    assert set(points["genre"]) <= set(synthetic.genre_names)
    assert (points["activity"] > 0).all()
    # Planted answer: a synthetic user watches one group, so that is their favourite genre.
    cluster = synthetic.users.loc[drawn.ids, "cluster"].to_numpy()
    assert np.mean(points["genre"].to_numpy() == np.array([f"Group{c}" for c in cluster])) > 0.9
    items = map_points(synthetic, synthetic_split, load_or_fit_map(load_artifact(synthetic, "bpr"), synthetic_split))
    assert list(items.columns) == ["id", "x", "y", "label", "genre", "year", "popularity"]
    assert items["label"].tolist() == synthetic.titles(items["id"].tolist())


def test_models_without_vectors_say_so(store, synthetic, synthetic_split):
    assert not has_vectors(REGISTRY["pop"], "items") and not has_vectors(REGISTRY["ease"], "users")
    assert has_vectors(REGISTRY["ease"], "items") and has_vectors(REGISTRY["fm"], "users")
    pop = load_artifact(synthetic, "pop")
    with pytest.raises(NoVectors, match="pop learns no item vectors"):
        map_vectors(pop.model, synthetic_split, "items")
    with pytest.raises(NoVectors):
        nearest_items(pop.model, 1)
    outcome = draw_maps(load_artifact(synthetic, "ease"), synthetic_split)
    assert "points" in outcome["items"] and "no user vectors" in outcome["users"].replace("learns no", "no")
    with pytest.raises(NoVectors, match="at least"):
        fit_layout(np.ones((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="outside the catalogue"):
        nearest_items(load_artifact(synthetic, "bpr").model, synthetic.n_items + 1)


def test_training_with_maps_stores_them_beside_the_artifact(isolated_store, synthetic, synthetic_split):
    from recsys_core.training.schedule import train_models

    reports = train_models("synthetic", ["bpr"], device="cpu", quick=True, maps=True)
    assert reports[0].ok and "items map: 120 points" in reports[0].message
    artifact = load_artifact(synthetic, "bpr")
    assert map_path(artifact, "items").is_file() and map_path(artifact, "users").is_file()
    assert load_or_fit_map(artifact, synthetic_split, "users").from_disk
