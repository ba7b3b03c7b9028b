"""Pixel-wise SAC: tanh-Gaussian and discrete soft-value math, Polyak averaging, temperature tuning,
the trust region, the per-pixel Q network, determinism, checkpoints and the three real envs."""

import io
import math

import pytest
import torch
from torch import distributions as D

import envs
from agents.a3c import policy_kwargs_from_env
from agents.sac import (
    SAC,
    SACConfig,
    discrete_soft_value,
    pixel_kl,
    polyak_update,
    soft_td_target,
    squashed_gaussian_sample,
)
from rlenhance.checkpoint import build_model
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.models.critic import PixelQNetwork
from rlenhance.models.policy import PixelActorCritic, PolicyOutput, build_policy_input
from tests.specs import RELLIE_LOWLIGHT

TINY_NET = dict(width=8, dilations=(1, 2), branch_dilations=(2,))
LOWLIGHT_C = ("rlenhance/LowLight-v1", {"action_type": "continuous", "reward": "mse"})
DENOISE = ("rlenhance/Denoise-v0", {})
EVAL_KEYS = {"return_mean", "return_std", "reward_mean", "final_reward_mean", "episodes"}


def make_vec(env_id, env_kwargs, num_envs=8, crop=16, steps=2):
    """A small env of ``env_id``; LowLight on the ReLLIE-style test bed, with ``env_kwargs``."""
    base = RELLIE_LOWLIGHT if env_id == "rlenhance/LowLight-v1" else {}
    return envs.make_vec(env_id, num_envs=num_envs, device="cpu", crop=crop, max_episode_steps=steps,
                         **{**base, **env_kwargs})


def make_agent(venv, seed=0, net=TINY_NET, **cfg):
    torch.manual_seed(seed)
    policy = PixelActorCritic(**policy_kwargs_from_env(venv, **net, bounded_mean=False))
    cfg = {"learning_starts": 8, "batch_size": 8, "seed": seed, **cfg}
    return SAC(policy, SACConfig(**cfg))


def all_params(agent):
    tensors = [*agent.policy.parameters(), *agent.critics.parameters(),
               *agent.critic_targets.parameters(), agent.log_alpha]
    return torch.cat([t.detach().flatten() for t in tensors])


# ---- update math ---------------------------------------------------------------------------
def test_squashed_gaussian_log_prob_matches_torch_reference_and_sums_channels():
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(2, 3, 4, 5, generator=gen)
    log_std = torch.rand(2, 3, 4, 5, generator=gen) - 1.0
    actions, log_prob = squashed_gaussian_sample(mean, log_std, torch.Generator().manual_seed(1))
    assert actions.shape == (2, 3, 4, 5) and log_prob.shape == (2, 1, 4, 5)
    assert actions.abs().max() < 1
    ref = D.TransformedDistribution(D.Normal(mean.double(), log_std.double().exp()),
                                    [D.TanhTransform()])
    expected = ref.log_prob(actions.double()).sum(dim=1, keepdim=True)
    torch.testing.assert_close(log_prob.double(), expected, rtol=1e-4, atol=1e-4)
    # differentiable in mean and log_std (the actor's reparameterisation)
    m, s = mean.clone().requires_grad_(), log_std.clone().requires_grad_()
    a, lp = squashed_gaussian_sample(m, s, torch.Generator().manual_seed(1))
    (a.sum() + lp.sum()).backward()
    assert m.grad.abs().sum() > 0 and s.grad.abs().sum() > 0


def test_act_samples_follow_the_tanh_gaussian_cdf():
    venv = make_vec(*LOWLIGHT_C, num_envs=1, crop=2)
    agent = make_agent(venv)
    mu, log_sigma = (0.6, -0.1, -0.4), (-0.5, 0.2, -1.0)
    with torch.no_grad():  # constant per-channel mean / log_std: zero weights, chosen biases
        agent.policy.policy_head.weight.zero_()
        agent.policy.policy_head.bias.copy_(torch.tensor([v for pair in zip(mu, log_sigma) for v in pair]))
    n = 4000
    obs = {"image": torch.full((n, 3, 2, 2), 0.2), "original": torch.full((n, 3, 2, 2), 0.2),
           "cond": torch.full((n, 5), 0.5)}
    actions, hidden = agent.act(obs)
    assert hidden is None and actions.dtype == torch.float32 and actions.shape == (n, 3, 2, 2)
    greedy, _ = agent.act(obs, greedy=True)
    torch.testing.assert_close(greedy[0, :, 0, 0], torch.tanh(torch.tensor(mu)))
    for c in range(3):
        samples = actions[:, c, 1, 0]
        for t in (-0.5, 0.0, 0.3, 0.7):
            empirical = float((samples <= t).float().mean())
            analytic = float(D.Normal(mu[c], math.exp(log_sigma[c])).cdf(torch.tensor(math.atanh(t))))
            assert abs(empirical - analytic) < 0.03, (c, t)  # DKW: P(error > 0.03) < 2e-3


def test_discrete_soft_value_hand_computed():
    probs = torch.tensor([0.25, 0.75])
    q = torch.tensor([1.0, 2.0])
    alpha = 0.5
    expected = 0.25 * (1 - alpha * math.log(0.25)) + 0.75 * (2 - alpha * math.log(0.75))
    log_probs = probs.log().view(1, 1, 2, 1, 1).expand(2, 3, 2, 4, 4)
    v = discrete_soft_value(log_probs, q.view(1, 1, 2, 1, 1).expand(2, 3, 2, 4, 4), alpha)
    assert v.shape == (2, 3, 4, 4)
    torch.testing.assert_close(v, torch.full((2, 3, 4, 4), expected))
    # alpha = 0: the expected Q; a one-hot policy: Q of its action (no entropy bonus)
    assert math.isclose(float(discrete_soft_value(log_probs, q.view(1, 1, 2, 1, 1), 0.0)[0, 0, 0, 0]), 1.75)
    one_hot = torch.tensor([0.0, -float("inf")]).view(1, 1, 2, 1, 1)
    lp = torch.log_softmax(one_hot, dim=2)
    assert float(discrete_soft_value(lp, q.view(1, 1, 2, 1, 1), alpha)[0, 0, 0, 0]) == 1.0


def test_soft_td_target_bootstraps_unless_terminal():
    reward = torch.tensor([1.0, 2.0]).view(2, 1, 1, 1)
    nxt = torch.full((2, 3, 2, 2), 10.0)
    y = soft_td_target(reward, torch.tensor([False, True]), nxt, gamma=0.9)
    assert y.shape == (2, 3, 2, 2)
    torch.testing.assert_close(y[0], torch.full((3, 2, 2), 1.0 + 9.0))
    torch.testing.assert_close(y[1], torch.full((3, 2, 2), 2.0))


def test_polyak_update_math():
    p = [torch.ones(3), torch.full((2, 2), 4.0)]
    t = [torch.zeros(3), torch.full((2, 2), 2.0)]
    polyak_update(p, t, 0.1)
    torch.testing.assert_close(t[0], torch.full((3,), 0.1))
    torch.testing.assert_close(t[1], torch.full((2, 2), 2.2))
    polyak_update(p, t, 0.1)
    torch.testing.assert_close(t[0], torch.full((3,), 0.19))
    polyak_update(p, t, 1.0)
    torch.testing.assert_close(t[1], p[1])
    with pytest.raises(ValueError, match="targets"):
        polyak_update(p, t[:1], 0.5)


def test_pixel_kl_known_values():
    zeros = torch.zeros(1, 2, 3, 3)
    old = PolicyOutput(None, zeros, zeros, zeros[:, :1], None)
    new = PolicyOutput(None, zeros + 1.0, zeros + math.log(2.0), zeros[:, :1], None)
    # KL(N(0,1) || N(1,4)) = log 2 + (1 + 1) / 8 - 1/2 per channel, summed over 2 channels
    expected = 2 * (math.log(2.0) + 2 / 8 - 0.5)
    torch.testing.assert_close(pixel_kl(old, new), torch.full((1, 1, 3, 3), expected))
    logits = torch.zeros(1, 1, 2, 1, 1)
    p = torch.tensor([0.9, 0.1]).log().view(1, 1, 2, 1, 1)
    kl = pixel_kl(PolicyOutput(logits, None, None, None, None), PolicyOutput(p, None, None, None, None))
    assert math.isclose(float(kl), 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1), rel_tol=1e-5)


# ---- the Q network -------------------------------------------------------------------------
def test_pixel_q_network_shapes_downscale_and_action_gradient():
    q = PixelQNetwork(6, 3, None, width=8, dilations=(1, 2), cond_dim=5, downscale=2)
    x, cond = torch.rand(2, 6, 15, 17), torch.rand(2, 5)
    a = (torch.rand(2, 3, 15, 17) * 2 - 1).requires_grad_()
    out = q(x, cond, a)
    assert out.shape == (2, 1, 15, 17)
    assert q(x, cond, a, full_resolution=False).shape == (2, 1, 8, 9)
    out.sum().backward()
    assert a.grad.abs().sum() > 0  # the actor's gradient path
    qd = PixelQNetwork(1, 1, 9, width=8, dilations=(1,))
    assert qd(torch.rand(3, 1, 10, 12)).shape == (3, 1, 9, 10, 12)
    q3 = PixelQNetwork(6, 3, 27, width=4, dilations=(1,), downscale=3)
    assert q3(torch.rand(1, 6, 10, 11)).shape == (1, 3, 27, 10, 11)


def test_pixel_q_network_arch_round_trip_and_for_policy():
    policy = PixelActorCritic(6, 3, None, width=8, dilations=(1, 2), branch_dilations=(3,), downscale=2,
                              cond_dim=5, bounded_mean=False)
    q = PixelQNetwork.for_policy(policy)
    assert (q.in_channels, q.out_channels, q.n_actions, q.cond_dim, q.downscale, q.width) == (6, 3, None, 5, 2, 8)
    assert q.arch()["kwargs"]["dilations"] == [1, 2, 3]
    assert PixelQNetwork.for_policy(policy, width=4).width == 4
    rebuilt = build_model({"arch": q.arch(), "state_dict": q.state_dict()}, {"PixelQNetwork": PixelQNetwork})
    x, c, a = torch.rand(1, 6, 8, 8), torch.rand(1, 5), torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(rebuilt(x, c, a), q(x, c, a))
    with pytest.raises(CheckpointError, match="PixelQNetwork"):
        build_model({"arch": {"class": "PixelActorCritic", "kwargs": {}}}, {"PixelQNetwork": PixelQNetwork})
    with pytest.raises(CheckpointError, match="failed"):
        build_model({"arch": {"class": "PixelQNetwork", "kwargs": {"in_channels": 0}}},
                    {"PixelQNetwork": PixelQNetwork})


def test_pixel_q_network_bad_inputs():
    q = PixelQNetwork(6, 3, None, width=4, dilations=(1,), cond_dim=5)
    x, cond = torch.rand(1, 6, 4, 4), torch.rand(1, 5)
    with pytest.raises(ImageError, match=r"expected \(B, 6, H, W\)"):
        q(torch.rand(1, 5, 4, 4), cond, torch.rand(1, 3, 4, 4))
    with pytest.raises(ImageError, match="actions"):
        q(x, cond)
    with pytest.raises(ValueError, match="cond"):
        q(x, None, torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="discrete"):
        PixelQNetwork(1, 1, 9, width=4)(torch.rand(1, 1, 4, 4), actions=torch.rand(1, 1, 4, 4))
    for bad in (dict(n_actions=1), dict(width=0), dict(kernel_size=2), dict(dilations=()), dict(downscale=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PixelQNetwork(**{**dict(in_channels=1, out_channels=1, n_actions=None), **bad})


# ---- the agent -----------------------------------------------------------------------------
@pytest.mark.parametrize("env_id,env_kwargs,net", [
    ("rlenhance/LowLight-v1", {"action_type": "continuous", "conditioned": True}, {"downscale": 2}),
    ("rlenhance/LowLight-v1", {}, {}),
    ("rlenhance/Denoise-v0", {}, {}),
    ("rlenhance/Completion-v0", {}, {}),
])
def test_sac_trains_on_real_envs(env_id, env_kwargs, net):
    venv = make_vec(env_id, env_kwargs)
    agent = make_agent(venv, net={**TINY_NET, **net}, updates_per_episode=2)
    before = all_params(agent)
    first = agent.train_episode(venv, seed=0)
    assert first["updates"] == 2 and first["steps"] == 2 and len(agent.buffer) == 16
    stats = agent.train_episode(venv)
    assert {"episode_return", "loss", "policy_loss", "value_loss", "entropy", "alpha", "buffer_mb"} <= set(stats)
    assert all(math.isfinite(v) for v in stats.values()), stats
    assert stats["buffer_mb"] > 0 and stats["episode"] == 1
    assert not torch.equal(before, all_params(agent))
    # truncation is not termination: every stored transition bootstraps
    assert agent.buffer.get(torch.arange(len(agent.buffer))).done.sum() == 0
    obs, _ = venv.reset(seed=3)
    actions, _ = agent.act(obs)
    assert actions.shape == (8, *venv.single_action_space.shape)
    assert actions.dtype == (torch.float32 if agent.policy.n_actions is None else torch.int64)
    ev = agent.evaluate(venv, episodes=1, seed=1)
    assert set(ev) == EVAL_KEYS and math.isfinite(ev["return_mean"])


def test_no_updates_before_learning_starts():
    venv = make_vec(*DENOISE, num_envs=4)
    agent = make_agent(venv, learning_starts=12)
    before = all_params(agent)
    stats = agent.train_episode(venv, seed=0)
    assert stats["updates"] == 0 and math.isnan(stats["loss"]) and len(agent.buffer) == 8
    assert torch.equal(before, all_params(agent))
    assert agent.train_episode(venv)["updates"] == 2  # one per env step by default


@pytest.mark.parametrize("end_is_terminal", [False, True])
def test_the_last_step_ends_the_return_only_with_end_is_terminal(end_is_terminal):
    """Truncation bootstraps by default; with ``end_is_terminal`` the episode's last step is stored as
    terminal (its TD target is the reward alone), which admits gamma 1."""
    venv = make_vec(*LOWLIGHT_C, num_envs=4, steps=3)
    agent = make_agent(venv, learning_starts=100, end_is_terminal=end_is_terminal,
                       gamma=1.0 if end_is_terminal else 0.95)
    agent.train_episode(venv, seed=0)
    done = agent.buffer.get(torch.arange(len(agent.buffer))).done  # 3 steps x 4 envs, in step order
    assert done.tolist() == [0.0] * 8 + [float(end_is_terminal)] * 4


@pytest.mark.parametrize("env", [LOWLIGHT_C, DENOISE])
def test_alpha_moves_toward_the_entropy_target(env):
    venv = make_vec(*env, num_envs=4)
    alphas = {}
    for name, target in (("raise", 50.0), ("lower", -50.0)):
        agent = make_agent(venv, learning_starts=10**6, target_entropy=target, alpha_lr=0.01)
        agent.train_episode(venv, seed=0)  # fill the buffer only
        start = agent.alpha
        for _ in range(3):
            agent.update(agent.buffer.sample(4, agent.generator))
        alphas[name] = agent.alpha / start
    assert alphas["raise"] > 1.01 and alphas["lower"] < 0.99
    # discrete default target: ratio * log K
    assert math.isclose(make_agent(make_vec(*DENOISE, num_envs=1)).target_entropy, 0.5 * math.log(9))
    assert make_agent(make_vec(*LOWLIGHT_C, num_envs=1)).target_entropy == -3.0


def test_targets_follow_critics_by_polyak_averaging():
    venv = make_vec(*DENOISE, num_envs=4)
    agent = make_agent(venv, learning_starts=10**6, tau=0.2)
    agent.train_episode(venv, seed=0)
    old_targets = [t.detach().clone() for t in agent.critic_targets.parameters()]
    agent.update(agent.buffer.sample(4, agent.generator))
    for old, critic, target in zip(old_targets, agent.critics.parameters(), agent.critic_targets.parameters()):
        torch.testing.assert_close(target, 0.8 * old + 0.2 * critic.detach())
    assert not torch.equal(old_targets[0], next(agent.critic_targets.parameters()))


@pytest.mark.parametrize("env", [LOWLIGHT_C, DENOISE])
def test_trust_region_bounds_the_kl_of_an_actor_step(env):
    venv = make_vec(*env, num_envs=4)
    bound = 0.01
    kls = {}
    for name, tr in (("free", None), ("bounded", bound)):
        agent = make_agent(venv, learning_starts=10**6, actor_lr=0.05, trust_region_kl=tr)
        agent.train_episode(venv, seed=0)
        batch = agent.buffer.sample(4, torch.Generator().manual_seed(0))
        x, cond = build_policy_input(batch.obs)
        with torch.no_grad():
            old = agent.policy(x, cond)
        stats = agent.update(batch)
        with torch.no_grad():
            kls[name] = float(pixel_kl(old, agent.policy(x, cond)).mean())
        if tr is not None:
            assert math.isclose(stats["kl"], kls[name], rel_tol=1e-4, abs_tol=1e-7)
    assert kls["free"] > bound
    assert 0 < kls["bounded"] <= bound * (1 + 1e-4)


def test_same_seed_same_parameters_after_two_episodes():
    runs = []
    for seed in (0, 0, 1):
        venv = make_vec(*LOWLIGHT_C, num_envs=4)
        agent = make_agent(venv, seed=seed)
        agent.train_episode(venv, seed=seed)
        agent.train_episode(venv)
        runs.append(all_params(agent))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_state_dict_round_trip_gives_identical_actions():
    venv = make_vec(*DENOISE, num_envs=4)
    agent = make_agent(venv)
    agent.train_episode(venv, seed=0)
    agent.train_episode(venv)
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf)  # weights_only: plain tensors and python values
    other = make_agent(venv, seed=7)
    other.load_state_dict(state)
    assert len(other.buffer) == 0  # the buffer content is not saved
    assert torch.equal(all_params(agent), all_params(other))
    assert other.episodes == 2 and other.updates == agent.updates
    obs, _ = venv.reset(seed=5)
    torch.testing.assert_close(agent.act(obs, greedy=True)[0], other.act(obs, greedy=True)[0])
    torch.testing.assert_close(agent.act(obs)[0], other.act(obs)[0])  # generator state restored
    for opt in ("actor_optimizer", "critic_optimizer", "alpha_optimizer"):
        assert getattr(other, opt).state_dict()["state"].keys() == getattr(agent, opt).state_dict()["state"].keys()


def test_load_state_dict_rejects_bad_checkpoints():
    venv = make_vec(*DENOISE, num_envs=2)
    agent = make_agent(venv)
    state = agent.state_dict()
    with pytest.raises(CheckpointError, match="lacks"):
        agent.load_state_dict({k: v for k, v in state.items() if k != "critics"})
    wider = make_agent(venv, net={**TINY_NET, "width": 12})
    with pytest.raises(CheckpointError, match="arch"):
        wider.load_state_dict(state)
    bad = dict(state, critics={k: v.clone() for k, v in state["critics"].items()})
    next(iter(bad["critics"].values())).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="non-finite"):
        agent.load_state_dict(bad)


@pytest.mark.parametrize("bad,field", [
    (dict(gamma=1.0), "gamma"), (dict(gamma=1.5, end_is_terminal=True), "gamma"), (dict(tau=0.0), "tau"),
    (dict(actor_lr=0), "actor_lr"),
    (dict(critic_lr=-1), "critic_lr"), (dict(alpha_lr=0), "alpha_lr"), (dict(batch_size=0), "batch_size"),
    (dict(buffer_mb=0), "buffer_mb"), (dict(storage="int8"), "storage"),
    (dict(learning_starts=-1), "learning_starts"), (dict(updates_per_episode=0), "updates_per_episode"),
    (dict(init_alpha=0), "init_alpha"), (dict(target_entropy_ratio=1.5), "target_entropy_ratio"),
    (dict(trust_region_kl=0.0), "trust_region_kl"), (dict(trust_region_steps=0), "trust_region_steps"),
    (dict(max_grad_norm=0), "max_grad_norm"), (dict(target_entropy=float("nan")), "target_entropy"),
])
def test_bad_config_names_the_field(bad, field):
    with pytest.raises(ValueError, match=f"SACConfig: {field}="):
        SACConfig(**bad)


def test_policy_must_fit_sac():
    with pytest.raises(ValueError, match="conv_gru"):
        SAC(PixelActorCritic(1, 1, 9, width=4, conv_gru=True))
    with pytest.raises(ValueError, match="bounded_mean=False"):
        SAC(PixelActorCritic(6, 3, None, width=4, bounded_mean=True))


def test_greedy_return_improves_on_lowlight_mse():
    """Learning sanity: continuous LowLight with the MSE reward (references known). The untrained
    policy keeps the image (alpha ~ 0, return ~ 0); brightening the dark crops earns > 0."""
    venv = make_vec(*LOWLIGHT_C)
    agent = make_agent(venv, learning_starts=16, actor_lr=1e-3, critic_lr=3e-3, alpha_lr=1e-3,
                       updates_per_episode=4, tau=0.05)
    initial = agent.evaluate(venv, seed=100)["return_mean"]
    for episode in range(12):
        agent.train_episode(venv, seed=0 if episode == 0 else None)
    final = agent.evaluate(venv, seed=100)["return_mean"]
    assert abs(initial) < 1.0
    assert final > initial + 5.0, (initial, final)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sac_runs_on_cuda():
    for env in (LOWLIGHT_C, DENOISE):
        venv = envs.make_vec(env[0], num_envs=4, device="cuda", crop=16, max_episode_steps=2, **env[1])
        agent = make_agent(venv)
        agent = SAC(agent.policy, agent.config, device="cuda")
        stats = agent.train_episode(venv, seed=0)
        assert stats["updates"] == 2 and math.isfinite(stats["loss"])
        obs, _ = venv.reset(seed=1)
        assert agent.act(obs)[0].device.type == "cuda"
        assert agent.buffer.sample(2, agent.generator).obs["image"].device.type == "cuda"


# ---- block actions: one draw per downscale block (why: SACConfig.block_actions) ----
SMOOTH_LOWLIGHT = ("rlenhance/LowLight-v1", {"action_type": "continuous", "alpha_channels": 1, "w_smooth": 100.0,
                                             "w_exposure": 300.0})


def test_block_actions_are_one_upsampled_draw_per_block():
    """A downscaled continuous actor draws at its working resolution and upsamples bilinearly, as
    ``greedy_rollout`` applies alphas; the old per-pixel draws from the upsampled Gaussian were
    pixel-scale noise (the old code fails the smoothness bound by orders of magnitude)."""
    from rlenhance.losses import illumination_smoothness_loss

    venv = make_vec(*SMOOTH_LOWLIGHT, num_envs=4, crop=32, steps=1)
    net = {**TINY_NET, "downscale": 8}
    obs, _ = venv.reset(seed=0)
    tv = {}
    for blocks in (True, False):
        agent = make_agent(venv, net=net, block_actions=blocks)
        actions, _ = agent.act(obs)
        tv[blocks] = float(illumination_smoothness_loss(actions).mean())
        if blocks:
            x, cond = build_policy_input(obs)
            out = agent.policy(x, cond, full_resolution=False)
            assert out.mean.shape[-2:] == (4, 4)  # the draws are per block
            greedy, _ = agent.act(obs, greedy=True)
            mode = agent.policy.action_values(out, mode="argmax")  # tanh(mean)
            torch.testing.assert_close(greedy, agent.policy.upsample(mode, 32, 32))
    assert tv[True] * 20 < tv[False], tv


def test_block_actions_keep_the_smoothness_penalty_small():
    """The per-pixel smoothness reward of sampled LowLight actions: with per-pixel draws it is
    hundreds per step (w_smooth 100 times the squared TV of unit-scale noise), swamping the exposure
    reward a policy can earn; with block actions it is of the exposure reward's order."""
    venv = make_vec(*SMOOTH_LOWLIGHT, num_envs=4, crop=32, steps=1)
    rewards = {}
    for blocks in (True, False):
        agent = make_agent(venv, net={**TINY_NET, "downscale": 8}, block_actions=blocks, learning_starts=10**6)
        rewards[blocks] = agent.train_episode(venv, seed=0)["episode_return"]
    assert rewards[False] < -100.0, rewards
    assert rewards[True] > -10.0, rewards


def test_block_actions_update_and_shapes():
    venv = make_vec(*SMOOTH_LOWLIGHT, num_envs=4, crop=32, steps=2)
    agent = make_agent(venv, net={**TINY_NET, "downscale": 8}, batch_size=4, updates_per_episode=2,
                       trust_region_kl=0.05)
    assert agent.blocks
    stats = agent.train_episode(venv, seed=0)
    assert stats["updates"] == 2 and all(math.isfinite(v) for v in stats.values()), stats
    assert agent.buffer.get(torch.arange(2)).actions.shape == (2, 1, 32, 32)
    # discrete policies and undownscaled ones draw every pixel as before
    assert not make_agent(make_vec(*DENOISE, num_envs=1), net={**TINY_NET, "downscale": 8}).blocks
    assert not make_agent(venv).blocks


def test_default_temperature_adapts_within_a_short_run():
    """The default alpha_lr lets alpha follow the entropy target within tens of updates (the old
    3e-4 moved log(alpha) by at most ~0.006 in 20 updates, so alpha never reached the reward's scale)."""
    venv = make_vec(*LOWLIGHT_C, num_envs=4)
    agent = make_agent(venv, learning_starts=10**6, target_entropy=50.0)  # entropy far below the target
    agent.train_episode(venv, seed=0)
    start = agent.alpha
    for _ in range(20):
        agent.update(agent.buffer.sample(4, agent.generator))
    assert agent.alpha / start > 1.1, (start, agent.alpha)
