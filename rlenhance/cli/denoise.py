"""``rlenhance denoise``: remove noise with a denoiser of :mod:`rlenhance.registry`
(:func:`rlenhance.denoisers.load_denoiser`): the ``--checkpoint``, else the defaults of ``--model``
by the image's planes (see :mod:`rlenhance.cli`)."""

from __future__ import annotations

import argparse
import math
from functools import partial
from pathlib import Path

import numpy as np

from rlenhance import registry
from rlenhance.cli.batch import check_tile
from rlenhance.cli.jobs import Restore
from rlenhance.denoisers import SUPERVISED_DENOISERS, default_denoiser, denoiser_kind, load_denoiser
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.io import BT601_LUMA_WEIGHTS, as_unit_float, is_gray
from rlenhance.restore import Restorer

#: 0-255 scale of the residual figure printed by ``denoise``.
LEVELS = 255.0
#: How the command names the option that gives a checkpoint.
OPTION = "--checkpoint PATH"


def build(args: argparse.Namespace) -> Restore:
    """``denoise``'s restore function (raises ValueError / CheckpointError for bad arguments)."""
    check_tile(args)
    kind = args.model  # None: the checkpoint's own kind (its loader's error says what a non-denoiser is)
    if kind is None:
        kind = (denoiser_kind(args.checkpoint) or "mrpnet") if args.checkpoint is not None \
            else registry.DEFAULTS["denoise"]
    load = partial(load_denoiser, kind, device=args.device, tile=args.tile, sigma=args.sigma, ensemble=args.ensemble,
                   option=OPTION)
    models: dict[int, Restorer] = {}  # planes of the images it takes (1 gray, 3 colour) -> restorer
    missing: dict[int, CheckpointError] = {}
    if args.checkpoint is not None:
        models[1] = models[3] = load(args.checkpoint)
    else:
        for planes in (1,) if args.per_channel else (1, 3):
            try:
                path = default_denoiser(kind, planes, option=OPTION)
            except CheckpointError as exc:  # not installed (a broken installed file is refused below)
                missing[planes] = exc
                continue
            models[planes] = load(path)
        if not models:  # mrpnet, ffdnet serve colour images with their gray default without a colour one
            raise missing[1] if args.per_channel or kind in SUPERVISED_DENOISERS else missing[3]

    def restore(path: Path, image: np.ndarray) -> tuple[np.ndarray, str]:
        # the file's samples in, the levels of the PNG out: a tiled model converts a window at a time
        gray = is_gray(image)
        planes = image[..., :1] if gray else image  # a gray file is read as three equal channels
        model = models.get(1 if gray or args.per_channel else 3)
        if model is None and gray:
            model = models[3]  # only the colour default: the gray image replicated to RGB
        elif model is None and kind not in SUPERVISED_DENOISERS:
            raise ImageError(f"a colour image, and {missing[3]}")
        elif model is None:
            model = models[1]  # mrpnet / ffdnet without its colour default: the luma / the opponent planes
        out = model.restore(planes, per_channel=args.per_channel, dtype=np.uint8)
        residual = _removed_std(planes, out) * LEVELS
        return out, f"removed noise std {residual:.1f}/255"
    restore.reads_samples = True
    return restore


def _removed_std(planes: np.ndarray, out: np.ndarray, band: int = 256) -> float:
    """The standard deviation, on the [0, 1] scale, of what a denoiser removed: ``out`` (H, W, C_out) from
    ``planes`` (H, W, C), or their BT.601 luma when C_out < C; floats or samples. Computed ``band`` rows at a
    time (no difference image of the photo's size is made)."""
    weights = np.asarray(BT601_LUMA_WEIGHTS, np.float32)[:, None]

    def differences():
        for top in range(0, out.shape[0], band):
            given = as_unit_float(planes[top:top + band], noisy=True)
            given = given @ weights if out.shape[-1] < planes.shape[-1] else given
            yield given - as_unit_float(out[top:top + band])

    mean = sum(float(d.sum(dtype=np.float64)) for d in differences()) / out.size
    return math.sqrt(sum(float(np.square(d - mean, dtype=np.float64).sum()) for d in differences()) / out.size)
