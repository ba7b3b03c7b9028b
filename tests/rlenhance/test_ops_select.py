import numpy as np
import pytest
import torch

from rlenhance.ops import pixelrl_filter_bank, select_per_pixel
from rlenhance.ops import select as select_module
from rlenhance.ops.select import group_pixels, sort_by_key

B, K, C, H, W = 2, 9, 3, 5, 6


def _candidates(channels=C, seed=0):
    """candidates[b, k, c] = 10 * k + c + noise, so the picked k can be read off the value."""
    g = torch.Generator().manual_seed(seed)
    k = torch.arange(K, dtype=torch.float32).view(1, K, 1, 1, 1)
    c = torch.arange(channels, dtype=torch.float32).view(1, 1, channels, 1, 1)
    return 10 * k + c + 0.01 * torch.rand(B, K, channels, H, W, generator=g)


def _actions(shape, seed=1, dtype=torch.int64):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, K, shape, generator=g).to(dtype)


def _expected(cands, actions):
    """Loop reference: out[b, c, h, w] = cands[b, a, c, h, w] with a the action of that pixel (and channel)."""
    cands, actions = cands.numpy(), actions.numpy()
    b, _, c, h, w = cands.shape
    out = np.empty((b, c, h, w), cands.dtype)
    for ib in range(b):
        for ic in range(c):
            for ih in range(h):
                for iw in range(w):
                    if actions.ndim == 3:
                        a = actions[ib, ih, iw]
                    else:
                        a = actions[ib, ic if actions.shape[1] > 1 else 0, ih, iw]
                    out[ib, ic, ih, iw] = cands[ib, a, ic, ih, iw]
    return out


@pytest.mark.parametrize("shape", [(B, H, W), (B, 1, H, W), (B, C, H, W)])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_picks_the_chosen_candidate(shape, dtype):
    cands, actions = _candidates(), _actions(shape, dtype=dtype)
    out = select_per_pixel(cands, actions)
    assert out.shape == (B, C, H, W) and out.dtype == cands.dtype
    np.testing.assert_array_equal(out.numpy(), _expected(cands, actions))
    # the tens digit is the chosen action, the units digit the channel
    picked = torch.div(out, 10, rounding_mode="floor").long()
    chan = torch.arange(C).view(1, C, 1, 1)
    assert ((out - 10 * picked - chan).abs() < 0.02).all()
    full = actions.long().view(B, -1, H, W).expand(B, C, H, W)
    assert torch.equal(picked, full)


def test_single_channel_candidates():
    cands, actions = _candidates(channels=1), _actions((B, 1, H, W))
    out = select_per_pixel(cands, actions)
    np.testing.assert_array_equal(out.numpy(), _expected(cands, actions))
    np.testing.assert_array_equal(select_per_pixel(cands, actions[:, 0]).numpy(), out.numpy())


def test_validate_false_gives_same_result():
    cands, actions = _candidates(), _actions((B, C, H, W))
    torch.testing.assert_close(select_per_pixel(cands, actions, validate=False), select_per_pixel(cands, actions))


def test_keep_action_returns_input_of_filter_bank():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    cands = pixelrl_filter_bank(x)
    keep = torch.ones(2, 8, 8, dtype=torch.long)  # action 1 = keep
    torch.testing.assert_close(select_per_pixel(cands, keep), x, rtol=0, atol=0)


def test_gradient_reaches_only_chosen_candidates():
    cands = _candidates().requires_grad_()
    actions = _actions((B, 1, H, W))
    select_per_pixel(cands, actions).sum().backward()
    onehot = torch.nn.functional.one_hot(actions[:, 0], K).permute(0, 3, 1, 2).unsqueeze(2).expand(B, K, C, H, W)
    torch.testing.assert_close(cands.grad, onehot.float())


@pytest.mark.parametrize("bad_value", [K, -1, 100])
def test_rejects_out_of_range_actions(bad_value):
    actions = _actions((B, H, W))
    actions[1, 2, 3] = bad_value
    with pytest.raises(ValueError, match=r"\[0, 8\]"):
        select_per_pixel(_candidates(), actions)


@pytest.mark.parametrize("shape", [(B, 2, H, W), (B, H, W + 1), (B + 1, H, W), (B, 1, 1, H, W), (H, W)])
def test_rejects_wrong_action_shapes(shape):
    with pytest.raises(ValueError, match=r"\(B, H, W\).*\(B, 1, H, W\).*\(B, C, H, W\)"):
        select_per_pixel(_candidates(), torch.zeros(shape, dtype=torch.long))


def test_rejects_bad_types():
    cands = _candidates()
    with pytest.raises(ValueError, match="integer"):
        select_per_pixel(cands, torch.zeros(B, H, W))
    with pytest.raises(ValueError, match="integer"):
        select_per_pixel(cands, torch.zeros(B, H, W, dtype=torch.bool))
    with pytest.raises(ValueError, match="integer tensor"):
        select_per_pixel(cands, np.zeros((B, H, W), np.int64))
    with pytest.raises(ValueError, match=r"\(B, K, C, H, W\)"):
        select_per_pixel(cands[:, 0], torch.zeros(B, H, W, dtype=torch.long))


# ---------------------------------------------------------------- grouping pixels by action


def test_group_pixels_known_example():
    actions = torch.tensor([[[2, 0, 1], [0, 2, 2]], [[1, 1, 0], [2, 0, 1]]])  # (B=2, H=2, W=3)
    order, counts = group_pixels(actions, 4)
    assert counts == [4, 4, 4, 0]
    assert order.tolist() == [1, 3, 8, 10, 2, 6, 7, 11, 0, 4, 5, 9]
    order1, counts1 = group_pixels(actions.unsqueeze(1), 4)  # (B, 1, H, W)
    assert counts1 == counts and torch.equal(order1, order)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_group_pixels_groups_every_pixel_once(dtype):
    actions = _actions((B, 1, H, W), dtype=dtype)
    order, counts = group_pixels(actions, K)
    flat = actions.reshape(-1).long()
    assert sorted(order.tolist()) == list(range(B * H * W)) and sum(counts) == B * H * W
    start = 0
    for k, count in enumerate(counts):
        group = order[start: start + count]
        assert bool((flat[group] == k).all()) and bool((group[1:] > group[:-1]).all())  # ascending
        start += count


def test_group_pixels_subset_and_errors():
    actions = _actions((B, H, W))
    pixels = torch.tensor([7, 3, 50, 3])
    order, counts = group_pixels(actions, K, pixels=pixels)
    assert sorted(order.tolist()) == sorted(pixels.tolist()) and sum(counts) == 4
    assert (actions.reshape(-1)[order].diff() >= 0).all()
    with pytest.raises(ValueError, match=r"\[0, 8\]"):
        group_pixels(torch.full((B, H, W), K), K)
    with pytest.raises(ValueError, match="n_actions"):
        group_pixels(actions, 0)
    with pytest.raises(ValueError, match="integer"):
        group_pixels(actions.float(), K)
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        group_pixels(actions.view(B, 1, 1, H, W), K)
    with pytest.raises(ValueError, match="pixels"):
        group_pixels(actions, K, pixels=pixels.int())


@pytest.mark.parametrize("n", [0, 10, 5000, 40000])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64])
def test_sort_by_key_is_a_stable_sort(n, dtype):
    """Mid-sized arrays are padded to reach torch's radix sort; the result must not change."""
    keys = torch.randint(0, 255, (n,), generator=torch.Generator().manual_seed(n)).to(dtype)
    keys[: n // 3] = 254  # many ties
    order, counts = sort_by_key(keys, 256)
    assert torch.equal(order, torch.sort(keys, stable=True).indices)
    assert counts == torch.bincount(keys.long(), minlength=256).tolist()
    if n:
        values, indices = torch.empty_like(keys), torch.empty(n, dtype=torch.long)
        order, _ = sort_by_key(keys, 256, out=(values, indices))
        assert torch.equal(order, torch.sort(keys, stable=True).indices)


def test_sort_by_key_with_the_largest_key_present():
    """Keys equal to the padding value keep their place before the padding."""
    keys = torch.full((select_module._RADIX_PAD_FROM + 5,), 255, dtype=torch.uint8)
    keys[::7] = 3
    order, counts = sort_by_key(keys, 256)
    assert torch.equal(order, torch.sort(keys, stable=True).indices) and counts[255] + counts[3] == keys.numel()
