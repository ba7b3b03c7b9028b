"""Zip archives (``torch.save`` files, numpy ``.npz``) read without trusting the sizes they declare.

A reader that believes a zip member's uncompressed size, or a ``.npy`` header's shape and element type,
allocates whatever a few bytes of a hostile file ask for: :func:`check_zip_sizes` and :func:`read_npz`
refuse such members from their headers, before reading their data.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np
from numpy.lib import format as npy

from rlenhance.errors import CheckpointError, not_a_file

__all__ = ["check_zip_sizes", "read_npz"]

#: The most bytes of a ``.npy`` member before its data (a header of at most numpy's ``max_header_size``).
_NPY_HEADER_MOST = 10 + 10_000
#: The widest element an ``.npz`` of weights may hold (float64).
_NPZ_ITEMSIZE_MOST = 8


def check_zip_sizes(archive: zipfile.ZipFile, limit: int | Mapping[str, int], *, source: str, why: str) -> None:
    """Refuse, before any member is read, an archive whose members declare more bytes than ``limit``.

    Args:
        archive: the open archive.
        limit: the most bytes any member, and all of them together, may declare uncompressed; or a mapping
            of each member's most, by member name (every member is in it).
        source: what to call the archive in the message (``"checkpoint PATH"``).
        why: why the limit is what it is, for the message.

    Raises:
        CheckpointError: naming ``source``, the member, the bytes it declares and the limit.
    """
    total = 0
    for info in archive.infolist():
        most = limit if isinstance(limit, int) else limit[info.filename]
        if info.file_size > most:
            raise CheckpointError(f"{source}: member {info.filename!r} declares {info.file_size:,} bytes uncompressed, "
                                  f"more than the {most:,} it can hold ({why}); refused before reading it")
        total += info.file_size
    if isinstance(limit, int) and total > limit:
        raise CheckpointError(f"{source}: its members declare {total:,} bytes uncompressed together, more than the "
                              f"{limit:,} they can hold ({why}); refused before reading them")


def read_npz(path: str | os.PathLike, shapes: Mapping[str, tuple[int, ...]], *, source: str,
             layout: str) -> dict[str, np.ndarray]:
    """The floating-point arrays of an ``.npz`` of known names and shapes, each member's name, declared size
    and ``.npy`` header checked before its data is read (no pickles are read).

    Args:
        path: an ``.npz`` (``np.savez`` or ``np.savez_compressed``).
        shapes: the array names the file must hold, exactly, and the shape of each.
        source: what to call the file in messages (``"checkpoint PATH"``).
        layout: what a file of these arrays is, for the message (``"the released ReLLIE layout"``).

    Returns:
        The arrays by name, each of its shape, float16, float32 or float64 as stored.

    Raises:
        CheckpointError: naming ``source``: no such (regular) file; not a zip archive or corrupt; missing or
            unexpected arrays; a member that declares more bytes than its array can take; an array of
            another shape or element type; an array cut short.
    """
    if problem := not_a_file(path):
        raise CheckpointError(f"{source}: {problem}")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name.removesuffix(".npy"): name for name in archive.namelist()}
            missing, unexpected = sorted(set(shapes) - set(members)), sorted(set(members) - set(shapes))
            if missing or unexpected:
                raise CheckpointError(f"{source}: not {layout}: missing arrays {missing}, unexpected arrays "
                                      f"{unexpected}")
            check_zip_sizes(archive, {members[name]: _NPY_HEADER_MOST + _NPZ_ITEMSIZE_MOST * math.prod(shape)
                                      for name, shape in shapes.items()},
                            source=source, why="a .npy header and its array's values at 8 bytes each")
            return {name: _read_npy(archive, members[name], name, shape, source) for name, shape in shapes.items()}
    except CheckpointError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise CheckpointError(f"{source}: cannot be read as a numpy .npz archive (corrupt or another format): "
                              f"{type(exc).__name__}: {exc}") from exc


def _read_npy(archive: zipfile.ZipFile, member: str, name: str, shape: tuple[int, ...], source: str) -> np.ndarray:
    """Array ``name`` of shape ``shape`` from ``member``; its header is checked before its data is read."""
    with archive.open(member) as handle:
        version = npy.read_magic(handle)
        if version not in ((1, 0), (2, 0)):
            raise CheckpointError(f"{source}: array {name!r} is in .npy format version {version}, which an array of "
                                  "numbers is never written in")
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        stored, fortran, dtype = read_header(handle)
        if dtype.kind != "f" or dtype.itemsize > _NPZ_ITEMSIZE_MOST or tuple(stored) != tuple(shape):
            raise CheckpointError(f"{source}: array {name!r} holds {dtype} of shape {tuple(stored)}; expected "
                                  f"float16, float32 or float64 of shape {tuple(shape)}")
        size = math.prod(shape) * dtype.itemsize
        data = handle.read(size)
    if len(data) != size:
        raise CheckpointError(f"{source}: array {name!r} is cut short: {len(data):,} of its {size:,} bytes")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C").copy()

