"""Synthetic occlusions for completion: random box or stroke holes per image, and holes moved onto
another image, batched in torch, with the randomness conventions of :mod:`rlenhance.data.degrade`
(explicit generators, one per image or one for the batch; float32 images ``(*, C, H, W)`` in [0, 1])."""

from __future__ import annotations

import math

import torch
from torch import nn

from rlenhance.data.degrade import (
    Generators,
    IntRange,
    Range,
    _as_int_range,
    _as_range,
    _check_generators,
    _flatten,
    _rand,
    _uniform,
)
from rlenhance.ops.fill import hole_box

__all__ = ["RandomOcclusion", "moved_occlusion", "random_occlusion"]

_OCCLUSION_KINDS = ("box", "stroke", "mixed")


def _count(bounds: tuple[int, int], b: int, generator: Generators, ref: torch.Tensor) -> torch.Tensor:
    """One integer per image, uniform in the inclusive range ``bounds``: long (B,)."""
    return (bounds[0] + (_rand(b, generator, ref) * (bounds[1] - bounds[0] + 1)).long()).clamp_max(bounds[1])


def _box_masks(b: int, h: int, w: int, *, box_size: tuple[float, float], num_boxes: tuple[int, int],
               generator: Generators, ref: torch.Tensor) -> torch.Tensor:
    """Union of 1..n axis-aligned boxes per image, bool (B, H, W).

    Draws, in order: box count (B), then per box slot (``num_boxes[1]``): height, width, top, left (B each).
    """
    count = _count(num_boxes, b, generator, ref)
    ys = torch.arange(h, device=ref.device).view(1, h, 1)
    xs = torch.arange(w, device=ref.device).view(1, 1, w)
    mask = torch.zeros(b, h, w, dtype=torch.bool, device=ref.device)
    for slot in range(num_boxes[1]):
        bh = (_uniform(box_size, b, generator, ref) * h).round().clamp(1, h).long()
        bw = (_uniform(box_size, b, generator, ref) * w).round().clamp(1, w).long()
        top = (_rand(b, generator, ref) * (h - bh + 1)).long()
        left = (_rand(b, generator, ref) * (w - bw + 1)).long()
        inside = ((ys >= top.view(b, 1, 1)) & (ys < (top + bh).view(b, 1, 1))
                  & (xs >= left.view(b, 1, 1)) & (xs < (left + bw).view(b, 1, 1)))
        mask |= inside & (slot < count).view(b, 1, 1)
    return mask


def _stroke_masks(b: int, h: int, w: int, *, num_strokes: tuple[int, int], stroke_vertices: tuple[int, int],
                  stroke_length: tuple[float, float], stroke_width: tuple[float, float], max_turn: float,
                  generator: Generators, ref: torch.Tensor) -> torch.Tensor:
    """Free-form strokes: random walks of thick line segments with round joints, bool (B, H, W).

    As DeepFill v2's free-form masks (Yu et al., ICCV 2019): each stroke starts at a uniform point with a
    uniform direction, then takes ``stroke_vertices - 1`` segments whose direction turns by
    U(-max_turn, max_turn) and whose length is a fraction of the image diagonal, vertices kept inside the
    image. A pixel is covered when its distance to a segment is at most half the stroke width.

    Draws, in order: stroke count (B); per stroke slot: vertex count, width, start y, start x,
    start angle (B each); per segment slot: turn, length (B each).
    """
    device = ref.device
    diag = math.hypot(h, w)
    n_strokes = _count(num_strokes, b, generator, ref)
    ys = torch.arange(h, device=device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=device, dtype=torch.float32).view(1, 1, w)
    mask = torch.zeros(b, h, w, dtype=torch.bool, device=device)
    for stroke in range(num_strokes[1]):
        n_vert = _count(stroke_vertices, b, generator, ref)
        radius = (_uniform(stroke_width, b, generator, ref) * min(h, w) / 2).clamp_min(0.5).view(b, 1, 1)
        y = _rand(b, generator, ref) * (h - 1)
        x = _rand(b, generator, ref) * (w - 1)
        angle = _rand(b, generator, ref) * (2 * math.pi)
        active = (stroke < n_strokes).view(b, 1, 1)
        # A stroke of one vertex is a dot.
        mask |= active & ((ys - y.view(b, 1, 1)) ** 2 + (xs - x.view(b, 1, 1)) ** 2 <= radius**2)
        for segment in range(stroke_vertices[1] - 1):
            angle = angle + _uniform((-max_turn, max_turn), b, generator, ref)
            length = _uniform(stroke_length, b, generator, ref) * diag
            y2 = (y + length * torch.sin(angle)).clamp(0, h - 1)
            x2 = (x + length * torch.cos(angle)).clamp(0, w - 1)
            seg_active = active & (segment + 1 < n_vert).view(b, 1, 1)
            # Distance from every pixel to segment (y, x) -> (y2, x2).
            dy, dx = (y2 - y).view(b, 1, 1), (x2 - x).view(b, 1, 1)
            py, px = ys - y.view(b, 1, 1), xs - x.view(b, 1, 1)
            t = ((py * dy + px * dx) / (dy * dy + dx * dx).clamp_min(1e-12)).clamp(0.0, 1.0)
            dist2 = (py - t * dy) ** 2 + (px - t * dx) ** 2
            mask |= seg_active & (dist2 <= radius**2)
            y, x = y2, x2
    return mask


def _check_fill(fill: float) -> None:
    """Raise ValueError unless ``fill`` (the value of occluded pixels) is a number in [0, 1]."""
    if isinstance(fill, bool) or not isinstance(fill, (int, float)) or not 0.0 <= fill <= 1.0:
        raise ValueError(f"fill: expected a number in [0, 1], got {fill!r}")


def random_occlusion(x: torch.Tensor, *, generator: Generators, kind: str = "box", fill: float = 0.0,
                     box_size: Range = (0.1, 0.4), num_boxes: IntRange = 1, num_strokes: IntRange = (1, 4),
                     stroke_vertices: IntRange = (2, 8), stroke_length: Range = (0.05, 0.2),
                     stroke_width: Range = (0.03, 0.08), max_turn: float = math.pi / 2,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Occlude random regions of images: boxes, free-form strokes, or either per image.

    Occluded pixels are set to ``fill`` in every channel (0 = black, as in the occluded-bedroom data set).

    Args:
        x: images, float in [0, 1], shape (*, C, H, W).
        generator: source of every random number (None: torch's global RNG), or one per image.
        kind: ``"box"`` (axis-aligned rectangles), ``"stroke"`` (free-form brush strokes) or
            ``"mixed"`` (each image gets boxes or strokes with probability 1/2).
        fill: value written into occluded pixels, in [0, 1].
        box_size: side of a box as a fraction of the image side (height and width drawn apart), in (0, 1].
        num_boxes: boxes per image (int or inclusive range); their union is the hole.
        num_strokes: strokes per image (int or inclusive range).
        stroke_vertices: vertices per stroke (int or inclusive range), >= 1.
        stroke_length: segment length as a fraction of the image diagonal.
        stroke_width: stroke width as a fraction of min(H, W) (at least one pixel).
        max_turn: largest direction change between segments, radians.

    Returns:
        ``(occluded, mask)``: occluded images of the shape, dtype and device of ``x``; mask of
        shape (*, 1, H, W), same dtype, 1 = missing pixel, 0 = kept.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> occ, mask = random_occlusion(torch.rand(2, 3, 32, 32), generator=g, kind="stroke")
        >>> bool(((occ == 0) | (mask == 0)).all())
        True
    """
    if kind not in _OCCLUSION_KINDS:
        raise ValueError(f"kind: expected one of {_OCCLUSION_KINDS}, got {kind!r}")
    _check_fill(fill)
    if not (math.isfinite(max_turn) and max_turn >= 0):
        raise ValueError(f"max_turn: expected a finite angle >= 0 (radians), got {max_turn!r}")
    box_r = _as_range(box_size, "box_size", low=1e-6, high=1.0)
    boxes_r = _as_int_range(num_boxes, "num_boxes", low=1)
    strokes_r = _as_int_range(num_strokes, "num_strokes", low=1)
    vertices_r = _as_int_range(stroke_vertices, "stroke_vertices", low=1)
    length_r = _as_range(stroke_length, "stroke_length", low=0.0)
    width_r = _as_range(stroke_width, "stroke_width", low=0.0, high=1.0)
    flat, shape = _flatten(x)
    _check_generators(generator, flat.shape[0])
    b, _, h, w = flat.shape
    box_kw = {"box_size": box_r, "num_boxes": boxes_r, "generator": generator, "ref": flat}
    stroke_kw = {"num_strokes": strokes_r, "stroke_vertices": vertices_r, "stroke_length": length_r,
                 "stroke_width": width_r, "max_turn": max_turn, "generator": generator, "ref": flat}
    if kind == "box":
        holes = _box_masks(b, h, w, **box_kw)
    elif kind == "stroke":
        holes = _stroke_masks(b, h, w, **stroke_kw)
    else:
        use_box = (_rand(b, generator, flat) < 0.5).view(b, 1, 1)
        holes = torch.where(use_box, _box_masks(b, h, w, **box_kw), _stroke_masks(b, h, w, **stroke_kw))
    mask = holes.unsqueeze(1).to(flat.dtype)
    occluded = flat * (1 - mask) + float(fill) * mask
    return occluded.reshape(shape), mask.reshape(*shape[:-3], 1, h, w)


def moved_occlusion(original: torch.Tensor, mask: torch.Tensor, *, generator: Generators,
                    fill: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each image's hole to a random place of its frame, and occlude the original there.

    Training pairs of a data set with one hole per photo then show holes everywhere. The hole keeps its
    shape: its bounding box is moved to a uniformly drawn position where it fits the frame.

    Args:
        original: clean images, float in [0, 1], (B, C, H, W).
        mask: (B, 1, H, W), 1 = missing pixel (an image without hole keeps none).
        generator: source of the two positions of every image (None: torch's global RNG), or one per image.
        fill: value written into the occluded pixels, in [0, 1] (0: black, as the bedroom data).

    Returns:
        ``(occluded, mask)`` as :func:`random_occlusion`'s: the originals with the moved holes set to
        ``fill``, and the moved masks.

    Example:
        >>> mask = torch.zeros(1, 1, 16, 16); mask[..., 2:6, 3:8] = 1
        >>> occ, moved = moved_occlusion(torch.rand(1, 3, 16, 16), mask, generator=torch.Generator().manual_seed(0))
        >>> int(moved.sum()), bool((occ[moved.expand(1, 3, 16, 16) > 0] == 0).all())
        (20, True)
    """
    if original.dim() != 4 or mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] != original.shape[0] \
            or mask.shape[-2:] != original.shape[-2:]:
        raise ValueError(f"moved_occlusion: original (B, C, H, W) and mask (B, 1, H, W) of one size expected, got "
                         f"{tuple(original.shape)} and {tuple(mask.shape)}")
    _check_fill(fill)
    _check_generators(generator, original.shape[0])
    h, w = original.shape[-2:]
    draws = _rand(2 * original.shape[0], generator, original).view(-1, 2)
    moved = torch.zeros_like(mask)
    for k in range(original.shape[0]):
        found = hole_box(mask[k, 0])
        if found is None:
            continue
        top, left, bottom, right = found
        height, width = bottom - top, right - left
        new_top = min(int(draws[k, 0] * (h - height + 1)), h - height)
        new_left = min(int(draws[k, 1] * (w - width + 1)), w - width)
        moved[k, :, new_top:new_top + height, new_left:new_left + width] = \
            mask[k, :, top:top + height, left:left + width]
    occluded = original * (1 - moved) + float(fill) * moved
    return occluded, moved


class RandomOcclusion(nn.Module):
    """Module form of :func:`random_occlusion` (its keyword arguments): ``forward(x, generator=None)``."""

    def __init__(self, kind: str = "box", **kwargs):
        super().__init__()  # a tiny dry run: a bad config fails at construction
        random_occlusion(torch.zeros(1, 1, 4, 4), generator=torch.Generator().manual_seed(0), kind=kind, **kwargs)
        self.kind, self.kwargs = kind, dict(kwargs)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return random_occlusion(x, generator=generator, kind=self.kind, **self.kwargs)

    def extra_repr(self) -> str:
        return ", ".join([f"kind={self.kind!r}"] + [f"{k}={v!r}" for k, v in self.kwargs.items()])
