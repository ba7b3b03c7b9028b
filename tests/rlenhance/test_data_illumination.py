"""Non-uniform illumination (rlenhance.data.illumination): smooth fields in (0, 1] of every kind, seeded
relighting that darkens a photo unevenly and stays in [0, 1], and clear errors for bad arguments."""

import pytest
import torch
import torch.nn.functional as F

from rlenhance.data import LIGHTS, illumination_field, uneven_low_light


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _neighbour_steps(field: torch.Tensor) -> torch.Tensor:
    """The absolute differences of horizontally and vertically neighbouring pixels, flattened."""
    return torch.cat([(field[..., 1:, :] - field[..., :-1, :]).abs().flatten(),
                      (field[..., 1:] - field[..., :-1]).abs().flatten()])


@pytest.mark.parametrize("kind", LIGHTS)
def test_each_kind_is_a_smooth_non_uniform_field_in_the_unit_interval_peaking_at_one(kind):
    fields = illumination_field(8, 96, 128, generator=_gen(), lights=(kind,), ambient=(0.02, 0.15))
    assert fields.shape == (8, 1, 96, 128) and fields.dtype == torch.float32
    assert float(fields.amin()) >= 0.02 - 1e-6 and float(fields.amax()) <= 1.0
    assert torch.allclose(fields.amax(dim=(1, 2, 3)), torch.ones(8))  # the brightest light is the reference's
    assert float((fields.amax(dim=(1, 2, 3)) - fields.amin(dim=(1, 2, 3))).min()) > 0.5  # lit unevenly
    steps = _neighbour_steps(fields)
    assert float(steps.mean()) < 0.02  # a field of i.i.d. uniform values: about 0.33
    assert float(steps.quantile(0.99)) < 0.25  # soft edges at most (a window's are the sharpest); noise: about 0.9


@pytest.mark.parametrize("kind", LIGHTS)
def test_a_field_is_a_function_of_position_not_of_the_pixel_grid(kind):
    """The same numbers give the same light at twice the resolution (coordinates in units of the longer side)."""
    coarse = illumination_field(4, 48, 64, generator=_gen(3), lights=(kind,))
    fine = illumination_field(4, 96, 128, generator=_gen(3), lights=(kind,))
    assert float((F.avg_pool2d(fine, 2) - coarse).abs().mean()) < 0.01


def test_fields_of_one_seed_are_reproducible_and_other_seeds_or_kinds_differ():
    first = illumination_field(3, 32, 40, generator=_gen(5))
    assert torch.equal(first, illumination_field(3, 32, 40, generator=_gen(5)))
    assert not torch.equal(first, illumination_field(3, 32, 40, generator=_gen(6)))
    spot, gradient = (illumination_field(1, 32, 40, generator=_gen(5), lights=(k,)) for k in ("spotlight", "gradient"))
    assert float((spot - gradient).abs().mean()) > 0.05


def test_the_ambient_level_bounds_the_darkest_light():
    fields = illumination_field(6, 64, 64, generator=_gen(1), ambient=0.3)
    assert float(fields.amin()) >= 0.3 - 1e-6 and float(fields.amin()) < 0.35


def _photos(n: int = 4, seed: int = 0) -> torch.Tensor:
    """Well-exposed stand-ins: smooth random images with values in [0.2, 0.9]."""
    coarse = torch.rand(n, 3, 6, 8, generator=_gen(seed))
    return 0.2 + 0.7 * F.interpolate(coarse, size=(48, 64), mode="bilinear", align_corners=False)


def test_relit_photos_are_darker_unevenly_in_range_and_keep_shape_and_dtype():
    photos = _photos()
    low = uneven_low_light(photos, generator=_gen())
    assert low.shape == photos.shape and low.dtype == photos.dtype
    assert float(low.amin()) >= 0.0 and float(low.amax()) <= 1.0
    assert bool((low.mean(dim=(1, 2, 3)) < 0.8 * photos.mean(dim=(1, 2, 3))).all())
    # darkened by different factors across each image: the ratio to the photo varies far more than the noise would
    ratio = low / photos
    assert float(ratio.flatten(1).quantile(0.95, dim=1).div(ratio.flatten(1).quantile(0.05, dim=1)).min()) > 1.5


def test_relit_photos_of_one_seed_are_reproducible_and_each_image_has_its_own_numbers():
    photos = _photos(3)
    first = uneven_low_light(photos, generator=_gen(2))
    assert torch.equal(first, uneven_low_light(photos, generator=_gen(2)))
    assert not torch.equal(first, uneven_low_light(photos, generator=_gen(3)))
    batch = uneven_low_light(photos, generator=[_gen(10), _gen(11), _gen(12)])
    alone = uneven_low_light(photos[1:2], generator=[_gen(11)])
    assert torch.equal(batch[1:2], alone)  # image k depends on its own generator alone


def test_leading_dimensions_are_kept():
    photos = _photos(4).reshape(2, 2, 3, 48, 64)
    assert uneven_low_light(photos, generator=_gen()).shape == photos.shape


@pytest.mark.parametrize("kwargs, match", [
    ({"lights": ("spotlight", "torch")}, "lights: expected some of"),
    ({"lights": ()}, "lights: expected some of"),
    ({"ambient": (0.0, 0.2)}, "ambient: expected low <= high"),
    ({"ambient": 1.5}, "ambient: expected low <= high"),
    ({"exposure": (0.5, 0.1)}, "exposure: expected low <= high"),
    ({"response": -2.0}, "response: expected low <= high"),
    ({"shot_noise": -1e-3}, "shot_noise: expected low <= high"),
    ({"read_noise": "loud"}, "read_noise: expected a number or a"),
    ({"generator": [torch.Generator()]}, "generator: expected a torch.Generator, None, or one"),
])
def test_a_bad_argument_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        uneven_low_light(_photos(2), **{"generator": _gen(), **kwargs})


@pytest.mark.parametrize("x, match", [
    (torch.zeros(8, 8), r"x: expected a tensor of shape \(\*, C, H, W\)"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "x: expected a floating-point tensor"),
])
def test_a_bad_image_is_named(x, match):
    with pytest.raises(ValueError, match=match):
        uneven_low_light(x, generator=_gen())


def test_a_field_with_an_unknown_kind_or_bad_generators_is_refused():
    with pytest.raises(ValueError, match="lights: expected some of"):
        illumination_field(1, 8, 8, generator=_gen(), lights=("moon",))
    with pytest.raises(ValueError, match="one torch.Generator per image"):
        illumination_field(2, 8, 8, generator=[_gen()])
