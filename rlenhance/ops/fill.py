"""Hole filling without learning: the onion-peel + heat-diffusion fill of the completion env.

:func:`diffusion_fill` is the completion env's start state, a baseline, and the optional pre-fill of the supervised
completion models. Batched torch ops on (B, C, H, W), on the input's device.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["PREFILLS", "diffusion_fill", "hole_box", "hole_boxes", "neighbour_mean", "prefill_hole", "prefill_patches"]

#: What a supervised completion model sees in the hole (:func:`prefill_hole`).
PREFILLS = ("diffusion", "none")
#: One pre-filled hole box of :func:`prefill_patches`: ``(b, top, left, values)``.
Patch = tuple[int, int, int, torch.Tensor]


def neighbour_mean(x: torch.Tensor, weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of the 4-neighbours of each pixel, counting only neighbours with ``weight`` 1.

    Args:
        x: (B, C, H, W) image.
        weight: (B, 1, H, W) in {0, 1}, or None for all ones.

    Returns:
        (mean, count): (B, C, H, W) mean (0 where count is 0) and (B, 1, H, W) neighbour count.
    """
    kernel = x.new_tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    if weight is None:
        weight = torch.ones_like(x[:, :1])
    c = x.shape[1]
    total = F.conv2d(F.pad(x * weight, (1, 1, 1, 1)), kernel.expand(c, 1, 3, 3), groups=c)
    count = F.conv2d(F.pad(weight, (1, 1, 1, 1)), kernel)
    return total / count.clamp_min(1.0), count


def hole_box(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """The bounding box of the missing pixels of one mask (H, W) (> 0 = missing):
    ``(top, left, bottom, right)``, bottom and right exclusive; None for a mask without hole."""
    rows, cols = torch.nonzero(mask > 0, as_tuple=True)
    if rows.numel() == 0:
        return None
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


def hole_boxes(mask: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """Disjoint boxes that together hold every missing pixel of one mask (H, W) (> 0 = missing), each
    the bounding box of whole holes (4-connected regions, merged where their boxes overlap): ``(top, left, bottom,
    right)`` as :func:`hole_box`, row-major. The :func:`diffusion_fill` of one box and its margin is the whole
    frame's there."""
    canvas = (mask > 0).to(torch.uint8).cpu().numpy()
    count = None
    while True:
        found, _, stats, _ = cv2.connectedComponentsWithStats(canvas, connectivity=4, ltype=cv2.CV_32S)
        boxes = [(int(y), int(x), int(y + h), int(x + w)) for x, y, w, h, _ in stats[1:]]
        if found == count:  # no two boxes overlapped: drawing them joined none
            return sorted(boxes)
        count = found
        canvas = np.zeros_like(canvas)
        for top, left, bottom, right in boxes:
            canvas[top:bottom, left:right] = 1


def diffusion_fill(image: torch.Tensor, mask: torch.Tensor, *, smooth_iters: int = 20) -> torch.Tensor:
    """Fill the holes of ``image`` (``mask`` 1 = missing) from the outside in, then smooth.

    Onion peel: every round, missing pixels with at least one known 4-neighbour take the mean of
    their known neighbours and become known; then ``smooth_iters`` rounds of 4-neighbour averaging
    (heat diffusion) inside the hole. Known pixels never change.

    Each image is filled in a window of the batch's largest hole box plus a one-pixel margin, all as one stack: the
    whole-frame result at the cost of the box.

    Args:
        image: (B, C, H, W) float image; values inside the hole are ignored.
        mask: (B, 1, H, W) float in {0, 1}.
    """
    filled = image * (1.0 - mask)
    boxes = {b: found for b in range(image.shape[0]) if (found := hole_box(mask[b, 0])) is not None}
    if not boxes:
        return filled
    height, width = image.shape[-2:]
    rows = min(max(bottom - top for top, _, bottom, _ in boxes.values()) + 2, height)
    cols = min(max(right - left for _, left, _, right in boxes.values()) + 2, width)
    windows = [(slice(b, b + 1), slice(None), _span(top, rows, height), _span(left, cols, width))
               for b, (top, left, _, _) in boxes.items()]
    stack = _fill_frame(torch.cat([filled[w] for w in windows]), torch.cat([mask[w] for w in windows]),
                        smooth_iters)
    for k, w in enumerate(windows):
        filled[w] = stack[k:k + 1]
    return filled


def prefill_patches(image: torch.Tensor, mask: torch.Tensor, how: str, *,
                    convert: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    smooth_iters: int = 20) -> list[Patch]:
    """:func:`prefill_hole` as patches ``(b, top, left, values)``, ``values`` (C, h, w) the pre-filled pixels of
    one of image ``b``'s :func:`hole_boxes` (disjoint) at (top, left), for an image too large to copy whole: the
    image with them written over it (:func:`rlenhance.ops.tiling.paste`) is ``prefill_hole(image, mask, how)``.

    Args:
        image: (B, C, H, W) float, the occluded image (any dtype with ``convert``).
        mask: (B, 1, H, W) in {0, 1} (float or bool), 1 = missing.
        how: one of :data:`PREFILLS`.
        convert: what is filled of each box's window of ``image`` (e.g. integer samples as float, or
            their luma): the image itself is never converted whole; None: the window as it is.
        smooth_iters: of :func:`diffusion_fill`.
    """
    if how not in PREFILLS:
        raise ValueError(f"prefill: expected one of {PREFILLS}, got {how!r}")
    if how == "none":
        return []
    return [_filled_box(image, mask, b, box, convert, smooth_iters)
            for b in range(image.shape[0]) for box in hole_boxes(mask[b, 0])]


def _filled_box(image: torch.Tensor, mask: torch.Tensor, b: int, box: tuple[int, int, int, int],
                convert: Callable[[torch.Tensor], torch.Tensor] | None, smooth_iters: int) -> Patch:
    """The patch of :func:`prefill_patches` of one ``box`` of image ``b``."""
    top, left, bottom, right = box
    height, width = image.shape[-2:]
    rows = _span(top, min(bottom - top + 2, height), height)
    cols = _span(left, min(right - left + 2, width), width)
    window = image[b:b + 1, :, rows, cols]
    window = window if convert is None else convert(window)
    filled = diffusion_fill(window, mask[b:b + 1, :, rows, cols].to(window.dtype), smooth_iters=smooth_iters)
    return b, top, left, filled[0, :, top - rows.start:bottom - rows.start, left - cols.start:right - cols.start]


def _span(start: int, size: int, length: int) -> slice:
    """``size`` pixels from one before ``start`` (the margin), moved back inside ``0 .. length``."""
    first = min(max(start - 1, 0), length - size)
    return slice(first, first + size)


def _fill_frame(image: torch.Tensor, mask: torch.Tensor, smooth_iters: int) -> torch.Tensor:
    """:func:`diffusion_fill` on the whole frame of ``image`` (its hole pixels already 0)."""
    known = 1.0 - mask
    filled = image
    for _ in range(image.shape[-1] + image.shape[-2]):  # bounded: a hole is peeled within H + W rounds
        if not bool((known < 1).any()):
            break
        mean, count = neighbour_mean(filled, known)
        frontier = (known < 1) & (count > 0)
        filled = torch.where(frontier, mean, filled)
        known = torch.where(frontier, torch.ones_like(known), known)
    for _ in range(smooth_iters):
        filled = torch.where(mask > 0, neighbour_mean(filled)[0], filled)
    return filled


def prefill_hole(image: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """A completion model's input: ``image`` with its hole pre-filled as ``how`` says.

    Args:
        image: (B, C, H, W) float, the occluded image.
        mask: (B, 1, H, W) float in {0, 1}, 1 = missing.
        how: ``"diffusion"`` (:func:`diffusion_fill`) or ``"none"`` (``image`` unchanged).
    """
    if how not in PREFILLS:
        raise ValueError(f"prefill: expected one of {PREFILLS}, got {how!r}")
    return diffusion_fill(image, mask) if how == "diffusion" else image
