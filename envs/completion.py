"""Image completion (inpainting) as a pixel-wise MDP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from envs.base import PixelEnv, PixelTask, PixelVectorEnv
from rlenhance import metrics
from rlenhance.data import RowDraws, random_occlusion
from rlenhance.ops import FilterAction, gaussian_blur2d, median_blur2d
from rlenhance.ops.select import group_pixels
from rlenhance.ops.sparse import filters_at
from rlenhance.transitions import CompletionTransition

REWARDS = ("mse", "ssim")
#: The filters of actions 6 and 7, as :meth:`CompletionTask.candidates` applies them.
GAUSSIAN_FILL = FilterAction("gaussian", gaussian_blur2d, (("ksize", 5), ("sigma", 1.5)))
MEDIAN_FILL = FilterAction("median", median_blur2d, (("ksize", 5),))


class CompletionTask(PixelTask):
    """Batched core of :class:`CompletionEnv`; see its docstring for the MDP."""

    def __init__(
        self,
        num_envs: int,
        *,
        data: Any = None,
        crop: int | tuple[int, int] | None = 224,
        max_episode_steps: int = 5,
        occlusion: str = "box",
        predictor: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        smooth_iters: int = 20,
        reward: str = "mse",
        reward_scale: float = 255.0,
        **common: Any,
    ):
        super().__init__(num_envs, data=data, crop=crop, max_episode_steps=max_episode_steps,
                         data_kind="occluded" if data is not None else "clean", **common)
        if reward not in REWARDS:
            raise ValueError(f"reward: expected one of {REWARDS}, got {reward!r}")
        self.occlusion = occlusion
        self.predictor = predictor
        #: The step (the fill actions, the predictor's pixel, the pre-fill), as checkpoints record it.
        self.transition = CompletionTransition(predict=predictor is not None, smooth_iters=int(smooth_iters),
                                               steps=self.max_episode_steps)
        self.smooth_iters = self.transition.smooth_iters
        self.reward = reward
        self.reward_scale = float(reward_scale)
        self.actions = self.transition.actions
        self.n_actions = len(self.actions)
        h, w = self.image_size
        self.single_observation_space = spaces.Dict({
            "image": spaces.Box(0.0, 1.0, (3, h, w), np.float32),
            "mask": spaces.Box(0.0, 1.0, (1, h, w), np.float32),
        })
        self.single_action_space = spaces.MultiDiscrete(np.full((1, h, w), self.n_actions))

    def _start(self, rng: np.random.Generator, options: dict[str, Any] | None) -> None:
        if options:
            channels = {key: space.shape[0] for key, space in self.single_observation_space.spaces.items()}
            batch = self.options_batch(options, {"occluded": channels["image"], "original": channels["image"],
                                                 "mask": channels["mask"]},
                                       ("occluded", "original", "mask"), masks=("mask",))
        else:
            batch = self.draw_start()
        self.original = batch["original"]
        self.mask = (batch["mask"] > 0.5).float()
        #: flat indices b * H * W + y * W + x of the hole's pixels, the only ones a step changes
        self._hole = torch.nonzero(self.mask.reshape(-1) > 0).squeeze(1)
        self.image = self.transition.start(batch["occluded"], self.mask)
        self.prediction = None
        if self.predictor is not None:
            with torch.no_grad():
                self.prediction = self.predictor(batch["occluded"], self.mask).clamp(0.0, 1.0)

    def _draw(self, rows: RowDraws) -> dict[str, Any]:
        batch = self.draw_batch(rows)
        if "occluded" not in batch:  # clean photos: cut holes (each row's from its numbers)
            holes = random_occlusion(batch["high"], generator=rows.stream("holes"), kind=self.occlusion)
            batch["occluded"], batch["mask"] = holes
            batch["original"] = batch["high"]
        return batch

    def observe(self) -> dict[str, torch.Tensor]:
        return {"image": self.image, "mask": self.mask}

    def candidates(self, image: torch.Tensor) -> torch.Tensor:
        """All per-pixel action results for a batch: (B, n_actions, 3, H, W), order ``self.actions``."""
        return self.transition.candidates(image, self.prediction)

    def _transition(self, actions: torch.Tensor) -> torch.Tensor:
        # Only hole pixels change, each action computed at the hole pixels that chose it.
        previous = self.image
        b, c, h, w = previous.shape
        order, counts = group_pixels(actions, self.n_actions, pixels=self._hole, validate=False)
        index = self._channel_index(order)  # (C, n): flat index of every channel of the hole pixels
        before = previous.reshape(-1).index_select(0, index.view(-1)).view(c, -1)
        after = before.clone()
        bounds = [0]
        for count in counts:
            bounds.append(bounds[-1] + count)
        slices = {name: slice(bounds[k], bounds[k + 1]) for k, name in enumerate(self.actions) if counts[k]}
        filters = [(name, action) for name, action in (("gaussian", GAUSSIAN_FILL), ("median", MEDIAN_FILL))
                   if name in slices]
        for (name, _), values in zip(filters, filters_at(previous, [(order[slices[name]], action)
                                                                    for name, action in filters])):
            after[:, slices[name]] = values.t()
        if "predict" in slices:
            after[:, slices["predict"]] = self.prediction.reshape(-1).index_select(
                0, index[:, slices["predict"]].reshape(-1)).view(c, -1)
        self._neighbour_fill(previous, order, index, slices, after)
        self.image = previous.clone()
        self.image.view(-1).index_copy_(0, index.view(-1), after.view(-1))
        if self.reward == "ssim":
            gain = (metrics.ssim(self.image, self.original, return_map=True)[1]
                    - metrics.ssim(previous, self.original, return_map=True)[1])
            return gain * self.mask
        # the channel-mean squared error's decrease x reward_scale, at the hole pixels (0 elsewhere)
        original = self.original.reshape(-1).index_select(0, index.view(-1)).view(c, -1)
        error_before = (original - before).square_().mean(dim=0)
        error_after = (original - after).square_().mean(dim=0)
        reward = torch.zeros((b, 1, h, w), dtype=previous.dtype, device=previous.device)
        reward.view(-1).index_copy_(0, order, error_before.sub_(error_after).mul_(self.reward_scale))
        return reward

    def _channel_index(self, pixels: torch.Tensor) -> torch.Tensor:
        """Flat indices into a (B, C, H, W) image of every channel of ``pixels``, shape (C, n)."""
        b, c, h, w = self.image.shape
        images = torch.div(pixels, h * w, rounding_mode="floor")
        base = pixels + images * ((c - 1) * h * w)
        return base + torch.arange(c, device=pixels.device).view(-1, 1) * (h * w)

    def _neighbour_fill(self, image: torch.Tensor, pixels: torch.Tensor, index: torch.Tensor,
                        slices: dict[str, slice], out: torch.Tensor) -> None:
        """The copy and diffuse actions at their pixels, as :meth:`candidates` has them, into ``out``."""
        moves = [name for name in ("diffuse", "copy_left", "copy_right", "copy_up", "copy_down") if name in slices]
        if not moves:
            return
        _, c, h, w = image.shape
        flat = image.reshape(-1)
        # the 4 neighbours, replicated at the border, and whether they are inside the image
        span = slice(min(slices[name].start for name in moves), max(slices[name].stop for name in moves))
        x = torch.remainder(pixels[span], w)
        y = torch.remainder(torch.div(pixels[span], w, rounding_mode="floor"), h)
        steps = {"copy_up": (-w, y > 0), "copy_left": (-1, x > 0), "copy_right": (1, x < w - 1),
                 "copy_down": (w, y < h - 1)}
        for name in moves:
            part = slices[name]
            local = slice(part.start - span.start, part.stop - span.start)
            if name != "diffuse":
                step, inside = steps[name]
                out[:, part] = flat.index_select(0, (index[:, part] + step * inside[local]).view(-1)).view(c, -1)
                continue
            total = torch.zeros_like(out[:, part])
            count = torch.zeros_like(out[0, part])
            for step, inside in steps.values():  # raster order: up, left, right, down
                inside = inside[local]
                value = flat.index_select(0, (index[:, part] + step * inside).view(-1)).view(c, -1)
                total.add_(value.mul_(inside))
                count.add_(inside)
            out[:, part] = total.div_(count.clamp_min_(1.0))


class CompletionEnv(PixelEnv):
    """Image completion by per-pixel fill actions inside the hole.

    ## Description
    The state is an RGB image whose missing region (``mask`` = 1) has been pre-filled; every step
    each pixel inside the mask picks a fill action. Pixels outside the mask never change.

    ## Action Space
    ``MultiDiscrete(np.full((1, H, W), n))``, one action per pixel (ignored outside the mask):

    | index | action                                                      |
    |-------|-------------------------------------------------------------|
    | 0     | keep                                                        |
    | 1     | diffuse: mean of the 4 neighbours (those inside the image)  |
    | 2..5  | copy the left / right / up / down neighbour                 |
    | 6     | Gaussian 5x5, sigma 1.5                                     |
    | 7     | median 5x5                                                  |
    | 8     | take the predictor's output (only when ``predictor`` given) |

    ## Observation Space
    ``Dict`` with ``"image"``: ``Box(0, 1, (3, H, W), float32)`` RGB and ``"mask"``:
    ``Box(0, 1, (1, H, W), float32)`` with 1 on missing pixels.

    ## Rewards
    ``reward="mse"``: per pixel inside the mask, the decrease of squared error to the original
    (channel mean) x ``reward_scale``; ``"ssim"``: the SSIM-map gain inside the mask. Zero outside
    the mask. The scalar reward is the mean of ``info["reward_map"]`` over the whole image.

    ## Starting State
    An occluded image from ``data`` (a folder in the ``OccludedPairs`` layout) or, with ``data=None``, an
    embedded scikit-image photo with random ``occlusion`` ("box", "stroke" or "mixed") holes. The hole is
    pre-filled by :func:`diffusion_fill` (onion peel plus ``smooth_iters`` diffusion rounds).
    ``predictor(occluded, mask)``, when given, is run once per episode and offered as action 8. Or
    ``reset(options={"occluded": ..., "original": ..., "mask": ...})`` (all three required; ``"occluded"`` and
    ``"original"`` (3, H, W) RGB, ``"mask"`` (1, H, W), 1 on missing pixels, bool accepted): numpy arrays or
    torch tensors, channels first ((B, C, H, W) for the vector env), of the env's (H, W), float in [0, 1] or
    uint8 / uint16; others raise ``rlenhance.errors.ImageError`` (a ``ValueError``).

    ## Episode End
    Truncation after 5 steps; never terminates. Gymnasium's ``TimeLimit`` truncates the one-image env
    (``gym.make(id, max_episode_steps=N)``); the vector env (``envs.make_vec(id, max_episode_steps=N)``)
    truncates its B episodes itself.

    ## Arguments
    Those of :class:`envs.base.PixelTask` (``split``, ``split_seed``, ``crop`` (224: the bedroom images'), ``device``,
    ``validate_actions``), ``data``, ``occlusion``, ``predictor``, ``smooth_iters``, ``reward``,
    ``reward_scale``; ``max_episode_steps`` for the vector env only. ``render_mode``: None or
    ``"rgb_array"`` (``render()`` returns the current image as uint8 (H, W, 3), RGB).

    ## Version History
    * v0: initial version, extended under the same id: default crop 224 (was 64); the one-image env leaves the
      length to ``TimeLimit``; ``render_mode="rgb_array"``; ``reset(options=...)`` checks its images
      (``ImageError``) and scales uint8 / uint16; per-row episode draws (``rlenhance.data.RowDraws``).
    """

    task_class = CompletionTask


class CompletionVectorEnv(PixelVectorEnv):
    """Batched torch twin of :class:`CompletionEnv`.

    ``max_episode_steps`` (default 5) is the vector env's own: it truncates the B episodes itself.
    """

    task_class = CompletionTask
