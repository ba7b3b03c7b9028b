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
from rlenhance.models.pixelrnn import hole_psnr, hole_ssim

#: Per-image scores of every task (completion adds HOLE_FIELDS); "ms" is the timing column.
SCORE_FIELDS = ("psnr", "ssim", "uqi")
HOLE_FIELDS = ("hole_psnr", "hole_ssim")
TIMING_FIELD = "ms"


def score_fields(task: str) -> tuple[str, ...]:
    """The score columns of a task: :data:`SCORE_FIELDS`, and :data:`HOLE_FIELDS` for completion."""
    return SCORE_FIELDS + (HOLE_FIELDS if task == "completion" else ())


def score(output: np.ndarray, sample: Sample) -> dict[str, float]:
    """PSNR / SSIM / UQI (and the hole scores for completion) of one output, clipped to [0, 1]."""
    x = torch.from_numpy(np.clip(output, 0.0, 1.0)).permute(2, 0, 1)[None]
    y = torch.from_numpy(sample.reference).permute(2, 0, 1)[None]
    scores = {"psnr": float(metrics.psnr(x, y)[0]), "ssim": float(metrics.ssim(x, y)[0]),
              "uqi": float(metrics.uqi(x, y)[0])}
    if sample.mask is not None:
        hole = torch.from_numpy(sample.mask.astype(np.float32))[None, None]
        scores["hole_psnr"] = float(hole_psnr(x, y, hole)[0])
        scores["hole_ssim"] = float(hole_ssim(x, y, hole)[0])
    return scores


def evaluate(method: Method, samples: Sequence[Sample], *, warmup: bool, keep: int
             ) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Run a method on every sample; per-image rows (scores and ms) and the first ``keep`` outputs."""
    if warmup:
        method.run(samples[0].input, samples[0].mask)
    rows, kept = [], []
    for i, sample in enumerate(samples):
        start = time.perf_counter()
        output = method.run(sample.input, sample.mask)
        ms = (time.perf_counter() - start) * 1000.0
        if output.shape != sample.reference.shape:
            raise ValueError(f"{method.name}: output of shape {output.shape} for {sample.name}, expected "
                             f"{sample.reference.shape}")
        rows.append({"image": sample.name, "method": method.name, **score(output, sample), TIMING_FIELD: ms})
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
        entry["params"] = method.params
        entry["source"] = method.source
        entry["note"] = method.note
        table.append(entry)
    return table


def paired_field(task: str) -> str:
    """The score a paired comparison uses: hole PSNR for completion, else PSNR."""
    return "hole_psnr" if task == "completion" else "psnr"


def paired_differences(rows: Sequence[Mapping[str, Any]], against: str, field: str) -> list[dict[str, Any]]:
    """Per method other than ``against``: mean and standard error of ``field(method) -
    field(against)`` over the images both scored (finite values), and the count of images where the
    method is higher (strictly)."""
    base = {row["image"]: row[field] for row in rows if row["method"] == against}
    methods = list(dict.fromkeys(row["method"] for row in rows if row["method"] != against))
    table = []
    for name in methods:
        diffs = np.array([row[field] - base[row["image"]] for row in rows
                          if row["method"] == name and row["image"] in base
                          and math.isfinite(row[field]) and math.isfinite(base[row["image"]])], dtype=np.float64)
        sem = float(diffs.std(ddof=1) / math.sqrt(diffs.size)) if diffs.size > 1 else math.nan
        table.append({"method": name, "images": int(diffs.size),
                      "mean": float(diffs.mean()) if diffs.size else math.nan, "sem": sem,
                      "higher": int((diffs > 0).sum())})
    return table
