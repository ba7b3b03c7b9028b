"""The configuration and the update math of pixel-wise SAC (:mod:`agents.sac`): soft values and TD
targets, the squashed Gaussian, Polyak averaging and the per-pixel KL of the actor's trust region."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from agents.buffers import STORAGES
from agents.distributions import PixelGaussian
from rlenhance.models.policy import PolicyOutput

__all__ = ["SACConfig", "discrete_soft_value", "pixel_kl", "polyak_update", "soft_td_target",
           "squashed_gaussian_sample"]


@dataclass
class SACConfig:
    """Hyper-parameters of pixel-wise SAC."""

    gamma: float = 0.95
    """Discount factor, in [0, 1) (truncated episodes bootstrap, so gamma >= 1 diverges), or 1 with
    ``end_is_terminal``."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the twin critics."""
    alpha_lr: float = 1e-2
    """Adam learning rate of log(alpha), the entropy temperature. Adam moves log(alpha) by about
    this much per update, so it must let alpha span the reward's scale within a run's few thousand
    updates (at 3e-4, 1,800 updates move log(alpha) by about 0.54 at most, alpha by a factor of about
    1.7, however far the entropy stays from its target)."""
    tau: float = 0.005
    """Polyak factor of the target critics: target <- (1 - tau) target + tau critic."""
    batch_size: int = 16
    """Transitions (images) per update."""
    buffer_mb: float = 256.0
    """Memory bound of the replay buffer in MB (2**20 bytes)."""
    storage: str = "uint8"
    """Observation storage in the buffer: 'uint8' (quantised, error <= range/510) or 'float16'."""
    learning_starts: int = 64
    """Transitions in the buffer before the first update."""
    updates_per_episode: int | None = None
    """Gradient updates after each collected episode; None = one per environment step."""
    init_alpha: float = 1.0
    """Initial entropy temperature."""
    autotune_alpha: bool = True
    """Tune alpha towards the target entropy; False keeps alpha = init_alpha."""
    target_entropy: float | None = None
    """Entropy target; None = -C nats per pixel (continuous, C action maps) or
    ``target_entropy_ratio * log K`` per pixel and action map (discrete)."""
    target_entropy_ratio: float = 0.5
    """Discrete actions: fraction of the uniform policy's entropy log K used as target (the paper's
    0.98 keeps the per-pixel policies nearly uniform)."""
    trust_region_kl: float | None = None
    """Bound on the mean per-pixel KL(pi_old || pi_new) of an actor step (line search); None = off."""
    trust_region_steps: int = 10
    """Halvings of the actor step tried by the line search before the step is dropped."""
    max_grad_norm: float | None = None
    """Clip the gradient norm of the actor and of the critics to this value; None = no clipping."""
    block_actions: bool = True
    """Continuous policy with ``downscale`` s > 1: one tanh-Gaussian draw per s x s block at the
    policy's working resolution, upsampled bilinearly to the pixels (as
    ``rlenhance.rollouts.greedy_rollout`` applies a policy's alphas); log pi and the entropy target
    are per block. False draws every pixel from the upsampled Gaussian: pixel-scale noise that the
    block-pooled critic cannot see and a smoothness reward punishes."""
    action_penalty: float = 1.0
    """Continuous actor, with an env that leaves a penalty on the actions out of its reward and hands
    its per-row weights ``w_b`` in the reset info (``envs.base.ACTION_PENALTY_WEIGHT``): multiplier of
    the task's penalty (``task.action_penalty``, weighted by ``w_b``) on the actor's greedy action
    map ``tanh(mean)`` at the working resolution (:func:`agents.a3c.action_penalty_loss`, A3C's
    ``action_penalty``; 1: the env's weights as they are). LowLight's smoothness reward of the sampled
    actions upsampled bilinearly to the pixels, where a step d between blocks becomes a ramp of slope
    about d / s, is 1/s^2 of the same TV at block resolution or less: too weak to stop the actor from
    flattening the brightness block by block."""
    critic_warmup: int = 0
    """Updates, counted from the agent's first, in which only the critics (and their targets) learn;
    the actor and the temperature start after them. 0: none (standard SAC). An actor started from a
    trained policy (``--init-policy``) would otherwise follow fresh critics from the first update. It
    delays, and does not prevent, what the critics then teach: the gray denoising A3C over FFDNet fine-tuned by
    SAC keeps its own validation score through a warm-up, then falls to its predictor's, as it does
    after its first updates without one."""
    actor_updates: int = 0
    """Actor-only gradient steps after each episode's joint updates, against the critics as they
    stand at the episode's end (frozen) and the current alpha; 0: none (standard SAC). Where the
    critics' per-pixel ranking of close actions moves faster than one actor step per update can
    follow (denoising's nine filters), the actor lags its own critics: this lets it catch up."""
    all_action_rewards: bool = False
    """Discrete actions: regress every action's Q value at every pixel, not only the taken action's,
    on ``r_k + gamma * V(s')``, with ``r_k`` the reward action k would have earned there (the env's
    step info ``action_reward_maps`` (B, K, H, W), e.g. Denoise's ``action_rewards=True``) and s'
    the state the taken actions reached. K targets per pixel instead of one: the critics learn which
    filter suits which pixel from every transition."""
    end_is_terminal: bool = False
    """An episode's truncation (its last step) stops the bootstrap as a termination does: the critics
    learn the return to the episode's end, a finite horizon that admits ``gamma`` 1 (A3C's objective,
    the final state's loss, with a potential-difference reward such as LowLight's). False: truncated
    episodes bootstrap, as if they went on."""
    seed: int = 0
    """Seed of the agent's generator (actions, replay sampling, reparameterisation noise) and of
    the critics' initial weights (the env is seeded through reset)."""

    def __post_init__(self) -> None:
        checks = [
            (0 <= self.gamma < 1 or (self.gamma == 1 and self.end_is_terminal), "gamma",
             "a number in [0, 1), or 1 with end_is_terminal"),
            (math.isfinite(self.actor_lr) and self.actor_lr > 0, "actor_lr", "a finite number > 0"),
            (math.isfinite(self.critic_lr) and self.critic_lr > 0, "critic_lr", "a finite number > 0"),
            (math.isfinite(self.alpha_lr) and self.alpha_lr > 0, "alpha_lr", "a finite number > 0"),
            (0 < self.tau <= 1, "tau", "a number in (0, 1]"),
            (int(self.batch_size) == self.batch_size and self.batch_size >= 1, "batch_size",
             "an integer >= 1"),
            (self.buffer_mb > 0, "buffer_mb", "a number > 0"),
            (self.storage in STORAGES, "storage", f"one of {STORAGES}"),
            (int(self.learning_starts) == self.learning_starts and self.learning_starts >= 0,
             "learning_starts", "an integer >= 0"),
            (self.updates_per_episode is None or (int(self.updates_per_episode) == self.updates_per_episode
                                                  and self.updates_per_episode >= 1),
             "updates_per_episode", "None or an integer >= 1"),
            (int(self.actor_updates) == self.actor_updates and self.actor_updates >= 0, "actor_updates",
             "an integer >= 0"),
            (int(self.critic_warmup) == self.critic_warmup and self.critic_warmup >= 0, "critic_warmup",
             "an integer >= 0"),
            (self.init_alpha > 0, "init_alpha", "a number > 0"),
            (self.target_entropy is None or math.isfinite(self.target_entropy), "target_entropy",
             "None or a finite number"),
            (0 < self.target_entropy_ratio <= 1, "target_entropy_ratio", "a number in (0, 1]"),
            (self.trust_region_kl is None or self.trust_region_kl > 0, "trust_region_kl", "None or > 0"),
            (int(self.trust_region_steps) == self.trust_region_steps and self.trust_region_steps >= 1,
             "trust_region_steps", "an integer >= 1"),
            (self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm", "None or > 0"),
            (self.action_penalty >= 0, "action_penalty", "a number >= 0"),
        ]
        for ok, name, accepted in checks:
            if not ok:
                raise ValueError(f"SACConfig: {name}={getattr(self, name)!r}; expected {accepted}")


@torch.no_grad()
def polyak_update(params: Iterable[Tensor], target_params: Iterable[Tensor], tau: float) -> None:
    """In place ``target <- (1 - tau) * target + tau * param`` for paired tensors.

    Args:
        params: the online parameters.
        target_params: the target parameters, same shapes, same order.
        tau: interpolation factor in [0, 1] (1 copies the parameters).
    """
    params, target_params = list(params), list(target_params)
    if len(params) != len(target_params):
        raise ValueError(f"polyak_update: {len(params)} parameters but {len(target_params)} targets")
    for p, t in zip(params, target_params):
        t.lerp_(p.detach(), tau)


def squashed_gaussian_sample(mean: Tensor, log_std: Tensor, generator: torch.Generator | None = None,
                             noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Reparameterised tanh-Gaussian actions and the log-density of each pixel's action vector.

    ``a = tanh(u)``, ``u = mean + exp(log_std) * eps``, ``eps ~ N(0, 1)``;
    ``log pi(a) = sum_c [log N(u_c; mean_c, std_c) - log(1 - tanh(u_c)^2)]``.

    Args:
        mean, log_std: float (B, C, H, W), the pre-tanh Gaussian per pixel and action map.
        generator: torch Generator on ``mean``'s device for the noise (None = global RNG).
        noise: the standard normal ``eps`` (B, C, H, W) to use instead of drawing it.

    Returns:
        ``(actions, log_prob)``: float (B, C, H, W) in (-1, 1) and float (B, 1, H, W), both
        differentiable with respect to ``mean`` and ``log_std``.
    """
    actions, log_prob = PixelGaussian(mean, log_std, squash=True).rsample_with_log_prob(generator, noise)
    return actions, log_prob.sum(dim=1, keepdim=True)


def discrete_soft_value(log_probs: Tensor, q: Tensor, alpha: Tensor | float) -> Tensor:
    """Exact soft state value of per-pixel categorical policies.

    ``V = sum_k pi(k) * (Q(k) - alpha * log pi(k))`` at every pixel and action map.

    Args:
        log_probs: float (B, C, K, H, W), normalised log-probabilities of the K actions.
        q: float (B, C, K, H, W), action values.
        alpha: entropy temperature (scalar tensor or float).

    Returns:
        float (B, C, H, W); actions of probability 0 contribute nothing.
    """
    probs = log_probs.exp()
    p_log_p = torch.where(probs > 0, probs * log_probs, torch.zeros_like(probs))  # 0 log 0 = 0
    return (probs * q - alpha * p_log_p).sum(dim=2)


def soft_td_target(reward_map: Tensor, terminal: Tensor, next_value: Tensor, gamma: float) -> Tensor:
    """Per-pixel TD target ``r + gamma * (1 - terminal) * V(s')``.

    Args:
        reward_map: float (B, C_r, H_r, W_r), broadcastable against ``next_value``.
        terminal: float/bool (B,), 1 where the episode terminated (a truncation is not terminal).
        next_value: float (B, C, H, W), the soft value of the next state (or (B, C, 1, H, W) against
            per-action rewards (B, C, K, H, W)).
        gamma: discount factor.

    Returns:
        float with the broadcast shape of ``reward_map`` and ``next_value``.
    """
    not_done = 1.0 - terminal.to(next_value.dtype).view(-1, *(1,) * (next_value.dim() - 1))
    return reward_map + gamma * not_done * next_value


def pixel_kl(old: PolicyOutput, new: PolicyOutput) -> Tensor:
    """Per-pixel ``KL(pi_old || pi_new)`` of the joint action of each pixel (summed over action maps).

    For Gaussian heads, the KL of the pre-tanh Gaussians (equal to the squashed one's: tanh is a bijection).

    Args:
        old, new: outputs of the same policy (categorical: ``logits`` (B, C, K, H, W); Gaussian:
            ``mean``, ``log_std`` (B, C, H, W)).

    Returns:
        float (B, 1, H, W), >= 0.
    """
    if old.logits is not None:
        lp_old = F.log_softmax(old.logits, dim=2)
        lp_new = F.log_softmax(new.logits, dim=2)
        kl = (lp_old.exp() * (lp_old - lp_new)).sum(dim=2)
    else:
        var_old, var_new = (2 * old.log_std).exp(), (2 * new.log_std).exp()
        kl = new.log_std - old.log_std + (var_old + (old.mean - new.mean) ** 2) / (2 * var_new) - 0.5
    return kl.sum(dim=1, keepdim=True)
