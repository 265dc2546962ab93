"""The GPU bench's report: per-model ratios from planted step times, and runs merged in order."""

from bench import gpu


def timed(step_s: float, steps: int = 10) -> dict:
    return {"step_s": step_s, "steps_timed": 50, "epoch_s": step_s * steps, "peak_gpu_mb": 100.0}


def run(started: str, steps: dict, full: dict) -> dict:
    return {"dataset": "planted", "users": 10, "items": 20, "interactions": 300, "protocol": "leave-last-out",
            "started": started, "environment": {"machine": "x86_64, 16 cores", "python": "3.12", "torch": "2",
                                                "gpu": "GPU", "gpu_memory_gib": 80, "cuda": "13"},
            "steps": steps, "full": full}  # fmt: skip


def row(bf16: float, fp32: float, cpu: float) -> dict:
    return {"steps_per_epoch": 10, "data_s_per_epoch": 0.5, "batch_size": 128, "notes": [],
            "gpu_bf16": timed(bf16), "gpu_fp32": timed(fp32), "cpu": timed(cpu)}  # fmt: skip


def test_each_model_is_reported_from_its_latest_run_with_its_ratios():
    first = run("2026-01-01 10:00", {"sasrec": row(0.5, 0.1, 1.0), "bpr": row(0.01, 0.01, 0.02)}, {})
    failed = {"ok": False, "error": "RuntimeError: a | b\nsecond line"}
    second = run("2026-01-01 11:00", {"sasrec": row(0.1, 0.2, 2.0), "gmf": failed}, {"sasrec": failed})
    text = gpu.report([first, second], cpu={})
    lines = text.splitlines()
    sasrec = next(line for line in lines if line.startswith("| sasrec | 2 | 128"))
    # Run 2's figures: fp32 2 s an epoch, bf16 1 s, the CPU 20 s: 10x the fp32 GPU, which bf16 halves.
    assert "| 2.00 | 1.00 | 20 | 10.0x | 2.0x | 100 |" in sasrec
    assert any(line.startswith("| bpr | 1 | 128") for line in lines)  # timed in run 1 only
    # A later failure does not hide an earlier measurement.
    third = run("2026-01-01 12:00", {"bpr": failed}, {})
    assert "| bpr | 1 | 128" in gpu.report([first, second, third], cpu={})
    assert "| gmf | 2 | failed: RuntimeError: a \\| b |" in text  # one line, its | escaped
    assert "| sasrec | 2 | failed: RuntimeError: a \\| b |" in text
    for table in ("| model | run | batch", "| model | run | precision"):
        rows = lines[lines.index(next(line for line in lines if line.startswith(table))) :]
        rows = rows[: rows.index("")]
        cells = {row.replace("\\|", "").count("|") for row in rows}
        assert len(cells) == 1, f"every row of {table!r} has as many cells as its header"
    assert text.startswith(gpu.MARKER) and text.endswith(gpu.MARKER)


def test_full_runs_are_compared_with_the_cpu_runs_of_the_same_model():
    cpu = {"sasrec": {"train_s": 600.0, "s_per_epoch": 30.0, "test": {"NDCG@10": [0.18, 0.17, 0.19]}}}
    full = {"sasrec": {"ok": True, "seconds": 60.0, "precision": "fp32", "best_epoch": 8, "epochs_run": 15,
                       "s_per_epoch": 1.0,
                       "test": {"NDCG@10": [0.17, 0.16, 0.18], "HR@10": [0.3, 0.29, 0.31]}}}  # fmt: skip
    text = gpu.report([run("2026-01-01 10:00", {}, full)], cpu)
    gpu_cells = "| sasrec | 1 | fp32 | 1.0 | 15 (8) | 1.00 | 0.1700 [0.160, 0.180] |"
    assert f"{gpu_cells} 10.0 | 30 | 0.1800 [0.170, 0.190] | 10.0x |" in text  # 10 minutes against 1
