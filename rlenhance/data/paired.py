"""Low-light data sets: paired (``low``/``high``, LOL layout) and unpaired (a flat folder).

Layouts read by :class:`PairedImages` (inputs are ``low``, targets ``high``):

(a) ``root/low/NAME`` and ``root/high/NAME`` with matching file names, e.g. ``../shared/data/sice_pairs/train``
    or one LOL subset;
(b) a LOL-v1 parent ``root/our485/{low,high}`` and ``root/eval15/{low,high}`` (``split="train"`` reads
    ``our485``, ``"val"`` reads ``eval15``, None both);
(c) the MRPNet + Generator seed's pair folder: inputs in ``root/train/`` (or ``root/val/``), targets in
    ``root/gt/``; ``train_ID`` pairs with ``gt_ID`` (each folder's name prefix is dropped before matching; files
    without it match by the same name);
(d) the seed's parent ``root/train/{train,gt}`` and ``root/val/{val,gt}``, each a layout (c) folder
    (``split="train"`` reads ``train``, ``"val"`` reads ``val``, None both);
(e) ``root/high/`` alone: well-exposed photos, references without dark captures (items without ``low``: envs
    and test sets darken them synthetically or relight them).

Layouts (a), (c) and (e) are split by scene (:func:`rlenhance.data.split_names`). The seed's targets are 4 times
the inputs' size (super-resolution pairs: ``scale=4``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from rlenhance.data.base import ImageDataset, Record, check_split, image_files, partner_error, resolve_split
from rlenhance.data.transforms import TUNE_FRACTION, scene_key
from rlenhance.errors import DatasetError
from rlenhance.io import DEFAULT_MAX_PIXELS, list_images

__all__ = ["PairedImages", "UnpairedImages", "check_pair"]

#: LOL-v1 subsets read for each split in layout (b).
LOL_SUBSETS = {"train": ("our485",), "tune": ("our485",), "val": ("eval15",), None: ("our485", "eval15")}
#: The seed's targets' folder (c) and its inputs' folders, also the subsets of its parent (d) for each split.
SEED_TARGETS = "gt"
SEED_SUBSETS = {"train": ("train",), "tune": ("train",), "val": ("val",), None: ("train", "val")}

_LAYOUTS_TEXT = (
    "accepted layouts: (a) ROOT/low/ and ROOT/high/ holding files with matching names; "
    "(b) a LOL parent ROOT/our485/ and/or ROOT/eval15/, each holding low/ and high/; "
    "(c) the MRPNet seed's ROOT/train/ (or ROOT/val/) inputs and ROOT/gt/ targets, train_ID pairing with gt_ID; "
    "(d) the seed's parent ROOT/train/ and/or ROOT/val/, each a layout (c) folder (train/train/ + train/gt/); "
    "(e) ROOT/high/ alone: well-exposed photos to darken or relight"
)


def _subfolders(root: Path) -> str:
    found = sorted(p.name + "/" for p in root.iterdir() if p.is_dir())
    return ", ".join(found) if found else "no sub-folders"


def _keyed(folder: Path, strip: str, *, what: str) -> dict[str, Path]:
    """The images of ``folder`` by the name they pair under: without the prefix ``strip`` (when a name has more
    than it), else as they are. Two files with one key are refused."""
    keyed: dict[str, Path] = {}
    for path in image_files(folder, what=what):
        key = path.name[len(strip):] if strip and path.name.startswith(strip) and len(path.name) > len(strip) \
            else path.name
        if key in keyed:
            raise DatasetError(f"{what}: {keyed[key]} and {path} both pair as {key!r}; keep one of them")
        keyed[key] = path
    return keyed


def _pair_folder(low_dir: Path, high_dir: Path, *, prefix: str, what: str,
                 strip: tuple[str, str] = ("", "")) -> tuple[list[Record], DatasetError | None]:
    """Records ``prefix`` + input name of the inputs in ``low_dir`` and the targets in ``high_dir`` matched by
    file name (less the prefixes ``strip`` of each side), and the partner error or None."""
    low, high = _keyed(low_dir, strip[0], what=what), _keyed(high_dir, strip[1], what=what)
    error = partner_error(what, (low_dir, sorted(low[k].name for k in set(low) - set(high))),
                          (high_dir, sorted(high[k].name for k in set(high) - set(low))))
    if error is not None and any(strip):
        error = DatasetError(f"{error} (or, as in the seed's layout, {strip[0]}ID next to {strip[1]}ID)")
    records = [Record(prefix + low[key].name, {"low": low[key], "high": high[key]})
               for key in sorted(set(low) & set(high))]
    return records, error


def _seed_pairs(folder: Path, *, prefix: str, what: str) -> tuple[list[Record], DatasetError | None]:
    """Layout (c): the inputs of ``folder/train/`` or ``folder/val/`` with the targets of ``folder/gt/``."""
    inputs = [name for name in SEED_SUBSETS[None] if (folder / name).is_dir()]
    if len(inputs) != 1:
        found = "neither" if not inputs else "both"
        raise DatasetError(f"{what}: {folder}/{SEED_TARGETS}/ holds targets, and {found} of {folder}/train/ and "
                           f"{folder}/val/ (the inputs) exist ({folder} has {_subfolders(folder)}); expected one; "
                           f"{_LAYOUTS_TEXT}")
    return _pair_folder(folder / inputs[0], folder / SEED_TARGETS, prefix=prefix, what=what,
                        strip=(f"{inputs[0]}_", f"{SEED_TARGETS}_"))


def _lol_pairs(folder: Path, *, prefix: str, what: str) -> tuple[list[Record], DatasetError | None]:
    """Layout (b): the pairs of one LOL subset, ``folder/low/`` and ``folder/high/``."""
    for part in ("low", "high"):
        if not (folder / part).is_dir():
            raise DatasetError(f"{what}: {folder}/{part}/ is missing ({folder} has {_subfolders(folder)}); "
                               f"{_LAYOUTS_TEXT}")
    return _pair_folder(folder / "low", folder / "high", prefix=prefix, what=what)


class PairedImages(ImageDataset):
    """Low-light / reference pairs: items ``{"low", "high", "name"}`` (layout e: ``{"high", "name"}``).

    ``low`` and ``high`` are float32 tensors (C, H, W) in [0, 1], RGB (C = 3) or gray (C = 1); ``high`` is
    ``scale`` times ``low``'s height and width (by default the same size). ``name`` is the input's file name
    (layouts a, c) or ``"our485/NAME"`` / ``"eval15/NAME"`` (b), ``"train/NAME"`` / ``"val/NAME"`` (d).

    Args:
        root: a folder in one of the layouts of the module docstring.
        split: None (all pairs), ``"train"``, ``"tune"`` or ``"val"``. Layouts (a), (c), (e): a deterministic
            split by scene (:func:`rlenhance.data.split_names`: the SICE frames ``NNN_k`` of one scene stay
            together). Layouts (b), (d): ``"val"`` is the validation folder; ``"tune"`` is held out of the
            training folder the same way.
        val_fraction: fraction of scenes in ``"val"`` (layouts a, c, e).
        tune_fraction: fraction of scenes in ``"tune"``, held out of ``"train"``.
        seed: seed of the split; the same seed gives the same split everywhere.
        gray: load one channel (BT.601 luma for colour files).
        cache: decode every image now and keep it in memory (:class:`~rlenhance.data.ImageDataset`).
        max_pixels: largest accepted ``width * height`` per file (None: no limit).
        group: maps a name to its scene for the split (None: every file its own scene).
        scale: every ``high`` image is ``scale`` times its ``low`` image's height and width (1: the same
            size; the seed's targets: 4). None: the ratio of the first pair (an integer >= 1), then required of
            every pair.

    Attributes:
        scale: the size ratio of ``high`` to ``low`` (an int >= 1).
        layout: ``"pairs"`` (a), ``"lol"`` (b), ``"seed"`` (c), ``"seed-parent"`` (d) or ``"references"`` (e).

    Raises:
        DatasetError: no recognised layout (the message lists the accepted ones), an empty folder, files
            without a partner, a pair whose ``high`` is not ``scale`` times ``low``, or an unreadable file. The
            message names the files.

    Example:
        >>> ds = PairedImages("../shared/data/sice_pairs/train", split="val")  # doctest: +SKIP
        >>> ds[0]["low"].shape                                                 # doctest: +SKIP
        torch.Size([3, 512, 512])
    """

    def __init__(self, root: str | os.PathLike[str], *, split: str | None = None, val_fraction: float = 0.1,
                 tune_fraction: float = TUNE_FRACTION, seed: int = 0, gray: bool = False, cache: bool = True,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, group: Callable[[str], str] | None = scene_key,
                 scale: int | None = 1):
        super().__init__(gray=gray, cache=cache, max_pixels=max_pixels)
        check_split(split)
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int) or scale < 1):
            raise ValueError(f"scale: expected an integer >= 1 or None (read from the data), got {scale!r}")
        self.root, self.split = Path(root), split
        what = f"PairedImages({self.root})"
        if not self.root.is_dir():
            raise DatasetError(f"{what}: root is not a folder; {_LAYOUTS_TEXT}")

        has_low, has_high = (self.root / "low").is_dir(), (self.root / "high").is_dir()
        lol = [s for s in LOL_SUBSETS[None] if (self.root / s).is_dir()]
        seed_parent = [s for s in SEED_SUBSETS[None] if (self.root / s / SEED_TARGETS).is_dir()]
        if has_low and not has_high:
            raise DatasetError(f"{what}: high/ is missing ({self.root} has {_subfolders(self.root)}); {_LAYOUTS_TEXT}")
        if has_high and not has_low:
            self.layout = "references"
            photos = list_images(self.root)
            if photos:
                raise DatasetError(f"{what}: holds both photos ({photos[0].name}) and high/ (references): keep "
                                   f"one of them; {_LAYOUTS_TEXT}")
            records = [Record(p.name, {"high": p}) for p in image_files(self.root / "high", what=what)]
        elif has_high or (self.root / SEED_TARGETS).is_dir():
            self.layout = "pairs" if has_high else "seed"
            records, error = (_pair_folder(self.root / "low", self.root / "high", prefix="", what=what) if has_high
                              else _seed_pairs(self.root, prefix="", what=what))
            if error is not None:
                raise error
        elif lol or seed_parent:
            self.layout = "lol" if lol else "seed-parent"
            subsets, present, read = (LOL_SUBSETS, lol, _lol_pairs) if lol else (SEED_SUBSETS, seed_parent, _seed_pairs)
            missing = [s for s in subsets[split] if s not in present]
            if split is not None and missing:
                needed = f"{missing[0]}/" if lol else f"{missing[0]}/{SEED_TARGETS}/"
                raise DatasetError(f"{what}: split={split!r} needs {needed}, which is missing; {_LAYOUTS_TEXT}")
            records, errors = [], []
            for subset in (s for s in subsets[split] if s in present):
                subset_records, error = read(self.root / subset, prefix=f"{subset}/", what=what)
                records += subset_records
                if error is not None:
                    errors.append(str(error))
            if errors:
                raise DatasetError("; ".join(errors))
        else:
            raise DatasetError(f"{what}: no low/ and high/ folders nor another accepted layout ({self.root} has "
                               f"{_subfolders(self.root)}); {_LAYOUTS_TEXT}")
        folders = self.layout in ("lol", "seed-parent")  # "val" is a folder; "tune" is held out of the train folder
        if not folders or split in ("train", "tune"):
            keep = resolve_split([r.name for r in records], split, val_fraction=0.0 if folders else val_fraction,
                                 tune_fraction=tune_fraction, seed=seed, group=group, what=what)
            records = [r for r in records if r.name in keep]
        self._records = records
        self.scale = scale if scale is not None else self._read_scale(what)
        self._fill_cache()

    def _read_scale(self, what: str) -> int:
        """The size ratio of the first pair's ``high`` to its ``low`` (``scale=None``)."""
        if not self._records or "low" not in self._records[0].files:
            return 1
        record = self._records[0]
        low_h, low_w = self._decode(record.files["low"]).shape[-2:]
        high_h, high_w = self._decode(record.files["high"]).shape[-2:]
        ratio = high_h // low_h
        if ratio < 1 or (high_h, high_w) != (low_h * ratio, low_w * ratio):
            raise DatasetError(f"{what}: cannot read the scale of the pairs: {record.files['high']} is "
                               f"{high_h}x{high_w}, {record.files['low']} is {low_h}x{low_w} (HxW); expected the "
                               "high image to be k times the low one in height and width, for an integer k >= 1")
        return ratio

    def _check_sizes(self, record: Record, tensors: dict[str, torch.Tensor]) -> None:
        """Raise DatasetError unless ``high`` is :attr:`scale` times ``low`` in height and width."""
        if "low" not in tensors:  # layout (e)
            return
        (low_h, low_w), (high_h, high_w) = tensors["low"].shape[-2:], tensors["high"].shape[-2:]
        if (high_h, high_w) != (low_h * self.scale, low_w * self.scale):
            expected = "the files of a pair must match" if self.scale == 1 else \
                f"the high image must be {self.scale} times the low one (scale={self.scale})"
            raise DatasetError(f"size mismatch in item {record.name!r}: {record.files['low']} is {low_h}x{low_w}, "
                               f"{record.files['high']} is {high_h}x{high_w} (HxW); {expected}")


class UnpairedImages(ImageDataset):
    """A flat folder of images without references: items ``{"low", "name"}``.

    ``low`` is a float32 tensor (C, H, W) in [0, 1] (RGB, or C = 1 with ``gray=True``); ``name`` is the file
    name. Low-light inputs without references, or clean images to degrade (denoising).

    Args:
        root: a folder holding the images directly.
        split, val_fraction, tune_fraction, seed, group: a deterministic split by scene, as in
            :class:`PairedImages` layout (a).
        gray, cache, max_pixels: as in :class:`PairedImages`.

    Raises:
        DatasetError: the folder is missing or holds no images (the message lists the accepted extensions),
            or a file is unreadable.
    """

    def __init__(self, root: str | os.PathLike[str], *, split: str | None = None, val_fraction: float = 0.1,
                 tune_fraction: float = TUNE_FRACTION, seed: int = 0, gray: bool = False, cache: bool = True,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, group: Callable[[str], str] | None = scene_key):
        super().__init__(gray=gray, cache=cache, max_pixels=max_pixels)
        check_split(split)
        self.root, self.split = Path(root), split
        what = f"UnpairedImages({self.root})"
        files = image_files(self.root, what=what)
        keep = resolve_split([p.name for p in files], split, val_fraction=val_fraction, tune_fraction=tune_fraction,
                             seed=seed, group=group, what=what)
        self._records = [Record(p.name, {"low": p}) for p in files if p.name in keep]
        self._fill_cache()


def check_pair(item: Mapping[str, Any], needed_by: str) -> None:
    """Raise DatasetError (naming the missing half) unless a low-light ``item`` holds ``low`` and ``high``:
    ``needed_by`` (a command) scores real pairs."""
    if "low" in item and "high" in item:
        return
    if "high" in item:
        raise DatasetError(f"{needed_by} scores low-light pairs, but {item['name']} has no dark capture (low/); "
                           "references alone are darkened or relit by python -m experiments.compare --task lowlight")
    raise DatasetError(f"{needed_by} scores low-light pairs, but {item['name']} has no reference (high/)")
