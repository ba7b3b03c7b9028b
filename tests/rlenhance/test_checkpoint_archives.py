"""rlenhance.checkpoint.archives: a zip's members and an .npz's arrays checked before they are read."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from rlenhance.checkpoint import read_npz
from rlenhance.checkpoint.archives import check_zip_sizes
from rlenhance.errors import CheckpointError

SHAPES = {"a": (4, 3), "b": (5,)}


def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"a": np.asfortranarray(rng.random((4, 3), dtype=np.float32)), "b": rng.random(5)}


def npy(shape: tuple[int, ...], data: bytes, descr: str = "<f4") -> bytes:
    """An .npy member whose header declares ``shape`` and ``descr``, followed by ``data``."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": shape})
    return out.getvalue() + data


def npz_with(path, members: dict[str, bytes]):
    """An .npz of ``arrays()`` with the members ``members`` (name -> bytes) in place of theirs, deflated."""
    np.savez(path, **arrays())
    with zipfile.ZipFile(path) as archive:
        kept = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in {**kept, **members}.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_the_arrays_come_back_as_saved(tmp_path, save):
    save(tmp_path / "x.npz", **arrays())
    got = read_npz(tmp_path / "x.npz", SHAPES, source="x", layout="the test layout")
    for name, expected in arrays().items():
        assert got[name].dtype == expected.dtype and np.array_equal(got[name], expected)
        assert got[name].flags.writeable


def test_other_names_are_refused_before_anything_is_read(tmp_path):
    np.savez(tmp_path / "x.npz", a=arrays()["a"], c=np.zeros(2))
    with pytest.raises(CheckpointError, match=r"^x: not the test layout: missing arrays \['b'\], unexpected arrays "
                                              r"\['c'\]$"):
        read_npz(tmp_path / "x.npz", SHAPES, source="x", layout="the test layout")


def test_a_member_that_inflates_past_its_array_is_refused_before_it_is_read(tmp_path, peak_memory):
    bomb = npz_with(tmp_path / "bomb.npz", {"a.npy": npy((2**24,), bytes(2**26))})  # 64 MiB of zeros in ~64 KB
    assert bomb.stat().st_size < 2**17
    with peak_memory() as peak, pytest.raises(
            CheckpointError, match=r"^bomb: member 'a\.npy' declares 67,108,992 bytes uncompressed, more than the "
                                   r"10,106 it can hold \(a \.npy header and its array's values at 8 bytes each\)"):
        read_npz(bomb, SHAPES, source="bomb", layout="the test layout")
    assert peak.bytes < 2**24


@pytest.mark.parametrize(("shape", "descr", "data"), [
    ((2**40,), "<f4", bytes(16)),          # 4 TiB declared in a few bytes
    ((4, 3), "<i4", bytes(48)),            # integers
    ((4, 3), "|O", b""),                   # Python objects (a pickle)
], ids=["shape", "integers", "objects"])
def test_an_array_header_of_another_shape_or_type_is_refused_before_its_data_is_read(tmp_path, shape, descr, data):
    path = npz_with(tmp_path / "x.npz", {"a.npy": npy(shape, data, descr)})
    with pytest.raises(CheckpointError, match=rf"^x: array 'a' holds \w+ of shape \({shape[0]},.*\); expected "
                                              r"float16, float32 or float64 of shape \(4, 3\)$"):
        read_npz(path, SHAPES, source="x", layout="the test layout")


def test_broken_files_are_refused(tmp_path):
    path = npz_with(tmp_path / "cut.npz", {"a.npy": npy((4, 3), bytes(20))})
    with pytest.raises(CheckpointError, match=r"^x: array 'a' is cut short: 20 of its 48 bytes$"):
        read_npz(path, SHAPES, source="x", layout="the test layout")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(CheckpointError, match=r"^x: cannot be read as a numpy \.npz archive .*BadZipFile"):
        read_npz(tmp_path / "text.npz", SHAPES, source="x", layout="the test layout")


def test_check_zip_sizes_bounds_each_member_and_their_sum(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as archive:
        archive.writestr("one", bytes(60))
        archive.writestr("two", bytes(60))
    with zipfile.ZipFile(tmp_path / "x.zip") as archive:
        check_zip_sizes(archive, 120, source="x", why="a test")
        with pytest.raises(CheckpointError, match=r"^x: its members declare 120 bytes uncompressed together, more "
                                                  r"than the 100 they can hold \(a test\)"):
            check_zip_sizes(archive, 100, source="x", why="a test")
        with pytest.raises(CheckpointError, match=r"^x: member 'two' declares 60 bytes uncompressed, more than the 59"):
            check_zip_sizes(archive, {"one": 60, "two": 59}, source="x", why="a test")
