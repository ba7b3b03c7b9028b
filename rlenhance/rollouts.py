"""Greedy rollouts of pixel policies: :func:`greedy_rollout` of a low-light policy, and :class:`PolicyRollouts`,
the one inference path of the denoising and completion policies that users and trainers run alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

from rlenhance import losses
from rlenhance.checkpoint import ALPHA_MODES, RolloutPolicySpec
from rlenhance.data.transforms import working_square
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.models.policy import PixelActorCritic, build_policy_input
from rlenhance.ops import native
from rlenhance.transitions import LE, LowLightTransition

__all__ = ["NATIVE_ROLLOUT_MAX_BLOCKS", "PolicyRollouts", "greedy_rollout", "working_rollout"]

_Restorer = TypeVar("_Restorer", bound="PolicyRollouts")


class PolicyRollouts:
    """What the restorers of the denoising and completion policies share: greedy rollouts of a batch of
    images of one size (:meth:`rollout_batch`) and of many images of any sizes (:meth:`rollout_images`)."""

    policy: PixelActorCritic

    @classmethod
    def from_policy(cls: type[_Restorer], policy: PixelActorCritic, spec: RolloutPolicySpec, *, predictor: Any = None,
                    tile: int = 512) -> _Restorer:
        """The restorer of a policy in memory, on its device, with the run's spec and predictor (None: none).

        Raises:
            CheckpointError: a policy, spec and predictor that do not fit (as for a checkpoint).
        """
        self = cls.__new__(cls)
        self._setup(policy, spec, predictor, tile, Path(f"<the {spec.task} policy in memory>"))
        return self

    def _setup(self, policy: PixelActorCritic, spec: RolloutPolicySpec, predictor: Any, tile: int,
               path: Path) -> None:
        """The policy, its spec's transition, its predictor and the tiling, checked to fit one another."""
        raise NotImplementedError

    def _adopt(self, policy: PixelActorCritic, spec: RolloutPolicySpec, predictor: Any, tile: int, path: Path) -> None:
        """Keep ``policy``, ``spec`` and ``path``; check ``tile`` and that ``predictor`` matches the spec's."""
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
            raise ValueError(f"tile: expected an integer >= 1, got {tile!r}")
        if (predictor is None) != (spec.predictor is None):
            raise CheckpointError(f"{path}: a policy trained {'with' if spec.predictor else 'without'} a predictor, "
                                  f"given {'none' if predictor is None else 'one'}")
        self.path, self.spec, self.policy = path, spec, policy
        self.device: torch.device = next(policy.parameters()).device

    def rollout_batch(self, *images: Tensor, actions: list[Tensor] | None = None) -> Tensor:
        """The rollout of one batch of the restorer's inputs (B, C, H, W), whole; ``actions`` gets each step's ids."""
        raise NotImplementedError

    @torch.no_grad()
    def rollout_images(self, items: Sequence[Sequence[Tensor]], *, batch_size: int = 1,
                       track: Callable[[Sequence[list[int]]], Iterable[list[int]]] | None = None
                       ) -> list[tuple[Tensor, Tensor]]:
        """:meth:`rollout_batch` over whole images of any sizes, batched by size, the policy in eval mode.

        Args:
            items: per image, the tensors of :meth:`rollout_batch` without the batch axis, (C, H, W).
            batch_size: images per rollout (only images of one size share one), >= 1.
            track: wraps the loop over the batches (lists of item indices; e.g. a progress bar).

        Returns:
            per item, in order: the output (C, H, W), float32 in [0, 1], on the restorer's device, and its
            actions (steps, 1, H, W) on the CPU (uint8 action ids).

        Raises:
            ValueError: ``batch_size`` < 1.
            ImageError: an item whose tensors are not (C, H, W) of one size.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
        groups: dict[tuple[int, int], list[int]] = {}
        for index, item in enumerate(items):
            sizes = {tuple(t.shape[-2:]) if torch.is_tensor(t) and t.dim() == 3 else None for t in item}
            if len(sizes) != 1 or None in sizes:
                raise ImageError(f"items[{index}]: expected tensors (C, H, W) of one height and width, got "
                                 f"{[tuple(t.shape) if torch.is_tensor(t) else type(t).__name__ for t in item]}")
            groups.setdefault(sizes.pop(), []).append(index)
        chunks = [indices[start:start + batch_size] for indices in groups.values()
                  for start in range(0, len(indices), batch_size)]
        outputs: list[tuple[Tensor, Tensor]] = [None] * len(items)  # type: ignore[list-item]
        was_training = self.policy.training
        self.policy.eval()
        try:
            for chunk in (track or iter)(chunks):
                taken: list[Tensor] = []
                batch = (torch.stack([items[i][k] for i in chunk]) for k in range(len(items[chunk[0]])))
                images = self.rollout_batch(*batch, actions=taken)
                steps = torch.stack([a.to("cpu", torch.uint8) for a in taken], 1)
                for row, i in enumerate(chunk):
                    outputs[i] = (images[row], steps[row])
        finally:
            self.policy.train(was_training)
        return outputs


@torch.no_grad()
def greedy_rollout(policy: PixelActorCritic, image: torch.Tensor, cond: torch.Tensor | None, *,
                   transition: LowLightTransition, alpha_mode: str = "mean",
                   exposure_target: float | torch.Tensor | None = None,
                   mean_limit: float | torch.Tensor | None = None,
                   chosen: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run a low-light policy deterministically for ``transition.steps`` steps of ``transition``.

    The alphas are :meth:`PixelActorCritic.action_values` (``alpha_mode``: the policy's expected action, or
    ``"argmax"``), chosen at the policy's working resolution and upsampled bilinearly; each step is
    :meth:`LowLightTransition.step <rlenhance.transitions.LowLightTransition.step>`, without rewards. On the
    CPU, a discrete float32 chain-of-convolutions policy on at most :data:`NATIVE_ROLLOUT_MAX_BLOCKS` blocks
    runs in one native kernel call (``RLENHANCE_NATIVE=0`` turns it off).

    Args:
        policy: the per-pixel actor-critic.
        image: low-light batch, float (B, 3, H, W) in [0, 1], RGB.
        cond: conditioning (B, cond_dim) or None (ignored when the policy has no cond planes).
        transition: the step (its alpha table, coupling, damping, ``steps``, ``observe_exposure_gap``).
        alpha_mode: "mean" or "argmax".
        exposure_target: the target E (float or (B,)) from which the ``exposure_gap`` input plane of a
            transition with ``observe_exposure_gap`` is computed (unused otherwise).
        mean_limit: the highest image mean a step may reach (float or (B,), :func:`rlenhance.ops.cap_mean`);
            None: no cap.
        chosen: a list that gets each step's alphas as the policy chose them, (B, C, h, w) at its
            working resolution, before coupling, damping and the cap (the rollout then runs in torch).

    Returns:
        ``(enhanced, maps)``: the enhanced batch and the list of (B, C, H, W) alpha maps applied (C = 3,
        or 1 broadcast over RGB).
    """
    if alpha_mode not in ALPHA_MODES:
        raise ValueError(f"alpha_mode: expected one of {ALPHA_MODES}, got {alpha_mode!r}")
    exposure_target = exposure_target if transition.observe_exposure_gap else None
    alpha_table = transition.table(image.device)
    fused = None if chosen is not None else _native_rollout(
        policy, image, cond, transition=transition, alpha_table=alpha_table, alpha_mode=alpha_mode,
        exposure_target=exposure_target, mean_limit=mean_limit)
    if fused is not None:
        return fused
    original, current, hidden, maps = image, image, None, []
    for _ in range(transition.steps):
        obs = {"image": current, "original": original}
        if exposure_target is not None:
            obs["exposure_gap"] = losses.exposure_gap(current, exposure_target)
        x, _ = build_policy_input(obs)
        out = policy(x, cond=cond if policy.cond_dim else None, hidden=hidden, full_resolution=False,
                     with_value=False)
        hidden = out.hidden
        alpha = policy.action_values(out, alpha_table, mode=alpha_mode)
        if chosen is not None:
            chosen.append(alpha)
        if policy.downscale > 1:
            alpha = policy.upsample(alpha, *current.shape[-2:])
        alpha, current = transition.step(current, alpha, mean_limit)
        maps.append(alpha)
    return current, maps


def working_rollout(policy: PixelActorCritic, image: torch.Tensor, cond: torch.Tensor | None, *, side: int,
                    transition: LowLightTransition, **kwargs: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """:func:`greedy_rollout` on the ``side`` square working image of ``image``, the maps stretched back over
    ``image`` and applied. Returns ``(enhanced, maps)``, the maps at the size of ``image``."""
    square = working_square(image, side)
    out, maps = greedy_rollout(policy, square, cond, transition=transition, **kwargs)
    if square is image:
        return out, maps
    maps = [F.interpolate(m, size=image.shape[-2:], mode="bilinear", align_corners=False) for m in maps]
    return transition.apply(image, maps), maps


#: The largest working map (blocks of the policy's downscale) the native rollout runs; above it torch is faster.
NATIVE_ROLLOUT_MAX_BLOCKS = 256


def _native_rollout(policy: PixelActorCritic, image: torch.Tensor, cond: torch.Tensor | None, *,
                    transition: LowLightTransition, alpha_table: torch.Tensor, alpha_mode: str,
                    exposure_target: float | torch.Tensor | None,
                    mean_limit: float | torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor]] | None:
    """:func:`greedy_rollout` with the native kernel (:func:`rlenhance.ops.native.lowlight_rollout_native`), or
    None where it does not apply (tracing, not a float32 CPU batch, not LE, a continuous policy or one that is
    not a chain of convolutions, a map too large, no kernels, or arguments the torch path refuses)."""
    if torch.jit.is_tracing() or image.device.type != "cpu" or image.dtype != torch.float32 or image.dim() != 4 \
            or image.shape[1] != 3 or image.numel() == 0 or transition.curve != LE.name or policy.n_actions is None \
            or transition.steps < 1 \
            or math.prod(policy.working_size(*image.shape[-2:])) > NATIVE_ROLLOUT_MAX_BLOCKS \
            or not native.available():
        return None
    batch = image.shape[0]
    cond = cond if policy.cond_dim else None
    values = [None if v is None else torch.as_tensor(v, dtype=torch.float32) for v in (exposure_target, mean_limit)]
    tensors = [alpha_table, *(v for v in (cond, *values) if v is not None)]
    refused = (  # each raises on the torch path, which says what is wrong
        policy.in_channels != 6 + (exposure_target is not None)
        or (policy.cond_dim and (cond is None or tuple(cond.shape) != (batch, policy.cond_dim)))
        or alpha_table.dim() != 1 or len(alpha_table) != policy.n_actions
        or any(v is not None and (v.shape not in ((), (batch,)) or bool(v.isnan().any())) for v in values))
    if refused or any(t.device.type != "cpu" for t in tensors) \
            or any(p.device.type != "cpu" or p.dtype != torch.float32 for p in policy.parameters()):
        return None
    layers = policy.action_layers(cond)
    if layers is None:
        return None
    target, limit = (None if v is None else v.expand(batch) for v in values)
    final, maps = native.lowlight_rollout_native(
        image, [(conv.weight, conv.bias, conv.dilation[0], relu, film) for conv, relu, film in layers],
        steps=transition.steps, scale=policy.downscale, table=alpha_table, cond=cond, target=target, limit=limit,
        damping=transition.damping, coupling=transition.channel_coupling, argmax=alpha_mode == "argmax")
    return final, list(maps.unbind(0))
