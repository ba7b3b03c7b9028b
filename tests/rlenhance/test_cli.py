"""The `rlenhance denoise|complete|enhance` command line and lol_eval's supervised methods, end to end."""

import os
import re
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from rlenhance import registry
from rlenhance.checkpoint import RSEDenoiserSpec, SupervisedSpec, save_checkpoint
from rlenhance.cli import jobs, main
from rlenhance.data.occluded import hole_mask
from rlenhance.denoisers import DENOISER_CHECKPOINTS, load_denoiser
from rlenhance.enhance import Enhancer
from rlenhance.io import float_to_levels, load_image, save_image
from rlenhance.models.inpaint import CompletionUNet
from rlenhance.models.mrpnet import CombinedModel, MRPNet
from rlenhance.models.pixelrnn import GatedPixelRNN
from rlenhance.models.policy import PixelActorCritic
from rlenhance.models.rse import RSEDenoiser
from rlenhance.restore import SupervisedRestorer
from tests.recipes import recipe_policy, rse_with_predictor
from tests.specs import lowlight_spec

ROOT = Path(__file__).resolve().parents[2]
LEVEL = 1 / 255  # outputs are 8-bit PNGs
SPEC = lowlight_spec(
    alpha_table=[round((a - 6) / 20, 2) for a in range(27)], damping=0.2, action_type="discrete", test_steps=2,
    alpha_mode="mean", cond_fields=[], cond_scale=[], cond_offset=[],
    setting={"exposure_target": 0.6, "w_exposure": 10.0, "w_color": 5.0, "w_spatial": 1.0, "w_smooth": 20.0},
    observe_exposure_gap=False, max_side=None, conditioned=False)


def save_supervised(path, model, model_name, task, channels):
    """Save ``model`` the way experiments.supervised_train does (its SupervisedSpec)."""
    spec = SupervisedSpec(model=model_name, task=task, channels=channels, prefill="none")
    return save_checkpoint(path, model=model, arch=model.arch(), extra={"spec": spec})


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2)
    save_checkpoint(folder / "policy.pt", model=policy, arch=policy.arch(), extra={"spec": SPEC})
    return {
        "denoise": save_supervised(folder / "denoise.pt", MRPNet(1, width=8), "mrpnet", "denoise", 1),
        "completion": save_supervised(folder / "complete.pt", GatedPixelRNN(3, width=8), "gated-pixelrnn",
                                      "completion", 3),
        "lowlight": save_supervised(folder / "lowlight.pt", CombinedModel(3, width=8), "mrpnet", "lowlight", 3),
        "policy": folder / "policy.pt",
    }


@pytest.fixture()
def images(tmp_path):
    """Two small PNGs (one with a black square hole) and a corrupt file."""
    rng = np.random.default_rng(0)
    a = rng.uniform(0.2, 0.9, (40, 56, 3)).astype(np.float32)
    a[10:26, 20:36] = 0.0
    b = rng.uniform(0.0, 0.3, (48, 32, 3)).astype(np.float32)
    b[30:42, 4:16] = 0.0
    paths = [tmp_path / "in" / "occluded_a.png", tmp_path / "in" / "b.png"]
    save_image(paths[0], a)
    save_image(paths[1], b)
    bad = tmp_path / "in" / "broken.png"
    bad.write_bytes(b"not a png")
    return paths, bad


def _lines(text, name):
    return [line for line in text.splitlines() if name in line]


def test_denoise_end_to_end_with_a_corrupt_file(ckpts, images, tmp_path, capsys):
    (a, b), bad = images
    out = tmp_path / "out"
    code = main(["denoise", str(a), str(bad), str(b), "-o", str(out), "--checkpoint", str(ckpts["denoise"]),
                 "--device", "cpu", "--per-channel"])
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.png" in captured.err and "1 of 3" in captured.err
    line = _lines(captured.out, "b.png")[0]
    assert "32x48" in line and "ms" in line and "noise std" in line
    restorer = SupervisedRestorer(ckpts["denoise"], device="cpu")
    for path in (a, b):
        written = load_image(out / f"{path.stem}.png")
        expected = restorer.restore(load_image(path), per_channel=True)
        assert written.shape == expected.shape
        np.testing.assert_allclose(written, expected, atol=LEVEL / 2 + 1e-6)
    assert not (out / "broken.png").exists()


@pytest.mark.parametrize("command, model", [("denoise", "ffdnet"), ("denoise", "mrpnet"), ("denoise", "a3c"),
                                            ("complete", "unet")])
def test_denoise_and_complete_write_exactly_the_levels_of_the_float_api(images, tmp_path, command, model):
    """The commands read the file's samples and ask the shipped model for uint8 levels (tiled: a window
    converted, a tile quantised at a time; no float copy of the photo or its result): the PNG is
    bit for bit what save_image writes of the float API's result on the float image."""
    (a, b), _ = images
    out = tmp_path / "out"
    assert main([command, str(a), str(b), "-o", str(out), "--model", model, "--device", "cpu", "--tile", "16"]) == 0
    task = "denoise" if command == "denoise" else "completion"
    method = registry.find(task, model)  # the colour weights, else the gray ones, as the commands pick
    planes = 3 if (registry.WEIGHTS / method.weights.get(3, "")).is_file() else 1
    restorer = registry.load(task, model, planes=planes, device="cpu", tile=16)
    for path in (a, b):
        image = load_image(path)
        mask = hole_mask(image) if command == "complete" else None
        expected = float_to_levels(restorer.restore(image, mask=mask))
        np.testing.assert_array_equal(load_image(out / f"{path.stem}.png", samples=True), expected)


def test_a_long_restoration_shows_a_bar_of_its_tiles_and_a_quick_one_none(ckpts, images, tmp_path, capsys,
                                                                            monkeypatch):
    (a, _), _ = images  # 40 x 56: 3 x 4 tiles of 16 px
    argv = [str(a), "-o", str(tmp_path / "o"), "--checkpoint", str(ckpts["denoise"]), "--per-channel", "--tile", "16",
            "--overwrite"]
    assert main(["denoise", *argv]) == 0
    assert "tile" not in capsys.readouterr().err  # done well within jobs.PROGRESS_AFTER_S
    monkeypatch.setattr(jobs, "PROGRESS_AFTER_S", 0.0)
    assert main(["denoise", *argv]) == 0
    shown = capsys.readouterr().err.replace("\r", "\n").splitlines()
    assert re.fullmatch(r"occluded_a\.png: +0%\|.*\| 0/12 .*tile/s\]", shown[1]), shown  # one pass of 12 tiles
    assert not shown[-1].strip(), shown  # the bar is cleared; the image's line is printed on stdout


def test_denoise_converts_colour_to_gray_without_per_channel(ckpts, images, tmp_path, capsys):
    (a, _), _ = images
    assert main(["denoise", str(a), "-o", str(tmp_path / "o"), "--checkpoint", str(ckpts["denoise"]),
                 "--device", "cpu"]) == 0
    written = load_image(tmp_path / "o" / "occluded_a.png")
    assert np.array_equal(written[..., 0], written[..., 1])  # a gray file


def test_denoise_ensemble_is_the_models_self_ensemble(ckpts, images, tmp_path, capsys):
    (a, _), _ = images
    out = tmp_path / "o"
    assert main(["denoise", str(a), "-o", str(out), "--checkpoint", str(ckpts["denoise"]), "--device", "cpu",
                 "--per-channel", "--ensemble", "8"]) == 0
    expected = SupervisedRestorer(ckpts["denoise"], device="cpu", ensemble=8).restore(load_image(a), per_channel=True)
    plain = SupervisedRestorer(ckpts["denoise"], device="cpu").restore(load_image(a), per_channel=True)
    assert np.abs(expected - plain).max() > 4 * LEVEL
    np.testing.assert_allclose(load_image(out / "occluded_a.png"), expected, atol=LEVEL / 2 + 1e-6)
    # a colour RSE-RL model over the shipped FFDNet: its predictor's self-ensemble
    rse = rse_with_predictor(tmp_path / "rse_ffdnet.pt")
    assert main(["denoise", str(a), "-o", str(tmp_path / "s"), "--model", "rse", "--checkpoint", str(rse),
                 "--device", "cpu", "--ensemble", "2"]) == 0
    expected = load_denoiser("rse", rse, device="cpu", ensemble=2).restore(load_image(a))
    np.testing.assert_allclose(load_image(tmp_path / "s" / "occluded_a.png"), expected, atol=LEVEL / 2 + 1e-6)
    torch.manual_seed(0)  # one without a predictor refuses it
    pure = RSEDenoiser(channels=3, patch=8, stride=4, latent_dim=4, hidden=8, bank_size=16, clusters=2, neighbours=2,
                       width=4, max_rounds=1)
    path = save_checkpoint(tmp_path / "rse.pt", model=pure, arch=pure.arch(),
                           extra={"spec": RSEDenoiserSpec(sigma=25.0, channels=3, rounds=1)})
    capsys.readouterr()
    assert main(["denoise", str(a), "-o", str(tmp_path / "r"), "--model", "rse", "--checkpoint", str(path),
                 "--device", "cpu", "--ensemble", "2"]) != 0
    assert "has none (rse_train without --predictor" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_complete_with_mask_files_keeps_known_pixels(ckpts, images, tmp_path, capsys):
    (a, b), _ = images
    masks = tmp_path / "masks"
    mask_a = np.zeros((40, 56), np.float32)
    mask_a[10:26, 20:36] = 1.0
    save_image(masks / "a.png", mask_a)  # found without the occluded_ prefix
    out = tmp_path / "out"
    code = main(["complete", str(a), str(b), "-o", str(out), "--checkpoint", str(ckpts["completion"]),
                 "--masks", str(masks), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 1  # b has no mask file
    assert "b.png" in captured.err and "no mask" in captured.err
    assert "hole 11.4% (256 px)" in _lines(captured.out, "occluded_a.png")[0]
    written, original = load_image(out / "occluded_a.png"), load_image(a)
    known = mask_a == 0
    assert np.array_equal(written[known], original[known])  # bit-exact outside the hole (8-bit in, 8-bit out)
    assert not np.array_equal(written[~known], original[~known])


def test_complete_ensemble_is_the_models_self_ensemble(ckpts, images, tmp_path):
    (a, _), _ = images
    masks = tmp_path / "masks"
    hole = np.zeros((40, 56), np.float32)
    hole[10:26, 20:36] = 1.0
    save_image(masks / "a.png", hole)
    torch.manual_seed(0)
    unet = CompletionUNet(3, width=8, levels=2)
    torch.nn.init.normal_(unet.head.weight, std=0.5)  # a correction of the fill that is not flip-symmetric
    spec = SupervisedSpec(model="unet", task="completion", channels=3, prefill="diffusion")
    checkpoint = save_checkpoint(tmp_path / "unet.pt", model=unet, arch=unet.arch(), extra={"spec": spec})
    out = tmp_path / "o"
    assert main(["complete", str(a), "-o", str(out), "--checkpoint", str(checkpoint), "--masks", str(masks),
                 "--device", "cpu", "--ensemble", "4"]) == 0
    restorer = partial(SupervisedRestorer, checkpoint, device="cpu", task="completion")
    expected = restorer(ensemble=4).restore(load_image(a), mask=hole > 0)
    plain = restorer().restore(load_image(a), mask=hole > 0)
    assert np.abs(expected - plain).max() > 4 * LEVEL
    np.testing.assert_allclose(load_image(out / "occluded_a.png"), expected, atol=LEVEL / 2 + 1e-6)


def test_complete_estimates_holes_without_mask_files(ckpts, images, tmp_path, capsys):
    (a, b), _ = images
    out = tmp_path / "out"
    assert main(["complete", str(a), str(b), "-o", str(out), "--checkpoint", str(ckpts["completion"]),
                 "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "(256 px)" in _lines(captured.out, "occluded_a.png")[0]
    assert "(144 px)" in _lines(captured.out, "b.png")[0]  # the 12x12 square, not the dark photo
    written, original = load_image(out / "b.png"), load_image(b)
    known = np.ones((48, 32), bool)
    known[30:42, 4:16] = False
    assert np.array_equal(written[known], original[known])


def test_complete_warns_when_the_hole_it_found_may_be_wrong(ckpts, tmp_path, capsys):
    """The example astronaut's hole touches the photo's black background: the hole is found, and a
    warning on stderr says it may be wrong and how to pass the mask; the other photos get none."""
    from rlenhance.data.samples import write_samples

    write_samples(tmp_path / "samples", size=96)
    out = tmp_path / "out"
    assert main(["complete", str(tmp_path / "samples/occluded"), "-o", str(out), "--checkpoint",
                 str(ckpts["completion"]), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "hole 6.2% (576 px)" in _lines(captured.out, "astronaut.png")[0]
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "astronaut.png" in warnings[0], captured.err
    assert "--masks DIR" in warnings[0] and "white = missing" in warnings[0]


@pytest.mark.parametrize("argv, hint", [
    (["enhance", "x.png", "-o", "out", "--model", "mrpnett"], "did you mean 'mrpnet'? (choose from rl, mrpnet)"),
    (["enhanse", "x.png"], "did you mean 'enhance'?"),
    (["enhance", "x.png", "-o", "out", "--expsure", "0.5"], "did you mean --exposure?"),
])
def test_a_mistyped_value_or_option_gets_one_line_and_the_closest_match(argv, hint, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" not in err and len(err.splitlines()) == 2, err
    assert hint in err.splitlines()[0] and "--help" in err.splitlines()[1]
    assert not (tmp_path / "out").exists()


def test_enhance_help_says_what_the_supervised_model_is_for(capsys):
    """--model mrpnet is a baseline for comparison (its colours and grid are its own, not a bug): --help
    says so, as docs/lowlight.md does."""
    with pytest.raises(SystemExit):
        main(["enhance", "--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert "mrpnet: the supervised MRPNet + Generator baseline, for comparison only" in flat
    assert "olive cast" in flat and "grid" in flat


def test_bad_arguments_exit_2(ckpts, images, tmp_path, capsys):
    (a, _), _ = images
    out = str(tmp_path / "out")
    assert main(["denoise", str(a), "-o", out, "--checkpoint", str(ckpts["completion"])]) == 2
    err = capsys.readouterr().err
    assert "complete.pt" in err and "'completion'" in err and "'denoise'" in err
    assert main(["complete", str(a), "-o", out, "--checkpoint", str(ckpts["completion"]),
                 "--mask-threshold", "-1"]) == 2
    assert "--mask-threshold" in capsys.readouterr().err
    assert main(["enhance", str(a), "-o", out, "--model", "mrpnet", "--checkpoint", str(ckpts["lowlight"]),
                 "--exposure", "0.5"]) == 2
    assert "--exposure" in capsys.readouterr().err
    assert main(["enhance", str(a), "-o", out, "--model", "mrpnet", "--checkpoint", str(ckpts["lowlight"]),
                 "--max-overshoot", "0.05"]) == 2
    assert "--max-overshoot" in capsys.readouterr().err
    assert main(["enhance", str(a), "-o", out, "--checkpoint", str(ckpts["policy"]), "--max-overshoot", "-1"]) == 2
    assert "--max-overshoot: expected" in capsys.readouterr().err
    assert main(["enhance", str(a), "-o", out, "--model", "mrpnet", "--checkpoint", str(ckpts["lowlight"]),
                 "--denoise", "1"]) == 2
    assert "--denoise" in capsys.readouterr().err
    assert main(["enhance", str(a), "-o", out, "--checkpoint", str(ckpts["policy"]), "--denoise", "3"]) == 2
    assert "--denoise: expected the denoising strength, a number 0 <= --denoise <= 2" in capsys.readouterr().err
    assert main(["enhance", str(a), "-o", out, "--checkpoint", str(ckpts["policy"]), "--max-overshoot", "1"]) == 2
    assert "--max-overshoot: expected a number with 0 <= --max-overshoot < 1" in capsys.readouterr().err
    assert main(["enhance", str(a), "-o", out, "--checkpoint", str(ckpts["policy"]),
                 "--denoiser", str(ckpts["lowlight"])]) == 2
    assert "'lowlight'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["complete", str(a), "-o", out, "--masks", out, "--mask-threshold", "0.1"])
    assert exit_info.value.code == 2
    assert not Path(out).exists()


def test_missing_default_weights_ask_for_a_checkpoint(images, tmp_path, capsys, monkeypatch):
    from rlenhance import registry

    monkeypatch.setattr(registry, "WEIGHTS", tmp_path / "not_installed")
    (a, _), _ = images
    for argv, name in ((["denoise"], "ffdnet_denoise.pt"), (["complete"], "unet_completion.pt"),
                       (["enhance", "--model", "mrpnet"], "mrpnet_lowlight.pt")):
        assert main([*argv, str(a), "-o", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert name in err and "pass --checkpoint PATH" in err


@pytest.mark.parametrize("argv, trainer", [
    (["complete", "--model", "a3c"], "python -m experiments.completion_train"),
    (["denoise", "--model", "rse"], "python -m experiments.rse_train --preset rse-denoise-color"),
    (["denoise", "--model", "sac", "--per-channel"], "python -m experiments.denoise_train --agent sac"),
])
def test_a_policy_that_does_not_ship_is_one_clear_line(images, tmp_path, capsys, argv, trainer):
    """Without --checkpoint, a model whose recipe's policy took its predictor's output everywhere (none
    ships) fails before any image with one line: why, the figure and the command that trains one."""
    (a, _), _ = images
    assert main([*argv, str(a), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and " ships: the policy of its recipe took " in lines[0], lines
    assert "0.00 dB" in lines[0] and trainer in lines[0] and lines[0].endswith("pass --checkpoint PATH")
    assert not (tmp_path / "out").exists()


def test_enhance_with_the_supervised_model(ckpts, images, tmp_path, capsys):
    (_, b), _ = images
    out = tmp_path / "out"
    assert main(["enhance", str(b), "-o", str(out), "--model", "mrpnet", "--checkpoint", str(ckpts["lowlight"]),
                 "--device", "cpu"]) == 0
    assert "mean" in _lines(capsys.readouterr().out, "b.png")[0]
    expected = SupervisedRestorer(ckpts["lowlight"], device="cpu").restore(load_image(b))
    np.testing.assert_allclose(load_image(out / "b.png"), expected, atol=LEVEL / 2 + 1e-6)
    # without --model the checkpoint names its method; a --model that contradicts it is one line
    assert main(["enhance", str(b), "-o", str(tmp_path / "own"), "--checkpoint", str(ckpts["lowlight"]),
                 "--device", "cpu"]) == 0
    np.testing.assert_allclose(load_image(tmp_path / "own" / "b.png"), expected, atol=LEVEL / 2 + 1e-6)
    capsys.readouterr()
    assert main(["enhance", str(b), "-o", str(tmp_path / "rl"), "--model", "rl", "--checkpoint",
                 str(ckpts["lowlight"])]) == 2
    assert "a mrpnet low-light model; load it with --model mrpnet" in capsys.readouterr().err
    assert not (tmp_path / "rl").exists()


def test_enhance_writes_the_levels_of_the_float_api(ckpts, images, tmp_path, capsys):
    """The CLI enhances the file's uint8 samples into uint8 levels (no float copy of the photo): the
    PNG holds what save_image writes of Enhancer.enhance's float result."""
    (_, b), _ = images
    out = tmp_path / "out"
    assert main(["enhance", str(b), "-o", str(out), "--checkpoint", str(ckpts["policy"]), "--device", "cpu"]) == 0
    enhanced = Enhancer(ckpts["policy"], device="cpu").enhance(load_image(b))
    np.testing.assert_allclose(load_image(out / "b.png"), enhanced, atol=LEVEL / 2 + 1e-6)
    line = _lines(capsys.readouterr().out, "b.png")[0]
    assert f"mean {float(load_image(b).mean()):.3f} -> " in line
    # --max-overshoot reaches the Enhancer: 6 steps take the brighter image past the target, 0.6
    (a, _), _ = images
    assert main(["enhance", str(a), "-o", str(tmp_path / "cap"), "--checkpoint", str(ckpts["policy"]), "--device",
                 "cpu", "--steps", "6", "--max-overshoot", "0"]) == 0
    free = Enhancer(ckpts["policy"], device="cpu", steps=6).enhance(load_image(a))
    capped = Enhancer(ckpts["policy"], device="cpu", steps=6, max_overshoot=0.0).enhance(load_image(a))
    assert free.mean() > 0.61 and capped.mean() < 0.601
    np.testing.assert_allclose(load_image(tmp_path / "cap" / a.name), capped, atol=LEVEL / 2 + 1e-6)
    # --denoise reaches it too (0: the curves alone)
    for strength in ("0", "2"):
        assert main(["enhance", str(b), "-o", str(tmp_path / strength), "--checkpoint", str(ckpts["policy"]),
                     "--device", "cpu", "--denoise", strength]) == 0
        other = Enhancer(ckpts["policy"], device="cpu", denoise=float(strength)).enhance(load_image(b))
        assert np.abs(other - enhanced).max() > 2 * LEVEL
        np.testing.assert_allclose(load_image(tmp_path / strength / "b.png"), other, atol=LEVEL / 2 + 1e-6)


def test_enhance_denoiser_changes_the_output_and_equals_denoise_of_enhance(ckpts, images, tmp_path, capsys):
    (_, b), _ = images
    plain, denoised = tmp_path / "plain", tmp_path / "denoised"
    common = ["-o", "--checkpoint", str(ckpts["policy"]), "--device", "cpu"]
    assert main(["enhance", str(b), common[0], str(plain), *common[1:]]) == 0
    assert main(["enhance", str(b), common[0], str(denoised), *common[1:], "--denoiser", str(ckpts["denoise"])]) == 0
    a, d = load_image(plain / "b.png"), load_image(denoised / "b.png")
    assert np.abs(a - d).max() > 2 * LEVEL
    enhanced = Enhancer(ckpts["policy"], device="cpu", denoise=0).enhance(load_image(b))
    manual = SupervisedRestorer(ckpts["denoise"], device="cpu").restore(enhanced, per_channel=True)
    np.testing.assert_allclose(d, manual, atol=LEVEL / 2 + 1e-6)
    # the denoiser replaces the clean stage: a --denoise beside it is refused, 0 is fine
    assert main(["enhance", str(b), common[0], str(tmp_path / "db"), *common[1:], "--denoiser", str(ckpts["denoise"]),
                 "--denoise", "2"]) == 2
    assert "--denoise 2 with --denoiser: the denoiser replaces the clean stage" in capsys.readouterr().err
    assert not (tmp_path / "db").exists()
    assert main(["enhance", str(b), common[0], str(tmp_path / "d0"), *common[1:], "--denoiser", str(ckpts["denoise"]),
                 "--denoise", "0"]) == 0
    np.testing.assert_array_equal(load_image(tmp_path / "d0" / "b.png"), d)
    with pytest.raises(ValueError, match="denoise 1 with a denoiser"):
        Enhancer(ckpts["policy"], device="cpu", denoiser=ckpts["denoise"], denoise=1)
    # a model name: the shipped colour checkpoint of that model (a file of that name would win)
    named = tmp_path / "named"
    assert main(["enhance", str(b), common[0], str(named), *common[1:], "--denoiser", "mrpnet"]) == 0
    shipped = SupervisedRestorer(DENOISER_CHECKPOINTS["mrpnet", 3], device="cpu").restore(enhanced, per_channel=True)
    np.testing.assert_allclose(load_image(named / "b.png"), shipped, atol=LEVEL / 2 + 1e-6)
    if not DENOISER_CHECKPOINTS["ffdnet", 3].exists():  # no colour FFDNet shipped: the blind gray one serves
        assert main(["enhance", str(b), common[0], str(tmp_path / "f"), *common[1:], "--denoiser", "ffdnet"]) == 0
        gray = Enhancer(ckpts["policy"], device="cpu", denoiser=DENOISER_CHECKPOINTS["ffdnet", 1]).enhance(
            load_image(b))
        np.testing.assert_allclose(load_image(tmp_path / "f" / "b.png"), gray, atol=LEVEL / 2 + 1e-6)


def test_enhance_denoiser_named_with_neither_default_installed_is_refused_naming_the_colour_one(
        ckpts, images, tmp_path, monkeypatch, capsys):
    from rlenhance import registry

    (_, b), _ = images
    monkeypatch.setattr(registry, "WEIGHTS", tmp_path / "none")
    assert main(["enhance", str(b), "-o", str(tmp_path / "f"), "--checkpoint", str(ckpts["policy"]), "--device", "cpu",
                 "--denoiser", "ffdnet"]) == 2
    err = capsys.readouterr().err
    assert "the default colour ffdnet denoiser" in err and "pass --denoiser PATH" in err
    assert "supervised_train --model ffdnet" in err
    assert "--per-channel" not in err and "--checkpoint" not in err  # options enhance does not have for this
    assert not (tmp_path / "f").exists()


def test_enhance_denoiser_a_file_named_like_a_model_wins_and_dot_slash_is_a_path(ckpts, images, tmp_path,
                                                                              monkeypatch, capsys):
    (_, b), _ = images
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    common = ["--checkpoint", str(ckpts["policy"]), "--device", "cpu"]
    assert main(["enhance", str(b), "-o", "missing", *common, "--denoiser", "./mrpnet"]) == 2  # a path, not found
    assert "mrpnet" in capsys.readouterr().err and not (work / "missing").exists()
    (work / "mrpnet").write_bytes(ckpts["denoise"].read_bytes())  # a file called mrpnet: it is used
    assert main(["enhance", str(b), "-o", "file", *common, "--denoiser", "mrpnet"]) == 0
    enhanced = Enhancer(ckpts["policy"], device="cpu", denoise=0).enhance(load_image(b))
    own = SupervisedRestorer(ckpts["denoise"], device="cpu").restore(enhanced, per_channel=True)
    np.testing.assert_allclose(load_image(work / "file" / "b.png"), own, atol=LEVEL / 2 + 1e-6)


@pytest.mark.slow
def test_module_entry_point_runs_denoise(ckpts, images, tmp_path):
    (a, _), _ = images
    proc = subprocess.run([sys.executable, "-m", "rlenhance", "denoise", str(a), "-o", str(tmp_path / "o"),
                           "--checkpoint", str(ckpts["denoise"]), "--device", "cpu"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "occluded_a.png").is_file()


def test_lol_eval_denoiser_and_combined_methods(ckpts, tmp_path, capsys):
    from experiments import lol_eval

    rng = np.random.default_rng(1)
    for name in ("001_1", "002_1"):
        high = rng.uniform(0.2, 0.8, (32, 32, 3)).astype(np.float32)
        save_image(tmp_path / "pairs" / "high" / f"{name}.png", high)
        save_image(tmp_path / "pairs" / "low" / f"{name}.png", high * 0.15)
    table = lol_eval.main(["--data", str(tmp_path / "pairs"), "--split", "all", "--checkpoint",
                           str(ckpts["policy"]), "--denoiser", str(ckpts["denoise"]), "--combined",
                           str(ckpts["lowlight"]), "--no-classical", "--device", "cpu"])
    rows = {row["method"]: row for row in table}
    assert set(rows) == {"rlenhance (ours)", "rlenhance (ours) + denoiser", "MRPNet+Generator"}
    assert rows["rlenhance (ours)"]["psnr"] != rows["rlenhance (ours) + denoiser"]["psnr"]
    assert all(np.isfinite(row["psnr"]) for row in table)
    with pytest.raises(ValueError, match="'denoise'"):
        lol_eval.main(["--data", str(tmp_path / "pairs"), "--split", "all", "--checkpoint", str(ckpts["policy"]),
                       "--combined", str(ckpts["denoise"]), "--device", "cpu"])


# --- no file is ever lost (outputs planned before any work) ---------------------------------------
def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}


def _commands(ckpts):
    """Each subcommand with a checkpoint that accepts a 3-channel PNG."""
    return {"enhance": ["--checkpoint", str(ckpts["policy"])],
            "denoise": ["--checkpoint", str(ckpts["denoise"]), "--per-channel"],
            "complete": ["--checkpoint", str(ckpts["completion"])]}


@pytest.mark.parametrize("command", ["enhance", "denoise", "complete"])
def test_an_input_is_never_overwritten(ckpts, images, command, capsys):
    (a, b), bad = images
    folder = a.parent
    before = _snapshot(folder)
    for overwrite in ([], ["--overwrite"]):
        code = main([command, str(a), str(b), "-o", str(folder), "--device", "cpu", *_commands(ckpts)[command],
                     *overwrite])
        assert code == 2
        err = capsys.readouterr().err
        assert "would replace the input" in err and str(a) in err
        assert err.count("\n") == 1  # one line
    assert _snapshot(folder) == before  # nothing written, nothing replaced


@pytest.mark.parametrize("command", ["enhance", "denoise", "complete"])
def test_two_inputs_with_one_output_are_refused_naming_both(ckpts, images, tmp_path, command, capsys):
    (a, _), _ = images
    other = tmp_path / "other" / a.name
    other.parent.mkdir()
    other.write_bytes(a.read_bytes())
    jpg = a.with_suffix(".jpg")
    save_image(jpg, load_image(a))
    for inputs in ((a, other), (a, jpg)):
        out = tmp_path / f"out_{command}"
        assert main([command, *map(str, inputs), "-o", str(out), "--device", "cpu", *_commands(ckpts)[command]]) == 2
        err = capsys.readouterr().err
        assert str(inputs[0]) in err and str(inputs[1]) in err and "both be written" in err
        assert not out.exists()


def test_a_file_listed_twice_is_refused(ckpts, images, tmp_path, capsys):
    (a, _), _ = images
    assert main(["enhance", str(a), str(a), "-o", str(tmp_path / "out"), *_commands(ckpts)["enhance"]]) == 2
    assert "listed twice" in capsys.readouterr().err


def test_a_jpg_next_to_a_png_of_the_same_stem_does_not_replace_it(ckpts, images, capsys):
    """`rlenhance enhance d/photo.jpg -o d` where d/photo.png exists but is not an input."""
    (a, _), _ = images
    jpg = a.with_suffix(".jpg")
    save_image(jpg, load_image(a))
    before = _snapshot(a.parent)
    assert main(["enhance", str(jpg), "-o", str(a.parent), *_commands(ckpts)["enhance"]]) == 2
    err = capsys.readouterr().err
    assert f"already exist: {a}" in err and "--overwrite" in err
    assert _snapshot(a.parent) == before


def test_existing_outputs_need_overwrite(ckpts, images, tmp_path, capsys):
    (a, b), _ = images
    out = tmp_path / "out"
    args = ["enhance", str(a), str(b), "-o", str(out), "--device", "cpu", *_commands(ckpts)["enhance"]]
    assert main(args) == 0
    (out / "b.png").write_bytes(b"user's own file")
    first = (out / "occluded_a.png").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "2 output file(s) already exist" in err and "--overwrite" in err
    assert (out / "b.png").read_bytes() == b"user's own file"  # untouched
    assert main([*args, "--overwrite"]) == 0
    assert (out / "occluded_a.png").read_bytes() == first  # same result written again
    assert load_image(out / "b.png").shape == (48, 32, 3)


def test_mask_files_are_protected(ckpts, images, tmp_path, capsys):
    (a, b), _ = images
    masks = tmp_path / "masks"
    mask = np.zeros((48, 32, 1), np.float32)
    mask[30:42, 4:16] = 1.0
    save_image(masks / "b.png", mask)
    before = _snapshot(masks)
    assert main(["complete", str(b), "-o", str(masks), "--masks", str(masks), "--overwrite",
                 *_commands(ckpts)["complete"]]) == 2
    assert "would replace the input" in capsys.readouterr().err
    assert _snapshot(masks) == before


def test_output_folder_problems_are_reported_before_any_work(ckpts, images, tmp_path, capsys):
    (a, _), _ = images
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    assert main(["enhance", str(a), "-o", str(afile), *_commands(ckpts)["enhance"]]) == 2
    err = capsys.readouterr().err
    assert "is a file; expected an output folder" in err and "File exists" not in err
    assert main(["enhance", str(a), "-o", str(afile / "sub"), *_commands(ckpts)["enhance"]]) == 2
    err = capsys.readouterr().err
    assert f"-o {afile / 'sub'}: cannot create the output folder" in err and ".tmp" not in err
    assert afile.read_text() == "keep me"


@pytest.mark.parametrize("when", ["open", "write"])
def test_exit_code_1_when_an_output_cannot_be_written(ckpts, images, tmp_path, capsys, monkeypatch, when):
    """A write failure (disk full, permissions) names the output file, not a hidden temporary one, whether
    it comes when the file is made (naming the temporary file) or when its bytes are written (naming none)."""
    import errno
    import os

    (a, b), _ = images
    real_open, real_write_bytes = os.open, Path.write_bytes

    def refuse(path, *args, **kwargs):
        if Path(path).name.startswith(".b.png"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, *args, **kwargs)

    def half_then_full(self, data):
        if not self.name.startswith(".b.png"):
            return real_write_bytes(self, data)
        real_write_bytes(self, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    if when == "open":
        monkeypatch.setattr(os, "open", refuse)
    else:
        monkeypatch.setattr(Path, "write_bytes", half_then_full)
    out = tmp_path / "out"
    assert main(["enhance", str(a), str(b), "-o", str(out), *_commands(ckpts)["enhance"]]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {out / 'b.png'}: No space left on device" in err and ".tmp" not in err
    assert "1 of 2 image(s) failed; the other outputs were written" in err
    assert (out / "occluded_a.png").is_file() and not (out / "b.png").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_max_pixels_option(ckpts, images, tmp_path, capsys):
    (a, _), _ = images  # 56 x 40 = 2240 pixels
    out = tmp_path / "out"
    assert main(["enhance", str(a), "-o", str(out), "--max-pixels", "2000", *_commands(ckpts)["enhance"]]) == 1
    assert "--max-pixels" in capsys.readouterr().err
    assert main(["enhance", str(a), "-o", str(out), "--max-pixels", "2240", *_commands(ckpts)["enhance"]]) == 0
    assert main(["enhance", str(a), "-o", str(tmp_path / "o2"), "--max-pixels", "0"]) == 2


def test_a_png_as_checkpoint_is_one_line(images, tmp_path, capsys):
    (a, _), _ = images
    assert main(["enhance", str(a), "-o", str(tmp_path / "out"), "--checkpoint", str(a)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(a) in err and "it is a PNG image" in err
    assert "weights_only" not in err


# --- batch runs: worker processes, shards, resuming ------------------------------------------------
def _many(tmp_path, n=5):
    rng = np.random.default_rng(3)
    paths = []
    for i in range(n):
        path = tmp_path / "many" / f"img{i}.png"
        save_image(path, rng.uniform(0.0, 0.3, (24 + 2 * i, 30, 3)).astype(np.float32))
        paths.append(path)
    return paths


@pytest.mark.slow
def test_jobs_write_the_same_outputs_as_one_process(ckpts, tmp_path, capsys):
    paths = _many(tmp_path)
    bad = tmp_path / "many" / "bad.png"
    bad.write_text("not an image")
    common = ["--checkpoint", str(ckpts["policy"]), "--device", "cpu"]
    assert main(["enhance", *map(str, paths), str(bad), "-o", str(tmp_path / "one"), *common]) == 1
    capsys.readouterr()
    assert main(["enhance", *map(str, paths), str(bad), "-o", str(tmp_path / "two"), *common, "--jobs", "2"]) == 1
    captured = capsys.readouterr()
    assert f"FAILED {bad}" in captured.err and "1 of 6 image(s) failed" in captured.err
    assert [line.split(" -> ")[0] for line in captured.out.splitlines()] == list(map(str, paths))  # input order
    for path in paths:
        name = f"{path.stem}.png"
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()


def test_shards_split_the_inputs_and_skip_existing_resumes(ckpts, tmp_path, capsys, monkeypatch):
    paths = _many(tmp_path)
    out = tmp_path / "out"
    common = ["enhance", *map(str, paths), "-o", str(out), "--checkpoint", str(ckpts["policy"]), "--device", "cpu"]
    assert main([*common, "--shard", "1/2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["img1.png", "img3.png"]
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun: the rank's shard by default
    assert main(common) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"img{i}.png" for i in range(5)]
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    (out / "img4.png").unlink()  # an interrupted run: one output missing
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    assert main([*common, "--skip-existing"]) == 0
    captured = capsys.readouterr()
    assert "skipping 4 input(s) whose output exists" in captured.out
    written = [line for line in captured.out.splitlines() if line.endswith(tuple("0123456789")) and " ms " in line]
    assert len(written) == 1 and "img4.png" in written[0]
    assert all(out.joinpath(name).stat().st_mtime_ns == mtime for name, mtime in before.items())
    for bad in ("2/2", "a/b", "1", "-1/2"):
        assert main([*common, f"--shard={bad}"]) == 2
        assert "--shard" in capsys.readouterr().err
    assert main([*common, "--skip-existing", "--overwrite"]) == 2
    assert main([*common, "--jobs", "0"]) == 2


def test_skip_existing_redoes_outputs_that_do_not_decode(ckpts, tmp_path, capsys):
    """An interrupted copy leaves empty or truncated outputs: --skip-existing redoes them, keeps good ones."""
    paths = _many(tmp_path, 4)
    out = tmp_path / "out"
    common = ["enhance", *map(str, paths), "-o", str(out), "--checkpoint", str(ckpts["policy"]), "--device", "cpu"]
    assert main(common) == 0
    good = {name: (out / name).read_bytes() for name in ("img0.png", "img3.png")}
    (out / "img1.png").write_bytes(b"")  # 0 bytes
    (out / "img2.png").write_bytes(good["img0.png"][: len(good["img0.png"]) // 2])  # truncated
    mtimes = {name: (out / name).stat().st_mtime_ns for name in good}
    capsys.readouterr()
    assert main([*common, "--skip-existing"]) == 0
    captured = capsys.readouterr()
    assert "skipping 2 input(s) whose output exists" in captured.out
    assert "redoing 2 input(s) whose output exists but does not decode" in captured.out
    for name in ("img1.png", "img2.png"):
        assert load_image(out / name).shape[:2] == load_image(paths[int(name[3])]).shape[:2]
    assert {name: (out / name).stat().st_mtime_ns for name in good} == mtimes


def test_a_png_whose_text_chunk_is_a_bomb_is_reported_and_skipped(ckpts, tmp_path, capsys):
    """Pillow refuses a text chunk that decompresses past its limit: that image fails, the batch goes on."""
    import struct
    import zlib

    from PIL import PngImagePlugin

    paths = _many(tmp_path, 2)
    data = paths[0].read_bytes()
    text = b"Comment\0\0" + zlib.compress(b"a" * (PngImagePlugin.MAX_TEXT_CHUNK + 1))
    chunk = struct.pack(">I", len(text)) + b"zTXt" + text + struct.pack(">I", zlib.crc32(b"zTXt" + text))
    bomb = tmp_path / "many" / "bomb.png"
    bomb.write_bytes(data[:33] + chunk + data[33:])  # right after IHDR
    out = tmp_path / "out"
    assert main(["enhance", str(bomb), *map(str, paths), "-o", str(out), "--checkpoint", str(ckpts["policy"]),
                 "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert f"FAILED {bomb}" in err and "MAX_TEXT_CHUNK" in err and "1 of 3 image(s) failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["img0.png", "img1.png"]


def test_shard_errors_name_what_is_wrong(ckpts, tmp_path, capsys, monkeypatch):
    paths = _many(tmp_path, 2)
    common = ["enhance", *map(str, paths), "-o", str(tmp_path / "out"), "--checkpoint", str(ckpts["policy"]),
              "--device", "cpu"]
    assert main([*common, "--shard", "-1/2"]) == 2  # a negative index as its own argument reaches the range check
    err = capsys.readouterr().err
    assert "expected one argument" not in err and "--shard '-1/2'" in err and "outside 0..1" in err
    for rank, size in (("x", "2"), ("2", "2"), ("0", "0")):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", size)
        assert main(common) == 2
        err = capsys.readouterr().err
        assert f"RANK={rank!r}" in err and f"WORLD_SIZE={size!r}" in err and "--shard '" not in err
    assert not (tmp_path / "out").exists()


# --- two real processes: runs racing into one folder, a worker killed ---------------------------------

#: A restore function for the processes below, imported by the run and its spawned --jobs workers.
HELPER = '''
import multiprocessing, os, time
from pathlib import Path

def build(args):
    folder = Path(os.environ["HELPER_DIR"])
    if multiprocessing.parent_process() is not None:  # a --jobs worker: blocks on its first image
        (folder / "worker-built").touch()
        def restore(path, image):
            (folder / "worker.part").write_text(str(os.getpid()))
            os.replace(folder / "worker.part", folder / "worker.pid")
            time.sleep(300)
        return restore
    invert = os.environ.get("HELPER_RUN") == "b"
    def restore(path, image):
        deadline = time.monotonic() + 120
        while args.jobs > 1 and not (folder / "worker-built").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.02)
        return (1.0 - image if invert else image), "run " + os.environ.get("HELPER_RUN", "")
    return restore
'''

#: Runs the CLI with HELPER's restore function for ``denoise``; with HELPER_BARRIER, waits after
#: planning its outputs until the other run has planned its own (so that both find the folder empty).
RUNNER = '''
import os, sys, time
from pathlib import Path
import helper
import rlenhance.cli as cli
import rlenhance.cli.batch as batch
import rlenhance.cli.denoise as denoise

if __name__ == "__main__":
    denoise.build = helper.build
    if os.environ.get("HELPER_BARRIER"):
        plan = batch.plan_outputs
        def planned_together(*args, **kwargs):
            result = plan(*args, **kwargs)
            folder = Path(os.environ["HELPER_DIR"])
            (folder / ("planned-" + os.environ["HELPER_RUN"])).touch()
            deadline = time.monotonic() + 120
            while len(list(folder.glob("planned-*"))) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            return result
        batch.plan_outputs = planned_together
    sys.exit(cli.main(sys.argv[1:]))
'''


def _helper_run(tmp_path, args, run="", barrier=False):
    helpers = tmp_path / "helpers"
    helpers.mkdir(exist_ok=True)
    (helpers / "helper.py").write_text(HELPER)
    (helpers / "runner.py").write_text(RUNNER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(helpers), str(ROOT)]), "HELPER_DIR": str(helpers),
           "HELPER_RUN": run, **({"HELPER_BARRIER": "1"} if barrier else {})}
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return subprocess.Popen([sys.executable, str(helpers / "runner.py"), "denoise", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _finish(process, timeout=120):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"the run hung; it printed:\n{out}\n{err}")
    return process.returncode, out, err


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["", "--skip-existing"])
def test_two_runs_into_one_folder_never_replace_each_others_outputs(tmp_path, flag):
    """Both runs plan while the folder is empty, then write the same 12 outputs: each file is written by
    one run, which says so; the other keeps it and says so (a failure without --skip-existing)."""
    paths = _many(tmp_path, 12)
    out = tmp_path / "out"
    runs = {run: _helper_run(tmp_path, [*map(str, paths), "-o", str(out), "--device", "cpu", *([flag] if flag else [])],
                             run=run, barrier=True) for run in "ab"}
    results = {run: _finish(process) for run, process in runs.items()}
    writer = {}
    for run, (code, stdout, stderr) in results.items():
        written = [line.split(" -> ")[0] for line in stdout.splitlines() if f"run {run}" in line]
        kept = [line.split()[1].rstrip(":") for line in (stdout + stderr).splitlines()
                if line.startswith(("FAILED", "skipped"))]
        assert sorted(written + kept) == sorted(map(str, paths)), (stdout, stderr)
        for path in written:
            assert path not in writer, f"{path} was written by both runs"
            writer[path] = run
        assert code == (1 if kept and not flag else 0), (stdout, stderr)
        if kept:
            assert "written meanwhile" in stdout + stderr
    assert len(writer) == 12
    for path in paths:
        image, output = load_image(path), load_image(out / f"{path.stem}.png")
        np.testing.assert_allclose(output, image if writer[str(path)] == "a" else 1 - image, atol=LEVEL / 2 + 1e-6)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}.png" for p in paths)  # no temporary files


@pytest.mark.slow
def test_a_killed_jobs_worker_fails_its_image_and_the_run_finishes(tmp_path):
    """SIGKILL to a --jobs worker while it restores an image: that image is reported failed with the
    cause, the run's own process restores the others (those queued at the worker too), exit code 1."""
    paths = _many(tmp_path, 12)
    out = tmp_path / "out"
    process = _helper_run(tmp_path, [*map(str, paths), "-o", str(out), "--device", "cpu", "--jobs", "2"])
    pid_file = tmp_path / "helpers" / "worker.pid"
    deadline = time.monotonic() + 120
    while not pid_file.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pid_file.exists(), "the worker was given no image"
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    code, stdout, stderr = _finish(process)
    failed = [line for line in stderr.splitlines() if line.startswith("FAILED")]
    assert code == 1 and len(failed) == 1 and "died (killed by SIGKILL)" in failed[0], stderr
    assert "1 of 12 image(s) failed" in stderr
    dead = Path(failed[0].split()[1].rstrip(":"))
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}.png" for p in paths if p != dead)
    assert len([line for line in stdout.splitlines() if " -> " in line]) == 11


# --- every shipped model, by name -----------------------------------------------------------------------
def _shipped(method) -> bool:
    from rlenhance import registry

    return registry.missing(method) is None


def _learned_methods():
    from rlenhance import registry

    return [m for m in registry.methods(learned=True) if _shipped(m)]


@pytest.mark.parametrize("method", _learned_methods(), ids=lambda m: f"{m.task}-{m.name}")
def test_every_shipped_model_runs_by_name(method, tmp_path):
    """``rlenhance enhance|denoise|complete --model NAME`` runs the registry's shipped weights of NAME (the RL
    policies included): the output is the registry restorer's on the same image."""
    from rlenhance import registry
    from rlenhance.data.occluded import hole_mask

    rng = np.random.default_rng(0)
    image = np.clip(0.2 + 0.5 * rng.random((24, 28, 3)), 0, 1).astype(np.float32)
    if method.task == "denoise":  # a gray photo: the gray default where there is one
        image = np.repeat(image[..., :1], 3, axis=2)
    if method.task == "completion":
        image[8:14, 10:16] = 0.0
    path = tmp_path / "in.png"
    save_image(path, image)
    image = load_image(path)
    command = {"lowlight": "enhance", "denoise": "denoise", "completion": "complete"}[method.task]
    assert main([command, str(path), "-o", str(tmp_path / "out"), "--model", method.name, "--device", "cpu"]) == 0
    gray = method.weights.get(1)
    planes = 1 if gray is not None and (registry.WEIGHTS / gray).is_file() else 3
    restorer = registry.load(method.task, method.name, planes=planes, device="cpu")
    if method.task == "denoise":
        expected = restorer.restore(image[..., :1])
    else:
        expected = restorer.restore(image, mask=hole_mask(image) if method.task == "completion" else None)
    written = load_image(tmp_path / "out" / "in.png")
    np.testing.assert_allclose(written[..., :expected.shape[-1]], np.clip(expected, 0, 1), atol=LEVEL * 1.01)


def test_complete_refuses_a_checkpoint_of_another_model(tmp_path, capsys):
    policy = recipe_policy(tmp_path / "policy.pt", "a3c_completion")
    image = np.full((16, 16, 3), 0.5, np.float32)
    image[4:8, 4:8] = 0.0
    save_image(tmp_path / "in.png", image)
    assert main(["complete", str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--model", "unet",
                 "--checkpoint", str(policy)]) == 2
    assert "a3c completion model; load it with --model a3c" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
