"""The trainer runs :mod:`benchmarks.gpu` times, each in a fresh process (one process, or under ``torchrun``),
from this repository or another copy of it, and what its tables are made of: a measured figure or why there is
none (:class:`Figure`), the run budget (``--budget``), and the training and data-parallel tables.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from experiments.runs import markdown_table, scalar_rows
from rlenhance.runtime import configure_threads

ROOT = Path(__file__).resolve().parents[1]
#: The timed trainers: name -> module.
TRAINERS = MappingProxyType({"lol_train": "experiments.lol_train", "denoise_train": "experiments.denoise_train"})
#: Arguments each trainer's timed runs add: its one evaluation (after the timed episodes) kept short.
EVAL_ARGS = MappingProxyType({"lol_train": (), "denoise_train": ("--eval-images", "1")})
#: The trainer of the data-parallel table.
DDP_TRAINER = "lol_train"
DEVICES = ("cpu", "cuda")
#: How a figure that was not measured begins: no CUDA device; a run this machine cannot make.
UNAVAILABLE, NOT_RUN = "unavailable", "not run"
#: With ``--budget``, a run is not started with fewer seconds than this left.
MIN_RUN_S = 20.0
#: The trees a trainer run may come from: this repository, or ``--before``'s copy.
AFTER, BEFORE = "after", "before"


@dataclass(frozen=True)
class Run:
    """One timed run of ``trainer`` (a :data:`TRAINERS` key) at the global ``batch``: one process (``ranks`` 0) or
    under ``torchrun --nproc_per_node ranks``, from this repository or ``--before``'s copy (``tree``)."""

    trainer: str
    batch: int
    device: str
    ranks: int = 0
    tree: str = AFTER


@dataclass
class Figure:
    """A measured figure, or why there is none (``error``: :data:`UNAVAILABLE` / :data:`NOT_RUN` first, else failed)."""

    value: float | None = None
    error: str | None = None

    @property
    def cell(self) -> str:
        if self.value is not None:
            return f"{self.value:.2f}"
        return "failed" if self.failed else str(self.error).split(":")[0]

    @property
    def failed(self) -> bool:
        return self.value is None and not (self.error or "").startswith((UNAVAILABLE, NOT_RUN))

    def times(self, factor: float) -> Figure:
        """This figure times ``factor`` (episodes/s -> crops/s), its error kept."""
        return Figure(None if self.value is None else self.value * factor, self.error)


def attempt(measure: Callable[[], float]) -> Figure:
    """``measure()`` as a :class:`Figure`; an exception becomes its one-line error (the benchmark goes on)."""
    try:
        return Figure(value=float(measure()))
    except Exception as exc:  # noqa: BLE001 - any failure of one run is reported, not fatal
        return Figure(error=" ".join(f"{type(exc).__name__}: {exc}".split()))


def ratio(numerator: Figure, denominator: Figure) -> str:
    """``numerator / denominator`` as a table cell ("2.50x"), "-" when either is missing."""
    if numerator.value is None or denominator.value is None or denominator.value == 0:
        return "-"
    return f"{numerator.value / denominator.value:.2f}x"


def default_threads(processes: int = 1) -> int:
    """The torch threads a trainer takes by default when ``processes`` of it share this machine (this one's kept)."""
    before = torch.get_num_threads()
    try:
        return configure_threads(0, processes=processes, spare=0)
    finally:
        torch.set_num_threads(before)


def shown(command: Sequence[str]) -> str:
    """A command line as the tables print it: this interpreter as ``python``, the run folder as ``OUT``."""
    return shlex.join("python" if part == sys.executable else part for part in command)


#: How long a timed-out trainer run (torchrun and its ranks) gets to stop after SIGTERM before it is killed.
STOP_GRACE_S = 30.0


def trainer_command(module: str, episodes: int, threads: int, out: str | Path, *, launcher: Sequence[str] = (),
                    extra: Sequence[str] = ()) -> list[str]:
    """A short timed run of ``module`` for ``episodes`` episodes on ``threads`` torch threads (0: its default), one
    final evaluation, no sample grids, run by ``launcher`` (what comes before ``-m``; default this Python)."""
    return [*(launcher or (sys.executable,)), "-m", module, "--episodes", str(episodes), "--eval-every",
            str(episodes), "--samples", "0", "--threads", str(threads), *extra, "--out", str(out)]


def episodes_per_second(episodes: int, warmup: int, env: dict[str, str], threads: int, *,
                        module: str = "experiments.lol_train", launcher: Sequence[str] = (),
                        extra: Sequence[str] = (), timeout: float | None = None, root: Path = ROOT) -> float:
    """Episodes/s of ``module`` over episodes ``warmup`` .. ``episodes`` of its train.csv, run in a fresh process
    (:func:`trainer_command`) from the repository ``root`` (another copy is put first on ``PYTHONPATH``).

    Raises:
        RuntimeError: the run failed (its command, exit status and last line of stderr are said)
            or did not log both episodes.
        subprocess.TimeoutExpired: it ran longer than ``timeout`` seconds (its processes, torchrun's
            ranks included, are killed).
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = trainer_command(module, episodes, threads, out, launcher=launcher, extra=extra)
        # a session of its own: on a timeout, SIGTERM (torchrun stops its ranks), then kill the group
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


class Budget:
    """The seconds the benchmark may still take (``--budget``; None: no limit)."""

    def __init__(self, seconds: float | None):
        self.end = None if seconds is None else time.perf_counter() + seconds

    def left(self) -> float:
        return math.inf if self.end is None else self.end - time.perf_counter()

    def timeout(self, limit: float) -> float | None:
        """``limit`` or the budget's end, whichever comes first; None when under :data:`MIN_RUN_S` is left."""
        left = self.left()
        return None if left < MIN_RUN_S else min(limit, left)


class Trainings:
    """Times trainer runs (:func:`episodes_per_second`), each once, whichever tables need it."""

    def __init__(self, args: argparse.Namespace, gpus: int, budget: Budget):
        self.args, self.gpus, self.budget = args, gpus, budget
        self.figures: dict[Run, Figure] = {}
        self.shown: dict[Run, str] = {}
        self.records: list[dict[str, Any]] = []

    def episodes(self, run: Run) -> int:
        return self.args.denoise_episodes if run.trainer == "denoise_train" else self.args.episodes

    def command(self, run: Run) -> tuple[list[str], list[str]]:
        """(launcher, extra arguments) of ``run``."""
        launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(run.ranks)]
                    if run.ranks else [])
        data = self.args.lol_data if run.trainer == "lol_train" else self.args.denoise_data
        extra = ["--device", run.device, "--batch", str(run.batch), *EVAL_ARGS[run.trainer]]
        return launcher, extra + (["--data", str(Path(data).resolve())] if data else [])

    def threads(self, run: Run) -> int:
        return default_threads(max(1, run.ranks))

    def _why_not(self, run: Run) -> str | None:
        if run.device == "cuda" and not self.gpus:
            return f"{UNAVAILABLE}: no CUDA device"
        if run.device == "cuda" and run.ranks > self.gpus:
            return (f"{NOT_RUN}: {run.ranks} ranks need {run.ranks} GPUs (rank r takes cuda:LOCAL_RANK; NCCL refuses "
                    f"two ranks on one GPU); this machine has {self.gpus}")
        if run.tree == BEFORE and self.args.before is None:
            return f"{NOT_RUN}: no --before"
        return None

    def measure(self, run: Run) -> Figure:
        if run in self.figures:
            return self.figures[run]
        launcher, extra = self.command(run)
        why = self._why_not(run)
        timeout = self.budget.timeout(self.args.run_timeout)
        if why is None and timeout is None:
            why = f"{NOT_RUN}: out of time (--budget)"
        if why is not None:
            figure = Figure(error=why)
        else:
            start = time.perf_counter()
            root = self.args.before if run.tree == BEFORE else ROOT
            figure = attempt(lambda: episodes_per_second(
                self.episodes(run), self.args.warmup, dict(os.environ), 0, module=TRAINERS[run.trainer],
                launcher=launcher, extra=extra, timeout=timeout, root=root))
            print(f"  {run.trainer} --batch {run.batch} --device {run.device}"
                  + (f" under torchrun --nproc_per_node {run.ranks}" if run.ranks else "")
                  + (f" (from {self.args.before})" if run.tree == BEFORE else "")
                  + f": {figure.cell} episodes/s, {time.perf_counter() - start:.0f} s", flush=True)
        self.figures[run] = figure
        self.shown[run] = shown(trainer_command(TRAINERS[run.trainer], self.episodes(run), 0, "OUT",
                                                launcher=launcher, extra=extra))
        self.records.append({**asdict(run), "threads": self.threads(run), "episodes": self.episodes(run),
                             "warmup": self.args.warmup, "episodes_per_s": figure.value,
                             "crops_per_s": None if figure.value is None else figure.value * run.batch,
                             "error": figure.error, "command": self.shown[run]})
        return figure

    def commands(self, runs: Sequence[Run]) -> list[str]:
        """The command lines of ``runs`` (measured) in order, each once; those not run left out."""
        return list(dict.fromkeys(self.shown[run] for run in runs
                                  if not (self.figures[run].error or "").startswith((NOT_RUN, UNAVAILABLE))))


def print_table(title: str, rows: list[dict[str, Any]], figures: Sequence[Figure], notes: Sequence[str] = (),
                commands: Sequence[str] = ()) -> None:
    """A titled markdown table, then its notes, the errors of its failed figures and its commands."""
    print(f"\n### {title}\n\n{markdown_table(rows)}\n", flush=True)
    for note in notes:
        print(note)
    errors = list(dict.fromkeys(f.error for f in figures if f.error and f.failed))
    for error in errors:
        print(f"- {error}")
    if commands:
        print("\n```\n" + "\n".join(commands) + "\n```", flush=True)


def training_runs(args: argparse.Namespace) -> list[Run]:
    """The training table's runs, most wanted first: CUDA's from the largest batch down, trainers in turn (with
    ``--before``'s at each trainer's first and last batch), then the CPU's at each trainer's first batch."""
    batches = {"lol_train": args.lol_batch, "denoise_train": args.denoise_batch}
    runs = []
    for rank in range(max(map(len, batches.values()))):
        for trainer, sizes in batches.items():
            if rank < len(sizes):
                batch = sizes[-1 - rank]
                runs.append(Run(trainer, batch, "cuda"))
                if args.before is not None and batch in (sizes[0], sizes[-1]):
                    runs.append(Run(trainer, batch, "cuda", tree=BEFORE))
    return runs + ([] if args.no_cpu else [Run(t, bs[0], "cpu") for t, bs in batches.items()])


def training_table(trainings: Trainings, args: argparse.Namespace) -> None:
    runs = training_runs(args)
    for run in runs:
        trainings.measure(run)
    rows, figures = [], []
    for trainer, batches in (("lol_train", args.lol_batch), ("denoise_train", args.denoise_batch)):
        for batch in batches:
            cuda = trainings.figures[Run(trainer, batch, "cuda")]
            before = trainings.figures.get(Run(trainer, batch, "cuda", tree=BEFORE), Figure(error=NOT_RUN))
            cpu = trainings.figures.get(Run(trainer, batch, "cpu"), Figure(error=NOT_RUN))
            rows.append({"trainer": trainer, "global --batch": batch, "CUDA crops/s": cuda.times(batch).cell,
                         "before: CUDA crops/s": before.times(batch).cell, "after / before": ratio(cuda, before),
                         "CPU crops/s": cpu.times(batch).cell, "CUDA / CPU": ratio(cuda, cpu)})
            figures += [cuda, before, cpu]
    episodes = f"episodes {args.warmup}..{args.episodes}, denoise_train {args.warmup}..{args.denoise_episodes}"
    notes = [f"CPU: {default_threads()} torch threads (every core). crops/s: episodes/s times the global "
             "batch."
             + (f" before: the trainers of {args.before}." if args.before is not None else "")]
    print_table(f"Training, one process (lol_train {episodes})", rows, figures, notes, trainings.commands(runs))


def ddp_table(trainings: Trainings, args: argparse.Namespace) -> None:
    batch, rows, figures, runs = args.ddp_batch, [], [], []
    for device in DEVICES:
        one = trainings.measure(Run(DDP_TRAINER, batch, device))
        for ranks in (0, *args.ddp_ranks):  # 0: one process, without torchrun
            run = Run(DDP_TRAINER, batch, device, ranks)
            figure = trainings.measure(run)
            figures.append(figure)
            runs.append(run)
            backend = "no process group" if ranks == 1 else ("NCCL" if device == "cuda" else "gloo")
            rows.append({"device": device, "launch": f"torchrun --nproc_per_node {ranks} ({backend})" if ranks
                         else "one process", "processes": max(1, ranks), "threads each": trainings.threads(run),
                         "episodes/s": figure.cell, "vs one process": ratio(figure, one)})
    notes = ["One rank makes no process group (a world of 1 needs no collectives): its row is torchrun's own cost. "
             "Each rank steps global batch / ranks envs; the updates are one process's (docs/distributed.md)."]
    print_table(f"Data-parallel {DDP_TRAINER}, global --batch {batch} (episodes {args.warmup}..{args.episodes})",
                rows, figures, notes, trainings.commands(runs))
