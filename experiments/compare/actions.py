"""What the RL methods of ``experiments.compare`` did: each one's :class:`rlenhance.trace.ActionTrace` per image
(:func:`trace_methods`, run after the timed run), written as ``actions.csv`` (:func:`write_actions_csv`), report.md's
"Actions of the RL methods" (:func:`actions_section`) and ``actions.png`` (:func:`action_figure`).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from experiments.compare.methods import Method
from experiments.compare.report import labelled_grid
from experiments.compare.samples import Sample
from rlenhance.atomic import atomic_path
from rlenhance.trace import ActionTrace, action_map_image, legend_image, usage
from rlenhance.transitions import PREDICT_ACTION

__all__ = ["action_figure", "actions_section", "trace_methods", "write_actions_csv"]

#: The widest legend of actions.png, in pixels.
LEGEND_WIDTH = 640
#: What actions.png's titles say of the plane shown (the first), by the traces' planes.
_PLANE_NAMES = {1: "", 3: " (plane 1 of 3: R)"}


def trace_methods(methods: Mapping[str, Method], samples: Sequence[Sample]) -> dict[str, list[ActionTrace]]:
    """Every traced method's :class:`~rlenhance.trace.ActionTrace` of every sample, in the samples' order."""
    return {name: [method.trace(s.input, mask=s.mask)[1] for s in samples]
            for name, method in methods.items() if method.trace is not None}


def _percent(share: float) -> str:
    """``share`` in percent, one decimal; more where that would round a share other than 0 or 1 to 0 or 100."""
    if np.isnan(share):
        return "-"
    text = f"{100 * share:.1f}"
    if text in ("0.0", "100.0") and 0 < share < 1:
        text = f"{100 * share:.4f}"
    return f"{text}%"


def write_actions_csv(path: Path, traces: Mapping[str, Sequence[ActionTrace]]) -> None:
    """actions.csv (atomically): method, step (``all``, 1..n), action, pixel_steps, share (full precision)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["method", "step", "action", "pixel_steps", "share"])
        for name, found in traces.items():
            counts = sum(t.counts() for t in found)
            steps = [("all", counts.sum(axis=0))] + [(str(k + 1), row) for k, row in enumerate(counts)]
            for step, row in steps:
                total = row.sum()
                for action, count in zip(found[0].names, row):
                    writer.writerow([name, step, action, int(count), repr(float(count / total)) if total else "nan"])


def actions_section(traces: Mapping[str, Sequence[ActionTrace]]) -> str:
    """report.md's section on the RL methods' actions (empty without RL method)."""
    if not traces:
        return ""
    lines = ["## Actions of the RL methods", "",
             "Share of pixel-steps (every pixel, or plane of a pixel, at every step, over all images; completion: "
             "the hole's pixels) that took each action; actions never taken are left out (actions.csv lists "
             "them all). \"predictor's pixel\": the action that takes the supervised predictor's output; where it "
             "is 100%, the policy adds nothing to its predictor. actions.png shows the maps.", "",
             "| method | actions | steps | pixel-steps | predictor's pixel | most taken |", "|---|---|---|---|---|---|"]
    for name, found in traces.items():
        shares = usage(found)
        names = found[0].names
        top = int(np.nanargmax(shares))
        predict = _percent(shares[names.index(PREDICT_ACTION)]) if PREDICT_ACTION in names else "(none)"
        pixel_steps = int(sum(t.counts().sum() for t in found))
        lines.append(f"| {name} | {len(names)} | {found[0].steps} | {pixel_steps:,} | {predict} | {names[top]} "
                     f"({_percent(shares[top])}) |")
    for name, found in traces.items():
        shares, per_step = usage(found), usage(found, per_step=True)
        steps = found[0].steps
        lines += ["", f"### {name}", "", "| action | all steps | " + " | ".join(f"step {k + 1}" for k in range(steps))
                  + " |", "|---|---|" + "---|" * steps]
        for index, action in enumerate(found[0].names):
            if shares[index] > 0:
                lines.append(f"| {action} | {_percent(shares[index])} | "
                             + " | ".join(_percent(per_step[k, index]) for k in range(steps)) + " |")
    return "\n".join(lines) + "\n"


def action_figure(traces: Mapping[str, Sequence[ActionTrace]], samples: Sequence[Sample], *, keep: int,
                  tile: int = 160) -> np.ndarray:
    """actions.png: per RL method, a title, the first ``keep`` inputs with every step's action map, then the legend
    of its actions. float32 RGB in [0, 1]."""
    blocks = []
    for name, found in traces.items():
        steps = found[0].steps
        rows = [[np.clip(s.input, 0.0, 1.0), *(action_map_image(t, k, size=s.input.shape[:2]) / 255.0
                                              for k in range(steps))]
                for s, t in zip(samples[:keep], found)]
        grid = labelled_grid(rows, ["input", *(f"step {k + 1}" for k in range(steps))], tile=tile)
        title = labelled_grid([], [f"{name}: actions{_PLANE_NAMES.get(found[0].maps.shape[1], '')}"],
                              tile=grid.shape[1])
        legend = legend_image(found, width=min(grid.shape[1], LEGEND_WIDTH)).astype(np.float32) / 255.0
        blocks += [title, grid, legend, np.ones((12, grid.shape[1], 3), np.float32)]
    width = max(b.shape[1] for b in blocks)
    padded = [np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=1.0) for b in blocks]
    return np.concatenate(padded, axis=0)
