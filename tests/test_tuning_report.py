"""The tuning bench's leaderboard: the pairs whose order tuning reverses, each with a paired test."""

import json

import numpy as np

from bench import tuning


def result(model: str, default: float, tuned: float) -> dict:
    no_ci = [None, None]
    return {"model": model, "dataset": "planted", "default_test": [default, *no_ci], "tuned_test": [tuned, *no_ci]}


def test_the_leaderboard_names_each_reversed_pair_with_a_paired_test(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    # c is better than a by a planted 0.2 on every user once tuned; b is tuned neither up nor down.
    a, b = rng.uniform(0, 0.5, 500), rng.uniform(0, 0.5, 500)
    c = a + 0.2 + rng.normal(0, 0.01, 500)
    per_user = {"planted": {"users": list(range(500)), "models": {
        "a": {"default": a.tolist(), "tuned": a.tolist()},
        "b": {"default": b.tolist(), "tuned": b.tolist()},
        "c": {"default": (a - 0.1).tolist(), "tuned": c.tolist()},
    }}}  # fmt: skip
    monkeypatch.setattr(tuning, "PER_USER", tmp_path / "per_user.json")
    tuning.PER_USER.write_text(json.dumps(per_user))
    rows = [result("a", 0.30, 0.30), result("b", 0.25, 0.25), result("c", 0.20, 0.45)]
    lines = tuning.leaderboard("planted", rows)
    table = [line for line in lines if line.startswith("| ") and line[2].isdigit()]
    assert table == ["| 1 | a | 0.3000 | c | 0.4500 |", "| 2 | b | 0.2500 | a | 0.3000 |",
                     "| 3 | c | 0.2000 | b | 0.2500 |"]  # fmt: skip
    reversed_pairs = [line for line in lines if line.startswith("- ")]
    # c passes both a and b; a and b keep their order.
    assert [line.split(":")[0] for line in reversed_pairs] == ["- **c** above **a**", "- **c** above **b**"]
    assert "difference +0.20" in reversed_pairs[0] and "significant at 0.05 by both tests" in reversed_pairs[0]


def test_no_reversed_pair_is_said_plainly(tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "PER_USER", tmp_path / "absent.json")
    lines = tuning.leaderboard("planted", [result("a", 0.3, 0.31), result("b", 0.2, 0.2)])
    assert "Tuning reverses the order of no pair of models." in lines


def test_the_verdict_says_which_test_agrees():
    assert tuning.verdict({"t_test_p": 0.01, "wilcoxon_p": 0.2}) == "significant at 0.05 by the paired t-test only"
    assert tuning.verdict({"t_test_p": 0.3, "wilcoxon_p": 0.2}) == "not significant at 0.05"


def test_each_study_records_the_stored_models_it_built_on(tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "STORE", tmp_path)
    for model, info in {"gmf": {"trained_at": "2026-12-05T05:00:00+0000", "tuning": {"study": "bench-20/gmf"}},
                        "mlp": {"trained_at": "2026-12-05T07:00:00+0000"}}.items():  # fmt: skip
        (tmp_path / "planted" / model).mkdir(parents=True)
        (tmp_path / "planted" / model / "info.json").write_text(json.dumps(info))
    assert tuning.stored_prerequisites("planted", "neumf") == {"gmf": "bench-20/gmf", "mlp": "defaults"}
    assert tuning.stored_prerequisites("planted", "ease") == {}


def test_the_pairs_the_paragraph_cites_are_tested_with_each_sides_settings(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    # a's defaults are b's tuned figures plus a planted 0.1; tuned, a equals b.
    b = rng.uniform(0, 0.5, 400)
    per_user = {"planted": {"users": list(range(400)), "models": {
        "a": {"default": (b + 0.1 + rng.normal(0, 0.01, 400)).tolist(), "tuned": b.tolist()},
        "b": {"default": b.tolist(), "tuned": b.tolist()},
    }}}  # fmt: skip
    monkeypatch.setattr(tuning, "PER_USER", tmp_path / "per_user.json")
    tuning.PER_USER.write_text(json.dumps(per_user))
    monkeypatch.setattr(tuning, "CITED", [("a", "default", "b", "tuned"), ("a", "tuned", "c", "tuned")])
    lines = [line for line in tuning.cited("planted") if line.startswith("- ")]
    # c has no per-user figures: its pair is left out rather than shown without a test.
    assert len(lines) == 1 and lines[0].startswith("- **a** (default) against **b** (tuned): difference +")
    assert abs(float(lines[0].split("difference ")[1].split()[0]) - 0.1) < 0.005
    assert lines[0].endswith("significant at 0.05 by both tests.")
