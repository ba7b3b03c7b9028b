"""Every trainer's ``run`` section (:class:`RunSettings`, :func:`run_section`), its command line
(:func:`parse_run`: ``--resume`` continues a run with the run's own config) and its run folder
(:func:`open_run`, which refuses a ``--resume`` that changes what the run is: :func:`check_resume`).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.distributed import Ranks
from experiments import config as configs
from experiments.config import field_docs, flatten
from experiments.runs import Run, read_config, trainer_name
from rlenhance.checkpoint import load_checkpoint

#: Largest ``run.seed`` (NumPy's global seed limit).
MAX_SEED = 2**32 - 1


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    """Raise ValueError naming setting ``name`` unless ``value`` is an integer in [``low``, ``high``]."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise ValueError(f"{name} {value!r}: expected {bound}")


@dataclass(frozen=True)
class RunSettings:
    """Length, evaluation, seeds, hardware and the run folder.

    Each run setting, documented and defaulted once; a trainer's section has those it reads."""

    episodes: int = 100
    """training episodes (each a batch of crops for the episode's steps, then the agent's updates)"""
    batch: int = 8
    """crops per episode (the vector env's num_envs; under torchrun the global batch)"""
    eval_every: int = 50
    """evaluate every N episodes (and at the end); checkpoints are written then"""
    eval_batch: int = 4
    """images per rollout batch at whole-image evaluation"""
    samples: int = 4
    """held-out images shown in each sample grid"""
    keep_evals: bool = False
    """also keep every evaluation's policy as checkpoints/episode_NNNNNN.pt"""
    save_every: int = 0
    """also keep checkpoints/model_epochE.pt every N-th epoch (0: never)"""
    seed: int = 0
    """seed of everything random in training (weights, crops, noise, actions)"""
    split_seed: int | None = None
    """seed of the train/validation split (none: seed)"""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N"""
    threads: int = 0
    """torch CPU threads (0: every core; on a machine shared with other busy processes, 1)"""
    out: str = "runs/train"
    """run folder"""
    resume: bool = False
    """continue the run in out from checkpoints/last.pt with its own config (its length, evaluation, samples and
    hardware may change)"""


#: The run settings ``--resume`` may change: the continued run is still the run it continues.
RESUME_MAY_CHANGE = ("run.episodes", "run.eval_every", "run.eval_batch", "run.samples", "run.keep_evals",
                     "run.save_every", "run.device", "run.threads", "run.out", "run.resume")
#: The run settings that change how many steps and evaluations a run has, its seeds, hardware or folder,
#: but not what a step costs: a config that differs from a preset only in them runs at the preset's cost.
RUN_COST_FREE = ("run.episodes", "run.eval_every", "run.samples", "run.keep_evals", "run.save_every", "run.seed",
                 "run.split_seed", "run.device", "run.threads", "run.out", "run.resume")
#: Run settings that are counts of at least one, and of at least zero.
_POSITIVE, _COUNTS = ("episodes", "batch", "eval_every", "eval_batch"), ("samples", "save_every", "threads")


def run_section(name: str, fields: Sequence[str], *, module: str, **defaults: Any) -> type:
    """A trainer's ``run`` section: the frozen dataclass ``module.name`` of the :class:`RunSettings`
    ``fields``, in that order, with their docs, and ``defaults`` in place of RunSettings' own.

    >>> Run = run_section("Run", ("seed", "out"), module=__name__, out="runs/x")
    >>> Run(), Run(seed=3).out
    (Run(seed=0, out='runs/x'), 'runs/x')
    """
    known = {f.name: f.default for f in dataclasses.fields(RunSettings)}
    hints, docs = typing.get_type_hints(RunSettings), field_docs(RunSettings)
    spec = [(n, hints[n], dataclasses.field(default=defaults.get(n, known[n]), metadata={"doc": docs[n]}))
            for n in fields]
    return dataclasses.make_dataclass(name, spec, frozen=True,
                                      namespace={"__module__": module, "__doc__": RunSettings.__doc__.split("\n")[0]})


def check_run(run: Any) -> None:
    """Raise ValueError naming the first bad setting of a ``run`` section (:func:`run_section`)."""
    for f in dataclasses.fields(run):
        value = getattr(run, f.name)
        if f.name in _POSITIVE or f.name in _COUNTS:
            check_int(f"run.{f.name}", value, 1 if f.name in _POSITIVE else 0)
        elif f.name in ("seed", "split_seed") and not (f.name == "split_seed" and value is None):
            check_int(f"run.{f.name}", value, 0, MAX_SEED)


# --- resume ---------------------------------------------------------------------------------------
def check_resume(out: str | Path, config: Mapping[str, Any], may_change: Sequence[str]) -> None:
    """Raise ValueError when ``--resume`` would continue the run in ``out`` with a ``config`` (nested
    dicts) that differs from the run's (last.pt's, else config.json's) at other settings than ``may_change``."""
    last, saved = Path(out) / "checkpoints" / "last.pt", Path(out) / "config.json"
    if not (last.is_file() or saved.is_file()):
        return
    mine = flatten(config)
    theirs = flatten(load_checkpoint(last)["extra"]["config"] if last.is_file() else json.loads(saved.read_text()))
    differ = [f"{k} {mine[k]!r} (the run has {theirs.get(k)!r})" for k in sorted(mine)
              if k not in may_change and mine[k] != theirs.get(k)]
    if differ:
        raise ValueError("--resume continues a run with its own settings; these differ: " + "; ".join(differ)
                         + f". Only {', '.join(k for k in may_change if k in mine)} may change")


def open_run(cfg: Any, ranks: Ranks | None = None, *, may_change: Sequence[str] = RESUME_MAY_CHANGE,
             trainer: str | None = None) -> Run:
    """The run folder of ``cfg.run.out`` (:class:`experiments.runs.Run` of ``trainer``, default the module
    of ``cfg``'s class), checked by rank 0 for every rank; a ``--resume`` may change ``may_change`` only."""
    ranks = ranks if ranks is not None else Ranks()
    if cfg.run.resume:
        ranks.on_rank0(lambda: check_resume(cfg.run.out, configs.to_dict(cfg), may_change))
    return Run(cfg.run.out, cfg, resume=cfg.run.resume, ranks=ranks, trainer=trainer)


def parse_run(config_class: type, argv: Sequence[str], *, trainer: str | None = None, **options: Any) -> Any:
    """A trainer's command line (:func:`experiments.config.parse` with ``options``); ``--resume`` without
    ``--config`` starts from the config.json of the run in ``run.out`` (refused when ``trainer``, default
    ``config_class``'s module, did not make it), under the command line's flags and ``--set``."""
    argv = list(argv)
    if "--config" not in argv and "--print-config" not in argv:
        given = configs.parse(config_class, argv, **{k: v for k, v in options.items() if k != "check"})
        out = Path(given.run.out)
        if given.run.resume and (out / "config.json").is_file():
            read_config(out, trainer or trainer_name(given))
            argv = ["--config", str(out), *argv]
    return configs.parse(config_class, argv, **options)
