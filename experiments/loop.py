"""The one training loop: train in steps, evaluate on a schedule, write checkpoints, resume, stop on signals.

A trainer (RL: an episode a step; supervised: an epoch) gives :class:`Loop` its ``train`` and ``evaluate``
functions and its callbacks. Each evaluation (rank 0, eval mode, no gradients) is logged, then best.pt is
written when the score beat the best so far, then last.pt with the trainer's state for ``--resume``.
SIGINT / SIGTERM stop every rank at the next step with last.pt saved (:class:`experiments.process.Interrupted`).
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import torch

from experiments.config import Cost, Preset, duration, preset_of
from experiments.grids import GRID_CAPTIONS
from experiments.process import Interrupted, StopSignals
from experiments.runs import Run
from rlenhance.checkpoint import load_checkpoint, load_state_dict_strict
from rlenhance.errors import CheckpointError

#: ``evaluate() -> (scores, grid_rows)``: scores named ``eval/...``; rows of (C, H, W) images side by side.
Evaluate = Callable[[], "tuple[dict[str, float], list[list[torch.Tensor]]]"]
TEST_GROUP = "test"  # a --test set's scores: logged and summarised, never used to pick best.pt
#: :func:`experiments.rl_common.top_action_share`'s score; :class:`StuckHint` says a policy is stuck at ONE_ACTION.
TOP_ACTION_SHARE, ONE_ACTION = "eval/top_action_share", 0.999
REPORTED = ("psnr", "ssim", "uqi", "hole_psnr", "hole_ssim", "loss", "exposure_loss")  # the report line's scores
SPLIT_NAMES = MappingProxyType({"tune": "tuning", "val": "validation"})
LONG_RUN_S = 1800.0  # a run estimated longer says so (:class:`TimeEstimate`)


def check_tune_fraction(value: float, key: str) -> None:
    """Raise ValueError naming the setting ``key`` unless the tuning split's fraction is in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{key} {value}: expected a number in [0, 1) (0: no tuning split; "
                         "the validation split then picks best.pt)")


class DataSplits(NamedTuple):
    """A trainer's data sets: it trains on ``train``, picks best.pt on ``tune`` (None: on ``val``) and
    reports best.pt on ``val`` (``reported``: None where ``val`` picked it); ``test`` is reported only."""

    train: Any
    tune: Any | None
    val: Any
    test: Any | None = None

    @property
    def split(self) -> str:
        return "val" if self.tune is None else "tune"

    @property
    def picking(self) -> Any:
        return self.val if self.tune is None else self.tune

    @property
    def reported(self) -> Any | None:
        return None if self.tune is None else self.val


@dataclass
class LoopState:
    """Where the loop is: ``step`` units trained, ``evaluated`` the step of ``scores``, ``best`` the
    best score so far (at ``best_step``), ``saved`` the step of last.pt, ``ended`` whether a callback
    ended the run (:meth:`Loop.end`), ``report`` best.pt's scores on the validation split after the run."""

    step: int = 0
    evaluated: int = 0
    best: float = -math.inf
    best_step: int = 0
    scores: dict[str, float] = field(default_factory=dict)
    saved: int | None = None
    ended: bool = False
    report: dict[str, float] = field(default_factory=dict)


class Callback:
    """Hooks of :class:`Loop`, each given the loop: ``on_start`` (after a resume), ``on_train`` (``steps``
    units trained, ``scalars`` logged), ``on_evaluation`` (every rank, before the checkpoints; ``rows``
    empty past rank 0) and ``on_end`` (after the last evaluation and the report)."""

    def on_start(self, loop: Loop) -> None:
        pass

    def on_train(self, loop: Loop, scalars: Mapping[str, float], steps: int) -> None:
        pass

    def on_evaluation(self, loop: Loop, scores: Mapping[str, float], rows: Sequence[Sequence[torch.Tensor]]) -> None:
        pass

    def on_end(self, loop: Loop) -> None:
        pass


class Loop:
    """The training loop (see the module docstring).

    Args:
        run: the run folder (closed when :meth:`fit` returns or raises).
        total: steps to train (episodes, epochs); ``unit`` names one (checkpoint keys, progress bar).
        eval_every: evaluate every this many steps and at ``total``, or ``step -> bool`` (then one step a call).
        train: ``(step, until) -> (new_step, scalars)``: trains up to at most ``until``, returns the scalars to
            log averaged over the ranks; it may report each step (:meth:`advance`) and stop early
            (:meth:`stop_requested`).
        metric: the score that picks best.pt (higher is better): a key of the scores or a function of them.
        state, load_state, extra: the trainer's state for last.pt, its restore on ``--resume``, and what every
            checkpoint carries (``spec``, ``config`` ...).
        summary: ``(state) -> row`` of the closing summary table (None: no table).
        split: the split that picks best.pt ("tune" or "val"); ``report``: ``evaluate`` on the validation
            split, of best.pt's weights once after the run.
        progress: the scalar the progress bar shows and its label.
        save_best: False where the trainer writes best.pt itself (:mod:`experiments.rse_train`).
    """

    def __init__(self, run: Run, *, total: int, eval_every: int | Callable[[int], bool],
                 train: Callable[[int, int], tuple[int, Mapping[str, float]]], evaluate: Evaluate,
                 metric: str | Callable[[Mapping[str, float]], float], model: torch.nn.Module,
                 state: Callable[[], Any], load_state: Callable[[Any], None], extra: Callable[[], Mapping[str, Any]],
                 callbacks: Sequence[Callback] = (), unit: str = "episode",
                 summary: Callable[[LoopState], Mapping[str, Any]] | None = None, split: str = "val",
                 report: Evaluate | None = None, progress: tuple[str, str] = ("charts/episode_return", "ret"),
                 save_best: bool = True):
        self.run, self.total, self.unit, self.eval_every = run, int(total), unit, eval_every
        self.train, self.evaluate, self.model = train, evaluate, model
        self.state_fn, self.load_state, self.extra_fn = state, load_state, extra
        self.metric_name = metric if isinstance(metric, str) else "metric"
        self.score_of = (lambda s: s[metric]) if isinstance(metric, str) else metric
        self.callbacks, self.summary_row = list(callbacks), summary
        self.split, self.report, self.progress, self.save_best = split, report, progress, save_best
        self.state = LoopState()
        self.bar: Any = None
        self.shown: float | None = None  # the last value of the progress bar's scalar
        self.signals: StopSignals | None = None

    def save(self, name: str, *, with_state: bool = False) -> Path:
        """Write ``checkpoints/<name>.pt`` (rank 0); ``with_state`` (last.pt) adds the trainer's state."""
        s, u = self.state, self.unit
        if not self.run.writes:
            return self.run.dir / "checkpoints" / f"{name}.pt"
        extra = {**self.extra_fn(), u: s.step, "scores": s.scores, "metric": self.metric_name, "best": s.best,
                 f"best_{u}": s.best_step, "ended": s.ended}
        if with_state:
            extra.update({f"eval_{u}": s.evaluated, "state": self.state_fn(), "report": s.report})
        return self.run.save(name, model=self.model, arch=self.model.arch(), extra=extra)

    def end(self) -> None:
        """End the run after the evaluation in progress (from ``on_evaluation``, on every rank); last.pt records it."""
        self.state.ended = True

    def advance(self, step: int, scalars: Mapping[str, float]) -> None:
        """Step ``step`` is done: log its ``scalars``, move the bar, run the callbacks' ``on_train``."""
        s = self.state
        before, s.step = s.step, int(step)
        if scalars:
            self.run.log(s.step, scalars)
        self.bar.update(s.step - before)
        self.shown = scalars.get(self.progress[0], self.shown)
        postfix = {"best": f"{s.best:.4g}" if math.isfinite(s.best) else "-"}
        self.bar.set_postfix(postfix if self.shown is None else {self.progress[1]: f"{self.shown:.3f}", **postfix})
        for callback in self.callbacks:
            callback.on_train(self, scalars, s.step - before)

    def stop_requested(self) -> bool:
        """Whether this process got SIGINT / SIGTERM during :meth:`fit` (not agreed between ranks)."""
        return self.signals is not None and self.signals.signum is not None

    def fit(self) -> Path:
        """Train to ``total`` steps; returns the run folder. Raises Interrupted when a signal stopped it."""
        s, run = self.state, self.run
        if run.resuming and self._resume():
            run.close()
            return run.dir
        self.bar = run.progress(self.total, initial=s.step, desc=self.unit)
        for callback in self.callbacks:
            callback.on_start(self)
        try:
            with StopSignals(run.ranks) as stop:
                self.signals = stop
                while not s.ended and (self._due() or s.step < self.total):
                    signum = stop.check()  # any rank's signal, agreed at this boundary
                    if signum:
                        if s.saved != s.step:
                            self.save("last", with_state=True)
                        run.ranks.barrier()  # no rank ends (and has torchrun stop the others) before last.pt is written
                        raise Interrupted(f"interrupted at {self.unit} {s.step} of {self.total} "
                                          f"({signal.Signals(signum).name}); {run.last_path} saved; continue with the "
                                          "same settings and --resume", signum)
                    if self._due():
                        self._evaluate()
                        continue
                    every = self.eval_every
                    until = s.step + 1 if callable(every) else min(self.total, (s.step // every + 1) * every)
                    self.advance(*self.train(s.step, until))  # the steps train did not advance itself
            self._finish()
        finally:  # the run folder's lock too: a run stopped in this process can be resumed in it
            self.signals = None
            self.bar.close()
            run.close()
        return run.dir

    def _due(self) -> bool:
        s, every = self.state, self.eval_every
        return s.evaluated < s.step and (s.step >= self.total or (every(s.step) if callable(every)
                                                                  else s.step % every == 0))

    def _evaluate(self) -> None:
        s, run = self.state, self.run
        description = getattr(self.bar, "desc", None)  # a disabled bar (past rank 0) has none
        if description is not None:
            self.bar.set_description_str("evaluating", refresh=True)
        rows: list[list[torch.Tensor]] = []

        def on_rank0() -> dict[str, float]:
            nonlocal rows
            scores, rows = self._scored(self.evaluate)
            return scores

        s.scores = run.ranks.on_rank0(on_rank0)  # rank 0 evaluates; every rank gets the scores
        run.log(s.step, s.scores)
        value = float(self.score_of(s.scores))
        improved = value > s.best
        if improved:
            s.best, s.best_step = value, s.step
        s.evaluated = s.step
        for callback in self.callbacks:
            callback.on_evaluation(self, s.scores, rows)
        if improved and self.save_best:
            self.save("best")  # before last.pt: a kill between the two leaves a best.pt that --resume takes
        self.save("last", with_state=True)
        s.saved = s.step
        if description is not None:
            self.bar.set_description_str(description, refresh=True)
        run.ranks.barrier()

    def _scored(self, evaluate: Evaluate) -> tuple[dict[str, float], list[list[torch.Tensor]]]:
        """``evaluate()`` in eval mode without gradients (each module's mode restored), timed as ``eval/seconds``."""
        modes = [(module, module.training) for module in self.model.modules()]
        start = time.perf_counter()
        self.model.eval()
        try:
            with torch.no_grad():
                scores, rows = evaluate()
        finally:
            for module, training in modes:
                module.training = training
        return {**scores, "eval/seconds": time.perf_counter() - start}, rows

    def _resume(self) -> bool:
        """Restore last.pt; True when the run had finished already (nothing to do)."""
        s, u, run = self.state, self.unit, self.run
        last = run.ranks.on_rank0(lambda: load_checkpoint(run.last_path, expected_arch=self.model.arch()))
        load_state_dict_strict(self.model, last["state_dict"], source=str(run.last_path))
        extra = last["extra"]
        self.load_state(extra["state"])
        s.step = s.saved = int(extra[u])
        s.evaluated, s.scores, s.ended = int(extra[f"eval_{u}"]), dict(extra["scores"]), bool(extra["ended"])
        s.best, s.best_step = run.ranks.on_rank0(lambda: self._best_on_disk(float(extra["best"]),
                                                                            int(extra[f"best_{u}"])))
        if (s.ended or s.step >= self.total) and s.evaluated == s.step:  # finished
            s.report = dict(extra["report"])  # the finished run's; a run that trains on reports anew
            how = "it ended early" if s.ended else "raise the total to train on"
            run.say(f"{run.dir}: already finished at {u} {s.step}; nothing to do; {how}")
            if run.writes and not run.summary_path.exists():
                self._finish()  # killed between last.pt and summary.md
            return True
        run.truncate_metrics(s.step)
        run.say(f"resumed {run.last_path} at {u} {s.step}")
        return False

    def _best_on_disk(self, best: float, step: int) -> tuple[float, int]:
        """best.pt's score and step where they differ from last.pt's record (a kill between the two writes)."""
        path, key = self.run.best_path, f"best_{self.unit}"
        try:
            extra = load_checkpoint(path)["extra"] if path.is_file() else {}
        except CheckpointError as exc:
            print(f"{exc}; the next better score replaces it")
            return best, step
        if "best" not in extra or key not in extra or (float(extra["best"]), int(extra[key])) == (best, step):
            return best, step  # (a best.pt of the trainer's own, without the loop's record, included)
        print(f"{path} (score {float(extra['best']):.4g} at {key} {extra[key]}) differs from last.pt's "
              "record (a run killed between writing the two): it counts as the best so far")
        return float(extra["best"]), int(extra[key])

    def _finish(self) -> None:
        """The report, the callbacks' ``on_end`` (they may read ``state.report``) and the summary table."""
        s, run = self.state, self.run
        reporting = self.report is not None and not s.report  # a finished run resumed has its report
        if reporting:
            s.report = run.ranks.on_rank0(self._report)
            self.save("last", with_state=True)  # recorded: a resumed finished run reports the same
        named = {k.split("/", 1)[-1]: v for k, v in s.report.items() if k != "eval/seconds"}  # without its timing
        if reporting:
            shown = [k for k in REPORTED if k in named] or list(named)
            run.say(f"best.pt ({self.unit} {s.best_step}, picked on the {SPLIT_NAMES[self.split]} split): "
                    "validation " + ", ".join(f"{k} {named[k]:.4g}" for k in shown) if s.report else
                    f"no validation report: {run.best_path} is missing (no evaluation scored a number)")
        for callback in self.callbacks:
            callback.on_end(self)
        if self.summary_row is not None:
            row = {**self.summary_row(s), **{f"val_{k}": v for k, v in named.items()}}
            tested = any(k.startswith(f"{TEST_GROUP}/") for k in s.scores)
            note = split_note(self.split, reported=bool(s.report), tested=tested)
            run.summary([row], f"{run.trainer.rsplit('.', 1)[-1]}: {run.dir} ({note})")

    def _report(self) -> dict[str, float]:
        """best.pt's weights scored by ``report`` (the model's own weights restored after); {} without best.pt."""
        if not self.run.best_path.is_file():
            return {}
        best = load_checkpoint(self.run.best_path)
        weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        load_state_dict_strict(self.model, best["state_dict"], source=str(self.run.best_path))
        try:
            return self._scored(self.report)[0]
        finally:
            self.model.load_state_dict(weights)


def split_note(split: str, *, reported: bool, tested: bool) -> str:
    """A summary title's note on its column groups: the picking split, ``reported`` ``val_*``, ``tested`` ``test_*``."""
    parts = [f"best.pt picked on the {SPLIT_NAMES[split]} split: {split}_*, best_*",
             reported and "val_*: best.pt on the validation split",
             tested and "test_*: the --test images, reported only"]
    return "; ".join(part for part in parts if part)


# --- callbacks -----------------------------------------------------------------------------------------
class Snapshots(Callback):
    """``checkpoints/<name(step)>.pt`` at each evaluation where ``name`` gives a name (None: none)."""

    def __init__(self, name: Callable[[int], str | None]):
        self.name = name

    def on_evaluation(self, loop: Loop, scores: Mapping[str, float], rows: Sequence[Sequence[torch.Tensor]]) -> None:
        name = self.name(loop.state.step)
        if name is not None:
            loop.save(name)


class SampleGrids(Callback):
    """``samples/<unit>_NNNNNN.png`` (and TensorBoard): the first ``count`` grid rows of each evaluation, captioned."""

    def __init__(self, count: int, captions: Sequence[str] = GRID_CAPTIONS):
        self.count, self.captions = count, captions

    def on_evaluation(self, loop: Loop, scores: Mapping[str, float], rows: Sequence[Sequence[torch.Tensor]]) -> None:
        if rows and self.count:
            loop.run.save_grid(f"{loop.unit}_{loop.state.step:06d}", list(rows)[:self.count], captions=self.captions,
                               step=loop.state.step)


class StuckHint(Callback):
    """Say once why a run's evaluations look alike: its policy picks one action at every pixel, or an
    evaluation's outputs (the grid rows' second image) are those of the evaluation before."""

    def __init__(self) -> None:
        self.previous: list[torch.Tensor] | None = None
        self.said = False

    def on_evaluation(self, loop: Loop, scores: Mapping[str, float], rows: Sequence[Sequence[torch.Tensor]]) -> None:
        outputs = [row[1].detach().cpu() for row in rows if len(row) > 1]
        why = None
        if scores.get(TOP_ACTION_SHARE, 0.0) >= ONE_ACTION:
            why = "the policy picks one action everywhere (a one-colour action map)"
        elif outputs and self.previous is not None and len(outputs) == len(self.previous) \
                and all(torch.equal(a, b) for a, b in zip(outputs, self.previous)):
            why = f"the evaluation's outputs are those of the previous one ({loop.unit} {loop.state.step})"
        self.previous = outputs
        if why is not None and not self.said:
            self.said = True
            loop.run.say(f"\nhint: {why}; train longer (--episodes) or see docs/training.md#a-first-run")


class TimeEstimate(Callback):
    """Say how long the rest of the run takes when longer than :data:`LONG_RUN_S`: before the first step from
    ``cost`` (seconds per step and per evaluation, measured by ``source``), else after ``warmup`` steps (None: no)."""

    def __init__(self, warmup: int | None = 10, *, cost: tuple[float, float] | None = None, source: str = ""):
        self.warmup, self.cost, self.source = warmup, cost, source
        self.start, self.first, self.told = time.perf_counter(), 0, cost is not None

    def on_start(self, loop: Loop) -> None:
        self.start, self.first = time.perf_counter(), loop.state.step
        if self.cost is None:
            return
        (per_step, per_eval), steps = self.cost, loop.total - loop.state.step
        evaluations = evaluations_left(loop.state.step, loop.total, loop.eval_every)
        left = steps * per_step + evaluations * per_eval
        if left > LONG_RUN_S:
            loop.run.say(f"estimated time: {duration(left)} ({steps} {loop.unit}s at {per_step:.3g} s and "
                         f"{evaluations} evaluations at {per_eval:.3g} s: {self.source})")

    def on_train(self, loop: Loop, scalars: Mapping[str, float], steps: int) -> None:
        done = loop.state.step - self.first
        if self.told or self.warmup is None or done < self.warmup:
            return
        self.told = True
        per_step = (time.perf_counter() - self.start) / done
        left = (loop.total - loop.state.step) * per_step
        if left > LONG_RUN_S:
            loop.run.say(f"\nestimated time left: {duration(left)} of training at {per_step:.2f} s per {loop.unit} "
                         "(evaluations extra)")


def evaluations_left(step: int, total: int, eval_every: int | Callable[[int], bool]) -> int:
    """How many evaluations a loop at ``step`` of ``total`` has still to run (the last step's included)."""
    if step >= total:
        return 0
    if callable(eval_every):
        return sum(1 for s in range(step + 1, total + 1) if s == total or eval_every(s))
    return total // eval_every - step // eval_every + (1 if total % eval_every else 0)


def preset_estimate(config: Any, presets: Mapping[str, Preset], device: str, *, ignore: Sequence[str],
                    check: Callable[[Any, Any], Any], per_step: Callable[[Cost], tuple[float, float]],
                    warmup: int | None = 10) -> TimeEstimate:
    """The :class:`TimeEstimate` of ``config`` on a ``device`` type: from the measured cost (``per_step(cost)``: seconds
    per step and per evaluation) of the preset it is but for ``ignore``, else measured after ``warmup`` steps."""
    name = preset_of(config, presets, ignore, check)
    cost = {"cpu": presets[name].cpu, "cuda": presets[name].cuda}.get(device) if name is not None else None
    if cost is None:
        return TimeEstimate(warmup)
    return TimeEstimate(warmup, cost=per_step(cost), source=f"the measured cost of --preset {name} on {device}")


def run_seconds(total: int, eval_every: int | Callable[[int], bool], cost: tuple[float, float]) -> float:
    """The seconds of ``total`` steps evaluated every ``eval_every`` at ``cost`` (per step, per evaluation)."""
    return total * cost[0] + evaluations_left(0, total, eval_every) * cost[1]
