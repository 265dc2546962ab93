from __future__ import annotations

import os
from pathlib import Path

# Set before torch loads its OpenMP runtime, and inherited by the CLI, job and streamlit
# subprocesses: threads that spin while they wait stall badly when the test process, a training
# job, a streamlit server and chromium share two cores; passive waiting changes nothing when idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

from recsys_core.data import (
    Dataset,
    DatasetUnavailable,
    load_dataset,
    make_synthetic,
    temporal_leave_last_out,
)
from recsys_core.data.split import Split


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running checks, not in the default run (-m slow)")
    config.addinivalue_line("markers", "browser: real-browser tests (Playwright + Debian chromium)")


@pytest.fixture(autouse=True)
def isolated_store(tmp_path, monkeypatch):
    """Every test gets its own artifact store; the dataset cache is shared (read-mostly)."""
    monkeypatch.setenv("DEEPREC_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    return tmp_path / "artifacts"


@pytest.fixture
def app_session(monkeypatch):
    """A fresh Streamlit session on the synthetic dataset (for AppTest): empty caches before and
    after, and no background training left running."""
    import streamlit as st

    from recsys_core.training.jobs import cancel_job

    st.cache_resource.clear()
    st.cache_data.clear()
    monkeypatch.setenv("DEEPREC_DATASET", "synthetic")
    yield
    cancel_job("synthetic")
    st.cache_resource.clear()


@pytest.fixture(scope="session")
def synthetic() -> Dataset:
    return make_synthetic()


@pytest.fixture(scope="session")
def synthetic_split(synthetic) -> Split:
    return temporal_leave_last_out(synthetic)


@pytest.fixture(scope="session")
def ml100k() -> Dataset:
    """The real MovieLens-100K (fetched at first use); skipped only when no source is reachable."""
    try:
        return load_dataset("ml-100k")
    except DatasetUnavailable as error:
        pytest.skip(f"MovieLens-100K unavailable here: {error}")


# Models the page tests (AppTest and browser) find already trained: one of each kind the views treat
# differently (popularity, a history reader without vectors, a vector model, a recurrent and two
# attention models).
PAGE_MODELS = ("pop", "ease", "bpr", "gru4rec", "sasrec", "bert4rec", "fm")  # fm ranks over sasrec


@pytest.fixture(scope="session")
def trained_synthetic_store(tmp_path_factory) -> Path:
    """An artifact store with PAGE_MODELS trained (quick profile) on the synthetic dataset, shared
    by the tests that only read it."""
    from recsys_core.training.schedule import train_models

    root = tmp_path_factory.mktemp("trained-store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEEPREC_ARTIFACTS_DIR", str(root))
        # With their embedding maps, as the lab's own training job draws them: the views read them.
        reports = train_models("synthetic", list(PAGE_MODELS), device="cpu", quick=True, maps=True)
    assert all(r.ok for r in reports), [r.message for r in reports if not r.ok]
    return root


def stored_metrics(ndcg: float = 0.1) -> dict:
    """The smallest metrics.json the store accepts (every value the views read), for tests that
    store a model without evaluating it."""
    summary = {"NDCG@10": ndcg, "HR@10": 2 * ndcg, "MRR@10": ndcg / 2, "NDCG@20": ndcg, "NDCG@10 CI": [0.0, 2 * ndcg],
               "HR@10 CI": [0.0, 0.5], "coverage@10": 0.5, "users": 300}  # fmt: skip
    return {"test": summary}
