"""The torch filter bank against OpenCV on the same float32 input, borders included.

Tolerances (max abs error, float32 images in [0, 1]); observed errors are about 5x smaller:
    Gaussian, box:  1e-6      (float rounding of separable sums)
    median:         0         (exact: both pick one of the input values)
    bilateral:      2e-6      (same disc support, L1 colour distance and interpolated lookup
                               table as OpenCV's generic float path; where the table's
                               interpolation error is < 2.5e-6 in weight, e.g. sigma_color 0.1
                               and 1, the exact Gaussian, as OpenCV's IPP HAL, is used: the two
                               differ by < 1e-6 even in a worst case, see the tests at the end)
    +-1/255, keep:  1e-7

The per-pixel choice computed only where chosen (pixelrl_filter_select, filters_at) is held to
the same OpenCV tolerances, and to the full bank followed by select_per_pixel: the same values
(0 tolerance) except the bilateral filter, whose tap sums are ordered differently (1e-6).
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
    _sorting,
    _workspace,
    bank,
    bilateral,
    bilateral_filter2d,
    box_blur2d,
    gaussian_blur2d,
    gaussian_kernel1d,
    median_blur2d,
    pixelrl_filter_bank,
    select_per_pixel,
    sparse,
)
from rlenhance.ops import median as median_module

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


# ---------------------------------------------------------------- comparator networks behind the median


def _apply_network(network, values):
    """Reference evaluation of comparators (i, j): wire i gets the min, wire j the max."""
    v = list(values)
    for i, j in network:
        v[i], v[j] = np.minimum(v[i], v[j]), np.maximum(v[i], v[j])
    return np.stack(v)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 9, 13, 25, 33])
def test_sorting_network_sorts(n):
    rng = np.random.default_rng(n)
    x = rng.random((n, 200))
    x[:, :50] = np.round(x[:, :50] * 3)  # ties
    np.testing.assert_array_equal(_apply_network(_sorting._sorting_network(n), x), np.sort(x, axis=0))
    if n <= 13:  # 0-1 principle: a network sorts every input iff it sorts every 0/1 input
        bits = ((np.arange(2 ** n)[None, :] >> np.arange(n)[:, None]) & 1).astype(np.int8)
        np.testing.assert_array_equal(_apply_network(_sorting._sorting_network(n), bits), np.sort(bits, axis=0))


@pytest.mark.parametrize("a, b", [(1, 1), (1, 4), (4, 1), (3, 5), (5, 5), (6, 5), (7, 2), (10, 10), (12, 9)])
def test_merging_network_merges_sorted_runs(a, b):
    rng = np.random.default_rng(a * 100 + b)
    x = np.concatenate([np.sort(rng.integers(0, 6, (a, 300)), axis=0), np.sort(rng.integers(0, 6, (b, 300)), axis=0)])
    np.testing.assert_array_equal(_apply_network(_sorting._merging_network(a, b), x), np.sort(x, axis=0))
    runs = [a, b, a]
    x = np.concatenate([np.sort(rng.random((m, 100)), axis=0) for m in runs])
    np.testing.assert_array_equal(_apply_network(_sorting._tree_merging_network(runs), x), np.sort(x, axis=0))


@pytest.mark.parametrize("n", [9, 25, 30])
def test_pruned_compiled_network_selects_the_median(n):
    """Pruning to the middle output wire and compiling to min/max ops on buffers keeps the median."""
    pruned, _ = _sorting._prune(_sorting._sorting_network(n), [n // 2])
    assert len(pruned) < len(_sorting._sorting_network(n))
    assert not all(need_min and need_max for _, _, need_min, need_max in pruned)  # one-sided comparators
    program = _sorting._compile(pruned, n, [n // 2])
    rng = np.random.default_rng(n)
    x = torch.from_numpy(np.round(rng.random((n, 1000)) * 10))
    slots = [torch.empty(1000, dtype=x.dtype) for _ in range(program.n_slots)]
    (median,) = _sorting._run(program, list(x), slots)
    torch.testing.assert_close(median, x.sort(dim=0).values[n // 2], rtol=0, atol=0)


@pytest.mark.parametrize("ksize", [3, 5, 7, 9])
@pytest.mark.parametrize("size", [(1, 1), (2, 3), (6, 9), (7, 4), (9, 12)])
def test_median_matches_numpy_any_size(ksize, size):
    """Even and odd heights (output rows are computed in pairs) and images smaller than the window."""
    x = random_images(2, *size, seed=ksize)
    r = ksize // 2
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (0, 0), (r, r), (r, r)), mode="edge"),
                                                       (ksize, ksize), axis=(2, 3))
    ref = np.median(windows.reshape(*windows.shape[:4], -1), axis=-1)
    np.testing.assert_array_equal(median_blur2d(torch.from_numpy(x), ksize).numpy(), ref)
    np.testing.assert_array_equal(median_blur2d(torch.from_numpy(x).double(), ksize).numpy(), ref)


def test_median_network_is_small():
    """The separable 5x5 network costs fewer min/max passes than a pruned 25-input sorting network."""
    programs = median_module._median_programs(5)
    brute, _ = _sorting._prune(_sorting._sorting_network(25), [12])
    brute_ops = sum(need_min + need_max for _, _, need_min, need_max in brute)
    # rows/final run on full images, pairs/shared on half of the rows
    passes = len(programs[0].steps) + len(programs[3].steps) + (len(programs[1].steps) + len(programs[2].steps)) / 2
    assert passes < brute_ops / 2


# ---------------------------------------------------------------- fused bank == separate ops, pieces, paths


def test_bank_fuses_any_mix_of_actions():
    table = [
        FilterAction("median3", median_blur2d, (("ksize", 3),)),
        FilterAction("gauss3", gaussian_blur2d, (("ksize", 3), ("sigma", 0.7))),
        FilterAction("bil7", bilateral_filter2d, (("d", 7), ("sigma_color", 0.3))),
        FilterAction("bil5", bilateral_filter2d, (("d", 5), ("sigma_color", 0.05), ("sigma_space", 2.0))),
        FilterAction("bil5b", bilateral_filter2d, (("sigma_color", 0.5), ("sigma_space", 2.0))),
        FilterAction("box7", box_blur2d, (("ksize", 7),)),
        FilterAction("neg", lambda x: 1.0 - x),  # not fused: called as is
        FilterAction("plus", PIXELRL_ACTION_TABLE[2].op, [("delta", 0.25)]),  # unhashable params
    ]
    x = torch.from_numpy(structured_images(3, 11, 14))
    cands = pixelrl_filter_bank(x, table)
    for k, action in enumerate(table):
        torch.testing.assert_close(cands[:, k], action(x), rtol=1e-6, atol=1e-7, msg=action.name)
    with pytest.raises(ValueError, match="odd positive int"):
        pixelrl_filter_bank(x, [FilterAction("m", median_blur2d, (("ksize", 4),))])
    with pytest.raises(ValueError, match="sigma_color"):
        pixelrl_filter_bank(x, [FilterAction("b", bilateral_filter2d, (("sigma_color", 0.0),))])


def test_large_batches_are_computed_in_pieces(monkeypatch):
    """A tiny workspace budget splits the work by images and by row bands; results do not change."""
    x = torch.from_numpy(random_images(3, 13, 11, seed=7))
    ref = pixelrl_filter_bank(x)
    ref7 = median_blur2d(x, 7)
    for budget in (1, 3000, 40000):
        monkeypatch.setattr(_workspace, "_WORKSPACE_BYTES", budget)
        # exp2 takes a vectorised or a scalar path depending on the layout: last-ulp differences
        torch.testing.assert_close(pixelrl_filter_bank(x), ref, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(median_blur2d(x, 7), ref7, rtol=0, atol=0)


def test_bilateral_table_and_exact_gaussian_paths_match_opencv(monkeypatch):
    """PixelRL's colour sigmas use the exact Gaussian; forcing OpenCV's interpolated table instead
    must give the same agreement (and vice versa for a small sigma that normally uses the table)."""
    x = np.concatenate([random_images(1, 16, 19, seed=8), structured_images(1, 16, 19)])
    for threshold in (0.0, 1.0):  # all table / all exact Gaussian
        monkeypatch.setattr(bilateral, "_BILATERAL_EXACT_GAUSSIAN_MAX_ERROR", threshold)
        for sigma_color in (0.05, 0.1, 1.0):
            ref = cv2_per_image(lambda a, s=sigma_color: cv2.bilateralFilter(a, 5, s, 5), x)
            out = bilateral_filter2d(torch.from_numpy(x), 5, sigma_color, 5.0).numpy()
            assert_matches(out, ref, ATOL_BILATERAL, f"bilateral sigma_color={sigma_color} threshold={threshold}")


def test_bilateral_exact_gaussian_worst_case(monkeypatch):
    """A lone pixel among 12 equal neighbours, swept over the colour distance, with a value range
    of 1.8 (PixelRL's unclipped noisy images): the table's interpolation error is largest here.
    The exact Gaussian (used by default at sigma_color 0.1) and OpenCV's table agree within
    1.2e-6, and both match OpenCV within the tolerance."""
    deltas = np.linspace(0.0, 0.5, 401, dtype=np.float32)
    x = np.full((len(deltas), 1, 9, 9), 0.5, np.float32)
    x[:, 0, 4, 4] += deltas
    x[:, 0, 0, 0], x[:, 0, 8, 8] = 0.0, 1.8  # value range -> table bin width
    assert (1.8 / 4096 / 0.1) ** 2 / 8 <= bilateral._BILATERAL_EXACT_GAUSSIAN_MAX_ERROR  # default: exact path
    ref = cv2_per_image(lambda a: cv2.bilateralFilter(a, 5, 0.1, 5), x)
    exact = bilateral_filter2d(torch.from_numpy(x), 5, 0.1, 5.0)
    monkeypatch.setattr(bilateral, "_BILATERAL_EXACT_GAUSSIAN_MAX_ERROR", 0.0)
    table = bilateral_filter2d(torch.from_numpy(x), 5, 0.1, 5.0)
    for name, out in (("exact", exact), ("table", table)):
        assert_matches(out.numpy(), ref, ATOL_BILATERAL, f"bilateral worst case, {name}")
    torch.testing.assert_close(exact, table, rtol=0, atol=1.2e-6)


# ---------------------------------------------------------------- per-pixel choice computed only where chosen


def _random_actions(shape, n_actions=9, seed=0):
    return torch.randint(0, n_actions, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("images", ["random", "structured", "tiny"])
def test_select_matches_opencv_per_pixel_choice(channels, images):
    """PixelRL's step: every pixel takes the cv2 result of its own action (np.choose over the nine)."""
    x = {"random": lambda: random_images(channels), "structured": lambda: structured_images(channels),
         "tiny": lambda: random_images(channels, 2, 5, seed=9)}[images]()
    actions = _random_actions((x.shape[0], 1) + x.shape[2:])
    out = bank.pixelrl_filter_select(torch.from_numpy(x), actions).numpy()
    refs = np.stack([cv2_per_image(CV2_PIXELRL[name], x) for name in PIXELRL_ACTIONS])  # (K, B, C, H, W)
    chosen = np.take_along_axis(refs, np.broadcast_to(actions.numpy()[None], (1,) + x.shape), axis=0)[0]
    for k, name in enumerate(PIXELRL_ACTIONS):
        where = np.broadcast_to(actions.numpy() == k, x.shape)
        if where.any():
            err = np.abs(out - chosen)[where].max()
            assert err <= TOLERANCE[name], f"{name} C={channels} {images}: max abs error {err:.3g}"


@pytest.mark.parametrize("shape_kind", ["BHW", "B1HW"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_select_equals_bank_then_select(shape_kind, dtype):
    """Same values as computing the nine candidates and picking (bilateral: float rounding only)."""
    x = torch.from_numpy(np.concatenate([random_images(1, 17, 21, seed=10), structured_images(1, 17, 21)])).to(dtype)
    actions = _random_actions((x.shape[0], 1, 17, 21), seed=1)
    actions = actions[:, 0] if shape_kind == "BHW" else actions
    out = bank.pixelrl_filter_select(x, actions)
    ref = select_per_pixel(pixelrl_filter_bank(x), actions)
    assert out.shape == x.shape and out.dtype == dtype
    full = actions.view(x.shape[0], 1, 17, 21)
    bilateral = (full == 4) | (full == 7)
    torch.testing.assert_close(out[~bilateral], ref[~bilateral], rtol=0, atol=0)
    torch.testing.assert_close(out[bilateral], ref[bilateral], rtol=0, atol=1e-6)


def test_select_single_action_everywhere_equals_the_op():
    x = torch.from_numpy(random_images(3, 12, 15, seed=11))
    for k, action in enumerate(PIXELRL_ACTION_TABLE):
        out = bank.pixelrl_filter_select(x, torch.full((3, 12, 15), k))
        atol = 1e-6 if action.op is bilateral_filter2d else 0.0
        torch.testing.assert_close(out, action(x), rtol=0, atol=atol, msg=action.name)


def test_select_dense_sparse_chunked_and_unpooled_paths_agree(monkeypatch):
    """Whole-batch vs chosen-pixel filters, chunked evaluation and temporaries that do not fit the
    arena only change the speed: the values are the same."""
    x = torch.from_numpy(np.concatenate([random_images(1, 11, 13, seed=12), structured_images(1, 11, 13)]))
    actions = _random_actions((x.shape[0], 11, 13), seed=2)
    ref = bank.pixelrl_filter_select(x, actions)
    bilateral = ((actions == 4) | (actions == 7)).unsqueeze(1)

    def check(what):
        out = bank.pixelrl_filter_select(x, actions)
        torch.testing.assert_close(out[~bilateral], ref[~bilateral], rtol=0, atol=0, msg=what)
        # exp2 takes a vectorised or a scalar path depending on the chunk: last-ulp differences
        torch.testing.assert_close(out[bilateral], ref[bilateral], rtol=0, atol=1e-6, msg=what)

    for fractions in ({"linear": 0.0, "median": 0.0}, {"linear": 2.0, "median": 2.0}):
        monkeypatch.setattr(sparse, "_DENSE_FRACTION", fractions)
        check(f"fractions {fractions}")
    monkeypatch.setattr(sparse, "_SPARSE_CHUNK_BYTES", 2000)  # a few pixels per chunk
    check("chunked")
    monkeypatch.setattr(sparse, "_nbytes", lambda *pieces: 0)  # every temporary a plain allocation
    monkeypatch.setattr(sparse, "_job_bytes", lambda *args: 0)
    check("no arena")


def test_select_bilateral_table_path_matches_opencv():
    """A value range of 2.5 makes sigma_color 0.1 use OpenCV's interpolated table (its weight error
    bound is above the exact-Gaussian threshold), per image, as the dense bank decides it."""
    x = random_images(1, 16, 19, seed=13)
    x[0] = x[0] * 2.5 - 0.75
    assert (2.5 / 4096 / 0.1) ** 2 / 8 > bilateral._BILATERAL_EXACT_GAUSSIAN_MAX_ERROR
    actions = torch.full((3, 1, 16, 19), 4)  # bilateral, sigma_color 0.1
    actions[1, :, ::2] = 7  # and sigma_color 1.0
    out = bank.pixelrl_filter_select(torch.from_numpy(x), actions)
    ref = select_per_pixel(pixelrl_filter_bank(torch.from_numpy(x)), actions)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    for k, sigma in ((4, 0.1), (7, 1.0)):
        cv = cv2_per_image(lambda a, s=sigma: cv2.bilateralFilter(a, 5, s, 5), x)
        where = np.broadcast_to(actions.numpy() == k, x.shape)
        assert np.abs(out.numpy() - cv)[where].max() <= ATOL_BILATERAL


def test_select_per_channel_actions_and_custom_ops_use_the_bank():
    x = torch.from_numpy(random_images(3, 9, 10, seed=14))
    per_channel = _random_actions((3, 3, 9, 10), seed=3)
    torch.testing.assert_close(bank.pixelrl_filter_select(x, per_channel),
                               select_per_pixel(pixelrl_filter_bank(x), per_channel), rtol=0, atol=1e-6)
    table = [FilterAction("neg", lambda t: 1.0 - t), FilterAction("box3", box_blur2d, (("ksize", 3),)),
             FilterAction("plus", PIXELRL_ACTION_TABLE[2].op, [("delta", 0.25)])]  # unhashable params
    actions = _random_actions((3, 9, 10), n_actions=3, seed=4)
    torch.testing.assert_close(bank.pixelrl_filter_select(x, actions, table),
                               select_per_pixel(pixelrl_filter_bank(x, table), actions), rtol=0, atol=0)


def test_select_module_and_bad_inputs():
    x = torch.from_numpy(random_images(1, 8, 9, seed=15))
    actions = _random_actions((3, 8, 9), seed=5)
    torch.testing.assert_close(FilterBank().select(x, actions), bank.pixelrl_filter_select(x, actions))
    with pytest.raises(ValueError, match=r"\[0, 8\]"):
        bank.pixelrl_filter_select(x, torch.full((3, 8, 9), 9))
    with pytest.raises(ValueError, match=r"\(B, H, W\).*\(B, 1, H, W\)"):
        bank.pixelrl_filter_select(x, torch.zeros((3, 8, 8), dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        bank.pixelrl_filter_select(x, torch.zeros((3, 8, 9)))
    with pytest.raises(ValueError, match="integer tensor"):
        bank.pixelrl_filter_select(x, np.zeros((3, 8, 9), np.int64))
    with pytest.raises(ValueError, match="at least one"):
        bank.pixelrl_filter_select(x, actions, [])
    with pytest.raises(ImageError):
        bank.pixelrl_filter_select(torch.rand(8, 9), actions)


@pytest.mark.parametrize("channels", [1, 3])
def test_filters_at_equals_the_op_at_the_pixels(channels):
    x = np.concatenate([random_images(channels, 10, 12, seed=16), structured_images(channels, 10, 12)])
    x = torch.from_numpy(x)
    b, c, h, w = x.shape
    g = torch.Generator().manual_seed(6)
    requests = [(torch.randint(0, b * h * w, (n,), generator=g), action)  # any order, repeats
                for n, action in zip((40, 0, 7, 90, 25, 60, 33, 12, 50), PIXELRL_ACTION_TABLE)]
    values = sparse.filters_at(x, requests)
    for (pixels, action), got in zip(requests, values):
        ref = action(x).permute(0, 2, 3, 1).reshape(-1, c)[pixels]
        assert got.shape == (pixels.numel(), c) and got.dtype == x.dtype
        atol = 1e-6 if action.op is bilateral_filter2d else 0.0
        torch.testing.assert_close(got, ref, rtol=0, atol=atol, msg=action.name)


def test_filters_at_bad_pixels():
    x = torch.rand(2, 1, 6, 6)
    for bad in (torch.tensor([0, 72]), torch.tensor([-1]), torch.tensor([[0, 1]]), torch.tensor([0.0]), [0, 1]):
        with pytest.raises(ValueError, match="pixels"):
            sparse.filters_at(x, [(bad, PIXELRL_ACTION_TABLE[5])])


def test_median_network_with_writable_inputs():
    """Letting the stages overwrite their inputs needs fewer buffers and keeps the median."""
    read_only = median_module._median_programs(5)
    writable = median_module._median_programs(5, writable_inputs=True)
    extra = [p.n_slots - n_in for p, n_in in zip(writable, (5, 10, 20, 11))]
    assert sum(extra) < sum(p.n_slots for p in read_only)
    pruned, _ = _sorting._prune(_sorting._sorting_network(25), [12])
    program = _sorting._compile(pruned, 25, [12], writable_inputs=True)
    x = torch.from_numpy(np.round(np.random.default_rng(1).random((25, 500)) * 10))
    slots = list(x.clone().unbind(0)) + [torch.empty(500, dtype=x.dtype) for _ in range(program.n_slots - 25)]
    (median,) = _sorting._run(program, [], slots)
    torch.testing.assert_close(median, x.sort(dim=0).values[12], rtol=0, atol=0)
