"""examples/supervised_baseline.py end to end: a network of one's own, named by import path, trained a few
steps by experiments.supervised_train, loaded by `rlenhance denoise --checkpoint` and scored by
experiments.compare, each in a fresh process, with nothing inside the packages changed for it."""

import csv

import numpy as np
import pytest
from torch import nn

from examples.supervised_baseline import TinyDenoiser
from experiments import supervised_train
from rlenhance import registry
from rlenhance.io import load_image, save_image
from tests.examples.packages import assert_plugs_in_from_outside, run_fresh, write_dark_pairs

NETWORK = "examples.supervised_baseline:TinyDenoiser"


class Bare(nn.Module):
    """A network without train_defaults (tests.examples.test_supervised_baseline:Bare)."""


def test_the_trainer_takes_a_networks_defaults_and_names_what_a_network_without_them_needs():
    cfg = supervised_train.parse(["--model", NETWORK, "--task", "denoise"])
    assert (cfg.train.lr, cfg.train.batch, cfg.train.crop, cfg.model.width) == (1e-3, 16, 48, 16)
    assert supervised_train.parse(["--model", NETWORK, "--task", "denoise", "--width", "8"]).model.width == 8
    with pytest.raises(ValueError, match=r"has no train_defaults for lr, batch, crop, width; set train.lr, "
                                         r"train.batch, train.crop, model.width"):
        supervised_train.parse(["--model", "tests.examples.test_supervised_baseline:Bare", "--task", "denoise"])


@pytest.mark.slow
def test_a_network_of_ones_own_trains_loads_and_compares(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(4):  # smooth gray pictures
        y, x = np.mgrid[0:32, 0:32] / 32
        save_image(tmp_path / "clean" / f"img{k}.png", (0.2 + 0.6 * (x * (k + 1) % 1) * y)[..., None]
                   + 0.02 * rng.random((32, 32, 1)))
    run_fresh("-m", "experiments.supervised_train", "--model", NETWORK, "--task", "denoise", "--data",
          str(tmp_path / "clean"), "--epochs", "1", "--steps-per-epoch", "2", "--batch", "2", "--crop", "16",
          "--set", "data.val_samples=2", "--set", "data.tune_fraction=0", "--threads", "1",
          "--out", str(tmp_path / "run"))
    best = tmp_path / "run" / "checkpoints" / "best.pt"
    assert registry.kind_of("denoise", best) == NETWORK  # the checkpoint records its network's method

    noisy = np.clip(load_image(tmp_path / "clean" / "img0.png") + rng.normal(0, 0.1, (32, 32, 1)), 0, 1)
    save_image(tmp_path / "noisy" / "img0.png", noisy.astype(np.float32))
    run_fresh("-m", "rlenhance", "denoise", str(tmp_path / "noisy"), "-o", str(tmp_path / "denoised"), "--checkpoint",
          str(best))
    restorer = registry.load("denoise", NETWORK, best, device="cpu")
    assert type(restorer.model) is TinyDenoiser
    expected = restorer.restore(load_image(tmp_path / "noisy" / "img0.png")[..., :1])  # gray files: 3 equal planes
    np.testing.assert_allclose(load_image(tmp_path / "denoised" / "img0.png")[..., :1], expected, atol=0.5 / 255 + 1e-6)

    run_fresh("-m", "experiments.compare", "--task", "denoise", "--data", str(tmp_path / "clean"), "--methods",
          "input,gaussian", "--checkpoints", str(best), "--no-warmup", "--threads", "1", "--out", str(tmp_path / "cmp"))
    with open(tmp_path / "cmp" / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"] for r in rows if r["image"] == "img0.png"] == ["input", "gaussian", NETWORK]
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert f"| {NETWORK} | 4 |" in report and f"- {NETWORK}: `{best}`" in report
    assert_plugs_in_from_outside("supervised_baseline")


@pytest.mark.slow
def test_a_low_light_network_of_ones_own_runs_in_enhance_from_its_checkpoint_alone(tmp_path):
    """The same network trained on low-light pairs: `rlenhance enhance --checkpoint` runs it as itself (no
    --model), as the trainer's closing line says; --model naming another method is refused in one line."""
    pairs = write_dark_pairs(tmp_path / "pairs", count=4, size=32)
    run = run_fresh("-m", "experiments.supervised_train", "--model", NETWORK, "--task", "lowlight", "--data",
                    str(pairs), "--epochs", "1", "--steps-per-epoch", "2", "--batch", "2", "--crop", "16",
                    "--set", "data.val_samples=2", "--set", "data.tune_fraction=0", "--threads", "1",
                    "--out", str(tmp_path / "run"))
    best = tmp_path / "run" / "checkpoints" / "best.pt"
    assert registry.kind_of("lowlight", best) == NETWORK
    assert f"use it: rlenhance enhance photo.jpg -o enhanced/ --checkpoint {best}" in run.stdout
    run_fresh("-m", "rlenhance", "enhance", str(pairs / "low"), "-o", str(tmp_path / "out"), "--checkpoint", str(best))
    restorer = registry.load("lowlight", NETWORK, best, device="cpu")
    assert type(restorer.model) is TinyDenoiser
    for name in ("0.png", "3.png"):
        expected = restorer.restore(load_image(pairs / "low" / name))
        np.testing.assert_allclose(load_image(tmp_path / "out" / name), expected, atol=0.5 / 255 + 1e-6)
