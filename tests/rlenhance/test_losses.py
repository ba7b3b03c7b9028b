"""Tests for rlenhance.losses: known values, direct-loop references, maps, gradients, module."""

import itertools
import math

import numpy as np
import pytest
import torch

from rlenhance.errors import ImageError
from rlenhance.losses import (
    NonReferenceLoss,
    color_constancy_loss,
    exposure_loss,
    illumination_smoothness_loss,
    l1_loss,
    mse_loss,
    nonreference_loss,
    spatial_consistency_loss,
    ssim_loss,
)
from rlenhance.metrics import ssim


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _assert_map_mean(values, loss_map, shape):
    assert values.shape == (shape[0],)
    assert loss_map.shape == (shape[0], 1) + tuple(shape[-2:])
    np.testing.assert_allclose(
        values.detach().numpy(), loss_map.detach().mean(dim=(1, 2, 3)).numpy(), rtol=1e-5, atol=1e-7
    )


def _patch_grid(height, width, size):
    """(row slice, col slice) of every size x size patch, partial ones at the bottom/right."""
    for top in range(0, height, size):
        for left in range(0, width, size):
            yield slice(top, min(top + size, height)), slice(left, min(left + size, width))


# ---------------------------------------------------------------- exposure


def test_exposure_constant_images():
    at_target = torch.full((2, 3, 32, 32), 0.6)
    assert torch.allclose(exposure_loss(at_target, target=0.6), torch.zeros(2), atol=1e-12)
    dark = torch.full((1, 3, 20, 20), 0.1)
    assert exposure_loss(dark, target=0.6).item() == pytest.approx(0.25, abs=1e-6)
    assert exposure_loss(dark, target=0.3).item() == pytest.approx(0.04, abs=1e-6)


def test_exposure_over_weighs_only_patches_brighter_than_the_target():
    x = torch.cat([torch.full((1, 3, 8, 8), 0.2), torch.full((1, 3, 8, 8), 0.9)], dim=-1)  # dark | bright
    _, symmetric = exposure_loss(x, target=0.5, patch_size=8, return_map=True)
    _, weighted = exposure_loss(x, target=0.5, patch_size=8, over=3.0, return_map=True)
    assert torch.allclose(weighted[..., :8], symmetric[..., :8])  # 0.3 below the target: unchanged
    assert torch.allclose(weighted[..., 8:], 4.0 * symmetric[..., 8:])  # 0.4 above it: 1 + over times
    assert exposure_loss(x, target=0.5, patch_size=16, over=3.0).item() == pytest.approx(4 * 0.05 ** 2, rel=1e-4)
    for over in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="over"):
            exposure_loss(x, over=over)


def test_exposure_divisible_is_zero_dce_patch_mean():
    x = _rand(2, 3, 32, 48)
    gray = x.mean(dim=1)  # (B, H, W)
    patches = gray.reshape(2, 2, 16, 3, 16).mean(dim=(2, 4))  # Zero-DCE: AvgPool2d(16)
    expected = (patches - 0.6).pow(2).mean(dim=(1, 2))
    np.testing.assert_allclose(exposure_loss(x).numpy(), expected.numpy(), rtol=1e-5)


def test_exposure_non_divisible_matches_loop():
    x = _rand(1, 3, 21, 13, seed=1)
    gray = x[0].mean(dim=0).numpy().astype(np.float64)
    total = 0.0
    for rows, cols in _patch_grid(21, 13, 8):
        patch = gray[rows, cols]
        total += (patch.mean() - 0.5) ** 2 * patch.size  # partial patches weigh by size
    values, loss_map = exposure_loss(x, target=0.5, patch_size=8, return_map=True)
    assert values.item() == pytest.approx(total / gray.size, rel=1e-5)
    _assert_map_mean(values, loss_map, x.shape)
    # The map is constant on each patch and equals that patch's error.
    rows, cols = next(iter(_patch_grid(21, 13, 8)))
    assert torch.allclose(loss_map[0, 0, rows, cols], loss_map[0, 0, 0, 0].expand(8, 8))
    last = loss_map[0, 0, 16:, 8:]
    assert last.shape == (5, 5)
    assert last.max().item() == pytest.approx((gray[16:, 8:].mean() - 0.5) ** 2, rel=1e-5)


# ---------------------------------------------------------------- colour constancy


def _zero_dce_color(x):
    """Zero-DCE's released L_color, written out."""
    mr, mg, mb = x.mean(dim=(2, 3)).unbind(1)
    drg, drb, dgb = (mr - mg) ** 2, (mr - mb) ** 2, (mb - mg) ** 2
    return torch.sqrt(drg**2 + drb**2 + dgb**2)


def test_color_gray_image_is_zero_with_finite_gradient():
    gray = _rand(2, 1, 16, 16).expand(2, 3, 16, 16).clone().requires_grad_(True)
    values, loss_map = color_constancy_loss(gray, return_map=True)
    assert torch.equal(values, torch.zeros(2))
    assert torch.equal(loss_map, torch.zeros(2, 1, 16, 16))
    values.sum().backward()
    assert torch.isfinite(gray.grad).all()


def test_color_known_value_and_uniform_map():
    x = torch.tensor([0.5, 0.3, 0.2]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    expected = math.sqrt(0.04**2 + 0.09**2 + 0.01**2)
    values, loss_map = color_constancy_loss(x, return_map=True)
    assert values.item() == pytest.approx(expected, rel=1e-5)
    # A uniformly coloured image: every pixel carries the whole cast.
    np.testing.assert_allclose(loss_map.numpy(), expected, rtol=1e-5)


def test_color_matches_zero_dce_and_map_mean():
    x = _rand(3, 3, 24, 20, seed=2) * torch.tensor([1.0, 0.7, 0.4]).view(1, 3, 1, 1)
    values, loss_map = color_constancy_loss(x, return_map=True)
    np.testing.assert_allclose(values.numpy(), _zero_dce_color(x).numpy(), rtol=1e-5)
    _assert_map_mean(values, loss_map, x.shape)
    # Pixels that push along the cast (more red than blue) score above pixels that oppose it.
    reddish = (x[:, 0] - x[:, 2]) > 0.6
    bluish = (x[:, 2] - x[:, 0]) > 0.1
    assert loss_map[:, 0][reddish].mean() > loss_map[:, 0][bluish].mean()


def test_color_general_channel_count_uses_all_pairs():
    x = _rand(1, 4, 8, 8, seed=3)
    means = x.mean(dim=(2, 3))[0]
    expected = math.sqrt(
        sum(float(means[p] - means[q]) ** 4 for p, q in itertools.combinations(range(4), 2))
    )
    assert color_constancy_loss(x).item() == pytest.approx(expected, rel=1e-5)


def test_color_single_channel_is_zero():
    x = _rand(2, 1, 8, 8).requires_grad_(True)
    values, loss_map = color_constancy_loss(x, return_map=True)
    assert torch.equal(values, torch.zeros(2)) and loss_map.shape == (2, 1, 8, 8)
    assert not loss_map.any()
    values.sum().backward()  # stays in the graph, with a zero gradient
    assert torch.equal(x.grad, torch.zeros_like(x))


# ---------------------------------------------------------------- spatial consistency


def _spatial_reference(enhanced, original, size):
    """Direct loop over regions and their 4 neighbours, pixel-weighted mean (numpy float64)."""
    y_img = enhanced.mean(axis=0)
    i_img = original.mean(axis=0)
    height, width = y_img.shape
    n_rows, n_cols = -(-height // size), -(-width // size)
    y = np.zeros((n_rows, n_cols))
    i = np.zeros((n_rows, n_cols))
    counts = np.zeros((n_rows, n_cols))
    for r in range(n_rows):
        for c in range(n_cols):
            rows = slice(r * size, min((r + 1) * size, height))
            cols = slice(c * size, min((c + 1) * size, width))
            y[r, c], i[r, c] = y_img[rows, cols].mean(), i_img[rows, cols].mean()
            counts[r, c] = y_img[rows, cols].size
    total = 0.0
    for r in range(n_rows):
        for c in range(n_cols):
            e = 0.0
            for dr, dc in ((0, -1), (0, 1), (-1, 0), (1, 0)):
                rr, cc = r + dr, c + dc
                if 0 <= rr < n_rows and 0 <= cc < n_cols:
                    e += (abs(y[r, c] - y[rr, cc]) - abs(i[r, c] - i[rr, cc])) ** 2
            total += e * counts[r, c]
    return total / (height * width)


def test_spatial_identical_and_brightness_shift_are_zero():
    x = _rand(2, 3, 16, 16)
    assert torch.allclose(spatial_consistency_loss(x, x), torch.zeros(2), atol=1e-12)
    # A uniform brightness offset keeps every neighbour difference.
    assert torch.allclose(spatial_consistency_loss(x + 0.2, x), torch.zeros(2), atol=1e-10)
    assert (spatial_consistency_loss(2 * x, x) > 0).all()


def test_spatial_hand_computed_step():
    original = torch.zeros(1, 1, 1, 3)
    enhanced = torch.tensor([0.0, 0.0, 0.5]).view(1, 1, 1, 3)
    # Regions (pixels) 0,1,2: pairs (0,1) differ by 0, (1,2) by 0.5 -> E = [0, 0.25, 0.25].
    values, loss_map = spatial_consistency_loss(enhanced, original, region_size=1, return_map=True)
    assert torch.allclose(loss_map.flatten(), torch.tensor([0.0, 0.25, 0.25]))
    assert values.item() == pytest.approx(0.5 / 3, rel=1e-6)


@pytest.mark.parametrize("shape", [(16, 24), (18, 13)])
def test_spatial_matches_loop(shape):
    original = _rand(2, 3, *shape, seed=4) * 0.3
    enhanced = (original * 2.5 + 0.1 * _rand(2, 3, *shape, seed=5)).clamp(0, 1)
    values, loss_map = spatial_consistency_loss(enhanced, original, return_map=True)
    for b in range(2):
        expected = _spatial_reference(
            enhanced[b].double().numpy(), original[b].double().numpy(), 4
        )
        assert values[b].item() == pytest.approx(expected, rel=1e-4)
    _assert_map_mean(values, loss_map, enhanced.shape)


# ---------------------------------------------------------------- illumination smoothness


def _zero_dce_tv(x):
    """Zero-DCE's released L_TV (TVLoss_weight = 1), on a batch of one."""
    h, w = x.shape[2], x.shape[3]
    h_tv = (x[:, :, 1:, :] - x[:, :, : h - 1, :]).pow(2).sum()
    w_tv = (x[:, :, :, 1:] - x[:, :, :, : w - 1]).pow(2).sum()
    return 2 * (h_tv / ((h - 1) * w) + w_tv / (h * (w - 1))) / x.shape[0]


def test_smoothness_constant_alpha_is_zero():
    alpha = torch.full((2, 24, 8, 8), 0.3)
    values, loss_map = illumination_smoothness_loss(alpha, return_map=True)
    assert torch.equal(values, torch.zeros(2)) and not loss_map.any()


def test_smoothness_matches_zero_dce_and_map_mean():
    alpha = _rand(2, 6, 10, 7, seed=6) * 2 - 1
    values, loss_map = illumination_smoothness_loss(alpha, return_map=True)
    for b in range(2):
        assert values[b].item() == pytest.approx(_zero_dce_tv(alpha[b : b + 1]).item(), rel=1e-5)
    _assert_map_mean(values, loss_map, alpha.shape)


def test_smoothness_hand_computed():
    # One channel [[0, 0], [1, 0]]: vertical diffs (1, 0) per column, horizontal (0, -1) per row.
    alpha = torch.tensor([[0.0, 0.0], [1.0, 0.0]]).view(1, 1, 2, 2)
    # h_tv = 1 over (H-1)W = 2 entries, w_tv = 1 over H(W-1) = 2 entries -> 2 * (0.5 + 0.5) = 2.
    assert illumination_smoothness_loss(alpha).item() == pytest.approx(2.0)
    single_row = torch.tensor([0.0, 1.0, 3.0]).view(1, 1, 1, 3)  # no vertical term
    assert illumination_smoothness_loss(single_row).item() == pytest.approx(2 * (1 + 4) / 2)


def test_smoothness_power_one_sums_absolute_differences_whose_pull_does_not_fade():
    alpha = torch.tensor([[0.0, 0.0], [1.0, 0.0]]).view(1, 1, 2, 2)
    assert illumination_smoothness_loss(alpha, power=1).item() == pytest.approx(2.0)  # |1| = 1^2 here
    single_row = torch.tensor([0.0, 1.0, 3.0]).view(1, 1, 1, 3)
    assert illumination_smoothness_loss(single_row, power=1).item() == pytest.approx(2 * (1 + 2) / 2)
    pulls = {}
    for power in (1, 2):  # the gradient of a nearly flat map: fixed for |d|, vanishing for d^2
        ramp = (torch.linspace(0, 1, 8).view(1, 1, 1, 8) * 1e-3).requires_grad_(True)
        illumination_smoothness_loss(ramp, power=power).sum().backward()
        pulls[power] = float(ramp.grad.abs().max())
    assert pulls[1] > 100 * pulls[2]
    with pytest.raises(ValueError, match="power must be 1 or 2"):
        illumination_smoothness_loss(alpha, power=3)


# ---------------------------------------------------------------- combined non-reference loss


def test_nonreference_is_weighted_sum_and_module_matches():
    original = _rand(2, 3, 32, 32, seed=7) * 0.3
    enhanced = (original * 2).clamp(0, 1)
    alpha = _rand(2, 3, 32, 32, seed=8)
    weights = dict(w_exposure=3.0, w_color=2.0, w_spatial=0.5, w_smooth=7.0)
    expected = (
        3.0 * exposure_loss(enhanced, target=0.5, patch_size=8)
        + 2.0 * color_constancy_loss(enhanced)
        + 0.5 * spatial_consistency_loss(enhanced, original, region_size=2)
        + 7.0 * illumination_smoothness_loss(alpha)
    )
    kw = dict(exposure_target=0.5, patch_size=8, region_size=2)
    got = nonreference_loss(enhanced, original, alpha, **weights, **kw)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5)
    module = NonReferenceLoss(**weights, **kw)
    np.testing.assert_allclose(module(enhanced, original, alpha).numpy(), got.numpy(), rtol=1e-6)
    m_values, m_map = module(enhanced, original, alpha, return_map=True)
    f_values, f_map = nonreference_loss(enhanced, original, alpha, **weights, **kw, return_map=True)
    assert torch.allclose(m_map, f_map) and torch.allclose(m_values, f_values)
    _assert_map_mean(f_values, f_map, enhanced.shape)
    # Without alpha the smoothness term is skipped.
    no_alpha = nonreference_loss(enhanced, original, **weights, **kw)
    np.testing.assert_allclose(
        no_alpha.numpy(), (expected - 7.0 * illumination_smoothness_loss(alpha)).numpy(), rtol=1e-5
    )


def test_nonreference_defaults_are_zero_dce_weights():
    original = _rand(1, 3, 32, 32, seed=9) * 0.3
    enhanced = original.sqrt()
    alpha = _rand(1, 24, 32, 32, seed=10)
    expected = (
        10 * exposure_loss(enhanced, target=0.6, patch_size=16)
        + 5 * color_constancy_loss(enhanced)
        + 1 * spatial_consistency_loss(enhanced, original, region_size=4)
        + 200 * illumination_smoothness_loss(alpha)
    )
    assert nonreference_loss(enhanced, original, alpha).item() == pytest.approx(expected.item())


def test_nonreference_low_resolution_alpha_map():
    original = _rand(1, 3, 16, 16, seed=11) * 0.3
    alpha = _rand(1, 3, 4, 8, seed=12)
    values, loss_map = nonreference_loss(original * 2, original, alpha, return_map=True)
    _assert_map_mean(values, loss_map, original.shape)
    with pytest.raises(ImageError, match="alpha"):
        nonreference_loss(original, original, _rand(1, 3, 5, 5), return_map=True)
    with pytest.raises(ImageError, match="alpha"):
        nonreference_loss(original, original, _rand(2, 3, 16, 16))


@pytest.mark.parametrize("name", ["w_exposure", "w_color", "w_spatial", "w_smooth"])
def test_negative_weight_raises_naming_it(name):
    x = _rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match=name):
        nonreference_loss(x, x, **{name: -1.0})
    with pytest.raises(ValueError, match=name):
        NonReferenceLoss(**{name: -0.5})


def test_nonreference_gradients_flow():
    original = _rand(2, 3, 32, 32, seed=13) * 0.3
    alpha = (_rand(2, 3, 32, 32, seed=14) * 0.5).requires_grad_(True)
    enhanced = original + alpha * original * (1 - original)  # the LE curve
    values, loss_map = nonreference_loss(enhanced, original, alpha, return_map=True)
    (values.sum() + loss_map.sum()).backward()
    assert torch.isfinite(alpha.grad).all() and alpha.grad.abs().sum() > 0


def test_nonreference_per_image_semantics():
    a = _rand(1, 3, 32, 32, seed=15) * 0.2
    b = _rand(1, 3, 32, 32, seed=16) * torch.tensor([0.9, 0.5, 0.2]).view(1, 3, 1, 1)
    batch = nonreference_loss(torch.cat([a * 3, b]), torch.cat([a, b * 0.5]))
    singles = torch.cat([nonreference_loss(a[0] * 3, a[0]), nonreference_loss(b[0], b[0] * 0.5)])
    np.testing.assert_allclose(batch.numpy(), singles.numpy(), rtol=1e-6)
    assert abs(batch[0] - batch[1]) > 1e-3


def test_individual_losses_per_image_and_gradients():
    x = _rand(2, 3, 24, 24, seed=17).requires_grad_(True)
    y = _rand(2, 3, 24, 24, seed=18)
    cases = [
        lambda t, r: exposure_loss(t, patch_size=8),
        lambda t, r: color_constancy_loss(t),
        lambda t, r: spatial_consistency_loss(t, r),
        lambda t, r: illumination_smoothness_loss(t),
        lambda t, r: ssim_loss(t, r),
        lambda t, r: mse_loss(t, r),
        lambda t, r: l1_loss(t, r),
    ]
    for loss in cases:
        batch = loss(x, y)
        assert batch.shape == (2,)
        singles = torch.cat([loss(x[i : i + 1], y[i : i + 1]) for i in range(2)])
        np.testing.assert_allclose(batch.detach().numpy(), singles.detach().numpy(), rtol=1e-5)
        x.grad = None
        batch.sum().backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# ---------------------------------------------------------------- reference losses


def test_ssim_loss_reuses_ssim():
    x = _rand(2, 3, 24, 24, seed=19)
    y = (x + 0.1 * _rand(2, 3, 24, 24, seed=20)).clamp(0, 1)
    values, loss_map = ssim_loss(x, y, return_map=True)
    ssim_values, ssim_map = ssim(x, y, return_map=True)
    assert torch.allclose(values, 1 - ssim_values) and torch.allclose(loss_map, 1 - ssim_map)
    assert torch.allclose(values, loss_map[..., 5:-5, 5:-5].mean(dim=(1, 2, 3)), atol=1e-6)
    assert torch.allclose(ssim_loss(x * 255, y * 255, data_range=255.0), values, atol=1e-5)
    assert torch.allclose(ssim_loss(x, x), torch.zeros(2), atol=1e-6)


def test_mse_and_l1_hand_computed():
    x = torch.zeros(2, 3, 2, 2)
    y = torch.zeros(2, 3, 2, 2)
    y[0, 0, 0, 0] = 0.6  # image 0: one channel of one pixel off by 0.6
    y[1] = 0.5  # image 1: everything off by 0.5
    mse, mse_map = mse_loss(x, y, return_map=True)
    l1, l1_map = l1_loss(x, y, return_map=True)
    np.testing.assert_allclose(mse.numpy(), [0.36 / 12, 0.25], rtol=1e-6)
    np.testing.assert_allclose(l1.numpy(), [0.6 / 12, 0.5], rtol=1e-6)
    assert mse_map[0, 0, 0, 0].item() == pytest.approx(0.36 / 3)
    assert l1_map[0, 0, 0, 0].item() == pytest.approx(0.2)
    _assert_map_mean(mse, mse_map, x.shape)
    _assert_map_mean(l1, l1_map, x.shape)


def test_three_dim_input_is_batch_of_one():
    x = _rand(3, 16, 16)
    values, loss_map = exposure_loss(x, return_map=True)
    assert values.shape == (1,) and loss_map.shape == (1, 1, 16, 16)
    assert mse_loss(x, x * 0.5).shape == (1,)


def test_bad_inputs_raise():
    x = _rand(1, 3, 16, 16)
    with pytest.raises(ImageError, match="enhanced and original"):
        spatial_consistency_loss(x, _rand(1, 3, 16, 8))
    with pytest.raises(ImageError, match="floating-point"):
        exposure_loss(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ImageError, match="alpha"):
        illumination_smoothness_loss(torch.rand(4, 4))
    with pytest.raises(ValueError, match="patch_size"):
        exposure_loss(x, patch_size=0)
    with pytest.raises(ValueError, match="region_size"):
        NonReferenceLoss(region_size=2.5)
