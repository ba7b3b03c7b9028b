"""Native CPU kernels (C in ``csrc/``), each computing what a torch path computes, in one pass:

* :func:`pixelrl_select_native`: :func:`rlenhance.ops.bank.pixelrl_filter_select` (the Denoise env's step), each
  pixel computing only the filter it chose from its 5x5 neighbourhood, 4 (SSE2) or 8 (AVX2) pixels at a time;
* :func:`le_curves_native`: :func:`rlenhance.ops.curves.le_curves_upsampled`, each sample read and written once;
* :func:`area_downscale_native`: ``F.interpolate(mode="area")`` read straight from integer samples;
* :func:`lowlight_rollout_native`: :func:`rlenhance.rollouts.greedy_rollout` of a convolutional policy;
* the clean kernel of :mod:`rlenhance.ops.native_clean`.

Rows are split over ``torch.get_num_threads()`` POSIX threads (no OpenMP next to torch's). The kernels are
built on first use and loaded by :mod:`rlenhance.ops.native_build`; importing this module never compiles or
raises. Threads and vector widths never change the values.

Numerics against the torch paths (float32): the shifts, "keep", the median, the Gaussian and box filters
(``a + b * c`` fused exactly where torch fuses it) and the area pooling give the same values; the bilateral
filter (its own ``exp2``) differs by float rounding (at most 5e-7 on values in [-0.6, 1.6]); the LE curves
sample the maps at positions computed in double (within 1e-5 of the torch path after 8 random steps); the
rollout sums in another order (within 1e-5). Inputs holding NaN or infinity give unspecified values.

Example:
    >>> from rlenhance.ops import native
    >>> if native.available():  # doctest: +SKIP
    ...     out = native.pixelrl_select_native(torch.rand(2, 1, 16, 16), torch.randint(0, 9, (2, 1, 16, 16)))
"""

from __future__ import annotations

import ctypes
import functools
import math
from dataclasses import dataclass

import torch

from rlenhance.errors import ImageError
from rlenhance.ops.actions import PIXELRL_ACTION_TABLE, FilterAction, _action_specs
from rlenhance.ops.bilateral import _bilateral_exact, _colour_coeff, _disc
from rlenhance.ops.native_build import (
    _ISAS,
    ENV_SWITCH,
    _AreaArgs,
    _CurvesArgs,
    _disabled,
    _Library,
    _library,
    _RolloutArgs,
    _SelectArgs,
    available,
    unavailable_reason,
    vector_isa,
)

__all__ = ["ENV_SWITCH", "area_downscale_native", "available", "le_curves_native", "lowlight_rollout_native",
           "pixelrl_select_native", "unavailable_reason", "vector_isa"]

# The kernel's action kinds (the order of the ``kind`` codes in the C source).
_KIND_KEEP, _KIND_SHIFT, _KIND_LINEAR, _KIND_MEDIAN, _KIND_BILATERAL = range(5)

#: The median's window size (the kernel's windows are 5x5).
_MEDIAN_KSIZE = 5

#: Sample types of the curve kernel, index = code (``SAMPLE_*`` of ``le_curves.c``).
_SAMPLE_TYPES = (torch.float32, torch.uint8, torch.uint16)

#: The kernels' status codes, index = code.
_STATUS = ("ok", "invalid arguments", "out of memory", "AVX2 requested but not available")


def _described(t: object) -> str:
    """How an error message names what it got: a tensor's dtype, device and shape, or the type."""
    if isinstance(t, torch.Tensor):
        return f"a {t.dtype} {t.device.type} tensor of shape {tuple(t.shape)}"
    return type(t).__name__


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _check_status(status: int, kernel: str) -> None:
    """Raise RuntimeError naming ``kernel`` unless a kernel's ``status`` is 0."""
    if status != 0:
        reason = _STATUS[status] if 0 < status < len(_STATUS) else f"status {status}"
        raise RuntimeError(f"the native {kernel} kernel failed: {reason}")


# ----------------------------------------------------------------------------- the kernel's parameters


@dataclass(frozen=True)
class _Plan:
    """A filter bank as the kernel's parameters (int32 / float32 CPU tensors, kept alive here): ``program``
    (K, 2) kind code and slot per action; per slot the shift deltas, the linear taps (centre-first, row then
    column), the bilateral colour coefficients and sigmas; the bilateral disc, its spatial weights and their log2.
    """

    program: torch.Tensor
    shift: torch.Tensor
    linear: torch.Tensor
    colour: torch.Tensor
    sigma_colors: tuple[float, ...]
    bins: int
    taps_dy: torch.Tensor
    taps_dx: torch.Tensor
    space: torch.Tensor
    log_space: torch.Tensor


@functools.lru_cache(maxsize=8)
def _plan(table: tuple[FilterAction, ...]) -> _Plan | None:
    """The kernel's parameters for a bank, or None when the kernel cannot compute it."""
    specs, _ = _action_specs(table)
    program, shift, linear, colour, sigmas, supports = [], [], [], [], [], set()
    for spec in specs:
        if spec.kind == "identity":
            program.append((_KIND_KEEP, 0))
        elif spec.kind == "shift":
            program.append((_KIND_SHIFT, len(shift)))
            shift.append(spec.params[0])
        elif spec.kind == "linear" and all(len(taps) == 3 for taps in spec.params[0]):
            program.append((_KIND_LINEAR, len(linear) // 6))
            linear += [*spec.params[0][0], *spec.params[0][1]]
        elif spec.kind == "median" and spec.params[0] == _MEDIAN_KSIZE:
            program.append((_KIND_MEDIAN, 0))
        elif spec.kind == "bilateral" and max(spec.params[0] // 2, 1) <= 2:
            d, sigma_color, sigma_space, bins = spec.params
            supports.add((max(d // 2, 1), float(sigma_space), bins))
            program.append((_KIND_BILATERAL, len(sigmas)))
            sigmas.append(sigma_color)
            colour.append(_colour_coeff(sigma_color))
        else:
            return None
    if len(supports) > 1:
        return None
    radius, sigma_space, bins = supports.pop() if supports else (1, 1.0, 1)
    disc = _disc(radius)
    space_coeff = -0.5 / (sigma_space * sigma_space)
    space = [math.exp((dy * dy + dx * dx) * space_coeff) for dy, dx in disc]  # as bilateral._bilateral_at

    def ints(values: list) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.int32)

    def floats(values: list) -> torch.Tensor:
        return torch.tensor(values or [0.0], dtype=torch.float32)

    return _Plan(program=ints(program), shift=floats(shift), linear=floats(linear), colour=floats(colour),
                 sigma_colors=tuple(sigmas), bins=bins, taps_dy=ints([dy for dy, _ in disc]),
                 taps_dx=ints([dx for _, dx in disc]), space=floats(space),
                 log_space=floats([math.log2(v) for v in space]))


def _ranges(lows: list[float], highs: list[float]) -> list[float]:
    """Per-image value ranges from per-image min / max, by bilateral._value_ranges' rule (a flat image counts as 1)."""
    eps = torch.finfo(torch.float32).eps
    return [1.0 if abs(hi - lo) < eps else hi - lo for lo, hi in zip(lows, highs)]


def _lookup_tables(x: torch.Tensor, plan: _Plan, library: _Library) -> tuple[torch.Tensor, torch.Tensor | None,
                                                                             torch.Tensor | None]:
    """Per bilateral slot, whether it uses the exact Gaussian, and else OpenCV's table constants per image,
    decided as :func:`rlenhance.ops.sparse._plan` decides."""
    if not plan.sigma_colors:
        return torch.ones(1, dtype=torch.int32), None, None
    b, c = x.shape[:2]
    lo_hi = torch.empty(b, 2, dtype=torch.float32)
    library.min_max(x.data_ptr(), b, x[0].numel(), lo_hi.data_ptr())  # one thread, no OpenMP region
    lows, highs = lo_hi.t().tolist()
    bound = max(highs) - min(lows)  # the batch's range, >= every image's
    exact = [_bilateral_exact(bound, s, plan.bins) for s in plan.sigma_colors]
    if all(exact):
        return torch.ones(len(exact), dtype=torch.int32), None, None
    ranges = _ranges(lows, highs)
    exact = [e or _bilateral_exact(max(ranges), s, plan.bins) for e, s in zip(exact, plan.sigma_colors)]
    length = torch.tensor(ranges, dtype=torch.float64).to(torch.float32) * c
    scale = plan.bins * c / length
    bin_coeff = (1.0 / scale.double() ** 2).to(torch.float32)
    return torch.tensor(exact, dtype=torch.int32), scale.contiguous(), bin_coeff.contiguous()


@functools.cache
def _torch_fuses_multiply_add() -> bool:
    """Whether torch's CPU ``add(alpha=)`` / ``addcmul`` round ``a + b * c`` once (an FMA); the kernel then does too."""
    b = torch.full((64,), 1.0 + 2.0 ** -12)  # b * b = 1 + 2^-11 + 2^-24: a tie, rounded down to even
    fused = torch.add(torch.full((64,), -(1.0 + 2.0 ** -11)), b, alpha=1.0 + 2.0 ** -12)
    return bool((fused == 2.0 ** -24).all())


# ----------------------------------------------------------------------------- the op


def _checked_threads_and_library(num_threads: int | None, kernel: str, isa: str = "auto") -> tuple[int, _Library]:
    """The thread count (None: torch's) and the loaded library with ``kernel`` (a :class:`_Library` field).

    Raises:
        ValueError: ``num_threads`` is not a positive int or None, or ``isa`` is not one of ``_ISAS``.
        RuntimeError: the native kernels are unavailable.
    """
    if isa not in _ISAS:
        raise ValueError(f"isa must be one of {', '.join(map(repr, _ISAS))}; got {isa!r}")
    threads = torch.get_num_threads() if num_threads is None else num_threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"num_threads must be a positive int or None; got {num_threads!r}")
    library = None if _disabled() else _library()
    if library is None or getattr(library, kernel) is None:
        raise RuntimeError(f"the native kernels are unavailable: {unavailable_reason()}")
    return threads, library


def pixelrl_select_native(x: torch.Tensor, actions: torch.Tensor, *, num_threads: int | None = None,
                          min_pixels_per_thread: int = 4096, isa: str = "auto") -> torch.Tensor:
    """PixelRL's per-pixel filter choice (:data:`PIXELRL_ACTION_TABLE`) with the native kernel: the result of
    :func:`rlenhance.ops.bank.pixelrl_filter_select` up to float rounding (module notes).

    Args:
        x: Image batch, float32 CPU tensor of shape (B, C, H, W), values in [0, 1] (values outside,
            e.g. an unclipped noisy start, are fine). Made contiguous if it is not.
        actions: Integer CPU tensor of shape (B, H, W), (B, 1, H, W) or, for C = 1, (B, C, H, W): one action id in
            [0, 8] per pixel, shared by the channels. Not validated: a pixel with an id outside [0, 8] keeps its value.
        num_threads: Threads splitting the B * H rows; default ``torch.get_num_threads()``.
        min_pixels_per_thread: Fewer threads are used where each would get fewer pixels than this.
        isa: Vector width: "auto" (:func:`vector_isa`), "baseline" or "avx2" (an error where unavailable).

    Returns:
        The new batch, float32 (B, C, H, W), contiguous.

    Raises:
        ImageError: ``x`` is not a non-empty float32 CPU (B, C, H, W) tensor.
        ValueError: ``actions`` is not an integer CPU tensor of an accepted shape, or ``isa`` or
            ``num_threads`` is invalid.
        RuntimeError: the kernel is unavailable (see :func:`unavailable_reason`) or failed.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.dtype != torch.float32 or x.device.type != "cpu" \
            or x.numel() == 0:
        raise ImageError(f"x must be a non-empty float32 CPU tensor of shape (B, C, H, W); got {_described(x)}")
    b, c, h, w = x.shape
    shapes = [(b, h, w), (b, 1, h, w)] + ([(b, c, h, w)] if c == 1 else [])
    if not isinstance(actions, torch.Tensor) or actions.is_floating_point() or actions.is_complex() \
            or actions.dtype == torch.bool or actions.device.type != "cpu" or tuple(actions.shape) not in shapes:
        raise ValueError(f"actions must be an integer CPU tensor of shape {' or '.join(map(str, shapes))}; "
                         f"got {_described(actions)}")
    threads, library = _checked_threads_and_library(num_threads, "select", isa)
    plan = _plan(PIXELRL_ACTION_TABLE)
    if plan is None:
        raise RuntimeError("the native PixelRL kernel cannot compute PIXELRL_ACTION_TABLE's filters")

    x = x.contiguous()
    actions = actions.to(torch.int64).contiguous()
    out = torch.empty_like(x)
    exact, scale, bin_coeff = _lookup_tables(x, plan, library)
    threads = max(1, min(threads, b * h * w // max(1, min_pixels_per_thread)))
    args = _SelectArgs(x=_ptr(x), actions=_ptr(actions), out=_ptr(out), b=b, c=c, h=h, w=w, k=len(plan.program),
                       program=_ptr(plan.program), shift=_ptr(plan.shift), linear=_ptr(plan.linear),
                       colour=_ptr(plan.colour), exact=_ptr(exact), n_taps=len(plan.taps_dy), tap_dy=_ptr(plan.taps_dy),
                       tap_dx=_ptr(plan.taps_dx), space=_ptr(plan.space), log_space=_ptr(plan.log_space),
                       lut_scale=_ptr(scale), lut_bin=_ptr(bin_coeff), fused=int(_torch_fuses_multiply_add()),
                       n_threads=threads, isa=_ISAS.index(isa))
    _check_status(library.select(ctypes.byref(args)), "PixelRL")
    return out


def le_curves_native(x: torch.Tensor, maps: torch.Tensor, out: torch.Tensor, *, top: int = 0,
                     height: int | None = None, num_threads: int | None = None,
                     min_pixels_per_thread: int = 16384, isa: str = "auto") -> torch.Tensor:
    """:func:`rlenhance.ops.curves.le_curves_upsampled` of one image with the native kernel (``le_curves.c``).

    Args:
        x: The image or a band of its rows, CPU tensor of shape (C, H, W), C <= 4, any strides
            (e.g. ``torch.from_numpy(hwc).permute(2, 0, 1)``): float32 in [0, 1], or uint8 /
            uint16 samples (divided by 255 / 65535).
        maps: float32 CPU tensor (steps, 1 or C, h, w): the alpha maps of the whole image, in order.
        out: CPU tensor of the shape of ``x``, float32, uint8 or uint16 (clamped values times 255
            / 65535, rounded half to even), any strides; may be ``x`` itself.
        top, height: ``x`` holds rows ``top .. top + H - 1`` of an image of ``height`` rows (None:
            ``top + H``), over which the maps are spread.
        num_threads: Threads splitting the rows; default ``torch.get_num_threads()``.
        min_pixels_per_thread: Fewer threads are used where each would get fewer pixels than this.
        isa: Vector width: "auto", "baseline" or "avx2" (an error where unavailable).

    Returns:
        ``out``.

    Raises:
        ValueError: a tensor of another shape, dtype, device or memory overlap than described,
            or a bad ``top``, ``height``, ``isa`` or ``num_threads``.
        RuntimeError: the kernel is unavailable (see :func:`unavailable_reason`) or failed.
    """
    if x.ndim != 3 or x.dtype not in _SAMPLE_TYPES or x.device.type != "cpu" or x.numel() == 0 or x.shape[0] > 4:
        raise ValueError(f"x must be a non-empty CPU tensor (C, H, W) with C <= 4 of dtype float32, uint8 or uint16; "
                         f"got {_described(x)}")
    ch, rows, w = x.shape
    if maps.ndim != 4 or maps.dtype != torch.float32 or maps.device.type != "cpu" or maps.shape[1] not in (1, ch) \
            or maps.numel() == 0:
        raise ValueError(f"maps must be a float32 CPU tensor (steps, 1 or {ch}, h, w); got {_described(maps)}")
    if out.shape != x.shape or out.dtype not in _SAMPLE_TYPES or out.device.type != "cpu":
        raise ValueError(f"out must be a CPU tensor of shape {tuple(x.shape)} of dtype float32, uint8 or uint16; "
                         f"got {_described(out)}")
    if out.data_ptr() != x.data_ptr() and _overlaps(x, out):
        raise ValueError("out overlaps x without being x itself")
    if out.data_ptr() == x.data_ptr() and (out.dtype != x.dtype or out.stride() != x.stride()):
        raise ValueError("out is x with another dtype or strides; pass x itself or a separate tensor")
    height = top + rows if height is None else height
    if isinstance(top, bool) or not isinstance(top, int) or top < 0 or height < top + rows:
        raise ValueError(f"top={top!r}, height={height!r}: x's {rows} rows must lie within the image's height")
    threads, library = _checked_threads_and_library(num_threads, "curves", isa)
    maps = maps.contiguous()
    steps, c, mh, mw = maps.shape
    threads = max(1, min(threads, rows * w // max(1, min_pixels_per_thread)))
    args = _CurvesArgs(x=x.data_ptr(), out=out.data_ptr(), x_type=_SAMPLE_TYPES.index(x.dtype),
                       out_type=_SAMPLE_TYPES.index(out.dtype), x_row=x.stride(1), x_col=x.stride(2),
                       x_chan=x.stride(0), out_row=out.stride(1), out_col=out.stride(2), out_chan=out.stride(0),
                       rows=rows, w=w, ch=ch, top=top, h=int(height), maps=maps.data_ptr(), steps=steps, c=c,
                       mh=mh, mw=mw, n_threads=threads, isa=_ISAS.index(isa))
    _check_status(library.curves(ctypes.byref(args)), "LE curve")
    return out


def _overlaps(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether the memory spans of two CPU tensors intersect."""
    def span(t: torch.Tensor) -> tuple[int, int]:
        last = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()))
        return t.data_ptr(), t.data_ptr() + (last + 1) * t.element_size()

    (a0, a1), (b0, b1) = span(a), span(b)
    return a0 < b1 and b0 < a1


def area_downscale_native(x: torch.Tensor, size: tuple[int, int], *, num_threads: int | None = None,
                          min_pixels_per_thread: int = 1 << 20) -> torch.Tensor:
    """``F.interpolate(x.float()[None], size, mode="area")[0]`` with the native kernel (``area_downscale.c``).

    Args:
        x: CPU tensor (C, H, W), C <= 4, any strides (e.g. ``torch.from_numpy(hwc).permute(2, 0, 1)``):
            float32, or uint8 / uint16 samples (divided by 255 / 65535).
        size: The output (h, w), 1 <= h <= H, 1 <= w <= W.
        num_threads: Threads splitting the output rows; default ``torch.get_num_threads()``.
        min_pixels_per_thread: Fewer threads are used where each would read fewer input pixels.

    Returns:
        float32 tensor (C, h, w), contiguous.

    Raises:
        ValueError: a tensor of another shape, dtype or device, a bad ``size`` or ``num_threads``.
        RuntimeError: the kernel is unavailable (see :func:`unavailable_reason`) or failed.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.dtype not in _SAMPLE_TYPES or x.device.type != "cpu" \
            or x.numel() == 0 or x.shape[0] > 4:
        raise ValueError(f"x must be a non-empty CPU tensor (C, H, W) with C <= 4 of dtype float32, uint8 or uint16; "
                         f"got {_described(x)}")
    ch, h, w = x.shape
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in size) \
            or not (1 <= size[0] <= h and 1 <= size[1] <= w):
        raise ValueError(f"size must be two ints (h, w) with 1 <= h <= {h}, 1 <= w <= {w}; got {size!r}")
    threads, library = _checked_threads_and_library(num_threads, "area")
    out = torch.empty(ch, *size, dtype=torch.float32)
    threads = max(1, min(threads, h * w // max(1, min_pixels_per_thread)))
    args = _AreaArgs(x=x.data_ptr(), out=out.data_ptr(), x_type=_SAMPLE_TYPES.index(x.dtype), x_row=x.stride(1),
                     x_col=x.stride(2), x_chan=x.stride(0), h=h, w=w, ch=ch, oh=size[0], ow=size[1],
                     n_threads=threads)
    _check_status(library.area(ctypes.byref(args)), "area")
    return out


#: One layer of :func:`lowlight_rollout_native`'s network: the convolution's weight (out, in, k, k) and bias (out,), its
#: dilation, whether a ReLU follows, and FiLM's per-image (B, out) scale and shift applied after it (None: none).
RolloutLayer = tuple[torch.Tensor, torch.Tensor, int, bool, "tuple[torch.Tensor, torch.Tensor] | None"]


def lowlight_rollout_native(image: torch.Tensor, layers: list[RolloutLayer], *, steps: int, scale: int,
                            table: torch.Tensor, cond: torch.Tensor | None = None,
                            target: torch.Tensor | None = None, limit: torch.Tensor | None = None,
                            damping: float = 0.0, coupling: float = 0.0, reference: int = 2,
                            argmax: bool = False, isa: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`rlenhance.rollouts.greedy_rollout` of a discrete low-light policy with the native kernel
    (``lowlight_rollout.c``, one call for every step and image), up to float rounding.

    Args:
        image: float32 CPU (B, 3, H, W) in [0, 1], the low-light batch at the working resolution.
        layers: the network from its input (the pooled image, original and, with ``target``, exposure
            gap planes, then the ``cond`` planes) to its action logits, in order; the last layer's
            outputs are C groups of ``len(table)`` logits (C = 1 or 3 alpha maps).
        steps: curve steps.
        scale: the policy's downscale: the input planes are average-pooled by it, the alpha maps upsampled by it.
        table: (n_actions,) alpha per action.
        cond: (B, cond_dim) constant input planes, or None.
        target: (B,) exposure targets of the exposure-gap input plane, or None (no such plane).
        limit: (B,) the highest mean a step may reach (``cap_mean``), or None (no cap).
        damping, coupling, reference: as :func:`rlenhance.rollouts.greedy_rollout` and
            :func:`rlenhance.ops.couple_channels` take them.
        argmax: each block's alpha is the table's value at its most probable action (``alpha_mode="argmax"``);
            False: the expected alpha under the policy (``"mean"``).
        isa: the convolutions' vector width: "auto", "baseline" or "avx2" (same values).

    Returns:
        ``(final, maps)``: float32 (B, 3, H, W) after the last step and (steps, B, C, H, W), the alpha
        applied at each step.

    Raises:
        ValueError: an image, table, layer or per-image tensor of another shape or device than described,
            a last layer that is not 1 or 3 groups of ``len(table)`` logits, or a bad ``isa``.
        RuntimeError: the kernel is unavailable (see :func:`unavailable_reason`), failed, or found
            layers that do not chain (in channels, then out channels, from the input planes on).
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] != 3 \
            or image.dtype != torch.float32 or image.device.type != "cpu" or image.numel() == 0:
        raise ValueError(f"image must be a non-empty float32 CPU tensor (B, 3, H, W); got {_described(image)}")
    _, library = _checked_threads_and_library(1, "rollout", isa)
    b, _, h, w = image.shape
    on_cpu = [t.device.type == "cpu" for weight, bias, *_ in layers for t in (weight, bias)]
    if not isinstance(table, torch.Tensor) or table.dim() != 1 or len(table) == 0 or not all(on_cpu) \
            or table.device.type != "cpu":
        raise ValueError("table must be a non-empty 1-D CPU tensor and every layer's weight and bias CPU tensors")

    def per_image(name: str, t: torch.Tensor | None, *shape: int) -> torch.Tensor | None:
        if t is None:
            return None
        t = torch.as_tensor(t, dtype=torch.float32)
        if t.device.type != "cpu" or tuple(t.shape) != (b, *shape):
            raise ValueError(f"{name} must be a CPU tensor of shape {(b, *shape)}; got {tuple(t.shape)}")
        return t.contiguous()

    cond = per_image("cond", cond, cond.shape[-1]) if cond is not None else None
    target, limit = per_image("target", target), per_image("limit", limit)
    if not layers:
        raise ValueError("layers: expected at least one layer")
    ksize = layers[0][0].shape[-1]
    films = [film for *_, film in layers if film is not None]
    width = max((f[0].shape[-1] for f in films), default=1)
    film = torch.zeros(b, max(1, len(films)), 2, width)
    rows, flat, used = [], [], 0
    for weight, bias, dilation, relu, scale_shift in layers:
        out_ch, in_ch, kh, kw = weight.shape
        if kh != ksize or kw != ksize or tuple(bias.shape) != (out_ch,):
            raise ValueError(f"layers: every layer must have a {ksize}x{ksize} kernel and one bias per output; "
                             f"got weight {tuple(weight.shape)}, bias {tuple(bias.shape)}")
        index = -1
        if scale_shift is not None:
            index, used = used, used + 1
            film[:, index, 0, :out_ch] = per_image("film scale", scale_shift[0], out_ch)
            film[:, index, 1, :out_ch] = per_image("film shift", scale_shift[1], out_ch)
        rows.append((in_ch, out_ch, int(dilation), int(bool(relu)), index))
        flat += [weight.detach().float().permute(2, 3, 1, 0).reshape(-1), bias.detach().float().reshape(-1)]
    weights = torch.cat(flat).contiguous()
    layer_table = torch.tensor(rows, dtype=torch.int32)
    table = table.detach().float().contiguous()
    c = rows[-1][1] // len(table)
    if rows[-1][1] != c * len(table) or c not in (1, 3):
        raise ValueError(f"layers: the last layer's {rows[-1][1]} outputs must be 1 or 3 groups of len(table) = "
                         f"{len(table)} logits")
    image = image.contiguous()
    maps = torch.empty(steps, b, c, h, w)
    final = torch.empty_like(image)

    args = _RolloutArgs(image=_ptr(image), maps=_ptr(maps), final=_ptr(final), b=b, h=h, w=w, steps=int(steps),
                        scale=int(scale), c=c, n_actions=len(table), table=_ptr(table), target=_ptr(target),
                        limit=_ptr(limit), cond=_ptr(cond), cond_dim=0 if cond is None else cond.shape[1],
                        n_layers=len(rows), ksize=ksize, layers=_ptr(layer_table), weights=_ptr(weights),
                        film=_ptr(film) if used else None, n_film=max(1, used), film_width=width,
                        damping=float(damping), coupling=float(coupling), reference=int(reference),
                        isa=_ISAS.index(isa), argmax=int(bool(argmax)))
    _check_status(library.rollout(ctypes.byref(args)), "low-light rollout")
    return final, maps
