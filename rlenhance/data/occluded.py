"""Image-completion pairs: occluded images, their originals and the mask of missing pixels.

Layout (that of the occluded-bedroom data, ``../shared/data/bedroom/train``)::

    root/occluded_images/occluded_NAME
    root/original_images/NAME
    mask_dir/NAME (optional; any image extension, white = missing)

Without ``mask_dir`` the mask is estimated from the pair (:func:`estimate_occlusion_mask`, or the gated
PixelRNN seed's bare threshold :func:`channel_sum_mask` with ``mask_rule="channel-sum"``); an occluded
image that comes alone gets its hole estimated from the fill colour (:func:`find_hole`, :func:`hole_mask`).
The estimates share the cleaning steps :func:`drop_small_regions` and :func:`regions_to_mask`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rlenhance.data.base import ImageDataset, Record, check_split, image_files, partner_error, resolve_split
from rlenhance.data.transforms import TUNE_FRACTION, to_float
from rlenhance.errors import DatasetError, ImageError
from rlenhance.io import DEFAULT_MAX_PIXELS, HOLE_THRESHOLD, MASK_THRESHOLD, OCCLUDED_PREFIX, as_unit_float

__all__ = ["CHANNEL_SUM_THRESHOLD", "HOLE_THRESHOLD", "MASK_RULES", "MASK_SHAPES", "HoleEstimate", "OccludedPairs",
           "channel_sum_mask", "drop_small_regions", "estimate_occlusion_mask", "find_hole", "hole_mask",
           "regions_to_mask"]

#: Accepted values of ``shape`` / ``mask_shape``.
MASK_SHAPES = ("box", "free")
#: How :class:`OccludedPairs` derives a mask from a pair (:func:`estimate_occlusion_mask`, :func:`channel_sum_mask`).
MASK_RULES = ("estimate", "channel-sum")
#: The gated PixelRNN seed's threshold on ``sum_c |original - occluded|`` (images in [0, 1]).
CHANNEL_SUM_THRESHOLD = 0.03
#: The default ``threshold`` of :func:`estimate_occlusion_mask` (max over channels).
_ESTIMATE_THRESHOLD = 0.1


def _square(size: int) -> np.ndarray:
    return np.ones((size, size), dtype=bool)


def _pair(occluded: np.ndarray, original: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pair as float32 arrays, checked to be of one shape, (H, W, C) or (H, W)."""
    occ, ref = np.asarray(occluded, dtype=np.float32), np.asarray(original, dtype=np.float32)
    if occ.shape != ref.shape or occ.ndim not in (2, 3):
        raise ValueError(f"occluded {occ.shape} and original {ref.shape}: expected one shape, (H, W, C) or (H, W)")
    return occ, ref


def _check_threshold(threshold: float, who: str) -> None:
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"{who}: threshold must be a finite number >= 0, got {threshold!r}")


def _check_choice(value: str, prefix: str = "shape: expected", choices: tuple[str, ...] = MASK_SHAPES) -> None:
    if value not in choices:
        raise ValueError(f"{prefix} one of {choices}, got {value!r}")


def _hwc_float(t: torch.Tensor) -> np.ndarray:
    """A cached (C, H, W) uint8 or float32 tensor as an (H, W, C) float32 array in [0, 1]."""
    array = t.numpy().transpose(1, 2, 0).astype(np.float32)
    return array / np.float32(255.0) if t.dtype == torch.uint8 else array


def estimate_occlusion_mask(occluded: np.ndarray, original: np.ndarray, *, threshold: float = _ESTIMATE_THRESHOLD,
                            shape: str = "box", fill: float | None = 0.0, fill_tolerance: float = 0.2,
                            open_size: int = 3, min_area: int = 16, close_size: int = 5) -> np.ndarray:
    """Estimate which pixels of ``occluded`` were blanked out, from the pair.

    Rule (tuned on the JPEG pairs of ``../shared/data/bedroom/train``, one black square each):

    1. candidates: ``max_c |occluded - original| > threshold``;
    2. if ``fill`` is not None, keep only candidates that show the fill colour,
       ``max_c |occluded - fill| <= fill_tolerance`` (drops the JPEG ringing around the hole);
    3. binary opening with an ``open_size`` square (drops JPEG speckle), then drop connected
       components smaller than ``min_area`` pixels (:func:`drop_small_regions`);
    4. :func:`regions_to_mask`: ``shape="box"``, the filled bounding box of what is left (exact for one
       rectangular hole, even where the original is itself dark inside it); ``shape="free"``, for
       free-form or several holes (pixels where the original had the fill colour may be missed).

    Args:
        occluded: the occluded image, float in [0, 1], shape (H, W, C) or (H, W).
        original: the original image, same shape.
        threshold: smallest per-pixel difference (max over channels) counted as changed.
        shape: ``"box"`` or ``"free"`` (see above).
        fill: the colour of occluded pixels (0 = black), or None to skip step 2.
        fill_tolerance: largest distance from ``fill`` (max over channels) in step 2.
        open_size: side of the opening square in step 3 (1 = none).
        min_area: smallest component kept in step 3, in pixels.
        close_size: side of the closing square for ``shape="free"`` (1 = none).

    Returns:
        bool array (H, W), True = missing pixel.
    """
    _check_choice(shape)
    occ, ref = _pair(occluded, original)
    if occ.ndim == 2:
        occ, ref = occ[..., None], ref[..., None]
    mask = np.abs(occ - ref).max(axis=-1) > threshold
    if fill is not None:
        mask &= np.abs(occ - np.float32(fill)).max(axis=-1) <= fill_tolerance
    regions = drop_small_regions(mask, open_size=open_size, min_area=min_area)
    return regions_to_mask(regions, mask, shape=shape, close_size=close_size)


def channel_sum_mask(occluded: np.ndarray, original: np.ndarray, *,
                     threshold: float = CHANNEL_SUM_THRESHOLD) -> np.ndarray:
    """The gated PixelRNN seed's mask: ``sum_c |original - occluded| > threshold``, nothing more.

    On JPEG pairs it also marks compression noise and ringing around the hole, and misses hole pixels
    where the original was itself black; :func:`estimate_occlusion_mask` cleans both up.

    Args:
        occluded: the occluded image, float in [0, 1], shape (H, W, C) or (H, W).
        original: the original image, same shape.
        threshold: the smallest channel sum of absolute differences counted as missing (> it).

    Returns:
        bool array (H, W), True = missing pixel.

    Raises:
        ValueError: the shapes differ or are not (H, W, C) / (H, W), or ``threshold`` is not finite >= 0.
    """
    occ, ref = _pair(occluded, original)
    _check_threshold(threshold, "channel_sum_mask")
    difference = np.abs(ref - occ)
    return (difference.sum(axis=-1) if occ.ndim == 3 else difference) > threshold


def drop_small_regions(candidates: np.ndarray, *, open_size: int = 3, min_area: int = 16) -> np.ndarray:
    """Step 3 of :func:`estimate_occlusion_mask` (and :func:`find_hole`): drop speckle from a candidate mask.

    Args:
        candidates: bool array (H, W), True = possibly missing pixel.
        open_size: side of the opening square (1 = none).
        min_area: smallest component kept, in pixels.

    Returns:
        bool array (H, W): the surviving regions.
    """
    from scipy import ndimage  # here: a slow import every `rlenhance` command would pay

    mask = np.asarray(candidates, dtype=bool)
    if open_size > 1:
        mask = ndimage.binary_opening(mask, structure=_square(open_size))
    labels, count = ndimage.label(mask)
    if count:
        keep = _region_areas(labels, count) >= min_area
        keep[0] = False
        mask = keep[labels]
    return mask


def _region_areas(labels: np.ndarray, count: int, band: int = 256) -> np.ndarray:
    """The pixel count of each label 0 .. ``count`` of a label image (H, W), ``band`` rows at a time
    (a bincount of the whole image would make an int64 copy of it)."""
    areas = np.zeros(count + 1, dtype=np.int64)
    for top in range(0, labels.shape[0], band):
        areas += np.bincount(labels[top:top + band].ravel(), minlength=count + 1)
    return areas


def regions_to_mask(regions: np.ndarray, candidates: np.ndarray, *, shape: str = "box",
                    close_size: int = 5) -> np.ndarray:
    """Step 4 of :func:`estimate_occlusion_mask` (and :func:`find_hole`): turn surviving regions into the hole mask.

    ``shape="box"``: the filled bounding box of ``regions``. ``shape="free"``: the regions regain
    their thin parts (reconstruction inside ``candidates``), then binary closing with a
    ``close_size`` square (edge-padded: holes touching the border are not eroded) and hole filling.

    Args:
        regions: bool array (H, W), e.g. from :func:`drop_small_regions`.
        candidates: bool array (H, W), the candidates the regions came from.
        shape: ``"box"`` or ``"free"``.
        close_size: side of the closing square for ``shape="free"`` (1 = none).

    Returns:
        bool array (H, W), True = missing pixel (all False when ``regions`` is empty).
    """
    _check_choice(shape)
    mask = np.asarray(regions, dtype=bool)
    if not mask.any():
        return mask
    if shape == "box":
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = np.zeros_like(mask)
        box[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
        return box
    from scipy import ndimage  # here: see drop_small_regions

    # the opening only decided which regions survive: restore their thin parts inside the candidates
    mask = ndimage.binary_propagation(mask, structure=_square(3), mask=np.asarray(candidates, dtype=bool))
    if close_size > 1:
        pad = close_size
        mask = ndimage.binary_closing(np.pad(mask, pad, mode="edge"), structure=_square(close_size))[pad:-pad, pad:-pad]
    return ndimage.binary_fill_holes(mask)


#: Rows of an image :func:`find_hole` compares with the fill colour at a time.
_BAND = 256
#: :func:`find_hole`'s box growth (a line's share, loose threshold factor, loose lines a side) and doubt shares.
_GROW, _LOOSE, _LOOSE_LINES = 0.9, 3.0, 2
_EDGE_DOUBT = _RIVAL_DOUBT = 0.5


@dataclass(frozen=True)
class HoleEstimate:
    """What :func:`find_hole` found.

    Attributes:
        mask: bool array (H, W), True = missing pixel (all False when nothing looks like a hole).
        doubt: why the finder is unsure of it (a sentence), or None when it is sure.
    """

    mask: np.ndarray
    doubt: str | None


def find_hole(occluded: np.ndarray, *, threshold: float = HOLE_THRESHOLD, fill: float = 0.0, shape: str = "box",
              open_size: int = 7, min_area: int = 16, close_size: int = 5) -> HoleEstimate:
    """Estimate the hole of an occluded image that comes without a mask file, and say when unsure.

    The pixels within ``threshold`` of the fill colour (max over channels of ``|occluded - fill|``) are
    the candidates, cleaned of speckle by :func:`drop_small_regions`. ``shape="box"`` (one rectangular
    hole, as in the bedroom data): the largest square inside the candidates, grown a line at a time
    while at least 90% of the next line is a candidate, and over at most two lines a side within
    ``3 * threshold`` of the fill (JPEG brightens the hole's edges), so a dark part of the photo that
    touches the hole is left out. ``shape="free"`` keeps every region (:func:`regions_to_mask`).

    The finder is unsure (``doubt``) when nothing looks like a hole, when half a line just outside the
    box is as dark as the hole, or when another region holds a square at least half the box's shorter
    side. Prefer mask files, or :func:`estimate_occlusion_mask` when the original is at hand.

    Args:
        occluded: the occluded image, float (H, W, C) or (H, W), in [0, 1], or its uint8 / uint16
            samples (scaled by their range, :func:`rlenhance.io.as_unit_float`, a band at a time).
        threshold: largest distance from ``fill`` (max over channels) of a hole pixel.
        fill: the colour of the hole (0 = black).
        shape: ``"box"`` or ``"free"``.
        open_size: side of the opening square that drops speckle (1 = none).
        min_area: smallest region kept, in pixels.
        close_size: side of the closing square for ``shape="free"``.

    Raises:
        ImageError: ``occluded`` is not a float or uint8 / uint16 array (H, W) or (H, W, C).
        ValueError: ``threshold`` is not a finite number >= 0, or ``shape`` is unknown.
    """
    if not isinstance(occluded, np.ndarray) or occluded.ndim not in (2, 3) or occluded.size == 0 \
            or not (np.issubdtype(occluded.dtype, np.floating) or occluded.dtype in (np.uint8, np.uint16)):
        raise ImageError(f"hole_mask: occluded must be a float or uint8 / uint16 array (H, W, C) or (H, W); got "
                         f"{getattr(occluded, 'shape', type(occluded).__name__)} {getattr(occluded, 'dtype', '')}")
    _check_threshold(threshold, "hole_mask")
    _check_choice(shape, "hole_mask: shape must be")
    image = occluded if occluded.ndim == 3 else occluded[..., None]
    candidates, loose = np.empty(image.shape[:2], dtype=bool), np.empty(image.shape[:2], dtype=bool)
    for top in range(0, image.shape[0], _BAND):  # a band of rows at a time: no float copy of a large photo
        band = image[top:top + _BAND]
        band = band.astype(np.float32, copy=False) if np.issubdtype(band.dtype, np.floating) else as_unit_float(band)
        distance = np.abs(band - np.float32(fill)).max(axis=-1)
        candidates[top:top + _BAND] = distance <= threshold
        loose[top:top + _BAND] = distance <= _LOOSE * threshold
    regions = drop_small_regions(candidates, open_size=open_size, min_area=min_area)
    if not regions.any():
        return HoleEstimate(regions, "no region of the fill colour was found, so nothing is filled")
    if shape == "free":
        return HoleEstimate(regions_to_mask(regions, candidates, shape=shape, close_size=close_size), None)
    return _box_hole(regions, candidates, loose)


def _box_hole(regions: np.ndarray, candidates: np.ndarray, loose: np.ndarray) -> HoleEstimate:
    """:func:`find_hole`'s ``shape="box"``: the largest square inside ``regions``, grown over lines of
    ``candidates``, and over at most :data:`_LOOSE_LINES` lines of ``loose`` on each side."""
    from scipy import ndimage  # here: see drop_small_regions

    squares = ndimage.distance_transform_cdt(np.pad(regions, 1), metric="chessboard")[1:-1, 1:-1]
    y, x = np.unravel_index(int(squares.argmax()), squares.shape)
    half = int(squares[y, x]) - 1
    del squares
    height, width = regions.shape
    box = [y - half, y + half + 1, x - half, x + half + 1]  # top, bottom, left, right (exclusive ends)

    def outside(pixels: np.ndarray) -> list[float]:
        """The share of ``pixels`` on the line just outside each side of the box (top, bottom, left, right)."""
        top, bottom, left, right = box
        return [pixels[top - 1, left:right].mean() if top > 0 else 0.0,
                pixels[bottom, left:right].mean() if bottom < height else 0.0,
                pixels[top:bottom, left - 1].mean() if left > 0 else 0.0,
                pixels[top:bottom, right].mean() if right < width else 0.0]

    loose_lines = [0, 0, 0, 0]
    while True:
        strict, shares = outside(candidates), outside(loose)
        growing = [share if strict[side] >= _GROW or loose_lines[side] < _LOOSE_LINES else 0.0
                   for side, share in enumerate(shares)]
        side = int(np.argmax(growing))
        if growing[side] < _GROW:
            break
        loose_lines[side] += strict[side] < _GROW
        box[side] += 1 if side % 2 else -1
    top, bottom, left, right = box
    mask = np.zeros_like(regions)
    mask[top:bottom, left:right] = True
    doubts = []
    if max(shares) >= _EDGE_DOUBT:
        doubts.append("a dark part of the photo runs along the hole's edge, so where the hole ends is a guess")
    labels, _ = ndimage.label(regions)
    others = regions & (labels != labels[y, x])
    del labels
    if others.any():
        rival = 2 * int(ndimage.distance_transform_cdt(np.pad(others, 1), metric="chessboard").max()) - 1
        if rival >= _RIVAL_DOUBT * min(bottom - top, right - left):
            doubts.append("another dark region is at least half its size, so which one is the hole is a guess")
    return HoleEstimate(mask, "; ".join(doubts) or None)


def hole_mask(occluded: np.ndarray, *, threshold: float = HOLE_THRESHOLD, fill: float = 0.0, shape: str = "box",
              open_size: int = 7, min_area: int = 16, close_size: int = 5) -> np.ndarray:
    """The mask of :func:`find_hole` (same arguments), without its doubt: bool array (H, W), True = missing pixel."""
    return find_hole(occluded, threshold=threshold, fill=fill, shape=shape, open_size=open_size,
                     min_area=min_area, close_size=close_size).mask


class OccludedPairs(ImageDataset):
    """Occluded / original pairs with the mask of missing pixels.

    Items: ``"occluded"`` and ``"original"``, float32 (C, H, W) in [0, 1] (RGB, or C = 1 with
    ``gray=True``); ``"mask"``, float32 (1, H, W) in {0, 1}, 1 = missing pixel; ``"name"``,
    the original's file name.

    Args:
        root: folder with ``occluded_images/occluded_NAME`` and ``original_images/NAME``.
        mask_rule: how a mask is derived from the pair without ``mask_dir`` (:data:`MASK_RULES`):
            ``"estimate"`` (:func:`estimate_occlusion_mask`) or ``"channel-sum"`` (:func:`channel_sum_mask`).
        threshold: the rule's change threshold; None: its default (0.1 for ``"estimate"``, 0.03 for ``"channel-sum"``).
        mask_shape: ``"box"`` (one rectangular hole per image) or ``"free"`` (free-form holes), see
            :func:`estimate_occlusion_mask` (``"estimate"`` only).
        mask_dir: folder of mask files ``NAME`` (same stem, any image extension; white = missing), read
            instead of estimating the masks.
        split, val_fraction, tune_fraction, seed: a deterministic split as in :class:`~rlenhance.data.PairedImages`.
        gray, cache, max_pixels: as in :class:`~rlenhance.data.PairedImages`.
        group: scene of a name for the split; None (default) = every image its own scene
            (bedroom names ``bed_K`` are distinct photos).

    Raises:
        DatasetError: missing or empty folders, occluded files without an original (or the other way
            round), missing mask files, size mismatches or unreadable files (the message names the files).
    """

    #: Mask files are read as one channel whatever ``gray`` says.
    _gray_keys = ("mask",)

    def __init__(self, root: str | os.PathLike[str], *, mask_rule: str = "estimate", threshold: float | None = None,
                 mask_shape: str = "box", mask_dir: str | os.PathLike[str] | None = None, split: str | None = None,
                 val_fraction: float = 0.1, tune_fraction: float = TUNE_FRACTION, seed: int = 0, gray: bool = False,
                 cache: bool = True, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 group: Callable[[str], str] | None = None):
        super().__init__(gray=gray, cache=cache, max_pixels=max_pixels)
        check_split(split)
        _check_choice(mask_shape, "mask_shape: expected")
        _check_choice(mask_rule, "mask_rule: expected", MASK_RULES)
        if threshold is None:
            threshold = _ESTIMATE_THRESHOLD if mask_rule == "estimate" else CHANNEL_SUM_THRESHOLD
        self.root, self.split = Path(root), split
        self.mask_rule, self.threshold, self.mask_shape = mask_rule, float(threshold), mask_shape
        self.mask_dir = Path(mask_dir) if mask_dir is not None else None
        what = f"OccludedPairs({self.root})"
        occ_dir, orig_dir = self.root / "occluded_images", self.root / "original_images"
        missing = [f"{d.name}/" for d in (occ_dir, orig_dir) if not d.is_dir()]
        if missing:
            raise DatasetError(f"{what}: {' and '.join(missing)} missing; accepted layout: ROOT/occluded_images/"
                               f"{OCCLUDED_PREFIX}NAME and ROOT/original_images/NAME")
        originals = {p.name: p for p in image_files(orig_dir, what=what)}
        occluded: dict[str, Path] = {}
        unprefixed = []
        for p in image_files(occ_dir, what=what):
            if p.name.startswith(OCCLUDED_PREFIX):
                occluded[p.name[len(OCCLUDED_PREFIX):]] = p
            else:
                unprefixed.append(p.name)
        error = partner_error(
            what,
            (occ_dir, sorted(unprefixed + [OCCLUDED_PREFIX + n for n in set(occluded) - set(originals)])),
            (orig_dir, sorted(set(originals) - set(occluded))),
        )
        if error is not None:
            raise DatasetError(f"{error} (occluded files are named {OCCLUDED_PREFIX}NAME)")
        names = sorted(originals)
        keep = resolve_split(names, split, val_fraction=val_fraction, tune_fraction=tune_fraction,
                                 seed=seed, group=group, what=what)
        names = [n for n in names if n in keep]
        masks = self._mask_files(names, what) if self.mask_dir is not None else {}
        self._records = [
            Record(n, {"occluded": occluded[n], "original": originals[n], **({"mask": masks[n]} if masks else {})})
            for n in names
        ]
        self._fill_cache()

    def _mask_files(self, names: list[str], what: str) -> dict[str, Path]:
        by_stem: dict[str, list[Path]] = {}
        for p in image_files(self.mask_dir, what=f"{what} mask_dir"):
            by_stem.setdefault(p.stem, []).append(p)
        absent = [n for n in names if Path(n).stem not in by_stem]
        ambiguous = [n for n in names if len(by_stem.get(Path(n).stem, ())) > 1]
        if absent or ambiguous:
            parts = []
            if absent:
                parts.append(f"{len(absent)} image(s) have no mask (same stem, any extension): {', '.join(absent)}")
            if ambiguous:
                parts.append("several masks share the stem of: " + ", ".join(
                    f"{n} ({', '.join(p.name for p in by_stem[Path(n).stem])})" for n in ambiguous))
            raise DatasetError(f"{what}: mask_dir {self.mask_dir}: " + "; ".join(parts))
        return {n: by_stem[Path(n).stem][0] for n in names}

    def _finish(self, record: Record, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if "mask" in tensors:
            tensors["mask"] = to_float(tensors["mask"]) > MASK_THRESHOLD  # a mask file pixel: white = missing
        else:
            occ, orig = _hwc_float(tensors["occluded"]), _hwc_float(tensors["original"])
            if self.mask_rule == "channel-sum":
                mask = channel_sum_mask(occ, orig, threshold=self.threshold)
            else:
                mask = estimate_occlusion_mask(occ, orig, threshold=self.threshold, shape=self.mask_shape)
            tensors["mask"] = torch.from_numpy(mask)[None]
        return tensors
