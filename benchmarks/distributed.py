"""Training throughput in one process and data-parallel under torchrun, at the same global batch.

    python -m benchmarks.distributed [--episodes 60] [--batch 8 32] [--ranks 2] [--repeats 3]

For each global ``--batch``, runs ``python -m experiments.lol_train`` (the shipped recipe on the
embedded default data, CPU, the entry point's default threads) in fresh subprocesses, alternately
as one process and as ``torchrun --standalone --nproc_per_node RANKS`` (each rank stepping
``batch / RANKS`` envs, with the same updates as the one process), and prints episodes/s from
train.csv (the first ``--warmup`` episodes left out) as the median and range over ``--repeats``,
with the machine's 1-minute load average over the measurement: on a shared machine the neighbours
move these figures more than the number of ranks does (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

from benchmarks.contention import episodes_per_second
from experiments.runs import markdown_table


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=60, help="lol_train episodes per run")
    parser.add_argument("--warmup", type=int, default=5, help="first episodes left out of episodes/s")
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 32], help="global batches (crops per episode)")
    parser.add_argument("--ranks", type=int, default=2, help="torchrun processes (--nproc_per_node)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, alternating")
    args = parser.parse_args(argv)
    if not 0 < args.warmup < args.episodes:
        parser.error(f"--warmup {args.warmup}: expected 0 < warmup < --episodes ({args.episodes})")
    if args.ranks < 2 or args.repeats < 1 or any(b % args.ranks for b in args.batch):
        parser.error(f"--ranks {args.ranks} (>= 2) must divide every --batch {args.batch}; --repeats >= 1")
    torchrun = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.ranks))
    env = dict(os.environ)
    rows = []
    for batch in args.batch:
        extra = ("--batch", str(batch))
        one, many, loads = [], [], [os.getloadavg()[0]]
        for _ in range(args.repeats):
            one.append(episodes_per_second(args.episodes, args.warmup, env, 0, extra=extra))
            many.append(episodes_per_second(args.episodes, args.warmup, env, 0, launcher=torchrun, extra=extra))
            loads.append(os.getloadavg()[0])
        rows.append({"global --batch": batch, "1 process episodes/s": _summary(one),
                     f"{args.ranks} ranks episodes/s": _summary(many),
                     "load average": f"{min(loads):.1f}-{max(loads):.1f}"})
    print(f"\n{os.cpu_count()} cores; lol_train episodes {args.warmup}..{args.episodes}, {args.repeats} repeats, "
          "median (range)\n")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
