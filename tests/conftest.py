from pathlib import Path

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
