"""A policy's env stepped by hand with the policy's greedy actions: what the library's one inference path of
each policy (rlenhance.denoisers.PolicyDenoiser, rlenhance.completion.PolicyCompleter, rlenhance.Enhancer)
must equal, the env's transition being the definition of the step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.checkpoints import make_for_checkpoint
from rlenhance.checkpoint import SPEC_KEY, build_model, load_checkpoint
from rlenhance.models.policy import PixelActorCritic, act


def stepped(policy: PixelActorCritic, venv: Any, options: dict[str, Any], *, steps: int,
            block_actions: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``venv.reset(options=options)`` (images of the env's batch and size), then ``steps`` greedy steps of
    ``policy`` in eval mode (:func:`rlenhance.models.policy.act`, the ConvGRU state carried, one action per
    ``downscale`` block with ``block_actions``): the env's image after the last step (not clamped) and the
    actions of every step, (B, steps, ...)."""
    obs, _ = venv.reset(seed=0, options=options)
    hidden, taken = None, []
    policy.eval()
    with torch.no_grad():
        for _ in range(steps):
            actions, hidden = act(policy, obs, hidden, block_actions=block_actions and policy.downscale > 1)
            taken.append(actions)
            obs, *_ = venv.step(actions)
    return venv.task.image, torch.stack(taken, 1)


def env_restore(path: Path, image: np.ndarray, mask: np.ndarray | None = None, **overrides: Any) -> np.ndarray:
    """The image (H, W, C) float32 restored by the env of the denoising or completion policy at ``path``
    (:func:`envs.checkpoints.make_for_checkpoint`, its predictor the one its spec names unless
    ``overrides`` give one) stepped by hand, clamped to [0, 1]: a gray denoising policy restores R, G and B
    separately, a colour one a gray image replicated; completion reads the hole ``mask`` (H, W), True =
    missing."""
    ckpt = load_checkpoint(path)
    spec = ckpt["extra"][SPEC_KEY]
    policy = build_model(ckpt, {"PixelActorCritic": PixelActorCritic})
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    planes = x[:, None] if spec.channels == 1 else x.expand(spec.channels, -1, -1)[None]
    size = tuple(x.shape[-2:])
    data = [{"high": torch.zeros(planes.shape[1], *size), "name": "unused"}]
    venv = make_for_checkpoint(path, num_envs=planes.shape[0], crop=size, data=data, **overrides)
    if spec.task == "denoise":
        options = {"clean": planes, "noisy": planes}
    else:
        hole = torch.from_numpy(np.asarray(mask, np.float32))[None, None].expand(planes.shape[0], -1, -1, -1)
        options = {"occluded": planes, "original": planes, "mask": hole}
    out, _ = stepped(policy, venv, options, steps=spec.transition.steps, block_actions=spec.block_actions)
    out = out.clamp(0.0, 1.0)
    out = out.reshape(1, -1, *size) if spec.channels == 1 else out
    return np.ascontiguousarray(out[0].permute(1, 2, 0).numpy())
