"""Env arguments are checked up front (a TypeError / ValueError naming the argument), the torch vector
envs get a numpy face that Gymnasium's numpy vector wrappers accept, and gymnasium's check_env
passes on ``gym.make(id)`` for every registered id."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.wrappers.vector import NormalizeReward, RecordEpisodeStatistics

import envs
from envs.numpy_vector import NumpyVectorEnv
from rlenhance import runtime

IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("rlenhance/"))
DENOISE = "rlenhance/Denoise-v0"


@pytest.mark.parametrize("crop", ["64", "8", b"88", 32.5, True, [16.0, 16], (16, "16"), np.float32(16)])
def test_a_crop_of_the_wrong_type_is_a_type_error_naming_crop(crop):
    with pytest.raises(TypeError, match="crop"):
        gym.make(DENOISE, crop=crop)


def test_a_batch_whose_spaces_alone_exceed_the_memory_is_refused_before_they_are_built(monkeypatch):
    monkeypatch.setattr(runtime, "physical_memory", lambda: 2**17)  # a machine of 128 KiB
    with pytest.raises(ValueError, match=r"^num_envs 2: the vector env's spaces alone \([\d,]+ bytes an env\): at "
                                         r"least 0.2 MiB, more than this machine's 0.1 MiB of memory; use fewer"):
        envs.make_vec(DENOISE, num_envs=2, crop=64)
    monkeypatch.setattr(runtime, "physical_memory", lambda: None)  # a system that does not say
    assert envs.make_vec(DENOISE, num_envs=2, crop=16).num_envs == 2


@pytest.mark.parametrize("crop", [0, -4, (16, 0), (16, 16, 3), ()])
def test_a_crop_out_of_range_is_a_value_error_naming_crop(crop):
    with pytest.raises(ValueError, match="crop"):
        gym.make(DENOISE, crop=crop)


@pytest.mark.parametrize("env_id", IDS)
def test_a_crop_larger_than_the_images_is_refused_before_anything_is_allocated(env_id):
    with pytest.raises(ValueError, match=r"crop: 1000000x1000000 pixels is larger than the images"):
        gym.make(env_id, crop=10**6)
    with pytest.raises(ValueError, match="crop"):
        envs.make_vec(DENOISE, num_envs=2, crop=(16, 10**6))


def test_valid_crops_give_their_size():
    assert gym.make(DENOISE, crop=(np.int64(16), 8)).observation_space["image"].shape == (1, 16, 8)
    assert gym.make(DENOISE, crop=[8, 12]).observation_space["image"].shape == (1, 8, 12)


@pytest.mark.parametrize("num_envs", [1.5, 2.0, "2", True, None])
def test_num_envs_of_the_wrong_type_is_a_type_error(num_envs):
    with pytest.raises(TypeError, match="num_envs"):
        envs.make_vec(DENOISE, num_envs=num_envs, crop=8)


def test_num_envs_below_one_is_a_value_error():
    with pytest.raises(ValueError, match="num_envs"):
        envs.make_vec(DENOISE, num_envs=0, crop=8)
    assert envs.make_vec(DENOISE, num_envs=np.int64(2), crop=8).num_envs == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
@pytest.mark.parametrize("make", [lambda d: gym.make(DENOISE, crop=8, device=d),
                                  lambda d: envs.make_vec(DENOISE, num_envs=2, crop=8, device=d)])
def test_cuda_without_cuda_is_a_value_error_naming_device(make):
    with pytest.raises(ValueError, match="device 'cuda' requested but CUDA is not available"):
        make("cuda")


@pytest.mark.parametrize("device", ["gpu0", "cuda:x", 3])
def test_an_unknown_device_is_a_value_error_naming_device(device):
    with pytest.raises(ValueError, match="device"):
        gym.make(DENOISE, crop=8, device=device)


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_passes_on_gym_make(env_id):
    """The env as gym.make returns it (TimeLimit and all); only the warnings about the wrappers and
    the unbounded observation boxes (unclipped noisy images) are expected."""
    allowed = ("different from the unwrapped version", "minimum value is -infinity", "maximum value is infinity")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(gym.make(env_id, crop=16))
    assert [str(w.message) for w in caught if not any(a in str(w.message) for a in allowed)] == []


def test_rse_vector_env_keeps_one_step_episodes_and_make_takes_a_length():
    venv = gym.make_vec("rlenhance/RSE-v0", num_envs=2, vectorization_mode="vector_entry_point", crop=16)
    assert venv.max_episode_steps == 1
    env = gym.make("rlenhance/RSE-v0", crop=16, max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[3] for _ in range(3)]
    assert flags == [False, False, True]


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_numpy_face_under_record_episode_statistics_and_normalize_reward(env_id):
    steps = 3
    venv = RecordEpisodeStatistics(NormalizeReward(NumpyVectorEnv(
        envs.make_vec(env_id, num_envs=2, crop=16, max_episode_steps=steps))))
    obs, info = venv.reset(seed=0)
    assert all(isinstance(v, np.ndarray) for v in obs.values())
    assert all(isinstance(v, np.ndarray) for v in info.values())
    venv.action_space.seed(0)
    for _ in range(steps):
        obs, reward, terminated, truncated, info = venv.step(venv.action_space.sample())
        assert isinstance(reward, np.ndarray) and reward.shape == (2,) and np.all(np.isfinite(reward))
        assert terminated.dtype == bool and truncated.dtype == bool
        assert isinstance(info["reward_map"], np.ndarray)
    assert truncated.all() and "episode" in info
    assert info["episode"]["l"].tolist() == [steps, steps]


def test_numpy_face_gives_the_torch_env_values():
    torch_env = envs.make_vec(DENOISE, num_envs=2, crop=16)
    numpy_env = NumpyVectorEnv(envs.make_vec(DENOISE, num_envs=2, crop=16))
    tobs, _ = torch_env.reset(seed=5)
    nobs, _ = numpy_env.reset(seed=5)
    np.testing.assert_array_equal(nobs["image"], tobs["image"].numpy())
    actions = np.random.default_rng(0).integers(0, torch_env.n_actions, torch_env.action_space.shape)
    tnext, treward, *_ = torch_env.step(torch.as_tensor(actions))
    nnext, nreward, *_ = numpy_env.step(actions)
    np.testing.assert_array_equal(nnext["image"], tnext["image"].numpy())
    np.testing.assert_array_equal(nreward, treward.numpy())
    with pytest.raises(TypeError, match="VectorEnv"):
        NumpyVectorEnv(gym.make(DENOISE, crop=16))
