"""Diffusion fill speed: one batch as one stack against the same fill image by image.

    python -m benchmarks.fill [--batch 16] [--size 224] [--hole 67] [--repeats 7] [--threads 2]

The completion models' pre-fill (:func:`rlenhance.ops.fill.diffusion_fill`) runs on every training
batch of ``experiments.supervised_train --task completion``; the bedroom data's crops are 224x224
with one 67x67 hole each, at a random place (``--shift-holes``). Prints the median seconds per
batch of ``--repeats`` runs each way, in alternation, and checks that both give the same fill.
Numbers only; nothing is asserted but the equality.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rlenhance.ops.fill import diffusion_fill


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224, help="side of the square crops")
    parser.add_argument("--hole", type=int, default=67, help="side of each crop's square hole")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(args.batch, 3, args.size, args.size, generator=g)
    mask = torch.zeros(args.batch, 1, args.size, args.size)
    for b, (top, left) in enumerate(torch.randint(0, args.size - args.hole + 1, (args.batch, 2), generator=g)):
        mask[b, :, top:top + args.hole, left:left + args.hole] = 1
    ways = {"one stack": lambda: diffusion_fill(image, mask),
            "image by image": lambda: torch.cat([diffusion_fill(image[b:b + 1], mask[b:b + 1])
                                                 for b in range(args.batch)])}
    same = torch.allclose(ways["one stack"](), ways["image by image"](), atol=1e-6)
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.repeats):
        for name, fill in ways.items():
            start = time.perf_counter()
            fill()
            seconds[name].append(time.perf_counter() - start)
    print(f"diffusion fill, {args.batch} crops of {args.size}x{args.size} with a {args.hole}x{args.hole} hole, "
          f"{args.threads} thread(s), median of {args.repeats}; same fill both ways: {same}")
    for name, times in seconds.items():
        print(f"  {name:15s} {statistics.median(times):.3f} s per batch")
    print(f"  speed-up {statistics.median(seconds['image by image']) / statistics.median(seconds['one stack']):.1f}x")


if __name__ == "__main__":
    main()
