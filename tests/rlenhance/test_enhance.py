"""Enhancer: strip-wise full-resolution curves, settings, checkpoint validation."""

import dataclasses
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rlenhance
from rlenhance import enhance as enhance_module
from rlenhance.checkpoint import LowLightPolicySpec, SupervisedSpec, save_checkpoint
from rlenhance.enhance import Enhancer
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.models.policy import PixelActorCritic
from rlenhance.ops import le_curve
from rlenhance.rollouts import greedy_rollout
from rlenhance.transitions import LowLightTransition

ALPHAS = [round((a - 6) / 20, 2) for a in range(27)]
COND_FIELDS = ["exposure_target", "w_exposure", "w_color", "w_spatial", "w_smooth"]
#: A low-light policy's transition and spec values, as the tests' checkpoints have them.
ENV = {"alpha_table": ALPHAS, "damping": 0.2, "action_type": "discrete", "test_steps": 3,
       "cond_fields": COND_FIELDS, "cond_scale": [1.0, 10.0, 5.0, 1.0, 20.0],
       "setting": {"exposure_target": 0.6, "w_exposure": 10.0, "w_color": 5.0, "w_spatial": 1.0, "w_smooth": 20.0}}
#: The ranges of a policy conditioned over exposure 0.3-0.8 and each weight times 0.5-2.
RANGES = {"exposure_target": (0.3, 0.8), "w_exposure": (5.0, 20.0), "w_color": (2.5, 10.0), "w_spatial": (0.5, 2.0),
          "w_smooth": (10.0, 40.0)}
_TRANSITION_KEYS = ("alpha_table", "damping", "action_type", "cond_fields", "cond_scale", "cond_offset",
                    "cond_encodings", "observe_exposure_gap", "channel_coupling", "max_overshoot", "alpha_channels")


def _spec(**changes) -> LowLightPolicySpec:
    """A spec from the flat values above, ``changes`` given by the transition's field names or the spec's
    (``test_steps``: the transition's steps; ``overshoot_weighted``: a cap weighted at the setting's w_exposure)."""
    values = {**ENV, "alpha_mode": "mean", "max_side": None, "conditioned": False, "setting_ranges": {},
              "blur_sigma": None, "env_kwargs": {}, "alpha_channels": 3, "channel_coupling": 0.0,
              "max_overshoot": None, "observe_exposure_gap": False, **changes}
    fields = values.pop("cond_fields")
    values.setdefault("cond_offset", [0.0] * len(fields))
    values.setdefault("cond_encodings", ["linear"] * len(fields))
    weighted = values.pop("overshoot_weighted", False)
    transition = {k: values.pop(k) for k in _TRANSITION_KEYS if k != "cond_fields"}
    transition = LowLightTransition(**transition, cond_fields=fields, steps=values.pop("test_steps"),
                                    overshoot_reference=values["setting"].get("w_exposure") if weighted else None)
    return LowLightPolicySpec(transition=transition, **values)


@pytest.fixture()
def checkpoint(tmp_path):
    """A low-light policy checkpoint conditioned over :data:`RANGES`."""
    torch.manual_seed(0)
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2, cond_dim=5,
                              policy_head_gain=3.0)
    return save_checkpoint(tmp_path / "policy.pt", model=policy, arch=policy.arch(),
                           extra={"spec": _spec(conditioned=True, setting_ranges=RANGES)})


def test_strips_equal_whole_image_upsampling(checkpoint):
    rng = np.random.default_rng(0)
    image = rng.uniform(0.0, 0.3, (37, 53, 3)).astype(np.float32)
    enhancer = Enhancer(checkpoint, device="cpu", max_side=20, strip_pixels=7 * 53, denoise=0)
    result = enhancer.enhance_array(image, exposure=0.5)
    full = torch.from_numpy(image).permute(2, 0, 1)[None]
    maps = enhancer.alpha_maps(full, enhancer.cond(exposure=0.5))
    assert maps[0].shape[-2:] == (20, 20)  # the policy ran on the square working image
    expected = full
    for alpha in maps:
        expected = le_curve(expected, F.interpolate(alpha, size=(37, 53), mode="bilinear",
                                                    align_corners=False)).clamp(0, 1)
    np.testing.assert_allclose(result.image, expected[0].permute(1, 2, 0).numpy(), atol=1e-5)
    assert result.mean_before == pytest.approx(float(image.mean()))
    assert result.mean_after == pytest.approx(float(result.image.mean()))


@pytest.mark.parametrize("alpha_mode", ["argmax", "mean"])
def test_rollout_matches_env_transition(checkpoint, alpha_mode):
    enhancer = Enhancer(checkpoint, device="cpu")
    x = torch.rand(2, 3, 16, 16) * 0.3
    cond = enhancer.cond().expand(2, -1)
    out, maps = greedy_rollout(enhancer.policy, x, cond, transition=enhancer.transition, alpha_mode=alpha_mode)
    expected = x
    for alpha in maps:
        logits = enhancer.policy(torch.cat([expected, x], dim=1), cond=cond, full_resolution=False).logits
        assert logits.shape[-2:] == (8, 8)  # chosen at the policy's working resolution (downscale 2)
        table = torch.tensor(ALPHAS)
        if alpha_mode == "argmax":
            want = table[logits.argmax(dim=2)]
        else:  # expected alpha under the policy's distribution
            want = (logits.softmax(dim=2) * table.view(1, 1, -1, 1, 1)).sum(dim=2)
        assert torch.allclose(alpha, 0.8 * enhancer.policy.upsample(want, 16, 16), atol=1e-6)
        expected = le_curve(expected, alpha).clamp(0, 1)
    assert torch.allclose(out, expected)
    assert len(maps) == 3
    with pytest.raises(ValueError, match="alpha_mode"):
        greedy_rollout(enhancer.policy, x, cond, transition=enhancer.transition, alpha_mode="mode")


def test_setting_changes_output_and_bad_settings_are_named(checkpoint):
    enhancer = Enhancer(checkpoint, device="cpu")
    image = np.full((24, 24, 3), 0.1, np.float32)
    a = enhancer.enhance(image, exposure=0.4)
    b = enhancer.enhance(image, exposure=0.7, w_color=3.0)
    assert not np.array_equal(a, b)
    with pytest.raises(ValueError, match="exposure"):
        enhancer.enhance(image, exposure=1.2)
    with pytest.raises(ValueError, match="w_nope"):
        enhancer.cond(w_nope=1.0)
    with pytest.raises(ImageError, match=r"\(H, W, 3\)"):
        enhancer.enhance(np.zeros((8, 8), np.float32))


def test_checkpoint_without_inference_config_is_refused(tmp_path):
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=4)
    path = tmp_path / "bare.pt"
    save_checkpoint(path, model=policy, arch=policy.arch(), extra={})
    with pytest.raises(CheckpointError, match="bare.pt"):
        Enhancer(path, device="cpu")


def test_the_spec_is_honoured(checkpoint, tmp_path):
    """alpha_mode and max_side default to the checkpoint's; a spec that does not describe the network is refused."""
    old = Enhancer(checkpoint, device="cpu")
    assert old.alpha_mode == "mean" and old.max_side == 512 and old.steps == 3  # the spec's, 512 without max_side
    torch.manual_seed(0)
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2, cond_dim=5)
    path = save_checkpoint(tmp_path / "argmax.pt", model=policy, arch=policy.arch(),
                           extra={"spec": _spec(alpha_mode="argmax", max_side=64)})
    enhancer = Enhancer(path, device="cpu")
    assert (enhancer.alpha_mode, enhancer.max_side) == ("argmax", 64)
    assert Enhancer(path, device="cpu", alpha_mode="mean", max_side=32).alpha_mode == "mean"
    for bad, found in ((_spec(action_type="continuous"), "n_actions=27"), (_spec(alpha_table=ALPHAS[:9]), "9 alpha"),
                       (_spec(alpha_channels=1), "out_channels=3"),
                       (_spec(cond_fields=["w_color"], cond_scale=[1.0], cond_offset=[0.0]), "cond_dim=5")):
        path = save_checkpoint(tmp_path / "bad.pt", model=policy, arch=policy.arch(), extra={"spec": bad})
        with pytest.raises(CheckpointError, match=rf"bad\.pt.*does not describe its network.*{found}"):
            Enhancer(path, device="cpu")


def test_public_api():
    assert rlenhance.Enhancer is Enhancer
    assert issubclass(rlenhance.ImageError, ValueError)


def test_shipped_default_model_loads_and_brightens():
    enhancer = Enhancer(device="cpu")
    assert enhancer.path.name == "lowlight_a3c.pt" and enhancer.steps >= 1
    from skimage import data

    dark = ((data.coffee().astype(np.float32) / 255) ** 2.2 * 0.5).astype(np.float32)  # a photo, mean 0.11
    out = enhancer.enhance(dark)
    assert out.shape == dark.shape and np.isfinite(out).all()
    assert abs(out.mean() - 0.4) < 0.05  # the default exposure target
    assert enhancer.enhance(dark, exposure=0.6).mean() > out.mean() + 0.15


# --- ReLLIE's denoiser module: Enhancer(..., denoiser=...) ---------------------------------------------
def _save_denoiser(path, task="denoise"):
    from rlenhance.models.mrpnet import MRPNet

    torch.manual_seed(1)
    model = MRPNet(1, width=8)
    spec = SupervisedSpec(model="mrpnet", task=task, channels=1, prefill="none")
    return save_checkpoint(path, model=model, arch=model.arch(), extra={"spec": spec})


def test_denoiser_runs_after_the_last_curve_step(checkpoint, tmp_path):
    from rlenhance.restore import SupervisedRestorer

    denoiser_path = _save_denoiser(tmp_path / "denoise.pt")
    rng = np.random.default_rng(2)
    image = rng.uniform(0.0, 0.3, (40, 52, 3)).astype(np.float32)
    plain = Enhancer(checkpoint, device="cpu", max_side=24, denoise=0).enhance(image, exposure=0.5)
    with_path = Enhancer(checkpoint, device="cpu", max_side=24, denoiser=denoiser_path)
    result = with_path.enhance_array(image, exposure=0.5)
    manual = SupervisedRestorer(denoiser_path, device="cpu").restore(plain, per_channel=True)
    assert result.image.shape == image.shape
    assert np.abs(result.image - plain).max() > 1e-3  # the denoiser changed the output
    np.testing.assert_allclose(result.image, manual, atol=1e-6)  # == denoise(enhance(x)), colour kept
    assert result.mean_after == pytest.approx(float(result.image.mean()))
    instance = Enhancer(checkpoint, device="cpu", max_side=24,
                        denoiser=SupervisedRestorer(denoiser_path, device="cpu"))
    np.testing.assert_allclose(instance.enhance(image, exposure=0.5), manual, atol=1e-6)


def test_denoiser_of_another_task_is_refused(checkpoint, tmp_path):
    from rlenhance.restore import SupervisedRestorer

    lowlight = _save_denoiser(tmp_path / "lowlight_gray.pt", task="lowlight")
    with pytest.raises(CheckpointError, match=r"lowlight_gray\.pt.*'lowlight'.*'denoise'"):
        Enhancer(checkpoint, device="cpu", denoiser=lowlight)
    with pytest.raises(CheckpointError, match="'denoise'"):
        Enhancer(checkpoint, device="cpu", denoiser=SupervisedRestorer(lowlight, device="cpu"))


# --- what callers pass in: never garbage out without an error --------------------------------------
def test_integer_images_are_scaled_by_their_dtype_range(checkpoint):
    """What cv2.imread / np.asarray(PIL image) give (uint8, 0-255) is read as the float image it shows."""
    enhancer = Enhancer(checkpoint, device="cpu")
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 60, (20, 28, 3), dtype=np.uint8)
    as_float = enhancer.enhance(samples.astype(np.float32) / 255)
    np.testing.assert_array_equal(enhancer.enhance(samples), as_float)
    np.testing.assert_array_equal(enhancer.enhance(samples.astype(np.uint16) * 257), as_float)
    assert enhancer.enhance(samples).mean() < 0.9  # not the near-white of 0-255 read as 0-1


@pytest.mark.parametrize("bad, found", [
    (np.zeros((8, 8, 3), bool), "dtype bool"),
    (np.zeros((8, 8, 3), np.int64), "dtype int64"),
    (np.where(np.eye(8, dtype=bool)[..., None], np.nan, np.full((8, 8, 3), 0.2, np.float32)), "24 NaN or infinite"),
    (np.full((8, 8, 3), np.inf, np.float32), "192 NaN or infinite"),
    (np.full((8, 8, 3), 1.5, np.float32), r"values span \[1.5, 1.5\]"),
    (np.full((8, 8, 3), 40.0, np.float32), "divide by 255"),
    (np.full((8, 8, 3), -0.2, np.float32), r"values span \[-0.2, -0.2\]"),
])
def test_bad_image_values_are_refused_with_what_was_found(checkpoint, bad, found):
    enhancer = Enhancer(checkpoint, device="cpu")
    with pytest.raises(ImageError, match=found) as info:
        enhancer.enhance(bad)
    assert "accepted:" in str(info.value)


def test_a_torch_tensor_gets_told_how_to_pass_it(checkpoint):
    with pytest.raises(ImageError, match=r"torch.Tensor.*permute\(1, 2, 0\)"):
        Enhancer(checkpoint, device="cpu").enhance(torch.rand(3, 8, 8))


def test_rounding_outside_unit_range_is_clipped_not_refused(checkpoint):
    enhancer = Enhancer(checkpoint, device="cpu")
    image = np.full((8, 8, 3), 0.1, np.float32)
    nudged = image.copy()
    nudged[0, 0] = [1.00001, -0.00001, 0.1]
    clipped = np.clip(nudged, 0, 1)
    np.testing.assert_array_equal(enhancer.enhance(nudged), enhancer.enhance(clipped))


def test_setting_values_get_specific_messages(checkpoint):
    enhancer = Enhancer(checkpoint, device="cpu")
    with pytest.raises(ValueError, match=r"^exposure: expected a number, got str '0.5'$"):
        enhancer.cond(exposure="0.5")
    with pytest.raises(ValueError, match=r"^w_color: expected a finite reward weight >= 0, got -1.0$") as info:
        enhancer.cond(w_color=-1.0)
    assert "exposure" not in str(info.value)
    with pytest.raises(ValueError, match="w_smooth: expected a number"):
        enhancer.cond(w_smooth=True)
    with pytest.raises(ValueError, match=r"exposure: expected a target mean brightness in \(0, 1\)"):
        enhancer.cond(exposure=float("nan"))
    assert torch.equal(enhancer.cond(exposure=np.float32(0.5)), enhancer.cond(exposure=0.5))


def test_enhancer_is_a_restorer(checkpoint):
    """The Restorer interface (rlenhance.restore.Restorer): restore(image) is enhance(image)."""
    from rlenhance.restore import Restorer

    enhancer = Enhancer(checkpoint, device="cpu")
    assert isinstance(enhancer, Restorer) and not enhancer.takes_mask
    image = np.random.default_rng(2).uniform(0.0, 0.3, (12, 17, 3)).astype(np.float32)
    np.testing.assert_array_equal(enhancer.restore(image), enhancer.enhance(image))
    np.testing.assert_array_equal(enhancer.restore(image, mask=None, exposure=None), enhancer.enhance(image))
    with pytest.raises(ValueError, match="w_nothing"):  # the setting goes to enhance (cond)
        enhancer.restore(image, w_nothing=1.0)
    with pytest.raises(ImageError, match="takes no mask"):
        enhancer.restore(image, mask=np.zeros((12, 17), bool))


# --- setting ranges: what a checkpoint accepts, and refusal of the rest ------------------------------
SHIPPED_RANGES = {"exposure": (0.3, 0.8), "w_exposure": (100.0, 1000.0), "w_color": (20.0, 10000.0),
                  "w_spatial": (1.0, 1000.0), "w_smooth": (0.1, 100.0)}


def test_shipped_model_takes_every_knob_in_its_range_and_refuses_outside_it():
    enhancer = Enhancer(device="cpu")
    assert enhancer.setting_ranges == SHIPPED_RANGES
    image = np.full((8, 8, 3), 0.1, np.float32)
    for name, (low, high) in SHIPPED_RANGES.items():
        enhancer.cond(**{name: low}), enhancer.cond(**{name: high})  # both ends accepted
        above = 0.85 if name == "exposure" else high * 1.5
        with pytest.raises(ValueError, match=rf"^{name}: {above:g} is outside the range this model was "
                                             rf"trained over, \[{low:g}, {high:g}\]"):
            enhancer.enhance(image, **{name: above})


def test_a_model_trained_at_one_setting_refuses_every_setting(tmp_path):
    torch.manual_seed(0)
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2, cond_dim=5)
    path = save_checkpoint(tmp_path / "fixed.pt", model=policy, arch=policy.arch(), extra={"spec": _spec()})
    enhancer = Enhancer(path, device="cpu")
    assert enhancer.setting_ranges == {}
    with pytest.raises(ValueError, match=r"^exposure: fixed.pt was trained at one setting \(not conditioned\)"):
        enhancer.cond(exposure=0.6)  # even its own training value: never silently ignored
    with pytest.raises(ValueError, match="w_color: fixed.pt was trained at one setting"):
        enhancer.cond(w_color=5.0)
    assert torch.equal(enhancer.cond(exposure=None), enhancer.cond())  # None: the training value


def test_a_spec_whose_ranges_do_not_fit_is_refused():
    with pytest.raises(CheckpointError, match="not one of cond_fields"):
        _spec(conditioned=True, setting_ranges={"gamma": (0.1, 0.2)})
    with pytest.raises(CheckpointError, match=r"setting\['w_color'\] 5.0 lies outside"):
        _spec(conditioned=True, setting_ranges={"w_color": (6.0, 9.0)})
    with pytest.raises(CheckpointError, match="low < high"):
        _spec(conditioned=True, setting_ranges={"w_color": (5.0, 5.0)})
    with pytest.raises(CheckpointError, match="must be empty when not conditioned"):
        _spec(setting_ranges={"exposure_target": (0.3, 0.9)})
    with pytest.raises(ValueError, match="LowLightTransition: channel_coupling 1.5"):
        _spec(channel_coupling=1.5)


def test_log_encoded_fields_are_encoded_from_the_log_of_their_values(tmp_path, monkeypatch):
    """cond_encodings "log": cond = (log(value) - offset) / scale, the other fields as before; the
    exposure gap's target is decoded back from the cond."""
    torch.manual_seed(0)
    policy = PixelActorCritic(in_channels=7, out_channels=3, n_actions=27, width=8, downscale=2, cond_dim=5)
    scale, offset = math.log(100.0) / 2, math.log(10.0)  # log(1) .. log(100) onto [-1, 1]
    spec = _spec(conditioned=True, cond_encodings=["linear", "linear", "log", "linear", "linear"],
                 cond_scale=[0.2, 1.0, scale, 1.0, 1.0], cond_offset=[0.5, 10.0, offset, 1.0, 20.0],
                 setting_ranges={"exposure_target": (0.3, 0.7), "w_color": (1.0, 100.0)}, observe_exposure_gap=True)
    path = save_checkpoint(tmp_path / "log.pt", model=policy, arch=policy.arch(), extra={"spec": spec})
    enhancer = Enhancer(path, device="cpu")
    assert enhancer.setting_ranges == {"exposure": (0.3, 0.7), "w_color": (1.0, 100.0)}
    for w_color, expected in ((1.0, -1.0), (10.0, 0.0), (100.0, 1.0), (2.0, (math.log(2.0) - offset) / scale)):
        cond = enhancer.cond(w_color=w_color, exposure=0.7)
        assert float(cond[0, 2]) == pytest.approx(expected, abs=1e-6)
        assert float(cond[0, 0]) == pytest.approx(1.0) and float(cond[0, 4]) == 0.0  # linear fields as before
    seen = []
    monkeypatch.setattr(enhance_module, "greedy_rollout",
                        lambda *a, **k: seen.append(k["exposure_target"]) or greedy_rollout(*a, **k))
    enhancer.enhance(np.full((8, 8, 3), 0.1, np.float32), exposure=0.35, w_color=50.0)
    assert float(seen[0]) == pytest.approx(0.35)
    with pytest.raises(CheckpointError, match="'w_smooth' is log-encoded, but its setting or range reaches 0"):
        _spec(cond_encodings=["linear"] * 4 + ["log"], setting={**ENV["setting"], "w_smooth": 0.0})
    with pytest.raises(ValueError, match="cond_encodings .*accepted: \\('linear', 'log'\\)"):
        _spec(cond_encodings=["linear"] * 4 + ["exp"])
    with pytest.raises(ValueError, match="cond_encodings"):
        _spec(cond_encodings=["linear"] * 4)


def test_channel_coupling_of_the_spec_is_applied(tmp_path):
    torch.manual_seed(0)
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2, cond_dim=5,
                              policy_head_gain=3.0)
    paths = {c: save_checkpoint(tmp_path / f"c{c}.pt", model=policy, arch=policy.arch(),
                                extra={"spec": _spec(channel_coupling=c)}) for c in (0.0, 0.9)}
    image = torch.rand(1, 3, 16, 16) * 0.3
    free = Enhancer(paths[0.0], device="cpu")
    coupled = Enhancer(paths[0.9], device="cpu")
    for a, b in zip(free.alpha_maps(image, free.cond()), coupled.alpha_maps(image, coupled.cond())):
        # damping 0.2 (ENV) scales both alike; B is the reference, R and G move 90% of the way to it
        assert torch.allclose(b[:, 2], a[:, 2])
        assert torch.allclose(b[:, :2], 0.9 * a[:, 2:3] + 0.1 * a[:, :2], atol=1e-6)


def test_uint8_samples_in_and_out_are_the_saved_levels_of_the_float_path(checkpoint):
    """dtype=np.uint8 (the CLI's path: no float copy of the photo) gives round(255 v) of the float result."""
    enhancer = Enhancer(checkpoint, device="cpu", max_side=20, strip_pixels=9 * 61)
    samples = np.random.default_rng(1).integers(0, 70, (41, 61, 3), dtype=np.uint8)
    floats = enhancer.enhance_array(samples)
    levels = enhancer.enhance_array(samples, dtype=np.uint8)
    assert levels.image.dtype == np.uint8 and levels.image.shape == samples.shape
    expected = np.rint(floats.image * 255).astype(np.uint8)
    assert np.abs(levels.image.astype(int) - expected).max() <= 1 and (levels.image != expected).mean() < 1e-3
    assert levels.mean_before == pytest.approx(floats.mean_before, abs=1e-6)
    assert levels.mean_after == pytest.approx(floats.mean_after, abs=1e-3)
    with pytest.raises(ValueError, match="dtype"):
        enhancer.enhance_array(samples, dtype=np.float64)
    samples.flags.writeable = False  # as np.asarray(PIL image) gives: read, never written, no torch warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(enhancer.enhance_array(samples, dtype=np.uint8).image, levels.image)


@pytest.mark.parametrize("use_native", [True, False])
def test_working_image_is_pooled_band_by_band_with_the_same_values(use_native, monkeypatch):
    """The working image without a float copy of the photo (the native kernel, or the torch path one
    output row at a time when larger than strip_pixels) has working_square's values: a square of the
    working side, also where the photo's shorter side is shorter than it."""
    from rlenhance.data.transforms import working_square
    from rlenhance.enhance import _working_image
    from rlenhance.ops import native

    if use_native and not native.available():
        pytest.skip(f"native kernel unavailable: {native.unavailable_reason()}")
    monkeypatch.setenv(native.ENV_SWITCH, "1" if use_native else "0")

    samples = np.random.default_rng(2).integers(0, 256, (97, 131, 3), dtype=np.uint8)
    floats = samples.astype(np.float32) / np.float32(255)
    for side in (20, 100):
        expected = working_square(torch.from_numpy(floats).permute(2, 0, 1)[None], side)
        for image in (samples, floats):
            for band_pixels in (131 * 5, 10**9):
                small = _working_image(image, side, band_pixels)
                assert small.shape == expected.shape == (1, 3, side, side) and small.dtype == torch.float32
                assert torch.equal(small, expected)


def test_enhancing_needs_no_value_branch(checkpoint):
    """The greedy rollout skips the critic's value branch; the alpha maps do not change."""
    enhancer = Enhancer(checkpoint, device="cpu")
    image = torch.rand(1, 3, 16, 16) * 0.3
    calls = []
    handle = enhancer.policy.value_branch.register_forward_hook(lambda *args: calls.append(1))
    try:
        maps = enhancer.alpha_maps(image, enhancer.cond())
    finally:
        handle.remove()
    assert not calls and len(maps) == enhancer.steps


def test_max_overshoot_of_the_spec_caps_the_brightening_and_can_be_overridden(tmp_path):
    torch.manual_seed(0)
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2, cond_dim=5,
                              policy_head_gain=3.0)
    setting = {**ENV["setting"], "exposure_target": 0.3}
    paths = {cap: save_checkpoint(tmp_path / f"cap{cap}.pt", model=policy, arch=policy.arch(),
                                  extra={"spec": _spec(setting=setting, test_steps=10, max_overshoot=cap)})
             for cap in (None, 0.05)}
    image = np.full((24, 32, 3), 0.1, np.float32)
    free, capped = Enhancer(paths[None], device="cpu"), Enhancer(paths[0.05], device="cpu")
    assert (free.max_overshoot, capped.max_overshoot) == (None, 0.05)
    assert free.enhance(image).mean() > 0.4  # this policy alone brightens well past its target, 0.3
    assert capped.enhance(image).mean() == pytest.approx(0.35, abs=5e-3)
    # the user's cap overrides the file's; math.inf lifts it
    assert Enhancer(paths[None], device="cpu", max_overshoot=0.05).enhance(image).mean() == pytest.approx(0.35,
                                                                                                        abs=5e-3)
    np.testing.assert_array_equal(Enhancer(paths[0.05], device="cpu", max_overshoot=math.inf).enhance(image),
                                  free.enhance(image))
    assert Enhancer(paths[None], device="cpu", max_overshoot=np.float32(0.05)).max_overshoot == pytest.approx(0.05)
    for bad in (-0.1, 1.0, -math.inf, "0.05", math.nan, True):
        with pytest.raises(ValueError, match="max_overshoot: expected a number with 0 <= max_overshoot < 1"):
            Enhancer(paths[0.05], device="cpu", max_overshoot=bad)
    with pytest.raises(ValueError, match="max_overshoot"):
        _spec(max_overshoot=-1.0)
    with pytest.raises(CheckpointError, match="max_overshoot needs an 'exposure_target'"):
        _spec(cond_fields=[], cond_scale=[], cond_offset=[], setting={"w_exposure": 10.0}, max_overshoot=0.05)


def test_capped_steps_say_where_the_cap_stopped_the_policy(tmp_path):
    """The cap cuts the steps that would lift the mean past target + max_overshoot: from the one that reaches
    it on, on a dark image; none on an image the policy leaves below it, none without a cap."""
    torch.manual_seed(0)
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2, cond_dim=5,
                              policy_head_gain=3.0)
    setting = {**ENV["setting"], "exposure_target": 0.3}
    path = save_checkpoint(tmp_path / "capped.pt", model=policy, arch=policy.arch(),
                           extra={"spec": _spec(setting=setting, test_steps=10, max_overshoot=0.05)})
    capped, free = Enhancer(path, device="cpu"), Enhancer(path, device="cpu", max_overshoot=math.inf)
    dark = np.full((24, 32, 3), 0.1, np.float32)
    cut = capped.capped_steps(dark)
    assert len(cut) == 10 and not cut[0] and any(cut)  # the policy alone goes past 0.35 (the test above)
    first = cut.index(True)
    assert all(cut[first:])  # once at the limit, every brightening step is cut
    assert free.capped_steps(dark) == [False] * 10
    faint = np.full((24, 32, 3), 0.005, np.float32)  # too dark to reach the limit in 2 steps
    assert Enhancer(path, device="cpu", steps=2).capped_steps(faint) == [False, False]
    np.testing.assert_array_equal(Enhancer(path, device="cpu", steps=2).enhance(faint),
                                  Enhancer(path, device="cpu", steps=2, max_overshoot=math.inf).enhance(faint))
    assert all(capped.capped_steps(np.full((24, 32, 3), 0.6, np.float32)))  # above the limit already: held there
    assert capped.capped_steps((dark * 255).astype(np.uint8)) == capped.capped_steps(np.round(dark * 255) / 255)


def test_a_weighted_cap_tightens_as_the_user_raises_w_exposure(tmp_path):
    """A transition's overshoot_reference: the cap is max_overshoot at the default w_exposure and max_overshoot *
    sqrt(default / w) at another; a user's --max-overshoot is then the cap at the default."""
    torch.manual_seed(0)
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2, cond_dim=5,
                              policy_head_gain=3.0)
    setting = {**ENV["setting"], "exposure_target": 0.3}
    spec = _spec(setting=setting, test_steps=10, max_overshoot=0.08, overshoot_weighted=True, conditioned=True,
                 setting_ranges={"w_exposure": (1.0, 100.0)})
    path = save_checkpoint(tmp_path / "w.pt", model=policy, arch=policy.arch(), extra={"spec": spec})
    image = np.full((24, 32, 3), 0.1, np.float32)
    enhancer = Enhancer(path, device="cpu")
    assert enhancer.enhance(image).mean() == pytest.approx(0.38, abs=5e-3)  # default w_exposure 10: the cap
    assert enhancer.enhance(image, w_exposure=40.0).mean() == pytest.approx(0.34, abs=5e-3)  # 4x: half the cap
    assert enhancer.enhance(image, w_exposure=2.5).mean() == pytest.approx(0.46, abs=5e-3)  # a quarter: twice
    fixed = Enhancer(save_checkpoint(tmp_path / "f.pt", model=policy, arch=policy.arch(),
                                     extra={"spec": dataclasses.replace(spec, transition=dataclasses.replace(
                                         spec.transition, overshoot_reference=None))}), device="cpu")
    assert fixed.enhance(image, w_exposure=40.0).mean() == pytest.approx(0.38, abs=5e-3)  # the same cap at any weight
    user = Enhancer(path, device="cpu", max_overshoot=0.04)  # the user's cap, weighted as the file's
    assert user.enhance(image, w_exposure=40.0).mean() == pytest.approx(0.32, abs=5e-3)
    with pytest.raises(ValueError, match="overshoot_reference 0.0"):
        _spec(overshoot_weighted=True, setting={**ENV["setting"], "w_exposure": 0.0})
    with pytest.raises(CheckpointError, match="weighted by the exposure weight .*'w_exposure' > 0"):  # a range to 0
        dataclasses.replace(spec, setting_ranges={"w_exposure": (0.0, 100.0)})
    # a file trained at one setting: its fixed w_exposure is the cap's weight, so the cap is max_overshoot
    fixed_setting = Enhancer(save_checkpoint(tmp_path / "one.pt", model=policy, arch=policy.arch(), extra={
        "spec": dataclasses.replace(spec, conditioned=False, setting_ranges={})}), device="cpu")
    assert fixed_setting.enhance(image).mean() == pytest.approx(0.38, abs=5e-3)


def test_a_cap_on_a_checkpoint_without_an_exposure_target_is_refused_at_load(tmp_path):
    torch.manual_seed(0)
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2)
    path = save_checkpoint(tmp_path / "plain.pt", model=policy, arch=policy.arch(), extra={"spec": _spec(
        cond_fields=[], cond_scale=[], cond_offset=[], setting={"w_exposure": 10.0})})
    with pytest.raises(ValueError, match=r"max_overshoot: .*plain.pt was trained without an exposure target"):
        Enhancer(path, device="cpu", max_overshoot=0.05)
    image = np.full((16, 16, 3), 0.1, np.float32)  # no cap is fine: the policy alone
    np.testing.assert_array_equal(Enhancer(path, device="cpu", max_overshoot=math.inf).enhance(image),
                                  Enhancer(path, device="cpu").enhance(image))


def test_greedy_rollout_caps_each_image_of_a_mixed_batch_as_if_alone(checkpoint):
    """Only some images reach their limit: those are cut to end there, the others run as without a cap,
    and each equals its own rollout in a batch of one."""
    enhancer = Enhancer(checkpoint, device="cpu")
    x = torch.cat([torch.full((1, 3, 16, 16), 0.05), torch.full((1, 3, 16, 16), 0.3)])
    x = (x + 0.05 * torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    cond = enhancer.cond().expand(2, -1)
    transition = dataclasses.replace(enhancer.transition, steps=4)
    run = lambda image, c, limit: greedy_rollout(enhancer.policy, image, c, transition=transition,  # noqa: E731
                                                 mean_limit=limit)
    free = run(x, cond, None)[0].mean(dim=(1, 2, 3))
    limit = torch.stack([free[0] + 0.1, x[1].mean() + 0.01])  # image 0 never reaches its limit, image 1 does
    capped, maps = run(x, cond, limit)
    assert torch.allclose(capped[0], run(x, cond, None)[0][0])
    assert capped[1].mean() == pytest.approx(float(limit[1]), abs=1e-5) and free[1] > limit[1] + 0.01
    for i in range(2):
        alone = run(x[i:i + 1], cond[i:i + 1], limit[i:i + 1])[0]
        assert torch.allclose(capped[i:i + 1], alone, atol=1e-6)
    with pytest.raises(ValueError, match="limit of shape"):
        run(x, cond, torch.full((3,), 0.5))


def test_the_clean_stage_runs_by_default_with_the_curves_band_by_band_and_can_be_turned_off(tmp_path):
    from rlenhance.ops.clean import clean_enhanced

    torch.manual_seed(0)
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2, cond_dim=5)
    # a checkpoint recording a blur: no longer applied at inference
    path = save_checkpoint(tmp_path / "p.pt", model=policy, arch=policy.arch(), extra={"spec": _spec(blur_sigma=0.8)})
    samples = np.random.default_rng(3).integers(0, 60, (33, 47, 3), dtype=np.uint8)
    default = Enhancer(path, device="cpu")
    assert default.denoise == 1.0
    curves = Enhancer(path, device="cpu", denoise=0).enhance(samples)
    cleaned = default.enhance(samples)
    assert np.abs(cleaned - curves).max() > 0.01  # the noise-like input is visibly smoothed
    target = ENV["setting"]["exposure_target"]  # the knee is placed by the exposure target in use
    np.testing.assert_allclose(cleaned, clean_enhanced(samples, curves, target=target), atol=1e-6)
    strong = Enhancer(path, device="cpu", denoise=2).enhance(samples)
    np.testing.assert_allclose(strong, clean_enhanced(samples, curves, 2.0, target=target), atol=1e-6)
    # uint8 out: the rounding of the float result
    np.testing.assert_array_equal(default.enhance_array(samples, dtype=np.uint8).image, np.rint(cleaned * 255))
    for rows in (1, 2, 5):  # curves and clean stage in bands of rows narrower than the blurs: the same values
        banded = Enhancer(path, device="cpu", strip_pixels=rows * 47)
        np.testing.assert_array_equal(banded.enhance(samples), cleaned)
        np.testing.assert_array_equal(banded.enhance_array(samples, dtype=np.uint8).image,
                                      default.enhance_array(samples, dtype=np.uint8).image)
    for bad in (-0.5, 2.5, math.nan, True, "1"):
        with pytest.raises(ValueError, match=r"denoise: expected the denoising strength, a number 0 <= denoise <= 2"):
            Enhancer(path, device="cpu", denoise=bad)


def test_the_clean_stage_places_its_knee_by_the_exposure_target_asked_for(checkpoint):
    from rlenhance.ops.clean import clean_enhanced

    samples = np.random.default_rng(4).integers(0, 200, (24, 32, 3), dtype=np.uint8)
    for exposure in (0.3, 0.8):
        curves = Enhancer(checkpoint, device="cpu", denoise=0).enhance(samples, exposure=exposure)
        cleaned = Enhancer(checkpoint, device="cpu").enhance(samples, exposure=exposure)
        np.testing.assert_allclose(cleaned, clean_enhanced(samples, curves, target=exposure), atol=1e-6)


def test_the_spec_checks_its_blur_sigma():
    with pytest.raises(CheckpointError, match="blur_sigma"):
        _spec(blur_sigma=5.0)
