"""The JSON-lines request stream: whatever arrives, one output line per input line, an error names
its line, nothing escapes, exclusions hold (Hypothesis), and the reproductions of the hardening
issue end in an answer or a clear message."""

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys_core.__main__ import main
from recsys_core.models import build_model
from recsys_core.serving.recommend import RequestError, recommend
from recsys_core.serving.request_stream import MAX_LINE_BYTES, answer_lines, nesting_depth, parse_line
from recsys_core.training.loop import fit

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ease(synthetic, synthetic_split):
    model = build_model("ease", synthetic.n_users, synthetic.n_items)
    fit(model, synthetic_split, torch.device("cpu"))
    return model


def serve(model, dataset, split, payload: bytes) -> list[str]:
    """Every output line for the request bytes ``payload``."""
    out: list[str] = []

    def answer(request, _):
        return recommend(model, dataset, split, request).contract()

    answer_lines(io.BytesIO(payload), answer, out.append)
    return out


def check_one_per_line(lines: list[bytes], out: list[str]) -> list[dict]:
    assert len(out) == len(lines)
    answers = [json.loads(text) for text in out]
    for number, answer in enumerate(answers, start=1):
        assert set(answer) in ({"error"}, {"user_id", "items", "scores", "model", "fallback"})
        if "error" in answer:
            assert answer["error"].startswith(f"line {number}: ")
        out[number - 1].encode("utf-8")  # what is written is always valid UTF-8
    return answers


LINE_BYTES = st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" "))
QUICK = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@QUICK
@given(lines=st.lists(LINE_BYTES, min_size=1, max_size=8))
def test_arbitrary_bytes_get_one_answer_or_error_per_line(lines, ease, synthetic, synthetic_split):
    out = serve(ease, synthetic, synthetic_split, b"\n".join(lines) + b"\n")
    check_one_per_line(lines, out)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@QUICK
@given(values=st.lists(JSON_VALUES, min_size=1, max_size=6))
def test_arbitrary_json_values_get_one_answer_or_error_per_line(values, ease, synthetic, synthetic_split):
    lines = [json.dumps(v).encode() for v in values]
    check_one_per_line(lines, serve(ease, synthetic, synthetic_split, b"\n".join(lines)))


def some_ids(prefix: str, n: int):
    """Known external ids (``u1``.. / ``i1``..) mixed with unknown ones and integers."""
    return st.one_of(st.integers(1, n).map(lambda i: f"{prefix}{i}"), st.text(max_size=5), st.integers(-5, 10**12))


REQUESTS = st.fixed_dictionaries(
    {},
    optional={
        "user_id": some_ids("u", 300),
        "history": st.lists(some_ids("i", 120), max_size=15),
        "exclude": st.lists(some_ids("i", 120), max_size=60),
        "k": st.integers(-3, 1100),
    },
)


@QUICK
@given(requests=st.lists(REQUESTS, min_size=1, max_size=5))
def test_exclusions_hold_for_any_request(requests, ease, synthetic, synthetic_split):
    lines = [json.dumps(r).encode() for r in requests]
    answers = check_one_per_line(lines, serve(ease, synthetic, synthetic_split, b"\n".join(lines)))
    for request, answer in zip(requests, answers, strict=True):
        if "error" in answer:
            continue
        user = synthetic.user_index(request.get("user_id", "")) if request.get("user_id") is not None else 0
        known = {synthetic.item_ids[i] for i in synthetic_split.input_sequences("test")[user]} if user else set()
        banned = known | {str(i) for i in request.get("history", []) + request.get("exclude", [])}
        assert not set(answer["items"]) & banned
        assert len(answer["items"]) == len(set(answer["items"])) <= request.get("k", 10)


def test_the_parser_bounds_nesting_integers_encoding_and_length():
    assert nesting_depth('{"a": ["[[[", {"b": []}]}') == 4  # brackets inside strings do not count
    for raw, message in [
        (b"[" * 1000, "nested 1000 levels deep"),
        (b'{"user_id": ' + b"9" * 5000 + b"}", "integer of 5,000 digits"),
        (b'{"user_id": "u1\xff"}', "not valid UTF-8 (byte 0xff at byte 16)"),
        (b'{"user_id": "\\udcff"}', "lone surrogate"),
        (b'{"user_id": "u1", "k": NaN}', "NaN is not a number"),
        (b"   ", "empty line"),
        (None, "longer than 1 MiB"),
    ]:
        with pytest.raises(RequestError, match=re.escape(message)):
            parse_line(raw)
    assert parse_line(b'\xef\xbb\xbf{"user_id": " 196 "}', first=True).user_id == "196"
    with pytest.raises(RequestError, match="not valid JSON"):
        parse_line(b'\xef\xbb\xbf{"user_id": "196"}', first=False)  # a BOM belongs at the start only


def test_a_line_over_the_limit_is_one_error_and_the_next_line_is_answered(ease, synthetic, synthetic_split):
    huge = b'{"history": [' + b'"i1", ' * (MAX_LINE_BYTES // 6) + b'"i2"]}'
    out = serve(ease, synthetic, synthetic_split, huge + b'\n{"user_id": "u1", "k": 3}\n')
    assert len(out) == 2 and "line 1: longer than 1 MiB" in json.loads(out[0])["error"]
    assert len(json.loads(out[1])["items"]) == 3


def test_a_failure_while_answering_is_that_line_s_error():
    def answer(request, number):
        if number == 2:
            raise RuntimeError("cannot reshape tensor of 0 elements")
        return {"ok": number}

    out: list[str] = []
    answer_lines(io.BytesIO(b'{"user_id": 1}\n{"user_id": 2}\n{"user_id": 3}\n'), answer, out.append)
    assert [json.loads(line) for line in out] == [
        {"ok": 1},
        {"error": "line 2: could not be answered (RuntimeError: cannot reshape tensor of 0 elements)"},
        {"ok": 3},
    ]


# ----------------------------------------------------------------- the reproductions, end to end


def run_cli(args: list[str], stdin: bytes, store: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DEEPREC_ARTIFACTS_DIR": str(store), **env}
    return subprocess.run([sys.executable, "-m", "recsys_core", "recommend", "--dataset", "synthetic", *args],
                          input=stdin, cwd=ROOT, env=environment, capture_output=True, timeout=120)  # fmt: skip


def test_every_bad_line_gets_its_error_and_the_batch_goes_on(trained_synthetic_store, synthetic):
    every_item = list(synthetic.item_ids[1:])
    lines = [
        b'\xef\xbb\xbf{"user_id": "u1", "k": 2}',  # a byte-order mark, as CSVs may start with
        json.dumps({"user_id": "u2", "exclude": every_item}).encode(),
        b"[" * 1000,
        b'{"user_id": ' + b"9" * 5000 + b"}",
        b'{"user_id": "u4\xff"}',
        b'{"user_id": "\\udcff"}',
        b'{"user_id": "u3", "k": 1000}',
        b'{"user_id": "u5", "k": 3}',
    ]
    result = run_cli(["--model", "sasrec+fm"], b"\n".join(lines) + b"\n", trained_synthetic_store,
                     PYTHONIOENCODING="utf-8")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr
    answers = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(answers) == len(lines)
    assert len(answers[0]["items"]) == 2
    assert answers[1]["items"] == [] and "line 2: no candidates" in result.stderr.decode()
    assert "line 3: nested 1000 levels" in answers[2]["error"]
    assert "line 4: an integer of 5,000 digits" in answers[3]["error"]
    assert "line 5: not valid UTF-8" in answers[4]["error"]
    assert "line 6: id" in answers[5]["error"] and "\udcff" not in result.stdout.decode()
    assert len(answers[6]["items"]) < 1000 and "line 7: k=1000, but the pipeline ranks" in result.stderr.decode()
    assert len(answers[7]["items"]) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--candidates", "0"], "--candidates must be from 1"),
        (["--candidates", "-5"], "--candidates must be from 1"),
        (["--k", "-1"], "--k must be an integer from 1 to 1000"),
        (["--k", "0"], "--k must be an integer from 1 to 1000"),
        (["--k", "5000"], "--k must be an integer from 1 to 1000"),
        (["--k", "300"], "more than the 200 candidates"),
        ([], "e.g. two_tower+deepfm"),  # the hint for deepfm+sasrec names a pipeline that exists
    ],
)
def test_bad_k_candidates_and_pipelines_are_refused_before_any_line(args, message, capsys):
    model = "deepfm+sasrec" if not args else "sasrec+fm"
    assert main(["recommend", "--dataset", "synthetic", "--model", model, *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and not captured.out
