"""Inference cost of the low-light Enhancer, as ratios to Zero-DCE++ measured in the same run.

    python -m benchmarks.inference [--checkpoint PATH] [--zero-dcepp ../shared/weights/zero_dcepp_Epoch99.pth]
                                   [--zero-dce PATH] [--threads 1 2] [--repeats 20] [--megapixels 24]
                                   [--cli-repeats 3] [--no-large]

Prints:

1. a 600x400 image, per thread count (``--threads``, set with ``rlenhance.runtime.configure_threads`` in
   this process: torch's threads, and OpenCV's for the blur of the result): ``Enhancer.enhance`` (numpy in,
   numpy out) and Zero-DCE++ with its official weights
   (``--zero-dcepp``, by default ``../shared/weights/zero_dcepp_Epoch99.pth`` when it exists;
   its forward on a tensor) timed in alternation over ``--repeats`` rounds: the best and median time of
   each, the ratio of the best and of the medians, and in how many rounds ours was the faster of the
   pair (a load spike then hits both alike, so on a shared machine this count says more than one best);
2. the whole command line on a ``--megapixels`` JPEG (a synthetic dark photo: smooth light
   fields, texture and sensor noise, quality 92): ``python -m rlenhance enhance big.jpg -o OUT``
   in a fresh process (interpreter start, imports, model and image load, enhancing, PNG save),
   best wall-clock seconds of ``--cli-repeats`` runs, its own ``enhance`` figure, and the peak
   resident memory of those runs (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``, read in a
   small Python process that starts the command: a child forked from this large process would
   count this process's pages until its ``exec``);
3. ``Enhancer.enhance_array`` of a float32 array of that size in a fresh process (the public
   float API: the input and output arrays alone are 2 x 12 bytes a pixel), its time with torch's
   default threads and its peak RSS;
4. with ``--png-levels``, the PNG encoding of that enhanced photo: rlenhance's writer
   (``rlenhance.io.save_image``: Up filter, ISA-L's deflate at level 1, bands deflated by parallel
   threads; and with one thread) against OpenCV's encoder at its default (level 1, run-length
   strategy, Sub filter) and at levels 0-3, seconds (best of 2, in alternation) and megabytes.

The machine's load average is printed with each part: on a shared machine, compare ratios taken
in one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ZERO_DCEPP = ROOT.parent / "shared" / "weights" / "zero_dcepp_Epoch99.pth"

#: Runs the command given as its arguments; prints its exit status, wall seconds, peak RSS (KiB), CPU
#: seconds (user + system, all its threads: what a loaded machine's wall clock hides) and output.
CLI_WRAPPER = """
import resource, subprocess, sys, time
start = time.perf_counter()
result = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(result.returncode, wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
print(result.stdout.strip() if result.returncode == 0 else result.stderr, end="")
"""


def load_average() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def ms_alternating(fns: dict[str, object], repeats: int) -> dict[str, np.ndarray]:
    """Times (ms) of each function over ``repeats`` rounds, called in turn within a round (a load spike hits all)."""
    for fn in fns.values():
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: np.array(values) * 1000 for name, values in times.items()}


def timed_run(command: list[str]) -> tuple[float, int, float, str]:
    """``command`` under :data:`CLI_WRAPPER` from the repository root: (wall s, peak RSS KiB, CPU s, its output);
    SystemExit with its stderr when it fails."""
    report = subprocess.run([sys.executable, "-c", CLI_WRAPPER, *command], capture_output=True, text=True, cwd=ROOT,
                            check=True).stdout
    first, output = report.split("\n", 1)
    status, wall, peak_kib, cpu = first.split()
    if status != "0":
        raise SystemExit(f"{' '.join(command)} failed:\n{report}")
    return float(wall), int(peak_kib), float(cpu), output


def photo_size(megapixels: float) -> tuple[int, int]:
    """(width, height) of a 3:2 image of ``megapixels``."""
    width = int(round((megapixels * 1e6 * 1.5) ** 0.5))
    return width, int(round(megapixels * 1e6 / width))


def small_image_table(args: argparse.Namespace) -> None:
    from rlenhance import Enhancer
    from rlenhance.models.peers import load_zero_dce, load_zero_dcepp
    from rlenhance.runtime import configure_threads

    rng = np.random.default_rng(0)
    image = (rng.random((400, 600, 3), dtype=np.float32) * 0.15).astype(np.float32)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    enhancer = Enhancer(args.checkpoint, device="cpu")
    peers = {}
    if args.zero_dcepp:
        peers["Zero-DCE++"] = load_zero_dcepp(args.zero_dcepp).eval()
    if args.zero_dce:
        peers["Zero-DCE"] = load_zero_dce(args.zero_dce).eval()
    print(f"600x400 image, best (median) of {args.repeats} rounds, timed in alternation in this process "
          f"({load_average()}):")
    header = f"  {'threads':>7}  {'rlenhance ms':>14}" + "".join(f"  {name + ' ms':>14}" for name in peers)
    print(header + ("  ratio rlenhance / Zero-DCE++: best (median)  rounds rlenhance was faster"
                    if "Zero-DCE++" in peers else ""))
    for threads in args.threads:
        configure_threads(threads)  # torch's and OpenCV's (the clean stage of the result, Enhancer.denoise)
        fns = {"rlenhance": lambda: enhancer.enhance(image)}
        for name, net in peers.items():
            fns[name] = lambda net=net: net(x)
        with torch.no_grad():
            ms = ms_alternating(fns, args.repeats)
        row = f"  {threads:>7}" + "".join(f"  {t.min():>6.1f} ({np.median(t):5.1f})" for t in ms.values())
        if "Zero-DCE++" in peers:
            ours, theirs = ms["rlenhance"], ms["Zero-DCE++"]
            row += (f"  {ours.min() / theirs.min():.2f} ({np.median(ours) / np.median(theirs):.2f})"
                    f"  {int((ours < theirs).sum())} of {len(ours)}")
        print(row)
    side = enhancer.max_side
    print(f"  ({enhancer.path.name}, policy on a {side} x {side} working image, {enhancer.steps} steps)")


def dark_photo(path: Path, megapixels: float) -> tuple[int, int]:
    """Write a synthetic dark photo as a JPEG (quality 92): smooth light fields, texture, sensor noise."""
    import cv2

    from rlenhance.io import save_image

    width, height = photo_size(megapixels)
    rng = np.random.default_rng(0)
    light = cv2.resize(rng.random((6, 9, 3), dtype=np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    texture = cv2.resize(rng.random((height // 8, width // 8, 3), dtype=np.float32), (width, height),
                         interpolation=cv2.INTER_LINEAR)
    image = light * 0.12 + texture * 0.06
    image += rng.standard_normal((height, width, 3), dtype=np.float32) * (3.0 / 255)
    save_image(path, np.clip(image, 0.0, 1.0), jpeg_quality=92)
    return width, height


def cli_call(args: argparse.Namespace, folder: Path) -> None:
    photo = folder / "big.jpg"
    # made in a child: a child forked from this process while it is large would count its pages
    subprocess.run([sys.executable, "-m", "benchmarks.inference", "--make-photo", str(photo), "--megapixels",
                    str(args.megapixels)], check=True, cwd=ROOT)
    with Image.open(photo) as im:
        width, height = im.size
    command = [sys.executable, "-m", "rlenhance", "enhance", str(photo), "-o", str(folder / "out"), "--overwrite"]
    if args.checkpoint:
        command += ["--checkpoint", args.checkpoint]
    walls, cpus, peaks, lines = [], [], [], []
    for _ in range(args.cli_repeats):
        wall, peak_kib, cpu, line = timed_run(command)
        walls.append(wall)
        cpus.append(cpu)
        peaks.append(peak_kib / 1024)
        lines.append(line)
    peak_mb = max(peaks)
    best = int(np.argmin(walls))
    enhance_ms = lines[best].split("  ")[2] if len(lines[best].split("  ")) > 2 else "?"
    print(f"{width}x{height} JPEG ({width * height / 1e6:.1f} MP, {photo.stat().st_size / 1e6:.1f} MB), whole "
          f"`python -m rlenhance enhance big.jpg -o OUT` in a fresh process ({load_average()}):")
    png_mb = (folder / "out" / "big.png").stat().st_size / 1e6
    print(f"  wall {walls[best]:.2f} s (best of {len(walls)}: {', '.join(f'{w:.2f}' for w in walls)}), "
          f"CPU (user + sys) {min(cpus):.2f} s (best), its enhance step {enhance_ms}, peak RSS {peak_mb:.0f} MB, "
          f"PNG {png_mb:.1f} MB")
    if args.png_levels:
        png_levels(folder / "out" / "big.png")


def png_levels(path: Path) -> None:
    """Encode the enhanced photo with rlenhance's PNG writer and with OpenCV's at several levels."""
    import cv2

    import rlenhance.io.png as rio_png

    bgr = cv2.imread(str(path))
    rgb = np.ascontiguousarray(bgr[..., ::-1])

    def opencv(params: list[int]):
        return lambda: len(cv2.imencode(".png", bgr, params)[1])

    def ours(threads: int | None):
        return lambda: len(rio_png.encode_png(rgb, threads))

    deflate = "zlib 1, RLE" if rio_png._deflate is zlib else "ISA-L 1"
    cases = {f"rlenhance (Up, {deflate}), {os.cpu_count()} threads": ours(None),
             "rlenhance, 1 thread": ours(1),
             "OpenCV default (Sub, level 1, RLE)": opencv([]),
             **{f"OpenCV level {level}": opencv([cv2.IMWRITE_PNG_COMPRESSION, level]) for level in range(4)}}
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    sizes = {}
    for _ in range(2):
        for name, encode in cases.items():
            start = time.perf_counter()
            sizes[name] = encode()
            seconds[name].append(time.perf_counter() - start)
    print(f"PNG encoding of the enhanced {bgr.shape[1]}x{bgr.shape[0]} photo, best of 2 ({load_average()}):")
    for name in cases:
        print(f"  {name:42s} {min(seconds[name]):6.2f} s  {sizes[name] / 1e6:6.1f} MB")


def float_api_peak(checkpoint: str | None, megapixels: float) -> None:
    """Run in a subprocess: enhance one large float32 array, print its size, time and peak RSS."""
    from rlenhance import Enhancer

    width, height = photo_size(megapixels)
    rng = np.random.default_rng(0)
    image = rng.random((height, width, 3), dtype=np.float32) * np.float32(0.15)
    enhancer = Enhancer(checkpoint, device="cpu")
    result = enhancer.enhance_array(image)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    image_mb = image.nbytes / 2**20
    print(f"  {width}x{height} float32 array, {torch.get_num_threads()} thread(s): {result.seconds:.2f} s, peak RSS "
          f"{peak_mb:.0f} MB (input and output arrays alone: {2 * image_mb:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="policy checkpoint (default: the shipped model)")
    parser.add_argument("--zero-dcepp", default=str(DEFAULT_ZERO_DCEPP) if DEFAULT_ZERO_DCEPP.is_file() else None,
                        help="official Zero-DCE++ weights, timed in the same run (default: %(default)s)")
    parser.add_argument("--zero-dce", default=None, help="official Zero-DCE weights, timed in the same run")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch CPU threads, one row each")
    parser.add_argument("--repeats", type=int, default=20, help="timed repeats of the 600x400 image (best is reported)")
    parser.add_argument("--megapixels", type=float, default=24.0, help="size of the large photo")
    parser.add_argument("--cli-repeats", type=int, default=3, help="runs of the command line on the large photo")
    parser.add_argument("--no-large", action="store_true", help="only the 600x400 table")
    parser.add_argument("--png-levels", action="store_true", help="also time PNG encoders on the enhanced photo")
    parser.add_argument("--float-api-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--make-photo", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.float_api_only:
        float_api_peak(args.checkpoint, args.megapixels)
        return
    if args.make_photo is not None:
        dark_photo(args.make_photo, args.megapixels)
        return
    if not args.no_large:  # the command line first: the largest child of this process must be one of its runs
        folder = Path(tempfile.mkdtemp(prefix="rlenhance-bench-"))
        try:
            cli_call(args, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        cmd = [sys.executable, "-m", "benchmarks.inference", "--float-api-only", "--megapixels", str(args.megapixels)]
        print(f"Enhancer.enhance_array of a float32 array of that size in a fresh process ({load_average()}):")
        print(subprocess.run(cmd + (["--checkpoint", args.checkpoint] if args.checkpoint else []), check=True,
                             capture_output=True, text=True, cwd=ROOT).stdout.rstrip())
    small_image_table(args)


if __name__ == "__main__":
    main()
