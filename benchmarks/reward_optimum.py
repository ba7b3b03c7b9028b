"""Where a low-light reward leads, without RL: for each image, curve steps whose alpha maps are fitted by
gradient descent to the reward's loss (the loss the reward decreases, at gamma 1 the final image's), then
scored against the references. A reward whose per-pixel optimum scores below one alpha per image does not
ask for local light; one that beats ``oracle-global`` does.

    python -m benchmarks.reward_optimum [--data ../shared/data/sice_pairs/train] [--split tune] [--set relit]
                                        [--rewards "exposure=300,color=20,spatial=1,smooth=10" ...]

A reward is ``TERM=WEIGHT,...`` over ``exposure`` (patch means, :func:`rlenhance.losses.exposure_loss`,
plus ``mean`` times the whole image's, as the env scores it), ``color``, ``spatial``, ``smooth`` (total
variation of each alpha map, absolute differences, as A3C's smooth-on-mean penalty) and ``reference`` (the
env's :class:`envs.rewards.Reference`: the squared error to the reference re-exposed to the target), and
the options ``patch`` (the exposure patch, px) and ``mean``. Each is fitted twice: one alpha map per step
(``--grid``: an alpha grid of that side upsampled, 0: per pixel) and one alpha per step and image. The images
are ``benchmarks.lowlight_goals``' sets at ``--size`` (relit: references relit by uneven light; pairs:
uniform light). Prints PSNR after GT-mean alignment, the output mean and the alpha-map spread (p95 - p5 of
the summed map, median over images).
"""

from __future__ import annotations

import argparse
import shlex
import sys

import torch
import torch.nn.functional as F

from benchmarks.lowlight_goals import DEFAULT_DATA, SPREAD_QUANTILES, load_images
from envs.rewards import reexpose
from rlenhance import losses, metrics
from rlenhance.runtime import configure_threads

DEFAULTS = {"exposure": 0.0, "color": 0.0, "spatial": 0.0, "smooth": 0.0, "reference": 0.0, "patch": 32.0,
            "mean": 4.0}
SHIPPED = "exposure=300,color=20,spatial=1,smooth=10"


def parse_reward(text: str) -> dict[str, float]:
    """``TERM=WEIGHT,...`` -> every key of :data:`DEFAULTS`; a ValueError names a bad entry."""
    reward = dict(DEFAULTS)
    for entry in filter(None, text.split(",")):
        key, _, value = entry.partition("=")
        if key not in DEFAULTS:
            raise ValueError(f"reward {text!r}: unknown term {key!r}; expected some of {sorted(DEFAULTS)}")
        try:
            reward[key] = float(value)
        except ValueError:
            raise ValueError(f"reward {text!r}: {key} needs a number, got {value!r}") from None
    return reward


def loss(image: torch.Tensor, low: torch.Tensor, exposed: torch.Tensor, alphas: list[torch.Tensor],
         reward: dict[str, float], target: float) -> torch.Tensor:
    """The reward's loss (B,) of the final ``image`` of ``low`` and the ``alphas`` that made it."""
    total = reward["reference"] * (image - exposed).pow(2).mean(dim=(1, 2, 3))
    if reward["exposure"]:
        patches = losses.exposure_loss(image, target=target, patch_size=int(reward["patch"]))
        whole = (image.mean(dim=(1, 2, 3)) - target).pow(2)
        total = total + reward["exposure"] * (patches + reward["mean"] * whole)
    if reward["color"]:
        total = total + reward["color"] * losses.color_constancy_loss(image)
    if reward["spatial"]:
        total = total + reward["spatial"] * losses.spatial_consistency_loss(image, low)
    if reward["smooth"]:
        total = total + reward["smooth"] * sum(losses.illumination_smoothness_loss(a, power=1) for a in alphas)
    return total


def fit(low: torch.Tensor, high: torch.Tensor, reward: dict[str, float], *, steps: int, grid: int | None,
        iterations: int, target: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The output and the alpha maps of ``steps`` LE-curve steps fitted to the reward (``grid`` None: one
    alpha per image and step; 0: per pixel)."""
    n, _, h, w = low.shape
    shape = (n, 1, 1, 1) if grid is None else (n, 1, grid or h, grid or w)
    params = [torch.full(shape, -1.0, requires_grad=True) for _ in range(steps)]
    optimiser = torch.optim.Adam(params, lr=0.05)
    exposed = reexpose(high, torch.full((n, 1, 1, 1), target))
    for iteration in range(iterations + 1):
        image, alphas = low, []
        for param in params:
            alpha = torch.sigmoid(param)
            alpha = F.interpolate(alpha, size=(h, w), mode="bilinear", align_corners=False) \
                if alpha.shape[-1] > 1 else alpha.expand(-1, -1, h, w)
            alphas.append(alpha)
            image = image + alpha * image * (1 - image)
        if iteration == iterations:
            return image.detach().clamp(0, 1), [a.detach() for a in alphas]
        optimiser.zero_grad()
        loss(image, low, exposed, alphas, reward, target).sum().backward()
        optimiser.step()
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--split", default="tune")
    parser.add_argument("--set", dest="which", choices=("relit", "pairs"), default="relit")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--grid", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--target", type=float, default=0.4)
    parser.add_argument("--rewards", nargs="+", default=[SHIPPED])
    args = parser.parse_args(argv)
    configure_threads(1)
    torch.manual_seed(0)
    rewards = [(text, parse_reward(text)) for text in args.rewards]
    relit, pairs = load_images(args.data, args.size, split=args.split, split_seed=0, seed=0)
    images = relit if args.which == "relit" else pairs
    print(f"`python -m benchmarks.reward_optimum {shlex.join(sys.argv[1:] if argv is None else argv)}`: "
          f"{len(images.low)} images ({args.which}, {args.split}), {args.steps} steps\n")
    print("| reward | alphas | PSNR (GT-mean) | mean | spread |\n|---|---|---|---|---|")
    for text, reward in rewards:
        for label, grid in (("per pixel" if not args.grid else f"{args.grid} x {args.grid} grid", args.grid),
                            ("one per image", None)):
            output, alphas = fit(images.low, images.high, reward, steps=args.steps, grid=grid,
                                 iterations=args.iterations, target=args.target)
            psnr = metrics.psnr(metrics.gt_mean_align(output, images.high), images.high).mean()
            summed = torch.stack(alphas).sum(dim=0).mean(dim=1).flatten(1)
            low_q, high_q = torch.quantile(summed, torch.tensor(SPREAD_QUANTILES), dim=1)
            print(f"| `{text}` | {label} | {float(psnr):.2f} | {float(output.mean()):.3f} | "
                  f"{float((high_q - low_q).median()):.3f} |", flush=True)


if __name__ == "__main__":
    main()
