"""The one owner of "resolve a data argument to a data set": :func:`open_dataset`, which the envs,
trainers, evaluations and benchmarks call with their ``data`` / ``--data`` / ``--test`` argument."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlenhance.data.builtin import BuiltinImages
from rlenhance.data.noisy import NoisyPairs, noisy_layout
from rlenhance.data.occluded import OccludedPairs
from rlenhance.data.paired import LOL_SUBSETS, PairedImages, UnpairedImages
from rlenhance.data.transforms import TUNE_FRACTION
from rlenhance.errors import DatasetError

__all__ = ["KINDS", "open_dataset"]

#: The accepted ``kind`` arguments of :func:`open_dataset`: low light, denoising, completion.
KINDS = ("paired", "clean", "occluded")


def open_dataset(data: Any, *, kind: str, split: str | None, gray: bool, seed: int, val_fraction: float = 0.1,
                 tune_fraction: float = TUNE_FRACTION):
    """Resolve a ``data`` argument (of an env, a trainer, an evaluation) to a data set.

    Args:
        data: None (every embedded scikit-image photo, whatever ``split``: an env's default data; their
            splits are :class:`BuiltinImages`' ``split``), a dataset object (anything with
            ``__len__``/``__getitem__`` returning dicts of (C, H, W) tensors, returned as it is) or a folder
            path, read as

            - ``kind="occluded"``: :class:`OccludedPairs`;
            - ``kind="clean"``: :class:`NoisyPairs` (real noisy / clean pairs) when it has ``noisy/`` +
              ``clean/`` or SIDD's scene folders (:func:`noisy_layout`), else as below;
            - otherwise :class:`PairedImages` when it has ``high/`` (with ``low/``: pairs; alone: references)
              or LOL's ``our485/`` / ``eval15/``, else a flat folder of images (:class:`UnpairedImages`).
        kind: "paired" (low light, references optional), "clean" (denoising: clean images, or real pairs) or
            "occluded" (completion).
        split: "train", "tune", "val" or None (all images): fit on train, choose (checkpoints, constants) on
            tune, report on val (:func:`rlenhance.data.split_names`).
        gray: load single-channel images (not for ``"occluded"``, which is RGB).
        seed: seed of the deterministic train/validation split.
        val_fraction: fraction of the scenes of a folder in ``"val"``.
        tune_fraction: fraction of the scenes of a folder in ``"tune"``, held out of ``"train"``.

    Raises:
        ValueError: an unknown ``kind``.
        DatasetError: ``data`` is a path but not a folder, or the data set's own errors.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    if data is None:
        return BuiltinImages(gray=gray)
    if not isinstance(data, (str, Path)):
        return data
    root = Path(data)
    if not root.is_dir():
        raise DatasetError(f"data: {root} is not a folder")
    common = dict(split=split, seed=seed, val_fraction=val_fraction, tune_fraction=tune_fraction)
    if kind == "occluded":
        return OccludedPairs(root, **common)
    if kind == "clean" and noisy_layout(root) is not None:
        return NoisyPairs(root, gray=gray, **common)
    if any((root / sub).is_dir() for sub in ("high", *LOL_SUBSETS[None])):  # high/: pairs or references; LOL
        return PairedImages(root, gray=gray, **common)
    return UnpairedImages(root, gray=gray, **common)
