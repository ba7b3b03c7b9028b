"""Splits, seeded crops / flips and batch sampling (rlenhance.data.transforms)."""

import hashlib

import numpy as np
import pytest
import torch

from rlenhance.data import (
    ResizedImages,
    fit_longer_side,
    random_crop,
    random_flip,
    resize_image,
    sample_batch,
    scene_key,
    split_names,
    working_square,
)
from rlenhance.errors import DatasetError

# ------------------------------------------------------------------ scene_key / split_names


@pytest.mark.parametrize(
    "name, key",
    [
        ("011_2.jpg", "011"),
        ("011_0.jpg", "011"),
        ("011.jpg", "011"),
        ("IMG_0001.jpg", "IMG_0001"),  # no digit left in "IMG": not a frame index
        ("bed_12.jpg", "bed_12"),
        ("a1_b_3.png", "a1_b"),
        ("our485/2.png", "our485/2"),
        ("scene7_10_4.png", "scene7_10"),
    ],
)
def test_scene_key_known_values(name, key):
    assert scene_key(name) == key


def _sice_like_names(n_scenes=40):
    rng = np.random.default_rng(123)
    names = []
    for s in range(n_scenes):
        names += [f"{s:03d}_{k}.jpg" for k in range(int(rng.integers(1, 4)))]
    return names


def test_split_names_disjoint_complete_and_grouped_by_scene():
    names = _sice_like_names()
    train, tune, val = split_names(names, val_fraction=0.25, tune_fraction=0.1, seed=0)
    parts = (train, tune, val)
    assert sorted(train + tune + val) == sorted(names)
    scenes = [{scene_key(n) for n in part} for part in parts]
    for i in range(3):
        for j in range(i + 1, 3):
            assert scenes[i].isdisjoint(scenes[j])
    assert len(scenes[2]) == round(0.25 * 40) and len(scenes[1]) == round(0.1 * 40)
    # Each list keeps the input order.
    for part in parts:
        assert part == [n for n in names if n in set(part)]


def test_split_names_val_does_not_depend_on_the_tuning_split():
    names = _sice_like_names()
    without = split_names(names, val_fraction=0.1, tune_fraction=0, seed=3)
    with_tune = split_names(names, val_fraction=0.1, tune_fraction=0.2, seed=3)
    assert with_tune.val == without.val and without.tune == []
    assert sorted(with_tune.train + with_tune.tune) == sorted(without.train)
    assert len({scene_key(n) for n in with_tune.tune}) == round(0.2 * 40)


def test_split_names_matches_documented_sha256_rule_and_ignores_order():
    names = _sice_like_names()
    seed = 7
    scenes = sorted({scene_key(n) for n in names})

    def position(key):
        digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    ordered = sorted(scenes, key=position)
    n_val, n_tune = round(0.1 * len(scenes)), round(0.15 * len(scenes))
    shuffled = list(np.random.default_rng(0).permutation(names))
    _, tune, val = split_names(shuffled, val_fraction=0.1, tune_fraction=0.15, seed=seed)
    assert {scene_key(n) for n in val} == set(ordered[:n_val])
    assert {scene_key(n) for n in tune} == set(ordered[n_val:n_val + n_tune])


def test_split_names_seed_changes_split_and_is_repeatable():
    names = _sice_like_names()
    splits = [tuple(split_names(names, val_fraction=0.2, seed=s).val) for s in range(4)]
    assert splits[0] == tuple(split_names(names, val_fraction=0.2, seed=0).val)
    assert len(set(splits)) > 1


def test_split_names_at_least_one_group_each_and_training_keeps_one():
    names = ["a1_0.png", "a1_1.png", "b2_0.png", "c3_0.png"]
    train, tune, val = split_names(names, val_fraction=0.01, tune_fraction=0.01, seed=0)
    assert len({scene_key(n) for n in val}) == 1 and len({scene_key(n) for n in tune}) == 1 and train
    # group=None: every file is its own group, so the frames of a1 may be separated.
    train, tune, val = split_names(names, val_fraction=0.5, tune_fraction=0, seed=0, group=None)
    assert len(val) == 2 and len(train) == 2 and not tune
    # two groups: validation takes one, training keeps the other, no tuning split is left
    train, tune, val = split_names(["a.png", "b.png"], val_fraction=0.5, tune_fraction=0.5, seed=0)
    assert len(train) == 1 and len(val) == 1 and tune == []


def test_split_names_errors():
    with pytest.raises(DatasetError, match="at least 2 groups"):
        split_names(["001_0.png", "001_1.png"], val_fraction=0.5, seed=0)
    with pytest.raises(ValueError, match="val_fraction"):
        split_names(["a.png", "b.png"], val_fraction=1.0, seed=0)
    with pytest.raises(ValueError, match="tune_fraction"):
        split_names(["a.png", "b.png"], tune_fraction=-0.1, seed=0)


# ------------------------------------------------------------------ crops and flips


def _item(h=12, w=17):
    a = torch.arange(h * w, dtype=torch.float32).view(1, h, w)
    return {"a": a, "b": torch.cat([a + 1000, a + 2000]), "name": "x.png"}


def test_random_crop_window_from_rng_and_shared_by_keys():
    item = _item()
    out = random_crop(item, (5, 7), np.random.default_rng(3))
    ref = np.random.default_rng(3)
    top, left = int(ref.integers(0, 12 - 5 + 1)), int(ref.integers(0, 17 - 7 + 1))
    assert torch.equal(out["a"], item["a"][:, top : top + 5, left : left + 7])
    assert torch.equal(out["b"][0] - 1000, out["a"][0])
    assert torch.equal(out["b"][1] - 2000, out["a"][0])
    assert out["name"] == "x.png"
    assert random_crop(item, 4, np.random.default_rng(0))["a"].shape == (1, 4, 4)


def test_random_crop_larger_than_image_names_sizes():
    with pytest.raises(DatasetError, match=r"crop 20x7 is larger than the image 12x17"):
        random_crop(_item(), (20, 7), np.random.default_rng(0))


def test_random_crop_rejects_mismatched_tensors():
    item = {"a": torch.zeros(1, 4, 4), "b": torch.zeros(1, 4, 5), "name": "bad.png"}
    with pytest.raises(DatasetError, match="bad.png"):
        random_crop(item, 2, np.random.default_rng(0))


def test_random_crop_of_a_super_resolution_pair_takes_the_scaled_window():
    """A target 4x the input is cut at the input's window times 4, so the pair stays aligned;
    a tensor that is not an integer multiple is refused."""
    low = torch.arange(6 * 8, dtype=torch.float32).view(1, 6, 8)
    high = low.repeat_interleave(4, dim=-2).repeat_interleave(4, dim=-1)  # nearest 4x upsampling
    out = random_crop({"low": low, "high": high, "name": "p.png"}, (3, 5), np.random.default_rng(7))
    ref = np.random.default_rng(7)
    top, left = int(ref.integers(0, 6 - 3 + 1)), int(ref.integers(0, 8 - 5 + 1))
    assert torch.equal(out["low"], low[:, top : top + 3, left : left + 5]) and out["high"].shape == (1, 12, 20)
    assert torch.equal(out["high"][:, ::4, ::4], out["low"])
    with pytest.raises(DatasetError, match="integer multiples"):
        random_crop({"low": low, "high": torch.zeros(1, 12, 17), "name": "p.png"}, 2, np.random.default_rng(0))


def test_random_flip_same_for_all_keys_and_covers_all_cases():
    item = _item()
    seen = set()
    for seed in range(40):
        out = random_flip(item, np.random.default_rng(seed))
        assert torch.equal(out["b"][0] - 1000, out["a"][0])
        flips = None
        for lr in (False, True):
            for ud in (False, True):
                dims = [d for d, f in ((-1, lr), (-2, ud)) if f]
                expected = torch.flip(item["a"], dims) if dims else item["a"]
                if torch.equal(out["a"], expected):
                    flips = (lr, ud)
        assert flips is not None
        seen.add(flips)
        again = random_flip(item, np.random.default_rng(seed))
        assert torch.equal(again["a"], out["a"])
    assert len(seen) == 4


def test_random_flip_without_vertical_flips_left_right_only_and_draws_the_same_coins():
    """vertical=False: the left-right coin decides as it would with vertical flips allowed, the
    up-down coin is drawn and ignored, so the generator ends in the same state."""
    item = _item()
    seen = set()
    for seed in range(40):
        both_rng, left_right_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        both = random_flip(item, both_rng)
        out = random_flip(item, left_right_rng, vertical=False)
        lr = torch.equal(out["a"], torch.flip(item["a"], [-1]))
        assert lr or torch.equal(out["a"], item["a"])
        assert torch.equal(out["b"][0] - 1000, out["a"][0])
        # the left-right choice is the one random_flip makes with vertical flips allowed
        assert lr == (torch.equal(both["a"], torch.flip(item["a"], [-1])) or
                      torch.equal(both["a"], torch.flip(item["a"], [-1, -2])))
        assert left_right_rng.random() == both_rng.random()
        seen.add(lr)
    assert seen == {False, True}


# ------------------------------------------------------------------ sample_batch


class _ListDataset(torch.utils.data.Dataset):
    """A plain dataset (no raw_item) of uint8-valued float images."""

    def __init__(self, sizes):
        gen = torch.Generator().manual_seed(0)
        self.items = []
        for i, (h, w) in enumerate(sizes):
            low = torch.randint(0, 256, (3, h, w), generator=gen).float() / 255
            self.items.append({"low": low, "high": low.flip(0), "name": f"{i}.png"})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return dict(self.items[i])


class _RawDataset(_ListDataset):
    """The same items served as uint8 through raw_item (the fast path)."""

    def raw_item(self, i):
        item = self.items[i]
        return {"low": (item["low"] * 255).round().to(torch.uint8),
                "high": (item["high"] * 255).round().to(torch.uint8), "name": item["name"]}


def test_sample_batch_reproducible_shapes_and_names():
    ds = _ListDataset([(20, 24), (30, 26), (22, 22)])
    a = sample_batch(ds, 5, crop=(8, 10), rng=np.random.default_rng(1))
    b = sample_batch(ds, 5, crop=(8, 10), rng=np.random.default_rng(1))
    c = sample_batch(ds, 5, crop=(8, 10), rng=np.random.default_rng(2))
    assert a["low"].shape == (5, 3, 8, 10) and a["low"].dtype == torch.float32
    assert torch.equal(a["low"], b["low"]) and a["names"] == b["names"]
    assert not torch.equal(a["low"], c["low"])
    assert len(a["names"]) == 5 and set(a["names"]) <= {"0.png", "1.png", "2.png"}
    assert torch.equal(a["high"], a["low"].flip(1))  # crop and flips shared by the keys


def test_sample_batch_fast_path_equals_plain_path():
    sizes = [(20, 24), (30, 26), (22, 22)]
    plain = sample_batch(_ListDataset(sizes), 6, crop=9, rng=np.random.default_rng(5))
    fast = sample_batch(_RawDataset(sizes), 6, crop=9, rng=np.random.default_rng(5))
    assert plain["names"] == fast["names"]
    torch.testing.assert_close(plain["low"], fast["low"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("batch_size", [2, 5, 7, 12])
def test_sample_batch_spread_uses_every_item_evenly(batch_size):
    ds = _ListDataset([(10, 10)] * 5)

    def counts(**kw):
        names = sample_batch(ds, batch_size, crop=4, rng=np.random.default_rng(3), **kw)["names"]
        return np.bincount([int(name.split(".")[0]) for name in names], minlength=5)

    spread = counts(spread=True)
    assert spread.sum() == batch_size and spread.max() - spread.min() <= 1  # none twice before all once
    assert np.array_equal(spread, counts(spread=True))
    if batch_size == 12:  # with replacement (the default) this draw repeats some items more than others
        assert counts().max() - counts().min() > 1


def test_sample_batch_rows_of_their_own_generators_do_not_depend_on_the_batch():
    ds = _ListDataset([(20, 24), (30, 26), (22, 22), (25, 21)])

    def rows(seeds):
        return sample_batch(ds, len(seeds), crop=(8, 10), rng=[np.random.default_rng([7, s]) for s in seeds])

    four, two, alone = rows([0, 1, 2, 3]), rows([2, 3]), rows([3])
    assert four["names"][2:] == two["names"] and four["names"][3:] == alone["names"]
    assert torch.equal(four["low"][2:], two["low"]) and torch.equal(four["low"][3:], alone["low"])
    assert not torch.equal(four["low"][0], four["low"][1])


@pytest.mark.parametrize("rng, spread", [([np.random.default_rng(0)] * 2, False),
                                         ([np.random.default_rng(0)] * 3, True), ([0, 1, 2], False), (3, False)])
def test_sample_batch_refuses_generators_per_row_that_do_not_fit(rng, spread):
    with pytest.raises(ValueError, match="rng: expected a numpy Generator, or a sequence of 3"):
        sample_batch(_ListDataset([(10, 10)]), 3, crop=4, rng=rng, spread=spread)


def test_sample_batch_full_images_need_one_size():
    batch = sample_batch(_ListDataset([(6, 7), (6, 7)]), 3, crop=None, rng=np.random.default_rng(0), flip=False)
    assert batch["low"].shape == (3, 3, 6, 7)
    with pytest.raises(DatasetError, match="crop=None needs images of one size"):
        sample_batch(_ListDataset([(6, 7), (8, 7)]), 8, crop=None, rng=np.random.default_rng(0))


def test_sample_batch_empty_dataset():
    with pytest.raises(DatasetError, match="empty"):
        sample_batch(_ListDataset([]), 2, crop=4, rng=np.random.default_rng(0))


def test_fit_longer_side_area_downscales_only_larger_images():
    image = torch.arange(2 * 3 * 8 * 12, dtype=torch.float32).reshape(2, 3, 8, 12)
    small = fit_longer_side(image, 6)
    assert small.shape == (2, 3, 4, 6)
    assert torch.allclose(small, torch.nn.functional.avg_pool2d(image, 2))  # area = 2x2 means here
    assert fit_longer_side(image, 12) is image and fit_longer_side(image[0], 3).shape == (3, 2, 3)
    with pytest.raises(ValueError, match="max_side"):
        fit_longer_side(image, 0)


def test_the_working_square_is_the_area_mean_of_each_cell_at_any_aspect():
    image = torch.arange(2 * 3 * 8 * 12, dtype=torch.float32).reshape(2, 3, 8, 12)
    square = working_square(image, 4)
    assert square.shape == (2, 3, 4, 4)
    assert torch.allclose(square, torch.nn.functional.avg_pool2d(image, (2, 3)))  # cells of 2 x 3 pixels here
    tall = working_square(image, 16)  # larger than the image: each row twice, some columns twice
    assert tall.shape == (2, 3, 16, 16) and torch.equal(tall[..., ::2, :], tall[..., 1::2, :])
    assert working_square(tall, 16) is tall
    with pytest.raises(ValueError, match="side"):
        working_square(image, 0)


def test_resized_images_keep_pairs_aligned_and_names():
    class Pairs:
        def __len__(self):
            return 1

        def __getitem__(self, index):
            low = torch.full((3, 20, 40), 51, dtype=torch.uint8)
            return {"name": "a", "low": low, "high": low * 2}

    item = ResizedImages(Pairs(), 10)[0]
    assert item["name"] == "a" and item["low"].shape == item["high"].shape == (3, 5, 10)
    assert torch.allclose(item["low"], torch.tensor(0.2)) and torch.allclose(item["high"], torch.tensor(0.4))
    with pytest.raises(ValueError, match="max_side"):
        ResizedImages(Pairs(), 0)


def test_cached_resized_images_resize_each_item_once_and_hand_out_copies():
    """cache=True: an item is resized on its first use only; its items and the batches drawn from it equal
    those of the uncached dataset, and changing one does not touch the cache."""
    class Photos:
        def __init__(self):
            self.calls = []

        def __len__(self):
            return 2

        def __getitem__(self, index):
            self.calls.append(index)
            image = torch.arange(3 * 24 * 36, dtype=torch.float32).view(3, 24, 36) / (3 * 24 * 36)
            return {"name": str(index), "high": image.roll(index, -1)}

    photos = Photos()
    cached, plain = ResizedImages(photos, 12, cache=True), ResizedImages(Photos(), 12)
    for _ in range(2):
        ours, theirs = (sample_batch(d, 5, crop=6, rng=np.random.default_rng(3))["high"] for d in (cached, plain))
        assert torch.equal(ours, theirs)
    item = cached[1]
    assert torch.equal(item["high"], plain[1]["high"])
    item["high"].zero_()
    assert cached[1]["high"].abs().sum() > 0
    assert sorted(photos.calls) == [0, 1]


def test_resize_image_to_a_size_matches_pil_bilinear():
    from PIL import Image

    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (30, 44, 3), dtype=np.uint8)
    image = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    for size in ((64, 64), (16, 20)):  # up and down (the seeds: 224 -> 256 and 224 -> 128)
        got = resize_image(image, size)
        assert got.shape == (3, *size)
        pil = Image.fromarray(photo).resize(size[::-1], Image.BILINEAR)  # torchvision's Resize on a PIL image
        expected = torch.from_numpy(np.array(pil)).permute(2, 0, 1).float() / 255
        assert float((got - expected).abs().max()) < 1.5 / 255  # PIL rounds to 8 bits; no antialiasing: 110 / 255
    assert resize_image(image, (30, 44)) is image
    with pytest.raises(ValueError, match=r"size: expected two integers >= 1"):
        resize_image(image, (0, 5))


def test_resized_images_to_a_size_mark_every_pixel_the_hole_reaches_as_missing():
    class Occluded:
        def __len__(self):
            return 1

        def __getitem__(self, index):
            original = torch.linspace(0.2, 1, 20 * 24).reshape(1, 20, 24).expand(3, 20, 24)
            mask = torch.zeros(1, 20, 24, dtype=torch.bool)
            mask[:, 5:15, 6:18] = True
            return {"name": "bed", "original": original.clone(), "occluded": original * ~mask, "mask": mask}

    raw = Occluded()[0]
    for size in ((40, 36), (10, 12)):  # up and down
        item = ResizedImages(Occluded(), size=size)[0]
        assert item["name"] == "bed" and all(item[k].shape[-2:] == size for k in ("original", "occluded", "mask"))
        assert torch.allclose(item["original"], resize_image(raw["original"], size))
        mask = item["mask"]
        assert set(mask.unique().tolist()) == {0.0, 1.0}
        known = mask.expand(3, *size) == 0
        # every pixel left known is exactly the resized original (no black blended in) ...
        assert torch.allclose(item["occluded"][known], item["original"][known], atol=1e-6)
        # ... and the mask is no larger than that: each missing pixel differs
        assert bool((item["occluded"] - item["original"]).abs().amax(0)[mask[0] == 1].gt(1e-3).all())
    # one size for every image, so they batch whole or cropped
    batch = sample_batch(ResizedImages(Occluded(), size=(40, 36)), 2, crop=32, rng=np.random.default_rng(0))
    assert batch["mask"].shape == (2, 1, 32, 32)
    half = ResizedImages(Occluded(), 12)[0]  # max_side mode (area): the same rule
    assert half["original"].shape == (3, 10, 12) and set(half["mask"].unique().tolist()) == {0.0, 1.0}
    known = half["mask"].expand(3, 10, 12) == 0
    assert torch.allclose(half["occluded"][known], half["original"][known], atol=1e-6)
    for bad in ({}, {"max_side": 8, "size": (4, 4)}):
        with pytest.raises(ValueError, match="give max_side or size"):
            ResizedImages(Occluded(), **bad)
    with pytest.raises(ValueError, match="size"):
        ResizedImages(Occluded(), size=(4,))
