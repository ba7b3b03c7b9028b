"""Smoke: pixel-wise A3C on the real LowLight and Denoise vector envs (tiny crops, few steps)."""

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import envs
from agents.a3c import A3C, A3CConfig, policy_kwargs_from_env
from rlenhance.models.policy import PixelActorCritic
from tests.specs import RELLIE_LOWLIGHT as RELLIE

TINY_NET = dict(width=8, dilations=(1, 2), branch_dilations=(2,))


def make_vec(env_id, **kwargs):
    return envs.make_vec(env_id, num_envs=2, device="cpu", crop=24, max_episode_steps=3, **kwargs)


def params(agent):
    return torch.cat([p.detach().flatten().clone() for p in agent.parameters()])


@pytest.mark.parametrize("env_id,env_kwargs,net_kwargs,expect", [
    ("rlenhance/LowLight-v1", RELLIE, {}, dict(in_channels=6, out_channels=3, n_actions=27)),
    ("rlenhance/LowLight-v1", {**RELLIE, "action_type": "continuous", "conditioned": True}, {"downscale": 2},
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
    venv = RecordingEnv(envs.make_vec("rlenhance/LowLight-v1", **RELLIE, num_envs=2, crop=(22, 26),
                                      max_episode_steps=2))
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


def test_the_tasks_action_penalty_smooths_the_expected_alpha_map_and_is_validated():
    from rlenhance.losses import illumination_smoothness_loss

    with pytest.raises(ValueError, match="action_penalty"):
        A3CConfig(action_penalty=-1.0)
    denoise = make_vec("rlenhance/Denoise-v0")
    policy = PixelActorCritic(**policy_kwargs_from_env(denoise, width=8))
    with pytest.raises(ValueError, match="task whose actions are values.*DenoiseTask"):
        A3C(policy, A3CConfig(action_penalty=1.0)).train_episode(denoise, seed=0)

    @torch.no_grad()
    def expected_tv(agent, venv):
        obs, _ = venv.reset(seed=5)
        x = torch.cat([obs["image"], obs["original"]], dim=1)
        logits = agent.policy(x, obs["cond"]).logits
        alpha = torch.einsum("bcahw,a->bchw", logits.softmax(dim=2), torch.tensor(venv.task.action_values))
        return float(illumination_smoothness_loss(alpha).mean())

    results = {}
    for coef, power in ((0.0, 2), (50.0, 2), (50.0, 1)):
        torch.manual_seed(0)
        venv = envs.make_vec("rlenhance/LowLight-v1", **{**RELLIE, "w_smooth": 0.0, "smooth_power": power},
                             num_envs=2, crop=24, max_episode_steps=2)
        policy = PixelActorCritic(**policy_kwargs_from_env(venv, keys=("image", "original"), width=8,
                                                           policy_head_gain=3.0))
        agent = A3C(policy, A3CConfig(lr=3e-3, entropy_coef=0.0, action_penalty=coef))
        before = expected_tv(agent, venv)
        for episode in range(8):
            stats = agent.train_episode(venv, seed=episode)
        assert ("action_penalty" in stats) == (coef > 0)
        results[coef, power] = (before, expected_tv(agent, venv))
    assert results[0.0, 2][0] == pytest.approx(results[50.0, 2][0])  # same start
    for power in (1, 2):  # either form of the penalty smooths the mean map
        assert results[50.0, power][1] < 0.5 * results[50.0, power][0]
        assert results[50.0, power][1] < results[0.0, 2][1]


def test_the_weighted_action_penalty_weights_each_row_and_keeps_the_unweighted_math():
    from agents.a3c import _masked_mean, action_penalty_loss

    task = envs.make_vec("rlenhance/LowLight-v1", crop=16).task
    alpha = torch.rand(4, 1, 5, 6, dtype=torch.float64)
    tv = torch.rand(3, 4, dtype=torch.float64).requires_grad_(True)
    alive = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.float64)
    # no per-row weights: the task's penalty is the smoothness itself; the loss, coef * masked mean
    assert torch.equal(task.action_penalty(alpha), task.action_penalty(alpha, torch.ones(4)))
    assert torch.equal(action_penalty_loss(tv, alive, 7.0), 7.0 * _masked_mean(tv, alive))
    # equal weights w: the penalty with coef * w
    same = action_penalty_loss(task.action_penalty(alpha, torch.full((4,), 7.0)).expand(3, 4), alive, 1.0)
    assert torch.allclose(same, 7.0 * _masked_mean(task.action_penalty(alpha).expand(3, 4), alive))
    weights = torch.tensor([0.0, 1.0, 3.0, 2.0])
    action_penalty_loss(tv * weights.double(), alive, 2.0).backward()
    live = alive.sum()
    # row b's gradient is coef * w_b / (live entries) where alive; a weight-0 row contributes none
    assert torch.all(tv.grad[:, 0] == 0) and torch.all(tv.grad[alive == 0] == 0)
    expected = 2.0 * weights.double().expand(3, 4) / live * alive
    assert torch.allclose(tv.grad, expected)


def _smooth_agent(venv, coef, seed=0):
    torch.manual_seed(seed)
    policy = PixelActorCritic(**policy_kwargs_from_env(venv, keys=("image", "original"), width=8,
                                                       policy_head_gain=3.0))
    return A3C(policy, A3CConfig(lr=3e-3, entropy_coef=0.0, action_penalty=coef))


def test_env_weights_in_the_reset_info_reproduce_the_fixed_penalty():
    """An env that hands w_smooth to the agent (smooth_in_reward=False) with action_penalty 1 trains as
    the fixed recipe, env w_smooth 0 and action_penalty = w_smooth: same rewards, same penalty."""
    w = 40.0
    common = dict(num_envs=2, crop=24, max_episode_steps=2)
    rellie = {**RELLIE, "weight_range": (1.0, 1.0), "conditioned": True}
    per_row = envs.make_vec("rlenhance/LowLight-v1", **{**rellie, "w_smooth": w, "smooth_in_reward": False}, **common)
    fixed = envs.make_vec("rlenhance/LowLight-v1", **{**rellie, "w_smooth": 0.0}, **common)
    _, info = per_row.reset(seed=0)
    assert torch.equal(info["action_penalty_weight"], torch.full((2,), w))
    assert fixed.reset(seed=0)[1] == {}  # a reward with its smoothness term hands the agent nothing
    new, old = _smooth_agent(per_row, 1.0), _smooth_agent(fixed, w)
    assert torch.equal(params(new), params(old))
    for episode in range(2):
        stats_new, stats_old = new.train_episode(per_row, seed=episode), old.train_episode(fixed, seed=episode)
        assert stats_new["episode_return"] == pytest.approx(stats_old["episode_return"], rel=1e-5)
        assert stats_new["loss"] == pytest.approx(stats_old["loss"], rel=1e-4, abs=1e-6)
    torch.testing.assert_close(params(new), params(old), rtol=1e-4, atol=1e-6)
    assert not torch.equal(params(new), params(_smooth_agent(per_row, 1.0)))  # the updates moved the weights


class ScaledTVWeights(RecordingEnv):
    """Multiplies the per-row smoothness weights of the reset's info by ``scale`` (B,)."""

    def __init__(self, venv, scale):
        super().__init__(venv)
        self.scale = scale

    def reset(self, **kwargs):
        obs, info = self.venv.reset(**kwargs)
        return obs, {**info, "action_penalty_weight": info["action_penalty_weight"] * self.scale}


def test_a_zero_weight_row_adds_no_penalty_and_bad_weights_are_refused():
    venv = envs.make_vec("rlenhance/LowLight-v1", **{**RELLIE, "conditioned": True, "w_smooth": 100.0,
                                                     "weight_ranges": {"w_smooth": (10.0, 1000.0)},
                                                     "smooth_in_reward": False},
                         num_envs=2, crop=24, max_episode_steps=2)
    _, info = venv.reset(seed=0)
    weights = info["action_penalty_weight"]
    assert weights.shape == (2,) and weights.dtype == torch.float32 and weights[0] != weights[1]
    # the weights are the settings the policy sees in its cond
    decoded = venv.task.cond[:, 4] * venv.cond_scale[4] + venv.cond_offset[4]
    assert torch.allclose(weights, decoded) and 10.0 <= weights.min() and weights.max() <= 1000.0

    def penalty(scale):
        agent = _smooth_agent(venv, 1.0)
        return agent.train_episode(ScaledTVWeights(venv, scale), seed=0)["loss"]

    # same seed, same actions: the losses differ by the penalties only; a row of weight 0 adds none
    both, first_only, none = penalty(torch.tensor([1.0, 1.0])), penalty(torch.tensor([1.0, 0.0])), \
        penalty(torch.tensor([0.0, 0.0]))
    assert none < first_only < both
    assert penalty(torch.tensor([0.0, 5.0])) > penalty(torch.tensor([0.0, 1.0])) > none
    with pytest.raises(ValueError, match="action_penalty is 0"):
        _smooth_agent(venv, 0.0).train_episode(venv, seed=0)  # the env left the smoothness to the agent
    with pytest.raises(ValueError, match="action_penalty_weight.*2 finite weights >= 0"):
        _smooth_agent(venv, 1.0).train_episode(ScaledTVWeights(venv, torch.tensor([1.0, -1.0])), seed=0)


class HostReads(TorchDispatchMode):
    """Records, while ``counting``, the ops that read a tensor back to the host (``.item()``, ``bool()``,
    ``int()``) or make one from host data (``torch.tensor(list)``): on a GPU each is a round trip."""

    def __init__(self):
        super().__init__()
        self.counting, self.seen = False, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.counting and func in (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.lift_fresh.default):
            self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


def test_a3c_steps_the_lowlight_env_without_host_round_trips(monkeypatch):
    """Between the reset and the update (both once an episode) an A3C step reads nothing back from the
    device and copies nothing to it: the env's episodes end at a known step (its episode_steps), its
    tables are made once per device. The range check of the actions runs on a GPU at an episode's first
    step only (turned off here: on the CPU it runs at every step)."""
    from agents import a3c as a3c_module

    venv = envs.make_vec("rlenhance/LowLight-v1", num_envs=2, device="cpu", crop=32, max_episode_steps=4,
                         min_episode_steps=2, validate_actions=False)
    torch.manual_seed(0)
    agent = A3C(PixelActorCritic(**policy_kwargs_from_env(venv, **TINY_NET, downscale=8, cond_film=True,
                                                          keys=("image", "original", "exposure_gap"))),
                A3CConfig(action_penalty=1.0, block_actions=True))
    agent.train_episode(venv, seed=0)  # the tables made once, before counting
    probe = HostReads()
    reset, learn = venv.reset, a3c_module._EpisodeRunner._learn

    def counted_reset(*args, **kwargs):
        out = reset(*args, **kwargs)
        probe.counting = True
        return out

    def uncounted_learn(runner, *args, **kwargs):
        probe.counting = False
        return learn(runner, *args, **kwargs)

    monkeypatch.setattr(venv, "reset", counted_reset)
    monkeypatch.setattr(a3c_module._EpisodeRunner, "_learn", uncounted_learn)
    monkeypatch.setattr(a3c_module._EpisodeRunner, "_action_penalty_weights",  # a reset's, checked once
                        lambda runner, info, batch: info["action_penalty_weight"])
    with probe:
        stats = agent.train_episode(venv, seed=1)
    assert stats["steps"] == venv.episode_steps >= 2
    assert probe.seen == []
