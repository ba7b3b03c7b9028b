"""Atomic file writes: the one implementation used for images, checkpoints, configs and reports."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path`` atomically.

    Whatever the body writes to the yielded path becomes ``path`` only when the body returns
    (``fsync`` then ``os.replace``, then the folder is synced). If the body raises, the temporary
    file is removed and an existing file at ``path`` is left untouched. Parent folders are created.
    An ``OSError`` about the temporary file (no permission, a file in the folder's place, disk full)
    is raised again naming ``path``, the file the caller asked for.

    Example:
        >>> with atomic_path("out/config.json") as tmp:   # doctest: +SKIP
        ...     tmp.write_text("{}")
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: never reuse a file; mode 0o666 so the umask applies as for an ordinary new file
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is not None and Path(exc.filename) == tmp:
            raise _naming(exc, path) from exc
        raise
    _fsync_dir(path.parent)


def _naming(exc: OSError, path: Path) -> OSError:
    """The same kind of error, about ``path`` instead of the hidden temporary file."""
    return type(exc)(exc.errno, f"cannot write {path}: {exc.strerror or exc}")


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _fsync_dir(folder: Path) -> None:
    """Persist a rename on file systems that need the folder synced (best effort, POSIX only)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
