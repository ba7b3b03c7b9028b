"""rlenhance/RSE-v0: the env contract (checker, seeding, single == batched, identity action), reset
options, the reward (error decrease minus the de-blocking term) and the stacked view the agents see."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from envs.rse import RSEVectorEnv, StackObservation, default_round, make_rse_vec
from rlenhance.errors import ImageError
from rlenhance.models.rse import RSERound
from rlenhance.models.vae import seam_energy

ENV_ID = "rlenhance/RSE-v0"
CROP = 24
ALLOWED_WARNINGS = ("minimum value is -infinity", "maximum value is infinity")  # unclipped noisy observations


def _options(rng, batch=2, size=CROP):
    clean = rng.uniform(0, 1, (batch, 3, size, size)).astype(np.float32)
    return {"clean": clean, "noisy": clean + rng.normal(0, 0.1, clean.shape).astype(np.float32)}


def test_check_env_passes_without_unexpected_warnings():
    env = gym.make(ENV_ID, crop=CROP).unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    assert [str(w.message) for w in caught if not any(a in str(w.message) for a in ALLOWED_WARNINGS)] == []


def _rollout(seed):
    venv = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", crop=CROP, max_episode_steps=2)
    obs, _ = venv.reset(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    frames, rewards = [obs["image"].clone()], []
    for _ in range(2):
        obs, reward, *_ = venv.step(torch.rand(venv.action_space.shape, generator=gen) * 2 - 1)
        frames.append(obs["image"].clone())
        rewards.append(reward.clone())
    return torch.stack(frames), torch.stack(rewards)


def test_same_seed_same_rollout():
    frames_a, rewards_a = _rollout(3)
    frames_b, rewards_b = _rollout(3)
    assert torch.equal(frames_a, frames_b) and torch.equal(rewards_a, rewards_b)
    assert not torch.equal(frames_a[0], _rollout(4)[0][0])


def test_batched_env_matches_single_env():
    rng = np.random.default_rng(0)
    options = _options(rng)
    venv = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", crop=CROP)
    vobs, _ = venv.reset(seed=0, options=options)
    actions = rng.uniform(-1, 1, venv.action_space.shape).astype(np.float32)
    vnext, vreward, _, _, vinfo = venv.step(torch.as_tensor(actions))
    single = gym.make(ENV_ID, crop=CROP).unwrapped
    for i in range(2):
        sobs, _ = single.reset(seed=0, options={k: v[i] for k, v in options.items()})
        for key in ("image", "candidates"):
            np.testing.assert_allclose(vobs[key][i].numpy(), sobs[key], atol=1e-5)
        snext, sreward, _, _, sinfo = single.step(actions[i])
        np.testing.assert_allclose(vnext["image"][i].numpy(), snext["image"], atol=1e-5)
        np.testing.assert_allclose(vinfo["reward_map"][i].numpy(), sinfo["reward_map"], atol=1e-4)
        assert sreward == pytest.approx(float(vreward[i]), abs=1e-4)


def test_identity_action_changes_nothing_and_earns_zero():
    venv = RSEVectorEnv(2, crop=CROP, max_episode_steps=1)
    obs, _ = venv.reset(seed=1)
    before = obs["image"].clone()
    obs, reward, _, truncated, _ = venv.step(-torch.ones(venv.action_space.shape))
    assert torch.equal(obs["image"], before) and torch.all(reward == 0) and truncated.all()


def test_a_round_with_a_predictor_adds_its_candidate_and_an_action():
    """predicted=True: the observation holds the prediction as a third candidate, the action space a
    third map, and the prediction taken everywhere (strength 1, predict 1) is the new image."""
    stage = RSERound(3, patch=16, stride=8, latent_dim=8, hidden=32, bank_size=64, clusters=4, neighbours=4, width=8,
                     predicted=True)
    stage.bank.fit(torch.randn(64, 8))
    stage.predictor = lambda images: images.clamp(0, 1).mean(dim=1, keepdim=True).expand_as(images)
    venv = make_rse_vec(2, crop=CROP, model=stage.eval())
    obs, _ = venv.reset(seed=0)
    assert obs["image"].shape == (2, 12, CROP, CROP) and venv.single_action_space.shape == (3, CROP, CROP)
    prediction = obs["image"][:, 9:]
    obs, reward, *_ = venv.step(torch.ones(2, 3, CROP, CROP))
    torch.testing.assert_close(obs["image"][:, :3], prediction)


def test_reward_is_the_error_decrease_minus_the_deblocking_increase():
    rng = np.random.default_rng(1)
    options = _options(rng, batch=1, size=32)
    for w in (0.0, 2.0):
        venv = RSEVectorEnv(1, crop=32, w_deblock=w)
        obs, _ = venv.reset(seed=0, options=options)
        task = venv.task
        step_edge = torch.zeros(1, 6, 32, 32)
        step_edge[:, :, :, 16:] = 1.0  # a seam on the border between columns 15 and 16
        task.candidates = step_edge
        previous, clean = obs["image"].clone(), task.clean.clone()
        actions = torch.stack([torch.ones(1, 32, 32), -torch.ones(1, 32, 32)], dim=1)  # replace by the VAE candidate
        _, reward, _, _, info = venv.step(actions)
        error_before = (clean - previous).square().mean(1, keepdim=True)
        gain = error_before - (clean - step_edge[:, :3]).square().mean(1, keepdim=True)
        seams = seam_energy(step_edge[:, :3], 16, 8, clean) - seam_energy(previous, 16, 8, clean)
        expected = 255.0 * (gain - w * seams)
        assert torch.allclose(info["reward_map"], expected, atol=1e-4)
        assert float(reward) == pytest.approx(float(expected.mean()), abs=1e-5)


def test_reset_options_are_checked():
    venv = RSEVectorEnv(2, crop=CROP)
    with pytest.raises(ImageError, match="channels first"):
        venv.reset(options={"clean": np.zeros((2, CROP, CROP, 3), np.float32)})
    with pytest.raises(ValueError, match="missing"):
        venv.reset(options={"noisy": np.zeros((2, 3, CROP, CROP), np.float32)})
    with pytest.raises(ImageError):
        venv.reset(options={"clean": np.full((2, 3, CROP, CROP), np.nan, np.float32)})


def test_stacked_view_for_the_agents_and_pool_data():
    pool = [{"clean": torch.rand(3, 40, 40), "noisy": torch.rand(3, 40, 40), "name": f"p{i}"} for i in range(3)]
    venv = make_rse_vec(2, crop=CROP, data=pool, max_episode_steps=2)
    assert isinstance(venv, StackObservation)
    obs, _ = venv.reset(seed=0)
    assert obs["image"].shape == (2, 9, CROP, CROP) and venv.single_observation_space["image"].shape == (9, CROP, CROP)
    assert venv.max_episode_steps == 2 and venv.n_actions is None and venv.task.round.channels == 3
    # the pool's degraded inputs are used as they are (no fresh noise): the observed image is a crop of them
    image = venv.task.image[0]
    assert any(torch.isclose(image, p["noisy"][..., y:y + CROP, x:x + CROP].flip(d)).all()
               for p in pool for y in range(17) for x in range(17) for d in ((), (-1,), (-2,), (-2, -1)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="sigma"):
        RSEVectorEnv(1, crop=CROP, sigma=-1)
    with pytest.raises(ValueError, match="w_deblock"):
        RSEVectorEnv(1, crop=CROP, w_deblock=float("nan"))
    with pytest.raises(ValueError, match="channel"):
        RSEVectorEnv(1, crop=CROP, gray=True, model=default_round(3))
