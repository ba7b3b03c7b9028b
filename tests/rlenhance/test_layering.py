"""rlenhance's layers import one way, and importing them changes nothing and loads no more than they need.

Each check that an import leaves something out runs in a fresh interpreter, so that what this test
process has already imported does not hide it.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter with this tree first on the path; its stdout, stripped."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_checkpoint_package_imports_no_model():
    """The checkpoint layer owns the constants its specs check (SUPERVISED_UPSCALES, ...); the models import them."""
    loaded = json.loads(run_python(
        "import importlib, json, pkgutil, sys\n"
        "import rlenhance.checkpoint as checkpoint\n"
        "for info in pkgutil.iter_modules(checkpoint.__path__):\n"
        "    importlib.import_module(f'rlenhance.checkpoint.{info.name}')\n"
        "for name in checkpoint.__all__:\n"
        "    getattr(checkpoint, name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    ))
    assert [name for name in loaded if name.startswith("rlenhance.models")] == []
    assert "rlenhance.checkpoint.specs" in loaded


def test_import_rlenhance_is_torch_free_and_its_names_resolve_on_first_use():
    found = json.loads(run_python(
        "import json, sys\n"
        "import rlenhance, rlenhance.errors\n"
        "before = sorted(sys.modules)\n"
        "names = {name: getattr(rlenhance, name).__module__ for name in rlenhance.__all__ if name != '__version__'}\n"
        "print(json.dumps({'before': before, 'names': names, 'dir': dir(rlenhance),\n"
        "                  'version': rlenhance.__version__}))\n"
    ))
    assert "torch" not in found["before"]
    assert [name for name in found["before"] if name.startswith("rlenhance")] == ["rlenhance", "rlenhance.errors"]
    assert found["names"] == {
        "CheckpointError": "rlenhance.errors", "DatasetError": "rlenhance.errors", "ImageError": "rlenhance.errors",
        "Enhancer": "rlenhance.enhance", "SupervisedRestorer": "rlenhance.restore",
        "load_denoiser": "rlenhance.denoisers", "load_image": "rlenhance.io", "save_image": "rlenhance.io",
    }
    assert set(found["dir"]) >= set(found["names"]) | {"__version__"}
    assert found["version"]


def test_an_unknown_name_of_rlenhance_is_an_attribute_error():
    import rlenhance

    with pytest.raises(AttributeError, match="no attribute 'Enhancr'"):
        rlenhance.Enhancr  # noqa: B018
    assert rlenhance.Enhancer is importlib.import_module("rlenhance.enhance").Enhancer


def test_importing_the_library_changes_no_global_state():
    """No module of rlenhance (the web app's page script aside) sets torch's threads or denormal flushing, or
    draws from a global generator, when imported: the entry points and the model loaders do that."""
    changed = json.loads(run_python(
        "import hashlib, importlib, json, pkgutil, random\n"
        "import cv2, numpy as np, torch\n"
        "def state():\n"
        "    return {'torch threads': torch.get_num_threads(), 'cv2 threads': cv2.getNumThreads(),\n"
        "            'denormals kept': bool((torch.tensor([1e-40]) * 1).item() != 0),\n"
        "            'default dtype': str(torch.get_default_dtype()),\n"
        "            'torch rng': hashlib.sha256(torch.random.get_rng_state().numpy().tobytes()).hexdigest(),\n"
        "            'numpy rng': hashlib.sha256(repr(np.random.get_state()).encode()).hexdigest(),\n"
        "            'random': hashlib.sha256(repr(random.getstate()).encode()).hexdigest()}\n"
        "before = state()\n"
        "import rlenhance\n"
        "for info in pkgutil.walk_packages(rlenhance.__path__, prefix='rlenhance.'):\n"
        "    if info.name not in ('rlenhance.app', 'rlenhance.__main__'):\n"
        "        importlib.import_module(info.name)\n"
        "after = state()\n"
        "assert before['denormals kept'], 'this CPU flushes denormals by default: the check cannot see a change'\n"
        "print(json.dumps({key: [before[key], after[key]] for key in before if before[key] != after[key]}))\n"
    ))
    assert changed == {}
