"""A filter bank evaluated at chosen pixels only: :func:`filters_at`, and the
torch path of :func:`rlenhance.ops.bank.pixelrl_filter_select`.

Pixels are addressed by their index q in the padded (B, Hp, Wp) grid (:mod:`rlenhance.ops._sites`); sorting the action
map padded with a sentinel gives every action's pixels as such indices. Each filter family module holds its own "at
chosen pixels" form, running the dense filter's operations on the gathered (taps, C, n) windows, so the values are the
same. Linear filters and medians chosen by many pixels run densely (:data:`_DENSE_FRACTION`). The results are written
with one ``index_copy_`` into the reflect-padded copy, whose interior is then the output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from rlenhance.ops._checks import _check_batch, _check_pixels
from rlenhance.ops._padding import _REFLECT_101, _REPLICATE, _pad2d
from rlenhance.ops._sites import _ARENA_ALIGN, _Arena, _nbytes, _Sites
from rlenhance.ops._workspace import _work_dtype
from rlenhance.ops.actions import FilterAction, _action_specs, _ActionSpec
from rlenhance.ops.bilateral import _bilateral_at, _bilateral_exact, _colour_coeff, _disc, _value_ranges
from rlenhance.ops.blur import _columns_at, _linear_at
from rlenhance.ops.median import _median_at, _median_into, _median_programs
from rlenhance.ops.select import sort_by_key

__all__ = ["filters_at"]


#: Above this fraction of the pixels a linear filter gets its row pass on the whole batch, and a median is
#: computed on the whole batch and read at its pixels (the same values, faster).
_DENSE_FRACTION = {"linear": 0.04, "median": 0.2}

#: Bytes of temporaries a sparse evaluation takes at a time (its pixels are processed in chunks).
_SPARSE_CHUNK_BYTES = 8 * 2 ** 20


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
    """One sparse evaluation of a call: ``kind``, the actions whose pixels it covers, and parameters."""

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
            # the batch's range bounds every image's: if it allows the exact Gaussian, so does the largest one
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
        for i, a in enumerate(job.actions):
            count, column = groups[a].numel(), specs[a].params[0][1]
            sites.corners(groups[a], i * sites.size - r * sites.grid[2], out=corners[at: at + count])
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

    ``output``: make the reflect-101 padded copy even if no filter reads it. Returns ``(sites, values, q,
    by_action)``: values (C, n) at pixels q (n,), and each evaluated action's (C, count) slice of ``values``.
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


def filters_at(x: torch.Tensor, requests: Sequence[tuple[torch.Tensor, FilterAction]]) -> list[torch.Tensor]:
    """Several actions of a filter bank, each evaluated at its own pixels only.

    For each ``(pixels, action)``: ``action(x).permute(0, 2, 3, 1).reshape(-1, C)[pixels]`` (up to float
    rounding of the bilateral filter), at a cost proportional to the number of pixels for the library's ops
    (any other op is applied to the whole batch).

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
        >>> from rlenhance.ops import PIXELRL_ACTION_TABLE
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
    wp = w + 2 * pad
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


def _select_sparse(x: torch.Tensor, actions: torch.Tensor, table: tuple[FilterAction, ...]) -> torch.Tensor:
    """The torch path of :func:`rlenhance.ops.bank.pixelrl_filter_select` (which checks the arguments)."""
    n_actions = len(table)
    b, c, h, w = x.shape
    specs, pad = _action_specs(table)
    work = _work_dtype(x)
    hp, wp = h + 2 * pad, w + 2 * pad

    # group the pixels by action on the padded grid (the border holds the sentinel K, sorted last)
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

    # every action but "keep" at its pixels, written into the padded copy of x: its interior is the result
    sites, values, q, _ = _evaluate(work, pad, table, specs, groups, output=True)
    out = sites.padded(_REFLECT_101)
    if q.numel():
        flat = out.view(-1)
        index = sites.corners(q, 0)
        for ch in range(c):
            flat.index_copy_(0, index if ch == 0 else index + ch * sites.plane, values[ch])
    return sites.interior(out).contiguous().to(x.dtype)
