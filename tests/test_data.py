import contextlib

import numpy as np
import pandas as pd
import pytest

from recsys_core.data import (
    CsvError,
    DatasetUnavailable,
    build_dataset,
    load_dataset,
    make_synthetic,
    movielens,
    normalise_id,
    obtain_dataset,
)
from recsys_core.data.csv_loader import load_interactions_csv, parse_interactions_csv
from recsys_core.data.features import context_features, item_features, popularity_buckets, user_features
from recsys_core.data.movielens import ChecksumMismatch, canonical_ratings_sha256
from recsys_core.data.synthetic import planted_block


def filler(cells=lambda k: str(k)) -> str:
    """Ten users with three interactions each (``user,item,cells(k)``): the smallest file the
    protocol accepts, added to the rows a test is about."""
    return "".join(f"f{u},fi{k},{cells(k)}\n" for u in range(10) for k in range(3))


def write(tmp_path, text, name="interactions.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_string_ids_survive_round_trips(tmp_path):
    rows = "u17,007,4,10\nu17,7,5,11\nu17,x,5,12\n42,007,3,12\n42,8,3,13\n42,9,3,14\n"
    path = write(tmp_path, "user_id,item_id,rating,timestamp\n" + rows + filler(lambda k: f"1,{k}"))
    dataset = load_interactions_csv(path)
    assert {"u17", "42"} <= set(dataset.user_ids[1:])
    assert {"007", "7"} <= set(dataset.item_ids[1:])  # "007" and "7" are different items
    assert dataset.item_ids[dataset.item_index("007")] == "007"
    assert dataset.user_index(42) == dataset.user_index("42") > 0
    assert dataset.user_index("nobody") == 0


def test_normalise_id_rejects_what_cannot_be_an_id():
    assert normalise_id(196) == "196" and normalise_id(196.0) == "196" and normalise_id("u1") == "u1"
    for bad in (True, None, 1.5, [1], {"a": 1}):
        with pytest.raises(TypeError):
            normalise_id(bad)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("user,item\n1,2\n", "lacks column(s) user_id, item_id"),
        ("user_id,item_id,rating\n1,2,4\n1,3,abc\n", "line 3, column 'rating': 'abc' is not a number"),
        ("user_id,item_id,rating\n1,2,4\n,3,5\n", "line 3, column 'user_id': empty value"),
        ("user_id,item_id,rating\n1,2,4\n1,3,nan\n", "line 3, column 'rating'"),
        ("user_id,item_id\n1,2\n1,3,9,9\n", "line 3"),
        ("user_id,item_id,timestamp\n1,2,yesterday\n", "line 2, column 'timestamp'"),
        ("", "empty"),
        ("user_id,item_id\n", "no interaction rows"),
    ],
)
def test_malformed_csv_gets_a_clear_message(tmp_path, text, fragment):
    with pytest.raises(CsvError, match=None) as info:
        load_interactions_csv(write(tmp_path, text))
    assert fragment in str(info.value)


def test_csv_size_limit_and_encoding(tmp_path):
    path = write(tmp_path, "user_id,item_id\n" + "1,2\n" * 100)
    with pytest.raises(CsvError, match=r"is 416 bytes; the limit is 100 bytes \(set DEEPREC_MAX_UPLOAD_MB"):
        load_interactions_csv(path, max_bytes=100)
    bad = tmp_path / "latin.csv"
    bad.write_bytes(b"user_id,item_id\n1,caf\xe9\n")
    with pytest.raises(CsvError, match="line 2 is not valid UTF-8"):
        load_interactions_csv(bad)


def test_csv_duplicates_iso_dates_and_items_file(tmp_path):
    dated = filler(lambda k: f"2023-01-0{k + 1}")
    text = "user_id,item_id,timestamp\na,x,2024-01-02\na,x,2024-01-01\na,y,2024-01-03\na,w,2024-01-04\n" + dated
    ratings, notes = parse_interactions_csv(text.encode())
    assert len(ratings) == 33 and "merged" in notes[0]
    assert ratings["timestamp"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC").timestamp()
    items = write(tmp_path, "item_id,title,genres\nx,The X,Drama|War\nz,Cold item,\n", "items.csv")
    dataset = load_interactions_csv(write(tmp_path, text), items_path=items)
    assert dataset.titles([dataset.item_index("x")]) == ["The X"]
    assert dataset.n_items == 4 + 3  # the cold item z is in the catalogue
    assert dataset.genre_names == ["Drama", "War"]


def test_load_dataset_accepts_a_csv_path_and_rejects_unknown_names(tmp_path):
    path = write(tmp_path, "user_id,item_id,timestamp\n" + filler())
    assert load_dataset(str(path)).name.startswith("interactions-")
    with pytest.raises(DatasetUnavailable, match="unknown dataset"):
        load_dataset("no-such-dataset")


def test_synthetic_dataset_has_its_planted_structure(synthetic):
    frame = synthetic.interactions
    users = synthetic.users
    in_block = [
        planted_block(synthetic, item) == users.at[user, "cluster"]
        for user, item in zip(frame["user"], frame["item"], strict=True)
    ]
    assert np.mean(in_block) > 0.9
    assert make_synthetic(seed=0).fingerprint == synthetic.fingerprint
    assert make_synthetic(seed=1).fingerprint != synthetic.fingerprint


def test_side_features_reserve_zero_for_unknown():
    ratings = pd.DataFrame(
        {"user_id": ["a", "b", "c"], "item_id": ["x", "y", "x"], "rating": 1.0, "timestamp": [0, 1, 2]}
    )
    users = pd.DataFrame({"user_id": ["a", "b"], "age": [17, 40], "gender": ["F", None], "occupation": ["x", "y"]})
    items = pd.DataFrame({"item_id": ["x", "y"], "title": ["X", "Y"], "genres": ["A|B", ""], "year": [1994, np.nan]})
    dataset = build_dataset("f", ratings, items, users)
    features = user_features(dataset)
    c = dataset.user_index("c")
    assert features.age_bucket[c] == 0 and features.gender[c] == 0 and features.occupation[c] == 0
    assert features.age_bucket[dataset.user_index("a")] == 1  # under 18
    assert features.gender[dataset.user_index("b")] == 0  # missing
    popularity = np.array([0.0, 2.0, 1.0])
    item = item_features(dataset, popularity)
    x, y = dataset.item_index("x"), dataset.item_index("y")
    assert item.genres[x].tolist() == [1.0, 1.0] and item.genres[y].tolist() == [0.0, 0.0]
    assert item.year_bucket[y] == 0 and item.year_bucket[x] > 0
    assert popularity_buckets(np.array([0.0, 0.0, 5.0, 1.0])).tolist() == [0, 0, 6, 1]
    weekday, hour = context_features(np.array([0]))  # 1970-01-01 was a Thursday, 00:00 UTC
    assert weekday.tolist() == [4] and hour.tolist() == [1]


# --------------------------------------------------------------------------- MovieLens-100K sources

GROUPLENS_ITEM = "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|" + "|".join(["0"] * 13) + "\n"
GROUPLENS_ITEM += "2|GoldenEye (1995)|01-Jan-1995||http://x|0|1|1|" + "|".join(["0"] * 13) + "|1|0|0\n"


def test_grouplens_and_atomic_layouts_parse_to_the_same_data(tmp_path):
    grouplens, atomic = tmp_path / "g", tmp_path / "a"
    grouplens.mkdir()
    atomic.mkdir()
    (grouplens / "u.data").write_text("1\t2\t3\t881250949\n2\t1\t5\t881250950\n")
    (grouplens / "u.item").write_bytes(GROUPLENS_ITEM.encode("latin-1"))
    (grouplens / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    (atomic / "ml-100k.inter").write_text(header + "2\t1\t5\t881250950\n1\t2\t3\t881250949\n")
    (atomic / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation Children's Comedy\n2\tGoldenEye\t1995\tAction Adventure Thriller\n"
    )
    (atomic / "ml-100k.user").write_text(
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n1\t24\tM\ttechnician\t85711\n"
    )
    g_ratings, g_items, g_users = movielens._parse_grouplens_100k(grouplens)
    a_ratings, a_items, _ = movielens._parse_atomic_100k(atomic)
    assert canonical_ratings_sha256(g_ratings) == canonical_ratings_sha256(a_ratings)
    assert g_items["title"].tolist() == a_items["title"].tolist() == ["Toy Story", "GoldenEye"]
    assert g_items["genres"].tolist() == a_items["genres"].tolist()
    assert g_items["year"].tolist() == [1995.0, 1995.0]
    assert g_users["occupation"].tolist() == ["technician", "other"]


def test_damaged_local_copy_is_an_error_not_a_warning(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for name in movielens.ATOMIC_SHA256:
        (folder / name).write_text("not the real file\n")
    with pytest.raises(ChecksumMismatch, match="SHA-256"):
        movielens.load_movielens_100k(tmp_path)


def test_without_any_source_the_message_offers_the_synthetic_dataset(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no route to host")

    monkeypatch.setattr(movielens, "_download_grouplens_zip", offline)
    monkeypatch.setattr(movielens, "_fetch_recbole_copy", offline)
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("ml-100k", root=tmp_path)
    message = str(info.value)
    assert "GroupLens zip: no route to host" in message and "synthetic" in message


def test_obtaining_reports_each_source_as_it_is_tried(tmp_path, monkeypatch):
    """What a first visit's status box shows: every source in order, and why each failed."""

    def refused(*args, **kwargs):
        raise OSError("connection refused")

    class SlowResponse:  # a 1 MB zip in 256 KiB chunks, its length announced
        def __init__(self):
            self.headers = {"Content-Length": str(1_000_000)}
            self.left = 1_000_000

        def read(self, size):
            chunk, self.left = b"x" * min(size, self.left), self.left - min(size, self.left)
            return chunk

    lines: list[str] = []
    answer = contextlib.nullcontext(SlowResponse())
    monkeypatch.setattr(movielens.urllib.request, "urlopen", lambda url, timeout: answer)
    monkeypatch.setattr(movielens, "_fetch_recbole_copy", refused)
    with pytest.raises(DatasetUnavailable):
        obtain_dataset("ml-100k", root=tmp_path, progress=lines.append)
    assert lines[0] == f"Looking for a local copy in {tmp_path / 'ml-100k'}."
    assert lines[1].startswith(f"Trying the GroupLens zip ({movielens.GROUPLENS}/ml-100k.zip")
    assert lines[2:6] == ["Downloaded 0.3 of 1.0 MB.", "Downloaded 0.5 of 1.0 MB.", "Downloaded 0.8 of 1.0 MB.",
                          "Downloaded 1.0 of 1.0 MB."]  # fmt: skip
    assert lines[6].startswith("The GroupLens zip failed (") and "MD5" in lines[6]
    assert lines[7].startswith("Trying the copy inside the recbole==1.2.1 wheel on PyPI")
    assert lines[8] == "The recbole==1.2.1 wheel failed (connection refused)."
    assert obtain_dataset("synthetic", progress=lines.append) is None and len(lines) == 9  # nothing to fetch


def test_real_movielens_100k_is_verified_and_cached(ml100k, tmp_path):
    assert ml100k.summary()["interactions"] == 100_000
    assert ml100k.titles([1]) == ["Toy Story"]
    assert ml100k.items.at[1, "genres"] == "Animation|Children's|Comedy"
    assert ml100k.users.at[ml100k.user_index("1"), "occupation"] == "technician"
    assert len(ml100k.genre_names) == 19
    ratings = pd.DataFrame({
        "user_id": ml100k.user_ids[ml100k.interactions["user"]],
        "item_id": ml100k.item_ids[ml100k.interactions["item"]],
        "rating": ml100k.interactions["rating"],
        "timestamp": ml100k.interactions["timestamp"],
    })  # fmt: skip
    assert canonical_ratings_sha256(ratings) == movielens.ML100K_RATINGS_SHA256


def test_concurrent_first_use_writes_do_not_collide(tmp_path):
    # Several processes (training workers) may fetch the dataset at once; each write goes
    # through a temporary file of its own, so none renames another's away.
    from concurrent.futures import ThreadPoolExecutor

    from recsys_core.data.movielens import _write_atomically

    target = tmp_path / "u.data"
    payloads = [f"payload {n}\n".encode() * 20_000 for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda payload: _write_atomically(target, payload), payloads * 4))
    assert target.read_bytes() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["u.data"]
