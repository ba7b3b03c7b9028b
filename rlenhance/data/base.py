"""The dataset base class (named items of image files, decoded once and cached) and the folder checks shared by
every layout, each reported in one :class:`~rlenhance.errors.DatasetError` naming all offending files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from rlenhance.data.transforms import split_names, to_float
from rlenhance.errors import DatasetError, ImageError
from rlenhance.io import IMAGE_EXTENSIONS, image_to_tensor, list_images, load_image

__all__ = ["ImageDataset", "Record", "SPLITS", "encode_image"]

#: Accepted values of a dataset's ``split`` argument.
SPLITS = (None, "train", "tune", "val")
#: Largest distance from an integer level (in 1/255 units) for a decoded image to count as 8-bit.
_UINT8_TOLERANCE = 1e-3
_UINT8_MAX = 255.0


@dataclass(frozen=True)
class Record:
    """One dataset item before decoding: its name and the file behind each key."""

    name: str
    files: dict[str, Path]


def check_split(split: str | None) -> None:
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")


def image_files(folder: Path, *, what: str) -> list[Path]:
    """The images of ``folder`` (sorted); DatasetError when it is missing or holds none."""
    if not folder.is_dir():
        raise DatasetError(f"{what}: {folder} does not exist or is not a folder")
    try:
        files = list_images(folder)
    except ImageError as exc:
        raise DatasetError(f"{what}: {exc}") from exc
    if not files:
        raise DatasetError(f"{what}: no images in {folder}; accepted extensions: {', '.join(IMAGE_EXTENSIONS)} "
                           "(case-insensitive)")
    return files


def partner_error(what: str, left: tuple[Path, Sequence[str]],
                  right: tuple[Path, Sequence[str]]) -> DatasetError | None:
    """An error listing the names in each folder that have no partner in the other, or None."""
    parts = [f"{len(names)} file(s) in {folder} have no partner in {other}: {', '.join(names)}"
             for (folder, names), (other, _) in ((left, right), (right, left)) if names]
    if not parts:
        return None
    return DatasetError(f"{what}: unpaired files; {'; '.join(parts)} (every file needs a partner with the same name)")


def resolve_split(names: Sequence[str], split: str | None, *, val_fraction: float, tune_fraction: float, seed: int,
                  group: Callable[[str], str] | None, what: str = "the data") -> set[str]:
    """The names kept for ``split`` ("train", "tune", "val" or None = all) by :func:`split_names`;
    DatasetError when ``split`` is "tune" and no scene is left for it."""
    check_split(split)
    if split is None:
        return set(names)
    parts = split_names(names, val_fraction=val_fraction, tune_fraction=tune_fraction, seed=seed, group=group)
    kept = getattr(parts, split)
    if split == "tune" and not kept:
        raise DatasetError(f"{what}: no scenes left for the tuning split ({len(names)} image(s), tune_fraction "
                           f"{tune_fraction:g}); it needs at least 3 scenes (train, tune and val), or tune_fraction 0")
    return set(kept)


def encode_image(img: np.ndarray) -> torch.Tensor:
    """A decoded image (H, W, C) float32 in [0, 1] as the tensor to cache, (C, H, W): uint8 for 8-bit sources
    (every value a multiple of 1/255: exact and 4x smaller), else float32 (16-bit files, luma of colour files)."""
    scaled = img * np.float32(_UINT8_MAX)
    levels = np.rint(scaled)
    if np.abs(scaled - levels).max(initial=0.0) <= _UINT8_TOLERANCE:
        return torch.from_numpy(np.ascontiguousarray(levels.astype(np.uint8).transpose(2, 0, 1)))
    return image_to_tensor(img)


class ImageDataset(Dataset):
    """Base of the rlenhance datasets: a list of named items, each a dict of image tensors.

    ``dataset[i]`` is a dict of float32 tensors of shape (C, H, W) in [0, 1] (RGB, or C = 1 with ``gray=True``)
    plus ``"name"``: the full images, no randomness (:func:`rlenhance.data.sample_batch` crops and flips).
    ``cache=True`` decodes every image when the dataset is built (every error of the folder reported at once, in
    one :class:`DatasetError`) and keeps it in memory (:func:`encode_image`); ``cache=False`` decodes files on
    every access, and errors surface then.

    Subclasses set ``self._records`` (list of :class:`Record`), call :meth:`_fill_cache`, and may override
    :meth:`_finish` (derive tensors, e.g. a mask) and :meth:`_check_sizes` (super-resolution pairs).
    """

    #: Keys always decoded as one channel (e.g. mask files), whatever ``gray`` says.
    _gray_keys: tuple[str, ...] = ()

    def __init__(self, *, gray: bool, cache: bool, max_pixels: int | None):
        super().__init__()
        self.gray, self.cache, self.max_pixels = bool(gray), bool(cache), max_pixels
        self._records: list[Record] = []
        self._cached: list[dict[str, torch.Tensor]] | None = None

    # -- building -------------------------------------------------------------------------
    def _fill_cache(self) -> None:
        """Decode every record now (``cache=True``); one DatasetError for every bad file."""
        if not self.cache:
            return
        cached, problems = [], []
        for record in self._records:
            try:
                cached.append(self._load(record))
            except DatasetError as exc:
                problems.append(str(exc))
        if problems:
            raise DatasetError(f"{type(self).__name__}: {len(problems)} unusable item(s):\n  " + "\n  ".join(problems))
        self._cached = cached

    def _decode(self, path: Path, *, gray: bool | None = None) -> torch.Tensor:
        try:
            img = load_image(path, max_pixels=self.max_pixels, gray=self.gray if gray is None else gray)
        except ImageError as exc:
            raise DatasetError(f"unreadable file {path}: {exc}") from exc
        return encode_image(img)

    def _load(self, record: Record) -> dict[str, torch.Tensor]:
        """Decode the files of one record and check that they share a size."""
        tensors = {key: self._decode(path, gray=True if key in self._gray_keys else None)
                   for key, path in record.files.items()}
        self._check_sizes(record, tensors)
        return self._finish(record, tensors)

    def _check_sizes(self, record: Record, tensors: dict[str, torch.Tensor]) -> None:
        """Raise DatasetError unless the decoded files of one item share a size (pairs must align)."""
        sizes = {key: tuple(t.shape[-2:]) for key, t in tensors.items()}
        if len(set(sizes.values())) > 1:
            detail = ", ".join(f"{record.files[k]} is {h}x{w}" for k, (h, w) in sizes.items())
            raise DatasetError(f"size mismatch in item {record.name!r}: {detail} (HxW); the files of a pair must match")

    def _finish(self, record: Record, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return tensors

    # -- access ---------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Item names, in index order."""
        return [record.name for record in self._records]

    def __len__(self) -> int:
        return len(self._records)

    def _index(self, index: int) -> int:
        n = len(self._records)
        if not isinstance(index, (int, np.integer)) or not -n <= int(index) < n:
            raise IndexError(f"{type(self).__name__}: index {index!r} out of range for {n} item(s)")
        return int(index) % n

    def raw_item(self, index: int) -> dict[str, Any]:
        """The stored tensors of item ``index`` (uint8, bool or float32, (C, H, W)) plus ``"name"``: no copy with
        ``cache=True``; :func:`rlenhance.data.sample_batch` crops them before :func:`~rlenhance.data.to_float`."""
        i = self._index(index)
        tensors = self._cached[i] if self._cached is not None else self._load(self._records[i])
        return {**tensors, "name": self._records[i].name}

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.raw_item(index)
        return {key: (to_float(value) if torch.is_tensor(value) else value) for key, value in item.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} items, gray={self.gray}, cache={self.cache})"

