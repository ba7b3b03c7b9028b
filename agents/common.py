"""Rollout plumbing shared by the agents (A3C, SAC): observation/reward conversion and the
greedy evaluation loop over a batched vector env."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rlenhance.models.policy import (
    POLICY_INPUT_KEYS,
    blocks_to_pixels,  # re-exported: the agents' block decoding lives with the policy
)

__all__ = ["as_bool", "blocks_to_pixels", "device_of", "episode_length", "evaluate_policy", "obs_to",
           "policy_kwargs_from_env", "resolve_device", "reward_map"]


def reward_map(reward: Tensor, info: Mapping[str, Any], device: torch.device) -> Tensor:
    """The per-pixel reward map (B, C, H, W) from ``info["reward_map"]``, else the reward as (B, 1, 1, 1)."""
    rmap = info.get("reward_map") if isinstance(info, Mapping) else None
    if rmap is None:
        return torch.as_tensor(reward, dtype=torch.float32, device=device).view(-1, 1, 1, 1)
    rmap = torch.as_tensor(rmap, device=device).float()
    return rmap if rmap.dim() == 4 else rmap.unsqueeze(1)


def as_bool(x: Any, device: torch.device) -> Tensor:
    """Terminated / truncated flags as a flat bool tensor (B,) on ``device``."""
    return torch.as_tensor(x, device=device).bool().view(-1)


def episode_length(venv: Any) -> int | None:
    """The env's fixed episode length (``max_steps`` or ``max_episode_steps``), None if unknown."""
    for name in ("max_steps", "max_episode_steps"):
        value = getattr(venv, name, None)
        if value is not None:
            return int(value)
    return None


def device_of(obs: Mapping[str, Any]) -> torch.device:
    """Device of the env's observation tensors (CPU for numpy observations)."""
    first = next(iter(obs.values()))
    return first.device if torch.is_tensor(first) else torch.device("cpu")


def obs_to(obs: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """Every observation entry as a tensor on ``device``."""
    return {k: torch.as_tensor(v).to(device) for k, v in obs.items()}


def resolve_device(device: str | torch.device | None, policy: nn.Module) -> torch.device:
    """``device`` as a torch.device: None = the policy's, "auto" = CUDA when available."""
    if device is None:
        p = next(policy.parameters(), None)
        return p.device if p is not None else torch.device("cpu")
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@torch.no_grad()
def evaluate_policy(agent: Any, venv: Any, episodes: int = 1, seed: int | None = None,
                    greedy: bool = True) -> dict[str, float]:
    """Roll out an agent's (greedy) policy without learning.

    Args:
        agent: anything with ``device`` and ``act(obs, hidden, greedy=...) -> (actions, hidden)``.
        venv: the vector env.
        episodes: number of batched episodes.
        seed: passed to the first ``reset``.
        greedy: mode actions (default) or sampled ones.

    Returns:
        dict: ``return_mean`` / ``return_std`` (per env and episode, sum of rewards),
        ``reward_mean`` (per step), ``final_reward_mean`` (last step), ``episodes``.
    """
    device = agent.device
    returns: list[Tensor] = []
    step_rewards: list[Tensor] = []
    finals: list[Tensor] = []
    max_steps = episode_length(venv)
    for ep in range(episodes):
        obs, _ = venv.reset(seed=seed if ep == 0 else None)
        hidden = None
        batch = next(iter(obs.values())).shape[0]
        alive = torch.ones(batch, device=device)
        ret = torch.zeros(batch, device=device)
        steps = 0
        reward = ret
        while alive.any() and (max_steps is None or steps < max_steps):
            actions, hidden = agent.act(obs, hidden, greedy=greedy)
            obs, reward, terminated, truncated, _ = venv.step(actions)
            reward = torch.as_tensor(reward, device=device).float().view(-1)
            ret += reward * alive
            step_rewards.append(reward[alive.bool()])
            done = as_bool(terminated, device) | as_bool(truncated, device)
            alive = alive * (~done).float()
            steps += 1
        returns.append(ret)
        finals.append(reward)
    r = torch.cat(returns)
    return {"return_mean": float(r.mean()), "return_std": float(r.std(unbiased=False)),
            "reward_mean": float(torch.cat(step_rewards).mean()) if step_rewards else 0.0,
            "final_reward_mean": float(torch.cat(finals).mean()), "episodes": float(episodes)}


def policy_kwargs_from_env(venv: Any, keys: Iterable[str] = POLICY_INPUT_KEYS,
                           **overrides: Any) -> dict[str, Any]:
    """``PixelActorCritic`` kwargs that fit a vector env's spaces.

    Reads ``venv.single_observation_space`` (a ``Dict`` of (C, H, W) Boxes, optional ``cond`` (cond_dim,)) and
    ``venv.single_action_space`` (``MultiDiscrete`` or ``Box`` of shape (C, H, W)).

    Args:
        venv: the vector env.
        keys: the image keys the policy sees (as in ``build_policy_input``).
        **overrides: extra / overriding kwargs (``width``, ``conv_gru``, ``downscale`` ...).

    Returns:
        dict of kwargs for ``PixelActorCritic``.
    """
    import gymnasium as gym

    obs_space = venv.single_observation_space
    act_space = venv.single_action_space
    in_channels = sum(int(obs_space[k].shape[0]) for k in keys if k in obs_space.spaces)
    cond_dim = int(obs_space["cond"].shape[0]) if "cond" in obs_space.spaces else 0
    if len(act_space.shape) != 3:
        raise ValueError(f"policy_kwargs_from_env: action space shape {act_space.shape}; "
                         "expected (C, H, W)")
    out_channels = int(act_space.shape[0])
    if isinstance(act_space, gym.spaces.MultiDiscrete):
        n_actions = int(getattr(venv, "n_actions", int(np.max(act_space.nvec))))
    elif isinstance(act_space, gym.spaces.Box):
        n_actions = None
    else:
        raise ValueError(f"policy_kwargs_from_env: action space {act_space!r}; "
                         "expected MultiDiscrete or Box")
    kwargs: dict[str, Any] = dict(in_channels=in_channels, out_channels=out_channels,
                                  n_actions=n_actions, cond_dim=cond_dim)
    kwargs.update(overrides)
    return kwargs
