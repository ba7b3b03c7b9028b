"""The batched torch core shared by every rlenhance environment, and its two Gymnasium faces.

Each task is written once, as a :class:`PixelTask`: ``B`` images held as torch tensors on one device, a
transition applied to the whole batch and a per-pixel reward map from :mod:`rlenhance.losses`. It is exposed as

* :class:`PixelEnv` - a ``gymnasium.Env`` for one image (numpy in and out, passes ``check_env``), and
* :class:`PixelVectorEnv` - a natively batched ``gymnasium.vector.VectorEnv`` over ``B`` images with torch
  observations, rewards and actions on the chosen device (the training path).

The ``B`` episodes of a vector env run in lockstep; ``metadata["autoreset_mode"]`` is ``DISABLED``. The
vector env truncates its episodes itself after ``max_episode_steps`` (or a length drawn at each reset from
``min_episode_steps`` .. ``max_episode_steps``); the one-image env leaves the length to gymnasium's
``TimeLimit``, as CartPole does. All randomness comes from the env's ``np_random``: every reset draws one
episode seed, and row ``i``'s start is made of counter-based numbers of (episode seed, ``i``)
(:class:`rlenhance.data.RowDraws`), so it does not depend on the batch size and a sharded task draws its own
rows only. On a GPU the crops are cut from the data set held there (:class:`rlenhance.data.ImageBank`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.validation import check_batch_memory, check_count, check_crop, check_crop_fits
from rlenhance.data import ImageBank, RowDraws, open_dataset, sample_batch
from rlenhance.errors import ImageError
from rlenhance.io import as_unit_float
from rlenhance.runtime import select_device

#: Seeds drawn for the episode's torch generator come from [0, 2**62).
_SEED_BOUND = 2**62
#: ``metadata["render_fps"]``: rendered episodes show one frame per step, slowly enough to follow each step.
RENDER_FPS = 4
#: The largest value of a rendered uint8 frame.
_FRAME_MAX = 255.0


def common_size(dataset) -> tuple[int, int]:
    """The (H, W) shared by every image of a dataset (needed when ``crop=None``)."""
    sizes = set()
    for i in range(len(dataset)):
        sizes.update(tuple(v.shape[-2:]) for v in dataset[i].values() if torch.is_tensor(v))
    if len(sizes) != 1:
        raise ValueError(f"crop=None needs images of one size, got sizes {sorted(sizes)[:5]}; give crop=(h, w)")
    return sizes.pop()


def check_render_mode(render_mode: str | None, render_modes: list[str]) -> str | None:
    """``render_mode`` if it is None or one of ``render_modes``; a ValueError naming them otherwise."""
    if render_mode is not None and render_mode not in render_modes:
        raise ValueError(f"render_mode: expected None or one of {render_modes}, got {render_mode!r}")
    return render_mode


def render_frames(image: torch.Tensor) -> np.ndarray:
    """RGB frames of a batch of images, as gymnasium's ``rgb_array`` render mode returns them.

    Args:
        image: float (B, C, H, W), C = 3 (RGB) or 1 (gray), on any device; clipped to [0, 1].

    Returns:
        uint8 numpy array (B, H, W, 3), RGB, ``round(255 * clip(x, 0, 1))``; gray is repeated three times.
    """
    frames = image.detach().clamp(0.0, 1.0).mul(_FRAME_MAX).round().to(torch.uint8)
    if frames.shape[1] == 1:
        frames = frames.expand(-1, 3, -1, -1)
    return np.ascontiguousarray(frames.permute(0, 2, 3, 1).cpu().numpy())


#: The reset-info key of each row's weight of the task's action penalty, float32 (B,) >= 0
#: (:meth:`PixelTask.action_penalty`).
ACTION_PENALTY_WEIGHT = "action_penalty_weight"


class EpisodeRow(NamedTuple):
    """The random source of one row of a reset's global batch (:func:`episode_rows`).

    Attributes:
        index: the row of the global batch (``rank * num_envs + k`` for a shard's ``k``-th env).
        rng: numpy generator of the row's draws (item, crop, flips, noise level, settings).
        generator: torch generator on the task's device for the row's tensor draws, seeded from ``rng``.
    """

    index: int
    rng: np.random.Generator
    generator: torch.Generator


def episode_rows(seed: int, indices: Iterable[int], device: str | torch.device) -> list[EpisodeRow]:
    """The random sources of the rows ``indices`` of a batch started with ``seed``, for a draw made row by row
    (the envs draw every row at once from :class:`rlenhance.data.RowDraws`).

    Row ``i``'s numpy generator is ``np.random.default_rng([seed, i])`` and its torch generator is seeded with
    that generator's first draw, so a row depends on (seed, ``i``) alone, whatever the batch size or process.
    """
    rows = []
    for index in indices:
        rng = np.random.default_rng([int(seed), int(index)])
        generator = torch.Generator(device=device)
        generator.manual_seed(int(rng.integers(_SEED_BOUND)))
        rows.append(EpisodeRow(int(index), rng, generator))
    return rows


def _layout_hint(shape: tuple[int, ...], channels: int) -> str:
    """How to fix an image entry of the wrong layout (channels last, no channel axis), or ""."""
    if len(shape) == 3 and shape[-1] == channels and shape[0] != channels:
        return "; an HWC array? use np.transpose(x, (2, 0, 1))"
    if len(shape) == 4 and shape[-1] == channels and shape[1] != channels:
        return "; a (B, H, W, C) array? use np.transpose(x, (0, 3, 1, 2))"
    if len(shape) == 2 and channels == 1:
        return "; an (H, W) gray image? add the channel axis: x[None]"
    return ""


class PixelTask:
    """Batched pixel-wise MDP on ``num_envs`` images: transition and reward in torch.

    Subclasses define the spaces of one image (``single_observation_space``, ``single_action_space``), the
    start (:meth:`_start`), the observation (:meth:`observe`) and the transition and reward map (:meth:`_transition`).

    Args:
        num_envs: batch size B.
        device: torch device of every tensor the task holds.
        max_episode_steps: episode length; the batch's episodes are truncated together after this many steps.
            None: the task never ends an episode (the one-image env leaves it to ``TimeLimit``).
        min_episode_steps: None or ``max_episode_steps``: every episode lasts ``max_episode_steps``. A smaller
            length: each reset draws the batch's length uniformly from ``min_episode_steps`` ..
            ``max_episode_steps`` with the env's rng; ``episode_steps`` is the current length.
        data: None (embedded photos), a folder or a dataset; see :func:`rlenhance.data.open_dataset`.
        data_kind: how a folder is read ("paired", "clean" or "occluded"); set by the task.
        gray: single-channel images.
        split: "train", "val" or None (all images).
        split_seed: seed of the deterministic train/validation split.
        crop: random crop per episode, int or (h, w); None uses whole images (all of one size).
        validate_actions: check the shape of every action batch and the range of its values (on the CPU at
            every step, on a GPU at an episode's first step only).
        shard: ``(rank, world_size)`` of a data-parallel job (:mod:`agents.distributed`): reset draws only
            rows ``rank * num_envs`` to ``(rank + 1) * num_envs - 1`` of a task of ``num_envs * world_size``
            envs (:meth:`draw_start`). None: rows 0 to ``num_envs - 1``.
    """

    #: dtype of discrete actions; continuous actions are float32.
    action_dtype: ClassVar[torch.dtype] = torch.long

    def __init__(self, num_envs: int, *, device: str | torch.device = "cpu", max_episode_steps: int | None,
                 min_episode_steps: int | None = None, data: Any = None, data_kind: str = "paired",
                 gray: bool = False, split: str | None = "train",
                 split_seed: int = 0, crop: int | tuple[int, int] | None = 64, validate_actions: bool = True,
                 shard: tuple[int, int] | None = None):
        num_envs = check_count("num_envs", num_envs)
        if shard is not None and not (len(shard) == 2 and 0 <= int(shard[0]) < int(shard[1])):
            raise ValueError(f"shard: expected None or (rank, world_size) with 0 <= rank < world_size, got {shard!r}")
        #: ``(rank, world_size)`` of a data-parallel job, or None (see the class docstring).
        self.shard = None if shard is None else (int(shard[0]), int(shard[1]))
        if max_episode_steps is not None and int(max_episode_steps) < 1:
            raise ValueError(f"max_episode_steps: expected an int >= 1 (or None: no limit), got {max_episode_steps!r}")
        self.num_envs = int(num_envs)
        self.device = select_device(device)
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        if min_episode_steps is not None and not (
                self.max_episode_steps is not None and 1 <= int(min_episode_steps) <= self.max_episode_steps):
            raise ValueError(f"min_episode_steps: expected None or an int in [1, max_episode_steps="
                             f"{self.max_episode_steps}], got {min_episode_steps!r}")
        self.min_episode_steps = None if min_episode_steps is None else int(min_episode_steps)
        #: the current episodes' length (drawn at each reset with ``min_episode_steps``).
        self.episode_steps = self.max_episode_steps
        self.validate_actions = validate_actions
        #: torch generator of the draws for starts given through ``reset(options=...)``; seeded with the episode seed.
        self.generator = torch.Generator(device=self.device)
        #: the seed of the current episodes' rows (:func:`episode_rows`), drawn at every reset.
        self.episode_seed: int | None = None
        self.t = 0
        self.done = True
        #: number of discrete actions per pixel; None for continuous actions (set by the task).
        self.n_actions: int | None = None
        #: the current images (B, C, H, W) float32; None before the first reset.
        self.image: torch.Tensor | None = None
        #: False: the caller discards the rewards; a task may skip the work only they need (zero reward maps).
        self.score_rewards = True
        self.dataset = open_dataset(data, kind=data_kind, split=split, gray=gray, seed=split_seed)
        #: (the data set, its ImageBank on the device or None), made at the first draw off the CPU
        self._bank: tuple[Any, ImageBank | None] | None = None
        if len(self.dataset) == 0:
            raise ValueError("data: the dataset is empty")
        self.crop = check_crop(crop)
        check_crop_fits(self.crop, self.dataset)
        #: (H, W) of every image of an episode: the crop, or the common size of the data.
        self.image_size = self.crop if self.crop is not None else common_size(self.dataset)
        self.single_observation_space: gym.spaces.Dict
        self.single_action_space: gym.spaces.Space

    # --- to be provided by each task -------------------------------------------------------
    def _start(self, rng: np.random.Generator, options: dict[str, Any] | None) -> None:
        """Begin B new episodes: take the start from ``options`` or draw it (:meth:`draw_start`)."""
        raise NotImplementedError

    def _draw(self, rows: RowDraws) -> dict[str, Any]:
        """The random start of the episodes of ``rows``, as tensors with ``len(rows)`` rows on the device, drawn
        from the streams of ``rows`` only (never the env's rng or ``self.generator``)."""
        raise NotImplementedError

    def observe(self) -> dict[str, torch.Tensor]:
        """The batched observation: dict of tensors shaped like the single space plus batch."""
        raise NotImplementedError

    def reset_info(self) -> dict[str, torch.Tensor]:
        """The reset info, each value a tensor (B,) on the device (a float in the one-image env); ``{}`` by default."""
        return {}

    #: The value each discrete action stands for (e.g. LowLight's alphas); None: the actions are not values.
    action_values: tuple[float, ...] | None = None

    def action_penalty(self, actions: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """The penalty (B,) for the agent's loss on the action maps ``actions`` (B, C, h, w) it means to take, each
        row's times its weight in ``weights`` (B,) (the reset's :data:`ACTION_PENALTY_WEIGHT`; None: 1).

        Raises:
            NotImplementedError: a task without an action penalty.
        """
        raise NotImplementedError(f"{type(self).__name__} has no action penalty (its reset info hands no "
                                  f"{ACTION_PENALTY_WEIGHT!r})")

    def _transition(self, actions: torch.Tensor) -> torch.Tensor:
        """Apply a batch of per-pixel actions; return the reward map (B, 1 or C, H, W)."""
        raise NotImplementedError

    def step_info(self) -> dict[str, torch.Tensor]:
        """The step info besides ``reward_map``, each value a tensor with B rows on the device; ``{}`` by default."""
        return {}

    # --- shared machinery ------------------------------------------------------------------
    def reset(self, rng: np.random.Generator, options: dict[str, Any] | None = None) -> dict:
        self.episode_seed = int(rng.integers(_SEED_BOUND))
        self.generator.manual_seed(self.episode_seed)
        if self.min_episode_steps is not None and self.min_episode_steps < self.max_episode_steps:
            self.episode_steps = int(rng.integers(self.min_episode_steps, self.max_episode_steps + 1))
        self._start(rng, options)
        self.t = 0
        self.done = False
        return self.observe()

    def step(self, actions: torch.Tensor):
        if self.done:
            raise RuntimeError("step() called after the episode ended (or before reset()): call reset() first")
        actions = self.check_actions(actions)
        reward_map = self._transition(actions)
        self.t += 1
        self.done = self.episode_steps is not None and self.t >= self.episode_steps
        reward = reward_map.mean(dim=(1, 2, 3))
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        truncated = torch.full((self.num_envs,), self.done, dtype=torch.bool, device=self.device)
        return self.observe(), reward, terminated, truncated, {"reward_map": reward_map, **self.step_info()}

    def check_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Move actions to the device with the right dtype, checking shape (and range)."""
        space = self.single_action_space
        expected = (self.num_envs, *space.shape)
        actions = torch.as_tensor(actions, device=self.device)
        if tuple(actions.shape) != expected:
            raise ValueError(f"actions: expected shape {expected} (batch, *{space}), got {tuple(actions.shape)}")
        if isinstance(space, gym.spaces.MultiDiscrete):
            if actions.is_floating_point() or actions.is_complex():
                raise ValueError(f"actions: expected integer action indices, got dtype {actions.dtype}")
            actions = actions.long()
            if self._check_values():
                n = int(space.nvec.flat[0])
                low, high = int(actions.min()), int(actions.max())
                if low < 0 or high >= n:
                    raise ValueError(f"actions: values must be in 0..{n - 1}, got values in {low}..{high}")
        else:
            actions = actions.float()
            if self._check_values() and not bool(torch.isfinite(actions).all()):
                raise ValueError("actions: continuous actions must be finite")
            actions = actions.clamp(float(space.low.min()), float(space.high.max()))
        return actions

    def _check_values(self) -> bool:
        """Whether this step's action values are checked (every step on the CPU, an episode's first elsewhere)."""
        return self.validate_actions and (self.device.type == "cpu" or self.t == 0)

    def draw_start(self) -> dict[str, Any]:
        """The random start of this task's B episodes: :meth:`_draw` of its global rows (0 to B - 1, or
        ``rank * B`` to ``rank * B + B - 1`` for a sharded task)."""
        if self.episode_seed is None:
            raise RuntimeError("draw_start() called before reset(): the episode seed is drawn at reset")
        first = 0 if self.shard is None else self.shard[0] * self.num_envs
        return self._draw(RowDraws(self.episode_seed, range(first, first + self.num_envs)))

    def draw_batch(self, rows: RowDraws) -> dict:
        """One random item of the data set per row, cropped and flipped (stream ``"item"``), as float32 tensors
        on the device; off the CPU gathered from an :class:`rlenhance.data.ImageBank` when the data fits."""
        stream = rows.stream("item")
        if self.device.type != "cpu":
            if self._bank is None or self._bank[0] is not self.dataset:  # (data set, its bank or None)
                self._bank = (self.dataset, ImageBank.of(self.dataset, self.device))
            if self._bank[1] is not None:
                return self._bank[1].sample(stream, self.crop)
        batch = sample_batch(self.dataset, len(rows), crop=self.crop, rng=stream)
        return {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in batch.items()}

    def options_batch(self, options: Mapping[str, Any], images: Mapping[str, int], required: tuple[str, ...], *,
                      vectors: Mapping[str, int] | None = None, unbounded: tuple[str, ...] = (),
                      masks: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
        """The entries given through ``reset(options=...)``, checked, as float32 tensors on the device.

        Args:
            options: the caller's dict (not modified).
            images: the accepted image keys and their channel count C. An entry is a numpy array or torch
                tensor, (C, H, W) for one env or (B, C, H, W), read by :func:`rlenhance.io.as_unit_float`;
                all share the env's ``image_size``.
            required: the keys that must be given.
            vectors: the accepted vector keys and their length n: (n,) for one env or (B, n), finite.
            unbounded: image keys whose values may leave [0, 1] (``as_unit_float(noisy=True)``).
            masks: image keys that may also be bool arrays (read as 0 / 1).

        Returns:
            Image entries as (B, C, H, W), vector entries as (B, n), float32 on ``self.device``.

        Raises:
            ValueError: a missing or unknown key, or a vector entry of another shape or non-finite.
            ImageError: an image entry of another shape or (H, W), or with values :func:`as_unit_float` refuses.
        """
        vectors = dict(vectors or {})
        keys = (*images, *vectors)
        missing = [k for k in required if k not in options]
        unknown = [k for k in options if k not in keys]
        if missing or unknown:
            raise ValueError(f"reset options: accepted keys {keys} (required {required}); "
                             f"missing {missing}, unknown {unknown}")
        out: dict[str, torch.Tensor] = {}
        sizes: dict[str, tuple[int, int]] = {}
        for key, channels in images.items():
            if key in options:
                out[key] = self._option_image(key, options[key], channels, unbounded=key in unbounded,
                                              mask=key in masks)
                sizes[key] = (int(out[key].shape[-2]), int(out[key].shape[-1]))
        first = next(iter(sizes), None)
        for key, size in sizes.items():
            if size != sizes[first]:
                raise ImageError(f"options[{key!r}]: {size[0]}x{size[1]} pixels, but options[{first!r}] is "
                                 f"{sizes[first][0]}x{sizes[first][1]}; the images of one reset must share (H, W)")
        h, w = self.image_size
        if first is not None and sizes[first] != (h, w):
            got = sizes[first]
            raise ImageError(f"options[{first!r}]: {got[0]}x{got[1]} pixels; this env's observations are {h}x{w} "
                             f"(its crop or the size of its data): give {h}x{w} images, or make the env with "
                             f"crop=({got[0]}, {got[1]})")
        for key, length in vectors.items():
            if key in options:
                out[key] = self._option_vector(key, options[key], length)
        return out

    def _option_image(self, key: str, value: Any, channels: int, *, unbounded: bool, mask: bool) -> torch.Tensor:
        """One image entry of ``reset(options=...)`` as float32 (B, C, H, W) on the device."""
        name = f"options[{key!r}]"
        value = value if torch.is_tensor(value) else np.asarray(value)
        shape = tuple(value.shape)
        b = self.num_envs
        expected = (f"(C, H, W) with C={channels} channel(s) first (or (1, C, H, W))" if b == 1 else
                    f"(B, C, H, W) = ({b}, {channels}, H, W): num_envs={b} images, channels first")
        if len(shape) not in (3, 4) or shape[-3] != channels or (len(shape) == 4 and shape[0] != b) \
                or (len(shape) == 3 and b != 1):
            raise ImageError(f"{name}: expected {expected}; got {shape}{_layout_hint(shape, channels)}")
        if mask and value.dtype in (torch.bool, np.bool_):
            value = value.float() if torch.is_tensor(value) else value.astype(np.float32)
        value = as_unit_float(value, name=name, allow_tensor=True, noisy=unbounded)
        value = torch.as_tensor(value).to(self.device, torch.float32)
        return value.unsqueeze(0) if value.ndim == 3 else value

    def _option_vector(self, key: str, value: Any, length: int) -> torch.Tensor:
        """One vector entry of ``reset(options=...)`` as float32 (B, n) on the device."""
        value = torch.as_tensor(value if torch.is_tensor(value) else np.asarray(value, dtype=np.float32))
        value = value.to(self.device, torch.float32)
        b = self.num_envs
        expected = f"({length},) for one env or ({b}, {length})" if b == 1 else f"({b}, {length}) (num_envs={b})"
        if value.ndim == 1 and b == 1:
            value = value.unsqueeze(0)
        if tuple(value.shape) != (b, length):
            raise ValueError(f"options[{key!r}]: expected shape {expected}; got {tuple(value.shape)}")
        bad = int((~torch.isfinite(value)).sum())
        if bad:
            raise ValueError(f"options[{key!r}]: {bad} NaN or infinite value(s) of {value.numel()}; "
                             "expected finite values")
        return value


class PixelVectorEnv(VectorEnv):
    """Natively batched vector env over B images; observations, rewards and actions are torch tensors on
    ``device``, ``info["reward_map"]`` the per-pixel reward maps (plus :meth:`PixelTask.step_info`).

    The env truncates all B episodes itself after ``max_episode_steps``. Subclasses set ``task_class``.

    Args:
        num_envs: batch size B.
        device: torch device of observations, rewards and actions.
        render_mode: None or "rgb_array" (:meth:`render`).
        **kwargs: the task's arguments (``max_episode_steps`` included: an int >= 1).

    Attributes:
        task: the batched :class:`PixelTask` (its state, tables and data set).
        num_envs: B.
        device: the task's torch device.
    """

    task_class: ClassVar[type[PixelTask]]
    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.DISABLED, "render_modes": ["rgb_array"],
                                          "render_fps": RENDER_FPS}

    def __init__(self, num_envs: int = 1, *, device: str | torch.device = "cpu", render_mode: str | None = None,
                 **kwargs: Any):
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self.task = self.task_class(num_envs, device=device, **kwargs)
        if self.task.max_episode_steps is None:
            raise ValueError("max_episode_steps: a vector env ends its episodes itself (it has no TimeLimit "
                             "wrapper); expected an int >= 1, got None")
        self.num_envs = self.task.num_envs
        self.device = self.task.device
        self.single_observation_space = self.task.single_observation_space
        self.single_action_space = self.task.single_action_space
        check_batch_memory(self.num_envs, self.single_observation_space, self.single_action_space)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    @property
    def n_actions(self) -> int | None:
        """Number of discrete actions per pixel; None for continuous actions."""
        return self.task.n_actions

    @property
    def max_episode_steps(self) -> int:
        """Steps per episode (the longest, with ``min_episode_steps``; see :attr:`episode_steps`)."""
        return self.task.max_episode_steps

    @property
    def episode_steps(self) -> int:
        """The current episodes' length (drawn at reset with ``min_episode_steps``): all B end after this many steps."""
        return self.task.episode_steps

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed, options=options)
        return self.task.reset(self.np_random, options), self.task.reset_info()

    def step(self, actions: torch.Tensor):
        return self.task.step(actions)

    def render(self) -> tuple[np.ndarray, ...] | None:
        """The B current images as uint8 (H, W, 3) RGB frames (``render_mode="rgb_array"``), else None."""
        if self.render_mode is None:
            return None
        if self.task.image is None:
            raise RuntimeError("render() called before reset(): call reset() first")
        return tuple(render_frames(self.task.image))


class PixelEnv(gym.Env):
    """One-image Gymnasium env (numpy float32 observations, numpy actions) over the same task with B = 1.
    ``info["reward_map"]`` is a numpy (1 or C, H, W) array; ``gym.make`` adds the ``TimeLimit``.

    Args:
        render_mode: None or "rgb_array" (:meth:`render`).
        **kwargs: the task's arguments (``device`` defaults to "cpu"), without ``max_episode_steps``.
    """

    task_class: ClassVar[type[PixelTask]]
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS}

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        if "max_episode_steps" in kwargs:
            raise TypeError(f"max_episode_steps={kwargs['max_episode_steps']!r}: the one-image env leaves the episode "
                            "length to gymnasium's TimeLimit wrapper; use gym.make(id, max_episode_steps=N) or "
                            "gymnasium.wrappers.TimeLimit(env, N) (envs.make_vec takes max_episode_steps)")
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        kwargs.setdefault("device", "cpu")
        self.task = self.task_class(1, max_episode_steps=None, **kwargs)
        self.observation_space = self.task.single_observation_space
        self.action_space = self.task.single_action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs = self.task.reset(self.np_random, options)
        return _to_numpy(obs), {k: float(v[0]) for k, v in self.task.reset_info().items()}

    def step(self, action):
        action = torch.as_tensor(np.asarray(action)).unsqueeze(0)
        obs, reward, terminated, truncated, info = self.task.step(action)
        return (_to_numpy(obs), float(reward[0]), bool(terminated[0]), bool(truncated[0]),
                {"reward_map": info["reward_map"][0].cpu().numpy()})

    def render(self) -> np.ndarray | None:
        """The current image as a uint8 (H, W, 3) RGB frame (``render_mode="rgb_array"``), else None."""
        if self.render_mode is None:
            env_id = self.spec.id if self.spec is not None else "rlenhance/..."
            gym.logger.warn(f"render() called without a render mode; make the env with one, e.g. "
                            f"gym.make({env_id!r}, render_mode='rgb_array')")
            return None
        if self.task.image is None:
            raise RuntimeError("render() called before reset(): call reset() first")
        return render_frames(self.task.image)[0]


def _to_numpy(obs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v[0].detach().cpu().numpy().astype(np.float32, copy=True) for k, v in obs.items()}
