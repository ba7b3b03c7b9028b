"""One config per run: a frozen dataclass of sections (fields with one-line docstrings, as in CleanRL).

:func:`parse` resolves a command line, later winning: the defaults, ``--preset NAME`` (:class:`Preset`),
``--config FILE`` (TOML / JSON of nested sections, or a run folder to re-run), the trainer's named flags
(``--episodes`` -> ``run.episodes``), then ``--set KEY=VALUE`` (repeatable). ``--print-config`` prints the
result as JSON (a valid ``--config`` file). An unknown key, a wrong type or a choice outside a ``Literal``
is a ValueError naming the key.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import math
import re
import textwrap
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlenhance.cli.parser import HintingParser
from rlenhance.errors import NO_SUCH_FILE, not_a_file

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

LIST_PRESETS = "list"  # --preset list prints the presets
RUN_METADATA = ("world_size", "trainer")  # a run's config.json keys beside the config
CONFIG_BYTES_MOST = 2**20
_NONE, _TRUE, _FALSE = ("none", "null"), ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True)
class Cost:
    """What a preset costs on one kind of device, as ``benchmarks.preset_cost`` measures it."""

    step_s: float
    """seconds per training unit: an RL episode, a supervised step"""
    eval_s: float = 0.0
    """seconds per evaluation"""


@dataclass(frozen=True)
class Preset:
    """A named config: ``preset()`` returns it, ``build``'s docstring says what it reproduces; ``cpu`` /
    ``cuda``: its measured cost on 2 CPU cores and on one GPU (None: not measured), shown by ``--help``."""

    build: Callable[[], Any]
    cpu: Cost | None = None
    cuda: Cost | None = None

    def __call__(self) -> Any:
        return self.build()

    @property
    def doc(self) -> list[str]:
        return inspect.cleandoc(self.build.__doc__ or "").splitlines()


def field_docs(config_class: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (or its fields' ``metadata["doc"]``), by field name, one line each."""
    docs = {f.name: f.metadata["doc"] for f in dataclasses.fields(config_class) if "doc" in f.metadata}
    for klass in [k for k in reversed(config_class.__mro__) if dataclasses.is_dataclass(k)]:
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        except (OSError, TypeError):
            continue
        docs.update({node.target.id: " ".join(after.value.value.split()) for node, after in zip(body, body[1:])
                     if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                     and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                     and isinstance(after.value.value, str)})
    return docs


def arg(default: Any, doc: str) -> Any:
    """A setting whose help is ``doc``, on one line (where an attribute docstring would take two)."""
    return dataclasses.field(default=default, metadata={"doc": doc})


def flat_flags(config_class: type) -> dict[str, str]:
    """A flag for each setting of a config without sections: ``--split-seed`` -> ``split_seed``."""
    return {path.replace("_", "-"): path for path in paths(config_class)}


def to_dict(config: Any) -> dict[str, Any]:
    """The config as nested dicts of JSON values (tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=list))


def paths(config_class: type, prefix: str = "") -> dict[str, tuple[type, Any]]:
    """Every leaf setting of a config class: dotted path -> (its type, the dataclass holding it)."""
    hints, out = typing.get_type_hints(config_class), {}
    for f in dataclasses.fields(config_class):
        kind = hints[f.name]
        out.update(paths(kind, f"{prefix}{f.name}.") if dataclasses.is_dataclass(kind)
                   else {prefix + f.name: (kind, config_class)})
    return out


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts (:func:`to_dict`) as one dict of dotted paths (tuples as lists)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        out.update(flatten(value, f"{prefix}{key}.") if isinstance(value, Mapping)
                   else {prefix + key: list(value) if isinstance(value, tuple) else value})
    return out


def preset_of(config: Any, presets: Mapping[str, Preset], ignore: Sequence[str] = (),
              check: Callable[[Any, Any], Any] | None = None) -> str | None:
    """The name of the preset whose config ``config`` is but for the dotted settings ``ignore``; None if
    none. ``check``: the trainer's, which ``config`` went through (it fills in derived settings)."""
    mine = flatten(to_dict(config))
    for name, preset in presets.items():
        start = preset()
        theirs = flatten(to_dict(start if check is None else check(start, start)))
        if all(theirs.get(k) == v for k, v in mine.items() if k not in ignore):
            return name
    return None


def get_path(config: Any, path: str) -> Any:
    """The value at a dotted path (``"run.episodes"``)."""
    for name in path.split("."):
        config = getattr(config, name)
    return config


def replace_path(config: Any, changes: Mapping[str, Any]) -> Any:
    """A copy of ``config`` with the dotted paths of ``changes`` set (values coerced to the field types)."""
    nested: dict[str, Any] = {}
    for path, value in changes.items():
        node = nested
        *parents, leaf = path.split(".")
        for name in parents:
            node = node.setdefault(name, {})
            if not isinstance(node, dict):
                raise ValueError(f"{path}: {name} is a setting, not a section")
        node[leaf] = value
    return from_dict(type(config), nested, base=config)


def from_dict(config_class: type, data: Mapping[str, Any], *, base: Any = None, where: str = "") -> Any:
    """The config ``base`` (default: the class's defaults) with the nested values of ``data`` set; a section
    class's static ``upgrade(data) -> data`` translates older files' settings first. ValueError names a bad key."""
    base = config_class() if base is None else base
    if not isinstance(data, Mapping):
        raise ValueError(f"{where.rstrip('.') or 'config'}: expected a section (a table of settings), got {data!r}")
    if hasattr(config_class, "upgrade"):
        data = config_class.upgrade(dict(data))
    hints = typing.get_type_hints(config_class)
    known = {f.name for f in dataclasses.fields(config_class)}
    changes = {}
    for key, value in data.items():
        path = f"{where}{key}"
        if key not in known:
            raise ValueError(f"unknown setting {path!r}; {where.rstrip('.') or 'the config'} has: "
                             f"{', '.join(sorted(known))}")
        kind = hints[key]
        changes[key] = (from_dict(kind, value, base=getattr(base, key), where=f"{path}.")
                        if dataclasses.is_dataclass(kind) else coerce(value, kind, path))
    return dataclasses.replace(base, **changes)


def coerce(value: Any, kind: Any, path: str) -> Any:
    """``value`` (from JSON, TOML or a ``--set`` string) as a value of type ``kind``; ValueError names ``path``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    text = value.strip() if isinstance(value, str) else None
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or (text is not None and text.lower() in _NONE)):
            return None  # "none" / "null" is None for every optional setting, a str | None one too
        errors = []
        for option in [a for a in args if a is not type(None)]:
            try:
                return coerce(value, option, path)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if len(errors) == 1 else
                         f"{path}: {value!r} is none of {str(kind).replace('typing.', '')}")
    if origin is typing.Literal:
        for choice in args:
            try:
                if coerce(value, type(choice), path) == choice:
                    return choice
            except ValueError:
                pass
        raise ValueError(f"{path}: {value!r} is not one of {', '.join(map(str, args))}")
    if origin is tuple:
        items = _items(value, path)
        if args and args[-1] is Ellipsis:
            return tuple(coerce(v, args[0], path) for v in items)
        if len(items) != len(args):
            raise ValueError(f"{path}: expected {len(args)} values, got {list(items)}")
        return tuple(coerce(v, a, path) for v, a in zip(items, args))
    if kind is bool:
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"{path}: expected true or false, got {value!r}")
    if kind in (int, float):
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else text
        try:
            if number is None or (kind is int and isinstance(number, float) and not number.is_integer()):
                raise ValueError
            number = kind(number)
        except ValueError:
            raise ValueError(f"{path}: expected {'an integer' if kind is int else 'a number'}, got {value!r}") from None
        if math.isnan(number):
            raise ValueError(f"{path}: got NaN (not a number); expected a number")
        return number
    if kind is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{path}: expected a string, got {value!r}")
    raise TypeError(f"{path}: unsupported setting type {kind!r}")


def _items(value: Any, path: str) -> list[Any]:
    """A list value: a JSON / TOML list, or a string of items separated by commas or spaces."""
    if isinstance(value, (list, tuple, int, float)):
        return list(value) if isinstance(value, (list, tuple)) else [value]
    if not isinstance(value, str):
        raise ValueError(f"{path}: expected a list, got {value!r}")
    if not value.strip().startswith("["):
        return value.replace(",", " ").split()
    try:
        return list(json.loads(value))
    except json.JSONDecodeError:
        raise ValueError(f"{path}: {value!r} is not a JSON list") from None


def read_settings(path: Path) -> dict[str, Any]:
    """The table of settings in a TOML (``.toml``) or JSON file; FileNotFoundError or ValueError says why not."""
    problem = not_a_file(path)
    if problem:
        raise (FileNotFoundError if problem == NO_SUCH_FILE else ValueError)(problem)
    size = path.stat().st_size
    if size > CONFIG_BYTES_MOST:
        raise ValueError(f"{size:,} bytes, more than a config's {CONFIG_BYTES_MOST:,}")
    try:
        raw = path.read_bytes()
        if path.suffix == ".toml" and tomllib is None:
            raise ValueError("reading TOML needs Python 3.11 or later; give a JSON file")
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw.decode())
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    except RecursionError:
        raise ValueError("nested too deeply to read (a config is sections of settings)") from None
    except ValueError as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"holds a {type(data).__name__}, not a table of settings")
    return data


def load_file(path: str | Path) -> dict[str, Any]:
    """The nested settings of a ``--config`` file; a run folder stands for its ``config.json``, whose
    bookkeeping keys and ``run.resume`` are dropped (it starts a new run)."""
    path = Path(path) / "config.json" if Path(path).is_dir() else Path(path)
    try:
        data = read_settings(path)
    except (FileNotFoundError, ValueError) as exc:
        raise type(exc)(f"--config {path}: {exc}; expected a .toml or .json config, or a run folder") from None
    data = {k: v for k, v in data.items() if k not in RUN_METADATA}
    if path.name == "config.json" and isinstance(data.get("run"), dict):  # a run's: re-run it as a new run
        data["run"] = {k: v for k, v in data["run"].items() if k != "resume"}
    return data


def unused_section(config: Any, name: str, why: str, base: Any = None) -> Any:
    """``config`` with section ``name``, which does not apply to this run (``why``), at its defaults; ValueError
    names a setting of it that is neither its default nor ``base``'s (the preset's): one that would be ignored."""
    default = getattr(type(config)(), name)
    section, start = getattr(config, name), default if base is None else getattr(base, name)
    changed = [f"{name}.{f.name}" for f in dataclasses.fields(section)
               if getattr(section, f.name) not in (getattr(start, f.name), getattr(default, f.name))]
    if changed:
        raise ValueError(f"{', '.join(changed)}: {why}; these settings would be ignored")
    return dataclasses.replace(config, **{name: default})


def parse(config_class: type, argv: Sequence[str] | None = None, *, presets: Mapping[str, Preset] | None = None,
          flags: Mapping[str, str] | None = None, prog: str | None = None, description: str | None = None,
          check: Callable[[Any, Any], Any] | None = None, estimate: Callable[[Any, Cost], float] | None = None) -> Any:
    """Read a command line into a ``config_class`` (see the module docstring).

    Args:
        flags: the named flags: flag name (``"episodes"``: ``--episodes``) -> dotted setting path.
        check: called on the resolved config and the one its settings went on (the preset, or the defaults);
            raises ValueError naming a bad setting; its result is returned.
        estimate: ``(config, cost) -> seconds`` of a whole run: ``--help`` shows each preset's time.
    """
    presets, flags, leaves, defaults = dict(presets or {}), dict(flags or {}), paths(config_class), config_class()
    dests = {name: "flag_" + name.replace("-", "_") for name in flags}
    preset_lines = [textwrap.fill(f"{name}: {' '.join(preset.doc)} {_cost_text(preset, estimate)}", 100,
                                  initial_indent="  ", subsequent_indent="    ") for name, preset in presets.items()]
    epilog = ("Every setting is in the config: --print-config shows them all with their values;\n"
              "change any with --set SECTION.KEY=VALUE, or put them in a TOML / JSON file for --config.")
    if preset_lines:
        epilog = "presets:\n" + "\n".join(preset_lines) + "\n\n" + epilog
    description = description or inspect.cleandoc(config_class.__doc__ or "").partition("\n")[0]
    parser = HintingParser(prog=prog, description=description, epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    if presets:
        parser.add_argument("--preset", choices=(*presets, LIST_PRESETS), metavar="NAME",
                            help=f"start from a named config ({', '.join(presets)}; listed below, and by --preset "
                                 f"{LIST_PRESETS})")
    parser.add_argument("--config", metavar="FILE", help="TOML or JSON settings (any subset), or a run folder / "
                                                         "its config.json to re-run it")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="set any nested setting, e.g. run.seed=1 (repeatable; applied last)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    for name, path in flags.items():
        kind, holder = leaves[path]
        leaf = path.rsplit(".", 1)[-1]
        doc = field_docs(holder).get(leaf, leaf.replace("_", " ")).rstrip(".")
        default = get_path(defaults, path)
        shown = "none" if default is None else (" ".join(map(_short, default)) if isinstance(default, tuple)
                                                else _short(default))
        options: dict[str, Any] = {"dest": dests[name], "default": None,
                                   "help": f"{doc} [{path}; {shown}]".replace("%", "%%")}
        inner = [a for a in typing.get_args(kind) if a is not type(None)] \
            if typing.get_origin(kind) in (typing.Union, types.UnionType) else [kind]
        base = inner[0] if len(inner) == 1 else str
        if base is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) is tuple:
            options.update(nargs="+", metavar="V")
        else:
            options["metavar"] = leaf.upper() if typing.get_origin(base) is not typing.Literal else \
                "{" + ",".join(map(str, typing.get_args(base))) + "}"
        parser.add_argument("--" + name, **options)

    args, unknown = parser.parse_known_args(argv)
    preset = getattr(args, "preset", None)
    if preset == LIST_PRESETS:  # each preset's name, its docstring's first sentence and its cost
        width = max(map(len, presets)) + 2
        for name, listed in presets.items():
            first = re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(listed.doc), maxsplit=1)[0]
            print(textwrap.fill(f"{first} {_cost_text(listed, estimate)}".strip(), 100,
                                initial_indent=name.ljust(width), subsequent_indent=" " * width))
        raise SystemExit(0)
    if unknown:  # name the --set key of a flag that became a setting
        first = next((u for u in unknown if u.startswith("--")), unknown[0])
        name = first[2:].split("=", 1)[0].replace("-", "_")
        matches = [p for p in leaves if p.rsplit(".", 1)[-1] == name.removeprefix("no_")]
        hint = f"; it is a setting: --set {matches[0]}=VALUE" if matches else ""
        parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}" + "".join(f" (or {m})" for m in matches[1:]))
    config = start = presets[preset]() if preset is not None else defaults
    if args.config is not None:
        config = from_dict(config_class, load_file(args.config), base=config)
    config = replace_path(config, {path: getattr(args, dests[name]) for name, path in flags.items()
                                   if getattr(args, dests[name]) is not None})
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. --set run.episodes=100")
        config = replace_path(config, {key.strip(): value})
    if check is not None:
        config = check(config, start)
    if args.print_config:
        print(json.dumps(to_dict(config), indent=2))
        raise SystemExit(0)
    return config


def duration(seconds: float) -> str:
    """``seconds`` as people say it: "40 s", "12 min", "3.5 h", "2.1 days"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 2 * 86400 else f"{seconds / 86400:.1f} days"


def _cost_text(preset: Preset, estimate: Callable[[Any, Cost], float] | None) -> str:
    """"Time: about 50 min on 2 CPU cores; about 11 min on one H100 GPU."."""
    if estimate is None:
        return ""
    config = preset()
    times = [f"about {duration(estimate(config, cost))} {where}" if cost is not None else f"not measured {where}"
             for cost, where in ((preset.cpu, "on 2 CPU cores"), (preset.cuda, "on one H100 GPU"))]
    return f"Time: {times[0]}; {times[1]}."


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
