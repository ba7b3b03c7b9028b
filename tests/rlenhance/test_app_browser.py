"""`rlenhance app` in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

Starts the app on 127.0.0.1 as a user would (`python -m rlenhance app`), uploads a dark photo,
moves the exposure slider, waits for the result to change, and downloads it. Skips with a one-line
reason when Streamlit, Playwright or Chromium is missing (.ci/run installs them).

Also a script that takes the README's screenshot (docs/app.png)::

    python tests/rlenhance/test_app_browser.py docs/app.png
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

#: Chromium flags that work headless as root in a container, with nothing fetched from outside.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
NO_PLAYWRIGHT = "playwright not installed (pip install 'rlenhance[browser]')"
NO_STREAMLIT = "streamlit not installed (pip install 'rlenhance[app]')"
STARTUP_SECONDS = 60
WAIT_MS = 30_000


def chromium_or_skip() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(workdir: Path, home: Path):
    """`python -m rlenhance app` on a free localhost port, in its own process group; yields the URL."""
    port = free_port()
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache"), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("DISPLAY", None)
    log = workdir.parent / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "rlenhance", "app", "--port", str(port), "--host", "127.0.0.1",
                                   "--device", "cpu", "--no-browser"], cwd=workdir, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as answer:
                    if answer.read() == b"ok":
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the app did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.25)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)  # the command and the Streamlit server it started
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@contextlib.contextmanager
def browser_page(width: int = 1400, height: int = 1000):
    """A fresh headless Chromium page (Playwright's own temporary profile)."""
    chromium = chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
        finally:
            browser.close()


def open_with_photo(page, url: str, photo: Path) -> None:
    """Load the app and upload ``photo`` in the Enhance tab; wait for the result."""
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_text("Target brightness").first.wait_for(timeout=WAIT_MS)
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="Photos")
    uploader.locator('input[type="file"]').set_input_files(str(photo))
    page.get_by_text("After: mean brightness").first.wait_for(timeout=WAIT_MS)


def after_image(page):
    """(src, caption) of the enhanced image."""
    figure = page.locator('[data-testid="stImage"]').filter(has_text="After: mean brightness").first
    return figure.locator("img").get_attribute("src"), figure.inner_text().strip()


def wait_for_new_result(page, old_src: str) -> None:
    """Wait until the enhanced image is no longer ``old_src`` and the run that made it has finished
    (no element left stale: a button of the previous run would download the previous result)."""
    page.wait_for_function(
        """([old]) => [...document.querySelectorAll('[data-testid="stImage"]')]
               .some(f => f.innerText.includes('After: mean brightness') && f.querySelector('img').src !== old)
             && !document.querySelector('[data-stale="true"]')
             && !document.querySelector('[data-testid="stStatusWidget"]')""",
        arg=[old_src], timeout=WAIT_MS)


def dark_photo(folder: Path) -> Path:
    from rlenhance import app_support

    name, data, _ = app_support.sample_photo("lowlight")
    path = folder / name
    path.write_bytes(data)
    return path


def test_upload_move_a_slider_see_the_change_and_download(tmp_path):
    pytest.importorskip("streamlit", reason=NO_STREAMLIT)
    chromium_or_skip()
    pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT)
    workdir, home, downloads = tmp_path / "cwd", tmp_path / "home", tmp_path / "downloads"
    for folder in (workdir, home, downloads):
        folder.mkdir()
    photo = dark_photo(tmp_path)
    with serving(workdir, home) as url, browser_page() as page:
        open_with_photo(page, url, photo)
        src, caption = after_image(page)
        slider = page.get_by_role("slider", name="Target brightness (exposure)")
        slider.focus()
        for _ in range(20):  # 0.40 -> 0.60, one step of 0.01 a key
            slider.press("ArrowRight")
        wait_for_new_result(page, src)
        new_src, new_caption = after_image(page)
        assert new_src != src and new_caption != caption
        before_mean, after_mean = (float(c.split("mean brightness ")[1].split()[0]) for c in (caption, new_caption))
        assert after_mean > before_mean + 0.1  # a higher exposure target gives a brighter result
        with page.expect_download(timeout=WAIT_MS) as download_info:
            page.get_by_role("button", name="Download the result").click()
        download = download_info.value
        target = downloads / download.suggested_filename
        download.save_as(target)
        assert download.suggested_filename == "astronaut_dark_enhanced.png"
        result = np.asarray(Image.open(target))
        assert result.shape == (512, 512, 3)
        assert abs(result.mean() / 255 - after_mean) < 0.01  # the result shown, at full size
    # nothing written outside temporary folders, but for the compiled kernels in the user's cache folder
    assert not any(workdir.iterdir())
    assert [p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file()] in (
        [], [f".cache/rlenhance/native/{p.name}" for p in (home / ".cache/rlenhance/native").glob("*.so")])


def screenshot(path: Path, *, width: int = 1280, scale: float = 0.7) -> None:
    """Take the README's screenshot of the Enhance tab: a darkened photo at exposure 0.55, with the
    agent's steps open; the page from the title to the download button, scaled by ``scale``, as a
    256-colour PNG."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "cwd").mkdir()
        (root / "home").mkdir()
        photo = dark_photo(root)
        with serving(root / "cwd", root / "home") as url, browser_page(width, 1000) as page:
            open_with_photo(page, url, photo)
            src, _ = after_image(page)
            slider = page.get_by_role("slider", name="Target brightness (exposure)")
            slider.focus()
            for _ in range(15):  # 0.40 -> 0.55
                slider.press("ArrowRight")
            wait_for_new_result(page, src)
            page.get_by_text("What the agent did, step by step").click()
            page.get_by_text("after step 8").wait_for(timeout=WAIT_MS)
            page.mouse.move(0, 0)
            page.wait_for_timeout(1500)  # the expander opens with an animation
            # the page scrolls inside its main block: back to the top, then grow the window to the download button
            to_top = "document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })"
            page.evaluate(to_top)
            last = page.get_by_role("button", name="Download the result").bounding_box()
            page.set_viewport_size({"width": width, "height": int(last["y"] + last["height"]) + 24})
            page.wait_for_timeout(800)
            page.evaluate(to_top)
            top = page.locator("h1").first.bounding_box()["y"] - 24
            shot = Image.open(io.BytesIO(page.screenshot()))
    shot = shot.convert("RGB").crop((0, max(0, int(top)), shot.width, shot.height))
    shot = shot.resize((round(shot.width * scale), round(shot.height * scale)), Image.LANCZOS)
    shot.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


if __name__ == "__main__":
    screenshot(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/app.png"))
