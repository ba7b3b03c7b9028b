"""benchmarks.gpu: its tables and JSON with the trainer runs stubbed (one of them failing, a GPU
pretended), its arguments, its timing; and its trainer-run helper on real runs that fail or time out."""

import json
import os
import subprocess
import time

import pytest
import torch

from benchmarks import gpu
from benchmarks.gpu import episodes_per_second


def test_figure_cells_and_ratios():
    assert gpu.Figure(12.345).cell == "12.35" and not gpu.Figure(12.345).failed
    assert gpu.Figure(error="unavailable: no CUDA device").cell == "unavailable"
    assert gpu.Figure(error="not run: 2 ranks need 2 GPUs").cell == "not run"
    failed = gpu.attempt(lambda: 1 / 0)
    assert failed.failed and failed.cell == "failed" and failed.error.startswith("ZeroDivisionError")
    assert gpu.attempt(lambda: 4).value == 4.0
    assert gpu.ratio(gpu.Figure(6.0), gpu.Figure(2.0)) == "3.00x"
    assert gpu.ratio(gpu.Figure(6.0), failed) == "-"


def test_median_ms_times_each_call_after_the_warmup(monkeypatch):
    clock = iter([0.0, 0.001, 1.0, 1.005, 2.0, 2.003])  # timed calls of 1, 5 and 3 ms
    monkeypatch.setattr(gpu.time, "perf_counter", lambda: next(clock))
    calls = []
    assert gpu.median_ms(lambda: calls.append(1), "cpu", warmup=2, calls=3) == pytest.approx(3.0)
    assert len(calls) == 5
    with pytest.raises(ValueError, match="calls"):
        gpu.median_ms(lambda: None, "cpu", warmup=0, calls=0)


def test_quick_sets_defaults_that_flags_override(tmp_path):
    args = gpu.parse_args(["--quick", "--episodes", "9"])
    assert args.episodes == 9 and args.denoise_episodes == gpu.QUICK["denoise_episodes"] and args.lol_batch == [8]
    assert gpu.parse_args([]).lol_batch == gpu.FULL["lol_batch"]
    for bad in (["--ddp-batch", "8", "--ddp-ranks", "3"], ["--warmup", "40"], ["--lol-data", str(tmp_path / "no")],
                ["--json", str(tmp_path)]):
        with pytest.raises(SystemExit):
            gpu.parse_args(bad)


def test_tables_and_json_with_stubbed_runs(monkeypatch, tmp_path, capsys):
    """Each run is measured once (the data-parallel table reuses the training table's one process),
    with the trainer's module, torchrun's launcher and the device, batch and data arguments; a
    failed run is marked and its error printed; CUDA ranks beyond the GPUs are not run."""
    runs = []

    def fake_rate(episodes, warmup, env, threads, *, module, launcher, extra, timeout):
        runs.append((module, tuple(launcher[-1:]), tuple(extra)))
        if module == "experiments.denoise_train" and "32" in extra:
            raise RuntimeError("denoise_train exited with 2: out of memory")
        return (10.0 if "cuda" in extra else 2.0) * (int(launcher[-1]) if launcher else 1)

    monkeypatch.setattr(gpu, "episodes_per_second", fake_rate)
    monkeypatch.setattr(gpu, "machine", lambda: {"cores": 16, "torch": "x", "cuda": "13.0", "gpus": 1, "gpu": "G",
                                                 "trainer_threads": 15})
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    calls = []
    monkeypatch.setattr(gpu, "inference_cases", lambda args: [
        ("model", "4x4", lambda device: (lambda: calls.append(device)), 2)])
    out = tmp_path / "gpu.json"
    report = gpu.main(["--episodes", "6", "--denoise-episodes", "4", "--warmup", "2", "--lol-batch", "8",
                       "--denoise-batch", "8", "32", "--ddp-batch", "8", "--ddp-ranks", "1", "2", "--calls", "2",
                       "--warmup-calls", "1", "--lol-data", str(tmp_path), "--json", str(out)])
    assert len(runs) == len(set(runs)) == 9  # 2 lol + 4 denoise + torchrun: cpu 1, 2 ranks, cuda 1 rank
    lol_cpu = ("experiments.lol_train", (), ("--device", "cpu", "--batch", "8", "--data", str(tmp_path)))
    assert lol_cpu in runs and ("experiments.lol_train", ("2",), lol_cpu[2]) in runs
    assert ("experiments.denoise_train", (), ("--device", "cuda", "--batch", "8", "--eval-images", "1")) in runs
    assert calls.count("cpu") == calls.count("cuda") == 3  # 1 warm-up + 2 timed calls each
    text = capsys.readouterr().out
    assert "| lol_train | 8 | " in text and "| 2.00 | 10.00 | 5.00x |" in text
    assert "| denoise_train | 32 | " in text and "| failed | failed | - |" in text
    assert "- RuntimeError: denoise_train exited with 2: out of memory" in text
    assert "| cpu | torchrun --nproc_per_node 2 (gloo) | 2 | " in text and "| 4.00 | 2.00x |" in text
    assert "| cuda | torchrun --nproc_per_node 2 (NCCL) | 2 | " in text and "| not run | - |" in text
    assert "python -m torch.distributed.run --standalone --nproc_per_node 2 -m experiments.lol_train" in text
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(report))
    by_run = {(r["trainer"], r["batch"], r["device"], r["ranks"]): r for r in saved["training"]}
    assert by_run["lol_train", 8, "cuda", 1]["episodes_per_s"] == 10.0
    assert by_run["denoise_train", 32, "cpu", 0]["error"].endswith("out of memory")
    assert by_run["lol_train", 8, "cuda", 2]["error"].startswith("not run")
    assert [r["device"] for r in saved["inference"]] == ["cpu", "cuda"] and saved["inference"][0]["ms"] >= 0


@pytest.mark.slow
def test_a_failed_trainer_run_says_why():
    with pytest.raises(RuntimeError, match=r"exited with 2: .*batch 0: expected an integer"):
        episodes_per_second(4, 1, dict(os.environ), 1, extra=("--batch", "0"))


@pytest.mark.slow
def test_a_run_past_its_timeout_is_stopped():
    start = time.perf_counter()
    with pytest.raises(subprocess.TimeoutExpired):
        episodes_per_second(1000, 1, dict(os.environ), 1, module="experiments.denoise_train", timeout=0.5)
    assert time.perf_counter() - start < 20.0
