"""Per-pixel filter actions: :class:`FilterAction`, PixelRL's action table, and how a bank is planned.

:data:`PIXELRL_ACTION_TABLE` is the only place PixelRL's nine actions are written. A bank's plan
(:func:`_bank_plan`) and per-action specs (:func:`_action_specs`) are cached per action table.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from rlenhance.ops._checks import _check_batch, _check_bilateral_params, _check_ksize
from rlenhance.ops.bilateral import bilateral_filter2d
from rlenhance.ops.blur import _box_taps, _gaussian_taps, box_blur2d, gaussian_blur2d
from rlenhance.ops.median import median_blur2d

__all__ = ["PIXELRL_ACTIONS", "PIXELRL_ACTION_TABLE", "FilterAction", "shift_intensity"]


def shift_intensity(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Add ``delta`` to every value, WITHOUT clipping, as PixelRL's +-1/255 actions (values may leave [0, 1]).

    Args:
        x: Image batch, float tensor of shape (B, C, H, W).
        delta: Value added.

    Returns:
        ``x + delta``, same shape and dtype.
    """
    _check_batch(x)
    return x + delta


def _identity(x: torch.Tensor) -> torch.Tensor:
    _check_batch(x)
    return x


@dataclass(frozen=True)
class FilterAction:
    """One action of a per-pixel filter bank: a short name, an op and its keyword arguments.

    Attributes:
        name: Short name, e.g. ``"gaussian_0.5"``.
        op: Function ``op(x, **params)`` on (B, C, H, W) tensors.
        params: Keyword arguments of ``op`` as ``((name, value), ...)`` (immutable).
    """

    name: str
    op: Callable[..., torch.Tensor]
    params: tuple[tuple[str, float], ...] = ()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x, **dict(self.params))


def _params(**kwargs: float) -> tuple[tuple[str, float], ...]:
    return tuple(kwargs.items())


#: PixelRL's nine actions, in PixelRL's order, with their parameters (Furuta et al., 2019).
PIXELRL_ACTION_TABLE: tuple[FilterAction, ...] = (
    FilterAction("pixel_minus", shift_intensity, _params(delta=-1.0 / 255.0)),
    FilterAction("keep", _identity),
    FilterAction("pixel_plus", shift_intensity, _params(delta=1.0 / 255.0)),
    FilterAction("gaussian_0.5", gaussian_blur2d, _params(ksize=5, sigma=0.5)),
    FilterAction("bilateral_0.1", bilateral_filter2d, _params(d=5, sigma_color=0.1, sigma_space=5.0)),
    FilterAction("median", median_blur2d, _params(ksize=5)),
    FilterAction("gaussian_1.5", gaussian_blur2d, _params(ksize=5, sigma=1.5)),
    FilterAction("bilateral_1.0", bilateral_filter2d, _params(d=5, sigma_color=1.0, sigma_space=5.0)),
    FilterAction("box", box_blur2d, _params(ksize=5)),
)

#: Short names of PixelRL's nine actions, index = action id.
PIXELRL_ACTIONS: tuple[str, ...] = tuple(action.name for action in PIXELRL_ACTION_TABLE)

# Ops the bank fuses (shared padding, distances and buffers); any other op is called as is.
_FUSED_OPS = (shift_intensity, _identity, gaussian_blur2d, box_blur2d, median_blur2d, bilateral_filter2d)


@dataclass(frozen=True)
class _BankPlan:
    """How :func:`pixelrl_filter_bank` computes a bank, per op the candidate indices (and parameters); the
    bilateral groups share distances, ``pad`` is the reflect-101 padding of the linear and bilateral filters."""

    shifts: tuple[tuple[int, float], ...]
    copies: tuple[int, ...]
    medians: tuple[tuple[int, int], ...]
    linear: tuple[tuple[int, tuple[tuple[float, ...], tuple[float, ...]]], ...]
    bilateral: tuple[tuple[tuple[int, ...], tuple[float, ...], int, float, int], ...]
    other: tuple[int, ...]
    pad: int


def _make_bank_plan(actions: tuple[FilterAction, ...]) -> _BankPlan:
    """Group a bank's actions by op and validate their parameters (raises as the op would)."""
    shifts, copies, medians, linear, other = [], [], [], [], []
    bilateral: dict[tuple, list[tuple[int, float]]] = {}  # (d, sigma_space, bins) -> [(index, sigma_color)]
    for k, action in enumerate(actions):
        if action.op not in _FUSED_OPS:
            other.append(k)
            continue
        bound = inspect.signature(action.op).bind_partial(**dict(action.params))
        bound.apply_defaults()
        kwargs = bound.arguments
        if action.op is shift_intensity:
            shifts.append((k, kwargs["delta"]))
        elif action.op is _identity:
            copies.append(k)
        elif action.op is gaussian_blur2d:
            linear.append((k, _gaussian_taps(kwargs["ksize"], kwargs["sigma"])))
        elif action.op is box_blur2d:
            linear.append((k, _box_taps(kwargs["ksize"])))
        elif action.op is median_blur2d:
            _check_ksize(kwargs["ksize"])
            medians.append((k, kwargs["ksize"]))
        else:
            _check_bilateral_params(kwargs["d"], kwargs["sigma_color"], kwargs["sigma_space"],
                                    kwargs["lut_bins_per_channel"])
            key = (kwargs["d"], kwargs["sigma_space"], kwargs["lut_bins_per_channel"])
            bilateral.setdefault(key, []).append((k, kwargs["sigma_color"]))
    groups = tuple((tuple(k for k, _ in members), tuple(s for _, s in members)) + key
                   for key, members in bilateral.items())
    pad = max([len(taps[0]) - 1 for _, taps in linear] + [max(d // 2, 1) for d, _, _ in bilateral], default=0)
    return _BankPlan(tuple(shifts), tuple(copies), tuple(medians), tuple(linear), groups, tuple(other), pad)


_cached_bank_plan = functools.lru_cache(maxsize=64)(_make_bank_plan)


def _bank_plan(actions: Sequence[FilterAction]) -> _BankPlan:
    actions = tuple(actions)
    try:
        return _cached_bank_plan(actions)
    except TypeError:  # unhashable parameters: plan without the cache
        return _make_bank_plan(actions)


@dataclass(frozen=True)
class _ActionSpec:
    """How one action is evaluated at chosen pixels: ``kind`` ("identity", "shift", "median", "linear",
    "bilateral" or "other") and its parameters."""

    kind: str
    params: tuple = ()


def _make_action_specs(actions: tuple[FilterAction, ...]) -> tuple[tuple[_ActionSpec, ...], int]:
    """Per-action specs of a bank (validated as the ops would) and the padding its windows need."""
    plan = _make_bank_plan(actions)
    specs = [_ActionSpec("other")] * len(actions)
    for k in plan.copies:
        specs[k] = _ActionSpec("identity")
    for k, delta in plan.shifts:
        specs[k] = _ActionSpec("shift", (delta,))
    for k, ksize in plan.medians:
        specs[k] = _ActionSpec("median", (ksize,))
    for k, taps in plan.linear:
        specs[k] = _ActionSpec("linear", (taps,))
    for indices, sigma_colors, d, sigma_space, bins in plan.bilateral:
        for k, sigma_color in zip(indices, sigma_colors):
            specs[k] = _ActionSpec("bilateral", (d, sigma_color, sigma_space, bins))
    pad = max([plan.pad] + [ksize // 2 for _, ksize in plan.medians])
    return tuple(specs), pad


_cached_action_specs = functools.lru_cache(maxsize=64)(_make_action_specs)


def _action_specs(actions: Sequence[FilterAction]) -> tuple[tuple[_ActionSpec, ...], int]:
    actions = tuple(actions)
    try:
        return _cached_action_specs(actions)
    except TypeError:  # unhashable parameters: no cache
        return _make_action_specs(actions)
