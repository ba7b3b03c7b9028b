"""What local LE curves can learn under uneven light when the learner sees the reference's gradient.

    python -m benchmarks.curve_headroom [--steps 3000] [--batch 16] [--data ../shared/data/sice_pairs/train]
                                        [--threads 2]

The uneven-light policy's action family and network, trained without RL: a network of the policy's
trunk (width 32, the image pooled by 8, dilations 1-4 and 3, 2) reads the dark image at 128 px once and
outputs the alpha maps of 10 LE-curve steps (alphas in [0, 1], one per 8 x 8 block, upsampled
bilinearly), trained by Adam on the squared error to the reference after GT-mean alignment (the metric's
own alignment), through the curves. Its data are ``experiments.lol_train --preset uneven-light``'s: the
training split's references at 128 px relit by :func:`rlenhance.data.uneven_low_light`, fresh light for each
batch. Every 250 steps it is scored as ``benchmarks.lowlight_goals`` scores a policy: the tuning and
validation splits' scenes at 256 px relit (:func:`benchmarks.lowlight_goals.load_images`), the net reading
a 128 px copy and its maps upsampled to 256 (no clean stage), PSNR after GT-mean alignment. The step with
the best tuning score is reported on validation, beside the input, ``global-curve`` and ``oracle-global``.

An RL policy of this family cannot beat what this learner reaches with the gradient in hand: the gap
between the two is the policy's learning, the gap to ``oracle-global`` what local curves can gain.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.lowlight_goals import DEFAULT_DATA, gt_mean_psnr, load_images
from rlenhance import metrics
from rlenhance.baselines import global_curve, oracle_global
from rlenhance.data import LowLightTestSet, open_dataset
from rlenhance.data.illumination import uneven_low_light
from rlenhance.data.transforms import ResizedImages
from rlenhance.models.trunks import ConvTrunk
from rlenhance.ops.curves import le_curve

SIDE, POOL, STEPS, EVAL_EVERY = 128, 8, 10, 250


class CurveNet(nn.Module):
    """The dark image (B, 3, H, W) -> the alpha maps of :data:`STEPS` curve steps at 1 / :data:`POOL`."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.trunk = ConvTrunk(3, width, (1, 2, 3, 4, 3, 2))
        self.head = nn.Conv2d(width, STEPS, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.trunk(F.avg_pool2d(x, POOL, ceil_mode=True))))


def enhance(net: CurveNet, low: torch.Tensor) -> torch.Tensor:
    """``low`` (B, 3, H, W) through the curves whose maps the net picks on its :data:`SIDE` px copy."""
    seen = low if max(low.shape[-2:]) <= SIDE else F.interpolate(low, size=(SIDE, SIDE), mode="area")
    maps = F.interpolate(net(seen), size=low.shape[-2:], mode="bilinear", align_corners=False)
    x = low
    for step in range(STEPS):
        x = le_curve(x, maps[:, step:step + 1])
    return x


def gt_mean_error(out: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    return metrics.gt_mean_align(out, high).sub(high).pow(2).mean()


def score(net: CurveNet, images: LowLightTestSet) -> float:
    with torch.no_grad():
        return float(metrics.psnr(metrics.gt_mean_align(enhance(net, images.low), images.high), images.high).mean())


def baselines(images: LowLightTestSet) -> dict[str, float]:
    lows = [low.permute(1, 2, 0).numpy() for low in images.low]
    refs = [high.permute(1, 2, 0).numpy() for high in images.high]
    return {"input": np.mean([gt_mean_psnr(low, high) for low, high in zip(lows, images.high)]),
            "global-curve": np.mean([gt_mean_psnr(global_curve(low, target=0.4), high)
                                     for low, high in zip(lows, images.high)]),
            "oracle-global": np.mean([gt_mean_psnr(oracle_global(low, ref), high)
                                      for low, ref, high in zip(lows, refs, images.high)])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="Adam steps")
    parser.add_argument("--batch", type=int, default=16, help="images per step")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="low/ + high/ pair folder (its references relit)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    train = ResizedImages(open_dataset(args.data, kind="paired", split="train", gray=False, seed=0), SIDE, cache=True)
    tune, _ = load_images(args.data, 256, split="tune", split_seed=0, seed=0)
    val, _ = load_images(args.data, 256, split="val", split_seed=0, seed=0)
    net = CurveNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps)
    start, best = time.time(), (-np.inf, np.nan, 0)
    for step in range(1, args.steps + 1):
        rows = torch.randint(len(train), (args.batch,), generator=generator).tolist()
        high = torch.stack([F.interpolate(train[i]["high"][None], size=(SIDE, SIDE), mode="area")[0] for i in rows])
        loss = gt_mean_error(enhance(net, uneven_low_light(high, generator=generator)), high)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % EVAL_EVERY == 0 or step == args.steps:
            scores = score(net, tune), score(net, val)
            if scores[0] > best[0]:
                best = (*scores, step)
            print(f"step {step}: loss {loss.item():.5f}, tune {scores[0]:.2f} dB, val {scores[1]:.2f} dB "
                  f"({time.time() - start:.0f} s)", flush=True)
    print(f"\n| {len(val.low)} val scenes, 256 px | PSNR (GT-mean) |\n|---|---|")
    for name, value in baselines(val).items():
        print(f"| {name} | {value:.2f} |")
    print(f"| learned curves, best tuning score (step {best[2]}, tune {best[0]:.2f}) | {best[1]:.2f} |")


if __name__ == "__main__":
    main()
