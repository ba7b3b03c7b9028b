"""Before / after crops at 100% of the Enhancer's clean stage: docs/clean_crops.png.

    python -m benchmarks.clean_crops [--data ../shared/data/sice_pairs/train] [--images 2] [--size 160]
                                     [--out docs/clean_crops.png]

One row per crop, at 100% (one image pixel a screen pixel): the input, the curves with the old blur of
the result (sigma 0.65 px), the curves alone (``--denoise 0``) and the default (the clean stage,
``--denoise 1``). The crops: per photo of the validation split of ``--data`` (the first ``--images``,
one per scene)
the ``--size`` square of the darkest input (where the brightening amplifies the noise most), and the
scikit-image rocket photo (dusk, lights) darkened with synthetic sensor noise as in ``benchmarks.clean``:
its darkest square and its brightest (the highlight knee).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks.clean import DEFAULT_DATA, OLD_BLUR_SIGMA, old_default
from rlenhance.data import BUILTIN_IMAGES, open_dataset, scene_key, synthetic_low_light
from rlenhance.data.testsets import image_seed
from rlenhance.enhance import Enhancer
from rlenhance.io import save_image

ROOT = Path(__file__).resolve().parents[1]
LABEL_ROWS = 22


def window(image: np.ndarray, size: int, brightest: bool) -> tuple[int, int]:
    """Top-left corner of the ``size`` square of the lowest (or highest) mean value, on a grid of size / 4."""
    mean = image.mean(axis=2)
    step = max(1, size // 4)
    corners = [(top, left) for top in range(0, mean.shape[0] - size + 1, step)
               for left in range(0, mean.shape[1] - size + 1, step)]
    scores = [mean[t:t + size, s:s + size].mean() for t, s in corners]
    return corners[int(np.argmax(scores) if brightest else np.argmin(scores))]


def label(texts: Sequence[tuple[int, str]], width: int) -> np.ndarray:
    """A white strip with each text at its column."""
    strip = np.full((LABEL_ROWS, width, 3), 255, np.uint8)
    for column, text in texts:
        cv2.putText(strip, text, (column + 3, LABEL_ROWS - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return strip.astype(np.float32) / 255


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="paired folder (low/ + high/)")
    parser.add_argument("--images", type=int, default=2, help="photos of its validation split")
    parser.add_argument("--size", type=int, default=160, help="side of a crop, pixels")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "clean_crops.png")
    args = parser.parse_args(argv)
    photos: list[tuple[str, np.ndarray, bool]] = []
    if args.data.is_dir():
        dataset = open_dataset(str(args.data), kind="paired", split="val", gray=False, seed=0)
        scenes: set[str] = set()
        for i in range(len(dataset)):
            name = dataset[i]["name"]
            if len(scenes) == args.images or scene_key(name) in scenes:
                continue
            scenes.add(scene_key(name))
            photos.append((f"SICE val {name}", dataset[i]["low"].permute(1, 2, 0).numpy(), False))
    clean = torch.from_numpy(BUILTIN_IMAGES["rocket"]()).permute(2, 0, 1).float().div(255)
    low = synthetic_low_light(clean, generator=torch.Generator().manual_seed(image_seed(0, "rocket")),
                              shot_noise=(0.003, 0.003), read_noise=(0.004, 0.004))
    rocket = low.permute(1, 2, 0).contiguous().numpy()
    photos += [("rocket, synthetic noise", rocket, False), ("rocket, synthetic noise", rocket, True)]
    curves, default = Enhancer(device="cpu", denoise=0), Enhancer(device="cpu")
    methods = {"input": lambda image: image, f"old default (blur {OLD_BLUR_SIGMA:g})": old_default(curves),
               "--denoise 0": curves.enhance, "default (--denoise 1)": default.enhance}
    size, gap = args.size, 4
    width = len(methods) * (size + gap) - gap
    rows = [label([(i * (size + gap), name) for i, name in enumerate(methods)], width)]
    for name, image, brightest in photos:
        top, left = window(image, size, brightest)
        crops = [np.clip(method(image), 0, 1)[top:top + size, left:left + size] for method in methods.values()]
        spacer = np.ones((size, gap, 3), np.float32)
        row = np.concatenate([part for crop in crops for part in (crop, spacer)][:-1], axis=1)
        where = f"{name}: {'brightest' if brightest else 'darkest'} {size} px at ({left}, {top}), 100%"
        rows += [label([(0, where)], width), row]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_image(args.out, np.concatenate(rows, axis=0))
    print(f"wrote {args.out}: columns " + ", ".join(methods))
    return args.out


if __name__ == "__main__":
    main()
