"""rlenhance.data.testsets: fixed evaluation sets whose degradations depend on the seed and the image
name only (not the order, the subset or the device), as the trainers and experiments.compare use them."""

import hashlib

import pytest
import torch

import rlenhance.data as data
from rlenhance.data import (
    LowLightTestSet,
    NoisyImage,
    OccludedImage,
    image_seed,
    lowlight_test_set,
    noisy_test_set,
    occluded_test_set,
    uneven_capture,
    uneven_low_light,
)

SIGMA = 25.0


def _photos(n: int, shape=(3, 24, 24), key: str = "high") -> list[dict]:
    return [{key: torch.rand(*shape, generator=torch.Generator().manual_seed(k)), "name": f"p{k}"} for k in range(n)]


def test_exported_from_rlenhance_data():
    for name in ("image_seed", "noisy_test_set", "occluded_test_set", "lowlight_test_set", "NoisyImage",
                 "OccludedImage", "LowLightTestSet", "uneven_capture", "LOWLIGHT_INPUTS"):
        assert name in data.__all__


def test_image_seed_is_stable_and_fits_torch():
    assert image_seed(0, "a") == image_seed(0, "a")
    assert len({image_seed(0, "a"), image_seed(1, "a"), image_seed(0, "b")}) == 3
    # SHA-256 of "seed:name", its first 8 bytes little-endian, halved: the same on every machine and run
    assert image_seed(0, "x.png") == int.from_bytes(hashlib.sha256(b"0:x.png").digest()[:8], "little") >> 1
    assert image_seed(0, "x.png") == 8_942_751_082_782_325_835
    assert all(0 <= image_seed(s, "img") < 2**63 for s in range(20))


def test_noise_depends_on_the_seed_and_name_only():
    photos = _photos(2, (1, 32, 32))
    forward = noisy_test_set(photos, SIGMA, seed=3)
    backward = noisy_test_set(photos[::-1], SIGMA, seed=3)
    assert isinstance(forward[0], NoisyImage) and [im.name for im in forward] == ["p0", "p1"]
    assert torch.equal(forward[0].noisy, backward[1].noisy) and torch.equal(forward[1].noisy, backward[0].noisy)
    assert not torch.equal(forward[0].noisy, noisy_test_set(photos, SIGMA, seed=4)[0].noisy)
    assert torch.equal(forward[0].clean, photos[0]["high"])
    noise = torch.cat([(im.noisy - im.clean).flatten() for im in forward])
    assert float(noise.std()) == pytest.approx(SIGMA / 255, rel=0.1)  # not clipped: Gaussian
    assert float(noise.min()) < 0 < float(noise.max())
    assert len(noisy_test_set(photos, SIGMA, limit=1)) == 1
    assert torch.equal(noisy_test_set(_photos(1, (1, 8, 8), key="low"), 0.0)[0].noisy, _photos(1, (1, 8, 8))[0]["high"])


def test_synthetic_holes_are_seeded_per_image_and_pairs_keep_their_mask():
    photos = _photos(2)
    a, b = occluded_test_set(photos, seed=1), occluded_test_set(photos[::-1], seed=1)
    assert isinstance(a[0], OccludedImage) and torch.equal(a[0].mask, b[1].mask) and a[0].mask.sum() > 0
    assert torch.equal(a[0].occluded * a[0].mask, torch.zeros_like(a[0].occluded))
    assert not torch.equal(a[0].mask, occluded_test_set(photos, seed=2)[0].mask)
    small = occluded_test_set(photos, seed=1, max_side=12)
    assert small[0].original.shape == (3, 12, 12) and small[0].mask.shape == (1, 12, 12)
    mask = torch.zeros(1, 8, 8)
    mask[:, 2:5, 3:6] = 1.0
    pair = {"name": "bed", "occluded": torch.rand(3, 8, 8), "original": torch.rand(3, 8, 8), "mask": mask}
    (image,) = occluded_test_set([pair], seed=5, limit=3)
    assert torch.equal(image.mask, mask) and torch.equal(image.occluded, pair["occluded"])


def test_lowlight_set_is_one_batch_of_fitted_images():
    pairs = [{"name": f"im{i}", "low": torch.rand(3, 40, 60), "high": torch.rand(3, 40, 60)} for i in range(3)]
    names, low, high = lowlight_test_set(pairs, 32)
    assert names == ["im0", "im1", "im2"] and low.shape == high.shape == (3, 3, 32, 32)
    # area-downscaled so the shorter side is 32 (40x60 -> 32x48), then the centre 32x32
    expected = torch.nn.functional.interpolate(pairs[1]["high"][None], size=(32, 48), mode="area")[0][:, :, 8:40]
    torch.testing.assert_close(high[1], expected)
    photos = [{"name": "a", "high": torch.rand(3, 20, 30)}, {"name": "b", "high": torch.rand(3, 24, 20)}]
    small = lowlight_test_set(photos, 32, seed=7)
    assert small.low.shape == (2, 3, 20, 20)  # never upscaled; cropped to the smallest height and width
    assert small.low.max() < small.high.max() and torch.equal(small.low, lowlight_test_set(
        [{"name": "a", "high": small.high[0]}, {"name": "b", "high": small.high[1]}], 32, seed=7).low)
    assert isinstance(small, LowLightTestSet)


def test_uneven_light_relights_each_fitted_reference_from_the_seed_and_its_name():
    pairs = [{"name": f"im{i}", "low": torch.zeros(3, 40, 60), "high": 0.2 + 0.6 * torch.rand(3, 40, 60)}
             for i in range(3)]
    names, low, high = lowlight_test_set(pairs, 32, seed=4, light="uneven")
    assert names == ["im0", "im1", "im2"] and low.shape == high.shape == (3, 3, 32, 32)
    for k in range(3):  # the pairs' own lows are replaced by the fitted reference relit
        assert torch.equal(low[k], uneven_capture(high[k], f"im{k}", seed=4))
        assert 0 < float(low[k].mean()) < 0.8 * float(high[k].mean())
    generator = torch.Generator().manual_seed(image_seed(4, "im1"))
    assert torch.equal(uneven_capture(high[1], "im1", seed=4), uneven_low_light(high[1][None], generator=generator)[0])
    backward = lowlight_test_set(pairs[::-1], 32, seed=4, light="uneven")  # not the order, not the subset
    assert torch.equal(backward.low[2], low[0]) and torch.equal(lowlight_test_set(pairs[1:2], 32, seed=4,
                                                                                  light="uneven").low[0], low[1])
    assert not torch.equal(lowlight_test_set(pairs, 32, seed=5, light="uneven").low, low)


def test_uneven_light_needs_references_and_a_known_light():
    with pytest.raises(ValueError, match="light 'uneven' relights references, but p0 has none"):
        lowlight_test_set(_photos(1, key="low"), 16, light="uneven")
    with pytest.raises(ValueError, match="light: expected one of"):
        lowlight_test_set(_photos(1), 16, light="dim")
