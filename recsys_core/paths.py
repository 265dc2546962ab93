"""Where the lab keeps its data and trained models (overridable for tests and deployments), and
the two file helpers both stores use."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    return Path(os.environ.get("DEEPREC_DATA_DIR", PROJECT_ROOT / "data"))


def artifacts_dir() -> Path:
    return Path(os.environ.get("DEEPREC_ARTIFACTS_DIR", PROJECT_ROOT / "artifacts"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
