"""The torch filter bank against OpenCV on the same float32 input, borders included.

Tolerances (max abs error, float32 images in [0, 1]); observed errors are about 5x smaller:
    Gaussian, box:  1e-6      (float rounding of separable sums)
    median:         0         (exact: both pick one of the input values)
    bilateral:      2e-6      (same disc support, L1 colour distance and interpolated lookup
                               table as OpenCV's float path; differences are float rounding)
    +-1/255, keep:  1e-7
"""

import cv2
import numpy as np
import pytest
import torch

from rlenhance.errors import ImageError
from rlenhance.ops import (
    PIXELRL_ACTION_TABLE,
    PIXELRL_ACTIONS,
    FilterAction,
    FilterBank,
    bilateral_filter2d,
    box_blur2d,
    gaussian_blur2d,
    gaussian_kernel1d,
    median_blur2d,
    pixelrl_filter_bank,
)

ATOL_LINEAR = 1e-6
ATOL_BILATERAL = 2e-6
ATOL_SHIFT = 1e-7

# PixelRL's cv2 calls (State.step in the PixelRL code), written independently of PIXELRL_ACTION_TABLE.
CV2_PIXELRL = {
    "pixel_minus": lambda a: a - np.float32(1.0 / 255.0),
    "keep": lambda a: a,
    "pixel_plus": lambda a: a + np.float32(1.0 / 255.0),
    "gaussian_0.5": lambda a: cv2.GaussianBlur(a, ksize=(5, 5), sigmaX=0.5),
    "bilateral_0.1": lambda a: cv2.bilateralFilter(a, d=5, sigmaColor=0.1, sigmaSpace=5),
    "median": lambda a: cv2.medianBlur(a, ksize=5),
    "gaussian_1.5": lambda a: cv2.GaussianBlur(a, ksize=(5, 5), sigmaX=1.5),
    "bilateral_1.0": lambda a: cv2.bilateralFilter(a, d=5, sigmaColor=1.0, sigmaSpace=5),
    "box": lambda a: cv2.boxFilter(a, ddepth=-1, ksize=(5, 5)),
}
TOLERANCE = {
    "pixel_minus": ATOL_SHIFT, "keep": 0.0, "pixel_plus": ATOL_SHIFT,
    "gaussian_0.5": ATOL_LINEAR, "gaussian_1.5": ATOL_LINEAR, "box": ATOL_LINEAR, "median": 0.0,
    "bilateral_0.1": ATOL_BILATERAL, "bilateral_1.0": ATOL_BILATERAL,
}


def cv2_per_image(fn, x):
    """Apply an OpenCV function image by image to a (B, C, H, W) float32 array (HWC for cv2)."""
    out = []
    for img in x:
        res = fn(np.ascontiguousarray(img.transpose(1, 2, 0)))
        out.append((res[..., None] if res.ndim == 2 else res).transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


def random_images(channels, height=23, width=29, seed=0):
    """Three images with different value ranges (the bilateral lookup table depends on the range)."""
    rng = np.random.default_rng(seed)
    x = rng.random((3, channels, height, width), dtype=np.float32)
    x[1] = 0.2 + 0.3 * x[1]
    x[2] = np.round(x[2] * 8) / 8  # few levels: many exact ties for the median
    return x


def structured_images(channels, height=24, width=31):
    """Step edges, a one-pixel line and an impulse at the borders and corners, a checkerboard, a ramp."""
    yy, xx = np.mgrid[0:height, 0:width]
    edges = np.full((height, width), 0.1, np.float32)
    edges[:, :1] = 0.9  # edge one pixel from the left border
    edges[height - 3:, :] = 0.7  # horizontal edge near the bottom border
    edges[0, width - 1] = 1.0  # corner impulse
    edges[:, width // 2] = 0.0  # thin dark line
    checker = (((yy // 3) + (xx // 3)) % 2).astype(np.float32) * 0.8 + 0.1
    ramp = ((xx + 2 * yy) / (width + 2 * height)).astype(np.float32)
    diag = (xx > yy).astype(np.float32)
    planes = [edges, checker, ramp, diag]
    imgs = [np.stack([planes[(i + c) % len(planes)] for c in range(channels)]) for i in range(len(planes))]
    return np.stack(imgs).astype(np.float32)


def assert_matches(ours, ref, atol, what):
    err = np.abs(ours - ref)
    border = np.ones(ours.shape[-2:], bool)
    border[2:-2, 2:-2] = False
    assert err[..., border].max() <= atol, f"{what}: border max abs error {err[..., border].max():.3g} > {atol}"
    assert err.max() <= atol, f"{what}: max abs error {err.max():.3g} > {atol}"


# ---------------------------------------------------------------- the nine PixelRL actions


def test_action_names_and_table():
    assert PIXELRL_ACTIONS == ("pixel_minus", "keep", "pixel_plus", "gaussian_0.5", "bilateral_0.1",
                               "median", "gaussian_1.5", "bilateral_1.0", "box")
    assert tuple(a.name for a in PIXELRL_ACTION_TABLE) == PIXELRL_ACTIONS
    bank = FilterBank()
    assert bank.names == PIXELRL_ACTIONS and bank.n_actions == 9
    assert "pixel_minus" in repr(bank)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("images", ["random", "structured"])
def test_bank_matches_opencv(channels, images):
    x = random_images(channels) if images == "random" else structured_images(channels)
    cands = FilterBank()(torch.from_numpy(x))
    assert cands.shape == (x.shape[0], 9) + x.shape[1:] and cands.dtype == torch.float32
    torch.testing.assert_close(cands, pixelrl_filter_bank(torch.from_numpy(x)), rtol=0, atol=0)
    for k, name in enumerate(PIXELRL_ACTIONS):
        ref = cv2_per_image(CV2_PIXELRL[name], x)
        assert_matches(cands[:, k].numpy(), ref, TOLERANCE[name], f"{name} C={channels} {images}")


def test_shift_actions_are_not_clipped():
    x = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3)
    cands = pixelrl_filter_bank(x)
    step = 1.0 / 255.0
    torch.testing.assert_close(cands[0, 0, 0, 0], torch.tensor([-step, 0.5 - step, 1.0 - step]))
    torch.testing.assert_close(cands[0, 2, 0, 0], torch.tensor([step, 0.5 + step, 1.0 + step]))
    torch.testing.assert_close(cands[0, 1], x[0])


def test_custom_bank():
    bank = FilterBank([FilterAction("blur3", box_blur2d, (("ksize", 3),)), PIXELRL_ACTION_TABLE[1]])
    x = torch.from_numpy(random_images(3))
    out = bank(x)
    assert bank.names == ("blur3", "keep") and out.shape == (3, 2, 3, 23, 29)
    assert_matches(out[:, 0].numpy(), cv2_per_image(lambda a: cv2.blur(a, (3, 3)), x.numpy()), ATOL_LINEAR, "box3")
    with pytest.raises(ValueError, match="at least one"):
        FilterBank([])


# ---------------------------------------------------------------- single filters, other parameters


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("ksize, sigma", [(3, 0.8), (5, 1.0), (7, 2.0), (9, 3.5)])
def test_gaussian_matches_opencv(channels, ksize, sigma):
    x = structured_images(channels, 20, 17)
    ref = cv2_per_image(lambda a: cv2.GaussianBlur(a, (ksize, ksize), sigma), x)
    assert_matches(gaussian_blur2d(torch.from_numpy(x), ksize, sigma).numpy(), ref, ATOL_LINEAR, "gaussian")


def test_gaussian_kernel_matches_opencv():
    for ksize, sigma in [(3, 0.5), (5, 1.5), (11, 2.7)]:
        ref = cv2.getGaussianKernel(ksize, sigma)[:, 0]
        np.testing.assert_allclose(gaussian_kernel1d(ksize, sigma, dtype=torch.float64).numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("ksize", [1, 3, 7])
def test_box_matches_opencv(channels, ksize):
    x = random_images(channels, 19, 22, seed=1)
    ref = cv2_per_image(lambda a: cv2.blur(a, (ksize, ksize)), x)
    assert_matches(box_blur2d(torch.from_numpy(x), ksize).numpy(), ref, ATOL_LINEAR, "box")


@pytest.mark.parametrize("channels", [1, 3])
def test_median3_matches_opencv(channels):
    x = random_images(channels, 18, 21, seed=2)
    ref = cv2_per_image(lambda a: cv2.medianBlur(a, 3), x)
    assert_matches(median_blur2d(torch.from_numpy(x), 3).numpy(), ref, 0.0, "median3")


def test_median_larger_window_against_numpy():
    """OpenCV has no float median above 5x5: check 7x7 against numpy with edge (replicate) padding."""
    x = random_images(1, 12, 13, seed=3)
    xp = np.pad(x, ((0, 0), (0, 0), (3, 3), (3, 3)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(xp, (7, 7), axis=(2, 3))
    ref = np.median(windows.reshape(*windows.shape[:4], -1), axis=-1)
    np.testing.assert_array_equal(median_blur2d(torch.from_numpy(x), 7).numpy(), ref)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("d, sigma_color, sigma_space", [(3, 0.05, 1.0), (7, 0.2, 3.0), (9, 0.5, 10.0), (2, 0.1, 5.0)])
def test_bilateral_matches_opencv(channels, d, sigma_color, sigma_space):
    x = np.concatenate([random_images(channels, 16, 19, seed=4), structured_images(channels, 16, 19)])
    ref = cv2_per_image(lambda a: cv2.bilateralFilter(a, d, sigma_color, sigma_space), x)
    out = bilateral_filter2d(torch.from_numpy(x), d, sigma_color, sigma_space).numpy()
    assert_matches(out, ref, ATOL_BILATERAL, f"bilateral d={d}")


def test_bilateral_constant_image_unchanged():
    x = np.full((2, 3, 9, 10), 0.3, np.float32)
    x[1] = 0.8
    x[1, :, 4, 5] = np.nextafter(np.float32(0.8), np.float32(1))  # range of 1 ulp < float32 eps: flat
    out = bilateral_filter2d(torch.from_numpy(x), 5, 0.1, 5.0).numpy()
    np.testing.assert_allclose(out, x, rtol=0, atol=1e-6)
    ref = cv2_per_image(lambda a: cv2.bilateralFilter(a, 5, 0.1, 5), x)
    assert_matches(out, ref, ATOL_BILATERAL, "bilateral flat")


def test_bilateral_preserves_strong_edge():
    """A 0/1 step with sigma_color 0.1 stays a step; a Gaussian of the same support smears it."""
    x = np.zeros((1, 1, 8, 8), np.float32)
    x[..., 4:] = 1.0
    bil = bilateral_filter2d(torch.from_numpy(x), 5, 0.1, 5.0)
    assert (bil[..., :4] < 1e-6).all() and (bil[..., 4:] > 1 - 1e-6).all()
    assert gaussian_blur2d(torch.from_numpy(x), 5, 1.5)[..., 3].min() > 0.1


# ---------------------------------------------------------------- borders of tiny images, dtype, errors


@pytest.mark.parametrize("size", [(1, 1), (1, 6), (2, 5), (3, 3), (4, 7)])
@pytest.mark.parametrize("channels", [1, 3])
def test_tiny_images_match_opencv(size, channels):
    """Kernels larger than the image: OpenCV's border rules apply recursively."""
    x = random_images(channels, *size, seed=5)
    cands = pixelrl_filter_bank(torch.from_numpy(x))
    for k, name in enumerate(PIXELRL_ACTIONS):
        ref = cv2_per_image(CV2_PIXELRL[name], x)
        assert_matches(cands[:, k].numpy(), ref, TOLERANCE[name], f"{name} size={size}")


def test_dtype_and_float64():
    x32 = torch.from_numpy(random_images(3, 10, 11, seed=6))
    x64 = x32.double()
    out64 = pixelrl_filter_bank(x64)
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), pixelrl_filter_bank(x32), rtol=0, atol=1e-5)
    assert gaussian_blur2d(x32.half(), 5, 1.0).dtype == torch.float16


def test_bad_inputs_raise():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ImageError, match=r"\(B, C, H, W\)"):
        gaussian_blur2d(torch.rand(3, 8, 8), 5, 1.0)
    with pytest.raises(ImageError, match="floating-point"):
        median_blur2d(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), 5)
    with pytest.raises(ImageError, match="non-empty"):
        box_blur2d(torch.rand(1, 1, 0, 8), 5)
    with pytest.raises(ImageError):
        pixelrl_filter_bank(torch.rand(8, 8))
    for bad in (4, 0, -3, 5.0):
        with pytest.raises(ValueError, match="odd positive int"):
            box_blur2d(x, bad)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur2d(x, 5, 0.0)
    with pytest.raises(ValueError, match="sigma_color"):
        bilateral_filter2d(x, 5, -0.1, 5.0)
    with pytest.raises(ValueError, match="d must be"):
        bilateral_filter2d(x, 0, 0.1, 5.0)
