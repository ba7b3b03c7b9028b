"""PixelRL's per-pixel filter bank as batched, device-agnostic torch ops.

Every filter takes a float image batch of shape (B, C, H, W) (float32 in [0, 1] in practice) on
any device and returns the same shape and dtype. The filters reproduce OpenCV on the same float32
input, border handling included, so that an agent trained on these ops sees what PixelRL's
``cv2`` loop produced:

==========================  ===================================  ===========
function                    OpenCV reference                     border
==========================  ===================================  ===========
:func:`gaussian_blur2d`     ``cv2.GaussianBlur(x, (k, k), s)``   reflect-101
:func:`box_blur2d`          ``cv2.blur`` / ``cv2.boxFilter``     reflect-101
:func:`median_blur2d`       ``cv2.medianBlur(x, k)``             replicate
:func:`bilateral_filter2d`  ``cv2.bilateralFilter``              reflect-101
==========================  ===================================  ===========

(reflect-101 is OpenCV's ``BORDER_DEFAULT``: ``gfedcb|abcdefgh|gfedcba``; replicate is
``aaaaaa|abcdefgh|hhhhhhh``.) Images of any size, down to 1x1, are padded as OpenCV pads them.

:data:`PIXELRL_ACTION_TABLE` lists PixelRL's nine actions with their parameters (the only
place they are written); :func:`pixelrl_filter_bank` / :class:`FilterBank` apply all of them.
:func:`pixelrl_filter_select` / :meth:`FilterBank.select` apply a per-pixel choice among them,
computing each filter only at the pixels that chose it (the hot path of the Denoise env), and
:func:`filters_at` / :func:`filter_at` evaluate actions at listed pixels (the Completion env's
holes); see the notes before :func:`_runs` for how.

How the filters are made fast with plain elementwise torch ops (the bank is the hot path of the
Denoise and Completion envs):

* Median: a comparator network of ``torch.minimum`` / ``torch.maximum`` on whole shifted images
  (exact, since a median is one of its inputs). The network is separable: each pixel's row of
  ``k`` is sorted once, pairs of sorted rows are merged once and shared by the windows that
  contain both, and two vertically adjacent output rows share everything but one row each
  (odd-even merge networks, pruned to the comparators the middle output depends on). A 5x5
  median costs about 60 min/max passes over the image instead of ~200 for a 25-input network.
* Gaussian and box: separable, symmetric taps summed in pairs as shifted views; the bank runs the
  row pass of all of them as one stacked op.
* Bilateral: the colour weight of a pixel pair is symmetric, so it is computed once per pair of
  opposite offsets; the bank computes its two bilateral filters from one distance map and
  accumulates sum(w * I) and sum(w) of both in one op per offset (in OpenCV's offset order, which
  keeps float rounding as close to OpenCV's as a plain loop). OpenCV's interpolated lookup table
  is evaluated in closed form (``exp2`` at the two bins), or replaced by the exact Gaussian where
  the table's interpolation error is negligible (see ``_BILATERAL_EXACT_GAUSSIAN_MAX_ERROR``).
* Temporaries of one call come from one allocation, in pieces of at most ``_WORKSPACE_BYTES``
  (many allocations per call, or one above glibc's mmap threshold, make the CPU allocator fault
  pages in afresh on every call, which costs more than the arithmetic).
* The bank plan (grouping, kernels, validation) is cached per action table.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rlenhance.errors import ImageError
from rlenhance.ops.select import check_action_range, check_pixel_actions, select_per_pixel, sort_by_key

__all__ = [
    "PIXELRL_ACTIONS",
    "PIXELRL_ACTION_TABLE",
    "FilterAction",
    "FilterBank",
    "bilateral_filter2d",
    "box_blur2d",
    "filter_at",
    "filters_at",
    "gaussian_blur2d",
    "gaussian_kernel1d",
    "median_blur2d",
    "pixelrl_filter_bank",
    "pixelrl_filter_select",
    "shift_intensity",
]

_REFLECT_101 = "reflect101"
_REPLICATE = "replicate"

#: OpenCV's generic float bilateral path reads the colour weight from a lookup table, linearly
#: interpolated between bins of width ``value_range / lut_bins_per_channel``; its largest deviation
#: from the exact Gaussian is ``eps = (bin_width / sigma_color)**2 / 8``. Up to this bound the
#: weight is computed as the exact Gaussian instead (one exp2 instead of two plus the
#: interpolation): the two differ in output by at most ~0.4 eps (measured on a worst case, a lone
#: pixel among 12 equal neighbours swept over the distance), i.e. 1e-6 here, half the tolerance of
#: the OpenCV tests. OpenCV builds whose HAL takes over (the opencv-python 5.0 wheel with IPP)
#: compute the Gaussian directly and match the exact path to float rounding. PixelRL's
#: sigma_color 0.1 on its unclipped noisy images (value range up to ~1.8) gives eps <= 2.4e-6.
_BILATERAL_EXACT_GAUSSIAN_MAX_ERROR = 2.5e-6

#: Temporaries of one filter call are cut from one allocation of at most this many bytes; larger
#: batches or images are processed in pieces (on CPU, an allocation above glibc's mmap threshold,
#: 32 MiB at most, is page-faulted in afresh on every call, which costs more than the arithmetic).
_WORKSPACE_BYTES = 16 * 2 ** 20


# ----------------------------------------------------------------------------- helpers


def _check_batch(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise ImageError(f"{name} must be a torch.Tensor of shape (B, C, H, W); got {type(x).__name__}")
    if x.ndim != 4:
        raise ImageError(f"{name} must have shape (B, C, H, W); got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ImageError(f"{name} must be a floating-point tensor (float32 in [0, 1]); got dtype {x.dtype}")
    if min(x.shape) == 0:
        raise ImageError(f"{name} must be non-empty; got shape {tuple(x.shape)}")


def _check_ksize(ksize: int, name: str = "ksize") -> None:
    if isinstance(ksize, bool) or not isinstance(ksize, int) or ksize < 1 or ksize % 2 == 0:
        raise ValueError(f"{name} must be an odd positive int (1, 3, 5, ...); got {ksize!r}")


def _check_positive(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")


def _check_bilateral_params(d: int, sigma_color: float, sigma_space: float, lut_bins_per_channel: int) -> None:
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be a positive int (neighbourhood diameter); got {d!r}")
    _check_positive(sigma_color, "sigma_color")
    _check_positive(sigma_space, "sigma_space")
    if isinstance(lut_bins_per_channel, bool) or not isinstance(lut_bins_per_channel, int) \
            or lut_bins_per_channel < 1:
        raise ValueError(f"lut_bins_per_channel must be a positive int; got {lut_bins_per_channel!r}")


def _work_dtype(x: torch.Tensor) -> torch.Tensor:
    """float32/float64 stay as they are; half types are computed in float32."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _border_index(n: int, pad: int, mode: str, device: torch.device) -> torch.Tensor:
    """Source indices, shape (n + 2 * pad,), of a padded axis, as OpenCV's ``borderInterpolate``."""
    idx = torch.arange(-pad, n + pad, device=device)
    if mode == _REPLICATE:
        return idx.clamp(0, n - 1)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = torch.remainder(idx, period)
    return torch.where(idx >= n, period - idx, idx)


def _pad2d(x: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """Pad the last two dims by ``pad`` on every side with OpenCV border semantics, any image size."""
    if pad == 0:
        return x
    h, w = x.shape[-2:]
    if mode == _REFLECT_101 and pad < min(h, w):
        return F.pad(x, (pad, pad, pad, pad), mode="reflect")
    if mode == _REPLICATE:
        return F.pad(x, (pad, pad, pad, pad), mode="replicate")
    x = x.index_select(-2, _border_index(h, pad, mode, x.device))
    return x.index_select(-1, _border_index(w, pad, mode, x.device))


def _carve(like: torch.Tensor, shapes: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Uninitialised tensors of the given shapes (dtype/device of ``like``) cut from ONE allocation."""
    sizes = [math.prod(shape) for shape in shapes]
    flat = torch.empty(sum(sizes), dtype=like.dtype, device=like.device)
    return [part.view(shape) for part, shape in zip(flat.split(sizes), shapes)]


def _carve_stacks(like: torch.Tensor, stacks: Sequence[tuple[int, Sequence[int]]]) -> list[list[torch.Tensor]]:
    """Like :func:`_carve` for ``(count, shape)`` groups: a list of ``count`` tensors per group."""
    return [list(t.unbind(0)) for t in _carve(like, [(count, *shape) for count, shape in stacks])]


# ----------------------------------------------------------------------------- comparator networks
#
# A network is a sequence of comparators (i, j), i < j: wire i receives min(v_i, v_j) and wire j
# receives max(v_i, v_j). Networks are built from Batcher's odd-even merge, then pruned to the
# comparators that an output depends on, then compiled into elementwise torch ops on whole images.


def _odd_even_merge_sort_pow2(n: int, *, merge_only: bool = False) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort on ``n`` wires (a power of two), as comparators (i, j).

    With ``merge_only`` only the last merge is returned: it sorts wires whose two halves
    [0, n/2) and [n/2, n) are already sorted.
    """
    comparators = []
    p = n // 2 if merge_only else 1
    while p < n:  # merge sorted runs of length p into runs of length 2p
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        comparators.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return comparators


def _next_pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def _sorting_network(n: int) -> tuple[tuple[int, int], ...]:
    """Comparators sorting ``n`` wires ascending (odd-even merge sort, n padded to a power of two).

    Padding wires hold +inf: a comparator touching one never moves a value, so it is dropped.
    """
    return tuple((i, j) for i, j in _odd_even_merge_sort_pow2(_next_pow2(n)) if j < n)


def _merging_network(a: int, b: int) -> tuple[tuple[int, int], ...]:
    """Comparators merging sorted wires [0, a) and sorted wires [a, a + b) into one sorted run.

    Both runs are padded to m = next power of two >= max(a, b): the first run sits at the top of
    [0, m) below -inf padding, the second at the bottom of [m, 2m) above +inf padding. Padding
    wires never change (a comparator touching one is a no-op), so those comparators are dropped.
    """
    m = _next_pow2(max(a, b))
    low = m - a
    return tuple((i - low, j - low) for i, j in _odd_even_merge_sort_pow2(2 * m, merge_only=True)
                 if i >= low and j < m + b)


def _tree_merging_network(lengths: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Comparators merging consecutive sorted runs (of the given lengths) pairwise into one run."""
    runs, start = [], 0
    for length in lengths:
        runs.append((start, length))
        start += length
    comparators: list[tuple[int, int]] = []
    while len(runs) > 1:
        merged = []
        for (s1, n1), (_, n2) in zip(runs[0::2], runs[1::2]):
            comparators += [(s1 + i, s1 + j) for i, j in _merging_network(n1, n2)]
            merged.append((s1, n1 + n2))
        runs = merged + runs[len(merged) * 2:]
    return tuple(comparators)


def _prune(network: Sequence[tuple[int, int]],
           outputs: Sequence[int]) -> tuple[tuple[tuple[int, int, bool, bool], ...], frozenset[int]]:
    """Keep the comparators the ``outputs`` wires depend on, and which of min/max each must compute.

    Returns:
        ``((i, j, need_min, need_max), ...)`` in network order, and the set of input wires read.
    """
    live = set(outputs)
    kept = []
    for i, j in reversed(network):
        need_min, need_max = i in live, j in live
        if need_min or need_max:
            kept.append((i, j, need_min, need_max))
            live.update((i, j))
    return tuple(reversed(kept)), frozenset(live)


@dataclass(frozen=True)
class _Program:
    """A pruned network compiled to ``out=`` ops on buffers ("slots").

    Attributes:
        steps: ``(is_max, a, b, dst)``: ``slot[dst] = max|min(ref a, ref b)``, where a ref >= 0 is a
            slot and a ref < 0 is input wire ``-1 - ref`` (read only).
        n_slots: Number of buffers the steps write to.
        outputs: Refs holding the requested output wires after the last step.
    """

    steps: tuple[tuple[bool, int, int, int], ...]
    n_slots: int
    outputs: tuple[int | None, ...]


def _compile(pruned: Sequence[tuple[int, int, bool, bool]], n_inputs: int, outputs: Sequence[int], *,
             writable_inputs: bool = False) -> _Program:
    """Assign buffers to a pruned network, overwriting a consumed value's buffer where possible.

    With ``writable_inputs`` the inputs are the first ``n_inputs`` slots (scratch the program may
    overwrite; run it with no inputs and those tensors first among the slots), which needs fewer
    extra buffers.
    """
    refs: list[int | None] = list(range(n_inputs)) if writable_inputs else [-1 - w for w in range(n_inputs)]
    free: list[int] = []
    n_slots = n_inputs if writable_inputs else 0

    def new_slot() -> int:
        nonlocal n_slots
        if free:
            return free.pop()
        n_slots += 1
        return n_slots - 1

    steps = []
    for i, j, need_min, need_max in pruned:
        a, b = refs[i], refs[j]
        if need_min and need_max:
            lo = new_slot()  # min cannot go into a or b: both are still read by the max
            hi = b if b >= 0 else a if a >= 0 else new_slot()
            steps += [(False, a, b, lo), (True, a, b, hi)]
            if a >= 0 and a != hi:
                free.append(a)
            refs[i], refs[j] = lo, hi
        else:
            kept, other = (a, b) if need_min else (b, a)
            dst = kept if kept >= 0 else other if other >= 0 else new_slot()
            steps.append((need_max, a, b, dst))
            free.extend(s for s in (a, b) if s >= 0 and s != dst)
            refs[i], refs[j] = (dst, None) if need_min else (None, dst)
    return _Program(tuple(steps), n_slots, tuple(refs[w] for w in outputs))


def _run(program: _Program, inputs: Sequence[torch.Tensor | None],
         slots: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
    """Execute a program; returns its output tensors (slots or inputs; None where pruned away)."""
    values = list(slots) + list(reversed(inputs))  # ref r -> values[r] (a negative ref counts from the end)
    for is_max, a, b, dst in program.steps:
        (torch.maximum if is_max else torch.minimum)(values[a], values[b], out=values[dst])
    return [None if ref is None else values[ref] for ref in program.outputs]


def _view(t: torch.Tensor | None, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor | None:
    return None if t is None else fn(t)


@functools.lru_cache(maxsize=32)
def _median_programs(ksize: int, *, writable_inputs: bool = False) -> tuple[_Program, _Program, _Program, _Program]:
    """The four stages of the separable k x k median network (k odd >= 3), see :func:`_median_band`.

    1. ``rows``: sort the k horizontal neighbours of every padded pixel (k wires in, k ranks out).
    2. ``pairs``: merge sorted padded rows 2j+1 and 2j+2 (2k wires in, 2k ranks out).
    3. ``shared``: merge the r = k // 2 row pairs common to output rows 2m and 2m+1 into one run
       of k*(k-1) values; only ranks med-k .. med can be the median (med = k*k // 2) once the k
       values of the remaining row are added, so only those k+1 are kept.
    4. ``final``: merge those k+1 with the sorted remaining row (k wires), output rank k = median.
    Each stage is pruned to what the next one reads. With ``writable_inputs`` every stage may
    overwrite its inputs (see :func:`_compile`), as the median at chosen pixels allows.
    """
    r, med = ksize // 2, ksize * ksize // 2
    final, final_in = _prune(_merging_network(ksize + 1, ksize), [ksize])
    shared_out = [med - ksize + w for w in range(ksize + 1) if w in final_in]
    shared, shared_in = _prune(_tree_merging_network([2 * ksize] * r), shared_out)
    pairs_out = sorted({w % (2 * ksize) for w in shared_in})
    pairs, pairs_in = _prune(_merging_network(ksize, ksize), pairs_out)
    rows_out = sorted({w % ksize for w in pairs_in} | {w - ksize - 1 for w in final_in if w > ksize})
    rows, _ = _prune(_sorting_network(ksize), rows_out)
    scratch = {"writable_inputs": writable_inputs}
    return (_compile(rows, ksize, range(ksize), **scratch), _compile(pairs, 2 * ksize, range(2 * ksize), **scratch),
            _compile(shared, 2 * ksize * r, [med - ksize + w for w in range(ksize + 1)], **scratch),
            _compile(final, 2 * ksize + 1, [ksize], **scratch))


def _pieces(b: int, h: int, per_row: int, dtype: torch.dtype, *,
            row_multiple: int = 1) -> list[tuple[int, int, int, int]]:
    """Split a batch of B images of H rows into pieces ``(b0, b1, y0, y1)`` whose temporaries fit.

    Args:
        b, h: Batch size and image height.
        per_row: Workspace elements per image row.
        dtype: Workspace dtype.
        row_multiple: Row bands (used only if one image does not fit) are multiples of this.
    """
    budget = _WORKSPACE_BYTES // torch.finfo(dtype).bits * 8
    if per_row * h * b <= budget:
        return [(0, b, 0, h)]
    if per_row * h <= budget:  # whole images, several per piece
        m = budget // (per_row * h)
        return [(i, min(i + m, b), 0, h) for i in range(0, b, m)]
    rows = max(row_multiple, budget // per_row // row_multiple * row_multiple)
    return [(i, i + 1, y, min(y + rows, h)) for i in range(b) for y in range(0, h, rows)]


def _median_into(x: torch.Tensor, ksize: int, out: torch.Tensor) -> None:
    """Write the k x k median (replicated border) of ``x`` (B, C, H, W) into ``out`` (same shape)."""
    if ksize == 1:
        out.copy_(x)
        return
    b, c, h, w = x.shape
    r = ksize // 2
    # replicate padding; one extra bottom row for odd H so that padded rows come in pairs
    xp = F.pad(x.reshape(b * c, 1, h, w), (r, r, r, r + h % 2), mode="replicate").view(b, c, -1, w + 2 * r)
    rows_p, pairs_p, shared_p, final_p = _median_programs(ksize)  # slots of a full or a half row each
    per_row = (rows_p.n_slots + final_p.n_slots) * w + (pairs_p.n_slots + shared_p.n_slots) * w // 2 + w + 2 * r
    for b0, b1, y0, y1 in _pieces(b, h, c * per_row, x.dtype, row_multiple=2):
        rows = y1 - y0 + (y1 - y0) % 2  # even; an odd last band computes one row more (the padding row)
        _median_band(xp[b0:b1, :, y0: y0 + rows + 2 * r], ksize, out[b0:b1, :, y0:y1])


def _median_band(xp: torch.Tensor, ksize: int, out: torch.Tensor) -> None:
    """k x k median of the padded rows ``xp`` (B, C, 2 (R + r), W + 2r) into ``out`` (B, C, <= 2R, W).

    Output row y takes padded rows y .. y + 2r. Rows 2m and 2m+1 share padded rows
    2m+1 .. 2m+2r (r merged row pairs); row 2m adds padded row 2m and row 2m+1 adds 2m+2r+1.
    Everything is computed at once for all even/odd output rows on whole (B*C, rows, W) views;
    padded rows are stored by parity, (B*C, 2, rows / 2, W), so that these views are contiguous.
    """
    rows_p, pairs_p, shared_p, final_p = _median_programs(ksize)
    b, c, hp, wp = xp.shape
    n, r = b * c, ksize // 2
    w = wp - 2 * r
    hq = hp // 2  # row pairs of the padded band
    h2 = hq - r  # output row pairs
    by_parity, rows_s, pairs_s, shared_s, final_s = _carve_stacks(xp, [
        (1, (n, 2, hq, wp)), (rows_p.n_slots, (n, 2, hq, w)), (pairs_p.n_slots, (n, hq - 1, w)),
        (shared_p.n_slots, (n, h2, w)), (final_p.n_slots, (n, 2, h2, w))])
    by_parity = by_parity[0]  # [:, p, j] = padded row 2j+p
    by_parity.view(b, c, 2, hq, wp).copy_(xp.view(b, c, hq, 2, wp).transpose(2, 3))

    ranks = _run(rows_p, [by_parity[..., dx: dx + w] for dx in range(ksize)], rows_s)  # sorted rows
    pair_in = [_view(t, lambda v: v[:, 1, : hq - 1]) for t in ranks] + [_view(t, lambda v: v[:, 0, 1:]) for t in ranks]
    merged = _run(pairs_p, pair_in, pairs_s)  # (n, hq - 1, w): [:, j] = merge of padded rows 2j+1, 2j+2
    shared = _run(shared_p, [_view(t, lambda v: v[:, s: s + h2]) for s in range(r) for t in merged], shared_s)

    def own_row(t: torch.Tensor) -> torch.Tensor:  # (n, 2, h2, w): [:, 0, m] = row 2m, [:, 1, m] = row 2m+2r+1
        s0, s1, s2, s3 = t.stride()
        return t.as_strided((n, 2, h2, w), (s0, s1 + r * s2, s2, s3), t.storage_offset())

    final_in = [_view(t, lambda v: v.unsqueeze(1)) for t in shared] + [_view(t, own_row) for t in ranks]
    median = _run(final_p, final_in, final_s)[0].view(b, c, 2, h2, w)  # [..., p, m, :] = output row 2m+p
    h = out.shape[2]
    out[..., 0::2, :].copy_(median[:, :, 0, : (h + 1) // 2])
    out[..., 1::2, :].copy_(median[:, :, 1, : h // 2])


# ----------------------------------------------------------------------------- separable / bilateral cores


def _symmetric_taps(kernel: Sequence[float]) -> tuple[float, ...]:
    """Centre-first taps (k[r], k[r+1], ..., k[2r]) of a symmetric odd-length 1-D kernel."""
    r = len(kernel) // 2
    return tuple(float(v) for v in kernel[r:])


def _separable_into(xp: torch.Tensor, pad: int, filters: Sequence[tuple[Sequence[float], Sequence[float]]],
                    outs: Sequence[torch.Tensor]) -> None:
    """Separable filtering with symmetric kernels: rows, then columns (OpenCV's order).

    The row pass of all filters runs as one stack; taps are summed in pairs, x[i-t] + x[i+t].

    Args:
        xp: Padded batch (B, C, H + 2 pad, W + 2 pad), any border.
        pad: Padding of ``xp``; every kernel radius must be <= pad.
        filters: ``(row_taps, column_taps)`` per filter, centre-first (see :func:`_symmetric_taps`).
        outs: (B, C, H, W) targets, one per filter.
    """
    b, c, hp, wp = xp.shape
    h, w = hp - 2 * pad, wp - 2 * pad
    n, r = len(filters), max(len(taps) - 1 for row, column in filters for taps in (row, column))
    # row taps per filter, zero-padded to radius r, as (n, 1, 1, 1, 1) columns for the stacked row pass
    row_taps = torch.tensor([list(row) + [0.0] * (r + 1 - len(row)) for row, _ in filters],
                            dtype=xp.dtype).t().reshape(r + 1, n, 1, 1, 1, 1).to(xp.device)
    for b0, b1, y0, y1 in _pieces(b, h, (r + n + r * n) * c * w, xp.dtype):
        piece = xp[b0:b1, :, y0: y1 + 2 * pad]
        bp, hb = b1 - b0, y1 - y0
        pair_sums, rows, column_sums = _carve(xp, [(r, bp, c, hb + 2 * pad, w), (n, bp, c, hb + 2 * pad, w),
                                                   (r, n, bp, c, hb, w)])
        for t in range(1, r + 1):
            torch.add(piece[..., pad - t: pad - t + w], piece[..., pad + t: pad + t + w], out=pair_sums[t - 1])
        torch.mul(piece[..., pad: pad + w], row_taps[0], out=rows)
        for t in range(1, r + 1):
            rows.addcmul_(pair_sums[t - 1], row_taps[t])
        for t in range(1, r + 1):
            torch.add(rows[..., pad - t: pad - t + hb, :], rows[..., pad + t: pad + t + hb, :], out=column_sums[t - 1])
        for f, ((_, column), out) in enumerate(zip(filters, outs)):
            out = out[b0:b1, :, y0:y1]
            torch.mul(rows[f, ..., pad: pad + hb, :], column[0], out=out)
            for t in range(1, len(column)):
                out.add_(column_sums[t - 1, f], alpha=column[t])


def _bilateral_into(x: torch.Tensor, xp: torch.Tensor, pad: int, d: int, sigma_colors: Sequence[float],
                    sigma_space: float, lut_bins_per_channel: int, outs: Sequence[torch.Tensor]) -> None:
    """OpenCV's float bilateral filter (see :func:`bilateral_filter2d`) for several colour sigmas.

    Args:
        x: Batch (B, C, H, W), float32 or float64.
        xp: ``x`` reflect-101 padded by ``pad`` >= the filter radius.
        d, sigma_space, lut_bins_per_channel: As :func:`bilateral_filter2d`.
        sigma_colors: One colour sigma per output; they share the distance computations.
        outs: (B, C, H, W) targets, one per colour sigma.
    """
    dtype, device = x.dtype, x.device
    b, c, h, w = x.shape
    radius = max(d // 2, 1)

    # Per-image value range (OpenCV: len = (float)(max - min) * cn, max/min as doubles); a
    # (near-)constant image gets len = cn: its colour weights are ~1 whatever the scale.
    ranges = [hi - lo for lo, hi in torch.stack(torch.aminmax(x.reshape(b, -1), dim=1), 1).tolist()]  # host sync
    ranges = [1.0 if abs(r) < torch.finfo(torch.float32).eps else r for r in ranges]
    # The table's bins are max(ranges) / lut_bins_per_channel wide at most: use the exact Gaussian
    # where that interpolation error bound is negligible (module constant above).
    bin_width = max(ranges) / lut_bins_per_channel
    exact = [(bin_width / s) ** 2 / 8 <= _BILATERAL_EXACT_GAUSSIAN_MAX_ERROR for s in sigma_colors]
    order = sorted(range(len(outs)), key=lambda f: not exact[f])  # exact-Gaussian filters first
    sigma_colors, outs, exact = [sigma_colors[f] for f in order], [outs[f] for f in order], [exact[f] for f in order]
    n_out, n_exact = len(outs), sum(exact)
    # colour weight = exp(coeff * dist^2) = exp2(coeff * log2(e) * dist^2), coeff = -1 / (2 sigma^2)
    coeffs = [-0.5 / (s * s) / math.log(2.0) for s in sigma_colors]
    if n_exact:
        exact_coeffs = torch.tensor(coeffs[:n_exact], dtype=dtype, device=device).view(-1, 1, 1, 1, 1)
    if n_exact < n_out:  # per-image table constants, computed on the host (MPS has no float64)
        length = torch.tensor(ranges, dtype=torch.float64).to(dtype) * c
        scale = lut_bins_per_channel * c / length  # (B,) table bins per unit of colour distance
        # table entry i = exp(coeff * (i / scale)^2) = exp2(bin_coeff * i^2), per image
        bin_coeffs = [(coeff / scale.double() ** 2).to(device, dtype).view(1, b, 1, 1, 1) for coeff in coeffs]
        scale = scale.to(device).view(b, 1, 1, 1)

    # The disc of offsets in raster order (OpenCV's); offset -o reuses the weight map of +o, since
    # |I(p + o) - I(p)| is also the distance of pixel q = p + o to its neighbour q - o.
    space_coeff = -0.5 / (sigma_space * sigma_space)
    disc = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
            if not math.sqrt(dy * dy + dx * dx) > radius]
    half = [(dy, dx) for dy, dx in disc if dy > 0 or (dy == 0 and dx > 0)]
    per_row = (len(half) * n_out + c + 6) * (w + radius) + (n_out + 1) * (c + 1) * (w + 2 * pad)
    for b0, b1, y0, y1 in _pieces(b, h, per_row, dtype):
        bp, hb = b1 - b0, y1 - y0
        piece = xp[b0:b1, :, y0: y1 + 2 * pad]
        ext = (hb + radius) * (w + radius)  # a weight map covers band ∪ (band - o): (hb + |dy|) x (w + |dx|)
        bufs = _carve(x, [(n_out * bp * ext,)] * len(half)  # weight maps, (n_out, B, 1, ny, nx) each
                      + [(bp * c * ext,), (bp * ext,), (bp * ext,), (2 * bp * ext,), (2 * bp * ext,)]
                      + [(n_out, bp, c + 1, hb, w), (bp, c + 1) + piece.shape[-2:]])
        # [sum(w * I) | sum(w)] per colour sigma, accumulated with the padded image plus a channel of ones
        acc, xp1 = bufs[-2], bufs[-1]
        xp1[:, :c].copy_(piece)
        xp1[:, c:].fill_(1.0)
        maps: dict[tuple[int, int], tuple[torch.Tensor, int, int]] = {}  # (dy, dx) -> (maps, qy, qx)
        for (dy, dx), map_buf in zip(half, bufs):
            # map element (iy, ix) belongs to pixel q = (qy + iy, qx + ix) of band ∪ (band - o)
            qy, qx = -dy, min(0, -dx)
            ny, nx = hb + dy, w + abs(dx)
            size = bp * ny * nx
            weight = map_buf[: n_out * size].view(n_out, bp, 1, ny, nx)
            diff = bufs[len(half)][: c * size].view(bp, c, ny, nx)
            here = piece[:, :, pad + qy: pad + qy + ny, pad + qx: pad + qx + nx]
            there = piece[:, :, pad + qy + dy: pad + qy + dy + ny, pad + qx + dx: pad + qx + dx + nx]
            torch.sub(there, here, out=diff)
            if c > 1 or n_exact < n_out:
                diff.abs_()
            if c > 1:  # L1 colour distance, as OpenCV
                dist = bufs[len(half) + 1][:size].view(bp, 1, ny, nx)
                torch.sum(diff, dim=1, keepdim=True, out=dist)
            else:
                dist = diff
            squares = bufs[len(half) + 3][: 2 * size].view(2, bp, 1, ny, nx)
            if n_exact:
                torch.square(dist, out=squares[0])
                torch.mul(squares[0], exact_coeffs, out=weight[:n_exact]).exp2_()
            if n_exact < n_out:
                # OpenCV: pos = dist * scale, i = floor(pos), weight = lut[i] + (pos - i) * (lut[i+1] - lut[i])
                frac = bufs[len(half) + 2][:size].view(bp, 1, ny, nx)
                args = bufs[len(half) + 4][: 2 * size].view(2, bp, 1, ny, nx)
                torch.mul(dist, scale[b0:b1], out=frac)
                torch.floor(frac, out=squares[0])
                torch.add(squares[0], 1.0, out=squares[1])
                frac.sub_(squares[0])
                squares.square_()  # i^2, (i + 1)^2
                for f in range(n_exact, n_out):
                    torch.mul(squares, bin_coeffs[f][:, b0:b1], out=args).exp2_()  # lut[i], lut[i + 1]
                    torch.lerp(args[0], args[1], frac, out=weight[f])
            maps[dy, dx] = (weight, qy, qx)

        # Accumulate in OpenCV's order (raster order over the disc, from zero), all colour sigmas at
        # once: float rounding then stays as close to OpenCV's as the straightforward loop's.
        acc.zero_()
        for dy, dx in disc:
            neighbour = xp1[:, :, pad + dy: pad + dy + hb, pad + dx: pad + dx + w]
            if dy == 0 and dx == 0:
                acc.add_(neighbour)  # colour and space weight 1
                continue
            if (dy, dx) in maps:  # weight of +o at pixel p: map(p)
                weight, qy, qx = maps[dy, dx]
                wy, wx = -qy, -qx
            else:  # weight of -o at pixel p: map of +o at p - o
                weight, qy, qx = maps[-dy, -dx]
                wy, wx = dy - qy, dx - qx
            space_weight = math.exp((dy * dy + dx * dx) * space_coeff)
            acc.addcmul_(weight[:, :, :, wy: wy + hb, wx: wx + w], neighbour, value=space_weight)
        for f, out in enumerate(outs):
            torch.div(acc[f, :, :c], acc[f, :, c:], out=out[b0:b1, :, y0:y1])


# ----------------------------------------------------------------------------- filters


def gaussian_kernel1d(ksize: int, sigma: float, *, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian kernel as ``cv2.getGaussianKernel(ksize, sigma)`` (sigma > 0).

    Args:
        ksize: Odd positive kernel length.
        sigma: Standard deviation in pixels, > 0.
        dtype: Output dtype (weights are computed in float64 first).
        device: Output device.

    Returns:
        Tensor of shape (ksize,), summing to 1.
    """
    _check_ksize(ksize)
    _check_positive(sigma, "sigma")
    pos = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2  # on CPU: float64 everywhere
    weights = torch.exp(pos * pos * (-0.5 / (sigma * sigma)))
    return (weights / weights.sum()).to(device=device, dtype=dtype)


def _gaussian_taps(ksize: int, sigma: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    _check_ksize(ksize)
    _check_positive(sigma, "sigma")
    return _gaussian_taps_cached(ksize, float(sigma))


@functools.lru_cache(maxsize=64)
def _gaussian_taps_cached(ksize: int, sigma: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    taps = _symmetric_taps(gaussian_kernel1d(ksize, sigma, dtype=torch.float64).tolist())
    return taps, taps


def _box_taps(ksize: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    _check_ksize(ksize)
    r = ksize // 2
    return (1.0,) * (r + 1), (1.0 / (ksize * ksize),) * (r + 1)  # sum over rows, then mean


def _linear_filter(x: torch.Tensor, taps: tuple[tuple[float, ...], tuple[float, ...]]) -> torch.Tensor:
    work = _work_dtype(x)
    pad = len(taps[0]) - 1
    out = torch.empty_like(work)
    _separable_into(_pad2d(work, pad, _REFLECT_101), pad, [taps], [out])
    return out.to(x.dtype)


def gaussian_blur2d(x: torch.Tensor, ksize: int = 5, sigma: float = 1.0) -> torch.Tensor:
    """Gaussian blur matching ``cv2.GaussianBlur(x, (ksize, ksize), sigma)`` (reflect-101 border).

    Args:
        x: Image batch, float tensor of shape (B, C, H, W), values in [0, 1], any device.
        ksize: Odd kernel size (same in both directions).
        sigma: Standard deviation in pixels (same in both directions), > 0.

    Returns:
        Blurred batch, same shape, dtype and device as ``x``.

    Raises:
        ImageError: ``x`` is not a non-empty floating (B, C, H, W) tensor.
        ValueError: ``ksize`` is not odd and positive, or ``sigma`` <= 0.
    """
    _check_batch(x)
    return _linear_filter(x, _gaussian_taps(ksize, sigma))


def box_blur2d(x: torch.Tensor, ksize: int = 5) -> torch.Tensor:
    """Normalised box (mean) filter matching ``cv2.blur(x, (ksize, ksize))`` (reflect-101 border).

    Args:
        x: Image batch, float tensor of shape (B, C, H, W), values in [0, 1], any device.
        ksize: Odd window size.

    Returns:
        Filtered batch, same shape, dtype and device as ``x``.

    Raises:
        ImageError: ``x`` is not a non-empty floating (B, C, H, W) tensor.
        ValueError: ``ksize`` is not odd and positive.
    """
    _check_batch(x)
    return _linear_filter(x, _box_taps(ksize))


def median_blur2d(x: torch.Tensor, ksize: int = 5) -> torch.Tensor:
    """Median filter matching ``cv2.medianBlur(x, ksize)`` (replicated border), channel by channel.

    OpenCV accepts float32 input only for ``ksize`` 3 and 5; this op takes any odd ``ksize``.
    Exact (the result is always one of the input values). Computed as a min/max network on
    whole images (see the module notes), about 60 passes for ``ksize`` 5; temporaries (about 35
    times the input for ``ksize`` 5) are processed in pieces of at most 16 MiB.

    Args:
        x: Image batch, float tensor of shape (B, C, H, W), values in [0, 1], any device.
        ksize: Odd window size.

    Returns:
        Filtered batch, same shape, dtype and device as ``x``.

    Raises:
        ImageError: ``x`` is not a non-empty floating (B, C, H, W) tensor.
        ValueError: ``ksize`` is not odd and positive.
    """
    _check_batch(x)
    _check_ksize(ksize)
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    _median_into(x, ksize, out)
    return out


def bilateral_filter2d(x: torch.Tensor, d: int = 5, sigma_color: float = 0.1, sigma_space: float = 5.0,
                       *, lut_bins_per_channel: int = 4096) -> torch.Tensor:
    """Bilateral filter matching ``cv2.bilateralFilter(x, d, sigma_color, sigma_space)`` on float images.

    OpenCV's float path, reproduced here per image of the batch:

    * spatial support: the pixels within Euclidean distance ``r = max(d // 2, 1)`` of the centre
      (a disc, e.g. 13 pixels for ``d = 5``), weight ``exp(-dist^2 / (2 sigma_space^2))``;
    * colour distance: ``|I(q) - I(p)|`` for one channel, the SUM of absolute channel differences
      for several channels (not the Euclidean norm);
    * colour weight: ``exp(-dist^2 / (2 sigma_color^2))`` read from a lookup table of
      ``lut_bins_per_channel * C`` bins spanning ``[0, C * (max - min)]``, where max/min are taken
      over the whole image (all channels), with linear interpolation between bins (evaluated in
      closed form; where the table's weight error ``(bin / sigma_color)**2 / 8`` is at most 2.5e-6,
      as for PixelRL's 0.1 and 1.0 on its images, the exact Gaussian is used instead, which
      changes results by < 1e-6; OpenCV builds with an IPP HAL compute it that way too);
    * borders are reflect-101; a constant image stays constant (up to float rounding).

    ``sigma_color`` is on the intensity scale of ``x`` ([0, 1] for our images; PixelRL calls
    ``cv2.bilateralFilter`` on [0, 1] floats with 0.1 and 1.0). OpenCV only accepts C = 1 or 3;
    other C follow the same rule. Not meant to be differentiated (the table index is floored).
    Reads the batch's value range back to the host once per call (a sync on GPU).

    Args:
        x: Image batch, float tensor of shape (B, C, H, W), values in [0, 1], any device.
        d: Diameter of the pixel neighbourhood (> 0); the radius is ``max(d // 2, 1)``.
        sigma_color: Colour sigma in intensity units, > 0.
        sigma_space: Spatial sigma in pixels, > 0.
        lut_bins_per_channel: Lookup-table resolution (OpenCV uses 4096).

    Returns:
        Filtered batch, same shape, dtype and device as ``x``.

    Raises:
        ImageError: ``x`` is not a non-empty floating (B, C, H, W) tensor.
        ValueError: ``d``, ``sigma_color``, ``sigma_space`` or ``lut_bins_per_channel`` is not positive.
    """
    _check_batch(x)
    _check_bilateral_params(d, sigma_color, sigma_space, lut_bins_per_channel)
    work = _work_dtype(x)
    radius = max(d // 2, 1)
    out = torch.empty_like(work, memory_format=torch.contiguous_format)
    _bilateral_into(work, _pad2d(work, radius, _REFLECT_101), radius, d, (sigma_color,), sigma_space,
                    lut_bins_per_channel, [out])
    return out.to(x.dtype)


def shift_intensity(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Add ``delta`` to every value, WITHOUT clipping (PixelRL's +-1/255 actions).

    PixelRL does not clip after its +-1/255 moves, so values may leave [0, 1] slightly; clip
    where your pipeline needs it.

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


# ----------------------------------------------------------------------------- PixelRL bank


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
#: The +-1/255 moves are not clipped, as in PixelRL.
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
    """How :func:`pixelrl_filter_bank` computes a bank; candidate indices into the output.

    Attributes:
        shifts: ``(index, delta)`` of the intensity shifts.
        copies: Indices of the identity.
        medians: ``(index, ksize)``.
        linear: ``(index, (row_taps, column_taps))`` of the Gaussian and box filters.
        bilateral: ``((index, ...), (sigma_color, ...), d, sigma_space, lut_bins_per_channel)``,
            one entry per group that can share distances.
        other: Indices of actions called as they are.
        pad: Reflect-101 padding shared by the linear and bilateral filters.
    """

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


def pixelrl_filter_bank(x: torch.Tensor,
                        actions: Sequence[FilterAction] = PIXELRL_ACTION_TABLE) -> torch.Tensor:
    """Apply every action of a filter bank to a batch (PixelRL's candidates for per-pixel selection).

    The library's ops (shifts, identity, Gaussian, box, median, bilateral) are computed together,
    sharing the padded image, the bilateral distances and the buffers; the result equals applying
    each action on its own. Any other op is called as ``action(x)``.

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


# ----------------------------------------------------------------------------- the bank at chosen pixels only
#
# A per-pixel choice needs each filter only at the pixels that chose it (PixelRL's nine candidates,
# of which each pixel keeps one). Pixels are addressed by their index q in the padded (B, Hp, Wp)
# grid, so that a window tap is q + dy * Wp + dx (channel c of image b adds (b * (C - 1) + c) *
# Hp * Wp in a (B, C, Hp, Wp) buffer). Sorting the action map padded with a sentinel gives the
# pixels of every action as such indices directly. For n chosen pixels a filter reads its taps
# with one ``index_select`` per tap (a shifted 1-D view of the padded copy indexed by the window
# corners; no (n, k*k) index tensor is built) into a tap-major (taps, C, n) buffer with contiguous
# rows, and does its math on those rows instead of on the whole batch:
#
# * bilateral: the disc taps, their weights and the weighted mean on (13, C, n), all colour sigmas
#   of one support together (a colour coefficient per pixel);
# * median: the four pruned stages of the dense median (sort the k window rows, merge row pairs,
#   merge the pairs, merge with the remaining row) on the gathered rows, overwriting them;
# * Gaussian / box: the row pass on the whole batch (a few shared passes) and the column pass at
#   the chosen pixels (k taps each, all filters together), or both passes at the chosen pixels
#   when few chose the filter: the operations of the dense filter, so the same values;
# * shifts: the centre tap plus the delta; "keep": nothing.
#
# The results are written with one ``index_copy_`` into the reflect-padded copy (once every filter
# has read it), whose interior is then the output. A gathered value costs about as much as ten
# elementwise operations on contiguous ones (CPU), which is why the row passes stay dense and why
# a median chosen by most pixels (a trained policy may pick one filter nearly everywhere) is
# computed on the whole batch (see _DENSE_FRACTION). All large temporaries of a call are cut from
# one allocation (_Arena), for the reason given in the module notes.


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
def _disc(radius: int) -> tuple[tuple[int, int], ...]:
    """OpenCV's bilateral support: offsets (dy, dx) within Euclidean distance ``radius``, raster order."""
    return tuple((dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
                 if not math.sqrt(dy * dy + dx * dx) > radius)


@functools.lru_cache(maxsize=16)
def _window(radius: int) -> tuple[tuple[int, int], ...]:
    """Offsets of a (2r+1) x (2r+1) window row by row: tap ``j * k + i`` is (dy_j, dx_i)."""
    return tuple((dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1))


#: A linear filter chosen by more than this fraction of the pixels gets its row pass on the whole
#: batch (shared passes; k gathers per chosen pixel instead of k * k), and a median chosen by more
#: than this fraction is computed on the whole batch and read at its pixels. Both ways run the same
#: operations in the same order, so they give the same values; this only picks the faster one
#: (measured on CPU, float32, 5x5 windows).
_DENSE_FRACTION = {"linear": 0.04, "median": 0.2}

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


#: A sparse evaluation takes at most about this many bytes of temporaries at a time (its pixels are
#: processed in chunks), which bounds the arena of a call.
_SPARSE_CHUNK_BYTES = 8 * 2 ** 20


@dataclass(frozen=True)
class _ActionSpec:
    """How one action of a bank is evaluated at chosen pixels: ``kind`` and its parameters.

    ``kind`` is "identity", "shift" (delta), "median" (ksize), "linear" ((row_taps, column_taps)),
    "bilateral" (d, sigma_color, sigma_space, lut_bins_per_channel) or "other" (called as is).
    """

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


def _value_ranges(x: torch.Tensor) -> list[float]:
    """Per-image value range as :func:`_bilateral_into` takes it (a flat image counts as 1); a host sync."""
    flat = x.reshape(x.shape[0], -1)
    ranges = [hi - lo for lo, hi in zip(flat.amin(dim=1).tolist(), flat.amax(dim=1).tolist())]  # doubles
    return [1.0 if abs(r) < torch.finfo(torch.float32).eps else r for r in ranges]


def _bilateral_exact(max_range: float, sigma_color: float, lut_bins_per_channel: int) -> bool:
    """Whether :func:`_bilateral_into` uses the exact Gaussian for this colour sigma, given the
    largest per-image value range of the batch."""
    return (max_range / lut_bins_per_channel / sigma_color) ** 2 / 8 <= _BILATERAL_EXACT_GAUSSIAN_MAX_ERROR


def _colour_coeff(sigma_color: float) -> float:
    """The bilateral colour weight is ``exp2(coeff * dist^2)``."""
    return -0.5 / (sigma_color * sigma_color) / math.log(2.0)


class _Sites:
    """Padded copies of one batch, and reads of them at chosen pixels.

    Pixels are indexed by q in the padded (B, Hp, Wp) grid; buffers on that grid are
    (B, C, Hp, Wp), so channel c of pixel q (image b) sits at ``q + (b * (C - 1) + c) * Hp * Wp``.

    Args:
        x: Batch (B, C, H, W), float32 or float64 (the working dtype).
        pad: Padding of the copies, >= every window radius read.
        arena: Where the large temporaries come from.
    """

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
        """The batch padded with OpenCV border ``mode``, (B, C, Hp, Wp), contiguous (made on the
        first call: make it before any :meth:`_Arena.mark` whose region is released later)."""
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
        """Values of ``source`` at every offset from the pixels, shape (len(offsets), C, n).

        Args:
            source: Flat padded buffer(s).
            corners: From :meth:`corners` with the same ``first`` (the smallest grid offset of
                ``offsets``), for pixels whose offsets stay inside the source.
            offsets: (dy, dx) pairs.
            first: ``min(dy * Wp + dx)`` over ``offsets``.
        """
        c, n = self.shape[1], corners.numel()
        out = self.take((len(offsets), c, n))
        runs, span = _runs(tuple(offsets), self.grid[2], first)
        length = source.numel() - span
        base = source.storage_offset()
        if c > 1:  # every channel of a tap in one index_select
            corners = torch.add(corners, torch.arange(0, c * self.plane, self.plane, device=corners.device).view(-1, 1),
                                out=self.take((c, n), torch.long)).view(-1)
        # one strided view per run of taps along a row (1-D views of the source, each shifted by
        # its tap offset) rather than one slice per tap: the Python overhead is per call
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
        """Row pass of separable filters on the whole batch, (L, B, C, Hp, Wp).

        Every padded row is filtered (columns [pad, pad + W) are written; the rest is left
        uninitialised), with the operations of :func:`_separable_into`'s row pass.
        """
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


def _median_at(sites: _Sites, q: torch.Tensor, ksize: int, out: torch.Tensor) -> None:
    """k x k median (replicate border) at pixels ``q`` into ``out`` (C, n)."""
    r = ksize // 2
    first = -r * sites.grid[2] - r
    taps = sites.gather(sites.padded(_REPLICATE).view(-1), sites.corners(q, first), _window(r), first)
    if ksize == 1:
        out.copy_(taps[0])
        return
    k, c, n = ksize, taps.shape[1], taps.shape[2]
    programs = _median_programs(ksize, writable_inputs=True)  # the gathered taps are scratch

    def run(stage: int, inputs: list, shape: tuple[int, ...]) -> list:
        program = programs[stage]
        extra = program.n_slots - len(inputs)
        return _run(program, [], inputs + (list(sites.take((extra, *shape)).unbind(0)) if extra > 0 else []))

    # The window's rows 1..2r form r merged pairs and row 0 joins in the final merge, as for output
    # row 2m of the dense median (whose window starts at padded row 2m).
    ranks = run(0, list(taps.view(k, k, c, n).transpose(0, 1).unbind(0)), (k, c, n))  # rank i of every row
    merged = run(1, [_view(t, lambda v: v[1::2]) for t in ranks] + [_view(t, lambda v: v[2::2]) for t in ranks],
                 (r, c, n))
    shared = run(2, [_view(t, lambda v, s=s: v[s]) for s in range(r) for t in merged], (c, n))
    out.copy_(run(3, shared + [_view(t, lambda v: v[0]) for t in ranks], (c, n))[0])


def _linear_at(sites: _Sites, q: torch.Tensor, taps: tuple[tuple[float, ...], tuple[float, ...]],
               out: torch.Tensor) -> None:
    """Separable symmetric filter (reflect-101) at pixels ``q``, both passes there, into ``out`` (C, n)."""
    row, column = taps
    r = len(row) - 1
    k = 2 * r + 1
    first = -r * sites.grid[2] - r
    values = sites.gather(sites.padded(_REFLECT_101).view(-1), sites.corners(q, first), _window(r), first)
    values = values.view(k, k, *values.shape[1:]).transpose(0, 1)  # [i, j]: column i of window row j
    rows = torch.mul(values[r], row[0], out=sites.take(values.shape[1:]))  # (k, C, n): every window row
    pair = sites.take(values.shape[1:])
    for t in range(1, r + 1):
        rows.add_(torch.add(values[r - t], values[r + t], out=pair), alpha=row[t])
    torch.mul(rows[r], column[0], out=out)
    for t in range(1, len(column)):
        out.add_(torch.add(rows[r - t], rows[r + t], out=pair[0]), alpha=column[t])


def _columns_at(sites: _Sites, rows: torch.Tensor, corners: torch.Tensor, taps: torch.Tensor,
                out: torch.Tensor) -> None:
    """Column pass of separable filters at chosen pixels, from their row passes, into ``out`` (C, n).

    Args:
        rows: Flat row passes of :meth:`_Sites.row_passes`.
        corners: Per pixel, :meth:`_Sites.corners` of its pixel in its filter's row pass, shifted
            by the grid offset ``-r * Wp`` of the top tap.
        taps: (r + 1, 1, n): per pixel, the centre-first column taps of its filter.
    """
    r = taps.shape[0] - 1
    wp = sites.grid[2]
    values = sites.gather(rows, corners, [(dy, 0) for dy in range(-r, r + 1)], -r * wp)  # (k, C, n)
    torch.mul(values[r], taps[0], out=out)
    pair = sites.take(out.shape)
    for t in range(1, r + 1):
        out.addcmul_(torch.add(values[r - t], values[r + t], out=pair), taps[t])


def _bilateral_at(sites: _Sites, q: torch.Tensor, coeffs: torch.Tensor, d: int, sigma_space: float,
                  lut_bins_per_channel: int, ranges: Sequence[float] | None, out: torch.Tensor) -> None:
    """OpenCV's float bilateral filter (see :func:`bilateral_filter2d`) at pixels ``q`` into ``out`` (C, n).

    Args:
        coeffs: (n,) per pixel, :func:`_colour_coeff` of its colour sigma (pixels of several
            colour sigmas go together).
        ranges: None for the exact Gaussian, else the batch's value ranges for OpenCV's
            interpolated table (as decided by :func:`_bilateral_into`).
    """
    c, n = sites.shape[1], q.numel()
    disc = _disc(max(d // 2, 1))
    first = min(dy * sites.grid[2] + dx for dy, dx in disc)
    values = sites.gather(sites.padded(_REFLECT_101).view(-1), sites.corners(q, first), disc, first)  # (T, C, n)
    taps = len(disc)
    centre = disc.index((0, 0))
    diff = torch.sub(values, values[centre], out=sites.take(values.shape))
    if c > 1 or ranges is not None:
        diff.abs_()
    dist = torch.sum(diff, dim=1, keepdim=True, out=sites.take((taps, 1, n))) if c > 1 else diff  # L1, (T, 1, n)
    space_coeff = -0.5 / (sigma_space * sigma_space)
    space = [math.exp((dy * dy + dx * dx) * space_coeff) for dy, dx in disc]
    if ranges is None:  # weight = space * exp2(coeff * dist^2) = exp2(coeff * dist^2 + log2(space))
        log_space = torch.tensor([math.log2(v) for v in space], dtype=values.dtype).view(-1, 1, 1).to(values.device)
        weight = torch.addcmul(log_space, dist.square_(), coeffs, out=dist).exp2_()
    else:  # OpenCV's table: pos = dist * scale, i = floor(pos), lut[i] + (pos - i) * (lut[i + 1] - lut[i])
        dtype, device = values.dtype, values.device
        length = torch.tensor(ranges, dtype=torch.float64).to(dtype) * c
        scale = lut_bins_per_channel * c / length  # (B,) table bins per unit of colour distance
        images = sites.images(q)
        # lut[i] = exp2(coeff / scale^2 * i^2), per pixel
        per_pixel = coeffs * (1.0 / scale.double() ** 2).to(device, dtype).index_select(0, images)
        pos = dist.mul_(scale.to(device).index_select(0, images))
        low = torch.floor(pos)
        frac = pos.sub_(low)
        high = low + 1.0
        weight = torch.lerp(low.square_().mul_(per_pixel).exp2_(), high.square_().mul_(per_pixel).exp2_(), frac)
        weight.mul_(torch.tensor(space, dtype=dtype).view(-1, 1, 1).to(device))
    # sum(w * I) / sum(w), summed over the taps in OpenCV's (raster) order (the centre's weight is 1)
    numerator = torch.sum(torch.mul(weight, values, out=values), dim=0, out=out)
    numerator.div_(torch.sum(weight, dim=0, out=sites.take((1, n))))


def _chunk_bytes(kind: str, params: tuple, c: int, itemsize: int) -> int:
    """Arena bytes per pixel a sparse evaluation takes (its pixels are processed in chunks)."""
    corners = 8 * (c + 1)  # int64 window corners, per channel for colour images
    if kind == "median":
        k = params[0]
        programs = _median_programs(k, writable_inputs=True) if k > 1 else None
        extra = 0 if programs is None else \
            (programs[0].n_slots - k) * k + (programs[1].n_slots - 2 * k) * (k // 2) + programs[2].n_slots \
            - k * (k - 1) + programs[3].n_slots - 2 * k - 1
        return (k * k + extra) * c * itemsize + corners
    if kind == "bilateral":
        taps = len(_disc(max(params[0] // 2, 1)))
        return (2 * taps * c + (taps if c > 1 else 0) + 1) * itemsize + corners
    if kind == "linear":
        k = 2 * len(params[0][0]) - 1
        return (k * k + 2 * k) * c * itemsize + corners
    if kind == "columns":
        return (2 * params[0] + 2) * c * itemsize + corners
    return 0


@dataclass(frozen=True)
class _Job:
    """One sparse evaluation of a call: ``kind`` ("median", "linear", "columns", "bilateral",
    "dense_median", "shift", "plain"), the actions whose pixels it covers (their pixels, one after
    the other, are its pixels) and parameters."""

    kind: str
    actions: tuple[int, ...]
    params: tuple = ()


def _plan(specs: Sequence[_ActionSpec], counts: Sequence[int], ranges: Callable[[], list[float]],
          bound: Callable[[], float], n_pixels: int) -> list[_Job]:
    """The jobs evaluating every chosen action (count > 0) but "keep"."""
    chosen = [k for k, (spec, count) in enumerate(zip(specs, counts)) if count and spec.kind != "identity"]
    dense = {k for k in chosen if specs[k].kind in _DENSE_FRACTION
             and counts[k] > _DENSE_FRACTION[specs[k].kind] * n_pixels}
    jobs = []
    linear = tuple(k for k in chosen if k in dense and specs[k].kind == "linear")
    if linear:  # row pass on the whole batch, column pass at the pixels, all filters together
        jobs.append(_Job("columns", linear, (max(len(specs[k].params[0][1]) for k in linear) * 2 - 1,)))
    bilateral: dict[tuple, list[int]] = {}  # one evaluation per support and colour-weight path
    for k in chosen:
        if specs[k].kind == "bilateral":
            d, sigma_color, sigma_space, bins = specs[k].params
            # the range of the whole batch bounds every image's: if it allows the exact Gaussian,
            # so does the largest per-image range (the rule of _bilateral_into), with one pass less
            exact = _bilateral_exact(bound(), sigma_color, bins) or _bilateral_exact(max(ranges()), sigma_color, bins)
            bilateral.setdefault((d, sigma_space, bins, exact), []).append(k)
    jobs += [_Job("bilateral", tuple(members), key) for key, members in bilateral.items()]
    for k in chosen:
        kind = specs[k].kind
        if kind in ("median", "linear") and k not in linear:
            jobs.append(_Job("dense_median" if k in dense else kind, (k,), specs[k].params))
        elif kind == "shift":
            jobs.append(_Job("shift", (k,), specs[k].params))
        elif kind == "other":
            jobs.append(_Job("plain", (k,)))
    return jobs


def _job_bytes(job: _Job, specs: Sequence[_ActionSpec], counts: Sequence[int], sites_shape: tuple[int, int, int, int],
               grid_size: int, itemsize: int) -> int:
    """Arena bytes of a job: its own buffers plus one chunk of its temporaries."""
    c = sites_shape[1]
    n = sum(counts[k] for k in job.actions)
    float_dtype = torch.float32 if itemsize == 4 else torch.float64
    if job.kind == "columns":
        r = job.params[0] // 2
        own = _nbytes((n, torch.long), ((r + 1) * n, float_dtype), (len(job.actions) * grid_size * c, float_dtype),
                      (grid_size * c, float_dtype))  # corners, taps, row passes, pair sums
        per_pixel = _chunk_bytes("columns", job.params, c, itemsize)
    elif job.kind == "bilateral":
        own = _nbytes((n, torch.long), (n, float_dtype))  # pixels, colour coefficients
        per_pixel = _chunk_bytes("bilateral", job.params, c, itemsize)
    elif job.kind == "dense_median":
        return _nbytes((grid_size * c, float_dtype), (c * n, float_dtype), (n, torch.long))
    elif job.kind == "shift":
        return _nbytes((c * n, float_dtype), (n, torch.long))
    elif job.kind == "plain":
        return 0
    else:
        own = 0
        per_pixel = _chunk_bytes(job.kind, specs[job.actions[0]].params, c, itemsize)
    chunk = min(n, max(1, _SPARSE_CHUNK_BYTES // per_pixel))
    return own + chunk * per_pixel + 16 * _ARENA_ALIGN


def _chunks(n: int, per_pixel: int) -> list[tuple[int, int]]:
    step = max(1, _SPARSE_CHUNK_BYTES // max(per_pixel, 1))
    return [(start, min(start + step, n)) for start in range(0, n, step)]


def _run_job(sites: _Sites, job: _Job, table: Sequence[FilterAction], specs: Sequence[_ActionSpec],
             groups: Sequence[torch.Tensor], ranges: Callable[[], list[float]], out: torch.Tensor) -> torch.Tensor:
    """Evaluate a job into ``out`` (C, n); returns the pixels q (n,) of its values."""
    c, itemsize = sites.shape[1], sites.x.dtype.itemsize
    arena = sites.arena
    members = [groups[k] for k in job.actions]
    n = out.shape[1]
    q = members[0] if len(members) == 1 else torch.cat(members, out=sites.take((n,), torch.long))

    def chunked(kind: str, params: tuple, fn: Callable[[int, int], None]) -> None:
        for start, end in _chunks(n, _chunk_bytes(kind, params, c, itemsize)):
            mark = arena.mark()
            fn(start, end)
            arena.release(mark)

    if job.kind == "columns":
        (k,) = job.params
        r = k // 2
        rows = sites.row_passes([specs[a].params[0] for a in job.actions])
        corners = sites.take((n,), torch.long)
        taps = sites.take((r + 1, 1, n))
        at = 0
        for l, a in enumerate(job.actions):
            count, column = groups[a].numel(), specs[a].params[0][1]
            sites.corners(groups[a], l * sites.size - r * sites.grid[2], out=corners[at: at + count])
            for t in range(r + 1):
                taps[t, :, at: at + count].fill_(column[t] if t < len(column) else 0.0)
            at += count
        chunked("columns", job.params, lambda s, e: _columns_at(sites, rows.view(-1), corners[s:e], taps[..., s:e],
                                                                 out[:, s:e]))
    elif job.kind == "bilateral":
        d, sigma_space, bins, exact = job.params
        coeffs = sites.take((n,))
        at = 0
        for a in job.actions:
            count = groups[a].numel()
            coeffs[at: at + count].fill_(_colour_coeff(specs[a].params[1]))
            at += count
        table_ranges = None if exact else ranges()
        chunked("bilateral", (d,), lambda s, e: _bilateral_at(sites, q[s:e], coeffs[s:e], d, sigma_space, bins,
                                                              table_ranges, out[:, s:e]))
    elif job.kind == "median":
        chunked("median", job.params, lambda s, e: _median_at(sites, q[s:e], job.params[0], out[:, s:e]))
    elif job.kind == "linear":
        chunked("linear", job.params, lambda s, e: _linear_at(sites, q[s:e], job.params[0], out[:, s:e]))
    elif job.kind == "shift":
        torch.add(sites.read(sites.padded(_REFLECT_101), q), job.params[0], out=out)
    elif job.kind == "dense_median":  # chosen by many pixels: on the whole batch, then read
        whole = sites.empty()
        _median_into(sites.x, job.params[0], sites.interior(whole))
        out.copy_(sites.read(whole, q))
    else:  # an op the library does not know: on the whole batch, then read
        whole = _pad2d(table[job.actions[0]](sites.x).to(sites.x.dtype), sites.pad, _REPLICATE)
        out.copy_(sites.read(whole.contiguous(), q))
    return q


def _evaluate(x: torch.Tensor, pad: int, table: Sequence[FilterAction], specs: Sequence[_ActionSpec],
              groups: Sequence[torch.Tensor], *, output: bool) -> tuple[_Sites, torch.Tensor, torch.Tensor,
                                                                        dict[int, torch.Tensor]]:
    """Evaluate every action but "keep" at its pixels (``groups[k]``: padded-grid indices q of action k).

    Args:
        output: Make the reflect-101 padded copy even if no filter reads it (the caller writes
            the result into it).

    Returns:
        ``(sites, values, q, by_action)``: values (C, n) of the evaluated actions at pixels q (n,),
        and the (C, count) slice of ``values`` of each evaluated action.
    """
    b, c, h, w = x.shape
    counts = [g.numel() for g in groups]
    cache: dict[str, object] = {}

    def ranges() -> list[float]:  # per image (a host sync)
        if "ranges" not in cache:
            cache["ranges"] = _value_ranges(x)
        return cache["ranges"]

    def bound() -> float:  # the whole batch's range, >= every image's (a host sync)
        if "bound" not in cache:
            lo, hi = torch.aminmax(x)
            cache["bound"] = float(hi) - float(lo)
        return cache["bound"]

    jobs = _plan(specs, counts, ranges, bound, b * h * w)
    grid = b * (h + 2 * pad) * (w + 2 * pad)
    n_values = sum(counts[k] for job in jobs for k in job.actions)
    # the padded copies the jobs read: made first, as they must outlive every chunk's temporaries
    modes = {_REPLICATE if job.kind == "median" else _REFLECT_101 for job in jobs
             if job.kind not in ("dense_median", "plain")} | ({_REFLECT_101} if output else set())
    nbytes = _nbytes(*[(grid * c, x.dtype)] * len(modes), (c * n_values, x.dtype), (n_values, torch.long),
                     (n_values, torch.long), (c * n_values, torch.long))
    nbytes += sum(_job_bytes(job, specs, counts, (b, c, h, w), grid, x.dtype.itemsize) for job in jobs)
    sites = _Sites(x, pad, _Arena(nbytes, x.device))
    for mode in sorted(modes):
        sites.padded(mode)
    values = sites.take((c, n_values))
    positions, by_action, at = [], {}, 0
    for job in jobs:
        n = sum(counts[k] for k in job.actions)
        positions.append(_run_job(sites, job, table, specs, groups, ranges, values[:, at: at + n]))
        for k in job.actions:
            by_action[k] = values[:, at: at + counts[k]]
            at += counts[k]
    q = positions[0] if len(positions) == 1 else torch.cat(positions, out=sites.take((n_values,), torch.long)) \
        if positions else values.new_empty((0,), dtype=torch.long)
    return sites, values, q, by_action


def _check_pixels(pixels: torch.Tensor, x: torch.Tensor) -> None:
    b, _, h, w = x.shape
    if not isinstance(pixels, torch.Tensor) or pixels.ndim != 1 or pixels.dtype != torch.long:
        got = f"shape {tuple(pixels.shape)}, dtype {pixels.dtype}" if isinstance(pixels, torch.Tensor) \
            else type(pixels).__name__
        raise ValueError(f"pixels must be an int64 tensor (n,) of flat indices b * H * W + y * W + x; got {got}")
    if pixels.device != x.device:
        raise ValueError(f"pixels are on {pixels.device} but x on {x.device}; put both on the same device")
    if pixels.numel() and (int(pixels.min()) < 0 or int(pixels.max()) >= b * h * w):
        raise ValueError(f"pixels must be in [0, B * H * W - 1] = [0, {b * h * w - 1}]; got values in "
                         f"[{int(pixels.min())}, {int(pixels.max())}]")


def filters_at(x: torch.Tensor, requests: Sequence[tuple[torch.Tensor, FilterAction]]) -> list[torch.Tensor]:
    """Several actions of a filter bank, each evaluated at its own pixels only.

    For each ``(pixels, action)``: ``action(x).permute(0, 2, 3, 1).reshape(-1, C)[pixels]`` (up to
    float rounding of the bilateral filter, below its OpenCV tolerance; the other filters give the
    same values), at a cost proportional to the number of pixels for the library's ops (Gaussian,
    box, median, bilateral, shifts, identity; any other op is applied to the whole batch). The
    requests share the padded copies of ``x``.

    Args:
        x: Image batch, float tensor of shape (B, C, H, W), values in [0, 1], any device.
        requests: ``(pixels, action)`` pairs; ``pixels`` an int64 tensor (n,) on the device of
            ``x`` of flat pixel indices ``b * H * W + y * W + x`` in [0, B * H * W - 1] (any
            order, repeats allowed), ``action`` e.g. ``PIXELRL_ACTION_TABLE[5]`` (the 5x5 median).

    Returns:
        One tensor of shape (n, C) per request, dtype of ``x``.

    Raises:
        ImageError: ``x`` is not a non-empty floating (B, C, H, W) tensor.
        ValueError: a ``pixels`` is not an int64 (n,) tensor of valid indices on the device of
            ``x``, or an action's parameters are invalid for its op.

    Example:
        >>> x = torch.rand(2, 1, 16, 16)
        >>> median, box = filters_at(x, [(torch.tensor([0, 300]), PIXELRL_ACTION_TABLE[5]),
        ...                              (torch.tensor([7]), PIXELRL_ACTION_TABLE[8])])
        >>> median.shape, box.shape
        (torch.Size([2, 1]), torch.Size([1, 1]))
    """
    _check_batch(x)
    requests = list(requests)
    for pixels, _ in requests:
        _check_pixels(pixels, x)
    table = tuple(action for _, action in requests)
    specs, pad = _action_specs(table)
    work = _work_dtype(x)
    b, c, h, w = x.shape
    hp, wp = h + 2 * pad, w + 2 * pad
    groups = []
    for pixels, _ in requests:  # padded-grid indices
        rows = torch.div(pixels, w, rounding_mode="floor")  # b * H + y
        images = torch.div(rows, h, rounding_mode="floor")
        groups.append(pixels + rows * (2 * pad) + images * (2 * pad * wp) + pad * (wp + 1))
    _, _, _, by_action = _evaluate(work, pad, table, specs, groups, output=False)
    out = []
    for k, (pixels, _) in enumerate(requests):
        if specs[k].kind == "identity":
            values = work.reshape(b, c, h * w).transpose(0, 1).reshape(c, -1).index_select(1, pixels)
        else:
            values = by_action[k] if k in by_action else work.new_empty((c, 0))
        out.append(values.t().to(x.dtype))
    return out


def filter_at(x: torch.Tensor, pixels: torch.Tensor, action: FilterAction) -> torch.Tensor:
    """One action of a filter bank evaluated at the listed pixels only (see :func:`filters_at`).

    Args:
        x: Image batch, float tensor of shape (B, C, H, W), values in [0, 1], any device.
        pixels: int64 tensor (n,) of flat pixel indices ``b * H * W + y * W + x``.
        action: The action, e.g. ``PIXELRL_ACTION_TABLE[5]`` (the 5x5 median).

    Returns:
        ``action(x).permute(0, 2, 3, 1).reshape(-1, C)[pixels]``, shape (n, C), dtype of ``x``.

    Raises:
        ImageError / ValueError: as :func:`filters_at`.

    Example:
        >>> x = torch.rand(2, 1, 16, 16)
        >>> filter_at(x, torch.tensor([0, 300]), PIXELRL_ACTION_TABLE[5]).shape
        torch.Size([2, 1])
    """
    return filters_at(x, [(pixels, action)])[0]


def pixelrl_filter_select(x: torch.Tensor, actions: torch.Tensor, table: Sequence[FilterAction] = PIXELRL_ACTION_TABLE,
                          *, validate: bool = True) -> torch.Tensor:
    """Apply a per-pixel choice of filters, computing each filter only where it was chosen.

    Equals ``select_per_pixel(pixelrl_filter_bank(x, table), actions)`` (up to float rounding of
    the bilateral filter, < 1e-6, below its OpenCV tolerance; the other filters, the shifts and
    "keep" give the same values) without computing the K candidates: the pixels are grouped by
    action and each filter reads the windows of its own pixels only (see the notes above
    :class:`_Arena`). An action nobody chose costs nothing. Per-channel actions on colour images
    fall back to the full bank. On the CPU (float32, the default bank, actions shared by the
    channels, no autograd) the fused C kernel of :mod:`rlenhance.ops.native` computes it when it is
    available (same values; the bilateral filter within 5e-7).

    Args:
        x: Image batch, float tensor of shape (B, C, H, W), values in [0, 1], any device.
        actions: Integer tensor on the device of ``x`` with values in [0, K - 1], shape (B, H, W)
            or (B, 1, H, W) (one action per pixel, shared by the channels) or (B, C, H, W).
        table: The bank, by default :data:`PIXELRL_ACTION_TABLE` (K = 9).
        validate: Check that every action is in [0, K - 1] (a device sync; the number of pixels
            per action is read back to the host in any case).

    Returns:
        The new batch, same shape and dtype as ``x``.

    Raises:
        ImageError: ``x`` is not a non-empty floating (B, C, H, W) tensor.
        ValueError: ``table`` is empty, ``actions`` has a wrong shape, dtype or device, or (with
            ``validate``) an action is outside [0, K - 1].

    Example:
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
    check_pixel_actions(actions, (b, c, h, w), x.device, like="x", like_shape=x.shape)
    if actions.shape == (b, c, h, w) and c > 1:  # a choice per channel: every candidate is needed
        return select_per_pixel(pixelrl_filter_bank(x, table), actions, validate=validate)
    if validate:
        check_action_range(actions, n_actions, "actions")
    # PixelRL's bank on CPU float32 (actions shared by the channels from here on): the fused native
    # kernel (rlenhance.ops.native) when it is available, and not where an autograd graph is recorded
    if x.device.type == "cpu" and x.dtype == torch.float32 and table == PIXELRL_ACTION_TABLE \
            and not (x.requires_grad and torch.is_grad_enabled()):
        from rlenhance.ops import native  # imported here: native imports this module

        if native.available():
            return native.pixelrl_select_native(x, actions)
    specs, pad = _action_specs(table)
    work = _work_dtype(x)
    hp, wp = h + 2 * pad, w + 2 * pad

    # Group the pixels by action on the padded grid (the border holds the sentinel K, sorted
    # last): the sorted positions are the window centres q themselves.
    key_dtype = torch.uint8 if n_actions < torch.iinfo(torch.uint8).max else torch.long
    grid = b * hp * wp
    sort_arena = _Arena(_nbytes((grid, key_dtype), (grid, key_dtype), (grid, torch.long)), x.device)
    keys = sort_arena.take((b, 1, hp, wp), key_dtype).fill_(n_actions)
    keys[:, :, pad: pad + h, pad: pad + w].copy_(actions.reshape(b, 1, h, w))
    keys = keys.view(-1)
    order, counts = sort_by_key(keys, n_actions + 1,
                                out=(sort_arena.take(keys.shape, key_dtype), sort_arena.take(keys.shape, torch.long)))
    groups, start = [], 0
    for count in counts[:n_actions]:
        groups.append(order[start: start + count])
        start += count

    # Every action but "keep" at its pixels, written into the padded copy of x (read by the filters
    # before): its interior is then the result.
    sites, values, q, _ = _evaluate(work, pad, table, specs, groups, output=True)
    out = sites.padded(_REFLECT_101)
    if q.numel():
        flat = out.view(-1)
        index = sites.corners(q, 0)
        for ch in range(c):
            flat.index_copy_(0, index if ch == 0 else index + ch * sites.plane, values[ch])
    return sites.interior(out).contiguous().to(x.dtype)


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
        """(B, C, H, W) and per-pixel actions (B, [1,] H, W) -> (B, C, H, W), computing each action
        only where chosen; == ``select_per_pixel(self(x), actions)``, see :func:`pixelrl_filter_select`."""
        return pixelrl_filter_select(x, actions, self.actions, validate=validate)

    def extra_repr(self) -> str:
        return f"names={self.names}"
