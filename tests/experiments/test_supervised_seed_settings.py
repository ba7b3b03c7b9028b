"""experiments.supervised_train's seed settings: model.variant seed (with the gated seed's SSIM window and
mask rule), data.resize and run.save_every. Tiny in-process runs on generated JPEG pairs."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from experiments.supervised import open_datasets, validation_set
from experiments.supervised_train import main, parse, settings
from rlenhance.checkpoint import load_checkpoint
from rlenhance.data import channel_sum_mask, estimate_occlusion_mask
from rlenhance.models.pixelrnn import GatedPixelRNN
from rlenhance.restore import SupervisedRestorer

TINY = ["--steps-per-epoch", "2", "--batch", "2", "--width", "8", "--set", "data.val_samples=2",
        "--set", "run.samples=1", "--threads", "1"]
SIZE = (40, 44)
HOLE = (slice(8, 24), slice(10, 30))


def _pairs(root):
    """Three occluded/original JPEG pairs (40x44, one black 16x20 box each), as the bedroom data."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE[0], 0:SIZE[1]] / 40
    for i in range(3):
        waves = rng.uniform(0.5, 2, (3, 2))
        photo = np.stack([0.5 + 0.3 * np.sin(2 * np.pi * (f * xx + g * yy)) for f, g in waves], -1)
        photo = (photo * 255).round().astype(np.uint8)
        occluded = photo.copy()
        occluded[HOLE] = 0
        for folder, name, image in (("original_images", f"bed_{i}.jpg", photo),
                                    ("occluded_images", f"occluded_bed_{i}.jpg", occluded)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / folder / name, quality=75)
    return root


def resolved(*argv):
    return settings(parse(list(argv)))


def test_seed_variant_settings_follow_the_model():
    gated = resolved("--model", "gated-pixelrnn", "--task", "completion", "--set", "model.variant=seed")
    assert (gated.ssim_window, gated.mask_rule, gated.crop, gated.resize) == (7, "channel-sum", 224, ())
    own = resolved("--model", "gated-pixelrnn", "--task", "completion")
    assert (own.variant, own.ssim_window, own.mask_rule) == ("default", 11, "estimate")
    convlstm = resolved("--model", "pixelrnn", "--task", "completion", "--set", "model.variant=seed",
                        "--set", "data.resize=256")
    assert (convlstm.ssim_window, convlstm.mask_rule, convlstm.resize, convlstm.crop) == (11, "estimate", (256,), 256)
    sized = resolved("--model", "gated-pixelrnn", "--task", "completion", "--set", "data.resize=128,96")
    assert (sized.resize, sized.crop) == ((128, 96), 96)


@pytest.mark.parametrize("argv, message", [
    (["--set", "model.variant=seed"], r"model.variant seed: only pixelrnn and gated-pixelrnn"),
    (["--model", "pixelrnn", "--set", "data.resize=8"], r"data.resize 8: expected H or H W, integers >= 16"),
    (["--model", "pixelrnn", "--set", "data.resize=64,64,64"], r"data.resize 64 64 64: expected H or H W"),
    (["--model", "pixelrnn", "--set", "data.resize=64", "--crop", "96"], r"train.crop 96 does not fit .* 64x64"),
    (["--set", "run.save_every=-1"], r"run.save_every -1: expected an integer >= 0"),
    (["--set", "model.variant=paper"], r"model.variant: 'paper' is not one of default, seed"),
])
def test_setting_errors_name_the_setting(argv, message):
    with pytest.raises(ValueError, match=message):
        resolved(*argv)


def test_resume_may_change_save_every_but_not_the_variant(tmp_path):
    out = main(["--model", "gated-pixelrnn", "--task", "completion", "--crop", "32", "--epochs", "1",
                "--out", str(tmp_path / "run"), *TINY])
    main(["--resume", "--out", str(out), "--epochs", "2", "--set", "run.save_every=2"])
    assert (out / "checkpoints" / "model_epoch2.pt").is_file()
    with pytest.raises(ValueError, match=r"model.variant 'seed' \(the run has 'default'\).*train.epochs"):
        main(["--resume", "--out", str(out), "--set", "model.variant=seed"])


def test_training_masks_follow_the_rule_and_validation_scores_the_estimated_hole(tmp_path):
    data = _pairs(tmp_path / "pairs")
    args = resolved("--model", "gated-pixelrnn", "--task", "completion", "--set", "model.variant=seed",
                    "--data", str(data), *TINY)
    data = open_datasets(args)
    train, val = data.train, data.val
    item = train[0]
    occ, orig = (item[k].permute(1, 2, 0).numpy() for k in ("occluded", "original"))
    np.testing.assert_array_equal(item["mask"][0].numpy().astype(bool), channel_sum_mask(occ, orig))
    assert item["mask"][0].sum() > 16 * 20  # the hole and JPEG noise around it
    item = val[0]
    occ, orig = (item[k].permute(1, 2, 0).numpy() for k in ("occluded", "original"))
    np.testing.assert_array_equal(item["mask"][0].numpy().astype(bool), estimate_occlusion_mask(occ, orig))
    assert item["mask"][0].sum() == 16 * 20


def test_resize_brings_training_and_validation_images_to_one_size(tmp_path):
    data = _pairs(tmp_path / "pairs")
    args = resolved("--model", "gated-pixelrnn", "--task", "completion", "--data", str(data),
                    "--set", "data.resize=64,48", *TINY)
    data = open_datasets(args)
    train, val = data.train, data.val
    for dataset in (train, val):
        item = dataset[0]
        assert all(item[k].shape[-2:] == (64, 48) for k in ("occluded", "original", "mask"))
        assert set(item["mask"].unique().tolist()) == {0.0, 1.0}
    example = validation_set(args, val)
    assert args.crop == 48 and example.input.shape == (2, 3, 48, 48)
    # the 16x20 hole of a 40x44 image scales by 64/40 and 48/44, plus the ring its black blends into
    height, width = 16 * 64 / 40, 20 * 48 / 44
    assert height * width < float(val[0]["mask"].sum()) <= (height + 2) * (width + 2)


def test_seed_run_saves_periodic_checkpoints_that_load_for_inference(tmp_path):
    data = _pairs(tmp_path / "pairs")
    out = main(["--model", "gated-pixelrnn", "--task", "completion", "--set", "model.variant=seed", "--data",
                str(data), "--set", "data.resize=32", "--epochs", "3", "--set", "run.save_every=2",
                "--out", str(tmp_path / "run"), *TINY])
    folder = out / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["best.pt", "last.pt", "model_epoch2.pt"]
    snapshot = load_checkpoint(folder / "model_epoch2.pt")
    last = load_checkpoint(folder / "last.pt")
    assert snapshot["extra"]["epoch"] == 2 and last["extra"]["epoch"] == 3
    assert snapshot["arch"] == last["arch"] and snapshot["arch"]["kwargs"]["variant"] == "seed"
    assert snapshot["extra"]["spec"].variant == "seed"
    assert not all(torch.equal(v, last["state_dict"][k]) for k, v in snapshot["state_dict"].items())
    restorer = SupervisedRestorer(folder / "model_epoch2.pt", device="cpu", task="completion")
    assert isinstance(restorer.model, GatedPixelRNN) and restorer.model.variant == "seed"
    image = np.random.default_rng(1).uniform(0, 1, (24, 28, 3)).astype(np.float32)
    mask = np.zeros((24, 28), bool)
    mask[5:15, 6:16] = True
    restored = restorer.restore(image, mask=mask)
    assert restored.shape == image.shape and np.array_equal(restored[~mask], image[~mask])
    config = json.loads((out / "config.json").read_text())
    assert (config["model"]["variant"], config["data"]["resize"], config["train"]["crop"]) == ("seed", [32], 32)
