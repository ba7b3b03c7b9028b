"""Low-light data sets: paired (``low``/``high``, LOL layout) and unpaired (a flat folder).

Layouts read by :class:`PairedImages`:

(a) ``root/low/NAME`` and ``root/high/NAME`` with matching file names, e.g.
    ``../shared/data/sice_pairs/train`` or one LOL subset;
(b) a LOL-v1 parent ``root/our485/{low,high}`` and ``root/eval15/{low,high}``
    (``split="train"`` reads ``our485``, ``"val"`` reads ``eval15``, None both).

For layout (a), ``split="train"``/``"val"`` is a deterministic split by scene
(:func:`rlenhance.data.split_names`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from rlenhance.data.base import ImageDataset, Record, check_split, image_files, partner_error, resolve_split
from rlenhance.data.transforms import scene_key
from rlenhance.errors import DatasetError
from rlenhance.io import DEFAULT_MAX_PIXELS

__all__ = ["PairedImages", "UnpairedImages"]

#: LOL-v1 subsets read for each split in layout (b).
LOL_SUBSETS = {"train": ("our485",), "val": ("eval15",), None: ("our485", "eval15")}

_LAYOUTS_TEXT = (
    "accepted layouts: (a) ROOT/low/ and ROOT/high/ holding files with matching names; "
    "(b) a LOL parent ROOT/our485/ and/or ROOT/eval15/, each holding low/ and high/"
)


def _subfolders(root: Path) -> str:
    found = sorted(p.name + "/" for p in root.iterdir() if p.is_dir())
    return ", ".join(found) if found else "no sub-folders"


def _pair_folder(folder: Path, *, prefix: str, what: str) -> tuple[list[Record], DatasetError | None]:
    """Records of ``folder/low`` + ``folder/high`` matched by file name, or the partner error."""
    low = {p.name: p for p in image_files(folder / "low", what=what)}
    high = {p.name: p for p in image_files(folder / "high", what=what)}
    error = partner_error(
        what,
        (folder / "low", sorted(set(low) - set(high))),
        (folder / "high", sorted(set(high) - set(low))),
    )
    records = [Record(prefix + name, {"low": low[name], "high": high[name]}) for name in sorted(set(low) & set(high))]
    return records, error


class PairedImages(ImageDataset):
    """Low-light / reference pairs: items ``{"low", "high", "name"}``.

    ``low`` and ``high`` are float32 tensors (C, H, W) in [0, 1], RGB (C = 3) or gray (C = 1);
    ``name`` is the file name (layout a) or ``"our485/NAME"`` / ``"eval15/NAME"`` (layout b).

    Args:
        root: a folder in layout (a) or (b) (see the module docstring).
        split: None (all pairs), ``"train"`` or ``"val"``. Layout (b): the LOL subsets.
            Layout (a): a deterministic split by scene, SHA-256 of ``seed`` and
            ``group(name)``; ``val_fraction`` of the scenes (at least one) go to ``"val"``, so
            the SICE frames ``NNN_k`` of one scene never straddle train and val.
        val_fraction: fraction of scenes in ``"val"`` (layout a).
        seed: seed of the split (layout a); the same seed gives the same split everywhere.
        gray: load one channel (BT.601 luma for colour files).
        cache: decode every image now and keep it in memory (uint8 for 8-bit files);
            every bad file of the folder is then reported at once.
        max_pixels: largest accepted ``width * height`` per file (None: no limit).
        group: maps a name to its scene for the split (None: every file its own scene).

    Raises:
        DatasetError: no recognised layout, an empty folder, files without a partner,
            a pair whose sizes differ, or an unreadable file. The message names the files.

    Example:
        >>> ds = PairedImages("../shared/data/sice_pairs/train", split="val")  # doctest: +SKIP
        >>> ds[0]["low"].shape                                                 # doctest: +SKIP
        torch.Size([3, 512, 512])
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        split: str | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        gray: bool = False,
        cache: bool = True,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        group: Callable[[str], str] | None = scene_key,
    ):
        super().__init__(gray=gray, cache=cache, max_pixels=max_pixels)
        check_split(split)
        self.root = Path(root)
        self.split = split
        what = f"PairedImages({self.root})"
        if not self.root.is_dir():
            raise DatasetError(f"{what}: root is not a folder; {_LAYOUTS_TEXT}")
        has_low, has_high = (self.root / "low").is_dir(), (self.root / "high").is_dir()
        lol = [s for s in LOL_SUBSETS[None] if (self.root / s).is_dir()]
        if has_low or has_high:
            if not (has_low and has_high):
                missing = "high/" if has_low else "low/"
                raise DatasetError(
                    f"{what}: {missing} is missing ({self.root} has {_subfolders(self.root)}); {_LAYOUTS_TEXT}"
                )
            self.layout = "pairs"
            records, error = _pair_folder(self.root, prefix="", what=what)
            if error is not None:
                raise error
            keep = resolve_split([r.name for r in records], split, val_fraction=val_fraction, seed=seed, group=group)
            records = [r for r in records if r.name in keep]
        elif lol:
            self.layout = "lol"
            wanted = LOL_SUBSETS[split]
            missing = [s for s in wanted if s not in lol]
            if split is not None and missing:
                raise DatasetError(f"{what}: split={split!r} needs {missing[0]}/, which is missing; {_LAYOUTS_TEXT}")
            records, errors = [], []
            for subset in (s for s in wanted if s in lol):
                folder = self.root / subset
                for part in ("low", "high"):
                    if not (folder / part).is_dir():
                        raise DatasetError(f"{what}: {folder}/{part}/ is missing ({folder} has "
                                           f"{_subfolders(folder)}); {_LAYOUTS_TEXT}")
                subset_records, error = _pair_folder(folder, prefix=f"{subset}/", what=what)
                records += subset_records
                if error is not None:
                    errors.append(str(error))
            if errors:
                raise DatasetError("; ".join(errors))
        else:
            raise DatasetError(
                f"{what}: no low/ and high/ folders ({self.root} has {_subfolders(self.root)}); {_LAYOUTS_TEXT}"
            )
        self._records = records
        self._fill_cache()


class UnpairedImages(ImageDataset):
    """A flat folder of images without references: items ``{"low", "name"}``.

    ``low`` is a float32 tensor (C, H, W) in [0, 1] (RGB, or C = 1 with ``gray=True``);
    ``name`` is the file name. Used for low-light inputs without references (non-reference
    rewards) and for clean images to degrade (denoising: ``add_gaussian_noise``).

    Args:
        root: a folder holding the images directly.
        split, val_fraction, seed, group: a deterministic split by scene, as in
            :class:`PairedImages` layout (a).
        gray, cache, max_pixels: as in :class:`PairedImages`.

    Raises:
        DatasetError: the folder is missing or holds no images (the message lists the
            accepted extensions), or a file is unreadable.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        split: str | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        gray: bool = False,
        cache: bool = True,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        group: Callable[[str], str] | None = scene_key,
    ):
        super().__init__(gray=gray, cache=cache, max_pixels=max_pixels)
        check_split(split)
        self.root = Path(root)
        self.split = split
        files = image_files(self.root, what=f"UnpairedImages({self.root})")
        keep = resolve_split([p.name for p in files], split, val_fraction=val_fraction, seed=seed, group=group)
        self._records = [Record(p.name, {"low": p}) for p in files if p.name in keep]
        self._fill_cache()
