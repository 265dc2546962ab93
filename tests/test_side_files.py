"""Side files and GroupLens' MovieLens-1M layout: a users CSV beside an interactions CSV becomes the
models' user features, a folder of ratings.dat/movies.dat/users.dat loads as MovieLens-1M does,
and the same three files upload through the data layer the Train view calls."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from recsys_core.data import CsvError, DatasetUnavailable, load_dataset
from recsys_core.data.features import user_features
from recsys_core.data.grouplens import dat_to_csv
from recsys_core.data.synthetic import make_synthetic, write_grouplens_files
from recsys_core.data.uploads import save_uploaded_files, uploaded_datasets

INTERACTIONS = b"user_id,item_id,timestamp\n" + b"".join(
    f"{u},{(u * 3 + k) % 12 + 1},{k}\n".encode() for u in range(1, 13) for k in range(5)
)
ITEMS = b"item_id,title,genres\n" + b"".join(f"{i},Film {i} ({1990 + i}),Drama\n".encode() for i in range(1, 13))
USERS = b"user_id,gender,age,occupation,zip\n" + b"".join(
    f"{u},{'MF'[u % 2]},{(1, 18, 25, 35, 45, 50, 56)[u % 7]},{u % 4},0{u}\n".encode() for u in range(1, 14)
)


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPREC_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_a_users_file_beside_the_csv_becomes_user_features(tmp_path):
    (tmp_path / "shop.csv").write_bytes(INTERACTIONS)
    (tmp_path / "shop.items.csv").write_bytes(ITEMS)
    (tmp_path / "shop.users.csv").write_bytes(USERS)
    dataset = load_dataset(str(tmp_path / "shop.csv"))
    assert dataset.n_users == 12 and list(dataset.users.columns) == ["user_id", "gender", "age", "occupation", "zip"]
    # User 13 is listed but has no interactions: left out, and said so.
    assert any("1 users in the users file have no interactions" in note for note in dataset.notes)
    features = user_features(dataset)
    user = dataset.user_index(7)  # gender F (7 % 2 = 1), age code 1 (under 18), occupation 3
    assert features.gender[user] == 1 + sorted(["F", "M"]).index("F")
    assert features.age_bucket[user] == 1 and features.age_bucket[dataset.user_index(6)] == 7
    assert features.occupation[user] == 1 + ["0", "1", "2", "3"].index("3")
    # The release year is read from the title, as MovieLens writes it.
    assert dataset.items.at[dataset.item_index(5), "year"] == 1995.0


def test_a_bad_users_file_names_its_line(tmp_path):
    (tmp_path / "shop.csv").write_bytes(INTERACTIONS)
    (tmp_path / "shop.users.csv").write_bytes(b"user_id,age\n1,20\n2,twenty\n")
    with pytest.raises(CsvError, match=r"shop.users.csv: line 3, column 'age': 'twenty' is not a number"):
        load_dataset(str(tmp_path / "shop.csv"))
    (tmp_path / "shop.users.csv").write_bytes(b"user_id,age\n1,20\n1,30\n")
    with pytest.raises(CsvError, match=r"line 3, column 'user_id': user '1' is listed twice"):
        load_dataset(str(tmp_path / "shop.csv"))
    (tmp_path / "shop.users.csv").write_bytes(b"id,age\n1,20\n")
    with pytest.raises(CsvError, match="lacks column user_id"):
        load_dataset(str(tmp_path / "shop.csv"))


def test_a_grouplens_folder_loads_like_movielens_1m(tmp_path):
    source = make_synthetic(n_users=40, n_items=120)
    folder = write_grouplens_files(source, tmp_path / "my-ml-1m")
    dataset = load_dataset(str(folder))
    assert dataset.name.startswith("my-ml-1m-") and dataset.reference == str(folder)
    assert (dataset.n_users, dataset.n_items, dataset.n_interactions) == (40, 120, source.n_interactions)
    assert dataset.fingerprint == load_dataset(str(folder)).fingerprint
    # The same interactions, in the same order, with the same external ids.
    assert np.array_equal(dataset.user_ids, source.user_ids) and np.array_equal(dataset.item_ids, source.item_ids)
    assert np.array_equal(dataset.interactions[["user", "item", "timestamp"]].to_numpy(),
                          source.interactions[["user", "item", "timestamp"]].to_numpy())  # fmt: skip
    assert dataset.titles([1]) == source.titles([1])
    assert user_features(dataset).occupation.max() > 0


def test_a_damaged_dat_file_names_its_own_line(tmp_path):
    folder = write_grouplens_files(make_synthetic(n_users=20, n_items=120), tmp_path / "ml")
    lines = (folder / "ratings.dat").read_text().splitlines()
    lines[4] = "u3::i7::5"  # line 5: a field missing
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    with pytest.raises(CsvError, match=r"ratings.dat: line 5 has 3 fields separated by '::' where 4 are expected"):
        load_dataset(str(folder))
    lines[4] = "u3::i7::five::1600000000"
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    with pytest.raises(CsvError, match=r"ratings.dat: line 5, column 'rating': 'five' is not a number"):
        load_dataset(str(folder))


def test_a_folder_without_a_dataset_says_what_it_needs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetUnavailable, match=r"ratings\.dat"):
        load_dataset(str(tmp_path / "empty"))


def test_the_three_dat_files_upload_as_a_dataset(tmp_path, data_root):
    folder = write_grouplens_files(make_synthetic(n_users=30, n_items=120), tmp_path / "ml")
    sent = [SimpleNamespace(name=name, getvalue=(folder / name).read_bytes)
            for name in ("ratings.dat", "movies.dat", "users.dat")]  # fmt: skip
    stored = save_uploaded_files("grouplens", *sent)
    assert uploaded_datasets() == ["grouplens"]
    again = load_dataset("grouplens")
    assert again.fingerprint == stored.fingerprint == load_dataset(str(folder)).fingerprint
    assert "occupation" in again.users and again.users["gender"].notna().all()

    damaged = (folder / "users.dat").read_bytes().replace(b"::", b":", 1)
    bad = SimpleNamespace(name="users.dat", getvalue=lambda: damaged)
    with pytest.raises(CsvError, match=r"users.dat: line 1 has"):
        save_uploaded_files("other", sent[0], sent[1], bad)
    with pytest.raises(CsvError, match="must be one of GroupLens'"):
        save_uploaded_files("other", SimpleNamespace(name="ratings2.dat", getvalue=lambda: b"1::2::3::4\n"))
    assert uploaded_datasets() == ["grouplens"]


def test_dat_lines_with_commas_and_latin1_titles_survive():
    csv_bytes = dat_to_csv("7::Café, The (1999)::Comedy|Drama\n".encode("latin-1"), "movies.dat")
    assert csv_bytes.decode() == 'item_id,title,genres\n7,"Café, The (1999)",Comedy|Drama\n'


def test_the_app_opens_on_a_csv_named_by_its_path(tmp_path, monkeypatch, isolated_store):
    """``DEEPREC_DATASET=path/to/file.csv streamlit run app.py``: the selector offers the path and
    every view finds the dataset (and its models) by the content-hashed name it is stored under."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from recsys_core.training.schedule import train_models

    (tmp_path / "shop.csv").write_bytes(INTERACTIONS)
    (tmp_path / "shop.users.csv").write_bytes(USERS)
    path = str(tmp_path / "shop.csv")
    assert all(r.ok for r in train_models(path, ["pop", "ease"], device="cpu"))
    monkeypatch.setenv("DEEPREC_DATASET", path)
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120).run()
        assert at.selectbox(key="dataset").value == path
        for page in ("app_pages/overview.py", "app_pages/user_explorer.py", "app_pages/evaluate_and_ab.py"):
            at.switch_page(page).run()
            assert not at.exception, [e.value for e in at.exception]
            assert not at.error, [e.value for e in at.error]
        assert "ease" in " ".join(str(frame.value) for frame in at.dataframe)
    finally:
        st.cache_resource.clear()
