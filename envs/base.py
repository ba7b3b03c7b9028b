"""The batched torch core shared by every rlenhance environment, and its two Gymnasium faces.

Each task (low light, denoising, completion) is written once, as a :class:`PixelTask`: a batch of
``B`` images held as torch tensors on one device, a transition applied to the whole batch and a
per-pixel reward map computed from :mod:`rlenhance.losses`. The task is then exposed as

* :class:`PixelEnv` - a ``gymnasium.Env`` for one image (numpy in and out, passes
  ``gymnasium.utils.env_checker.check_env``), and
* :class:`PixelVectorEnv` - a natively batched ``gymnasium.vector.VectorEnv`` over ``B`` images
  whose observations, rewards and actions are torch tensors on the chosen device. This is the
  training path: no per-image Python loop and no numpy round trip per step.

All ``B`` episodes of a vector env run in lockstep (same length, reset together), as in PixelRL
and ReLLIE; ``metadata["autoreset_mode"]`` is ``DISABLED``: call ``reset()`` after the last step.
All randomness (which images, crops, flips, noise, masks, sampled reward weights) comes from the
env's ``np_random`` and a ``torch.Generator`` seeded from it at every reset, so the same seed gives
the same rollout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rlenhance.data import (
    BuiltinImages,
    OccludedPairs,
    PairedImages,
    UnpairedImages,
    sample_batch,
)
from rlenhance.errors import DatasetError

#: Seeds drawn for the episode's torch generator come from [0, 2**62).
_SEED_BOUND = 2**62


def parse_crop(crop: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """Normalise a crop argument to ``(h, w)`` (or None), rejecting non-positive sizes."""
    if crop is None:
        return None
    size = (crop, crop) if isinstance(crop, (int, np.integer)) else tuple(crop)
    if len(size) != 2 or any(int(s) <= 0 for s in size):
        raise ValueError(f"crop: expected a positive int, a (height, width) pair or None; got {crop!r}")
    return int(size[0]), int(size[1])


def common_size(dataset) -> tuple[int, int]:
    """The (H, W) shared by every image of a dataset (needed when ``crop=None``)."""
    sizes = set()
    for i in range(len(dataset)):
        sizes.update(tuple(v.shape[-2:]) for v in dataset[i].values() if torch.is_tensor(v))
    if len(sizes) != 1:
        raise ValueError(f"crop=None needs images of one size, got sizes {sorted(sizes)[:5]}; give crop=(h, w)")
    return sizes.pop()


def open_dataset(data: Any, *, kind: str, split: str | None, gray: bool, seed: int):
    """Resolve an env's ``data`` argument to a dataset.

    Args:
        data: None (the embedded scikit-image photos), a dataset object (anything with
            ``__len__``/``__getitem__`` returning dicts of (C, H, W) tensors) or a folder path.
            A folder is read as ``OccludedPairs`` when ``kind == "occluded"``; otherwise as
            ``PairedImages`` when it has ``low/`` + ``high/`` (or LOL's ``our485/`` + ``eval15/``),
            else as a flat folder of images (``UnpairedImages``).
        kind: "paired" (low light, references optional), "clean" (denoising) or "occluded".
        split: "train", "val" or None (all images).
        gray: load single-channel images.
        seed: seed of the deterministic train/validation split.
    """
    if data is None:
        return BuiltinImages(gray=gray)
    if not isinstance(data, (str, Path)):
        return data
    root = Path(data)
    if not root.is_dir():
        raise DatasetError(f"data: {root} is not a folder")
    if kind == "occluded":
        return OccludedPairs(root, split=split, seed=seed)
    has_pairs = (root / "low").is_dir() and (root / "high").is_dir()
    has_lol = (root / "our485").is_dir() or (root / "eval15").is_dir()
    if has_pairs or has_lol:
        return PairedImages(root, split=split, seed=seed, gray=gray)
    return UnpairedImages(root, split=split, seed=seed, gray=gray)


class PixelTask:
    """Batched pixel-wise MDP on ``num_envs`` images: transition and reward in torch.

    Subclasses define the spaces of one image (``single_observation_space``,
    ``single_action_space``), how an episode starts (:meth:`_start`), what the agent sees
    (:meth:`observe`) and the transition with its reward map (:meth:`_transition`).

    Args:
        num_envs: batch size B.
        device: torch device of every tensor the task holds.
        max_episode_steps: episode length; all episodes of the batch end together.
        data: None (embedded photos), a folder or a dataset; see :func:`open_dataset`.
        data_kind: how a folder is read ("paired", "clean" or "occluded"); set by the task.
        gray: single-channel images.
        split: "train", "val" or None (all images).
        split_seed: seed of the deterministic train/validation split.
        crop: random crop per episode, int or (h, w); None uses whole images (all of one size).
        validate_actions: check the range and shape of every action batch (one device sync).
    """

    #: dtype of discrete actions; continuous actions are float32.
    action_dtype: ClassVar[torch.dtype] = torch.long

    def __init__(self, num_envs: int, *, device: str | torch.device = "cpu", max_episode_steps: int,
                 data: Any = None, data_kind: str = "paired", gray: bool = False, split: str | None = "train",
                 split_seed: int = 0, crop: int | tuple[int, int] | None = 64, validate_actions: bool = True):
        if int(num_envs) < 1:
            raise ValueError(f"num_envs: expected an int >= 1, got {num_envs!r}")
        if int(max_episode_steps) < 1:
            raise ValueError(f"max_episode_steps: expected an int >= 1, got {max_episode_steps!r}")
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.max_episode_steps = int(max_episode_steps)
        self.validate_actions = validate_actions
        self.generator = torch.Generator(device=self.device)
        self.t = 0
        self.done = True
        self.dataset = open_dataset(data, kind=data_kind, split=split, gray=gray, seed=split_seed)
        if len(self.dataset) == 0:
            raise ValueError("data: the dataset is empty")
        self.crop = parse_crop(crop)
        #: (H, W) of every image of an episode: the crop, or the common size of the data.
        self.image_size = self.crop if self.crop is not None else common_size(self.dataset)
        self.single_observation_space: gym.spaces.Dict
        self.single_action_space: gym.spaces.Space

    # --- to be provided by each task -------------------------------------------------------
    def _start(self, rng: np.random.Generator, options: dict[str, Any] | None) -> None:
        """Begin B new episodes: draw (or take from ``options``) the images and set the state."""
        raise NotImplementedError

    def observe(self) -> dict[str, torch.Tensor]:
        """The batched observation: dict of tensors shaped like the single space plus batch."""
        raise NotImplementedError

    def _transition(self, actions: torch.Tensor) -> torch.Tensor:
        """Apply a batch of per-pixel actions; return the reward map (B, 1 or C, H, W)."""
        raise NotImplementedError

    # --- shared machinery ------------------------------------------------------------------
    def reset(self, rng: np.random.Generator, options: dict[str, Any] | None = None) -> dict:
        self.generator.manual_seed(int(rng.integers(_SEED_BOUND)))
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
        self.done = self.t >= self.max_episode_steps
        reward = reward_map.mean(dim=(1, 2, 3))
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        truncated = torch.full((self.num_envs,), self.done, dtype=torch.bool, device=self.device)
        return self.observe(), reward, terminated, truncated, {"reward_map": reward_map}

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
            if self.validate_actions:
                n = int(space.nvec.flat[0])
                low, high = int(actions.min()), int(actions.max())
                if low < 0 or high >= n:
                    raise ValueError(f"actions: values must be in 0..{n - 1}, got values in {low}..{high}")
        else:
            actions = actions.float()
            if self.validate_actions and not bool(torch.isfinite(actions).all()):
                raise ValueError("actions: continuous actions must be finite")
            actions = actions.clamp(float(space.low.min()), float(space.high.max()))
        return actions

    def draw_batch(self, rng: np.random.Generator) -> dict:
        """Draw B items (random images, crops and flips from ``rng``) as tensors on the device."""
        batch = sample_batch(self.dataset, self.num_envs, crop=self.crop, rng=rng)
        return {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in batch.items()}

    def options_batch(self, options: dict[str, Any], keys: tuple[str, ...], required: tuple[str, ...]) -> dict:
        """Tensors given through ``reset(options=...)``: numpy or torch, (C, H, W) or (B, C, H, W)."""
        missing = [k for k in required if k not in options]
        unknown = [k for k in options if k not in keys]
        if missing or unknown:
            raise ValueError(f"reset options: accepted keys {keys} (required {required}); "
                             f"missing {missing}, unknown {unknown}")
        out = {}
        for key in keys:
            if key not in options:
                continue
            value = torch.as_tensor(np.asarray(options[key]) if not torch.is_tensor(options[key]) else options[key])
            value = value.to(self.device, torch.float32)
            if value.ndim == 3:
                value = value.unsqueeze(0)
            if value.ndim != 4 or value.shape[0] != self.num_envs:
                raise ValueError(f"reset options[{key!r}]: expected shape ({self.num_envs}, C, H, W) "
                                 f"or (C, H, W) for one env, got {tuple(value.shape)}")
            out[key] = value
        return out


class PixelVectorEnv(VectorEnv):
    """Natively batched vector env over B images; observations, rewards and actions are torch
    tensors on ``device``. ``info["reward_map"]`` holds the per-pixel reward maps.

    Subclasses set ``task_class``; every keyword argument goes to the task.
    """

    task_class: ClassVar[type[PixelTask]]
    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.DISABLED, "render_modes": []}

    def __init__(self, num_envs: int = 1, *, device: str | torch.device = "cpu", **kwargs: Any):
        self.task = self.task_class(num_envs, device=device, **kwargs)
        self.num_envs = self.task.num_envs
        self.device = self.task.device
        self.single_observation_space = self.task.single_observation_space
        self.single_action_space = self.task.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def __getattr__(self, name: str):
        # task attributes (n_actions, max_episode_steps, alpha_table, ...) read through the env
        if name == "task":
            raise AttributeError(name)
        return getattr(self.task, name)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed, options=options)
        return self.task.reset(self.np_random, options), {}

    def step(self, actions: torch.Tensor):
        return self.task.step(actions)


class PixelEnv(gym.Env):
    """One-image Gymnasium env (numpy float32 observations, numpy actions) over the same task
    with B = 1 on the CPU. ``info["reward_map"]`` is a numpy (1 or C, H, W) array."""

    task_class: ClassVar[type[PixelTask]]
    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("device", "cpu")
        self.task = self.task_class(1, **kwargs)
        self.observation_space = self.task.single_observation_space
        self.action_space = self.task.single_action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs = self.task.reset(self.np_random, options)
        return _to_numpy(obs), {}

    def step(self, action):
        action = torch.as_tensor(np.asarray(action)).unsqueeze(0)
        obs, reward, terminated, truncated, info = self.task.step(action)
        return (_to_numpy(obs), float(reward[0]), bool(terminated[0]), bool(truncated[0]),
                {"reward_map": info["reward_map"][0].cpu().numpy()})


def _to_numpy(obs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v[0].detach().cpu().numpy().astype(np.float32, copy=True) for k, v in obs.items()}
