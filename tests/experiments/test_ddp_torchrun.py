"""A trainer under ``torchrun --nproc_per_node 2`` (gloo on CPU): SIGTERM on one rank stops both at
the same episode with a resumable last.pt written by rank 0 and exit code 143 on both, config.json
records the world size, and the run resumed by ``torchrun --resume`` ends with the weights of an
uninterrupted one-process run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from experiments import lol_train
from rlenhance.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
EPISODES = 80
#: global-light acts per 16 x 16 block: few sampled actions, so float rounding never flips one.
#: The smoothness as a reward: the default penalty on the mean alpha map has the gradient sign(d), which flips
#: where a rounding difference crosses d = 0, so two reduction orders would part by ~1e-4 over 80 updates.
ARGS = ["--preset", "global-light", "--episodes", str(EPISODES), "--eval-every", "1000", "--batch", "4", "--crop",
        "64", "--steps", "3", "--test-steps", "2", "--eval-size", "48", "--width", "8", "--samples", "0", "--device",
        "cpu", "--threads", "1", "--set", "reward.smooth_on_mean=false", "--set", "task.min_steps=none"]
START_TIMEOUT_S = 180.0
_POLL_S = 0.02


def _children_by_rank(pid: int) -> dict[int, int]:
    """The processes whose parent is ``pid``, by the RANK torchrun gave them (Linux /proc)."""
    ranks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent != pid:
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        for item in environ:
            if item.startswith(b"RANK="):
                ranks[int(item[5:])] = int(entry.name)
    return ranks


def _has_logged(out: Path) -> bool:
    tables = (out / "metrics.csv", out / "train.csv")
    return any(table.is_file() and len(table.read_text().splitlines()) > 1 for table in tables)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the ranks' processes in /proc")
def test_ddp_sigterm_on_one_rank_stops_both_and_resume_matches_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    lol_train.main([*ARGS, "--out", str(one)])  # the uninterrupted one-process run
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                "experiments.lol_train"]
    proc = subprocess.Popen([*torchrun, *ARGS, "--out", str(two)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _has_logged(two) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    ranks = _children_by_rank(proc.pid)
    assert proc.poll() is None and set(ranks) == {0, 1}, f"torchrun ended or has no ranks: {ranks}"
    os.kill(ranks[1], signal.SIGTERM)  # rank 1 writes nothing: rank 0 must learn of it and save
    stdout, stderr = proc.communicate(timeout=START_TIMEOUT_S)
    assert proc.returncode != 0, stderr[-3000:]
    lines = [line.split("\r")[-1] for line in stderr.splitlines()]
    stops = [line for line in lines if line.startswith("lol_train") and "interrupted at episode" in line]
    assert len(stops) == 1 and "(SIGTERM)" in stops[0], stderr[-3000:]  # one line, from rank 0
    # torchrun's report: both ranks exited with 128 + SIGTERM (rank 0 too, though torchrun sent it SIGTERM)
    assert re.findall(r"^\s*exitcode\s+:\s*(-?\d+)", stderr, re.MULTILINE) == ["143", "143"], stderr[-3000:]
    last = load_checkpoint(two / "checkpoints" / "last.pt")
    stopped_at = last["extra"]["episode"]
    assert 1 <= stopped_at < EPISODES and f"interrupted at episode {stopped_at} of {EPISODES}" in stops[0]
    assert json.loads((two / "config.json").read_text())["world_size"] == 2

    resume = subprocess.run([*torchrun, *ARGS, "--out", str(two), "--resume"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert resume.returncode == 0, resume.stderr[-3000:]
    assert f"resumed {two / 'checkpoints' / 'last.pt'} at episode {stopped_at}" in resume.stdout
    resumed = load_checkpoint(two / "checkpoints" / "last.pt")
    reference = load_checkpoint(one / "checkpoints" / "last.pt")
    assert resumed["extra"]["episode"] == reference["extra"]["episode"] == EPISODES
    for key, value in reference["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, msg=lambda m, key=key: f"{key}: {m}")
