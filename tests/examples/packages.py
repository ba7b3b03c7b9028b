"""What the examples' tests check of the packages: that an example plugs in from outside them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The packages an example extends without an edit.
PACKAGES = ("rlenhance", "envs", "agents", "experiments", "benchmarks")


def _imports(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` of every import of ``path`` (name "" for ``import module``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found += [(node.module or "", alias.name) for alias in node.names]
    return found


def assert_plugs_in_from_outside(example: str) -> None:
    """``examples/<example>.py`` imports only public names of the packages (no ``_private`` one), and no
    module of the packages imports the examples: the example is one file outside them, and nothing inside
    had to change for it."""
    private = [f"{module}.{name}" for module, name in _imports(ROOT / "examples" / f"{example}.py")
               if module.split(".")[0] in PACKAGES and (name.startswith("_") or "._" in f".{module}")]
    assert private == [], f"examples/{example}.py reaches into the packages: {private}"
    inside = [str(path.relative_to(ROOT)) for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
              if any(module.split(".")[0] == "examples" for module, _ in _imports(path))]
    assert inside == [], f"modules of the packages import the examples: {inside}"
