"""The evaluation images of ``experiments.compare``: each task's inputs and references, as NumPy
arrays every method gets alike (the trainers' own fixed test sets for denoising and completion)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.base import open_dataset
from experiments.compare.config import Args, resolved_data, resolved_split
from rlenhance.data import noisy_test_set, occluded_test_set
from rlenhance.errors import DatasetError
from rlenhance.io import tensor_to_image
from rlenhance.restore import MASK_THRESHOLD

#: The kind of data set (:func:`envs.base.open_dataset`) each task reads.
DATA_KINDS = {"lowlight": "paired", "denoise": "clean", "completion": "occluded"}


@dataclass(frozen=True)
class Sample:
    """One evaluation image.

    Attributes:
        name: the image's name in the data set.
        input: what every method gets, float32 (H, W, C) (C = 1 for denoise, else 3, RGB); in
            [0, 1] except noisy images, which are not clipped.
        reference: the target, float32 (H, W, C) in [0, 1].
        mask: completion: bool (H, W), True = missing pixel; else None.
    """

    name: str
    input: np.ndarray
    reference: np.ndarray
    mask: np.ndarray | None = None


def load_samples(args: Args) -> list[Sample]:
    """The task's evaluation images (see ``experiments.compare``), in the data set's order.

    Denoise: :func:`rlenhance.data.noisy_test_set` (each image's noise seeded by ``--seed`` and its
    name, as ``experiments.denoise_train`` evaluates); completion:
    :func:`rlenhance.data.occluded_test_set` (the pairs' own masks); low light: the pairs as they are.

    Raises:
        DatasetError: the folder is missing or not of the task's layout, or (lowlight) a pair
            lacks its reference.
    """
    data = resolved_data(args)
    split = None if resolved_split(args) == "all" else "val"
    dataset = open_dataset(data, kind=DATA_KINDS[args.task], split=split, gray=args.task == "denoise",
                           seed=args.split_seed)
    if args.task == "denoise":
        samples = [Sample(item.name, tensor_to_image(item.noisy), tensor_to_image(item.clean))
                   for item in noisy_test_set(dataset, args.sigma, seed=args.seed, limit=args.limit)]
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
        raise DatasetError(f"--data {data}: no images to evaluate (split {resolved_split(args)})")
    return samples
