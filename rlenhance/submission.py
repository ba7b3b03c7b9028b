"""The competition CSV of the MRPNet + Generator seed: one row of gray pixels per predicted image.

Each image is converted to 8-bit gray as Pillow's ``convert("L")`` does (:data:`PILLOW_LUMA_WEIGHTS`),
flattened row by row, every 8th pixel kept (``flatten()[::8]``), one row per image::

    ID,pixel_0,pixel_1,...,pixel_{N-1}
    gt_1,12,40,...,7

``ID`` is the file's stem (``id_prefix=("test_", "gt_")`` renames the seed's ``test_ID`` outputs). Values are
integers in 0..255, one ``\\n`` per row, no index column, UTF-8. An ID that a spreadsheet would read as a formula
(:data:`FORMULA_PREFIXES`, CSV injection) is refused, since the grader matches IDs exactly. Every image must have
the same size; rows follow the order of the images given.

Example:
    >>> import numpy as np
    >>> submission_row(np.ones((2, 8, 3), np.float32), stride=8).tolist()
    [255, 255]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rlenhance.atomic import atomic_path
from rlenhance.errors import ImageError
from rlenhance.io import DEFAULT_MAX_PIXELS, load_image

__all__ = ["DEFAULT_STRIDE", "FORMULA_PREFIXES", "ID_COLUMN", "PILLOW_LUMA_WEIGHTS", "PIXEL_PREFIX", "gray_levels",
           "image_id", "submission_row", "write_submission"]

#: Every ``DEFAULT_STRIDE``-th pixel of the flattened gray image is kept (the seed's ``[::8]``).
DEFAULT_STRIDE = 8
#: The header: ``ID`` then ``pixel_0``, ``pixel_1``, ...
ID_COLUMN = "ID"
PIXEL_PREFIX = "pixel_"
#: Pillow's integer luma weights (``convert("L")``), in units of 2**-16; they sum to 2**16.
PILLOW_LUMA_WEIGHTS = (19595, 38470, 7471)
_LUMA_SHIFT = 16
_LEVELS = 255
#: First characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def gray_levels(image: np.ndarray) -> np.ndarray:
    """An image as 8-bit gray levels, exactly as Pillow's ``convert("L")`` gives them for 8-bit files.

    Args:
        image: float (H, W, 3) RGB, (H, W, 1) or (H, W), values in [0, 1] (as
            :func:`rlenhance.io.load_image` returns them); rounded to 8-bit samples first.

    Returns:
        uint8 (H, W).

    Raises:
        ImageError: another shape.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ImageError(f"image: expected an array (H, W, 3), (H, W, 1) or (H, W); got shape {image.shape}")
    samples = np.rint(np.clip(image, 0.0, 1.0) * _LEVELS).astype(np.int64)
    if samples.ndim == 2:
        return samples.astype(np.uint8)
    luma = (samples @ np.asarray(PILLOW_LUMA_WEIGHTS, np.int64) + (1 << (_LUMA_SHIFT - 1))) >> _LUMA_SHIFT
    return luma.astype(np.uint8)


def submission_row(image: np.ndarray, stride: int = DEFAULT_STRIDE) -> np.ndarray:
    """The pixel values of one image's row: :func:`gray_levels` flattened row by row, every
    ``stride``-th kept from the first; uint8 (ceil(H W / stride),)."""
    return gray_levels(image).reshape(-1)[::stride]


def image_id(path: str | os.PathLike[str], id_prefix: tuple[str, str] | None = None) -> str:
    """The ``ID`` of an image file: its stem, with a leading ``id_prefix[0]`` replaced by ``id_prefix[1]``.

    Example:
        >>> image_id("out/test_12.png", ("test_", "gt_"))
        'gt_12'
    """
    stem = Path(path).stem
    if id_prefix is not None and stem.startswith(id_prefix[0]):
        return id_prefix[1] + stem[len(id_prefix[0]):]
    return stem


def write_submission(images: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                     stride: int = DEFAULT_STRIDE, id_prefix: tuple[str, str] | None = None,
                     overwrite: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> int:
    """Write the competition CSV of ``images`` to ``out``, atomically (see the module docstring).

    Args:
        images: the predicted image files, one row each, in this order.
        out: the CSV file to write (its folder is created).
        stride: keep every ``stride``-th pixel of each flattened gray image, >= 1.
        id_prefix: ``(old, new)``: an ID starting with ``old`` starts with ``new`` instead.
        overwrite: replace an existing ``out`` (never one of ``images``).
        max_pixels: largest width x height accepted per image (None: no limit).

    Returns:
        The number of rows written (the images).

    Raises:
        ValueError: no images, ``stride`` < 1, ``out`` is a folder or one of ``images``, ``out``
            exists without ``overwrite``, two images share an ID, an ID holds a comma, quote or line
            break, or starts like a spreadsheet formula. Nothing is written.
        ImageError: an image is unreadable or of another size than the first; nothing is written.
    """
    paths = [Path(p) for p in images]
    out = Path(out)
    if not paths:
        raise ValueError("no images to export; give predicted image files or a folder holding them")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride: expected an integer >= 1, got {stride!r}")
    if out.is_dir():
        raise ValueError(f"-o {out}: is a folder; expected the CSV file to write (e.g. {out / 'submission.csv'})")
    if out.exists():
        if any(p.exists() and os.path.samefile(p, out) for p in paths):
            raise ValueError(f"-o {out}: is one of the input images; choose another file name")
        if not overwrite:
            raise ValueError(f"-o {out}: already exists; pass --overwrite to replace it, or choose another file")
    ids: dict[str, Path] = {}
    for path in paths:
        name = image_id(path, id_prefix)
        if any(c in name for c in ',"\r\n'):
            raise ValueError(f"{path}: its ID {name!r} holds a comma, quote or line break; rename the file")
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{path}: its ID {name!r} is not text (the file name holds bytes that are not UTF-8); "
                             "rename the file") from None
        if name.startswith(FORMULA_PREFIXES):
            raise ValueError(f"{path}: its ID {name!r} starts with {name[0]!r}, which a spreadsheet opening the CSV "
                             "runs as a formula (CSV injection); rename the file"
                             + (" or change --id-prefix" if id_prefix is not None else ""))
        if name in ids:
            raise ValueError(f"{ids[name]} and {path} both give the ID {name!r}; each image needs its own ID "
                             "(rename one, or export them to separate files)")
        ids[name] = path
    first: tuple[Path, tuple[int, int]] | None = None
    with atomic_path(out, replace=overwrite) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        for name, path in ids.items():
            image = load_image(path, max_pixels=max_pixels)
            size = image.shape[:2]
            if first is None:
                first = (path, size)
                columns = len(range(0, size[0] * size[1], stride))
                handle.write(",".join([ID_COLUMN, *(f"{PIXEL_PREFIX}{i}" for i in range(columns))]) + "\n")
            elif size != first[1]:
                raise ImageError(f"{path} is {size[0]}x{size[1]} but {first[0]} is {first[1][0]}x{first[1][1]} "
                                 "(HxW); every image of a submission must have one size (the rows share a header)")
            handle.write(",".join([name, *map(str, submission_row(image, stride).tolist())]) + "\n")
    return len(ids)
