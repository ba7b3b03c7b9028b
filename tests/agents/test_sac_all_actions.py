"""SAC's critics regressed on every action's reward (``SACConfig.all_action_rewards``) and the
Denoise env's per-action reward maps that feed them."""

import pytest
import torch

import envs
from agents.a3c import policy_kwargs_from_env
from agents.sac import SAC, SACConfig
from experiments import denoise_train, lol_train
from rlenhance.models.policy import PixelActorCritic, build_policy_input

TINY_NET = dict(width=8, dilations=(1, 2), branch_dilations=(2,))


def denoise_vec(num_envs=4, crop=16, steps=2, **kwargs):
    return envs.make_vec("rlenhance/Denoise-v0", num_envs=num_envs, device="cpu", crop=crop,
                         max_episode_steps=steps, **kwargs)


def make_agent(venv, **cfg):
    torch.manual_seed(0)
    policy = PixelActorCritic(**policy_kwargs_from_env(venv, **TINY_NET))
    return SAC(policy, SACConfig(**{"learning_starts": 4, "batch_size": 4, "seed": 0, **cfg}))


@pytest.mark.parametrize("kwargs", [{}, {"gray": False}, {"clip": True},
                                    {"predictor": lambda x: (x * 0.5 + 0.25)}])
def test_each_actions_reward_map_is_what_taking_it_earns(kwargs):
    venv = denoise_vec(action_rewards=True, **kwargs)
    venv.reset(seed=0)
    k = venv.task.n_actions
    generator = torch.Generator().manual_seed(1)
    for _ in range(2):
        actions = torch.randint(0, k, (4, 1, 16, 16), generator=generator)
        _, reward, _, _, info = venv.step(actions)
        maps = info["action_reward_maps"]
        assert maps.shape == (4, k, 16, 16)
        torch.testing.assert_close(maps.gather(1, actions), info["reward_map"], atol=2e-4, rtol=1e-4)
        assert maps[:, 1].abs().max() == 0  # "keep" earns nothing
        assert maps[:, 6].mean() > 0  # a Gaussian blur of a noisy crop gains on average
    # "keep" everywhere leaves the state as it was, so its maps are those of the next step too:
    # taking each pixel's best action then earns the per-pixel maximum
    venv.reset(seed=0)
    venv.step(torch.ones((4, 1, 16, 16), dtype=torch.long))
    maps = venv.task.action_reward_maps
    _, _, _, _, info = venv.step(maps.argmax(dim=1, keepdim=True))
    torch.testing.assert_close(info["reward_map"], maps.amax(dim=1, keepdim=True), atol=2e-4, rtol=1e-4)


def test_without_the_option_the_step_info_is_unchanged():
    venv = denoise_vec()
    venv.reset(seed=0)
    _, _, _, _, info = venv.step(torch.ones((4, 1, 16, 16), dtype=torch.long))
    assert set(info) == {"reward_map"}


def test_the_critics_regress_every_actions_target():
    venv = denoise_vec(action_rewards=True)
    agent = make_agent(venv, all_action_rewards=True, gamma=0.5, learning_starts=10**6)
    agent.train_episode(venv, seed=0)  # fills the buffer with (B, K, H, W) reward maps
    batch = agent.buffer.get(torch.arange(4))
    assert batch.reward_map.shape == (4, 9, 16, 16)
    alpha = agent.log_alpha.detach().exp()
    loss, _ = agent._critic_loss(batch, alpha)
    x, cond = build_policy_input(batch.obs)
    nx, ncond = build_policy_input(batch.next_obs)
    with torch.no_grad():
        log_pi = torch.log_softmax(agent.policy(nx, ncond, with_value=False).logits, dim=2)
        q_next = torch.minimum(*(q(nx, ncond) for q in agent.critic_targets))
        v_next = (log_pi.exp() * (q_next - alpha * log_pi)).sum(dim=2)          # (B, 1, H, W)
        target = batch.reward_map.unsqueeze(1).float() + 0.5 * v_next.unsqueeze(2)  # (B, 1, K, H, W)
        expected = sum(0.5 * ((q(x, cond) - target) ** 2).mean() for q in agent.critics)
    torch.testing.assert_close(loss.detach(), expected)


def test_refusals_name_what_is_wrong():
    venv = denoise_vec()  # without action_rewards=True: no per-action maps in the step info
    agent = make_agent(venv, all_action_rewards=True)
    with pytest.raises(ValueError, match="action_reward_maps.*action_rewards=True"):
        agent.train_episode(venv, seed=0)
    with pytest.raises(ValueError, match="all_action_rewards: needs a discrete policy"):
        SAC(PixelActorCritic(6, 3, None, width=4, bounded_mean=False), SACConfig(all_action_rewards=True))
    with pytest.raises(ValueError, match="sac.all_action_rewards: this task's env"):
        lol_train.parse_args(["--agent", "sac", "--set", "sac.all_action_rewards=true"])
    args = denoise_train.parse_args(["--agent", "sac", "--set", "sac.all_action_rewards=true"])
    assert args.sac.all_action_rewards is True

