"""Where training runs: the device (CUDA, Apple MPS or the CPU), the CPU threads it may use, bf16
support, and the seeds that make a run repeatable."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def cpu_threads() -> int:
    """The CPU threads training may use: all cores, unless DEEPREC_NUM_THREADS caps them for a
    machine shared with other jobs (oversubscribed torch threads spin-wait and run many times slower)."""
    return int(os.environ.get("DEEPREC_NUM_THREADS", 0)) or os.cpu_count() or 1


def mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device_name(choice: str = "auto") -> str:
    """``auto`` as what it means here: CUDA if available, else Apple MPS, else the CPU."""
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if mps_available() else "cpu"


def resolve_device(choice: str = "auto") -> torch.device:
    """CUDA if available, else Apple MPS, else the CPU with all its cores."""
    choice = resolve_device_name(choice)
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but no CUDA GPU is available")
    if choice == "cpu":
        torch.set_num_threads(cpu_threads())
    return torch.device(choice)


def gpu_count() -> int:
    """CUDA GPUs visible here: a data-parallel run can use one process per GPU."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def available_devices() -> dict[str, str]:
    """The devices training can use here, best first, each with what it is (GPU name and memory)."""
    devices = {}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        count = torch.cuda.device_count()
        devices["cuda"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB" + (
            f" (GPU 0 of {count})" if count > 1 else ""
        )
    if mps_available():
        devices["mps"] = "Apple MPS"
    cap = int(os.environ.get("DEEPREC_NUM_THREADS", 0))
    devices["cpu"] = f"CPU, {os.cpu_count()} cores" + (f" (capped at {cap} threads)" if cap else "")
    return devices


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({os.cpu_count()} cores)"


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (otherwise bf16 is emulated, and slow)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def seed_everything(seed: int) -> np.random.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
