"""experiments.supervised_train with the MRPNet + Generator seed's settings: fine-tuning from
another run's weights (``--init``), the Generator's super-resolution (``model.upscale``) on synthetic
data, on same-size pairs and on the seed's own layout (``train/`` inputs + ``gt/`` targets 4x
larger), and their argument errors. Tiny runs in this process (``main(argv)``)."""

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from experiments.runs import read_metrics
from experiments.supervised import make_example, open_datasets, validation_set
from experiments.supervised_train import main, parse, settings
from rlenhance.checkpoint import SupervisedSpec, load_checkpoint, save_checkpoint
from rlenhance.data import PairedImages, sample_batch
from rlenhance.errors import CheckpointError, DatasetError
from rlenhance.io import save_image
from rlenhance.models.mrpnet import CombinedModel
from rlenhance.restore import SupervisedRestorer

TINY = ["--epochs", "1", "--steps-per-epoch", "2", "--batch", "2", "--crop", "32", "--width", "8",
        "--set", "data.val_samples=4", "--set", "run.samples=2", "--threads", "1"]


def resolved(argv):
    return settings(parse(list(argv)))


def run(*argv):
    with contextlib.redirect_stdout(io.StringIO()):
        return main([*TINY, *argv])


def parameters(path):
    """The trainable weights of a checkpoint (batch-norm statistics left out)."""
    ckpt = load_checkpoint(path)
    model = CombinedModel(**ckpt["arch"]["kwargs"])
    names = {name for name, _ in model.named_parameters()}
    return {name: value for name, value in ckpt["state_dict"].items() if name in names}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A finished one-epoch run whose best.pt the --init runs start from (seed 1: weights unlike seed 0's)."""
    return run("--seed", "1", "--out", str(tmp_path_factory.mktemp("init") / "source"))


def test_init_starts_from_the_checkpoint_weights_with_a_fresh_run(source, tmp_path):
    """At a learning rate of 1e-9 the fine-tuned run ends where its --init weights were, far from
    a run without --init; its epoch count and config are its own."""
    tuned = run("--init", str(source / "checkpoints" / "best.pt"), "--lr", "1e-9", "--out", str(tmp_path / "tuned"))
    fresh = run("--lr", "1e-9", "--seed", "0", "--out", str(tmp_path / "fresh"))
    start, end, scratch = (parameters(p) for p in (source / "checkpoints" / "best.pt", tuned / "checkpoints" /
                                                  "last.pt", fresh / "checkpoints" / "last.pt"))
    assert max(float((end[k] - start[k]).abs().max()) for k in start) < 1e-6
    assert max(float((scratch[k] - start[k]).abs().max()) for k in start) > 1e-3
    assert load_checkpoint(tuned / "checkpoints" / "last.pt")["extra"]["epoch"] == 1
    assert json.loads((tuned / "config.json").read_text())["train"]["init"] == str(source / "checkpoints" / "best.pt")


def test_init_refuses_checkpoints_of_another_run_kind(source, tmp_path):
    best = str(source / "checkpoints" / "best.pt")
    with pytest.raises(CheckpointError, match=r"--init: .*architecture mismatch.*\"width\": 8.*\"width\": 16"):
        run("--init", best, "--width", "16", "--out", str(tmp_path / "wide"))
    with pytest.raises(CheckpointError, match=r"architecture mismatch.*\"upscale\": 1.*\"upscale\": 2"):
        run("--init", best, "--set", "model.upscale=2", "--out", str(tmp_path / "sr"))
    model = CombinedModel(3, width=8)  # the same network, trained for another task
    spec = SupervisedSpec(model="mrpnet", task="completion", channels=3, prefill="diffusion")
    other = save_checkpoint(tmp_path / "completion.pt", model=model, arch=model.arch(), extra={"spec": spec})
    with pytest.raises(CheckpointError, match=r"task 'completion' \(this run: 'lowlight'\)"):
        run("--init", str(other), "--out", str(tmp_path / "other"))
    with pytest.raises(CheckpointError, match="no such file"):
        run("--init", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "missing"))
    assert not any((tmp_path / name).exists() for name in ("wide", "sr", "other", "missing"))  # nothing written


def test_upscale_trains_a_super_resolving_generator_that_inference_reproduces(tmp_path):
    """Synthetic data: targets at --crop, inputs area-downscaled 4x; the checkpoint records the
    upscale and SupervisedRestorer outputs 4x the input."""
    args = resolved([*TINY, "--set", "model.upscale=4"])
    val_set = open_datasets(args).val
    val = validation_set(args, val_set)
    assert val.input.shape == (4, 3, 8, 8) and val.target.shape == (4, 3, 32, 32)
    out = run("--set", "model.upscale=4", "--out", str(tmp_path / "sr"))
    ckpt = load_checkpoint(out / "checkpoints" / "best.pt")
    assert ckpt["extra"]["spec"].upscale == 4 and ckpt["arch"]["kwargs"]["upscale"] == 4
    restorer = SupervisedRestorer(out / "checkpoints" / "best.pt", device="cpu", task="lowlight")
    image = np.random.default_rng(0).uniform(0, 0.3, (10, 12, 3)).astype(np.float32)
    assert restorer.restore(image).shape == (40, 48, 3)


def _seed_folder(root, scale):
    """The seed's pair folder: root/train/train_ID (inputs) and root/gt/gt_ID (targets ``scale`` x)."""
    rng = np.random.default_rng(0)
    for i in range(1, 4):
        high = rng.uniform(0.2, 0.8, (40, 48, 3)).astype(np.float32)
        save_image(root / "gt" / f"gt_{i}.png", high)
        save_image(root / "train" / f"train_{i}.png", high.reshape(40 // scale, scale, 48 // scale, scale, 3)
                   .mean(axis=(1, 3)) * 0.2)


def test_upscale_reads_the_seeds_layout_with_targets_4x_the_inputs(tmp_path):
    _seed_folder(tmp_path / "train", scale=4)
    argv = [*TINY, "--set", "model.upscale=4", "--data", str(tmp_path / "train")]
    args = resolved(argv)
    pairs = PairedImages(tmp_path / "train", scale=None)
    batch = sample_batch(pairs, 2, crop=8, rng=np.random.default_rng(0))
    example = make_example(args, batch, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert example.input.shape == (2, 3, 8, 8) and example.target.shape == (2, 3, 32, 32)
    torch.testing.assert_close(example.input, batch["low"])  # the seed's inputs are used as they are
    out = run(*argv[len(TINY):], "--out", str(tmp_path / "run"))
    rows = read_metrics(out / "metrics.csv")
    assert len(rows) == 1 and np.isfinite(rows[0]["eval/psnr"])
    with pytest.raises(DatasetError, match="the files of a pair must match"):  # 4x targets need upscale 4
        run("--data", str(tmp_path / "train"), "--out", str(tmp_path / "plain"))
    with pytest.raises(DatasetError, match="4 times the low ones; model.upscale 2"):
        run("--set", "model.upscale=2", "--data", str(tmp_path / "train"), "--out", str(tmp_path / "two"))


def test_upscale_downscales_the_inputs_of_same_size_pairs(tmp_path):
    _seed_folder(tmp_path / "train", scale=1)
    args = resolved([*TINY, "--set", "model.upscale=2", "--data", str(tmp_path / "train")])
    pairs = PairedImages(tmp_path / "train", scale=None)
    batch = sample_batch(pairs, 2, crop=16, rng=np.random.default_rng(0))
    example = make_example(args, batch, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert example.input.shape == (2, 3, 8, 8) and example.target.shape == (2, 3, 16, 16)
    torch.testing.assert_close(example.input, torch.nn.functional.avg_pool2d(batch["low"], 2))


def test_upscale_argument_errors():
    for bad, match in ((["--set", "model.upscale=4", "--model", "pixelrnn"], "model.name mrpnet"),
                       (["--set", "model.upscale=4", "--set", "model.generator=false"], "model.generator False"),
                       (["--set", "model.upscale=2", "--task", "denoise"], "data.task denoise"),
                       (["--set", "model.upscale=4", "--crop", "50"], "multiple of 4"),
                       (["--set", "model.upscale=3"], "model.upscale: '3' is not one of 1, 2, 4")):
        with pytest.raises(ValueError, match=match):
            resolved(bad)


def test_compare_refuses_a_super_resolution_checkpoint(tmp_path):
    """experiments.compare scores outputs against references of the input's size: a 4x model is
    refused with a message, not a shape error in the metrics."""
    from experiments.compare.methods import supervised_method

    model = CombinedModel(3, width=8, upscale=4)
    spec = SupervisedSpec(model="mrpnet", task="lowlight", channels=3, prefill="none", upscale=4)
    path = save_checkpoint(tmp_path / "sr.pt", model=model, arch=model.arch(), extra={"spec": spec})
    with pytest.raises(CheckpointError, match=r"super-resolution model \(upscale 4\)"):
        supervised_method(None, path, torch.device("cpu"), task="lowlight", model="mrpnet")
