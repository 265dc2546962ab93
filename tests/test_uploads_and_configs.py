"""Bring-your-own data and hyperparameter forms: a bad file changes nothing and names its line; a
good one becomes a dataset by name; forms come from the config dataclasses and validate."""

import json

import pytest

from recsys_core.__main__ import main
from recsys_core.data import DATASETS, CsvError, dataset_names, load_dataset, save_upload
from recsys_core.data.uploads import delete_upload, uploaded_datasets, uploads_dir
from recsys_core.models import REGISTRY
from recsys_core.training.forms import ConfigError, config_fields, parse_overrides

GOOD = b"user_id,item_id,rating,timestamp\n" + b"".join(
    f"u{u},i{(u * 7 + k) % 30},{1 + (u + k) % 5},{1000 + 10 * k}\n".encode() for u in range(20) for k in range(8)
)
ITEMS = b"item_id,title,genres\n" + b"".join(f"i{i},Film {i},Drama|Comedy\n".encode() for i in range(30))


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPREC_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_a_good_upload_becomes_a_dataset_every_view_can_load(data_root):
    stored = save_upload("My-Shop", GOOD, ITEMS, reserved=set(DATASETS))
    assert stored.name == "my-shop" and stored.n_users == 20 and stored.n_items == 30
    assert uploaded_datasets() == ["my-shop"] and dataset_names()[-1] == "my-shop"
    again = load_dataset("my-shop")
    assert again.fingerprint == stored.fingerprint and again.titles([1])[0].startswith("Film ")
    assert not [p for p in uploads_dir().iterdir() if p.name.startswith(".tmp")]
    delete_upload("my-shop")
    assert uploaded_datasets() == []


@pytest.mark.parametrize(
    ("payload", "items", "message"),
    [
        (b"user,item\n1,2\n", None, "line 1 (header) lacks column(s) user_id, item_id"),
        (b"user_id,item_id,rating\n1,2,5\n1,3,five\n", None, "line 3, column 'rating'"),
        (b"user_id,item_id\n1,2\n,3\n", None, "line 3, column 'user_id': empty value"),
        (GOOD, b"item_id,name\n1,x\n", "items.csv"),
    ],
)
def test_a_bad_upload_names_its_line_and_changes_nothing(data_root, payload, items, message):
    save_upload("kept", GOOD)
    before = sorted(p.name for p in uploads_dir().rglob("*"))
    with pytest.raises(CsvError, match=message.replace("(", r"\(").replace(")", r"\)")):
        save_upload("broken", payload, items)
    assert sorted(p.name for p in uploads_dir().rglob("*")) == before
    assert uploaded_datasets() == ["kept"]


def test_names_sizes_and_duplicates_are_checked(data_root, monkeypatch):
    with pytest.raises(CsvError, match="taken by a built-in"):
        save_upload("ml-100k", GOOD, reserved=set(DATASETS))
    with pytest.raises(CsvError, match="lower-case letters"):
        save_upload("../escape", GOOD)
    save_upload("once", GOOD)
    with pytest.raises(CsvError, match="exists already"):
        save_upload("once", GOOD)
    monkeypatch.setenv("DEEPREC_MAX_UPLOAD_MB", "0.001")
    with pytest.raises(CsvError, match="the limit is"):
        save_upload("big", GOOD)
    assert uploaded_datasets() == ["once"]


def test_an_upload_trains_like_movielens(data_root, isolated_store):
    save_upload("shop", GOOD, ITEMS)
    assert main(["train", "--dataset", "shop", "--models", "pop,bpr", "--quick", "--no-maps"]) == 0
    assert (isolated_store / "shop" / "bpr" / "weights.safetensors").is_file()


def test_every_model_has_a_form_and_its_defaults_validate():
    for name in REGISTRY:
        fields = config_fields(name)
        assert parse_overrides(name, {f.name: f.default for f in fields}) == {}  # defaults change nothing
        if REGISTRY[name].trainable:
            assert [f.name for f in fields][:3] == ["epochs", "learning_rate", "batch_size"]
    helps = {f.name: f.help for f in config_fields("fm")}
    assert helps["hard_negatives"].startswith("drawn from the retriever")


def test_form_values_are_coerced_and_checked():
    assert parse_overrides("mlp", {"layers": "64, 32", "epochs": 5.0, "learning_rate": "0.01"}) == {
        "layers": (64, 32), "epochs": 5, "learning_rate": 0.01}  # fmt: skip
    with pytest.raises(ConfigError, match="sasrec: epochs, batch_size and patience must be positive"):
        parse_overrides("sasrec", {"epochs": 0})
    with pytest.raises(ConfigError, match=r"sasrec.epochs: '2.5' is not a valid int"):
        parse_overrides("sasrec", {"epochs": "2.5"})
    with pytest.raises(ConfigError, match=r"sasrec.loss: 'hinge' .*one of softmax, sampled_softmax, bce"):
        parse_overrides("sasrec", {"loss": "hinge"})
    choices = {f.name: f.choices for f in config_fields("deepfm") if f.choices}
    assert "sasrec" in choices["candidates_from"] and "fm" not in choices["candidates_from"]
    with pytest.raises(ConfigError, match="has no setting 'depth'"):
        parse_overrides("sasrec", {"depth": 3})


def test_cli_overrides_reach_the_stored_config(isolated_store, capsys):
    settings = json.dumps({"bpr": {"epochs": 2, "embedding_dim": 8}})
    assert main(["train", "--dataset", "synthetic", "--models", "bpr", "--overrides", settings, "--no-maps"]) == 0
    config = json.loads((isolated_store / "synthetic" / "bpr" / "config.json").read_text())["config"]
    assert config["epochs"] == 2 and config["embedding_dim"] == 8
    assert main(["train", "--dataset", "synthetic", "--models", "bpr", "--overrides", '{"bpr": {"epochs": 0}}']) == 2
    assert main(["train", "--dataset", "synthetic", "--models", "bpr", "--overrides", '{"ease": {}}']) == 2
    assert "not being trained: ease" in capsys.readouterr().err
