"""The ONNX export of the low-light Enhancer (rlenhance.export, ``rlenhance export``): onnxruntime alone
reproduces ``rlenhance enhance`` at any size, for the shipped policy and for policies of other transitions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rlenhance.checkpoint import save_checkpoint
from rlenhance.cli import main
from rlenhance.data.builtin import BUILTIN_IMAGES
from rlenhance.enhance import Enhancer
from rlenhance.export import ExportError, area_downscale, export_lowlight
from rlenhance.models.policy import PixelActorCritic
from rlenhance.transitions import LE, ActionFamily
from tests.specs import lowlight_spec

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[2]
SETTING = {"exposure_target": 0.5, "w_exposure": 10.0, "w_color": 5.0, "w_spatial": 1.0, "w_smooth": 20.0}
#: A table with negative alphas (darkening actions), unlike ReLLIE's mostly positive one.
NEGATIVE_ALPHAS = [-0.4, -0.1, 0.0, 0.2, 0.5, 0.9]


def dark(photo: np.ndarray, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """``photo`` resized to ``size`` (height, width), darkened, with sensor-like noise: uint8 RGB."""
    import cv2

    rng = np.random.default_rng(seed)
    resized = cv2.resize(photo, size[::-1], interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return np.rint(np.clip(resized * 0.15 + rng.normal(0, 0.01, resized.shape), 0, 1) * 255).astype(np.uint8)


def run_graph(path: Path, samples: np.ndarray) -> np.ndarray:
    """onnxruntime's result for uint8 samples, as uint8 levels (what the example script does)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = (samples.astype(np.float32) / np.float32(255)).transpose(2, 0, 1)[None]
    out = session.run(["enhanced"], {"image": image})[0][0].transpose(1, 2, 0)
    return np.rint(np.clip(out, 0, 1) * 255).astype(np.uint8)


def within_one(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.int16) - b) <= 1))


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The shipped model with a setting of its own, exported once."""
    enhancer = Enhancer(device="cpu")
    path, share = export_lowlight(enhancer, tmp_path_factory.mktemp("onnx") / "lowlight.onnx", exposure=0.55,
                                  w_color=100.0)
    assert share >= 0.999
    return enhancer, path


@pytest.mark.parametrize("size", [(400, 600), (601, 397), (1080, 1920), (90, 61), (1, 1)])
def test_onnxruntime_reproduces_the_shipped_enhancer_at_any_size(shipped, size):
    enhancer, path = shipped
    samples = dark(BUILTIN_IMAGES["coffee"](), size)
    expected = enhancer.enhance_array(samples, dtype=np.uint8, exposure=0.55, w_color=100.0).image
    got = run_graph(path, samples)
    assert within_one(got, expected) >= 0.999
    assert got.mean() > samples.mean() + 20 or size == (1, 1)  # the setting's brightening, not the input


def test_the_example_script_writes_what_the_enhance_command_writes(shipped, tmp_path):
    from rlenhance.io import load_image, save_image

    enhancer, path = shipped
    samples = dark(BUILTIN_IMAGES["rocket"](), (300, 450))
    save_image(tmp_path / "dark.png", samples)
    subprocess.run([sys.executable, str(ROOT / "examples/onnx_enhance.py"), str(path), str(tmp_path / "dark.png"),
                    str(tmp_path / "bright.png")], check=True, capture_output=True, timeout=120)
    expected = enhancer.enhance_array(samples, dtype=np.uint8, exposure=0.55, w_color=100.0).image
    assert within_one(load_image(tmp_path / "bright.png", samples=True), expected) >= 0.999


def test_the_area_resize_is_the_enhancers():
    image = torch.rand(1, 3, 97, 131, generator=torch.Generator().manual_seed(0))
    for size in [(97, 131), (40, 55), (13, 7), (1, 1), (96, 100), (131, 131)]:  # the last: the rows repeat
        expected = F.adaptive_avg_pool2d(image, size)
        # window sums as differences of running sums: float rounding of sums up to the row's
        assert torch.allclose(area_downscale(image, torch.tensor(size)), expected, atol=1e-5)


def _policy(tmp_path: Path, name: str, net: dict, **spec) -> Enhancer:
    torch.manual_seed(0)
    policy = PixelActorCritic(width=8, policy_head_gain=3.0, **net)
    path = save_checkpoint(tmp_path / f"{name}.pt", model=policy, arch=policy.arch(), extra={"spec": lowlight_spec(
        setting=SETTING, **spec)})
    return Enhancer(path, device="cpu")


#: Policies of other transitions and networks than the shipped one: (network, spec).
POLICIES = {
    # per-channel alphas from a table with negative entries, coupled and damped, a weighted cap, the exposure
    # gap plane, FiLM conditioning over a range of exposures
    "negative-table": ({"in_channels": 7, "out_channels": 3, "n_actions": 6, "downscale": 4, "cond_dim": 5,
                        "cond_film": True},
                       {"test_steps": 4, "alpha_table": NEGATIVE_ALPHAS, "action_type": "discrete",
                        "channel_coupling": 0.5, "damping": 0.2, "max_overshoot": 0.05, "observe_exposure_gap": True,
                        "cond_scale": [1.0] * 5, "conditioned": True,
                        "setting_ranges": {"exposure_target": (0.3, 0.8)}, "max_side": 96,
                        "overshoot_weighted": True}),
    # ReLLIE's test-time rule (the most probable alpha) and a ConvGRU carried across the steps
    "argmax-gru": ({"in_channels": 6, "out_channels": 3, "n_actions": 6, "downscale": 2, "cond_dim": 5,
                    "conv_gru": True},
                   {"test_steps": 3, "alpha_table": NEGATIVE_ALPHAS, "action_type": "discrete",
                    "cond_scale": [1.0] * 5, "alpha_mode": "argmax", "max_side": 64}),
    # a continuous A3C policy (clipped Gaussian) with one alpha for all channels, no conditioning, no cap
    "continuous": ({"in_channels": 6, "out_channels": 1, "n_actions": None, "downscale": 1, "cond_dim": 0,
                    "bounded_mean": True},
                   {"test_steps": 2, "alpha_table": [], "action_type": "continuous", "alpha_channels": 1,
                    "cond_fields": [], "cond_scale": [], "max_side": 48}),
    # another action family than LE: a gamma curve of one's own, named by import path
    "gamma-family": ({"in_channels": 6, "out_channels": 1, "n_actions": 6, "downscale": 2, "cond_dim": 0},
                     {"test_steps": 3, "alpha_table": NEGATIVE_ALPHAS, "action_type": "discrete", "alpha_channels": 1,
                      "curve": "examples.gamma_curve:GammaCurve", "cond_fields": [], "cond_scale": [],
                      "max_side": 64}),
    # an MRPNet backbone pads its input to its own multiples: the working image is one size, so it traces
    "mrpnet-backbone": ({"in_channels": 6, "out_channels": 3, "n_actions": 6, "downscale": 2, "cond_dim": 5,
                         "backbone": "mrpnet", "backbone_width": 8},
                        {"test_steps": 2, "alpha_table": NEGATIVE_ALPHAS, "action_type": "discrete",
                         "cond_scale": [1.0] * 5, "max_side": 64}),
}


class FixedShapeCurve(ActionFamily):
    """LE, plus a zero plane of the image's size taken as Python numbers: a trace keeps the example's."""

    name = "fixed-shape"

    @staticmethod
    def curve(x: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
        return LE.curve(x, alpha) + x.new_zeros(int(x.shape[-2]), int(x.shape[-1]))


@pytest.mark.parametrize("name", list(POLICIES))
def test_policies_of_other_transitions_export_and_match(tmp_path, name):
    net, spec = POLICIES[name]
    enhancer = _policy(tmp_path, name, net, **spec)
    setting = {"exposure": 0.7} if spec.get("conditioned") else {}
    path, share = export_lowlight(enhancer, tmp_path / f"{name}.onnx", **setting)
    assert share >= 0.999
    for size in [(300, 451), (77, 40)]:
        samples = dark(BUILTIN_IMAGES["chelsea"](), size, seed=size[0])
        expected = enhancer.enhance_array(samples, dtype=np.uint8, **setting).image
        assert within_one(run_graph(path, samples), expected) >= 0.999


def test_a_policy_the_graph_cannot_express_is_refused_and_nothing_is_written(tmp_path):
    """An action family whose curve reads the image's size as numbers: the trace fixes that size."""
    enhancer = _policy(tmp_path, "fixed", {"in_channels": 6, "out_channels": 1, "n_actions": 6, "downscale": 2,
                                           "cond_dim": 0},
                       test_steps=2, alpha_table=NEGATIVE_ALPHAS, action_type="discrete", alpha_channels=1,
                       curve="tests.rlenhance.test_export:FixedShapeCurve", cond_fields=[], cond_scale=[], max_side=32)
    with pytest.raises(ExportError, match="fixed.pt: the traced graph fails on a .* image") as refused:
        export_lowlight(enhancer, tmp_path / "fixed.onnx")
    assert "\n" not in str(refused.value)
    assert list(tmp_path.glob("*.onnx")) == [] and list(tmp_path.glob(".*")) == []


def test_the_command_writes_the_graph_and_refuses_what_it_cannot_express(tmp_path, capsys):
    enhancer = _policy(tmp_path, "plain", {"in_channels": 6, "out_channels": 3, "n_actions": 6, "downscale": 2,
                                           "cond_dim": 0}, test_steps=2, alpha_table=NEGATIVE_ALPHAS,
                       action_type="discrete", cond_fields=[], cond_scale=[], max_side=32)
    out = tmp_path / "plain.onnx"
    assert main(["export", "--checkpoint", str(enhancer.path), "-o", str(out), "--denoise", "0.5"]) == 0
    assert "100.00% of 8-bit levels within 1" in capsys.readouterr().out
    samples = dark(BUILTIN_IMAGES["coffee"](), (120, 180))
    expected = Enhancer(enhancer.path, device="cpu", denoise=0.5).enhance_array(samples, dtype=np.uint8).image
    assert within_one(run_graph(out, samples), expected) >= 0.999
    assert main(["export", "--checkpoint", str(enhancer.path), "-o", str(out)]) == 2  # exists, no --overwrite
    for argv, message in [(["--denoiser", "ffdnet"], "--denoiser ffdnet: a denoising network after the curves"),
                          (["--model", "mrpnet"], "mrpnet: a low-light model the export cannot write"),
                          (["--exposure", "0.5"], "exposure: .*trained at one setting")]:
        capsys.readouterr()
        assert main(["export", "--checkpoint", str(enhancer.path), "-o", str(tmp_path / "x.onnx"), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(message, err), err
    assert not (tmp_path / "x.onnx").exists()
