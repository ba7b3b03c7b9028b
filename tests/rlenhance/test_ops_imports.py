"""rlenhance.ops is a package with a one-way import graph, and importing it compiles nothing.

The graph is read from the source (every import statement, function-level ones included, as the
circle between the old filters.py and native.py was one), so the check is static and fast.
"""

import ast
import graphlib
import os
import subprocess
import sys
from pathlib import Path

import rlenhance.ops

OPS = Path(rlenhance.ops.__file__).parent
PACKAGE = "rlenhance.ops"


def ops_modules() -> list[str]:
    return sorted(path.stem for path in OPS.glob("*.py"))


def imported_ops_modules(module: str) -> set[str]:
    """The modules of rlenhance.ops that ``module`` imports ("__init__" for names of the package itself)."""
    modules = set(ops_modules())
    tree = ast.parse((OPS / f"{module}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > 1:  # from .. import: above the package
                continue
            if node.level == 0:
                base = node.module or ""
            else:  # from . import x, from .x import y
                base = PACKAGE + (f".{node.module}" if node.module else "")
            targets = [(base, alias.name) for alias in node.names]
        else:
            continue
        for base, name in targets:
            if base == PACKAGE and name is not None:
                found.add(name if name in modules else "__init__")
            elif base == PACKAGE:
                found.add("__init__")
            elif base.startswith(PACKAGE + "."):
                found.add(base[len(PACKAGE) + 1:].split(".")[0])
    return found - {module}


def import_graph() -> dict[str, set[str]]:
    return {module: imported_ops_modules(module) for module in ops_modules()}


def test_ops_import_graph_has_no_cycle():
    graph = import_graph()
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle in {PACKAGE}: {' -> '.join(exc.args[1])}") from None
    assert set(order) == set(graph)
    assert graph["__init__"], "the package imports its public names from its modules"
    for module, imports in graph.items():
        assert "__init__" not in imports or module == "__init__", \
            f"{module} imports from the package {PACKAGE} itself; import from the module that defines the name"


def test_the_graph_reader_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    """A circle through a function-level import (as the old filters.py -> native.py) is found."""
    (tmp_path / "a.py").write_text("from rlenhance.ops.b import f\n")
    (tmp_path / "b.py").write_text("def f():\n    from . import a\n    return a\n")
    monkeypatch.setitem(globals(), "OPS", tmp_path)
    assert import_graph() == {"a": {"b"}, "b": {"a"}}
    try:
        list(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError:
        pass
    else:
        raise AssertionError("the circle was not found")


def test_no_c_source_in_python_modules():
    """The native kernel's C lives in csrc/ (package data), not in Python strings."""
    for path in OPS.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "#include <" not in text, f"{path.name} holds C source; it belongs in {OPS / 'csrc'}"
    assert (OPS / "csrc" / "pixelrl_select.c").is_file()


def test_importing_the_ops_compiles_nothing(tmp_path):
    """Only the first use of the native kernel may compile it, never an import of the package or its modules."""
    code = (
        "import importlib, pkgutil, rlenhance.ops as ops\n"
        "for info in pkgutil.iter_modules(ops.__path__): importlib.import_module(f'rlenhance.ops.{info.name}')\n"
        "from rlenhance.ops import native_build as native\n"
        "assert native._library.cache_info().misses == 0, 'the kernel was built or loaded at import'\n"
        "assert native._source.cache_info().misses == 0, 'the C source was read at import'\n"
    )
    env = {**os.environ, "RLENHANCE_CACHE": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "native").exists()
