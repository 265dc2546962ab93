import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recsys_core.__main__ import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def trained_store(isolated_store):
    assert main(["train", "--dataset", "synthetic", "--models", "pop,ease,bpr", "--quick"]) == 0
    return isolated_store


def run_cli(args, stdin, store):
    env = {**os.environ, "DEEPREC_ARTIFACTS_DIR": str(store)}
    return subprocess.run([sys.executable, "-m", "recsys_core", *args], input=stdin, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_recommend_answers_good_lines_and_one_error_per_bad_line(trained_store, synthetic, synthetic_split):
    requests = [
        {"user_id": "u5", "k": 5, "exclude": ["i1"]},
        "this is not json",
        {"history": ["i3", "i4"], "k": 3},
        {"user_id": 5, "k": 0},
        {"user_id": True},
        {"user_id": "unknown-user"},
        [1, 2],
        {"user_id": "u5", "history": "i1"},
        {"history": ["i7", "no-such-item"], "k": 2},
        {"user": "u5"},
    ]
    stdin = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in requests) + "\n"
    result = run_cli(["recommend", "--dataset", "synthetic", "--model", "bpr"], stdin, trained_store)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(requests)
    good = lines[0]
    assert set(good) == {"user_id", "items", "scores", "model", "fallback"}
    assert good["user_id"] == "u5" and good["model"] == "bpr" and good["fallback"] is None
    assert len(good["items"]) == 5 and all(isinstance(i, str) for i in good["items"])
    seen = {synthetic.item_ids[i] for i in synthetic_split.input_sequences("test")[synthetic.user_index("u5")]}
    assert not (set(good["items"]) & (seen | {"i1"}))
    assert "line 2: not valid JSON" in lines[1]["error"]
    assert lines[2]["user_id"] is None and len(lines[2]["items"]) == 3 and "mean of the history" in lines[2]["fallback"]
    assert not ({"i3", "i4"} & set(lines[2]["items"]))
    assert "line 4: k must be an integer" in lines[3]["error"]
    assert "line 5:" in lines[4]["error"] and "string or an integer" in lines[4]["error"]
    assert lines[5]["fallback"].startswith("no known history") and len(lines[5]["items"]) == 10
    assert "line 7: a request must be a JSON object" in lines[6]["error"]
    assert "line 8: history must be a list" in lines[7]["error"]
    assert len(lines[8]["items"]) == 2 and "no-such-item" in result.stderr
    assert "line 10: unknown field(s) user" in lines[9]["error"]


def test_recommend_with_an_untrained_model_says_how_to_train(isolated_store):
    result = run_cli(["recommend", "--dataset", "synthetic", "--model", "ease"], "{}\n", isolated_store)
    assert result.returncode == 1
    assert "python -m recsys_core train --dataset synthetic --models ease" in result.stderr


def test_evaluate_json_is_a_fresh_evaluation_with_the_protocol(trained_store, capsys):
    assert main(["evaluate", "--dataset", "synthetic", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload["models"]) == {"pop", "ease", "bpr"}
    assert "temporal leave-last-out" in payload["protocol"]
    ease = payload["models"]["ease"]
    assert ease["NDCG@10"] > payload["models"]["pop"]["NDCG@10"]
    stored = json.loads((trained_store / "synthetic" / "ease" / "metrics.json").read_text())["test"]
    assert ease["NDCG@10"] == pytest.approx(stored["NDCG@10"])


def test_bad_arguments_get_messages_not_tracebacks(isolated_store, capsys, tmp_path):
    assert main(["train", "--dataset", "synthetic", "--models", "nope"]) == 2
    assert "unknown model(s) nope" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,rating\n1,2,x\n")
    assert main(["train", "--dataset", str(bad), "--models", "pop"]) == 2
    assert "line 2, column 'rating'" in capsys.readouterr().err
    assert main(["evaluate", "--dataset", "synthetic"]) == 1
    assert "no trained models" in capsys.readouterr().out
