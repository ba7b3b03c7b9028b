import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rlenhance.errors import ImageError
from rlenhance.ops import (
    LECurve,
    LECurveIterative,
    cap_mean,
    check_max_overshoot,
    couple_channels,
    le_curve,
    le_curve_iterative,
    le_curves_upsampled,
    le_step,
    native,
    overshoot_limit,
)


def _rand(*shape, low=0.0, high=1.0, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (low + (high - low) * torch.rand(shape, generator=g)).to(dtype)


def _le_np(x, a):
    """Reference LE curve in float64 numpy with explicit broadcasting."""
    x = np.asarray(x, dtype=np.float64)
    a = np.broadcast_to(np.asarray(a, dtype=np.float64), x.shape)
    return x + a * x * (1.0 - x)


# ---------------------------------------------------------------- known values


@pytest.mark.parametrize(
    "x, alpha, expected",
    [
        (0.5, 1.0, 0.75),  # 0.5 + 0.5 * 0.5
        (0.2, 0.5, 0.28),  # 0.2 + 0.5 * 0.2 * 0.8
        (0.4, -1.0, 0.16),  # alpha = -1 gives x^2
        (0.3, 1.0, 0.51),  # alpha = 1 gives 2x - x^2
        (0.7, 0.0, 0.7),  # identity
        (0.0, 1.0, 0.0),  # 0 is fixed
        (1.0, -1.0, 1.0),  # 1 is fixed
    ],
)
def test_le_curve_known_values(x, alpha, expected):
    img = torch.full((1, 3, 2, 2), x, dtype=torch.float64)
    out = le_curve(img, alpha)
    assert out.shape == img.shape and out.dtype == img.dtype
    torch.testing.assert_close(out, torch.full_like(img, expected), rtol=0, atol=1e-12)
    # tensor alpha gives the same
    torch.testing.assert_close(le_curve(img, torch.tensor(alpha, dtype=torch.float64)), out)


def test_iterative_known_value_two_steps():
    img = torch.full((1, 1, 1, 1), 0.5, dtype=torch.float64)
    # 0.5 -> 0.75 -> 0.75 + 0.75 * 0.25 = 0.9375
    out = le_curve_iterative(img, 1.0, n_iter=2)
    assert out.item() == pytest.approx(0.9375, abs=1e-12)


# ---------------------------------------------------------------- alpha shapes


@pytest.mark.parametrize("alpha_shape", [(2, 1, 1, 1), (2, 3, 1, 1), (2, 1, 5, 6), (2, 3, 5, 6), (3, 1, 1), ()])
def test_le_curve_alpha_shapes_match_reference(alpha_shape):
    x = _rand(2, 3, 5, 6, seed=1)
    alpha = _rand(*alpha_shape, low=-1, high=1, seed=2)
    out = le_curve(x, alpha)
    assert out.shape == x.shape
    np.testing.assert_allclose(out.numpy(), _le_np(x.numpy(), alpha.numpy()), rtol=0, atol=1e-6)


def test_le_curve_unbatched_image():
    x = _rand(3, 4, 4, seed=3)
    alpha = _rand(3, 1, 1, low=-1, high=1, seed=4)
    np.testing.assert_allclose(le_curve(x, alpha).numpy(), _le_np(x.numpy(), alpha.numpy()), atol=1e-6)


@pytest.mark.parametrize("alpha_shape", [(2, 2, 5, 6), (2, 3, 5, 7), (4, 3, 5, 6), (1, 2, 3, 5, 6)])
def test_le_curve_rejects_alpha_that_does_not_fit(alpha_shape):
    x = _rand(2, 3, 5, 6)
    with pytest.raises(ValueError, match="per pixel"):
        le_curve(x, torch.zeros(alpha_shape))


def test_le_curve_rejects_bad_x():
    with pytest.raises(ImageError, match="at least 3 dims"):
        le_curve(torch.rand(4, 4), 0.5)
    with pytest.raises(ImageError, match="floating-point"):
        le_curve(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), 0.5)
    with pytest.raises(ImageError, match="torch.Tensor"):
        le_curve(np.zeros((1, 3, 4, 4)), 0.5)
    with pytest.raises(ValueError, match="alpha"):
        le_curve(torch.rand(1, 3, 4, 4), "0.5")


def test_function_equals_module():
    x = _rand(2, 3, 8, 8, seed=5)
    alpha = _rand(2, 3, 8, 8, low=-1, high=1, seed=6)
    torch.testing.assert_close(LECurve()(x, alpha), le_curve(x, alpha), rtol=0, atol=0)
    alpha_stack = _rand(2, 8 * 3, 8, 8, low=-1, high=1, seed=7)
    module = LECurveIterative(n_iter=8)
    assert "n_iter=8" in repr(module)
    torch.testing.assert_close(module(x, alpha), le_curve_iterative(x, alpha, 8), rtol=0, atol=0)
    torch.testing.assert_close(module(x, alpha_stack), le_curve_iterative(x, alpha_stack, 8), rtol=0, atol=0)
    torch.testing.assert_close(LECurveIterative(n_iter=None)(x, alpha_stack),
                               le_curve_iterative(x, alpha_stack), rtol=0, atol=0)


# ---------------------------------------------------------------- iterative forms


@pytest.mark.parametrize("alpha_shape", [(2, 1, 1, 1), (2, 3, 1, 1), (2, 1, 6, 7), (2, 3, 6, 7)])
def test_iterative_single_map_equals_repeated_steps(alpha_shape):
    x = _rand(2, 3, 6, 7, seed=8, dtype=torch.float64)
    alpha = _rand(*alpha_shape, low=-1, high=1, seed=9, dtype=torch.float64)
    expected = x.numpy()
    for _ in range(8):
        expected = _le_np(expected, alpha.numpy())
    np.testing.assert_allclose(le_curve_iterative(x, alpha, n_iter=8).numpy(), expected, atol=1e-12)


def test_iterative_scalar_alpha_equals_repeated_steps():
    x = _rand(1, 3, 4, 4, seed=10, dtype=torch.float64)
    expected = x.numpy()
    for _ in range(3):
        expected = _le_np(expected, -0.4)
    np.testing.assert_allclose(le_curve_iterative(x, -0.4, n_iter=3).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("n_iter", [None, 8])
def test_iterative_zero_dce_split(channels, n_iter):
    n_maps = 8
    x = _rand(2, channels, 5, 6, seed=11, dtype=torch.float64)
    alpha = _rand(2, n_maps * channels, 5, 6, low=-1, high=1, seed=12, dtype=torch.float64)
    expected = x.numpy()
    for t in range(n_maps):  # map t = channels t*C .. (t+1)*C - 1, applied in order
        expected = _le_np(expected, alpha.numpy()[:, t * channels:(t + 1) * channels])
    out = le_curve_iterative(x, alpha, n_iter=n_iter)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)


def test_iterative_split_order_matters():
    """Applying the maps in reverse order gives a different image, so the order test above bites."""
    x = _rand(1, 3, 4, 4, seed=13, dtype=torch.float64)
    alpha = _rand(1, 2 * 3, 4, 4, low=-1, high=1, seed=14, dtype=torch.float64)
    reversed_alpha = torch.cat([alpha[:, 3:], alpha[:, :3]], dim=1)
    assert not torch.allclose(le_curve_iterative(x, alpha), le_curve_iterative(x, reversed_alpha))


def test_iterative_per_image_stack():
    x = _rand(2, 3, 4, 4, seed=15, dtype=torch.float64)
    alpha = _rand(2, 2 * 3, 1, 1, low=-1, high=1, seed=16, dtype=torch.float64)
    expected = _le_np(_le_np(x.numpy(), alpha.numpy()[:, :3]), alpha.numpy()[:, 3:])
    np.testing.assert_allclose(le_curve_iterative(x, alpha).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize(
    "alpha_shape, n_iter, match",
    [
        ((2, 24, 5, 6), 4, "n_iter\\*C = 12"),  # 8 maps but n_iter says 4
        ((2, 5, 5, 6), None, "n\\*C channels"),  # 5 channels is not a multiple of C = 3
        ((2, 1, 5, 6), None, "Pass n_iter"),  # single shared map needs n_iter
        ((2, 24, 5, 7), None, "does not fit"),  # stack with the wrong width
    ],
)
def test_iterative_rejects_inconsistent_shapes(alpha_shape, n_iter, match):
    with pytest.raises(ValueError, match=match):
        le_curve_iterative(_rand(2, 3, 5, 6), torch.zeros(alpha_shape), n_iter=n_iter)


def test_iterative_rejects_bad_n_iter():
    x = _rand(1, 3, 4, 4)
    with pytest.raises(ValueError, match="scalar alpha needs n_iter"):
        le_curve_iterative(x, 0.5)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="n_iter"):
            le_curve_iterative(x, 0.5, n_iter=bad)
    with pytest.raises(ValueError, match="n_iter"):
        LECurveIterative(n_iter=0)


# ---------------------------------------------------------------- range and gradients


def test_range_preserved_for_alpha_in_unit_interval():
    grid = torch.linspace(0, 1, 1001)  # includes 0, 1 and values next to them
    x = torch.cat([grid, _rand(5 * 1001, seed=17)]).reshape(2, 3, 1, 1001)
    for alpha in (-1.0, -0.3, 0.0, 0.6, 1.0, _rand(*x.shape, low=-1, high=1, seed=18)):
        out = le_curve(x, alpha)
        assert out.min() >= 0 and out.max() <= 1
        out = le_curve_iterative(x, alpha, n_iter=8)
        assert out.min() >= 0 and out.max() <= 1


def test_brighten_and_darken_direction():
    x = _rand(1, 3, 8, 8, low=0.05, high=0.95, seed=19)
    assert (le_curve(x, 0.5) > x).all()
    assert (le_curve(x, -0.5) < x).all()


def test_gradcheck_single_and_iterative():
    x = _rand(2, 3, 3, 4, low=0.05, high=0.95, seed=20, dtype=torch.float64).requires_grad_()
    alpha = _rand(2, 1, 3, 4, low=-1, high=1, seed=21, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(le_curve, (x, alpha))
    assert torch.autograd.gradcheck(lambda a, b: le_curve_iterative(a, b, n_iter=3), (x, alpha))
    stack = _rand(2, 2 * 3, 1, 1, low=-1, high=1, seed=22, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(le_curve_iterative, (x, stack))


def test_gradients_finite_and_known():
    x = torch.full((1, 1, 2, 2), 0.25, requires_grad=True)
    alpha = torch.full((1, 1, 1, 1), 0.5, requires_grad=True)
    le_curve(x, alpha).sum().backward()
    # d/dalpha = sum x (1 - x) = 4 * 0.1875; d/dx = 1 + alpha (1 - 2x) = 1.25
    assert alpha.grad.item() == pytest.approx(0.75)
    torch.testing.assert_close(x.grad, torch.full_like(x, 1.25))
    x8 = _rand(2, 3, 8, 8, seed=23).requires_grad_()
    a8 = _rand(2, 24, 8, 8, low=-1, high=1, seed=24).requires_grad_()
    le_curve_iterative(x8, a8).mean().backward()
    assert torch.isfinite(x8.grad).all() and torch.isfinite(a8.grad).all()
    assert a8.grad.abs().sum() > 0


# ---------------------------------------------------------------- upsampled maps (le_curves_upsampled)


@pytest.fixture
def native_kernel():
    """Skip the test when the C kernel is unavailable (checked when the test runs: collecting compiles nothing)."""
    if not native.available():
        pytest.skip(f"native kernel unavailable: {native.unavailable_reason()}")


def torch_path(monkeypatch, *args, **kwargs):
    """le_curves_upsampled with the native kernel switched off (the reference path)."""
    with monkeypatch.context() as patch:
        patch.setenv(native.ENV_SWITCH, "0")
        return le_curves_upsampled(*args, **kwargs)


def interpolated_steps(x, maps, dtype=torch.float64):
    """The definition: each map upsampled by F.interpolate (bilinear, align_corners=False), then a clamped LE step."""
    x = x.to(dtype)
    for alpha in maps:
        up = F.interpolate(alpha.to(dtype), size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = le_curve(x, up).clamp(0, 1)
    return x


def random_maps(b, c, h, w, steps=8, seed=0):
    return [_rand(b, c, h, w, low=-1, high=1, seed=seed + i) for i in range(steps)]


@pytest.mark.usefixtures("native_kernel")
@pytest.mark.parametrize("size, map_size, map_channels", [((37, 53), (14, 20), 3), ((37, 53), (14, 20), 1),
                                                          ((5, 3), (7, 9), 1), ((61, 1), (2, 1), 3),
                                                          ((1, 1), (1, 1), 3), ((129, 85), (128, 85), 1)])
def test_upsampled_curves_native_equals_torch_path(size, map_size, map_channels, monkeypatch):
    x = _rand(2, 3, *size, seed=1)
    maps = random_maps(2, map_channels, *map_size)
    out = le_curves_upsampled(x, maps)
    reference = torch_path(monkeypatch, x, maps)
    assert out.dtype == torch.float32 and out.shape == x.shape
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-5)
    # and both are the definition (F.interpolate, in float64); the kernel samples the maps in double
    torch.testing.assert_close(out.double(), interpolated_steps(x, maps), rtol=0, atol=1e-6)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.usefixtures("native_kernel")
def test_upsampled_curves_coupled_channels(monkeypatch):
    """ReLLIE's channel coupling acts on the small maps (linear, so it commutes with the upsampling)."""
    x = _rand(1, 3, 41, 29, high=0.4, seed=2)
    maps = [couple_channels(alpha, 0.9) for alpha in random_maps(1, 3, 11, 8, steps=6, seed=3)]
    out = le_curves_upsampled(x, maps)
    torch.testing.assert_close(out, torch_path(monkeypatch, x, maps), rtol=0, atol=1e-5)
    assert not torch.allclose(out[:, 0], out[:, 2])  # the channels keep their own alphas


@pytest.mark.parametrize("use_native", [True, False])
def test_upsampled_curves_in_bands_equal_the_whole_image(use_native, monkeypatch):
    if use_native and not native.available():
        pytest.skip(f"native kernel unavailable: {native.unavailable_reason()}")
    monkeypatch.setenv(native.ENV_SWITCH, "1" if use_native else "0")
    x = _rand(1, 3, 23, 17, seed=4)
    maps = random_maps(1, 1, 6, 5, steps=3, seed=5)
    whole = le_curves_upsampled(x, maps)
    banded = torch.empty_like(x)
    for top in range(0, 23, 5):
        rows = slice(top, min(23, top + 5))
        le_curves_upsampled(x[..., rows, :], maps, top=top, height=23, out=banded[..., rows, :])
    assert torch.equal(banded, whole)


@pytest.mark.parametrize("use_native", [True, False])
@pytest.mark.parametrize("dtype, scale", [(np.uint8, 255), (np.uint16, 65535)])
def test_upsampled_curves_integer_samples_in_and_out(use_native, dtype, scale, monkeypatch):
    """(H, W, 3) integer arrays as permuted views: samples / scale in, round(scale * v) out (save_image's rule)."""
    if use_native and not native.available():
        pytest.skip(f"native kernel unavailable: {native.unavailable_reason()}")
    monkeypatch.setenv(native.ENV_SWITCH, "1" if use_native else "0")
    rng = np.random.default_rng(6)
    samples = (rng.random((19, 31, 3)) * 0.3 * scale).astype(dtype)
    maps = random_maps(1, 3, 4, 7, steps=4, seed=7)
    as_batch = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None]  # noqa: E731
    floats = le_curves_upsampled(as_batch(samples.astype(np.float32) / np.float32(scale)), maps)
    out = np.empty_like(samples)
    assert le_curves_upsampled(as_batch(samples), maps, out=as_batch(out)).data_ptr() == out.ctypes.data
    expected = np.rint(floats[0].permute(1, 2, 0).numpy() * np.float32(scale)).astype(dtype)
    assert np.abs(out.astype(np.int64) - expected).max() <= 1  # a value within 1e-7 of a rounding tie may differ
    assert (out != expected).mean() < 1e-3
    # in place, and float out from integer samples
    inplace = samples.copy()
    le_curves_upsampled(as_batch(inplace), maps, out=as_batch(inplace))
    assert np.array_equal(inplace, out)
    torch.testing.assert_close(le_curves_upsampled(as_batch(samples), maps), floats, rtol=0, atol=1e-6)


@pytest.mark.usefixtures("native_kernel")
def test_upsampled_curves_gain_takes_the_torch_path(monkeypatch):
    """The product of le_gain over the steps is computed by the torch path, with the same image."""
    from rlenhance.ops import le_gain

    x = _rand(1, 3, 9, 13, high=0.5, seed=8)
    maps = random_maps(1, 1, 3, 4, steps=3, seed=9)
    gain = torch.empty_like(x)
    out = le_curves_upsampled(x, maps, gain=gain)
    expected_gain, current = torch.ones_like(x), x
    for alpha in maps:
        up = F.interpolate(alpha, size=(9, 13), mode="bilinear", align_corners=False)
        expected_gain = expected_gain * le_gain(current, up)
        current = le_curve(current, up).clamp(0, 1)
    torch.testing.assert_close(gain, expected_gain, rtol=0, atol=1e-5)
    torch.testing.assert_close(out, le_curves_upsampled(x, maps), rtol=0, atol=1e-5)


def test_upsampled_curves_known_value_and_no_maps():
    x = torch.full((1, 3, 4, 6), 0.25)
    alpha = torch.tensor([[[[0.0, 1.0]]]])
    y = le_curves_upsampled(x, [alpha, alpha])
    assert y[0, 0, 0, 0].item() == 0.25  # alpha 0 at the left border
    assert y[0, 0, 0, -1].item() == pytest.approx(0.68359375)  # alpha 1 twice: 0.25 -> 0.4375 -> 0.68359375
    unchanged = le_curves_upsampled(x, [])
    assert torch.equal(unchanged, x) and unchanged.data_ptr() != x.data_ptr()


def test_upsampled_curves_reject_bad_arguments():
    x = _rand(1, 3, 8, 8, seed=10)
    alpha = _rand(1, 1, 2, 2, seed=11)
    with pytest.raises(ImageError, match="uint8 or uint16"):
        le_curves_upsampled(x.to(torch.int32), [alpha])
    with pytest.raises(ImageError, match="B, C, H, W"):
        le_curves_upsampled(x[0], [alpha])
    with pytest.raises(ValueError, match="alpha map 1"):
        le_curves_upsampled(x, [alpha, _rand(1, 2, 2, 2, seed=12)])
    with pytest.raises(ValueError, match="alpha map 0"):
        le_curves_upsampled(x, [alpha[0]])
    with pytest.raises(ValueError, match="height"):
        le_curves_upsampled(x, [alpha], top=4, height=10)
    with pytest.raises(ValueError, match="out must be"):
        le_curves_upsampled(x, [alpha], out=torch.empty(1, 3, 8, 7))
    with pytest.raises(ValueError, match="gain must be"):
        le_curves_upsampled(x, [alpha], gain=torch.empty(1, 3, 8, 8, dtype=torch.uint8))


# ---------------------------------------------------------------- le_gain: how much each step brightens
def test_le_gain_times_the_input_is_the_curve_and_its_product_is_the_total_brightening():
    from rlenhance.ops import le_gain

    x0 = _rand(2, 3, 5, 7, low=0.01, high=1.0)
    alphas = [_rand(2, 3, 5, 7, low=-1.0, high=1.0, seed=s) for s in (1, 2, 3)]
    x, gain = x0, torch.ones_like(x0)
    for a in alphas:
        assert torch.allclose(x * le_gain(x, a), le_curve(x, a), atol=1e-6)
        gain, x = gain * le_gain(x, a), le_curve(x, a)
    torch.testing.assert_close(gain, x / x0, rtol=1e-5, atol=1e-6)  # enhanced / input


def test_le_gain_is_defined_at_black_and_checks_like_le_curve():
    from rlenhance.ops import le_gain

    assert le_gain(torch.zeros(1, 1, 1, 1), 0.6).item() == pytest.approx(1.6)  # the limit of LE(x) / x at 0
    assert le_gain(torch.ones(1, 1, 1, 1), 0.6).item() == 1.0  # white is not brightened
    assert le_gain(torch.full((1, 3, 2, 2), 0.5), torch.tensor([0.0, 1.0, -1.0]).view(1, 3, 1, 1)).flatten()[::4] \
        .tolist() == [1.0, 1.5, 0.5]
    with pytest.raises(ValueError, match="does not fit x"):
        le_gain(torch.rand(1, 3, 4, 4), torch.rand(1, 2, 4, 4))
    with pytest.raises(ImageError, match="floating-point"):
        le_gain(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), 0.5)


def test_cap_mean_cuts_only_the_steps_that_would_end_above_the_limit():
    x = _rand(4, 3, 12, 10, high=0.6, seed=1)
    alpha = _rand(4, 1, 12, 10, seed=2)  # brightening, per pixel
    start, full = x.mean(dim=(1, 2, 3)), le_curve(x, alpha).mean(dim=(1, 2, 3))
    limit = torch.stack([start[0] - 0.05, (start[1] + full[1]) / 2, full[2] + 0.01, full[3]])
    capped = cap_mean(x, alpha, limit)
    after = le_curve(x, capped).mean(dim=(1, 2, 3))
    assert after[0] == pytest.approx(float(start[0]))  # already above the limit: no step at all
    assert after[1] == pytest.approx(float(limit[1]), abs=1e-6)  # cut to end exactly at the limit
    assert torch.equal(capped[2], alpha[2])  # ends below the limit: unchanged
    assert torch.allclose(capped[3], alpha[3], rtol=1e-5, atol=0)  # ends at it: unchanged up to rounding
    # the cut keeps the step's shape: one factor per image
    ratio = capped[1] / alpha[1]
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), atol=1e-6) and 0 < float(ratio.flatten()[0]) < 1


def test_cap_mean_leaves_darkening_steps_and_takes_float_limits_and_channel_alphas():
    x = _rand(2, 3, 8, 8, low=0.5, high=0.9, seed=3)
    darken = -_rand(2, 3, 8, 8, seed=4)
    assert torch.equal(cap_mean(x, darken, 0.1), darken)  # above the limit, but the step lowers the mean
    alpha = _rand(2, 3, 1, 1, seed=5)  # per image and channel
    capped = cap_mean(x, alpha, 0.72)
    assert capped.shape == (2, 3, 1, 1)
    assert torch.all(le_curve(x, capped).mean(dim=(1, 2, 3)) <= 0.72 + 1e-6)
    with pytest.raises(ValueError, match="does not fit"):
        cap_mean(x, torch.ones(2, 3, 9, 9), 0.5)


@pytest.mark.parametrize("limit, match", [(torch.full((3,), 0.5), r"limit of shape \(3,\) does not fit"),
                                          (torch.full((2, 1), 0.5), r"limit of shape \(2, 1\) does not fit"),
                                          (torch.tensor([0.5, float("nan")]), "NaN"),
                                          (float("nan"), "limit must be a number"), ("0.5", "limit must be"),
                                          (True, "limit must be")])
def test_cap_mean_refuses_a_limit_of_the_wrong_shape_or_nan(limit, match):
    with pytest.raises(ValueError, match=match):
        cap_mean(torch.full((2, 3, 4, 4), 0.3), torch.ones(2, 1, 4, 4), limit)


def test_cap_mean_takes_a_scalar_tensor_limit_and_numpy_numbers():
    x, alpha = torch.full((2, 3, 4, 4), 0.3), torch.ones(2, 1, 4, 4)
    for limit in (torch.tensor(0.4), np.float32(0.4), 0.4):
        assert torch.allclose(le_curve(x, cap_mean(x, alpha, limit)).mean(dim=(1, 2, 3)), torch.full((2,), 0.4))


def test_le_step_equals_the_unconditional_cap_on_a_mixed_batch():
    """Only one image of three passes its limit: le_step's test-first path gives what cap_mean always
    applied gives, and no limit is le_curve itself."""
    x = torch.stack([torch.full((3, 6, 6), v) for v in (0.1, 0.4, 0.2)])
    alpha = _rand(3, 1, 6, 6, seed=7)
    limit = torch.tensor([0.5, 0.45, 0.9])  # only the second image's full step ends above its limit
    full = le_curve(x, alpha).mean(dim=(1, 2, 3))
    assert (full > limit).tolist() == [False, True, False]
    applied, stepped = le_step(x, alpha, limit)
    want = cap_mean(x, alpha, limit)
    assert torch.allclose(applied, want, rtol=1e-6, atol=0) and torch.allclose(stepped, le_curve(x, want))
    assert stepped[1].mean() == pytest.approx(0.45, abs=1e-6)
    low_limits = torch.tensor([0.9, 0.9, 0.9])  # none binds: the same alpha, untouched
    assert le_step(x, alpha, low_limits)[0] is alpha
    assert le_step(x, alpha)[0] is alpha and torch.equal(le_step(x, alpha)[1], le_curve(x, alpha))
    with pytest.raises(ValueError, match="limit of shape"):  # checked even where the cap would not bind
        le_step(x, alpha, torch.full((2,), 0.9))


def test_check_max_overshoot_is_one_rule_with_inf_as_no_cap_only_where_asked():
    assert check_max_overshoot(None) is None and check_max_overshoot(0) == 0.0
    assert check_max_overshoot(np.float32(0.25)) == 0.25 and isinstance(check_max_overshoot(np.float32(0.25)), float)
    assert check_max_overshoot(math.inf, inf_means_none=True) is None
    for bad in (-0.01, 1.0, 1.5, math.inf, -math.inf, math.nan, True, "0.1"):
        with pytest.raises(ValueError, match=r"--cap: expected a number with 0 <= --cap < 1.*got"):
            check_max_overshoot(bad, "--cap")
    with pytest.raises(ValueError, match=r"inf \(no cap\)"):  # the accepted values say what inf means
        check_max_overshoot(-math.inf, inf_means_none=True)
    assert overshoot_limit(0.4, None) is None and overshoot_limit(0.4, 0.05) == pytest.approx(0.45)
    assert torch.allclose(overshoot_limit(torch.tensor([0.3, 0.6]), 0.1), torch.tensor([0.4, 0.7]))


def test_a_weighted_cap_holds_the_target_tighter_as_the_exposure_weight_grows():
    """The cap is the overshoot whose penalty w * o^2 equals the reference weight's: 4x the weight, half the cap."""
    assert overshoot_limit(0.4, 0.04, 300.0, 300.0) == pytest.approx(0.44)  # at the reference weight: the cap
    assert overshoot_limit(0.4, 0.04, 1200.0, 300.0) == pytest.approx(0.42)
    assert overshoot_limit(0.4, 0.04, 75.0, 300.0) == pytest.approx(0.48)
    limits = overshoot_limit(torch.tensor([0.3, 0.6]), 0.04, torch.tensor([300.0, 1200.0]), 300.0)  # per row
    assert torch.allclose(limits, torch.tensor([0.34, 0.62]))
    for w in (30.0, 300.0, 3000.0):  # the penalty at the cap is the reference's
        overshoot = overshoot_limit(0.0, 0.04, w, 300.0)
        assert w * overshoot ** 2 == pytest.approx(300.0 * 0.04 ** 2)
    assert overshoot_limit(0.4, None, 1200.0, 300.0) is None  # no cap stays none
    for w, reference in ((1200.0, None), (None, 300.0)):
        with pytest.raises(ValueError, match="give both w_exposure and reference_w_exposure"):
            overshoot_limit(0.4, 0.04, w, reference)
