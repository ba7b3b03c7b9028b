"""BuiltinImages: scikit-image's photos load offline as the embedded default data set."""

import numpy as np
import pytest
import torch
from skimage import data as skdata

from rlenhance.data import DEFAULT_COLOR_IMAGES, BuiltinImages, sample_batch


def test_default_colour_set_loads_exact_rgb():
    ds = BuiltinImages()
    assert ds.names == list(DEFAULT_COLOR_IMAGES) and len(ds) == 6
    for item in ds:
        assert set(item) == {"high", "name"}
        assert item["high"].dtype == torch.float32 and item["high"].shape[0] == 3
        assert 0.0 <= float(item["high"].min()) and float(item["high"].max()) <= 1.0
    astronaut = ds[ds.names.index("astronaut")]["high"]
    expected = torch.from_numpy(skdata.astronaut()).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(astronaut, expected, atol=0, rtol=0)
    right = ds[ds.names.index("motorcycle_right")]["high"]
    torch.testing.assert_close(right, torch.from_numpy(skdata.stereo_motorcycle()[1]).permute(2, 0, 1).float() / 255)


def test_gray_set_and_luma():
    ds = BuiltinImages(gray=True)
    assert "camera" in ds.names and all(ds[i]["high"].shape[0] == 1 for i in range(len(ds)))
    camera = ds[ds.names.index("camera")]["high"][0]
    torch.testing.assert_close(camera, torch.from_numpy(skdata.camera()).float() / 255, atol=0, rtol=0)
    coffee = ds[ds.names.index("coffee")]["high"][0].numpy()
    rgb = skdata.coffee().astype(np.float64) / 255
    np.testing.assert_allclose(coffee, rgb @ np.array([0.299, 0.587, 0.114]), atol=1e-6)


def test_named_subset_gray_photo_as_rgb_and_unknown_name():
    ds = BuiltinImages(names=["camera", "coffee"])
    camera = ds[0]["high"]
    assert camera.shape == (3, 512, 512) and torch.equal(camera[0], camera[2])
    with pytest.raises(ValueError, match=r"unknown builtin image.*'lena'.*astronaut"):
        BuiltinImages(names=["lena"])


def test_batches_of_crops_are_seeded():
    ds = BuiltinImages()
    a = sample_batch(ds, 3, crop=32, rng=np.random.default_rng(0))
    b = sample_batch(ds, 3, crop=32, rng=np.random.default_rng(0))
    assert a["high"].shape == (3, 3, 32, 32) and torch.equal(a["high"], b["high"])
