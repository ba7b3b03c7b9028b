"""Greedy rollouts of a pixel policy on many whole images: the one inference path of the denoising and
completion policies, which users run (``restore``: :class:`rlenhance.denoisers.PolicyDenoiser`,
:class:`rlenhance.completion.PolicyCompleter`) and the trainers evaluate with (``from_policy``, then
:meth:`PolicyRollouts.rollout_images`), the policy's transition stepping the images as its env steps them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from rlenhance.checkpoint import RolloutPolicySpec
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.models.policy import PixelActorCritic

__all__ = ["PolicyRollouts"]

_Restorer = TypeVar("_Restorer", bound="PolicyRollouts")


class PolicyRollouts:
    """What the restorers of the denoising and completion policies share: greedy rollouts of a batch of
    images of one size (:meth:`rollout_batch`) and of many images of any sizes (:meth:`rollout_images`)."""

    policy: PixelActorCritic

    @classmethod
    def from_policy(cls: type[_Restorer], policy: PixelActorCritic, spec: RolloutPolicySpec, *, predictor: Any = None,
                    tile: int = 512) -> _Restorer:
        """The restorer of a policy in memory, on its device: a trainer's, evaluated on the path users run
        (:meth:`rollout_images`), with the run's spec and the predictor its env holds (None: none).

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
        """Keep ``policy`` (its device the restorer's), ``spec`` and ``path``, checking ``tile`` and that
        ``predictor`` is given exactly when the policy was trained with one."""
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
            raise ValueError(f"tile: expected an integer >= 1, got {tile!r}")
        if (predictor is None) != (spec.predictor is None):
            raise CheckpointError(f"{path}: a policy trained {'with' if spec.predictor else 'without'} a predictor, "
                                  f"given {'none' if predictor is None else 'one'}")
        self.path, self.spec, self.policy = path, spec, policy
        self.device: torch.device = next(policy.parameters()).device

    def rollout_batch(self, *images: Tensor, actions: list[Tensor] | None = None) -> Tensor:
        """The rollout of one batch of images (B, C, H, W) (the restorer's inputs: noisy images, or occluded
        images and their masks), whole; ``actions`` gets each step's action ids (B, 1, H, W)."""
        raise NotImplementedError

    @torch.no_grad()
    def rollout_images(self, items: Sequence[Sequence[Tensor]], *, batch_size: int = 1,
                       track: Callable[[Sequence[list[int]]], Iterable[list[int]]] | None = None
                       ) -> list[tuple[Tensor, Tensor]]:
        """:meth:`rollout_batch` over whole images of any sizes, in batches of images of one size (BSD68
        mixes 321 x 481 and 481 x 321), the policy in eval mode (its mode is restored after).

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
