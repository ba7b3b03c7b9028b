"""The examples in the docstrings run and print what they say (every module of the packages).

An example that needs files or hardware a test machine lacks is marked ``# doctest: +SKIP`` in its
docstring; everything else runs here.
"""

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("rlenhance", "envs", "agents", "experiments", "benchmarks")


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.append(package)
        names += [info.name for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}.")
                  if not info.name.endswith("__main__")]
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} docstring example(s) of {name} failed"
