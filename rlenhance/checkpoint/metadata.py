"""A checkpoint's metadata without torch: the dict of a ``torch.save`` file with its tensors as
:class:`TensorStub` placeholders, so that ``format``, ``version``, ``arch`` and ``extra`` (the spec)
can be read in a process that has not imported torch (e.g. for a command's ``--help``).

A checkpoint is a ``torch.save`` zip archive: ``<name>/data.pkl``, the pickle of the checkpoint
dict, beside ``<name>/data/<key>``, the raw bytes of each tensor's storage, which are not read
here. The pickle is read with a restricted unpickler, as ``torch.load(weights_only=True)`` reads
it: the only globals it may name are those of tensors and containers (:data:`_ALLOWED`:
``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and its kin, the typed storage
classes, a few builtins), each mapped to a stand-in defined here, so nothing is imported and no
code from the file is run; any other global is refused with a :class:`CheckpointError`.

:func:`read_metadata` returns the dict as it is in the file, its spec as a plain dict; parsing it
into the spec object is :func:`rlenhance.checkpoint.load_checkpoint`'s
(:meth:`rlenhance.checkpoint.CheckpointSpec.from_dict`). Checking that a path is a torch file at all
(:func:`check_torch_file`) is shared with :func:`rlenhance.checkpoint.read_torch_file`.

Example:
    >>> from pathlib import Path
    >>> meta = read_metadata(Path(__file__).parents[1] / "weights" / "mrpnet_denoise_color.pt")
    >>> meta["format"], meta["extra"]["spec"]["kind"], meta["arch"]["class"]
    ('rlenhance-checkpoint', 'supervised', 'MRPNet')
    >>> type(next(iter(meta["state_dict"].values()))).__name__
    'TensorStub'
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlenhance.errors import CheckpointError

__all__ = ["TensorStub", "check_torch_file", "read_metadata"]

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's zip format
_PICKLE_PROTO = b"\x80"  # torch.save's legacy format starts with a pickle protocol opcode
_FILE_SIGNATURES = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8", "a JPEG image"), (b"BM", "a BMP image"),
                    (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"\x93NUMPY", "a .npy array"),
                    (b"\x89HDF", "an HDF5 file"), (b"%PDF", "a PDF document"))
#: The pickle inside a torch.save archive, ``<archive name>/data.pkl``.
_DATA_PKL = "data.pkl"
#: The element type of each of torch's typed storage classes, as torch names its dtypes.
_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}


def _describe_head(head: bytes) -> str:
    """What a file that is not a torch file looks like, from its first bytes."""
    if not head:
        return "the file is empty"
    for signature, kind in _FILE_SIGNATURES:
        if head.startswith(signature):
            return f"it is {kind}"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return f"it starts with the bytes {head.hex(' ')}"
    return "it is a text file"


def check_torch_file(path: str | os.PathLike) -> bytes:
    """Refuse a ``path`` that is not a file or does not start as a ``torch.save`` file does.

    Returns:
        The file's first bytes (:data:`_ZIP_MAGIC`'s length): the zip signature, or a pickle
        protocol opcode for torch's legacy format.

    Raises:
        CheckpointError: the file is missing, a folder, or another kind of file (the message says
            which, e.g. a PNG image, when it can tell).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: file not found" + (" (it is a folder)" if path.is_dir() else ""))
    with open(path, "rb") as handle:
        head = handle.read(len(_ZIP_MAGIC))
    if not (head.startswith(_ZIP_MAGIC) or head[:1] == _PICKLE_PROTO):
        raise CheckpointError(f"checkpoint {path}: cannot be read as a torch weights file: {_describe_head(head)}; "
                              "expected a .pt file written by rlenhance's trainers")
    return head


@dataclass(frozen=True)
class TensorStub:
    """What :func:`read_metadata` puts where the checkpoint holds a tensor: its shape and element type
    (as torch names them, e.g. ``"float32"``), not its values."""

    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for one of torch's typed storage classes (``torch.FloatStorage`` ...)."""

    dtype: str


@dataclass(frozen=True)
class _Storage:
    """Stand-in for a tensor's storage (a persistent id of the pickle; its bytes are not read)."""

    dtype: str


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *rest: Any) -> TensorStub:
    """Stand-in for ``torch._utils._rebuild_tensor`` / ``_rebuild_tensor_v2`` (same leading arguments)."""
    if not isinstance(storage, _Storage) or not isinstance(size, tuple) \
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in size):
        raise pickle.UnpicklingError(f"a tensor rebuilt from {type(storage).__name__} with size {size!r}")
    return TensorStub(shape=size, dtype=storage.dtype)


def _rebuild_parameter(data: Any, *rest: Any) -> Any:
    """Stand-in for ``torch._utils._rebuild_parameter`` (``_with_state``): the parameter's tensor."""
    if not isinstance(data, TensorStub):
        raise pickle.UnpicklingError(f"a parameter rebuilt from {type(data).__name__}")
    return data


#: The globals a checkpoint's pickle may name, ``(module, name)`` -> what stands for it here.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,  # state dicts, and each tensor's (empty) backward hooks
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): tuple,
    ("_codecs", "encode"): codecs.encode,  # bytes, in pickle protocol 2
    **{(builtins, name): value for builtins in ("builtins", "__builtin__")  # protocol 2 writes __builtin__
       for name, value in (("set", set), ("frozenset", frozenset), ("bytearray", bytearray), ("complex", complex))},
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _MetadataUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only :data:`_ALLOWED` globals (never importing a module) and
    turns each storage (a persistent id) into a :class:`_Storage`."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"it names {module}.{name}") from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"a persistent id {pid!r} that is not a tensor's storage")
        return _Storage(pid[1].dtype)


def _data_pickle(archive: zipfile.ZipFile, source: str) -> bytes:
    """The bytes of the archive's one ``<name>/data.pkl``."""
    found = [name for name in archive.namelist() if name.count("/") == 1 and name.endswith("/" + _DATA_PKL)]
    if len(found) != 1:
        raise CheckpointError(f"{source}: cannot be read as a torch weights file: a zip archive with "
                              f"{len(found) or 'no'} <name>/{_DATA_PKL} (torch.save writes one)")
    return archive.read(found[0])


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict of ``path`` with every tensor a :class:`TensorStub`, read without torch.

    Args:
        path: a checkpoint written by :func:`rlenhance.checkpoint.save_checkpoint` (any ``torch.save``
            file of tensors, containers and primitives in torch's zip format).

    Returns:
        The dict as the file holds it (``format``, ``version``, ``arch``, ``state_dict`` of
        :class:`TensorStub`, ``extra``), unvalidated: :func:`rlenhance.checkpoint.load_checkpoint`
        checks it and parses ``extra`` into a spec object.

    Raises:
        CheckpointError: (names the file) the file is missing or not a torch file; it is in torch's
            legacy (non-zip) format; it is truncated or corrupt; its pickle names a global other
            than those of tensors and containers (refused before anything is called, as
            ``torch.load(weights_only=True)`` refuses it); it holds something other than a dict.
    """
    path = Path(path)
    source = f"checkpoint {path}"
    head = check_torch_file(path)
    if not head.startswith(_ZIP_MAGIC):
        raise CheckpointError(f"{source}: written in torch's legacy (non-zip) format, which only load_checkpoint "
                              "reads (it needs torch)")
    try:
        with zipfile.ZipFile(path) as archive:
            data = _data_pickle(archive, source)
        obj = _MetadataUnpickler(io.BytesIO(data)).load()
    except CheckpointError:
        raise
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{source}: cannot be read as a torch weights file: it holds objects other than "
                              f"tensors, containers and primitives ({exc}; rlenhance never writes them and refuses "
                              "to unpickle them, which could run code)") from exc
    except Exception as exc:  # zipfile.BadZipFile, EOFError, zlib.error, ValueError, ... for a broken file
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(f"{source}: cannot be read as a torch weights file (truncated or corrupt): "
                              f"{type(exc).__name__}: {first_line}") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source}: not an rlenhance checkpoint (holds a {type(obj).__name__}, expected a dict)")
    return obj

