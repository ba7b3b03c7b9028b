"""The Enhancer's clean stage against the alternatives, on real low-light photos and synthetic ones.

    python -m benchmarks.clean [--data ../shared/data/sice_pairs/train] [--limit 40] [--val-limit 0]
                               [--zero-dcepp ../shared/weights/zero_dcepp_Epoch99.pth] [--no-mrpnet]
                               [--strengths 0.5 1 2] [--threads 1] [--sets train photos val]
                               [--variant "KNEE=0.7 LUMA_SIGMA_DARK=0.4" ...]
    python -m benchmarks.clean --speed [--repeats 20] [--megapixels 24] [--cli-repeats 3]

One table per set of images (``--sets``), one row per method: ``input``; ``old default (blur 0.65)``
(the curves, then a Gaussian blur of the result); ``blur 0`` (the curves alone, ``Enhancer(denoise=0)``);
``clean denoise S`` (the clean stage, :mod:`rlenhance.ops.clean`, at strength S); ``variant NAME=VALUE ...``
(the default with constants of :mod:`rlenhance.ops.clean` replaced, ``--variant``); ``Zero-DCE++`` (official
weights, ``--zero-dcepp``); ``--denoiser mrpnet`` (the curves, then the shipped colour MRPNet).
Columns, means over the images: NIQE, dark-area colour noise, clipped pixels (%), ms per image (float arrays,
``--threads`` threads) and, where the set has references, PSNR (RGB) / SSIM.

Sets: ``train``, the first ``--limit`` low photos of lol_train's training split of ``--data`` (seed 0), where the
clean stage's constants are chosen; ``photos``, scikit-image's colour photos with synthetic low light and
sensor noise (:func:`rlenhance.data.synthetic_low_light`); ``val``, the validation split (``--val-limit``),
never tuned on.

``--speed`` prints what the clean stage costs instead: ``Enhancer.enhance`` of a 600x400 image with the clean
stage, the curves alone, the old blur, and Zero-DCE++'s forward, in alternation over ``--repeats`` rounds;
then the whole ``python -m rlenhance enhance`` on a ``--megapixels`` JPEG in a fresh process, by default and
with ``--denoise 0``, best of ``--cli-repeats`` runs each.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks.inference import load_average, ms_alternating, timed_run
from benchmarks.knobs import load_images
from rlenhance import metrics
from rlenhance.data import BUILTIN_IMAGES, DEFAULT_COLOR_IMAGES, synthetic_low_light
from rlenhance.data.testsets import image_seed
from rlenhance.denoisers import default_denoiser
from rlenhance.enhance import Enhancer
from rlenhance.models.peers import load_zero_dcepp
from rlenhance.ops import clean
from rlenhance.runtime import configure_threads

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "sice_pairs" / "train"
DEFAULT_ZERO_DCEPP = ROOT.parent / "shared" / "weights" / "zero_dcepp_Epoch99.pth"
#: The blur the Enhancer applied to its result before the clean stage (sigma, pixels).
OLD_BLUR_SIGMA = 0.65
COLUMNS = ("NIQE", "dark noise", "clipped %", "ms", "PSNR", "SSIM")

Method = Callable[[np.ndarray], np.ndarray]
Image = tuple[str, np.ndarray, np.ndarray | None]  # name, low-light RGB float32 (H, W, 3), reference or None


def old_default(enhancer: Enhancer) -> Method:
    """The curves, then OpenCV's Gaussian of sigma :data:`OLD_BLUR_SIGMA` (a 2 ceil(3 sigma) + 1 kernel)."""
    side = 2 * math.ceil(3 * OLD_BLUR_SIGMA) + 1

    def run(image: np.ndarray) -> np.ndarray:
        return np.clip(cv2.GaussianBlur(enhancer.enhance(image), (side, side), OLD_BLUR_SIGMA), 0.0, 1.0)
    return run


def variant(spec: str) -> Method:
    """The default Enhancer with the constants of :mod:`rlenhance.ops.clean` that ``spec`` names
    (``"NAME=VALUE NAME=VALUE"``) replaced while it runs."""
    values = {}
    for item in spec.split():
        name, _, value = item.partition("=")
        if not name.isupper() or not isinstance(getattr(clean, name, None), float):
            raise SystemExit(f"--variant {spec!r}: {name!r} is not a float constant of rlenhance.ops.clean")
        values[name] = float(value)
    enhancer = Enhancer(device="cpu")

    def run(image: np.ndarray) -> np.ndarray:
        saved = {name: getattr(clean, name) for name in values}
        try:
            for name, value in values.items():
                setattr(clean, name, value)
            return enhancer.enhance(image)
        finally:
            for name, value in saved.items():
                setattr(clean, name, value)
    return run


def zero_dcepp(path: Path) -> Method:
    net = load_zero_dcepp(path).eval()

    def run(image: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = net(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None])[0]
        return np.ascontiguousarray(out[0].clamp(0, 1).permute(1, 2, 0).numpy())
    return run


def build_methods(args: argparse.Namespace) -> dict[str, Method]:
    curves = Enhancer(device="cpu", denoise=0)
    methods: dict[str, Method] = {"input": lambda image: image,
                                  f"old default (blur {OLD_BLUR_SIGMA:g})": old_default(curves),
                                  "blur 0": curves.enhance}
    for strength in args.strengths:
        methods[f"clean denoise {strength:g}"] = Enhancer(device="cpu", denoise=strength).enhance
    for spec in args.variant:
        methods[f"variant {spec}"] = variant(spec)
    if args.zero_dcepp and Path(args.zero_dcepp).is_file():
        methods["Zero-DCE++"] = zero_dcepp(Path(args.zero_dcepp))
    else:
        print(f"Zero-DCE++ skipped: no weights at {args.zero_dcepp}")
    if args.mrpnet:
        methods["--denoiser mrpnet"] = Enhancer(device="cpu", denoiser=default_denoiser("mrpnet", 3)).enhance
    return methods


def load_sets(args: argparse.Namespace) -> dict[str, list[Image]]:
    sets: dict[str, list[Image]] = {}
    for split, limit in (("train", args.limit), ("val", args.val_limit)):
        if split in args.sets:
            sets[split] = load_images(str(args.data), split, 0, limit, needed_by="benchmarks.clean")
    if "photos" in args.sets:
        photos = []
        for name in args.photos:
            clean = torch.from_numpy(BUILTIN_IMAGES[name]()).permute(2, 0, 1).float().div(255)
            generator = torch.Generator().manual_seed(image_seed(0, name))
            low = synthetic_low_light(clean, generator=generator, shot_noise=(0.003, 0.003), read_noise=(0.004, 0.004))
            photos.append((name, low.permute(1, 2, 0).contiguous().numpy(), clean.permute(1, 2, 0).numpy()))
        sets["photos"] = photos
    return {name: sets[name] for name in args.sets if name in sets}


def score(methods: dict[str, Method], images: Sequence[Image]) -> dict[str, dict[str, float]]:
    """Mean of each column over ``images``, per method."""
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in methods}
    for _, low, high in images:
        for name, method in methods.items():
            start = time.perf_counter()
            out = method(low)
            ms = 0.0 if name == "input" else 1000 * (time.perf_counter() - start)
            row = {"NIQE": metrics.niqe(out), "dark noise": metrics.dark_colour_noise(low, out),
                   "clipped %": 100 * metrics.clipped_fraction(out), "ms": ms}
            if high is not None:
                x, y = (torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None] for a in (out, high))
                row["PSNR"], row["SSIM"] = float(metrics.psnr(x, y)), float(metrics.ssim(x, y))
            rows[name].append(row)
    return {name: {k: float(np.mean([r[k] for r in values])) for k in values[0]} for name, values in rows.items()}


def print_table(title: str, table: dict[str, dict[str, float]]) -> None:
    columns = [c for c in COLUMNS if any(c in row for row in table.values())]
    print(f"\n{title}\n\n| method | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
    digits = {"NIQE": 3, "dark noise": 3, "clipped %": 2, "ms": 1, "PSNR": 2, "SSIM": 3}
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.{digits[c]}f}" for c in columns) + " |")


def speed(args: argparse.Namespace) -> dict[str, float]:
    """The ``--speed`` report (see the module notes); returns the best times (ms, and s for the command)."""
    rng = np.random.default_rng(0)
    image = (rng.random((400, 600, 3), dtype=np.float32) * 0.15).astype(np.float32)
    curves, clean = Enhancer(device="cpu", denoise=0), Enhancer(device="cpu")
    old = old_default(curves)
    fns = {"clean (default)": lambda: clean.enhance(image), "curves alone (--denoise 0)": lambda: curves.enhance(image),
           f"old default (blur {OLD_BLUR_SIGMA:g})": lambda: old(image)}
    if args.zero_dcepp and Path(args.zero_dcepp).is_file():
        peer = zero_dcepp(Path(args.zero_dcepp))
        fns["Zero-DCE++"] = lambda: peer(image)
    times = ms_alternating(fns, args.repeats)
    first = times["clean (default)"]
    print(f"600x400, {args.threads} thread(s), best (median) of {args.repeats} rounds in alternation "
          f"({load_average()}):\n\n| method | ms | clean / method |\n|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {values.min():.2f} ({np.median(values):.2f}) | {first.min() / values.min():.2f} "
              f"({np.median(first) / np.median(values):.2f}) |")
    result = {name: float(values.min()) for name, values in times.items()}
    if args.megapixels > 0:
        result.update(command_seconds(args))
    return result


def command_seconds(args: argparse.Namespace) -> dict[str, float]:
    """Best wall-clock seconds of the whole command on a synthetic photo, by default and with --denoise 0."""
    with tempfile.TemporaryDirectory(prefix="rlenhance-clean-") as folder:
        photo = Path(folder) / "big.jpg"
        subprocess.run([sys.executable, "-m", "benchmarks.inference", "--make-photo", str(photo), "--megapixels",
                        str(args.megapixels)], check=True, cwd=ROOT)
        base = [sys.executable, "-m", "rlenhance", "enhance", str(photo), "-o", str(Path(folder) / "out"),
                "--overwrite"]
        commands = {"default": base, "--denoise 0": [*base, "--denoise", "0"]}
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.cli_repeats):
            for name, command in commands.items():
                wall, _, cpu, _ = timed_run(command)
                walls[name].append(wall)
                cpus[name].append(cpu)
    print(f"\n{args.megapixels:g}-megapixel JPEG, the whole `python -m rlenhance enhance big.jpg -o OUT` in a fresh "
          f"process, in alternation ({load_average()}):")
    for name, values in walls.items():
        print(f"  {name}: {min(values):.2f} s (best of {len(values)}: {', '.join(f'{v:.2f}' for v in values)}), "
              f"CPU (user + sys) {min(cpus[name]):.2f} s (best)")
    print(f"  default / --denoise 0: {min(walls['default']) / min(walls['--denoise 0']):.2f}")
    return {f"command {name} s": min(values) for name, values in walls.items()}


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="paired folder (low/ + high/) of real photos")
    parser.add_argument("--limit", type=int, default=40, help="photos of the training split (0: all)")
    parser.add_argument("--val-limit", type=int, default=0, help="pairs of the validation split (0: all)")
    parser.add_argument("--sets", nargs="+", default=["train", "photos", "val"], choices=("train", "photos", "val"))
    parser.add_argument("--photos", nargs="+", default=list(DEFAULT_COLOR_IMAGES), choices=sorted(BUILTIN_IMAGES),
                        help="scikit-image photos of the photos set (colour ones)")
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.5, 1.0, 2.0],
                        help="strengths of the clean stage to compare")
    parser.add_argument("--variant", action="append", default=[], metavar="SPEC",
                        help='the default with constants of rlenhance.ops.clean replaced, "NAME=VALUE ..."')
    parser.add_argument("--zero-dcepp", default=str(DEFAULT_ZERO_DCEPP), help="official Zero-DCE++ weights")
    parser.add_argument("--no-mrpnet", dest="mrpnet", action="store_false", help="skip --denoiser mrpnet (slow)")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    parser.add_argument("--speed", action="store_true", help="print the speed report instead of the tables")
    parser.add_argument("--repeats", type=int, default=20, help="--speed: rounds of the 600x400 timing")
    parser.add_argument("--megapixels", type=float, default=24.0, help="--speed: size of the photo of the command "
                                                                       "(0: skip it)")
    parser.add_argument("--cli-repeats", type=int, default=3, help="--speed: runs of the command, each way")
    args = parser.parse_args(argv)
    configure_threads(args.threads)
    if args.speed:
        return {"speed": speed(args)}
    methods = build_methods(args)
    titles = {"train": f"SICE training split, first {args.limit or 'all'} low photos (the tuning split)",
              "photos": "scikit-image colour photos with synthetic low light and sensor noise",
              "val": "SICE validation split (reported, not tuned on)"}
    results = {}
    for name, images in load_sets(args).items():
        results[name] = score(methods, images)
        print_table(f"{titles[name]}: {len(images)} images, {args.threads} thread(s)", results[name])
    return results


if __name__ == "__main__":
    main()
