"""The docs cannot drift from the code: every command in README.md, docs/*.md and the recipes of the
shipped weights names a module or subcommand that exists, only options its ``--help`` lists and only
``--set`` keys its config has;
the docs stay reference (no development diary) and small."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "rlenhance/weights/README.md"]
RECIPES = sorted((ROOT / "experiments/recipes").glob("*.sh"))
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
#: How the commands whose options are ours start (others, pip or tensorboard, are not checked).
OURS = ("rlenhance ", "python -m ", "torchrun ")


def logical_lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def page_commands(path: Path) -> list[list[str]]:
    """The shell commands of a page's fenced blocks (not Python, not shell output)."""
    commands = []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", path.read_text(encoding="utf-8"), re.S | re.M):
        if lang not in ("", "sh", "bash"):
            continue
        for line in logical_lines(body):
            if not line.startswith(OURS):
                continue
            commands.append(shlex.split(line, comments=True))
    return [c for c in commands if c]


def recipe_commands(path: Path) -> list[list[str]]:
    """The trainer calls of a recipe: ``python -m`` lines, and the lines that build the options of
    the script's one ``python -m experiments.X`` call (``F="..."``, ``t ...``)."""
    text = path.read_text(encoding="utf-8")
    modules = sorted(set(re.findall(r"python -m (experiments\.\w+)", text)))
    commands = []
    for line in logical_lines(text):
        if line.startswith(("#", "set ", "DATA=", "cp ", "t()")):
            continue
        line = line.split("||")[-1]
        words = shlex.split(line.replace('"$@"', "").replace("$", "").replace('"', ""), comments=True)
        if "python" in words:
            commands.append(words[words.index("python"):])
        elif len(modules) == 1:
            commands.append(["python", "-m", modules[0], *words])
    return commands


def target(argv: list[str]) -> tuple[str, str | None]:
    """``(module, subcommand)`` of a command: ``rlenhance SUB ...`` or ``[torchrun ...] python -m M ...``."""
    if argv[0] == "rlenhance":
        return "rlenhance", argv[1]
    assert "-m" in argv, f"not an rlenhance or python -m command: {shlex.join(argv)}"
    return argv[argv.index("-m") + 1], None


@functools.cache
def help_text(module: str, sub: str | None) -> str:
    """The ``--help`` of a command, from a fresh interpreter (running a trainer's ``__main__`` in this one
    would leave its config classes defined in ``__main__`` for the tests that follow)."""
    argv = [sys.executable, "-m", module, *([sub] if sub else []), "--help"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{shlex.join(argv[1:])}: {proc.stderr[-2000:]}"
    return proc.stdout


@functools.cache
def setting_keys(module: str) -> frozenset[str]:
    """The dotted keys of a trainer's config (its ``--print-config``), which ``--set`` takes."""
    import json

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", module, "--print-config"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]

    def flat(d, prefix=""):
        for key, value in d.items():
            yield from flat(value, f"{prefix}{key}.") if isinstance(value, dict) else [prefix + key]
    return frozenset(flat(json.loads(proc.stdout)))


def all_commands() -> list[tuple[str, list[str]]]:
    found = [(str(p.relative_to(ROOT)), c) for p in PAGES for c in page_commands(p)]
    found += [(str(p.relative_to(ROOT)), c) for p in RECIPES for c in recipe_commands(p)]
    return found


def test_the_docs_have_commands():
    where = {w for w, _ in all_commands()}
    assert {"README.md", "docs/lowlight.md", "experiments/recipes/unet_completion.sh"} <= where


@pytest.mark.slow
def test_every_documented_command_exists_with_its_options():
    problems = []
    for where, argv in all_commands():
        module, sub = target(argv)
        if module != "rlenhance" and importlib.util.find_spec(module) is None:
            problems.append(f"{where}: no module {module}")
            continue
        text = help_text(module, sub)
        rest = argv[argv.index(module) + 1:] if module in argv else argv[2:]
        rest = rest[:rest.index("--")] if "--" in rest else rest  # options passed through to another program
        missing = [f for f in FLAG.findall(" ".join(rest)) if not re.search(rf"(?<![\w-]){f}(?![\w-])", text)]
        if missing:
            problems.append(f"{where}: {shlex.join(argv)}: not in its --help: {', '.join(missing)}")
        if "--set" in rest:
            keys = [rest[i + 1].split("=", 1)[0] for i, word in enumerate(rest[:-1]) if word == "--set"]
            unknown = [k for k in keys if k not in setting_keys(module)]
            if unknown:
                problems.append(f"{where}: {shlex.join(argv)}: no such setting: {', '.join(unknown)}")
    assert not problems, "\n".join(problems)


#: Replacements that make a page's Python example run in seconds.
SMALLER_PYTHON = {"range(100)": "range(2)", "num_envs=32, crop=64": "num_envs=2, crop=32",
                  "num_envs=8, crop=64": "num_envs=2, crop=32"}


@pytest.mark.slow
def test_python_examples_of_the_docs_run(tmp_path, monkeypatch):
    from rlenhance.data.samples import write_samples

    monkeypatch.chdir(tmp_path)
    write_samples("samples", size=48)
    for page in PAGES[1:]:
        for block in re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.S | re.M):
            for big, small in SMALLER_PYTHON.items():
                block = block.replace(big, small)
            exec(compile(block, str(page.relative_to(ROOT)), "exec"), {})


@pytest.mark.slow
def test_the_agent_example_trains_the_default_files_network():
    """docs/api.md's A3C example runs at the trainer's speed: its network and action blocks are those of
    ``lowlight_a3c.pt``'s recipe (PixelRL's full-resolution ones take about 20x longer: docs/api.md)."""
    from experiments import lol_train

    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"^```python\n(.*?)^```", text, re.S | re.M) if "A3C(" in b)
    for big, small in SMALLER_PYTHON.items():
        block = block.replace(big, small)
    scope: dict = {}
    exec(compile(block, "docs/api.md", "exec"), scope)
    assert scope["policy"].downscale == lol_train.PRESETS["global-light"]().model.downscale > 1
    assert scope["agent"].config.block_actions


def test_docs_are_reference_not_a_diary():
    pattern = re.compile(r"\bsessions?\b [0-9]|\bsession-[0-9]|\bthis session\b", re.I)
    found = [f"{p.relative_to(ROOT)}:{n}" for p in PAGES for n, line in
             enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not found, f"session numbers in the docs (history goes to CHANGELOG.md): {found}"


def test_docs_fit_in_80_kb():
    size = sum(p.stat().st_size for p in (ROOT / "docs").glob("*.md"))
    assert size <= 80_000, f"docs/*.md hold {size} bytes; the reference fits in 80 KB"


def test_the_changelog_fits_in_25_kb():
    size = (ROOT / "CHANGELOG.md").stat().st_size
    assert size <= 25_000, f"CHANGELOG.md holds {size} bytes; it lists user-facing changes in 25 KB (history: git)"


def test_model_cards_are_short():
    cards = re.split(r"^## ", (ROOT / "rlenhance/weights/README.md").read_text(encoding="utf-8"), flags=re.M)[1:]
    long = [card.splitlines()[0] for card in cards if len(card.encode()) > 1600]
    assert not long, f"model cards over 1.5 KB: {long}"


def test_every_shipped_weight_has_a_card_and_a_recipe():
    cards = (ROOT / "rlenhance/weights/README.md").read_text(encoding="utf-8")
    for weight in sorted((ROOT / "rlenhance/weights").glob("*.pt")):
        assert f"`{weight.name}`" in cards, f"{weight.name} has no model card"
        assert (ROOT / "experiments/recipes" / f"{weight.stem}.sh").is_file(), f"{weight.name} has no recipe"


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    titles = re.findall(r"^#+ (.*)$", page.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-") for title in titles}


def test_links_between_the_pages_resolve():
    broken = []
    for page in [*PAGES, ROOT / "experiments/recipes/README.md"]:
        for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if link.startswith(("http://", "https://")):
                continue
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists() or (anchor and target.suffix == ".md" and anchor not in heading_anchors(target)):
                broken.append(f"{page.relative_to(ROOT)}: {link}")
    assert not broken, f"broken links: {broken}"
