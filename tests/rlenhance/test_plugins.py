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
