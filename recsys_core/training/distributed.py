"""Data-parallel training with PyTorch's DistributedDataParallel, one process per GPU or per CPU
share, started by ``torchrun`` (on one machine or several): the engine the field trains with, not
a home-made one.

What each process does, and why:
- Every process draws the same global batches (the same seed, so the same order and the same
  sampled negatives) and trains on its own contiguous share of each batch's rows. The shares of a
  batch add up to exactly the batch one process would train on, so 1 process and N processes take
  the same optimiser steps (up to floating-point order, and each process's own dropout masks).
- Each share's loss is weighted by its part of the batch's loss terms (:meth:`Recommender.loss_terms`:
  rows, or next-item targets), times the number of processes, because DDP averages the gradients
  it all-reduces: the average of the weighted gradients is the gradient of the whole batch's loss,
  even when the shares hold different numbers of targets.
- Process 0 alone validates, keeps the best weights, evaluates, and writes the artifact
  (atomically, holding the dataset's lock); the others wait for its decisions (stop or go on) and
  at a barrier after each model. Parameters are replicated in every process: an embedding table
  must fit on one device (sharding tables across devices is TorchRec's job, the next step beyond this).
- A process that dies ends the run: torchrun stops the others, and an artifact is only ever
  replaced whole, so the previous one stays loadable.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from datetime import timedelta

import torch
from torch import distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from recsys_core.models.base import Batch, Recommender

# Process 0 validates and evaluates while the others wait in a collective call; on a large dataset
# that is minutes (a full evaluation of a ranker), far more than gloo's default of 30 minutes allows
# for at the largest sizes here, so the wait is generous: a dead process ends the run through
# torchrun, not through this timeout.
COLLECTIVE_TIMEOUT = timedelta(hours=3)


@dataclass(frozen=True)
class World:
    """This process's place in a data-parallel run; ``World()`` is the single process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    backend: str | None = None
    devices: tuple[str, ...] = ()  # every process's device, in rank order (once the run knows them)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Process 0: the one that validates, evaluates, stores and reports."""
        return self.rank == 0

    def describe(self) -> dict[str, object]:
        """What an artifact records about how it was trained."""
        return {"world_size": self.size, "backend": self.backend, "devices": list(self.devices)}

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def decide(self, value: float) -> float:
        """Process 0's ``value``, in every process (a decision the others follow)."""
        if not self.distributed:
            return value
        holder = torch.tensor([value], dtype=torch.float64)
        dist.broadcast(holder, src=0)
        return float(holder.item())

    def total(self, value: float) -> float:
        """The sum of ``value`` over every process."""
        if not self.distributed:
            return value
        holder = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(holder)
        return float(holder.item())

    def gather(self, value: object) -> list[object]:
        """``value`` from every process, in rank order (small Python objects only)."""
        if not self.distributed:
            return [value]
        values: list[object] = [None] * self.size
        dist.all_gather_object(values, value)
        return values


SINGLE = World()


def launched() -> bool:
    """Whether this process was started by torchrun (or a launcher with its environment) as one
    of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: str) -> World:
    """Join the run torchrun started: the backend chosen from the device (NCCL between GPUs, gloo
    between CPU processes), each process on its own GPU, or with its share of the CPU's cores."""
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", size))
    backend = "nccl" if device == "cuda" else "gloo"
    if device == "cuda":
        torch.cuda.set_device(local_rank)
    elif "DEEPREC_NUM_THREADS" not in os.environ:
        # Processes sharing a machine share its cores; more threads than cores spin-wait.
        os.environ["DEEPREC_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // local_size))
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    return World(rank, size, local_rank, local_size, backend)


def leave(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def process_device(world: World, device: torch.device) -> torch.device:
    """The device this process trains on: its own GPU on a machine with several."""
    if device.type == "cuda" and world.distributed:
        return torch.device("cuda", world.local_rank)
    return device


class _Loss(nn.Module):
    """The model's loss as a forward pass: DDP hooks gradient all-reduce onto a module's forward
    and backward, and a model's training step is its ``loss``, not ``forward``."""

    def __init__(self, model: Recommender) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.model.loss(batch)


def data_parallel(model: Recommender, world: World) -> nn.Module:
    """The module whose forward is a training step's loss: the model's own loss alone, or wrapped
    in DDP (parameters broadcast from process 0, gradients averaged over processes)."""
    step = _Loss(model)
    if not world.distributed:
        return step
    devices = [model.device.index] if model.device.type == "cuda" else None
    # Not every parameter takes part in every step (a ranker's rating offsets train only on rows
    # with a rating), and DDP must be told to look for those rather than wait for their gradients.
    # Buffers are not broadcast at every step: every process builds the same ones from the same data
    # (side features, a graph's adjacency), and only process 0's are stored.
    return DistributedDataParallel(step, device_ids=devices, find_unused_parameters=True, broadcast_buffers=False)


def share(model: Recommender, batch: Batch, world: World) -> tuple[Batch, float]:
    """This process's contiguous share of a global batch's rows, and the factor its loss is
    multiplied by so that DDP's average over processes is the whole batch's loss: (its loss terms
    / the batch's) x the number of processes. A share left empty (a last batch with fewer rows than
    processes) trains on the first row at weight 0, so every process still takes part in the step."""
    if not world.distributed:
        return batch, 1.0
    rows = model.batch_rows(batch)
    start, stop = rows * world.rank // world.size, rows * (world.rank + 1) // world.size

    def cut(first: int, last: int) -> Batch:
        return {k: (v if k in model.batch_shared else v[first:last]) for k, v in batch.items()}

    if stop == start:
        return cut(0, 1), 0.0
    part = cut(start, stop)
    return part, float(model.loss_terms(part)) / max(float(model.loss_terms(batch)), 1.0) * world.size


def torchrun_command(dataset: str, models: list[str], processes: int, nodes: int = 1,
                     endpoint: str | None = None, device: str = "auto") -> str:  # fmt: skip
    """The command that trains ``models`` with ``processes`` per machine on ``nodes`` machines
    (the same command on each; ``endpoint`` is the first machine's host:port)."""
    parts = ["torchrun", f"--nproc_per_node={processes}"]
    if nodes > 1:
        parts += [f"--nnodes={nodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint or 'HOST:29400'}",
                  "--rdzv-id=deeprec"]  # fmt: skip
    else:
        parts.append("--standalone")
    parts += ["-m", "recsys_core", "train", "--dataset", dataset, "--models", ",".join(models), "--device", device]
    return shlex.join(parts)


def slurm_script(dataset: str, models: list[str], processes: int, nodes: int, device: str = "auto") -> str:
    """A Slurm batch script for the same run: one torchrun per machine (``srun``), meeting at the
    first machine of the allocation."""
    train = shlex.join(["-m", "recsys_core", "train", "--dataset", dataset, "--models", ",".join(models),
                        "--device", device])  # fmt: skip
    gpus = f"#SBATCH --gpus-per-node={processes}\n" if device != "cpu" else ""
    return (
        f"#!/bin/bash\n#SBATCH --nodes={nodes}\n#SBATCH --ntasks-per-node=1\n{gpus}"
        'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
        f"srun torchrun --nnodes={nodes} --nproc_per_node={processes} --rdzv-backend=c10d "
        f'--rdzv-endpoint="$head:29400" --rdzv-id="$SLURM_JOB_ID" {train}'
    )
