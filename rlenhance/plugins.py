"""Registration: the one mechanism behind every table of named pieces (models, methods, action families,
reward terms, metrics), and the way a user's own file joins one without an edit inside the package.

A :class:`Registry` maps names to entries, filled with :meth:`Registry.register` (a decorator, as BasicSR's
``ARCH_REGISTRY.register()``) or :meth:`Registry.add`; a user names their own entry by import path,
``"package.module:Name"``, wherever a name is accepted. A checkpoint records such a path, so loading it imports
that module: load only checkpoints you trust. Importing this module imports no torch.

Example:
    >>> CURVES = Registry("curve")
    >>> @CURVES.register("square")
    ... def square(x):
    ...     return x * x
    >>> CURVES.get("square")(3), CURVES.names()
    (9, ('square',))
    >>> CURVES.get("math:sqrt")(9.0)
    3.0
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "import_path", "is_import_path", "path_of"]

T = TypeVar("T")


def is_import_path(key: str) -> bool:
    """Whether ``key`` names an object by import path, ``"module:attribute"``."""
    return isinstance(key, str) and ":" in key


def import_path(path: str, what: str = "object") -> Any:
    """The object an import path ``"package.module:Name"`` (``Name`` may be dotted) names.

    Raises:
        ValueError: not of that form, the module does not import, or it has no such attribute (the
            message names ``what`` and the path).
    """
    module, _, attribute = path.partition(":")
    if not module or not attribute:
        raise ValueError(f"{what} {path!r}: expected a name or an import path 'package.module:Name'")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(f"{what} {path!r}: module {module!r} does not import ({exc})") from None
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{what} {path!r}: module {module!r} has no {attribute!r}")
        obj = getattr(obj, part)
    return obj


def path_of(obj: Any) -> str:
    """The import path ``"module:qualname"`` of a class or function (what :func:`import_path` reads back)."""
    return f"{obj.__module__}:{obj.__qualname__}"


class Registry(Generic[T]):
    """A table of named entries of one kind.

    Args:
        kind: what its entries are, for messages ("action family", "metric").
        check: called on every entry added or imported; raises ValueError (or TypeError) with what is
            wrong with it. None: anything is accepted.
        modules: the modules whose import registers the package's own entries, imported on the first lookup.
    """

    def __init__(self, kind: str, check: Callable[[Any], None] | None = None, *, modules: Sequence[str] = ()):
        self.kind = kind
        self._check = check
        self._entries: dict[str, T] = {}
        self._modules = tuple(modules)

    def add(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name`` and return it.

        Raises:
            ValueError: ``name`` is taken by another entry, is empty or has a ``:``; or ``check`` refuses it.
        """
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"{self.kind} name {name!r}: expected a non-empty name without ':'")
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} {name!r} is registered already")
        self._validate(name, entry)
        self._entries[name] = entry
        return entry

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: :meth:`add` the decorated class or function under ``name`` (None: its ``name``
        attribute, else its ``__name__``)."""
        def decorate(entry: T) -> T:
            self.add(name or getattr(entry, "name", None) or entry.__name__, entry)
            return entry
        return decorate

    def get(self, key: str) -> T:
        """The entry registered as ``key``, or the object the import path ``key`` names (checked).

        Raises:
            ValueError: an unknown name (the registered ones are listed), or a path that does not import
                or whose object ``check`` refuses.
        """
        if is_import_path(key):
            entry = import_path(key, self.kind)
            self._validate(key, entry)
            return entry
        if key not in self:
            raise ValueError(f"unknown {self.kind} {key!r}; registered: {', '.join(self._entries) or 'none'}, or "
                             "an import path 'package.module:Name'")
        return self._entries[key]

    def names(self) -> tuple[str, ...]:
        """The registered names, in the order added."""
        return tuple(self._loaded())

    def items(self) -> Iterator[tuple[str, T]]:
        """``(name, entry)`` pairs, in the order added."""
        return iter(list(self._loaded().items()))

    def __contains__(self, key: object) -> bool:
        return key in self._loaded()

    def __len__(self) -> int:
        return len(self._loaded())

    def _loaded(self) -> dict[str, T]:
        """The entries, once the ``modules`` that register the package's own are imported."""
        while self._modules:
            module, self._modules = self._modules[0], self._modules[1:]
            importlib.import_module(module)
        return self._entries

    def _validate(self, name: str, entry: Any) -> None:
        if self._check is None:
            return
        try:
            self._check(entry)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.kind} {name!r}: {exc}") from None

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"
