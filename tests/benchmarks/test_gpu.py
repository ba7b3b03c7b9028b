"""benchmarks.gpu: its tables and JSON with the trainer runs stubbed (one of them failing, a GPU
pretended), its arguments, its timing; its trainer runs (benchmarks.trainer_runs) on real runs that fail or
time out; the profile of an episode (benchmarks.episode_profile)."""

import json
import os
import subprocess
import time

import pytest
import torch

from benchmarks import episode_profile, gpu, trainer_runs
from benchmarks.trainer_runs import episodes_per_second


def test_figure_cells_and_ratios():
    assert trainer_runs.Figure(12.345).cell == "12.35" and not trainer_runs.Figure(12.345).failed
    assert trainer_runs.Figure(error="unavailable: no CUDA device").cell == "unavailable"
    assert trainer_runs.Figure(error="not run: 2 ranks need 2 GPUs").cell == "not run"
    failed = trainer_runs.attempt(lambda: 1 / 0)
    assert failed.failed and failed.cell == "failed" and failed.error.startswith("ZeroDivisionError")
    assert trainer_runs.attempt(lambda: 4).value == 4.0
    assert trainer_runs.ratio(trainer_runs.Figure(6.0), trainer_runs.Figure(2.0)) == "3.00x"
    assert trainer_runs.ratio(trainer_runs.Figure(6.0), failed) == "-"


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
                ["--json", str(tmp_path)], ["--before", str(tmp_path)], ["--presets", "lol_train:nope"],
                ["--presets", "shipped"], ["--budget", "0"]):
        with pytest.raises(SystemExit):
            gpu.parse_args(bad)


def test_the_training_runs_come_most_wanted_first(tmp_path):
    runs = trainer_runs.training_runs(gpu.parse_args(["--lol-batch", "8", "64", "512", "--denoise-batch", "16"]))
    assert [(r.trainer, r.batch, r.device) for r in runs] == [
        ("lol_train", 512, "cuda"), ("denoise_train", 16, "cuda"), ("lol_train", 64, "cuda"), ("lol_train", 8, "cuda"),
        ("lol_train", 8, "cpu"), ("denoise_train", 16, "cpu")]
    (tmp_path / "experiments").mkdir()
    for name in ("lol_train", "denoise_train"):
        (tmp_path / "experiments" / f"{name}.py").touch()
    runs = trainer_runs.training_runs(gpu.parse_args(["--no-cpu", "--lol-batch", "8", "64", "--denoise-batch", "16",
                                                      "--before", str(tmp_path)]))
    assert [(r.trainer, r.batch, r.tree) for r in runs] == [
        ("lol_train", 64, "after"), ("lol_train", 64, "before"), ("denoise_train", 16, "after"),
        ("denoise_train", 16, "before"), ("lol_train", 8, "after"), ("lol_train", 8, "before")]
    assert all(r.device == "cuda" for r in runs)


def test_the_presets_without_a_gpu_cost_are_the_default():
    from experiments import denoise_train, lol_train

    unmeasured = gpu.unmeasured_presets()
    assert "lol_train:shipped-sac" in unmeasured and "denoise_train:noise-map" in unmeasured
    assert lol_train.PRESETS["shipped-sac"].cuda is None and denoise_train.PRESETS["noise-map"].cuda is None
    assert "lol_train:shipped" not in unmeasured  # measured: its cost on a GPU is recorded


def test_tables_and_json_with_stubbed_runs(monkeypatch, tmp_path, capsys):
    """Each run is measured once (the data-parallel table reuses the training table's one process),
    with the trainer's module, torchrun's launcher, the device, batch and data arguments and the tree
    it runs from (--before's copy at each trainer's first and last batch); a failed run is marked and
    its error printed; CUDA ranks beyond the GPUs are not run; crops/s are episodes/s times the batch."""
    runs = []
    before = tmp_path / "before"
    for module in gpu.TRAINERS.values():
        path = (before / module.replace(".", "/")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    def fake_rate(episodes, warmup, env, threads, *, module, launcher, extra, timeout, root):
        runs.append((module, tuple(launcher[-1:]), tuple(extra), root == before))
        if module == "experiments.denoise_train" and "32" in extra and "cpu" in extra:
            raise RuntimeError("denoise_train exited with 2: out of memory")
        rate = (10.0 if "cuda" in extra else 2.0) * (int(launcher[-1]) if launcher else 1)
        return rate / 2 if root == before else rate

    monkeypatch.setattr(trainer_runs, "episodes_per_second", fake_rate)
    monkeypatch.setattr(gpu, "machine", lambda: {"cores": 16, "torch": "x", "cuda": "13.0", "gpus": 1, "gpu": "G",
                                                 "trainer_threads": 15})
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    calls = []
    monkeypatch.setattr(gpu, "inference_cases", lambda args: [
        ("model", "4x4", lambda device: (lambda: calls.append(device)), 2)])
    out = tmp_path / "gpu.json"
    report = gpu.main(["--episodes", "6", "--denoise-episodes", "4", "--warmup", "2", "--lol-batch", "8",
                       "--denoise-batch", "32", "64", "--ddp-batch", "8", "--ddp-ranks", "1", "2", "--calls", "2",
                       "--warmup-calls", "1", "--lol-data", str(tmp_path), "--before", str(before), "--json", str(out)])
    # CUDA: lol 8, denoise 32 and 64; before: lol 8, denoise 32 and 64; CPU: lol 8, denoise 32; torchrun: 3
    # (the one CUDA process is the training table's run)
    assert len(runs) == len(set(runs)) == 11
    lol_cpu = ("experiments.lol_train", (), ("--device", "cpu", "--batch", "8", "--data", str(tmp_path)), False)
    assert lol_cpu in runs and ("experiments.lol_train", ("2",), lol_cpu[2], False) in runs
    assert ("experiments.denoise_train", (), ("--device", "cuda", "--batch", "64", "--eval-images", "1"), True) in runs
    assert ("experiments.denoise_train", (), ("--device", "cuda", "--batch", "64", "--eval-images", "1"), False) in runs
    assert calls.count("cpu") == calls.count("cuda") == 3  # 1 warm-up + 2 timed calls each
    text = capsys.readouterr().out
    assert "| trainer | global --batch | CUDA crops/s | before: CUDA crops/s | after / before | CPU crops/s |" in text
    assert "| lol_train | 8 | 80.00 | 40.00 | 2.00x | 16.00 | 5.00x |" in text
    assert "| denoise_train | 32 | 320.00 | 160.00 | 2.00x | failed | - |" in text
    assert "| denoise_train | 64 | 640.00 | 320.00 | 2.00x | not run | - |" in text
    assert "\npython -m experiments.denoise_train --episodes 4" in text
    assert "- RuntimeError: denoise_train exited with 2: out of memory" in text
    assert "| cpu | torchrun --nproc_per_node 2 (gloo) | 2 | " in text and "| 4.00 | 2.00x |" in text
    assert "| cuda | one process | 1 | " in text and "| 10.00 | 1.00x |" in text  # the training table's run
    assert "| cuda | torchrun --nproc_per_node 2 (NCCL) | 2 | " in text and "| not run | - |" in text
    assert "python -m torch.distributed.run --standalone --nproc_per_node 2 -m experiments.lol_train" in text
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(report))
    by_run = {(r["trainer"], r["batch"], r["device"], r["ranks"], r["tree"]): r for r in saved["training"]}
    assert by_run["lol_train", 8, "cuda", 0, "after"]["crops_per_s"] == 80.0
    assert by_run["denoise_train", 64, "cuda", 0, "before"]["episodes_per_s"] == 5.0
    assert by_run["denoise_train", 32, "cpu", 0, "after"]["error"].endswith("out of memory")
    assert by_run["lol_train", 8, "cuda", 2, "after"]["error"].startswith("not run")
    assert [r["device"] for r in saved["inference"]] == ["cpu", "cuda"] and saved["inference"][0]["ms"] >= 0


def test_a_budget_stops_starting_runs_and_a_failing_part_leaves_the_others(monkeypatch, capsys):
    now = [0.0]

    def run(*args, **kwargs):  # each run takes 70 s
        now[0] += 70.0
        return 1.0

    monkeypatch.setattr(gpu.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(trainer_runs, "episodes_per_second", run)
    monkeypatch.setattr(gpu, "machine", lambda: {"cores": 2, "torch": "x", "cuda": None, "gpus": 0, "gpu": None,
                                                 "trainer_threads": 1})
    monkeypatch.setattr(gpu, "inference_table", lambda args, gpus: 1 / 0)
    report = gpu.main(["--quick", "--budget", "80", "--parts", "inference", "training"])
    assert report["errors"]["inference"].startswith("ZeroDivisionError")
    cells = {(r["trainer"], r["device"]): r["error"] or "ran" for r in report["training"]}
    assert cells["lol_train", "cuda"].startswith("unavailable") and cells["lol_train", "cpu"] == "ran"
    assert cells["denoise_train", "cpu"].startswith("not run: out of time")


@pytest.mark.slow
def test_the_profile_counts_a_trainers_ops_per_step_and_where_its_time_goes(capsys):
    args = gpu.parse_args(["--quick", "--profile-episodes", "1"])
    record = episode_profile.profile_trainer("denoise_train", "cpu", args)
    assert record["steps_per_episode"] == 5 and record["torch_ops_per_step"] > 10
    assert 0 < record["share_a3c_update"] < 1 and 0 < record["share_env_step"] < 1
    assert record["crops_per_s"] > 0 and capsys.readouterr().out == ""  # the trainer's own lines kept back


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
