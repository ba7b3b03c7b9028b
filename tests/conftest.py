import contextlib
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

# Tests run on 2 cores; keep torch from oversubscribing when pytest-xdist runs 2 workers.
torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir():
    """Path to ../shared; tests that need its data skip cleanly when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    return SHARED


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
