"""benchmarks.preset_cost: a short run's parts scaled to the whole preset (the runs are faked here)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import preset_cost
from experiments import lol_train, rse, supervised_train
from experiments.config import flatten, to_dict


def _args(**changes) -> argparse.Namespace:
    base = {"device": "cpu", "episodes": 4, "warmup": 2, "steps": 5, "threads": 1, "timeout": 10.0}
    return argparse.Namespace(**{**base, **changes})


def _fake_run(train: str, metrics: str):
    def run(cmd: list[str], timeout: float) -> tuple[float, str]:
        out = Path(cmd[cmd.index("--out") + 1])
        out.mkdir(parents=True)
        (out / "train.csv").write_text(train, encoding="utf-8")
        (out / "metrics.csv").write_text(metrics, encoding="utf-8")
        return 1.0, ""
    return run


def test_rl_estimate_is_episodes_times_episode_time_plus_evaluations(monkeypatch):
    # episodes 2..6 (after the warm-up of 2) took 8 s: 2 s an episode; one evaluation 3 s
    train = "step,wall_time\n" + "".join(f"{s},{10 + 2 * (s - 2)}\n" for s in range(1, 7))
    monkeypatch.setattr(preset_cost, "_run", _fake_run(train, "step,wall_time,eval/seconds\n6,30,3.0\n"))
    row = preset_cost.measure("lol_train", "shipped", _args())
    cfg = lol_train.PRESETS["shipped"]()
    assert row["s_per_unit"] == 2.0 and row["s_per_eval"] == 3.0
    assert row["estimate_s"] == round(cfg.run.episodes * 2.0 + cfg.run.episodes // cfg.run.eval_every * 3.0)
    assert "--preset shipped" in row["command"] and "--out RUN" in row["command"]


def test_supervised_estimate_scales_the_second_epoch(monkeypatch):
    train = "step,wall_time,charts/epoch_seconds\n1,20,19.0\n2,30,10.0\n"
    monkeypatch.setattr(preset_cost, "_run", _fake_run(train, "step,wall_time,eval/seconds\n2,31,0.5\n"))
    row = preset_cost.measure("supervised_train", "mrpnet-lowlight", _args(steps=5))
    cfg = supervised_train.PRESETS["mrpnet-lowlight"]()
    assert row["s_per_unit"] == 2.0
    assert row["estimate_s"] == round(cfg.train.epochs * (cfg.train.steps_per_epoch * 2.0 + 0.5))


def _rse_run(episodes: int = 6, *, round_seconds: bool = True, second_round: bool = True) -> tuple[str, str]:
    """train.csv and metrics.csv of a timed 2-round rse_train run: 0.1 s a VAE step, 2 s the bank,
    3 s an evaluation, 0.5 s a SAC episode, 5 s a round's closing scoring, 4 s the pool."""
    vae = preset_cost.RSE_VAE_STEPS
    train = {1: 10.0, vae - 1: 10.0 + (vae - 2) * 0.1}
    train[vae] = train[vae - 1] + 0.1 + 2.0
    evals = {vae: train[vae] + 3.0}
    for k in range(1, episodes + 1):
        train[vae + k] = evals[vae] + k * 0.5
    end = vae + episodes
    evals[end] = train[end] + 3.0
    if second_round:
        train[end + 1] = evals[end] + 5.0 + 4.0 + 0.1
    closing = ",5.0" if round_seconds else ","
    metrics = "".join(f"{step},{t},3.0{closing if step == end else ','}\n" for step, t in sorted(evals.items()))
    return ("step,wall_time\n" + "".join(f"{step},{t}\n" for step, t in sorted(train.items())),
            "step,wall_time,eval/seconds,eval/round_seconds\n" + metrics)


def test_rse_estimate_is_its_steps_rounds_and_pools_at_their_own_cost_plus_evaluations(monkeypatch):
    monkeypatch.setattr(preset_cost, "_run", _fake_run(*_rse_run()))
    row = preset_cost.measure("rse_train", "rse-rl", _args(episodes=4, warmup=2))
    cfg = rse.PRESETS["rse-rl"]()
    rounds = cfg.rse.rounds
    vae_steps = cfg.rse.vae_steps + (rounds - 1) * cfg.rse.vae_finetune_steps
    episodes = rounds * cfg.sac.episodes
    evaluations = rounds * (cfg.sac.episodes // cfg.sac.eval_every + 1)  # each phase's start, every N, end
    between = rounds * (2.0 + 5.0) + (rounds - 1) * 4.0  # the banks, closing scorings and pools
    assert (row["s_per_vae_step"], row["s_per_episode"], row["s_per_round"], row["s_per_pool"]) == pytest.approx(
        (0.1, 0.5, 7.0, 4.0))
    assert row["s_per_unit"] == pytest.approx((vae_steps * 0.1 + episodes * 0.5 + between) / (vae_steps + episodes),
                                              abs=1e-4)
    assert row["s_per_eval"] == 3.0
    assert row["estimate_s"] == round(vae_steps * 0.1 + episodes * 0.5 + between + evaluations * 3.0)
    assert "--rounds 2" in row["command"] and f"--vae-steps {preset_cost.RSE_VAE_STEPS}" in row["command"]


@pytest.mark.parametrize("run, error", [
    (_rse_run(episodes=3), f"train.csv lacks step {preset_cost.RSE_VAE_STEPS + 2} or {preset_cost.RSE_VAE_STEPS + 6}"),
    (_rse_run(round_seconds=False), f"metrics.csv lacks eval/round_seconds at step {preset_cost.RSE_VAE_STEPS + 6}"),
    (_rse_run(second_round=False), f"train.csv lacks step {preset_cost.RSE_VAE_STEPS + 7}"),
])
def test_an_rse_run_without_a_part_of_its_timing_is_reported_in_its_row(monkeypatch, run, error):
    monkeypatch.setattr(preset_cost, "_run", _fake_run(*run))
    row = preset_cost.measure("rse_train", "rse-rl", _args(episodes=4, warmup=2))
    assert row["error"] == error and "estimate" not in row


@pytest.mark.parametrize("preset", list(rse.PRESETS))
def test_the_timed_rse_run_is_accepted_and_differs_from_its_preset_only_in_length(preset, tmp_path):
    args = _args(episodes=4, warmup=2)
    cmd = [*preset_cost.command("rse_train", preset, args), "--out", str(tmp_path / "run"), "--print-config"]
    proc = subprocess.run([sys.executable, *cmd[1:]], cwd=preset_cost.ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    timed, whole = flatten(json.loads(proc.stdout)), flatten(to_dict(rse.PRESETS[preset]()))
    changed = {k for k in whole if timed[k] != whole[k]}
    assert changed <= {"rse.rounds", "rse.vae_steps", "rse.vae_finetune_steps", "sac.episodes", "sac.eval_every",
                       "run.samples", "run.device", "run.threads", "run.out"}
    rounds = min(2, whole["rse.rounds"])
    assert (timed["rse.rounds"], timed["rse.vae_steps"], timed["sac.episodes"], timed["sac.eval_every"]) == (
        rounds, preset_cost.RSE_VAE_STEPS, 6, 6)
    assert timed["rse.vae_finetune_steps"] == (preset_cost.RSE_FINETUNE_STEPS if rounds > 1
                                               else whole["rse.vae_finetune_steps"])


def test_a_failed_run_is_reported_in_its_row(monkeypatch):
    monkeypatch.setattr(preset_cost, "_run", lambda cmd, timeout: (0.5, "exit 2: no data"))
    row = preset_cost.measure("lol_train", "shipped", _args())
    assert row["error"] == "exit 2: no data" and "estimate" not in row


def test_bad_counts_are_refused():
    with pytest.raises(SystemExit):
        preset_cost.main(["--episodes", "0"])
