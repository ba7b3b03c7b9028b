"""NoisyPairs (noisy/ + clean/ folders, SIDD-Small and -Medium naming), open_dataset's dispatch and
noisy_test_set on real pairs, on tiny PNG folders written in tmp_path."""

import numpy as np
import pytest
import torch
from PIL import Image

from rlenhance.data import (
    BuiltinImages,
    NoisyPairs,
    PairedImages,
    UnpairedImages,
    noisy_test_set,
    open_dataset,
)
from rlenhance.errors import DatasetError

SIZE = (12, 16)
#: SIDD-like scene folders (smartphone, ISO, shutter, illuminant, brightness).
SCENES = ("0001_001_S6_00100_00060_3200_L", "0002_001_S6_00100_00020_3200_N", "0003_001_S6_00100_00060_3200_H",
          "0004_001_S6_00100_00060_4400_L", "0005_001_S6_00100_00060_5500_N")


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


def _pair(rng, size=SIZE):
    """(clean, noisy) uint8 RGB arrays that differ."""
    clean = rng.integers(40, 216, (*size, 3), dtype=np.uint8)
    noise = rng.integers(-30, 31, clean.shape)
    return clean, np.clip(clean.astype(int) + noise, 0, 255).astype(np.uint8)


def _tensor(array):
    return torch.from_numpy(array).permute(2, 0, 1).float() / 255


def _named_folder(root, names, rng):
    """Layout (a): root/noisy/NAME + root/clean/NAME; {name: (clean, noisy)}."""
    out = {}
    for name in names:
        clean, noisy = _pair(rng)
        out[name] = (_write(root / "clean" / name, clean), _write(root / "noisy" / name, noisy))
    return out


def _sidd_folder(root, rng, *, medium, frames=("010",)):
    """Layout (b): one folder per scene; {"SCENE/NOISY_FILE": (clean, noisy)}."""
    out = {}
    for number, scene in enumerate(SCENES, start=1):
        prefix = f"{number:04d}_" if medium else ""
        for frame in frames:
            clean, noisy = _pair(rng)
            _write(root / scene / f"{prefix}GT_SRGB_{frame}.PNG", clean)
            _write(root / scene / f"{prefix}NOISY_SRGB_{frame}.PNG", noisy)
            out[f"{scene}/{prefix}NOISY_SRGB_{frame}.PNG"] = (clean, noisy)
    return out


def _assert_items(dataset, arrays):
    assert sorted(dataset.names) == sorted(arrays)
    for index, name in enumerate(dataset.names):
        item = dataset[index]
        assert set(item) == {"clean", "noisy", "name"} and item["name"] == name
        clean, noisy = arrays[name]
        assert item["clean"].shape == item["noisy"].shape == (3, *SIZE) and item["noisy"].dtype == torch.float32
        torch.testing.assert_close(item["clean"], _tensor(clean), atol=0, rtol=0)  # RGB, exact 8-bit values
        torch.testing.assert_close(item["noisy"], _tensor(noisy), atol=0, rtol=0)


def test_noisy_clean_folders_pair_by_name(tmp_path):
    arrays = _named_folder(tmp_path, ["a.png", "b.png", "c.png"], np.random.default_rng(0))
    dataset = NoisyPairs(tmp_path)
    assert dataset.layout == "pairs" and dataset.names == ["a.png", "b.png", "c.png"]
    _assert_items(dataset, arrays)
    uncached = NoisyPairs(tmp_path, cache=False)[2]
    assert torch.equal(uncached["noisy"], dataset[2]["noisy"])
    gray = NoisyPairs(tmp_path, gray=True)[0]
    assert gray["clean"].shape == gray["noisy"].shape == (1, *SIZE)
    rgb = dataset[0]["noisy"].double()
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    torch.testing.assert_close(gray["noisy"][0].double(), luma, atol=1e-6, rtol=0)


@pytest.mark.parametrize("medium", [False, True], ids=["sidd-small", "sidd-medium"])
def test_sidd_scene_folders_pair_noisy_with_gt(tmp_path, medium):
    arrays = _sidd_folder(tmp_path / "Data", np.random.default_rng(1), medium=medium)
    (tmp_path / "ReadMe.txt").write_text("SIDD")
    (tmp_path / "Data" / SCENES[0] / "0001_NOISY_RAW_010.MAT").write_bytes(b"raw")  # not an image: ignored
    for root in (tmp_path, tmp_path / "Data"):  # the archive's folder or its Data/
        dataset = NoisyPairs(root)
        assert dataset.layout == "sidd"
        _assert_items(dataset, arrays)


def test_sidd_split_keeps_every_scene_on_one_side(tmp_path):
    _sidd_folder(tmp_path, np.random.default_rng(2), medium=True, frames=("010", "011"))
    train = NoisyPairs(tmp_path, split="train", val_fraction=0.4, tune_fraction=0, seed=3)
    val = NoisyPairs(tmp_path, split="val", val_fraction=0.4, seed=3)
    scenes = lambda ds: {name.split("/")[0] for name in ds.names}  # noqa: E731
    assert len(val) == 4 and len(train) == 6  # 2 of 5 scenes, both frames of each
    assert scenes(train) | scenes(val) == set(SCENES) and not scenes(train) & scenes(val)
    assert sorted(train.names + val.names) == sorted(NoisyPairs(tmp_path).names)
    assert NoisyPairs(tmp_path, split="val", val_fraction=0.4, seed=3).names == val.names  # deterministic


def test_noisy_clean_split_is_by_scene(tmp_path):
    _named_folder(tmp_path, [f"{scene:03d}_{frame}.png" for scene in range(4) for frame in (1, 2)],
                  np.random.default_rng(3))
    train, val = (NoisyPairs(tmp_path, split=split, val_fraction=0.25) for split in ("train", "val"))
    assert len(val) == 2 and {name[:3] for name in val.names}.isdisjoint(name[:3] for name in train.names)


def test_missing_partners_are_listed(tmp_path):
    rng = np.random.default_rng(4)
    _named_folder(tmp_path / "pairs", ["a.png", "b.png"], rng)
    _write(tmp_path / "pairs" / "noisy" / "lone.png", _pair(rng)[1])
    _write(tmp_path / "pairs" / "clean" / "other.png", _pair(rng)[0])
    with pytest.raises(DatasetError, match="unpaired") as info:
        NoisyPairs(tmp_path / "pairs")
    assert "lone.png" in str(info.value) and "other.png" in str(info.value) and "a.png" not in str(info.value)

    _sidd_folder(tmp_path / "sidd", rng, medium=True)
    (tmp_path / "sidd" / SCENES[1] / "0002_GT_SRGB_010.PNG").unlink()
    _write(tmp_path / "sidd" / SCENES[3] / "0004_GT_SRGB_011.PNG", _pair(rng)[0])
    with pytest.raises(DatasetError, match="GT in place of NOISY") as info:
        NoisyPairs(tmp_path / "sidd")
    assert f"{SCENES[1]}/0002_NOISY_SRGB_010.PNG" in str(info.value)
    assert f"{SCENES[3]}/0004_GT_SRGB_011.PNG" in str(info.value) and SCENES[0] not in str(info.value)


def test_missing_folder_size_mismatch_and_unknown_layout_are_named(tmp_path):
    rng = np.random.default_rng(5)
    _write(tmp_path / "half" / "noisy" / "a.png", _pair(rng)[1])
    with pytest.raises(DatasetError, match="clean/ is missing"):
        NoisyPairs(tmp_path / "half")

    _write(tmp_path / "sizes" / "noisy" / "a.png", _pair(rng)[1])
    _write(tmp_path / "sizes" / "clean" / "a.png", _pair(rng, size=(12, 14))[0])
    with pytest.raises(DatasetError, match="size mismatch") as info:
        NoisyPairs(tmp_path / "sizes")
    assert str(tmp_path / "sizes" / "noisy" / "a.png") in str(info.value)
    assert str(tmp_path / "sizes" / "clean" / "a.png") in str(info.value)

    _write(tmp_path / "flat" / "a.png", _pair(rng)[0])
    for root in (tmp_path / "flat", tmp_path / "missing"):
        with pytest.raises(DatasetError, match=r"accepted layouts: \(a\) ROOT/noisy/ .*\(b\) SIDD") as info:
            NoisyPairs(root)
        assert str(root) in str(info.value)


def test_large_files_respect_max_pixels(tmp_path):
    _sidd_folder(tmp_path, np.random.default_rng(6), medium=False)
    with pytest.raises(DatasetError, match="max_pixels") as info:
        NoisyPairs(tmp_path, max_pixels=SIZE[0] * SIZE[1] - 1)
    assert all(scene in str(info.value) for scene in SCENES)  # every pair's file named at once
    assert len(NoisyPairs(tmp_path, max_pixels=SIZE[0] * SIZE[1])) == len(SCENES)


def test_open_dataset_reads_real_pairs_for_clean_data_only(tmp_path):
    rng = np.random.default_rng(7)
    _named_folder(tmp_path / "pairs", ["a.png", "b.png"], rng)
    _sidd_folder(tmp_path / "sidd" / "Data", rng, medium=False)
    _write(tmp_path / "flat" / "a.png", _pair(rng)[0])
    _write(tmp_path / "flat" / "b.png", _pair(rng)[0])
    for name in ("a.png", "b.png"):
        _write(tmp_path / "lowhigh" / "low" / name, _pair(rng)[0])
        _write(tmp_path / "lowhigh" / "high" / name, _pair(rng)[0])

    def opened(folder, kind="clean", **kwargs):
        return open_dataset(tmp_path / folder, kind=kind, split=None, gray=False, seed=0, **kwargs)

    assert isinstance(opened("pairs"), NoisyPairs) and isinstance(opened("sidd"), NoisyPairs)
    assert isinstance(opened("flat"), UnpairedImages) and isinstance(opened("lowhigh"), PairedImages)
    assert isinstance(opened("flat", "paired"), UnpairedImages)
    with pytest.raises(DatasetError, match="no images"):  # noisy/ + clean/ is not a low-light folder
        opened("pairs", "paired")
    split = open_dataset(str(tmp_path / "sidd"), kind="clean", split="val", gray=True, seed=1, val_fraction=0.4)
    assert isinstance(split, NoisyPairs) and len(split) == 2 and split[0]["noisy"].shape[0] == 1
    dataset = BuiltinImages(names=("camera",), gray=True)
    assert open_dataset(dataset, kind="clean", split=None, gray=True, seed=0) is dataset
    with pytest.raises(DatasetError, match="not a folder"):
        opened("missing")
    with pytest.raises(ValueError, match="kind"):
        opened("pairs", "noisy")


def test_noisy_test_set_keeps_the_real_noise(tmp_path):
    arrays = _sidd_folder(tmp_path, np.random.default_rng(8), medium=True)
    dataset = NoisyPairs(tmp_path)
    images = noisy_test_set(dataset, 25.0, seed=0)
    again = noisy_test_set(dataset, 50.0, seed=1, limit=2)
    assert [image.name for image in images] == dataset.names and len(again) == 2
    for image, other in zip(images, again):
        clean, noisy = arrays[image.name]
        assert torch.equal(image.noisy, _tensor(noisy)) and torch.equal(image.clean, _tensor(clean))
        assert torch.equal(other.noisy, image.noisy)  # neither sigma nor seed applies to real noise
