"""Checks of the arguments every rlenhance env takes (``gym.make(id, ...)``, ``envs.make_vec``):
a value of the wrong type is a TypeError, one out of range a ValueError, each naming the argument,
before anything is allocated. ``device`` is checked by :func:`rlenhance.runtime.select_device`."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlenhance.runtime import check_memory

__all__ = ["check_batch_memory", "check_count", "check_crop", "check_crop_fits"]


def check_count(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``: a Python or numpy integer (not a bool, a float or a string)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name}: expected an int >= {minimum}, got {value!r} ({type(value).__name__})")
    if int(value) < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def check_crop(crop: Any) -> tuple[int, int] | None:
    """A crop argument as ``(height, width)``, or None: an int >= 1 or a pair of them (a list or a tuple); a
    string, a float or a bool is a TypeError."""
    if crop is None:
        return None
    expected = "a positive int, a (height, width) pair of them or None"
    if isinstance(crop, (list, tuple)):
        if len(crop) != 2:
            raise ValueError(f"crop: expected {expected}; got {crop!r} ({len(crop)} values)")
        sides = tuple(crop)
    elif isinstance(crop, Integral) and not isinstance(crop, bool):
        sides = (crop, crop)
    else:
        raise TypeError(f"crop: expected {expected}; got {crop!r} ({type(crop).__name__})")
    for side in sides:
        if isinstance(side, bool) or not isinstance(side, Integral):
            raise TypeError(f"crop: expected {expected}; got {crop!r} (a side of type {type(side).__name__})")
        if int(side) < 1:
            raise ValueError(f"crop: expected {expected}; got {crop!r}")
    return int(sides[0]), int(sides[1])


def check_crop_fits(crop: tuple[int, int] | None, dataset: Any) -> None:
    """A ValueError when ``crop`` is larger than the first image of ``dataset`` (its smallest tensor)."""
    if crop is None or len(dataset) == 0:
        return
    sizes = [tuple(v.shape[-2:]) for v in dataset[0].values() if torch.is_tensor(v) and v.dim() >= 2]
    if not sizes:
        return
    height, width = min(h for h, _ in sizes), min(w for _, w in sizes)
    if crop[0] > height or crop[1] > width:
        raise ValueError(f"crop: {crop[0]}x{crop[1]} pixels is larger than the images of data (the first is "
                         f"{height}x{width}); use a crop no larger than the smallest image")


def check_batch_memory(num_envs: int, *spaces: gym.Space) -> None:
    """Refuse ``num_envs`` copies of ``spaces`` (one env's observation and action spaces) whose arrays alone need
    more memory than this machine has (:func:`rlenhance.runtime.check_memory`)."""
    per_env = sum(_space_bytes(space) for space in spaces)
    check_memory(num_envs * per_env, f"num_envs {num_envs:,}: the vector env's spaces alone ({per_env:,} bytes an env)",
                 "use fewer envs (a trainer's run.batch) or smaller crops")


def _space_bytes(space: gym.Space) -> int:
    """The bytes of the arrays that describe ``space`` (and its subspaces)."""
    if isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple)):
        parts = space.spaces.values() if isinstance(space, gym.spaces.Dict) else space.spaces
        return sum(_space_bytes(part) for part in parts)
    return sum(value.nbytes for value in vars(space).values() if isinstance(value, np.ndarray))
