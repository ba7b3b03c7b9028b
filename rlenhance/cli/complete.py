"""``rlenhance complete``: fill the holes of occluded images with a completion method of
:mod:`rlenhance.registry` (``--model``, or the ``--checkpoint``'s own kind); each image's mask comes
from ``--masks DIR`` or is estimated (:func:`rlenhance.data.occluded.find_hole`; a warning line on
stderr says when the finder is unsure, and how to pass the mask)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rlenhance import registry
from rlenhance.cli.batch import check_tile
from rlenhance.cli.jobs import Restore
from rlenhance.data.occluded import find_hole
from rlenhance.errors import ImageError
from rlenhance.io import OCCLUDED_PREFIX, list_images, load_mask


def build(args: argparse.Namespace) -> Restore:
    """``complete``'s restore function (raises ValueError / CheckpointError for bad arguments)."""
    check_tile(args)
    if args.masks is not None and not args.masks.is_dir():
        raise ValueError(f"--masks {args.masks}: not a folder")
    if not (math.isfinite(args.mask_threshold) and args.mask_threshold >= 0):
        raise ValueError(f"--mask-threshold {args.mask_threshold}: expected a finite number >= 0 (distance "
                         "from black, in [0, 1])")
    find_mask = _mask_lookup(args.masks) if args.masks is not None else None
    name = registry.method_for("completion", args.model, args.checkpoint)
    method = registry.find("completion", name)
    settings = {"tile": args.tile, "ensemble": args.ensemble}
    model = registry.load("completion", name, args.checkpoint, device=args.device, option="--checkpoint PATH",
                          **{key: value for key, value in settings.items() if key in method.settings})

    def restore(path: Path, image: np.ndarray) -> tuple[np.ndarray, str]:
        # the file's samples in, the levels of the PNG out: a tiled model converts a window at a time
        if find_mask is not None:
            mask = load_mask(find_mask(path), max_pixels=args.max_pixels)
        else:
            hole = find_hole(image, threshold=args.mask_threshold)
            mask = hole.mask
            if hole.doubt is not None:
                print(f"warning: {path}: the hole found may be wrong: {hole.doubt}; pass the true holes with "
                      "--masks DIR (one mask per image, same file name, white = missing)", file=sys.stderr, flush=True)
        out = model.restore(image, mask=mask, dtype=np.uint8)
        return out, f"hole {100.0 * float(mask.mean()):.1f}% ({int(mask.sum())} px)"
    restore.reads_samples = True
    return restore


def _mask_lookup(folder: Path) -> Callable[[Path], Path]:
    """Image path -> its mask file in ``folder`` (same stem, or the stem without ``occluded_``)."""
    by_stem: dict[str, list[Path]] = {}
    for mask in list_images(folder):
        by_stem.setdefault(mask.stem, []).append(mask)

    def find(path: Path) -> Path:
        stems = [path.stem] + ([path.stem[len(OCCLUDED_PREFIX):]] if path.stem.startswith(OCCLUDED_PREFIX) else [])
        for stem in stems:
            found = by_stem.get(stem, [])
            if len(found) > 1:
                raise ImageError(f"{path}: several masks in {folder} share the stem {stem!r}: "
                                 f"{', '.join(p.name for p in found)}")
            if found:
                return found[0]
        raise ImageError(f"{path}: no mask in {folder} (looked for the stem(s) {', '.join(stems)}, any image "
                         "extension)")

    return find
