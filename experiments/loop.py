"""The one training loop: train in steps, evaluate on a schedule, checkpoint, resume, stop on signals.

A trainer (RL: an episode a step; supervised: an epoch) hands :class:`Loop` its ``train`` and
``evaluate`` functions and a list of callbacks, and calls :meth:`Loop.fit`, which is the whole loop:

* ``train(step, until)`` runs until ``total``; every ``eval_every`` steps and at the end,
  ``evaluate()`` runs on rank 0 in eval mode without gradients, its scores are logged and the
  callbacks' ``on_evaluation`` run (:class:`Checkpoints` writes best.pt, then last.pt);
* best.pt is picked on the split ``evaluate`` scores (``split``: the tuning split, or the
  validation split where there is none); with ``report``, best.pt's weights are scored once on the
  validation split after the run (``val_*`` columns of the summary);
* ``run.resuming`` restores last.pt (:meth:`Loop._resume`; best.pt as the run left it);
* SIGINT / SIGTERM stop every rank at the next step boundary with last.pt saved
  (:class:`experiments.process.Interrupted`); under torchrun rank 0 evaluates and writes.

A trainer's ``run`` section, its command line and its run folder: :mod:`experiments.run_settings`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import torch

from experiments.config import Cost, Preset, duration, preset_of
from experiments.process import StopSignals
from experiments.run_settings import open_run, parse_run  # noqa: F401 - the trainers' entry points, also from here
from experiments.runs import GRID_CAPTIONS, Run
from rlenhance.checkpoint import load_checkpoint, load_state_dict_strict
from rlenhance.errors import CheckpointError

#: ``evaluate() -> (scores, grid_rows)``: scores named ``eval/...``; grid rows are lists of (C, H, W)
#: images shown side by side (input | output | reference).
Evaluate = Callable[[], "tuple[dict[str, float], list[list[torch.Tensor]]]"]
#: Score group of a ``--test`` set: logged and summarised, never used to pick best.pt.
TEST_GROUP = "test"
#: An RL evaluation's share of pixels that took their step's most common action
#: (:func:`experiments.rl_common.top_action_share`); :class:`StuckHint` reads it.
TOP_ACTION_SHARE = "eval/top_action_share"
#: :class:`StuckHint` says a policy picks one action everywhere at this share.
ONE_ACTION = 0.999
#: What :class:`StuckHint` suggests.
STUCK_ADVICE = "train longer (--episodes) or see docs/training.md#a-first-run"
#: The scores the report line prints, where the evaluation has them (the summary has every score).
REPORTED = ("psnr", "ssim", "uqi", "hole_psnr", "hole_ssim", "loss", "exposure_loss")
#: The splits an evaluation may score: the tuning split picks best.pt where the data has one, else the
#: validation split does (:func:`rlenhance.data.split_names`).
SPLIT_NAMES = MappingProxyType({"tune": "tuning", "val": "validation"})
#: A run whose estimated time is longer than this says so before it goes on (:class:`TimeEstimate`).
LONG_RUN_S = 1800.0


def check_tune_fraction(value: float, key: str) -> None:
    """Raise ValueError naming the setting ``key`` unless the tuning split's fraction is in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{key} {value}: expected a number in [0, 1) (0: no tuning split; "
                         "the validation split then picks best.pt)")


class DataSplits(NamedTuple):
    """A trainer's data sets: it trains on ``train``, picks best.pt on ``tune`` (None: a run without a
    tuning split picks on ``val``) and reports best.pt on ``val`` (:class:`Loop`'s ``split`` and
    ``report``); ``test`` (None without one) is scored at every evaluation and reported only."""

    train: Any
    tune: Any | None
    val: Any
    test: Any | None = None

    @property
    def split(self) -> str:
        """The split that picks best.pt: "tune", or "val" without a tuning split."""
        return "val" if self.tune is None else "tune"

    @property
    def picking(self) -> Any:
        """The data set whose evaluations pick best.pt."""
        return self.val if self.tune is None else self.tune

    @property
    def reported(self) -> Any | None:
        """The data set best.pt is reported on after the run (None: it picked on it already)."""
        return None if self.tune is None else self.val


@dataclass
class LoopState:
    """Where the loop is: ``step`` units trained, ``evaluated`` the step of ``scores``, ``best`` the
    best metric so far (at ``best_step``), ``saved`` the step of last.pt (None before one),
    ``improved`` whether the last evaluation beat the best before it."""

    step: int = 0
    evaluated: int = 0
    best: float = -math.inf
    best_step: int = 0
    scores: dict[str, float] = field(default_factory=dict)
    saved: int | None = None
    improved: bool = False
    ended: bool = False
    """a callback ended the run before ``total`` (:meth:`Loop.end`)"""
    report: dict[str, float] = field(default_factory=dict)
    """best.pt's scores on the validation split, after the run (``report``; empty without one)"""


class Callback:
    """Hooks of :class:`Loop`; override the ones you need (each gets the loop: ``loop.state``, ``loop.run``)."""

    def on_start(self, loop: Loop) -> None:
        """Before the first step (after a resume has restored the state)."""

    def on_train(self, loop: Loop, scalars: Mapping[str, float], steps: int) -> None:
        """After ``train`` advanced ``steps`` units (``scalars`` already logged)."""

    def on_evaluation(self, loop: Loop, scores: Mapping[str, float], rows: Sequence[Sequence[torch.Tensor]]) -> None:
        """After an evaluation, on every rank (``loop.state.improved``: ``scores`` beat the best so far;
        ``rows``: rank 0's grid rows, empty on the other ranks)."""

    def on_stop(self, loop: Loop) -> None:
        """A signal stops the run at ``loop.state.step`` (rank 0 saves here)."""

    def on_end(self, loop: Loop) -> None:
        """The run finished its ``total`` steps, its last evaluation and its report."""


class Loop:
    """The training loop (see the module docstring).

    Args:
        run: the run folder (closed when :meth:`fit` returns or raises).
        total: steps to train (episodes, epochs).
        eval_every: evaluate every this many steps, and at ``total``; or a function ``step -> bool``
            that picks the evaluation steps (``train`` is then asked for one step at a time).
        train: ``train(step, until) -> (new_step, scalars)``: trains from ``step`` up to at most
            ``until`` (usually one step), returns the new step and per-step scalars to log
            (``charts/...``, ``losses/...``), already averaged over the ranks; one that runs several
            steps may report them as they end (:meth:`advance`) and stop early
            (:meth:`stop_requested`).
        evaluate: ``() -> (scores, grid_rows)``, run on rank 0 in eval mode without gradients.
        metric: the score that picks best.pt (higher is better; see :class:`Checkpoints`): a key of the scores (not a
            ``test/...`` one) or a function of them.
        model: the network whose weights the checkpoints hold.
        state: the trainer's full state for last.pt (optimisers, counters, generators).
        load_state: restores ``state()``'s value on resume.
        extra: what every checkpoint carries beside the loop's bookkeeping (``spec``, ``config`` ...).
        callbacks: run in order at each event.
        unit: the name of a step (``episode``, ``epoch``): the checkpoints' keys (``episode``,
            ``best_episode``, ``eval_episode``) and the progress bar's.
        summary: ``(state) -> row`` of the closing summary table (None: no table); the loop adds the
            report's ``val_*`` columns.
        title: the summary's title (or a function of the final state that gives it); the loop adds
            which split picked best.pt and what each column group is (:func:`split_note`).
        split: the split ``evaluate`` scores: "tune" (the tuning split) or "val" (a run without one).
        report: ``() -> (scores, grid_rows)`` as ``evaluate``, on the validation split: best.pt's
            weights scored once after the run (rank 0; the model's weights restored after it); only
            with ``split`` "tune".
    """

    def __init__(self, run: Run, *, total: int, eval_every: int | Callable[[int], bool],
                 train: Callable[[int, int], tuple[int, Mapping[str, float]]], evaluate: Evaluate,
                 metric: str | Callable[[Mapping[str, float]], float], model: torch.nn.Module,
                 state: Callable[[], Any], load_state: Callable[[Any], None], extra: Callable[[], Mapping[str, Any]],
                 callbacks: Sequence[Callback] = (), unit: str = "episode",
                 summary: Callable[[LoopState], Mapping[str, Any]] | None = None,
                 title: str | Callable[[LoopState], str] | None = None, split: str = "val",
                 report: Evaluate | None = None):
        if isinstance(metric, str) and metric.startswith(f"{TEST_GROUP}/"):
            raise ValueError(f"metric {metric!r}: a test-set score never picks best.pt; give a score of the split "
                             "evaluate scores")
        if split not in SPLIT_NAMES:
            raise ValueError(f"split {split!r}: expected one of {', '.join(SPLIT_NAMES)}")
        if report is not None and split != "tune":
            raise ValueError("report: best.pt is reported on the validation split when the tuning split picked it; "
                             f"this run picks on the {SPLIT_NAMES[split]} split")
        self.run, self.total, self.unit = run, int(total), unit
        self.eval_every = eval_every if callable(eval_every) else int(eval_every)
        self.train, self.evaluate, self.model = train, evaluate, model
        self.state_fn, self.load_state, self.extra_fn = state, load_state, extra
        self.metric_name = metric if isinstance(metric, str) else "metric"
        self.score_of = (lambda s: s[metric]) if isinstance(metric, str) else metric
        self.callbacks = list(callbacks)
        self.summary_row, self.title = summary, title or str(run.dir)
        self.split, self.report = split, report
        self.state = LoopState()
        self.bar = None
        self.signals: StopSignals | None = None

    # -- checkpoint contents --
    def checkpoint_extra(self, *, with_state: bool = False) -> dict[str, Any]:
        """What a checkpoint of the current state carries; last.pt (``with_state``) adds the
        trainer's state and the step of its scores."""
        s, u = self.state, self.unit
        extra = {**self.extra_fn(), u: s.step, "scores": s.scores, "metric": self.metric_name, "best": s.best,
                 f"best_{u}": s.best_step, "ended": s.ended}
        if with_state:
            extra.update({f"eval_{u}": s.evaluated, "state": self.state_fn(), "report": s.report})
        return extra

    def save(self, name: str, *, with_state: bool = False) -> Path:
        """Write ``checkpoints/<name>.pt`` of the current state (rank 0; the other ranks get its path)."""
        if not self.run.writes:
            return self.run.dir / "checkpoints" / f"{name}.pt"
        return self.run.save(name, model=self.model, arch=self.model.arch(),
                             extra=self.checkpoint_extra(with_state=with_state))

    def end(self) -> None:
        """End the run after the evaluation in progress (called by a callback's ``on_evaluation`` on
        every rank: e.g. a recursion that stopped gaining); last.pt records it, so ``--resume`` of the
        run finds it finished."""
        self.state.ended = True

    def advance(self, step: int, scalars: Mapping[str, float]) -> None:
        """Step ``step`` is done, from within a ``train`` call that runs several (asynchronous
        workers' episodes, as each finishes): its ``scalars`` are logged and the callbacks'
        ``on_train`` run now, rather than once when ``train`` returns."""
        s = self.state
        before, s.step = s.step, int(step)
        if scalars:
            self.run.log(s.step, scalars)
        for callback in self.callbacks:
            callback.on_train(self, scalars, s.step - before)

    def stop_requested(self) -> bool:
        """Whether this process received SIGINT / SIGTERM during :meth:`fit` (a ``train`` call that
        runs many steps may end early at a step boundary; the loop then stops there). Not agreed
        between torchrun's ranks: for a single process's ``train``."""
        return self.signals is not None and self.signals.signum is not None

    @property
    def finished(self) -> bool:
        """The run trained its steps (or was ended) and evaluated the last."""
        s = self.state
        return (s.ended or s.step >= self.total) and s.evaluated == s.step

    # -- the loop --
    def _due(self) -> bool:
        s = self.state
        scheduled = self.eval_every(s.step) if callable(self.eval_every) else s.step % self.eval_every == 0
        return s.evaluated < s.step and (s.step >= self.total or scheduled)

    def _until(self) -> int:
        """The step the next ``train`` call may reach: the next evaluation (or the total)."""
        step = self.state.step
        if callable(self.eval_every):
            return step + 1
        return min(self.total, (step // self.eval_every + 1) * self.eval_every)

    def _resume(self) -> bool:
        """Restore last.pt; True when the run is already finished (nothing to do)."""
        s, u, run = self.state, self.unit, self.run
        last = run.load_last(expected_arch=self.model.arch())
        load_state_dict_strict(self.model, last["state_dict"], source=str(run.last_path))
        extra = last["extra"]
        self.load_state(extra["state"])
        s.step, s.best = int(extra[u]), float(extra["best"])
        s.best_step = int(extra.get(f"best_{u}", 0))
        s.evaluated = int(extra.get(f"eval_{u}", s.step))
        s.scores, s.saved = dict(extra.get("scores") or {}), s.step
        s.ended = bool(extra.get("ended", False))
        s.best, s.best_step = run.ranks.on_rank0(lambda: self._best_on_disk(s.best, s.best_step))
        if self.finished:
            s.report = dict(extra.get("report") or {})  # the finished run's; a run that trains on reports anew
            how = "it ended early" if s.ended else "raise the total to train on"
            run.say(f"{run.dir}: already finished at {u} {s.step}; nothing to do; {how}")
            if run.writes and not run.summary_path.exists():
                self._finish()  # killed between last.pt and summary.md
            return True
        run.truncate_metrics(s.step)
        run.say(f"resumed {run.last_path} at {u} {s.step}")
        return False

    def _best_on_disk(self, best: float, step: int) -> tuple[float, int]:
        """A resumed run's best score and its step as best.pt records them, where that differs from
        last.pt's: best.pt is written first, so a kill between the two leaves it newer. Unchanged
        without a best.pt that records its score, or with one that cannot be read (the next better
        score replaces it)."""
        path, key = self.run.best_path, f"best_{self.unit}"
        if not path.is_file():
            return best, step
        try:
            extra = load_checkpoint(path)["extra"] or {}
        except CheckpointError as exc:
            print(f"{exc}; the next better score replaces it")
            return best, step
        if "best" not in extra or key not in extra:
            return best, step
        on_disk = float(extra["best"]), int(extra[key])
        if on_disk != (float(best), int(step)):
            print(f"{path} (score {on_disk[0]:.4g} at {key} {on_disk[1]}) differs from last.pt's "
                  "record (a run killed between writing the two): it counts as the best so far")
        return on_disk

    def _scored(self, evaluate: Evaluate | None = None) -> tuple[dict[str, float], list[list[torch.Tensor]]]:
        """``evaluate()`` (by default the loop's) in eval mode without gradients (each module's mode
        restored after it), with its duration as ``eval/seconds``."""
        modes = [(module, module.training) for module in self.model.modules()]
        start = time.perf_counter()
        self.model.eval()
        try:
            with torch.no_grad():
                scores, rows = (evaluate or self.evaluate)()
        finally:
            for module, training in modes:
                module.training = training
        return {**scores, "eval/seconds": time.perf_counter() - start}, rows

    def _evaluate(self) -> None:
        s, run = self.state, self.run
        # a rank other than 0 holds a disabled bar, which has no description
        description = getattr(self.bar, "desc", None)
        if description is not None:
            self.bar.set_description_str("evaluating", refresh=True)
        rows: list[list[torch.Tensor]] = []

        def on_rank0() -> dict[str, float]:
            nonlocal rows
            scores, rows = self._scored()
            return scores

        s.scores = run.ranks.on_rank0(on_rank0)  # rank 0 evaluates; every rank gets the scores
        run.log(s.step, s.scores)
        value = float(self.score_of(s.scores))
        s.improved = value > s.best
        if s.improved:
            s.best, s.best_step = value, s.step
        s.evaluated = s.step  # before the callbacks: last.pt records that its scores are this step's
        for callback in self.callbacks:
            callback.on_evaluation(self, s.scores, rows)
        if description is not None:
            self.bar.set_description_str(description, refresh=True)
        s.saved = s.step
        run.ranks.barrier()

    def fit(self) -> Path:
        """Train to ``total`` steps (see the module docstring); returns the run folder.

        Raises:
            experiments.process.Interrupted: SIGINT or SIGTERM stopped the run (last.pt saved).
        """
        s, run = self.state, self.run
        if run.resuming and self._resume():
            run.close()
            return run.dir
        for callback in self.callbacks:
            callback.on_start(self)
        try:
            with StopSignals(run.ranks) as stop:
                self.signals = stop
                while not s.ended and (self._due() or s.step < self.total):
                    if stop.check():  # any rank's signal, agreed at this boundary
                        if run.writes:
                            for callback in self.callbacks:
                                callback.on_stop(self)
                        run.ranks.barrier()  # no rank ends (and has torchrun stop the others) before last.pt is written
                        self._close()
                        raise stop.interrupted(f"interrupted at {self.unit} {s.step} of {self.total} ({stop.name}); "
                                               f"{run.last_path} saved; continue with the same settings and --resume")
                    if self._due():
                        self._evaluate()
                        continue
                    step, scalars = self.train(s.step, self._until())
                    self.advance(step, scalars)  # the steps train did not advance itself
        except BaseException:
            self._close()  # the run folder's lock too: a run stopped in this process can be resumed in it
            raise
        finally:
            self.signals = None
        self._finish()
        self._close()
        return run.dir

    def _finish(self) -> None:
        """The report, the callbacks' ``on_end`` (they may read ``state.report``) and the summary table."""
        if self.report is not None and not self.state.report:  # a finished run resumed has its report
            self._report()
            self.save("last", with_state=True)  # recorded: a resumed finished run reports the same
        for callback in self.callbacks:
            callback.on_end(self)
        if self.summary_row is not None:
            row = {**self.summary_row(self.state),
                   **{f"val_{k.split('/', 1)[-1]}": v for k, v in self.state.report.items() if k != "eval/seconds"}}
            self.run.summary([row], self._title())

    def _report(self) -> None:
        """best.pt's weights scored by ``report`` on the validation split (rank 0, for every rank), printed."""
        s, run = self.state, self.run
        if self.report is None:
            return

        def on_rank0() -> dict[str, float]:
            if not run.best_path.is_file():
                return {}
            best = load_checkpoint(run.best_path)
            weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            load_state_dict_strict(self.model, best["state_dict"], source=str(run.best_path))
            try:
                return self._scored(self.report)[0]
            finally:
                self.model.load_state_dict(weights)

        s.report = run.ranks.on_rank0(on_rank0)
        if not s.report:
            run.say(f"no validation report: {run.best_path} is missing (no evaluation scored a number)")
            return
        named = {k.split("/", 1)[-1]: v for k, v in s.report.items() if k != "eval/seconds"}
        shown = [k for k in REPORTED if k in named] or list(named)
        run.say(f"best.pt ({self.unit} {s.best_step}, picked on the {SPLIT_NAMES[self.split]} split): validation "
                + ", ".join(f"{k} {named[k]:.4g}" for k in shown))

    def _title(self) -> str:
        title = self.title(self.state) if callable(self.title) else self.title
        tested = any(k.startswith(f"{TEST_GROUP}/") for k in self.state.scores)
        return f"{title} ({split_note(self.split, reported=bool(self.state.report), tested=tested)})"

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.run.close()


# --- the standard callbacks -------------------------------------------------------------------------
class Checkpoints(Callback):
    """Where a run's checkpoints are written: ``best.pt`` when the evaluation beat the best so far
    (``loop.state.improved``, set by :meth:`Loop._evaluate`), before last.pt, so a kill between the two
    leaves a best.pt that --resume takes over (:meth:`Loop._best_on_disk`); :meth:`Loop._report` scores
    it after the run; ``best=False``: the trainer writes its own (:mod:`experiments.rse_train`).
    ``episode_NNNNNN.pt`` of every evaluation with ``keep``; ``last.pt`` (with the trainer's state)
    after every evaluation and when a signal stops the run."""

    def __init__(self, keep: bool = False, *, best: bool = True):
        self.keep, self.best = keep, best

    def on_evaluation(self, loop: Loop, scores: Mapping[str, float], rows: Sequence[Sequence[torch.Tensor]]) -> None:
        if self.best and loop.state.improved:
            loop.save("best")
        if self.keep:
            loop.save(f"{loop.unit}_{loop.state.step:06d}")
        loop.save("last", with_state=True)

    def on_stop(self, loop: Loop) -> None:
        if loop.state.saved != loop.state.step:
            loop.save("last", with_state=True)


class SampleGrids(Callback):
    """``samples/<unit>_NNNNNN.png``: the first ``count`` grid rows of each evaluation, each column
    captioned (``captions``), also shown in TensorBoard at the step."""

    def __init__(self, count: int, captions: Sequence[str] = GRID_CAPTIONS):
        self.count, self.captions = count, captions

    def on_evaluation(self, loop: Loop, scores: Mapping[str, float], rows: Sequence[Sequence[torch.Tensor]]) -> None:
        if rows and self.count:
            loop.run.save_grid(f"{loop.unit}_{loop.state.step:06d}", list(rows)[:self.count], captions=self.captions,
                               step=loop.state.step)


class StuckHint(Callback):
    """Say once why a run's evaluations look alike: its policy picks one action at every pixel
    (:data:`TOP_ACTION_SHARE` at least :data:`ONE_ACTION`), or an evaluation's outputs (the grid
    rows' second image) are those of the evaluation before."""

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
            loop.run.say(f"\nhint: {why}; {STUCK_ADVICE}")


class Progress(Callback):
    """A progress bar over the steps (rank 0), showing ``shown`` scalar (e.g. the episode return) and
    the best score; it reads "evaluating" while an evaluation runs."""

    def __init__(self, shown: str | None = None, label: str = "ret"):
        self.shown, self.label = shown, label
        self.value: float | None = None  # the last value of ``shown``

    def on_start(self, loop: Loop) -> None:
        loop.bar = loop.run.progress(loop.total, initial=loop.state.step, desc=loop.unit)

    def on_train(self, loop: Loop, scalars: Mapping[str, float], steps: int) -> None:
        loop.bar.update(steps)
        best = loop.state.best
        postfix = {"best": f"{best:.4g}" if math.isfinite(best) else "-"}
        self.value = scalars.get(self.shown, self.value) if self.shown is not None else None
        if self.value is not None:
            postfix = {self.label: f"{self.value:.3f}", **postfix}
        loop.bar.set_postfix(postfix)


class TimeEstimate(Callback):
    """Say in one line how long the rest of the run will take when that is longer than ``threshold_s``:
    before the first step from ``cost`` (seconds per step and per evaluation, a preset's measured
    cost on this device: ``source`` names it), else once ``warmup`` steps have run, at their speed
    (evaluations extra; ``warmup`` None: steps too unlike each other to measure so)."""

    def __init__(self, warmup: int | None = 10, threshold_s: float = LONG_RUN_S, *,
                 cost: tuple[float, float] | None = None, source: str = ""):
        self.warmup, self.threshold_s, self.cost, self.source = warmup, threshold_s, cost, source
        self.start: float | None = None
        self.first = 0
        self.told = False

    def on_start(self, loop: Loop) -> None:
        self.start, self.first = time.perf_counter(), loop.state.step
        if self.cost is None:
            return
        self.told = True
        per_step, per_eval = self.cost
        steps = loop.total - loop.state.step
        evaluations = evaluations_left(loop.state.step, loop.total, loop.eval_every)
        left = steps * per_step + evaluations * per_eval
        if left > self.threshold_s:
            loop.run.say(f"estimated time: {duration(left)} ({steps} {loop.unit}s at {per_step:.3g} s and "
                         f"{evaluations} evaluations at {per_eval:.3g} s: {self.source})")

    def on_train(self, loop: Loop, scalars: Mapping[str, float], steps: int) -> None:
        done = loop.state.step - self.first
        if self.told or self.warmup is None or done < self.warmup or self.start is None:
            return
        self.told = True
        per_step = (time.perf_counter() - self.start) / done
        left = (loop.total - loop.state.step) * per_step
        if left > self.threshold_s:
            loop.run.say(f"\nestimated time left: {duration(left)} of training at {per_step:.2f} s per {loop.unit} "
                         "(evaluations extra)")


def split_note(split: str, *, reported: bool, tested: bool) -> str:
    """What a summary's title says of its columns: the split that picked best.pt (``split``: its
    scores the ``tune_*`` or ``val_*`` columns and ``best_*``), best.pt's validation report
    (``reported``: ``val_*``) and a ``--test`` set (``tested``: ``test_*``, reported only)."""
    parts = [f"best.pt picked on the {SPLIT_NAMES[split]} split: {split}_*, best_*"]
    if reported:
        parts.append("val_*: best.pt on the validation split")
    if tested:
        parts.append("test_*: the --test images, reported only")
    return "; ".join(parts)


def evaluations_left(step: int, total: int, eval_every: int | Callable[[int], bool]) -> int:
    """How many evaluations a loop at ``step`` of ``total`` has still to run (the last step's included)."""
    if step >= total:
        return 0
    if callable(eval_every):
        return sum(1 for s in range(step + 1, total + 1) if s == total or eval_every(s))
    return total // eval_every - step // eval_every + (1 if total % eval_every else 0)


def preset_estimate(config: Any, presets: Mapping[str, Preset], device: str, *, ignore: Sequence[str],
                    check: Callable[[Any], Any], per_step: Callable[[Cost], tuple[float, float]],
                    warmup: int | None = 10) -> TimeEstimate:
    """The :class:`TimeEstimate` of a run of ``config`` on a ``device`` type: from the measured cost of the
    preset ``config`` is (:func:`experiments.config.preset_of`, but for the settings ``ignore``; ``check``:
    the trainer's) where there is one, ``per_step(cost)`` giving the seconds per loop step and per
    evaluation; else measured after ``warmup`` steps."""
    name = preset_of(config, presets, ignore, check)
    cost = presets[name].cost(device) if name is not None else None
    if cost is None:
        return TimeEstimate(warmup)
    return TimeEstimate(warmup, cost=per_step(cost), source=f"the measured cost of --preset {name} on {device}")


def run_seconds(total: int, eval_every: int, cost: tuple[float, float]) -> float:
    """The seconds of a whole run of ``total`` steps evaluated every ``eval_every`` at ``cost`` (seconds
    per step, per evaluation)."""
    return total * cost[0] + evaluations_left(0, total, eval_every) * cost[1]


def standard_callbacks(samples: int, *, keep_evals: bool = False, shown: str | None = None,
                       captions: Sequence[str] = GRID_CAPTIONS, estimate: TimeEstimate | None = None
                       ) -> list[Callback]:
    """Checkpoints, sample grids of ``samples`` rows (columns ``captions``), a progress bar (showing
    scalar ``shown``), a time estimate (``estimate``, else one measured) and the hint of a run that
    looks stuck: what every trainer uses."""
    return [Checkpoints(keep_evals), SampleGrids(samples, captions), Progress(shown), estimate or TimeEstimate(),
            StuckHint()]
