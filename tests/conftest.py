import contextlib
import errno
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import cv2
import pytest
import torch

# Tests run on 2 cores; keep torch from oversubscribing when pytest-xdist runs 2 workers.
torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True)
def _restore_threads():
    """torch's and OpenCV's thread counts as they were before each test (a trainer run in this process
    takes every core)."""
    before = torch.get_num_threads(), cv2.getNumThreads()
    yield
    if (torch.get_num_threads(), cv2.getNumThreads()) != before:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


@pytest.fixture(scope="session")
def shared_dir():
    """Path to ../shared; tests that need its data skip cleanly when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    return SHARED


@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk(name)``: from then on, a file whose name starts with ``name`` (an atomic write's
    hidden temporary ``.NAME.<id>.tmp...`` included), opened with ``os.open``, takes half of the
    first ``os.write`` to it and then fails as a full disk does (``OSError(ENOSPC)``, naming no file)."""
    real_open, real_write = os.open, os.write
    full: set[int] = set()

    def opening(path, *args, **kwargs):
        fd = real_open(path, *args, **kwargs)
        if Path(path).name.lstrip(".").startswith(prefix[0]):
            full.add(fd)
        return fd

    def writing(fd, data):
        if fd in full:
            real_write(fd, bytes(data)[: max(1, len(data) // 2)])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    prefix = [""]

    def start(name: str) -> None:
        prefix[0] = name
        monkeypatch.setattr(os, "open", opening)
        monkeypatch.setattr(os, "write", writing)

    return start


@contextlib.contextmanager
def _traced_peak() -> Iterator[SimpleNamespace]:
    peak = SimpleNamespace(bytes=0)
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


@pytest.fixture
def peak_memory():
    """``with peak_memory() as peak: ...``: on exit ``peak.bytes`` is the most memory Python objects and numpy
    arrays took (tracemalloc) inside the block: what a refusal allocated before it refused."""
    return _traced_peak
