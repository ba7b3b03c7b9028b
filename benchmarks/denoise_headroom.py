"""How much a per-pixel policy could add over a denoiser: the oracle of an action set, per block.

    python -m benchmarks.denoise_headroom [--data ../shared/data/bsd/train432] [--limit 8] [--sigma 25]
        [--checkpoint rlenhance/weights/ffdnet_denoise.pt] [--blocks 2 4 8 16 32] [--level-scales 0.6 0.8 1.25 1.6]

A denoising policy with a predictor (``denoise_train --predictor``) that takes the predictor's pixel
can then only move it by its actions. This prints, for gray Gaussian noise of ``--sigma`` on each image
of ``--data`` (default: scikit-image's photos), the PSNR of the denoiser alone and of an oracle that
picks, in every ``b x b`` block, the candidate closest to the clean image (an upper bound for any
policy acting per block of that size; at small blocks it also fits the noise), for two action sets:

- ``filters``: PixelRL's nine filters applied to the prediction (what a policy's later steps can do
  after taking the predictor's pixel everywhere; ``keep`` is the prediction itself);
- ``levels`` (a noise-map denoiser such as the shipped blind FFDNet only): the denoiser given the
  image's estimated level times each of ``--level-scales`` (and 1).

``--sigma-to S2`` makes the level vary across each image, linear from ``--sigma`` at the left edge to
``S2`` at the right one (:func:`rlenhance.data.noise_ramp`); a noise-map denoiser is then also scored
given the true level of every pixel (``known map``: what a policy that sets the map could reach).

``single`` is the best one action for all images. Mean PSNR over images, outputs clipped to [0, 1],
the noise seeded per image; numbers are printed, never asserted. Use validation images, not a test set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from benchmarks.noise_estimate import gray_images
from rlenhance.baselines import estimate_noise_sigma
from rlenhance.data import noise_ramp
from rlenhance.denoisers import NoiseLevelDenoiser, denoiser_kind, load_denoiser
from rlenhance.ops import PIXELRL_ACTIONS, pixelrl_filter_bank
from rlenhance.restore import Restorer

WEIGHTS = Path(__file__).resolve().parents[1] / "rlenhance" / "weights"
#: PixelRL's actions as the ``filters`` candidates: ``keep`` (the prediction itself) first, the rest in order.
FILTER_ORDER: tuple[int, ...] = tuple(sorted(range(len(PIXELRL_ACTIONS)), key=lambda k: PIXELRL_ACTIONS[k] != "keep"))


def block_errors(candidates: np.ndarray, clean: np.ndarray, block: int) -> np.ndarray:
    """Squared error of each candidate (K, H, W) against ``clean`` (H, W), summed per ``block`` x
    ``block`` block (the image zero-padded to whole blocks): (K, ceil(H / block), ceil(W / block))."""
    k, h, w = candidates.shape
    hb, wb = -(-h // block), -(-w // block)
    err = np.zeros((k, hb * block, wb * block))
    err[:, :h, :w] = (candidates - clean) ** 2
    return err.reshape(k, hb, block, wb, block).sum(axis=(2, 4))


def filter_candidates(prediction: np.ndarray) -> np.ndarray:
    """PixelRL's filters on a prediction (H, W) in [0, 1], in ``FILTER_ORDER`` (``keep`` first): float64 (9, H, W)."""
    bank = pixelrl_filter_bank(torch.from_numpy(prediction)[None, None].float())[0, :, 0].double().clamp(0.0, 1.0)
    return bank.numpy()[list(FILTER_ORDER)]


def candidates_of(denoiser: Restorer, noisy: np.ndarray, action_set: str, scales: list[float]) -> np.ndarray:
    """The action set's candidates for one noisy gray image (H, W): float64 (K, H, W) in [0, 1];
    candidate 0 is the denoiser's own output."""
    if action_set == "filters":
        return filter_candidates(np.clip(denoiser.restore(noisy[..., None])[..., 0], 0.0, 1.0))
    assert isinstance(denoiser, NoiseLevelDenoiser)
    low, high = denoiser.sigma_range
    level = estimate_noise_sigma(noisy)
    outputs = []
    for scale in (1.0, *scales):
        denoiser.sigma = min(max(level * scale, low), high)
        outputs.append(np.clip(denoiser.restore(noisy[..., None])[..., 0], 0.0, 1.0))
    denoiser.sigma = None
    return np.stack(outputs).astype(np.float64)


def psnr(mse: np.ndarray | float) -> np.ndarray:
    return -10.0 * np.log10(np.maximum(mse, 1e-12))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="folder of clean images (default: built-in photos)")
    parser.add_argument("--limit", type=int, default=None, help="first N images (by name) only")
    parser.add_argument("--sigma", type=float, default=25.0, help="Gaussian noise level, 0-255 scale")
    parser.add_argument("--sigma-to", type=float, default=None,
                        help="a level that varies across each image: --sigma at the left edge to this at the right")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (image i uses seed + i)")
    parser.add_argument("--checkpoint", type=Path, default=WEIGHTS / "ffdnet_denoise.pt",
                        help="a gray denoiser of rlenhance.load_denoiser (a noise-map one, such as the default "
                             "blind FFDNet, is given each image's estimated level)")
    parser.add_argument("--blocks", type=int, nargs="+", default=[2, 4, 8, 16, 32],
                        help="block sizes of the oracle, in pixels")
    parser.add_argument("--level-scales", type=float, nargs="+", default=[0.6, 0.8, 1.25, 1.6],
                        help="levels: the estimated level's multipliers besides 1")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    if any(b < 1 for b in args.blocks):
        parser.error(f"--blocks: expected sizes >= 1, got {args.blocks}")
    torch.set_num_threads(args.threads)
    kind = denoiser_kind(args.checkpoint)
    if kind is None:
        parser.error(f"--checkpoint {args.checkpoint}: not a denoiser checkpoint (rlenhance.load_denoiser)")
    denoiser = load_denoiser(kind, args.checkpoint, channels=1, device="cpu")
    sets = ["filters"] + (["levels"] if isinstance(denoiser, NoiseLevelDenoiser) else [])
    images = gray_images(args.data, args.limit)
    level = f"{args.sigma:g}" if args.sigma_to is None else f"{args.sigma:g} (left) to {args.sigma_to:g} (right)"
    print(f"{len(images)} gray images from {args.data or 'the built-in photos'}, sigma {level}, "
          f"denoiser {args.checkpoint}")
    print("| action set | candidates | denoiser | single (best action) | "
          + " | ".join(f"oracle {b}x{b}" for b in args.blocks) + " |")
    print("|---|---|---|---|" + "---|" * len(args.blocks))
    def sigma_map(clean: np.ndarray) -> np.ndarray:
        if args.sigma_to is None:
            return np.full(clean.shape, args.sigma)
        return noise_ramp(clean.shape, args.sigma, args.sigma_to)[0, 0].double().numpy()

    def noisy_of(i: int, clean: np.ndarray) -> np.ndarray:
        unit = np.random.default_rng(args.seed + i).normal(0.0, 1.0, clean.shape)
        return (clean + unit * sigma_map(clean) / 255.0).astype(np.float32)

    known = []
    for action_set in sets:
        own, per_action, oracle = [], [], {b: [] for b in args.blocks}
        for i, (_name, clean) in enumerate(images):
            noisy = noisy_of(i, clean)
            cands = candidates_of(denoiser, noisy, action_set, args.level_scales)
            if action_set == "levels" and args.sigma_to is not None:
                truth = torch.from_numpy(sigma_map(clean) / 255.0).float()[None, None]
                out = denoiser.restorer.restore_tensor(torch.from_numpy(noisy)[None, None], noise_map=truth)
                known.append(psnr(((out[0, 0].double().numpy() - clean) ** 2).mean()))
            pixels = clean.size
            for b in args.blocks:
                oracle[b].append(psnr(block_errors(cands, clean, b).min(axis=0).sum() / pixels))
            mse = ((cands - clean) ** 2).mean(axis=(1, 2))
            own.append(psnr(mse[0]))
            per_action.append(psnr(mse))
        base = float(np.mean(own))
        best = int(np.argmax(np.mean(per_action, axis=0)))
        single = float(np.mean(per_action, axis=0)[best])
        names = [PIXELRL_ACTIONS[k] for k in FILTER_ORDER] if action_set == "filters" \
            else [f"x{s:g}" for s in (1.0, *args.level_scales)]
        print(f"| {action_set} | {len(names)} | {base:.2f} | {single:.2f} ({names[best]}, {single - base:+.3f}) | "
              + " | ".join(f"{np.mean(oracle[b]):.2f} ({np.mean(oracle[b]) - base:+.2f})" for b in args.blocks)
              + " |", flush=True)
    if known:
        print(f"known map (the true level at every pixel): {np.mean(known):.2f} dB ({np.mean(known) - base:+.2f} over "
              "the denoiser at its estimated level)")


if __name__ == "__main__":
    main()
