"""The update math of pixel-wise A3C (:mod:`agents.a3c`): n-step returns through PixelRL's reward map
convolution, the actor-critic loss, the task's action penalty, and the shared-memory Adam of asynchronous
training."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from agents.distributed import Ranks
from envs.base import ACTION_PENALTY_WEIGHT

__all__ = ["RewardMapConv", "SharedAdam", "a3c_loss", "action_penalty_loss", "action_penalty_weights",
           "nstep_returns"]


class RewardMapConv(nn.Module):
    """PixelRL's reward map convolution: one learned ``size`` x ``size`` filter, delta-initialised (the identity),
    applied to every channel independently with zero padding.

    Args:
        size: odd kernel size (PixelRL: 33).

    Shape:
        (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, size: int = 33):
        super().__init__()
        if size < 1 or size % 2 != 1:
            raise ValueError(f"RewardMapConv: size={size!r}; expected an odd integer >= 1")
        self.size = size
        weight = torch.zeros(1, 1, size, size)
        weight[0, 0, size // 2, size // 2] = 1.0
        self.weight = nn.Parameter(weight)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        y = nn.functional.conv2d(x.reshape(b * c, 1, h, w), self.weight.to(x.dtype), padding=self.size // 2)
        return y.view(b, c, h, w)


def nstep_returns(
    rewards: Tensor,
    dones: Tensor,
    bootstrap: Tensor,
    gamma: float,
    rmc: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Per-pixel n-step discounted returns, ``R_t = r_t + gamma * (1 - done_t) * rmc(R_{t+1})``.

    Args:
        rewards: float, shape (T, B, C_r, H_r, W_r): reward maps (C_r, H_r, W_r broadcastable
            against ``bootstrap``; (T, B, 1, 1, 1) for scalar rewards).
        dones: bool, shape (T, B): the episode ended with step t (no bootstrapping past it).
        bootstrap: float, shape (B, 1, H, W): V(s_T), the value after the last step (pass zeros
            when the rollout ends the episode).
        gamma: discount factor.
        rmc: optional map applied to the discounted return before adding r_t (identity if None).

    Returns:
        float, shape (T, B, C, H, W) with (C, H, W) the broadcast of reward and value shapes.
    """
    t_len = rewards.shape[0]
    shape = torch.broadcast_shapes(rewards.shape[1:], bootstrap.shape)
    ret = bootstrap.expand(shape)
    not_done = (~dones.bool()).to(rewards.dtype)
    out: list[Tensor] = [ret] * t_len
    for t in reversed(range(t_len)):
        nxt = ret if rmc is None else rmc(ret)
        ret = rewards[t] + gamma * not_done[t].view(-1, 1, 1, 1) * nxt
        ret = ret.expand(shape)
        out[t] = ret
    return torch.stack(out)


def _masked_mean(x: Tensor, alive: Tensor) -> Tensor:
    """Mean of (T, B, ...) ``x`` over the entries whose ``alive[t, b]`` is 1."""
    w = alive.view(alive.shape + (1,) * (x.dim() - 2)).to(x.dtype)
    return (x * w).sum() / (w.expand_as(x).sum()).clamp_min(1.0)


def a3c_loss(
    log_probs: Tensor,
    entropies: Tensor,
    values: Tensor,
    returns: Tensor,
    value_coef: float,
    entropy_coef: float,
    alive: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Pixel-wise actor-critic loss.

    ``-mean(log_probs * A.detach()) + value_coef * mean(A^2) - entropy_coef * mean(entropies)``
    with ``A = returns - values``; means run over the steps and envs marked ``alive``.

    Args:
        log_probs: float (T, B, C, H, W), log-probability of the taken actions.
        entropies: float (T, B, C, H, W), per-pixel policy entropy.
        values: float (T, B, 1, H, W), V(s_t).
        returns: float (T, B, C_r, H, W), n-step returns (C_r = 1 or C).
        value_coef, entropy_coef: loss weights.
        alive: float/bool (T, B), 1 where the step belongs to a running episode; None = all.

    Returns:
        ``(loss, parts)`` with scalar tensors ``parts["policy_loss"|"value_loss"|"entropy"]``.
    """
    if alive is None:
        alive = torch.ones(log_probs.shape[:2], device=log_probs.device)
    adv = returns - values
    policy_loss = -_masked_mean(log_probs * adv.detach(), alive)
    value_loss = _masked_mean(adv.pow(2), alive)
    entropy = _masked_mean(entropies, alive)
    loss = policy_loss + value_coef * value_loss - entropy_coef * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}


def action_penalty_loss(penalty: Tensor, alive: Tensor, coef: float) -> Tensor:
    """``coef`` times the mean of the task's weighted penalty (:meth:`envs.base.PixelTask.action_penalty`) over the
    live steps and rows, a scalar (:attr:`A3CConfig.action_penalty`).

    Args:
        penalty: float (T, B), the penalty of each step's expected action map (with graph).
        alive: float/bool (T, B), 1 where the step belongs to a running episode.
        coef: ``action_penalty``.
    """
    return coef * _masked_mean(penalty, alive)


def action_penalty_weights(info: Mapping[str, Any] | None, batch: int, device: torch.device,
                           refusal: str | None = None) -> Tensor | None:
    """The per-row weights of the task's action penalty in a reset ``info`` (:data:`envs.base.ACTION_PENALTY_WEIGHT`),
    float32 (B,) on ``device``, or None when it gives none.

    Args:
        info: the reset's info.
        batch: the number of envs B.
        device: where the weights go.
        refusal: why the calling agent cannot charge the penalty (None: it can); weights are then refused with it.

    Raises:
        ValueError: weights the agent cannot charge (``refusal``), or not B finite values >= 0.
    """
    if not info or ACTION_PENALTY_WEIGHT not in info:
        return None
    if refusal:
        raise ValueError(f"the env's reset info holds {ACTION_PENALTY_WEIGHT!r} (it leaves a penalty on the actions "
                         f"out of its reward, for the agent to charge), but {refusal}")
    weights = torch.as_tensor(info[ACTION_PENALTY_WEIGHT]).to(device, torch.float32).reshape(-1)
    if weights.shape != (batch,) or not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise ValueError(f"info[{ACTION_PENALTY_WEIGHT!r}] of the env's reset: expected {batch} finite weights >= 0 "
                         f"(one per env), got {weights.tolist() if weights.numel() <= 16 else weights.shape}")
    return weights


class SharedAdam(torch.optim.Optimizer):
    """Adam whose state is created eagerly so it can live in shared memory (asynchronous A3C).

    Same update as ``torch.optim.Adam`` (no amsgrad): ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``. Call :meth:`share_memory` before handing
    it to worker processes (the per-parameter float64 CPU step counters are shared too).
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p] = {
                    "step": torch.zeros((), dtype=torch.float64),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }

    def share_memory(self) -> SharedAdam:
        """Move every state tensor into shared memory (a no-op for CUDA tensors); returns self."""
        for state in self.state.values():
            for t in state.values():
                t.share_memory_()
        return self

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:  # each step on every tensor at once (a few kernels on a GPU)
            beta1, beta2 = group["betas"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            states = [self.state[p] for p in params]
            grads = [p.grad for p in params]
            m, v = [st["exp_avg"] for st in states], [st["exp_avg_sq"] for st in states]
            steps = []
            for st in states:
                st["step"] += 1  # a CPU tensor: no device work
                steps.append(float(st["step"]))
            torch._foreach_mul_(m, beta1)
            torch._foreach_add_(m, grads, alpha=1 - beta1)
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - beta2)
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, [math.sqrt(1 - beta2 ** t) for t in steps])
            torch._foreach_add_(denom, group["eps"])
            torch._foreach_addcdiv_(params, m, denom, [-group["lr"] / (1 - beta1 ** t) for t in steps])
        return loss


def _apply_update(loss: Tensor | None, local_params: list[Tensor], shared_params: list[Tensor],
                  optimizer: torch.optim.Optimizer, lr: float,
                  max_grad_norm: float | None, ranks: Ranks | None = None) -> dict[str, float]:
    """Backward on the local params (unless ``loss`` is None), average over ``ranks``, one step on the shared params."""
    if loss is not None:
        for p in local_params:
            p.grad = None
        loss.backward()
    if ranks is not None:
        ranks.average_gradients(local_params)
    max_norm = max_grad_norm if max_grad_norm is not None else math.inf  # inf: measure only
    norm = torch.nn.utils.clip_grad_norm_(local_params, max_norm)
    if local_params is not shared_params:
        for lp, sp in zip(local_params, shared_params):
            sp.grad = lp.grad  # process-local attribute: workers never share gradients
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.step()
    return {"grad_norm": float(norm), "lr": lr}


@dataclass
class _Rollout:
    """What one rollout of up to n_steps keeps for the update (lists over steps)."""

    log_probs: list[Tensor] = field(default_factory=list)   # (B, C, H, W), with graph
    entropies: list[Tensor] = field(default_factory=list)   # (B, C, H, W), with graph
    values: list[Tensor] = field(default_factory=list)      # (B, 1, H, W), with graph
    rewards: list[Tensor] = field(default_factory=list)     # (B, C_r, H_r, W_r)
    dones: list[Tensor] = field(default_factory=list)       # (B,) bool
    alive: list[Tensor] = field(default_factory=list)       # (B,) float, before the step
    scalar_rewards: list[Tensor] = field(default_factory=list)  # (B,)
    action_penalty: list[Tensor] = field(default_factory=list)   # (B,), with graph (action_penalty > 0)
