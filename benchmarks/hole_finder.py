"""How well :func:`rlenhance.data.occluded.find_hole` finds a hole that comes without a mask.

    python -m benchmarks.hole_finder [--sizes 48 256] [--seeds 8] [--data ../shared/data/bedroom/train] [--split val]

Scores the hole found in each occluded image (what ``rlenhance complete`` without ``--masks`` fills)
against the true hole by intersection over union: on the example photos of ``python -m
rlenhance.data.samples`` (each ``--sizes`` x ``--seeds``; the true hole is the mask it writes), and on
the pairs of ``--data`` in the completion layout (the true hole estimated from the pair,
:func:`~rlenhance.data.occluded.estimate_occlusion_mask`; ``--split``). Prints per set the mean and
smallest IoU, how many images fall below IoU 0.9, how many the finder said it was unsure of, and how
many it got wrong (IoU < 0.9) without saying so. Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from rlenhance.data.occluded import OccludedPairs, find_hole
from rlenhance.data.samples import COLOR_PHOTOS, write_samples
from rlenhance.io import load_image, load_mask

#: An image counts as missed below this IoU.
MISSED = 0.9


def iou(found: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two bool masks (1.0 when both are empty)."""
    union = int((found | truth).sum())
    return float((found & truth).sum()) / union if union else 1.0


def score(pairs: Iterable[tuple[str, np.ndarray, np.ndarray]]) -> tuple[list[float], list[bool], list[str]]:
    """``(IoUs, unsure flags, names)`` of ``(name, occluded image, true mask)`` items."""
    ious, unsure, names = [], [], []
    for name, occluded, truth in pairs:
        hole = find_hole(occluded)
        ious.append(iou(hole.mask, truth))
        unsure.append(hole.doubt is not None)
        names.append(name)
    return ious, unsure, names


def report(what: str, ious: list[float], unsure: list[bool], names: list[str]) -> None:
    values, flags = np.array(ious), np.array(unsure, dtype=bool)
    missed = values < MISSED
    silent = [names[i] for i in np.flatnonzero(missed & ~flags)]
    print(f"| {what} | {len(values)} | {values.mean():.4f} | {values.min():.3f} | {int(missed.sum())} | "
          f"{int(flags.sum())} | {len(silent)}{': ' + ', '.join(silent[:5]) if silent else ''} |")


def sample_pairs(size: int, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    with tempfile.TemporaryDirectory() as folder:
        write_samples(folder, size=size, seed=seed)
        return [(f"{name} (seed {seed})", load_image(Path(folder, "occluded", f"{name}.png")),
                 load_mask(Path(folder, "masks", f"{name}.png"))) for name in COLOR_PHOTOS]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[48, 96, 256, 512],
                        help="sides of the example photos (python -m rlenhance.data.samples --size)")
    parser.add_argument("--seeds", type=int, default=8, help="seeds 0..N-1 of the example photos' holes")
    parser.add_argument("--data", type=Path, default=None,
                        help="pairs in the completion layout (occluded_images/, original_images/), e.g. "
                             "../shared/data/bedroom/train")
    parser.add_argument("--split", choices=("train", "tune", "val"), default=None,
                        help="that split of --data (default: every pair)")
    args = parser.parse_args(argv)
    print(f"| images | count | mean IoU | smallest IoU | IoU < {MISSED} | unsure | IoU < {MISSED}, not said |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        items = [item for seed in range(args.seeds) for item in sample_pairs(size, seed)]
        report(f"example photos, {size} px, seeds 0-{args.seeds - 1}", *score(items))
    if args.data is not None:
        pairs = OccludedPairs(args.data, split=args.split)

        def items():
            for item in pairs:
                occluded = item["occluded"].numpy().transpose(1, 2, 0)
                yield item["name"], occluded, item["mask"][0].numpy().astype(bool)
        report(f"{args.data} ({args.split or 'all'})", *score(items()))


if __name__ == "__main__":
    main()
