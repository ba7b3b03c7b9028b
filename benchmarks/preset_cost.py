"""What each trainer preset costs on this machine: a short timed run of it, scaled to the whole preset.

    python -m benchmarks.preset_cost [--device cpu|cuda] [--trainers lol_train rse_train ...]
        [--presets NAME ...] [--episodes 6] [--warmup 2] [--steps 4] [--threads 0] [--timeout 300]
        [--json PATH]

For each preset of each trainer (``--preset NAME`` of ``experiments.<trainer>``) it runs a short version of the
preset in a fresh process on ``--device``, times its parts and prints the whole preset's estimate (the
trainer's own ``estimate_seconds``, :class:`experiments.config.Cost`), with the command of the timed run:

* RL trainers (``lol_train``, ``denoise_train``, ``completion_train``): ``--warmup`` + ``--episodes``
  episodes and one evaluation; seconds per episode from train.csv (warm-up left out), per evaluation
  from metrics.csv (``eval/seconds``);
* ``supervised_train``: 2 epochs of ``--steps`` steps; seconds per step from the second epoch's
  ``charts/epoch_seconds``;
* ``rse_train``: at most 2 rounds of :data:`RSE_VAE_STEPS` VAE steps (round 2: :data:`RSE_FINETUNE_STEPS`)
  and ``--warmup`` + ``--episodes`` SAC episodes. Its unit is a loop step (:func:`experiments.rse.sac_spans`):
  seconds per VAE step between its first two logged rows; per SAC episode from round 1's after the
  warm-up; per round its bank (the last VAE row less a VAE step) and closing scoring
  (``eval/round_seconds``); per pool, round 1's last evaluation to round 2's first VAE step, less the
  closing and a VAE step. Not counted: the dearer episodes after a ``sac.critic_warmup`` that covers the
  timed ones.

The presets read their data where they name it (``../shared/data``); start-up is not counted, nor the final
report of best.pt. A run that fails or passes ``--timeout`` seconds is reported in its row and the benchmark
goes on. Estimates are indicative: evaluation time grows with a preset's validation images.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from experiments import rse
from experiments.config import Cost, duration
from experiments.rse_train import VAE_LOG_EVERY
from experiments.runs import markdown_table, read_metrics
from rlenhance.atomic import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
RL_TRAINERS = ("lol_train", "denoise_train", "completion_train")
TRAINERS = (*RL_TRAINERS, "supervised_train", "rse_train")
#: VAE steps of a timed rse_train run: train.csv rows at steps 1, 1 + VAE_LOG_EVERY and the last.
RSE_VAE_STEPS = VAE_LOG_EVERY + 2
#: VAE steps of its round 2: the first (after the pool) logged apart from the last (the bank).
RSE_FINETUNE_STEPS = 2


def _run(cmd: list[str], timeout: float) -> tuple[float, str]:
    """Run ``cmd`` in the repository root: (wall seconds, "" or its error: exit status or timeout, last stderr line)."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, f"timed out after {timeout:g} s"
    wall = time.perf_counter() - start
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return wall, f"exit {proc.returncode}: {last}"
    return wall, ""


def command(trainer: str, preset: str, args: argparse.Namespace) -> list[str]:
    """The timed run of a preset (``--out`` left to add)."""
    cmd = [sys.executable, "-m", f"experiments.{trainer}", "--preset", preset, "--device", args.device,
           "--threads", str(args.threads)]
    n = args.warmup + args.episodes
    if trainer in RL_TRAINERS:
        return cmd + ["--episodes", str(n), "--eval-every", str(n), "--samples", "0"]
    if trainer == "rse_train":
        rounds = min(2, rse.PRESETS[preset]().rse.rounds)
        cmd += ["--rounds", str(rounds), "--vae-steps", str(RSE_VAE_STEPS), "--episodes", str(n), "--eval-every",
                str(n), "--samples", "0"]
        return cmd + (["--set", f"rse.vae_finetune_steps={RSE_FINETUNE_STEPS}"] if rounds > 1 else [])
    return cmd + ["--epochs", "2", "--steps-per-epoch", str(args.steps)]


def _per_step(train: dict[int, dict[str, Any]], first: int, steps: int) -> float:
    """Seconds per step from train.csv's row of step ``first`` to ``first + steps`` (LookupError: one missing)."""
    if first not in train or first + steps not in train:
        raise LookupError(f"train.csv lacks step {first} or {first + steps}")
    return (float(train[first + steps]["wall_time"]) - float(train[first]["wall_time"])) / steps


def _seconds_per_unit(trainer: str, cfg: Any, train: dict[int, dict[str, Any]], evals: dict[int, dict[str, Any]],
                      args: argparse.Namespace, row: dict[str, Any]) -> float:
    """Seconds per unit of the trainer's cost from the run's train.csv and metrics.csv rows (by step); ``row``
    gets the unit's name (and rse_train's parts). LookupError: a row or column of the timing is missing."""
    if trainer in RL_TRAINERS:
        row["unit"] = "episode"
        return _per_step(train, args.warmup, args.episodes)
    row["unit"] = "step"
    if trainer == "rse_train":
        return _rse_seconds_per_step(cfg, train, evals, args, row)
    if 2 not in train:
        raise LookupError("train.csv lacks epoch 2")
    return float(train[2]["charts/epoch_seconds"]) / args.steps


def _rse_seconds_per_step(cfg: Any, train: dict[int, dict[str, Any]], evals: dict[int, dict[str, Any]],
                          args: argparse.Namespace, row: dict[str, Any]) -> float:
    """rse_train's seconds per loop step of ``cfg``: its VAE steps, SAC episodes, rounds and pools at the timed
    costs (module docstring), over its loop's steps."""
    end = RSE_VAE_STEPS + args.warmup + args.episodes  # round 1's last episode, evaluation and closing
    s_vae = _per_step(train, 1, VAE_LOG_EVERY)
    s_episode = _per_step(train, RSE_VAE_STEPS + args.warmup, args.episodes)
    if "eval/round_seconds" not in evals.get(end, {}):
        raise LookupError(f"metrics.csv lacks eval/round_seconds at step {end}")
    closing = float(evals[end]["eval/round_seconds"])
    s_round = _per_step(train, RSE_VAE_STEPS - 1, 1) - s_vae + closing  # the bank and the closing scoring
    row.update({"s_per_vae_step": round(s_vae, 4), "s_per_episode": round(s_episode, 4),
                "s_per_round": round(s_round, 2)})
    spans = rse.sac_spans(rse.settings(cfg))
    pools = len(spans) - 1
    s_pool = 0.0
    if pools:  # round 2's first VAE step follows round 1's last evaluation, its closing and the pool
        if end + 1 not in train:
            raise LookupError(f"train.csv lacks step {end + 1}")
        s_pool = float(train[end + 1]["wall_time"]) - float(evals[end]["wall_time"]) - closing - s_vae
        row["s_per_pool"] = round(s_pool, 2)
    episodes = sum(last - first for first, last in spans)
    total = spans[-1][1]
    return ((total - episodes) * s_vae + episodes * s_episode + len(spans) * s_round + pools * s_pool) / total


def measure(trainer: str, preset: str, args: argparse.Namespace) -> dict[str, Any]:
    """One row: the timed run's parts and the whole preset's estimate."""
    module = importlib.import_module(f"experiments.{trainer}")
    cfg = module.PRESETS[preset]()
    row: dict[str, Any] = {"trainer": trainer, "preset": preset, "device": args.device}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = command(trainer, preset, args)
        row["command"] = shlex.join(["python", *cmd[1:], "--out", "RUN"])
        wall, error = _run([*cmd, "--out", str(out)], args.timeout)
        row["wall_s"] = round(wall, 1)
        if error:
            row["error"] = error
            return row
        train = {r["step"]: r for r in read_metrics(out / "train.csv")}
        evals = {r["step"]: r for r in read_metrics(out / "metrics.csv")}
        s_eval = float(evals[max(evals)].get("eval/seconds", 0.0)) if evals else 0.0
        try:
            s_unit = _seconds_per_unit(trainer, cfg, train, evals, args, row)
        except LookupError as exc:
            row["error"] = str(exc)
            return row
        estimate = module.estimate_seconds(cfg, Cost(s_unit, s_eval))
        row.update({"s_per_unit": round(s_unit, 4), "s_per_eval": round(s_eval, 2), "estimate_s": round(estimate),
                    "estimate": duration(estimate)})
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.preset_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--trainers", nargs="+", default=list(TRAINERS), choices=TRAINERS)
    p.add_argument("--presets", nargs="+", default=None, help="only these preset names")
    p.add_argument("--episodes", type=int, default=6,
                   help="timed RL (and rse_train SAC) episodes, after the warm-up (default 6)")
    p.add_argument("--warmup", type=int, default=2,
                   help="RL (and rse_train SAC) episodes left out of the timing (default 2)")
    p.add_argument("--steps", type=int, default=4, help="supervised steps per timed epoch (default 4)")
    p.add_argument("--threads", type=int, default=0, help="torch threads of each run (0: the trainer's default)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before one run is stopped (default 300)")
    p.add_argument("--json", type=Path, default=None, help="write the rows here too, after each run")
    args = p.parse_args(argv)
    if args.episodes < 1 or args.warmup < 1 or args.steps < 1:
        p.error("--episodes, --warmup and --steps must be at least 1")
    rows = []
    for trainer in args.trainers:
        presets = importlib.import_module(f"experiments.{trainer}").PRESETS
        for preset in presets:
            if args.presets and preset not in args.presets:
                continue
            rows.append(measure(trainer, preset, args))
            print(json.dumps(rows[-1]), flush=True)
            if args.json:
                write_text_atomic(args.json, json.dumps(rows, indent=1) + "\n")
    keys = ("trainer", "preset", "device", "unit", "s_per_unit", "s_per_eval", "estimate", "error")
    print(markdown_table([{k: r.get(k, "") for k in keys} for r in rows]))


if __name__ == "__main__":
    main()
