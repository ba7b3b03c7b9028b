"""rlenhance's layers import one way, and importing them changes nothing and loads no more than they need.

Each check that an import leaves something out runs in a fresh interpreter, so that what this test
process has already imported does not hide it.
"""

from __future__ import annotations

import ast
import graphlib
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
        "load_denoiser": "rlenhance.denoisers", "load_image": "rlenhance.io.read", "save_image": "rlenhance.io.write",
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


# --- the import graph, read from the source -------------------------------------------------------------
PACKAGE = ROOT / "rlenhance"
#: rlenhance's layers, lowest first: a module may import its own layer and those below, never one above.
LAYERS = (
    ("core", ("rlenhance.errors", "rlenhance.io", "rlenhance.atomic", "rlenhance.runtime", "rlenhance.ops",
              "rlenhance.metrics", "rlenhance.losses", "rlenhance.data", "rlenhance.baselines", "rlenhance.transitions",
              "rlenhance.noise_estimate", "rlenhance.trace", "rlenhance.submission", "rlenhance.plugins",
              "rlenhance.tasks", "rlenhance.temporal")),
    ("checkpoint", ("rlenhance.checkpoint",)),  # files and typed specs; owns no network
    ("models", ("rlenhance.models",)),  # architectures
    ("inference", ("rlenhance.registry", "rlenhance.enhance", "rlenhance.restore", "rlenhance.predictors",
                   "rlenhance.rollouts", "rlenhance.denoisers", "rlenhance.rse", "rlenhance.completion",
                   "rlenhance.export")),
    ("entry points", ("rlenhance.cli", "rlenhance.app", "rlenhance.app_support", "rlenhance.app_serve",
                      "rlenhance.__main__", "rlenhance")),
)
#: The packages rlenhance never imports: it is what applying a trained model needs.
OUTSIDE = ("envs", "agents", "experiments", "benchmarks")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path, module: str, known: set[str]) -> set[str]:
    """Every module ``path`` (the module ``module``) imports: module-level and function-level import
    statements, relative ones, and ``importlib.import_module("...")`` calls with a constant name.
    ``from package import name`` counts as an import of ``package.name`` when that is a module of
    ``known``, else of ``package``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) \
                and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) == "import_module":
            found.add(node.args[0].value)
    return {name for name in found if name.split(".")[0] in ("rlenhance", *OUTSIDE)} - {module}


def layer_of(module: str) -> int | None:
    """The index in :data:`LAYERS` of a module of rlenhance (by its longest prefix), or None."""
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            exact_only = prefix == "rlenhance"  # the package itself, not everything under it
            if module == prefix or (not exact_only and module.startswith(prefix + ".")):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    return None if best is None else best[0]


def import_graph() -> dict[str, set[str]]:
    modules = library_modules()
    return {module: imported_modules(path, module, set(modules)) for module, path in modules.items()}


def test_every_library_module_has_a_layer():
    assert [module for module in library_modules() if layer_of(module) is None] == []


def test_imports_go_one_way_through_the_layers():
    """core -> checkpoint -> models -> inference -> cli / app, and never to envs / agents / experiments."""
    wrong = []
    for module, imports in import_graph().items():
        for target in sorted(imports):
            if target.split(".")[0] in OUTSIDE:
                wrong.append(f"{module} imports {target}, outside the library")
            elif layer_of(target) is None:
                wrong.append(f"{module} imports {target}, which is not a module of rlenhance")
            elif layer_of(target) > layer_of(module):
                wrong.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                             f"({LAYERS[layer_of(target)][0]}), a higher layer")
    assert wrong == []


def test_the_library_has_no_import_cycle():
    graph = {module: {target for target in imports if target.startswith("rlenhance")}
             for module, imports in import_graph().items()}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_the_graph_reader_sees_lazy_relative_and_importlib_imports(tmp_path):
    (tmp_path / "pkg").mkdir()
    source = tmp_path / "pkg" / "mod.py"
    source.write_text(
        "import importlib\n"
        "from rlenhance.checkpoint import load_checkpoint\n"
        "from . import sibling\n"
        "from .other import thing\n"
        "def late():\n"
        "    from rlenhance.models import rse\n"
        "    import agents.a3c\n"
        "    return importlib.import_module('envs.lowlight')\n"
    )
    known = {"rlenhance.models.rse", "pkg.sibling"}
    assert imported_modules(source, "pkg.mod", known) == {"rlenhance.checkpoint", "rlenhance.models.rse",
                                                          "agents.a3c", "envs.lowlight"}
    assert imported_modules(source, "rlenhance.pkg.mod", {"rlenhance.pkg.sibling"}) >= {"rlenhance.pkg.sibling",
                                                                                        "rlenhance.pkg.other"}
    assert layer_of("rlenhance") == layer_of("rlenhance.cli") == len(LAYERS) - 1
    assert layer_of("rlenhance.checkpoint.specs") == 1 and layer_of("rlenhance.models.rse") == 2


# --- the command line answers --help without torch ----------------------------------------------------
COMMANDS = ("enhance", "denoise", "complete", "export", "export-csv", "app")


@pytest.mark.parametrize("argv", [["--help"], ["--version"], *([command, "--help"] for command in COMMANDS)],
                         ids=lambda argv: " ".join(argv))
def test_help_imports_no_torch(argv):
    """``rlenhance --help`` and each command's ``--help`` are answered from the registry and the defaults
    of torch-free modules: the help is printed, and torch was never imported."""
    found = json.loads(run_python(
        "import contextlib, io, json, sys\n"
        "from rlenhance.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit as exit:\n"
        "        code = exit.code\n"
        "print(json.dumps({'code': code, 'text': out.getvalue(), 'torch': 'torch' in sys.modules}))\n"
    ))
    assert found["code"] == 0 and found["text"]
    assert not found["torch"], f"rlenhance {' '.join(argv)} imported torch"


def test_the_registry_imports_no_torch_and_names_every_shipped_weight():
    """The registry is read by --help (no torch); every file in rlenhance/weights/ is the default of a method
    or one of its alternatives."""
    found = json.loads(run_python(
        "import json, sys\n"
        "from rlenhance import registry\n"
        "names = sorted(n for m in registry.methods() for n in (*m.weights.values(), *m.alternatives))\n"
        "print(json.dumps({'names': names, 'torch': 'torch' in sys.modules}))\n"
    ))
    assert not found["torch"]
    shipped = sorted(path.name for path in (PACKAGE / "weights").glob("*.pt"))
    assert set(shipped) <= set(found["names"]), set(shipped) - set(found["names"])
