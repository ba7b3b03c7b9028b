"""benchmarks.preset_cost: a short run's parts scaled to the whole preset (the runs are faked here)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from benchmarks import preset_cost
from experiments import lol_train, supervised_train


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


def test_a_failed_run_is_reported_in_its_row(monkeypatch):
    monkeypatch.setattr(preset_cost, "_run", lambda cmd, timeout: (0.5, "exit 2: no data"))
    row = preset_cost.measure("lol_train", "shipped", _args())
    assert row["error"] == "exit 2: no data" and "estimate" not in row


def test_bad_counts_are_refused():
    with pytest.raises(SystemExit):
        preset_cost.main(["--episodes", "0"])
