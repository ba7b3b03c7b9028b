"""The shipped policy for uneven light, ``rlenhance/weights/lowlight_local.pt``: it lights each part of a
photo by its own curve, where the default ``lowlight_a3c.pt`` applies one curve to the whole photo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from benchmarks.lowlight_goals import gt_mean_psnr, spread
from rlenhance.baselines import global_curve
from rlenhance.data import uneven_capture
from rlenhance.data.builtin import BUILTIN_IMAGES, DEFAULT_COLOR_IMAGES
from rlenhance.enhance import DEFAULT_CHECKPOINT, Enhancer
from rlenhance.io import tensor_to_image

LOCAL = DEFAULT_CHECKPOINT.with_name("lowlight_local.pt")
SIZE = 256


@pytest.fixture(scope="module")
def relit_photos() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(dark capture under uneven light, its reference) for three embedded photos, float32 (3, SIZE, SIZE):
    each relit as the evaluation sets are (:func:`rlenhance.data.uneven_capture`)."""
    pairs = []
    for name in DEFAULT_COLOR_IMAGES[:3]:
        photo = cv2.resize(BUILTIN_IMAGES[name](), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        reference = torch.from_numpy(photo.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()
        pairs.append((uneven_capture(reference, name), reference))
    return pairs


@pytest.fixture(scope="module")
def enhancers() -> dict[str, Enhancer]:
    return {"local": Enhancer(LOCAL, device="cpu"), "default": Enhancer(device="cpu")}


def test_its_alpha_maps_follow_the_light_where_the_default_s_are_flat(enhancers, relit_photos):
    for low, _ in relit_photos:
        assert spread(enhancers["local"], low) >= 0.2
        assert spread(enhancers["default"], low) < 0.05


def test_it_beats_one_curve_for_the_whole_photo_and_meets_the_exposure_target(enhancers, relit_photos):
    local = enhancers["local"]
    gains = []
    for low, reference in relit_photos:
        image = tensor_to_image(low)
        output = local.enhance(image)
        assert abs(float(output.mean()) - local.spec.setting["exposure_target"]) < 0.05
        curve = global_curve(image, target=local.spec.setting["exposure_target"], steps=local.steps)
        gains.append(gt_mean_psnr(output, reference) - gt_mean_psnr(curve, reference))
    assert np.mean(gains) > 0.5, gains


@pytest.mark.parametrize("size", [(256, 384), (128, 384), (300, 100), (48, 64), (1, 300)])
def test_it_meets_the_exposure_target_on_photos_of_any_shape(enhancers, size):
    """It was trained on square crops: it runs on the photo resized to its square working image, so a
    wide, tall, small or one-pixel photo lands on the target as a square one does."""
    height, width = size
    photo = BUILTIN_IMAGES["coffee"]().astype(np.float32) / 255.0
    dark = 0.2 * cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA).reshape(height, width, 3)
    local = enhancers["local"]
    for exposure in (0.4, 0.6):
        assert abs(float(local.enhance(dark, exposure=exposure).mean()) - exposure) < 0.03
