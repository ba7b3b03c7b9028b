"""Images handed in by callers (numpy arrays, torch tensors): checks, scaling, layout."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import torch
from torch import Tensor

from rlenhance.errors import ImageError
from rlenhance.io.read import _native_byte_order
from rlenhance.io.write import float_to_levels

UNIT_RANGE_TOLERANCE = 1e-4
"""Float images may stray this far outside [0, 1] (rounding); such values are clipped, larger ones refused."""

NOISY_RANGE = (-1.0, 2.0)
"""What a noisy image (``noisy=True``) may span: an image in [0, 1] plus unclipped Gaussian noise, as in
the DnCNN / PixelRL protocol. Not clipped."""

_INTEGER_SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, torch.uint8: 255.0,
                   **({torch.uint16: 65535.0} if hasattr(torch, "uint16") else {})}
_ACCEPTED_IMAGE_TEXT = (f"float values in [0, 1] (within {UNIT_RANGE_TOLERANCE:g}), or uint8 / uint16 samples, "
                        "which are divided by 255 / 65535")


def as_unit_float(image: np.ndarray | torch.Tensor, *, name: str = "image", allow_tensor: bool = False,
                  noisy: bool = False) -> np.ndarray | torch.Tensor:
    """Check an image handed in by a caller and return it as float32 in [0, 1].

    The input check of the public entry points (``Enhancer``, ``SupervisedRestorer``, the RL rollouts, the
    environments' ``reset(options=...)``): integer samples are scaled by their dtype's range. Shapes are the
    caller's to check; channel order is not changed (``cv2.imread`` gives BGR: convert it to RGB first).

    Accepted:
        * finite floats (any precision) in [0, 1]; values within :data:`UNIT_RANGE_TOLERANCE` outside it
          are clipped; with ``noisy=True`` (a denoiser's input) finite floats in :data:`NOISY_RANGE`, kept;
        * ``uint8`` (divided by 255) and ``uint16`` (divided by 65535), in either byte order.

    Args:
        image: a numpy array (or, with ``allow_tensor=True``, a torch tensor) of any shape.
        name: what the caller calls it, for the message (``"image"``, ``"options['noisy']"``).
        allow_tensor: accept torch tensors (returned as float32 tensors on their device).
        noisy: the image may carry unclipped noise (see above).

    Returns:
        float32 numpy array (a tensor for a tensor input), same shape, values in [0, 1] (in :data:`NOISY_RANGE`
        with ``noisy=True``). A float32 input already in range is returned as it is (no copy).

    Raises:
        ImageError: another type (a torch tensor when not allowed: the message says how to convert it), bool
            or other integer dtypes, an empty array, NaN / infinite values, or values outside [0, 1]; the
            message says what was found and what is accepted.

    Example:
        >>> as_unit_float(np.array([[0, 255]], dtype=np.uint8)).tolist()
        [[0.0, 1.0]]
    """
    tensor = isinstance(image, torch.Tensor)
    if tensor and not allow_tensor:
        raise ImageError(f"{name}: got a torch.Tensor of shape {tuple(image.shape)}; pass a numpy array "
                         "(H, W, C), e.g. tensor.permute(1, 2, 0).cpu().numpy() for a (C, H, W) tensor")
    if not tensor and not isinstance(image, np.ndarray):
        raise ImageError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if not tensor:
        image = _native_byte_order(image)
    if image.dtype in _INTEGER_SCALES:
        scale = _INTEGER_SCALES[image.dtype]
        return image.to(torch.float32) / scale if tensor else image.astype(np.float32) / np.float32(scale)
    if not (image.is_floating_point() if tensor else np.issubdtype(image.dtype, np.floating)):
        raise ImageError(f"{name}: unsupported dtype {image.dtype}; accepted: {_ACCEPTED_IMAGE_TEXT} "
                         "(convert other integer or bool images to float in [0, 1] yourself)")
    values = image.to(torch.float32) if tensor else image.astype(np.float32, copy=False)
    accepted = (f"finite float values in [{NOISY_RANGE[0]:g}, {NOISY_RANGE[1]:g}] (an image in [0, 1] with "
                "unclipped noise), or uint8 / uint16 samples" if noisy else _ACCEPTED_IMAGE_TEXT)
    low, high = finite_extremes(values, name=name, accepted=accepted)
    lowest, highest = NOISY_RANGE if noisy else (-UNIT_RANGE_TOLERANCE, 1.0 + UNIT_RANGE_TOLERANCE)
    if low < lowest or high > highest:
        hint = " (0-255 values in a float array? divide by 255)" if high > max(highest, 2.0) else ""
        raise ImageError(f"{name}: values span [{low:.6g}, {high:.6g}]{hint}; accepted: {accepted}")
    if not noisy and (low < 0.0 or high > 1.0):
        return values.clamp(0.0, 1.0) if tensor else np.clip(values, 0.0, 1.0)
    return values


def finite_extremes(values: np.ndarray | torch.Tensor, *, name: str, accepted: str) -> tuple[float, float]:
    """The smallest and largest value of a float image (numpy array or torch tensor, any shape, read in
    place), refusing an empty one or one that holds NaN or infinite values; ``name`` and ``accepted`` are
    for the message.

    Raises:
        ImageError: ``"{name}: empty image (shape ...)"`` or ``"{name}: N NaN or infinite value(s) of M;
            accepted: {accepted}"``.
    """
    tensor = isinstance(values, torch.Tensor)
    if values.numel() == 0 if tensor else values.size == 0:
        raise ImageError(f"{name}: empty image (shape {tuple(values.shape)})")
    # a NaN makes both extremes NaN, an infinity is one of them; only then are the bad values counted
    low, high = _extremes(values.detach() if tensor else values)
    if not (math.isfinite(low) and math.isfinite(high)):
        bad = int((~(torch.isfinite(values) if tensor else np.isfinite(values))).sum())
        raise ImageError(f"{name}: {bad} NaN or infinite value(s) of {values.numel() if tensor else values.size}; "
                         f"accepted: {accepted}")
    return low, high


def _extremes(values: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """Smallest and largest value of a float32 array or tensor (NaN when it holds one)."""
    # the axes in memory order: a transposed view is then read in place, not copied
    order = sorted(range(values.ndim), key=lambda axis: -values.strides[axis] if isinstance(values, np.ndarray)
                   else -values.stride(axis))
    if isinstance(values, np.ndarray):
        values = np.transpose(values, order)
        if not values.flags.writeable:  # torch would warn that it cannot protect it
            return float(values.min()), float(values.max())
        values = torch.from_numpy(np.ascontiguousarray(values))
    else:
        values = values.permute(*order)
    low, high = torch.aminmax(values)
    return float(low), float(high)


def is_gray(image: np.ndarray) -> bool:
    """Whether an ``(H, W, C)`` (or ``(H, W)``) image is gray: one plane, or three equal ones (how
    :func:`load_image` returns a grayscale file)."""
    return image.ndim == 2 or image.shape[2] == 1 or bool(np.array_equal(image[..., 0], image[..., 1])
                                                          and np.array_equal(image[..., 1], image[..., 2]))


def image_to_tensor(img: np.ndarray) -> torch.Tensor:
    """Convert an ``(H, W, C)`` image array to a ``(C, H, W)`` float32 tensor (a copy).

    Args:
        img: float array, shape ``(H, W, C)`` (or ``(H, W)``, treated as one channel).
            Channel order is kept (RGB stays RGB); values are not rescaled.

    Returns:
        CPU ``float32`` tensor of shape ``(C, H, W)``.

    Raises:
        ImageError: ``img`` is not a float numpy array of 2 or 3 dimensions.
    """
    if not isinstance(img, np.ndarray) or not np.issubdtype(img.dtype, np.floating):
        kind = img.dtype if isinstance(img, np.ndarray) else type(img).__name__
        raise ImageError(f"image_to_tensor: expected a float numpy array (H, W, C), got {kind}")
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3:
        raise ImageError(f"image_to_tensor: expected shape (H, W, C) or (H, W), got {img.shape}")
    return torch.from_numpy(np.array(np.moveaxis(img, 2, 0), dtype=np.float32, order="C", copy=True))


def tensor_to_image(t: torch.Tensor) -> np.ndarray:
    """Convert a ``(C, H, W)`` or ``(1, C, H, W)`` tensor (any device) to an ``(H, W, C)`` float32 array.

    The result is a detached CPU copy; channel order is kept, values are not clipped.

    Args:
        t: floating tensor, shape ``(C, H, W)`` or ``(1, C, H, W)``.

    Returns:
        ``float32`` array of shape ``(H, W, C)``.

    Raises:
        ImageError: ``t`` is not a floating tensor of one of those shapes.
    """
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        kind = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
        raise ImageError(f"tensor_to_image: expected a floating torch tensor, got {kind}")
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3:
        raise ImageError(f"tensor_to_image: expected shape (C, H, W) or (1, C, H, W), got {tuple(t.shape)}")
    hwc = t.detach().to(device="cpu", dtype=torch.float32).permute(1, 2, 0)
    return np.array(hwc.numpy(), dtype=np.float32, order="C", copy=True)


#: What a restorer's result can be (``restore(..., dtype=...)``) -> its torch dtype: float32 values in [0, 1],
#: or the uint8 levels :func:`rlenhance.io.save_image` writes of them (:func:`rlenhance.io.float_to_levels`).
RESULT_DTYPES: Mapping[np.dtype, torch.dtype] = MappingProxyType({np.dtype(np.float32): torch.float32,
                                                                 np.dtype(np.uint8): torch.uint8})


def result_dtype(dtype: type | np.dtype) -> torch.dtype:
    """The torch dtype of a restorer's result ``dtype`` (:data:`RESULT_DTYPES`); ValueError for another."""
    try:
        return RESULT_DTYPES[np.dtype(dtype)]
    except (TypeError, KeyError):
        raise ValueError(f"dtype: expected np.float32 or np.uint8 (the levels save_image writes), got "
                         f"{dtype!r}") from None


def unit_window(window: Tensor) -> Tensor:
    """A window cut from an image kept in samples, as float32 in [0, 1]: uint8 / uint16 divided by their range
    (:func:`rlenhance.io.as_unit_float`), floats as float32."""
    return window.float() if window.is_floating_point() else as_unit_float(window, allow_tensor=True)


def as_result(out: Tensor | np.ndarray, dtype: torch.dtype) -> Tensor | np.ndarray:
    """A restorer's float result ``out`` (or a tile of it; a tensor or a numpy array) as ``dtype``
    (:data:`RESULT_DTYPES`'s torch dtypes): itself, or its levels (:func:`rlenhance.io.float_to_levels`).

    Raises:
        ImageError: levels asked of a result that holds NaN or infinite values.
    """
    if dtype == torch.float32:
        return out
    if not bool(torch.isfinite(out).all() if torch.is_tensor(out) else np.isfinite(out).all()):
        raise ImageError("the model's result holds NaN or infinite values; it cannot be written as image levels")
    return float_to_levels(out)
