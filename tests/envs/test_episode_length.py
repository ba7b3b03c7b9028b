"""Episode length: the one-image env leaves it to gymnasium's TimeLimit (as CartPole); the vector env keeps its own."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from envs.denoise import DenoiseEnv, DenoiseVectorEnv

SMALL = {
    "rlenhance/LowLight-v1": {"crop": 8},
    "rlenhance/UnevenLight-v0": {"crop": 8},
    "rlenhance/Denoise-v0": {"crop": 8},
    "rlenhance/Completion-v0": {"crop": 16},
}
REGISTERED = {"rlenhance/LowLight-v1": 10, "rlenhance/UnevenLight-v0": 10, "rlenhance/Denoise-v0": 5,
              "rlenhance/Completion-v0": 5}


def truncation_step(env, limit=40):
    """The 1-based step at which an episode of ``env`` (reset with seed 0) ends; None if it runs ``limit`` steps."""
    env.reset(seed=0)
    env.action_space.seed(0)
    for t in range(1, limit + 1):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        if truncated:
            return t
    return None


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_make_max_episode_steps_gives_episodes_of_that_length(env_id):
    longer = REGISTERED[env_id] + 3
    assert truncation_step(gym.make(env_id, max_episode_steps=longer, **SMALL[env_id])) == longer
    assert truncation_step(gym.make(env_id, max_episode_steps=2, **SMALL[env_id])) == 2


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_registered_length_holds_through_time_limit_and_the_env_never_truncates_itself(env_id):
    env = gym.make(env_id, **SMALL[env_id])
    assert env.spec.max_episode_steps == REGISTERED[env_id]
    assert truncation_step(env) == REGISTERED[env_id]
    assert truncation_step(env.unwrapped, limit=REGISTERED[env_id] + 3) is None
    unlimited = gym.make(env_id, max_episode_steps=-1, **SMALL[env_id])
    assert truncation_step(unlimited, limit=REGISTERED[env_id] + 3) is None


def test_max_episode_steps_given_to_the_one_image_env_is_refused_with_the_way_to_set_it():
    with pytest.raises(TypeError, match=r"TimeLimit.*gym\.make\(id, max_episode_steps=N\)"):
        DenoiseEnv(crop=8, max_episode_steps=3)


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_single_env_at_the_registered_length_steps_as_the_vector_env(env_id):
    # same seed, same draws: the one-image env under its TimeLimit and the B = 1 vector env run the same episode
    single = gym.make(env_id, **SMALL[env_id])
    venv = envs.make_vec(env_id, num_envs=1, **SMALL[env_id])
    obs, _ = single.reset(seed=4)
    vobs, _ = venv.reset(seed=4)
    for key in vobs:
        np.testing.assert_array_equal(obs[key], vobs[key][0].numpy())
    rng = np.random.default_rng(4)
    for t in range(1, REGISTERED[env_id] + 1):
        action = rng.integers(0, venv.n_actions, venv.single_action_space.shape)
        obs, reward, terminated, truncated, info = single.step(action)
        vobs, vreward, vterminated, vtruncated, vinfo = venv.step(torch.as_tensor(action)[None])
        np.testing.assert_array_equal(obs["image"], vobs["image"][0].numpy())
        np.testing.assert_array_equal(info["reward_map"], vinfo["reward_map"][0].numpy())
        assert reward == pytest.approx(float(vreward[0]), abs=1e-6)
        expected = (False, t == REGISTERED[env_id])
        assert (terminated, truncated) == (bool(vterminated[0]), bool(vtruncated[0])) == expected


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_make_vec_keeps_its_own_max_episode_steps(env_id):
    keep = torch.zeros((), dtype=torch.long)
    default = envs.make_vec(env_id, num_envs=2, **SMALL[env_id])
    assert default.max_episode_steps == REGISTERED[env_id]
    longer = REGISTERED[env_id] + 2
    venv = envs.make_vec(env_id, num_envs=2, max_episode_steps=longer, **SMALL[env_id])
    assert venv.max_episode_steps == longer
    venv.reset(seed=0)
    for t in range(1, longer + 1):
        _, _, terminated, truncated, _ = venv.step(keep.expand(venv.action_space.shape))
        assert not terminated.any()
        assert bool(truncated.all()) == (t == longer) and bool(truncated.any()) == (t == longer)


def test_vector_env_needs_an_episode_length():
    with pytest.raises(ValueError, match="max_episode_steps"):
        DenoiseVectorEnv(num_envs=1, crop=8, max_episode_steps=None)


def episode_lengths(venv, episodes: int) -> list[int]:
    """The step at which each of ``episodes`` consecutive episodes (first reset with seed 3) is truncated."""
    keep = torch.zeros(venv.action_space.shape, dtype=torch.long)
    lengths = []
    for e in range(episodes):
        venv.reset(seed=3 if e == 0 else None)
        for t in range(1, venv.max_episode_steps + 1):
            _, _, terminated, truncated, _ = venv.step(keep)
            assert not terminated.any()
            assert bool(truncated.all()) == bool(truncated.any())  # the batch ends together
            if truncated.all():
                assert venv.task.episode_steps == t
                lengths.append(t)
                break
    return lengths


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_min_episode_steps_draws_each_episodes_length_in_the_range_reproducibly(env_id):
    def make():
        return envs.make_vec(env_id, num_envs=2, max_episode_steps=6, min_episode_steps=2, **SMALL[env_id])

    lengths = episode_lengths(make(), 30)
    assert len(lengths) == 30 and set(lengths) == {2, 3, 4, 5, 6}  # every length of the range, none outside
    assert episode_lengths(make(), 30) == lengths  # the seed fixes the lengths


def test_the_length_is_drawn_after_the_episode_seed_and_only_with_min_episode_steps():
    fixed = envs.make_vec("rlenhance/LowLight-v1", num_envs=2, max_episode_steps=4, crop=8)
    ranged = envs.make_vec("rlenhance/LowLight-v1", num_envs=2, max_episode_steps=4, min_episode_steps=3, crop=8)
    # the first reset's episodes are the same: the length is drawn after the episode seed
    torch.testing.assert_close(fixed.reset(seed=5)[0]["image"], ranged.reset(seed=5)[0]["image"])
    # the draw moves the ranged env's rng on, so its next episodes differ; a fixed length draws nothing
    assert not torch.equal(fixed.reset()[0]["image"], ranged.reset()[0]["image"])
    assert set(episode_lengths(ranged, 12)) == {3, 4}


@pytest.mark.parametrize("low", [0, 7, -1])
def test_min_episode_steps_outside_one_to_max_is_refused(low):
    with pytest.raises(ValueError, match=r"min_episode_steps.*\[1, max_episode_steps=6\]"):
        DenoiseVectorEnv(num_envs=1, crop=8, max_episode_steps=6, min_episode_steps=low)
