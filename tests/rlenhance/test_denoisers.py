"""rlenhance.denoisers: the RL denoisers run in the library equal their env rollouts, tile exactly,
follow one set of channel rules; load_denoiser picks models and defaults and refuses wrong kinds;
FFDNet given the map of a known or estimated noise level (NoiseLevelDenoiser);
``rlenhance denoise --model mrpnet|a3c|sac|rse|ffdnet`` end to end."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rlenhance.denoisers as denoisers
from envs.checkpoints import rollout_policy_spec
from rlenhance import registry
from rlenhance.checkpoint import (
    LowLightPolicySpec,
    RSEDenoiserSpec,
    SupervisedSpec,
    save_checkpoint,
)
from rlenhance.cli import main
from rlenhance.denoisers import NoiseLevelDenoiser, PolicyDenoiser, default_denoiser, load_denoiser
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.io import is_gray, load_image, save_image
from rlenhance.models.ffdnet import FFDNet
from rlenhance.models.mrpnet import MRPNet
from rlenhance.models.policy import PixelActorCritic
from rlenhance.models.rse import RSEDenoiser
from rlenhance.noise_estimate import estimate_noise_sigma
from rlenhance.restore import Restorer, SupervisedRestorer
from rlenhance.rse import RSERestorer, load_rse
from rlenhance.transitions import LowLightTransition
from tests.rollouts import env_restore

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "rlenhance" / "weights"
LEVEL = 1 / 255  # outputs are 8-bit PNGs


class Defaults:
    """The denoisers' default weights in a folder of their own (``registry.WEIGHTS`` pointed at it):
    ``defaults[model, planes] = path`` installs ``path`` as that default, ``del`` removes it."""

    def __init__(self, folder: Path, monkeypatch):
        folder.mkdir(parents=True, exist_ok=True)
        monkeypatch.setattr(registry, "WEIGHTS", folder)
        self.folder = folder

    def __setitem__(self, key, path):
        target = self.folder / denoisers.DENOISER_CHECKPOINTS[key].name
        target.unlink(missing_ok=True)
        target.symlink_to(Path(path).resolve())

    def __delitem__(self, key):
        (self.folder / denoisers.DENOISER_CHECKPOINTS[key].name).unlink(missing_ok=True)
RSE_TINY = dict(patch=8, stride=4, latent_dim=4, hidden=16, bank_size=64, clusters=4, neighbours=3, width=8,
                max_rounds=2)


def policy_checkpoint(path, channels, *, downscale=1, block_actions=False, conv_gru=False, clip=False,
                      algorithm="a3c", task="denoise", steps=2, **net):
    """A random (untrained) PixelRL filter-bank policy saved as experiments.denoise_train does."""
    torch.manual_seed(channels + 10 * downscale + 100 * conv_gru)
    policy = PixelActorCritic(in_channels=channels + (task == "completion"), out_channels=1,
                              n_actions=9 if task == "denoise" else 8, width=8, downscale=downscale,
                              conv_gru=conv_gru, **net)
    with torch.no_grad():  # a non-trivial policy: the near-uniform init would pick one filter everywhere
        policy.policy_head.weight.normal_(0, 2.0)
    env_kwargs = {"sigma": 25.0, "gray": channels == 1, "crop": 16, "max_episode_steps": steps}
    if clip:
        env_kwargs["clip"] = True
    if task == "completion":
        env_kwargs = {"crop": 16, "max_episode_steps": steps}
    spec = rollout_policy_spec(task, env_kwargs, block_actions=block_actions, predictor=None)
    return save_checkpoint(path, model=policy, arch=policy.arch(), extra={"spec": spec, "algorithm": algorithm})


def ffdnet_checkpoint(path, channels, *, noise="gaussian", sigmas=(5.0, 40.0)):
    """A tiny untrained FFDNet saved as experiments.supervised_train --model ffdnet does (Gaussian noise
    of the levels ``sigmas``, or amplified noise of the largest)."""
    torch.manual_seed(channels)
    net = FFDNet(channels, width=8, depth=3)
    spec = SupervisedSpec(model="ffdnet", task="denoise", channels=channels, prefill="none", noise=noise,
                          sigma=sigmas[-1], sigmas=sigmas if noise == "gaussian" else None)
    return save_checkpoint(path, model=net, arch=net.arch(), extra={"spec": spec})


def rse_checkpoint(path, channels):
    """A tiny RSE-RL denoiser (random weights, fitted latent banks) as experiments.rse_train saves it."""
    torch.manual_seed(channels)
    model = RSEDenoiser(channels=channels, **RSE_TINY).eval()
    for stage in model.rounds:
        stage.bank.fit(torch.randn(stage.bank.size, stage.vae.latent_dim))
    spec = RSEDenoiserSpec(sigma=25.0, channels=channels, rounds=2)
    return save_checkpoint(path, model=model, arch=model.arch(), extra={"spec": spec})


def noisy_image(height, width, channels, seed=0):
    """A smooth image plus noise, unclipped (a denoiser's input may leave [0, 1])."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    clean = np.stack([0.5 + 0.3 * np.sin(4 * x + 3 * y + c) for c in range(channels)], axis=-1)
    return (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("denoisers")
    mrpnet, mrpnet_color = MRPNet(1, width=8), MRPNet(3, width=8)
    lowlight = PixelActorCritic(in_channels=6, out_channels=3, n_actions=3, width=8)
    lowlight_spec = LowLightPolicySpec(
        transition=LowLightTransition(
            action_type="discrete", alpha_table=[-0.1, 0.0, 0.1], alpha_channels=3, channel_coupling=0.0, damping=0.0,
            max_overshoot=None, overshoot_reference=None, cond_fields=[], cond_scale=[], cond_offset=[],
            cond_encodings=[], observe_exposure_gap=False, steps=1),
        alpha_mode="mean", setting={"exposure_target": 0.5}, max_side=None, conditioned=False, setting_ranges={},
        blur_sigma=None, env_kwargs={})
    return {
        "a3c_gray": policy_checkpoint(folder / "a3c_gray.pt", 1),
        "a3c_color": policy_checkpoint(folder / "a3c_color.pt", 3),
        "sac_gray": policy_checkpoint(folder / "sac_gray.pt", 1, algorithm="sac"),
        "sac_color": policy_checkpoint(folder / "sac_color.pt", 3, algorithm="sac"),
        "completion": policy_checkpoint(folder / "completion.pt", 3, task="completion"),
        "rse_gray": rse_checkpoint(folder / "rse_gray.pt", 1),
        "rse_color": rse_checkpoint(folder / "rse_color.pt", 3),
        "mrpnet_gray": save_checkpoint(folder / "mrpnet.pt", model=mrpnet, arch=mrpnet.arch(), extra={
            "spec": SupervisedSpec(model="mrpnet", task="denoise", channels=1, prefill="none")}),
        "mrpnet_color": save_checkpoint(folder / "mrpnet_color.pt", model=mrpnet_color, arch=mrpnet_color.arch(),
                                        extra={"spec": SupervisedSpec(model="mrpnet", task="denoise", channels=3,
                                                                      prefill="none")}),
        "lowlight": save_checkpoint(folder / "lowlight.pt", model=lowlight, arch=lowlight.arch(),
                                    extra={"spec": lowlight_spec}),
        "ffdnet_gray": ffdnet_checkpoint(folder / "ffdnet_gray.pt", 1),
        "ffdnet_color": ffdnet_checkpoint(folder / "ffdnet_color.pt", 3),
        "ffdnet_amplified": ffdnet_checkpoint(folder / "ffdnet_amplified.pt", 1, noise="amplified", sigmas=(10.0,)),
    }


# --- the policy restorer equals the env's rollout ----------------------------------------------------
@pytest.mark.parametrize("net", [dict(), dict(downscale=2, block_actions=True, conv_gru=True),
                                 dict(downscale=2, block_actions=False), dict(clip=True)],
                         ids=["per-pixel", "block-actions-gru", "downscaled-per-pixel", "clip"])
@pytest.mark.parametrize("channels", [1, 3], ids=["gray", "colour"])
def test_policy_denoiser_equals_the_env_rollout(tmp_path, channels, net):
    path = policy_checkpoint(tmp_path / "policy.pt", channels, **net)
    image = noisy_image(21, 17, channels, seed=channels)
    if net.get("clip"):
        image = np.clip(image, 0.0, 1.0)  # a clip-trained env takes noisy images in [0, 1] only
    denoiser = PolicyDenoiser(path, device="cpu")
    assert isinstance(denoiser, Restorer) and not denoiser.takes_mask and denoiser.channels == channels
    assert denoiser.block_actions == bool(net.get("block_actions")) and denoiser.clip == bool(net.get("clip"))
    out = denoiser.restore(image)
    expected = env_restore(path, image)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert np.abs(out - np.clip(image, 0, 1)).max() > 0.05  # the policy did filter the image
    if channels == 1:  # a gray policy on RGB: R, G and B separately, as the env rollout restores them
        rgb = noisy_image(13, 19, 3, seed=5)
        if net.get("clip"):
            rgb = np.clip(rgb, 0.0, 1.0)
        np.testing.assert_allclose(denoiser.restore(rgb, per_channel=True), env_restore(path, rgb), atol=1e-5)


def test_the_gray_recipes_rl_denoisers_equal_their_env_rollouts(tmp_path):
    """Untrained policies of the gray A3C and SAC recipes (tests.recipes: their trainer's spec, network
    and predictor) run as the env's rollout."""
    from tests.recipes import recipe_policy

    image = noisy_image(40, 52, 1, seed=3)
    for model in ("a3c", "sac"):
        path = recipe_policy(tmp_path / f"{model}.pt", f"{model}_denoise", predictor_dir=tmp_path / "trainer")
        denoiser = load_denoiser(model, path, device="cpu")
        assert isinstance(denoiser, PolicyDenoiser) and denoiser.agent == model
        # tiled with a margin of its receptive field, in whole policy pixels (large photos fit in memory)
        assert denoiser.overlap is not None and denoiser.overlap > 0
        assert denoiser.overlap % denoiser.policy.downscale == 0
        # both take the shipped blind FFDNet's pixel as action 9 (found in the shipped weights whatever
        # the trainer's path), given each image's estimated level, and read its output
        assert denoiser.predictor is not None and denoiser.predictor.path == WEIGHTS / "ffdnet_denoise.pt"
        assert denoiser.predictor.sigma is None and denoiser.observe_prediction
        np.testing.assert_allclose(denoiser.restore(image), env_restore(path, image), atol=1e-5)


@pytest.mark.parametrize("net", [dict(), dict(downscale=2, block_actions=True, conv_gru=True)],
                         ids=["per-pixel", "block-actions-gru"])
def test_tiles_equal_the_whole_image_and_need_their_margin(tmp_path, net):
    path = policy_checkpoint(tmp_path / "small.pt", 1, dilations=(1, 2), branch_dilations=(), **net)
    image = noisy_image(130, 121, 1, seed=7)
    whole = PolicyDenoiser(path, device="cpu", tile=4096)
    tiled = PolicyDenoiser(path, device="cpu", tile=15)
    assert tiled.tile % tiled.policy.downscale == 0 and tiled.overlap % tiled.policy.downscale == 0
    assert tiled.tile + 2 * tiled.overlap < 121  # windows smaller than the image: really tiled
    expected = whole.restore(image)
    np.testing.assert_allclose(tiled.restore(image), expected, atol=1e-5)
    tiled.overlap = 0  # without the margin the tiles' borders show
    assert np.abs(tiled.restore(image) - expected).max() > 1e-3


def test_policy_channel_rules_and_bad_inputs(ckpts):
    gray, colour = PolicyDenoiser(ckpts["a3c_gray"], device="cpu"), PolicyDenoiser(ckpts["a3c_color"], device="cpu")
    rgb = noisy_image(12, 14, 3, seed=1)
    with pytest.raises(ImageError, match=r"gray \(1-channel\).*per_channel=True.*--per-channel.*colour"):
        gray.restore(rgb)
    per_channel = gray.restore(rgb, per_channel=True)
    for c in range(3):
        np.testing.assert_allclose(per_channel[..., c:c + 1], gray.restore(rgb[..., c:c + 1]), atol=1e-6)
    plane = rgb[..., :1]
    np.testing.assert_array_equal(colour.restore(plane), colour.restore(np.repeat(plane, 3, axis=2)))
    np.testing.assert_array_equal(gray.restore(plane[..., 0]), gray.restore(plane))  # (H, W) accepted
    with pytest.raises(ImageError, match="takes no mask"):
        gray.restore(plane, mask=np.zeros((12, 14), bool))
    with pytest.raises(ImageError, match="image"):
        gray.restore(np.zeros((8, 8, 4), np.float32))
    with pytest.raises(ValueError, match="tile"):
        PolicyDenoiser(ckpts["a3c_gray"], tile=0)


def test_policy_channels_are_the_specs_and_the_network_must_match(tmp_path):
    colour = PolicyDenoiser(policy_checkpoint(tmp_path / "colour.pt", 3), device="cpu")
    assert colour.channels == colour.spec.channels == 3 and colour.spec.sigmas == (25.0,)
    for channels in (1, 3):  # a spec without "gray" (an older file) means Denoise-v0's default: gray
        raw = torch.load(policy_checkpoint(tmp_path / f"p{channels}.pt", channels), weights_only=True)
        del raw["extra"]["spec"]["env_kwargs"]["gray"]
        torch.save(raw, tmp_path / f"old{channels}.pt")
    assert PolicyDenoiser(tmp_path / "old1.pt", device="cpu").channels == 1
    with pytest.raises(CheckpointError, match=r"old3\.pt.*not a policy .* on the gray image alone \(1 input plane"):
        PolicyDenoiser(tmp_path / "old3.pt", device="cpu")  # an RGB network whose spec says gray


# --- RSE-RL -------------------------------------------------------------------------------------------
def test_rse_restorer_is_the_model_clamped_with_the_channel_rules(ckpts):
    colour, gray = RSERestorer(ckpts["rse_color"], device="cpu"), RSERestorer(ckpts["rse_gray"], device="cpu")
    model, spec = load_rse(ckpts["rse_color"])
    image = noisy_image(20, 24, 3, seed=2)
    out = colour.restore(image)
    expected = model(torch.from_numpy(image).permute(2, 0, 1)[None], rounds=spec.rounds).clamp(0, 1)
    np.testing.assert_allclose(out, expected[0].permute(1, 2, 0).numpy(), atol=1e-6)
    assert isinstance(colour, Restorer) and colour.channels == 3 and gray.channels == 1
    with pytest.raises(ImageError, match="RSE-RL denoiser.*--per-channel"):
        gray.restore(image)
    per_channel = gray.restore(image, per_channel=True)
    np.testing.assert_allclose(per_channel[..., 1:2], gray.restore(image[..., 1:2]), atol=1e-6)


# --- load_denoiser: models, defaults, wrong kinds -----------------------------------------------------
def test_load_denoiser_picks_the_restorer_of_each_model(ckpts):
    assert isinstance(load_denoiser("mrpnet", ckpts["mrpnet_gray"], device="cpu"), SupervisedRestorer)
    for model in ("a3c", "sac"):
        restorer = load_denoiser(model, ckpts[f"{model}_color"], device="cpu", tile=64)
        assert isinstance(restorer, PolicyDenoiser) and restorer.agent == model and restorer.tile == 64
    assert isinstance(load_denoiser("rse", ckpts["rse_gray"], device="cpu"), RSERestorer)
    with pytest.raises(ValueError, match="model.*'a3c', 'sac', 'ffdnet', 'noise-map', 'mrpnet', 'rse'"):
        load_denoiser("bm3d", ckpts["mrpnet_gray"])


def test_a_noise_level_map_policy_and_a_filter_policy_are_told_apart(ckpts):
    shipped = registry.WEIGHTS / "noise_map_denoise.pt"
    assert denoisers.denoiser_kind(shipped) == "noise-map" and denoisers.denoiser_kind(ckpts["a3c_gray"]) == "a3c"
    restorer = load_denoiser("noise-map", channels=1, device="cpu")
    assert restorer.path == shipped and restorer.transition.sets_level and restorer.agent == "a3c"
    with pytest.raises(CheckpointError, match=r"map policy .*filter policy was asked for.*--model noise-map"):
        load_denoiser("a3c", shipped, device="cpu")
    with pytest.raises(CheckpointError, match=r"a filter policy .*a noise-level map policy was asked for.*--model a3c"):
        load_denoiser("noise-map", ckpts["a3c_gray"], device="cpu")


@pytest.mark.parametrize(("model", "given", "says"), [
    ("a3c", "rse_color", r"RSE-RL denoiser.*model 'rse'.*--model rse"),
    ("a3c", "sac_gray", r"trained by SAC.*A3C one.*model 'sac'"),
    ("sac", "a3c_gray", r"trained by A3C.*SAC one.*model 'a3c'"),
    ("a3c", "completion", r"a completion policy.*denoising policy"),
    ("a3c", "lowlight", r"low-light policy.*not a denoising / completion policy"),
    ("rse", "a3c_color", r"not a RSE-RL denoiser checkpoint.*model 'a3c'"),
    ("mrpnet", "sac_gray", r"not a supervised-model checkpoint.*model 'sac'"),
    ("rse", "mrpnet_gray", r"model 'mrpnet'"),
    ("mrpnet", "ffdnet_gray", r"a noise-map denoiser .*load_denoiser\('ffdnet'.*model 'ffdnet'.*--model ffdnet"),
    ("ffdnet", "mrpnet_gray", r"a plain denoise model .*model 'mrpnet'"),
])
def test_a_checkpoint_of_another_kind_is_refused_saying_what_it_is(ckpts, model, given, says):
    with pytest.raises(CheckpointError, match=says) as info:
        load_denoiser(model, ckpts[given], device="cpu")
    assert str(ckpts[given]) in str(info.value)


def test_defaults_follow_the_channels_and_missing_ones_say_how_to_train(ckpts, tmp_path, monkeypatch):
    table = Defaults(tmp_path / "weights", monkeypatch)
    with pytest.raises(CheckpointError) as info:
        load_denoiser("sac", channels=3)
    text = str(info.value)
    assert "sac_denoise_color.pt" in text and "denoise_train --agent sac --no-gray" in text
    assert "pass checkpoint=PATH" in text and "--checkpoint" not in text  # a Python caller's words
    assert "per_channel" not in text  # no gray sac ships to run per channel
    with pytest.raises(CheckpointError) as info:
        load_denoiser("mrpnet", channels=3)
    assert "mrpnet_denoise_color.pt" in str(info.value) and "per_channel=True" in str(info.value)
    with pytest.raises(CheckpointError, match=r"no rse denoiser ships: .*rse_train --set task\.gray=true") as info:
        default_denoiser("rse", 1)
    assert "--per-channel" not in str(info.value)
    table[("mrpnet", 1)], table[("mrpnet", 3)] = ckpts["mrpnet_gray"], ckpts["mrpnet_color"]
    assert load_denoiser("mrpnet", channels=1, device="cpu").channels == 1
    assert load_denoiser("mrpnet", channels=3, device="cpu").channels == 3
    table[("a3c", 3)] = ckpts["a3c_color"]
    assert load_denoiser("a3c", channels=3, device="cpu").channels == 3
    with pytest.raises(CheckpointError, match=r"no gray a3c denoiser ships: .* took FFDNet's output .*0\.00 dB"):
        load_denoiser("a3c", channels=1)  # the colour file is never taken for a gray model
    with pytest.raises(ValueError, match="channels"):
        default_denoiser("a3c", 2)


def test_the_train_command_of_each_missing_default_parses_to_its_model(tmp_path, monkeypatch):
    """Each message's command runs as written: its trainer takes every flag, and the run is of the
    model and planes asked for."""
    import importlib
    import shlex

    Defaults(tmp_path, monkeypatch)
    trainers = {"mrpnet": "experiments.supervised_train", "a3c": "experiments.denoise_train",
                "sac": "experiments.denoise_train", "noise-map": "experiments.denoise_train",
                "rse": "experiments.rse_train",
                "ffdnet": "experiments.supervised_train"}
    for model, channels in ((m.name, c) for m in registry.methods("denoise", learned=True) for c in m.train):
        with pytest.raises(CheckpointError, match=r"(a checkpoint of |train one \()python -m ") as info:
            default_denoiser(model, channels)  # not installed, or none ships
        command = re.search(r"(?:a checkpoint of |train one \()(python -m [^)]*)\)", str(info.value)).group(1)
        argv = shlex.split(command)
        assert argv[:3] == ["python", "-m", trainers[model]], argv
        module = importlib.import_module(argv[2])
        if model in ("a3c", "sac", "noise-map"):  # a trainer of one nested config
            config = module.parse_args(argv[3:])  # an unknown flag: SystemExit
            assert config.task.gray == (channels == 1) and config.agent == model.replace("noise-map", "a3c"), argv
            assert bool(config.task.level_scales) == (model == "noise-map"), argv
            continue
        config = module.parse(argv[3:])  # an unknown flag: SystemExit
        if model == "rse":
            assert config.task.gray == (channels == 1), argv
            continue
        data = config.data
        assert data.gray == (channels == 1) and (config.model.name, data.task) == (model, "denoise"), argv
        if model == "ffdnet":  # FFDNet's protocol: Gaussian noise, any level of [0, 75]
            assert (data.noise, min(data.sigma), max(data.sigma), data.sigma_draw) == ("gaussian", 0, 75, "uniform")


def test_the_table_names_the_documented_files():
    names = {key: path.name for key, path in denoisers.DENOISER_CHECKPOINTS.items()}
    assert names[("mrpnet", 1)] == "mrpnet_denoise.pt" and names[("a3c", 3)] == "a3c_denoise_color.pt"
    assert names[("sac", 3)] == "sac_denoise_color.pt"
    assert not {("a3c", 1), ("sac", 1), ("rse", 1), ("rse", 3)} & set(names)  # none ships
    assert all(path.parent == WEIGHTS for path in denoisers.DENOISER_CHECKPOINTS.values())


# --- FFDNet: the map of a known or estimated level -----------------------------------------------------
def test_ffdnet_gets_the_constant_map_of_the_level_given_or_estimated(ckpts):
    """sigma given: SupervisedRestorer with the map sigma / 255 everywhere; none: each image's
    estimate, clipped to the trained levels; the channel rules of SupervisedRestorer (opponent planes, per channel)."""
    restorer = SupervisedRestorer(ckpts["ffdnet_gray"], device="cpu", noise_map=True)
    image = noisy_image(21, 26, 1, seed=4)  # noise 0.1: sigma 25.5
    known = load_denoiser("ffdnet", ckpts["ffdnet_gray"], device="cpu", sigma=30)
    assert isinstance(known, NoiseLevelDenoiser) and isinstance(known, Restorer) and not known.takes_mask
    assert (known.sigma, known.sigma_range, known.channels) == (30.0, (5.0, 40.0), 1)
    out = known.restore(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_allclose(out, restorer.restore(image, noise_map=np.full((21, 26), 30 / 255, np.float32)),
                               atol=1e-6)
    blind = load_denoiser("ffdnet", ckpts["ffdnet_gray"], device="cpu")
    estimate = estimate_noise_sigma(image)
    assert 20 < estimate < 32
    np.testing.assert_allclose(blind.restore(image), restorer.restore(
        image, noise_map=np.full((21, 26), estimate / 255, np.float32)), atol=1e-6)
    assert np.abs(blind.restore(image) - out).max() > 1e-5  # another level, another output
    batch = torch.from_numpy(np.stack([image, 0.5 + (image - 0.5) / 10]).transpose(0, 3, 1, 2).copy())
    assert blind.levels(batch).flatten().tolist() == pytest.approx([estimate, 5.0], abs=1e-4)  # the low one clipped

    rgb = noisy_image(13, 19, 3, seed=5)
    maps = np.full((13, 19), 30 / 255, np.float32)
    np.testing.assert_allclose(known.restore(rgb, per_channel=True), restorer.restore(rgb, per_channel=True,
                                                                                      noise_map=maps), atol=1e-6)
    opponent = known.restore(rgb)  # the opponent colour planes
    assert opponent.shape == rgb.shape
    np.testing.assert_allclose(opponent, restorer.restore(rgb, noise_map=maps), atol=1e-6)
    colour = load_denoiser("ffdnet", ckpts["ffdnet_color"], device="cpu", sigma=10)
    assert colour.channels == 3 and colour.restore(rgb).shape == rgb.shape
    with pytest.raises(ImageError, match="takes no mask"):
        known.restore(image, mask=np.zeros((21, 26), bool))


def test_ffdnet_sigma_must_be_within_the_trained_levels(ckpts):
    with pytest.raises(ValueError, match=r"sigma: expected a noise level in \[5, 40\] .*ffdnet_gray\.pt.*got 50"):
        load_denoiser("ffdnet", ckpts["ffdnet_gray"], device="cpu", sigma=50)
    with pytest.raises(ValueError, match=r"sigma: expected a noise level in \[5, 40\].*got nan"):
        load_denoiser("ffdnet", ckpts["ffdnet_gray"], device="cpu", sigma=float("nan"))
    amplified = load_denoiser("ffdnet", ckpts["ffdnet_amplified"], device="cpu", sigma=0)  # dark levels: [0, sigma]
    assert amplified.sigma_range == (0.0, 10.0)
    with pytest.raises(ValueError, match=r"sigma: the noise level of a noise-map denoiser's map .*model 'mrpnet'"):
        load_denoiser("mrpnet", ckpts["mrpnet_gray"], sigma=25)


def test_is_gray():
    plane = noisy_image(5, 6, 1)
    assert is_gray(plane) and is_gray(plane[..., 0]) and is_gray(np.repeat(plane, 3, axis=2))
    assert not is_gray(noisy_image(5, 6, 3))


def test_the_library_and_the_cli_import_no_higher_layer():
    code = ("import sys, rlenhance.denoisers, rlenhance.cli; "
            "print(sorted({'agents', 'envs', 'experiments'} & {m.split('.')[0] for m in sys.modules}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --- the command line ---------------------------------------------------------------------------------
@pytest.fixture()
def files(tmp_path):
    """A gray PNG (three equal channels when read) and a colour PNG, in [0, 1]."""
    gray, colour = tmp_path / "in" / "gray.png", tmp_path / "in" / "colour.png"
    save_image(gray, np.clip(noisy_image(22, 26, 1, seed=8), 0, 1))
    save_image(colour, np.clip(noisy_image(20, 30, 3, seed=9), 0, 1))
    return gray, colour


def _denoise(files, out, *options):
    return main(["denoise", *map(str, files), "-o", str(out), "--device", "cpu", *options])


@pytest.mark.parametrize("model", ["a3c", "sac", "rse"])
def test_cli_runs_each_rl_model_on_gray_and_colour_images(ckpts, files, tmp_path, model, capsys):
    out = tmp_path / "out"
    assert _denoise(files, out, "--model", model, "--checkpoint", str(ckpts[f"{model}_color"])) == 0
    assert "noise std" in capsys.readouterr().out
    restorer = load_denoiser(model, ckpts[f"{model}_color"], device="cpu")
    gray, colour = (load_image(path) for path in files)
    np.testing.assert_allclose(load_image(out / "gray.png"), restorer.restore(gray[..., :1]), atol=LEVEL / 2 + 1e-6)
    np.testing.assert_allclose(load_image(out / "colour.png"), restorer.restore(colour), atol=LEVEL / 2 + 1e-6)


@pytest.mark.parametrize("model", ["a3c", "rse"])
def test_cli_gray_rl_model_on_colour_needs_per_channel(ckpts, files, tmp_path, model, capsys):
    gray_file, colour_file = files
    options = ["--model", model, "--checkpoint", str(ckpts[f"{model}_gray"])]
    assert _denoise(files, tmp_path / "refused", *options) == 1  # the colour image fails, the gray one is written
    err = capsys.readouterr().err
    assert f"FAILED {colour_file}" in err and "--per-channel" in err and "colour (3-channel) checkpoint" in err
    assert (tmp_path / "refused" / "gray.png").exists() and not (tmp_path / "refused" / "colour.png").exists()
    out = tmp_path / "per_channel"
    assert _denoise(files, out, *options, "--per-channel") == 0
    restorer = load_denoiser(model, ckpts[f"{model}_gray"], device="cpu")
    colour = load_image(colour_file)
    np.testing.assert_allclose(load_image(out / "colour.png"), restorer.restore(colour, per_channel=True),
                               atol=LEVEL / 2 + 1e-6)
    written_gray = load_image(out / "gray.png")  # a gray file is denoised once, as one plane
    np.testing.assert_allclose(written_gray, np.repeat(restorer.restore(load_image(gray_file)[..., :1]), 3, axis=2),
                               atol=LEVEL / 2 + 1e-6)


def test_cli_defaults_by_image_planes(ckpts, files, tmp_path, monkeypatch, capsys):
    table = Defaults(tmp_path / "weights", monkeypatch)
    table[("mrpnet", 1)], table[("mrpnet", 3)] = ckpts["mrpnet_gray"], ckpts["mrpnet_color"]
    gray_file, colour_file = files
    out = tmp_path / "both"
    assert _denoise(files, out, "--model", "mrpnet") == 0
    gray_model, colour_model = (SupervisedRestorer(ckpts[f"mrpnet_{kind}"], device="cpu") for kind in ("gray", "color"))
    np.testing.assert_allclose(load_image(out / "gray.png")[..., :1],
                               gray_model.restore(load_image(gray_file)[..., :1]), atol=LEVEL / 2 + 1e-6)
    np.testing.assert_allclose(load_image(out / "colour.png"), colour_model.restore(load_image(colour_file)),
                               atol=LEVEL / 2 + 1e-6)
    out = tmp_path / "per_channel"  # the gray default for every image
    assert _denoise([colour_file], out, "--model", "mrpnet", "--per-channel") == 0
    np.testing.assert_allclose(load_image(out / "colour.png"),
                               gray_model.restore(load_image(colour_file), per_channel=True), atol=LEVEL / 2 + 1e-6)

    table[("a3c", 3)] = ckpts["a3c_color"]  # a3c ships a colour policy only: it takes gray images replicated
    out = tmp_path / "a3c"
    assert _denoise(files, out, "--model", "a3c") == 0
    colour_policy = PolicyDenoiser(ckpts["a3c_color"], device="cpu")
    np.testing.assert_allclose(load_image(out / "gray.png"), colour_policy.restore(load_image(gray_file)[..., :1]),
                               atol=LEVEL / 2 + 1e-6)
    capsys.readouterr()
    assert _denoise(files, tmp_path / "a3c_gray", "--model", "a3c", "--per-channel") == 2  # no gray one ships
    err = capsys.readouterr().err
    assert "no gray a3c denoiser ships" in err and "0.00 dB over FFDNet" in err and "denoise_train --sigma" in err
    assert not (tmp_path / "a3c_gray").exists()

    del table[("a3c", 3)]  # the colour default not installed either
    assert _denoise(files, tmp_path / "no_colour", "--model", "a3c") == 2
    err = capsys.readouterr().err
    assert "a3c_denoise_color.pt" in err and "is not installed" in err and "--no-gray" in err

    assert _denoise(files, tmp_path / "none", "--model", "rse") == 2  # none ships
    err = capsys.readouterr().err
    assert "no rse denoiser ships" in err and "--checkpoint" in err and "rse_train --preset rse-denoise-color" in err
    assert _denoise(files, tmp_path / "none", "--model", "rse", "--per-channel") == 2
    assert "rse_train --set task.gray=true" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_cli_refuses_a_checkpoint_of_another_kind(ckpts, files, tmp_path, capsys):
    assert _denoise(files, tmp_path / "out", "--model", "a3c", "--checkpoint", str(ckpts["rse_color"])) == 2
    err = capsys.readouterr().err
    assert "RSE-RL denoiser" in err and "--model rse" in err
    assert _denoise(files, tmp_path / "out", "--model", "mrpnet", "--checkpoint", str(ckpts["a3c_gray"])) == 2
    assert "--model a3c" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # without --model: the checkpoint's own kind
    assert _denoise(files, tmp_path / "own", "--checkpoint", str(ckpts["a3c_gray"]), "--per-channel") == 0
    colour = load_image(files[1])
    np.testing.assert_allclose(load_image(tmp_path / "own" / f"{files[1].stem}.png"), load_denoiser(
        "a3c", ckpts["a3c_gray"], device="cpu").restore(colour, per_channel=True), atol=LEVEL / 2 + 1e-6)


@pytest.mark.slow
def test_cli_jobs_workers_build_the_rl_denoiser_themselves(ckpts, files, tmp_path, capsys):
    """--jobs workers are spawned processes that rebuild the restorer from the arguments (cli.jobs._init_worker):
    one such worker writes what one process writes."""
    import multiprocessing

    from rlenhance.cli import build_parser
    from rlenhance.cli.denoise import build
    from rlenhance.cli.jobs import _init_worker, _worker_restore

    options = ["--model", "sac", "--checkpoint", str(ckpts["sac_gray"]), "--per-channel"]
    assert _denoise(files, tmp_path / "one", *options) == 0
    args = build_parser().parse_args(["denoise", *map(str, files), "-o", str(tmp_path / "two"), "--device", "cpu",
                                       *options])
    (tmp_path / "two").mkdir()
    with multiprocessing.get_context("spawn").Pool(1, initializer=_init_worker, initargs=(build, args, 1)) as pool:
        for path in files:
            item = (path, tmp_path / "two" / f"{path.stem}.png", "fail", 10**8)
            _, error, _, _ = pool.apply(_worker_restore, (item,))
            assert error is None
    for path in files:
        name = f"{path.stem}.png"
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()


def test_cli_ffdnet_needs_a_checkpoint_until_its_default_is_installed(ckpts, files, tmp_path, monkeypatch, capsys):
    """Without its default installed (the table pointed at an empty folder), --model ffdnet without
    --checkpoint is refused (exit 2, nothing written) saying where the default goes and how to train
    it; a file installed there becomes the default (a gray one serving colour images through their
    opponent colour planes)."""
    table = Defaults(tmp_path / "weights", monkeypatch)
    gray_file, colour_file = files
    assert _denoise(files, tmp_path / "refused", "--model", "ffdnet") == 2
    err = capsys.readouterr().err
    assert "ffdnet_denoise.pt is not installed" in err and "pass --checkpoint PATH" in err
    assert "supervised_train --model ffdnet --task denoise --set data.noise=gaussian" in err
    assert not (tmp_path / "refused").exists()
    table[("ffdnet", 1)] = ckpts["ffdnet_gray"]  # the gray default installed
    out = tmp_path / "default"
    assert _denoise(files, out, "--model", "ffdnet", "--sigma", "30") == 0
    known = load_denoiser("ffdnet", ckpts["ffdnet_gray"], device="cpu", sigma=30)
    np.testing.assert_allclose(load_image(out / "gray.png")[..., :1], known.restore(load_image(gray_file)[..., :1]),
                               atol=LEVEL / 2 + 1e-6)
    np.testing.assert_allclose(load_image(out / "colour.png"), known.restore(load_image(colour_file)),
                               atol=LEVEL / 2 + 1e-6)  # the opponent colour planes


def test_cli_ffdnet_with_a_checkpoint_given_or_estimated_level(ckpts, files, tmp_path, capsys):
    gray_file, colour_file = files
    checkpoint = ["--model", "ffdnet", "--checkpoint", str(ckpts["ffdnet_gray"])]
    out = tmp_path / "blind"
    assert _denoise(files, out, *checkpoint, "--per-channel") == 0
    blind = load_denoiser("ffdnet", ckpts["ffdnet_gray"], device="cpu")
    np.testing.assert_allclose(load_image(out / "colour.png"), blind.restore(load_image(colour_file), per_channel=True),
                               atol=LEVEL / 2 + 1e-6)
    assert _denoise(files, tmp_path / "far", *checkpoint, "--sigma", "60") == 2
    assert "sigma: expected a noise level in [5, 40]" in capsys.readouterr().err
    assert _denoise(files, tmp_path / "plain", "--model", "mrpnet", "--checkpoint", str(ckpts["mrpnet_gray"]),
                    "--sigma", "25") == 2
    assert "model 'mrpnet' reads none" in capsys.readouterr().err


def test_find_predictor_tries_the_recorded_path_then_beside_the_policy_then_the_shipped_weights(tmp_path, monkeypatch):
    """A policy's recorded predictor path (the trainer's machine) is taken when it is absolute and
    exists; else a file of that name beside the policy's checkpoint (never the policy itself), else
    in rlenhance/weights/; else an error that names every place tried and how to pass a predictor.
    A bare name (the shipped policies') is never looked for in the working directory."""
    trainer, shipped = tmp_path / "trainer", tmp_path / "shipped"
    for folder in (trainer, shipped):
        folder.mkdir()
        (folder / "denoiser.pt").write_bytes(b"x")
    policy = shipped / "policy.pt"
    assert denoisers.find_predictor(trainer / "denoiser.pt", policy) == trainer / "denoiser.pt"
    (trainer / "denoiser.pt").unlink()
    assert denoisers.find_predictor(str(trainer / "denoiser.pt"), policy) == shipped / "denoiser.pt"
    assert (WEIGHTS / "mrpnet_denoise.pt").is_file()  # shipped: found by name wherever the trainer kept it
    assert denoisers.find_predictor(trainer / "mrpnet_denoise.pt", policy) == WEIGHTS / "mrpnet_denoise.pt"
    assert denoisers.find_predictor(trainer / "mrpnet_denoise.pt") == WEIGHTS / "mrpnet_denoise.pt"
    # a bare name (what the shipped policies record) is never looked for in the working directory
    (trainer / "denoiser.pt").write_bytes(b"x")
    monkeypatch.chdir(trainer)
    assert denoisers.find_predictor("denoiser.pt", policy) == shipped / "denoiser.pt"
    (shipped / "denoiser.pt").unlink()
    with pytest.raises(CheckpointError, match="predictor denoiser.pt: no such file"):
        denoisers.find_predictor("denoiser.pt", policy)  # the working directory's file is not taken
    (shipped / "denoiser.pt").write_bytes(b"x")
    (trainer / "denoiser.pt").unlink()
    # a predictor named like the policy (both best.pt) is never the policy's own file
    (shipped / "best.pt").write_bytes(b"policy")
    with pytest.raises(CheckpointError, match="predictor best.pt: no such file") as caught:
        denoisers.find_predictor(tmp_path / "gone" / "best.pt", shipped / "best.pt")
    assert f"{shipped / 'best.pt'}," not in str(caught.value)  # the policy is not named as a place tried
    (shipped / "denoiser.pt").unlink()
    with pytest.raises(CheckpointError) as caught:
        denoisers.find_predictor(trainer / "denoiser.pt", policy)
    message = str(caught.value)
    for place in (trainer / "denoiser.pt", shipped / "denoiser.pt", WEIGHTS / "denoiser.pt"):
        assert str(place) in message
    assert str(policy) in message and "beside the model's checkpoint" in message and "agents" not in message
