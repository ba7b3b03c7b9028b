"""The clean stage of an enhanced low-light image: noise handled where the curves amplified it.

:func:`clean_enhanced` weighs each pixel by how much it was brightened, ``w = clip(gain - 1, 0, 1)`` with
``gain = L(output) / max(L(input), eps)`` (L: BT.601 luma); pixels with ``w = 0`` are returned bit for bit.
Where ``w > 0``, by ``w``:

* the opponent chroma (``B - G``, ``R - G``) moves towards its Gaussian blur of sigma :data:`CHROMA_SIGMA` x
  ``strength``;
* the luma moves towards its blur of sigma :data:`LUMA_SIGMA` x ``strength`` (gain <= :data:`GAIN_LOW`) to
  :data:`LUMA_SIGMA_DARK` x ``strength`` (gain >= :data:`GAIN_HIGH`), mixed in between;
* a soft highlight knee from ``knee`` (:func:`knee_start`) pulls the pixel back towards the input until its
  largest channel ``m`` has come down by ``KNEE_DROP (1 - knee) t^2``, ``t = clip((m - knee) / (1 - knee), 0,
  1)``, so brightened pixels end below white.

Bands of rows are read with the rows the blurs reach (:func:`halo_rows`), so a band's result equals the whole
image's. The per-pixel parts run in the native kernel (:mod:`rlenhance.ops.native_clean`) when available, else
in torch (:func:`clean_prepare`, :func:`clean_finish`: the same float32 operations in the same order);
:func:`clean_tensor` is the whole stage in torch ops, as the Enhancer's ONNX graph runs it.

Example:
    >>> import numpy as np
    >>> dark = np.full((8, 8, 3), 0.1, np.float32)
    >>> bright = clean_enhanced(dark, dark * 3)
    >>> bright.shape, bool(np.allclose(bright, 0.3))
    ((8, 8, 3), True)
    >>> bool((clean_enhanced(dark, dark) == dark).all())  # nothing brightened: unchanged
    True
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from rlenhance.errors import ImageError
from rlenhance.io import BT601_LUMA_WEIGHTS
from rlenhance.ops import native, native_clean
from rlenhance.ops._padding import _REFLECT_101, _border_index
from rlenhance.ops.blur import gaussian_kernel1d

__all__ = ["CHROMA_SIGMA", "DEFAULT_STRENGTH", "GAIN_HIGH", "GAIN_LOW", "KNEE", "KNEE_DROP", "KNEE_TARGET",
           "LUMA_SIGMA", "LUMA_SIGMA_DARK", "MAX_STRENGTH", "bands", "check_strength", "clean_band", "clean_enhanced",
           "halo_rows", "knee_start", "scratch_plane"]

# Constants chosen by measurement (docs/evaluation.md#constants-chosen-by-measurement).

#: The chroma blur's sigma (pixels) at strength 1.
CHROMA_SIGMA = 4.0
#: The luma blur's sigma (pixels) at strength 1 where the gain is at most :data:`GAIN_LOW`.
LUMA_SIGMA = 0.4
#: The luma blur's sigma (pixels) at strength 1 where the gain is :data:`GAIN_HIGH` or more.
LUMA_SIGMA_DARK = 0.6
#: The gains between which the luma's blur goes from :data:`LUMA_SIGMA` to :data:`LUMA_SIGMA_DARK`.
GAIN_LOW = 4.0
GAIN_HIGH = 12.0
#: Where the highlight knee starts (largest channel, 0-1) for the exposure target :data:`KNEE_TARGET`, and how
#: far it lowers a largest channel of 1, in units of ``1 - knee``.
KNEE = 0.85
KNEE_TARGET = 0.4
KNEE_DROP = 0.125
#: The floor of the input's luma in the gain (one 8-bit level).
GAIN_EPS = 1.0 / 255.0
#: The default strength (``Enhancer(denoise=...)``, ``rlenhance enhance --denoise``) and the largest one.
DEFAULT_STRENGTH = 1.0
MAX_STRENGTH = 2.0
#: Pixels per band of rows of :func:`clean_enhanced` (about 2 megapixels).
BAND_PIXELS = 2_000_000

_F32 = np.float32
_WR, _WG, _WB = (float(_F32(v)) for v in BT601_LUMA_WEIGHTS)  # float32 values, as the kernel's
_SAMPLE_SCALES = {np.dtype(np.uint8): _F32(255), np.dtype(np.uint16): _F32(65535)}


def check_strength(value: float, name: str = "denoise") -> float:
    """The one rule for the clean stage's strength: a number ``0 <= value <= MAX_STRENGTH`` (0: off).

    Raises:
        ValueError: naming ``name``, what it got and what is accepted.
    """
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value)
            or not 0.0 <= float(value) <= MAX_STRENGTH):
        raise ValueError(f"{name}: expected the denoising strength, a number 0 <= {name} <= {MAX_STRENGTH:g} "
                         f"(0: off, 1: the default); got {value!r}")
    return float(value)


def knee_start(target: float | None = None) -> float:
    """Where the highlight knee starts for the exposure ``target`` (0-1): ``1 - (1 - KNEE) (1 - target) / (1 -
    KNEE_TARGET)``; None: :data:`KNEE`.

    Example:
        >>> round(knee_start(0.4), 6), round(knee_start(0.8), 6)
        (0.85, 0.95)
    """
    if target is None:
        return KNEE
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not 0.0 < float(target) < 1.0:
        raise ValueError(f"target: expected the exposure target, a number 0 < target < 1; got {target!r}")
    return 1.0 - (1.0 - KNEE) * (1.0 - float(target)) / (1.0 - KNEE_TARGET)


def _ksize(sigma: float) -> int:
    return 2 * math.ceil(3 * sigma) + 1


def halo_rows(strength: float) -> int:
    """Rows a band is read with beyond each of its edges: the widest blur's radius, ``ceil(3 sigma)``."""
    widest = max(CHROMA_SIGMA, LUMA_SIGMA, LUMA_SIGMA_DARK) * strength
    return (_ksize(widest) - 1) // 2 if strength > 0 else 0


def bands(height: int, rows: int, strength: float) -> Iterator[tuple[int, int, int, int]]:
    """``(top, bottom, lo, hi)`` per band of at most ``rows`` rows of an image of ``height`` rows: the
    band is rows ``top .. bottom - 1``, read with rows ``lo .. hi - 1`` (its halo, within the image)."""
    halo = halo_rows(strength)
    for top in range(0, height, max(1, rows)):
        bottom = min(height, top + max(1, rows))
        yield top, bottom, max(0, top - halo), min(height, bottom + halo)


def _unit(x: np.ndarray) -> np.ndarray:
    """Input samples as float32 in [0, 1] (integer samples divided by their range, as the curve kernel does)."""
    scale = _SAMPLE_SCALES.get(x.dtype)
    return x if scale is None else x.astype(_F32) / scale


def _luma(r: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (_WR * r + _WG * g) + _WB * b


def clean_prepare(x: Sequence[torch.Tensor], y: Sequence[torch.Tensor]
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The per-pixel first half of the clean stage in torch ops, the twin of ``clean_prepare`` (``csrc/clean.c``).

    Args:
        x, y: the input's and the curves' output's R, G and B planes, float32 tensors of one shape
            (the input's as values in [0, 1]).

    Returns:
        ``(luma, chroma, excess)``: the luma of ``y``, its opponent chroma ``(B - G, R - G)`` stacked
        in a new first dim, and the gain minus 1 (the pixel was brightened where it is above 0).
    """
    r, g, b = y
    luma = _luma(r, g, b)
    return luma, torch.stack([b - g, r - g]), luma / _luma(*x).clamp(min=GAIN_EPS) - 1


def clean_finish(x: Sequence[torch.Tensor], y: Sequence[torch.Tensor], luma: torch.Tensor, excess: torch.Tensor,
                 luma_blur: torch.Tensor, luma_dark: torch.Tensor, chroma_blur: torch.Tensor, *, knee: float,
                 ramp_start: float, ramp_scale: float, knee_drop: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The per-pixel second half of the clean stage in torch ops, the twin of ``clean_finish`` (``csrc/clean.c``),
    with no data-dependent branch (it traces into an ONNX graph).

    Args:
        x, y, luma, excess: as :func:`clean_prepare` takes and returns them.
        luma_blur, luma_dark: the luma blurred with :data:`LUMA_SIGMA` and :data:`LUMA_SIGMA_DARK` x strength.
        chroma_blur: the chroma blurred with :data:`CHROMA_SIGMA` x strength, (2, ...).
        knee: where the highlight knee starts (:func:`knee_start`).
        ramp_start, ramp_scale, knee_drop: the module's tuning (:func:`_tuning`).

    Returns:
        The R, G and B planes of the result, float32 in [0, 1] (``y`` itself where ``excess <= 0``).
    """
    r, g, b = y
    xr, xg, xb = x
    w = excess.clamp(0, 1)
    ramp = ((excess - ramp_start) * ramp_scale).clamp(0, 1)
    dl = w * ((luma_blur + ramp * (luma_dark - luma_blur)) - luma)
    du = w * (chroma_blur[0] - (b - g))
    dv = w * (chroma_blur[1] - (r - g))
    dg = dl - (_WR * dv + _WB * du)
    v0, v1, v2 = r + (dg + dv), g + dg, b + (dg + du)
    m = torch.maximum(torch.maximum(v0, v1), v2)  # the largest channel, and the input's there (the first of equals)
    xm = torch.where((v0 >= v1) & (v0 >= v2), xr, torch.where(v1 >= v2, xg, xb))
    knee32, one = _F32(knee), _F32(1)  # the kernel's float32 constants
    t = ((m - float(knee32)) * float(one / (one - knee32))).clamp(0, 1)
    drop, gap = float(_F32(knee_drop) * (one - knee32)) * (t * t), m - xm
    far = gap > drop
    k = torch.where(far, drop / torch.where(far, gap, 1.0), (gap > 0).to(gap.dtype))
    hit = excess > 0
    return tuple(torch.where(hit, (v - k * (v - xv)).clamp(0, 1), yv)
                 for v, xv, yv in ((v0, xr, r), (v1, xg, g), (v2, xb, b)))


def _store(values: np.ndarray, out: np.ndarray) -> None:
    """Float values in [0, 1] into ``out``: as they are, or rounded (half to even) to its integer levels."""
    scale = _SAMPLE_SCALES.get(out.dtype)
    if scale is None:
        out[...] = values
    else:
        out[...] = np.rint(values * scale).astype(out.dtype)


def scratch_plane(scratch: dict | None, name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """An uninitialised array of ``shape``: new, or the first rows of the one kept in ``scratch`` under ``name``
    (made, or made again larger, as needed)."""
    if scratch is None:
        return np.empty(shape, dtype)
    kept = scratch.get(name)
    if kept is None or kept.shape[1:] != tuple(shape[1:]) or kept.shape[0] < shape[0] or kept.dtype != dtype:
        kept = scratch[name] = np.empty(shape, dtype)
    return kept[: shape[0]]


def _blur(plane: np.ndarray, sigma: float, dst: np.ndarray) -> np.ndarray:
    """OpenCV's Gaussian of ``sigma`` (a ``2 ceil(3 sigma) + 1`` kernel, reflect-101 border) into ``dst``."""
    return cv2.GaussianBlur(plane, (_ksize(sigma),) * 2, sigma, dst=dst)


def clean_band(x: np.ndarray, y: np.ndarray, strength: float, first: int, count: int, out: np.ndarray, *,
               knee: float, use_native: bool | None = None, scratch: dict | None = None) -> None:
    """The clean stage of rows ``first .. first + count - 1`` of a band read with its halo.

    Args:
        x: the input's rows (h, W, 3): float32 in [0, 1], or uint8 / uint16 samples; C-contiguous.
        y: the curves' output of the same rows, float32 (h, W, 3) in [0, 1], C-contiguous.
        strength: 0-:data:`MAX_STRENGTH` (0: ``y`` is stored as it is).
        first, count: the rows of ``x`` / ``y`` whose result is wanted.
        out: (count, W, 3), float32 or uint8 / uint16 (rounded half to even), C-contiguous.
        knee: where the highlight knee starts, 0 <= knee < 1 (:func:`knee_start`).
        use_native: the native kernel (True), torch (False), or the kernel when available (None).
        scratch: a dict to keep the working planes in (:func:`scratch_plane`), the same for every band of
            an image; None: new planes.
    """
    keep = slice(first, first + count)
    height, width = y.shape[:2]
    luma = scratch_plane(scratch, "luma", (height, width))
    chroma = scratch_plane(scratch, "chroma", (height, width, 2))
    fast = native.available() if use_native is None else use_native
    if strength > 0:
        if fast:
            brightened = native_clean.clean_prepare_native(x, y, luma, chroma, eps=GAIN_EPS)
        else:
            luma_t, chroma_t, excess = clean_prepare(_planes(x), _planes(y))
            luma[...], chroma[...] = luma_t.numpy(), chroma_t.permute(1, 2, 0).numpy()
            brightened = int(torch.count_nonzero(excess > 0))
    if strength <= 0 or not brightened:
        _store(y[keep], out)
        return
    luma_blur = _blur(luma, LUMA_SIGMA * strength, scratch_plane(scratch, "luma_blur", luma.shape))[keep]
    luma_dark = _blur(luma, LUMA_SIGMA_DARK * strength, scratch_plane(scratch, "luma_dark", luma.shape))[keep]
    chroma_blur = _blur(chroma, CHROMA_SIGMA * strength, scratch_plane(scratch, "chroma_blur", chroma.shape))[keep]
    if fast:
        native_clean.clean_finish_native(x[keep], y[keep], luma_blur, luma_dark, chroma_blur, out, eps=GAIN_EPS,
                                         **_tuning(knee))
    else:
        result = clean_finish(_planes(x[keep]), _planes(y[keep]), luma_t[keep], excess[keep],
                              torch.from_numpy(luma_blur), torch.from_numpy(luma_dark),
                              torch.from_numpy(chroma_blur).permute(2, 0, 1), **_tuning(knee))
        _store(torch.stack(result, dim=-1).numpy(), out)


def _planes(image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The R, G and B planes of an (h, W, 3) array as float32 tensors in [0, 1] (:func:`_unit`)."""
    return torch.from_numpy(_unit(image)).unbind(-1)


def _tuning(knee: float) -> dict[str, float]:
    """The constants of :func:`clean_finish` (and its kernel) besides the planes, for the knee ``knee``."""
    return {"ramp_start": GAIN_LOW - 1.0, "ramp_scale": 1.0 / (GAIN_HIGH - GAIN_LOW), "knee": knee,
            "knee_drop": KNEE_DROP}


def clean_tensor(x: torch.Tensor, y: torch.Tensor, strength: float = DEFAULT_STRENGTH, *,
                 knee: float = KNEE) -> torch.Tensor:
    """The clean stage of a batch in torch ops alone (the Enhancer's ONNX graph), within float rounding of
    :func:`clean_enhanced`.

    Args:
        x: the input batch, float32 (B, 3, H, W) in [0, 1].
        y: the curves' output, float32 (B, 3, H, W) in [0, 1].
        strength: 0-:data:`MAX_STRENGTH` (0: ``y`` is returned).
        knee: where the highlight knee starts (:func:`knee_start`).

    Returns:
        float32 (B, 3, H, W) in [0, 1].
    """
    strength = check_strength(strength, "strength")
    if strength == 0:
        return y
    xs, ys = x.unbind(1), y.unbind(1)
    luma, chroma, excess = clean_prepare(xs, ys)  # (B, H, W), (2, B, H, W), (B, H, W)
    planes = torch.cat([luma[None], chroma]).transpose(0, 1)  # (B, 3, H, W): L, U, V
    luma_blur = _gaussian(planes[:, :1], LUMA_SIGMA * strength)[:, 0]
    luma_dark = _gaussian(planes[:, :1], LUMA_SIGMA_DARK * strength)[:, 0]
    chroma_blur = _gaussian(planes[:, 1:], CHROMA_SIGMA * strength).transpose(0, 1)
    return torch.stack(clean_finish(xs, ys, luma, excess, luma_blur, luma_dark, chroma_blur, **_tuning(knee)), dim=1)


def _gaussian(planes: torch.Tensor, sigma: float) -> torch.Tensor:
    """:func:`_blur` of each plane of ``planes`` (B, C, H, W) as two 1-D convolutions, rows then columns."""
    ksize = _ksize(sigma)
    radius = ksize // 2
    kernel = gaussian_kernel1d(ksize, sigma).view(1, 1, ksize)
    height, width = planes.shape[-2:]
    flat = planes.reshape(-1, height, width)
    padded = flat.transpose(-1, -2).index_select(-2, _border_index(width, radius, _REFLECT_101, planes.device))
    rows = F.conv1d(padded.transpose(-1, -2).reshape(-1, 1, width + 2 * radius), kernel).reshape(flat.shape)
    padded = rows.index_select(-2, _border_index(height, radius, _REFLECT_101, planes.device)).transpose(-1, -2)
    columns = F.conv1d(padded.reshape(-1, 1, height + 2 * radius), kernel)  # (B C W, 1, H)
    return columns.reshape(-1, width, height).transpose(-1, -2).reshape(planes.shape)


def clean_enhanced(input: np.ndarray, output: np.ndarray, strength: float = DEFAULT_STRENGTH, *,
                   target: float | None = None, rows: int | None = None, out: np.ndarray | None = None,
                   use_native: bool | None = None) -> np.ndarray:
    """The clean stage (see the module notes) of an enhanced image ``output`` of ``input``.

    Args:
        input: the image before enhancement, RGB (H, W, 3): float32 in [0, 1], or uint8 / uint16 samples.
        output: the enhancement's result, float32 (H, W, 3) in [0, 1].
        strength: 0-:data:`MAX_STRENGTH`, scaling the blurs' sigmas (0: ``output`` unchanged).
        target: the exposure target (mean brightness, 0-1) ``output`` was brightened towards, which places
            the highlight knee (:func:`knee_start`; None: :data:`KNEE`).
        rows: rows per band (None: about :data:`BAND_PIXELS` pixels a band); the result does not depend on it.
        out: where to write the result, (H, W, 3) float32 or uint8 / uint16 (rounded half to even);
            None: a new float32 array.
        use_native: the native kernel (True), torch (False), or the kernel when available (None).

    Returns:
        ``out``.

    Raises:
        ImageError: arrays of other shapes or types; ValueError: a bad ``strength``, ``target`` or ``rows``.
    """
    strength = check_strength(strength, "strength")
    knee = knee_start(target)
    if not (isinstance(input, np.ndarray) and isinstance(output, np.ndarray)) or input.ndim != 3 \
            or input.shape[2] != 3 or output.shape != input.shape or output.dtype != _F32 \
            or input.dtype not in (_F32, np.uint8, np.uint16):
        raise ImageError("clean_enhanced: expected an input (H, W, 3) of float32, uint8 or uint16 and a float32 "
                         f"output of its shape; got {getattr(input, 'dtype', type(input).__name__)} "
                         f"{getattr(input, 'shape', '')} and {getattr(output, 'dtype', type(output).__name__)} "
                         f"{getattr(output, 'shape', '')}")
    height, width = input.shape[:2]
    if rows is None:
        rows = max(1, BAND_PIXELS // max(1, width))
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ValueError(f"rows: expected an int >= 1, got {rows!r}")
    if out is None:
        out = np.empty(input.shape, _F32)
    x, y = np.ascontiguousarray(input), np.ascontiguousarray(output)
    scratch: dict = {}
    for top, bottom, lo, hi in bands(height, rows, strength):
        target = out[top:bottom]
        band = target if target.flags.c_contiguous else np.empty(target.shape, out.dtype)
        clean_band(x[lo:hi], y[lo:hi], strength, top - lo, bottom - top, band, knee=knee, use_native=use_native,
                   scratch=scratch)
        if band is not target:
            target[...] = band
    return out
