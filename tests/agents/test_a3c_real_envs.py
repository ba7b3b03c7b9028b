"""Smoke: pixel-wise A3C on the real LowLight and Denoise vector envs (tiny crops, few steps)."""

import math

import pytest
import torch

import envs
from agents.a3c import A3C, A3CConfig, policy_kwargs_from_env
from rlenhance.models.policy import PixelActorCritic

TINY_NET = dict(width=8, dilations=(1, 2), branch_dilations=(2,))


def make_vec(env_id, **kwargs):
    return envs.make_vec(env_id, num_envs=2, device="cpu", crop=24, max_episode_steps=3, **kwargs)


def params(agent):
    return torch.cat([p.detach().flatten().clone() for p in agent.parameters()])


@pytest.mark.parametrize("env_id,env_kwargs,net_kwargs,expect", [
    ("rlenhance/LowLight-v0", {}, {}, dict(in_channels=6, out_channels=3, n_actions=27)),
    ("rlenhance/LowLight-v0", {"action_type": "continuous", "conditioned": True}, {"downscale": 2},
     dict(in_channels=6, out_channels=3, n_actions=None, cond_dim=5)),
    ("rlenhance/Denoise-v0", {}, {"conv_gru": True}, dict(in_channels=1, out_channels=1, n_actions=9)),
])
def test_a3c_runs_on_real_env(env_id, env_kwargs, net_kwargs, expect):
    venv = make_vec(env_id, **env_kwargs)
    kwargs = policy_kwargs_from_env(venv, **TINY_NET, **net_kwargs)
    for key, value in expect.items():
        assert kwargs[key] == value, key
    torch.manual_seed(0)
    agent = A3C(PixelActorCritic(**kwargs), A3CConfig(reward_map_conv=True, rmc_size=5))
    before = params(agent)
    stats = agent.train_episode(venv, seed=0)
    assert stats["steps"] == 3 and stats["updates"] == 1
    assert all(math.isfinite(v) for v in stats.values())
    assert not torch.equal(before, params(agent))
    ev = agent.evaluate(venv, episodes=1, seed=1)
    assert math.isfinite(ev["return_mean"])


class RecordingEnv:
    """Wraps a vector env and records the actions it receives."""

    def __init__(self, venv):
        self.venv, self.actions = venv, []

    def __getattr__(self, name):
        return getattr(self.venv, name)

    def reset(self, **kwargs):
        return self.venv.reset(**kwargs)

    def step(self, actions):
        self.actions.append(actions.clone())
        return self.venv.step(actions)


def test_block_actions_are_constant_over_each_block():
    venv = RecordingEnv(envs.make_vec("rlenhance/LowLight-v0", num_envs=2, crop=(22, 26), max_episode_steps=2))
    torch.manual_seed(0)
    policy = PixelActorCritic(**policy_kwargs_from_env(venv, **TINY_NET, downscale=4))
    agent = A3C(policy, A3CConfig(block_actions=True))
    stats = agent.train_episode(venv, seed=0)
    assert math.isfinite(stats["loss"])
    for actions in venv.actions:
        assert actions.shape == (2, 3, 22, 26)
        blocks = actions[..., ::4, ::4].repeat_interleave(4, -2).repeat_interleave(4, -1)[..., :22, :26]
        assert torch.equal(actions, blocks)
        assert len(actions.unique()) > 1
    # without block actions, pixels of one block pick different actions
    venv.actions.clear()
    A3C(policy, A3CConfig(block_actions=False)).train_episode(venv, seed=0)
    first = venv.actions[0]
    assert not torch.equal(first, first[..., ::4, ::4].repeat_interleave(4, -2).repeat_interleave(4, -1)[..., :22, :26])


def test_mean_action_tv_smooths_the_expected_alpha_map_and_is_validated():
    from rlenhance.losses import illumination_smoothness_loss

    with pytest.raises(ValueError, match="action_values"):
        A3CConfig(mean_action_tv=1.0)
    with pytest.raises(ValueError, match="mean_action_tv"):
        A3CConfig(mean_action_tv=-1.0, action_values=(0.0, 1.0))

    @torch.no_grad()
    def expected_tv(agent, venv):
        obs, _ = venv.reset(seed=5)
        x = torch.cat([obs["image"], obs["original"]], dim=1)
        logits = agent.policy(x, obs["cond"]).logits
        alpha = torch.einsum("bcahw,a->bchw", logits.softmax(dim=2), venv.task.alpha_table)
        return float(illumination_smoothness_loss(alpha).mean())

    results = {}
    for coef in (0.0, 50.0):
        torch.manual_seed(0)
        venv = envs.make_vec("rlenhance/LowLight-v0", num_envs=2, crop=24, max_episode_steps=2, w_smooth=0.0)
        policy = PixelActorCritic(**policy_kwargs_from_env(venv, keys=("image", "original"), width=8,
                                                           policy_head_gain=3.0))
        agent = A3C(policy, A3CConfig(lr=3e-3, entropy_coef=0.0, mean_action_tv=coef,
                                      action_values=tuple(venv.task.alpha_table.tolist())))
        before = expected_tv(agent, venv)
        for episode in range(8):
            stats = agent.train_episode(venv, seed=episode)
        assert ("action_tv" in stats) == (coef > 0)
        results[coef] = (before, expected_tv(agent, venv))
    assert results[0.0][0] == pytest.approx(results[50.0][0])  # same start
    assert results[50.0][1] < 0.5 * results[50.0][0]             # the penalty smooths the mean map
    assert results[50.0][1] < results[0.0][1]
