"""rlenhance.ops.tiling: a function evaluated tile by tile equals one whole-image pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlenhance.ops.tiling import on_grid, pad_to_multiple, tiled


def conv_net(radius_layers: int = 3, channels: int = 3, out: int = 2) -> nn.Module:
    """A fully convolutional net of ``radius_layers`` 3x3 convs: receptive radius ``radius_layers``."""
    torch.manual_seed(0)
    layers = [nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU()]
    for _ in range(radius_layers - 2):
        layers += [nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()]
    layers.append(nn.Conv2d(8, out, 3, padding=1))
    return nn.Sequential(*layers).eval()


@pytest.mark.parametrize("size", [(37, 29), (16, 16), (5, 41), (1, 1)])
@pytest.mark.parametrize("tile", [1, 7, 16, 64])
def test_tiled_equals_untiled_for_a_fully_convolutional_fn(size, tile):
    net = conv_net(radius_layers=3)
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = net(x)
        out = tiled(net, x, tile=tile, overlap=3)
    assert out.shape == whole.shape == (2, 2, *size)
    torch.testing.assert_close(out, whole, atol=1e-5, rtol=1e-5)


def test_a_margin_below_the_receptive_radius_leaves_seams():
    net = conv_net(radius_layers=4)
    x = torch.rand(1, 3, 33, 31, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (tiled(net, x, tile=8, overlap=1) - net(x)).abs().max() > 1e-3
        torch.testing.assert_close(tiled(net, x, tile=8, overlap=4), net(x), atol=1e-5, rtol=1e-5)


def test_aligned_tensors_are_cut_alike_and_outputs_gathered_on_x_device():
    def masked(window, mask):
        return F.avg_pool2d(window * mask, 3, stride=1, padding=1, count_include_pad=False)

    x = torch.rand(2, 3, 23, 19, generator=torch.Generator().manual_seed(3))
    mask = (torch.rand(1, 1, 23, 19, generator=torch.Generator().manual_seed(4)) > 0.5).float()
    torch.testing.assert_close(tiled(masked, x, mask, tile=5, overlap=1), masked(x, mask), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="same height and width"):
        tiled(masked, x, mask[..., :-1], tile=5, overlap=1)


def test_multiple_pads_for_a_strided_network_and_crops_back():
    """A stride-2 net sees the image padded to a multiple of 2, tiled or whole."""
    torch.manual_seed(5)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(),
                        nn.ConvTranspose2d(4, 1, 2, stride=2)).eval()
    x = torch.rand(1, 1, 21, 17, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        whole = net(pad_to_multiple(x, 2))[..., :21, :17]
        out = tiled(net, x, tile=8, overlap=4, multiple=2)
    assert out.shape == (1, 1, 21, 17)
    torch.testing.assert_close(out, whole, atol=1e-5, rtol=1e-5)


def test_pad_to_multiple_reflects_or_replicates():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    assert pad_to_multiple(x, 1) is x and pad_to_multiple(x, 2).shape == (1, 1, 4, 4)
    torch.testing.assert_close(pad_to_multiple(x, 2)[..., 3, :], x[..., 1, :])  # reflection of row 1
    tiny = torch.ones(1, 1, 1, 1)
    assert torch.equal(pad_to_multiple(tiny, 4), torch.ones(1, 1, 4, 4))  # too small to reflect: replicated


def test_bad_arguments_raise():
    x = torch.rand(1, 1, 4, 4)
    for kwargs in ({"tile": 0, "overlap": 0}, {"tile": 2, "overlap": -1}, {"tile": 2, "overlap": 0, "multiple": 0}):
        with pytest.raises(ValueError, match="tiled"):
            tiled(lambda w: w, x, **kwargs)


def test_scale_tiles_a_super_resolving_function():
    """An upscaling function (2x, with a 3x3 blur so windows need their margin) is tiled with the
    output windows at twice the input position; an output of the wrong size is refused."""
    blur = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def upscale(window):
        return F.interpolate(blur(window), scale_factor=2, mode="nearest")

    x = torch.rand(1, 2, 13, 11, generator=torch.Generator().manual_seed(7))
    out = tiled(upscale, x, tile=4, overlap=1, scale=2)
    assert out.shape == (1, 2, 26, 22)
    torch.testing.assert_close(out, upscale(x), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="scale=2 times"):
        tiled(blur, x, tile=4, overlap=1, scale=2)


def _padded_then_tiled(fn, x, *aligned, tile, overlap, multiple):
    """The windows of a tiling of the padded batch (pad_to_multiple of everything, then cut)."""
    xp, others = pad_to_multiple(x, multiple), [pad_to_multiple(a, multiple) for a in aligned]
    out = torch.zeros(x.shape[0], 1, *xp.shape[-2:])
    for top in range(0, xp.shape[-2], tile):
        for left in range(0, xp.shape[-1], tile):
            bottom, right = min(xp.shape[-2], top + tile), min(xp.shape[-1], left + tile)
            y0, x0 = max(0, top - overlap), max(0, left - overlap)
            y1, x1 = min(xp.shape[-2], bottom + overlap), min(xp.shape[-1], right + overlap)
            pred = fn(xp[..., y0:y1, x0:x1], *(a[..., y0:y1, x0:x1] for a in others))
            out[..., top:bottom, left:right] = pred[..., top - y0:bottom - y0, left - x0:right - x0]
    return out[..., :x.shape[-2], :x.shape[-1]]


@pytest.mark.parametrize("size", [(13, 11), (3, 9), (2, 2), (31, 6), (1, 5)])
@pytest.mark.parametrize("tile, overlap, multiple", [(4, 0, 4), (4, 2, 8), (5, 3, 4), (8, 8, 8), (3, 1, 2)])
def test_windows_are_those_of_the_padded_batch_without_padding_it(size, tile, overlap, multiple):
    """Each window (cut from the virtually padded batch, reflected or replicated) is exactly the one
    cut from the padded batch: ``fn`` sees the whole window (its sum and its corner)."""
    def fn(window, aligned):
        return (window.sum(dim=(1, 2, 3), keepdim=True) + 10 * window[:, :1, -1:, -1:] + aligned[:, :1, :1, :1]) \
            * torch.ones_like(window[:, :1])
    g = torch.Generator().manual_seed(sum(size) + tile)
    x, aligned = torch.rand(2, 3, *size, generator=g), torch.rand(2, 1, *size, generator=g)
    expected = _padded_then_tiled(fn, x, aligned, tile=tile, overlap=overlap, multiple=multiple)
    torch.testing.assert_close(tiled(fn, x, aligned, tile=tile, overlap=overlap, multiple=multiple), expected)


def test_windows_inside_the_batch_are_views_and_the_output_is_channels_last():
    x = torch.rand(1, 3, 40, 40)
    seen = []
    out = tiled(lambda w: seen.append(w) or w * 2, x, tile=16, overlap=4, multiple=8)
    inside = [w for w in seen if w.shape[-2:] == (24, 24) or w.shape[-2:] == (20, 20)]
    assert inside and all(w.untyped_storage().data_ptr() == x.untyped_storage().data_ptr() for w in inside)
    assert out.is_contiguous(memory_format=torch.channels_last) and out[0].permute(1, 2, 0).is_contiguous()
    torch.testing.assert_close(out, x * 2)


def test_on_grid_rounds_the_tile_and_margin_up_to_the_grid():
    assert on_grid(512, 100, 8) == (512, 104)
    assert on_grid(500, 37, 12) == (504, 48)
    assert on_grid(16, None, 4) == (16, None)  # no margin: not tiled
    assert on_grid(1, 0, 1) == (1, 0)
