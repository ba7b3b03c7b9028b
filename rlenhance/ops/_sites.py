"""Reads of a batch at chosen pixels: the layer under every filter's "at chosen pixels" form.

Pixels are addressed by their index q in the padded (B, Hp, Wp) grid, so that a window tap is q + dy * Wp + dx;
:meth:`_Sites.gather` reads taps into a tap-major (taps, C, n) buffer, one ``index_select`` per tap. A call's
large temporaries are cut from one allocation (:class:`_Arena`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from rlenhance.ops._padding import _REFLECT_101, _REPLICATE, _pad2d


@functools.lru_cache(maxsize=16)
def _runs(offsets: tuple[tuple[int, int], ...], wp: int, first: int) -> tuple[tuple[tuple[int, int], ...], int]:
    """Runs of consecutive taps along a row: ``((start, count), ...)`` with ``start`` the grid offset
    of the run's first tap minus ``first``, and the largest such offset."""
    runs, t = [], 0
    while t < len(offsets):
        end = t + 1
        while end < len(offsets) and offsets[end] == (offsets[t][0], offsets[t][1] + end - t):
            end += 1
        runs.append((offsets[t][0] * wp + offsets[t][1] - first, end - t))
        t = end
    return tuple(runs), max(dy * wp + dx for dy, dx in offsets) - first


@functools.lru_cache(maxsize=16)
def _window(radius: int) -> tuple[tuple[int, int], ...]:
    """Offsets of a (2r+1) x (2r+1) window row by row: tap ``j * k + i`` is (dy_j, dx_i)."""
    return tuple((dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1))


#: Byte alignment of the pieces cut from an :class:`_Arena`.
_ARENA_ALIGN = 64


class _Arena:
    """Temporaries of one call cut from one allocation of ``nbytes`` (a request beyond it gets a
    plain allocation, which is only slower). :meth:`mark` / :meth:`release` reuse a region."""

    def __init__(self, nbytes: int, device: torch.device) -> None:
        self._buffer = torch.empty(-(-int(nbytes) // _ARENA_ALIGN) * _ARENA_ALIGN, dtype=torch.uint8, device=device)
        self._typed: dict[torch.dtype, torch.Tensor] = {}
        self._used = 0

    def take(self, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised contiguous tensor of ``shape`` and ``dtype``."""
        strides, numel = [], 1
        for size in reversed(shape):
            strides.append(numel)
            numel *= size
        start = -(-self._used // _ARENA_ALIGN) * _ARENA_ALIGN
        if start + numel * dtype.itemsize > self._buffer.numel():
            return torch.empty(tuple(shape), dtype=dtype, device=self._buffer.device)
        self._used = start + numel * dtype.itemsize
        typed = self._typed.get(dtype)
        if typed is None:
            typed = self._typed[dtype] = self._buffer.view(dtype)
        return typed.as_strided(tuple(shape), strides[::-1], start // dtype.itemsize)

    def mark(self) -> int:
        return self._used

    def release(self, mark: int) -> None:
        """Give back everything taken since ``mark`` (those tensors must no longer be used)."""
        self._used = mark


def _nbytes(*pieces: tuple[int, torch.dtype]) -> int:
    """Arena bytes of pieces ``(numel, dtype)``, alignment included."""
    return sum(-(-numel * dtype.itemsize // _ARENA_ALIGN) * _ARENA_ALIGN + _ARENA_ALIGN for numel, dtype in pieces)


class _Sites:
    """Padded copies (by ``pad`` >= every radius read) of one batch ``x`` (working dtype), and reads of them at
    chosen pixels; channel c of pixel q (image b) sits at ``q + (b * (C - 1) + c) * Hp * Wp``."""

    def __init__(self, x: torch.Tensor, pad: int, arena: _Arena) -> None:
        b, c, h, w = x.shape
        self.x, self.pad, self.shape, self.arena = x, pad, (b, c, h, w), arena
        self.grid = (b, h + 2 * pad, w + 2 * pad)  # the padded (B, Hp, Wp) grid of pixel indices q
        self.plane = self.grid[1] * self.grid[2]  # Hp * Wp
        self.size = b * c * self.plane  # elements of a padded buffer
        self._padded: dict[str, torch.Tensor] = {}

    def take(self, shape: Sequence[int], dtype: torch.dtype | None = None) -> torch.Tensor:
        return self.arena.take(shape, self.x.dtype if dtype is None else dtype)

    def empty(self, *lead: int) -> torch.Tensor:
        """Uninitialised buffer(s) of shape (*lead, B, C, Hp, Wp) in the working dtype."""
        b, c, _, _ = self.shape
        return self.take((*lead, b, c, *self.grid[1:]))

    def interior(self, buffer: torch.Tensor) -> torch.Tensor:
        """The (..., H, W) view of the unpadded pixels of a (..., Hp, Wp) buffer."""
        _, _, h, w = self.shape
        p = self.pad
        return buffer[..., p: p + h, p: p + w]

    def padded(self, mode: str) -> torch.Tensor:
        """The batch padded with OpenCV border ``mode``, (B, C, Hp, Wp), made on the first call (make it before
        any :meth:`_Arena.mark` whose region is released later)."""
        if mode not in self._padded:
            _, _, h, w = self.shape
            out = self.empty()
            if self.pad == 0:
                out.copy_(self.x)
            elif mode == _REPLICATE:
                torch.ops.aten.replication_pad2d.out(self.x, [self.pad] * 4, out=out)
            elif self.pad < min(h, w):
                torch.ops.aten.reflection_pad2d.out(self.x, [self.pad] * 4, out=out)
            else:  # OpenCV's reflect-101 of an image smaller than the padding
                out.copy_(_pad2d(self.x, self.pad, mode))
            self._padded[mode] = out
        return self._padded[mode]

    def images(self, q: torch.Tensor) -> torch.Tensor:
        """Image index b of each padded-grid index q."""
        return torch.div(q, self.plane, rounding_mode="floor")

    def corners(self, q: torch.Tensor, first: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Flat index of channel 0 of pixel ``q`` in a padded buffer, plus ``first``; int64 (n,)."""
        c = self.shape[1]
        out = self.take(q.shape, torch.long) if out is None else out
        if c == 1:
            return torch.add(q, first, out=out)
        torch.div(q, self.plane, rounding_mode="floor", out=out).mul_((c - 1) * self.plane)
        return out.add_(q).add_(first)

    def gather(self, source: torch.Tensor, corners: torch.Tensor, offsets: Sequence[tuple[int, int]],
               first: int) -> torch.Tensor:
        """Values of the flat padded ``source`` at every (dy, dx) of ``offsets`` from the pixels whose
        :meth:`corners` are given, ``first = min(dy * Wp + dx)``: shape (len(offsets), C, n)."""
        c, n = self.shape[1], corners.numel()
        out = self.take((len(offsets), c, n))
        runs, span = _runs(tuple(offsets), self.grid[2], first)
        length = source.numel() - span
        base = source.storage_offset()
        if c > 1:  # every channel of a tap in one index_select
            corners = torch.add(corners, torch.arange(0, c * self.plane, self.plane, device=corners.device).view(-1, 1),
                                out=self.take((c, n), torch.long)).view(-1)
        # one strided view per run of taps along a row: the Python overhead is per call
        views: list[torch.Tensor] = []
        for start, count in runs:
            views += source.as_strided((count, length), (1, 1), base + start).unbind(0)
        for view, row in zip(views, out.view(len(offsets), -1).unbind(0)):
            torch.index_select(view, 0, corners, out=row)
        return out

    def read(self, source: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """A padded buffer at pixels ``q``, (C, n)."""
        return self.gather(source.reshape(-1), self.corners(q, 0), [(0, 0)], 0)[0]

    def row_passes(self, taps: Sequence[tuple[tuple[float, ...], tuple[float, ...]]]) -> torch.Tensor:
        """Row pass of separable filters on every padded row, (L, B, C, Hp, Wp) (columns [pad, pad + W) written),
        with the operations of :func:`_separable_into`'s row pass."""
        b, c, _, w = self.shape
        p = self.pad
        xp = self.padded(_REFLECT_101)
        r = max(len(row) for row, _ in taps) - 1
        row_taps = torch.tensor([list(row) + [0.0] * (r + 1 - len(row)) for row, _ in taps], dtype=xp.dtype)
        row_taps = row_taps.t().reshape(r + 1, len(taps), 1, 1, 1, 1).to(xp.device)
        out = self.empty(len(taps))
        rows = out[..., p: p + w]
        torch.mul(xp[..., p: p + w], row_taps[0], out=rows)
        pair = self.take((b, c, self.grid[1], w))
        for t in range(1, r + 1):
            torch.add(xp[..., p - t: p - t + w], xp[..., p + t: p + t + w], out=pair)
            rows.addcmul_(pair, row_taps[t])
        return out
