"""Synthetic degradations: statistics, reproducibility, masks, function == module."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from rlenhance.data import (
    AddGaussianNoise,
    BuiltinImages,
    RandomOcclusion,
    SyntheticLowLight,
    add_gaussian_noise,
    amplified_noise,
    moved_occlusion,
    random_occlusion,
    sample_batch,
    synthetic_low_light,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ Gaussian noise


@pytest.mark.parametrize("sigma", [15.0, 25.0, 50.0])
def test_gaussian_noise_std_is_sigma_over_255(sigma):
    x = torch.full((4, 1, 64, 64), 0.5)
    noisy = add_gaussian_noise(x, sigma, generator=_gen(1))
    noise = noisy - x
    assert abs(float(noise.std()) - sigma / 255) < 0.03 * sigma / 255
    assert abs(float(noise.mean())) < 3 * sigma / 255 / math.sqrt(noise.numel())


def test_gaussian_noise_not_clipped_by_default_and_clip_option():
    x = torch.zeros(2, 3, 32, 32)
    noisy = add_gaussian_noise(x, 25, generator=_gen(0))
    assert float(noisy.min()) < 0  # DnCNN/PixelRL protocol: no clipping
    clipped = add_gaussian_noise(x, 25, generator=_gen(0), clip=True)
    torch.testing.assert_close(clipped, noisy.clamp(0, 1))


def test_gaussian_noise_per_image_sigma_and_reproducibility():
    x = torch.full((3, 1, 64, 64), 0.5)
    sigma = torch.tensor([5.0, 25.0, 50.0]).view(3, 1, 1, 1)
    noisy = add_gaussian_noise(x, sigma, generator=_gen(2))
    stds = (noisy - x).flatten(1).std(1) * 255
    torch.testing.assert_close(stds, sigma.flatten(), rtol=0.05, atol=0)
    assert torch.equal(noisy, add_gaussian_noise(x, sigma, generator=_gen(2)))
    assert not torch.equal(noisy, add_gaussian_noise(x, sigma, generator=_gen(3)))
    # Function == module.
    module = AddGaussianNoise(25)
    assert torch.equal(module(x, _gen(4)), add_gaussian_noise(x, 25, generator=_gen(4)))


def test_gaussian_noise_bad_input():
    with pytest.raises(ValueError, match="sigma"):
        add_gaussian_noise(torch.zeros(1, 1, 4, 4), -1.0, generator=_gen())
    with pytest.raises(ValueError, match="x"):
        add_gaussian_noise(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 10.0, generator=_gen())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_generator_drives_cuda_input():
    x = torch.full((2, 3, 8, 8), 0.5)
    cpu = add_gaussian_noise(x, 25, generator=_gen(0))
    gpu = add_gaussian_noise(x.cuda(), 25, generator=_gen(0))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)


# ------------------------------------------------------------------ low light


def test_low_light_known_value_without_noise():
    x = torch.rand(2, 3, 8, 8, generator=_gen(0))
    low = synthetic_low_light(x, generator=_gen(1), gamma=2.0, gain=0.3, shot_noise=0.0, read_noise=0.0)
    torch.testing.assert_close(low, 0.3 * x**2)


def test_low_light_noise_variance_follows_poisson_gaussian_model():
    x = torch.full((2, 3, 64, 64), 0.5)
    shot, read = 0.01, 0.02
    low = synthetic_low_light(x, generator=_gen(0), gamma=1.0, gain=1.0, shot_noise=shot, read_noise=read, clip=False)
    expected_var = shot * 0.5 + read**2
    assert abs(float((low - 0.5).var()) / expected_var - 1) < 0.05


def test_low_light_means_like_real_low_light_captures():
    photos = BuiltinImages()
    batch = sample_batch(photos, 24, crop=128, rng=np.random.default_rng(0))
    low = synthetic_low_light(batch["high"], generator=_gen(0))
    means = low.mean((1, 2, 3))
    assert float(means.min()) >= 0.005 and float(means.max()) <= 0.25
    assert 0.03 <= float(means.median()) <= 0.2
    assert torch.all(means < batch["high"].mean((1, 2, 3)))
    assert float(low.min()) >= 0 and float(low.max()) <= 1


def test_low_light_per_image_parameters_reproducible_and_module():
    x = torch.full((6, 3, 16, 16), 0.6)
    a = synthetic_low_light(x, generator=_gen(5))
    assert torch.equal(a, synthetic_low_light(x, generator=_gen(5)))
    assert not torch.equal(a, synthetic_low_light(x, generator=_gen(6)))
    assert len(set(a.mean((1, 2, 3)).tolist())) == 6  # each image has its own gamma and gain
    assert torch.equal(SyntheticLowLight()(x, _gen(5)), a)
    # A single (C, H, W) image is a batch of one.
    single = synthetic_low_light(x[0], generator=_gen(5))
    assert torch.equal(single, synthetic_low_light(x[:1], generator=_gen(5))[0])


def test_low_light_bad_ranges():
    x = torch.rand(1, 3, 4, 4)
    with pytest.raises(ValueError, match="gain"):
        synthetic_low_light(x, generator=_gen(), gain=(0.5, 0.1))
    with pytest.raises(ValueError, match="gamma"):
        synthetic_low_light(x, generator=_gen(), gamma=0.0)
    with pytest.raises(ValueError, match="shot_noise"):
        SyntheticLowLight(shot_noise=(-0.1, 0.0))


# ------------------------------------------------------------------ occlusion


@pytest.mark.parametrize("kind", ["box", "stroke", "mixed"])
def test_occlusion_mask_matches_changed_pixels(kind):
    x = 0.1 + 0.9 * torch.rand(4, 3, 48, 40, generator=_gen(0))  # never equal to the fill value
    occluded, mask = random_occlusion(x, generator=_gen(1), kind=kind)
    assert mask.shape == (4, 1, 48, 40) and occluded.shape == x.shape
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    changed = (occluded != x).any(1, keepdim=True)
    assert torch.equal(changed, mask.bool())
    hole = mask.bool().expand_as(x)
    assert torch.all(occluded[hole] == 0)
    assert torch.all(mask.flatten(1).sum(1) > 0)  # every image has a hole


def test_box_is_one_rectangle_of_the_requested_size():
    x = torch.rand(5, 3, 64, 64, generator=_gen(0))
    _, mask = random_occlusion(x, generator=_gen(2), kind="box", box_size=0.25)
    for m in mask[:, 0].numpy().astype(bool):
        labels, count = ndimage.label(m)
        assert count == 1 and m.sum() == 16 * 16
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        assert len(rows) == 16 and len(cols) == 16


def test_strokes_are_thick_connected_paths():
    x = torch.rand(4, 3, 64, 64, generator=_gen(0))
    _, mask = random_occlusion(x, generator=_gen(3), kind="stroke", num_strokes=1, stroke_width=0.1)
    for m in mask[:, 0].numpy().astype(bool):
        _, count = ndimage.label(m)
        assert count == 1  # one stroke is one connected path
        # Width 0.1 * 64 = 6.4 px: an erosion by a 3x3 square leaves pixels.
        assert ndimage.binary_erosion(m, np.ones((3, 3))).any()


def test_occlusion_reproducible_fill_and_module():
    x = torch.rand(3, 3, 32, 32, generator=_gen(0))
    a = random_occlusion(x, generator=_gen(7), kind="mixed", fill=0.5)
    b = random_occlusion(x, generator=_gen(7), kind="mixed", fill=0.5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.all(a[0][a[1].bool().expand_as(x)] == 0.5)
    m = RandomOcclusion("mixed", fill=0.5)(x, _gen(7))
    assert torch.equal(m[0], a[0]) and torch.equal(m[1], a[1])
    c = random_occlusion(x, generator=_gen(8), kind="mixed", fill=0.5)
    assert not torch.equal(c[1], a[1])
    single, single_mask = random_occlusion(x[0], generator=_gen(7))
    assert single.shape == (3, 32, 32) and single_mask.shape == (1, 32, 32)


def test_occlusion_bad_arguments():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="kind"):
        random_occlusion(x, generator=_gen(), kind="blob")
    with pytest.raises(ValueError, match="box_size"):
        random_occlusion(x, generator=_gen(), box_size=(0.5, 2.0))
    with pytest.raises(ValueError, match="num_strokes"):
        RandomOcclusion("stroke", num_strokes=0)


# ------------------------------------------------------------------ noise amplified by brightening


def test_noise_level_map_scales_the_gain_by_sigma_over_255():
    from rlenhance.data import noise_level_map

    gain = torch.tensor([1.0, 2.0, 8.0]).view(1, 3, 1, 1)
    assert (noise_level_map(gain, 10.0) * 255).flatten().tolist() == pytest.approx([10.0, 20.0, 80.0])
    per_image = noise_level_map(torch.ones(2, 1, 2, 2), torch.tensor([0.0, 5.1]).view(2, 1, 1, 1))
    assert per_image[0].max() == 0 and per_image[1].min().item() == pytest.approx(0.02)
    with pytest.raises(ValueError, match="sigma: expected finite values >= 0"):
        noise_level_map(gain, -1.0)
    with pytest.raises(ValueError, match="gain: expected a floating-point tensor"):
        noise_level_map(np.ones(3), 10.0)


def test_amplified_noise_is_seeded_and_its_map_is_the_noise_std_it_added():
    """Without brightening (alpha 0) the map is each image's dark-level noise std, and the
    residual noisy - target has that std (images bright enough that clipping at 0 is rare); the
    target is the noise-free image, whatever the noise."""

    x = torch.ones(16, 1, 48, 48)  # darkened to gain * 1 in [0.2, 0.6]: no clipping at 3 sigma
    a, b = (amplified_noise(x, 10.0, generator=_gen(3), alpha=0.0) for _ in range(2))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    level = a.noise_map.amax(dim=(1, 2, 3))
    assert torch.equal(a.noise_map, level.view(-1, 1, 1, 1).expand_as(x))  # one level per image
    assert 0 < float(level.min()) and float(level.max()) <= 10 / 255
    std = (a.noisy - a.target).std(dim=(1, 2, 3))
    torch.testing.assert_close(std, level, rtol=0.08, atol=2e-4)
    silent = amplified_noise(x, 0.0, generator=_gen(3))
    assert torch.equal(silent.noisy, silent.target) and silent.noise_map.max() == 0


def test_amplified_noise_brightens_unevenly_and_the_map_follows_the_gain():
    """Curves drawn on a 4 x 4 lattice brighten the dark image by different factors across it; the
    map is sigma / 255 times the brightening (target / dark where the target is noise-free), so it
    varies the same way."""

    clean = BuiltinImages(names=("camera",), gray=True)[0]["high"][None, :, :128, :128]
    batch = amplified_noise(clean, 10.0, generator=_gen(5), steps=4, alpha=(0.0, 1.0), grid=4)
    assert batch.noisy.shape == batch.target.shape == batch.noise_map.shape == clean.shape
    assert float(batch.target.mean()) > 2 * float(synthetic_low_light(clean, generator=_gen(5), shot_noise=0.0,
                                                                      read_noise=0.0).mean())
    gain = batch.noise_map / batch.noise_map.amin()
    assert float(gain.amax()) > 1.5  # spatially varying: the map carries information
    # the brightest-gain region of the map is where the curves brightened the dark image most
    dark = synthetic_low_light(clean, generator=_gen(5), shot_noise=0.0, read_noise=0.0)
    ratio = (batch.target / dark.clamp_min(1e-3))[dark > 0.02]
    corr = np.corrcoef(ratio.numpy(), batch.noise_map[dark > 0.02].numpy())[0, 1]
    assert corr > 0.9, corr


@pytest.mark.parametrize("kwargs, match", [
    ({"sigma": -1.0}, "sigma: expected a finite number >= 0"),
    ({"steps": 0}, "steps: expected an integer >= 1"),
    ({"grid": 0}, "grid: expected an integer >= 1"),
    ({"alpha": (0.0, 1.5)}, "alpha: expected low <= high within"),
])
def test_amplified_noise_names_a_bad_argument(kwargs, match):

    with pytest.raises(ValueError, match=match):
        amplified_noise(torch.rand(1, 1, 8, 8), **{"sigma": 10.0, **kwargs}, generator=_gen())



# ------------------------------------------------------------------ one generator per image


def _tensors(out):
    return (out,) if torch.is_tensor(out) else tuple(out)


PER_IMAGE = {
    "low light": lambda x, sigma, g: synthetic_low_light(x, generator=g),
    "noise": lambda x, sigma, g: add_gaussian_noise(x, sigma, generator=g),
    "occlusion": lambda x, sigma, g: random_occlusion(x, generator=g, kind="mixed", num_boxes=(1, 3)),
    "amplified": lambda x, sigma, g: amplified_noise(x, 25.0, generator=g),
}


@pytest.mark.parametrize("name", PER_IMAGE)
def test_one_generator_per_image_makes_each_image_independent_of_the_batch(name):
    degrade = PER_IMAGE[name]
    x = torch.rand(3, 3, 20, 24, generator=_gen(9))
    sigma = torch.tensor([10.0, 30.0, 50.0]).view(3, 1, 1, 1)
    whole = _tensors(degrade(x, sigma, [_gen(s) for s in (1, 2, 3)]))
    alone = [_tensors(degrade(x[k:k + 1], sigma[k:k + 1], [_gen(k + 1)])) for k in range(3)]
    for i, value in enumerate(whole):
        assert torch.equal(value, torch.cat([part[i] for part in alone]))
    assert not torch.equal(whole[0][1:], _tensors(degrade(x, sigma, _gen(1)))[0][1:])


@pytest.mark.parametrize("name", PER_IMAGE)
def test_generators_per_image_must_be_one_per_image(name):
    x = torch.rand(3, 3, 8, 8, generator=_gen(0))
    with pytest.raises(ValueError, match=r"one torch.Generator per image \(3\); got a sequence of 2"):
        PER_IMAGE[name](x, 25.0, [_gen(1), _gen(2)])


def test_moved_occlusion_moves_each_hole_within_its_frame():
    original = torch.rand(40, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(40, 1, 20, 24)
    mask[:, :, 2:9, 0:5] = 1
    mask[:, :, 4, 7] = 1  # a hole of two parts keeps its shape: bounding box 7 x 8
    mask[7] = 0  # an image without hole keeps none
    generators = [torch.Generator().manual_seed(k) for k in range(40)]
    occluded, moved = moved_occlusion(original, mask, generator=generators)
    assert torch.equal(occluded, original * (1 - moved))
    assert float(moved[7].sum()) == 0 and torch.equal(occluded[7], original[7])
    tops, lefts = set(), set()
    for k in (k for k in range(40) if k != 7):
        rows, cols = torch.nonzero(moved[k, 0], as_tuple=True)
        top, left = int(rows.min()), int(cols.min())
        shifted = torch.zeros(1, 20, 24)
        shifted[:, top:top + 7, left:left + 8] = mask[k, :, 2:9, 0:8]
        assert torch.equal(moved[k], shifted)
        tops.add(top), lefts.add(left)
    assert min(tops) == 0 and max(tops) <= 13 and min(lefts) == 0 and max(lefts) <= 16
    assert len(tops) > 8 and len(lefts) > 8  # drawn over the frame
    again = moved_occlusion(original, mask, generator=[torch.Generator().manual_seed(k) for k in range(40)])[1]
    assert torch.equal(again, moved)
    white, where = moved_occlusion(original, mask, generator=_gen(), fill=1.0)
    assert bool((white[where.expand_as(white) > 0] == 1).all())
    with pytest.raises(ValueError, match="original .* and mask"):
        moved_occlusion(original, mask[:, :, :10], generator=None)
    with pytest.raises(ValueError, match="fill"):
        moved_occlusion(original, mask, generator=None, fill=2.0)
