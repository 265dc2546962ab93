"""Data-parallel training under real ``torchrun`` processes (gloo, on this CPU): two processes take
the same steps as one, process 0 alone stores, and a process that dies leaves the stored model as
it was. Each run starts two Python processes, so the models here are small and trained briefly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from recsys_core.data import load_dataset
from recsys_core.store.artifacts import load_artifact
from recsys_core.training.distributed import World, share, slurm_script, torchrun_command

ROOT = Path(__file__).resolve().parent.parent

# Two processes add the halves of each batch's gradient in another order than one process sums
# the whole batch, so the weights agree to rounding, not bit for bit: the largest difference
# after these runs was 1e-8 (bpr) and 1.2e-7 (sasrec) when written, against the 1e-4 allowed.
TOLERANCE = 1e-4

SMALL = {
    "bpr": {"epochs": 3, "patience": 10, "batch_size": 256},
    # No dropout: each process draws its own masks, which is the one place the runs may differ.
    "sasrec": {"epochs": 2, "patience": 10, "dropout": 0.0, "n_layers": 1, "max_len": 20, "batch_size": 32},
}


def train_command(models: str, overrides: dict, processes: int, journal: Path | None = None) -> list[str]:
    args = ["-m", "recsys_core", "train", "--dataset", "synthetic", "--models", models, "--device", "cpu",
            "--no-maps", "--overrides", json.dumps(overrides)]  # fmt: skip
    if journal:
        args += ["--progress-jsonl", str(journal)]
    if processes == 1:
        return [sys.executable, *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *args]


def run(command: list[str], store: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEEPREC_ARTIFACTS_DIR": str(store), "DEEPREC_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def stored(store: Path, model: str, monkeypatch):
    monkeypatch.setenv("DEEPREC_ARTIFACTS_DIR", str(store))
    return load_artifact(load_dataset("synthetic"), model)


@pytest.mark.parametrize("model", ["bpr", "sasrec"])
def test_two_processes_reach_the_weights_of_one_with_the_same_global_batch(model, tmp_path, monkeypatch):
    overrides = {model: SMALL[model]}
    one = run(train_command(model, overrides, 1), tmp_path / "one")
    two = run(train_command(model, overrides, 2), tmp_path / "two")
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    single, parallel = stored(tmp_path / "one", model, monkeypatch), stored(tmp_path / "two", model, monkeypatch)
    assert parallel.info["world_size"] == 2 and parallel.info["backend"] == "gloo"
    assert parallel.info["devices"] == ["cpu", "cpu"]
    assert single.info["world_size"] == 1
    assert [row["epoch"] for row in parallel.history] == [row["epoch"] for row in single.history]
    for (name, a), (_, b) in zip(single.model.state_dict().items(), parallel.model.state_dict().items(), strict=True):
        if name.endswith("qkv.bias"):
            # The key bias adds the same amount to every score of a query's softmax, so its true
            # gradient is zero: what it gets is rounding noise, which Adam scales up to full steps.
            # Its values are noise in both runs; the query and value biases are compared.
            dim = len(a) // 3
            a, b = torch.cat([a[:dim], a[2 * dim :]]), torch.cat([b[:dim], b[2 * dim :]])
        if a.is_floating_point():
            assert torch.allclose(a, b, atol=TOLERANCE, rtol=TOLERANCE), (name, (a - b).abs().max().item())
        else:
            assert torch.equal(a, b), name
    # The weights moved: equal because both trained the same way, not because neither trained.
    assert single.history[-1]["loss"] < single.history[0]["loss"]
    # Process 0 stored the model once; the other process reports its share and stores nothing.
    assert f"{model}: test NDCG@10" in two.stdout and two.stdout.count(f"{model}: test NDCG@10") == 1
    manifest = json.loads((tmp_path / "two" / "synthetic" / "manifest.json").read_text())
    assert list(manifest["models"]) == [model]
    assert len(list((tmp_path / "two" / "synthetic" / model).glob("*.safetensors"))) == 1


def test_every_torch_model_trains_with_two_processes_and_closed_form_ones_on_process_0(tmp_path, monkeypatch):
    from recsys_core.models import REGISTRY

    trained = [name for name, cls in REGISTRY.items() if cls.trainable]
    models = ["ease", *trained]  # NeuMF after GMF and MLP: the other process loads what process 0 stored
    overrides = {name: {"epochs": 1} for name in trained}
    command = train_command(",".join(models), overrides, 2)
    done = run([*command, "--quick"], tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in models:
        artifact = stored(tmp_path, name, monkeypatch)
        assert artifact.info["world_size"] == 2, name
    notes = stored(tmp_path, "neumf", monkeypatch).info["notes"]
    assert not any(note.startswith("trained from scratch") for note in notes), notes


def test_a_killed_process_ends_the_run_and_leaves_the_previous_model_loadable(tmp_path, monkeypatch):
    store = tmp_path / "store"
    first = run(train_command("bpr", {"bpr": SMALL["bpr"]}, 1), store)
    assert first.returncode == 0, first.stderr[-2000:]
    before = stored(store, "bpr", monkeypatch)
    journal = tmp_path / "progress.jsonl"
    endless = {"bpr": {"epochs": 100_000, "patience": 100_000, "batch_size": 256}}
    env = {**os.environ, "DEEPREC_ARTIFACTS_DIR": str(store), "DEEPREC_NUM_THREADS": "1"}
    launcher = subprocess.Popen(train_command("bpr", endless, 2, journal), cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        pids = epochs = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not epochs:
            time.sleep(0.5)
            events = [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []
            pids = next((e["pids"] for e in events if e["event"] == "start"), None)
            epochs = [e for e in events if e.get("kind") == "epoch"]
        assert pids and len(pids) == 2 and epochs, "the two-process run never got through an epoch"
        os.kill(pids[1], signal.SIGKILL)
        _, err = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    assert launcher.returncode != 0
    assert "Signal 9" in err or "SIGKILL" in err or "exitcode" in err, err[-2000:]
    after = stored(store, "bpr", monkeypatch)
    assert after.version == before.version
    assert torch.equal(after.model.item_embedding.weight, before.model.item_embedding.weight)


class _Rows(torch.nn.Module):
    """Stands in for a model: two per-example entries, one shared, a loss over non-zero targets."""

    batch_shared = ("negative",)

    def batch_rows(self, batch):
        return len(batch["history"])

    def loss_terms(self, batch):
        return int((batch["history"] > 0).sum())


def test_the_shares_of_a_batch_cover_its_rows_once_and_their_weights_add_up_to_the_processes():
    batch = {"history": torch.tensor([[0, 1], [2, 3], [0, 0], [4, 5], [0, 6]]), "negative": torch.arange(7)}
    model, parts = _Rows(), []
    for rank in range(3):
        part, weight = share(model, batch, World(rank=rank, size=3))
        assert torch.equal(part["negative"], batch["negative"])  # shared entries go whole to everyone
        parts.append((part, weight))
    assert torch.equal(torch.cat([p["history"] for p, _ in parts]), batch["history"])
    # Weights: each share's targets over the batch's (6), times the 3 processes DDP averages over.
    assert sum(w for _, w in parts) == pytest.approx(3.0)
    assert [w for _, w in parts] == pytest.approx([1 / 6 * 3, 2 / 6 * 3, 3 / 6 * 3])
    # Fewer rows than processes: the empty share trains on one row at weight 0.
    tiny = {"history": torch.tensor([[1, 2]]), "negative": torch.arange(2)}
    part, weight = share(model, tiny, World(rank=0, size=2))
    assert weight == 0.0 and len(part["history"]) == 1


def test_the_printed_commands_for_one_machine_several_and_slurm():
    one = torchrun_command("ml-1m-sas.csv", ["sasrec"], 4)
    assert one.startswith("torchrun --nproc_per_node=4 --standalone -m recsys_core train")
    several = torchrun_command("ml-1m-sas.csv", ["sasrec", "bpr"], 8, nodes=2, endpoint="node1:29400")
    assert "--nnodes=2" in several and "--rdzv-endpoint=node1:29400" in several and "sasrec,bpr" in several
    script = slurm_script("ml-1m-sas.csv", ["sasrec"], 8, 2, "cuda")
    assert "#SBATCH --nodes=2" in script and "--gpus-per-node=8" in script and "srun torchrun" in script


def test_the_cli_prints_the_torchrun_commands_and_trains_nothing(isolated_store, capsys):
    from recsys_core.__main__ import main

    assert main(["train", "--dataset", "synthetic", "--models", "sasrec", "--print-torchrun", "2"]) == 0
    printed = capsys.readouterr().out
    assert "--nproc_per_node=2 --standalone" in printed and "--nnodes=2" in printed and "#SBATCH" in printed
    assert not (isolated_store / "synthetic").exists()
    assert main(["train", "--dataset", "synthetic", "--models", "sasrec", "--print-torchrun", "0"]) == 2
    assert "must be at least 1" in capsys.readouterr().err
