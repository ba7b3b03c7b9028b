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
from rlenhance.errors import ImageError
from rlenhance.io import BT601_LUMA_WEIGHTS
from rlenhance.metrics.no_reference import NIQE_BLOCK
from rlenhance.models.pixelrnn import hole_psnr, hole_ssim

#: Per-image scores against a reference (completion adds HOLE_FIELDS); "ms" is the timing column.
SCORE_FIELDS = ("psnr", "ssim", "uqi")
HOLE_FIELDS = ("hole_psnr", "hole_ssim")
#: Per-image scores of low-light outputs that need no reference (:func:`no_reference_scores`).
NO_REFERENCE_FIELDS = ("niqe", "loe", "brightness", "clipped", "dark_noise")
TIMING_FIELD = "ms"
#: Scores where lower is better (the others higher, but brightness and clipped, which have no better side).
LOWER_BETTER = frozenset({"niqe", "loe", "dark_noise"})


def score_fields(task: str, *, reference: bool = True) -> tuple[str, ...]:
    """The score columns of a task: :data:`SCORE_FIELDS` with a reference, :data:`HOLE_FIELDS` for
    completion, and :data:`NO_REFERENCE_FIELDS` for low light."""
    fields = SCORE_FIELDS if reference else ()
    if task == "completion":
        fields += HOLE_FIELDS
    if task == "lowlight":
        fields += NO_REFERENCE_FIELDS
    return fields


def no_reference_scores(image: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """The low-light scores of an output that need no reference, given the input ``image`` (RGB, [0, 1]).

    ``niqe`` (:func:`rlenhance.metrics.niqe`; NaN for an image under 96 pixels high or wide, or a flat
    one), ``loe`` (:func:`rlenhance.metrics.loe` of the input and the output), ``brightness`` (mean
    BT.601 luma, 0-1), ``clipped`` (:func:`rlenhance.metrics.clipped_fraction`, 0-1) and ``dark_noise``
    (:func:`rlenhance.metrics.dark_colour_noise`, 0-255 chroma scale).
    """
    image = np.clip(image, 0.0, 1.0)
    try:
        niqe = metrics.niqe(output) if min(output.shape[:2]) >= NIQE_BLOCK else math.nan
    except ImageError:  # a flat output: NIQE is undefined
        niqe = math.nan
    return {"niqe": niqe, "loe": metrics.loe(image, output),
            "brightness": float((output.astype(np.float64) @ np.asarray(BT601_LUMA_WEIGHTS)).mean()),
            "clipped": metrics.clipped_fraction(output), "dark_noise": metrics.dark_colour_noise(image, output)}


def score(output: np.ndarray, sample: Sample, *, psnr_on: str = "rgb", gt_mean: bool = False,
          no_reference: bool = False) -> dict[str, float]:
    """The scores of one output, clipped to [0, 1]: PSNR / SSIM / UQI against the sample's reference
    (if it has one; on the Y channel with ``psnr_on="y"``, after :func:`rlenhance.metrics.gt_mean_align`
    with ``gt_mean``), the hole scores for completion (of the output as it is), and with ``no_reference``
    :func:`no_reference_scores`."""
    output = np.clip(output, 0.0, 1.0)
    scores: dict[str, float] = {}
    if sample.reference is not None:
        x = torch.from_numpy(output).permute(2, 0, 1)[None]
        y = torch.from_numpy(sample.reference).permute(2, 0, 1)[None]
        fx, fy = (metrics.gt_mean_align(x, y) if gt_mean else x), y
        if psnr_on == "y":
            fx, fy = metrics.rgb_to_y(fx), metrics.rgb_to_y(fy)
        scores = {"psnr": float(metrics.psnr(fx, fy)[0]), "ssim": float(metrics.ssim(fx, fy)[0]),
                  "uqi": float(metrics.uqi(fx, fy)[0])}
        if sample.mask is not None:
            hole = torch.from_numpy(sample.mask.astype(np.float32))[None, None]
            scores["hole_psnr"] = float(hole_psnr(x, y, hole)[0])
            scores["hole_ssim"] = float(hole_ssim(x, y, hole)[0])
    if no_reference:
        scores.update(no_reference_scores(sample.input, output))
    return scores


def evaluate(method: Method, samples: Sequence[Sample], *, warmup: bool, keep: int, **scoring: Any
             ) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Run a method on every sample; per-image rows (:func:`score` with the keywords ``scoring``, and
    ms) and the first ``keep`` outputs."""
    def run(sample: Sample) -> np.ndarray:
        return method.run(sample.input, mask=sample.mask, **({"level": sample.level} if method.oracle else {}))

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
        rows.append({"image": sample.name, "method": method.name, **score(output, sample, **scoring),
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
    method is better (strictly: higher, or lower for :data:`LOWER_BETTER` scores)."""
    base = {row["image"]: row[field] for row in rows if row["method"] == against}
    methods = list(dict.fromkeys(row["method"] for row in rows if row["method"] != against))
    sign = -1.0 if field in LOWER_BETTER else 1.0
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
