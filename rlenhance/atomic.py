"""Atomic file writes: the one implementation used for images, checkpoints, configs and reports."""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it becomes ``path`` atomically.

    Whatever the body writes to the yielded path becomes ``path`` only when the body returns
    (``fsync``, rename, folder sync). If the body raises, the temporary file is removed and an existing
    file at ``path`` is left untouched. Parent folders are created. An ``OSError`` about the temporary
    file, or a failed write that names no file (disk full, quota), is raised again naming ``path``.

    Args:
        path: the file to write.
        replace: True: an existing file at ``path`` is replaced (``os.replace``). False: ``path`` is claimed
            create-exclusively when the finished file is put in place; a file that appeared there meanwhile is
            kept and ``FileExistsError`` is raised.

    Raises:
        FileExistsError: ``replace`` is False and ``path`` exists (the temporary file is removed).

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
        if replace:
            os.replace(tmp, path)
        else:
            _rename_exclusive(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and (Path(exc.filename) == tmp if exc.filename is not None
                                         else exc.errno in _WRITE_ERRNOS):
            raise _naming(exc, path) from exc
        raise
    _fsync_dir(path.parent)


#: The errors of a write that are about the file being written, though they name no file.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: What ``os.link`` raises where the file system has no hard links (FAT, some network shares).
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK, errno.EXDEV})


def _rename_exclusive(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` unless ``path`` exists, atomically (FileExistsError naming ``path``)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _appeared(path) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        try:  # claim the name with an exclusive create, then put the finished file in its place
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
        except FileExistsError:
            raise _appeared(path) from None
        try:
            os.replace(tmp, path)
        except BaseException:
            path.unlink(missing_ok=True)  # the empty file that claimed the name
            raise
        return
    tmp.unlink()


def _appeared(path: Path) -> FileExistsError:
    return FileExistsError(errno.EEXIST, f"{path} already exists (it appeared while this file was being written); "
                                         "it was not replaced", str(path))


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
