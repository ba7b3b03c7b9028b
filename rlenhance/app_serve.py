"""Serving the web app: what ``rlenhance app`` runs (``python -m streamlit run`` of :mod:`rlenhance.app`,
a browser opened once it answers). Imports no torch: ``rlenhance app --help`` answers at once."""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import webbrowser
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["APP_MAX_PIXELS", "APP_SCRIPT", "DEFAULT_PORT", "INSTALL_HINT", "page_options", "serve", "streamlit_command",
           "streamlit_missing"]

#: The page Streamlit runs (``streamlit run``).
APP_SCRIPT = Path(__file__).resolve().parent / "app.py"
#: Largest upload accepted, width x height (``rlenhance app --max-pixels``; 40 MP is 480 MB as float32).
APP_MAX_PIXELS = 40_000_000
#: How to install the app's dependencies.
INSTALL_HINT = "pip install 'rlenhance[app]'"
#: Default Streamlit port.
DEFAULT_PORT = 8501
#: Seconds ``serve`` waits for the server before giving up on opening a browser.
_STARTUP_SECONDS = 60.0


def page_options(argv: Sequence[str]) -> argparse.Namespace:
    """The page's options (given by :func:`serve` after ``--``); arguments it does not know are ignored."""
    parser = argparse.ArgumentParser(prog="rlenhance app", add_help=False, allow_abbrev=False)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-pixels", type=int, default=APP_MAX_PIXELS)
    return parser.parse_known_args(list(argv))[0]


def streamlit_command(*, port: int = DEFAULT_PORT, host: str = "localhost",
                      checkpoint: str | os.PathLike[str] | None = None, device: str = "auto",
                      max_pixels: int = APP_MAX_PIXELS) -> list[str]:
    """The ``python -m streamlit run`` command line that serves the page: headless, no usage statistics, no
    file watcher."""
    command = [sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT),
               "--server.port", str(port), "--server.address", host, "--server.headless", "true",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
               "--global.developmentMode", "false",
               "--client.toolbarMode", "minimal", "--",
               "--device", device, "--max-pixels", str(max_pixels)]
    if checkpoint is not None:
        command += ["--checkpoint", str(Path(checkpoint).resolve())]
    return command


def _display_available() -> bool:
    """Whether a browser window can open here (on Linux: a graphical session)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _open_when_ready(url: str, health: str, process: subprocess.Popen) -> None:
    """Open ``url`` in the user's browser once the server answers ``health`` (or give up)."""
    deadline = time.monotonic() + _STARTUP_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(health, timeout=1.0):
                webbrowser.open(url)
                return
        except OSError:
            time.sleep(0.25)


def streamlit_missing() -> str | None:
    """Why the app cannot be served (Streamlit is not installed, with how to install it), or None."""
    if importlib.util.find_spec("streamlit") is None:
        return f"the web app needs Streamlit, which is not installed; install it with: {INSTALL_HINT}"
    return None


def serve(*, port: int = DEFAULT_PORT, host: str = "localhost", checkpoint: str | os.PathLike[str] | None = None,
          device: str = "auto", max_pixels: int = APP_MAX_PIXELS, open_browser: bool = True,
          run: Callable[..., subprocess.Popen] = subprocess.Popen) -> int:
    """Serve the app until Ctrl-C (what ``rlenhance app`` runs: :func:`streamlit_command` as a child process,
    the page opened once the server answers); returns the exit code, 2 without Streamlit (starting nothing).

    Raises:
        ValueError: ``port`` is not in 1..65535.
    """
    missing = streamlit_missing()
    if missing:
        print(f"rlenhance app: {missing}", file=sys.stderr)
        return 2
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port: expected a port number in 1..65535, got {port!r}")
    shown = "localhost" if host in ("0.0.0.0", "::", "127.0.0.1") else host
    url = f"http://{shown}:{port}"
    local = "127.0.0.1" if host in ("0.0.0.0", "localhost") else ("::1" if host == "::" else host)
    health = f"http://{'[' + local + ']' if ':' in local else local}:{port}/_stcore/health"
    print(f"rlenhance app: serving {url} (Ctrl-C stops it)", flush=True)
    process = run(streamlit_command(port=port, host=host, checkpoint=checkpoint, device=device,
                                    max_pixels=max_pixels))
    if open_browser and _display_available():
        threading.Thread(target=_open_when_ready, args=(url, health, process), daemon=True).start()
    if threading.current_thread() is threading.main_thread():  # a plain kill stops the server too
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        return process.wait()
    except KeyboardInterrupt:  # Ctrl-C reached Streamlit too (same process group): let it finish
        _stop(process, grace=10.0)
        return 0
    finally:
        _stop(process, grace=0.0)  # SIGTERM or an error here: end the server now


def _stop(process: subprocess.Popen, *, grace: float) -> None:
    """Give a running server ``grace`` seconds to finish, then terminate it (kill after 10 s more)."""
    if process.poll() is None and grace > 0:
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
