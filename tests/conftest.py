from __future__ import annotations

import pytest

from recsys_core.data import Dataset, DatasetUnavailable, load_dataset, make_synthetic, temporal_leave_last_out
from recsys_core.data.split import Split


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running checks, not in the default run (-m slow)")
    config.addinivalue_line("markers", "browser: real-browser tests (Playwright + Debian chromium)")


@pytest.fixture(autouse=True)
def isolated_store(tmp_path, monkeypatch):
    """Every test gets its own artifact store; the dataset cache is shared (read-mostly)."""
    monkeypatch.setenv("DEEPREC_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    return tmp_path / "artifacts"


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
