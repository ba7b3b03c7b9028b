"""rlenhance.ops.fill: the diffusion fill and the pre-fill of supervised completion models."""

import pytest
import torch
import torch.nn.functional as F

from rlenhance.ops.fill import PREFILLS, diffusion_fill, neighbour_mean, prefill_hole


def _hole(batch=2, size=24, top=6, side=9):
    mask = torch.zeros(batch, 1, size, size)
    mask[:, :, top:top + side, top + 2:top + 2 + side] = 1.0
    return mask


def test_known_pixels_never_change_and_the_hole_is_filled():
    image = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    mask = _hole()
    occluded = image * (1 - mask)  # black hole
    filled = diffusion_fill(occluded, mask)
    assert torch.equal(filled * (1 - mask), occluded * (1 - mask))
    hole = filled[mask.expand_as(filled) > 0]
    assert hole.min() > 0.2 and hole.max() < 0.8  # averages of the U(0, 1) surroundings, not the black fill


def test_a_smooth_ramp_is_continued_into_the_hole():
    ramp = torch.linspace(0, 1, 24).view(1, 1, 1, 24).expand(1, 1, 24, 24).contiguous()
    mask = _hole(batch=1)
    filled = diffusion_fill(ramp * (1 - mask), mask, smooth_iters=200)
    assert (filled - ramp).abs().max() < 0.02  # a linear ramp is harmonic: diffusion recovers it


def test_constant_image_and_no_hole():
    constant = torch.full((1, 3, 16, 16), 0.3)
    mask = _hole(batch=1, size=16, top=3, side=6)
    assert torch.allclose(diffusion_fill(constant * (1 - mask), mask), constant)
    assert torch.equal(diffusion_fill(constant, torch.zeros(1, 1, 16, 16)), constant)


def test_neighbour_mean_counts_only_weighted_neighbours():
    x = torch.arange(9.0).view(1, 1, 3, 3)
    mean, count = neighbour_mean(x, torch.ones(1, 1, 3, 3))
    assert count[0, 0].tolist() == [[2, 3, 2], [3, 4, 3], [2, 3, 2]]
    assert mean[0, 0, 1, 1] == (1 + 3 + 5 + 7) / 4


def test_prefill_hole():
    image = torch.rand(1, 3, 16, 16)
    mask = _hole(batch=1, size=16, top=3, side=6)
    assert prefill_hole(image, mask, "none") is image
    assert torch.equal(prefill_hole(image, mask, "diffusion"), diffusion_fill(image, mask))
    assert PREFILLS == ("diffusion", "none")
    with pytest.raises(ValueError, match="prefill: expected one of .*'telea'"):
        prefill_hole(image, mask, "telea")


def test_each_image_is_filled_in_its_hole_box_as_in_the_whole_frame():
    from rlenhance.ops.fill import _fill_frame  # the whole-frame algorithm, the reference

    g = torch.Generator().manual_seed(3)
    image = torch.rand(4, 3, 30, 26, generator=g)
    mask = torch.zeros(4, 1, 30, 26)
    mask[0, :, 4:12, 5:14] = 1  # inside
    mask[1, :, 0:9, 18:26] = 1  # touching two borders
    mask[1, :, 20:23, 2:4] = 1  # a second hole of the same image
    mask[3] = (torch.rand(1, 30, 26, generator=g) < 0.1).float()  # scattered pixels; image 2 has none
    filled = diffusion_fill(image, mask)
    assert torch.allclose(filled, _fill_frame(image * (1 - mask), mask, 20), atol=1e-6)
    assert torch.equal(filled[2], image[2])
    # the hole reads only its one-pixel ring: the rest of the frame may change freely
    far = F.max_pool2d(mask[:1], 3, stride=1, padding=1) == 0
    changed = torch.where(far, torch.rand(1, 3, 30, 26, generator=g), image[:1])
    assert torch.allclose(diffusion_fill(changed, mask[:1])[mask[:1].expand(1, 3, -1, -1) > 0],
                          filled[:1][mask[:1].expand(1, 3, -1, -1) > 0], atol=1e-6)


@pytest.mark.parametrize("tall", [False, True])
def test_a_batch_shares_one_window_size_moved_inside_the_frame_at_its_borders(tall):
    from rlenhance.ops.fill import _fill_frame

    g = torch.Generator().manual_seed(4)
    image = torch.rand(3, 3, 24, 20, generator=g)
    mask = torch.zeros(3, 1, 24, 20)
    mask[0, :, 6:18, 4:15] = 1  # the largest box sets the window: 14 x 13
    if tall:
        mask[0, :, :, 8:10] = 1  # ... or the frame's height: a window clipped in one dimension only
    mask[1, :, 21:24, 17:20] = 1  # small, in the bottom-right corner: its window moves up and left
    mask[2, :, 0:2, 0:3] = 1  # small, in the top-left corner
    filled = diffusion_fill(image, mask)
    for b in range(3):
        assert torch.allclose(filled[b], _fill_frame(image[b:b + 1] * (1 - mask[b:b + 1]), mask[b:b + 1], 20)[0],
                              atol=1e-6)


def test_hole_box_bounds_every_missing_pixel():
    from rlenhance.ops.fill import hole_box

    mask = torch.zeros(12, 10)
    assert hole_box(mask) is None
    mask[3:7, 2:5] = 1
    mask[9, 8] = 1  # a second part widens the box
    assert hole_box(mask) == (3, 2, 10, 9)
