"""Denoise-v0 over real noisy / clean pairs (NoisyPairs): an episode starts from the real noisy crop,
cut (and flipped) at the same place as its clean reference; no Gaussian noise is added."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from PIL import Image

import envs
from rlenhance.data import NoisyPairs

SIDE = 16


def _real_pairs(root):
    """noisy/ + clean/ gray pairs whose clean pixels are all different and noisy = 255 - clean, so a
    noisy crop equals 1 - its clean crop only where the two were cut at the same place."""
    for index, name in enumerate(("a.png", "b.png")):
        clean = ((np.arange(SIDE * SIDE).reshape(SIDE, SIDE) + 128 * index) % 256).astype(np.uint8)
        for folder, image in (("clean", clean), ("noisy", 255 - clean)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / folder / name)
    return root


def _assert_aligned(noisy, clean):
    assert noisy.shape == clean.shape and noisy.shape[-3:] == (1, 8, 8)
    torch.testing.assert_close(torch.as_tensor(noisy), 1.0 - clean, atol=1e-6, rtol=0)
    assert all(len(torch.unique(crop)) == crop.numel() for crop in clean.reshape(-1, 64))  # one image's crop


@pytest.mark.parametrize("sigma", [25.0, 0.0])
def test_one_image_env_starts_from_the_real_noisy_crop(tmp_path, sigma):
    dataset = NoisyPairs(_real_pairs(tmp_path), gray=True)
    env = gym.make("rlenhance/Denoise-v0", data=dataset, split=None, crop=8, sigma=sigma).unwrapped
    crops = set()
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        _assert_aligned(obs["image"], env.task.clean[0])
        crops.add(env.task.clean[0].flatten()[0].item())
    assert len(crops) > 1  # random crops, each aligned


def test_vector_env_reads_a_real_pair_folder(tmp_path):
    venv = envs.make_vec("rlenhance/Denoise-v0", num_envs=4, data=str(_real_pairs(tmp_path)), split=None, crop=8)
    assert isinstance(venv.task.dataset, NoisyPairs)
    obs, _ = venv.reset(seed=0)
    _assert_aligned(obs["image"], venv.task.clean)
    again, _ = venv.reset(seed=0)
    assert torch.equal(again["image"], obs["image"])
