"""Exception types raised by rlenhance, all ``ValueError`` subclasses; :func:`path_kind` and
:func:`not_a_file` word what a path is for a message."""

from __future__ import annotations

import os
import stat


class ImageError(ValueError):
    """An image file or array is unusable. The message names the file and the cause."""


class DatasetError(ValueError):
    """A dataset folder is unusable (empty, missing partners, mismatched sizes, ...); the message names the files."""


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded: wrong architecture, non-finite weights, bad file."""


#: What :func:`not_a_file` says of a path where there is nothing.
NO_SUCH_FILE = "no such file"
#: What :func:`path_kind` calls each kind of file.
_KINDS = ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"))


def path_kind(path: str | os.PathLike) -> str | None:
    """What is at ``path`` (links followed), for a message: ``"a file"`` (a regular one), ``"a folder"``,
    ``"a character device"``, ...; None where there is nothing.

    Raises:
        OSError: the path cannot be looked at (no permission to a folder on the way, ...).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def not_a_file(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read as a file, for a message: ``"no such file"``, ``"it is a folder"``,
    ``"not a regular file (a character device)"``, ...; None for a regular file (or a link to one)."""
    try:
        kind = path_kind(path)
    except OSError as exc:
        return f"cannot be looked at ({exc.strerror or exc})"
    if kind is None:
        return NO_SUCH_FILE
    if kind == "a folder":
        return "it is a folder"
    return None if kind == "a file" else f"not a regular file ({kind})"
