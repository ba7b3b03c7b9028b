"""PixelRL's filter bank as an op: every candidate, or a per-pixel choice among them.

:func:`pixelrl_filter_bank` / :class:`FilterBank` apply every action of a bank to a batch; :func:`pixelrl_filter_select`
/ :meth:`FilterBank.select` apply a per-pixel choice among them (the Denoise env's step).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rlenhance.ops import native
from rlenhance.ops._checks import _check_action_range, _check_batch, _check_pixel_actions
from rlenhance.ops._padding import _REFLECT_101, _pad2d
from rlenhance.ops._workspace import _work_dtype
from rlenhance.ops.actions import PIXELRL_ACTION_TABLE, FilterAction, _bank_plan
from rlenhance.ops.bilateral import _bilateral_into
from rlenhance.ops.blur import _separable_into
from rlenhance.ops.median import _median_into
from rlenhance.ops.select import select_per_pixel
from rlenhance.ops.sparse import _select_sparse

__all__ = ["FilterBank", "pixelrl_filter_bank", "pixelrl_filter_select"]


def pixelrl_filter_bank(x: torch.Tensor,
                        actions: Sequence[FilterAction] = PIXELRL_ACTION_TABLE) -> torch.Tensor:
    """Apply every action of a filter bank to a batch (PixelRL's candidates for per-pixel selection).

    The library's ops share the padded image, the bilateral distances and the buffers; the result equals
    applying each action on its own.

    Args:
        x: Image batch, float tensor of shape (B, C, H, W), values in [0, 1], C = 1 or 3.
        actions: The bank, by default :data:`PIXELRL_ACTION_TABLE` (9 actions).

    Returns:
        Candidates of shape (B, K, C, H, W), K = ``len(actions)``; candidate ``k`` is action ``k``
        applied to ``x``. Feed it to :func:`rlenhance.ops.select_per_pixel`.

    Raises:
        ImageError: ``x`` is not a non-empty floating (B, C, H, W) tensor.
        ValueError / TypeError: an action's parameters are invalid for its op.

    Example:
        >>> cands = pixelrl_filter_bank(torch.rand(2, 1, 16, 16))
        >>> cands.shape
        torch.Size([2, 9, 1, 16, 16])
    """
    _check_batch(x)
    plan = _bank_plan(actions)
    work = _work_dtype(x)
    b, c, h, w = x.shape
    out = torch.empty((b, len(actions), c, h, w), dtype=work.dtype, device=x.device)
    for k in plan.other:
        out[:, k].copy_(actions[k](x))
    for k, delta in plan.shifts:
        torch.add(work, delta, out=out[:, k])
    for k in plan.copies:
        out[:, k].copy_(work)
    for k, ksize in plan.medians:
        _median_into(work, ksize, out[:, k])
    if plan.pad:
        xp = _pad2d(work, plan.pad, _REFLECT_101)
        if plan.linear:
            _separable_into(xp, plan.pad, [taps for _, taps in plan.linear], [out[:, k] for k, _ in plan.linear])
        for indices, sigma_colors, d, sigma_space, bins in plan.bilateral:
            _bilateral_into(work, xp, plan.pad, d, sigma_colors, sigma_space, bins, [out[:, k] for k in indices])
    return out.to(x.dtype)


def pixelrl_filter_select(x: torch.Tensor, actions: torch.Tensor, table: Sequence[FilterAction] = PIXELRL_ACTION_TABLE,
                          *, validate: bool = True, prediction: torch.Tensor | None = None) -> torch.Tensor:
    """Apply a per-pixel choice of filters, computing each filter only where it was chosen.

    Equals ``select_per_pixel(pixelrl_filter_bank(x, table), actions)`` up to float rounding of the bilateral filter
    (< 1e-6). On the CPU: the native kernel (float32, the default bank, actions shared by the channels, no autograd) or
    :mod:`rlenhance.ops.sparse`; on a GPU and for per-channel actions on colour images: the whole bank, then the choice.

    Args:
        x: Image batch, float tensor of shape (B, C, H, W), values in [0, 1], any device.
        actions: Integer tensor on the device of ``x`` with values in [0, K - 1], shape (B, H, W)
            or (B, 1, H, W) (one action per pixel, shared by the channels) or (B, C, H, W).
        table: The bank, by default :data:`PIXELRL_ACTION_TABLE` (K = 9).
        validate: Check that every action is in [0, K - 1] (a device sync; the number of pixels
            per action is read back to the host in any case).
        prediction: A supervised model's output, shape of ``x``: adds action K, "take the
            prediction's pixel" (actions then in [0, K]; the Denoise env's predictor action).

    Returns:
        The new batch, same shape and dtype as ``x``.

    Raises:
        ImageError: ``x`` is not a non-empty floating (B, C, H, W) tensor.
        ValueError: ``table`` is empty, ``actions`` has a wrong shape, dtype or device, (with ``validate``) an action is
            outside [0, K - 1] ([0, K] with ``prediction``), or ``prediction`` is not a tensor of ``x``'s shape.

    Example:
        >>> from rlenhance.ops import median_blur2d
        >>> x = torch.rand(2, 1, 16, 16)
        >>> out = pixelrl_filter_select(x, torch.full((2, 16, 16), 5))  # 5x5 median everywhere
        >>> torch.equal(out, median_blur2d(x, 5))
        True
    """
    _check_batch(x)
    table = tuple(table)
    if not table:
        raise ValueError("table must hold at least one FilterAction; got an empty sequence")
    n_actions = len(table)
    b, c, h, w = x.shape
    _check_pixel_actions(actions, (b, c, h, w), x.device, like="x", like_shape=x.shape)
    if prediction is not None:
        if not torch.is_tensor(prediction) or prediction.shape != x.shape:
            raise ValueError(f"prediction: expected a tensor of x's shape {tuple(x.shape)}; got "
                             f"{tuple(prediction.shape) if torch.is_tensor(prediction) else type(prediction).__name__}")
        if validate:
            _check_action_range(actions, n_actions + 1, "actions and the prediction")
        take = actions == n_actions  # the prediction's pixels run the bank's cheapest action, then are replaced
        copies = _bank_plan(table).copies
        filtered = pixelrl_filter_select(x, torch.where(take, copies[0] if copies else 0, actions), table,
                                         validate=False)
        return torch.where(take, prediction.to(device=x.device, dtype=filtered.dtype), filtered)
    if actions.shape == (b, c, h, w) and c > 1:  # a choice per channel: every candidate is needed
        return select_per_pixel(pixelrl_filter_bank(x, table), actions, validate=validate)
    if validate:
        _check_action_range(actions, n_actions, "actions")
    if x.device.type == "cpu" and x.dtype == torch.float32 and table == PIXELRL_ACTION_TABLE \
            and not (x.requires_grad and torch.is_grad_enabled()) and native.available():
        return native.pixelrl_select_native(x, actions)
    if x.device.type != "cpu":  # a GPU: the whole bank, then the choice (grouping pixels reads counts back)
        return select_per_pixel(pixelrl_filter_bank(x, table), actions, validate=False)
    return _select_sparse(x, actions, table)


class FilterBank(nn.Module):
    """Module form of :func:`pixelrl_filter_bank` (no parameters).

    Args:
        actions: The bank, by default :data:`PIXELRL_ACTION_TABLE`.

    Attributes:
        names: Action names, index = action id.
        n_actions: Number of actions K.
    """

    def __init__(self, actions: Sequence[FilterAction] = PIXELRL_ACTION_TABLE) -> None:
        super().__init__()
        self.actions = tuple(actions)
        if not self.actions:
            raise ValueError("actions must hold at least one FilterAction; got an empty sequence")
        self.names = tuple(action.name for action in self.actions)
        self.n_actions = len(self.actions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> candidates (B, K, C, H, W)."""
        return pixelrl_filter_bank(x, self.actions)

    def select(self, x: torch.Tensor, actions: torch.Tensor, *, validate: bool = True) -> torch.Tensor:
        """(B, C, H, W) and per-pixel actions (B, [1,] H, W) -> (B, C, H, W): :func:`pixelrl_filter_select`."""
        return pixelrl_filter_select(x, actions, self.actions, validate=validate)

    def extra_repr(self) -> str:
        return f"names={self.names}"
