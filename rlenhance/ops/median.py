"""The median filter, as ``cv2.medianBlur(x, k)`` (replicated border), channel by channel.

A separable comparator network (:mod:`rlenhance.ops._sorting`) on whole shifted images: each row of ``k`` is
sorted once, pairs of sorted rows are merged once, and two adjacent output rows share all but one row each.
:func:`_median_at` runs the same four stages at chosen pixels only.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from rlenhance.ops._checks import _check_batch, _check_ksize
from rlenhance.ops._padding import _REPLICATE
from rlenhance.ops._sites import _Sites, _window
from rlenhance.ops._sorting import (
    _compile,
    _merging_network,
    _Program,
    _prune,
    _run,
    _sorting_network,
    _tree_merging_network,
    _view,
)
from rlenhance.ops._workspace import _carve_stacks, _pieces

__all__ = ["median_blur2d"]


@functools.lru_cache(maxsize=32)
def _median_programs(ksize: int, *, writable_inputs: bool = False) -> tuple[_Program, _Program, _Program, _Program]:
    """The four pruned stages of the separable k x k median network (k odd >= 3): sort each row (``rows``),
    merge row pairs 2j+1, 2j+2 (``pairs``), merge the r pairs two output rows share keeping the k+1 ranks that
    can be the median (``shared``), merge those with the remaining row (``final``: rank k). With
    ``writable_inputs`` the stages may overwrite their inputs."""
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

    Output rows 2m and 2m+1 share padded rows 2m+1 .. 2m+2r; row 2m adds padded row 2m, row 2m+1 adds 2m+2r+1.
    Padded rows are stored by parity so that the views of all even / odd output rows are contiguous.
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
    shared = _run(shared_p, [_view(t, lambda v, s=s: v[:, s: s + h2]) for s in range(r) for t in merged], shared_s)

    def own_row(t: torch.Tensor) -> torch.Tensor:  # (n, 2, h2, w): [:, 0, m] = row 2m, [:, 1, m] = row 2m+2r+1
        s0, s1, s2, s3 = t.stride()
        return t.as_strided((n, 2, h2, w), (s0, s1 + r * s2, s2, s3), t.storage_offset())

    final_in = [_view(t, lambda v: v.unsqueeze(1)) for t in shared] + [_view(t, own_row) for t in ranks]
    median = _run(final_p, final_in, final_s)[0].view(b, c, 2, h2, w)  # [..., p, m, :] = output row 2m+p
    h = out.shape[2]
    out[..., 0::2, :].copy_(median[:, :, 0, : (h + 1) // 2])
    out[..., 1::2, :].copy_(median[:, :, 1, : h // 2])


def median_blur2d(x: torch.Tensor, ksize: int = 5) -> torch.Tensor:
    """Median filter matching ``cv2.medianBlur(x, ksize)`` (replicated border), channel by channel.

    Exact, for any odd ``ksize`` (OpenCV takes float32 for 3 and 5 only).

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


# ----------------------------------------------------------------------------- at chosen pixels


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

    # window rows 1..2r form r merged pairs and row 0 joins the final merge, as for the dense median's row 2m
    ranks = run(0, list(taps.view(k, k, c, n).transpose(0, 1).unbind(0)), (k, c, n))  # rank i of every row
    merged = run(1, [_view(t, lambda v: v[1::2]) for t in ranks] + [_view(t, lambda v: v[2::2]) for t in ranks],
                 (r, c, n))
    shared = run(2, [_view(t, lambda v, s=s: v[s]) for s in range(r) for t in merged], (c, n))
    out.copy_(run(3, shared + [_view(t, lambda v: v[0]) for t in ranks], (c, n))[0])
