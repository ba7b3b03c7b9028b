"""An RL completion policy (``experiments.completion_train``) as a :class:`rlenhance.restore.Restorer`,
:class:`PolicyCompleter`, no env or agent needed.

The policy fills the hole by per-pixel actions over ``steps`` greedy steps of its checkpoint's
:class:`rlenhance.transitions.CompletionTransition`, started from the diffusion fill; only hole pixels change:

=====  ==============  ===========================================================
code   action          the pixel's new value
=====  ==============  ===========================================================
0      ``keep``        its value
1      ``diffuse``     the mean of its 4 neighbours inside the image
2-5    ``copy_*``      its left / right / upper / lower neighbour (border replicated)
6      ``gaussian``    5x5 Gaussian blur, sigma 1.5
7      ``median``      5x5 median
8      ``predict``     the predictor's pixel (a supervised completion model; policies trained with one)
last   ``brighter``,   its value + / - the transition's ``shift`` in every channel, clipped to [0, 1]
two    ``darker``      (policies trained with ``task.shift`` > 0)
=====  ==============  ===========================================================
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rlenhance.checkpoint import SPEC_KEY, RolloutPolicySpec, build_model, load_checkpoint
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.io.arrays import as_result, result_dtype, unit_window
from rlenhance.models.policy import PixelActorCritic, act, acting_radius
from rlenhance.ops.fill import prefill_patches
from rlenhance.ops.tiling import on_grid, paste, tiled
from rlenhance.predictors import CompletionPredictor
from rlenhance.restore import as_hwc_image, as_mask
from rlenhance.rollouts import PolicyRollouts
from rlenhance.runtime import flush_denormals, select_device
from rlenhance.trace import ActionTrace
from rlenhance.transitions import CompletionTransition

__all__ = ["PolicyCompleter"]

#: The env whose transition a completion policy was trained in (its spec's ``env_id``).
_COMPLETION_ENV_ID = "rlenhance/Completion-v0"
#: How far one fill action reads around its pixel (the 5 x 5 Gaussian and median).
_ACTION_RADIUS = 2


class PolicyCompleter(PolicyRollouts):
    """A completion policy of ``experiments.completion_train`` as a :class:`~rlenhance.restore.Restorer`.

    It runs the checkpoint's ``steps`` greedy steps of the fill actions (module table), with its predictor
    (:func:`rlenhance.predictors.find_predictor`) when trained with one. Large images run in tiles whose
    margin covers what the rollout reads (``steps`` x (:func:`~rlenhance.models.policy.acting_radius` + the
    actions' radius), plus the predictor's); a window without a hole pixel is its input. The predictor sees
    each window, so on an image larger than a tile its output may differ from a whole-image pass.

    Args:
        checkpoint: a checkpoint of ``experiments.completion_train``.
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        tile: side of the tiles' core in pixels (rounded up to a multiple of ``downscale``).
        ensemble: the self-ensemble of its predictor (1: none; a policy without one takes 1 only).

    Attributes:
        policy: the actor, in eval mode; spec: its spec; predictor: a
        :class:`~rlenhance.predictors.CompletionPredictor` or None; channels: 3 (RGB); tile, overlap: the
        tiling used (None: whole images).

    Raises:
        CheckpointError: not a completion policy, or its predictor is found nowhere or is not an RGB
            completion model.
        ValueError: a bad ``device``, ``tile`` or ``ensemble``.
    """

    channels = 3

    def __init__(self, checkpoint: str | os.PathLike[str], *, device: str | torch.device = "auto", tile: int = 512,
                 ensemble: int = 1):
        flush_denormals()
        device = select_device(device)
        path = Path(checkpoint)
        ckpt = load_checkpoint(path, map_location="cpu", spec=RolloutPolicySpec)
        spec: RolloutPolicySpec = ckpt["extra"][SPEC_KEY]
        if spec.task != "completion" or spec.env_id != _COMPLETION_ENV_ID:
            raise CheckpointError(f"checkpoint {path}: a {spec.task} policy of {spec.env_id}; a completion "
                                  f"policy of {_COMPLETION_ENV_ID} is needed (python -m experiments.completion_train)")
        predictor = CompletionPredictor.for_policy(spec, checkpoint=path, device=device, ensemble=ensemble)
        self._setup(build_model(ckpt, {"PixelActorCritic": PixelActorCritic}).to(device).eval(), spec, predictor, tile,
                    path)

    def _setup(self, policy: PixelActorCritic, spec: RolloutPolicySpec, predictor: CompletionPredictor | None,
               tile: int, path: Path) -> None:
        """The policy, its spec's transition, its predictor and the tiling, checked to fit one another."""
        self._adopt(policy, spec, predictor, tile, path)
        self.predictor = predictor
        #: The step the policy runs in (the checkpoint's :class:`~rlenhance.transitions.CompletionTransition`).
        self.transition: CompletionTransition = spec.transition
        n_actions = len(self.transition.actions)
        if policy.n_actions != n_actions or policy.cond_dim or policy.in_channels != self.channels + 1:
            raise CheckpointError(f"{path}: a PixelActorCritic({policy.arch()['kwargs']}) is not a policy over the "
                                  f"{n_actions} fill actions on the image and its mask (4 planes)")
        self.steps: int = self.transition.steps
        self.block_actions: bool = spec.block_actions and self.policy.downscale > 1
        radius = acting_radius(self.policy)
        if radius is not None:
            radius = self.steps * (radius + _ACTION_RADIUS) + (self.predictor.overlap if self.predictor else 0)
        multiple = math.lcm(self.policy.downscale, self.predictor.stride if self.predictor else 1)
        self.tile, self.overlap = on_grid(tile, radius, multiple)

    @property
    def takes_mask(self) -> bool:
        """Completion needs the hole mask."""
        return True

    def restore(self, image: np.ndarray, *, mask: np.ndarray | None = None,
                dtype: type | np.dtype = np.float32) -> np.ndarray:
        """Complete one image.

        Args:
            image: array (H, W, C) with C in {1, 3} (RGB; gray is replicated) or (H, W): float in
                [0, 1], or uint8 / uint16 samples. The pixels in the hole are not read.
            mask: (H, W) or (H, W, 1), bool or numbers, values above 0.5 (True) mark missing pixels.
            dtype: of the result, ``np.float32`` or ``np.uint8``.

        Returns:
            (H, W, 3) of ``dtype``, float32 in [0, 1]: the pixels outside the hole are the input's.

        Raises:
            ImageError: a bad image or mask, a mask missing or of another size.
            ValueError: another ``dtype``.
        """
        out_dtype = result_dtype(dtype)
        x, hole = self._inputs(image, mask)
        out = self._tiled(x, hole, lambda occluded, start, m, prediction: as_result(
            self.rollout(occluded, start, m, prediction), out_dtype), known=lambda image: as_result(image, out_dtype))
        return np.ascontiguousarray(out[0].permute(1, 2, 0).cpu().numpy())

    def restore_traced(self, image: np.ndarray, *, mask: np.ndarray | None = None) -> tuple[np.ndarray, ActionTrace]:
        """:meth:`restore` and the fill action of every hole pixel at every step (an ActionTrace)."""
        x, hole = self._inputs(image, mask)

        def traced(occluded: Tensor, start: Tensor, m: Tensor, prediction: Tensor | None) -> Tensor:
            actions: list[Tensor] = []
            image = self.rollout(occluded, start, m, prediction, actions=actions)
            return torch.cat([image, *(a.to(image.dtype) for a in actions)], dim=1)

        both = self._tiled(x, hole, traced)
        out = np.ascontiguousarray(both[0, :self.channels].permute(1, 2, 0).cpu().numpy(), dtype=np.float32)
        maps = both[0, self.channels:, None].round().cpu().numpy().astype(np.int16)  # (steps, 1, H, W)
        return out, ActionTrace(self.transition.actions, maps, region=hole[0, 0].numpy())

    def _inputs(self, image: np.ndarray, mask: np.ndarray | None) -> tuple[Tensor, Tensor]:
        """The image as a (1, 3, H, W) view of its samples (or floats) and the hole, bool (1, 1, H, W)."""
        hwc = as_hwc_image(image, samples=True)
        if mask is None:
            raise ImageError(f"mask: required by {self.path} (a completion policy); give the hole mask "
                             "(1 = missing pixel), e.g. from a mask file or rlenhance.restore.hole_mask")
        hole = torch.from_numpy(as_mask(mask, size=hwc.shape[:2]))[None, None]
        return torch.from_numpy(hwc).permute(2, 0, 1)[None].expand(-1, self.channels, -1, -1), hole

    def _tiled(self, x: Tensor, hole: Tensor, rollout: Callable[[Tensor, Tensor, Tensor, Tensor | None], Tensor], *,
               known: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """``rollout(occluded, start, mask, prediction)`` over float32 tiles of ``x`` on :attr:`device`;
        ``known(window)`` instead for a window without a hole pixel (None: the rollout there too)."""
        patches = prefill_patches(x, hole, "diffusion", convert=unit_window, smooth_iters=self.transition.smooth_iters)

        @torch.inference_mode()
        def window_fn(window: Tensor, window_hole: Tensor, *, rows: Tensor, cols: Tensor) -> Tensor:
            image = unit_window(window).to(self.device)
            if known is not None and not bool(window_hole.any()):
                return known(image)
            m = window_hole.to(self.device, torch.float32)
            occluded = image * (1.0 - m)
            start = paste(occluded, patches, rows, cols)
            prediction = None if self.predictor is None else self.predictor(occluded, m).clamp(0.0, 1.0)
            return rollout(occluded, start, m, prediction)

        if self.overlap is None:
            return window_fn(x, hole, rows=torch.arange(x.shape[-2]), cols=torch.arange(x.shape[-1]))
        return tiled(window_fn, x, hole, tile=self.tile, overlap=self.overlap, positions=True)

    @torch.inference_mode()
    def restore_tensor(self, occluded: Tensor, mask: Tensor, *, actions: list[Tensor] | None = None) -> Tensor:
        """The greedy rollout on a batch, whole: ``occluded`` float (B, 3, H, W) in [0, 1], ``mask``
        (B, 1, H, W), 1 = missing -> float32 (B, 3, H, W) in [0, 1] on :attr:`device`, as the env's rollout.
        ``actions``: a list that gets each step's action ids, int64 (B, 1, H, W)."""
        occluded = occluded.to(self.device, torch.float32)
        mask = (mask.to(self.device, torch.float32) > 0.5).float()
        prediction = None if self.predictor is None else self.predictor(occluded, mask).clamp(0.0, 1.0)
        return self.rollout(occluded, self.transition.start(occluded, mask), mask, prediction, actions=actions)

    def rollout_batch(self, occluded: Tensor, mask: Tensor, *, actions: list[Tensor] | None = None) -> Tensor:
        """:meth:`restore_tensor` (:meth:`~rlenhance.rollouts.PolicyRollouts.rollout_images` runs it)."""
        return self.restore_tensor(occluded, mask, actions=actions)

    def rollout(self, occluded: Tensor, start: Tensor, mask: Tensor, prediction: Tensor | None = None, *,
                actions: list[Tensor] | None = None) -> Tensor:
        """The greedy rollout from ``start`` (float (B, 3, H, W)) over the hole ``mask`` (float (B, 1, H, W)),
        with the predictor's ``prediction``: float32 (B, 3, H, W) in [0, 1]. ``actions``: as :meth:`restore_tensor`."""
        image = start
        hidden = None
        for _ in range(self.steps):
            chosen, hidden = act(self.policy, {"image": image, "mask": mask}, hidden, block_actions=self.block_actions)
            if actions is not None:
                actions.append(chosen)
            image = self.transition.step(image, chosen, mask, prediction)
        return image.clamp(0.0, 1.0)
