"""GPU against CPU, measured in one run: training crops/s, data-parallel ranks, inference images/s, the
presets' costs on the GPU, where a training episode's time goes and what a reset costs.

    python -m benchmarks.gpu [--parts training ddp inference presets profile resets] [--quick] [--budget S]
                             [--episodes 24] [--denoise-episodes 14] [--warmup 4] [--lol-batch 32 1024]
                             [--denoise-batch 32 512] [--before DIR] [--no-cpu] [--lol-data DIR]
                             [--denoise-data DIR] [--presets TRAINER:NAME ...] [--profile-batch 256]
                             [--resets 5] [--json PATH]

Prints a markdown table per part, each as soon as it is measured, with the commands behind it:

1. **training**: ``python -m experiments.lol_train`` and ``python -m experiments.denoise_train`` (the
   shipped recipes on the embedded default data, or on ``--lol-data`` / ``--denoise-data``) at each
   global ``--lol-batch`` / ``--denoise-batch`` with ``--device cuda``, and at the first of them with
   ``--device cpu`` (the trainers' default threads: every core; ``--no-cpu``: not), each in a
   fresh process, the largest batches first;
   episodes/s from its train.csv, the first ``--warmup`` episodes left out (start-up, the first use of
   CUDA and of the native kernels), and crops/s (episodes/s times the batch). ``--before DIR``: the
   same trainers from another copy of the repository (e.g. the commit before a change; its
   ``rlenhance/weights`` may be a link to ours), timed on CUDA at the first and the last batch of each
   trainer: crops/s before and after;
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
   image) with ``torch.cuda.synchronize()`` before and after each: median ms per image, images/s;
4. **presets**: :func:`benchmarks.preset_cost.measure` of each ``--presets`` (``TRAINER:NAME``; by
   default every preset whose cost on a GPU is not recorded, :class:`experiments.config.Preset`) on
   CUDA, ``--preset-warmup`` + ``--preset-episodes`` episodes (supervised: steps) and one
   evaluation; the presets read their data where they name it (``../shared/data``: a subset of it
   gives the same cost per episode, and evaluations as long as its validation images);
5. **profile**: ``--profile-episodes`` episodes of each trainer at ``--profile-batch`` (after one
   untimed) under ``torch.profiler``, in this process: per episode its steps and wall time, the
   share of the env's resets, of its steps and of the update, and per step the GPU kernels launched
   and the host round trips (device synchronisations, copies between host and device); on a machine
   without CUDA, on the CPU with the torch ops per step instead;
6. **resets**: :mod:`benchmarks.resets` on CUDA (the CPU without it): what a reset of each trainer's
   training env costs per crop at each of its batches, median of ``--resets``, this tree's and
   ``--before``'s.

Without CUDA the CUDA cells say "unavailable" and the CPU side is measured alone. A run that fails,
or takes longer than ``--run-timeout`` seconds, is marked in its cell, its error printed under the
table, and the benchmark goes on; with ``--budget S`` no run starts once S seconds have passed (its
cell says "not run: out of time"), and each run's timeout ends by then. ``--json PATH`` writes every
figure, command and error (rewritten after each table, so an interrupted run keeps what it
measured). ``--quick``: a short pass to try the benchmark (few episodes, batch 8, one or two calls);
flags given with it override its values.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from benchmarks.episode_profile import profile_table
from benchmarks.inference import photo_size
from benchmarks.trainer_runs import (
    DEVICES,
    NOT_RUN,
    TRAINERS,
    UNAVAILABLE,
    Budget,
    Figure,
    Trainings,
    attempt,
    ddp_table,
    default_threads,
    print_table,
    ratio,
    training_table,
)
from experiments.runs import markdown_table
from rlenhance.atomic import write_text_atomic
from rlenhance.runtime import configure_threads

#: The settings of a full run and of ``--quick`` (flags given override them).
FULL = MappingProxyType(dict(episodes=24, denoise_episodes=14, warmup=4, lol_batch=[32, 1024],
                             denoise_batch=[32, 512], ddp_batch=32, ddp_ranks=[1, 2, 4], warmup_calls=2,
                             calls=10, large_calls=3, megapixels=24.0, preset_episodes=3, preset_warmup=2,
                             preset_steps=4, profile_batch=256, profile_episodes=2, resets=5))
QUICK = MappingProxyType(dict(FULL, episodes=6, denoise_episodes=4, warmup=2, lol_batch=[8], denoise_batch=[8],
                              ddp_batch=8, ddp_ranks=[1, 2], warmup_calls=1, calls=2, large_calls=1,
                              preset_episodes=1, preset_warmup=1, preset_steps=1, profile_batch=8,
                              profile_episodes=1, resets=2))
PARTS = ("training", "ddp", "inference", "presets", "profile", "resets")
#: The Enhancer's small image, (height, width); the large one has --megapixels, 3:2.
SMALL_IMAGE = (400, 600)
#: The denoisers' input: a crop of scikit-image's camera (512 x 512) of BSD68's landscape size, noise sigma.
DENOISE_IMAGE, DENOISE_SIZE, DENOISE_SIGMA = "camera", (321, 481), 25.0
#: The colour photo of the colour denoising row (cropped to DENOISE_SIZE).
COLOUR_IMAGE = "coffee"


def unmeasured_presets() -> list[str]:
    """``TRAINER:NAME`` of every preset whose cost on a GPU is not recorded."""
    from benchmarks.preset_cost import TRAINERS as PRESET_TRAINERS

    return [f"{trainer}:{name}" for trainer in PRESET_TRAINERS
            for name, preset in importlib.import_module(f"experiments.{trainer}").PRESETS.items()
            if preset.cuda is None]


def presets_table(args: argparse.Namespace, gpus: int, budget: Budget) -> list[dict[str, Any]]:
    from benchmarks.preset_cost import measure

    records, rows = [], []
    for entry in args.presets if args.presets is not None else unmeasured_presets():
        trainer, _, name = entry.partition(":")
        timeout = budget.timeout(args.preset_timeout)
        if not gpus:
            row = {"trainer": trainer, "preset": name, "device": "cuda", "error": f"{UNAVAILABLE}: no CUDA device"}
        elif timeout is None:
            row = {"trainer": trainer, "preset": name, "device": "cuda", "error": f"{NOT_RUN}: out of time (--budget)"}
        else:
            start = time.perf_counter()
            settings = argparse.Namespace(device="cuda", episodes=args.preset_episodes, warmup=args.preset_warmup,
                                          steps=args.preset_steps, threads=0, timeout=timeout)
            try:
                row = measure(trainer, name, settings)
            except Exception as exc:  # noqa: BLE001 - one preset's failure is reported, not fatal
                row = {"trainer": trainer, "preset": name, "device": "cuda",
                       "error": " ".join(f"{type(exc).__name__}: {exc}".split())}
            print(f"  {trainer} --preset {name} --device cuda: {row.get('estimate', 'failed')}, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
        records.append(row)
        rows.append({"trainer": trainer, "preset": name, "s per episode (step)": row.get("s_per_unit", "-"),
                     "s per evaluation": row.get("s_per_eval", "-"), "whole preset": row.get("estimate", "-"),
                     "error": str(row.get("error", "")).split(":")[0] if row.get("error") else ""})
    print(f"\n### Presets on one GPU (benchmarks.preset_cost --device cuda)\n\n{markdown_table(rows)}\n")
    for row in records:
        if row.get("error") and not str(row["error"]).startswith((UNAVAILABLE, NOT_RUN)):
            print(f"- {row['trainer']} {row['preset']}: {row['error']}")
    commands = [row["command"] for row in records if "command" in row]
    if commands:
        print("\n```\n" + "\n".join(commands) + "\n```")
    print("Each preset reads its data where it names it (../shared/data); the evaluation's time grows with its "
          "validation images.", flush=True)
    return records


def resets_table(args: argparse.Namespace, gpus: int, budget: Budget) -> list[dict[str, Any]]:
    """:mod:`benchmarks.resets` on CUDA (else the CPU): each trainer's reset at its batches, ms per crop."""
    from benchmarks import resets

    device = "cuda" if gpus else "cpu"
    records = []
    for trainer, batches in (("lol_train", args.lol_batch), ("denoise_train", args.denoise_batch)):
        if budget.timeout(math.inf) is None:
            print(f"  resets of {trainer}: {NOT_RUN}: out of time", flush=True)
            continue
        start = time.perf_counter()
        records += resets.measure(device, batches, args.resets, 1, args.before, (trainer,),
                                  {"lol_train": args.lol_data, "denoise_train": args.denoise_data})
        print(f"  resets of {trainer} on {device}: {time.perf_counter() - start:.0f} s", flush=True)
    print(f"\n### A reset of each trainer's training env (ms per crop, median of {args.resets}; benchmarks.resets)\n\n"
          f"{resets.table(records)}\n", flush=True)
    return records


def median_ms(call: Callable[[], object], device: str, warmup: int, calls: int) -> float:
    """Median ms of ``call()`` over ``calls`` calls after ``warmup`` untimed ones, CUDA synchronised around each."""
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
    """:data:`DENOISE_SIZE` crop of photo ``name`` + unclipped noise :data:`DENOISE_SIGMA`, float32 (H, W, 1 or 3)."""
    from rlenhance.data import BuiltinImages, add_gaussian_noise

    height, width = DENOISE_SIZE
    clean = BuiltinImages(names=[name], gray=gray)[0]["high"][None, :, :height, :width]
    noisy = add_gaussian_noise(clean, DENOISE_SIGMA, generator=torch.Generator().manual_seed(0))
    return noisy[0].permute(1, 2, 0).numpy().astype(np.float32)


def inference_cases(args: argparse.Namespace) -> list[tuple[str, str, Callable[[str], Callable[[], object]], int]]:
    """(model, image, build(device) -> the timed call, timed calls) of each inference row."""
    from rlenhance import Enhancer, load_denoiser

    width, height = photo_size(args.megapixels)
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
            figure = measured[device] = attempt(lambda build=build, device=device, calls=calls: median_ms(
                build(device), device, args.warmup_calls, calls)) if gpus or device != "cuda" else Figure(
                error=f"{UNAVAILABLE}: no CUDA device")
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


def machine() -> dict[str, Any]:
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {"cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda, "gpus": gpus,
            "gpu": torch.cuda.get_device_name(0) if gpus else None,
            "trainer_threads": default_threads(1), "load_average": list(os.getloadavg())}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short pass to try the benchmark (see QUICK)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=["training", "ddp", "inference"],
                        help="the tables to measure, in this order (default: training ddp inference)")
    parser.add_argument("--budget", type=float, help="seconds the whole benchmark may take: no run starts after "
                                                     "them (default: no limit)")
    parser.add_argument("--episodes", type=int, help=f"lol_train episodes per run ({FULL['episodes']}; "
                                                      f"quick {QUICK['episodes']})")
    parser.add_argument("--denoise-episodes", type=int, help=f"denoise_train episodes per run "
                                                             f"({FULL['denoise_episodes']})")
    parser.add_argument("--warmup", type=int, help=f"first episodes left out of episodes/s ({FULL['warmup']})")
    parser.add_argument("--lol-batch", type=int, nargs="+", help=f"lol_train global batches ({FULL['lol_batch']})")
    parser.add_argument("--denoise-batch", type=int, nargs="+",
                        help=f"denoise_train global batches ({FULL['denoise_batch']})")
    parser.add_argument("--before", type=Path, help="another copy of the repository whose trainers are timed too "
                                                    "(on CUDA at each trainer's first and last batch)")
    parser.add_argument("--no-cpu", action="store_true", help="the training table times no run on the CPU")
    parser.add_argument("--ddp-batch", type=int, help=f"global batch of the data-parallel table ({FULL['ddp_batch']})")
    parser.add_argument("--ddp-ranks", type=int, nargs="+", help=f"torchrun processes ({FULL['ddp_ranks']})")
    parser.add_argument("--warmup-calls", type=int, help=f"untimed inference calls first ({FULL['warmup_calls']})")
    parser.add_argument("--calls", type=int, help=f"timed inference calls ({FULL['calls']})")
    parser.add_argument("--large-calls", type=int, help=f"timed calls on the large image ({FULL['large_calls']})")
    parser.add_argument("--megapixels", type=float, help=f"the Enhancer's large image ({FULL['megapixels']:g}, 3:2)")
    parser.add_argument("--presets", nargs="+", metavar="TRAINER:NAME",
                        help="presets timed on CUDA (default: those whose GPU cost is not recorded)")
    parser.add_argument("--preset-episodes", type=int, help=f"timed episodes (supervised: steps) of a preset "
                                                            f"({FULL['preset_episodes']})")
    parser.add_argument("--preset-warmup", type=int, help=f"a preset's untimed episodes ({FULL['preset_warmup']})")
    parser.add_argument("--preset-steps", type=int, help=f"a supervised preset's steps per epoch "
                                                         f"({FULL['preset_steps']})")
    parser.add_argument("--preset-timeout", type=float, default=120.0, help="seconds a preset's run may take")
    parser.add_argument("--profile-batch", type=int, help=f"global batch of the profiled episodes "
                                                          f"({FULL['profile_batch']})")
    parser.add_argument("--profile-episodes", type=int, help=f"profiled episodes of each trainer "
                                                             f"({FULL['profile_episodes']})")
    parser.add_argument("--resets", type=int, help=f"timed resets of each trainer's env at each batch "
                                                   f"({FULL['resets']})")
    parser.add_argument("--lol-data", help="lol_train --data (default: its embedded photos)")
    parser.add_argument("--denoise-data", help="denoise_train --data (default: its embedded photos)")
    parser.add_argument("--run-timeout", type=float, default=150.0, help="seconds a trainer run may take")
    parser.add_argument("--json", type=Path, help="also write every figure, command and error to this JSON file")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    positive = ("episodes", "denoise_episodes", "warmup", "ddp_batch", "calls", "large_calls", "megapixels",
                "preset_episodes", "preset_warmup", "preset_steps", "profile_batch", "profile_episodes", "resets")
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
    for flag, folder in (("--lol-data", args.lol_data), ("--denoise-data", args.denoise_data),
                         ("--before", args.before)):
        if folder is not None and not Path(folder).is_dir():
            parser.error(f"{flag} {folder}: no such folder")
    if args.before is not None:
        args.before = args.before.resolve()
        missing = [t for t, m in TRAINERS.items()
                   if not (args.before / Path(*m.split("."))).with_suffix(".py").is_file()]
        if missing:
            parser.error(f"--before {args.before}: no {', '.join(missing)} there (expected a copy of the repository)")
    for entry in args.presets or ():
        trainer, _, name = entry.partition(":")
        from benchmarks.preset_cost import TRAINERS as PRESET_TRAINERS

        if trainer not in PRESET_TRAINERS or name not in importlib.import_module(f"experiments.{trainer}").PRESETS:
            parser.error(f"--presets {entry}: expected TRAINER:NAME, a preset of one of {', '.join(PRESET_TRAINERS)}")
    if args.json is not None and args.json.is_dir():
        parser.error(f"--json {args.json}: a folder; give a file path")
    if args.budget is not None and args.budget <= 0:
        parser.error(f"--budget {args.budget}: expected seconds > 0")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    start = time.perf_counter()
    budget = Budget(args.budget)
    report: dict[str, Any] = {"machine": machine(), "settings": {k: str(v) if isinstance(v, Path) else v
                                                               for k, v in vars(args).items()}}
    info = report["machine"]
    gpus = info["gpus"]
    print(f"{info['cores']} cores, torch {info['torch']}; trainers take {info['trainer_threads']} torch threads "
          "(every core); "
          + (f"CUDA {info['cuda']}: {gpus} x {info['gpu']}" if gpus else
             f"CUDA: not available (torch {info['torch']}, CUDA build {info['cuda']}): CUDA cells read "
             f"'{UNAVAILABLE}', the CPU side is measured alone"), flush=True)

    def save() -> None:
        report["seconds"] = round(time.perf_counter() - start, 1)
        if args.json is not None:
            write_text_atomic(args.json, json.dumps(report, indent=2) + "\n")

    trainings = Trainings(args, gpus, budget)
    for part in args.parts:
        try:
            if part in ("training", "ddp"):
                (training_table if part == "training" else ddp_table)(trainings, args)
                report["training"] = trainings.records
            elif part == "inference":
                report["inference"] = inference_table(args, gpus)
            elif part == "presets":
                report["presets"] = presets_table(args, gpus, budget)
            elif part == "profile":
                report["profile"] = profile_table(args, gpus, budget)
            else:
                report["resets"] = resets_table(args, gpus, budget)
        except Exception as exc:  # noqa: BLE001 - one part's failure never ends the others
            error = " ".join(f"{type(exc).__name__}: {exc}".split())
            report.setdefault("errors", {})[part] = error
            print(f"\n{part}: failed: {error}", flush=True)
        save()
    print(f"\n{time.perf_counter() - start:.0f} s in all; load average {os.getloadavg()[0]:.1f}"
          + (f"; figures in {args.json}" if args.json else ""), flush=True)
    save()
    return report


if __name__ == "__main__":
    main()
