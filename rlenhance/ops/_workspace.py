"""Working dtype and temporaries of the dense filters.

Half types are computed in float32; a call's temporaries come from one allocation of at most :data:`_WORKSPACE_BYTES`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

#: Bytes of a filter call's one allocation; larger batches or images are processed in pieces (an allocation
#: above glibc's mmap threshold is page-faulted in afresh on every call).
_WORKSPACE_BYTES = 16 * 2 ** 20


def _work_dtype(x: torch.Tensor) -> torch.Tensor:
    """float32/float64 stay as they are; half types are computed in float32."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _carve(like: torch.Tensor, shapes: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Uninitialised tensors of the given shapes (dtype/device of ``like``) cut from ONE allocation."""
    sizes = [math.prod(shape) for shape in shapes]
    flat = torch.empty(sum(sizes), dtype=like.dtype, device=like.device)
    return [part.view(shape) for part, shape in zip(flat.split(sizes), shapes)]


def _carve_stacks(like: torch.Tensor, stacks: Sequence[tuple[int, Sequence[int]]]) -> list[list[torch.Tensor]]:
    """Like :func:`_carve` for ``(count, shape)`` groups: a list of ``count`` tensors per group."""
    return [list(t.unbind(0)) for t in _carve(like, [(count, *shape) for count, shape in stacks])]


def _pieces(b: int, h: int, per_row: int, dtype: torch.dtype, *,
            row_multiple: int = 1) -> list[tuple[int, int, int, int]]:
    """Split a batch of ``b`` images of ``h`` rows into pieces ``(b0, b1, y0, y1)`` whose temporaries
    (``per_row`` elements of ``dtype`` per row) fit; row bands are multiples of ``row_multiple``."""
    budget = _WORKSPACE_BYTES // torch.finfo(dtype).bits * 8
    if per_row * h * b <= budget:
        return [(0, b, 0, h)]
    if per_row * h <= budget:  # whole images, several per piece
        m = budget // (per_row * h)
        return [(i, min(i + m, b), 0, h) for i in range(0, b, m)]
    rows = max(row_multiple, budget // per_row // row_multiple * row_multiple)
    return [(i, i + 1, y, min(y + rows, h)) for i in range(b) for y in range(0, h, rows)]
