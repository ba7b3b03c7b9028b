"""Pixel-wise A3C (PixelRL): per-pixel advantage actor-critic on batched torch vector envs.

Every pixel is an agent with its own action, reward and value; the network is shared. One
update from a rollout of ``n_steps`` steps (by default the whole episode)::

    R_T = V(s_T) if the episode goes on, else 0
    R_t = r_t + gamma * RMC(R_{t+1})             (per pixel; RMC = identity unless enabled)
    A_t = R_t - V(s_t)
    loss = -mean(log pi(a_t|s_t) * A_t.detach()) + value_coef * mean(A_t^2)
           - entropy_coef * mean(H(pi(.|s_t)))

``RMC`` is PixelRL's reward map convolution: a learned ``rmc_size`` x ``rmc_size`` filter (initialised to
the identity) on the discounted return map, trained through the value loss.

* :meth:`A3C.train_episode` - one synchronous batched episode and update (A2C style), deterministic for a
  fixed seed; data-parallel with ``ranks`` (:mod:`agents.distributed`: each rank steps its rows of a sharded
  env, draws its rows of the global action noise and averages gradients with the other ranks).
* :meth:`A3C.train_async` - asynchronous A3C: ``workers`` processes on one machine update the shared
  parameters in episode order (:mod:`agents.a3c_async`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.a3c_update import (
    RewardMapConv,
    SharedAdam,
    _apply_update,
    _masked_mean,
    _Rollout,
    a3c_loss,
    action_penalty_loss,
    action_penalty_weights,
    nstep_returns,
)
from agents.common import (
    as_bool,
    blocks_to_pixels,
    device_of,
    episode_length,
    evaluate_policy,
    obs_to,
    policy_kwargs_from_env,
    resolve_device,
    reward_map,
)
from agents.distributed import Ranks, sync_batch_norm
from rlenhance.errors import CheckpointError
from rlenhance.models.policy import PixelActorCritic, PolicyOutput, build_policy_input
from rlenhance.runtime import constant_tensor

__all__ = [
    "A3C",
    "A3CConfig",
    "RewardMapConv",
    "SharedAdam",
    "a3c_loss",
    "action_penalty_loss",
    "action_penalty_weights",
    "nstep_returns",
    "policy_kwargs_from_env",
]


@dataclass
class A3CConfig:
    """Hyper-parameters of pixel-wise A3C (defaults: PixelRL denoising)."""

    gamma: float = 0.95
    """Discount factor (PixelRL 0.95; ReLLIE uses 1.05)."""
    lr: float = 1e-3
    """Adam learning rate at episode 0."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam moment decay rates."""
    adam_eps: float = 1e-8
    """Adam denominator epsilon."""
    entropy_coef: float = 0.01
    """Weight of the (negative) mean per-pixel entropy in the loss."""
    value_coef: float = 0.5
    """Weight of the mean squared advantage (value loss)."""
    max_grad_norm: float | None = None
    """Clip the global gradient norm to this value; None = no clipping (PixelRL / ReLLIE)."""
    n_steps: int | None = None
    """Steps per update; None = the whole episode (one update per episode)."""
    reward_map_conv: bool = False
    """Use PixelRL's learned reward map convolution on the bootstrapped return."""
    rmc_size: int = 33
    """Odd kernel size of the reward map convolution."""
    lr_decay: str = "none"
    """'none' or 'poly': lr * (1 - episode / total_episodes) ** lr_decay_power (PixelRL)."""
    lr_decay_power: float = 0.9
    """Exponent of the polynomial decay (1.0 = linear)."""
    total_episodes: int | None = None
    """Episodes over which the learning rate decays to 0; required when lr_decay='poly'."""
    action_clip: float | None = 1.0
    """Continuous actions are clamped to [-action_clip, action_clip] before env.step (the log-prob
    is that of the unclamped Gaussian sample, as in SB3); None = no clamp."""
    seed: int = 0
    """Seed of the agent's action-sampling generator (the env is seeded through reset)."""
    block_actions: bool = False
    """With a downscaled policy (``downscale`` s > 1): sample one action per s x s block at the
    policy's working resolution and repeat it over the block's pixels (nearest upsampling), with
    values and reward maps averaged per block. Far fewer independent samples, so less action
    noise and lower-variance credit assignment than sampling every pixel from upsampled logits."""

    action_penalty: float = 0.0
    """Multiplier of the task's differentiable penalty on the policy's *expected* action map
    ``sum_a p(a) value_a`` (the task's ``action_values`` and ``action_penalty``, per step, at the
    policy's working resolution; LowLight: the smoothness its reward leaves out). Unlike a penalty in
    the reward on sampled actions, which charges exploration noise and pushes every pixel to one
    shared action, it shapes what the policy means to do. Row ``b`` is charged the task's penalty
    times its weight in the reset's info (:data:`envs.base.ACTION_PENALTY_WEIGHT`, 1 without one);
    see :func:`action_penalty_loss`. 0: none."""

    def __post_init__(self) -> None:
        checks = [
            (self.gamma >= 0, "gamma", "a number >= 0"),
            (self.lr > 0, "lr", "a number > 0"),
            (self.entropy_coef >= 0, "entropy_coef", "a number >= 0"),
            (self.value_coef >= 0, "value_coef", "a number >= 0"),
            (self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm", "None or > 0"),
            (self.n_steps is None or self.n_steps >= 1, "n_steps", "None or an integer >= 1"),
            (self.rmc_size >= 1 and self.rmc_size % 2 == 1, "rmc_size", "an odd integer >= 1"),
            (self.lr_decay in ("none", "poly"), "lr_decay", "'none' or 'poly'"),
            (self.lr_decay == "none" or (self.total_episodes or 0) >= 1, "total_episodes",
             "an integer >= 1 when lr_decay='poly'"),
            (self.action_clip is None or self.action_clip > 0, "action_clip", "None or > 0"),
            (self.action_penalty >= 0, "action_penalty", "a number >= 0"),
        ]
        for ok, name, accepted in checks:
            if not ok:
                raise ValueError(f"A3CConfig: {name}={getattr(self, name)!r}; expected {accepted}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))

    def lr_at(self, episode: int) -> float:
        """Learning rate to use for the update(s) of episode ``episode`` (0-based)."""
        if self.lr_decay == "none":
            return self.lr
        frac = min(max(episode, 0) / float(self.total_episodes), 1.0)
        return self.lr * (1.0 - frac) ** self.lr_decay_power


class _Step(NamedTuple):
    """What one step of the policy gives the rollout (:func:`policy_step`)."""

    actions: Tensor
    log_prob: Tensor
    entropy: Tensor
    value: Tensor
    hidden: Tensor | None
    action_penalty: Tensor | None


def policy_step(policy: PixelActorCritic, x: Tensor, cond: Tensor | None, hidden: Tensor | None, noise: Tensor,
                full_resolution: bool, task: Any, penalty: bool, penalty_weights: Tensor | None) -> _Step:
    """One training step of the policy, a pure function: actions sampled with ``noise``
    (:meth:`PixelActorCritic.sample_noise`), their log-probability and entropy, the value, the next hidden
    state and, with ``penalty``, :func:`expected_action_penalty` (else None)."""
    out = policy(x, cond, hidden, full_resolution=full_resolution)
    dist = policy.distribution(out)
    actions = dist.sample(noise=noise)
    charged = expected_action_penalty(policy, task, out, penalty_weights) if penalty else None
    return _Step(actions, dist.log_prob(actions), dist.entropy(), out.value, out.hidden, charged)


def expected_action_penalty(policy: PixelActorCritic, task: Any, out: PolicyOutput, weights: Tensor | None) -> Tensor:
    """The task's penalty (B,) of the expected action map of a discrete policy's output ``out``
    (:attr:`A3CConfig.action_penalty`), each row's weighted by ``weights`` (None: 1).

    Raises:
        ValueError: a continuous policy, a task whose actions are not values, or a table of another size.
    """
    values = getattr(task, "action_values", None)
    if out.logits is None or values is None:
        raise ValueError("A3CConfig.action_penalty needs a discrete (categorical) policy and a task whose actions "
                         f"are values (task.action_values); got {type(task).__name__}")
    table = constant_tensor(tuple(values), out.logits.dtype, out.logits.device)
    if table.numel() != out.logits.shape[2]:
        raise ValueError(f"the task's action_values has {table.numel()} values; the policy has "
                         f"{out.logits.shape[2]} actions")
    return task.action_penalty(policy.action_values(out, table), weights)


class _EpisodeRunner:
    """Runs one training episode of a (local) policy and applies updates through ``update`` (sync and async)."""

    def __init__(self, policy: PixelActorCritic, rmc: RewardMapConv | None, config: A3CConfig,
                 device: torch.device, generator: torch.Generator, ranks: Ranks | None = None):
        self.policy, self.rmc, self.config = policy, rmc, config
        self.device, self.generator = device, generator
        self.ranks = ranks if ranks is not None else Ranks()

    def run(self, venv: Any, seed: int | None,
            update: Callable[[Tensor], dict[str, float]]) -> dict[str, float]:
        """Reset ``venv``, then collect rollouts and call ``update(loss)`` until the episode ends."""
        obs, info = venv.reset(seed=seed)
        env_device = device_of(obs)
        obs = obs_to(obs, self.device)
        # a lockstep env (PixelVectorEnv.episode_steps) is stepped without reading its done flags back
        self.lockstep = getattr(venv, "episode_steps", None)
        episode_len = self.lockstep if self.lockstep is not None else episode_length(venv)
        batch = next(iter(obs.values())).shape[0]
        self.task = getattr(venv, "task", None)  # its action values and penalty (A3CConfig.action_penalty)
        self.penalty_weights = self._action_penalty_weights(info, batch)
        alive = torch.ones(batch, device=self.device)
        hidden: Tensor | None = None
        steps, updates = 0, 0
        totals: dict[str, float] = {}
        returns_sum = torch.zeros(batch, device=self.device)
        while (self.lockstep is not None or alive.any()) and (episode_len is None or steps < episode_len):
            roll, obs, hidden, alive = self._collect(venv, obs, hidden, alive, steps, episode_len,
                                                     env_device)
            steps += len(roll.rewards)
            for k, v in self._learn(roll, obs, hidden, alive, update).items():
                totals[k] = totals.get(k, 0.0) + v
            updates += 1
            returns_sum += (torch.stack(roll.scalar_rewards) * torch.stack(roll.alive)).sum(dim=0)
            if hidden is not None:
                hidden = hidden.detach()  # truncated backpropagation through time
        stats = {k: v / max(updates, 1) for k, v in totals.items()}
        stats.update(episode_return=float(returns_sum.mean()), steps=float(steps), updates=float(updates))
        return stats

    def _collect(self, venv: Any, obs: dict[str, Tensor], hidden: Tensor | None, alive: Tensor,
                 steps: int, episode_len: int | None, env_device: torch.device):
        """Step the env with sampled actions (keeping the graph) for up to ``n_steps`` steps."""
        cfg = self.config
        roll = _Rollout()
        while True:
            x, cond = build_policy_input(obs)
            # this rank's rows of the global batch's draws
            height, width = x.shape[-2:] if not self._blocks else self.policy.working_size(*x.shape[-2:])
            noise = self.ranks.draw_rows(partial(self.policy.sample_noise, height=height, width=width,
                                                 generator=self.generator, device=self.device, dtype=x.dtype),
                                         x.shape[0])
            step = policy_step(self.policy, x, cond, hidden, noise, not self._blocks, self.task,
                               bool(cfg.action_penalty), self.penalty_weights)
            actions = step.actions
            roll.log_probs.append(step.log_prob)
            roll.entropies.append(step.entropy)
            roll.values.append(step.value)
            if cfg.action_penalty:
                roll.action_penalty.append(step.action_penalty)
            env_actions = self._to_pixels(actions, x.shape[-2:])
            obs, reward, terminated, truncated, info = venv.step(
                self.policy.clip_actions(env_actions, cfg.action_clip).to(env_device))
            obs = obs_to(obs, self.device)
            reward = torch.as_tensor(reward, device=self.device).float().view(-1)
            done = as_bool(terminated, self.device) | as_bool(truncated, self.device)
            roll.rewards.append(self._to_blocks(reward_map(reward, info, self.device)))
            roll.dones.append(done)
            roll.alive.append(alive)
            roll.scalar_rewards.append(reward)
            alive = alive * (~done).float()
            hidden = step.hidden
            n = len(roll.rewards)
            if (n == cfg.n_steps or (self.lockstep is None and not alive.any())
                    or (episode_len is not None and steps + n >= episode_len)):
                return roll, obs, hidden, alive

    def _action_penalty_weights(self, info: Mapping[str, Any] | None, batch: int) -> Tensor | None:
        """The per-row weights of the task's action penalty in a reset's ``info`` (:func:`action_penalty_weights`)."""
        refusal = None if self.config.action_penalty else (
            "A3CConfig.action_penalty is 0; set it (1: the env's weights as they are)")
        return action_penalty_weights(info, batch, self.device, refusal)

    @property
    def _blocks(self) -> bool:
        return self.config.block_actions and self.policy.downscale > 1

    def _to_pixels(self, actions: Tensor, size: tuple[int, int]) -> Tensor:
        """Block actions (B, C, h, w) repeated over their s x s pixels, cropped to (H, W)."""
        return blocks_to_pixels(actions, self.policy.downscale, size) if self._blocks else actions

    def _to_blocks(self, reward_map: Tensor) -> Tensor:
        """Mean of a reward map over each block (partial border blocks: over the pixels they hold)."""
        if not self._blocks or reward_map.shape[-1] == 1:
            return reward_map
        return F.avg_pool2d(reward_map, self.policy.downscale, ceil_mode=True)

    def _learn(self, roll: _Rollout, obs: dict[str, Tensor], hidden: Tensor | None, alive: Tensor,
               update: Callable[[Tensor], dict[str, float]]) -> dict[str, float]:
        """Returns, loss and one ``update``; the value of the last state bootstraps running envs."""
        cfg = self.config
        with torch.no_grad():
            x, cond = build_policy_input(obs)
            bootstrap = self.policy(x, cond, hidden, full_resolution=not self._blocks).value
            bootstrap = bootstrap * alive.view(-1, 1, 1, 1)
        returns = nstep_returns(torch.stack(roll.rewards), torch.stack(roll.dones), bootstrap,
                                cfg.gamma, self.rmc)
        alive_t = torch.stack(roll.alive)
        values = torch.stack(roll.values)
        loss, parts = a3c_loss(torch.stack(roll.log_probs), torch.stack(roll.entropies), values,
                               returns, cfg.value_coef, cfg.entropy_coef, alive_t)
        if roll.action_penalty:
            penalty = torch.stack(roll.action_penalty)
            loss = loss + action_penalty_loss(penalty, alive_t, cfg.action_penalty)
            parts["action_penalty"] = _masked_mean(penalty, alive_t)
        stats = update(loss)
        rewards = torch.stack(roll.scalar_rewards)
        stats.update({k: float(v.detach()) for k, v in parts.items()})
        stats.update(loss=float(loss.detach()), value_mean=float(values.detach().mean()),
                     reward_mean=float((rewards * alive_t).sum() / alive_t.sum().clamp_min(1)))
        return stats


class A3C:
    """Pixel-wise A3C / A2C agent.

    Args:
        policy: the per-pixel actor-critic (moved to ``device``); a continuous one with ``bounded_mean=True``.
        config: hyper-parameters (:class:`A3CConfig`); default-constructed if None.
        device: ``None`` = the policy's device, ``"auto"`` = CUDA when available, or a device.
        ranks: this process's place in a data-parallel job (:class:`agents.distributed.Ranks`): the env is
            sharded the same way (``shard=ranks.shard``). None: a single process.

    Raises:
        ValueError: a continuous policy with ``bounded_mean=False``.

    Example:
        >>> import envs
        >>> venv = envs.make_vec("rlenhance/Denoise-v0", num_envs=2, crop=16)
        >>> policy = PixelActorCritic(**policy_kwargs_from_env(venv, width=8))
        >>> agent = A3C(policy, A3CConfig(gamma=0.95, lr=1e-3))
        >>> stats = agent.train_episode(venv, seed=0)      # first episode seeds the env
        >>> stats = agent.train_episode(venv)              # later ones continue its RNG
    """

    def __init__(self, policy: PixelActorCritic, config: A3CConfig | None = None,
                 device: str | torch.device | None = None, ranks: Ranks | None = None):
        if policy.n_actions is None and not policy.bounded_mean:
            raise ValueError("A3C: the continuous policy has bounded_mean=False (SAC's tanh-squashed Gaussian); "
                             "build it with bounded_mean=True (A3C samples around the bounded mean and clips)")
        self.config = config if config is not None else A3CConfig()
        self.device = resolve_device(device, policy)
        self.ranks = ranks if ranks is not None else Ranks()
        self.policy = policy.to(self.device)
        if self.ranks.distributed:
            sync_batch_norm(self.policy)
        self.rmc = (RewardMapConv(self.config.rmc_size).to(self.device)
                    if self.config.reward_map_conv else None)
        self.optimizer = SharedAdam(self.parameters(), lr=self.config.lr, betas=self.config.betas,
                                    eps=self.config.adam_eps)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.config.seed)
        self.episodes = 0

    def parameters(self) -> list[nn.Parameter]:
        """All trained parameters: the policy's, then the reward map convolution's."""
        params = list(self.policy.parameters())
        if self.rmc is not None:
            params += list(self.rmc.parameters())
        return params

    # ---- acting -----------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Mapping[str, Tensor], hidden: Tensor | None = None,
            greedy: bool = False) -> tuple[Tensor, Tensor | None]:
        """Actions for a batch of observations.

        Args:
            obs: observation dict (see ``build_policy_input``), tensors (B, C_k, H, W).
            hidden: ConvGRU state from the previous call (None at the episode start).
            greedy: take the most probable action / the mean instead of sampling.

        Returns:
            ``(actions, hidden)``: actions on the observation's device, int64 (B, C, H, W) for a
            categorical policy, float32 (B, C, H, W) clamped to ``action_clip`` for a Gaussian one.
        """
        env_device = device_of(obs)
        x, cond = build_policy_input(obs_to(obs, self.device))
        out = self.policy(x, cond, hidden)
        actions = self.policy.predict(out, deterministic=greedy, generator=self.generator,
                                      clip=self.config.action_clip)
        return actions.to(env_device), out.hidden

    # ---- training ---------------------------------------------------------------------------
    def train_episode(self, venv: Any, seed: int | None = None) -> dict[str, float]:
        """One synchronous batched episode with an update every ``n_steps`` (default: at the end).

        Args:
            venv: a torch vector env (``reset``/``step`` as in ``envs.make_vec``).
            seed: passed to ``venv.reset``; give it on the first episode, None afterwards.

        Returns:
            dict of floats: ``episode_return`` (sum of the mean rewards), ``reward_mean``,
            ``loss``, ``policy_loss``, ``value_loss``, ``entropy``, ``value_mean``, ``grad_norm``,
            ``lr``, ``steps``, ``updates``, ``episode``.
        """
        params = self.parameters()
        lr = self.config.lr_at(self.episodes)
        runner = _EpisodeRunner(self.policy, self.rmc, self.config, self.device, self.generator, self.ranks)
        stats = runner.run(venv, seed, lambda loss: _apply_update(
            loss, params, params, self.optimizer, lr, self.config.max_grad_norm, self.ranks))
        stats["episode"] = float(self.episodes)
        self.episodes += 1
        return stats

    @torch.no_grad()
    def evaluate(self, venv: Any, episodes: int = 1, seed: int | None = None,
                 greedy: bool = True) -> dict[str, float]:
        """Roll out the (greedy) policy without learning: :func:`agents.common.evaluate_policy`."""
        return evaluate_policy(self, venv, episodes=episodes, seed=seed, greedy=greedy)

    # ---- asynchronous training --------------------------------------------------------------
    def train_async(self, make_venv: Callable[[int], Any], workers: int, seeds: Sequence[int],
                    **options: Any) -> dict[str, Any]:
        """Asynchronous A3C on one machine: :func:`agents.a3c_async.train_async` of this agent."""
        from agents.a3c_async import train_async

        return train_async(self, make_venv, workers, seeds, **options)

    # ---- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: policy arch + weights, rmc, optimiser, counters, RNG."""
        return {
            "arch": self.policy.arch(),
            "policy": self.policy.state_dict(),
            "rmc": None if self.rmc is None else self.rmc.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "config": asdict(self.config),
            "episodes": self.episodes,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` output.

        Raises:
            CheckpointError: missing entries, an architecture or reward-map-conv mismatch, or non-finite weights.
        """
        missing = [k for k in ("policy", "optimizer", "rmc", "episodes") if k not in state]
        if missing:
            raise CheckpointError(f"A3C.load_state_dict: state lacks {missing}; expected the output "
                                  "of A3C.state_dict()")
        if "arch" in state and state["arch"] != self.policy.arch():
            raise CheckpointError(f"A3C.load_state_dict: checkpoint arch {state['arch']} differs from "
                                  f"the agent's {self.policy.arch()}")
        if (state["rmc"] is None) != (self.rmc is None):
            raise CheckpointError("A3C.load_state_dict: reward_map_conv differs between the checkpoint "
                                  f"({state['rmc'] is not None}) and the agent ({self.rmc is not None})")
        for name, t in state["policy"].items():
            if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all():
                raise CheckpointError(f"A3C.load_state_dict: policy weight {name!r} has non-finite values")
        try:
            self.policy.load_state_dict(state["policy"])
            if self.rmc is not None:
                self.rmc.load_state_dict(state["rmc"])
        except RuntimeError as exc:
            raise CheckpointError(f"A3C.load_state_dict: {exc}") from exc
        self.optimizer.load_state_dict(state["optimizer"])
        self.episodes = int(state["episodes"])
        if state.get("generator") is not None:
            self.generator.set_state(state["generator"])
