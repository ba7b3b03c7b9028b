"""An RL completion policy (``experiments.completion_train``) run in the library, no env or agent:
:class:`PolicyCompleter`, a :class:`rlenhance.restore.Restorer` (``rlenhance complete --model a3c``).

The policy fills the hole by per-pixel actions over ``steps`` greedy steps of its checkpoint's
transition (:class:`rlenhance.transitions.CompletionTransition`, ``rlenhance/Completion-v0``'s step),
started from the diffusion fill of the hole; only hole pixels change:

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

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rlenhance.checkpoint import SPEC_KEY, RolloutPolicySpec, build_model, load_checkpoint
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.io.arrays import as_result, result_dtype
from rlenhance.models.policy import PixelActorCritic, blocks_to_pixels, build_policy_input
from rlenhance.predictors import check_predictor_ensemble, find_predictor
from rlenhance.restore import SupervisedRestorer, as_hwc_image, as_mask
from rlenhance.runtime import flush_denormals, select_device
from rlenhance.trace import ActionTrace
from rlenhance.transitions import CompletionTransition

__all__ = ["PolicyCompleter"]

#: The env whose transition a completion policy was trained in (its spec's ``env_id``).
_COMPLETION_ENV_ID = "rlenhance/Completion-v0"


class PolicyCompleter:
    """A completion policy of ``experiments.completion_train`` as a :class:`~rlenhance.restore.Restorer`:
    the checkpoint's ``steps`` greedy steps of the fill actions (module table) on the whole image,
    actions per ``downscale`` block when trained with ``block_actions``. A policy trained with a
    predictor (``completion_train --predictor``) runs it once, on the occluded image, found as a
    denoising policy's is (:func:`rlenhance.denoisers.find_predictor`).

    Args:
        checkpoint: a checkpoint of ``experiments.completion_train``.
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        ensemble: the self-ensemble of its predictor (1: none; a policy without one takes 1 only).

    Attributes:
        policy: the actor, in eval mode; spec: its spec; predictor: the supervised completion model
        (a :class:`~rlenhance.restore.SupervisedRestorer`) or None; channels: 3 (RGB).

    Raises:
        CheckpointError: not a completion policy (the message says what it is), or its predictor is
            found nowhere or is not an RGB completion model.
        ValueError: a bad ``device`` or ``ensemble``.
    """

    channels = 3

    def __init__(self, checkpoint: str | os.PathLike[str], *, device: str | torch.device = "auto", ensemble: int = 1):
        flush_denormals()
        self.device = select_device(device)
        self.path = Path(checkpoint)
        ckpt = load_checkpoint(self.path, map_location="cpu", spec=RolloutPolicySpec)
        spec: RolloutPolicySpec = ckpt["extra"][SPEC_KEY]
        if spec.task != "completion" or spec.env_id != _COMPLETION_ENV_ID:
            raise CheckpointError(f"checkpoint {self.path}: a {spec.task} policy of {spec.env_id}; a completion "
                                  f"policy of {_COMPLETION_ENV_ID} is needed (python -m experiments.completion_train)")
        check_predictor_ensemble(ensemble, spec.predictor, owner="a policy", this=str(self.path),
                                 trainer="completion_train")
        self.spec = spec
        self.policy = build_model(ckpt, {"PixelActorCritic": PixelActorCritic}).to(self.device).eval()
        self.predictor: SupervisedRestorer | None = None
        if spec.predictor is not None:
            found = find_predictor(spec.predictor, self.path)
            self.predictor = SupervisedRestorer(found, device=self.device, task="completion", ensemble=ensemble)
            if self.predictor.channels != self.channels:
                raise CheckpointError(f"predictor {found}: a {self.predictor.channels}-channel model; completion "
                                      "is RGB")
        #: The step the policy runs in (the checkpoint's :class:`~rlenhance.transitions.CompletionTransition`).
        self.transition: CompletionTransition = spec.transition
        n_actions = len(self.transition.actions)
        if self.policy.n_actions != n_actions or self.policy.cond_dim or self.policy.in_channels != self.channels + 1:
            raise CheckpointError(f"checkpoint {self.path}: a PixelActorCritic({ckpt['arch']['kwargs']}) is not a "
                                  f"policy over the {n_actions} fill actions on the image and its mask (4 planes)")
        self.steps: int = self.transition.steps
        self.block_actions: bool = spec.block_actions and self.policy.downscale > 1

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
            dtype: of the result, ``np.float32`` or ``np.uint8`` (its levels, :func:`rlenhance.io.float_to_levels`).

        Returns:
            (H, W, 3) of ``dtype``, float32 in [0, 1]: the pixels outside the hole are the input's.

        Raises:
            ImageError: a bad image or mask, a mask missing or of another size.
            ValueError: another ``dtype``.
        """
        out_dtype = result_dtype(dtype)
        return np.ascontiguousarray(as_result(self._restore(image, mask), out_dtype))

    def restore_traced(self, image: np.ndarray, *, mask: np.ndarray | None = None) -> tuple[np.ndarray, ActionTrace]:
        """:meth:`restore` and what the policy did (:class:`~rlenhance.trace.ActionTrace`): the fill
        action of every pixel at every step, its region the hole (the only pixels the actions change)."""
        actions: list[Tensor] = []
        out = self._restore(image, mask, actions)
        hole = as_mask(mask, size=out.shape[:2])
        maps = torch.cat(actions, dim=1)[0, :, None].cpu().numpy().astype(np.int16)  # (steps, 1, H, W)
        return out, ActionTrace(self.transition.actions, maps, region=hole)

    def _restore(self, image: np.ndarray, mask: np.ndarray | None, actions: list[Tensor] | None = None) -> np.ndarray:
        hwc = as_hwc_image(image)
        if mask is None:
            raise ImageError(f"mask: required by {self.path} (a completion policy); give the hole mask "
                             "(1 = missing pixel), e.g. from a mask file or rlenhance.restore.hole_mask")
        hole = torch.from_numpy(as_mask(mask, size=hwc.shape[:2]).astype(np.float32))[None, None]
        x = torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)))[None].expand(-1, self.channels, -1, -1)
        out = self.restore_tensor(x * (1.0 - hole), hole, actions=actions)
        return np.ascontiguousarray(out[0].permute(1, 2, 0).cpu().numpy(), dtype=np.float32)

    @torch.inference_mode()
    def restore_tensor(self, occluded: Tensor, mask: Tensor, *, actions: list[Tensor] | None = None) -> Tensor:
        """The greedy rollout on a batch: ``occluded`` float (B, 3, H, W) in [0, 1], ``mask`` (B, 1, H, W)
        with 1 = missing pixel -> float32 (B, 3, H, W) in [0, 1] on :attr:`device`. ``actions``: a list
        that gets each step's action ids, int64 (B, 1, H, W)."""
        occluded = occluded.to(self.device, torch.float32)
        mask = (mask.to(self.device, torch.float32) > 0.5).float()
        image = self.transition.start(occluded, mask)
        prediction = None if self.predictor is None else self.predictor.restore_tensor(occluded, mask).clamp(0.0, 1.0)
        size = image.shape[-2:]
        hidden = None
        for _ in range(self.steps):
            out = self.policy(build_policy_input({"image": image, "mask": mask})[0], None, hidden,
                              full_resolution=not self.block_actions)
            chosen = self.policy.predict(out)
            if self.block_actions:
                chosen = blocks_to_pixels(chosen, self.policy.downscale, size)
            if actions is not None:
                actions.append(chosen)
            image = self.transition.step(image, chosen, mask, prediction)
            hidden = out.hidden
        return image.clamp(0.0, 1.0)
