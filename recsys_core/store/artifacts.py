"""The artifact store: ``artifacts/<dataset>/<model>/`` with safetensors weights and JSON.

- ``config.json``: model name, its config dataclass, catalogue sizes;
- ``weights.safetensors``: every tensor of the model (closed-form matrices included);
- ``metrics.json`` (+ ``per_user_test.parquet``): test and validation metrics, protocol label;
- ``history.json``: loss and validation NDCG@10 per epoch, or the tuning grid;
- ``info.json``: dataset fingerprint, library versions, device, wall time, parameter count and the
  weights' SHA-256.

A model is written into a temporary directory and renamed into place, so a crash or ``kill -9``
at any moment leaves either the old model or the new one, never a mix. Loading never unpickles.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import json
import os
import shlex
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from recsys_core.data.dataset import Dataset
from recsys_core.data.features import side_features
from recsys_core.models import REGISTRY, build_model
from recsys_core.models.base import Recommender
from recsys_core.paths import artifacts_dir, sha256_file
from recsys_core.results import ResultsDamaged, StoredResults

FORMAT = 1
FILES = ("config.json", "weights.safetensors", "metrics.json", "history.json", "info.json")


class ArtifactError(RuntimeError):
    """An artifact that cannot be used; the message says why and how to retrain."""


class ArtifactMissing(ArtifactError):
    pass


class ArtifactCorrupted(ArtifactError):
    pass


class ArtifactMismatch(ArtifactError):
    pass


class TrainingLocked(RuntimeError):
    """Another training holds this dataset's lock."""


@dataclass
class Artifact:
    model: Recommender
    metrics: dict
    history: list[dict]
    info: dict
    path: Path

    @property
    def version(self) -> str:
        """Changes whenever the model is retrained: the key for caches of loaded models."""
        return self.info["weights_sha256"][:16]

    @functools.cached_property
    def results(self) -> StoredResults:
        """The stored metrics, typed (checked when the artifact was read; parsed once per artifact)."""
        return StoredResults.from_json(self.metrics)


def retrain_hint(dataset: Dataset | str, model_name: str) -> str:
    """The command that retrains ``model_name``; ``dataset`` as loaded (a CSV file's hint names its
    path, which loads it again, not its content-hashed name) or a registered dataset's name."""
    reference = dataset.reference if isinstance(dataset, Dataset) else dataset
    return f"retrain it with: python -m recsys_core train --dataset {shlex.quote(reference)} --models {model_name}"


class _Damage(ValueError):
    """What is wrong inside one stored JSON file (wrapped into :class:`ArtifactCorrupted`)."""


def _require(condition: bool, problem: str) -> None:
    if not condition:
        raise _Damage(problem)


def _check_metrics(metrics: object) -> None:
    """What the views and the CLI read from the metrics (``StoredResults.from_json`` says what)."""
    try:
        StoredResults.from_json(metrics)
    except ResultsDamaged as damage:
        raise _Damage(str(damage)) from None


def _check_config(config: object) -> None:
    _require(isinstance(config, dict) and isinstance(config.get("config"), dict), "it has no model settings")
    for key in ("n_users", "n_items"):
        _require(isinstance(config.get(key), int) and config[key] > 0, f"it lacks {key}")


def _check_info(info: object) -> None:
    _require(isinstance(info, dict), "it is not a JSON object")
    for key in ("weights_sha256", "dataset_fingerprint"):
        _require(isinstance(info.get(key), str) and len(info[key]) >= 16, f"it lacks {key}")


def _check_history(history: object) -> None:
    _require(isinstance(history, list) and all(isinstance(row, dict) for row in history), "it is not a list of epochs")


CHECKS = {"config": _check_config, "info": _check_info, "metrics": _check_metrics, "history": _check_history}


def read_model_files(path: Path, dataset: Dataset | str, model_name: str) -> dict[str, object]:
    """A stored model's JSON files (``config``, ``info``, ``metrics``, ``history``), each checked for
    what the lab reads from it: the one reader of them, so any damage (a file missing, cut short,
    edited, or from another version) is the same :class:`ArtifactCorrupted` with a retrain hint."""
    files = {}
    for name, check in CHECKS.items():
        file = path / f"{name}.json"
        try:
            files[name] = json.loads(file.read_text())
            check(files[name])
        except FileNotFoundError:
            raise ArtifactCorrupted(f"{path} lacks {file.name}; " + retrain_hint(dataset, model_name)) from None
        except (OSError, ValueError) as error:  # JSON, Unicode and our own checks are ValueErrors
            why = error if isinstance(error, _Damage) else f"it cannot be read: {error}"
            raise ArtifactCorrupted(f"{file} is damaged ({why}); " + retrain_hint(dataset, model_name)) from None
    return files


def dataset_root(dataset_name: str, root: Path | None = None) -> Path:
    return (root or artifacts_dir()) / dataset_name


def save_artifact(
    dataset: Dataset,
    model: Recommender,
    metrics: dict,
    history: list[dict],
    info: dict,
    per_user: pd.DataFrame | None = None,
    root: Path | None = None,
) -> Path:
    """Write a model atomically and record it in the dataset's manifest. Metrics that a reader would
    call damaged (NaN, say, from a split with no evaluated users) are refused: nothing is written."""
    try:
        _check_metrics(metrics)
    except _Damage as error:
        raise ValueError(f"{model.name} was not stored: {error}") from None
    base = dataset_root(dataset.name, root)
    base.mkdir(parents=True, exist_ok=True)
    final = base / model.name
    tmp = base / f".tmp-{model.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(tmp / "weights.safetensors"))
        info = {
            **info,
            "format": FORMAT,
            "model": model.name,
            "dataset": dataset.name,
            "dataset_fingerprint": dataset.fingerprint,
            "n_users": model.n_users,
            "n_items": model.n_items,
            "parameters": int(sum(t.numel() for t in model.parameters())),
            "stored_values": int(sum(t.numel() for t in tensors.values())),
            "weights_sha256": sha256_file(tmp / "weights.safetensors"),
            "versions": {"python": sys.version.split()[0], "torch": torch.__version__, "pandas": pd.__version__},
        }
        config = {"model": model.name, "config": dataclasses.asdict(model.config), "n_users": model.n_users,
                  "n_items": model.n_items}  # fmt: skip
        _write_json(tmp / "config.json", config)
        _write_json(tmp / "metrics.json", metrics)
        _write_json(tmp / "history.json", history)
        _write_json(tmp / "info.json", info)
        if per_user is not None:
            per_user.to_parquet(tmp / "per_user_test.parquet")
        _fsync_dir(tmp)
        _swap_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _update_manifest(base, model.name, info, metrics)
    return final


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp``. Between the two renames the old copy sits in a ``.old-``
    directory, which :func:`_locate` falls back to, so readers never see a half-written model."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{uuid.uuid4().hex[:8]}")
        final.rename(old)
    tmp.rename(final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _locate(base: Path, model_name: str) -> Path | None:
    final = base / model_name
    if final.is_dir():
        return final
    # A writer was killed between its two renames: the previous model is intact under .old-.
    survivors = sorted(base.glob(f".old-{model_name}-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    return survivors[0] if survivors else None


def load_artifact(dataset: Dataset, model_name: str, root: Path | None = None, device: str = "cpu") -> Artifact:
    """Rebuild a trained model from its config and tensors, after checking it fits ``dataset``."""
    if model_name not in REGISTRY:
        raise ArtifactMissing(f"unknown model {model_name!r}; registered: {', '.join(REGISTRY)}")
    base = dataset_root(dataset.name, root)
    path = _locate(base, model_name)
    if path is None:
        raise ArtifactMissing(f"{model_name} is not trained on {dataset.name} yet; {retrain_hint(dataset, model_name)}")
    files = read_model_files(path, dataset, model_name)
    config, info, metrics, history = files["config"], files["info"], files["metrics"], files["history"]
    if info.get("dataset_fingerprint") != dataset.fingerprint:
        raise ArtifactMismatch(
            f"{model_name} in {path} was trained on different data than the current {dataset.name} "
            "(dataset fingerprint differs); " + retrain_hint(dataset, model_name)
        )
    weights = path / "weights.safetensors"
    if not weights.is_file() or sha256_file(weights) != info.get("weights_sha256"):
        raise ArtifactCorrupted(
            f"{weights} is missing or damaged (its SHA-256 does not match the one recorded when it was "
            "saved); " + retrain_hint(dataset, model_name)
        )
    try:
        model_config = REGISTRY[model_name].config_class(**config["config"])
        features = side_features(dataset) if REGISTRY[model_name].needs_features else None
        model = build_model(model_name, config["n_users"], config["n_items"], model_config, features)
        model.load_state_dict(load_file(str(weights), device=device))
    except (SafetensorError, RuntimeError, TypeError, KeyError, ValueError) as error:
        raise ArtifactCorrupted(
            f"{path} cannot be loaded ({error}); " + retrain_hint(dataset, model_name)
        ) from error
    model.eval()
    return Artifact(model, metrics, history, info, path)


def read_record(dataset_name: str, model_name: str, root: Path | None = None) -> dict:
    """A stored model's JSON files (``config``, ``info``, ``metrics``, ``history``) without its
    weights: what a model card shows. Raises :class:`ArtifactMissing` or :class:`ArtifactCorrupted`."""
    path = _locate(dataset_root(dataset_name, root), model_name)
    if path is None:
        raise ArtifactMissing(f"{model_name} is not trained on {dataset_name} yet")
    return read_model_files(path, dataset_name, model_name)


@dataclass(frozen=True)
class ModelRecord:
    """A trained model's stored files without its weights, metrics typed: what a model card shows."""

    info: dict
    settings: dict  # the config the model was trained with
    history: list[dict]  # one row per epoch (or per setting tried, for a closed-form model)
    results: StoredResults


def read_model_record(dataset_name: str, model_name: str, root: Path | None = None) -> ModelRecord:
    """:func:`read_record`, typed (ArtifactError when the files cannot be read)."""
    files = read_record(dataset_name, model_name, root)
    return ModelRecord(files["info"], files["config"].get("config", {}), files["history"],
                       StoredResults.from_json(files["metrics"]))  # fmt: skip


def read_per_user(dataset_name: str, model_name: str, root: Path | None = None) -> pd.DataFrame:
    path = _locate(dataset_root(dataset_name, root), model_name)
    if path is None or not (path / "per_user_test.parquet").is_file():
        raise ArtifactMissing(f"no per-user metrics for {model_name} on {dataset_name}")
    try:
        frame = pd.read_parquet(path / "per_user_test.parquet")
        lacking = [c for c in ("user", "rank", "NDCG@10", "HR@10") if c not in frame.columns]
        if lacking:
            raise ValueError(f"it lacks the column(s) {', '.join(lacking)}")
        return frame
    except (OSError, ValueError) as error:  # pyarrow's errors derive from these
        raise ArtifactCorrupted(
            f"{path / 'per_user_test.parquet'} is damaged ({error}); " + retrain_hint(dataset_name, model_name)
        ) from error


def read_manifest(dataset_name: str, root: Path | None = None) -> dict:
    """``{"dataset": ..., "models": {name: {...}}}``; empty when nothing is trained.

    The manifest only summarises the model folders, so a missing or damaged one is rebuilt from
    them (in memory; the next stored model writes it back): a broken index never hides a model.
    """
    base = dataset_root(dataset_name, root)
    try:
        manifest = json.loads((base / "manifest.json").read_text())
        _require(isinstance(manifest, dict) and isinstance(manifest.get("models"), dict), "no models object")
        _require(all(isinstance(e, dict) and isinstance(e.get("version"), str) for e in manifest["models"].values()),
                 "an entry without a version")  # fmt: skip
    except (OSError, ValueError):
        return {"dataset": dataset_name, "models": _entries_from_folders(base)}
    # Keep only entries whose directory still exists (a model may have been deleted by hand).
    manifest["models"] = {m: e for m, e in manifest["models"].items() if _locate(base, m)}
    return manifest


def _entries_from_folders(base: Path) -> dict[str, dict]:
    """Manifest entries for every registered model with a folder under ``base``; one whose files
    are damaged is listed too (version "damaged"), so loading it reports what is wrong."""
    entries = {}
    for name in REGISTRY:
        path = _locate(base, name)
        if path is None:
            continue
        try:
            files = read_model_files(path, base.name, name)
        except ArtifactCorrupted:
            entries[name] = {"version": "damaged"}
            continue
        entries[name] = _manifest_entry(files["info"], files["metrics"])
    return entries


def _manifest_entry(info: dict, metrics: dict) -> dict:
    return {
        "version": info["weights_sha256"][:16],
        "trained_at": info.get("trained_at"),
        "seconds": info.get("seconds"),
        "device": info.get("device"),
        "test": {k: v for k, v in metrics.get("test", {}).items() if k in ("NDCG@10", "HR@10")},
    }


def _update_manifest(base: Path, model_name: str, info: dict, metrics: dict) -> None:
    with _file_lock(base / ".manifest.lock"):
        manifest = read_manifest(base.name, base.parent)
        manifest["models"][model_name] = _manifest_entry(info, metrics)
        _write_json(base / "manifest.json", manifest)


@contextlib.contextmanager
def training_lock(dataset_name: str, root: Path | None = None) -> Iterator[None]:
    """One training per dataset at a time; a second one gets :class:`TrainingLocked` at once.

    An OS-level lock (flock) is released by the kernel when its holder dies, so a killed training
    never leaves a stale lock behind.
    """
    base = dataset_root(dataset_name, root)
    base.mkdir(parents=True, exist_ok=True)
    path = base / ".train.lock"
    handle = open(path, "a+")  # noqa: SIM115 - held for the duration of the context
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise TrainingLocked(
                f"a training on {dataset_name} is already running ({holder}); wait for it to finish"
            ) from error
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _write_json(path: Path, payload: object) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(payload, indent=2, default=json_default))
    os.replace(tmp, path)


def json_default(value: object) -> object:
    """numpy and torch numbers and arrays as plain JSON values (``json.dumps(..., default=...)``)."""
    if isinstance(value, np.generic | np.ndarray | torch.Tensor):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def leaderboard(dataset_name: str, stage: str = "test", root: Path | None = None) -> pd.DataFrame:
    """Stored metrics of every trained model, best NDCG@10 first, with 95% CIs and provenance. A
    damaged model is left out here; :func:`damaged_models` says which and why."""
    rows = []
    for name in read_manifest(dataset_name, root)["models"]:
        try:
            files = read_record(dataset_name, name, root)
        except ArtifactError:
            continue
        metrics, info = StoredResults.from_json(files["metrics"]).stage(stage), files["info"]
        if metrics is None:
            continue  # e.g. validation metrics, which the quick profile does not store
        rows.append({
            "model": name,
            "family": info.get("family", ""),
            "NDCG@10": metrics.ndcg_at_10.mean,
            "NDCG@10 95% CI": "[{:.4f}, {:.4f}]".format(*metrics.ndcg_at_10.interval),
            "HR@10": metrics.hr_at_10.mean,
            "HR@10 95% CI": "[{:.4f}, {:.4f}]".format(*metrics.hr_at_10.interval),
            "MRR@10": metrics.mrr_at_10.mean,
            "NDCG@20": metrics.ndcg_at_20.mean,
            "coverage@10": metrics.coverage_at_10,
            "users": metrics.users,
            "train seconds": info.get("seconds"),
            "device": info.get("device_name", info.get("device")),
            "profile": info.get("profile"),
            "trained at": info.get("trained_at"),
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    return frame.sort_values("NDCG@10", ascending=False, ignore_index=True) if rows else frame


def damaged_models(dataset_name: str, root: Path | None = None) -> dict[str, str]:
    """``{model: what is wrong and how to retrain}`` for every stored model whose files are damaged."""
    problems = {}
    for name in read_manifest(dataset_name, root)["models"]:
        try:
            read_record(dataset_name, name, root)
        except ArtifactCorrupted as error:
            problems[name] = str(error)
    return problems


def validation_ndcg(files: dict) -> float | None:
    """A stored model's validation NDCG@10 (files as :func:`read_record` gives them): its stored
    validation metrics (full profile), else the best of its training history, which is the epoch or
    setting whose weights were kept; None when neither was recorded."""
    valid = StoredResults.from_json(files["metrics"]).valid
    if valid is not None:
        return valid.ndcg_at_10.mean
    seen = [row["valid NDCG@10"] for row in files["history"] if isinstance(row.get("valid NDCG@10"), int | float)]
    return max(seen, default=None)


def best_per_family(dataset_name: str, limit: int = 5, root: Path | None = None) -> list[str]:
    """The best trained model of each family by validation NDCG@10, best first, at most ``limit``:
    a short, fair default for a view that compares models (chosen on validation, never on test).
    Models without a validation figure come last, in the order they were trained."""
    best: dict[str, tuple[float, str]] = {}
    for name in read_manifest(dataset_name, root)["models"]:
        try:
            files = read_record(dataset_name, name, root)
        except ArtifactError:
            continue
        family = files["info"].get("family") or (REGISTRY[name].family if name in REGISTRY else name)
        score = validation_ndcg(files)
        score = float("-inf") if score is None else score
        if family not in best or score > best[family][0]:
            best[family] = (score, name)
    ranked = sorted(best.values(), key=lambda pair: -pair[0])  # stable: ties keep the training order
    return [name for _, name in ranked[:limit]]
