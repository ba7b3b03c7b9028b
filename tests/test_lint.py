"""The code stays ruff-clean (pyproject.toml's [tool.ruff] settings; skipped where ruff is not installed) and
no module is longer than MAX_MODULE_LINES."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    proc = subprocess.run([ruff, "check", "--no-cache", str(ROOT)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]


#: The longest module of the packages, in lines: a longer one is split by concept.
MAX_MODULE_LINES = 600


def test_no_module_of_the_packages_is_over_the_line_limit():
    lines = {path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
             for package in ("rlenhance", "envs", "agents", "experiments", "benchmarks")
             for path in (ROOT / package).rglob("*.py")}
    assert len(lines) > 50
    assert {path: n for path, n in lines.items() if n > MAX_MODULE_LINES} == {}
