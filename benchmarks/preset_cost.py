"""What each trainer preset costs on this machine: a short timed run of it, scaled to the whole preset.

    python -m benchmarks.preset_cost [--device cpu|cuda] [--trainers lol_train denoise_train ...]
        [--presets NAME ...] [--episodes 6] [--warmup 2] [--steps 4] [--threads 0] [--timeout 300]
        [--json PATH]

For each preset of each trainer (``--preset NAME`` of ``experiments.<trainer>``) it runs, in a
fresh process on ``--device``, a short version of that preset, measures the parts a run is made
of, and prints the estimate of the whole preset, with the command of the timed run:

* RL trainers (``lol_train``, ``denoise_train``, ``completion_train``): ``--warmup`` +
  ``--episodes`` episodes and one evaluation at the end; seconds per episode from the run's
  train.csv (the warm-up episodes left out: start-up and first use of CUDA), seconds per
  evaluation from its metrics.csv (``eval/seconds``);
* ``supervised_train``: 2 epochs of ``--steps`` steps each; seconds per step from the second
  epoch's ``charts/epoch_seconds``, one evaluation's ``eval/seconds``.

The whole preset's estimate is the trainer's own ``estimate_seconds`` at that cost (what its
``--help`` prints from a preset's :class:`experiments.config.Cost`).

The presets read their data where they name it (``../shared/data``); start-up is not counted.
A run that fails or passes ``--timeout`` seconds is reported in its row and the benchmark goes
on. Estimates are indicative: evaluation time grows with the validation images a preset reads.
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

from experiments.config import Cost, duration
from experiments.run_files import markdown_table, read_metrics
from rlenhance.atomic import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
RL_TRAINERS = ("lol_train", "denoise_train", "completion_train")
TRAINERS = (*RL_TRAINERS, "supervised_train")


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


def measure(trainer: str, preset: str, args: argparse.Namespace) -> dict[str, Any]:
    """One row: the timed run's parts and the whole preset's estimate."""
    module = importlib.import_module(f"experiments.{trainer}")
    cfg = module.PRESETS[preset]()
    row: dict[str, Any] = {"trainer": trainer, "preset": preset, "device": args.device}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", f"experiments.{trainer}", "--preset", preset, "--device", args.device,
               "--threads", str(args.threads)]
        if trainer in RL_TRAINERS:
            n = args.warmup + args.episodes
            cmd += ["--episodes", str(n), "--eval-every", str(n), "--samples", "0"]
        else:
            cmd += ["--epochs", "2", "--steps-per-epoch", str(args.steps)]
        row["command"] = shlex.join(["python", *cmd[1:], "--out", "RUN"])
        wall, error = _run([*cmd, "--out", str(out)], args.timeout)
        row["wall_s"] = round(wall, 1)
        if error:
            row["error"] = error
            return row
        train = {r["step"]: r for r in read_metrics(out / "train.csv")}
        evals = read_metrics(out / "metrics.csv")
        s_eval = float(evals[-1]["eval/seconds"]) if evals and "eval/seconds" in evals[-1] else 0.0
        if trainer in RL_TRAINERS:
            first, last = args.warmup, args.warmup + args.episodes
            if first not in train or last not in train:
                row["error"] = f"train.csv lacks episode {first} or {last}"
                return row
            s_unit = (float(train[last]["wall_time"]) - float(train[first]["wall_time"])) / args.episodes
            row.update({"unit": "episode", "s_per_unit": round(s_unit, 4)})
        else:
            if 2 not in train:
                row["error"] = "train.csv lacks epoch 2"
                return row
            s_unit = float(train[2]["charts/epoch_seconds"]) / args.steps
            row.update({"unit": "step", "s_per_unit": round(s_unit, 4)})
        estimate = module.estimate_seconds(cfg, Cost(s_unit, s_eval))
        row.update({"s_per_eval": round(s_eval, 2), "estimate_s": round(estimate), "estimate": duration(estimate)})
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.preset_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--trainers", nargs="+", default=list(TRAINERS), choices=TRAINERS)
    p.add_argument("--presets", nargs="+", default=None, help="only these preset names")
    p.add_argument("--episodes", type=int, default=6, help="timed RL episodes, after the warm-up (default 6)")
    p.add_argument("--warmup", type=int, default=2, help="RL episodes left out of the timing (default 2)")
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
