"""render_mode="rgb_array": the current image as a uint8 (H, W, 3) RGB frame, as gymnasium renders."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from envs.lowlight import LowLightEnv, LowLightVectorEnv

SMALL = {
    "rlenhance/LowLight-v1": {"crop": 8},
    "rlenhance/UnevenLight-v0": {"crop": 8},
    "rlenhance/Denoise-v0": {"crop": 8},
    "rlenhance/Completion-v0": {"crop": 16},
}


def expected_frame(image):
    """(C, H, W) float image -> uint8 (H, W, 3): clipped, rounded, gray repeated."""
    frame = np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8).transpose(1, 2, 0)
    return np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_rgb_array_render_is_the_current_image(env_id):
    env = gym.make(env_id, render_mode="rgb_array", **SMALL[env_id])
    assert env.render_mode == "rgb_array" and env.metadata["render_fps"] > 0
    obs, _ = env.reset(seed=0)
    size = SMALL[env_id]["crop"]
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (size, size, 3)
    np.testing.assert_array_equal(frame, expected_frame(obs["image"]))
    env.action_space.seed(0)
    obs, *_ = env.step(env.action_space.sample())
    np.testing.assert_array_equal(env.render(), expected_frame(obs["image"]))


def test_frames_are_rgb_in_that_order():
    low = torch.tensor([0.2, 0.4, 0.6]).view(3, 1, 1).expand(3, 8, 8).numpy()
    env = gym.make("rlenhance/LowLight-v1", render_mode="rgb_array", crop=8)
    env.reset(seed=0, options={"low": low})
    frame = env.render()
    assert frame[0, 0].tolist() == [51, 102, 153]


@pytest.mark.parametrize("render_mode", ["human_or_not", "rgb", "ansi"])
def test_unknown_render_mode_names_the_accepted_ones(render_mode):
    with pytest.raises(ValueError, match=r"render_mode: expected None or one of \['rgb_array'\]"):
        LowLightEnv(crop=8, render_mode=render_mode)
    with pytest.raises(ValueError, match=r"render_mode: .*'rgb_array'"):
        LowLightVectorEnv(num_envs=1, crop=8, render_mode=render_mode)


def test_vector_env_renders_one_frame_per_image():
    venv = envs.make_vec("rlenhance/Denoise-v0", num_envs=3, crop=8, render_mode="rgb_array")
    assert venv.render_mode == "rgb_array"
    obs, _ = venv.reset(seed=0)
    frames = venv.render()
    assert len(frames) == 3
    for frame, image in zip(frames, obs["image"]):
        assert frame.dtype == np.uint8 and frame.shape == (8, 8, 3)
        np.testing.assert_array_equal(frame, expected_frame(image.numpy()))
    assert envs.make_vec("rlenhance/Denoise-v0", num_envs=1, crop=8).render() is None


def test_render_before_reset_asks_for_reset():
    env = LowLightEnv(crop=8, render_mode="rgb_array")
    with pytest.raises(RuntimeError, match="reset"):
        env.render()
