"""Deterministic train/validation splits, seeded crops and flips, and batch sampling.

Every random choice comes from a ``numpy.random.Generator`` passed by the caller, so the same seed gives the
same batch on every machine. Items are dicts of torch tensors of shape ``(C, H, W)`` (float32 in [0, 1], or the
uint8/bool tensors a dataset caches, :meth:`rlenhance.data.base.ImageDataset.raw_item`) plus a ``"name"``.

Example:
    >>> import numpy as np
    >>> from rlenhance.data import BuiltinImages, sample_batch
    >>> batch = sample_batch(BuiltinImages(), 4, crop=64, rng=np.random.default_rng(0))
    >>> batch["high"].shape
    torch.Size([4, 3, 64, 64])
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import PurePath
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from rlenhance.data.rows import RowStream
from rlenhance.errors import DatasetError

__all__ = ["ResizedImages", "Split", "TUNE_FRACTION", "Windows", "fit_longer_side", "working_square",
           "resize_image", "scene_key", "split_names", "random_crop", "random_flip", "row_windows", "sample_batch",
           "to_float"]

#: Hash digest bytes used for the split position of a scene (64 bits -> uniform in [0, 1)).
_HASH_BYTES = 8
#: A trailing ``_<digits>`` frame index, as in SICE's ``NNN_k.jpg``.
_FRAME_SUFFIX = re.compile(r"^(?P<scene>.*\d.*)_\d+$")


def scene_key(name: str) -> str:
    """The scene a file belongs to: its stem without a trailing ``_<digits>`` frame index.

    SICE's frames ``NNN_k.jpg`` of one scene share one reference, so they must land on one side of a split. The
    suffix is only removed when the rest of the stem still holds a digit, so camera names such as
    ``IMG_0001.jpg`` or ``bed_12.jpg`` stay distinct scenes.

    Args:
        name: a file name or relative path, e.g. ``"011_2.jpg"`` or ``"our485/2.png"``.

    Returns:
        The scene key, e.g. ``"011"`` for ``"011_2.jpg"``; ``"IMG_0001"`` for ``"IMG_0001.jpg"``.
    """
    path = PurePath(name)
    match = _FRAME_SUFFIX.match(path.stem)
    scene = match.group("scene") if match else path.stem
    parent = path.parent.as_posix()
    return scene if parent in ("", ".") else f"{parent}/{scene}"


def _hash_position(key: str, seed: int) -> float:
    """A position in [0, 1) from SHA-256 of ``seed`` and ``key``: stable across runs and machines."""
    digest = hashlib.sha256(f"{int(seed)}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:_HASH_BYTES], "big") / 2.0 ** (8 * _HASH_BYTES)


TUNE_FRACTION = 0.1
"""Default fraction of the scenes held out of training as the tuning split (checkpoint picks, constants)."""


class Split(NamedTuple):
    """The three disjoint parts of a split: fit on ``train``, choose on ``tune``, report on ``val``."""

    train: list[str]
    tune: list[str]
    val: list[str]


def split_names(names: Sequence[str], *, val_fraction: float = 0.1, tune_fraction: float = TUNE_FRACTION, seed: int = 0,
                group: Callable[[str], str] | None = scene_key) -> Split:
    """Split names into train, tune and validation lists, deterministically and by scene.

    Names are grouped by ``group(name)`` (by default :func:`scene_key`). Each group gets a position from SHA-256
    of ``seed`` and its key; in order of position, the first ``max(1, round(val_fraction * n_groups))`` go to
    validation and the next ``max(1, round(tune_fraction * n_groups))`` to tuning (none when ``tune_fraction``
    is 0, or when too few groups are left: training keeps at least one). Validation depends only on the set of
    names, ``val_fraction`` and ``seed``, never on ``tune_fraction``; ``val_fraction`` 0 leaves it empty.

    Args:
        names: the names to split (file names as the datasets report them).
        val_fraction: fraction of the groups (scenes) sent to validation, in [0, 1).
        tune_fraction: fraction of the groups held out of training for tuning, in [0, 1).
        seed: mixed into the hash; a different seed gives a different split.
        group: maps a name to its group key; None puts every name in its own group.

    Returns:
        ``Split(train, tune, val)``, each in the order of ``names``; disjoint; train non-empty.

    Raises:
        ValueError: a fraction is outside [0, 1).
        DatasetError: fewer than two groups with ``val_fraction`` > 0, so one side would be empty.
    """
    for what, fraction in (("val_fraction", val_fraction), ("tune_fraction", tune_fraction)):
        if not 0.0 <= float(fraction) < 1.0:
            raise ValueError(f"{what}: expected a float in [0, 1), got {fraction!r}")
    keys = {name: group(name) if group is not None else name for name in names}
    unique = sorted(set(keys.values()))
    if len(unique) < 2 and val_fraction > 0:
        shown = ", ".join(list(names)[:5])
        raise DatasetError(f"cannot split {len(names)} image(s) into train and val: they form {len(unique)} scene "
                           f"group(s) ({shown}{', ...' if len(names) > 5 else ''}); a split needs at least 2 groups "
                           "(use split=None, or a grouping that separates the files)")

    def count(fraction: float, room: int) -> int:
        return min(max(1, round(float(fraction) * len(unique))), room) if fraction > 0 else 0

    n_val = count(val_fraction, len(unique) - 1)
    n_tune = count(tune_fraction, len(unique) - n_val - 1)
    ordered = sorted(unique, key=lambda key: (_hash_position(key, seed), key))
    part = {key: "val" if i < n_val else "tune" if i < n_val + n_tune else "train" for i, key in enumerate(ordered)}
    return Split(*([name for name in names if part[keys[name]] == side] for side in ("train", "tune", "val")))


def _tensor_keys(item: dict[str, Any]) -> list[str]:
    return [key for key, value in item.items() if torch.is_tensor(value)]


def _common_grid(item: dict[str, Any]) -> tuple[int, int, dict[str, int]]:
    """The (H, W) of an item's smallest tensor and each tensor's integer factor k over it (super-resolution
    targets); DatasetError when a tensor is not such a multiple."""
    sizes = {key: tuple(item[key].shape[-2:]) for key in _tensor_keys(item)}
    if not sizes:
        raise DatasetError(f"item {item.get('name', '?')!r}: holds no image tensors (keys {list(item)})")
    height, width = min(sizes.values())
    factors = {key: h // height if height else 1 for key, (h, w) in sizes.items()}
    if any((h, w) != (height * factors[key], width * factors[key]) for key, (h, w) in sizes.items()):
        detail = ", ".join(f"{key} {h}x{w}" for key, (h, w) in sizes.items())
        raise DatasetError(f"item {item.get('name', '?')!r}: tensors differ in size ({detail}); expected one HxW, "
                           "or integer multiples k*H x k*W of the smallest (super-resolution pairs)")
    return height, width, factors


def _crop_size(size: int | Sequence[int]) -> tuple[int, int]:
    hw = (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"crop: expected a positive int or a (height, width) pair, got {size!r}")
    return hw  # type: ignore[return-value]


def random_crop(item: dict[str, Any], size: int | Sequence[int], rng: np.random.Generator) -> dict[str, Any]:
    """Crop every tensor of an item at one random window: ``top = rng.integers(0, H - h + 1)``, then
    ``left = rng.integers(0, W - w + 1)``.

    Args:
        item: dict of tensors of shape (..., H, W) and other values (such as ``"name"``), copied unchanged.
            A tensor of shape (..., k H, k W) for an integer k (a super-resolution target) is cropped at the
            same window scaled by k: (..., k h, k w).
        size: crop size in the smallest tensor's pixels, an int (square) or ``(h, w)``.
        rng: the source of the window position.

    Returns:
        A new dict; tensors are views of shape (..., h, w) ((..., k h, k w) for the k-times ones).

    Raises:
        DatasetError: the crop is larger than the image (the message names both sizes), or a tensor's size is
            not an integer multiple of the smallest one's.
    """
    h, w = _crop_size(size)
    height, width, factors = _common_grid(item)
    _check_fits(item.get("name", "?"), (h, w), (height, width))
    return _cut(item, factors, int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w)


def _check_fits(name: str, crop: tuple[int, int], size: tuple[int, int]) -> None:
    """Refuse a crop larger than an item's image."""
    if crop[0] > size[0] or crop[1] > size[1]:
        raise DatasetError(f"item {name!r}: crop {crop[0]}x{crop[1]} is larger than the image {size[0]}x{size[1]}; "
                           "use a crop no larger than the smallest image")


def _cut(item: dict[str, Any], factors: dict[str, int], top: int, left: int, h: int, w: int) -> dict[str, Any]:
    """Every tensor of an item (the keys of ``factors``, from :func:`_common_grid`) cut, as views, at the window
    (top, left, h, w) of its smallest grid scaled by its factor k; other values copied."""
    cut = dict(item)
    for key, k in factors.items():
        cut[key] = item[key][..., top * k: (top + h) * k, left * k: (left + w) * k]
    return cut


def random_flip(item: dict[str, Any], rng: np.random.Generator, *, vertical: bool = True) -> dict[str, Any]:
    """Flip every tensor of an item the same way: horizontally and/or vertically, each with p = 0.5.

    Draws ``rng.random(2)`` (both coins, whatever ``vertical``): ``[0] < 0.5`` flips left-right (last axis),
    ``[1] < 0.5`` up-down (second to last axis) unless ``vertical`` is False.

    Args:
        item: dict of tensors of shape (..., H, W) and other values (copied unchanged).
        rng: the source of the two coin flips.
        vertical: allow the up-down flip; False for scenes with an up (rooms).

    Returns:
        A new dict with flipped tensors.
    """
    coins = rng.random(2)
    return _flipped(item, bool(coins[0] < 0.5), vertical and bool(coins[1] < 0.5))


def _flipped(item: dict[str, Any], left_right: bool, up_down: bool) -> dict[str, Any]:
    """Every tensor of an item flipped left-right and / or up-down; other values copied."""
    dims = [d for d, flip in ((-1, left_right), (-2, up_down)) if flip]
    return {key: (torch.flip(value, dims) if dims and torch.is_tensor(value) else value) for key, value in item.items()}


def fit_longer_side(image: torch.Tensor, max_side: int) -> torch.Tensor:
    """Area-downscale a (..., C, H, W) tensor so its longer side is at most ``max_side``: the new size is
    ``round(side * max_side / longer side)`` (at least 1); smaller images are returned unchanged."""
    if max_side < 1:
        raise ValueError(f"max_side: expected an int >= 1, got {max_side!r}")
    height, width = image.shape[-2:]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    flat = image.reshape(-1, *image.shape[-3:])
    return F.interpolate(flat, size=size, mode="area").reshape(*image.shape[:-2], *size)


def working_square(image: torch.Tensor, side: int) -> torch.Tensor:
    """A low-light policy's working image: a float (..., C, H, W) tensor area-resized to ``side`` x ``side``
    whatever its aspect ratio (adaptive average pooling; along a side shorter than ``side``, pixels repeat), as
    policies are trained on square crops at one scale."""
    if side < 1:
        raise ValueError(f"side: expected an int >= 1, got {side!r}")
    if tuple(image.shape[-2:]) == (side, side):
        return image
    flat = image.reshape(-1, *image.shape[-3:])
    return F.adaptive_avg_pool2d(flat, (side, side)).reshape(*image.shape[:-2], side, side)


def _checked_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in size):
        raise ValueError(f"size: expected two integers >= 1 (h, w), got {size!r}")
    return int(size[0]), int(size[1])


def resize_image(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize a float (..., C, H, W) tensor to ``size = (h, w)``, up or down, ignoring the aspect ratio.

    Bilinear with antialiasing, as PIL's (torchvision's ``Resize`` of the completion seeds): each output pixel
    is a convex blend of input pixels, so values stay in the input's range. For a mask, see :class:`ResizedImages`.

    Raises:
        ValueError: ``size`` is not two integers >= 1.
    """
    size = _checked_size(size)
    if tuple(image.shape[-2:]) == size:
        return image
    flat = image.reshape(-1, *image.shape[-3:])
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out.reshape(*image.shape[:-2], *size)


class ResizedImages:
    """A dataset whose images are those of ``dataset`` resized: area-downscaled by :func:`fit_longer_side`
    (``max_side``), or brought to one size by :func:`resize_image` (``size``).

    Items are the wrapped dataset's dicts with every (C, H, W) tensor as float32 in [0, 1] at the new size (all
    tensors of an item share one size, so pairs stay aligned). A mask (the tensors of ``mask_keys``,
    1 = missing) goes through the images' filter and every pixel it reaches (value > 0) is missing, since that
    pixel of the resized occluded image blends in the hole's fill colour.

    Args:
        dataset: anything with ``__len__`` / ``__getitem__`` returning dicts of (C, H, W) tensors.
        max_side: the longer side of every image after resizing (smaller images are kept).
        size: ``(h, w)``: every image is resized to exactly this, up or down.
        mask_keys: the keys that hold masks.
        cache: keep each item once resized (in memory for as long as the dataset lives).

    Raises:
        ValueError: not exactly one of ``max_side`` and ``size``, or either out of range.
    """

    def __init__(self, dataset: Any, max_side: int | None = None, *, size: Sequence[int] | None = None,
                 mask_keys: Sequence[str] = ("mask",), cache: bool = False):
        if (max_side is None) == (size is None):
            raise ValueError(f"ResizedImages: give max_side or size (one of them), got max_side={max_side!r}, "
                             f"size={size!r}")
        if max_side is not None and (not isinstance(max_side, (int, np.integer)) or max_side < 1):
            raise ValueError(f"max_side: expected an int >= 1, got {max_side!r}")
        self.dataset = dataset
        self.max_side = int(max_side) if max_side is not None else None
        self.size = _checked_size(size) if size is not None else None
        self.mask_keys = tuple(mask_keys)
        #: whether each item is kept once resized (an :class:`ImageBank` is made only of such a data set)
        self.cache = bool(cache)
        self._cached: dict[int, dict[str, Any]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.dataset)

    def raw_item(self, index: int) -> dict[str, Any]:
        """Item ``index`` resized, float32 (C, H, W) tensors; with ``cache`` the cached tensors themselves
        (not to be modified: :func:`sample_batch` crops, then copies them)."""
        if self._cached is not None and index in self._cached:
            return dict(self._cached[index])
        item = dict(self.dataset[index])
        for key in _tensor_keys(item):
            value = to_float(item[key])
            value = resize_image(value, self.size) if self.size is not None else fit_longer_side(value, self.max_side)
            item[key] = (value > 0).to(value.dtype) if key in self.mask_keys else value
        if self._cached is not None:
            self._cached[index] = dict(item)
        return item

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.raw_item(index)
        if self._cached is None:  # resized just now: the caller's own tensors
            return item
        return {key: (to_float(value) if torch.is_tensor(value) else value) for key, value in item.items()}


def to_float(value: torch.Tensor) -> torch.Tensor:
    """A cached tensor as a new float32 tensor in [0, 1] (uint8 divided by 255, bool {0, 1}): always a copy,
    so callers may modify it without touching a dataset's cache."""
    if value.dtype == torch.uint8:
        return value.to(torch.float32).div_(255.0)
    return value.to(torch.float32, copy=True)


def sample_batch(dataset: Any, batch_size: int, *, crop: int | Sequence[int] | None,
                 rng: np.random.Generator | Sequence[np.random.Generator] | RowStream, flip: bool = True,
                 vertical_flip: bool = True, spread: bool = False) -> dict[str, Any]:
    """Draw a batch of random items, cropped and flipped, stacked into (B, C, h, w) tensors.

    The draws are, in order: ``rng.integers(0, len(dataset), size=batch_size)`` (with replacement; with
    ``spread``, the items of ``rng.permutation(len(dataset))`` in turn, so every item is used
    ``batch_size // len(dataset)`` or one more times), then for each item its crop window (:func:`random_crop`)
    and flips (:func:`random_flip`). With one generator per row, row i draws ``rng[i].integers(0, len(dataset))``,
    its window and flips from ``rng[i]`` alone, so a row is the same whatever the batch size and the other rows
    (data-parallel ranks draw only their rows). With a :class:`~rlenhance.data.rows.RowStream` of the rows, the
    same holds and each draw is made for all the rows at once (:func:`row_windows`: the items, then four numbers
    a row); an :class:`ImageBank` of the data set gives the same batch without a loop over the rows. Datasets of
    this package are cropped before conversion to float; any other works through ``dataset[i]``.

    Args:
        dataset: ``__len__`` and ``__getitem__`` returning dicts of (C, H, W) tensors plus ``"name"``.
        batch_size: number of items B >= 1.
        crop: crop size (int or ``(h, w)``, in the pixels of an item's smallest tensor, as in
            :func:`random_crop`), or None to keep full images (each key's images must then share one size).
        rng: one generator for the batch, a sequence of ``batch_size`` generators (one per row), or a row
            stream of ``batch_size`` rows.
        flip: apply random horizontal/vertical flips.
        vertical_flip: with ``flip``, allow the up-down flip too (``random_flip``'s ``vertical``).
        spread: draw the items evenly (a fixed validation set) instead of with replacement; needs one generator.

    Returns:
        Dict of float32 tensors (B, C, h, w) in [0, 1] (one per tensor key of the items) and ``"names"``: list
        of the B item names.

    Raises:
        ValueError: ``batch_size`` below 1, or generators per row (or a row stream) that are not ``batch_size``
            of them or come with ``spread``.
        DatasetError: empty dataset, crop larger than an image, or ``crop=None`` with images of different sizes.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    n = len(dataset)
    if n == 0:
        raise DatasetError("sample_batch: the dataset is empty")
    raw = getattr(dataset, "raw_item", None)
    load = raw if raw is not None else dataset.__getitem__
    if isinstance(rng, RowStream) and not spread and len(rng) == int(batch_size):
        items = [load(int(index)) for index in rng.integers(0, n, size=len(rng))]
        grids = [_common_grid(item) for item in items]
        windows = row_windows(rng, np.array([grid[:2] for grid in grids]), crop, flip=flip,
                              vertical_flip=vertical_flip, names=[item.get("name", "?") for item in items])
        h, w = windows.size
        items = [_flipped(_cut(item, grid[2], int(top), int(left), h, w), bool(lr), bool(ud))
                 for item, grid, top, left, lr, ud in zip(items, grids, windows.top, windows.left,
                                                          windows.left_right, windows.up_down)]
        return _stacked(items, crop)
    if isinstance(rng, np.random.Generator):
        rngs = [rng] * int(batch_size)
        indices = (rng.permutation(n)[np.arange(int(batch_size)) % n] if spread
                   else rng.integers(0, n, size=int(batch_size)))
    else:
        rngs = list(rng) if isinstance(rng, Sequence) else []
        if spread or len(rngs) != int(batch_size) or not all(isinstance(r, np.random.Generator) for r in rngs):
            got = f"a {type(rng).__name__}" + (f" of {len(rng)}" if isinstance(rng, (Sequence, RowStream)) else "")
            raise ValueError(f"rng: expected a numpy Generator, or a sequence of {batch_size} of them (one per row, "
                             f"spread=False), or a RowStream of {batch_size} rows (spread=False); got {got}"
                             f"{' with spread=True' if spread else ''}")
        indices = [row.integers(0, n) for row in rngs]
    items = []
    for index, item_rng in zip(indices, rngs):
        item = load(int(index))
        if crop is not None:
            item = random_crop(item, crop, item_rng)
        if flip:
            item = random_flip(item, item_rng, vertical=vertical_flip)
        items.append(item)
    return _stacked(items, crop)


def _one_size_error(sizes: Iterable[tuple[str, Sequence[int]]]) -> DatasetError:
    detail = ", ".join(f"{name} {h}x{w}" for name, (h, w) in sorted(sizes))
    return DatasetError(f"sample_batch: crop=None needs images of one size, got {detail}; give crop=(h, w)")


def _stacked(items: list[dict[str, Any]], crop: int | Sequence[int] | None) -> dict[str, Any]:
    """The cut items' tensors stacked per key as float32 (B, C, h, w), and their ``"names"``."""
    keys = _tensor_keys(items[0])
    if crop is None:  # stacked per key: each key's images must share one size
        sizes = {(item.get("name", "?"), tuple(item[key].shape[-2:])) for item in items for key in keys}
        if any(len({tuple(item[key].shape[-2:]) for item in items}) > 1 for key in keys):
            raise _one_size_error(sizes)
    batch: dict[str, Any] = {key: torch.stack([to_float(item[key]) for item in items]) for key in keys}
    batch["names"] = [item.get("name", "") for item in items]
    return batch


class Windows(NamedTuple):
    """Where each row of a batch cuts its item (:func:`row_windows`): the window's corner ``top``, ``left``
    (int64 (B,)) in the item's smallest grid, the ``size`` (h, w) of every window, and the flips ``left_right``,
    ``up_down`` (bool (B,))."""

    top: np.ndarray
    left: np.ndarray
    size: tuple[int, int]
    left_right: np.ndarray
    up_down: np.ndarray


def row_windows(stream: RowStream, sizes: np.ndarray, crop: int | Sequence[int] | None, *, flip: bool = True,
                vertical_flip: bool = True, names: Sequence[str] = ()) -> Windows:
    """The crop windows and flips of a batch's rows whose items (drawn before) are ``sizes``, int (B, 2) (H, W
    of each item's smallest grid): one call of ``stream`` for four numbers a row, ``u``; the window's top is
    ``floor(u0 (H - h + 1))``, its left ``floor(u1 (W - w + 1))``, and with ``flip`` ``u2 < 0.5`` flips it
    left-right, ``u3 < 0.5`` up-down (with ``vertical_flip``). ``crop=None``: the whole items, of one size.

    Raises:
        DatasetError: a crop larger than an item (named from ``names``), or ``crop=None`` with items of several
            sizes.
    """
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
    u = stream.random((len(stream), 4))
    names = list(names) or ["?"] * len(sizes)
    if crop is None:
        if len({tuple(size) for size in sizes.tolist()}) > 1:
            raise _one_size_error(zip(names, sizes.tolist()))
        h, w = (int(v) for v in sizes[0])
        top = left = np.zeros(len(sizes), dtype=np.int64)
    else:
        h, w = _crop_size(crop)
        small = np.flatnonzero((sizes[:, 0] < h) | (sizes[:, 1] < w))
        if small.size:
            _check_fits(names[small[0]], (h, w), tuple(int(v) for v in sizes[small[0]]))
        top = np.floor(u[:, 0] * (sizes[:, 0] - h + 1)).astype(np.int64)
        left = np.floor(u[:, 1] * (sizes[:, 1] - w + 1)).astype(np.int64)
    return Windows(top, left, (h, w), flip & (u[:, 2] < 0.5), flip & vertical_flip & (u[:, 3] < 0.5))
