"""What the examples' tests share: that an example plugs in from outside the packages, commands run in a
fresh interpreter (which finds an example only by its import path), and tiny low-light runs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from rlenhance.io import save_image

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


#: ``experiments.lol_train --preset global-light`` (no references needed) at its smallest: 2 episodes of 2
#: steps on 2 crops of 32 px, one evaluation.
TINY_LOL = ["--preset", "global-light", "--episodes", "2", "--eval-every", "2", "--batch", "2", "--crop", "32",
            "--steps", "2", "--test-steps", "2", "--eval-size", "48", "--width", "8", "--samples", "1", "--threads",
            "1", "--set", "task.min_steps=none"]


def run_fresh(*argv: str) -> subprocess.CompletedProcess:
    """``python *argv`` in a fresh interpreter at the repository root (so ``examples.*`` imports by path, as a
    user's own file does); fails the test, with its stderr, unless it exits 0."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


def write_dark_pairs(folder: Path, count: int = 2, size: int = 40, seed: int = 0) -> Path:
    """``count`` RGB pairs of ``size`` px: ``high/k.png`` random levels in [0.2, 0.9], ``low/k.png`` a fifth of
    them; returns ``folder``."""
    rng = np.random.default_rng(seed)
    for k in range(count):
        high = rng.uniform(0.2, 0.9, (size, size, 3)).astype(np.float32)
        save_image(folder / "high" / f"{k}.png", high)
        save_image(folder / "low" / f"{k}.png", high * 0.2)
    return folder
