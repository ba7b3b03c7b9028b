"""SAC's actor-only steps after each episode's joint updates (``SACConfig.actor_updates``)."""

import pytest
import torch

from agents.sac import SACConfig
from rlenhance.models.policy import build_policy_input
from tests.agents.test_sac_all_actions import denoise_vec, make_agent


def trained(actor_updates, episodes=1, **cfg):
    venv = denoise_vec(action_rewards=True)
    agent = make_agent(venv, all_action_rewards=True, updates_per_episode=2, actor_updates=actor_updates, **cfg)
    stats = [agent.train_episode(venv, seed=0 if e == 0 else None) for e in range(episodes)]
    return agent, stats


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_actor_steps_move_the_actor_alone_after_the_joint_updates():
    plain, (plain_stats,) = trained(0)
    agent, (stats,) = trained(3)
    assert (plain_stats["actor_updates"], stats["actor_updates"]) == (0.0, 3.0)
    assert stats["updates"] == plain_stats["updates"] == 2.0
    # the joint updates came first and were the same; the actor-only steps left critics and alpha alone
    ours = params(agent.critics) + params(agent.critic_targets)
    theirs = params(plain.critics) + params(plain.critic_targets)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)
    assert agent.alpha == plain.alpha and agent.updates == plain.updates == 2
    assert any(not torch.equal(a, b) for a, b in zip(params(agent.policy), params(plain.policy)))


def test_actor_steps_lower_the_actor_loss_against_the_frozen_critics():
    agent, _ = trained(0, actor_lr=1e-2)
    batch = agent.buffer.get(torch.arange(len(agent.buffer)))
    x, cond = build_policy_input(batch.obs)
    alpha = agent.log_alpha.detach().exp()

    def loss():
        with torch.no_grad():
            return float(agent._actor_loss(x, cond, alpha)[0])

    before, critics = loss(), params(agent.critics)
    for _ in range(20):
        agent._actor_step(batch, alpha)
    assert loss() < before - 1e-4
    for a, b in zip(params(agent.critics), critics):
        assert torch.equal(a, b)


def test_no_actor_steps_before_the_first_update():
    agent, (stats,) = trained(5, learning_starts=10**6)
    fresh = make_agent(denoise_vec(action_rewards=True), all_action_rewards=True)
    assert stats["updates"] == stats["actor_updates"] == 0.0
    for a, b in zip(params(agent.policy), params(fresh.policy)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("bad", [-1, 1.5])
def test_actor_updates_must_be_a_count(bad):
    with pytest.raises(ValueError, match=f"actor_updates={bad!r}; expected an integer >= 0"):
        SACConfig(actor_updates=bad)
