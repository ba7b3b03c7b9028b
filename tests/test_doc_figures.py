"""Each figure the docs quote stays tied to the command that prints it.

:data:`FIGURES` is the table: a page, a figure as the page quotes it, and the command the page names
for it. Every row is checked on the page (the figure stands in the same section as its command); a row
whose command is cheap also says what to run here and what its output must hold, and the test runs
it. When a figure changes, rerun its command, update the page, then the row.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Figure:
    """A quoted figure: ``page`` (relative to the repository) quotes ``figure`` next to ``command``; a
    cheap one is checked by running ``run`` (default: ``command``) in an empty folder, after writing
    the example photos there when ``samples`` (``python -m rlenhance.data.samples samples``), and
    finding ``prints`` (default: ``figure``) in its output."""

    page: str
    figure: str
    command: str
    cheap: bool = False
    run: str | None = None
    prints: str | None = None
    samples: bool = False


#: docs/denoising.md's comparison of the noise-level map policy with FFDNet given one level, a level per
#: window and the true map, on the first 20 BSD68 images (about 10 minutes on one core).
NOISE_MAP_COMPARE = ("python -m experiments.compare --task denoise --data ../shared/data/bsd/BSD68 --split all "
                     "--sigma 10 --sigma-to 50 --sigma-estimate --methods ffdnet,noise-map,ffdnet-local,ffdnet-oracle")
#: docs/lowlight.md's comparison of the supervised baseline with the RL policy on the example photos.
LOWLIGHT_COMPARE = ("python -m experiments.compare --task lowlight --data samples/pairs --split all "
                    "--methods input,rl,mrpnet")
#: docs/lowlight.md's uneven-light comparison at full resolution (about 2 minutes on one core).
UNEVEN_COMPARE = ("python -m experiments.compare --task lowlight --data ../shared/data/sice_pairs/train --light uneven "
                  "--methods input,rl,global-curve,oracle-global --gt-mean --threads 1 --rl CHECKPOINT")
FIGURES = [
    Figure("docs/completion.md", "0.9889", "python -m benchmarks.hole_finder --sizes 256 --data "
           "../shared/data/bedroom/train --split val", cheap=True, run="python -m benchmarks.hole_finder --sizes 256",
           prints="| 32 | 0.9889 |"),
    Figure("docs/completion.md", "0.9995", "python -m benchmarks.hole_finder --sizes 256 --data "
           "../shared/data/bedroom/train --split val"),
    Figure("docs/customisation.md", "+0.035", "python -m benchmarks.knobs --data samples/pairs --split all"),
    Figure("docs/customisation.md", "0.027-0.057", "python -m benchmarks.knobs --data samples/pairs --split all"),
    Figure("docs/api.md", "about 20x", "`python -m benchmarks.agent_speed` at 34931c7"),
    *(Figure("docs/performance.md", figure, "`python -m benchmarks.envs` at 34931c7")
      for figure in ("4.9x", "5.2x", "5.4x")),
    *(Figure("docs/training.md", figure, "python -m experiments.lol_train") for figure in ("102 s", "+1.85 dB")),
    *(Figure("docs/lowlight.md", figure, "python -m benchmarks.lowlight_goals --checkpoint CHECKPOINT")
      for figure in ("17.83", "17.94", "19.81", "**20.50**", "1.125", "19.27", "18.14", "19.94 | 1.02", "+ 0.13",
                     "+ 2.00", "0.027", "1.25, relit 1.02")),
    *(Figure("docs/lowlight.md", figure, "python -m benchmarks.lowlight_goals --split tune --checkpoint "
             "runs/v/checkpoints/episode_003000.pt")
      for figure in ("19.68, oracle-global +0.07, exposure miss 0.024, knobs 5;", "relit 18.74-19.60, knobs 4-5")),
    Figure("docs/lowlight.md", "0.040 short", "benchmarks.knobs --split val"),
    *(Figure("docs/lowlight.md", figure, "python -m experiments.lol_train --preset uneven-light --threads 1 --out "
             "runs/uneven") for figure in ("-0.3 19.17 dB", "18.77")),
    *(Figure("docs/lowlight.md", figure, "`python -m benchmarks.reward_optimum --rewards R` at df3bd26")
      for figure in ("15.58", "18.32", "25.31")),
    *(Figure("docs/lowlight.md", figure, "python -m experiments.lol_train $U --set run.episodes=7000")
      for figure in ("+0.08 / -0.16",)),
    *(Figure("docs/lowlight.md", figure, "python -m experiments.lol_train $W [--set ranges.w_exposure=10,1000")
      for figure in ("within 0.013", "relit 19.53 / 19.73, knobs 5 / 4;", "relit 19.47 / 19.24, knobs 5 / 5",
                     "relit 19.65, uniform 18.45", "20.01", "17.64, knobs 4, dark-photo exposure miss 0.031")),
    *(Figure("docs/lowlight.md", figure, "python -m experiments.lol_eval --data ../shared/data/sice_pairs/train "
             "--split tune --no-classical --checkpoint K [--sweep-exposure 0.45]")
      for figure in ("19.37 / 19.77", "(5) 18.34, at 0.45 19.48", "`lowlight_a3c.pt` 19.19, at 0.45 19.79")),
    *(Figure("docs/lowlight.md", figure, "`python -m benchmarks.policy_ceiling [--loss scaled-reference [--greedy]]`")
      for figure in ("(5) 19.69 / 21.47", "20.57 / 21.84", "20.23 / 21.21", "20.12 / 20.84")),
    *(Figure("docs/lowlight.md", figure, "`python -m experiments.lol_train $W --set run.episodes=1500 --set "
             "reward.pathwise=L`") for figure in ("relit 19.59 / 19.71", "uniform 18.74", "spread 1.27x")),
    *(Figure("docs/lowlight.md", figure, "python -m experiments.lol_train $W")
      for figure in ("`$W --set a3c.entropy=0.01`: 19.44", "`a3c.lr=3e-4`: 19.79",
                     "`run.batch=32 --set run.episodes=1500`: 19.87, uniform 18.00, knobs 5")),
    Figure("docs/lowlight.md", "18.31 / 0.670 / NIQE 3.48", "python -m experiments.compare --task lowlight --data "
           "../shared/data/sice_pairs/train --methods rl --threads 1 --rl CHECKPOINT"),
    *(Figure("docs/lowlight.md", figure, UNEVEN_COMPARE)
      for figure in ("18.12", "20.27", "**20.62**", "3.35", "20.17", "**3.32**")),
    Figure("docs/lowlight.md", "+1.73 / +2.15 / +1.71 / +2.50 dB", "python -m experiments.lol_train --threads 1"),
    *(Figure("docs/performance.md", figure, "python -m experiments.lol_eval --checkpoint "
             "runs/lol_train/checkpoints/best.pt --data ../shared/data/sice_pairs/train --no-classical --threads 1")
      for figure in ("14.26 dB", "14.29", "13.91", "20.39")),
    *(Figure("docs/performance.md", figure, "/usr/bin/time python -m experiments.lol_train ARGS")
      for figure in ("102 s", "+1.85 dB", "172 s", "+1.73", "93 s", "+1.15", "67 s", "21.06", "21.10", "21.17",
                     "21.51")),
    *(Figure("docs/denoising.md", figure, NOISE_MAP_COMPARE) for figure in (
        "28.44** (+8.37 ± 0.48", "28.53 (+8.45 ± 0.48", "29.16 (-0.05 ± 0.01", "0.33 dB above the policy")),
    *(Figure("docs/lowlight.md", figure, LOWLIGHT_COMPARE, cheap=True, prints=f"| {method} | 4 | {figure} ±",
             samples=True) for method, figure in (("mrpnet", "20.33"), ("rl", "24.57"))),
]


def sections(page: Path) -> list[str]:
    """The sections of a page (split at its headings), each on one line, shell continuations joined."""
    text = page.read_text(encoding="utf-8").replace("\\\n", " ")
    return [" ".join(section.split()) for section in re.split(r"^#+ ", text, flags=re.M)]


@pytest.mark.parametrize("figure", FIGURES, ids=lambda f: f"{f.page}:{f.figure}")
def test_each_quoted_figure_stands_next_to_its_command(figure):
    found = [section for section in sections(ROOT / figure.page) if figure.command in section]
    assert found, f"{figure.page} does not name the command `{figure.command}`"
    assert any(figure.figure in section for section in found), \
        f"{figure.page}: {figure.figure!r} is not in the section of `{figure.command}`"


@pytest.mark.slow
@pytest.mark.parametrize("figure", [f for f in FIGURES if f.cheap], ids=lambda f: f"{f.page}:{f.figure}")
def test_the_cheap_commands_print_the_figures_the_docs_quote(figure, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if figure.samples:
        from rlenhance.data.samples import write_samples

        write_samples(tmp_path / "samples")
    argv = shlex.split(figure.run or figure.command)
    assert argv[:2] == ["python", "-m"], argv
    proc = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (figure.prints or figure.figure) in proc.stdout, \
        f"`{figure.run or figure.command}` no longer prints {figure.prints or figure.figure!r}:\n{proc.stdout[-2000:]}"


def test_the_docs_never_ask_to_install_a_dependency():
    """A dependency is installed with the package: "pip install tensorboard" would only confuse."""
    text = (ROOT / "setup.cfg").read_text(encoding="utf-8")
    requires = re.search(r"^install_requires =\n((?:[ \t]+.*\n)+)", text, re.M).group(1)
    dependencies = {re.split(r"[<>=!~\[ ;]", line.strip())[0].lower() for line in requires.splitlines()}
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    asked = [(page.name, name) for page in pages
             for name in re.findall(r"pip install ([A-Za-z][\w.-]*)", page.read_text(encoding="utf-8"))]
    assert asked, "no pip install in the docs: the pattern is out of date"
    assert not [(page, name) for page, name in asked if name.lower() in dependencies - {"torch"}]
