"""SAC's critic warm-up (``SACConfig.critic_warmup``): for its first N updates only the critics and
their targets learn; the actor, the temperature and the actor-only steps wait."""

import math

import pytest
import torch

import envs
from agents.a3c import policy_kwargs_from_env
from agents.sac import SAC, SACConfig
from rlenhance.models.policy import PixelActorCritic

TINY_NET = dict(width=8, dilations=(1, 2), branch_dilations=(2,))


def make(**cfg):
    venv = envs.make_vec("rlenhance/Denoise-v0", num_envs=4, device="cpu", crop=16, max_episode_steps=2)
    torch.manual_seed(0)
    policy = PixelActorCritic(**policy_kwargs_from_env(venv, **TINY_NET))
    return venv, SAC(policy, SACConfig(**{"learning_starts": 4, "batch_size": 4, "seed": 0,
                                          "updates_per_episode": 3, **cfg}))


def state(module):
    return [t.detach().clone() for t in module.state_dict().values()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_the_actor_and_temperature_wait_while_the_critics_learn():
    venv, agent = make(critic_warmup=5, actor_updates=2)
    actor, critics, log_alpha = state(agent.policy), state(agent.critics), agent.alpha
    stats = agent.train_episode(venv, seed=0)  # updates 1-3: warm-up
    assert agent.updates == 3 and stats["actor_updates"] == 0
    assert same(state(agent.policy), actor) and agent.alpha == log_alpha
    assert not same(state(agent.critics), critics)
    assert math.isfinite(stats["value_loss"]) and math.isfinite(stats["q_mean"])
    assert all(math.isnan(stats[k]) for k in ("policy_loss", "entropy", "alpha_loss", "actor_grad_norm", "loss"))
    stats = agent.train_episode(venv)  # updates 4-6: the actor starts at the 6th
    assert not same(state(agent.policy), actor) and agent.alpha != log_alpha
    assert stats["actor_updates"] == 2
    assert all(math.isfinite(stats[k]) for k in ("policy_loss", "entropy", "alpha_loss", "loss"))


def test_without_warmup_the_updates_are_standard_sac():
    """``critic_warmup=0`` is the SAC of before: the same weights after the same episodes."""
    runs = []
    for cfg in ({}, {"critic_warmup": 0}):
        venv, agent = make(**cfg)
        for episode in range(2):
            agent.train_episode(venv, seed=0 if episode == 0 else None)
        runs.append(state(agent.policy) + state(agent.critics) + [agent.log_alpha.detach().clone()])
    assert same(*runs)
    venv, agent = make()
    actor = state(agent.policy)
    agent.train_episode(venv, seed=0)
    assert not same(state(agent.policy), actor)


@pytest.mark.parametrize("bad", [-1, 1.5])
def test_a_bad_warmup_is_refused(bad):
    with pytest.raises(ValueError, match="critic_warmup"):
        SACConfig(critic_warmup=bad)
