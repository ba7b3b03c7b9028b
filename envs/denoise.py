"""Gaussian denoising as a pixel-wise MDP (PixelRL)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces

from envs.base import PixelEnv, PixelTask, PixelVectorEnv
from rlenhance.data import RowDraws, RowStream, add_gaussian_noise, noise_ramp
from rlenhance.ops.bank import pixelrl_filter_bank
from rlenhance.transitions import PREDICT_ACTION, DenoiseTransition

__all__ = ["PREDICT_ACTION", "DenoiseEnv", "DenoiseTask", "DenoiseVectorEnv", "draw_noisy", "start_noisy"]


def start_noisy(task: PixelTask, rng: np.random.Generator, options: dict[str, Any] | None, *,
                clip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(clean, noisy)`` pair a denoising episode starts from (Denoise-v0, RSE-v0).

    Taken from ``reset(options=...)`` (``clean``, optional ``noisy``: without it, noise of a level drawn from
    ``rng`` with values from ``task.generator``), else drawn (:func:`draw_noisy`). ``noisy`` is unclipped
    unless ``clip``; given ``noisy``, ``clean`` is only the reward's reference and may leave [0, 1] too.

    Raises:
        ValueError: images with another channel count than ``task.channels``, or bad options.
    """
    if not options:
        batch = task.draw_start()
        return batch["clean"], batch["noisy"]
    unbounded = (() if clip else ("noisy",)) + (("clean",) if "noisy" in options else ())
    batch = task.options_batch(options, {"clean": task.channels, "noisy": task.channels}, ("clean",),
                               unbounded=unbounded)
    clean = _checked_clean(task, batch)
    if "noisy" in batch:
        return clean, batch["noisy"]
    if getattr(task, "noise_ramp", False):
        levels = _ramps(task, rng, clean.shape[0], tuple(clean.shape[-2:]))
    else:
        levels = rng.choice(task.sigmas, size=clean.shape[0])
    return clean, _add_noise(task, clean, levels, task.generator, clip=clip)


def draw_noisy(task: PixelTask, rows: RowDraws, *, clip: bool = False) -> dict[str, torch.Tensor]:
    """The random start of the denoising episodes of ``rows``, ``{"clean", "noisy"}``: a data item per row (its
    pair, or its image as the clean reference) with noise of a sigma from ``task.sigmas`` (stream ``"noise"``)."""
    batch = task.draw_batch(rows)
    if "clean" not in batch:  # a folder or the embedded photos: the images are the clean references
        batch["clean"] = batch["high"] if "high" in batch else batch["low"]
    clean = _checked_clean(task, batch)
    if "noisy" in batch:
        return {"clean": clean, "noisy": batch["noisy"]}
    stream = rows.stream("noise")
    if getattr(task, "noise_ramp", False):
        levels = _ramps(task, stream, len(rows), tuple(clean.shape[-2:]))
    else:
        levels = task.sigmas[stream.integers(task.sigmas.size, size=len(rows))]
    return {"clean": clean, "noisy": _add_noise(task, clean, levels, stream, clip=clip)}


def _ramps(task: PixelTask, rng: np.random.Generator | RowStream, n: int, size: tuple[int, int]) -> torch.Tensor:
    """Noise-level ramps (:func:`rlenhance.data.noise_ramp`) between two levels in the range of ``task.sigmas``,
    drawn from ``rng``; float32 (n, 1, H, W), 0-255 scale."""
    low, high = float(task.sigmas.min()), float(task.sigmas.max())
    draws = np.concatenate([rng.uniform(low, high, (n, 2)), rng.uniform(0.0, 2.0 * np.pi, (n, 1))], axis=1)
    ends = torch.as_tensor(draws, dtype=torch.float32, device=task.device)
    return noise_ramp(size, ends[:, 0], ends[:, 1], ends[:, 2])


def _checked_clean(task: PixelTask, batch: dict[str, Any]) -> torch.Tensor:
    """``batch["clean"]``, refused when its channel count is not the task's."""
    clean = batch["clean"]
    if clean.shape[1] != task.channels:
        raise ValueError(f"images: expected {task.channels} channel(s) (gray={task.channels == 1}), "
                         f"got {clean.shape[1]}")
    return clean


def _add_noise(task: PixelTask, clean: torch.Tensor, levels: Sequence[float] | torch.Tensor,
               generator: torch.Generator | RowStream, *, clip: bool) -> torch.Tensor:
    """``clean`` with Gaussian noise of ``levels`` (0-255 scale, one per image or a map (B, 1, H, W))."""
    if torch.is_tensor(levels):
        return add_gaussian_noise(clean, levels, generator=generator, clip=clip)
    sigma = torch.as_tensor(np.asarray(levels), dtype=torch.float32, device=task.device).view(-1, 1, 1, 1)
    return add_gaussian_noise(clean, sigma, generator=generator, clip=clip)


class DenoiseTask(PixelTask):
    """Batched core of :class:`DenoiseEnv`; see its docstring for the MDP."""

    def __init__(
        self,
        num_envs: int,
        *,
        crop: int | tuple[int, int] | None = 70,
        max_episode_steps: int = 5,
        sigma: float | tuple[float, ...] = (15.0, 25.0, 50.0),
        gray: bool = True,
        clip: bool = False,
        reward_scale: float = 255.0,
        predictor: Callable[[torch.Tensor], torch.Tensor] | None = None,
        observe_prediction: bool = False,
        action_rewards: bool = False,
        level_scales: Sequence[float] = (),
        level_error: float = 1.0,
        reward_blur: int = 1,
        noise_ramp: bool = False,
        **common: Any,
    ):
        super().__init__(num_envs, crop=crop, max_episode_steps=max_episode_steps, data_kind="clean", gray=gray,
                         **common)
        if predictor is not None and not callable(predictor):
            raise TypeError(f"predictor: expected None or a callable (noisy) -> prediction, got "
                            f"{type(predictor).__name__}")
        if observe_prediction and predictor is None:
            raise ValueError("observe_prediction: the observation's 'prediction' is the predictor's output; "
                             "give a predictor, or observe_prediction=False")
        if level_scales and not getattr(predictor, "reads_level", False):
            raise ValueError("level_scales: the actions set the noise-level map of a noise-map denoiser; give one "
                             "as predictor (a DenoisePredictor of an FFDNet)")
        if level_scales and (observe_prediction or action_rewards):
            raise ValueError("level_scales: the policy sees the noisy image and the map; observe_prediction and "
                             "action_rewards are for PixelRL's filters")
        if not (np.isfinite(level_error) and level_error >= 1.0):
            raise ValueError(f"level_error: expected a factor >= 1 (1: the map starts at the image's level), got "
                             f"{level_error!r}")
        if isinstance(reward_blur, bool) or not isinstance(reward_blur, (int, np.integer)) or reward_blur < 1 \
                or reward_blur % 2 == 0:
            raise ValueError(f"reward_blur: expected an odd box size >= 1 (1: each pixel's own gain), got "
                             f"{reward_blur!r}")
        sigmas = np.atleast_1d(np.asarray(sigma, dtype=np.float64))
        if sigmas.size == 0 or not np.all(np.isfinite(sigmas)) or np.any(sigmas < 0):
            raise ValueError(f"sigma: expected a noise level >= 0 (0-255 scale) or a sequence of them, got {sigma!r}")
        self.sigmas = sigmas
        #: each episode's noise level varies across its image (:func:`rlenhance.data.noise_ramp`)
        self.noise_ramp = bool(noise_ramp)
        #: drawn episodes start the map at the image's level times a factor in [1 / level_error, level_error]
        self.level_error = float(level_error)
        #: the reward map is the gain averaged over this box around each pixel (1: the pixel's own)
        self.reward_blur = int(reward_blur)
        self.clip = clip
        self.reward_scale = float(reward_scale)
        self.predictor = predictor
        #: whether the observation holds the predictor's output (``"prediction"``) next to the image
        self.observe_prediction = bool(observe_prediction)
        self.action_rewards = bool(action_rewards)
        #: with ``action_rewards``, the last step's reward of every action at every pixel (B, K, H, W)
        self.action_reward_maps: torch.Tensor | None = None
        #: The step (PixelRL's filters, the predictor's pixel, clipping), as checkpoints record it.
        self.transition = DenoiseTransition(predict=predictor is not None, clip=bool(clip),
                                            steps=self.max_episode_steps, level_scales=tuple(level_scales))
        #: the action names, index = action id: PixelRL's nine, then "predict" with a predictor
        self.actions = self.transition.actions
        self.n_actions = len(self.actions)
        self.channels = 1 if gray else 3
        #: the predictor's output for the current episodes (B, C, H, W) in [0, 1], or None
        self.prediction: torch.Tensor | None = None
        #: noise-level map actions: the noisy images and the current map (B, 1, H, W), 0-255 scale
        self.noisy: torch.Tensor | None = None
        self.level: torch.Tensor | None = None
        h, w = self.image_size
        low, high = (0.0, 1.0) if clip else (-np.inf, np.inf)
        observed = {"image": spaces.Box(low, high, (self.channels, h, w), np.float32)}
        if self.observe_prediction:
            observed["prediction"] = spaces.Box(0.0, 1.0, (self.channels, h, w), np.float32)
        if self.transition.sets_level:
            observed["level"] = spaces.Box(0.0, np.inf, (2, h, w), np.float32)
        self.single_observation_space = spaces.Dict(observed)
        self.single_action_space = spaces.MultiDiscrete(np.full((1, h, w), self.n_actions))

    def _start(self, rng: np.random.Generator, options: dict[str, Any] | None) -> None:
        self.clean, self.image = start_noisy(self, rng, options, clip=self.clip)
        self.prediction = None
        if self.transition.sets_level:  # the map starts at the image's level, the image at its output
            with torch.no_grad():
                self.noisy = self.transition.start(self.image)
                level = self.predictor.levels(self.noisy).to(self.device)
                if not options and self.level_error > 1.0:  # a mis-estimated level, log-uniform
                    spread = np.log(self.level_error)
                    factor = np.exp(rng.uniform(-spread, spread, size=level.shape[0]))
                    level = level * torch.as_tensor(factor, dtype=level.dtype, device=level.device).view(-1, 1, 1, 1)
                self.level = level.expand(-1, 1, *self.noisy.shape[-2:]).clamp(0.0, self.transition.max_level)
            self.prediction = None
            self._level_pending = True  # the image: the predictor's output for the map, when first read
            return
        if self.predictor is not None:
            with torch.no_grad():
                prediction = self.predictor(self.image)
            if not torch.is_tensor(prediction) or prediction.shape != self.image.shape:
                got = tuple(prediction.shape) if torch.is_tensor(prediction) else type(prediction).__name__
                raise ValueError(f"predictor: returned {got} for noisy images {tuple(self.image.shape)}; expected "
                                 "a tensor of the same shape")
            self.prediction = prediction.to(device=self.device, dtype=self.image.dtype).clamp(0.0, 1.0)

    def _draw(self, rows: RowDraws) -> dict[str, torch.Tensor]:
        return draw_noisy(self, rows, clip=self.clip)

    def observe(self) -> dict[str, torch.Tensor]:
        if self.transition.sets_level:
            return {"image": self.noisy, "level": self.transition.level_observation(self.noisy, self.level)}
        if self.observe_prediction:
            return {"image": self.image, "prediction": self.prediction}
        return {"image": self.image}

    @property
    def image(self) -> torch.Tensor | None:
        """The current images (B, C, H, W); with ``level_scales``, the predictor's output for the current map,
        computed lazily when first read after the map changed."""
        if getattr(self, "_level_pending", False):
            with torch.no_grad():
                self._image = self.predictor.with_level(self.noisy, self.level)
            self._level_pending = False
        return self._image

    @image.setter
    def image(self, value: torch.Tensor | None) -> None:
        self._image, self._level_pending = value, False

    def _transition(self, actions: torch.Tensor) -> torch.Tensor:
        if self.transition.sets_level and not self.score_rewards:
            self.level = self.transition.next_level(self.level, actions)
            self._level_pending = True
            return torch.zeros_like(self.level)
        previous = self.image
        if self.action_rewards:
            self.action_reward_maps = self._action_reward_maps(previous)
        if self.transition.sets_level:
            self.level = self.transition.next_level(self.level, actions)
            self._level_pending = True
        else:
            self.image = self.transition.step(previous, actions, self.prediction)
        error_before = torch.sub(self.clean, previous).square_()
        error_after = torch.sub(self.clean, self.image).square_()
        if self.channels > 1:
            error_before = error_before.mean(dim=1, keepdim=True)
            error_after = error_after.mean(dim=1, keepdim=True)
        gain = error_before.sub_(error_after).mul_(self.reward_scale)
        if self.reward_blur > 1:  # credit each pixel with its neighbourhood's gain (the map's effect spreads)
            gain = F.avg_pool2d(gain, self.reward_blur, stride=1, padding=self.reward_blur // 2,
                                count_include_pad=False)
        return gain

    def _action_reward_maps(self, previous: torch.Tensor) -> torch.Tensor:
        """The reward each action would earn at each pixel from ``previous`` (B, K, H, W)."""
        candidates = pixelrl_filter_bank(previous)
        if self.prediction is not None:
            candidates = torch.cat([candidates, self.prediction.unsqueeze(1)], dim=1)
        if self.clip:
            candidates = candidates.clamp_(0.0, 1.0)
        clean = self.clean.unsqueeze(1)
        gain = torch.sub(clean, previous.unsqueeze(1)).square_() - torch.sub(clean, candidates).square_()
        return gain.mean(dim=2).mul_(self.reward_scale)

    def step_info(self) -> dict[str, torch.Tensor]:
        return {"action_reward_maps": self.action_reward_maps} if self.action_rewards else {}


class DenoiseEnv(PixelEnv):
    """Gaussian denoising by per-pixel filter choice (PixelRL), or by a per-pixel noise-level map.

    ## Description
    The state is a noisy image (gray by default). At every step each pixel picks one of nine filters and takes
    that filter's result (each computed only at the pixels that chose it, see ``pixelrl_filter_select``), or,
    with a ``predictor`` (a supervised denoiser), the predictor's pixel.

    ## Action Space
    ``MultiDiscrete(np.full((1, H, W), n))``: one action per pixel, shared by the channels; n = 9,
    or 10 with a ``predictor``.

    | index | action                                                     |
    |-------|------------------------------------------------------------|
    | 0     | pixel value -1/255                                         |
    | 1     | keep                                                       |
    | 2     | pixel value +1/255                                         |
    | 3     | Gaussian 5x5, sigma 0.5                                    |
    | 4     | bilateral d=5, sigma_color 0.1, sigma_space 5              |
    | 5     | median 5x5                                                 |
    | 6     | Gaussian 5x5, sigma 1.5                                    |
    | 7     | bilateral d=5, sigma_color 1.0, sigma_space 5              |
    | 8     | box 5x5                                                    |
    | 9     | take the predictor's pixel (only when ``predictor`` given) |

    With ``level_scales`` (a noise-map ``predictor``: :class:`rlenhance.denoisers.DenoisePredictor`), action k
    multiplies the pixel's noise level by ``level_scales[k]`` (clamped to ``max_level``) and the image becomes
    the predictor's output for the noisy image and the map (:meth:`rlenhance.transitions.DenoiseTransition.next_level`).

    ## Observation Space
    ``Dict`` with ``"image"``: ``Box(-inf, inf, (C, H, W), float32)`` (C = 1 gray, 3 colour), not clipped unless
    ``clip=True`` (then ``Box(0, 1)``). With ``observe_prediction=True`` (a ``predictor`` required) also
    ``"prediction"``: ``Box(0, 1, (C, H, W), float32)``, the predictor's output of the episode. With
    ``level_scales``, ``"image"`` stays the noisy image and ``"level"``: ``Box(0, inf, (2, H, W), float32)``
    holds the map and the noise's local strength (:meth:`rlenhance.transitions.DenoiseTransition.level_observation`).

    ## Rewards
    Per pixel, the decrease of squared error to the clean image, x ``reward_scale`` (255, as PixelRL):
    ``((clean - previous)^2 - (clean - current)^2) * 255``, averaged over channels. The scalar reward is the mean
    of ``info["reward_map"]`` (shape (1, H, W)); "keep" earns 0 (with ``level_scales``, so does x1 everywhere).
    With ``reward_blur`` k > 1 each pixel's reward is the gain averaged over the k x k box around it.

    ## Starting State
    A random crop (and flips) of a clean image of ``data`` (None = the embedded scikit-image photos in gray)
    plus Gaussian noise of standard deviation ``sigma`` / 255, ``sigma`` one value or a sequence sampled per
    episode (default 15, 25 and 50); or ``reset(options={"clean": ..., "noisy": ...})``. With ``noise_ramp`` the
    level varies linearly across each crop (:func:`rlenhance.data.noise_ramp`). With ``level_scales`` the map
    starts at each image's level and the image at the predictor's output; ``level_error`` > 1 multiplies a drawn
    episode's starting level by a log-uniform factor in [1 / level_error, level_error].
    ``predictor(noisy)``, when given, is run once per episode on the noisy images (B, C, H, W) and must return a
    tensor of their shape (clamped to [0, 1]), offered as action 9.
    Given images are numpy arrays or torch tensors, channels first ((C, H, W), or (B, C, H, W) for the vector
    env), of the env's (H, W), float in [0, 1] or uint8 / uint16; others raise ``rlenhance.errors.ImageError``
    (a ``ValueError``). C is 1 (``gray=True``) or 3. ``"noisy"`` (optional) may leave [0, 1] but must be
    finite (in [0, 1] with ``clip=True``); next to it, ``"clean"`` is only the reward's reference (finite).

    ## Episode End
    Truncation after 5 steps (as PixelRL); never terminates. Gymnasium's ``TimeLimit`` truncates the one-image
    env (``gym.make(id, max_episode_steps=N)``); the vector env (``envs.make_vec(id, max_episode_steps=N)``)
    truncates its B episodes itself.

    ## Arguments
    Those of :class:`envs.base.PixelTask` (``data``, ``split``, ``split_seed``, ``device``,
    ``validate_actions``), ``crop`` (70, PixelRL), ``sigma``, ``gray``, ``clip``, ``reward_scale``,
    ``predictor``, ``observe_prediction``, ``level_scales``, ``level_error``, ``reward_blur``, ``noise_ramp``;
    ``action_rewards`` and ``max_episode_steps`` for the vector env only. ``render_mode``: None or
    ``"rgb_array"`` (uint8 (H, W, 3), clipped, gray in three equal channels).

    ## Version History
    * v0: initial version, extended under the same id: default ``sigma`` 15 / 25 / 50 (was 25); the one-image
      env leaves the length to ``TimeLimit``; ``render_mode="rgb_array"``; ``reset(options=...)`` checks its
      images (``ImageError``) and scales uint8 / uint16; per-row episode draws (``rlenhance.data.RowDraws``);
      the optional ``predictor``, ``observe_prediction``, ``level_scales``, ``level_error``, ``reward_blur``
      and ``noise_ramp``, whose absence leaves the episodes unchanged.
    """

    task_class = DenoiseTask


class DenoiseVectorEnv(PixelVectorEnv):
    """Batched torch twin of :class:`DenoiseEnv`.

    ``max_episode_steps`` (default 5) is the vector env's own: it truncates the B episodes itself.
    """

    task_class = DenoiseTask
