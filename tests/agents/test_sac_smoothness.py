"""SAC's smooth-on-mean penalty: an env that leaves the smoothness out of its reward hands the
weights to the agent, which charges them on its greedy alpha map at block resolution (without it SAC
flattens the brightness block by block on LowLight: SACConfig.action_penalty)."""

import math

import pytest
import torch

import envs
from agents.a3c import policy_kwargs_from_env
from agents.sac import SAC, SACConfig
from envs.base import ACTION_PENALTY_WEIGHT
from rlenhance.losses import illumination_smoothness_loss
from rlenhance.models.policy import PixelActorCritic, build_policy_input
from tests.specs import RELLIE_LOWLIGHT

TINY_NET = dict(width=8, dilations=(1, 2), branch_dilations=(2,), downscale=4)
LOWLIGHT = {**RELLIE_LOWLIGHT, "action_type": "continuous", "alpha_channels": 1, "w_exposure": 300.0,
            "w_smooth": 100.0, "exposure_patch": 8}


def make_vec(num_envs=4, crop=32, steps=2, **kwargs):
    return envs.make_vec("rlenhance/LowLight-v1", num_envs=num_envs, device="cpu", crop=crop,
                         max_episode_steps=steps, **{**LOWLIGHT, **kwargs})


def make_agent(venv, seed=0, head_gain=0.1, discrete=False, **cfg):
    torch.manual_seed(seed)
    policy = PixelActorCritic(**policy_kwargs_from_env(venv, **TINY_NET, bounded_mean=discrete,
                                                       policy_head_gain=head_gain))
    cfg = {"learning_starts": 4, "batch_size": 4, "seed": seed, **cfg}
    return SAC(policy, SACConfig(**cfg))


def greedy_tv(agent, obs):
    """Mean smoothness loss of the greedy alpha maps at the working resolution."""
    x, cond = build_policy_input(obs)
    with torch.no_grad():
        out = agent.policy(x, cond, full_resolution=False, with_value=False)
        return float(illumination_smoothness_loss(agent.policy.action_values(out)).mean())


def test_the_env_weights_ride_with_the_transitions_and_are_reported():
    venv = make_vec(smooth_in_reward=False, w_smooth=7.0)
    agent = make_agent(venv, updates_per_episode=1)
    stats = agent.train_episode(venv, seed=0)
    sample = agent.buffer.get(torch.arange(4))
    torch.testing.assert_close(sample.obs[ACTION_PENALTY_WEIGHT], torch.full((4, 1), 7.0))
    torch.testing.assert_close(sample.next_obs[ACTION_PENALTY_WEIGHT], torch.full((4, 1), 7.0))
    assert math.isfinite(stats["action_penalty"]) and stats["action_penalty"] > 0, stats
    # an env that keeps the smoothness in its reward hands no weights: no penalty, no extra entry
    venv = make_vec()
    agent = make_agent(venv, updates_per_episode=1)
    assert "action_penalty" not in agent.train_episode(venv, seed=0)
    assert ACTION_PENALTY_WEIGHT not in agent.buffer.get(torch.arange(2)).obs


def test_the_penalty_is_the_weighted_tv_of_the_greedy_map():
    """The actor loss with weights w is the loss without them plus action_penalty * mean_b(w_b TV_b),
    TV of tanh(mean) at block resolution; a row of weight 0 adds nothing."""
    venv = make_vec(smooth_in_reward=False)
    obs, _ = venv.reset(seed=0)
    agent = make_agent(venv, head_gain=3.0, action_penalty=0.5)
    agent.task = venv.task  # what train_episode sets: the task whose penalty the actor is charged
    x, cond = build_policy_input(obs)
    weights = torch.tensor([0.0, 1.0, 10.0, 100.0])
    state = agent.generator.get_state()
    plain, *_ = agent._actor_loss(x, cond, torch.tensor(0.2))
    agent.generator.set_state(state)
    charged, _, out, tv = agent._actor_loss(x, cond, torch.tensor(0.2), weights)
    expected_tv = illumination_smoothness_loss(torch.tanh(out.mean))
    torch.testing.assert_close(tv, weights * expected_tv)  # each row's weighted penalty
    assert out.mean.shape[-2:] == (8, 8)  # per block
    torch.testing.assert_close(charged - plain, 0.5 * (weights * expected_tv).mean())


def test_the_penalty_smooths_what_a_reward_on_upsampled_samples_does_not():
    """With the env's smoothness weight charged on the greedy map, a rough initial alpha map gets
    much smoother within a few updates; the same weight as a reward on the bilinearly upsampled
    samples (the old path) leaves it rough."""
    tv = {}
    for smooth_in_reward in (True, False):
        venv = make_vec(smooth_in_reward=smooth_in_reward, w_smooth=1000.0)
        agent = make_agent(venv, head_gain=3.0, updates_per_episode=20, actor_lr=3e-3)
        obs, _ = venv.reset(seed=1)
        start = greedy_tv(agent, obs)
        agent.train_episode(venv, seed=0)
        tv[smooth_in_reward] = greedy_tv(agent, obs) / start
    assert tv[False] < 0.25, tv
    assert tv[False] * 4 < tv[True], tv


def test_weights_need_a_continuous_actor_and_a_positive_multiplier():
    venv = make_vec(smooth_in_reward=False)
    with pytest.raises(ValueError, match="action_penalty=0"):
        make_agent(venv, action_penalty=0.0).train_episode(venv, seed=0)
    dvenv = make_vec(smooth_in_reward=False, action_type="discrete")
    with pytest.raises(ValueError, match="discrete actor"):
        make_agent(dvenv, discrete=True).train_episode(dvenv, seed=0)
    with pytest.raises(ValueError, match="action_penalty"):
        SACConfig(action_penalty=-1.0)


def test_lol_train_keeps_smooth_on_mean_for_continuous_sac():
    from experiments.lol_train import parse_args

    def checked(*flags):
        return parse_args(flags).reward

    assert checked("--agent", "sac").smooth_on_mean  # continuous by default: the greedy alpha map
    assert not checked("--agent", "sac", "--set", "task.action=discrete", "--set",
                       "reward.smooth_on_mean=false").smooth_on_mean
    with pytest.raises(ValueError, match="reward.smooth_on_mean: needs a3c with discrete actions"):
        checked("--agent", "sac", "--set", "task.action=discrete")  # refused, never silently switched off
