"""Write small example folders in every layout the tools read, from scikit-image's photos.

``python -m rlenhance.data.samples DIR`` writes, offline and the same on every run:

- ``DIR/dark/``: low-light photos (:func:`rlenhance.data.synthetic_low_light`), inputs of ``rlenhance enhance``;
- ``DIR/pairs/low/`` + ``DIR/pairs/high/``: the same photos with their clean references, the paired layout of
  ``experiments.lol_train --data`` and ``experiments.compare --task lowlight``;
- ``DIR/noisy/`` + ``DIR/clean/``: gray photos with Gaussian noise of sigma 25 (8-bit, clipped) and their clean
  versions, inputs of ``rlenhance denoise`` and the noisy/clean pair layout of the denoising trainers and
  compare (``--data DIR``);
- ``DIR/occluded/`` + ``DIR/masks/``: colour photos with a black square hole and the hole's mask (white =
  missing), inputs of ``rlenhance complete``;
- ``DIR/bedroom/occluded_images/occluded_NAME.png`` + ``DIR/bedroom/original_images/NAME.png``: the completion
  pair layout of ``experiments.completion_train`` and compare.

Every image is the centre square crop of its photo, resized to ``--size`` pixels, so the outputs of one folder
share one size.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from rlenhance.data.builtin import BUILTIN_IMAGES, DEFAULT_COLOR_IMAGES
from rlenhance.data.degrade import add_gaussian_noise, synthetic_low_light
from rlenhance.errors import path_kind
from rlenhance.io import save_image

__all__ = ["write_samples"]

#: The noise level of ``noisy/`` on the 0-255 scale.
NOISE_SIGMA = 25.0
#: Photos of each folder: colour (low light, completion) and gray (denoising).
COLOR_PHOTOS = DEFAULT_COLOR_IMAGES[:4]
GRAY_PHOTOS = ("camera", "coins", "moon", "clock")
#: The sides in pixels an image may have (the photos' centre squares are 300 to 512 pixels).
MIN_SIZE, MAX_SIZE = 32, 4096


def _square(name: str, size: int) -> np.ndarray:
    """The centre square of photo ``name`` resized to ``size`` x ``size``, float32 in [0, 1]."""
    photo = BUILTIN_IMAGES[name]()
    h, w = photo.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = cv2.resize(photo[top:top + side, left:left + side], (size, size), interpolation=cv2.INTER_AREA)
    return crop.astype(np.float32) / 255.0


def _torch(image: np.ndarray) -> torch.Tensor:
    chw = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(chw))[None]


def _numpy(x: torch.Tensor) -> np.ndarray:
    out = x[0].numpy()
    return out[0] if out.shape[0] == 1 else out.transpose(1, 2, 0)


def write_samples(folder: str | Path, *, size: int = 256, seed: int = 0, overwrite: bool = False) -> list[Path]:
    """Write the example folders (see the module docstring) under ``folder``; returns the files written.

    Args:
        folder: where to write; created if missing.
        size: side in pixels of every image (:data:`MIN_SIZE` to :data:`MAX_SIZE`).
        seed: seed of the darkening, the noise and the holes.
        overwrite: replace existing files of the same names (False: such a file is kept, and FileExistsError
            names it).

    Raises:
        ValueError: ``size`` out of range; ``folder`` is there but not a folder.
        FileExistsError: a file to write exists and ``overwrite`` is False (the files before it in the order
            written are written, that one and the rest are not).
        OSError: a file cannot be written (naming it: no permission, no space left, ...).
    """
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size: expected {MIN_SIZE} to {MAX_SIZE} pixels (the photos are 300 to 512), got {size}")
    root = Path(folder)
    kind = path_kind(root)
    if kind not in (None, "a folder"):
        raise ValueError(f"{root} is {kind}, not a folder; give a folder to write the samples in")
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    written: list[Path] = []

    def save(path: Path, image: np.ndarray) -> None:
        save_image(path, image, overwrite=overwrite)
        written.append(path)

    for name in COLOR_PHOTOS:
        clean = _square(name, size)
        dark = _numpy(synthetic_low_light(_torch(clean), generator=generator))
        hole = size // 4
        top, left = (int(v) for v in rng.integers(0, size - hole, size=2))
        occluded, mask = clean.copy(), np.zeros((size, size), np.float32)
        occluded[top:top + hole, left:left + hole] = 0.0
        mask[top:top + hole, left:left + hole] = 1.0
        for path, image in ((f"dark/{name}", dark), (f"pairs/low/{name}", dark), (f"pairs/high/{name}", clean),
                            (f"occluded/{name}", occluded), (f"masks/{name}", mask),
                            (f"bedroom/occluded_images/occluded_{name}", occluded),
                            (f"bedroom/original_images/{name}", clean)):
            save(root / f"{path}.png", image)
    for name in GRAY_PHOTOS:
        clean = _square(name, size)
        noisy = _numpy(add_gaussian_noise(_torch(clean), NOISE_SIGMA, generator=generator, clip=True))
        save(root / "noisy" / f"{name}.png", noisy)
        save(root / "clean" / f"{name}.png", clean)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlenhance.data.samples", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("folder", type=Path, help="where to write the example folders")
    parser.add_argument("--size", type=int, default=256,
                        help=f"side in pixels of every image ({MIN_SIZE} to {MAX_SIZE})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the darkening, the noise and the holes")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files of the same names")
    args = parser.parse_args(argv)
    try:
        written = write_samples(args.folder, size=args.size, seed=args.seed, overwrite=args.overwrite)
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except FileExistsError as exc:
        parser.exit(2, f"{parser.prog}: {exc.filename} exists; it was kept (--overwrite replaces it)\n")
    except OSError as exc:  # atomic writes name the file: "cannot write PATH: No space left on device"
        parser.exit(2, f"{parser.prog}: error: {exc.strerror or exc}\n")
    print(f"wrote {len(written)} images under {args.folder}/: dark/, pairs/, noisy/ + clean/, occluded/ + masks/, "
          "bedroom/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
