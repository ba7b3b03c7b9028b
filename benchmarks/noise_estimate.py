"""How well :func:`rlenhance.baselines.estimate_noise_sigma` finds a known Gaussian noise level.

    python -m benchmarks.noise_estimate [--data ../shared/data/bsd/train432] [--sigma 5 15 25 50] [--limit 32] [--clip]

Adds white Gaussian noise of each ``--sigma`` (0-255 scale, one fixed seed per image) to the gray
version (BT.601 luma) of each image of ``--data`` (a folder; default: scikit-image's photos that ship
with the package), estimates the level from the noisy image alone (``--clip``: after clipping it to
[0, 1] and rounding it to 8 bits, as a saved file is), and prints per level the mean estimate, its bias,
root-mean-square and largest error over the images, and the time per image.
The blind FFDNet (``rlenhance denoise`` without ``--sigma``) reads this estimate, so its bias is
what a blind denoiser loses (an over-estimate over-smooths). Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from rlenhance.baselines import estimate_noise_sigma
from rlenhance.data import BuiltinImages
from rlenhance.data.base import image_files
from rlenhance.io import load_image


def gray_images(data: Path | None, limit: int | None) -> list[tuple[str, np.ndarray]]:
    """``(name, gray (H, W) float32 image)`` of ``data`` (None: the built-in photos), sorted by name."""
    if data is None:
        images = [(item["name"], item["high"][0].numpy()) for item in BuiltinImages(gray=True)]
    else:
        images = [(path.name, load_image(path, gray=True)[..., 0]) for path in image_files(data, what="--data")]
    return sorted(images, key=lambda item: item[0])[:limit]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="folder of clean images (default: built-in photos)")
    parser.add_argument("--sigma", type=float, nargs="+", default=[5.0, 15.0, 25.0, 50.0],
                        help="noise levels to add, 0-255 scale")
    parser.add_argument("--limit", type=int, default=None, help="first N images (by name) only")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (image i uses seed + i)")
    parser.add_argument("--clip", action="store_true",
                        help="clip the noisy images to [0, 1] and round them to 8 bits, as a noisy photo saved to a "
                             "file is (the noise is then no longer Gaussian where the image saturates)")
    args = parser.parse_args(argv)
    images = gray_images(args.data, args.limit)
    print(f"{len(images)} gray images from {args.data or 'the built-in photos'}")
    print("| sigma | mean estimate | bias | RMS error | largest error | ms / image |")
    print("|---|---|---|---|---|---|")
    for sigma in args.sigma:
        estimates, seconds = [], 0.0
        for i, (_name, clean) in enumerate(images):
            noise = np.random.default_rng(args.seed + i).normal(0.0, sigma / 255.0, clean.shape)
            noisy = (clean + noise).astype(np.float32)
            if args.clip:
                noisy = np.round(np.clip(noisy, 0.0, 1.0) * 255.0).astype(np.float32) / 255.0
            start = time.perf_counter()
            estimates.append(estimate_noise_sigma(noisy))
            seconds += time.perf_counter() - start
        error = np.asarray(estimates) - sigma
        print(f"| {sigma:g} | {np.mean(estimates):.2f} | {error.mean():+.2f} | {np.sqrt(np.mean(error ** 2)):.2f} | "
              f"{np.abs(error).max():.2f} | {1000 * seconds / len(images):.0f} |", flush=True)


if __name__ == "__main__":
    main()
