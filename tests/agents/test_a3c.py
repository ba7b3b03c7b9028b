"""Pixel-wise A3C: return math, loss, SharedAdam, learning on a toy vector env, determinism,
checkpoints and the Hogwild path."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium import spaces

from agents.a3c import A3C, A3CConfig, RewardMapConv, SharedAdam, a3c_loss, nstep_returns, policy_kwargs_from_env
from rlenhance.errors import CheckpointError
from rlenhance.models.policy import PixelActorCritic

TINY_NET = dict(width=16, dilations=(1, 2), branch_dilations=(1,))


class FakeTargetVecEnv:
    """Toy torch vector env with the envs.make_vec contract.

    One grey channel of smooth images in [0, 1] must move toward a target (0.5, or a per-env target
    given in ``obs["cond"]``). Discrete actions 0/1/2 move a pixel by -delta / 0 / +delta;
    continuous actions a in [-1, 1] move it by a * delta. Reward map = decrease of
    |pixel - target| (times ``reward_scale``), so the best action per pixel is obvious.
    All envs end together after ``max_steps`` steps (truncated).
    """

    def __init__(self, num_envs=4, size=(12, 12), max_steps=3, delta=0.1, continuous=False,
                 cond=False, scalar_reward=False, reward_scale=10.0, device="cpu"):
        self.num_envs, self.size, self.max_steps, self.delta = num_envs, size, max_steps, delta
        self.continuous, self.use_cond, self.scalar_reward = continuous, cond, scalar_reward
        self.reward_scale = reward_scale
        self.device = torch.device(device)
        h, w = size
        obs = {"image": spaces.Box(0, 1, (1, h, w), np.float32)}
        if cond:
            obs["cond"] = spaces.Box(0, 1, (1,), np.float32)
        self.single_observation_space = spaces.Dict(obs)
        if continuous:
            self.single_action_space = spaces.Box(-1, 1, (1, h, w), np.float32)
            self.n_actions = None
        else:
            self.single_action_space = spaces.MultiDiscrete(np.full((1, h, w), 3))
            self.n_actions = 3
        self.gen = torch.Generator().manual_seed(12345)
        self.t = None

    def _obs(self):
        obs = {"image": self.x.clone()}
        if self.use_cond:
            obs["cond"] = self.target.view(-1, 1).clone()
        return obs

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.gen.manual_seed(seed)
        h, w = self.size
        coarse = torch.rand(self.num_envs, 1, 3, 3, generator=self.gen)  # smooth images, like photos
        x = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True)
        # keep every pixel >= 0.25 away from the target: "toward" always earns delta, "away" -delta
        self.x = torch.where(x < 0.5, x / 2, x / 2 + 0.5).to(self.device)
        if self.use_cond:
            self.target = (0.4 + 0.2 * torch.rand(self.num_envs, generator=self.gen)).to(self.device)
        else:
            self.target = torch.full((self.num_envs,), 0.5, device=self.device)
        self.t = 0
        return self._obs(), {}

    def step(self, actions):
        assert self.t is not None and self.t < self.max_steps, "step after the episode ended"
        assert actions.shape == (self.num_envs, 1) + self.size and actions.device == self.device
        if self.continuous:
            assert actions.is_floating_point() and actions.abs().max() <= 1
            move = actions.float()
        else:
            assert actions.dtype == torch.int64 and actions.min() >= 0 and actions.max() <= 2
            move = actions.float() - 1.0
        tgt = self.target.view(-1, 1, 1, 1)
        before = (self.x - tgt).abs()
        self.x = (self.x + self.delta * move).clamp(0, 1)
        rmap = (before - (self.x - tgt).abs()) * self.reward_scale
        self.t += 1
        truncated = torch.full((self.num_envs,), self.t >= self.max_steps, device=self.device)
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        info = {} if self.scalar_reward else {"reward_map": rmap}
        return self._obs(), rmap.mean(dim=(1, 2, 3)), terminated, truncated, info


def make_agent(venv, seed=0, net=TINY_NET, **cfg):
    torch.manual_seed(seed)
    policy = PixelActorCritic(**policy_kwargs_from_env(venv, **net))
    return A3C(policy, A3CConfig(seed=seed, **cfg))


def make_fake_venv(rank):
    return FakeTargetVecEnv(num_envs=2, size=(8, 8))


def flat_params(agent):
    return torch.cat([p.detach().flatten().clone() for p in agent.parameters()])


# ---- return and loss math ------------------------------------------------------------------
def test_nstep_returns_hand_computed():
    # two envs, 3 steps, 1x1 maps; env 0 goes on (bootstrap V=4), env 1 ends at the last step
    rewards = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]).view(3, 2, 1, 1, 1)
    dones = torch.tensor([[False, False], [False, False], [False, True]])
    bootstrap = torch.tensor([4.0, 4.0]).view(2, 1, 1, 1)
    ret = nstep_returns(rewards, dones, bootstrap, gamma=0.5)
    # env 0: R2 = 3 + .5*4 = 5, R1 = 2 + .5*5 = 4.5, R0 = 1 + .5*4.5 = 3.25
    # env 1: R2 = 3,           R1 = 2 + .5*3 = 3.5, R0 = 1 + .5*3.5 = 2.75
    expected = torch.tensor([[3.25, 2.75], [4.5, 3.5], [5.0, 3.0]]).view(3, 2, 1, 1, 1)
    torch.testing.assert_close(ret, expected)


def test_nstep_returns_broadcast_scalar_rewards_and_per_channel_maps():
    bootstrap = torch.arange(4.0).view(1, 1, 2, 2)
    scalar = torch.full((2, 1, 1, 1, 1), 1.0)
    ret = nstep_returns(scalar, torch.zeros(2, 1, dtype=torch.bool), bootstrap, gamma=1.0)
    assert ret.shape == (2, 1, 1, 2, 2)
    torch.testing.assert_close(ret[0, 0, 0], 2.0 + bootstrap[0, 0])
    per_channel = torch.ones(1, 1, 3, 2, 2)
    ret = nstep_returns(per_channel, torch.zeros(1, 1, dtype=torch.bool), bootstrap, gamma=0.5)
    assert ret.shape == (1, 1, 3, 2, 2)
    torch.testing.assert_close(ret[0, 0, 2], 1.0 + 0.5 * bootstrap[0, 0])


def test_reward_map_conv_is_identity_at_init_and_filters_the_return():
    rmc = RewardMapConv(33)
    assert rmc.weight.shape == (1, 1, 33, 33) and rmc.weight.sum() == 1 and rmc.weight[0, 0, 16, 16] == 1
    x = torch.randn(2, 3, 20, 17)
    torch.testing.assert_close(rmc(x), x, rtol=0, atol=0)
    rewards, dones = torch.randn(3, 2, 1, 5, 5), torch.zeros(3, 2, dtype=torch.bool)
    boot = torch.randn(2, 1, 5, 5)
    torch.testing.assert_close(nstep_returns(rewards, dones, boot, 0.9, rmc),
                               nstep_returns(rewards, dones, boot, 0.9))
    # a horizontal two-neighbour average: R_0 = r_0 + gamma * conv(R_1)
    blur = RewardMapConv(3)
    with torch.no_grad():
        blur.weight.zero_()
        blur.weight[0, 0, 1, 0] = blur.weight[0, 0, 1, 2] = 0.5
    r = torch.zeros(2, 1, 1, 1, 3)
    r[1, 0, 0, 0, 0] = 1.0  # R_1 = [1, 0, 0] (zero bootstrap)
    ret = nstep_returns(r, torch.tensor([[False], [True]]), torch.zeros(1, 1, 1, 3), 0.5, blur)
    torch.testing.assert_close(ret[0, 0, 0, 0], torch.tensor([0.0, 0.25, 0.0]))
    with pytest.raises(ValueError, match="odd"):
        RewardMapConv(4)


def test_a3c_loss_known_value_and_gradients():
    log_probs = torch.tensor([-1.0, -2.0], requires_grad=True).view(2, 1, 1, 1, 1)
    entropies = torch.tensor([0.5, 9.0]).view(2, 1, 1, 1, 1)
    values = torch.tensor([1.0, 5.0], requires_grad=True).view(2, 1, 1, 1, 1)
    returns = torch.tensor([3.0, 0.0]).view(2, 1, 1, 1, 1)
    alive = torch.tensor([[1.0], [0.0]])  # the second step is after the episode end: ignored
    log_probs.retain_grad(), values.retain_grad()
    loss, parts = a3c_loss(log_probs, entropies, values, returns, value_coef=0.5, entropy_coef=0.01,
                           alive=alive)
    # A = 3 - 1 = 2: policy -(-1 * 2) = 2, value 4, entropy 0.5
    assert math.isclose(float(parts["policy_loss"].detach()), 2.0)
    assert math.isclose(float(parts["value_loss"].detach()), 4.0)
    assert math.isclose(float(parts["entropy"].detach()), 0.5)
    assert math.isclose(float(loss.detach()), 2.0 + 0.5 * 4.0 - 0.01 * 0.5, rel_tol=1e-6)
    loss.backward()
    # d/d logp = -A (advantage detached); d/dV = value_coef * 2 * (V - R) only
    torch.testing.assert_close(log_probs.grad.flatten(), torch.tensor([-2.0, 0.0]))
    torch.testing.assert_close(values.grad.flatten(), torch.tensor([-2.0, 0.0]))


def test_shared_adam_matches_torch_adam():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5, 3))
    b = torch.nn.Parameter(a.detach().clone())
    ours = SharedAdam([a], lr=1e-2, betas=(0.8, 0.99), eps=1e-6).share_memory()
    ref = torch.optim.Adam([b], lr=1e-2, betas=(0.8, 0.99), eps=1e-6)
    for _ in range(6):
        g = torch.randn(5, 3)
        a.grad, b.grad = g.clone(), g.clone()
        ours.step(), ref.step()
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert float(ours.state[a]["step"]) == 6 and ours.state[a]["exp_avg"].is_shared()


def test_shared_adam_steps_every_tensor_at_once_as_one_at_a_time():
    """The multi-tensor step gives exactly the per-tensor Adam step (its formula written out here)."""
    torch.manual_seed(0)
    ours = [torch.randn(8, 4, 3, 3), torch.randn(8), torch.randn(5, 3)]
    ref = [p.clone() for p in ours]
    moments = {i: (torch.zeros_like(p), torch.zeros_like(p)) for i, p in enumerate(ref)}
    opt = SharedAdam(ours, lr=1e-2, betas=(0.8, 0.99), eps=1e-6)
    for t in range(1, 8):
        grads = [torch.randn_like(p) for p in ours]
        for p, g in zip(ours, grads):
            p.grad = g.clone()
        opt.step()
        for i, (p, g) in enumerate(zip(ref, grads)):
            m, v = moments[i]
            m.mul_(0.8).add_(g, alpha=0.2)
            v.mul_(0.99).addcmul_(g, g, value=0.01)
            p.addcdiv_(m, (v.sqrt() / math.sqrt(1 - 0.99 ** t)).add_(1e-6), value=-1e-2 / (1 - 0.8 ** t))
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))


def test_config_validation_and_poly_schedule():
    cfg = A3CConfig(lr=1e-3, lr_decay="poly", total_episodes=10, lr_decay_power=0.9)
    assert cfg.lr_at(0) == 1e-3
    assert math.isclose(cfg.lr_at(5), 1e-3 * 0.5 ** 0.9)
    assert cfg.lr_at(10) == 0 and cfg.lr_at(20) == 0
    assert A3CConfig(gamma=1.05).gamma == 1.05  # ReLLIE's gamma > 1 is allowed
    for bad, named in ((dict(gamma=-0.1), "gamma"), (dict(lr=0), "lr"), (dict(rmc_size=4), "rmc_size"),
                       (dict(lr_decay="poly"), "total_episodes"), (dict(n_steps=0), "n_steps"),
                       (dict(lr_decay="cosine", total_episodes=3), "lr_decay"),
                       (dict(max_grad_norm=0), "max_grad_norm")):
        with pytest.raises(ValueError, match=named):
            A3CConfig(**bad)


# ---- the agent on the toy env -------------------------------------------------------------
def test_policy_kwargs_from_env():
    assert policy_kwargs_from_env(FakeTargetVecEnv(cond=True), width=8) == dict(
        in_channels=1, out_channels=1, n_actions=3, cond_dim=1, width=8)
    assert policy_kwargs_from_env(FakeTargetVecEnv(continuous=True))["n_actions"] is None


def test_a3c_learns_the_toy_task():
    venv = FakeTargetVecEnv()
    agent = make_agent(venv, lr=1e-3, gamma=0.9)
    returns = [agent.train_episode(venv, seed=0 if ep == 0 else None)["episode_return"] for ep in range(60)]
    after = agent.evaluate(venv, episodes=1, seed=99)["return_mean"]
    # optimum 3.0 (3 steps, every pixel 0.1 closer, x10); a policy blind to the image earns ~0
    assert after > 1.5
    assert np.mean(returns[-10:]) > np.mean(returns[:10]) + 1.0


def test_a3c_continuous_learns_and_sends_clipped_actions():
    venv = FakeTargetVecEnv(continuous=True)
    agent = make_agent(venv, lr=1e-3, gamma=0.9)
    returns = []
    for ep in range(60):
        stats = agent.train_episode(venv, seed=0 if ep == 0 else None)
        returns.append(stats["episode_return"])
    after = agent.evaluate(venv, episodes=1, seed=99)["return_mean"]
    assert all(math.isfinite(v) for v in stats.values())
    assert after > 1.2
    assert np.mean(returns[-10:]) > np.mean(returns[:10]) + 0.8


def test_a3c_refuses_a_squashed_gaussian_policy():
    """A free mean is SAC's tanh-squashed Gaussian (the policy's decoding squashes it): A3C samples
    around a bounded mean and clips."""
    with pytest.raises(ValueError, match="bounded_mean"):
        A3C(PixelActorCritic(1, 1, None, width=4, bounded_mean=False))
    A3C(PixelActorCritic(1, 1, 3, width=4, bounded_mean=False))  # meaningless for a categorical policy


def test_same_seed_same_parameters_different_seed_differs():
    def run(seed):
        venv = FakeTargetVecEnv()
        agent = make_agent(venv, seed=seed, reward_map_conv=True, rmc_size=5)
        for ep in range(3):
            agent.train_episode(venv, seed=seed if ep == 0 else None)
        return flat_params(agent)

    first, second, other = run(0), run(0), run(1)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_update_changes_rmc_and_stats_are_complete():
    venv = FakeTargetVecEnv()
    agent = make_agent(venv, reward_map_conv=True, rmc_size=5)
    w0 = agent.rmc.weight.detach().clone()
    stats = agent.train_episode(venv, seed=0)
    assert not torch.equal(agent.rmc.weight, w0)  # trained through the value loss
    for key in ("episode_return", "reward_mean", "loss", "policy_loss", "value_loss", "entropy",
                "value_mean", "grad_norm", "lr", "steps", "updates", "episode"):
        assert math.isfinite(stats[key]), key
    assert stats["steps"] == 3 and stats["updates"] == 1 and stats["episode"] == 0
    assert agent.train_episode(venv)["episode"] == 1


def test_gru_downscale_cond_and_short_rollouts():
    venv = FakeTargetVecEnv(cond=True, size=(9, 11), max_steps=5)
    agent = make_agent(venv, net=dict(TINY_NET, conv_gru=True, downscale=2), n_steps=2, max_grad_norm=0.5)
    before = flat_params(agent)
    stats = agent.train_episode(venv, seed=0)
    assert stats["steps"] == 5 and stats["updates"] == 3  # 2 + 2 + 1 steps
    assert stats["grad_norm"] >= 0 and not torch.equal(before, flat_params(agent))
    obs, _ = venv.reset(seed=1)
    actions, hidden = agent.act(obs)
    assert actions.shape == (4, 1, 9, 11) and actions.dtype == torch.int64
    assert hidden.shape == (4, 16, 5, 6)
    greedy, _ = agent.act(obs, hidden, greedy=True)
    out = agent.policy(obs["image"], obs["cond"], hidden)
    assert torch.equal(greedy, out.logits.argmax(dim=2))


def test_scalar_reward_env_without_reward_map():
    venv = FakeTargetVecEnv(scalar_reward=True)
    agent = make_agent(venv)
    stats = agent.train_episode(venv, seed=0)
    assert math.isfinite(stats["loss"])
    ev = agent.evaluate(venv, episodes=2, seed=0)
    assert ev["episodes"] == 2 and math.isfinite(ev["return_mean"]) and ev["return_std"] >= 0


def test_state_dict_round_trip_resumes_exactly():
    venv = FakeTargetVecEnv()
    agent = make_agent(venv, reward_map_conv=True, rmc_size=3)
    agent.train_episode(venv, seed=0)
    agent.train_episode(venv)
    state = copy.deepcopy(agent.state_dict())
    agent.train_episode(venv, seed=7)

    resumed = make_agent(FakeTargetVecEnv(), seed=123, reward_map_conv=True, rmc_size=3)
    resumed.load_state_dict(state)
    assert resumed.episodes == 2
    resumed.train_episode(venv, seed=7)
    assert torch.equal(flat_params(resumed), flat_params(agent))

    with pytest.raises(CheckpointError, match="arch"):
        make_agent(venv, net=dict(TINY_NET, width=8)).load_state_dict(state)
    with pytest.raises(CheckpointError, match="reward_map_conv"):
        make_agent(venv).load_state_dict(state)
    bad = copy.deepcopy(state)
    next(iter(bad["policy"].values()))[...] = float("nan")
    with pytest.raises(CheckpointError, match="non-finite"):
        resumed.load_state_dict(bad)
    with pytest.raises(CheckpointError, match="lacks"):
        resumed.load_state_dict({"policy": state["policy"]})


# ---- asynchronous workers --------------------------------------------------------------------
def test_async_workers_take_the_episodes_in_turn_and_apply_them_in_order():
    venv = make_fake_venv(0)
    agent = make_agent(venv, lr_decay="poly", total_episodes=100)
    before = flat_params(agent)
    seen = []
    result = agent.train_async(make_fake_venv, 2, [10, 11, 12, 13], on_episode=seen.append)
    assert result["episodes"] == 4 and agent.episodes == 4
    assert [s["episode"] for s in result["history"]] == [0, 1, 2, 3] == [s["episode"] for s in seen]
    assert [s["worker"] for s in result["history"]] == [0, 1, 0, 1]
    assert all(math.isfinite(s["loss"]) for s in result["history"])
    assert not torch.equal(before, flat_params(agent))  # the parent sees the workers' updates
    first = agent.parameters()[0]
    assert float(agent.optimizer.state[first]["step"]) == 4  # one shared optimiser state
    assert [s["lr"] for s in result["history"]] == pytest.approx([agent.config.lr_at(e) for e in range(4)])
    agent.train_async(make_fake_venv, 2, [14, 15])  # a second call goes on from the agent's episode count
    assert agent.episodes == 6
    agent.train_episode(venv, seed=0)  # the synchronous path still works on the shared-memory parameters


def test_async_workers_are_reproducible_and_one_worker_is_synchronous():
    """The schedule is fixed: the same seeds and worker count give the same weights. With one worker
    every episode starts from the weights of all the updates before it, as in train_episode."""
    def trained(workers, seeds=(3, 4, 5, 6, 7)):
        agent = make_agent(make_fake_venv(0))
        agent.train_async(make_fake_venv, workers, list(seeds))
        return flat_params(agent)

    assert torch.equal(trained(2), trained(2))
    assert torch.equal(trained(3), trained(3))
    assert not torch.equal(trained(1), trained(2))  # stale weights: another algorithm
    one = make_agent(make_fake_venv(0))
    sync = make_agent(make_fake_venv(0))
    history = one.train_async(make_fake_venv, 1, [3, 4])["history"]
    for episode, seed in enumerate((3, 4)):  # the same episodes with the worker's sampling seeds
        sync.generator.manual_seed(int(np.random.SeedSequence([sync.config.seed, episode]).generate_state(1)[0]))
        assert sync.train_episode(make_fake_venv(0), seed=seed)["loss"] == pytest.approx(history[episode]["loss"])
    assert torch.equal(flat_params(one), flat_params(sync))


def test_async_workers_stop_after_an_applied_update():
    agent = make_agent(make_fake_venv(0))
    seen = []
    result = agent.train_async(make_fake_venv, 2, list(range(40)), on_episode=seen.append,
                               stop=lambda: len(seen) >= 3)
    assert 3 <= result["episodes"] < 40 and agent.episodes == result["episodes"]
    assert [s["episode"] for s in result["history"]] == list(range(result["episodes"]))
    first = agent.parameters()[0]
    assert float(agent.optimizer.state[first]["step"]) == result["episodes"]  # no update beyond those reported


def _failing_venv(rank):
    raise RuntimeError(f"no env for worker {rank}")


def test_async_workers_report_their_errors():
    agent = make_agent(make_fake_venv(0))
    with pytest.raises(RuntimeError, match="no env for worker"):
        agent.train_async(_failing_venv, 2, [0, 1])
    longer = make_agent(make_fake_venv(0), n_steps=1)  # two updates an episode: not on the fixed schedule
    with pytest.raises(RuntimeError, match="one update per episode"):
        longer.train_async(make_fake_venv, 2, [0, 1])
