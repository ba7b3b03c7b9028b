"""Soak tests of the command line: many images in one process, and single large images.

    python -m benchmarks.soak [--images 500] [--corrupt 0.05] [--seed 0] [--keep DIR]
    python -m benchmarks.soak --megapixels 2 12 50 [--commands denoise complete] [--models ffdnet mrpnet a3c=PATH ...]
                              [--complete-models unet a3c=PATH ...] [--masks]

Writes ``--images`` files of mixed sizes (PNG and JPEG, 64x48 up to 1600x1200) into a temporary
folder, a ``--corrupt`` fraction of them broken in different ways (truncated, random bytes, a text
file, empty), runs one ``rlenhance enhance`` process over all of them while sampling its resident
memory (``VmRSS`` from ``/proc``, Linux) against the number of images it has finished, and prints:
every good image written or not, every bad one listed or not, the exit code (1 expected), and the
memory after the first 50 images vs the peak after that (growth). ``--keep DIR`` keeps the files.

``--megapixels`` instead writes one synthetic 3:2 photo per size (noisy for ``denoise``, with a black
square hole of 1% of its area for ``complete``), runs each ``--commands`` process on it alone with its
defaults (``--device cpu``, so one thread on a 2-core machine: every core but one), once per model
(``denoise``: ``--models``, ``complete``: ``--complete-models``, each ``NAME`` or ``NAME=CHECKPOINT``,
the checkpoint passed as ``--checkpoint``; default: the command's default model), and prints the
wall-clock and CPU seconds and the peak resident memory (``ru_maxrss`` of the process) per size, then
a least-squares line through them (CPU seconds and MB per megapixel, the fixed part) and what it
gives at 50 megapixels: time linear in the pixels shows as a constant CPU seconds per megapixel,
memory bounded by the tiles as a small slope (the photo's samples in and out, 6 MB per megapixel for
8-bit RGB, and its PNG file) over a fixed part (the interpreter, torch, the model and one tile's
work). A denoiser of gray images (a gray checkpoint) gets a gray photo. ``--masks``: the ``complete``
photo's hole is 16 squares spread over it (1% of the area in all), given as a mask file (``--masks
DIR``), as a user's mask of scattered scratches is.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from rlenhance import registry
from rlenhance.io import save_image

ROOT = Path(__file__).resolve().parents[1]
SIZES = ((64, 48), (320, 240), (600, 400), (640, 480), (800, 600), (1024, 768), (1600, 1200), (300, 500))
CORRUPTIONS = ("truncated", "random", "text", "empty")
SETTLE_AFTER = 50  # images before the memory baseline is taken


def make_images(folder: Path, count: int, corrupt: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Write the test files; returns (good, bad) paths."""
    rng = np.random.default_rng(seed)
    bad_indices = set(rng.choice(count, size=int(round(count * corrupt)), replace=False).tolist())
    good, bad = [], []
    for index in range(count):
        width, height = SIZES[index % len(SIZES)]
        suffix = ".jpg" if index % 3 == 0 else ".png"
        path = folder / f"img_{index:04d}{suffix}"
        y, x = np.mgrid[0:height, 0:width] / max(width, height)
        base = 0.03 + 0.12 * (0.5 + 0.5 * np.sin(6 * x + 4 * y + index))
        image = np.clip(base[..., None] + rng.normal(0, 0.01, (height, width, 3)), 0, 1).astype(np.float32)
        save_image(path, image)
        if index in bad_indices:
            kind = CORRUPTIONS[len(bad) % len(CORRUPTIONS)]
            data = path.read_bytes()
            if kind == "truncated":
                path.write_bytes(data[: len(data) // 3])
            elif kind == "random":
                path.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
            elif kind == "text":
                path.write_text("not an image\n")
            else:
                path.write_bytes(b"")
            bad.append(path)
        else:
            good.append(path)
    return good, bad


def rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


def large_photo(path: Path, megapixels: float, command: str, seed: int, *, gray: bool = False,
                masks: Path | None = None) -> tuple[int, int]:
    """Write a synthetic 3:2 RGB (or ``gray``) photo of ``megapixels`` for ``command`` (``denoise``:
    Gaussian noise of 15/255; ``complete``: a black square hole of 1% of the area, or with ``masks``
    16 squares of 1/16 of it on a 4 x 4 grid, and their mask file, of the photo's name, in that
    folder); returns (width, height)."""
    height = int(round(math.sqrt(megapixels * 1e6 / 1.5)))
    width = int(round(height * 1.5))
    rng = np.random.default_rng(seed)
    rows = []
    for top in range(0, height, 512):  # in strips: the float image is never whole
        y, x = np.mgrid[top:min(height, top + 512), 0:width].astype(np.float32) / max(width, height)
        base = 0.45 + 0.25 * np.sin(9 * x + 5 * y)[..., None] * np.array([1.0, 0.8, 0.6], np.float32)
        if command == "denoise":
            base = base + rng.normal(0, 15 / 255, base.shape).astype(np.float32)
        rows.append(np.round(np.clip(base, 0, 1) * 255).astype(np.uint8))
    image = np.concatenate(rows)
    if command == "complete" and masks is None:
        side = int(math.sqrt(0.01 * width * height))
        image[height // 3:height // 3 + side, width // 3:width // 3 + side] = 0
    elif command == "complete":
        side = int(math.sqrt(0.01 * width * height / 16))
        hole = np.zeros((height, width), np.uint8)
        for top in np.linspace(0, height - side, 4).astype(int):
            for left in np.linspace(0, width - side, 4).astype(int):
                hole[top:top + side, left:left + side] = 255
        image[hole > 0] = 0
        masks.mkdir(parents=True, exist_ok=True)
        save_image(masks / f"{path.stem}.png", hole)
    save_image(path, image[..., :1] if gray else image)
    return width, height


def run_measured(cmd: list[str]) -> tuple[int, float, float, float, str]:
    """Run ``cmd``; returns (exit code, wall seconds, CPU seconds (user + system), peak RSS in MB, stderr's tail)."""
    start = time.perf_counter()
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stderr[-400:]


def denoiser_planes(model: str, checkpoint: str | None) -> int:
    """The planes ``rlenhance denoise --model model [--checkpoint checkpoint]`` denoises: 1 if gray, else 3."""
    if checkpoint is None:
        return 3
    from rlenhance.denoisers import load_denoiser  # noqa: PLC0415 - torch: only where a checkpoint is given

    return load_denoiser(model, checkpoint, device="cpu").channels


def large_images(sizes: list[float], commands: list[str], seed: int, models: list[str] | None = None,
                 complete_models: list[str] | None = None, masks: bool = False) -> None:
    """The ``--megapixels`` benchmark (module docstring); ``models`` / ``complete_models``: ``NAME`` or
    ``NAME=CHECKPOINT`` of ``denoise`` / ``complete``."""
    work = Path(tempfile.mkdtemp(prefix="rlenhance_large_"))
    chosen = {"denoise": models, "complete": complete_models}
    runs = [(command, *(entry.split("=", 1) if entry and "=" in entry else (entry, None)))
            for command in commands for entry in (chosen[command] or [None])]
    try:
        for command, model, checkpoint in runs:
            options = ([] if model is None else ["--model", model]) + \
                ([] if checkpoint is None else ["--checkpoint", checkpoint])
            mask_folder = work / "masks" if command == "complete" and masks else None
            options += [] if mask_folder is None else ["--masks", str(mask_folder)]
            gray = command == "denoise" and model is not None and denoiser_planes(model, checkpoint) == 1
            shown = [*(["--model", model] if model else []),
                     *(["--checkpoint", Path(checkpoint).name] if checkpoint else []),
                     *(["--masks", "DIR"] if mask_folder else [])]
            label = " ".join(["rlenhance", command, *shown])
            print(f"`{label} PHOTO -o OUT --device cpu` ({'gray' if gray else 'RGB'} photo)\n\n"
                  "| command | megapixels | size | seconds | CPU seconds | CPU s / MP | peak RSS MB |\n"
                  "|---|---|---|---|---|---|---|")
            rows = []
            for megapixels in sizes:
                photo = work / f"{command}_{megapixels:g}mp.png"
                width, height = large_photo(photo, megapixels, command, seed, gray=gray, masks=mask_folder)
                code, seconds, cpu, peak, stderr = run_measured(
                    [sys.executable, "-m", "rlenhance", command, str(photo), "-o", str(work / "out"),
                     "--device", "cpu", "--overwrite", *options])
                if code != 0:
                    print(f"{label} on {photo.name} failed (exit code {code}): {stderr}")
                    continue
                pixels = width * height / 1e6
                rows.append((pixels, cpu, peak))
                print(f"| {' '.join([command, *shown])} | {pixels:.2f} | {width}x{height} | {seconds:.1f} | "
                      f"{cpu:.1f} | {cpu / pixels:.1f} | {peak:.0f} |", flush=True)
                photo.unlink()
            if len(rows) >= 2:
                mp, sec, mem = (np.array(column) for column in zip(*rows))
                time_slope, time_fixed = np.polyfit(mp, sec, 1)
                mem_slope, mem_fixed = np.polyfit(mp, mem, 1)
                print(f"{label}: {time_slope:.1f} CPU s per megapixel + {time_fixed:.1f} s, {mem_slope:.1f} MB "
                      f"per megapixel + {mem_fixed:.0f} MB; at 50 megapixels about "
                      f"{time_fixed + 50 * time_slope:.0f} CPU s and {mem_fixed + 50 * mem_slope:.0f} MB")
            print()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _model_entry(task: str):
    """argparse type of ``NAME`` or ``NAME=CHECKPOINT``, NAME a model of ``task``."""
    def parse(text: str) -> str:
        name = text.split("=", 1)[0]
        if name not in registry.names(task):
            raise argparse.ArgumentTypeError(f"{text!r}: expected NAME or NAME=CHECKPOINT, NAME one of "
                                             f"{', '.join(registry.names(task))}")
        return text
    return parse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500, help="number of files")
    parser.add_argument("--corrupt", type=float, default=0.05, help="fraction of broken files")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sizes, pixels and corruptions")
    parser.add_argument("--keep", type=Path, default=None, help="keep the inputs and outputs in this folder")
    parser.add_argument("--megapixels", type=float, nargs="+", default=None,
                        help="instead: one photo of each of these sizes per command, timed and its peak memory read")
    parser.add_argument("--commands", nargs="+", choices=("denoise", "complete"), default=["denoise", "complete"],
                        help="the commands of --megapixels")
    parser.add_argument("--models", nargs="+", type=_model_entry("denoise"), default=None,
                        help="--megapixels: run denoise once with each of these --model, NAME or NAME=CHECKPOINT "
                             "(default: its default)")
    parser.add_argument("--complete-models", nargs="+", type=_model_entry("completion"), default=None,
                        help="--megapixels: run complete once with each of these --model, NAME or NAME=CHECKPOINT "
                             "(default: its default)")
    parser.add_argument("--masks", action="store_true",
                        help="--megapixels: complete reads a mask file of 16 holes spread over the photo (--masks DIR)")
    args = parser.parse_args(argv)
    if args.megapixels is not None:
        if min(args.megapixels) <= 0:
            parser.error(f"--megapixels {args.megapixels}: expected sizes > 0")
        large_images(args.megapixels, args.commands, args.seed, args.models, args.complete_models, args.masks)
        return
    if args.images <= SETTLE_AFTER:
        parser.error(f"--images {args.images}: expected more than {SETTLE_AFTER}")
    if not 0 <= args.corrupt < 1:
        parser.error(f"--corrupt {args.corrupt}: expected a fraction in [0, 1)")
    if not Path("/proc/self/status").exists():
        sys.exit("benchmarks.soak reads memory from /proc (Linux only)")

    work = Path(tempfile.mkdtemp(prefix="rlenhance_soak_"))
    try:
        inputs, outputs = work / "in", work / "out"
        inputs.mkdir()
        start = time.perf_counter()
        good, bad = make_images(inputs, args.images, args.corrupt, args.seed)
        print(f"wrote {len(good)} good and {len(bad)} corrupt files in {time.perf_counter() - start:.0f} s")

        everything = sorted(good + bad)
        process = subprocess.Popen([sys.executable, "-m", "rlenhance", "enhance", *map(str, everything),
                                    "-o", str(outputs), "--device", "cpu"],
                                   cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        done = [0]  # images finished (a line on stdout or a FAILED line on stderr)
        stderr_lines: list[str] = []

        def read(stream, keep: list[str] | None) -> None:
            for line in stream:
                if keep is not None:
                    keep.append(line)
                if " -> " in line or line.startswith("FAILED"):
                    done[0] += 1

        readers = [threading.Thread(target=read, args=(process.stdout, None), daemon=True),
                   threading.Thread(target=read, args=(process.stderr, stderr_lines), daemon=True)]
        for reader in readers:
            reader.start()
        samples: list[tuple[int, float]] = []  # (images done, RSS MB)
        start = time.perf_counter()
        while process.poll() is None:
            memory = rss_mb(process.pid)
            if memory is not None:
                samples.append((done[0], memory))
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        for reader in readers:
            reader.join()

        written = [p for p in good if (outputs / f"{p.stem}.png").is_file()]
        failed_text = "".join(stderr_lines)
        listed = [p for p in bad if f"FAILED {p}:" in failed_text]
        stray = [p for p in outputs.iterdir() if p.name.startswith(".")] if outputs.exists() else []
        baseline = max((m for d, m in samples if d <= SETTLE_AFTER), default=float("nan"))
        peak_after = max((m for d, m in samples if d > SETTLE_AFTER), default=float("nan"))
        print(f"rlenhance enhance over {len(everything)} files: exit code {process.returncode} (expected 1), "
              f"{seconds:.0f} s ({len(everything) / seconds:.1f} images/s)")
        print(f"good images written: {len(written)} of {len(good)}; corrupt files listed as FAILED: "
              f"{len(listed)} of {len(bad)}; temporary files left: {len(stray)}")
        print(f"resident memory: {baseline:.0f} MB by image {SETTLE_AFTER}, peak {peak_after:.0f} MB after it: "
              f"growth {peak_after - baseline:+.0f} MB (goal < 100 MB)")
        ok = (process.returncode == 1 and len(written) == len(good) and len(listed) == len(bad) and not stray
              and peak_after - baseline < 100)
        print("PASS" if ok else "FAIL")
        if args.keep is not None:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
