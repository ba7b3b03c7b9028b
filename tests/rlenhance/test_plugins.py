"""rlenhance.plugins: the registration mechanism of every table of named pieces."""

import pytest

from rlenhance.plugins import Registry, import_path, is_import_path, path_of


def _positive(entry):
    if not callable(entry):
        raise TypeError("not callable")


def test_register_and_get_by_name_and_by_import_path():
    table = Registry("curve", check=_positive)

    @table.register("double")
    def double(x):
        return 2 * x

    assert table.get("double") is double
    assert table.names() == ("double",) and "double" in table and len(table) == 1
    assert table.get("tests.rlenhance.test_plugins:_positive") is _positive  # not registered: imported
    assert path_of(double).endswith("test_register_and_get_by_name_and_by_import_path.<locals>.double")
    assert import_path(path_of(_positive)) is _positive


def test_bad_names_and_paths_are_refused_with_what_is_wrong():
    table = Registry("metric", check=_positive)
    table.add("a", _positive)
    with pytest.raises(ValueError, match="metric 'a' is registered already"):
        table.add("a", print)
    table.add("a", _positive)  # the same entry again: no change
    with pytest.raises(ValueError, match="without ':'"):
        table.add("x:y", print)
    with pytest.raises(ValueError, match=r"unknown metric 'b'; registered: a"):
        table.get("b")
    with pytest.raises(ValueError, match="does not import"):
        table.get("no_such_module_xyz:thing")
    with pytest.raises(ValueError, match="has no 'nothing'"):
        table.get("math:nothing")
    with pytest.raises(ValueError, match="metric 'math:pi': not callable"):
        table.get("math:pi")
    assert is_import_path("a.b:C") and not is_import_path("le")


def test_the_modules_that_register_the_packages_own_entries_are_imported_on_the_first_lookup(tmp_path, monkeypatch):
    import sys

    (tmp_path / "lazy_entries_mod.py").write_text(
        "from tests.rlenhance.test_plugins import LAZY\n"
        "@LAZY.register('triple')\n"
        "def triple(x):\n"
        "    return 3 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    table = Registry("curve", modules=("lazy_entries_mod",))
    globals()["LAZY"] = table
    try:
        assert "lazy_entries_mod" not in sys.modules  # creating the table imports nothing
        assert table.get("triple")(2) == 6 and table.names() == ("triple",)
    finally:
        sys.modules.pop("lazy_entries_mod", None)
        del globals()["LAZY"]


def test_the_models_table_imports_no_model_until_read():
    """rlenhance.models.MODELS: the package's networks by class name, each registered by its own module."""
    import json
    import subprocess
    import sys

    code = ("import json, sys\nfrom rlenhance.models import MODELS\nbefore = 'torch' in sys.modules\n"
            "print(json.dumps([before, 'MRPNet' in MODELS, 'PixelActorCritic' in MODELS]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [False, True, True]
