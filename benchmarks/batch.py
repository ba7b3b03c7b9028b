"""Images per second of the command line over a folder: ``rlenhance enhance --jobs 1`` vs ``--jobs N``.

    python -m benchmarks.batch [--images 200] [--size 600x400] [--jobs 1 2] [--command enhance]

Writes ``--images`` synthetic low-light photos of ``--size``, runs ``rlenhance COMMAND`` over all of
them once per ``--jobs`` value (each a fresh process, interpreter and model loading included, as a
user's run), and prints images/s and the ratio to the first value, measured in the same run.
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
    parser.add_argument("--images", type=int, default=200, help="number of images")
    parser.add_argument("--size", default="600x400", help="WIDTHxHEIGHT of each image")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="--jobs values to time")
    parser.add_argument("--command", choices=("enhance", "denoise"), default="enhance", help="CLI subcommand")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    work = Path(tempfile.mkdtemp(prefix="rlenhance_batch_"))
    try:
        rng = np.random.default_rng(0)
        inputs = []
        for i in range(args.images):
            path = work / "in" / f"img_{i:04d}.jpg"
            save_image(path, rng.uniform(0.0, 0.25, (height, width, 3)).astype(np.float32))
            inputs.append(str(path))
        rates = []
        for jobs in args.jobs:
            out = work / f"out_{jobs}"
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "rlenhance", args.command, *inputs, "-o", str(out),
                            "--device", "cpu", "--jobs", str(jobs)], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - start
            rates.append(args.images / seconds)
            print(f"--jobs {jobs}: {args.images} images of {width}x{height} in {seconds:.1f} s = "
                  f"{rates[-1]:.2f} images/s ({rates[-1] / rates[0]:.2f}x --jobs {args.jobs[0]})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
