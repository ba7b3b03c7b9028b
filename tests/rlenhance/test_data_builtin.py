"""BuiltinImages: scikit-image's photos load offline as the embedded default data set, whole or split."""

import numpy as np
import pytest
import torch
from skimage import data as skdata

from rlenhance.data import DEFAULT_COLOR_IMAGES, DEFAULT_GRAY_IMAGES, BuiltinImages, sample_batch, split_names
from rlenhance.errors import DatasetError


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


def test_a_split_keeps_its_part_of_the_photos_by_seed():
    """train / tune / val partition the photos (each its own scene) as split_names does, in their order; the
    seed moves them, the tuning fraction never moves validation; an empty part is an error."""
    names = list(DEFAULT_COLOR_IMAGES)
    common = dict(val_fraction=0.34, tune_fraction=0.17)
    parts = {seed: {split: BuiltinImages(split=split, seed=seed, **common).names for split in ("train", "tune", "val")}
             for seed in (0, 1, 2)}
    for seed, part in parts.items():
        assert part == split_names(names, group=None, seed=seed, **common)._asdict()
        assert sorted(sum(part.values(), [])) == sorted(names) and len(part["val"]) == 2 and len(part["tune"]) == 1
        assert all(part[s] == [n for n in names if n in part[s]] for s in part)  # the order of names
        item = BuiltinImages(split="tune", seed=seed, **common)[0]
        assert item["name"] == part["tune"][0]
    assert len({tuple(part["val"]) for part in parts.values()}) > 1
    assert BuiltinImages(split="val", val_fraction=0.34, tune_fraction=0.5).names == parts[0]["val"]
    gray = BuiltinImages(split="train", gray=True, val_fraction=0.2, tune_fraction=0.1, seed=4)
    assert gray.names == split_names(DEFAULT_GRAY_IMAGES, group=None, val_fraction=0.2, tune_fraction=0.1,
                                     seed=4).train and gray[0]["high"].shape[0] == 1
    with pytest.raises(DatasetError, match="tuning split"):
        BuiltinImages(split="tune", tune_fraction=0.0)
    with pytest.raises(DatasetError, match="none left for the val split"):
        BuiltinImages(split="val", val_fraction=0.0)
    with pytest.raises(ValueError, match="split"):
        BuiltinImages(split="test")
