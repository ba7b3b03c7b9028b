"""OccludedPairs and the occlusion-mask estimate, on generated JPEG pairs and real bedroom pairs."""

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from rlenhance.data import OccludedPairs, channel_sum_mask, estimate_occlusion_mask, sample_batch
from rlenhance.errors import DatasetError

SIZE = 96


def _photo(seed, size=SIZE):
    """A smooth, textured colour image (uint8), like a photo rather than white noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    channels = [0.5 + 0.3 * np.sin(2 * np.pi * (f * xx + g * yy) + p)
                for f, g, p in rng.uniform(0.5, 3.0, (3, 3))]
    img = np.stack(channels, -1) + rng.normal(0, 0.03, (size, size, 3))
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def _write_pair(root, name, original, box, *, quality=75, fmt="JPEG"):
    """Write original_images/NAME and occluded_images/occluded_NAME with a black box (top, left, h, w)."""
    top, left, h, w = box
    occluded = original.copy()
    occluded[top : top + h, left : left + w] = 0
    for folder, fname, img in (("original_images", name, original), ("occluded_images", "occluded_" + name, occluded)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        kwargs = {"quality": quality} if fmt == "JPEG" else {}
        Image.fromarray(img).save(root / folder / fname, fmt, **kwargs)
    mask = np.zeros(original.shape[:2], bool)
    mask[top : top + h, left : left + w] = True
    return mask


def test_mask_recovered_from_jpeg_pairs(tmp_path):
    boxes = {"bed_1.jpg": (20, 30, 30, 32), "bed_2.jpg": (0, 50, 40, 46), "bed_3.jpg": (60, 5, 29, 29)}
    darks = {"bed_3.jpg": (55, 0, 30, 20)}  # part of the hole is already near black in the original
    expected = {}
    for i, (name, box) in enumerate(boxes.items()):
        original = _photo(i)
        if name in darks:
            top, left, h, w = darks[name]
            original[top : top + h, left : left + w] = 5
        expected[name] = _write_pair(tmp_path, name, original, box)
    ds = OccludedPairs(tmp_path)
    assert ds.names == sorted(boxes)
    for item in ds:
        assert set(item) == {"occluded", "original", "mask", "name"}
        assert item["mask"].shape == (1, SIZE, SIZE) and item["mask"].dtype == torch.float32
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
        np.testing.assert_array_equal(item["mask"][0].numpy().astype(bool), expected[item["name"]])


def test_bare_threshold_is_worse_than_the_cleaned_rule(tmp_path):
    """JPEG ringing makes a bare threshold wrong around the hole; the documented rule is not."""
    original = _photo(4)
    truth = _write_pair(tmp_path, "a.jpg", original, (30, 30, 33, 33), quality=60)
    occ = np.asarray(Image.open(tmp_path / "occluded_images" / "occluded_a.jpg"), np.float32) / 255
    ref = np.asarray(Image.open(tmp_path / "original_images" / "a.jpg"), np.float32) / 255
    bare = np.abs(occ - ref).max(-1) > 0.1
    cleaned = estimate_occlusion_mask(occ, ref)
    assert (bare != truth).sum() > 0
    assert (cleaned != truth).sum() == 0


def test_free_shape_recovers_non_rectangular_holes():
    original = _photo(5).astype(np.float32) / 255
    truth = np.zeros((SIZE, SIZE), bool)
    truth[10:40, 10:20] = True  # an L shape and a separate disc
    truth[30:40, 10:50] = True
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    truth |= (yy - 70) ** 2 + (xx - 70) ** 2 <= 12**2
    occluded = original.copy()
    occluded[truth] = 0
    free = estimate_occlusion_mask(occluded, original, shape="free")
    np.testing.assert_array_equal(free, truth)
    box = estimate_occlusion_mask(occluded, original, shape="box")
    assert box.sum() > truth.sum()  # a box covers both holes and what lies between
    with pytest.raises(ValueError, match="shape"):
        estimate_occlusion_mask(occluded, original, shape="circle")


def test_identical_pair_gives_empty_mask():
    img = _photo(6).astype(np.float32) / 255
    assert not estimate_occlusion_mask(img, img).any()


def test_mask_dir_white_is_missing(tmp_path):
    _write_pair(tmp_path, "a.jpg", _photo(7), (5, 5, 10, 10))
    _write_pair(tmp_path, "b.jpg", _photo(8), (5, 5, 10, 10))
    masks = {}
    for name, (top, left) in (("a", (50, 60)), ("b", (0, 0))):
        mask = np.zeros((SIZE, SIZE), np.uint8)
        mask[top : top + 20, left : left + 7] = 255
        Image.fromarray(mask).save(tmp_path / f"{name}.png")
        masks[name + ".jpg"] = mask > 0
    ds = OccludedPairs(tmp_path / ".", mask_dir=tmp_path)
    for item in ds:
        np.testing.assert_array_equal(item["mask"][0].numpy().astype(bool), masks[item["name"]])


def test_sample_batch_crops_mask_with_images(tmp_path):
    for i in range(3):
        _write_pair(tmp_path, f"p{i}.png", _photo(10 + i), (20, 20, 40, 40), fmt="PNG")
    ds = OccludedPairs(tmp_path)
    batch = sample_batch(ds, 6, crop=32, rng=np.random.default_rng(0))
    assert batch["mask"].shape == (6, 1, 32, 32) and batch["occluded"].shape == (6, 3, 32, 32)
    hole = batch["mask"].bool().expand_as(batch["occluded"])
    assert torch.all(batch["occluded"][hole] == 0)
    torch.testing.assert_close(batch["occluded"][~hole], batch["original"][~hole], atol=0, rtol=0)


# ------------------------------------------------------------------ errors


def test_partner_errors_name_files(tmp_path):
    _write_pair(tmp_path, "a.jpg", _photo(0), (5, 5, 10, 10))
    _write_pair(tmp_path, "b.jpg", _photo(1), (5, 5, 10, 10))
    (tmp_path / "original_images" / "b.jpg").unlink()
    Image.fromarray(_photo(2)).save(tmp_path / "original_images" / "c.jpg")
    Image.fromarray(_photo(3)).save(tmp_path / "occluded_images" / "stray.jpg")
    with pytest.raises(DatasetError) as info:
        OccludedPairs(tmp_path)
    message = str(info.value)
    assert "occluded_b.jpg" in message and "stray.jpg" in message and "c.jpg" in message
    assert "occluded_NAME" in message


def test_missing_folder_and_missing_masks(tmp_path):
    with pytest.raises(DatasetError, match=r"occluded_images/ and original_images/ missing"):
        OccludedPairs(tmp_path)
    _write_pair(tmp_path, "a.jpg", _photo(0), (5, 5, 10, 10))
    _write_pair(tmp_path, "b.jpg", _photo(1), (5, 5, 10, 10))
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(tmp_path / "masks" / "a.png")
    with pytest.raises(DatasetError, match=r"no mask.*b\.jpg"):
        OccludedPairs(tmp_path, mask_dir=tmp_path / "masks")


def test_mask_size_mismatch(tmp_path):
    _write_pair(tmp_path, "a.jpg", _photo(0), (5, 5, 10, 10))
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((SIZE, SIZE + 1), np.uint8)).save(tmp_path / "masks" / "a.png")
    with pytest.raises(DatasetError, match=r"masks/a\.png is 96x97"):
        OccludedPairs(tmp_path, mask_dir=tmp_path / "masks")


# ------------------------------------------------------------------ real data


def test_real_bedroom_masks_are_one_filled_square(shared_dir):
    ds = OccludedPairs(shared_dir / "data" / "bedroom" / "train", cache=False)
    assert len(ds) == 900
    rng = np.random.default_rng(0)
    for index in rng.choice(len(ds), 6, replace=False):
        item = ds[int(index)]
        mask = item["mask"][0].numpy().astype(bool)
        labels, count = ndimage.label(mask)
        assert count == 1, item["name"]
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        assert mask.sum() == height * width  # filled rectangle
        assert 60 <= height <= 75 and 60 <= width <= 75, (item["name"], height, width)
        hole = item["mask"].bool().expand_as(item["occluded"])
        assert float(item["occluded"][hole].mean()) < 0.05  # black inside
        assert float((item["occluded"] - item["original"]).abs()[~hole].mean()) < 0.02  # unchanged outside


def test_channel_sum_mask_is_the_seeds_bare_threshold_on_a_crafted_pair():
    """sum over channels of |original - occluded| > 0.03: a pixel whose channels each differ by 0.011
    (max 0.011 < 0.1: not a change for the estimate) counts; 0.009 each (sum 0.027) does not; a
    black hole pixel over a black original does not either."""
    original = np.full((6, 8, 3), 0.5, np.float32)
    original[4, 6] = 0.0  # black in the original too
    occluded = original.copy()
    occluded[1:3, 1:4] = 0.0  # the hole
    occluded[4, 6] = 0.0
    occluded[0, 7] += 0.011  # sum 0.033 > 0.03
    occluded[5, 0] += 0.009  # sum 0.027
    occluded[5, 7, 0] += 0.031  # one channel alone above the threshold
    expected = np.zeros((6, 8), bool)
    expected[1:3, 1:4] = expected[0, 7] = expected[5, 7] = True
    np.testing.assert_array_equal(channel_sum_mask(occluded, original), expected)
    np.testing.assert_array_equal(channel_sum_mask(occluded, original, threshold=0.02), expected | (
        np.arange(48).reshape(6, 8) == 40))  # (5, 0): 0.027 > 0.02
    np.testing.assert_array_equal(channel_sum_mask(occluded[..., 0], original[..., 0]), expected & ~(
        np.arange(48).reshape(6, 8) == 7))  # gray: (0, 7) differs by 0.011 only
    estimate = estimate_occlusion_mask(occluded, original, open_size=1, min_area=1)
    assert not estimate[0, 7] and estimate[1:3, 1:4].all()  # the max-channel rule ignores the small change
    with pytest.raises(ValueError, match="threshold"):
        channel_sum_mask(occluded, original, threshold=-1.0)
    with pytest.raises(ValueError, match="expected one shape"):
        channel_sum_mask(occluded, original[:5])


def test_occluded_pairs_mask_rule(tmp_path):
    original = _photo(7)
    box = _write_pair(tmp_path, "bed_1.jpg", original, (20, 30, 30, 32))
    estimated = OccludedPairs(tmp_path)[0]["mask"][0].numpy().astype(bool)
    seed = OccludedPairs(tmp_path, mask_rule="channel-sum")
    assert seed.threshold == 0.03 and OccludedPairs(tmp_path).threshold == 0.1
    seed_mask = seed[0]["mask"][0].numpy().astype(bool)
    np.testing.assert_array_equal(estimated, box)
    occ, orig = (seed[0][k].permute(1, 2, 0).numpy() for k in ("occluded", "original"))
    np.testing.assert_array_equal(seed_mask, channel_sum_mask(occ, orig))
    assert seed_mask[box].all() and seed_mask[~box].sum() > 0  # the hole plus JPEG noise outside it
    with pytest.raises(ValueError, match=r"mask_rule.*'estimate', 'channel-sum'"):
        OccludedPairs(tmp_path, mask_rule="sum")
