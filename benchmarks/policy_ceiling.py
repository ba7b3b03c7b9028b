"""What a low-light policy's network can reach when its loss is differentiable: the same network, fine-tuned by
the gradient of the GT-mean-aligned error through its curve steps, against the RL-trained one.

    python -m benchmarks.policy_ceiling [--checkpoint FILE] [--data ../shared/data/sice_pairs/train]
                                        [--iterations 1500] [--batch 16] [--lr 1e-4] [--uneven 0.75] [--scratch]

The training images are the ``--data`` pairs' training split at the policy's side, as ``lol_train`` draws them:
each episode's dark image is its reference relit by uneven light (:func:`rlenhance.data.uneven_low_light`) with
probability ``--uneven``, else the frame's own low image. The policy (the checkpoint's network, or the same
architecture re-initialised with ``--scratch``) takes its expected alpha (``alpha_mode="mean"``) at the checkpoint's
default setting for its test steps; the loss is the mean squared error of the output, GT-mean aligned, against
the reference. It prints the tuning split's figures of :mod:`benchmarks.lowlight_goals` (relit GT-mean PSNR) and
the uniform pairs' GT-mean PSNR, before and after, for the network taking the expected alpha and its most
probable one. Nothing is written.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.lowlight_goals import DEFAULT_DATA, gt_mean_psnr, load_images
from envs.rewards import regain
from rlenhance import losses, metrics
from rlenhance.data import open_dataset, uneven_low_light
from rlenhance.data.transforms import ResizedImages
from rlenhance.enhance import Enhancer
from rlenhance.io import tensor_to_image
from rlenhance.models.policy import build_policy_input
from rlenhance.runtime import configure_threads


def rollout(enhancer: Enhancer, low: torch.Tensor, cond: torch.Tensor, target: float,
            greedy: bool = False) -> list[torch.Tensor]:
    """The states of the policy's expected-alpha rollout of ``low`` (B, 3, h, w), differentiable in the policy's
    weights (``greedy``: each step's alone, its input detached)."""
    policy, transition = enhancer.policy, enhancer.transition
    table, current, states = transition.table(low.device), low, []
    for _ in range(transition.steps):
        current = current.detach() if greedy else current
        obs = {"image": current, "original": low}
        if transition.observe_exposure_gap:
            obs["exposure_gap"] = losses.exposure_gap(current, target)
        x, _ = build_policy_input(obs)
        out = policy(x, cond=cond.expand(len(low), -1), full_resolution=False, with_value=False)
        alpha = policy.upsample(policy.action_values(out, table, mode="mean"), *low.shape[-2:])
        _, current = transition.step(current, alpha, None)
        states.append(current)
    return states


def scores(enhancer: Enhancer, relit, pairs) -> str:
    """Tuning split: relit and uniform-pair GT-mean PSNR of the expected and the most probable alpha."""
    parts = []
    for mode in ("mean", "argmax"):
        enhancer.alpha_mode = mode
        for name, images in (("relit", relit), ("pairs", pairs)):
            psnr = [gt_mean_psnr(enhancer.enhance(tensor_to_image(low)), high)
                    for low, high in zip(images.low, images.high)]
            parts.append(f"{name} {mode} {np.mean(psnr):.2f}")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="rlenhance/weights/lowlight_local.pt")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--uneven", type=float, default=0.75)
    parser.add_argument("--scratch", action="store_true", help="re-initialise the network first")
    parser.add_argument("--greedy", action="store_true", help="each step's loss, its input detached (gamma 0)")
    parser.add_argument("--loss", default="gt-mean", choices=("gt-mean", "scaled-reference"),
                        help="the output GT-mean aligned, or the reference scaled to the target (the reward's term)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    configure_threads(args.threads)
    torch.manual_seed(args.seed)
    enhancer = Enhancer(args.checkpoint, device="cpu")
    side, target = enhancer.max_side, float(enhancer.spec.setting["exposure_target"])
    relit, pairs = load_images(args.data, 256, split="tune", split_seed=0, seed=0)
    if args.scratch:
        enhancer.policy = type(enhancer.policy)(**enhancer.policy.arch()["kwargs"])
    print(f"before: {scores(enhancer, relit, pairs)}", flush=True)
    train = ResizedImages(open_dataset(args.data, kind="paired", split="train", gray=False, seed=0), side, cache=True)
    cond = enhancer.cond()
    generator = torch.Generator().manual_seed(args.seed)
    policy = enhancer.policy.train()
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.lr)
    for iteration in range(1, args.iterations + 1):
        rows = [train[int(i)] for i in torch.randint(len(train), (args.batch,), generator=generator)]
        size = min(min(r["high"].shape[-2:]) for r in rows)
        high = torch.stack([r["high"][:, :size, :size] for r in rows])
        low = torch.stack([r["low"][:, :size, :size] for r in rows])
        relight = torch.rand(args.batch, generator=generator) < args.uneven
        if relight.any():
            low[relight] = uneven_low_light(high[relight], generator=generator)
        states = rollout(enhancer, low, cond, target, args.greedy)
        if args.loss == "gt-mean":
            errors = [torch.mean((metrics.gt_mean_align(out, high) - high) ** 2) for out in states]
        else:
            scaled = regain(high, torch.full((len(high), 1, 1, 1), target))
            errors = [torch.mean((out - scaled) ** 2) for out in states]
        loss = torch.stack(errors).mean() if args.greedy else errors[-1]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if iteration % 250 == 0:
            print(f"iteration {iteration}: loss {loss.item():.5f}", flush=True)
    policy.eval()
    with torch.no_grad():
        print(f"after: {scores(enhancer, relit, pairs)}", flush=True)


if __name__ == "__main__":
    main()
