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


def _rse_train_csv(vae_s: float, episode_s: float, episodes: int) -> str:
    """train.csv of a timed rse_train run: VAE rows at steps 1, 51 and 52 (the bank: 2 s more), then the
    SAC episodes (the first after an evaluation: 9 s more)."""
    vae = preset_cost.RSE_VAE_STEPS
    wall = {1: 10.0, vae - 1: 10.0 + (vae - 2) * vae_s}
    wall[vae] = wall[vae - 1] + vae_s + 2.0
    for k in range(1, episodes + 1):
        wall[vae + k] = wall[vae] + 9.0 + k * episode_s
    return "step,wall_time\n" + "".join(f"{step},{t}\n" for step, t in sorted(wall.items()))


def test_rse_estimate_is_its_vae_steps_and_episodes_at_their_own_cost_plus_evaluations(monkeypatch):
    train = _rse_train_csv(0.1, 0.5, episodes=6)
    metrics = "step,wall_time,eval/seconds,eval/round_seconds\n52,30,3.0,\n58,35,3.0,5.0\n"
    monkeypatch.setattr(preset_cost, "_run", _fake_run(train, metrics))
    row = preset_cost.measure("rse_train", "rse-rl", _args(episodes=4, warmup=2))
    cfg = rse.PRESETS["rse-rl"]()
    vae_steps = cfg.rse.vae_steps + (cfg.rse.rounds - 1) * cfg.rse.vae_finetune_steps
    episodes = cfg.rse.rounds * cfg.sac.episodes
    evaluations = cfg.rse.rounds * (cfg.sac.episodes // cfg.sac.eval_every + 1)  # each phase's start, every N, end
    rounds = cfg.rse.rounds * (2.0 + 5.0)  # each round's bank and closing scoring
    assert row["s_per_vae_step"] == pytest.approx(0.1) and row["s_per_episode"] == pytest.approx(0.5)
    assert row["s_per_round"] == pytest.approx(7.0)
    assert row["s_per_unit"] == pytest.approx((vae_steps * 0.1 + episodes * 0.5 + rounds) / (vae_steps + episodes),
                                              abs=1e-4)
    assert row["s_per_eval"] == 3.0
    assert row["estimate_s"] == round(vae_steps * 0.1 + episodes * 0.5 + rounds + evaluations * 3.0)
    assert "--rounds 1" in row["command"] and f"--vae-steps {preset_cost.RSE_VAE_STEPS}" in row["command"]


def test_an_rse_run_without_its_timed_episodes_or_round_time_is_reported_in_its_row(monkeypatch):
    train = _rse_train_csv(0.1, 0.5, episodes=3)  # the warm-up and one episode: the timing needs 6
    metrics = "step,wall_time,eval/seconds,eval/round_seconds\n55,35,3.0,5.0\n"
    monkeypatch.setattr(preset_cost, "_run", _fake_run(train, metrics))
    row = preset_cost.measure("rse_train", "rse-rl", _args(episodes=4, warmup=2))
    assert row["error"] == f"train.csv lacks step {preset_cost.RSE_VAE_STEPS + 2} or {preset_cost.RSE_VAE_STEPS + 6}"
    assert "estimate" not in row
    monkeypatch.setattr(preset_cost, "_run", _fake_run(_rse_train_csv(0.1, 0.5, episodes=6),
                                                       "step,wall_time,eval/seconds\n58,35,3.0\n"))
    row = preset_cost.measure("rse_train", "rse-rl", _args(episodes=4, warmup=2))
    assert row["error"] == "metrics.csv lacks eval/round_seconds" and "estimate" not in row


@pytest.mark.parametrize("preset", list(rse.PRESETS))
def test_the_timed_rse_run_is_accepted_and_differs_from_its_preset_only_in_length(preset, tmp_path):
    args = _args(episodes=4, warmup=2)
    cmd = [*preset_cost.command("rse_train", preset, args), "--out", str(tmp_path / "run"), "--print-config"]
    proc = subprocess.run([sys.executable, *cmd[1:]], cwd=preset_cost.ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    timed, whole = flatten(json.loads(proc.stdout)), flatten(to_dict(rse.PRESETS[preset]()))
    changed = {k for k in whole if timed[k] != whole[k]}
    assert changed <= {"rse.rounds", "rse.vae_steps", "sac.episodes", "sac.eval_every", "run.samples", "run.device",
                       "run.threads", "run.out"}
    assert (timed["rse.rounds"], timed["rse.vae_steps"], timed["sac.episodes"], timed["sac.eval_every"]) == (
        1, preset_cost.RSE_VAE_STEPS, 6, 6)


def test_a_failed_run_is_reported_in_its_row(monkeypatch):
    monkeypatch.setattr(preset_cost, "_run", lambda cmd, timeout: (0.5, "exit 2: no data"))
    row = preset_cost.measure("lol_train", "shipped", _args())
    assert row["error"] == "exit 2: no data" and "estimate" not in row


def test_bad_counts_are_refused():
    with pytest.raises(SystemExit):
        preset_cost.main(["--episodes", "0"])
