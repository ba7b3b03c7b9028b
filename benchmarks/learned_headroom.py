"""How much of an oracle's headroom a per-block policy could learn: a full-information learner, held out.

    python -m benchmarks.learned_headroom --task denoise [--data ../shared/data/bsd/train432]
        [--test ../shared/data/bsd/BSD68] [--limit 20] [--sigma 25] [--steps 1500]
    python -m benchmarks.learned_headroom --task completion [--data ../shared/data/bedroom/train] [--steps 1500]

The oracles of ``benchmarks.denoise_headroom`` and ``benchmarks.completion_headroom`` pick per block
with the clean image in hand (and at small blocks they fit the noise). A policy that acts per block with
gamma 0 (the noise-map policy, the completion policies) can at best take, in each block, the candidate
whose expected gain is highest given what it sees. This learner is told more than such a policy is: the
error of every candidate in every 8 x 8 block of its training images, where a policy learns from the one
action it sampled. A small CNN regresses each candidate's gain over candidate 0 (the supervised model's
output) per block from the observation; a block leaves candidate 0 only where the best predicted gain
exceeds a margin, chosen on tuning images among ``MARGINS`` (the largest never switches, 0 dB). Its gain
on held-out images estimates what an RL policy with that observation and those actions can add.

- ``denoise``: gray Gaussian noise of ``--sigma``; candidates: the blind FFDNet at its estimated level
  times 1, 0.6, 0.8, 0.9, 1.1, 1.25 and 1.6, and PixelRL's eight filters on its output (the ``levels``
  and ``filters`` sets of ``denoise_headroom``); observation: the noisy image, FFDNet's output, their
  difference and the level. Fit on 8 crops of 96 x 96 from each image of the trainers' train split of
  ``--data``, margin on its tune split, reported on ``--test`` (or the val split). Image PSNR.
- ``completion``: every candidate of ``completion_headroom`` (its ``all`` set, the U-Net's output
  first); observation: the occluded photo, the mask and every candidate; the 104 x 104 window around
  the hole. Fit on the train split, margin on tune, reported on val. Hole PSNR.

Paired difference to candidate 0 per image (mean, standard error, images better). Without ``--data``:
the built-in photos (synthetic holes for completion), every split all of them (a smoke run). Seeded;
numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks import completion_headroom, denoise_headroom
from benchmarks.noise_estimate import gray_images
from rlenhance.baselines import estimate_noise_sigma
from rlenhance.data import occluded_test_set, open_dataset
from rlenhance.denoisers import load_denoiser
from rlenhance.restore import SupervisedRestorer

WEIGHTS = Path(__file__).resolve().parents[1] / "rlenhance" / "weights"
#: The block side, pixels (the learner's three 2x poolings).
BLOCK = 8
#: The margins tried on the tuning images, in units of the training gains' standard deviation.
MARGINS = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, float("inf"))
#: Denoising: the level multipliers (1 first) and the crops per training image and their side.
LEVEL_SCALES = (1.0, 0.6, 0.8, 0.9, 1.1, 1.25, 1.6)
CROPS, CROP = 8, 96
#: Completion: the side of the window around the hole.
WINDOW = 104

#: One image or crop: (observation (V, H, W), candidates (K, C, H, W), clean (C, H, W), weight (1, H, W)).
Sample = tuple[Tensor, Tensor, Tensor, Tensor]


class BlockLearner(nn.Module):
    """Per-block gains of ``k`` candidates from an observation of ``planes`` planes: (N, k, H/8, W/8)."""

    def __init__(self, planes: int, k: int):
        super().__init__()

        def pair(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU()]

        self.net = nn.Sequential(*pair(planes, 48), nn.AvgPool2d(2), *pair(48, 64), nn.AvgPool2d(2),
                                 *pair(64, 64), nn.AvgPool2d(2), *pair(64, 64), nn.Conv2d(64, k, 1))
        for layer in self.net:
            if isinstance(layer, nn.Conv2d):  # He's initialisation: the input's variation reaches the output
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def block_gains(cands: Tensor, clean: Tensor, weight: Tensor) -> Tensor:
    """Each candidate's weighted squared error below candidate 0's, per pixel of each ``BLOCK`` block:
    cands (N, K, C, H, W), clean (N, C, H, W), weight (N, 1, H, W) -> (N, K, H / BLOCK, W / BLOCK)."""
    error = F.avg_pool2d(((cands - clean[:, None]) ** 2).sum(dim=2) * weight, BLOCK)
    return error[:, :1] - error


def choose(predicted: Tensor, margin: float) -> Tensor:
    """The candidate of each block (N, 1, h, w): the best predicted gain's where it exceeds ``margin``, else 0."""
    best, index = predicted[:, 1:].max(dim=1, keepdim=True)
    return torch.where(best > margin, index + 1, torch.zeros_like(index))


def stitch(cands: Tensor, choice: Tensor) -> Tensor:
    """The chosen candidate in every block: cands (N, K, C, H, W), choice (N, 1, h, w) -> (N, C, H, W)."""
    pick = F.interpolate(choice.float(), scale_factor=BLOCK, mode="nearest").long()
    return cands.gather(1, pick[:, :, None].expand(-1, 1, cands.shape[2], -1, -1))[:, 0]


def psnr(x: Tensor, clean: Tensor, weight: Tensor) -> float:
    mse = float((((x - clean) ** 2) * weight).sum()) / (float(weight.sum()) * x.shape[-3])
    return -10.0 * float(np.log10(max(mse, 1e-12)))


def fit(train: list[Sample], steps: int, seed: int, batch: int = 16) -> tuple[BlockLearner, float]:
    """The learner fitted on ``train`` (samples of one size) by weighted least squares on the standardised
    gains (blocks outside the weight ignored), and the gains' standard deviation."""
    torch.manual_seed(seed)
    view, cands, clean, weight = (torch.stack(parts) for parts in zip(*train))
    gains = block_gains(cands, clean, weight)
    blocks = F.max_pool2d(weight, BLOCK)
    scale = float(gains[:, 1:][blocks.expand(-1, gains.shape[1] - 1, -1, -1) > 0].std()) or 1.0
    learner = BlockLearner(view.shape[1], cands.shape[1])
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(view), (batch,), generator=generator)
        v, g, b = view[idx], gains[idx] / scale, blocks[idx]
        if torch.rand((), generator=generator) < 0.5:
            v, g, b = v.flip(-1), g.flip(-1), b.flip(-1)
        loss = (((learner(v) - g)[:, 1:] ** 2) * b).sum() / (b.sum().clamp_min(1.0) * (g.shape[1] - 1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return learner.eval(), scale


@torch.no_grad()
def gains_at(learner: BlockLearner, samples: list[Sample], margins: tuple[float, ...]) -> np.ndarray:
    """PSNR gain over candidate 0 of each sample (rows) at each margin (columns), and last the oracle's."""
    rows = []
    for view, cands, clean, weight in samples:
        predicted = learner(view[None])
        base = psnr(cands[0], clean, weight)
        oracle = block_gains(cands[None], clean[None], weight[None]).argmax(dim=1, keepdim=True)
        outs = [stitch(cands[None], choose(predicted, m))[0] for m in margins] + [stitch(cands[None], oracle)[0]]
        rows.append([psnr(x, clean, weight) - base for x in outs])
    return np.asarray(rows)


def denoise_samples(denoiser, images: list[np.ndarray], sigma: float, seed: int, crops: int) -> list[Sample]:
    """Samples of gray ``images`` with noise seeded per image: ``crops`` random crops of each, or (0) the
    image cut to whole blocks."""
    out = []
    for i, clean in enumerate(images):
        rng = np.random.default_rng(seed + i)
        noisy = np.clip(clean + rng.normal(0.0, sigma / 255.0, clean.shape), -1.0, 2.0).astype(np.float32)
        h, w = clean.shape
        if crops and min(h, w) < CROP:
            raise ValueError(f"image {i}: {w} x {h} pixels, smaller than the {CROP} x {CROP} training crops")
        corners = [(int(rng.integers(0, h - CROP + 1)), int(rng.integers(0, w - CROP + 1))) for _ in range(crops)]
        for y, x in corners or [(0, 0)]:
            size = (CROP, CROP) if crops else (h // BLOCK * BLOCK, w // BLOCK * BLOCK)
            n, c = noisy[y:y + size[0], x:x + size[1]], clean[y:y + size[0], x:x + size[1]]
            levels = denoise_headroom.candidates_of(denoiser, n, "levels", list(LEVEL_SCALES[1:]))
            filters = denoise_headroom.filter_candidates(levels[0])[1:]  # on FFDNet's output at the estimate
            cands = torch.from_numpy(np.concatenate([levels, filters])).float()[:, None]
            noisy_t = torch.from_numpy(n)[None]
            level = torch.full_like(noisy_t, estimate_noise_sigma(n) / 255.0)
            view = torch.cat([noisy_t, cands[0], noisy_t - cands[0], level])
            out.append((view, cands, torch.from_numpy(c)[None], torch.ones_like(noisy_t)))
    return out


def completion_samples(unet: SupervisedRestorer, pixelrnn: SupervisedRestorer, data: Path | None,
                       split: str) -> list[Sample]:
    """Samples of a split of occluded pairs: the ``WINDOW`` window around each hole (block-aligned)."""
    out = []
    for item in occluded_test_set(open_dataset(data, kind="occluded", split=split, gray=False, seed=0)):
        occluded, mask, original = item.occluded[None], item.mask[None], item.original
        found = completion_headroom.candidates_of(unet, pixelrnn, occluded, mask, 0.02)
        cands = torch.cat([found[name] for name in completion_headroom.SETS["all"]])
        ys, xs = torch.nonzero(mask[0, 0] > 0, as_tuple=True)
        h, w = mask.shape[-2:]
        side = min(WINDOW, h // BLOCK * BLOCK, w // BLOCK * BLOCK)
        y0, x0 = (min(max(int(c.min() + c.max()) // 2 - side // 2, 0) // BLOCK * BLOCK, (n - side) // BLOCK * BLOCK)
                  for c, n in ((ys, h), (xs, w)))
        window = (..., slice(y0, y0 + side), slice(x0, x0 + side))
        view = torch.cat([occluded[0], mask[0], cands.flatten(0, 1)])
        out.append(tuple(x[window].clone() for x in (view, cands, original, mask[0])))  # not views of the whole
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("denoise", "completion"), required=True)
    parser.add_argument("--data", type=Path, default=None,
                        help="denoise: clean images; completion: occluded pairs (default: the built-in photos)")
    parser.add_argument("--test", type=Path, default=None, help="denoise: clean images to report on (default: val)")
    parser.add_argument("--limit", type=int, default=0, help="denoise: the first N --test images (by name; 0: all)")
    parser.add_argument("--sigma", type=float, default=25.0, help="denoise: Gaussian noise level, 0-255 scale")
    parser.add_argument("--steps", type=int, default=1500, help="the learner's Adam steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise, crops and learner")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps: expected >= 1, got {args.steps}")
    torch.set_num_threads(args.threads)
    if args.task == "denoise":
        denoiser = load_denoiser("ffdnet", WEIGHTS / "ffdnet_denoise.pt", channels=1, device="cpu")
        names = {s: set(item["name"] for item in open_dataset(args.data, kind="clean", split=s, gray=True, seed=0))
                 for s in ("train", "tune", "val")}
        images = gray_images(args.data, None)
        test = gray_images(args.test, args.limit or None) if args.test else \
            [item for item in images if item[0] in names["val"]]

        def of(split: str) -> list[np.ndarray]:
            return [image for name, image in images if name in names[split]]

        train = denoise_samples(denoiser, of("train"), args.sigma, args.seed, CROPS)
        tune = denoise_samples(denoiser, of("tune"), args.sigma, args.seed + 10_000, 0)
        held = denoise_samples(denoiser, [image for _, image in test], args.sigma, args.seed + 20_000, 0)
        where = f"sigma {args.sigma:g}; reported on {args.test or 'val'}"
    else:
        unet = SupervisedRestorer(WEIGHTS / "unet_completion.pt", device="cpu", task="completion")
        pixelrnn = SupervisedRestorer(WEIGHTS / "gated_pixelrnn_completion.pt", device="cpu", task="completion")
        train, tune, held = (completion_samples(unet, pixelrnn, args.data, s if args.data is not None else None)
                             for s in ("train", "tune", "val"))
        where = "hole PSNR; reported on val"
    learner, scale = fit(train, args.steps, args.seed)
    margins = tuple(m * scale for m in MARGINS)
    at_tune = gains_at(learner, tune, margins)[:, :-1].mean(axis=0)
    pick = int(np.argmax(at_tune))
    result = gains_at(learner, held, (margins[pick], 0.0))
    print(f"{args.task}, {args.data or 'the built-in photos'}: fit on {len(train)}, margin on {len(tune)}, "
          f"{len(held)} held out ({where}); {train[0][1].shape[0]} candidates")
    print("| margin (tune) | gain on tune | gain held out (s.e.), images better | at margin 0 | oracle 8x8 |")
    print("|---|---|---|---|---|")
    gain = result[:, 0]
    spread = gain.std(ddof=1) / np.sqrt(gain.size) if gain.size > 1 else float("nan")
    print(f"| {MARGINS[pick]:g} | {at_tune[pick]:+.3f} | {gain.mean():+.3f} ({spread:.3f}), {int((gain > 0).sum())} "
          f"of {gain.size} | {result[:, 1].mean():+.3f} | {result[:, 2].mean():+.3f} |")


if __name__ == "__main__":
    main()
