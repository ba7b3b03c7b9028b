"""The evaluation images of ``experiments.compare``: each task's inputs and references, as NumPy
arrays every method gets alike (the trainers' own fixed test sets for denoising and completion)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from experiments.compare.config import Args, data_label, resolved_split
from rlenhance.data import (
    NoisyPairs,
    image_seed,
    noisy_test_set,
    occluded_test_set,
    open_dataset,
    synthetic_low_light,
    synthetic_noise_level,
    uneven_capture,
)
from rlenhance.errors import DatasetError
from rlenhance.io import tensor_to_image
from rlenhance.noise_estimate import estimate_noise_sigma
from rlenhance.restore import MASK_THRESHOLD

#: The kind of data set (:func:`rlenhance.data.open_dataset`) each task reads.
DATA_KINDS = {"lowlight": "paired", "denoise": "clean", "completion": "occluded"}


@dataclass(frozen=True)
class Sample:
    """One evaluation image.

    Attributes:
        name: the image's name in the data set.
        input: what every method gets, float32 (H, W, C) (C = 3, RGB, or for denoise 1 unless
            ``--no-gray``); in [0, 1] except synthetic noisy images, which are not clipped.
        reference: the target, float32 (H, W, C) in [0, 1]; None for low-light photos without one (scored
            by the no-reference metrics only).
        mask: completion: bool (H, W), True = missing pixel; else None.
        real_noise: denoise: the input is the data's own noisy image (real noise), not the
            reference with synthetic noise.
        sigma: denoise with estimated noise levels (``--sigma-estimate``, real noise): the input's estimated level
            (0-255), which the classical denoisers get; else None.
        level: denoise with synthetic noise: its true level at each pixel, float32 (H, W), 0-255 (what
            ``ffdnet-oracle`` gets); else None.
    """

    name: str
    input: np.ndarray
    reference: np.ndarray | None
    mask: np.ndarray | None = None
    real_noise: bool = False
    sigma: float | None = None
    level: np.ndarray | None = None


def load_samples(args: Args) -> list[Sample]:
    """The task's evaluation images (the table of ``experiments.compare``'s docstring), in the data set's order.

    Raises:
        DatasetError: the folder is missing or not of the task's layout, or (lowlight) some photos
            have a reference and others not, or ``--light uneven`` where they have none.
    """
    data = args.data
    split = None if resolved_split(args) == "all" else resolved_split(args)
    dataset = open_dataset(data, kind=DATA_KINDS[args.task], split=split, gray=args.task == "denoise" and args.gray,
                           seed=args.split_seed)
    if args.task == "denoise":
        real = isinstance(dataset, NoisyPairs)
        estimate = real or args.sigma_estimate
        samples = []
        for item in noisy_test_set(dataset, args.sigma, seed=args.seed, limit=args.limit, sigma_to=args.sigma_to):
            noisy = tensor_to_image(item.noisy)
            level = None if real else _level_map(noisy.shape[:2], args.sigma, args.sigma_to)
            samples.append(Sample(item.name, noisy, tensor_to_image(item.clean), real_noise=real,
                                  sigma=estimate_noise_sigma(noisy) if estimate else None, level=level))
    elif args.task == "completion":
        samples = [Sample(item.name, tensor_to_image(item.occluded), tensor_to_image(item.original),
                          item.mask[0].numpy() > MASK_THRESHOLD)
                   for item in occluded_test_set(dataset, limit=args.limit, seed=args.seed)]
    else:
        samples = [_lowlight_sample(dataset[index], seed=args.seed, light=args.light)
                   for index in range(len(dataset) if not args.limit else min(args.limit, len(dataset)))]
        with_reference = [s.name for s in samples if s.reference is not None]
        if 0 < len(with_reference) < len(samples):
            lacking = next(s.name for s in samples if s.reference is None)
            raise DatasetError(f"--data {data}: {lacking} has no reference (high/) but {with_reference[0]} has one; "
                               "compare pairs, or photos without references, not both at once")
    if not samples:
        raise DatasetError(f"--data {data_label(args)}: no images to evaluate (split {resolved_split(args)})")
    return samples


def _level_map(size: tuple[int, int], sigma: float, sigma_to: float | None) -> np.ndarray:
    """The true level of the synthetic noise at each pixel, float32 (H, W), 0-255 scale."""
    level = synthetic_noise_level(size, sigma, sigma_to)
    return level[0, 0].numpy() if torch.is_tensor(level) else np.full(size, level, np.float32)


def _lowlight_sample(item: dict, *, seed: int, light: str) -> Sample:
    """A low-light sample: a pair, a photo without reference, or a reference alone darkened synthetically;
    with ``light="uneven"``, the reference relit by non-uniform light and the reference."""
    if light == "uneven":
        if "high" not in item:
            raise DatasetError(f"--light uneven relights each image's reference, but {item['name']} has none; give "
                               "low/ + high/ pairs, high/ alone, or no --data (the embedded photos)")
        return Sample(item["name"], tensor_to_image(uneven_capture(item["high"], item["name"], seed=seed)),
                      tensor_to_image(item["high"]))
    if "low" not in item:
        generator = torch.Generator().manual_seed(image_seed(seed, item["name"]))
        low = synthetic_low_light(item["high"][None], generator=generator)[0]
        return Sample(item["name"], tensor_to_image(low), tensor_to_image(item["high"]))
    reference = tensor_to_image(item["high"]) if "high" in item else None
    return Sample(item["name"], tensor_to_image(item["low"]), reference)
