"""PairedImages / UnpairedImages on small generated folders, and on ../shared SICE pairs."""

import numpy as np
import pytest
import torch
from PIL import Image

from rlenhance.data import PairedImages, UnpairedImages, sample_batch, scene_key
from rlenhance.errors import DatasetError


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


def _rgb(rng, h=12, w=16):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _make_pairs(folder, names, rng, size=(12, 16)):
    """Write folder/low/NAME and folder/high/NAME; return {name: (low, high)} uint8 arrays."""
    out = {}
    for name in names:
        high = _rgb(rng, *size)
        low = (high // 8).astype(np.uint8)
        out[name] = (_write(folder / "low" / name, low), _write(folder / "high" / name, high))
    return out


def test_pairs_layout_loads_exact_rgb_values(tmp_path):
    arrays = _make_pairs(tmp_path, ["a.png", "b.png", "c.png"], np.random.default_rng(0))
    ds = PairedImages(tmp_path)
    assert len(ds) == 3 and ds.names == ["a.png", "b.png", "c.png"]
    item = ds[1]
    assert set(item) == {"low", "high", "name"} and item["name"] == "b.png"
    low, high = arrays["b.png"]
    assert item["low"].shape == (3, 12, 16) and item["low"].dtype == torch.float32
    # RGB order and exact 8-bit values (uint8 cache is lossless).
    torch.testing.assert_close(item["high"], torch.from_numpy(high).permute(2, 0, 1).float() / 255, atol=0, rtol=0)
    torch.testing.assert_close(item["low"], torch.from_numpy(low).permute(2, 0, 1).float() / 255, atol=0, rtol=0)
    # The cache holds uint8; cache=False decodes the same values.
    assert ds.raw_item(1)["low"].dtype == torch.uint8
    nocache = PairedImages(tmp_path, cache=False)[1]
    assert torch.equal(nocache["low"], item["low"]) and torch.equal(nocache["high"], item["high"])


def test_gray_gives_bt601_luma(tmp_path):
    arrays = _make_pairs(tmp_path, ["a.png", "b.png"], np.random.default_rng(1))
    item = PairedImages(tmp_path, gray=True)[0]
    assert item["high"].shape == (1, 12, 16)
    high = arrays["a.png"][1].astype(np.float64) / 255
    luma = 0.299 * high[..., 0] + 0.587 * high[..., 1] + 0.114 * high[..., 2]
    np.testing.assert_allclose(item["high"][0].numpy(), luma, atol=1e-6)


def test_lol_parent_layout_and_splits(tmp_path):
    rng = np.random.default_rng(2)
    _make_pairs(tmp_path / "our485", ["2.png", "5.png", "7.png"], rng)
    _make_pairs(tmp_path / "eval15", ["1.png", "22.png"], rng)
    train, tune = (PairedImages(tmp_path, split=s, tune_fraction=0.34).names for s in ("train", "tune"))
    assert sorted(train + tune) == ["our485/2.png", "our485/5.png", "our485/7.png"] and len(tune) == 1
    assert PairedImages(tmp_path, split="train", tune_fraction=0).names == sorted(train + tune)
    assert PairedImages(tmp_path, split="val").names == ["eval15/1.png", "eval15/22.png"]
    both = PairedImages(tmp_path)
    assert len(both) == 5 and both[4]["name"] == "eval15/22.png"


def test_lol_val_split_without_eval15_is_an_error(tmp_path):
    _make_pairs(tmp_path / "our485", ["2.png", "5.png"], np.random.default_rng(3))
    with pytest.raises(DatasetError, match="eval15/"):
        PairedImages(tmp_path, split="val")


def test_hash_split_keeps_scenes_together_and_is_repeatable(tmp_path):
    names = [f"{s:03d}_{k}.png" for s in range(12) for k in range(s % 3 + 1)]
    _make_pairs(tmp_path, names, np.random.default_rng(4), size=(4, 4))
    train = PairedImages(tmp_path, split="train", val_fraction=0.25, seed=1, cache=False)
    val = PairedImages(tmp_path, split="val", val_fraction=0.25, seed=1, cache=False)
    tune = PairedImages(tmp_path, split="tune", val_fraction=0.25, seed=1, cache=False)
    assert sorted(train.names + tune.names + val.names) == sorted(names)
    scenes = [{scene_key(n) for n in ds.names} for ds in (train, tune, val)]
    assert scenes[0].isdisjoint(scenes[1]) and scenes[0].isdisjoint(scenes[2]) and scenes[1].isdisjoint(scenes[2])
    assert len(scenes[2]) == 3 and len(scenes[1]) == 1  # the default tune_fraction, 0.1 of 12 scenes
    assert PairedImages(tmp_path, split="val", val_fraction=0.25, seed=1, cache=False).names == val.names
    other = [PairedImages(tmp_path, split="val", val_fraction=0.25, seed=s, cache=False).names for s in range(2, 6)]
    assert any(o != val.names for o in other)


def test_unpaired_flat_folder(tmp_path):
    rng = np.random.default_rng(5)
    arrays = {n: _write(tmp_path / n, _rgb(rng)) for n in ["x.png", "y.jpg", "z.bmp"]}
    (tmp_path / "notes.txt").write_text("not an image")
    ds = UnpairedImages(tmp_path)
    assert ds.names == ["x.png", "y.jpg", "z.bmp"]
    item = ds[0]
    assert set(item) == {"low", "name"}
    torch.testing.assert_close(item["low"], torch.from_numpy(arrays["x.png"]).permute(2, 0, 1).float() / 255,
                               atol=0, rtol=0)
    train = UnpairedImages(tmp_path, split="train", val_fraction=0.3, seed=0)
    tune = UnpairedImages(tmp_path, split="tune", val_fraction=0.3, seed=0)
    val = UnpairedImages(tmp_path, split="val", val_fraction=0.3, seed=0)
    assert len(val) == len(tune) == 1 and sorted(train.names + tune.names + val.names) == ds.names


def test_a_high_folder_alone_holds_references_split_by_scene(tmp_path):
    """Layout (e): well-exposed photos without dark captures, items without "low"; open_dataset reads it."""
    from rlenhance.data import open_dataset

    rng = np.random.default_rng(7)
    names = [f"{scene}_{k}.png" for scene in range(5) for k in (1, 2)]
    arrays = {n: _write(tmp_path / "high" / n, _rgb(rng)) for n in names}
    ds = PairedImages(tmp_path)
    assert ds.layout == "references" and ds.names == names and ds.scale == 1
    item = ds[3]
    assert set(item) == {"high", "name"}
    torch.testing.assert_close(item["high"], torch.from_numpy(arrays[names[3]]).permute(2, 0, 1).float() / 255,
                               atol=0, rtol=0)
    splits = {s: open_dataset(tmp_path, kind="paired", split=s, gray=False, seed=0, val_fraction=0.2,
                              tune_fraction=0.2).names for s in ("train", "tune", "val")}
    assert sorted(sum(splits.values(), [])) == names
    assert all({scene_key(n) for n in splits[a]}.isdisjoint(scene_key(n) for n in splits[b])
               for a, b in (("train", "tune"), ("train", "val"), ("tune", "val")))
    _write(tmp_path / "stray.png", _rgb(rng))  # photos beside high/: dark ones, or more references?
    with pytest.raises(DatasetError, match=r"holds both photos \(stray.png\) and high/"):
        PairedImages(tmp_path)


def test_dataset_works_with_dataloader_and_sample_batch(tmp_path):
    _make_pairs(tmp_path, ["a.png", "b.png", "c.png"], np.random.default_rng(6))
    ds = PairedImages(tmp_path)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["low"].shape == (2, 3, 12, 16) and batch["name"] == ["a.png", "b.png"]
    drawn = sample_batch(ds, 4, crop=(5, 6), rng=np.random.default_rng(0))
    assert drawn["low"].shape == (4, 3, 5, 6) and drawn["high"].shape == (4, 3, 5, 6)
    # low was written as high // 8: crops and flips are shared by the pair.
    torch.testing.assert_close(drawn["low"], torch.floor(drawn["high"] * 255 / 8) / 255, atol=1e-6, rtol=0)


# ------------------------------------------------------------------ errors


def test_empty_folder_lists_accepted_extensions(tmp_path):
    (tmp_path / "low").mkdir()
    (tmp_path / "high").mkdir()
    with pytest.raises(DatasetError, match=r"no images in .*low.*\.png.*\.jpg"):
        PairedImages(tmp_path)
    with pytest.raises(DatasetError, match=r"no images in .*\.png"):
        UnpairedImages(tmp_path / "low")


def test_missing_partners_named_in_both_directions(tmp_path):
    rng = np.random.default_rng(7)
    _make_pairs(tmp_path, ["a.png", "b.png"], rng)
    _write(tmp_path / "low" / "only_low1.png", _rgb(rng))
    _write(tmp_path / "low" / "only_low2.png", _rgb(rng))
    _write(tmp_path / "high" / "only_high.png", _rgb(rng))
    with pytest.raises(DatasetError) as info:
        PairedImages(tmp_path)
    message = str(info.value)
    for name in ("only_low1.png", "only_low2.png", "only_high.png"):
        assert name in message
    assert "a.png" not in message


def test_size_mismatch_names_both_files_and_sizes(tmp_path):
    rng = np.random.default_rng(8)
    _make_pairs(tmp_path, ["a.png"], rng)
    _write(tmp_path / "low" / "b.png", _rgb(rng, 12, 16))
    _write(tmp_path / "high" / "b.png", _rgb(rng, 10, 16))
    with pytest.raises(DatasetError) as info:
        PairedImages(tmp_path)
    message = str(info.value)
    assert "low/b.png is 12x16" in message and "high/b.png is 10x16" in message


def test_unreadable_files_all_named_in_one_error(tmp_path):
    _make_pairs(tmp_path, ["a.png", "b.png", "c.png"], np.random.default_rng(9))
    (tmp_path / "low" / "b.png").write_bytes(b"this is not a png")
    (tmp_path / "high" / "c.png").write_bytes(b"")
    with pytest.raises(DatasetError) as info:
        PairedImages(tmp_path)
    message = str(info.value)
    assert "low/b.png" in message and "high/c.png" in message and "2 unusable" in message
    # Without the cache the error comes when the bad item is read.
    lazy = PairedImages(tmp_path, cache=False)
    assert lazy[0]["name"] == "a.png"
    with pytest.raises(DatasetError, match="low/b.png"):
        lazy[1]


def test_missing_high_folder_names_accepted_layouts(tmp_path):
    _write(tmp_path / "low" / "a.png", _rgb(np.random.default_rng(10)))
    with pytest.raises(DatasetError, match=r"high/ is missing.*accepted layouts"):
        PairedImages(tmp_path)
    (tmp_path / "low" / "a.png").unlink()
    (tmp_path / "low").rmdir()
    (tmp_path / "photos").mkdir()
    with pytest.raises(DatasetError, match=r"no low/ and high/ folders.*photos/.*our485"):
        PairedImages(tmp_path)


def _make_seed_pairs(folder, inputs, ids, rng, scale=1):
    """The MRPNet seed's pair folder: folder/<inputs>/<inputs>_ID and folder/gt/gt_ID (targets
    ``scale`` times the inputs, constant on each scale x scale block); {ID: (input, target)} uint8 arrays."""
    out = {}
    for image_id in ids:
        base = _rgb(rng, 8, 10)
        high = base.repeat(scale, axis=0).repeat(scale, axis=1)
        low = (base // 8).astype(np.uint8)
        out[image_id] = (_write(folder / inputs / f"{inputs}_{image_id}", low),
                         _write(folder / "gt" / f"gt_{image_id}", high))
    return out


def test_seed_layout_pairs_train_id_with_gt_id(tmp_path):
    """Layout (c): train/train_ID + gt/gt_ID, matched after dropping the prefixes; split by scene."""
    arrays = _make_seed_pairs(tmp_path, "train", ["1.png", "2.png", "10.png"], np.random.default_rng(20))
    ds = PairedImages(tmp_path)
    assert ds.layout == "seed" and ds.names == ["train_1.png", "train_10.png", "train_2.png"]
    low, high = arrays["10.png"]
    item = ds[1]
    torch.testing.assert_close(item["low"], torch.from_numpy(low).permute(2, 0, 1).float() / 255, atol=0, rtol=0)
    torch.testing.assert_close(item["high"], torch.from_numpy(high).permute(2, 0, 1).float() / 255, atol=0, rtol=0)
    train, val = PairedImages(tmp_path, split="train", tune_fraction=0), PairedImages(tmp_path, split="val")
    assert len(val) == 1 and sorted(train.names + val.names) == sorted(ds.names)


def test_seed_layout_names_unpaired_files_and_its_naming(tmp_path):
    rng = np.random.default_rng(23)
    _make_seed_pairs(tmp_path, "train", ["1.png"], rng)
    _write(tmp_path / "train" / "train_5.png", _rgb(rng))
    _write(tmp_path / "gt" / "gt_6.png", _rgb(rng))
    with pytest.raises(DatasetError) as info:
        PairedImages(tmp_path)
    message = str(info.value)
    assert "train_5.png" in message and "gt_6.png" in message and "train_ID next to gt_ID" in message
    assert "train_1.png" not in message


def test_seed_parent_layout_reads_train_and_val_subsets(tmp_path):
    """Layout (d): archive/train/{train,gt} and archive/val/{val,gt}, one subset per split."""
    rng = np.random.default_rng(21)
    _make_seed_pairs(tmp_path / "train", "train", ["1.png", "2.png"], rng)
    _make_seed_pairs(tmp_path / "val", "val", ["7.png"], rng)
    assert PairedImages(tmp_path, split="train", tune_fraction=0).names == ["train/train_1.png", "train/train_2.png"]
    val = PairedImages(tmp_path, split="val")
    assert val.layout == "seed-parent" and val.names == ["val/val_7.png"]
    assert len(PairedImages(tmp_path)) == 3


def test_super_resolution_pairs_need_their_scale(tmp_path):
    """The seed's targets are 4x the inputs: scale=4 (or None, read from the data) accepts them,
    the default scale=1 refuses them naming both sizes."""
    _make_seed_pairs(tmp_path, "train", ["1.png", "2.png"], np.random.default_rng(22), scale=4)
    for scale in (4, None):
        ds = PairedImages(tmp_path, scale=scale)
        assert ds.scale == 4 and ds[0]["low"].shape == (3, 8, 10) and ds[0]["high"].shape == (3, 32, 40)
        drawn = sample_batch(ds, 3, crop=4, rng=np.random.default_rng(0))
        assert drawn["low"].shape == (3, 3, 4, 4) and drawn["high"].shape == (3, 3, 16, 16)
        # the inputs were written as the targets' 4x4 blocks // 8: the windows (and flips) are aligned
        torch.testing.assert_close(drawn["low"], torch.floor(drawn["high"][..., ::4, ::4] * 255 / 8) / 255,
                                   atol=1e-6, rtol=0)
    with pytest.raises(DatasetError, match=r"train_1.png is 8x10.*gt_1.png is 32x40"):
        PairedImages(tmp_path)
    with pytest.raises(DatasetError, match=r"gt_1.png is 32x40 \(HxW\); the high image must be 2 times the low one"):
        PairedImages(tmp_path, scale=2)
    with pytest.raises(ValueError, match="scale"):
        PairedImages(tmp_path, scale=0)


def test_no_layout_lists_every_accepted_layout(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(DatasetError) as info:
        PairedImages(tmp_path)
    message = str(info.value)
    for layout in ("ROOT/low/ and ROOT/high/", "our485", "ROOT/gt/", "train/train/ + train/gt/"):
        assert layout in message, layout
    (tmp_path / "gt").mkdir()  # targets without an inputs folder
    with pytest.raises(DatasetError, match=r"neither of .*train/ and .*val/"):
        PairedImages(tmp_path)


def test_tuning_split_without_scenes_left_is_an_error(tmp_path):
    _make_pairs(tmp_path, ["a.png", "b.png"], np.random.default_rng(13))
    assert len(PairedImages(tmp_path, split="train")) == 1  # train and val still work
    with pytest.raises(DatasetError, match="tuning split.*at least 3 scenes"):
        PairedImages(tmp_path, split="tune")


def test_bad_split_value(tmp_path):
    _make_pairs(tmp_path, ["a.png"], np.random.default_rng(11))
    with pytest.raises(ValueError, match="split"):
        PairedImages(tmp_path, split="test")


# ------------------------------------------------------------------ real data


def test_sice_pairs_split_by_scene(shared_dir):
    root = shared_dir / "data" / "sice_pairs" / "train"
    full = PairedImages(root, cache=False)
    train, tune, val = (PairedImages(root, split=s, cache=False) for s in ("train", "tune", "val"))
    assert len(full) == 197 and (len(train), len(tune), len(val)) == (147, 28, 22)
    assert sorted(train.names + tune.names + val.names) == sorted(full.names)
    train_scenes, tune_scenes, val_scenes = ({scene_key(n) for n in ds.names} for ds in (train, tune, val))
    assert train_scenes.isdisjoint(val_scenes) and tune_scenes.isdisjoint(train_scenes | val_scenes)
    assert len(val_scenes) == len(tune_scenes) == round(0.1 * len(train_scenes | tune_scenes | val_scenes))
    item = val[0]
    assert item["low"].shape == item["high"].shape == (3, 512, 512)
    assert float(item["low"].mean()) < float(item["high"].mean())


def test_items_are_copies_of_the_cache(tmp_path):
    _make_pairs(tmp_path, ["a.png", "b.png"], np.random.default_rng(12))
    for gray in (False, True):  # uint8 cache (RGB) and float32 cache (luma of colour files)
        ds = PairedImages(tmp_path, gray=gray)
        assert ds.raw_item(0)["low"].dtype == (torch.float32 if gray else torch.uint8)
        first = ds[0]["low"].clone()
        ds[0]["low"].zero_()
        assert torch.equal(ds[0]["low"], first)
