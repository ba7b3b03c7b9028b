"""experiments.supervised_train --model ffdnet (ReLLIE's noise-map denoiser) and data.noise amplified:
defaults, the run and the checkpoint it leaves (its spec drives the Enhancer), setting errors; FFDNet on
Gaussian noise (data.noise gaussian, levels drawn from a list or a range): each crop's
map is its level, validation gives the true level's map, and load_denoiser runs the checkpoint."""

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from experiments.runs import read_metrics
from experiments.supervised import learning_rate, make_example, open_datasets, validation_sets
from experiments.supervised_train import main, parse, settings
from rlenhance.checkpoint import load_checkpoint, save_checkpoint
from rlenhance.denoisers import NoiseLevelDenoiser, load_denoiser
from rlenhance.enhance import Enhancer
from rlenhance.io import save_image
from rlenhance.models.policy import PixelActorCritic
from rlenhance.noise_estimate import estimate_noise_sigma
from rlenhance.restore import SupervisedRestorer
from tests.specs import lowlight_spec

TINY = ["--epochs", "1", "--steps-per-epoch", "3", "--batch", "2", "--crop", "32", "--width", "8",
        "--set", "data.val_samples=4", "--set", "run.samples=1", "--threads", "1"]
#: FFDNet on white Gaussian noise, its map the constant level / 255 (FFDNet's own protocol).
GAUSSIAN = ["--model", "ffdnet", "--task", "denoise", "--set", "data.noise=gaussian"]
CPU = torch.device("cpu")


def resolved(*argv):
    return settings(parse(list(argv)))


def run(*argv):
    with contextlib.redirect_stdout(io.StringIO()):
        return main([*TINY, *argv])


def test_defaults_follow_the_model_and_the_noise():
    ffdnet = resolved("--model", "ffdnet", "--task", "denoise")
    assert (ffdnet.noise, ffdnet.sigma, ffdnet.lr, ffdnet.crop) == ("amplified", 10.0, 1e-3, 64)
    plain = resolved("--model", "mrpnet", "--task", "denoise")
    assert (plain.noise, plain.sigma) == ("gaussian", 25.0)
    amplified = resolved("--model", "mrpnet", "--task", "denoise", "--set", "data.noise=amplified", "--sigma", "6")
    assert (amplified.noise, amplified.sigma) == ("amplified", 6.0)


@pytest.mark.parametrize("argv, match", [
    (["--model", "ffdnet"], r"model.name ffdnet reads a noise-level map: it trains on data.task denoise with "
                            r"model.variant default only \(got data.task lowlight"),
    (["--model", "ffdnet", "--task", "denoise", "--set", "model.variant=seed"], "model.variant seed"),
    (["--task", "denoise", "--sigma", "25", "--set", "data.sigma_draw=uniform"],
     "data.sigma_draw uniform: .* with two levels or more .*data.sigma 25"),
    (["--model", "ffdnet", "--task", "denoise", "--set", "data.sigma_draw=uniform"],
     "data.sigma_draw uniform: .*data.noise amplified"),
    (["--task", "lowlight", "--sigma", "5", "10", "--set", "data.sigma_draw=uniform"],
     "data.sigma, data.sigma_draw: settings of data.task denoise"),
    (["--task", "lowlight", "--set", "data.noise=amplified"], "data.noise: settings of data.task denoise"),
    (["--model", "ffdnet", "--task", "denoise", "--sigma", "0"], r"data.noise amplified: needs a data.sigma > 0"),
    (["--set", "model.depth=3"], "unknown setting 'model.depth'"),
])
def test_bad_combinations_are_named(argv, match):
    with pytest.raises(ValueError, match=match):
        resolved(*argv)


def test_amplified_examples_carry_the_map_the_network_reads():
    args = resolved("--model", "ffdnet", "--task", "denoise", *TINY)
    clean = torch.rand(3, 1, 16, 16) * 0.8 + 0.1
    example = make_example(args, {"high": clean}, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert example.noise_map.shape == clean.shape and float(example.noise_map.max()) <= 1.0
    assert not torch.equal(example.input, example.target)  # noisy input, noise-free target
    plain = make_example(resolved("--task", "denoise"), {"high": clean}, torch.Generator().manual_seed(0),
                         torch.device("cpu"))
    assert plain.noise_map is None and torch.equal(plain.target, clean)


def test_ffdnet_run_leaves_a_checkpoint_the_enhancer_drives_with_its_map(tmp_path):
    out = run("--model", "ffdnet", "--task", "denoise", "--sigma", "8", "--out", str(tmp_path / "ffd"))
    config = json.loads((out / "config.json").read_text())
    assert (config["data"]["noise"], config["data"]["sigma"]) == ("amplified", [8.0])
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    spec = best["extra"]["spec"]
    assert (spec.model, spec.noise, spec.sigma, spec.noise_map_problems()) == ("ffdnet", "amplified", 8.0, [])
    assert best["arch"] == {"class": "FFDNet", "kwargs": {"in_channels": 1, "width": 8, "depth": 15, "residual": True}}
    restorer = SupervisedRestorer(out / "checkpoints" / "best.pt", device="cpu", noise_map=True)
    torch.manual_seed(0)
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2)
    policy_spec = lowlight_spec(
        alpha_table=[round((a - 6) / 20, 2) for a in range(27)], damping=0.2, action_type="discrete", test_steps=2,
        alpha_mode="mean", cond_fields=[], cond_scale=[], cond_offset=[],
        setting={"exposure_target": 0.6, "w_exposure": 10.0, "w_color": 5.0, "w_spatial": 1.0, "w_smooth": 20.0},
        observe_exposure_gap=False, max_side=None, conditioned=False)
    policy_path = save_checkpoint(tmp_path / "policy.pt", model=policy, arch=policy.arch(),
                                  extra={"spec": policy_spec})
    enhancer = Enhancer(policy_path, device="cpu", denoiser=restorer)
    assert enhancer.noise_sigma == 4.0  # half the trained sigma
    image = np.random.default_rng(0).uniform(0, 0.3, (20, 24, 3)).astype(np.float32)
    result = enhancer.enhance(image)
    assert result.shape == image.shape and np.isfinite(result).all()


def test_a_plain_denoiser_trained_on_amplified_noise_reads_no_map(tmp_path):
    out = run("--model", "mrpnet", "--set", "model.generator=false", "--task", "denoise",
              "--set", "data.noise=amplified", "--out", str(tmp_path / "plain"))
    spec = load_checkpoint(out / "checkpoints" / "best.pt")["extra"]["spec"]
    assert (spec.model, spec.noise, spec.sigma) == ("mrpnet", "amplified", 10.0)
    assert not SupervisedRestorer(out / "checkpoints" / "best.pt", device="cpu").needs_noise_map


# --- FFDNet on Gaussian noise ------------------------------------------------------------------------
def _levels_of(example):
    """Each crop's map level (0-255 scale), checking the map is constant over the crop and its planes."""
    flat = example.noise_map.flatten(1)
    assert torch.equal(flat.min(dim=1).values, flat.max(dim=1).values)
    return flat[:, 0] * 255


def test_gaussian_examples_carry_each_crops_level_as_its_map():
    """Each crop's map is sigma / 255 of the noise it got: from the list (--sigma-draw levels) or
    any level of the range (uniform); gray or colour (a map plane per image plane)."""
    clean = torch.full((16, 1, 32, 32), 0.5)
    listed = make_example(resolved(*GAUSSIAN, "--sigma", "15", "50"), {"high": clean},
                          torch.Generator().manual_seed(0), CPU)
    assert listed.noise_map.shape == clean.shape and listed.mask is None
    level = _levels_of(listed)
    assert set(level.round().tolist()) == {15.0, 50.0}
    noise_std = (listed.input - clean).flatten(1).std(dim=1) * 255
    assert bool(((noise_std / level - 1).abs() < 0.1).all())  # the map is the level of the noise added

    uniform = resolved(*GAUSSIAN, "--sigma", "0", "15", "75", "--set", "data.sigma_draw=uniform")
    drawn = make_example(uniform, {"high": clean}, torch.Generator().manual_seed(1), CPU)
    level = _levels_of(drawn)
    assert float(level.min()) >= 0 and float(level.max()) <= 75 and len(set(level.tolist())) == len(level)
    assert not set(level.round().tolist()) <= {0.0, 15.0, 75.0}  # levels between the listed ones
    noise_std = (drawn.input - clean).flatten(1).std(dim=1) * 255
    visible = level > 5
    assert bool(((noise_std[visible] / level[visible] - 1).abs() < 0.1).all())

    colour = make_example(resolved(*GAUSSIAN, "--set", "data.gray=false", "--sigma", "25"),
                          {"high": clean.expand(-1, 3, -1, -1)}, torch.Generator().manual_seed(2), CPU)
    assert colour.noise_map.shape == (16, 3, 32, 32) and torch.allclose(_levels_of(colour), torch.tensor(25.0))
    plain = make_example(resolved("--task", "denoise", "--sigma", "15", "50"), {"high": clean},
                         torch.Generator().manual_seed(0), CPU)
    assert plain.noise_map is None and torch.equal(plain.input, listed.input)  # the same draws, no map


def test_validation_gives_each_level_its_true_map():
    args = resolved(*GAUSSIAN, *TINY, "--sigma", "0", "25", "50", "--set", "data.sigma_draw=uniform")
    vals = validation_sets(args, open_datasets(args).val)
    assert list(vals) == [0.0, 25.0, 50.0]
    for level, val in vals.items():
        assert val.noise_map.shape == val.input.shape
        assert torch.allclose(val.noise_map, torch.full_like(val.input, level / 255))
    assert torch.allclose((vals[50.0].input - vals[50.0].target), 2 * (vals[25.0].input - vals[25.0].target),
                          atol=1e-5)  # one noise pattern, scaled


def test_a_gaussian_ffdnet_run_leaves_a_checkpoint_load_denoiser_runs(tmp_path):
    """The checkpoint records the model, the noise and its range; load_denoiser("ffdnet") gives it the
    map of a given level, or of each image's estimate (blind), through SupervisedRestorer."""
    out = run(*GAUSSIAN, "--sigma", "0", "30", "--set", "data.sigma_draw=uniform", "--out", str(tmp_path / "gaussian"))
    config = json.loads((out / "config.json").read_text())["data"]
    assert (config["noise"], config["sigma"], config["sigma_draw"]) == ("gaussian", [0.0, 30.0], "uniform")
    assert {"eval/psnr_sigma0", "eval/psnr_sigma30", "eval/psnr"} <= set(read_metrics(out / "metrics.csv")[0])
    best = out / "checkpoints" / "best.pt"
    spec = load_checkpoint(best)["extra"]["spec"]
    assert (spec.model, spec.noise, spec.sigmas, spec.sigma, spec.channels) == \
        ("ffdnet", "gaussian", (0.0, 30.0), 30.0, 1)

    image = (0.5 + np.random.default_rng(0).normal(0, 12 / 255, (24, 30, 1))).astype(np.float32)
    known = load_denoiser("ffdnet", best, device="cpu", sigma=20)
    assert isinstance(known, NoiseLevelDenoiser) and known.sigma_range == (0.0, 30.0) and known.channels == 1
    restorer = SupervisedRestorer(best, device="cpu", noise_map=True)
    expected = restorer.restore(image, noise_map=np.full(image.shape[:2], 20 / 255, np.float32))
    np.testing.assert_allclose(known.restore(image), expected, atol=1e-6)
    blind = load_denoiser("ffdnet", best, device="cpu")
    estimate = estimate_noise_sigma(image)
    assert 5 < estimate < 30 and blind.sigma is None
    np.testing.assert_allclose(blind.restore(image), load_denoiser("ffdnet", best, device="cpu",
                                                                   sigma=estimate).restore(image), atol=1e-6)
    assert np.abs(blind.restore(image) - known.restore(image)).max() > 1e-5  # the level is read


def test_ffdnet_refuses_real_noisy_pairs(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        clean = rng.uniform(0.2, 0.8, (40, 40)).astype(np.float32)
        save_image(tmp_path / "pairs" / "clean" / f"{i}.png", clean)
        save_image(tmp_path / "pairs" / "noisy" / f"{i}.png", np.clip(clean + rng.normal(0, 0.05, clean.shape), 0, 1))
    args = resolved(*GAUSSIAN, "--data", str(tmp_path / "pairs"))
    with pytest.raises(ValueError, match=r"pairs: real noisy / clean pairs, whose noise has no known level map"):
        open_datasets(args)


def test_cosine_decay_falls_from_lr_to_zero_over_the_run(tmp_path):
    args = resolved("--model", "ffdnet", "--task", "denoise", "--lr", "0.002", "--epochs", "4", "--steps-per-epoch",
                    "5", "--set", "train.lr_decay=cosine")
    rates = [learning_rate(args, step) for step in range(20)]
    assert rates[0] == 0.002 and rates[10] == pytest.approx(0.001) and 0 < rates[-1] < 1e-4
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert learning_rate(resolved("--model", "ffdnet", "--task", "denoise"), 17) == 1e-3  # none: constant
    out = run(*GAUSSIAN, "--epochs", "2", "--set", "train.lr_decay=cosine", "--out", str(tmp_path / "cosine"))
    logged = [row["charts/lr"] for row in read_metrics(out / "train.csv")]
    steps = 3  # TINY's --steps-per-epoch: each epoch logs the rate of its last batch
    assert logged == pytest.approx([1e-3 * 0.5 * (1 + np.cos(np.pi * (e * steps - 1) / (2 * steps))) for e in (1, 2)])
