"""The evaluation images of ``experiments.compare``: each task's inputs and references, as NumPy
arrays every method gets alike (the trainers' own fixed test sets for denoising and completion)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from experiments.compare.config import Args, data_label, resolved_data, resolved_split
from rlenhance.baselines import estimate_noise_sigma
from rlenhance.data import NoisyPairs, noisy_test_set, occluded_test_set, open_dataset
from rlenhance.errors import DatasetError
from rlenhance.io import tensor_to_image
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
        reference: the target, float32 (H, W, C) in [0, 1].
        mask: completion: bool (H, W), True = missing pixel; else None.
        real_noise: denoise: the input is the data's own noisy image (real noise), not the
            reference with synthetic noise.
        sigma: denoise with estimated noise levels (``--sigma-estimate``, real noise): the level
            :func:`rlenhance.baselines.estimate_noise_sigma` finds in the input (0-255 scale),
            which the classical denoisers get; else None.
    """

    name: str
    input: np.ndarray
    reference: np.ndarray
    mask: np.ndarray | None = None
    real_noise: bool = False
    sigma: float | None = None


def load_samples(args: Args) -> list[Sample]:
    """The task's evaluation images (see ``experiments.compare``), in the data set's order.

    Denoise: :func:`rlenhance.data.noisy_test_set` (each image's noise seeded by ``--seed`` and its
    name, as ``experiments.denoise_train`` evaluates; real noisy / clean pairs,
    :class:`rlenhance.data.NoisyPairs`, as they are), gray or RGB (``--gray``); completion:
    :func:`rlenhance.data.occluded_test_set` (the pairs' own masks); low light: the pairs as they are.

    Raises:
        DatasetError: the folder is missing or not of the task's layout, or (lowlight) a pair
            lacks its reference.
    """
    data = resolved_data(args)
    split = None if resolved_split(args) == "all" else "val"
    dataset = open_dataset(data, kind=DATA_KINDS[args.task], split=split, gray=args.task == "denoise" and args.gray,
                           seed=args.split_seed)
    if args.task == "denoise":
        real = isinstance(dataset, NoisyPairs)
        estimate = real or args.sigma_estimate
        samples = []
        for item in noisy_test_set(dataset, args.sigma, seed=args.seed, limit=args.limit):
            noisy = tensor_to_image(item.noisy)
            samples.append(Sample(item.name, noisy, tensor_to_image(item.clean), real_noise=real,
                                  sigma=estimate_noise_sigma(noisy) if estimate else None))
    elif args.task == "completion":
        samples = [Sample(item.name, tensor_to_image(item.occluded), tensor_to_image(item.original),
                          item.mask[0].numpy() > MASK_THRESHOLD)
                   for item in occluded_test_set(dataset, limit=args.limit)]
    else:
        samples = []
        for index in range(len(dataset) if not args.limit else min(args.limit, len(dataset))):
            item = dataset[index]
            if "high" not in item:
                raise DatasetError(f"--data {data}: {item['name']} has no reference (high/); compare needs pairs")
            samples.append(Sample(item["name"], tensor_to_image(item["low"]), tensor_to_image(item["high"])))
    if not samples:
        raise DatasetError(f"--data {data_label(args)}: no images to evaluate (split {resolved_split(args)})")
    return samples
