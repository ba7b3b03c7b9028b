"""The env contract: checker, seeding, single == batched, reward semantics, bad configuration."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import envs
from envs.lowlight import BRIGHTENING_ALPHAS, RELLIE_ALPHAS
from tests.specs import RELLIE_LOWLIGHT as RELLIE

SMALL = {
    "rlenhance/LowLight-v1": {"crop": 24},
    "rlenhance/UnevenLight-v0": {"crop": 24},
    "rlenhance/Denoise-v0": {"crop": 24},
    "rlenhance/Completion-v0": {"crop": 32},
}
IDENTITY_ACTION = {"rlenhance/LowLight-v1": BRIGHTENING_ALPHAS.index(0.0),
                   "rlenhance/UnevenLight-v0": BRIGHTENING_ALPHAS.index(0.0), "rlenhance/Denoise-v0": 1,
                   "rlenhance/Completion-v0": 0}
# Warnings check_env may raise for these envs, each for a documented reason:
ALLOWED_WARNINGS = (
    # Denoise observations are unbounded: the noisy start is not clipped (DnCNN / PixelRL protocol);
    # LowLight's "cond" holds reward weights, which have no upper bound.
    "minimum value is -infinity", "maximum value is infinity",
)


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_check_env_passes_without_unexpected_warnings(env_id):
    env = gym.make(env_id, **SMALL[env_id]).unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)  # renders too: makes the env again with each declared render mode
    unexpected = [str(w.message) for w in caught
                  if not any(a in str(w.message) for a in ALLOWED_WARNINGS)]
    assert unexpected == []


def test_make_with_module_prefix():
    env = gym.make("envs:rlenhance/LowLight-v1", crop=16)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (3, 16, 16) and obs["image"].dtype == np.float32


def _rollout(env_id, seed, steps=3, num_envs=3):
    venv = envs.make_vec(env_id, num_envs=num_envs, **SMALL[env_id])
    obs, _ = venv.reset(seed=seed)
    venv.action_space.seed(seed)
    frames, rewards = [obs["image"].clone()], []
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        actions = torch.randint(0, venv.n_actions, venv.action_space.shape, generator=gen)
        obs, reward, *_ = venv.step(actions)
        frames.append(obs["image"].clone())
        rewards.append(reward.clone())
    return torch.stack(frames), torch.stack(rewards)


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_same_seed_same_rollout(env_id):
    frames_a, rewards_a = _rollout(env_id, seed=7)
    frames_b, rewards_b = _rollout(env_id, seed=7)
    frames_c, _ = _rollout(env_id, seed=8)
    assert torch.equal(frames_a, frames_b) and torch.equal(rewards_a, rewards_b)
    assert not torch.equal(frames_a[0], frames_c[0])


def _options(env_id, rng):
    h = w = SMALL[env_id]["crop"]
    if env_id in ("rlenhance/LowLight-v1", "rlenhance/UnevenLight-v0"):
        high = rng.uniform(0.2, 0.9, (2, 3, h, w)).astype(np.float32)
        if env_id == "rlenhance/UnevenLight-v0":  # one setting
            return {"low": high * 0.2, "high": high}
        cond = rng.uniform(-1, 1, (2, 5)).astype(np.float32)  # each image's setting (else drawn per env row)
        return {"low": high * 0.2, "high": high, "cond": cond}
    if env_id == "rlenhance/Denoise-v0":
        clean = rng.uniform(0, 1, (2, 1, h, w)).astype(np.float32)
        return {"clean": clean, "noisy": clean + rng.normal(0, 0.1, clean.shape).astype(np.float32)}
    original = rng.uniform(0, 1, (2, 3, h, w)).astype(np.float32)
    mask = np.zeros((2, 1, h, w), np.float32)
    mask[:, :, 8:20, 10:24] = 1
    return {"occluded": original * (1 - mask), "original": original, "mask": mask}


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_batched_env_matches_single_env(env_id):
    rng = np.random.default_rng(0)
    options = _options(env_id, rng)
    venv = envs.make_vec(env_id, num_envs=2, **SMALL[env_id])
    vobs, _ = venv.reset(seed=0, options=options)
    single = gym.make(env_id, **SMALL[env_id]).unwrapped
    sobs = [single.reset(seed=0, options={k: v[i] for k, v in options.items()})[0] for i in range(2)]
    for key in vobs:
        for i in range(2):
            single.reset(seed=0, options={k: v[i] for k, v in options.items()})
            np.testing.assert_allclose(vobs[key][i].numpy(), sobs[i][key], atol=1e-6)
    actions = rng.integers(0, venv.n_actions, venv.action_space.shape)
    vobs, vreward, _, _, vinfo = venv.step(torch.as_tensor(actions))
    for i in range(2):
        single.reset(seed=0, options={k: v[i] for k, v in options.items()})
        sobs, sreward, _, _, sinfo = single.step(actions[i])
        np.testing.assert_allclose(vobs["image"][i].numpy(), sobs["image"], atol=1e-5)
        np.testing.assert_allclose(vinfo["reward_map"][i].numpy(), sinfo["reward_map"], atol=1e-4)
        assert sreward == pytest.approx(float(vreward[i]), abs=1e-4)
        assert sreward == pytest.approx(float(sinfo["reward_map"].mean()), abs=1e-5)


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_identity_action_changes_nothing_and_earns_zero(env_id):
    venv = envs.make_vec(env_id, num_envs=2, **SMALL[env_id])
    obs, _ = venv.reset(seed=3)
    before = obs["image"].clone()
    actions = torch.full(venv.action_space.shape, IDENTITY_ACTION[env_id])
    obs, reward, *_ = venv.step(actions)
    assert torch.equal(obs["image"], before)
    assert torch.all(reward == 0)


def test_episode_length_and_step_after_end():
    venv = envs.make_vec("rlenhance/Denoise-v0", num_envs=2, crop=16, max_episode_steps=2)
    venv.reset(seed=0)
    keep = torch.ones(venv.action_space.shape, dtype=torch.long)
    _, _, terminated, truncated, _ = venv.step(keep)
    assert not truncated.any() and not terminated.any()
    _, _, terminated, truncated, _ = venv.step(keep)
    assert truncated.all() and not terminated.any()
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(keep)


def test_lowlight_brightening_toward_reference_is_rewarded():
    rng = np.random.default_rng(1)
    high = rng.uniform(0.3, 0.8, (1, 3, 16, 16)).astype(np.float32)
    venv = envs.make_vec("rlenhance/LowLight-v1", **RELLIE, num_envs=1, crop=16, reward="mse")
    venv.reset(seed=0, options={"low": high * 0.3, "high": high})
    brighten = torch.full(venv.action_space.shape, RELLIE_ALPHAS.index(0.5))
    _, reward, _, _, info = venv.step(brighten)
    assert float(reward) > 0 and bool((info["reward_map"] > 0).all())
    for name in ("ssim", "psnr"):
        venv = envs.make_vec("rlenhance/LowLight-v1", **RELLIE, num_envs=1, crop=16, reward=name)
        venv.reset(seed=0, options={"low": high * 0.3, "high": high})
        assert float(venv.step(brighten)[1]) > 0, name


@pytest.mark.parametrize("target,expected_sign", [(0.6, 1), (0.05, -1)])
def test_exposure_reward_prefers_the_target_brightness(target, expected_sign):
    low = torch.full((1, 3, 32, 32), 0.1)
    venv = envs.make_vec("rlenhance/LowLight-v1", **{**RELLIE, "w_color": 0, "w_spatial": 0, "w_smooth": 0,
                                                     "exposure_target": target}, num_envs=1, crop=32)
    venv.reset(seed=0, options={"low": low})
    brighten = torch.full(venv.action_space.shape, RELLIE_ALPHAS.index(1.0))
    reward = float(venv.step(brighten)[1])
    assert np.sign(reward) == expected_sign


def test_lowlight_conditioned_cond_vector_varies_and_drives_reward():
    venv = envs.make_vec("rlenhance/LowLight-v1", **{**RELLIE, "conditioned": True}, num_envs=16, crop=16)
    obs, _ = venv.reset(seed=0)
    target = obs["cond"][:, 0] * venv.cond_scale[0] + venv.cond_offset[0]
    assert obs["cond"].shape == (16, 5)
    assert 0.4 <= float(target.min()) < float(target.max()) <= 0.7
    # the default encoding maps every sampling range onto [-1, 1]
    assert float(obs["cond"].abs().max()) <= 1.0 + 1e-6 and float(obs["cond"].min()) < -0.3
    assert torch.allclose(venv.task.target.flatten(), target)
    fixed = envs.make_vec("rlenhance/LowLight-v1", **{**RELLIE, "exposure_target": 0.5}, num_envs=2, crop=16)
    obs, _ = fixed.reset(seed=0)
    assert torch.allclose(obs["cond"][:, 0] * fixed.cond_scale[0] + fixed.cond_offset[0], torch.tensor(0.5))
    legacy = envs.make_vec("rlenhance/LowLight-v1", **{**RELLIE, "exposure_target": 0.5}, num_envs=2, crop=16,
                           cond_scale=(1.0, 10.0, 5.0, 1.0, 20.0), cond_offset=(0.0,) * 5)
    obs, _ = legacy.reset(seed=0)
    assert torch.allclose(obs["cond"][:, 0], torch.tensor(0.5))


def test_lowlight_damping_and_continuous_actions():
    low = torch.full((1, 3, 8, 8), 0.2)
    for damping, expected in ((0.0, 0.2 + 0.5 * 0.2 * 0.8), (0.2, 0.2 + 0.8 * 0.5 * 0.2 * 0.8)):
        venv = envs.make_vec("rlenhance/LowLight-v1", **RELLIE, num_envs=1, crop=8, action_type="continuous",
                             damping=damping)
        venv.reset(seed=0, options={"low": low})
        obs, *_ = venv.step(torch.full((1, 3, 8, 8), 0.5))
        assert torch.allclose(obs["image"], torch.tensor(expected))


@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
def test_lowlight_one_alpha_channel_moves_rgb_together(action_type):
    low = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1).expand(1, 3, 8, 8).contiguous()
    venv = envs.make_vec("rlenhance/LowLight-v1", **{**RELLIE, "alpha_channels": 1}, num_envs=1, crop=8,
                         action_type=action_type)
    assert venv.single_action_space.shape == (1, 8, 8)
    venv.reset(seed=0, options={"low": low})
    action = torch.full((1, 1, 8, 8), 16 if action_type == "discrete" else 0.5)  # table index 16 = alpha 0.5
    obs, *_ = venv.step(action)
    assert torch.allclose(obs["image"], low + 0.5 * low * (1 - low))  # the same curve on every channel


def test_denoise_filters_reduce_noise_on_flat_image():
    clean = torch.full((1, 1, 24, 24), 0.5)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    venv = envs.make_vec("rlenhance/Denoise-v0", num_envs=1, crop=24)
    venv.reset(seed=0, options={"clean": clean, "noisy": noisy})
    reward = float(venv.step(torch.full((1, 1, 24, 24), 8))[1])  # box 5x5
    assert reward > 0


def test_completion_acts_only_inside_mask_and_predictor_action():
    rng = np.random.default_rng(2)
    options = _options("rlenhance/Completion-v0", rng)
    original = torch.as_tensor(options["original"])
    oracle = lambda occluded, mask: original  # noqa: E731 - a perfect completion model
    venv = envs.make_vec("rlenhance/Completion-v0", num_envs=2, crop=32, predictor=oracle)
    assert venv.n_actions == 9
    obs, _ = venv.reset(seed=0, options=options)
    mask = obs["mask"]
    outside = mask == 0
    assert torch.equal(obs["image"][outside.expand_as(obs["image"])], original[outside.expand_as(original)])
    obs, reward, _, _, info = venv.step(torch.full((2, 1, 32, 32), 8))
    assert torch.allclose(obs["image"], original)
    assert bool((reward > 0).all())
    assert torch.all(info["reward_map"][outside] == 0)
    for action in range(8):
        venv.reset(seed=0, options=options)
        obs, *_ = venv.step(torch.full((2, 1, 32, 32), action))
        assert torch.equal(obs["image"][outside.expand_as(obs["image"])], original[outside.expand_as(original)])


@pytest.mark.parametrize("env_id,kwargs,match", [
    ("rlenhance/LowLight-v1", {"reward": "psnrr"}, "reward: expected one of"),
    ("rlenhance/LowLight-v1", {"w_color": -1.0}, "w_color"),
    ("rlenhance/LowLight-v1", {"action_type": "gaussian"}, "action_type"),
    ("rlenhance/LowLight-v1", {"alpha_channels": 2}, "alpha_channels: expected 3"),
    ("rlenhance/LowLight-v1", {"crop": 0}, "crop"),
    ("rlenhance/Denoise-v0", {"sigma": -5}, "sigma"),
    ("rlenhance/Completion-v0", {"reward": "l1"}, "reward: expected one of"),
])
def test_bad_configuration_is_named(env_id, kwargs, match):
    with pytest.raises(ValueError, match=match):
        envs.make_vec(env_id, num_envs=1, **kwargs)


def test_crop_larger_than_images_is_named():
    with pytest.raises(ValueError, match="crop"):
        envs.make_vec("rlenhance/LowLight-v1", num_envs=1, crop=4000)


def test_empty_data_folder_is_named(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path.name)):
        envs.make_vec("rlenhance/Denoise-v0", num_envs=1, data=tmp_path)


def test_bad_actions_are_named():
    venv = envs.make_vec("rlenhance/Denoise-v0", num_envs=2, crop=8)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"0\.\.8"):
        venv.step(torch.full((2, 1, 8, 8), 9))
    with pytest.raises(ValueError, match="shape"):
        venv.step(torch.zeros((2, 8, 8), dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        venv.step(torch.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match="make_vec|id"):
        envs.make_vec("rlenhance/Nope-v0")


def test_lowlight_exposure_gap_observation_is_the_signed_distance_to_each_target():
    venv = envs.make_vec("rlenhance/LowLight-v1", **{**RELLIE, "conditioned": True, "observe_exposure_gap": True},
                         num_envs=4, crop=16)
    obs, _ = venv.reset(seed=3)
    assert "exposure_gap" in venv.single_observation_space.spaces
    target = obs["cond"][:, 0] * venv.cond_scale[0] + venv.cond_offset[0]
    expected = target.view(-1, 1, 1, 1) - obs["image"].mean(dim=1, keepdim=True)
    assert torch.allclose(obs["exposure_gap"], expected, atol=1e-6)
    obs, *_ = venv.step(torch.full((4, 3, 16, 16), venv.n_actions - 1))  # brighten: the gap shrinks
    assert torch.allclose(obs["exposure_gap"], target.view(-1, 1, 1, 1) - obs["image"].mean(dim=1, keepdim=True),
                          atol=1e-6)
    assert float(obs["exposure_gap"].mean()) < float(expected.mean())
    plain = envs.make_vec("rlenhance/LowLight-v1", **RELLIE, num_envs=1, crop=16)
    assert "exposure_gap" not in plain.reset(seed=0)[0]


# The steps compute each per-pixel action only where it was chosen (issue 3); they must equal the
# straightforward definition: every candidate on the whole image, then the per-pixel pick.


@pytest.mark.parametrize("kwargs", [{}, {"gray": False}, {"clip": True}])
def test_denoise_step_equals_full_bank_reference(kwargs):
    from rlenhance.ops import pixelrl_filter_bank, select_per_pixel

    venv = envs.make_vec("rlenhance/Denoise-v0", num_envs=3, crop=20, **kwargs)
    venv.reset(seed=4)
    gen = torch.Generator().manual_seed(4)
    for _ in range(2):
        previous, clean = venv.task.image.clone(), venv.task.clean
        actions = torch.randint(0, venv.n_actions, venv.action_space.shape, generator=gen)
        expected = select_per_pixel(pixelrl_filter_bank(previous), actions)
        if kwargs.get("clip"):
            expected = expected.clamp(0.0, 1.0)
        reward_map = (((clean - previous) ** 2).mean(dim=1, keepdim=True)
                      - ((clean - expected) ** 2).mean(dim=1, keepdim=True)) * 255.0
        obs, reward, _, _, info = venv.step(actions)
        # bilateral sums in another order: float rounding only; every other action is exact
        torch.testing.assert_close(obs["image"], expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(info["reward_map"], reward_map, rtol=0, atol=1e-3)
        torch.testing.assert_close(reward, reward_map.mean(dim=(1, 2, 3)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("reward", ["mse", "ssim"])
def test_completion_step_equals_candidates_reference(reward):
    from rlenhance import metrics
    from rlenhance.ops import select_per_pixel

    rng = np.random.default_rng(5)
    options = _options("rlenhance/Completion-v0", rng)
    options["mask"][0, :, 0:6, 0:9] = 1  # a hole at the corner: copies and means at the border
    options["occluded"] = options["original"] * (1 - options["mask"])
    prediction = torch.as_tensor(options["original"]) * 0.5 + 0.2
    venv = envs.make_vec("rlenhance/Completion-v0", num_envs=2, crop=32, reward=reward,
                         predictor=lambda occluded, mask: prediction)
    venv.reset(seed=0, options=options)
    task, gen = venv.task, torch.Generator().manual_seed(5)
    for _ in range(3):
        previous = task.image.clone()
        actions = torch.randint(0, venv.n_actions, venv.action_space.shape, generator=gen)
        expected = torch.where(task.mask > 0, select_per_pixel(task.candidates(previous), actions), previous)
        if reward == "mse":
            reward_map = (((task.original - previous) ** 2).mean(dim=1, keepdim=True)
                          - ((task.original - expected) ** 2).mean(dim=1, keepdim=True)) * 255.0 * task.mask
        else:
            reward_map = (metrics.ssim(expected, task.original, return_map=True)[1]
                          - metrics.ssim(previous, task.original, return_map=True)[1]) * task.mask
        obs, _, _, _, info = venv.step(actions)
        torch.testing.assert_close(obs["image"], expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(info["reward_map"], reward_map, rtol=0, atol=1e-5)


@pytest.mark.filterwarnings("ignore:.*LowLight-v0 is out of date:DeprecationWarning")
def test_the_low_light_env_of_an_older_mdp_names_its_new_version():
    import gymnasium

    with pytest.raises(gymnasium.error.DeprecatedEnv, match="LowLight-v1"):
        gymnasium.make("rlenhance/LowLight-v0")
