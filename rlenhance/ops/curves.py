"""Light-enhancement (LE) curves of Zero-DCE / Zero-DCE++ / ReLLIE.

The quadratic LE curve maps an intensity ``x`` in [0, 1] to

    LE(x; alpha) = x + alpha * x * (1 - x)

with a curve parameter ``alpha`` in [-1, 1]. It is monotone in ``x`` for ``alpha`` in [-1, 1],
keeps 0 and 1 fixed, and maps [0, 1] into [0, 1] (at ``alpha = 1`` it is ``2x - x^2``, at
``alpha = -1`` it is ``x^2``). :func:`le_curve` is the only place the formula is written; the
iterative variant and the modules call it.

Sign convention: this is the paper's formula. The public Zero-DCE code writes
``x + r * (x**2 - x)``, i.e. ``alpha = -r``; convert maps coming from that code by negating them.
"""

from __future__ import annotations

import numbers

import torch
from torch import nn

from rlenhance.errors import ImageError

__all__ = ["LECurve", "LECurveIterative", "couple_channels", "le_curve", "le_curve_iterative"]

_ALPHA_SHAPES = "a python float or a tensor broadcastable to x without enlarging it: per image " \
    "(B, 1, 1, 1), per channel (B, C, 1, 1), per pixel (B, 1, H, W) or per pixel and channel (B, C, H, W)"


def _check_image(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise ImageError(f"{name} must be a torch.Tensor of shape (*, C, H, W); got {type(x).__name__}")
    if x.ndim < 3:
        raise ImageError(f"{name} must have shape (*, C, H, W) (at least 3 dims); got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ImageError(f"{name} must be a floating-point tensor with values in [0, 1]; got dtype {x.dtype}")


def _check_alpha(x: torch.Tensor, alpha: float | torch.Tensor, name: str = "alpha") -> None:
    if isinstance(alpha, torch.Tensor):
        try:
            shape = torch.broadcast_shapes(alpha.shape, x.shape)
        except RuntimeError:
            shape = None
        if shape != x.shape:
            raise ValueError(f"{name} of shape {tuple(alpha.shape)} does not fit x of shape {tuple(x.shape)}; "
                             f"accepted: {_ALPHA_SHAPES}")
    elif not isinstance(alpha, numbers.Real) or isinstance(alpha, bool):
        raise ValueError(f"{name} must be {_ALPHA_SHAPES}; got {type(alpha).__name__}")


def le_curve(x: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """Apply one step of the quadratic light-enhancement curve.

    ``LE(x; alpha) = x + alpha * x * (1 - x)``

    For ``x`` in [0, 1] and ``alpha`` in [-1, 1] the result stays in [0, 1]; ``alpha > 0``
    brightens, ``alpha < 0`` darkens, ``alpha = 0`` is the identity. Differentiable in ``x``
    and ``alpha``.

    Args:
        x: Image, floating-point tensor of shape (*, C, H, W) with values in [0, 1].
        alpha: Curve parameter, usually in [-1, 1]: a python float, or a tensor broadcastable to
            ``x`` without enlarging it, i.e. per image (B, 1, 1, 1), per channel (B, C, 1, 1),
            per pixel (B, 1, H, W) or per pixel and channel (B, C, H, W).

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


def _split_maps(x: torch.Tensor, alpha: float | torch.Tensor, n_iter: int | None) -> list:
    """Turn ``alpha`` and ``n_iter`` into the list of curve maps to apply, in order."""
    if n_iter is not None and (isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1):
        raise ValueError(f"n_iter must be a positive int or None; got {n_iter!r}")
    n_channels = x.shape[-3]
    if not isinstance(alpha, torch.Tensor) or alpha.ndim < 3:
        if n_iter is None:
            raise ValueError("n_iter=None means alpha is a stack of maps of shape (B, n*C, H, W); a scalar "
                             "alpha needs n_iter (the number of times to apply it)")
        _check_alpha(x, alpha)
        return [alpha] * n_iter
    k = alpha.shape[-3]
    if n_iter is not None:
        try:
            fits = torch.broadcast_shapes(alpha.shape, x.shape) == x.shape
        except RuntimeError:
            fits = False
        if fits:  # one map applied n_iter times (Zero-DCE++ style)
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

    Two forms of ``alpha`` are accepted:

    * **one map applied n_iter times** (Zero-DCE++ style): ``alpha`` is a float or a tensor of
      any shape accepted by :func:`le_curve`; ``n_iter`` is required.
    * **a stack of n maps applied in order** (Zero-DCE style): ``alpha`` has shape
      (B, n*C, H, W) (or (B, n*C, 1, 1)); map ``t`` is ``alpha[:, t*C:(t+1)*C]``. ``n_iter`` is
      None (n is inferred) or must equal n.

    When both readings are possible (a single map with ``n_iter == 1``) they give the same result.

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
    """ReLLIE's channel coupling of per-channel curve parameters.

    Every channel but ``reference`` takes ``coupling * alpha_ref + (1 - coupling) * alpha_own``;
    the reference channel keeps its own. ReLLIE uses ``coupling = 0.9`` with its first head as the
    reference; its code reads images with OpenCV (BGR) and never converts, so that head acts on
    blue: ``reference=2`` in RGB.

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


class LECurve(nn.Module):
    """Module form of :func:`le_curve` (no parameters): ``forward(x, alpha)``.

    Shapes as in :func:`le_curve`: ``x`` (*, C, H, W) in [0, 1]; ``alpha`` float or broadcastable.
    """

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
        if n_iter is not None and (isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1):
            raise ValueError(f"n_iter must be a positive int or None; got {n_iter!r}")
        self.n_iter = n_iter

    def forward(self, x: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
        return le_curve_iterative(x, alpha, self.n_iter)

    def extra_repr(self) -> str:
        return f"n_iter={self.n_iter}"
