"""Helpers for the trainers' interruption tests: a real subprocess stopped by a signal once it has
logged, and a signal sent to this process from inside a training loop (deterministic)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: How long a subprocess may take to log its first row (interpreter and torch start-up included).
START_TIMEOUT_S = 120.0
_POLL_S = 0.02


def _has_logged(out: Path) -> bool:
    """metrics.csv or train.csv holds a row below its header."""
    tables = (out / "metrics.csv", out / "train.csv")
    return any(table.is_file() and len(table.read_text().splitlines()) > 1 for table in tables)


@pytest.fixture
def signalled_run():
    """``signalled_run(module, argv, out, signum) -> CompletedProcess``: run ``python -m module
    *argv --out out``, send ``signum`` once its metrics.csv or train.csv holds a row (so the training loop is
    running) and wait for it to exit. ``.message`` is the last line of its stderr as a terminal
    shows it (progress bars redraw with carriage returns)."""

    def run(module: str, argv: list[str], out: Path, signum: int) -> subprocess.CompletedProcess:
        proc = subprocess.Popen([sys.executable, "-m", module, *argv, "--out", str(out)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _has_logged(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(_POLL_S)
        if proc.poll() is None:
            proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=START_TIMEOUT_S)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        result.message = stderr.strip().split("\n")[-1].split("\r")[-1]
        return result

    return run


@pytest.fixture
def signal_on_call(monkeypatch):
    """``signal_on_call(owner, name, n, signum=SIGINT, counts=None, times=1)``: wrap ``owner.name``
    so that its ``n``-th call (of those ``counts(*args, **kwargs)`` accepts) sends ``signum`` to
    this process ``times`` times when it returns, as a Ctrl-C at that moment would. Undone at the
    end of the test, or by the returned ``undo()``."""

    def install(owner, name, n, signum=signal.SIGINT, counts=None, times=1):
        original = getattr(owner, name)
        calls = [0]

        def wrapper(*args, **kwargs):
            result = original(*args, **kwargs)
            if counts is None or counts(*args, **kwargs):
                calls[0] += 1
                if calls[0] == n:
                    for _ in range(times):
                        signal.raise_signal(signum)
            return result

        monkeypatch.setattr(owner, name, wrapper)
        return lambda: monkeypatch.setattr(owner, name, original)

    return install
