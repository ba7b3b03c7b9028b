"""Every trainer's ``run`` section and starting or resuming a run with it.

:class:`RunSettings` documents and defaults each run setting once; a trainer's section
(:func:`run_section`) has those it reads, with its own defaults, checked by :func:`check_run`.
A trainer reads its command line with :func:`parse_run` (``--resume`` continues a run with the
run's own config) and opens its run folder with :func:`open_run`, which refuses a ``--resume``
whose settings differ from the run's but for those that may change (:func:`check_resume`).
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

    Every setting a trainer's ``run`` section may hold, each documented and defaulted here once; a
    trainer's section (:func:`run_section`) has those it reads, with its own defaults."""

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
    """torch CPU threads (0: every core but one, at least 1)"""
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

    Raises:
        ValueError: a field (or a default of a field) that RunSettings has not, or a default of a field left out.
    """
    known = {f.name: f for f in dataclasses.fields(RunSettings)}
    for what, names in (("field", fields), ("default", defaults)):
        unknown = [n for n in names if n not in known or (what == "default" and n not in fields)]
        if unknown:
            raise ValueError(f"run_section {name}: {what} {', '.join(unknown)} is not one of its fields "
                             f"({', '.join(fields if what == 'default' else known)})")
    hints, docs = typing.get_type_hints(RunSettings), field_docs(RunSettings)
    spec = [(n, hints[n], dataclasses.field(default=defaults.get(n, known[n].default), metadata={"doc": docs[n]}))
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
    """Raise ValueError when ``--resume`` would continue the run in ``out`` with a config that differs
    from the run's (last.pt's ``extra["config"]``, else config.json) other than at the dotted
    paths of ``may_change``: the continued run would not be the run it continues.

    Args:
        out: the run folder.
        config: this invocation's resolved config, as nested dicts (:func:`experiments.config.to_dict`).
        may_change: dotted settings that may differ (the step total, the device, the threads ...).
    """
    out = Path(out)
    last, saved_config = out / "checkpoints" / "last.pt", out / "config.json"
    if last.is_file():
        saved = (load_checkpoint(last)["extra"] or {}).get("config")
        if saved is None:
            raise ValueError(f"--resume: {last} records no config (a checkpoint of another trainer or format); "
                             "start a new run")
    elif saved_config.is_file():
        saved = json.loads(saved_config.read_text())
    else:
        return
    mine, theirs = flatten(config), flatten(saved)
    differ = [f"{k} {mine[k]!r} (the run has {theirs.get(k)!r})" for k in sorted(mine)
              if k not in may_change and mine[k] != theirs.get(k)]
    if differ:
        raise ValueError("--resume continues a run with its own settings; these differ: " + "; ".join(differ)
                         + f". Only {', '.join(k for k in may_change if k in mine)} may change")


def open_run(cfg: Any, ranks: Ranks | None = None, *, may_change: Sequence[str] = RESUME_MAY_CHANGE,
             trainer: str | None = None) -> Run:
    """The run folder of ``cfg.run.out`` (:class:`experiments.runs.Run` of ``trainer``, default the module
    of ``cfg``'s class), checked by rank 0 for every rank; nothing is written until the run logs. A
    ``--resume`` must keep the run's settings but those of ``may_change`` (:func:`check_resume`).

    Raises:
        FileNotFoundError: ``--resume`` on a folder that holds no run.
        FileExistsError: a new run in a folder that holds one with a checkpoint.
        ValueError: ``--resume`` with settings that differ from the run's.
    """
    ranks = ranks if ranks is not None else Ranks()
    if cfg.run.resume:
        ranks.on_rank0(lambda: check_resume(cfg.run.out, configs.to_dict(cfg), may_change))
    return Run(cfg.run.out, cfg, resume=cfg.run.resume, ranks=ranks, trainer=trainer)


def parse_run(config_class: type, argv: Sequence[str], *, trainer: str | None = None, **options: Any) -> Any:
    """A trainer's command line (:func:`experiments.config.parse` with ``options``), where ``--resume``
    without ``--config`` starts from the config.json of the run in ``run.out``, under the command line's
    flags and ``--set`` (:func:`check_resume` then refuses a change the run cannot take).

    Args:
        config_class: the trainer's config, with a ``run`` section (:func:`run_section`).
        trainer: the module that makes the runs (default: ``config_class``'s); the run of another
            trainer is refused (:func:`experiments.runs.read_config`).

    Raises:
        experiments.runs.RunFolderError: the run's config.json is damaged or another trainer's.
    """
    argv = list(argv)
    if "--config" not in argv and "--print-config" not in argv:
        given = configs.parse(config_class, argv, **{k: v for k, v in options.items() if k != "check"})
        out = Path(given.run.out)
        if given.run.resume and (out / "config.json").is_file():
            read_config(out, trainer or trainer_name(given))
            argv = ["--config", str(out), *argv]
    return configs.parse(config_class, argv, **options)
