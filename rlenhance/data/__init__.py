"""Data sets, seeded sampling and synthetic degradations.

Data sets (``torch.utils.data.Dataset``; items are dicts of float32 (C, H, W) tensors in [0, 1], RGB or one
gray channel, plus ``"name"``), each resolved from an env's, a trainer's or an evaluation's ``data`` argument
(None, a folder, a data set) by :func:`open_dataset`:

- :class:`PairedImages`: ``low``/``high`` pairs (SICE-style folder or LOL parent), or references alone
  (``high/``); :func:`check_pair` refuses an item that is not a pair.
- :class:`NoisyPairs`: real ``noisy``/``clean`` pairs (``noisy/`` + ``clean/`` folders, or SIDD).
- :class:`UnpairedImages`: a flat folder of inputs (``low``).
- :class:`OccludedPairs`: ``occluded``/``original`` and the ``mask`` of missing pixels (from the pair by
  :func:`estimate_occlusion_mask` or :func:`channel_sum_mask`, or from an occluded image by :func:`hole_mask`).
- :class:`ResizedImages`: any of them with every image resized (longer side at most N, or to H x W).
- :class:`BuiltinImages`: scikit-image's photos (``high``), the offline default.

Sampling (randomness from a ``numpy.random.Generator``, or counter-based :class:`RowDraws`):
:func:`sample_batch`, :func:`random_crop`, :func:`random_flip`, :class:`ImageBank` (a batch's crops cut on the
device); splits: :func:`split_names`, :func:`scene_key`.

Degradations (batched torch, randomness from a ``torch.Generator``): :func:`synthetic_low_light`,
:func:`add_gaussian_noise`, :func:`random_occlusion` and their modules; :func:`moved_occlusion` (a pair's hole
moved elsewhere on its original); :func:`amplified_noise` (dark-level noise amplified by known LE curves) and its
:func:`noise_level_map` (ReLLIE's noise-map denoiser); :func:`noise_ramp` (a level varying across the image);
:func:`uneven_low_light` (photos relit by smooth, spatially varying light: :func:`illumination_field` of the
kinds :data:`LIGHTS`).

Fixed evaluation sets, each image's degradation seeded by :func:`image_seed`: :func:`noisy_test_set`,
:func:`occluded_test_set`, :func:`lowlight_test_set` (lows of the data or, :data:`LOWLIGHT_INPUTS` ``"uneven"``,
relit by :func:`uneven_capture`).
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
    "BANK_BYTES", "ImageBank", "ImageDataset", "BUILTIN_IMAGES", "DEFAULT_COLOR_IMAGES", "DEFAULT_GRAY_IMAGES",
    "BuiltinImages", "AddGaussianNoise", "AmplifiedNoise", "SyntheticLowLight", "add_gaussian_noise", "amplified_noise",
    "noise_level_map", "noise_ramp", "synthetic_low_light", "LIGHTS", "illumination_field", "uneven_low_light",
    "NoisyPairs", "OccludedPairs", "channel_sum_mask", "estimate_occlusion_mask", "hole_mask", "RandomOcclusion",
    "moved_occlusion", "random_occlusion", "PairedImages", "UnpairedImages", "check_pair", "open_dataset", "RowDraws",
    "RowStream", "LOWLIGHT_INPUTS", "LowLightTestSet", "NoisyImage", "OccludedImage", "image_seed", "lowlight_test_set",
    "noisy_test_set", "occluded_test_set", "synthetic_noise_level", "uneven_capture", "TUNE_FRACTION", "ResizedImages",
    "Split", "fit_longer_side", "random_crop", "random_flip", "resize_image", "row_windows", "sample_batch",
    "scene_key", "split_names", "to_float", "working_square",
]
