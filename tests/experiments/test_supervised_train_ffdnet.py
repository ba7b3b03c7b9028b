"""experiments.supervised_train --model ffdnet (ReLLIE's noise-map denoiser) and --noise amplified:
defaults, the run and the checkpoint it leaves (its spec drives the Enhancer), a resumed run, argument
errors."""

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from experiments.runs import parse_config
from experiments.supervised_train import Args, main, make_example, resolve_args
from rlenhance.checkpoint import LowLightPolicySpec, load_checkpoint, save_checkpoint
from rlenhance.enhance import Enhancer
from rlenhance.models.policy import PixelActorCritic
from rlenhance.restore import SupervisedRestorer

TINY = ["--epochs", "1", "--steps-per-epoch", "3", "--batch", "2", "--crop", "32", "--width", "8",
        "--val-samples", "4", "--samples", "1", "--threads", "1"]


def resolved(*argv):
    argv = list(argv)
    return resolve_args(parse_config(Args, argv), argv)


def run(*argv):
    with contextlib.redirect_stdout(io.StringIO()):
        return main([*TINY, *argv])


def test_defaults_follow_the_model_and_the_noise():
    ffdnet = resolved("--model", "ffdnet", "--task", "denoise")
    assert (ffdnet.noise, ffdnet.sigma, ffdnet.depth, ffdnet.lr, ffdnet.crop) == ("amplified", 10.0, 15, 1e-3, 64)
    plain = resolved("--model", "mrpnet", "--task", "denoise")
    assert (plain.noise, plain.sigma, plain.depth) == ("gaussian", 25.0, None)
    amplified = resolved("--model", "mrpnet", "--task", "denoise", "--noise", "amplified", "--sigma", "6")
    assert (amplified.noise, amplified.sigma) == ("amplified", 6.0)


@pytest.mark.parametrize("argv, match", [
    (["--model", "ffdnet"], "--model ffdnet reads a noise-level map: it trains on --task denoise --noise amplified"),
    (["--model", "ffdnet", "--task", "denoise", "--noise", "gaussian"], "got --task denoise --noise gaussian"),
    (["--model", "mrpnet", "--task", "denoise", "--depth", "4"], "--depth 4: an option of --model ffdnet"),
    (["--model", "ffdnet", "--task", "denoise", "--depth", "1"], "--depth 1"),
    (["--task", "lowlight", "--noise", "amplified"], "--noise amplified: an option of --task denoise"),
    (["--model", "ffdnet", "--task", "denoise", "--sigma", "0"], r"with a --sigma > 0 \(got --task denoise --sigma"),
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
    out = run("--model", "ffdnet", "--task", "denoise", "--depth", "3", "--sigma", "8", "--out", str(tmp_path / "ffd"))
    config = json.loads((out / "config.json").read_text())
    assert (config["noise"], config["sigma"], config["depth"]) == ("amplified", 8.0, 3)
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    spec = best["extra"]["spec"]
    assert (spec.model, spec.noise, spec.sigma, spec.needs_noise_map) == ("ffdnet", "amplified", 8.0, True)
    assert best["arch"] == {"class": "FFDNet", "kwargs": {"in_channels": 1, "width": 8, "depth": 3, "residual": True}}
    restorer = SupervisedRestorer(out / "checkpoints" / "best.pt", device="cpu", noise_map=True)
    torch.manual_seed(0)
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2)
    policy_spec = LowLightPolicySpec(
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
    out = run("--model", "mrpnet", "--no-generator", "--task", "denoise", "--noise", "amplified",
              "--out", str(tmp_path / "plain"))
    spec = load_checkpoint(out / "checkpoints" / "best.pt")["extra"]["spec"]
    assert (spec.model, spec.noise, spec.sigma, spec.needs_noise_map) == ("mrpnet", "amplified", 10.0, False)
    assert not SupervisedRestorer(out / "checkpoints" / "best.pt", device="cpu").needs_noise_map


def test_a_run_saved_before_the_noise_options_resumes_with_gaussian_noise(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    saved = {k: v for k, v in vars(resolved("--task", "denoise", *TINY)).items() if k not in ("noise", "depth")}
    (out / "config.json").write_text(json.dumps({**saved, "sigma": 15.0}))
    args = resolved("--out", str(out), "--resume")
    assert (args.noise, args.sigma, args.depth) == ("gaussian", 15.0, None)
