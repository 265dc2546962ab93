"""The CSV reader under arbitrary input (Hypothesis) and the hardening issue's CSV reproductions:
every problem is a CsvError naming the file's own line and the value, nothing else escapes, and a
file too small for the protocol is refused or trimmed with a note."""

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_core.__main__ import main
from recsys_core.data import CsvError, load_dataset, save_upload
from recsys_core.data.csv_loader import TIMESTAMP_RANGE, parse_interactions_csv, parse_items_csv
from recsys_core.store.artifacts import ArtifactMissing, load_artifact

HEADER = b"user_id,item_id,timestamp\n"


def good_rows(n_users: int = 10, per_user: int = 3) -> list[str]:
    """``n_users`` users with ``per_user`` timed interactions each: a file the protocol accepts."""
    return [f"u{u},i{k},{1000 + k}" for u in range(n_users) for k in range(per_user)]


def csv_bytes(rows: list[str], header: bytes = HEADER) -> bytes:
    return header + "".join(r + "\n" for r in rows).encode()


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=400))
def test_arbitrary_bytes_are_read_or_refused_with_a_csv_error(payload):
    for prefix in (b"", HEADER, csv_bytes(good_rows())):
        try:
            ratings, _ = parse_interactions_csv(prefix + payload)
        except CsvError as error:
            assert str(error).startswith("the file: ")
        else:
            assert ratings["user_id"].value_counts().min() >= 3  # no user the protocol cannot evaluate
            assert ratings["user_id"].nunique() >= 10


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=400))
def test_arbitrary_items_files_are_read_or_refused_with_a_csv_error(payload):
    try:
        parse_items_csv(b"item_id,title,genres\n" + payload)
    except CsvError as error:
        assert str(error).startswith("the items file: ")


BAD_TIMESTAMPS = st.one_of(
    st.sampled_from(["inf", "-inf", "nan", "1e30", "12345678901234567890", "-99999999999999999999", "yesterday"]),
    st.text(alphabet="abcxyz:/ ", min_size=1, max_size=8).filter(lambda t: t.strip()),
    st.integers(min_value=TIMESTAMP_RANGE[1] + 1, max_value=10**30).map(str),
    st.integers(min_value=-(10**30), max_value=TIMESTAMP_RANGE[0] - 1).map(str),
)


@settings(max_examples=150, deadline=None)
@given(value=BAD_TIMESTAMPS, position=st.integers(0, 29), quoted_break=st.booleans())
def test_a_bad_timestamp_names_its_own_line_and_value(value, position, quoted_break):
    rows = good_rows()
    rows[position] = f"u0,bad,{value}"
    quoted_break &= position > 0
    if quoted_break:  # a quoted cell with a line break before it: records and lines differ from then on
        rows[0] = 'u0,"i\n0",1000'
    line = position + 2 + quoted_break
    with pytest.raises(CsvError) as error:
        parse_interactions_csv(csv_bytes(rows))
    assert f"line {line}, column 'timestamp': {value.strip()!r}" in str(error.value)


@settings(max_examples=100, deadline=None)
@given(stamps=st.lists(st.integers(*TIMESTAMP_RANGE), min_size=30, max_size=30, unique=True))
def test_whole_timestamps_in_the_range_are_kept_exactly_and_shown_as_dates(stamps):
    rows = [f"u{n % 10},i{n},{stamp}" for n, stamp in enumerate(stamps)]
    ratings, _ = parse_interactions_csv(csv_bytes(rows))
    assert ratings["timestamp"].tolist() == stamps
    dates = pd.to_datetime(ratings["timestamp"].to_numpy(), unit="s", utc=True)  # as the views and rankers read them
    assert dates.notna().all()


@pytest.mark.parametrize("value", ["1e30", "inf", "12345678901234567890", "1733097600000"])
def test_timestamps_outside_the_range_are_refused_not_wrapped(value):
    rows = good_rows()
    rows.append(f"u1,i9,{value}")
    with pytest.raises(CsvError, match=f"line 32, column 'timestamp': '{value}' is outside the range"):
        parse_interactions_csv(csv_bytes(rows))


def test_a_garbage_timestamp_and_a_mixed_column_name_the_true_line():
    rows = [f"u0,i{k},{1000000001 + k}" for k in range(6)] + ["u0,i7,yesterday"] + good_rows()[3:]
    with pytest.raises(CsvError, match="line 8, column 'timestamp': 'yesterday' is neither"):
        parse_interactions_csv(csv_bytes(rows))
    rows = good_rows()
    rows[4] = "u1,i1,2024-01-31"
    with pytest.raises(CsvError, match=r"mixes Unix seconds \(line 2: '1000'\) and ISO dates \(line 6: '2024-01-31'\)"):
        parse_interactions_csv(csv_bytes(rows))


def test_quotes_empty_cells_and_extra_cells_name_the_file_s_line():
    rows = good_rows()
    rows[4] = 'u1,"i1,1001'
    with pytest.raises(CsvError, match=r"line 6: a quoted cell is never closed"):
        parse_interactions_csv(csv_bytes(rows))
    with pytest.raises(CsvError, match="line 3, column 'rating': empty value"):
        parse_interactions_csv(b"user_id,item_id,rating\n1,2,4\n1,3,\n")
    with pytest.raises(CsvError, match="line 2: 3 cells where the header has 2"):  # not a silent column shift
        parse_interactions_csv(b"user_id,item_id\nu1,i1,5\nu1,i2,6\n")


def test_datasets_too_small_for_the_protocol_are_refused_or_trimmed(tmp_path, monkeypatch):
    one_each = "".join(f"u{u},i{u}\n" for u in range(50)).encode()
    with pytest.raises(CsvError, match="0 of 50 users have the 3 interactions the protocol needs"):
        parse_interactions_csv(b"user_id,item_id\n" + one_each)
    with pytest.raises(CsvError, match="0 of 1 users"):
        parse_interactions_csv(b"user_id,item_id\n1,2\n")
    ratings, notes = parse_interactions_csv(csv_bytes([*good_rows(), "short,i1,5", "short,i2,6"]))
    assert "short" not in set(ratings["user_id"])
    assert any("1 of 11 users have fewer than 3 interactions" in n and "10 users remain" in n for n in notes)
    monkeypatch.setenv("DEEPREC_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(CsvError, match="users have the 3 interactions"):  # the upload path refuses it too
        save_upload("tiny", b"user_id,item_id\n1,2\n")
    tiny = tmp_path / "tiny.csv"
    tiny.write_bytes(b"user_id,item_id\n1,2\n")
    assert main(["train", "--dataset", str(tiny), "--models", "pop,ease", "--no-maps"]) == 2


def test_ids_lose_only_surrounding_spaces_in_files_and_requests_alike(tmp_path):
    path = tmp_path / "spaced.csv"
    rows = [r.replace("u0,", " u0 , ") for r in good_rows()] + ["007,i1,1", "007,i2,2", "007,i3,3"]
    path.write_bytes(csv_bytes(rows))
    dataset = load_dataset(str(path))
    assert "u0" in set(dataset.user_ids) and "007" in set(dataset.user_ids)
    assert dataset.user_index(" u0") == dataset.user_index("u0") > 0
    assert dataset.user_index("7") == 0  # otherwise ids are kept exactly


def test_the_size_limit_is_one_setting_in_mib_for_the_cli_and_uploads(tmp_path, monkeypatch, capsys):
    path = tmp_path / "big.csv"
    path.write_bytes(csv_bytes(good_rows(100, 5)))
    monkeypatch.setenv("DEEPREC_MAX_UPLOAD_MB", "0.005")
    assert main(["train", "--dataset", str(path), "--models", "pop"]) == 2
    assert "big.csv is 5.8 KiB; the limit is 5.1 KiB (set DEEPREC_MAX_UPLOAD_MB, in MiB" in capsys.readouterr().err
    monkeypatch.setenv("DEEPREC_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(CsvError, match=r"the interactions file is 5\.8 KiB; the limit is 5\.1 KiB"):
        save_upload("big", path.read_bytes())


def test_the_retrain_hint_of_a_csv_dataset_names_a_dataset_that_loads(tmp_path):
    path = tmp_path / "my data.csv"
    path.write_bytes(csv_bytes(good_rows()))
    dataset = load_dataset(str(path))
    with pytest.raises(ArtifactMissing) as error:
        load_artifact(dataset, "ease")
    assert f"--dataset '{path}' --models ease" in str(error.value)
    assert load_dataset(str(path)).fingerprint == dataset.fingerprint
