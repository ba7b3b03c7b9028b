"""Building and loading the native kernels of :mod:`rlenhance.ops.native`.

The kernels are plain C in ``rlenhance/ops/csrc/``, shipped as package data and compiled on first use into one shared
library with the system C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``) with ``-O3 -ffp-contract=off`` (no
fast-math, no ``-march=native``: an AVX2 copy of the vector code is chosen at run time). The library is cached under
``$RLENHANCE_CACHE/native`` (default ``$XDG_CACHE_HOME/rlenhance/native`` or ``~/.cache/rlenhance/native``), named by a
hash of the sources, flags and compiler, and loaded with :mod:`ctypes` once per process. Loading runs its code, so the
cache is private: folders are made 0700, and a library is loaded only when it is a regular file owned and writable by
this user alone in a folder likewise (checked on the open file, which is what is loaded); otherwise it is compiled
again, or into a private temporary folder when the cache folder is another user's. Without a compiler, when compilation
fails, or with ``RLENHANCE_NATIVE=0``, :func:`available` is False and :func:`unavailable_reason` says why; importing
this module never compiles or raises. The build is logged (logger ``rlenhance.ops.native``): a compilation at INFO, a
cache hit at DEBUG, a failure at WARNING.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import logging
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rlenhance.atomic import atomic_path

__all__ = ["ENV_SWITCH", "available", "unavailable_reason", "vector_isa"]

#: One logger for the kernels and their build (``rlenhance.ops.native``), as the docs name it.
logger = logging.getLogger("rlenhance.ops.native")

#: Environment variable that disables the kernel when set to one of ``_FALSE_VALUES``.
ENV_SWITCH = "RLENHANCE_NATIVE"
_FALSE_VALUES = ("0", "false", "no", "off")

#: The kernels' C source: the files compiled, and every file they are built from (all part of the cache key).
_SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
_COMPILED = ("pixelrl_select.c", "le_curves.c", "area_downscale.c", "lowlight_rollout.c", "clean.c")
_SOURCES = (*_COMPILED, "pixelrl_select_vector.h", "parallel.h")

#: Compiler flags: plain IEEE arithmetic as written (no fast-math, no FMA contraction), no -march=native.
_CFLAGS = ("-O3", "-ffp-contract=off", "-fPIC", "-shared", "-pthread", "-std=gnu11")

#: Compilers tried, in order, when ``$CC`` is not set.
_COMPILERS = ("cc", "gcc", "clang")

#: Seconds a compilation may take before it counts as failed.
_COMPILE_TIMEOUT_S = 300.0

#: The kernel's vector-width choices, index = code (``isa`` argument and ``rlenhance_best_isa`` result).
_ISAS = ("auto", "baseline", "avx2")


@functools.cache
def _source() -> str:
    """The text of the kernel's source files (read once per process; raises OSError if one is missing)."""
    return "\0".join((_SOURCE_DIR / name).read_text(encoding="utf-8") for name in _SOURCES)


@dataclass(frozen=True)
class _Library:
    """The loaded kernel: its ctypes entry points (``select`` None when unavailable, with ``reason`` saying why),
    the vector width it picks by itself (``best_isa``: "avx2" or "baseline") and the library's ``path``."""

    select: Callable[..., int] | None
    min_max: Callable[..., None] | None = None
    curves: Callable[..., int] | None = None
    area: Callable[..., int] | None = None
    rollout: Callable[..., int] | None = None
    clean_prepare: Callable[..., int] | None = None
    clean_finish: Callable[..., int] | None = None
    best_isa: str | None = None
    reason: str | None = None
    path: Path | None = None


def _cache_dir() -> Path:
    """Where compiled libraries are kept (see the module notes)."""
    root = os.environ.get("RLENHANCE_CACHE")
    if root:
        return Path(root).expanduser() / "native"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rlenhance" / "native"


#: Whether files have owners and permission bits to check (POSIX); elsewhere the cache is trusted.
_CHECK_OWNER = hasattr(os, "geteuid")
#: Permission bits that let users other than the owner write (group, others).
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
_PRIVATE_FOLDER = 0o700


class _UnsafeCache(Exception):
    """A cache folder or library that this user must not load from (internal: the message says why)."""


def _owner_text(uid: int) -> str:
    return "this user" if uid == os.geteuid() else f"user id {uid}"


def _private_folder(folder: Path) -> bool:
    """Create ``folder`` (and missing parents) with mode 0700, make it private, and return whether the files
    already in it can be trusted (False when others could write to it until now).

    Raises:
        _UnsafeCache: the folder is not a folder of this user, or cannot be created.
    """
    missing = []
    parent = folder
    while not os.path.lexists(parent) and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    try:
        for path in reversed(missing):
            with contextlib.suppress(FileExistsError):  # made by a process running at the same time
                os.mkdir(path, _PRIVATE_FOLDER)
        if not _CHECK_OWNER:
            return True
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise _UnsafeCache(f"it cannot be created or opened ({exc.strerror or exc})") from exc
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid():
            raise _UnsafeCache(f"it belongs to {_owner_text(info.st_uid)}, not this user")
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.fchmod(fd, _PRIVATE_FOLDER)
            if info.st_mode & _OTHERS_WRITE:
                logger.info("the native kernel cache %s was writable by other users (mode %o); made it private (700), "
                            "the libraries in it are compiled again", folder, stat.S_IMODE(info.st_mode))
                return False
    except OSError as exc:
        raise _UnsafeCache(f"its permissions cannot be set ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)
    return True


def _open_library(path: Path) -> int | None:
    """A file descriptor of the library ``path`` (the caller closes it) after checking that only this user can
    have written it, or None where files have no owners.

    Raises:
        _UnsafeCache: a link, not a regular file, another user's, writable by others, hard-linked, or in a
            folder not this user's alone.
        OSError: it cannot be opened.
    """
    if not _CHECK_OWNER:
        return None
    me = os.geteuid()
    folder_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        folder = os.fstat(folder_fd)
        if folder.st_uid != me or folder.st_mode & _OTHERS_WRITE:
            raise _UnsafeCache(f"its folder belongs to {_owner_text(folder.st_uid)} with mode "
                               f"{stat.S_IMODE(folder.st_mode):o}")
        try:
            fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder_fd)
        except OSError as exc:
            if os.path.islink(path):
                raise _UnsafeCache("it is a symbolic link") from exc
            raise
    finally:
        os.close(folder_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _UnsafeCache("it is not a regular file")
        if info.st_uid != me:
            raise _UnsafeCache(f"it belongs to {_owner_text(info.st_uid)}")
        if info.st_mode & _OTHERS_WRITE:
            raise _UnsafeCache(f"other users may write to it (mode {stat.S_IMODE(info.st_mode):o})")
        if info.st_nlink != 1:
            raise _UnsafeCache(f"it has {info.st_nlink} names (hard links)")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _load(path: Path) -> _Library:
    """Check ``path`` (:func:`_open_library`) and bind the very file checked (through ``/proc/self/fd``)."""
    fd = _open_library(path)
    if fd is None:
        return _bind(path)
    try:
        by_fd = Path(f"/proc/self/fd/{fd}")
        return _bind(path, by_fd if by_fd.exists() else path)
    finally:
        os.close(fd)


def _find_compiler() -> list[str] | None:
    """The compiler command: ``$CC`` (may hold arguments) or the first of ``_COMPILERS`` found."""
    env = os.environ.get("CC", "").strip()
    if env:
        command = shlex.split(env)
        found = shutil.which(command[0])
        return [found, *command[1:]] if found else None
    for name in _COMPILERS:
        found = shutil.which(name)
        if found:
            return [found]
    return None


def _compiler_identity(compiler: list[str]) -> str:
    """The compiler's command and ``--version`` banner, part of the cache key."""
    try:
        banner = subprocess.run([*compiler, "--version"], capture_output=True, text=True,
                                timeout=_COMPILE_TIMEOUT_S).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        banner = f"unknown ({exc})"
    return " ".join(compiler) + "\n" + banner


class _NamedArgs(ctypes.Structure):
    """A kernel's argument struct whose fields must all be given by name."""

    __slots__ = ()  # a misspelt field name raises instead of becoming a Python attribute

    def __init__(self, **fields: int | None) -> None:
        missing = [name for name, _ in self._fields_ if name not in fields]
        if missing:
            raise TypeError(f"the native kernel's arguments {', '.join(missing)} are missing")
        super().__init__(**fields)


class _SelectArgs(_NamedArgs):
    """``select_args_t`` of ``csrc/pixelrl_select.c``, field by field (:func:`_bind` checks the sizes agree)."""

    __slots__ = ()
    _fields_ = [
        ("x", ctypes.c_void_p), ("actions", ctypes.c_void_p), ("out", ctypes.c_void_p),
        ("b", ctypes.c_int64), ("c", ctypes.c_int64), ("h", ctypes.c_int64), ("w", ctypes.c_int64),
        ("k", ctypes.c_int32), ("program", ctypes.c_void_p), ("shift", ctypes.c_void_p),
        ("linear", ctypes.c_void_p), ("colour", ctypes.c_void_p), ("exact", ctypes.c_void_p),
        ("n_taps", ctypes.c_int32), ("tap_dy", ctypes.c_void_p), ("tap_dx", ctypes.c_void_p),
        ("space", ctypes.c_void_p), ("log_space", ctypes.c_void_p),
        ("lut_scale", ctypes.c_void_p), ("lut_bin", ctypes.c_void_p),
        ("fused", ctypes.c_int32), ("n_threads", ctypes.c_int32), ("isa", ctypes.c_int32),
    ]


class _CurvesArgs(_NamedArgs):
    """``curves_args_t`` of ``csrc/le_curves.c``."""

    __slots__ = ()
    _fields_ = [
        ("x", ctypes.c_void_p), ("out", ctypes.c_void_p), ("x_type", ctypes.c_int32), ("out_type", ctypes.c_int32),
        ("x_row", ctypes.c_int64), ("x_col", ctypes.c_int64), ("x_chan", ctypes.c_int64),
        ("out_row", ctypes.c_int64), ("out_col", ctypes.c_int64), ("out_chan", ctypes.c_int64),
        ("rows", ctypes.c_int64), ("w", ctypes.c_int64), ("ch", ctypes.c_int64),
        ("top", ctypes.c_int64), ("h", ctypes.c_int64), ("maps", ctypes.c_void_p),
        ("steps", ctypes.c_int32), ("c", ctypes.c_int32), ("mh", ctypes.c_int32), ("mw", ctypes.c_int32),
        ("n_threads", ctypes.c_int32), ("isa", ctypes.c_int32),
    ]


class _AreaArgs(_NamedArgs):
    """``area_args_t`` of ``csrc/area_downscale.c``."""

    __slots__ = ()
    _fields_ = [
        ("x", ctypes.c_void_p), ("out", ctypes.c_void_p), ("x_type", ctypes.c_int32),
        ("x_row", ctypes.c_int64), ("x_col", ctypes.c_int64), ("x_chan", ctypes.c_int64),
        ("h", ctypes.c_int64), ("w", ctypes.c_int64), ("ch", ctypes.c_int64), ("oh", ctypes.c_int64),
        ("ow", ctypes.c_int64), ("n_threads", ctypes.c_int32),
    ]


class _RolloutArgs(_NamedArgs):
    """``rollout_args_t`` of ``csrc/lowlight_rollout.c``."""

    __slots__ = ()
    _fields_ = [
        ("image", ctypes.c_void_p), ("maps", ctypes.c_void_p), ("final", ctypes.c_void_p),
        ("b", ctypes.c_int64), ("h", ctypes.c_int64), ("w", ctypes.c_int64),
        ("steps", ctypes.c_int32), ("scale", ctypes.c_int32), ("c", ctypes.c_int32), ("n_actions", ctypes.c_int32),
        ("table", ctypes.c_void_p), ("target", ctypes.c_void_p), ("limit", ctypes.c_void_p),
        ("cond", ctypes.c_void_p), ("cond_dim", ctypes.c_int32), ("n_layers", ctypes.c_int32),
        ("ksize", ctypes.c_int32), ("layers", ctypes.c_void_p), ("weights", ctypes.c_void_p),
        ("film", ctypes.c_void_p), ("n_film", ctypes.c_int32), ("film_width", ctypes.c_int32),
        ("damping", ctypes.c_float), ("coupling", ctypes.c_float), ("reference", ctypes.c_int32),
        ("isa", ctypes.c_int32), ("argmax", ctypes.c_int32),
    ]


class _CleanArgs(_NamedArgs):
    """``clean_args_t`` of ``csrc/clean.c`` (``brightened``, prepare's result, given as 0)."""

    __slots__ = ()
    _fields_ = [
        ("x", ctypes.c_void_p), ("y", ctypes.c_void_p), ("luma", ctypes.c_void_p), ("chroma", ctypes.c_void_p),
        ("luma_blur", ctypes.c_void_p), ("luma_dark", ctypes.c_void_p), ("chroma_blur", ctypes.c_void_p),
        ("out", ctypes.c_void_p), ("x_type", ctypes.c_int32), ("out_type", ctypes.c_int32), ("n", ctypes.c_int64),
        ("eps", ctypes.c_float), ("ramp_start", ctypes.c_float), ("ramp_scale", ctypes.c_float),
        ("knee", ctypes.c_float), ("knee_drop", ctypes.c_float), ("n_threads", ctypes.c_int32),
        ("brightened", ctypes.c_int64),
    ]


class _BindError(Exception):
    """A library that does not match this module (internal: becomes the unavailability reason)."""


def _bind(path: Path, load_from: Path | None = None) -> _Library:
    """Load the library at ``path`` (read from ``load_from`` when given) and declare its C signatures."""
    lib = ctypes.CDLL(str(load_from or path))
    args_size = lib.rlenhance_select_args_size
    args_size.argtypes = []
    args_size.restype = ctypes.c_int64
    if args_size() != ctypes.sizeof(_SelectArgs):
        raise _BindError(f"its argument struct has {args_size()} bytes, _SelectArgs {ctypes.sizeof(_SelectArgs)}")
    select = lib.rlenhance_pixelrl_select
    select.argtypes = [ctypes.POINTER(_SelectArgs)]
    select.restype = ctypes.c_int
    curves = _entry(lib, "le_curves", "curves", _CurvesArgs)
    area = _entry(lib, "area_downscale", "area", _AreaArgs)
    rollout = _entry(lib, "lowlight_rollout", "rollout", _RolloutArgs)
    clean_prepare = _entry(lib, "clean_prepare", "clean", _CleanArgs)
    clean_finish = _entry(lib, "clean_finish", "clean", _CleanArgs)
    ptr, i64 = ctypes.c_void_p, ctypes.c_int64
    min_max = lib.rlenhance_min_max
    min_max.argtypes = [ptr, i64, i64, ptr]
    min_max.restype = None
    best = lib.rlenhance_best_isa
    best.argtypes = []
    best.restype = ctypes.c_int
    code = best()
    isa = _ISAS[code] if 0 < code < len(_ISAS) else "baseline"
    return _Library(select, min_max, curves, area, rollout, clean_prepare, clean_finish, isa, None, path)


def _entry(lib: ctypes.CDLL, name: str, struct_name: str, args: type[_NamedArgs]) -> Callable[..., int]:
    """The entry point ``rlenhance_<name>``, ``args`` checked against ``rlenhance_<struct_name>_args_size``."""
    size = getattr(lib, f"rlenhance_{struct_name}_args_size")
    size.argtypes = []
    size.restype = ctypes.c_int64
    if size() != ctypes.sizeof(args):
        raise _BindError(f"its {name} argument struct has {size()} bytes, {args.__name__} {ctypes.sizeof(args)}")
    entry = getattr(lib, f"rlenhance_{name}")
    entry.argtypes = [ctypes.POINTER(args)]
    entry.restype = ctypes.c_int
    return entry


class _CompileError(Exception):
    """A compiler run that failed (internal: becomes the unavailability reason)."""


def _compile(compiler: list[str], target: Path) -> str | None:
    """Compile the kernel atomically into ``target`` (mode 0700); returns None, or why it failed."""
    command = " ".join(compiler)
    try:
        with atomic_path(target) as tmp:
            sources = [str(_SOURCE_DIR / name) for name in _COMPILED]
            result = subprocess.run([*compiler, *_CFLAGS, "-o", str(tmp), *sources, "-lm"],
                                    capture_output=True, text=True, timeout=_COMPILE_TIMEOUT_S)
            if result.returncode != 0:
                message = (result.stderr or result.stdout).strip()[-2000:]
                raise _CompileError(f"{command} exited with status {result.returncode}"
                                    + (f": {message}" if message else ""))
            os.chmod(tmp, 0o700)  # the linker's mode follows the umask, which may let the group write
    except _CompileError as exc:
        return str(exc)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"compiling the native kernel with {command} into {target.parent} failed: {exc}"
    return None


def _unavailable(reason: str) -> _Library:
    logger.warning("native kernels unavailable, pixelrl_filter_select, le_curves_upsampled and greedy_rollout use "
                   "the torch path: %s", reason)
    return _Library(None, reason=reason)


_LOAD_ERRORS = (OSError, AttributeError, _BindError, _UnsafeCache)


@functools.cache
def _library() -> _Library:
    """Compile (once per source, flags and compiler; cached on disk) and load the kernels. Never raises."""
    compiler = _find_compiler()
    if compiler is None:
        cc = os.environ.get("CC", "").strip()
        return _unavailable(f"no C compiler: $CC={cc!r} is not an executable" if cc
                            else f"no C compiler found (set $CC, or put one of {', '.join(_COMPILERS)} on the PATH)")
    try:
        source = _source()
    except OSError as exc:
        return _unavailable(f"the kernels' C source is missing (rlenhance installed without its package data?): {exc}")
    key = hashlib.sha256("\0".join([source, " ".join(_CFLAGS), _compiler_identity(compiler)]).encode())
    name = f"rlenhance_kernels-{key.hexdigest()[:24]}.so"
    folder = _cache_dir()
    try:
        trusted = _private_folder(folder)
    except _UnsafeCache as exc:
        logger.warning("the native kernel cache %s is not used: %s; the kernel is compiled for this process only (set "
                       "RLENHANCE_CACHE to a folder of your own to keep it)", folder, exc)
        with tempfile.TemporaryDirectory(prefix="rlenhance-native-") as private:  # mode 0700, this user's
            return _build(compiler, Path(private) / name)  # a loaded library stays mapped once its file is gone
    target = folder / name
    if trusted and os.path.lexists(target):
        try:
            library = _load(target)
        except _LOAD_ERRORS as exc:  # unreadable, truncated, or not this user's alone: build it again
            logger.info("the cached native kernel %s cannot be loaded (%s); compiling it again", target, exc)
        else:
            logger.debug("native kernels loaded from the cache: %s", target)
            return library
    return _build(compiler, target)


def _build(compiler: list[str], target: Path) -> _Library:
    """Compile the kernel into ``target`` (replacing any file there) and load it."""
    logger.info("compiling the native kernels with %s into %s (once per source, flags and compiler)",
                " ".join(compiler), target)
    start = time.perf_counter()
    reason = _compile(compiler, target)
    if reason is not None:
        return _unavailable(reason)
    try:
        library = _load(target)
    except _LOAD_ERRORS as exc:
        return _unavailable(f"the compiled kernel {target} cannot be loaded: {exc}")
    logger.info("compiled the native kernels in %.1f s (%s vectors)", time.perf_counter() - start,
                library.best_isa)
    return library


def _disabled() -> bool:
    value = os.environ.get(ENV_SWITCH, "1").strip().lower()
    if value in _FALSE_VALUES:
        _log_disabled(value)
        return True
    return False


@functools.cache
def _log_disabled(value: str) -> None:
    """Say once per value of the switch that it disables the kernel."""
    logger.info("native kernels disabled by %s=%r, pixelrl_filter_select, le_curves_upsampled and greedy_rollout use "
                "the torch path", ENV_SWITCH, value)


def available() -> bool:
    """Whether the native kernel can be used (compiled or found in the cache, and loaded, on the first call).

    False with ``RLENHANCE_NATIVE=0`` (read on every call), without a C compiler, or when compiling or loading
    failed (:func:`unavailable_reason`). Never raises.
    """
    return not _disabled() and _library().select is not None


def unavailable_reason() -> str | None:
    """Why :func:`available` is False, or None when the kernel is available."""
    if _disabled():
        return f"disabled by {ENV_SWITCH}={os.environ.get(ENV_SWITCH)!r}"
    return _library().reason


def vector_isa() -> str | None:
    """The kernel's default vector width: "avx2" or "baseline"; None when it is unavailable."""
    return _library().best_isa if available() else None
