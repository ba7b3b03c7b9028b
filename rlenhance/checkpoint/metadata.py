"""A checkpoint's metadata without torch: the dict of a ``torch.save`` file with its tensors as
:class:`TensorStub` placeholders, so that ``format``, ``version``, ``arch`` and ``extra`` (the spec)
can be read in a process that has not imported torch (e.g. for a command's ``--help``).

The pickle of the checkpoint dict (``<name>/data.pkl`` of the zip archive, or torch's legacy format) is
read by a restricted unpickler, as ``torch.load(weights_only=True)`` reads it: the only globals it may name
are those of tensors and containers (:data:`_ALLOWED`), each mapped to a stand-in defined here, so nothing is
imported and no code from the file is run; the storages' bytes are not read. No size the file declares is
believed (:func:`scan_torch_file`, which :func:`rlenhance.checkpoint.read_torch_file` runs before ``torch.load``).
:func:`read_metadata` returns the spec as a plain dict (:func:`rlenhance.checkpoint.load_checkpoint` parses it).

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
import pickletools
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlenhance.checkpoint.archives import check_zip_sizes
from rlenhance.errors import CheckpointError, not_a_file

__all__ = ["TensorStub", "check_torch_file", "corrupt", "read_metadata", "scan_torch_file"]

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's zip format
_PICKLE_PROTO = b"\x80"  # torch.save's legacy format starts with a pickle protocol opcode
_FILE_SIGNATURES = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8", "a JPEG image"), (b"BM", "a BMP image"),
                    (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"\x93NUMPY", "a .npy array"),
                    (b"\x89HDF", "an HDF5 file"), (b"%PDF", "a PDF document"))
#: The pickle inside a torch.save archive, ``<archive name>/data.pkl``.
_DATA_PKL = "data.pkl"
#: The element type of each of torch's typed storage classes, as torch names its dtypes, and its size in bytes.
_STORAGE_DTYPES = {
    "FloatStorage": ("float32", 4), "DoubleStorage": ("float64", 8), "HalfStorage": ("float16", 2),
    "BFloat16Storage": ("bfloat16", 2), "LongStorage": ("int64", 8), "IntStorage": ("int32", 4),
    "ShortStorage": ("int16", 2), "CharStorage": ("int8", 1), "ByteStorage": ("uint8", 1), "BoolStorage": ("bool", 1),
    "ComplexFloatStorage": ("complex64", 8), "ComplexDoubleStorage": ("complex128", 16),
}
#: The first two pickles of a file in torch's legacy (non-zip) format: a magic number and a protocol version.
_LEGACY_MAGIC, _LEGACY_PROTOCOL = 0x1950A86A20F9469CFC6C, 1001
#: Each storage of a legacy file is its element count (8 bytes) and then its bytes.
_LEGACY_STORAGE_HEADER = 8
#: The deepest nesting of containers a checkpoint may hold.
_DEPTH_MOST = 100
#: A tree of far more objects than its pickle's opcodes shares containers to grow exponentially when expanded.
_OBJECTS_PER_OPCODE_MOST = 8


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
        The file's first bytes (:data:`_ZIP_MAGIC`'s length): the zip signature, or a pickle protocol opcode.

    Raises:
        CheckpointError: the file is missing, a folder, or another kind of file (the message says which,
            e.g. a PNG image, when it can tell).
    """
    path = Path(path)
    if problem := not_a_file(path):
        raise CheckpointError(f"checkpoint {path}: {problem}")
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
    itemsize: int


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


#: The ``bytearray`` global, as pickle protocol 2 and later name it; :class:`_MetadataUnpickler` checks its size.
_BYTEARRAY = (("builtins", "bytearray"), ("__builtin__", "bytearray"))
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
       for name, value in (("set", set), ("frozenset", frozenset), ("complex", complex))},
    **{("torch", name): _StorageType(*dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _MetadataUnpickler(pickle.Unpickler):
    """An unpickler of :data:`_ALLOWED` globals only that records each storage's declared bytes
    (:attr:`storages`: key -> bytes) and refuses a ``bytearray`` larger than the file (``limit``)."""

    def __init__(self, stream: Any, *, limit: int, source: str):
        super().__init__(stream)
        self.limit, self.source = limit, source
        self.storages: dict[Any, int] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _BYTEARRAY:
            return self._bytearray
        try:
            return _ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"it names {module}.{name}") from None

    def _bytearray(self, *args: Any) -> bytearray:
        """``bytearray(*args)``, refused where it would be more zero bytes than the file holds."""
        size = args[0] if args else 0
        if isinstance(size, int) and size > self.limit:
            raise CheckpointError(f"{self.source}: its pickle declares a bytearray of {size:,} bytes, more than the "
                                  f"file's {self.limit:,}; refused before allocating it")
        return bytearray(*args)

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and type(pid[4]) is int and pid[4] >= 0):
            raise pickle.UnpicklingError(f"a persistent id {pid!r} that is not a tensor's storage")
        self.storages[pid[2]] = pid[4] * pid[1].itemsize
        return _Storage(pid[1].dtype)


class _Bounded:
    """A file read up to ``size`` bytes: ``read(n)`` never asks for more than is left (and so never allocates it)."""

    def __init__(self, handle: Any, size: int):
        self.handle, self.size = handle, size

    def read(self, n: int = -1) -> bytes:
        left = max(0, self.size - self.handle.tell())
        return self.handle.read(left if n is None or n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self.handle.readline()

    def tell(self) -> int:
        return self.handle.tell()

    def seek(self, offset: int) -> int:
        return self.handle.seek(offset)


def _load_pickle(stream: Any, *, limit: int, source: str) -> tuple[Any, dict[Any, int]]:
    """The next pickle of ``stream`` (seekable) and its storages' bytes (key -> bytes), read once
    :func:`pickletools.genops` has walked its opcodes (refusing lengths that run past the data), then checked."""
    start = stream.tell()
    opcodes = sum(1 for _ in pickletools.genops(stream))
    stream.seek(start)
    unpickler = _MetadataUnpickler(stream, limit=limit, source=source)
    obj = unpickler.load()
    _check_tree(obj, opcodes, source)
    return obj, unpickler.storages


def _check_tree(obj: Any, opcodes: int, source: str) -> None:
    """Refuse containers nested deeper than :data:`_DEPTH_MOST`, or many more objects than the pickle had opcodes."""
    most = _OBJECTS_PER_OPCODE_MOST * opcodes
    stack, seen = [(obj, 1)], 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if depth > _DEPTH_MOST:
            raise CheckpointError(f"{source}: holds containers nested more than {_DEPTH_MOST} deep; no checkpoint "
                                  "is, refused")
        if seen > most:
            raise CheckpointError(f"{source}: its pickle of {opcodes:,} opcodes builds more than {most:,} objects "
                                  "(containers shared to grow when expanded); no checkpoint does, refused")
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for pair in value.items() for item in pair)
        elif isinstance(value, (list, tuple, set, frozenset)):
            stack.extend((item, depth + 1) for item in value)


def corrupt(source: str, exc: BaseException) -> CheckpointError:
    """The "truncated or corrupt" refusal of a file a reader failed on with ``exc`` (its message's first line)."""
    lines = str(exc).strip().splitlines()
    detail = lines[0] if lines else ("it asks for more memory than there is" if isinstance(exc, MemoryError)
                                     else "no detail given")
    return CheckpointError(f"{source}: cannot be read as a torch weights file (truncated or corrupt): "
                           f"{type(exc).__name__}: {detail}")


def scan_torch_file(path: str | os.PathLike) -> Any:
    """The object a ``torch.save`` file (zip or legacy format) holds, its tensors as :class:`TensorStub`,
    read without torch and without allocating what the file only declares.

    Refused before anything is allocated: a zip member that declares more bytes than the file has; a pickle
    value whose declared length runs past the end of the data; a ``bytearray`` of more bytes than the file
    has; legacy storages that declare more bytes than the rest of the file holds (``torch.load`` checks a zip
    file's storages itself). So ``torch.load(weights_only=True)`` of an accepted file allocates what it holds.

    Raises:
        CheckpointError: (names the file) the file is missing or not a torch file; it is truncated or
            corrupt; a size it declares is more than the file holds; its pickle names a global other
            than those of tensors and containers; it nests containers absurdly.
    """
    path = Path(path)
    source = f"checkpoint {path}"
    head = check_torch_file(path)
    size = path.stat().st_size
    try:
        if head.startswith(_ZIP_MAGIC):
            return _scan_zip(path, size, source)
        with open(path, "rb") as handle:
            return _scan_legacy(_Bounded(handle, size), size, source)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{source}: cannot be read as a torch weights file: it holds objects other than "
                              f"tensors, containers and primitives ({exc}; rlenhance never writes them and refuses "
                              "to unpickle them, which could run code)") from exc
    except Exception as exc:  # zipfile.BadZipFile, EOFError, zlib.error, ValueError, ... for a broken file
        raise corrupt(source, exc) from exc


def _scan_zip(path: Path, size: int, source: str) -> Any:
    with zipfile.ZipFile(path) as archive:
        check_zip_sizes(archive, size, source=source, why="torch.save stores its records uncompressed, so they "
                                                          "hold no more than the file's size")
        found = [name for name in archive.namelist() if name.count("/") == 1 and name.endswith("/" + _DATA_PKL)]
        if len(found) != 1:
            raise CheckpointError(f"{source}: cannot be read as a torch weights file: a zip archive with "
                                  f"{len(found) or 'no'} <name>/{_DATA_PKL} (torch.save writes one)")
        data = archive.read(found[0])
    return _load_pickle(io.BytesIO(data), limit=size, source=source)[0]


def _scan_legacy(stream: _Bounded, size: int, source: str) -> Any:
    header = [_load_pickle(stream, limit=size, source=source)[0] for _ in range(2)]
    if header != [_LEGACY_MAGIC, _LEGACY_PROTOCOL]:
        raise CheckpointError(f"{source}: cannot be read as a torch weights file: it starts with a pickle that is "
                              "not torch's magic number; expected a .pt file written by rlenhance's trainers")
    _load_pickle(stream, limit=size, source=source)  # the saving system's byte order and type sizes
    obj, storages = _load_pickle(stream, limit=size, source=source)
    keys, _ = _load_pickle(stream, limit=size, source=source)
    if not isinstance(keys, list) or set(keys) != set(storages):
        raise CheckpointError(f"{source}: cannot be read as a torch weights file (truncated or corrupt): its list "
                              "of storages does not name the storages its tensors use")
    declared, left = sum(_LEGACY_STORAGE_HEADER + storages[key] for key in keys), size - stream.tell()
    if declared > left:
        raise CheckpointError(f"{source}: its storages declare {declared:,} bytes, and the file holds {left:,} after "
                              "its pickles; refused before allocating them")
    return obj


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict of ``path`` with every tensor a :class:`TensorStub`, read without torch.

    Args:
        path: a checkpoint written by :func:`rlenhance.checkpoint.save_checkpoint` (any ``torch.save``
            file of tensors, containers and primitives).

    Returns:
        The dict as the file holds it (``format``, ``version``, ``arch``, ``state_dict`` of
        :class:`TensorStub`, ``extra``), unvalidated.

    Raises:
        CheckpointError: (names the file) what :func:`scan_torch_file` refuses; the file holds
            something other than a dict.
    """
    obj = scan_torch_file(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {Path(path)}: not an rlenhance checkpoint (holds a {type(obj).__name__}, "
                              "expected a dict)")
    return obj
