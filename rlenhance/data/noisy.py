"""Real noisy / clean pairs for denoising (``noisy``/``clean``, SIDD layout).

Layouts read by :class:`NoisyPairs` (inputs are ``noisy``, targets ``clean``):

(a) ``root/noisy/NAME`` and ``root/clean/NAME`` with matching file names;
(b) SIDD's sRGB naming: ``root`` (or ``root/Data``) holding one folder per scene, e.g.
    ``0001_001_S6_00100_00060_3200_L/``, in which each image whose name holds ``NOISY`` pairs with
    the image whose name has ``GT`` in its place: ``NOISY_SRGB_010.PNG`` with ``GT_SRGB_010.PNG``
    (SIDD-Small), ``0001_NOISY_SRGB_010.PNG`` with ``0001_GT_SRGB_010.PNG`` (SIDD-Medium). Other
    files of a scene folder (SIDD's ``.MAT`` raw data, images naming neither) are ignored.

``split`` is a deterministic split by scene (:func:`rlenhance.data.split_names`): by
:func:`rlenhance.data.scene_key` of the file name in layout (a), by scene folder in layout (b).
SIDD's images are large (5328x3000): ``cache=False`` decodes the files at each access instead of keeping them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from rlenhance.data.base import ImageDataset, Record, check_split, image_files, partner_error, resolve_split
from rlenhance.data.paired import _subfolders
from rlenhance.data.transforms import TUNE_FRACTION, scene_key
from rlenhance.errors import DatasetError
from rlenhance.io import DEFAULT_MAX_PIXELS, list_images

__all__ = ["NoisyPairs", "noisy_layout"]

#: The tokens of SIDD's file names: a noisy image and its ground truth (layout b).
SIDD_NOISY, SIDD_CLEAN = "NOISY", "GT"
#: The optional folder of SIDD's archives that holds the scene folders (layout b).
SIDD_DATA = "Data"

_LAYOUTS_TEXT = (
    "accepted layouts: (a) ROOT/noisy/ and ROOT/clean/ holding files with matching names; "
    f"(b) SIDD's sRGB folders: ROOT/ (or ROOT/{SIDD_DATA}/) holding one folder per scene, in which "
    f"{SIDD_NOISY}_SRGB_010.PNG pairs with {SIDD_CLEAN}_SRGB_010.PNG (SIDD-Small) or "
    f"0001_{SIDD_NOISY}_SRGB_010.PNG with 0001_{SIDD_CLEAN}_SRGB_010.PNG (SIDD-Medium)"
)


def _scene_folders(root: Path) -> list[Path]:
    """The visible sub-folders of ``root``, sorted by name."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _sidd_root(root: Path) -> Path | None:
    """The first of ``root/Data`` and ``root`` with a sub-folder holding a ``*NOISY*`` image, or None."""
    for folder in (root / SIDD_DATA, root):
        if folder.is_dir() and any(SIDD_NOISY in path.name for scene in _scene_folders(folder)
                                   for path in list_images(scene)):
            return folder
    return None


def noisy_layout(root: str | os.PathLike[str]) -> str | None:
    """The :class:`NoisyPairs` layout of a folder: ``"pairs"`` (a folder ``noisy/`` or ``clean/``:
    layout a), ``"sidd"`` (layout b) or None (neither; also when ``root`` is not a folder)."""
    root = Path(root)
    if not root.is_dir():
        return None
    if (root / "noisy").is_dir() or (root / "clean").is_dir():
        return "pairs"
    return "sidd" if _sidd_root(root) is not None else None


def _named_pairs(what: str, root: Path) -> list[Record]:
    """Layout (a): ``root/noisy/NAME`` with ``root/clean/NAME``."""
    noisy_dir, clean_dir = root / "noisy", root / "clean"
    for folder in (noisy_dir, clean_dir):
        if not folder.is_dir():
            raise DatasetError(f"{what}: {folder.name}/ is missing ({root} has {_subfolders(root)}); {_LAYOUTS_TEXT}")
    noisy = {p.name: p for p in image_files(noisy_dir, what=what)}
    clean = {p.name: p for p in image_files(clean_dir, what=what)}
    error = partner_error(what, (noisy_dir, sorted(set(noisy) - set(clean))),
                          (clean_dir, sorted(set(clean) - set(noisy))))
    if error is not None:
        raise error
    return [Record(name, {"clean": clean[name], "noisy": noisy[name]}) for name in sorted(noisy)]


def _sidd_pairs(what: str, folder: Path) -> list[Record]:
    """Layout (b): records ``SCENE/NOISY_FILE``; one error lists every unpaired file."""
    records, lone_noisy, lone_clean = [], [], []
    for scene in _scene_folders(folder):
        files = {p.name: p for p in list_images(scene)}
        partners = {name: name.replace(SIDD_NOISY, SIDD_CLEAN) for name in files if SIDD_NOISY in name}
        for name, partner in sorted(partners.items()):
            if partner in files:
                records.append(Record(f"{scene.name}/{name}", {"clean": files[partner], "noisy": files[name]}))
            else:
                lone_noisy.append(f"{scene.name}/{name}")
        lone_clean += sorted(f"{scene.name}/{name}" for name in files
                             if SIDD_CLEAN in name and name not in partners.values())
    error = partner_error(what, (folder, lone_noisy), (folder, lone_clean))
    if error is not None:
        raise DatasetError(f"{error} (in SIDD's naming: the name with {SIDD_CLEAN} in place of {SIDD_NOISY}, "
                           "in the same scene folder)")
    return records


def _scene_folder(name: str) -> str:
    """The scene of a layout (b) record: its folder."""
    return PurePosixPath(name).parts[0]


class NoisyPairs(ImageDataset):
    """Real noisy / clean pairs: items ``{"clean", "noisy", "name"}``.

    ``clean`` and ``noisy`` are float32 tensors (C, H, W) in [0, 1] of one size, RGB (C = 3) or
    gray (C = 1). ``name`` is the file name (layout a) or ``"SCENE/NOISY_FILE"`` (layout b).
    The denoising envs and :func:`rlenhance.data.noisy_test_set` take ``noisy`` as it is instead of adding noise.

    Args:
        root: a folder in layout (a) or (b) (see the module docstring).
        split: None (all pairs), ``"train"``, ``"tune"`` or ``"val"``: a deterministic split by scene.
        val_fraction, tune_fraction: fractions of the scenes in ``"val"`` and ``"tune"``.
        seed: seed of the split; the same seed gives the same split everywhere.
        gray: load one channel (BT.601 luma for colour files).
        cache: decode every image now and keep it in memory (uint8 for 8-bit files; bad files reported at once).
        max_pixels: largest accepted ``width * height`` per file (None: no limit).
        group: layout (a): maps a file name to its scene for the split (None: every file its own scene).

    Attributes:
        layout: ``"pairs"`` (a) or ``"sidd"`` (b).

    Raises:
        DatasetError: no recognised layout (the message lists the accepted ones), a missing ``noisy/`` or
            ``clean/``, an empty folder, files without a partner (all listed), a pair whose sizes differ, an
            unreadable file or one above ``max_pixels`` (the message names the files).
    """

    def __init__(self, root: str | os.PathLike[str], *, split: str | None = None, val_fraction: float = 0.1,
                 tune_fraction: float = TUNE_FRACTION, seed: int = 0, gray: bool = False, cache: bool = True,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, group: Callable[[str], str] | None = scene_key):
        super().__init__(gray=gray, cache=cache, max_pixels=max_pixels)
        check_split(split)
        self.root, self.split = Path(root), split
        what = f"NoisyPairs({self.root})"
        if not self.root.is_dir():
            raise DatasetError(f"{what}: root is not a folder; {_LAYOUTS_TEXT}")
        layout = noisy_layout(self.root)
        if layout == "pairs":
            records = _named_pairs(what, self.root)
        elif layout == "sidd":
            records, group = _sidd_pairs(what, _sidd_root(self.root)), _scene_folder
        else:
            raise DatasetError(f"{what}: no noisy/ and clean/ folders nor scene folders of {SIDD_NOISY} / "
                               f"{SIDD_CLEAN} images ({self.root} has {_subfolders(self.root)}); {_LAYOUTS_TEXT}")
        self.layout = layout
        keep = resolve_split([r.name for r in records], split, val_fraction=val_fraction, tune_fraction=tune_fraction,
                                 seed=seed, group=group, what=what)
        self._records = [r for r in records if r.name in keep]
        self._fill_cache()
