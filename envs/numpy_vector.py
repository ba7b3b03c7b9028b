"""The numpy face of the natively batched torch vector envs, for Gymnasium's numpy vector wrappers.

The vector envs of :func:`envs.make_vec` speak torch; Gymnasium's vector wrappers that keep statistics in
numpy (``RecordEpisodeStatistics``, ``NormalizeReward``, ...) expect numpy: put :class:`NumpyVectorEnv` between:

>>> import envs
>>> from gymnasium.wrappers.vector import NormalizeReward, RecordEpisodeStatistics
>>> venv = RecordEpisodeStatistics(NormalizeReward(envs.NumpyVectorEnv(
...     envs.make_vec("rlenhance/Denoise-v0", num_envs=4, crop=32))))
>>> obs, info = venv.reset(seed=0)
>>> type(obs["image"]).__name__
'ndarray'

Each step copies the batch to host memory: for logging and evaluation, not fast training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv, VectorWrapper

__all__ = ["NumpyVectorEnv", "to_numpy"]


def to_numpy(value: Any) -> Any:
    """``value`` with every torch tensor in it (inside dicts, lists and tuples) as a host numpy array."""
    if torch.is_tensor(value):
        return value.detach().cpu().numpy()
    if isinstance(value, Mapping):
        return {k: to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy(v) for v in value)
    return value


class NumpyVectorEnv(VectorWrapper):
    """A torch vector env (:class:`envs.base.PixelVectorEnv`, or one wrapped, e.g. ``StackObservation``)
    with numpy in and out.

    ``reset`` and ``step`` return numpy arrays where the env returns tensors: observations (float32), rewards
    (float32 (B,)), ``terminated`` / ``truncated`` (bool (B,)) and the info entries. Actions are numpy arrays
    (or tensors) of the env's ``action_space``. The spaces, ``num_envs``, ``metadata`` and ``render()`` are the env's.

    Args:
        env: the torch vector env; it needs a ``device`` attribute (where its tensors live).

    Raises:
        TypeError: ``env`` is not a Gymnasium ``VectorEnv``.
    """

    def __init__(self, env: VectorEnv):
        if not isinstance(env, VectorEnv):
            raise TypeError(f"NumpyVectorEnv: expected a gymnasium VectorEnv (e.g. envs.make_vec(...)), got "
                            f"{type(env).__name__}; a one-image env (gym.make) is numpy already")
        super().__init__(env)

    @property
    def device(self) -> torch.device:
        """The device of the wrapped env's tensors (actions are moved there)."""
        return torch.device(getattr(self.env, "device", "cpu"))

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return to_numpy(obs), to_numpy(info)

    def step(self, actions: Any):
        if not torch.is_tensor(actions):
            actions = torch.from_numpy(np.ascontiguousarray(np.asarray(actions)))
        obs, reward, terminated, truncated, info = self.env.step(actions.to(self.device))
        return (to_numpy(obs), np.asarray(to_numpy(reward), dtype=np.float32),
                np.asarray(to_numpy(terminated), dtype=bool), np.asarray(to_numpy(truncated), dtype=bool),
                to_numpy(info))
