"""Pixel-wise soft actor-critic (RSE-RL style) on batched torch vector envs.

Every pixel is an agent with its own action, reward and Q value; the networks are shared and fully
convolutional. Transitions (one per image) go to a :class:`agents.buffers.PixelReplayBuffer`; each update
draws ``batch_size`` of them.

Continuous actions (``Box(-1, 1, (C, H, W))``): the actor is a :class:`rlenhance.models.policy.PixelActorCritic`
with ``n_actions=None, bounded_mean=False``; at every pixel ``a = tanh(u)``, ``u ~ N(mean, exp(log_std))`` per
channel, and ``log pi(a|s) = sum_c [log N(u_c) - log(1 - tanh(u_c)^2)]``. One Q map ``Q(s, a)`` (B, 1, H, W) per
critic (multi-channel reward maps are averaged over channels)::

    y      = r + gamma * (1 - terminal) * (min_i Q'_i(s', a') - alpha * log pi(a'|s')),  a' ~ pi(.|s')
    L_Q    = 1/2 sum_i mean((Q_i(s, a) - y)^2)
    L_pi   = mean(alpha * log pi(a~|s) - min_i Q_i(s, a~)),                             a~ ~ pi(.|s)
    L_alpha = -mean(log_alpha * (log pi(a~|s) + target_entropy))    (target: -C nats per pixel)

A downscaled continuous actor (``SACConfig.block_actions``) draws one action per s x s block and upsamples it
bilinearly: log pi, the entropy and its target are then per block. With an env's action-penalty weights in its
reset info (``envs.base.ACTION_PENALTY_WEIGHT``), a continuous actor adds ``SACConfig.action_penalty`` times the
task's penalty of its greedy action map (:func:`agents.a3c.action_penalty_loss`); the weights travel with the
transitions in the buffer.

Discrete actions (discrete SAC, Christodoulou 2019): each action map c of each pixel is an agent with
``Q_c(s, .)`` over its K actions (critic output (B, C, K, H, W)); expectations over actions are exact::

    V(s')  = sum_k pi_c(k|s') (min_i Q'_i,c(s', k) - alpha * log pi_c(k|s'))
    y      = r + gamma * (1 - terminal) * V(s')                       (r broadcast over c)
    L_pi   = mean(sum_k pi_c(k|s) (alpha * log pi_c(k|s) - min_i Q_i,c(s, k)))
    L_alpha = mean(log_alpha * (H(pi_c(.|s)) - target_entropy))   (target: ratio * log K per map)

With ``SACConfig.all_action_rewards`` (one action map, the env's per-action reward maps ``r_k``) the critics
regress all K values of every pixel against ``r_k + gamma * (1 - terminal) * V(s')``. With
``SACConfig.actor_updates`` N > 0, each episode's updates are followed by N actor-only steps (critics frozen,
alpha fixed). With ``SACConfig.trust_region_kl``, each actor step is halved until the mean per-pixel
``KL(pi_old || pi_new)`` is within the bound (or dropped after ``trust_region_steps`` halvings).

The target critics follow by Polyak averaging (``tau``). Truncation bootstraps unless
``SACConfig.end_is_terminal``. The buffer is not part of :meth:`SAC.state_dict`.

Data-parallel (``ranks``, :mod:`agents.distributed`): each rank steps its rows of a sharded env and gathers every
step's transitions from all ranks; an update draws the global minibatch's indices and noise on every rank and
keeps its rows; gradients are averaged over the ranks. All ranks thus hold the same weights, buffer and generator.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import asdict
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.a3c import action_penalty_loss, action_penalty_weights
from agents.buffers import PixelReplayBuffer, ReplaySample
from agents.common import as_bool, device_of, episode_length, evaluate_policy, obs_to, resolve_device, reward_map
from agents.distributed import Ranks, sync_batch_norm
from agents.sac_update import (
    SACConfig,
    discrete_soft_value,
    pixel_kl,
    polyak_update,
    soft_td_target,
    squashed_gaussian_sample,
)
from envs.base import ACTION_PENALTY_WEIGHT
from rlenhance.errors import CheckpointError
from rlenhance.models.critic import PixelQNetwork
from rlenhance.models.policy import PixelActorCritic, PolicyOutput, build_policy_input

__all__ = [
    "SAC",
    "SACConfig",
    "discrete_soft_value",
    "pixel_kl",
    "polyak_update",
    "soft_td_target",
    "squashed_gaussian_sample",
]


class SAC:
    """Pixel-wise soft actor-critic (continuous tanh-Gaussian or discrete per-pixel actions).

    Same public API as :class:`agents.a3c.A3C` (``policy`` is the actor); the replay buffer is not saved.

    Args:
        policy: the actor, a :class:`PixelActorCritic` without ConvGRU (its value head is unused);
            continuous policies must be built with ``bounded_mean=False``.
        config: hyper-parameters (:class:`SACConfig`); default-constructed if None.
        device: ``None`` = the policy's device, ``"auto"`` = CUDA when available, or a device.
        critic_kwargs: overrides of the critics' architecture
            (:meth:`PixelQNetwork.for_policy`), e.g. ``{"width": 16}``.
        ranks: this process's place in a data-parallel job (:class:`agents.distributed.Ranks`): the env is
            sharded the same way and ``batch_size`` is the global minibatch. None: a single process.

    Example:
        >>> import envs
        >>> from agents.a3c import policy_kwargs_from_env
        >>> venv = envs.make_vec("rlenhance/LowLight-v1", num_envs=2, crop=16, action_type="continuous")
        >>> policy = PixelActorCritic(**policy_kwargs_from_env(venv, width=8, bounded_mean=False))
        >>> agent = SAC(policy, SACConfig(batch_size=2, learning_starts=0), critic_kwargs={"width": 8})
        >>> stats = agent.train_episode(venv, seed=0)      # first episode seeds the env
        >>> stats = agent.train_episode(venv)              # later ones continue its RNG
    """

    def __init__(self, policy: PixelActorCritic, config: SACConfig | None = None,
                 device: str | torch.device | None = None,
                 critic_kwargs: Mapping[str, Any] | None = None, ranks: Ranks | None = None):
        self.config = config if config is not None else SACConfig()
        self.ranks = ranks if ranks is not None else Ranks()
        #: The task of the env last trained on (its ``action_penalty``; set by :meth:`train_episode`).
        self.task: Any = None
        #: transitions of each update's minibatch on this rank (``batch_size`` for one process)
        self.local_batch = self.ranks.split(self.config.batch_size, "SAC batch_size (--sac-batch)")
        if getattr(policy, "gru", None) is not None:
            raise ValueError("SAC: the policy has a ConvGRU (conv_gru=True); SAC replays single "
                             "transitions, build the policy with conv_gru=False")
        self.discrete = policy.n_actions is not None
        if self.config.all_action_rewards and (not self.discrete or policy.out_channels != 1):
            got = f"{policy.out_channels} action maps" if self.discrete else "a continuous policy"
            raise ValueError("SACConfig.all_action_rewards: needs a discrete policy with one action map (the "
                             f"env's action_reward_maps are (B, K, H, W)); got {got}")
        if not self.discrete and policy.bounded_mean:
            raise ValueError("SAC: the continuous policy has bounded_mean=True; build it with "
                             "bounded_mean=False (SAC squashes the Gaussian sample with tanh)")
        #: one continuous draw per downscale block, upsampled (SACConfig.block_actions)
        self.blocks = self.config.block_actions and not self.discrete and policy.downscale > 1
        self.device = resolve_device(device, policy)
        self.policy = policy.to(self.device)
        cfg = self.config
        with torch.random.fork_rng(devices=[]):  # critic init from the seed, global RNG untouched
            torch.manual_seed(cfg.seed)
            critics = [PixelQNetwork.for_policy(policy, **dict(critic_kwargs or {})) for _ in range(2)]
        self.critics = nn.ModuleList(critics).to(self.device)
        if self.ranks.distributed:
            sync_batch_norm(self.policy)
            sync_batch_norm(self.critics)
        self.critic_targets = copy.deepcopy(self.critics).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=self.device, requires_grad=True)
        if cfg.target_entropy is not None:
            self.target_entropy = float(cfg.target_entropy)
        elif self.discrete:
            self.target_entropy = cfg.target_entropy_ratio * math.log(policy.n_actions)
        else:
            self.target_entropy = -float(policy.out_channels)
        self.actor_optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.actor_lr)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=cfg.critic_lr)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)
        self.buffer = PixelReplayBuffer(cfg.buffer_mb, cfg.storage, device=self.device,
                                        n_actions=policy.n_actions)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(cfg.seed)
        self.episodes = 0
        self.updates = 0

    @property
    def alpha(self) -> float:
        """The current entropy temperature exp(log_alpha)."""
        return float(self.log_alpha.detach().exp())

    # ---- acting -----------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Mapping[str, Tensor], hidden: Tensor | None = None,
            greedy: bool = False) -> tuple[Tensor, None]:
        """Actions for a batch of observations.

        Args:
            obs: observation dict (see ``build_policy_input``), tensors (B, C_k, H, W).
            hidden: ignored (the SAC actor has no recurrent state); kept for A3C's API.
            greedy: take the most probable action / ``tanh(mean)`` instead of sampling.

        Returns:
            ``(actions, None)``: actions on the observation's device, int64 (B, C, H, W) for a
            categorical policy, float32 (B, C, H, W) in [-1, 1] for a tanh-Gaussian one.
        """
        env_device = device_of(obs)
        x, cond = build_policy_input(obs_to(obs, self.device))
        actions = self.policy.predict(self._out(x, cond), deterministic=greedy, generator=self.generator)
        return self._to_pixels(actions, x.shape).to(env_device), None

    # ---- learning ---------------------------------------------------------------------------
    def _reward(self, reward_map: Tensor) -> Tensor:
        """The reward map the critics regress on: channel mean for the single continuous Q map."""
        if not self.discrete and reward_map.shape[1] > 1:
            return reward_map.mean(dim=1, keepdim=True)
        if self.discrete and reward_map.shape[1] not in (1, self.policy.out_channels):
            raise ValueError(f"SAC: reward maps have {reward_map.shape[1]} channels; expected 1 or "
                             f"{self.policy.out_channels} (one per action map)")
        return reward_map

    def _action_rewards(self, info: Mapping[str, Any]) -> Tensor:
        """A step's per-action reward maps (B, K, H, W) from the env's info (``all_action_rewards``)."""
        maps = info.get("action_reward_maps") if isinstance(info, Mapping) else None
        k = self.policy.n_actions
        if not torch.is_tensor(maps) or maps.dim() != 4 or maps.shape[1] != k:
            got = tuple(maps.shape) if torch.is_tensor(maps) else type(maps).__name__
            raise ValueError(f"SACConfig.all_action_rewards: the env's step info['action_reward_maps'] is {got}; "
                             f"expected a tensor (B, {k}, H, W), one reward map per action (Denoise: "
                             "action_rewards=True)")
        return maps.to(self.device, torch.float32)

    def _out(self, x: Tensor, cond: Tensor | None) -> PolicyOutput:
        """The actor's output where its actions are drawn (working resolution with block actions), without value."""
        return self.policy(x, cond, full_resolution=not self.blocks, with_value=False)

    def _action_penalty_weights(self, info: Mapping[str, Any] | None, batch: int) -> Tensor | None:
        """The per-row weights of the task's action penalty in a reset's ``info`` (:func:`action_penalty_weights`)."""
        refusal = None
        if self.discrete or not self.config.action_penalty:
            refusal = ("SAC charges it only on a continuous actor with SACConfig.action_penalty > 0; got "
                       f"{'a discrete actor' if self.discrete else 'action_penalty=0'} (LowLight: "
                       "smooth_in_reward=True keeps the term in the reward)")
        return action_penalty_weights(info, batch, self.device, refusal)

    def _to_pixels(self, t: Tensor, size: torch.Size | tuple[int, int]) -> Tensor:
        """Block actions (or per-block maps) upsampled bilinearly to ``size`` = (H, W); unchanged without blocks."""
        return self.policy.upsample(t, *size[-2:]) if self.blocks else t

    def _noise(self, like: Tensor) -> Tensor:
        """This rank's rows of the standard normal draws of a global batch shaped like ``like``."""
        return self.ranks.draw_rows(lambda n: torch.randn((n, *like.shape[1:]), generator=self.generator,
                                                          device=like.device, dtype=like.dtype), like.shape[0])

    def _step(self, loss: Tensor, params: list[Tensor], optimizer: torch.optim.Optimizer) -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.ranks.average_gradients(params)
        max_norm = self.config.max_grad_norm if self.config.max_grad_norm is not None else math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        optimizer.step()
        return norm

    def _critic_loss(self, batch: ReplaySample, alpha: Tensor) -> tuple[Tensor, Tensor]:
        cfg = self.config
        x, cond = build_policy_input(batch.obs)
        nx, ncond = build_policy_input(batch.next_obs)
        with torch.no_grad():
            nout = self._out(nx, ncond)
            if self.discrete:
                q_next = torch.minimum(*(q(nx, ncond) for q in self.critic_targets))
                v_next = discrete_soft_value(F.log_softmax(nout.logits, dim=2), q_next, alpha)
            else:
                a_next, logp_next = squashed_gaussian_sample(nout.mean, nout.log_std, noise=self._noise(nout.mean))
                q_next = torch.minimum(*(q(nx, ncond, self._to_pixels(a_next, nx.shape)) for q in self.critic_targets))
                v_next = q_next - alpha * self._to_pixels(logp_next, nx.shape)
            if cfg.all_action_rewards:  # (B, K, H, W) -> (B, 1, K, H, W): every action's target
                target = soft_td_target(batch.reward_map.unsqueeze(1), batch.done, v_next.unsqueeze(2), cfg.gamma)
            else:
                target = soft_td_target(self._reward(batch.reward_map), batch.done, v_next, cfg.gamma)
        if cfg.all_action_rewards:
            qs = [q(x, cond) for q in self.critics]
        elif self.discrete:
            index = batch.actions.unsqueeze(2)
            qs = [q(x, cond).gather(2, index).squeeze(2) for q in self.critics]
        else:
            qs = [q(x, cond, batch.actions) for q in self.critics]
        target = target.expand_as(qs[0])
        loss = 0.5 * sum(F.mse_loss(q, target) for q in qs)
        return loss, qs[0].detach().mean()

    def _actor_loss(self, x: Tensor, cond: Tensor | None, alpha: Tensor,
                    tv_weights: Tensor | None = None) -> tuple[Tensor, Tensor, PolicyOutput, Tensor | None]:
        """Actor loss, per-pixel entropy, the pre-step policy output and, with ``tv_weights`` (B,), the per-row
        penalty of the greedy action map (with graph)."""
        out = self._out(x, cond)
        if self.discrete:
            log_pi = F.log_softmax(out.logits, dim=2)
            pi = log_pi.exp()
            with torch.no_grad():
                q_pi = torch.minimum(*(q(x, cond) for q in self.critics))
            loss = (pi * (alpha * log_pi - q_pi)).sum(dim=2).mean()
            entropy = -(pi * log_pi).sum(dim=2)
        else:
            a, logp = squashed_gaussian_sample(out.mean, out.log_std, noise=self._noise(out.mean))
            q_pi = torch.minimum(*(q(x, cond, self._to_pixels(a, x.shape)) for q in self.critics))
            loss = alpha * logp.mean() - q_pi.mean()  # logp per block with block actions, q_pi per pixel
            entropy = -logp
        tv = None
        if tv_weights is not None:
            tv = self.task.action_penalty(self.policy.action_values(out, mode="argmax"), tv_weights)  # tanh(mean)
            loss = loss + action_penalty_loss(tv.view(1, -1), torch.ones_like(tv).view(1, -1),
                                              self.config.action_penalty)
        return loss, entropy.detach(), out, tv

    @torch.no_grad()
    def _trust_region(self, x: Tensor, cond: Tensor | None, old_out: PolicyOutput,
                      before: list[Tensor]) -> Tensor:
        """Halve the actor step until the mean per-pixel KL is within the bound; returns that KL."""
        bound = self.config.trust_region_kl
        params = list(self.policy.parameters())
        after = [p.detach().clone() for p in params]
        scale = 1.0
        for _ in range(self.config.trust_region_steps + 1):
            kl = self.ranks.mean(pixel_kl(old_out, self._out(x, cond)).mean())  # the global batch's mean
            if float(kl) <= bound:
                return kl
            scale *= 0.5
            for p, b, a in zip(params, before, after):
                p.copy_(torch.lerp(b, a, scale))
        for p, b in zip(params, before):  # no step size satisfies the bound: drop the step
            p.copy_(b)
        return torch.zeros((), device=self.device)

    def _actor_step(self, batch: ReplaySample, alpha: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """One actor step on ``batch`` (within the trust region, if any): its tensor stats and the pre-step entropy."""
        x, cond = build_policy_input(batch.obs)
        self.critics.requires_grad_(False)
        try:
            tv_weights = batch.obs.get(ACTION_PENALTY_WEIGHT)
            tv_weights = tv_weights.reshape(-1) if tv_weights is not None else None
            actor_loss, entropy, out, tv = self._actor_loss(x, cond, alpha, tv_weights)
            actor_params = list(self.policy.parameters())
            before = [p.detach().clone() for p in actor_params] if self.config.trust_region_kl else None
            actor_norm = self._step(actor_loss, actor_params, self.actor_optimizer)
        finally:
            self.critics.requires_grad_(True)
        stats = {"policy_loss": actor_loss.detach(), "entropy": entropy.mean(), "actor_grad_norm": actor_norm}
        if tv is not None:
            stats["action_penalty"] = tv.detach().mean()
        if before is not None:
            old = PolicyOutput(*(t.detach() if torch.is_tensor(t) else t for t in out))
            stats["kl"] = self._trust_region(x, cond, old, before)
        return stats, entropy

    def _update(self, batch: ReplaySample) -> dict[str, Tensor]:
        """One gradient update of critics, actor and temperature, then the targets; tensor stats."""
        cfg = self.config
        alpha = self.log_alpha.detach().exp()
        critic_loss, q_mean = self._critic_loss(batch, alpha)
        critic_norm = self._step(critic_loss, list(self.critics.parameters()), self.critic_optimizer)

        stats = {"value_loss": critic_loss.detach(), "q_mean": q_mean, "critic_grad_norm": critic_norm, "alpha": alpha}
        if self.updates >= cfg.critic_warmup:  # in the warm-up the critics learn the actor's values, nothing else
            actor_stats, entropy = self._actor_step(batch, alpha)
            alpha_loss = self.log_alpha * (entropy.mean() - self.target_entropy)
            if cfg.autotune_alpha:
                self.alpha_optimizer.zero_grad(set_to_none=True)
                alpha_loss.backward()
                self.ranks.average_gradients([self.log_alpha])
                self.alpha_optimizer.step()
            stats.update(actor_stats, alpha_loss=alpha_loss.detach(),
                         loss=critic_loss.detach() + actor_stats["policy_loss"])
        polyak_update(self.critics.parameters(), self.critic_targets.parameters(), cfg.tau)
        self.updates += 1
        return stats

    def update(self, batch: ReplaySample) -> dict[str, float]:
        """One SAC update on a batch of transitions (e.g. ``agent.buffer.sample(n, agent.generator)``).

        Returns:
            dict of floats: ``loss`` (critic + actor), ``value_loss``, ``policy_loss``, ``entropy`` (mean
            per-pixel; ``-log pi(a~|s)`` for tanh-Gaussians), ``alpha``, ``alpha_loss``, ``q_mean``,
            ``critic_grad_norm``, ``actor_grad_norm``, with a trust region ``kl`` and, with penalty weights from
            the env, ``action_penalty``. In the critics' warm-up (:attr:`SACConfig.critic_warmup`) only
            ``value_loss``, ``q_mean``, ``critic_grad_norm`` and ``alpha``.
        """
        return {k: float(v) for k, v in self._update(batch).items()}

    def _store(self, obs: Mapping[str, Tensor], actions: Tensor, rmap: Tensor, next_obs: Mapping[str, Tensor],
               terminal: Tensor, alive: Tensor) -> None:
        """Add a step's transitions of the envs still alive to the buffer (every rank's rows, in rank order)."""
        if self.ranks.distributed:
            gather = self.ranks.gather
            obs, next_obs = {k: gather(v) for k, v in obs.items()}, {k: gather(v) for k, v in next_obs.items()}
            actions, rmap, terminal, alive = gather(actions), gather(rmap), gather(terminal), gather(alive)
        if bool(alive.all()):
            self.buffer.add(obs, actions, rmap, next_obs, terminal)
        else:
            keep = alive.nonzero().view(-1)
            self.buffer.add({k: v[keep] for k, v in obs.items()}, actions[keep], rmap[keep],
                            {k: v[keep] for k, v in next_obs.items()}, terminal[keep])

    def _replay_batch(self) -> ReplaySample:
        """This rank's rows of a global minibatch drawn from the buffer."""
        return self.buffer.get(self.ranks.draw_rows(partial(self.buffer.sample_indices, generator=self.generator),
                                                    self.local_batch))

    def train_episode(self, venv: Any, seed: int | None = None) -> dict[str, float]:
        """Collect one batched episode into the buffer, then run the updates.

        Args:
            venv: a torch vector env (``envs.make_vec``); reward maps from ``info["reward_map"]`` (else the reward).
            seed: passed to ``venv.reset``; give it on the first episode, None afterwards.

        Returns:
            dict of floats: ``episode_return`` (sum of the mean rewards, mean over envs), ``reward_mean``, the
            means over this episode's updates of the :meth:`update` stats (NaN where no update gave one),
            ``alpha`` (after the updates), ``buffer_mb``, ``buffer_size``, ``steps``, ``updates``,
            ``actor_updates`` (the actor-only steps), ``episode``.
        """
        cfg = self.config
        obs, info = venv.reset(seed=seed)
        env_device = device_of(obs)
        obs = obs_to(obs, self.device)
        max_steps = episode_length(venv)
        batch = next(iter(obs.values())).shape[0]
        self.task = getattr(venv, "task", None)  # its action penalty (SACConfig.action_penalty)
        tv_weights = self._action_penalty_weights(info, batch)
        # the weights ride with the transitions as an observation entry the policy input ignores
        with_weights = (lambda o: {**o, ACTION_PENALTY_WEIGHT: tv_weights.view(-1, 1)}) if tv_weights is not None \
            else (lambda o: o)
        alive = torch.ones(batch, dtype=torch.bool, device=self.device)
        returns = torch.zeros(batch, device=self.device)
        rewards: list[Tensor] = []
        steps = 0
        with torch.no_grad():
            while bool(alive.any()) and (max_steps is None or steps < max_steps):
                x, cond = build_policy_input(obs)
                out = self._out(x, cond)
                # this rank's rows of the global batch's draws (all of them for one process)
                noise = self.ranks.draw_rows(partial(self.policy.distribution(out).noise, self.generator), x.shape[0])
                actions = self._to_pixels(self.policy.predict(out, deterministic=False, noise=noise), x.shape)
                next_obs, reward, terminated, truncated, info = venv.step(actions.to(env_device))
                next_obs = obs_to(next_obs, self.device)
                reward = torch.as_tensor(reward, device=self.device).float().view(-1)
                terminal = as_bool(terminated, self.device)
                if cfg.end_is_terminal:
                    terminal = terminal | as_bool(truncated, self.device)
                rmap = self._action_rewards(info) if cfg.all_action_rewards else reward_map(reward, info, self.device)
                self._store(with_weights(obs), actions, rmap, with_weights(next_obs), terminal, alive)
                returns += reward * alive
                rewards.append(reward[alive])
                alive = alive & ~(terminal | as_bool(truncated, self.device))
                obs = next_obs
                steps += 1

        n_updates = cfg.updates_per_episode if cfg.updates_per_episode is not None else steps
        totals: dict[str, Tensor] = {}
        counts: dict[str, int] = {}  # updates that gave each stat (the actor's: none in the critics' warm-up)
        done_updates = 0
        if len(self.buffer) >= max(cfg.learning_starts, 1):
            for _ in range(n_updates):
                for k, v in self._update(self._replay_batch()).items():
                    totals[k] = totals[k] + v if k in totals else v
                    counts[k] = counts.get(k, 0) + 1
                done_updates += 1
        actor_updates = cfg.actor_updates if done_updates and self.updates > cfg.critic_warmup else 0
        if actor_updates:  # the actor catches up with the critics as they now stand (alpha fixed)
            alpha = self.log_alpha.detach().exp()
            for _ in range(actor_updates):
                self._actor_step(self._replay_batch(), alpha)
        nan = float("nan")
        keys = ("loss", "policy_loss", "value_loss", "entropy", "alpha_loss", "q_mean",
                "critic_grad_norm", "actor_grad_norm") + (("kl",) if cfg.trust_region_kl else ()) \
            + (("action_penalty",) if tv_weights is not None else ())
        stats = {k: float(totals[k]) / counts[k] if k in totals else nan for k in keys}
        stats.update(
            episode_return=float(returns.mean()),
            reward_mean=float(torch.cat(rewards).mean()) if rewards else nan,
            alpha=self.alpha, buffer_mb=self.buffer.used_mb, buffer_size=float(len(self.buffer)),
            steps=float(steps), updates=float(done_updates), actor_updates=float(actor_updates),
            episode=float(self.episodes),
        )
        self.episodes += 1
        return stats

    def evaluate(self, venv: Any, episodes: int = 1, seed: int | None = None,
                 greedy: bool = True) -> dict[str, float]:
        """Roll out the (greedy) policy without learning: :func:`agents.common.evaluate_policy`."""
        return evaluate_policy(self, venv, episodes=episodes, seed=seed, greedy=greedy)

    # ---- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume except the replay buffer: networks with archs, log_alpha, optimisers,
        counters, config and generator state."""
        return {
            "arch": self.policy.arch(),
            "policy": self.policy.state_dict(),
            "critic_arch": self.critics[0].arch(),
            "critics": self.critics.state_dict(),
            "critic_targets": self.critic_targets.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "alpha_optimizer": self.alpha_optimizer.state_dict(),
            "config": asdict(self.config),
            "episodes": self.episodes,
            "updates": self.updates,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` output (the buffer is left as it is).

        Raises:
            CheckpointError: missing entries, an architecture mismatch, or non-finite weights.
        """
        required = ("policy", "critics", "critic_targets", "log_alpha", "actor_optimizer",
                    "critic_optimizer", "alpha_optimizer", "episodes")
        missing = [k for k in required if k not in state]
        if missing:
            raise CheckpointError(f"SAC.load_state_dict: state lacks {missing}; expected the output "
                                  "of SAC.state_dict()")
        for key, net in (("arch", self.policy), ("critic_arch", self.critics[0])):
            if key in state and state[key] != net.arch():
                raise CheckpointError(f"SAC.load_state_dict: checkpoint {key} {state[key]} differs from "
                                      f"the agent's {net.arch()}")
        for part in ("policy", "critics", "critic_targets"):
            for name, t in state[part].items():
                if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all():
                    raise CheckpointError(f"SAC.load_state_dict: {part} weight {name!r} has non-finite values")
        log_alpha = torch.as_tensor(state["log_alpha"])
        if log_alpha.numel() != 1 or not torch.isfinite(log_alpha).all():
            raise CheckpointError(f"SAC.load_state_dict: log_alpha={log_alpha!r}; expected a finite scalar")
        try:
            self.policy.load_state_dict(state["policy"])
            self.critics.load_state_dict(state["critics"])
            self.critic_targets.load_state_dict(state["critic_targets"])
        except RuntimeError as exc:
            raise CheckpointError(f"SAC.load_state_dict: {exc}") from exc
        with torch.no_grad():
            self.log_alpha.copy_(log_alpha.reshape(()))
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self.episodes = int(state["episodes"])
        self.updates = int(state.get("updates", 0))
        if state.get("generator") is not None:
            self.generator.set_state(state["generator"])
