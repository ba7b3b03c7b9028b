"""Seconds per A3C episode on LowLight-v1: PixelRL's full-resolution policy against the default file's.

    python -m benchmarks.agent_speed [--batch 8] [--crop 64] [--repeats 5] [--threads 1]

docs/api.md's agent example trains the network of ``lowlight_a3c.pt`` (the image pooled by 16,
one action drawn per 16 x 16 block: ``downscale=16``, ``A3CConfig(block_actions=True)``); PixelRL's
and ReLLIE's run the network and draw the actions at every pixel (``downscale=1``). Both train here
in one process, one episode each in alternation after a warm-up, so that load from other processes
hits both alike; prints the median seconds per episode of each and the median of the per-round
ratios. Numbers only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import envs
from agents.a3c import A3C, A3CConfig, policy_kwargs_from_env
from rlenhance.models.policy import PixelActorCritic
from rlenhance.runtime import configure_threads

#: (label, PixelActorCritic's downscale, A3CConfig's block_actions).
WAYS = (("the default file's: downscale=16, block_actions=True", 16, True),
        ("PixelRL's: full resolution", 1, False))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="crops an episode (the example's num_envs)")
    parser.add_argument("--crop", type=int, default=64, help="side of the crops in pixels")
    parser.add_argument("--repeats", type=int, default=5, help="timed episodes of each")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    configure_threads(args.threads)
    venv = envs.make_vec("rlenhance/LowLight-v1", num_envs=args.batch, crop=args.crop)
    agents = []
    for _, downscale, block in WAYS:
        torch.manual_seed(0)
        policy = PixelActorCritic(**policy_kwargs_from_env(venv), downscale=downscale)
        agent = A3C(policy, A3CConfig(action_penalty=1.0, block_actions=block))
        agent.train_episode(venv, seed=10_000)  # warm-up
        agents.append(agent)
    seconds: list[list[float]] = [[] for _ in WAYS]
    for episode in range(args.repeats):
        for times, agent in zip(seconds, agents):
            start = time.perf_counter()
            agent.train_episode(venv, seed=episode)
            times.append(time.perf_counter() - start)
    print(f"A3C on rlenhance/LowLight-v1, {args.batch} crops of {args.crop} px, {args.threads} thread(s), "
          f"median of {args.repeats} episodes")
    print("| policy | s / episode |")
    print("|---|---|")
    for (label, _, _), times in zip(WAYS, seconds):
        print(f"| {label} | {statistics.median(times):.3g} |")
    ratio = statistics.median(slow / fast for fast, slow in zip(*seconds))
    print(f"full resolution / the default file's: {ratio:.1f}x")


if __name__ == "__main__":
    main()
