"""How much a competing busy process slows the main jobs: each job alone, then beside ``--busy`` processes.

    python -m benchmarks.contention [--episodes 40] [--busy 1] [--repeats 2] [--env NAME=VALUE ...]

Runs, in fresh subprocesses (so that each entry point sets up its own threading, as a user's
command would):

* the main job, ``python -m experiments.lol_train`` on the embedded default data, for
  ``--episodes`` episodes (episodes/s from its train.csv, the first ``--warmup`` episodes left out);
* ``rlenhance enhance`` of a 600x400 image, 10 times in one process (best ms per image);

first alone, then while ``--busy`` neighbour processes keep the CPU busy (``--neighbour torch``:
another torch program with torch's default threading, e.g. a second training run; ``python``: a
pure-Python loop on one core), and prints the slowdown as a ratio (busy / alone) from
the same run. ``--threads N`` gives both jobs N torch threads instead of the entry points' default (every core
but one; ``--threads 2`` on 2 cores is torch's own default, to compare) and ``--env`` adds variables
to the jobs' environment (e.g. ``--env OMP_WAIT_POLICY=PASSIVE``); each run's thread setup is printed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from experiments.runs import scalar_rows

ROOT = Path(__file__).resolve().parents[1]
#: How long a timed-out trainer run (torchrun and its ranks) gets to stop after SIGTERM before it is killed.
STOP_GRACE_S = 30.0

ENHANCE_SNIPPET = """
import time, numpy as np
from rlenhance import Enhancer
from rlenhance.runtime import configure_threads
configure_threads(THREADS)  # 0: as the rlenhance command does
enhancer = Enhancer(device="cpu")
image = np.random.default_rng(0).uniform(0.0, 0.2, (400, 600, 3)).astype(np.float32)
times = []
for _ in range(10):
    start = time.perf_counter(); enhancer.enhance(image); times.append(time.perf_counter() - start)
print(min(times) * 1000)
"""


def _spin(stop_at: float) -> None:
    """A busy neighbour: pure-Python arithmetic until ``stop_at`` (time.time())."""
    x = 0
    while time.time() < stop_at:
        for i in range(10_000):
            x = (x + i) % 7919


NEIGHBOUR_TORCH = """
import time, torch
x, w = torch.rand(1, 16, 128, 128), torch.rand(16, 16, 3, 3)
stop_at = time.time() + 3600
while time.time() < stop_at:
    torch.nn.functional.conv2d(x, w, padding=1)
"""


def start_neighbour(kind: str, env: dict[str, str]) -> subprocess.Popen:
    """A busy neighbour process: ``python`` (one core of pure-Python arithmetic) or ``torch`` (another
    torch program with torch's defaults: all cores, OpenMP threads that spin while they wait, as
    a second training run or a test suite on the same machine)."""
    if kind == "torch":
        code = NEIGHBOUR_TORCH
    else:
        code = "import time\nfrom benchmarks.contention import _spin\n_spin(time.time() + 3600)\n"
    # the neighbour is a plain program: none of our variables, torch's own defaults
    plain = {k: v for k, v in env.items() if not k.startswith(("OMP_", "GOMP_", "RLENHANCE_"))}
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=plain)


def trainer_command(module: str, episodes: int, threads: int, out: str | Path, *, launcher: Sequence[str] = (),
                    extra: Sequence[str] = ()) -> list[str]:
    """The command line of a short timed trainer run: ``module`` (e.g. ``experiments.lol_train``)
    for ``episodes`` episodes with ``threads`` torch threads (0: its default), one evaluation (at
    the end) and no sample grids, run by ``launcher`` (the command before ``-m``: this Python by
    default; e.g. torchrun's) with ``extra`` arguments, into ``out``."""
    return [*(launcher or (sys.executable,)), "-m", module, "--episodes", str(episodes), "--eval-every",
            str(episodes), "--samples", "0", "--threads", str(threads), *extra, "--out", str(out)]


def episodes_per_second(episodes: int, warmup: int, env: dict[str, str], threads: int, *,
                        module: str = "experiments.lol_train", launcher: Sequence[str] = (),
                        extra: Sequence[str] = (), timeout: float | None = None, root: Path = ROOT) -> float:
    """Episodes/s of the trainer ``module`` over episodes ``warmup`` .. ``episodes`` (its
    train.csv), run in a fresh process (:func:`trainer_command`) in a temporary folder, from the
    repository ``root`` (by default this one; another copy, e.g. of an earlier commit, runs its own
    trainers: it is put first on ``PYTHONPATH``).

    Raises:
        RuntimeError: the run failed (its command, exit status and last line of stderr are said)
            or did not log both episodes.
        subprocess.TimeoutExpired: it ran longer than ``timeout`` seconds (its processes, torchrun's
            ranks included, are killed).
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = trainer_command(module, episodes, threads, out, launcher=launcher, extra=extra)
        # a session of its own: a timeout or Ctrl-C here stops it (and torchrun its ranks) by SIGTERM,
        # then kills what is left of its process group
        if Path(root) != ROOT:
            env = {**env, "PYTHONPATH": os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])}
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            _, stderr = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.communicate(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
        if proc.returncode:
            last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "no stderr")
            raise RuntimeError(f"{shlex.join(cmd)} exited with {proc.returncode}: {last}")
        walls = {row["step"]: row["wall_time"] for row in scalar_rows(out) if row["metric"] == "charts/episode_return"}
    if warmup not in walls or episodes not in walls:
        raise RuntimeError(f"{shlex.join(cmd)}: train.csv lacks episode {warmup} or {episodes} "
                           f"(logged: {min(walls, default=None)}..{max(walls, default=None)})")
    return (episodes - warmup) / (walls[episodes] - walls[warmup])


def enhance_ms(env: dict[str, str], threads: int) -> float:
    snippet = f"THREADS = {int(threads)}\n" + ENHANCE_SNIPPET
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True)
    return float(proc.stdout.strip().splitlines()[-1])


def thread_setup(env: dict[str, str], threads: int) -> str:
    code = ("import os, torch; from rlenhance.runtime import configure_threads; "
            f"print(f'torch threads {{configure_threads({int(threads)})}} of {{os.cpu_count()}} cores, "
            "OMP_WAIT_POLICY={os.environ.get(\"OMP_WAIT_POLICY\")}')")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=40, help="lol_train episodes per run")
    parser.add_argument("--warmup", type=int, default=5, help="first episodes left out of episodes/s")
    parser.add_argument("--busy", type=int, default=1, help="competing busy processes")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads of both jobs (0: the entry points' default, every core but one)")
    parser.add_argument("--neighbour", choices=("torch", "python"), default="torch",
                        help="what the busy processes run (see start_neighbour)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each job per condition (best is kept)")
    parser.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE",
                        help="extra environment variables for the jobs")
    args = parser.parse_args(argv)
    if not 0 < args.warmup < args.episodes:
        parser.error(f"--warmup {args.warmup}: expected 0 < warmup < --episodes ({args.episodes})")
    env = dict(os.environ)
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--env {item!r}: expected NAME=VALUE")
        env[name] = value
    print(f"{os.cpu_count()} CPUs; jobs: {thread_setup(env, args.threads)}; extra env: {args.env or 'none'}")

    results: dict[str, dict[str, float]] = {}
    for condition in ("alone", "busy"):
        neighbours = []
        if condition == "busy":
            neighbours = [start_neighbour(args.neighbour, env) for _ in range(args.busy)]
            time.sleep(2.0)  # let them start working
        try:
            results[condition] = {
                "lol_train episodes/s": max(episodes_per_second(args.episodes, args.warmup, env, args.threads)
                                            for _ in range(args.repeats)),
                "enhance 600x400 ms": min(enhance_ms(env, args.threads) for _ in range(args.repeats)),
            }
        finally:
            for process in neighbours:
                process.terminate()
                process.wait()
        print(f"{condition:>5}: " + ", ".join(f"{k} {v:.2f}" for k, v in results[condition].items()), flush=True)

    speed = results["alone"]["lol_train episodes/s"] / results["busy"]["lol_train episodes/s"]
    latency = results["busy"]["enhance 600x400 ms"] / results["alone"]["enhance 600x400 ms"]
    print(f"slowdown beside {args.busy} busy {args.neighbour} process(es): "
          f"lol_train {speed:.2f}x (episodes/s alone / busy), "
          f"enhance {latency:.2f}x (ms busy / alone)")


if __name__ == "__main__":
    main()
