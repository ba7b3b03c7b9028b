"""Light-enhancement (LE) curves of Zero-DCE / Zero-DCE++ / ReLLIE.

``LE(x; alpha) = x + alpha * x * (1 - x)`` maps an intensity ``x`` in [0, 1] into [0, 1], monotonically and
keeping 0 and 1 fixed, for a curve parameter ``alpha`` in [-1, 1]. :func:`le_curve` is the only place the
formula is written. This is the paper's sign: the public Zero-DCE code's ``x + r * (x**2 - x)`` is ``alpha = -r``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlenhance.errors import ImageError
from rlenhance.ops import native

__all__ = ["LECurve", "LECurveIterative", "cap_mean", "check_max_overshoot", "couple_channels", "le_curve",
           "le_curve_iterative", "le_curves_upsampled", "le_gain", "le_step", "overshoot_limit", "as_unit",
           "store_samples", "upsample_rows"]

_ALPHA_SHAPES = "a python float or a tensor broadcastable to x without enlarging it: per image " \
    "(B, 1, 1, 1), per channel (B, C, 1, 1), per pixel (B, 1, H, W) or per pixel and channel (B, C, H, W)"


def _check_image(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise ImageError(f"{name} must be a torch.Tensor of shape (*, C, H, W); got {type(x).__name__}")
    if x.ndim < 3:
        raise ImageError(f"{name} must have shape (*, C, H, W) (at least 3 dims); got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ImageError(f"{name} must be a floating-point tensor with values in [0, 1]; got dtype {x.dtype}")


def _fits(alpha: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether ``alpha`` broadcasts to ``x``'s shape without enlarging it (numpy's rule: torch's imports slowly)."""
    try:
        return np.broadcast_shapes(tuple(alpha.shape), tuple(x.shape)) == tuple(x.shape)
    except ValueError:
        return False


def _check_alpha(x: torch.Tensor, alpha: float | torch.Tensor, name: str = "alpha") -> None:
    if isinstance(alpha, torch.Tensor):
        if not _fits(alpha, x):
            raise ValueError(f"{name} of shape {tuple(alpha.shape)} does not fit x of shape {tuple(x.shape)}; "
                             f"accepted: {_ALPHA_SHAPES}")
    elif not isinstance(alpha, numbers.Real) or isinstance(alpha, bool):
        raise ValueError(f"{name} must be {_ALPHA_SHAPES}; got {type(alpha).__name__}")


def le_curve(x: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """One step of the quadratic light-enhancement curve, ``LE(x; alpha) = x + alpha * x * (1 - x)``.

    ``alpha > 0`` brightens, ``alpha < 0`` darkens; differentiable in ``x`` and ``alpha``.

    Args:
        x: Image, floating-point tensor of shape (*, C, H, W) with values in [0, 1].
        alpha: Curve parameter, usually in [-1, 1]: a python float, or a tensor broadcastable to ``x`` without
            enlarging it: per image (B, 1, 1, 1), per channel (B, C, 1, 1), per pixel (B, 1, H, W) or both.

    Returns:
        Tensor with the shape and dtype of ``x``.

    Raises:
        ImageError: ``x`` is not a floating-point tensor with at least 3 dims.
        ValueError: ``alpha`` does not broadcast to the shape of ``x``.

    Example:
        >>> x = torch.full((1, 3, 2, 2), 0.5)
        >>> le_curve(x, 1.0)[0, 0, 0, 0].item()
        0.75
    """
    _check_image(x)
    _check_alpha(x, alpha)
    return x + alpha * x * (1 - x)


def cap_mean(x: torch.Tensor, alpha: torch.Tensor, limit: float | torch.Tensor) -> torch.Tensor:
    """Scale a curve step down, per image, so that it does not lift the image mean above ``limit``.

    Where the full step would end above ``limit``, alpha is multiplied by the largest ``s`` in [0, 1] that ends
    at ``limit`` (the mean is linear in alpha); any other step is multiplied by exactly 1.

    Args:
        x: Image, floating-point tensor (B, C, H, W) in [0, 1].
        alpha: Curve parameters as :func:`le_curve` takes them, a tensor with a batch dim of B.
        limit: the highest image mean a step may reach, a number or a tensor of shape () or (B,)
            (:func:`overshoot_limit` builds it from an exposure target and a ``max_overshoot``).

    Returns:
        ``alpha * s`` with ``s`` of shape (B, 1, 1, 1): the shape of ``alpha``, enlarged to (B, 1, 1, 1) at least.

    Raises:
        ValueError: ``limit`` is not a real number or a () / (B,) tensor, or (a number or a CPU tensor) holds NaN.

    Example:
        >>> x = torch.full((1, 3, 2, 2), 0.5)
        >>> round(le_curve(x, cap_mean(x, torch.ones(1, 1, 2, 2), 0.6)).mean().item(), 6)  # uncapped: 0.75
        0.6
    """
    _check_image(x)
    _check_alpha(x, alpha)
    _check_limit(x, limit)
    rise = (alpha * x * (1 - x)).mean(dim=(-3, -2, -1))
    room = torch.as_tensor(limit, dtype=x.dtype, device=x.device) - x.mean(dim=(-3, -2, -1))
    over = (rise > 0) & (rise > room)
    scale = torch.where(over, (room / torch.where(over, rise, 1.0)).clamp(0.0, 1.0), 1.0)
    return alpha * scale.view(*scale.shape, 1, 1, 1)


def _check_limit(x: torch.Tensor, limit: float | torch.Tensor) -> None:
    batch = tuple(x.shape[:-3])
    if isinstance(limit, torch.Tensor):
        if tuple(limit.shape) not in ((), batch):
            raise ValueError(f"limit of shape {tuple(limit.shape)} does not fit x of shape {tuple(x.shape)}; "
                             f"accepted: a number, or a tensor of shape () or {batch}")
        if limit.device.type == "cpu" and bool(torch.isnan(limit).any()):
            raise ValueError("limit holds NaN; accepted: the highest image mean a step may reach")
    elif isinstance(limit, bool) or not isinstance(limit, numbers.Real) or math.isnan(limit):
        raise ValueError(f"limit must be a number or a tensor of shape () or {batch}; got {limit!r}")


def le_step(x: torch.Tensor, alpha: torch.Tensor,
            limit: float | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One LE step of a batch, capped by :func:`cap_mean` when a ``limit`` is given (the low-light transition).

    On the CPU the cap is computed only when some image's full step ends above ``limit`` (the same result up
    to rounding at the limit, for fewer ops).

    Args:
        x: Image batch, floating-point (B, C, H, W) in [0, 1].
        alpha: Curve parameters as :func:`le_curve` takes them, with a batch dim of B.
        limit: :func:`cap_mean`'s limit (a number, or a () / (B,) tensor); None: no cap.

    Returns:
        ``(alpha, stepped)``: the alpha applied (capped or not) and ``le_curve(x, alpha)``, not clamped.
    """
    if limit is None:
        return alpha, le_curve(x, alpha)
    _check_limit(x, limit)
    if x.device.type == "cpu" and not torch.jit.is_tracing():  # a trace (ONNX export) keeps no branch
        stepped = le_curve(x, alpha)
        if not bool((stepped.mean(dim=(-3, -2, -1)) > limit).any()):
            return alpha, stepped
    alpha = cap_mean(x, alpha, limit)
    return alpha, le_curve(x, alpha)


def check_max_overshoot(value: float | None, name: str = "max_overshoot", *,
                        inf_means_none: bool = False) -> float | None:
    """The one rule for a cap on how far a curve step may lift an image's mean above its exposure target:
    None (no cap) or a real number ``0 <= value < 1``; with ``inf_means_none``, ``math.inf`` means no cap too.

    Returns:
        the cap as a float, or None for no cap.

    Raises:
        ValueError: naming ``name``, what it got and what is accepted.
    """
    if value is None:
        return None
    number = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if number and inf_means_none and float(value) == math.inf:
        return None
    if not number or not 0.0 <= float(value) < 1.0:
        accepted = "None (no cap)" + (", inf (no cap)" if inf_means_none else "")
        raise ValueError(f"{name}: expected a number with 0 <= {name} < 1 (the most a step may lift the image "
                         f"mean above the exposure target), or {accepted}; got {value!r}")
    return float(value)


def overshoot_limit(target: float | torch.Tensor, max_overshoot: float | None,
                    w_exposure: float | torch.Tensor | None = None,
                    reference_w_exposure: float | None = None) -> float | torch.Tensor | None:
    """The highest image mean a capped step may reach (:func:`cap_mean`'s ``limit``): ``target`` (a number or a
    (B,) tensor) plus the cap; None when ``max_overshoot`` is None.

    The cap is ``max_overshoot``, or, given both the exposure weight in use ``w_exposure`` (> 0) and the one
    the cap was set for, ``max_overshoot * sqrt(reference_w_exposure / w_exposure)`` (the same exposure penalty).
    """
    if max_overshoot is None:
        return None
    if (w_exposure is None) != (reference_w_exposure is None):
        raise ValueError("overshoot_limit: give both w_exposure and reference_w_exposure (a weighted cap), or "
                         f"neither (a fixed one); got w_exposure={w_exposure!r}, "
                         f"reference_w_exposure={reference_w_exposure!r}")
    if w_exposure is None:
        return target + max_overshoot
    return target + max_overshoot * (reference_w_exposure / w_exposure) ** 0.5


def le_gain(x: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """How much one LE step brightens each pixel: ``LE(x; alpha) / x = 1 + alpha * (1 - x)`` (also at ``x = 0``).

    Its product over steps is ``x_T / x_0``, from which ReLLIE's noise-level map is derived.

    Args:
        x: Image before the step, floating-point tensor of shape (*, C, H, W) with values in [0, 1].
        alpha: Curve parameter as in :func:`le_curve`.

    Returns:
        Tensor with the shape and dtype of ``x``; in [0, 2] for ``alpha`` in [-1, 1].

    Raises:
        ImageError: ``x`` is not a floating-point tensor with at least 3 dims.
        ValueError: ``alpha`` does not broadcast to the shape of ``x``.

    Example:
        >>> x = torch.full((1, 1, 1, 1), 0.25)
        >>> bool(torch.allclose(le_curve(x, 0.5), x * le_gain(x, 0.5)))
        True
        >>> le_gain(torch.zeros(1, 1, 1, 1), 0.5).item()
        1.5
    """
    _check_image(x)
    _check_alpha(x, alpha)
    return 1 + alpha * (1 - x)


def _check_n_iter(n_iter: int | None) -> None:
    if n_iter is not None and (isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1):
        raise ValueError(f"n_iter must be a positive int or None; got {n_iter!r}")


def _split_maps(x: torch.Tensor, alpha: float | torch.Tensor, n_iter: int | None) -> list:
    """Turn ``alpha`` and ``n_iter`` into the list of curve maps to apply, in order."""
    _check_n_iter(n_iter)
    n_channels = x.shape[-3]
    if not isinstance(alpha, torch.Tensor) or alpha.ndim < 3:
        if n_iter is None:
            raise ValueError("n_iter=None means alpha is a stack of maps of shape (B, n*C, H, W); a scalar "
                             "alpha needs n_iter (the number of times to apply it)")
        _check_alpha(x, alpha)
        return [alpha] * n_iter
    k = alpha.shape[-3]
    if n_iter is not None:
        if _fits(alpha, x):  # one map applied n_iter times (Zero-DCE++ style)
            return [alpha] * n_iter
        if k == n_iter * n_channels:  # n_iter maps of C channels (Zero-DCE style)
            maps = list(torch.split(alpha, n_channels, dim=-3))
        else:
            raise ValueError(
                f"alpha of shape {tuple(alpha.shape)} fits neither form for x of shape {tuple(x.shape)} and "
                f"n_iter={n_iter}: pass one map ({_ALPHA_SHAPES}) or a stack of n_iter maps with "
                f"n_iter*C = {n_iter * n_channels} channels in dim -3")
    else:
        if k % n_channels != 0:
            raise ValueError(
                f"with n_iter=None alpha must be a stack of maps with n*C channels in dim -3 (C = {n_channels}); "
                f"got alpha of shape {tuple(alpha.shape)}. Pass n_iter to apply a single map repeatedly")
        maps = list(torch.split(alpha, n_channels, dim=-3))
    for i, a in enumerate(maps):
        _check_alpha(x, a, name=f"alpha map {i} (channels {i * n_channels}..{(i + 1) * n_channels - 1})")
    return maps


def le_curve_iterative(x: torch.Tensor, alpha: float | torch.Tensor, n_iter: int | None = None) -> torch.Tensor:
    """Apply the LE curve several times: ``x_{t+1} = le_curve(x_t, alpha_t)``.

    ``alpha`` is one map applied ``n_iter`` times (Zero-DCE++: any shape :func:`le_curve` takes), or a stack of n maps
    applied in order (Zero-DCE: (B, n*C, H, W), map ``t`` is ``alpha[:, t*C:(t+1)*C]``; ``n_iter`` None or n).

    Args:
        x: Image, floating-point tensor of shape (*, C, H, W) with values in [0, 1].
        alpha: Curve parameter(s) in [-1, 1], see above.
        n_iter: Number of curve steps, or None to infer it from a stacked ``alpha``.

    Returns:
        Tensor with the shape and dtype of ``x``, in [0, 1] when every alpha is in [-1, 1].

    Raises:
        ImageError: ``x`` is not a floating-point tensor with at least 3 dims.
        ValueError: ``alpha`` and ``n_iter`` are inconsistent with each other or with ``x``.
    """
    _check_image(x)
    for a in _split_maps(x, alpha, n_iter):
        x = le_curve(x, a)
    return x


def couple_channels(alpha: torch.Tensor, coupling: float, reference: int = 2) -> torch.Tensor:
    """ReLLIE's channel coupling: every channel but ``reference`` takes ``coupling * alpha_ref + (1 - coupling)
    * alpha_own``. ReLLIE's reference head acts on blue (its code reads BGR): ``reference=2`` in RGB.

    Args:
        alpha: curve parameters, float (B, C, H, W) (any C; C = 1 is returned unchanged).
        coupling: in [0, 1]; 0 returns ``alpha`` unchanged, 1 gives every channel the reference's.
        reference: the channel the others are pulled towards.

    Returns:
        The coupled parameters, same shape and dtype.

    Example:
        >>> a = torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1)
        >>> couple_channels(a, 0.9).flatten().tolist()
        [0.8999999761581421, 0.949999988079071, 1.0]
    """
    if not 0.0 <= coupling <= 1.0:
        raise ValueError(f"coupling must be in [0, 1], got {coupling!r}")
    if coupling == 0.0 or alpha.shape[-3] == 1:
        return alpha
    if not -alpha.shape[-3] <= reference < alpha.shape[-3]:
        raise ValueError(f"reference channel {reference} does not exist in alpha of shape {tuple(alpha.shape)}")
    reference %= alpha.shape[-3]
    coupled = coupling * alpha.narrow(-3, reference, 1) + (1.0 - coupling) * alpha
    keep = torch.zeros(alpha.shape[-3], dtype=torch.bool, device=alpha.device)
    keep[reference] = True
    return torch.where(keep.view(-1, 1, 1), alpha, coupled)


#: Integer sample types :func:`le_curves_upsampled` reads and writes, and their full-scale values.
_SAMPLE_SCALES = {torch.uint8: 255.0, torch.uint16: 65535.0}


def le_curves_upsampled(x: torch.Tensor, maps: Sequence[torch.Tensor], *, top: int = 0, height: int | None = None,
                        out: torch.Tensor | None = None, gain: torch.Tensor | None = None) -> torch.Tensor:
    """Apply LE curve steps whose alpha maps have a lower resolution than the image (Zero-DCE++'s trick).

    For each map in order: ``x <- clamp(le_curve(x, up(alpha)), 0, 1)``, ``up`` the bilinear upsampling
    (``F.interpolate(mode="bilinear", align_corners=False)``) to the image's size. On the CPU the native kernel
    (:func:`rlenhance.ops.native.le_curves_native`) computes it (within 1e-5 of the torch path); the torch path
    runs elsewhere, with ``gain``, or where the kernel is unavailable.

    Args:
        x: Image batch (B, C, H, W), or rows ``top .. top + H - 1`` of one: float values in [0, 1], or uint8 / uint16
            samples (divided by 255 / 65535). Any strides: a permuted view of (H, W, C) arrays needs no copy.
        maps: The alpha maps in the order applied, each a float tensor (B, 1 or C, h, w) on the
            device of ``x`` spanning the whole image (1 channel: shared by the image's channels).
        top, height: ``x`` holds rows ``top ..`` of an image of ``height`` rows (None: ``top + H``),
            so a large image can be done in bands of rows with the same result.
        out: Where to write the result, shape (B, C, H, W), any device and strides; may be ``x``
            itself. float32 gets the values, uint8 / uint16 ``round(255 v)`` / ``round(65535 v)``
            (half to even, as :func:`rlenhance.io.save_image` rounds). None: a new float tensor.
        gain: A float tensor (B, C, H, W) that receives the product of :func:`le_gain` over the steps.

    Returns:
        ``out``, or the new tensor on the device of ``x``: float32 (float64 for a float64 ``x``).

    Raises:
        ImageError: ``x`` is not a non-empty (B, C, H, W) tensor of floats, uint8 or uint16.
        ValueError: a map of another batch, channel count, dimension or device; a bad ``top`` /
            ``height``; ``out`` or ``gain`` of another shape or an unsupported dtype.

    Example:
        >>> x = torch.full((1, 3, 4, 6), 0.25)
        >>> alpha = torch.tensor([[[[0.0, 1.0]]]])                     # (1, 1, 1, 2): dark left, bright right
        >>> y = le_curves_upsampled(x, [alpha, alpha])
        >>> y[0, 0, 0, 0].item(), round(y[0, 0, 0, -1].item(), 4)     # alpha 0 (left edge), then 1 twice
        (0.25, 0.6836)
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.numel() == 0 \
            or not (x.is_floating_point() or x.dtype in _SAMPLE_SCALES):
        got = f"a {x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ImageError(f"x must be a non-empty (B, C, H, W) tensor of floats in [0, 1], uint8 or uint16; got {got}")
    b, c, rows, width = x.shape
    height = top + rows if height is None else height
    if isinstance(top, bool) or not isinstance(top, int) or top < 0 or isinstance(height, bool) \
            or not isinstance(height, int) or height < top + rows:
        raise ValueError(f"top={top!r}, height={height!r}: the {rows} rows of x must lie within an image of "
                         "`height` rows")
    maps = list(maps)
    for i, alpha in enumerate(maps):
        if not isinstance(alpha, torch.Tensor) or alpha.ndim != 4 or not alpha.is_floating_point() \
                or alpha.shape[0] != b or alpha.shape[1] not in (1, c) or alpha.device != x.device:
            got = f"{alpha.dtype} {alpha.device} tensor of shape {tuple(alpha.shape)}" \
                if isinstance(alpha, torch.Tensor) else type(alpha).__name__
            raise ValueError(f"alpha map {i} must be a float tensor ({b}, 1 or {c}, h, w) on {x.device}; got a {got}")
    for name, target in (("out", out), ("gain", gain)):
        if target is not None and (not isinstance(target, torch.Tensor) or target.shape != x.shape
                                   or not (target.is_floating_point() or target.dtype in _SAMPLE_SCALES)
                                   or (name == "gain" and not target.is_floating_point())):
            got = f"{target.dtype} tensor of shape {tuple(target.shape)}" if isinstance(target, torch.Tensor) \
                else type(target).__name__
            kinds = "a float" if name == "gain" else "a float, uint8 or uint16"
            raise ValueError(f"{name} must be {kinds} tensor of shape {tuple(x.shape)}; got a {got}")
    if _native_curves_apply(x, maps, out, gain):
        out = torch.empty(x.shape, dtype=torch.float32) if out is None else out
        for i in range(b):
            stacked = torch.stack([alpha[i].to(torch.float32) for alpha in maps])
            native.le_curves_native(x[i], stacked, out[i], top=top, height=height)
        return out
    product = None

    def step(current: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        nonlocal product
        if gain is not None:
            factor = le_gain(current, up)
            product = factor if product is None else product * factor
        return le_curve(current, up).clamp(0.0, 1.0)

    current = upsample_rows(x, maps, top=top, height=height, step=step)
    if gain is not None:
        gain.copy_(product if product is not None else torch.ones_like(gain))
    if out is None:
        return current if current is not x else x.clone()
    return store_samples(current, out)


def store_samples(values: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Write float ``values`` in [0, 1] into ``out`` (float: as they are; uint8 / uint16: ``round(255 v)`` /
    ``round(65535 v)``, half to even) and return ``out``."""
    scale = _SAMPLE_SCALES.get(out.dtype)
    return out.copy_(values if scale is None else (values.to(torch.float32) * scale).round())


def as_unit(x: torch.Tensor) -> torch.Tensor:
    """Float values in [0, 1] of ``x``: float as it is, uint8 / uint16 samples divided by their full scale."""
    scale = _SAMPLE_SCALES.get(x.dtype)
    return x.to(torch.float32) / scale if scale is not None else x


def upsample_rows(x: torch.Tensor, maps: Sequence[torch.Tensor], *, top: int = 0, height: int | None = None,
                  step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """For each map in order, ``x <- step(x, up(map))``, ``up`` as in :func:`le_curves_upsampled` (same ``x``,
    ``top`` and ``height``); returns the float result (``x`` itself when there are no maps)."""
    current = as_unit(x)
    if not maps:
        return current
    b, _, rows, width = x.shape
    height = top + rows if height is None else height
    grid = _rows_grid(top, top + rows, height, width, x.device).expand(b, -1, -1, -1)
    for alpha in maps:
        up = F.grid_sample(alpha.to(grid.dtype), grid, mode="bilinear", padding_mode="border", align_corners=False)
        current = step(current, up)
    return current


def _native_curves_apply(x: torch.Tensor, maps: list[torch.Tensor], out: torch.Tensor | None,
                         gain: torch.Tensor | None) -> bool:
    """Whether :func:`le_curves_upsampled` hands its arguments to the native kernel."""
    sample_types = (torch.float32, *_SAMPLE_SCALES)
    return (gain is None and bool(maps) and x.device.type == "cpu" and x.dtype in sample_types and x.shape[1] <= 4
            and (out is None or (out.device.type == "cpu" and out.dtype in sample_types))
            and len({tuple(alpha.shape) for alpha in maps}) == 1
            and not (torch.is_grad_enabled() and (x.requires_grad or any(a.requires_grad for a in maps)))
            and native.available())


def _rows_grid(top: int, bottom: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """``F.grid_sample`` grid (1, bottom - top, width, 2) of rows [top, bottom) of the bilinear upsampling of a
    map to (height, width)."""
    ys = (torch.arange(top, bottom, device=device, dtype=torch.float32) + 0.5) / height * 2 - 1
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width * 2 - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y), dim=-1).unsqueeze(0)


class LECurve(nn.Module):
    """Module form of :func:`le_curve` (no parameters): ``forward(x, alpha)``."""

    def forward(self, x: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
        return le_curve(x, alpha)


class LECurveIterative(nn.Module):
    """Module form of :func:`le_curve_iterative`: ``forward(x, alpha)``.

    Args:
        n_iter: Number of curve steps (8 in Zero-DCE / Zero-DCE++), or None to infer it from a
            stacked ``alpha`` of shape (B, n*C, H, W).
    """

    def __init__(self, n_iter: int | None = 8) -> None:
        super().__init__()
        _check_n_iter(n_iter)
        self.n_iter = n_iter

    def forward(self, x: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
        return le_curve_iterative(x, alpha, self.n_iter)

    def extra_repr(self) -> str:
        return f"n_iter={self.n_iter}"
