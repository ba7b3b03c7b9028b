"""Classical baselines: denoising filters (against SciPy references), the sigma-picked settings,
OpenCV inpainting, the optional BM3D, the global LE curve and the reference-fitted global bound, and the
registries."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from rlenhance import baselines
from rlenhance.baselines import (
    COMPLETION_BASELINES,
    DENOISE_BASELINES,
    DENOISE_SETTINGS,
    LOWLIGHT_BASELINES,
    baseline_missing,
    bilateral_denoise,
    bm3d_denoise,
    denoise_settings,
    gaussian_denoise,
    global_curve,
    inpaint_navier_stokes,
    inpaint_telea,
    median_denoise,
    oracle_global,
)
from rlenhance.data import uneven_low_light
from rlenhance.errors import ImageError
from rlenhance.metrics import gt_mean_align, psnr
from rlenhance.noise_estimate import estimate_noise_map, estimate_noise_sigma
from rlenhance.ops import le_curve_iterative

SIZE = 48
OPENCV_DENOISERS = ("gaussian", "median", "bilateral")


def smooth_image(channels: int = 0) -> np.ndarray:
    """A smooth gray (H, W) image in [0.2, 0.8], or (H, W, C) with ``channels`` > 0."""
    y, x = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1)
    gray = (0.5 + 0.25 * np.sin(3 * x + 1) * np.cos(2 * y)).astype(np.float32)
    if not channels:
        return gray
    return np.stack([gray, gray[::-1], gray.T][:channels], axis=-1).astype(np.float32)


def add_noise(clean: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return clean + np.random.default_rng(seed).normal(0, sigma / 255, clean.shape).astype(np.float32)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b) ** 2))


# --- denoising -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", OPENCV_DENOISERS)
@pytest.mark.parametrize("sigma", [15, 25, 50])
@pytest.mark.parametrize("channels", [0, 1, 3])
def test_denoisers_reduce_the_error_of_a_noisy_smooth_image(name, sigma, channels):
    clean = smooth_image(channels)
    noisy = add_noise(clean, sigma)
    out = DENOISE_BASELINES[name](noisy, sigma=sigma)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert mse(out, clean) < 0.5 * mse(noisy, clean)


def test_gaussian_matches_scipy_with_reflected_borders():
    noisy = add_noise(smooth_image(), 25)
    for blur_sigma in (0.6, 1.75):
        expected = ndimage.gaussian_filter(noisy.astype(np.float64), blur_sigma, mode="reflect", truncate=3.0)
        out = gaussian_denoise(noisy, blur_sigma=blur_sigma)
        np.testing.assert_allclose(out, np.clip(expected, 0, 1), atol=1e-5)
    # without blur_sigma, the noise level picks it from the table
    np.testing.assert_array_equal(gaussian_denoise(noisy, sigma=50),
                                  gaussian_denoise(noisy, blur_sigma=denoise_settings(50).gaussian_sigma))


def test_median_matches_scipy_with_replicated_borders():
    noisy = add_noise(smooth_image(), 25)
    once = ndimage.median_filter(noisy, size=3, mode="nearest")
    np.testing.assert_array_equal(median_denoise(noisy, ksize=3, passes=1), np.clip(once, 0, 1))
    twice = ndimage.median_filter(once, size=5, mode="nearest")
    np.testing.assert_array_equal(median_denoise(once, ksize=5, passes=1), np.clip(twice, 0, 1))
    three = noisy
    for _ in range(3):
        three = ndimage.median_filter(three, size=3, mode="nearest")
    np.testing.assert_array_equal(median_denoise(noisy, sigma=25), np.clip(three, 0, 1))  # table: 3x3, 3 passes


def test_median_removes_salt_noise_exactly():
    image = np.full((16, 16), 0.4, np.float32)
    image[5, 7] = 1.0
    assert np.all(median_denoise(image, ksize=3, passes=1) == np.float32(0.4))


def test_bilateral_keeps_a_step_edge_sharper_than_gaussian():
    clean = np.where(np.arange(SIZE)[None, :] < SIZE // 2, 0.2, 0.8).repeat(SIZE, 0).astype(np.float32)
    noisy = add_noise(clean, 15)
    band = slice(SIZE // 2 - 3, SIZE // 2 + 3)  # columns next to the edge
    bilateral = bilateral_denoise(noisy, sigma=15)
    gaussian = gaussian_denoise(noisy, sigma=15)
    assert mse(bilateral[:, band], clean[:, band]) < 0.25 * mse(gaussian[:, band], clean[:, band])


def test_settings_pick_the_nearest_tuned_noise_level():
    levels = [row.noise_sigma for row in DENOISE_SETTINGS]
    assert levels == sorted(levels)
    assert denoise_settings(25).noise_sigma == 25
    assert denoise_settings(30).noise_sigma == 25  # a tie goes to the lower level
    assert denoise_settings(31).noise_sigma == 35
    assert denoise_settings(0).noise_sigma == levels[0]
    assert denoise_settings(1000).noise_sigma == levels[-1]
    widths = [row.gaussian_sigma for row in DENOISE_SETTINGS]
    assert widths == sorted(widths)  # stronger noise, wider blur
    assert all(row.median_ksize in baselines.MEDIAN_FLOAT_KSIZES for row in DENOISE_SETTINGS)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "25", True])
def test_bad_sigma_is_named(bad):
    with pytest.raises(ValueError, match="sigma"):
        median_denoise(smooth_image(), sigma=bad)


@pytest.mark.parametrize("image", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.float32),
                                   np.zeros((2, 8, 8, 1), np.float32), np.zeros((0, 8), np.float32), [[0.5]]])
@pytest.mark.parametrize("name", OPENCV_DENOISERS)
def test_bad_images_raise_image_error(image, name):
    with pytest.raises(ImageError, match=f"{name}_denoise: image"):
        DENOISE_BASELINES[name](image, sigma=25)


def test_bad_filter_parameters_are_named():
    image = smooth_image()
    with pytest.raises(ValueError, match="ksize"):
        median_denoise(image, ksize=7)
    with pytest.raises(ValueError, match="passes"):
        median_denoise(image, passes=0)
    with pytest.raises(ValueError, match="blur_sigma"):
        gaussian_denoise(image, blur_sigma=0.0)
    with pytest.raises(ValueError, match="diameter"):
        bilateral_denoise(image, diameter=0)


# --- BM3D (optional) ---------------------------------------------------------------------------------------
@pytest.mark.skipif(baseline_missing("bm3d") is None, reason="bm3d is installed")
def test_bm3d_without_the_package_says_how_to_install_it():
    assert "pip install bm3d" in baseline_missing("bm3d")
    with pytest.raises(ModuleNotFoundError, match="pip install bm3d"):
        bm3d_denoise(smooth_image(), sigma=25)


@pytest.mark.skipif(baseline_missing("bm3d") is not None, reason="bm3d is not installed (optional)")
@pytest.mark.parametrize("channels", [0, 3])
def test_bm3d_beats_the_median_filter(channels):
    clean = smooth_image(channels)
    noisy = add_noise(clean, 25)
    out = bm3d_denoise(noisy, sigma=25)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert mse(out, clean) < mse(median_denoise(noisy, sigma=25), clean)
    np.testing.assert_array_equal(bm3d_denoise(noisy, sigma=25), out)  # single-threaded: reproducible
    with pytest.raises(ValueError, match="threads"):
        bm3d_denoise(noisy, sigma=25, threads=-1)


# --- noise level ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [5, 15, 25, 50])
@pytest.mark.parametrize("photo", ["astronaut", "camera", "chelsea"])
def test_noise_estimate_recovers_a_known_gaussian_sigma_on_a_photo(photo, sigma):
    from rlenhance.data import BuiltinImages

    clean = BuiltinImages(names=[photo])[0]["high"].permute(1, 2, 0).numpy()[128:384, 128:384]
    if photo == "camera":
        clean = clean[..., :1]  # a gray photo, one plane
    estimate = estimate_noise_sigma(add_noise(clean, sigma))
    # within 5%: the photo's texture (fur, hair, grass) does not count as noise, which the whole
    # image's wavelet estimate (+1.0 to +1.4 at sigma 5 on these crops) did not achieve
    assert abs(estimate - sigma) < 0.05 * sigma
    # the clean photo's own grain and 8-bit rounding: 0.7-1.7 (astronaut's black background, 4% of
    # the crop at exactly 0, is left out as clipped)
    assert estimate_noise_sigma(clean) < max(0.2 * sigma, 2.0)


def test_the_noise_map_follows_noise_that_varies_across_the_photo():
    """Noise ramping from 10 (left) to 50 (right): each window's estimate follows it, where one level for
    the whole image is wrong nearly everywhere; uniform noise gives about its level everywhere."""
    from rlenhance.data import BuiltinImages, noise_ramp

    clean = BuiltinImages(names=["camera"])[0]["high"][0].numpy()[128:384, 128:384, None]
    ramp = noise_ramp((256, 256), 10.0, 50.0)[0, 0].numpy()
    noisy = clean + (np.random.default_rng(0).normal(0, 1, clean.shape) * ramp[..., None] / 255).astype(np.float32)
    found = estimate_noise_map(noisy)
    assert found.shape == (256, 256) and found.dtype == np.float32
    assert np.median(np.abs(found - ramp) / ramp) < 0.15
    assert np.median(np.abs(estimate_noise_sigma(noisy) - ramp) / ramp) > 0.3
    uniform = estimate_noise_map(add_noise(clean, 25), window=128)
    assert np.abs(uniform - 25).max() < 0.1 * 25
    small = add_noise(clean[:20, :20], 25)
    np.testing.assert_allclose(estimate_noise_map(small), estimate_noise_sigma(small), rtol=1e-6)  # one
    with pytest.raises(ValueError, match="window"):
        estimate_noise_map(noisy, window=4)


def test_noise_estimate_ignores_strong_texture_next_to_flat_ground():
    """Half of the image a fine high-contrast texture, half flat: the noise is measured on the flat half."""
    texture = np.random.default_rng(1).uniform(0.2, 0.8, (128, 64)).astype(np.float32)
    clean = np.concatenate([texture, np.full((128, 64), 0.5, np.float32)], axis=1)
    assert abs(estimate_noise_sigma(add_noise(clean, 10)) - 10) < 0.5


@pytest.mark.parametrize("sigma", [15, 25])
def test_noise_estimate_of_noise_clipped_and_saved_to_8_bits_skips_the_saturated_regions(sigma):
    """A photo with a saturated sky and a black shadow, noise clipped to [0, 1] and rounded to 8
    bits as in a saved file: the clipped regions are flat (the weakest texture of all) and read as
    nearly no noise, so they are left out (the estimate read 9-12 at sigma 25 before)."""
    from rlenhance.data import BuiltinImages

    photo = BuiltinImages(names=["camera"])[0]["high"][0].numpy()[128:384, 128:384]
    clean = photo.copy()
    clean[:96] = 1.0  # a blown-out sky
    clean[-64:, :128] = 0.0  # a black shadow
    saved = np.round(np.clip(add_noise(clean, sigma), 0.0, 1.0) * 255.0).astype(np.float32) / 255.0
    assert abs(estimate_noise_sigma(saved) - sigma) < 0.05 * sigma
    # unclipped noise is measured as before: values beyond [0, 1] are not taken for clipping
    assert abs(estimate_noise_sigma(add_noise(clean, sigma)) - sigma) < 0.05 * sigma


def test_noise_estimate_averages_the_channels():
    clean = smooth_image(3)
    noisy = np.stack([add_noise(clean[..., c], s, seed=c) for c, s in enumerate((10, 20, 60))], axis=-1)
    each = [estimate_noise_sigma(noisy[..., c]) for c in range(3)]
    assert estimate_noise_sigma(noisy) == pytest.approx(np.mean(each))
    assert each[0] < each[1] < each[2]
    assert estimate_noise_sigma(noisy[..., :1]) == pytest.approx(each[0])  # (H, W, 1) == (H, W)


@pytest.mark.parametrize("image", [np.zeros((8, 8), np.int32), np.zeros((8, 8, 4), np.float32),
                                   np.zeros((1, 8), np.float32)])
def test_noise_estimate_refuses_bad_images(image):
    with pytest.raises(ImageError, match="estimate_noise_sigma: image"):
        estimate_noise_sigma(image)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_noise_estimate_of_samples_is_that_of_their_float_image(dtype):
    """A file's samples (what the commands read) give the estimate of the float image they stand for."""
    scale = np.iinfo(dtype).max
    rng = np.random.default_rng(3)
    noisy = np.clip(0.5 + rng.normal(0, 20 / 255, (48, 64, 3)), 0, 1)
    samples = np.rint(noisy * scale).astype(dtype)
    expected = estimate_noise_sigma(samples.astype(np.float32) / np.float32(scale))
    assert estimate_noise_sigma(samples) == expected and abs(expected - 20) < 3


# --- completion --------------------------------------------------------------------------------------------
def gradient_with_hole(channels: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(original, occluded, mask): a linear ramp with a black 12x12 square hole."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / (SIZE - 1)
    ramp = 0.2 + 0.5 * x + 0.2 * y
    original = ramp if not channels else np.stack([ramp, 1 - ramp, 0.5 * ramp][:channels], axis=-1)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[16:28, 18:30] = True
    occluded = original.copy()
    occluded[mask] = 0.0
    return original.astype(np.float32), occluded.astype(np.float32), mask


@pytest.mark.parametrize("fn", [inpaint_telea, inpaint_navier_stokes])
@pytest.mark.parametrize("channels", [0, 1, 3])
def test_inpainting_fills_a_smooth_gradient_and_never_changes_known_pixels(fn, channels):
    original, occluded, mask = gradient_with_hole(channels)
    out = fn(occluded, mask)
    assert out.shape == occluded.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[~mask], occluded[~mask])  # bit-exact outside the hole
    error = np.abs(out - original)[mask]
    assert error.mean() < 0.03 and error.max() < 0.06  # the hole was 0: errors of ~0.5 before


def test_telea_is_accurate_on_unit_range_floats():
    """OpenCV's float32 Telea breaks on [0, 1] values (opencv/opencv#25404); the wrapper avoids it."""
    image = np.full((9, 9), 0.5, np.float32)
    mask = np.zeros((9, 9), bool)
    mask[3:6, 3:6] = True
    image[mask] = 0.0
    np.testing.assert_allclose(inpaint_telea(image, mask, radius=1), 0.5, atol=1e-4)  # raw OpenCV: errors of 0.5


@pytest.mark.parametrize("mask_of", [lambda m: m, lambda m: m.astype(np.float32), lambda m: m[..., None],
                                     lambda m: (m * 255).astype(np.uint8)])
def test_mask_forms_agree(mask_of):
    _, occluded, mask = gradient_with_hole(3)
    np.testing.assert_array_equal(inpaint_telea(occluded, mask_of(mask)), inpaint_telea(occluded, mask))


def test_inpainting_input_errors():
    _, occluded, mask = gradient_with_hole(3)
    with pytest.raises(ImageError, match="mask is 10x48"):
        inpaint_telea(occluded, mask[:10])
    with pytest.raises(ImageError, match="inpaint_navier_stokes: mask"):
        inpaint_navier_stokes(occluded, mask.tolist())
    with pytest.raises(ImageError, match="inpaint_telea: image"):
        inpaint_telea((occluded * 255).astype(np.uint8), mask)
    with pytest.raises(ValueError, match="radius"):
        inpaint_telea(occluded, mask, radius=0)


# --- global curves -----------------------------------------------------------------------------------------
def relit_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(dark capture under uneven light, its reference), RGB float32 (SIZE, SIZE, 3)."""
    reference = smooth_image(3)
    low = uneven_low_light(torch.from_numpy(reference).permute(2, 0, 1)[None],
                           generator=torch.Generator().manual_seed(seed))[0]
    return low.permute(1, 2, 0).numpy().copy(), reference


def gt_mean_psnr(output: np.ndarray, reference: np.ndarray) -> float:
    x, y = (torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None] for a in (output, reference))
    return float(psnr(gt_mean_align(x, y), y)[0])


@pytest.mark.parametrize("target", [0.3, 0.4, 0.6, 0.8])
def test_global_curve_takes_the_mean_to_the_target_with_one_alpha_repeated(target):
    for image in (relit_pair()[0], 0.05 * smooth_image(3), smooth_image()):  # uneven, very dark, bright (gray)
        out = global_curve(image, target=target)
        assert out.shape == image.shape and out.dtype == np.float32
        assert abs(float(out.mean()) - target) < 0.01
        assert 0.0 <= out.min() and out.max() <= 1.0
        # one curve for the whole image: the LE curve of one alpha, 10 times (the shipped policy's steps)
        alphas = np.linspace(-1, 1, 2001)
        means = [float(le_curve_iterative(torch.from_numpy(image)[None], a, 10).mean()) for a in alphas[::100]]
        assert min(means) - 0.01 <= target <= max(means) + 0.01
        x = torch.from_numpy(image)[None].double()
        errors = [float((le_curve_iterative(x, a, 10)[0].float() - torch.from_numpy(out)).abs().max()) for a in alphas]
        assert min(errors) < 2e-3


def test_global_curve_steps_and_the_unreachable_target():
    dark = 0.05 * smooth_image(3)
    five, ten = global_curve(dark, target=0.3, steps=5), global_curve(dark, target=0.3)
    assert abs(float(five.mean()) - 0.3) < 0.01 and abs(float(ten.mean()) - 0.3) < 0.01
    assert float(np.abs(five - ten).max()) > 1e-3  # fewer steps of a stronger curve: another curve
    assert np.array_equal(global_curve(np.zeros((8, 8, 3), np.float32)), np.zeros((8, 8, 3), np.float32))
    # three steps of alpha 1 cannot lift a near-black image to 0.9: the brightest curve, alpha = 1
    faint = np.full((4, 4, 3), 0.01, np.float32)
    assert np.allclose(global_curve(faint, target=0.9, steps=3), le_curve_iterative(torch.from_numpy(faint)[None],
                                                                                    1.0, 3)[0].numpy())


def test_global_curve_defaults_are_the_shipped_policys_target_and_steps():
    from rlenhance.enhance import Enhancer

    enhancer = Enhancer(device="cpu")
    assert baselines.GLOBAL_CURVE_TARGET == enhancer.spec.setting["exposure_target"]
    assert baselines.GLOBAL_CURVE_STEPS == enhancer.steps


@pytest.mark.parametrize("kwargs, match", [({"target": 0.0}, "target must be"), ({"target": 1.2}, "target must be"),
                                           ({"steps": 0}, "steps must be"), ({"steps": 2.5}, "steps must be")])
def test_global_curve_names_a_bad_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        global_curve(smooth_image(3), **kwargs)


def test_oracle_global_is_exact_for_a_monotone_relation_per_channel():
    image = smooth_image(3)
    reference = np.stack([image[..., 0] ** 0.5, 0.2 + 0.5 * image[..., 1], image[..., 2] ** 2], axis=-1)
    assert np.allclose(oracle_global(image, reference), reference, atol=1e-6)


def test_oracle_global_is_the_best_monotone_curve_and_beats_the_global_curve_on_uneven_light():
    low, reference = relit_pair()
    fitted = oracle_global(low, reference)
    assert fitted.shape == low.shape and fitted.dtype == np.float32
    for c in range(3):  # a monotone function of the input value, keeping each channel's mean
        order = np.argsort(low[..., c], axis=None, kind="stable")
        assert np.all(np.diff(fitted[..., c].ravel()[order]) >= -1e-6)
        assert abs(float(fitted[..., c].mean()) - float(reference[..., c].mean())) < 1e-4
    # no monotone curve comes closer: the global LE curve and the input are monotone curves of the input
    error = float(np.mean((fitted - reference) ** 2))
    for other in (low, global_curve(low)):
        assert error < float(np.mean((other - reference) ** 2))
    assert gt_mean_psnr(fitted, reference) > gt_mean_psnr(global_curve(low), reference) > gt_mean_psnr(low, reference)


def test_oracle_global_needs_a_reference_of_the_same_shape():
    low, reference = relit_pair()
    with pytest.raises(ImageError, match="oracle_global: needs the reference"):
        oracle_global(low, None)
    with pytest.raises(ImageError, match="shape"):
        oracle_global(low, reference[:10])


# --- registries --------------------------------------------------------------------------------------------
def test_registries_are_read_only_and_follow_their_calling_convention():
    assert set(LOWLIGHT_BASELINES) == {"auto-gamma", "histeq", "clahe", "global-curve"}
    assert set(DENOISE_BASELINES) == {"gaussian", "median", "bilateral", "bm3d"}
    assert set(COMPLETION_BASELINES) == {"telea", "navier-stokes"}
    with pytest.raises(TypeError):
        DENOISE_BASELINES["other"] = median_denoise
    dark = 0.1 * smooth_image(3)
    for fn in LOWLIGHT_BASELINES.values():
        assert fn(dark).shape == dark.shape and fn(dark).mean() > dark.mean()
    original, occluded, mask = gradient_with_hole(3)
    for fn in COMPLETION_BASELINES.values():
        assert fn(occluded, mask).shape == original.shape
    assert baseline_missing("median") is None and baseline_missing("telea") is None
