"""Tiled evaluation of an image-to-image function: bounded memory on large images.

:func:`tiled` runs ``fn`` on overlapping windows of a (B, C, H, W) batch and keeps the core of each window: when the
margin covers ``fn``'s receptive radius, the result equals one whole-image pass up to float rounding. A caller that
shows progress hears of each window done within :func:`reporting_windows`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["on_grid", "pad_to_multiple", "paste", "reporting_windows", "tiled"]

#: Whom :func:`tiled` tells of each window done, in this context (:func:`reporting_windows`); None: nobody.
_REPORT: ContextVar[Callable[[int, int], None] | None] = ContextVar("rlenhance_tiled_report", default=None)


@contextlib.contextmanager
def reporting_windows(report: Callable[[int, int], None]) -> Iterator[None]:
    """Within the block, each :func:`tiled` pass calls ``report(done, total)`` after each of its windows.

    Example:
        >>> seen = []
        >>> with reporting_windows(lambda done, total: seen.append((done, total))):
        ...     _ = tiled(lambda w: w, torch.zeros(1, 1, 20, 30), tile=16, overlap=0)
        >>> seen
        [(1, 4), (2, 4), (3, 4), (4, 4)]
    """
    token = _REPORT.set(report)
    try:
        yield
    finally:
        _REPORT.reset(token)


def on_grid(tile: int, overlap: int | None, multiple: int) -> tuple[int, int | None]:
    """A restorer's tile core side and margin (None: not tiled) rounded up to multiples of ``multiple``."""
    up = lambda n: -(-int(n) // multiple) * multiple  # noqa: E731
    return up(tile), None if overlap is None else up(overlap)


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """``x`` (B, C, H, W) padded on the bottom / right to a multiple of ``multiple`` in H and W, by
    reflection (replication where the image is too small to reflect); ``x`` itself when it fits."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    if not pad_h and not pad_w:
        return x
    mode = "reflect" if pad_h < x.shape[-2] and pad_w < x.shape[-1] else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def tiled(fn: Callable[..., Tensor], x: Tensor, *aligned: Tensor, tile: int, overlap: int,
          multiple: int = 1, scale: int = 1, positions: bool = False) -> Tensor:
    """``fn(x, *aligned)`` evaluated tile by tile: each ``tile`` x ``tile`` core from a window ``overlap`` pixels
    wider on every side (fewer at the image border).

    Args:
        fn: ``(window, *aligned_windows) -> output`` with ``scale`` times the window's height and width (any number of
            output planes, any device); the windows are on ``x``'s device.
        x: float (B, C, H, W).
        *aligned: further tensors (B', C', H, W) cut into the same windows (e.g. a hole mask).
        tile: side of a tile's core, >= 1.
        overlap: margin read around each core, >= 0 (``fn``'s receptive radius for an exact match).
        multiple: pad ``x`` and ``aligned`` to a multiple of this (:func:`pad_to_multiple`, a strided network's
            total stride) before tiling, and crop the output back to (H, W).
        scale: ``fn``'s output size over its input size (a super-resolution network: 2, 4).
        positions: also give ``fn`` the keyword arguments ``rows`` and ``cols``: int64 CPU tensors of the rows and
            columns of ``x`` that the window holds; see :func:`paste`.

    Returns:
        (B, C_out, scale H, scale W) on ``x``'s device, in ``fn``'s output dtype, channels-last; nothing of the size
        of ``x`` is made besides it.

    Raises:
        ValueError: ``tile`` < 1, ``overlap`` < 0, ``multiple`` < 1, ``scale`` < 1, an aligned
            tensor of another size, or an output of ``fn`` that is not ``scale`` times its window.

    Example:
        >>> import torch
        >>> blur = torch.nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        >>> x = torch.rand(1, 3, 37, 29)
        >>> torch.allclose(tiled(blur, x, tile=8, overlap=1), blur(x), atol=1e-6)
        True
    """
    if tile < 1 or overlap < 0 or multiple < 1 or scale < 1:
        raise ValueError(f"tiled: tile={tile!r}, overlap={overlap!r}, multiple={multiple!r}, scale={scale!r}; expected "
                         "tile >= 1, overlap >= 0, multiple >= 1 and scale >= 1")
    height, width = x.shape[-2:]
    for other in aligned:
        if other.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"tiled: an aligned tensor of shape {tuple(other.shape)} for x of shape {tuple(x.shape)}; "
                             "expected the same height and width")
    # the padded image of pad_to_multiple is never made: each window is cut from it virtually
    full_h, full_w = height - height % -multiple, width - width % -multiple
    reflect = full_h - height < height and full_w - width < width
    out: Tensor | None = None  # allocated at the first tile (fn's output planes and dtype)
    s = scale
    report, done, total = _REPORT.get(), 0, math.ceil(height / tile) * math.ceil(width / tile)
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(full_h, top + tile), min(full_w, left + tile)
            y0, x0 = max(0, top - overlap), max(0, left - overlap)
            y1, x1 = min(full_h, bottom + overlap), min(full_w, right + overlap)
            where = {"rows": _sources(y0, y1, height, reflect), "cols": _sources(x0, x1, width, reflect)} \
                if positions else {}
            pred = fn(*(_padded_window(t, y0, y1, x0, x1, reflect) for t in (x, *aligned)), **where)
            if tuple(pred.shape[-2:]) != ((y1 - y0) * scale, (x1 - x0) * scale):
                raise ValueError(f"tiled: fn gave {tuple(pred.shape[-2:])} for a window of {(y1 - y0, x1 - x0)}; "
                                 f"expected scale={scale} times its height and width")
            if out is None:  # channels last: out[i].permute(1, 2, 0) is a view
                out = torch.empty((pred.shape[0], pred.shape[1], height * scale, width * scale), dtype=pred.dtype,
                                  device=x.device, memory_format=torch.channels_last)
            bottom, right = min(bottom, height), min(right, width)
            out[..., top * s:bottom * s, left * s:right * s] = \
                pred[..., (top - y0) * s:(bottom - y0) * s, (left - x0) * s:(right - x0) * s]
            del pred
            done += 1
            if report is not None:
                report(done, total)
    return out


def _sources(start: int, stop: int, size: int, reflect: bool) -> Tensor:
    """The rows of a tensor of ``size`` rows that rows ``start:stop`` of its :func:`pad_to_multiple` hold."""
    index = torch.arange(start, stop)
    if stop <= size:
        return index
    mirror = 2 * (size - 1) - index if reflect else torch.full_like(index, size - 1)
    return torch.where(index >= size, mirror, index)


def _padded_window(t: Tensor, y0: int, y1: int, x0: int, x1: int, reflect: bool) -> Tensor:
    """Rows ``y0:y1`` and columns ``x0:x1`` of ``t`` padded as :func:`pad_to_multiple` pads it: a view of ``t``
    when the window is inside it, else a copy of the window alone."""
    height, width = t.shape[-2:]
    if y1 <= height and x1 <= width:
        return t[..., y0:y1, x0:x1]
    rows, cols = _sources(y0, y1, height, reflect), _sources(x0, x1, width, reflect)
    top, left = int(rows.min()), int(cols.min())
    window = t[..., top:int(rows.max()) + 1, left:int(cols.max()) + 1]
    if y1 > height:
        window = window.index_select(-2, (rows - top).to(t.device))
    if x1 > width:
        window = window.index_select(-1, (cols - left).to(t.device))
    return window


def paste(window: Tensor, patches: Sequence[tuple[int, int, int, Tensor]], rows: Tensor, cols: Tensor) -> Tensor:
    """``window`` (B, C, h, w) of a batch, holding its ``rows`` and ``cols`` (:func:`tiled`'s ``positions``), with
    each ``(b, top, left, values)`` of ``patches`` written over it at image ``b``, rows ``top:``, columns ``left:``:
    a copy where a patch falls in the window, else ``window`` itself."""
    out = window
    row_span, col_span = (int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))
    for b, top, left, values in patches:
        if top > row_span[1] or top + values.shape[-2] <= row_span[0] \
                or left > col_span[1] or left + values.shape[-1] <= col_span[0]:
            continue  # outside the window (many patches of a mask of scattered holes)
        inside_rows = torch.nonzero((rows >= top) & (rows < top + values.shape[-2])).flatten()
        inside_cols = torch.nonzero((cols >= left) & (cols < left + values.shape[-1])).flatten()
        if inside_rows.numel() == 0 or inside_cols.numel() == 0:
            continue
        if out is window:
            out = window.clone()
        source = values[:, rows[inside_rows] - top][:, :, cols[inside_cols] - left]
        device_rows, device_cols = inside_rows.to(out.device), inside_cols.to(out.device)
        out[b, :, device_rows[:, None], device_cols[None, :]] = source.to(out.device, out.dtype)
    return out
