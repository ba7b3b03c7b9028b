"""Images per second of the command line over a folder: ``rlenhance enhance --jobs 1`` vs ``--jobs N``.

    python -m benchmarks.batch [--images 1000] [--size 600x400] [--jobs 1 2 1 2] [--command enhance]

Writes ``--images`` synthetic low-light photos of ``--size`` into a folder, runs ``rlenhance COMMAND
FOLDER`` once per ``--jobs`` value (each a fresh process, interpreter and model loading included, as a
user's run), and prints images/s and the ratio to the first value, measured in the same run: over the
whole command, and between its first and last output line (the folder's throughput once the
command has started: start-up is paid once per command, however large the folder).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rlenhance.io import save_image

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000, help="number of images")
    parser.add_argument("--size", default="600x400", help="WIDTHxHEIGHT of each image")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 1, 2], help="--jobs values to time, in turn")
    parser.add_argument("--command", choices=("enhance", "denoise"), default="enhance", help="CLI subcommand")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    work = Path(tempfile.mkdtemp(prefix="rlenhance_batch_"))
    try:
        rng = np.random.default_rng(0)
        for i in range(args.images):
            path = work / "in" / f"img_{i:04d}.jpg"
            save_image(path, rng.uniform(0.0, 0.25, (height, width, 3)).astype(np.float32))
        rates = []
        for run, jobs in enumerate(args.jobs):
            out = work / f"out_{run}"
            start = time.perf_counter()
            process = subprocess.Popen([sys.executable, "-m", "rlenhance", args.command, str(work / "in"), "-o",
                                        str(out), "--device", "cpu", "--jobs", str(jobs)], cwd=ROOT,
                                       stdout=subprocess.PIPE, text=True)
            lines = [time.perf_counter() for _line in process.stdout]
            if process.wait() != 0 or len(lines) != args.images:
                raise SystemExit(f"rlenhance {args.command} --jobs {jobs} failed (exit code {process.returncode})")
            seconds = time.perf_counter() - start
            streaming = (len(lines) - 1) / max(lines[-1] - lines[0], 1e-9)
            rates.append((args.images / seconds, streaming))
            print(f"--jobs {jobs}: {args.images} images of {width}x{height} in {seconds:.1f} s = "
                  f"{rates[-1][0]:.2f} images/s ({rates[-1][0] / rates[0][0]:.2f}x --jobs {args.jobs[0]}); "
                  f"first to last output {streaming:.2f} images/s ({streaming / rates[0][1]:.2f}x)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
