"""Gymnasium environments of rlenhance: ``import envs`` registers them.

>>> import gymnasium as gym, envs
>>> env = gym.make("rlenhance/LowLight-v1", crop=32)        # one image, numpy
>>> venv = envs.make_vec("rlenhance/LowLight-v1", num_envs=8, device="cpu")  # batched torch

:func:`make_for_checkpoint` gives the env whose rollout is a policy checkpoint's inference
(:func:`env_kwargs_for_checkpoint`: its id and keyword arguments); without keyword arguments each id is the MDP
its task's recipe trains in.

``max_episode_steps`` is each id's episode length: ``gym.make`` gives it to gymnasium's ``TimeLimit``, ``make_vec``
to the vector env, which truncates its episodes itself; ``max_episode_steps=N`` overrides it.

The vector envs speak torch; :class:`envs.numpy_vector.NumpyVectorEnv` gives them a numpy face for
Gymnasium's numpy vector wrappers (``RecordEpisodeStatistics``, ``NormalizeReward``):

>>> venv = envs.NumpyVectorEnv(envs.make_vec("rlenhance/Denoise-v0", num_envs=8))   # numpy in and out
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from gymnasium.envs.registration import register

from envs.checkpoints import env_defaults, env_kwargs_for_checkpoint, make_for_checkpoint
from envs.numpy_vector import NumpyVectorEnv

register(
    id="rlenhance/LowLight-v1",
    entry_point="envs.lowlight:LowLightEnv",
    vector_entry_point="envs.lowlight:LowLightVectorEnv",
    max_episode_steps=10,
)
# The same task under uneven light: dark images are references relit unevenly, rewarded by the distance to the
# reference at the exposure target (docs/lowlight.md#uneven-light).
register(
    id="rlenhance/UnevenLight-v0",
    entry_point="envs.lowlight:LowLightEnv",
    vector_entry_point="envs.lowlight:LowLightVectorEnv",
    max_episode_steps=10,
    kwargs={"uneven": 1.0, "terms": {"reference": 300.0}, "w_exposure": 0.0, "w_color": 0.0, "w_spatial": 0.0,
            "w_smooth": 0.1, "conditioned": False, "weight_ranges": {}},
)
register(
    id="rlenhance/Denoise-v0",
    entry_point="envs.denoise:DenoiseEnv",
    vector_entry_point="envs.denoise:DenoiseVectorEnv",
    max_episode_steps=5,
)
register(
    id="rlenhance/Completion-v0",
    entry_point="envs.completion:CompletionEnv",
    vector_entry_point="envs.completion:CompletionVectorEnv",
    max_episode_steps=5,
)
# RSE-RL (agents see it through envs.rse.make_rse_vec). No registered length: the vector env's default is one
# step, and check_env refuses a one-step TimeLimit.
register(
    id="rlenhance/RSE-v0",
    entry_point="envs.rse:RSEEnv",
    vector_entry_point="envs.rse:RSEVectorEnv",
    kwargs={"sigma": 25.0},
)

__all__ = ["ENV_IDS", "NumpyVectorEnv", "env_defaults", "env_kwargs_for_checkpoint", "make_for_checkpoint", "make_vec"]

ENV_IDS = ("rlenhance/LowLight-v1", "rlenhance/UnevenLight-v0", "rlenhance/Denoise-v0", "rlenhance/Completion-v0")


def make_vec(id: str, num_envs: int = 1, *, device: str | torch.device = "cpu", **kwargs: Any):
    """The natively batched torch vector env of a registered id (B = ``num_envs`` images on ``device``).

    Keyword arguments override the registered ones (``max_episode_steps`` included: the vector env
    truncates its B episodes itself after that many steps); ``render_mode="rgb_array"`` makes
    ``render()`` return the B current images as uint8 (H, W, 3) RGB frames.
    """
    if id not in ENV_IDS:
        raise ValueError(f"id: expected one of {ENV_IDS}, got {id!r}")
    return gym.make_vec(id, num_envs=num_envs, vectorization_mode="vector_entry_point", device=device, **kwargs)
