"""The README tells the truth: its quick-start block runs as written (with smaller sizes), in order,
in an empty folder, and its table of low-light settings is the shipped model's.

Edit :data:`SMALLER` when a command's size flags change; everything else is read from README.md.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: Flags added to a quick-start command (matched by its start) so that the block runs in seconds.
SMALLER = {
    "python -m rlenhance.data.samples": ["--size", "48"],
    "python -m experiments.lol_train": ["--episodes", "2", "--eval-every", "2", "--batch", "2", "--crop", "32",
                                        "--steps", "4", "--test-steps", "2", "--eval-size", "48", "--width", "8",
                                        "--samples", "1", "--threads", "1"],
    "python -m experiments.compare": ["--threads", "1", "--samples", "1", "--no-warmup"],
}


def readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, f"README.md has no section '## {title}'"
    return match.group(1)


def quick_start_commands() -> list[list[str]]:
    """The first fenced block of the Quick start section, one argv per command (comments dropped,
    backslash continuations joined)."""
    block = re.search(r"^```\n(.*?)^```", readme_section("Quick start"), re.S | re.M)
    assert block, "the Quick start section has no fenced block"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.strip()]


def run(argv: list[str]) -> int:
    """Run one README command as the shell would: ``rlenhance ...`` through the CLI's ``main``,
    ``python -m MODULE ...`` in a fresh interpreter (running a trainer's ``__main__`` in this one would
    leave its config classes defined in ``__main__`` for the tests that follow). Returns the exit code."""
    if argv[0] == "rlenhance":
        from rlenhance.cli import main

        return main(argv[1:])
    assert argv[:2] == ["python", "-m"], f"README command neither 'rlenhance' nor 'python -m': {argv}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
    return proc.returncode


def smaller(argv: list[str]) -> list[str]:
    command = " ".join(argv)
    for start, flags in SMALLER.items():
        if command.startswith(start):
            return [*argv, *flags]
    return argv


def test_quick_start_parses_into_commands():
    commands = quick_start_commands()
    assert len(commands) >= 5
    assert all(c[0] in ("rlenhance", "python") for c in commands)


@pytest.mark.slow
def test_quick_start_runs_in_order_in_an_empty_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv in quick_start_commands():
        code = run(smaller(argv))
        assert code == 0, f"README quick start: {shlex.join(argv)} exited with {code}"
    for folder in ("out/enhanced", "out/brighter", "out/denoised", "out/filled", "out/filled_auto", "out/mine"):
        assert any((tmp_path / folder).glob("*.png")), f"{folder} has no image"
    assert (tmp_path / "out/submission.csv").stat().st_size > 0
    assert (tmp_path / "runs/compare/report.md").is_file()
    for block in re.findall(r"^```python\n(.*?)^```", readme_section("Quick start"), re.S | re.M):
        exec(compile(block, "README.md", "exec"), {})  # the Python example, on the files written above
    assert (tmp_path / "out.png").is_file()


def settings_table() -> dict[str, tuple[float, float, float]]:
    """``{name: (low, high, default)}`` of the README's table of low-light settings."""
    rows = {}
    for line in readme_section("Customise the low-light look").splitlines():
        match = re.match(r"\| `(\w+)` \| ([\d.]+) to ([\d.]+) \| ([\d.]+) \|", line)
        if match:
            rows[match.group(1)] = tuple(float(v) for v in match.group(2, 3, 4))
    return rows


def test_settings_table_is_the_shipped_models():
    from rlenhance import Enhancer

    enhancer = Enhancer(device="cpu")
    trained = {name: ("exposure_target" if name == "exposure" else name) for name in enhancer.setting_ranges}
    table = settings_table()
    assert set(table) == set(trained), "README settings table: names differ from Enhancer().setting_ranges"
    for name, (low, high, default) in table.items():
        assert (low, high) == pytest.approx(enhancer.setting_ranges[name], rel=1e-6), name
        assert default == pytest.approx(enhancer.spec.setting[trained[name]], rel=1e-6), name


def test_the_readme_fits_in_12_kb():
    """The front page stays short: the rest is in docs/ (it opens with the main job and the tests, and
    keeps its quick start: the tests above)."""
    size = README.stat().st_size
    assert size <= 12_000, f"README.md holds {size} bytes; it fits in 12 KB (move detail to docs/)"


def test_the_readme_opens_with_the_main_job_and_the_test_command():
    """The first lines install and run the main job on the embedded default, then install and run the
    tests; CI (.ci/run) runs the first line that starts a venv and ends in pytest."""
    head = README.read_text(encoding="utf-8").splitlines()[:20]
    commands = [line for line in head if line.startswith("python3 -m venv")]
    assert len(commands) == 2, commands
    assert commands[0].endswith("-m experiments.lol_train")
    assert re.match(r"^python3 -m venv .* pytest", commands[1]) and commands[1].endswith(" tests")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "grep -m1 -E '^python3 -m venv .* pytest' README.md" in ci
