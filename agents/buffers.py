"""A compact replay buffer of batched pixel-wise transitions (for SAC).

One transition is one image of a vector env's batch: its observation planes, the per-pixel actions, the
reward map, the next observation and a terminal flag. Image planes are stored quantised:

* ``storage="uint8"``: 8-bit codes over each entry's own [min, max] range per transition (error at most
  ``(max - min) / 510``; constant planes come back exactly);
* ``storage="float16"``: a relative error of at most 2**-11.

Vectors (D,) are kept as float32, discrete actions as int8 (``n_actions <= 128``) or int16, continuous actions
and reward maps as float16, terminal flags as bool. The capacity is the most transitions whose storage fits
``capacity_mb`` (1 MB = 2**20 bytes), all allocated at the first ``add``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor

from rlenhance.errors import ImageError

__all__ = ["PixelReplayBuffer", "ReplaySample"]

#: bytes per MB in ``capacity_mb`` and the reported sizes.
MB = 2**20
STORAGES = ("uint8", "float16")
_UINT8_LEVELS = 255.0
_INT8_MAX_ACTIONS = 128
_INT16_MAX_ACTIONS = 2**15


class ReplaySample(NamedTuple):
    """A batch of N transitions drawn from a :class:`PixelReplayBuffer`, on its device.

    Attributes:
        obs: dict of float32 tensors, images (N, C_k, H, W), vectors (N, D).
        actions: int64 (N, C, H, W) for discrete actions, float32 (N, C, H, W) for continuous.
        reward_map: float32 (N, C_r, H_r, W_r), as added (e.g. (N, 1, H, W)).
        next_obs: dict like ``obs``, the observation after the step.
        done: float32 (N,), 1 where the episode terminated (not truncated) with the step.
    """

    obs: dict[str, Tensor]
    actions: Tensor
    reward_map: Tensor
    next_obs: dict[str, Tensor]
    done: Tensor


class PixelReplayBuffer:
    """Ring buffer of batched image transitions with a memory bound.

    Args:
        capacity_mb: memory bound of the stored transitions, in MB (2**20 bytes), > 0.
        storage: how observation planes are stored: ``"uint8"`` (per-entry min/max quantisation) or ``"float16"``.
        device: where the storage lives and samples are returned; None = the first batch's device.
        n_actions: discrete actions per pixel, when known: int8 storage when <= 128 (else int16).
            None: int16 for integer actions (values must be in [0, 32767]).

    Example:
        >>> buf = PixelReplayBuffer(capacity_mb=16, storage="uint8")
        >>> obs = {"image": torch.rand(4, 3, 8, 8)}
        >>> actions, reward_map = torch.randint(0, 9, (4, 3, 8, 8)), torch.rand(4, 1, 8, 8)
        >>> buf.add(obs, actions, reward_map, obs, torch.zeros(4, dtype=torch.bool))   # a batch of B transitions
        >>> sample = buf.sample(2, generator=torch.Generator().manual_seed(0))
    """

    def __init__(self, capacity_mb: float, storage: str = "uint8",
                 device: str | torch.device | None = None, n_actions: int | None = None):
        if not capacity_mb > 0:
            raise ValueError(f"PixelReplayBuffer: capacity_mb={capacity_mb!r}; expected a number > 0")
        if storage not in STORAGES:
            raise ValueError(f"PixelReplayBuffer: storage={storage!r}; expected one of {STORAGES}")
        if n_actions is not None and not 2 <= int(n_actions) <= _INT16_MAX_ACTIONS:
            raise ValueError(f"PixelReplayBuffer: n_actions={n_actions!r}; expected None or an "
                             f"integer in [2, {_INT16_MAX_ACTIONS}]")
        self.capacity_mb = float(capacity_mb)
        self.storage = storage
        self.device = None if device is None else torch.device(device)
        self.n_actions = None if n_actions is None else int(n_actions)
        self.capacity = 0
        self._store: dict[str, Tensor] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._image_keys: tuple[str, ...] = ()
        self._vector_keys: tuple[str, ...] = ()
        self._discrete = False
        self._pos = 0
        self._size = 0

    # ---- sizes ------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of transitions held (<= ``capacity``)."""
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes of the allocated storage (0 before the first ``add``); <= ``capacity_mb`` MB."""
        return sum(t.numel() * t.element_size() for t in self._store.values())

    @property
    def transition_nbytes(self) -> int:
        """Bytes one transition occupies (0 before the first ``add``)."""
        return self.nbytes // self.capacity if self.capacity else 0

    @property
    def used_mb(self) -> float:
        """MB taken by the transitions held so far."""
        return self._size * self.transition_nbytes / MB

    # ---- adding -----------------------------------------------------------------------------
    def add(self, obs: Mapping[str, Tensor], actions: Tensor, reward_map: Tensor,
            next_obs: Mapping[str, Tensor], done: Tensor) -> None:
        """Append a batch of B transitions (overwriting the oldest when full).

        Args:
            obs: dict of tensors: images (B, C_k, H, W) (any float range) and vectors (B, D).
            actions: (B, C, H, W): integer action indices, or floats (continuous actions).
            reward_map: float (B, C_r, H_r, W_r), the per-pixel rewards of the step.
            next_obs: dict with the keys and shapes of ``obs``.
            done: bool/float (B,), the episode terminated with the step.

        Raises:
            ImageError: shapes or keys differ from those of the first batch, or disagree in B.
            ValueError: the bound holds no transition, or discrete actions are out of range.
        """
        batch = int(actions.shape[0]) if actions.dim() else 0
        self._check_batch(obs, actions, reward_map, next_obs, done, batch)
        if not self.capacity:
            self._allocate(obs, actions, reward_map)
        else:
            self._check_shapes(obs, actions, reward_map, next_obs)
        if self._discrete:
            limit = self.n_actions if self.n_actions is not None else _INT16_MAX_ACTIONS
            if actions.is_floating_point() or int(actions.min()) < 0 or int(actions.max()) >= limit:
                raise ValueError(f"PixelReplayBuffer.add: discrete actions must be integers in "
                                 f"[0, {limit - 1}] (n_actions={self.n_actions})")
        elif not actions.is_floating_point():
            raise ValueError("PixelReplayBuffer.add: actions are integers but the buffer holds "
                             "continuous (float) actions")
        first = max(batch - self.capacity, 0)  # a batch larger than the buffer keeps its last items
        idx = (self._pos + torch.arange(first, batch, device=self.device)) % self.capacity
        sl = slice(first, batch)
        for prefix, o in (("obs", obs), ("next_obs", next_obs)):
            for k in self._image_keys:
                self._put_image(f"{prefix}/{k}", o[k][sl], idx)
            for k in self._vector_keys:
                self._store[f"{prefix}/{k}"][idx] = o[k][sl].to(self.device, torch.float32)
        self._store["actions"][idx] = actions[sl].to(self.device, self._store["actions"].dtype)
        self._store["reward_map"][idx] = reward_map[sl].to(self.device, torch.float16)
        self._store["done"][idx] = torch.as_tensor(done).to(self.device).view(-1)[sl].bool()
        self._pos = (self._pos + batch) % self.capacity
        self._size = min(self._size + batch, self.capacity)

    def _check_batch(self, obs, actions, reward_map, next_obs, done, batch: int) -> None:
        if set(obs) != set(next_obs):
            raise ImageError(f"PixelReplayBuffer.add: obs keys {sorted(obs)} differ from next_obs "
                             f"keys {sorted(next_obs)}")
        sizes = {"actions": actions.shape[:1], "reward_map": reward_map.shape[:1],
                 "done": torch.as_tensor(done).reshape(-1).shape}
        sizes.update({f"obs[{k!r}]": v.shape[:1] for k, v in obs.items()})
        sizes.update({f"next_obs[{k!r}]": v.shape[:1] for k, v in next_obs.items()})
        bad = {k: tuple(v) for k, v in sizes.items() if tuple(v) != (batch,)}
        if batch < 1 or bad:
            raise ImageError(f"PixelReplayBuffer.add: batch sizes disagree: actions have "
                             f"{batch}, but {bad}; expected every entry to lead with B={batch} >= 1")
        if actions.dim() != 4 or reward_map.dim() != 4:
            raise ImageError(f"PixelReplayBuffer.add: actions {tuple(actions.shape)} and reward_map "
                             f"{tuple(reward_map.shape)}; expected (B, C, H, W) tensors")

    def _allocate(self, obs: Mapping[str, Tensor], actions: Tensor, reward_map: Tensor) -> None:
        """Fix the shapes and dtypes from the first batch and allocate the ring storage."""
        if self.device is None:
            self.device = actions.device
        self._image_keys = tuple(k for k, v in obs.items() if v.dim() == 4)
        self._vector_keys = tuple(k for k, v in obs.items() if v.dim() == 2)
        odd = [k for k, v in obs.items() if v.dim() not in (2, 4)]
        if odd:
            raise ImageError(f"PixelReplayBuffer.add: obs entries {odd} have shapes "
                             f"{[tuple(obs[k].shape) for k in odd]}; expected (B, C, H, W) or (B, D)")
        self._discrete = not actions.is_floating_point()
        if self._discrete:
            small = self.n_actions is not None and self.n_actions <= _INT8_MAX_ACTIONS
            action_dtype = torch.int8 if small else torch.int16
        else:
            action_dtype = torch.float16
        obs_dtype = torch.uint8 if self.storage == "uint8" else torch.float16
        layout: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        for prefix in ("obs", "next_obs"):
            for k in self._image_keys:
                layout[f"{prefix}/{k}"] = (tuple(obs[k].shape[1:]), obs_dtype)
                if self.storage == "uint8":
                    layout[f"{prefix}/{k}#range"] = ((2,), torch.float32)
            for k in self._vector_keys:
                layout[f"{prefix}/{k}"] = (tuple(obs[k].shape[1:]), torch.float32)
        layout["actions"] = (tuple(actions.shape[1:]), action_dtype)
        layout["reward_map"] = (tuple(reward_map.shape[1:]), torch.float16)
        layout["done"] = ((), torch.bool)
        per_item = sum(math.prod(shape) * torch.empty((), dtype=dtype).element_size()
                       for shape, dtype in layout.values())
        capacity = int(self.capacity_mb * MB // per_item)
        if capacity < 1:
            raise ValueError(f"PixelReplayBuffer: capacity_mb={self.capacity_mb!r} holds no transition "
                             f"of {per_item} bytes; expected capacity_mb >= {per_item / MB:.6f}")
        self.capacity = capacity
        self._shapes = {k: shape for k, (shape, _) in layout.items()}
        self._store = {k: torch.empty((capacity, *shape), dtype=dtype, device=self.device)
                       for k, (shape, dtype) in layout.items()}

    def _check_shapes(self, obs, actions, reward_map, next_obs) -> None:
        if set(obs) != set(self._image_keys + self._vector_keys):
            raise ImageError(f"PixelReplayBuffer.add: obs keys {sorted(obs)}; expected "
                             f"{sorted(self._image_keys + self._vector_keys)} as in the first batch")
        checks = [("actions", actions), ("reward_map", reward_map)]
        checks += [(f"obs/{k}", obs[k]) for k in obs] + [(f"next_obs/{k}", next_obs[k]) for k in next_obs]
        for name, t in checks:
            if tuple(t.shape[1:]) != self._shapes[name]:
                raise ImageError(f"PixelReplayBuffer.add: {name} has shape {tuple(t.shape)}; expected "
                                 f"(B, {', '.join(map(str, self._shapes[name]))}) as in the first batch")

    def _put_image(self, key: str, x: Tensor, idx: Tensor) -> None:
        x = x.to(self.device, torch.float32)
        if self.storage == "float16":
            self._store[key][idx] = x.to(torch.float16)
            return
        flat = x.flatten(1)
        lo, hi = flat.amin(dim=1), flat.amax(dim=1)
        scale = (hi - lo) / _UINT8_LEVELS
        codes = ((flat - lo[:, None]) / scale.clamp_min(torch.finfo(torch.float32).tiny)[:, None])
        self._store[key][idx] = codes.round_().clamp_(0, _UINT8_LEVELS).to(torch.uint8).view_as(x)
        self._store[f"{key}#range"][idx] = torch.stack([lo, scale], dim=1)

    # ---- sampling ---------------------------------------------------------------------------
    def sample(self, batch: int, generator: torch.Generator | None = None) -> ReplaySample:
        """Draw ``batch`` transitions uniformly with replacement.

        Args:
            batch: number of transitions N >= 1.
            generator: torch Generator for the indices (any device); None = the global RNG.

        Returns:
            :class:`ReplaySample` of float32 tensors (int64 discrete actions) on ``device``.

        Raises:
            ValueError: the buffer is empty or ``batch < 1``.
        """
        return self.get(self.sample_indices(batch, generator))

    def sample_indices(self, batch: int, generator: torch.Generator | None = None) -> Tensor:
        """The ring positions :meth:`sample` draws: int64 (batch,) on ``device``, uniform with replacement.

        Raises:
            ValueError: the buffer is empty or ``batch < 1``.
        """
        if self._size == 0 or batch < 1:
            raise ValueError(f"PixelReplayBuffer.sample: batch={batch!r} from {self._size} transitions; "
                             "expected batch >= 1 and a non-empty buffer (add() first)")
        gen_device = generator.device if generator is not None else self.device
        idx = torch.randint(self._size, (int(batch),), generator=generator, device=gen_device)
        return idx.to(self.device)

    def get(self, idx: Tensor) -> ReplaySample:
        """The transitions at ring positions ``idx`` (int64 (N,), < ``len(self)``), decoded."""
        def decode(prefix: str) -> dict[str, Tensor]:
            out = {}
            for k in self._image_keys:
                data = self._store[f"{prefix}/{k}"][idx].float()
                if self.storage == "uint8":
                    lo, scale = self._store[f"{prefix}/{k}#range"][idx].unbind(1)
                    shape = (-1,) + (1,) * (data.dim() - 1)
                    data = data * scale.view(shape) + lo.view(shape)
                out[k] = data
            for k in self._vector_keys:
                out[k] = self._store[f"{prefix}/{k}"][idx]
            return out

        actions = self._store["actions"][idx]
        actions = actions.long() if self._discrete else actions.float()
        return ReplaySample(decode("obs"), actions, self._store["reward_map"][idx].float(),
                            decode("next_obs"), self._store["done"][idx].float())
