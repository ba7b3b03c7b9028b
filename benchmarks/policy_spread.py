"""How much a low-light policy's alphas vary: over pixels, images and steps (does it use its input?).

    python -m benchmarks.policy_spread [--checkpoint PATH] [--data ../shared/data/sice_pairs/train]

Runs the Enhancer's greedy rollout (``Enhancer.alpha_maps``, at its working resolution) on the
validation split of a paired folder (lol_eval's split) and prints, per curve step, the mean alpha,
its standard deviation across images (of each image's mean alpha) and the mean standard deviation
within an image. A policy whose alphas barely vary across images, steps and pixels applies one
global curve whatever the input.
"""

from __future__ import annotations

import argparse

import torch

from rlenhance.data import open_dataset
from rlenhance.enhance import Enhancer


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="low-light policy checkpoint (default: the shipped one)")
    parser.add_argument("--data", default="../shared/data/sice_pairs/train", help="low/ + high/ pair folder")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the validation split (lol_train's --seed)")
    parser.add_argument("--exposure", type=float, default=None, help="exposure target of a conditioned model")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    enhancer = Enhancer(args.checkpoint, device="cpu")
    cond = enhancer.cond(exposure=args.exposure)
    dataset = open_dataset(args.data, kind="paired", split="val", gray=False, seed=args.split_seed)
    per_step: list[list[torch.Tensor]] = [[] for _ in range(enhancer.steps)]
    for index in range(len(dataset)):
        maps = enhancer.alpha_maps(dataset[index]["low"][None], cond)
        for step, alpha in enumerate(maps):
            per_step[step].append(alpha[0])
    rows = []
    print(f"{len(dataset)} validation image(s) of {args.data}, checkpoint {enhancer.path}")
    print("| step | mean alpha | std across images | mean std within an image |")
    print("|---|---|---|---|")
    for step, alphas in enumerate(per_step, start=1):
        means = torch.stack([a.mean() for a in alphas])
        within = torch.stack([a.std() for a in alphas]).mean()
        row = {"step": step, "mean": float(means.mean()), "across": float(means.std(unbiased=False)),
               "within": float(within)}
        rows.append(row)
        print(f"| {step} | {row['mean']:.3f} | {row['across']:.4f} | {row['within']:.4f} |")
    return rows


if __name__ == "__main__":
    main()
