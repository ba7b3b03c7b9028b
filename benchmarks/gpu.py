"""GPU against CPU, measured in one run: training episodes/s, data-parallel ranks, inference images/s.

    python -m benchmarks.gpu [--episodes 40] [--denoise-episodes 20] [--warmup 5] [--quick]
                             [--lol-data DIR] [--denoise-data DIR] [--parts training ddp inference]
                             [--json PATH]

Prints three markdown tables, each as soon as it is measured, with the commands behind them:

1. **training**: ``python -m experiments.lol_train`` and ``python -m experiments.denoise_train`` (the
   shipped recipes on the embedded default data, or on ``--lol-data`` / ``--denoise-data``) at each
   global ``--lol-batch`` / ``--denoise-batch``, with ``--device cpu`` and ``--device cuda``, each in
   a fresh process with the entry point's default threads (every core but one); episodes/s from
   its train.csv, the first ``--warmup`` episodes left out (start-up, the first use of CUDA and of
   the native kernels), and the ratio CUDA / CPU;
2. **data-parallel**: lol_train at the global ``--ddp-batch`` under ``torchrun --standalone
   --nproc_per_node N`` against one process at the same global batch (the training table's run):
   on CUDA for N up to the number of GPUs (:mod:`agents.distributed` gives rank r ``cuda:LOCAL_RANK``
   and NCCL refuses two ranks on one GPU), on the CPU for each N of ``--ddp-ranks`` (gloo; each
   rank takes ``(cores - 1) // N`` threads). One rank makes no process group (``Ranks.distributed``
   is false for a world of 1): its row is torchrun's own cost;
3. **inference**, in this process with the threads the ``rlenhance`` command takes: ``Enhancer`` on
   a dark 600x400 and a ``--megapixels`` image (uint8 in and out, as the command), and the gray
   models of ``load_denoiser`` (``ffdnet``, the default, blind: the level estimated in the timed
   call; ``mrpnet``) on a noisy 481x321 crop of scikit-image's camera photo (sigma 25), the gray
   ``ffdnet`` on a colour 481x321 crop of the coffee photo (its opponent colour planes) and the
   colour PixelRL ``a3c`` on it; each model built on the device, called
   ``--warmup-calls`` times, then timed over ``--calls`` calls (``--large-calls`` for the large
   image) with ``torch.cuda.synchronize()`` before and after each: median ms per image, images/s.

Without CUDA the CUDA cells say "unavailable" and the CPU side is measured alone. A run that fails,
or takes longer than ``--run-timeout`` seconds, is marked in its cell, its error printed under the
table, and the benchmark goes on. ``--json PATH`` writes every figure, command and error (rewritten
after each table, so an interrupted run keeps what it measured). ``--quick``: a short pass to try the
benchmark (few episodes, batch 8, one or two calls); flags given with it override its values.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from experiments.runs import markdown_table, scalar_rows
from rlenhance.atomic import write_text_atomic
from rlenhance.runtime import configure_threads

ROOT = Path(__file__).resolve().parents[1]
#: The timed trainers: name -> module.
TRAINERS = MappingProxyType({"lol_train": "experiments.lol_train", "denoise_train": "experiments.denoise_train"})
#: Arguments each trainer's timed runs add: its one evaluation (after the timed episodes) kept short.
EVAL_ARGS = MappingProxyType({"lol_train": (), "denoise_train": ("--eval-images", "1")})
#: The trainer of the data-parallel table.
DDP_TRAINER = "lol_train"
#: The settings of a full run and of ``--quick`` (flags given override them).
FULL = MappingProxyType(dict(episodes=40, denoise_episodes=20, warmup=5, lol_batch=[8, 32], denoise_batch=[8, 32],
                             ddp_batch=32, ddp_ranks=[1, 2, 4], warmup_calls=2, calls=10, large_calls=3,
                             megapixels=24.0))
QUICK = MappingProxyType(dict(FULL, episodes=6, denoise_episodes=4, warmup=2, lol_batch=[8], denoise_batch=[8],
                              ddp_batch=8, ddp_ranks=[1, 2], warmup_calls=1, calls=2, large_calls=1))
DEVICES = ("cpu", "cuda")
#: The Enhancer's small image, (height, width); the large one has --megapixels, 3:2.
SMALL_IMAGE = (400, 600)
#: The denoisers' input: a crop of scikit-image's camera (512 x 512) of BSD68's landscape size, noise sigma.
DENOISE_IMAGE, DENOISE_SIZE, DENOISE_SIGMA = "camera", (321, 481), 25.0
#: The colour photo of the colour denoising row (cropped to DENOISE_SIZE).
COLOUR_IMAGE = "coffee"
#: How a figure that was not measured begins: no CUDA device; a run this machine cannot make.
UNAVAILABLE, NOT_RUN = "unavailable", "not run"


@dataclass(frozen=True)
class Run:
    """One timed trainer run: ``trainer`` (a :data:`TRAINERS` key) at the global ``batch`` on
    ``device``, as one process (``ranks`` 0) or under ``torchrun --nproc_per_node ranks``."""

    trainer: str
    batch: int
    device: str
    ranks: int = 0


@dataclass
class Figure:
    """One measured figure (episodes/s or ms per image), or why there is none (``error``: starts
    with :data:`UNAVAILABLE` or :data:`NOT_RUN` for one that was not tried, else it failed)."""

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
    """The torch threads an entry point takes by default when ``processes`` of it share this machine
    (:func:`rlenhance.runtime.configure_threads` with 0); this process's own setting is kept."""
    before = torch.get_num_threads()
    try:
        return configure_threads(0, processes=processes)
    finally:
        torch.set_num_threads(before)


def shown(command: Sequence[str]) -> str:
    """A command line as the tables print it: this interpreter as ``python``, the run folder as ``OUT``."""
    return shlex.join("python" if part == sys.executable else part for part in command)


#: How long a timed-out trainer run (torchrun and its ranks) gets to stop after SIGTERM before it is killed.
STOP_GRACE_S = 30.0


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
                        extra: Sequence[str] = (), timeout: float | None = None) -> float:
    """Episodes/s of the trainer ``module`` over episodes ``warmup`` .. ``episodes`` (its
    train.csv), run in a fresh process (:func:`trainer_command`) in a temporary folder.

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
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
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


# --- training ----------------------------------------------------------------------------------------
class Trainings:
    """Times trainer runs (:func:`episodes_per_second`), each once: a run two
    tables need (the one process of the data-parallel table) is measured for the first."""

    def __init__(self, args: argparse.Namespace, gpus: int):
        self.args, self.gpus = args, gpus
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
        return launcher, extra + (["--data", data] if data else [])

    def threads(self, run: Run) -> int:
        return default_threads(max(1, run.ranks))

    def measure(self, run: Run) -> Figure:
        if run in self.figures:
            return self.figures[run]
        launcher, extra = self.command(run)
        if run.device == "cuda" and not self.gpus:
            figure = Figure(error=f"{UNAVAILABLE}: no CUDA device")
        elif run.device == "cuda" and run.ranks > self.gpus:
            figure = Figure(error=f"{NOT_RUN}: {run.ranks} ranks need {run.ranks} GPUs (rank r takes cuda:LOCAL_RANK; "
                                  f"NCCL refuses two ranks on one GPU); this machine has {self.gpus}")
        else:
            start = time.perf_counter()
            figure = attempt(lambda: episodes_per_second(
                self.episodes(run), self.args.warmup, dict(os.environ), 0, module=TRAINERS[run.trainer],
                launcher=launcher, extra=extra, timeout=self.args.run_timeout))
            print(f"  {run.trainer} --batch {run.batch} --device {run.device}"
                  + (f" under torchrun --nproc_per_node {run.ranks}" if run.ranks else "")
                  + f": {figure.cell} episodes/s, {time.perf_counter() - start:.0f} s", flush=True)
        self.figures[run] = figure
        self.shown[run] = shown(trainer_command(TRAINERS[run.trainer], self.episodes(run), 0, "OUT",
                                                launcher=launcher, extra=extra))
        self.records.append({**asdict(run), "threads": self.threads(run), "episodes": self.episodes(run),
                             "warmup": self.args.warmup, "episodes_per_s": figure.value, "error": figure.error,
                             "command": self.shown[run]})
        return figure

    def commands(self, runs: Sequence[Run]) -> list[str]:
        """The command lines of ``runs`` (measured) in order, each once; those not run left out."""
        return list(dict.fromkeys(self.shown[run] for run in runs
                                  if not (self.figures[run].error or "").startswith(NOT_RUN)))


def print_table(title: str, rows: list[dict[str, Any]], figures: Sequence[Figure], notes: Sequence[str] = (),
                commands: Sequence[str] = ()) -> None:
    """A titled markdown table, then its notes, the errors of its failed figures and its commands."""
    print(f"\n### {title}\n\n{markdown_table(rows)}\n", flush=True)
    for note in notes:
        print(note)
    errors = list(dict.fromkeys(f.error for f in figures if f.error and not f.error.startswith(UNAVAILABLE)))
    for error in errors:
        print(f"- {error}")
    if commands:
        print("\n```\n" + "\n".join(commands) + "\n```", flush=True)


def training_table(trainings: Trainings, args: argparse.Namespace) -> None:
    rows, figures, runs = [], [], []
    for trainer, batches in (("lol_train", args.lol_batch), ("denoise_train", args.denoise_batch)):
        for batch in batches:
            cpu, cuda = (trainings.measure(Run(trainer, batch, device)) for device in DEVICES)
            rows.append({"trainer": trainer, "global --batch": batch,
                         "CPU threads": trainings.threads(Run(trainer, batch, "cpu")),
                         "CPU episodes/s": cpu.cell, "CUDA episodes/s": cuda.cell, "CUDA / CPU": ratio(cuda, cpu)})
            figures += [cpu, cuda]
            runs += [Run(trainer, batch, device) for device in DEVICES]
    episodes = f"episodes {args.warmup}..{args.episodes}, denoise_train {args.warmup}..{args.denoise_episodes}"
    print_table(f"Training, one process (lol_train {episodes})", rows, figures, commands=trainings.commands(runs))


def ddp_table(trainings: Trainings, args: argparse.Namespace) -> None:
    batch, rows, figures, runs = args.ddp_batch, [], [], []
    for device in DEVICES:
        one = trainings.measure(Run(DDP_TRAINER, batch, device))
        figures.append(one)
        runs.append(Run(DDP_TRAINER, batch, device))
        rows.append({"device": device, "launch": "one process", "processes": 1,
                     "threads each": trainings.threads(Run(DDP_TRAINER, batch, device)),
                     "episodes/s": one.cell, "vs one process": ratio(one, one)})
        for ranks in args.ddp_ranks:
            run = Run(DDP_TRAINER, batch, device, ranks)
            figure = trainings.measure(run)
            figures.append(figure)
            runs.append(run)
            backend = "no process group" if ranks == 1 else ("NCCL" if device == "cuda" else "gloo")
            rows.append({"device": device, "launch": f"torchrun --nproc_per_node {ranks} ({backend})",
                         "processes": ranks, "threads each": trainings.threads(run), "episodes/s": figure.cell,
                         "vs one process": ratio(figure, one)})
    notes = ["One rank makes no process group (a world of 1 needs no collectives): its row is torchrun's own cost. "
             "Each rank steps global batch / ranks envs; the updates are one process's (docs/distributed.md)."]
    print_table(f"Data-parallel {DDP_TRAINER}, global --batch {batch} (episodes {args.warmup}..{args.episodes})",
                rows, figures, notes, trainings.commands(runs))


# --- inference -----------------------------------------------------------------------------------------
def median_ms(call: Callable[[], object], device: str, warmup: int, calls: int) -> float:
    """Median milliseconds of ``call()`` over ``calls`` calls after ``warmup`` untimed ones; on CUDA
    the device is synchronised before and after each timed call."""
    if calls < 1:
        raise ValueError(f"calls: expected an integer >= 1, got {calls!r}")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(warmup):
        call()
    times = []
    for _ in range(calls):
        sync()
        start = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def dark_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A dark RGB uint8 image (H, W, 3): levels 0-47 (the Enhancer's cost does not depend on them)."""
    return np.random.default_rng(seed).integers(0, 48, (height, width, 3), dtype=np.uint8)


def noisy_crop(name: str = DENOISE_IMAGE, gray: bool = True) -> np.ndarray:
    """:data:`DENOISE_SIZE` of scikit-image's photo ``name`` with Gaussian noise :data:`DENOISE_SIGMA`
    (not clipped, the PixelRL protocol), float32 (H, W, 1), or (H, W, 3) with ``gray`` False."""
    from rlenhance.data import BuiltinImages, add_gaussian_noise

    height, width = DENOISE_SIZE
    clean = BuiltinImages(names=[name], gray=gray)[0]["high"][None, :, :height, :width]
    noisy = add_gaussian_noise(clean, DENOISE_SIGMA, generator=torch.Generator().manual_seed(0))
    return noisy[0].permute(1, 2, 0).numpy().astype(np.float32)


def inference_cases(args: argparse.Namespace) -> list[tuple[str, str, Callable[[str], Callable[[], object]], int]]:
    """(model, image, build(device) -> the timed call, timed calls) of each inference row."""
    from rlenhance import Enhancer, load_denoiser

    width = int(round((args.megapixels * 1e6 * 1.5) ** 0.5))
    height = int(round(args.megapixels * 1e6 / width))
    small, large = dark_image(*SMALL_IMAGE), dark_image(height, width)
    noisy, colour = noisy_crop(), noisy_crop(COLOUR_IMAGE, gray=False)

    def enhance(image: np.ndarray) -> Callable[[str], Callable[[], object]]:
        def build(device: str) -> Callable[[], object]:
            enhancer = Enhancer(device=device)
            return lambda: enhancer.enhance_array(image, dtype=np.uint8)
        return build

    def denoise(model: str, image: np.ndarray = noisy, channels: int = 1) -> Callable[[str], Callable[[], object]]:
        def build(device: str) -> Callable[[], object]:
            denoiser = load_denoiser(model, channels=channels, device=device)
            return lambda: denoiser.restore(image)
        return build

    gray = f"gray {DENOISE_SIZE[1]}x{DENOISE_SIZE[0]}, sigma {DENOISE_SIGMA:g}"
    rgb = f"colour {DENOISE_SIZE[1]}x{DENOISE_SIZE[0]}, sigma {DENOISE_SIGMA:g}"
    return [
        ("Enhancer (shipped policy)", f"{SMALL_IMAGE[1]}x{SMALL_IMAGE[0]} uint8", enhance(small), args.calls),
        ("Enhancer (shipped policy)", f"{width}x{height} ({args.megapixels:g} MP) uint8", enhance(large),
         args.large_calls),
        ("load_denoiser('ffdnet', channels=1)", gray, denoise("ffdnet"), args.calls),
        ("load_denoiser('ffdnet', channels=1)", rgb, denoise("ffdnet", colour), args.calls),
        ("load_denoiser('mrpnet', channels=1)", gray, denoise("mrpnet"), args.calls),
        ("load_denoiser('a3c', channels=3)", rgb, denoise("a3c", colour, 3), args.calls),
    ]


def inference_table(args: argparse.Namespace, gpus: int) -> list[dict[str, Any]]:
    threads = configure_threads(0)  # as the rlenhance command does
    rows, figures, records = [], [], []
    for model, image, build, calls in inference_cases(args):
        measured = {}
        for device in DEVICES:
            if device == "cuda" and not gpus:
                measured[device] = Figure(error=f"{UNAVAILABLE}: no CUDA device")
            else:
                measured[device] = attempt(lambda build=build, device=device, calls=calls: median_ms(
                    build(device), device, args.warmup_calls, calls))
            figure = measured[device]
            records.append({"model": model, "image": image, "device": device, "threads": threads, "calls": calls,
                            "ms": figure.value, "images_per_s": 1000 / figure.value if figure.value else None,
                            "error": figure.error})
            figures.append(figure)
        cpu, cuda = measured["cpu"], measured["cuda"]
        per_s = {d: Figure(1000 / f.value) if f.value else Figure(error=f.error) for d, f in measured.items()}
        rows.append({"model": model, "image": image, "CPU ms": cpu.cell, "CPU images/s": per_s["cpu"].cell,
                     "CUDA ms": cuda.cell, "CUDA images/s": per_s["cuda"].cell, "CUDA / CPU": ratio(cpu, cuda)})
    notes = [f"In one process, {threads} torch CPU threads; median of the timed calls after {args.warmup_calls} "
             "warm-up calls. A CUDA figure includes copying the image to the GPU and back (the Enhancer area-"
             "downscales it for its policy on the CPU on either device)."]
    print_table("Inference (ms per image, images/s; CUDA / CPU: the speed-up)", rows, figures, notes)
    return records


# --- the run -------------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {"cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda, "gpus": gpus,
            "gpu": torch.cuda.get_device_name(0) if gpus else None,
            "trainer_threads": default_threads(1), "load_average": list(os.getloadavg())}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short pass to try the benchmark (see QUICK)")
    parser.add_argument("--episodes", type=int, help=f"lol_train episodes per run ({FULL['episodes']}; "
                                                      f"quick {QUICK['episodes']})")
    parser.add_argument("--denoise-episodes", type=int, help=f"denoise_train episodes per run "
                                                             f"({FULL['denoise_episodes']})")
    parser.add_argument("--warmup", type=int, help=f"first episodes left out of episodes/s ({FULL['warmup']})")
    parser.add_argument("--lol-batch", type=int, nargs="+", help=f"lol_train global batches ({FULL['lol_batch']})")
    parser.add_argument("--denoise-batch", type=int, nargs="+",
                        help=f"denoise_train global batches ({FULL['denoise_batch']})")
    parser.add_argument("--ddp-batch", type=int, help=f"global batch of the data-parallel table ({FULL['ddp_batch']})")
    parser.add_argument("--ddp-ranks", type=int, nargs="+", help=f"torchrun processes ({FULL['ddp_ranks']})")
    parser.add_argument("--warmup-calls", type=int, help=f"untimed inference calls first ({FULL['warmup_calls']})")
    parser.add_argument("--calls", type=int, help=f"timed inference calls ({FULL['calls']})")
    parser.add_argument("--large-calls", type=int, help=f"timed calls on the large image ({FULL['large_calls']})")
    parser.add_argument("--megapixels", type=float, help=f"the Enhancer's large image ({FULL['megapixels']:g}, 3:2)")
    parser.add_argument("--lol-data", help="lol_train --data (default: its embedded photos)")
    parser.add_argument("--denoise-data", help="denoise_train --data (default: its embedded photos)")
    parser.add_argument("--run-timeout", type=float, default=150.0, help="seconds a trainer run may take")
    parser.add_argument("--parts", nargs="+", choices=("training", "ddp", "inference"),
                        default=["training", "ddp", "inference"], help="the tables to measure")
    parser.add_argument("--json", type=Path, help="also write every figure, command and error to this JSON file")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    positive = ("episodes", "denoise_episodes", "warmup", "ddp_batch", "calls", "large_calls", "megapixels")
    for name in positive:
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: expected a number > 0")
    if args.warmup_calls < 0 or min(args.lol_batch + args.denoise_batch + args.ddp_ranks) < 1:
        parser.error("--warmup-calls: expected >= 0; --lol-batch, --denoise-batch, --ddp-ranks: integers >= 1")
    if args.warmup >= min(args.episodes, args.denoise_episodes):
        parser.error(f"--warmup {args.warmup}: expected fewer than --episodes ({args.episodes}) and "
                     f"--denoise-episodes ({args.denoise_episodes})")
    bad = [r for r in args.ddp_ranks if args.ddp_batch % r]
    if bad:
        parser.error(f"--ddp-ranks {bad}: each must divide --ddp-batch {args.ddp_batch} (the batch is split evenly)")
    for flag, folder in (("--lol-data", args.lol_data), ("--denoise-data", args.denoise_data)):
        if folder is not None and not Path(folder).is_dir():
            parser.error(f"{flag} {folder}: no such folder")
    if args.json is not None and args.json.is_dir():
        parser.error(f"--json {args.json}: a folder; give a file path")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    start = time.perf_counter()
    report: dict[str, Any] = {"machine": machine(), "settings": {k: str(v) if isinstance(v, Path) else v
                                                               for k, v in vars(args).items()}}
    info = report["machine"]
    gpus = info["gpus"]
    print(f"{info['cores']} cores, torch {info['torch']}; trainers take {info['trainer_threads']} torch threads "
          "(every core but one); "
          + (f"CUDA {info['cuda']}: {gpus} x {info['gpu']}" if gpus else
             f"CUDA: not available (torch {info['torch']}, CUDA build {info['cuda']}): CUDA cells read "
             f"'{UNAVAILABLE}', the CPU side is measured alone"), flush=True)

    def save() -> None:
        report["seconds"] = round(time.perf_counter() - start, 1)
        if args.json is not None:
            write_text_atomic(args.json, json.dumps(report, indent=2) + "\n")

    trainings = Trainings(args, gpus)
    if "training" in args.parts:
        training_table(trainings, args)
        report["training"] = trainings.records
        save()
    if "ddp" in args.parts:
        ddp_table(trainings, args)
        report["training"] = trainings.records
        save()
    if "inference" in args.parts:
        report["inference"] = inference_table(args, gpus)
        save()
    print(f"\n{time.perf_counter() - start:.0f} s in all; load average {os.getloadavg()[0]:.1f}"
          + (f"; figures in {args.json}" if args.json else ""), flush=True)
    save()
    return report


if __name__ == "__main__":
    main()
