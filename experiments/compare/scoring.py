"""Scores of ``experiments.compare``: per image and method, the summary over images, and paired
differences to one method."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from experiments.compare.methods import Method
from experiments.compare.samples import Sample
from rlenhance import metrics
from rlenhance.metrics.table import METRICS, Metric

#: The timing column of the per-image rows.
TIMING_FIELD = "ms"


def task_metrics(task: str, *, reference: bool = True, extra: Sequence[str] = ()) -> list[Metric]:
    """The metrics a comparison of ``task`` scores: the task's of :data:`rlenhance.metrics.table.METRICS` (those
    against a reference only with references), then ``extra`` (``--metrics``), each once.

    Raises:
        ValueError: an unknown metric, or one that needs a reference where the images have none.
    """
    chosen = [m for _, m in METRICS.items() if task in m.tasks and (reference or m.reference == "none")]
    for key in extra:
        metric = METRICS.get(key)
        if metric.reference != "none" and not reference:
            raise ValueError(f"--metrics {key}: a metric against a reference ({metric.reference}); these images have "
                             "none")
        if metric.name not in [m.name for m in chosen]:
            chosen.append(metric)
    return chosen


def score(output: np.ndarray, sample: Sample, scored: Sequence[Metric], *, psnr_on: str = "rgb",
          gt_mean: bool = False) -> dict[str, float]:
    """The ``scored`` metrics of one output clipped to [0, 1]: against the reference (on Y with ``psnr_on="y"``,
    GT-mean aligned with ``gt_mean``), in the hole, or given the input (no reference)."""
    output = np.clip(output, 0.0, 1.0)
    scores: dict[str, float] = {}
    if sample.reference is not None:
        x = torch.from_numpy(output).permute(2, 0, 1)[None]
        y = torch.from_numpy(sample.reference).permute(2, 0, 1)[None]
        fx, fy = (metrics.gt_mean_align(x, y) if gt_mean else x), y
        if psnr_on == "y":
            fx, fy = metrics.rgb_to_y(fx), metrics.rgb_to_y(fy)
        scores = {m.name: float(m.fn(fx, fy)[0]) for m in scored if m.reference == "full"}
        if sample.mask is not None:
            hole = torch.from_numpy(sample.mask.astype(np.float32))[None, None]
            scores.update({m.name: float(m.fn(x, y, hole)[0]) for m in scored if m.reference == "hole"})
    image = np.clip(sample.input, 0.0, 1.0)
    scores.update({m.name: float(m.fn(output, image)) for m in scored if m.reference == "none"})
    return scores


def evaluate(method: Method, samples: Sequence[Sample], scored: Sequence[Metric], *, warmup: bool, keep: int,
             **scoring: Any) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Run a method on every sample; per-image rows (:func:`score` of the ``scored`` metrics with the
    keywords ``scoring``, and ms) and the first ``keep`` outputs."""
    def run(sample: Sample) -> np.ndarray:
        return method.run(sample.input, mask=sample.mask,
                          **({method.oracle: getattr(sample, method.oracle)} if method.oracle else {}))

    if warmup:
        run(samples[0])
    rows, kept = [], []
    for i, sample in enumerate(samples):
        start = time.perf_counter()
        output = run(sample)
        ms = (time.perf_counter() - start) * 1000.0
        expected = sample.input.shape if sample.reference is None else sample.reference.shape
        if output.shape != expected:
            raise ValueError(f"{method.name}: output of shape {output.shape} for {sample.name}, expected {expected}")
        rows.append({"image": sample.name, "method": method.name, **score(output, sample, scored, **scoring),
                     TIMING_FIELD: ms})
        if i < keep:
            kept.append(np.clip(output, 0.0, 1.0))
    return rows, kept


def summarize(rows: Sequence[Mapping[str, Any]], methods: Mapping[str, Method], fields: Sequence[str]
              ) -> list[dict[str, Any]]:
    """Per method: image count, mean and (population) standard deviation of every score over images
    (NaN hole scores of images without hole are skipped), mean ms, parameters, checkpoint and note."""
    table = []
    for name, method in methods.items():
        mine = [row for row in rows if row["method"] == name]
        entry: dict[str, Any] = {"method": name, "images": len(mine)}
        for field in fields:
            values = np.array([row[field] for row in mine], dtype=np.float64)
            values = values[~np.isnan(values)]
            entry[field] = float(values.mean()) if values.size else math.nan
            entry[f"{field}_std"] = float(values.std()) if values.size else math.nan
        entry[TIMING_FIELD] = float(np.mean([row[TIMING_FIELD] for row in mine]))
        entry[f"{TIMING_FIELD}_std"] = float(np.std([row[TIMING_FIELD] for row in mine]))
        entry["params"] = method.params
        entry["source"] = method.source
        entry["note"] = method.note
        table.append(entry)
    return table


def paired_fields(task: str, *, reference: bool = True) -> tuple[str, ...]:
    """The scores a paired comparison uses: hole PSNR for completion, PSNR for other pairs, and for
    low light NIQE and dark-area colour noise too."""
    if task == "completion":
        return ("hole_psnr",)
    return (("psnr",) if reference else ()) + (("niqe", "dark_noise") if task == "lowlight" else ())


def paired_differences(rows: Sequence[Mapping[str, Any]], against: str, field: str) -> list[dict[str, Any]]:
    """Per method other than ``against``: mean and standard error of ``field(method) -
    field(against)`` over the images both scored (finite values), and the count of images where the
    method is better (strictly: higher, or lower for a metric whose ``higher_is_better`` is False)."""
    base = {row["image"]: row[field] for row in rows if row["method"] == against}
    methods = list(dict.fromkeys(row["method"] for row in rows if row["method"] != against))
    sign = -1.0 if METRICS.get(field).higher_is_better is False else 1.0
    table = []
    for name in methods:
        diffs = np.array([row[field] - base[row["image"]] for row in rows
                          if row["method"] == name and row["image"] in base
                          and math.isfinite(row[field]) and math.isfinite(base[row["image"]])], dtype=np.float64)
        sem = float(diffs.std(ddof=1) / math.sqrt(diffs.size)) if diffs.size > 1 else math.nan
        table.append({"method": name, "field": field, "images": int(diffs.size),
                      "mean": float(diffs.mean()) if diffs.size else math.nan, "sem": sem,
                      "better": int((sign * diffs > 0).sum())})
    return table
