"""Tests for rlenhance.metrics: PSNR / SSIM against skimage.metrics, UQI against a direct loop, the Y channel and
GT-mean alignment against hand computations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from rlenhance.errors import ImageError
from rlenhance.metrics import gt_mean_align, niqe, psnr, rgb_to_y, ssim, uqi

TOL = 1e-3


def _to_torch(img: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) numpy -> (1, C, H, W) float32 tensor."""
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    if t.dim() == 2:
        t = t[None]
    else:
        t = t.permute(2, 0, 1)
    return t[None]


def _pairs(data_range: float, gray: bool):
    """Yield (reference, distorted) numpy pairs scaled to [0, data_range]: random and natural."""
    rng = np.random.default_rng(0)
    shape = (40, 48) if gray else (40, 48, 3)
    a = rng.random(shape)
    b = np.clip(a + rng.normal(0.0, 0.1, shape), 0, 1)
    yield a * data_range, b * data_range

    astro = skdata.astronaut()[180:244, 200:248].astype(np.float64) / 255.0
    if gray:
        astro = astro.mean(axis=2)
    dark = astro * 0.4 + 0.05  # a low-light-like version: a contrast and brightness change
    yield astro * data_range, dark * data_range
    noisy = np.clip(astro + rng.normal(0.0, 0.05, astro.shape), 0, 1)
    yield astro * data_range, noisy * data_range


def _skimage_ssim(a, b, data_range, gray, **kw):
    return structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=kw.get("sigma", 1.5),
        use_sample_covariance=False,
        data_range=data_range,
        channel_axis=None if gray else 2,
        full=True,
    )


@pytest.mark.parametrize("gray", [True, False])
@pytest.mark.parametrize("data_range", [1.0, 2.0, 255.0])
def test_psnr_matches_skimage(gray, data_range):
    for a, b in _pairs(data_range, gray):
        expected = peak_signal_noise_ratio(a, b, data_range=data_range)
        got = psnr(_to_torch(a), _to_torch(b), data_range=data_range)
        assert got.shape == (1,)
        assert got.item() == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("gray", [True, False])
@pytest.mark.parametrize("data_range", [1.0, 2.0, 255.0])
def test_ssim_matches_skimage_value_and_full_map(gray, data_range):
    for a, b in _pairs(data_range, gray):
        expected, full = _skimage_ssim(a, b, data_range, gray)
        got, ssim_map = ssim(_to_torch(a), _to_torch(b), data_range=data_range, return_map=True)
        assert got.shape == (1,)
        assert got.item() == pytest.approx(expected, abs=TOL)
        # skimage's full map (border included) is per channel; ours is the channel mean.
        expected_map = full if gray else full.mean(axis=2)
        assert ssim_map.shape == (1, 1) + expected_map.shape
        np.testing.assert_allclose(ssim_map[0, 0].numpy(), expected_map, atol=TOL)


def test_ssim_other_sigma_matches_skimage_with_consistent_window():
    # skimage uses 2 * int(3.5 * sigma + 0.5) + 1 taps: 9 for sigma = 1.
    a, b = list(_pairs(1.0, gray=False))[1]
    expected, _ = _skimage_ssim(a, b, 1.0, gray=False, sigma=1.0)
    got = ssim(_to_torch(a), _to_torch(b), sigma=1.0, win_size=9)
    assert got.item() == pytest.approx(expected, abs=TOL)


def test_ssim_value_is_mean_of_cropped_map():
    x = torch.rand(2, 3, 24, 30)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    values, ssim_map = ssim(x, y, return_map=True)
    np.testing.assert_allclose(
        values.numpy(), ssim_map[..., 5:-5, 5:-5].mean(dim=(1, 2, 3)).numpy(), rtol=1e-6
    )


def test_identical_images():
    x = torch.rand(2, 3, 16, 16)
    assert torch.isinf(psnr(x, x)).all() and (psnr(x, x) > 0).all()
    # a floor on the MSE makes it finite (100 dB at 1e-10) and leaves other pairs as they were
    torch.testing.assert_close(psnr(x, x, mse_floor=1e-10), torch.full((2,), 100.0))
    y = (x + 0.1).clamp(0, 1)
    torch.testing.assert_close(psnr(x, y, mse_floor=1e-10), psnr(x, y))
    with pytest.raises(ValueError, match="mse_floor"):
        psnr(x, y, mse_floor=-1.0)
    np.testing.assert_allclose(ssim(x, x).numpy(), 1.0, atol=1e-6)
    np.testing.assert_allclose(uqi(x, x).numpy(), 1.0, atol=1e-5)


def test_per_image_semantics_not_pooled():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 20, 20, generator=gen)
    noise = torch.randn(2, 3, 20, 20, generator=gen)
    y = x + noise * torch.tensor([0.02, 0.2]).view(2, 1, 1, 1)  # very different error levels
    for metric in (psnr, ssim, uqi):
        batch = metric(x, y)
        assert batch.shape == (2,)
        singles = torch.cat([metric(x[i], y[i]) for i in range(2)])  # (C, H, W) inputs
        np.testing.assert_allclose(batch.numpy(), singles.numpy(), rtol=1e-5)
        assert batch[0] != pytest.approx(batch[1].item(), abs=1e-2)
    # PSNR per image differs from PSNR of the pooled MSE.
    pooled = 10 * torch.log10(1 / (x - y).pow(2).mean())
    assert psnr(x, y).mean().item() != pytest.approx(pooled.item(), abs=1e-2)


def test_bad_inputs_raise_named_errors():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ImageError, match="same shape"):
        psnr(x, torch.rand(1, 3, 16, 15))
    with pytest.raises(ImageError, match="floating-point"):
        ssim((x * 255).to(torch.uint8), (x * 255).to(torch.uint8))
    with pytest.raises(ImageError, match="B, C, H, W"):
        uqi(x[0, 0], x[0, 0])
    with pytest.raises(ImageError, match="smaller than"):
        ssim(torch.rand(1, 1, 8, 30), torch.rand(1, 1, 8, 30))
    with pytest.raises(ImageError, match="smaller than"):
        uqi(torch.rand(1, 1, 7, 30), torch.rand(1, 1, 7, 30))
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=0)
    with pytest.raises(ValueError, match="win_size"):
        ssim(x, x, win_size=10)


@pytest.mark.parametrize("metric", [psnr, ssim, uqi], ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_inf_or_empty_images_are_refused_as_the_no_reference_metrics_refuse_them(metric, bad):
    x = torch.rand(2, 3, 16, 16)
    broken = x.clone()
    broken[1, 2, 3, 4] = bad
    name = metric.__name__
    for first, second, which in ((x, broken, "y"), (broken, x, "x")):
        with pytest.raises(ImageError, match=rf"^{name}: {which}: 1 NaN or infinite value\(s\) of 1536; accepted: "
                                             "finite float values$"):
            metric(first, second)
    with pytest.raises(ImageError, match=r"niqe: image: 1 NaN or infinite value\(s\) of 768; accepted: float"):
        niqe(broken[1].permute(1, 2, 0).numpy())
    empty = torch.rand(1, 3, 0, 0)
    with pytest.raises(ImageError, match=rf"^{name}: x: empty image \(shape \(1, 3, 0, 0\)\)$"):
        metric(empty, empty)


def test_gradients_flow():
    x = torch.rand(2, 3, 16, 16)
    for metric in (psnr, ssim, uqi):
        y = (x + 0.1 * torch.randn_like(x)).requires_grad_(True)
        metric(x, y).sum().backward()
        assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def _uqi_reference(x: np.ndarray, y: np.ndarray, win: int) -> float:
    """Direct loop following Wang & Bovik's img_qi.m for (C, H, W) float64 images."""
    qs = []
    for c in range(x.shape[0]):
        for i in range(x.shape[1] - win + 1):
            for j in range(x.shape[2] - win + 1):
                a = x[c, i : i + win, j : j + win]
                b = y[c, i : i + win, j : j + win]
                mx, my = a.mean(), b.mean()
                vx, vy = a.var(), b.var()
                if np.ptp(a) == 0:
                    vx = 0.0
                if np.ptp(b) == 0:
                    vy = 0.0
                cov = 0.0 if (vx == 0 or vy == 0) else ((a - mx) * (b - my)).mean()
                den = (vx + vy) * (mx**2 + my**2)
                if den != 0:
                    q = 4 * cov * mx * my / den
                elif vx + vy == 0 and mx**2 + my**2 != 0:
                    q = 2 * mx * my / (mx**2 + my**2)
                else:
                    q = 1.0
                qs.append(q)
    return float(np.mean(qs))


def test_uqi_matches_direct_loop_random():
    rng = np.random.default_rng(3)
    x = rng.random((3, 12, 12))
    y = np.clip(0.7 * x + 0.2 + rng.normal(0, 0.1, x.shape), 0, 1)
    got = uqi(torch.from_numpy(x[None]).float(), torch.from_numpy(y[None]).float())
    assert got.item() == pytest.approx(_uqi_reference(x, y, 8), abs=1e-4)
    got5 = uqi(torch.tensor(x[None]), torch.tensor(y[None]), win_size=5)
    assert got5.item() == pytest.approx(_uqi_reference(x, y, 5), abs=1e-9)


def test_uqi_flat_window_conventions():
    rng = np.random.default_rng(4)
    x = rng.random((1, 18, 18))
    y = rng.random((1, 18, 18))
    x[:, :9, :9] = 0.3  # window positions (0..1, 0..1): flat in both images with different
    y[:, :9, :9] = 0.5  # means -> luminance term 2*0.3*0.5/(0.09+0.25)
    x[:, 10:, 10:] = 0.0  # window position (10, 10): x flat and zero, y not flat -> Q = 0
    assert np.ptp(y[:, 10:, 10:]) > 0
    expected = _uqi_reference(x, y, 8)
    got = uqi(torch.from_numpy(x[None]).float(), torch.from_numpy(y[None]).float())
    assert got.item() == pytest.approx(expected, abs=1e-4)

    flat_a = torch.full((1, 1, 12, 12), 0.3)
    flat_b = torch.full((1, 1, 12, 12), 0.5)
    assert uqi(flat_a, flat_a).item() == pytest.approx(1.0, abs=1e-6)
    assert uqi(flat_a, flat_b).item() == pytest.approx(2 * 0.15 / 0.34, abs=1e-5)
    zeros = torch.zeros(1, 1, 12, 12)
    assert uqi(zeros, zeros).item() == 1.0
    assert uqi(flat_a, torch.rand(1, 1, 12, 12)).item() == pytest.approx(0.0, abs=1e-6)


def test_uqi_properties():
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(1, 3, 32, 32, generator=gen) * 0.8 + 0.1
    shifted = uqi(x, x + 0.1).item()
    assert 0.5 < shifted < 1.0  # a constant shift only changes the luminance term
    assert uqi(x, x + 0.2).item() < shifted
    assert uqi(x, 1.0 - x).item() < 0  # inverted structure
    for _ in range(3):
        y = torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1
        q = uqi(x, y).item()
        assert -1.0 <= q <= 1.0
    # Scale invariance: no data_range needed.
    y = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    assert uqi(255 * x, 255 * y).item() == pytest.approx(uqi(x, y).item(), abs=1e-4)


def test_metrics_keep_device_and_dtype():
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    y = x.flip(-1)
    for metric in (psnr, ssim, uqi):
        out = metric(x, y)
        assert out.dtype == torch.float64 and out.device == x.device


def _piq_style_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PIQ's SSIM recipe in float64: an 11x11 Gaussian kernel of sigma 1.5 (2-D, normalised),
    valid convolution (no padding), K1 0.01, K2 0.03, data range 1, the map's mean per channel
    then over channels; PIQ's downsampling by round(min(H, W) / 256) is 1 for these sizes."""
    assert round(min(x.shape[-2:]) / 256) <= 1
    coords = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(coords[None] ** 2 + coords[:, None] ** 2) / (2 * 1.5**2))
    kernel = (g / g.sum()).expand(x.shape[1], 1, 11, 11)
    x, y = x.double(), y.double()

    def blur(t):
        return F.conv2d(t, kernel, groups=x.shape[1])

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y, cov = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2, blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * (2 * cov + c2) / (var_x + var_y + c2)
    return ssim_map.mean(dim=(-1, -2)).mean(dim=1)


@pytest.mark.parametrize("gray", [True, False])
def test_ssim_is_the_piq_style_gaussian_ssim_within_1e4(gray):
    """The loss's SSIM against skimage (Gaussian weights, sigma 1.5, population covariance, data range 1)
    and PIQ's recipe, on random, natural, darkened and noisy images, gray and colour."""
    pairs = list(_pairs(1.0, gray))
    rng = np.random.default_rng(5)
    bedroom_like = skdata.chelsea()[:96, 40:136].astype(np.float64) / 255.0  # a real photo, 96x96
    if gray:
        bedroom_like = bedroom_like.mean(axis=2)
    blurred = np.clip(bedroom_like + rng.normal(0.0, 0.02, bedroom_like.shape), 0, 1) * 0.9
    pairs.append((bedroom_like, blurred))
    for a, b in pairs:
        x, y = _to_torch(a), _to_torch(b)
        got = ssim(x, y)
        expected, _ = _skimage_ssim(a, b, 1.0, gray)
        assert abs(got.item() - expected) < 1e-4
        assert abs(got.item() - _piq_style_ssim(x, y).item()) < 1e-4
        assert got.item() < 1.0 - 1e-3  # a distorted pair: the comparison is not trivially 1 == 1


def test_rgb_to_y_is_matlab_rgb2ycbcr_luma():
    rng = np.random.default_rng(5)
    image = rng.random((6, 7, 3))
    expected = rgb2ycbcr(image)[..., 0]  # skimage's rgb2ycbcr is MATLAB's: Y in [16, 235]
    by_hand = 16 + 65.481 * image[..., 0] + 128.553 * image[..., 1] + 24.966 * image[..., 2]
    np.testing.assert_allclose(expected, by_hand, atol=1e-9)
    x = torch.from_numpy(image).permute(2, 0, 1)
    np.testing.assert_allclose(rgb_to_y(x)[0, 0].numpy() * 255, by_hand, atol=1e-9)
    np.testing.assert_allclose(rgb_to_y(x * 255, data_range=255.0)[0, 0].numpy(), by_hand, atol=1e-9)
    with pytest.raises(ImageError, match="3 \\(RGB\\) channels"):
        rgb_to_y(x[:1])


def test_psnr_on_y_matches_hand_computation():
    rng = np.random.default_rng(6)
    a = rng.integers(0, 256, (2, 12, 16, 3)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 12, a.shape), 0, 255)
    weights = np.array([65.481, 128.553, 24.966]) / 255
    expected = [10 * np.log10(255**2 / np.mean(((a[i] - b[i]) @ weights) ** 2)) for i in range(2)]
    x, y = (torch.from_numpy(t).permute(0, 3, 1, 2) for t in (a, b))
    got = psnr(rgb_to_y(x, data_range=255.0), rgb_to_y(y, data_range=255.0), data_range=255.0)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    # full-range luma sits 20 log10(255 / 219) dB lower
    luma = [10 * np.log10(255**2 / np.mean(((a[i] - b[i]) @ [0.299, 0.587, 0.114]) ** 2)) for i in range(2)]
    np.testing.assert_allclose(got.numpy() - luma, 20 * np.log10(255 / 219), rtol=1e-9)


def test_gt_mean_align_matches_hand_computation():
    rng = np.random.default_rng(7)
    output = rng.random((2, 10, 12, 3)) * [[[[0.3]]], [[[0.9]]]]
    reference = rng.random((2, 10, 12, 3))
    luma = np.array([0.299, 0.587, 0.114])
    expected = np.stack([np.clip(output[i] * (reference[i] @ luma).mean() / (output[i] @ luma).mean(), 0, 1)
                         for i in range(2)])
    x, y = (torch.from_numpy(t).permute(0, 3, 1, 2) for t in (output, reference))
    got = gt_mean_align(x, y).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert (got[0] < 1).any() and got.max() <= 1.0  # per image; clipped
    # one channel is its own gray; data_range is the clip; a black output stays black
    gray = torch.from_numpy(output[..., :1]).permute(0, 3, 1, 2)
    ref_gray = torch.from_numpy(reference[..., :1]).permute(0, 3, 1, 2)
    aligned = gt_mean_align(gray * 255, ref_gray * 255, data_range=255.0)
    np.testing.assert_allclose(aligned.mean(dim=(1, 2, 3)).numpy(), ref_gray.mean(dim=(1, 2, 3)).numpy() * 255,
                               rtol=0.05)
    black = torch.zeros(1, 3, 4, 4)
    assert torch.equal(gt_mean_align(black, torch.rand(1, 3, 4, 4)), black)
    with pytest.raises(ImageError, match="1 or 3 channels"):
        gt_mean_align(torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4))
    with pytest.raises(ImageError, match="same shape"):
        gt_mean_align(black, torch.rand(1, 3, 4, 5))
