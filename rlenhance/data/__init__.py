"""Data sets, seeded sampling and synthetic degradations.

Data sets (``torch.utils.data.Dataset``; items are dicts of float32 (C, H, W) tensors in
[0, 1], RGB or one gray channel, plus ``"name"``):

- :class:`PairedImages`: ``low``/``high`` pairs (SICE-style folder or LOL parent), or references alone
  (``high/``); :func:`check_pair` refuses an item that is not a pair.
- :class:`NoisyPairs`: real ``noisy``/``clean`` pairs (``noisy/`` + ``clean/`` folders, or SIDD).
- :class:`UnpairedImages`: a flat folder of inputs (``low``).
- :class:`OccludedPairs`: ``occluded``/``original`` and the ``mask`` of missing pixels (estimated
  from the pair by :func:`estimate_occlusion_mask` or the seed's :func:`channel_sum_mask`, or from
  an occluded image alone by :func:`hole_mask`).
- :class:`ResizedImages`: any of them with every image resized (longer side at most N, or to H x W).
- :class:`BuiltinImages`: scikit-image's photos (``high``), the offline default.

:func:`open_dataset` resolves a ``data`` argument (None, a folder, a data set) of an env, a
trainer or an evaluation to one of them, by the task's kind of data.

Sampling (all randomness from a ``numpy.random.Generator``, or counter-based draws of a batch's rows,
:class:`RowDraws`): :func:`sample_batch`, :func:`random_crop`, :func:`random_flip`; an
:class:`ImageBank` cuts a batch's crops on the device without a loop over its rows; splits:
:func:`split_names`, :func:`scene_key`.

Degradations (batched torch, randomness from a ``torch.Generator``):
:func:`synthetic_low_light`, :func:`add_gaussian_noise`, :func:`random_occlusion` and their
modules; :func:`moved_occlusion` (a pair's hole moved elsewhere on its original);
:func:`amplified_noise` (dark-level noise amplified by known LE curves, with its
:func:`noise_level_map`: the data of ReLLIE's noise-map denoiser); :func:`noise_ramp` (a noise
level that varies across the image); :func:`uneven_low_light` (well-exposed photos relit by smooth,
spatially varying light, :func:`illumination_field` of the kinds :data:`LIGHTS`).

Fixed evaluation sets (each image's degradation seeded by :func:`image_seed` of a seed and its
name): :func:`noisy_test_set`, :func:`occluded_test_set`, :func:`lowlight_test_set` (its lows the data's
or, :data:`LOWLIGHT_INPUTS` ``"uneven"``, the references relit by :func:`uneven_capture`).
"""

from rlenhance.data.bank import BANK_BYTES, ImageBank
from rlenhance.data.base import ImageDataset
from rlenhance.data.builtin import BUILTIN_IMAGES, DEFAULT_COLOR_IMAGES, DEFAULT_GRAY_IMAGES, BuiltinImages
from rlenhance.data.degrade import (
    AddGaussianNoise,
    AmplifiedNoise,
    SyntheticLowLight,
    add_gaussian_noise,
    amplified_noise,
    noise_level_map,
    noise_ramp,
    synthetic_low_light,
)
from rlenhance.data.illumination import LIGHTS, illumination_field, uneven_low_light
from rlenhance.data.noisy import NoisyPairs
from rlenhance.data.occluded import OccludedPairs, channel_sum_mask, estimate_occlusion_mask, hole_mask
from rlenhance.data.occlusion import RandomOcclusion, moved_occlusion, random_occlusion
from rlenhance.data.paired import PairedImages, UnpairedImages, check_pair
from rlenhance.data.resolve import open_dataset
from rlenhance.data.rows import RowDraws, RowStream
from rlenhance.data.testsets import (
    LOWLIGHT_INPUTS,
    LowLightTestSet,
    NoisyImage,
    OccludedImage,
    image_seed,
    lowlight_test_set,
    noisy_test_set,
    occluded_test_set,
    synthetic_noise_level,
    uneven_capture,
)
from rlenhance.data.transforms import (
    TUNE_FRACTION,
    ResizedImages,
    Split,
    fit_longer_side,
    random_crop,
    random_flip,
    resize_image,
    row_windows,
    sample_batch,
    scene_key,
    split_names,
    to_float,
    working_square,
)

__all__ = [
    "BANK_BYTES",
    "ImageBank",
    "ResizedImages",
    "RowDraws",
    "RowStream",
    "row_windows",
    "fit_longer_side",
    "working_square",
    "AddGaussianNoise",
    "AmplifiedNoise",
    "BUILTIN_IMAGES",
    "BuiltinImages",
    "DEFAULT_COLOR_IMAGES",
    "DEFAULT_GRAY_IMAGES",
    "ImageDataset",
    "LIGHTS",
    "LOWLIGHT_INPUTS",
    "LowLightTestSet",
    "NoisyImage",
    "NoisyPairs",
    "OccludedImage",
    "OccludedPairs",
    "PairedImages",
    "RandomOcclusion",
    "SyntheticLowLight",
    "UnpairedImages",
    "add_gaussian_noise",
    "amplified_noise",
    "noise_level_map",
    "noise_ramp",
    "channel_sum_mask",
    "check_pair",
    "estimate_occlusion_mask",
    "hole_mask",
    "illumination_field",
    "image_seed",
    "lowlight_test_set",
    "moved_occlusion",
    "noisy_test_set",
    "occluded_test_set",
    "synthetic_noise_level",
    "open_dataset",
    "random_crop",
    "random_flip",
    "random_occlusion",
    "resize_image",
    "sample_batch",
    "scene_key",
    "split_names",
    "Split",
    "synthetic_low_light",
    "TUNE_FRACTION",
    "to_float",
    "uneven_capture",
    "uneven_low_light",
]
