"""The files ``experiments.compare`` writes, atomically: report.md, results.csv and the labelled samples.png grid."""

from __future__ import annotations

import csv
import math
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from experiments.compare.config import Args, data_label, resolved_split
from experiments.compare.samples import Sample
from experiments.compare.scoring import TIMING_FIELD
from experiments.runs import markdown_table
from rlenhance.atomic import atomic_path, write_text_atomic
from rlenhance.metrics.table import METRICS, Metric

#: Decimals of ms/image in report.md (each metric's are its own, :attr:`Metric.digits`).
TIMING_DIGITS = 1


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def mean_std(entry: Mapping[str, Any], field: str, *, digits: int = 4, percent: bool = False) -> str:
    """``"mean ± std"`` of a summary entry's score, with ``digits`` decimals (``percent``: times 100)."""
    scale = 100.0 if percent else 1.0
    return f"{_fmt(entry[field] * scale, digits)} ± {_fmt(entry[f'{field}_std'] * scale, digits)}"


def report_table(summary: Sequence[Mapping[str, Any]], scored: Sequence[Metric]) -> str:
    """The markdown table of report.md: per method, every score as "mean ± std" over images (each metric's
    label and decimals), ms/image ("mean ± std" too) and the learned parameters."""
    rows = []
    for entry in summary:
        row = {"method": entry["method"], "images": str(entry["images"])}
        for metric in scored:
            row[metric.label] = mean_std(entry, metric.name, digits=metric.digits, percent=metric.percent)
        row["ms/image"] = mean_std(entry, TIMING_FIELD, digits=TIMING_DIGITS)
        row["params"] = f"{entry['params']:,}" if entry["params"] is not None else "-"
        rows.append(row)
    return markdown_table(rows)


def denoise_data(args: Args, samples: Sequence[Sample]) -> str:
    """The denoising data of report.md's header: planes, noise, and the level the classical denoisers get."""
    planes = "gray" if samples[0].input.shape[2] == 1 else "RGB"
    if samples[0].real_noise:
        noise = "real noise (the data's own noisy images; --sigma and --seed unused)"
    else:
        level = f"{args.sigma:g}" if args.sigma_to is None else \
            f"{args.sigma:g} (left edge) to {args.sigma_to:g} (right edge), linear"
        noise = (f"Gaussian noise sigma {level}{' on every channel' if planes == 'RGB' else ''} (0-255 "
                 f"scale, not clipped), noise seed {args.seed}")
    estimates = np.array([s.sigma for s in samples if s.sigma is not None])
    if estimates.size:
        given = ("classical denoisers given each image's estimated sigma "
                 "(rlenhance.noise_estimate.estimate_noise_sigma, "
                 f"timed with the method): mean {estimates.mean():.2f}, min {estimates.min():.2f}, max "
                 f"{estimates.max():.2f}")
    else:
        given = f"classical denoisers given sigma {args.sigma:g}"
    return f"{planes}, {noise}; {given}"


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> None:
    """results.csv: one row per image and method: image, method, the scores (full precision), ms."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "method", *fields, TIMING_FIELD], lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()} for row in rows)


def _listed(names: Sequence[str]) -> str:
    """``"a, b and c"``."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def directions(scored: Sequence[Metric]) -> str:
    """``"lower is better for A and B; higher is better for C"`` of the ``scored`` metrics with a better side
    opposite to the scores' usual one (or, no-reference, any): "" when none."""
    lower = [m.label for m in scored if m.higher_is_better is False]
    higher = [m.label for m in scored if m.higher_is_better is True and m.reference == "none"]
    return "; ".join([*([f"lower is better for {_listed(lower)}"] if lower else []),
                      *([f"higher is better for {_listed(higher)}"] if higher else [])])


def protocol(args: Args, scored: Sequence[Metric]) -> str:
    """How report.md's scores were taken: the full-reference protocol, the no-reference metrics, the timing."""
    parts = []
    full = [m.about for m in scored if m.reference == "full"]
    if full:
        planes = "on Y (BT.601 YCbCr, studio swing)" if args.psnr_on == "y" else "on the RGB channels"
        aligned = ("after scaling each output so that its mean gray equals its reference's (GT-mean)" if args.gt_mean
                   else "without GT-mean alignment")
        parts.append(f"{' / '.join(full)} of the output clipped to [0, 1] against the reference at full resolution, "
                     f"{planes}, {aligned}" + (" (hole: inside the mask only, on RGB)" if args.task == "completion"
                                              else ""))
    elif any(m.reference == "hole" for m in scored):
        parts.append("hole scores inside the mask only")
    none = [m for m in scored if m.reference == "none"]
    if none:
        parts.append("No reference: " + ", ".join(m.about for m in none)
                     + "".join(f"; {text}" for text in [directions(none)] if text))
    timing = "ms/image: the method alone, no file I/O" + (", after one untimed warm-up run" if args.warmup else "")
    return "; ".join([*parts, timing]) + "."


def write_report(path: Path, *, args: Args, argv: Sequence[str], summary: Sequence[Mapping[str, Any]],
                 scored: Sequence[Metric], samples: Sequence[Sample], missing: Mapping[str, str],
                 notes: Sequence[str], device: torch.device, paired: Sequence[Mapping[str, Any]] = (),
                 actions: str = "") -> str:
    """report.md; returns its text. ``actions``: :func:`experiments.compare.actions.actions_section`'s text."""
    what = f"{len(samples)} image(s) of {data_label(args)} (split {resolved_split(args)}, split seed " \
           f"{args.split_seed})"
    if args.task == "denoise":
        what += ", " + denoise_data(args, samples)
    if samples[0].reference is None:
        what += ", without references"
    lines = [f"# Comparison: {args.task}", "",
             "Command: `" + shlex.join(["python", "-m", "experiments.compare", *argv]) + "`",
             "", f"Data: {what}. Device: {device}, {torch.get_num_threads()} CPU thread(s).", "",
             report_table(summary, scored), "",
             "Mean ± population standard deviation over images. " + protocol(args, scored)
             + " Params: learned parameters (- for methods that learn nothing).", ""]
    if paired:
        compared = [METRICS.get(field) for field in dict.fromkeys(e["field"] for e in paired)]
        lines += [f"## Paired with {args.paired_against}", "",
                  f"Per image, the score of the method minus that of {args.paired_against}: mean ± standard error "
                  "of the mean, and on how many of the images the method is better (strictly"
                  + "".join(f"; {text}" for text in [directions(compared)] if text) + ").", "",
                  "| method | score | mean difference | better on |", "|---|---|---|---|",
                  *[f"| {e['method']} | {METRICS.get(e['field']).label} | {e['mean']:+.3f} ± {_fmt(e['sem'], 3)} | "
                    f"{e['better']} of {e['images']} |" for e in paired], ""]
    if actions:
        lines += [actions]
    sources = [f"- {entry['method']}: `{entry['source']}`" + (f" ({entry['note']})" if entry.get("note") else "")
               for entry in summary if entry.get("source")]
    if sources:
        lines += ["## Checkpoints", "", *sources, ""]
    if missing:
        lines += ["## Missing methods", "", *[f"- {name}: missing: {why}" for name, why in missing.items()], ""]
    if notes:
        lines += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    text = "\n".join(lines)
    write_text_atomic(path, text)
    return text


# --- samples.png -------------------------------------------------------------------------------------------
def _text(canvas: np.ndarray, text: str, org: tuple[int, int], *, scale: float = 0.4,
          color: tuple[int, int, int] = (40, 40, 40), max_width: int | None = None) -> None:
    """Draw ``text`` with OpenCV's Hershey font, shrunk to fit ``max_width`` pixels."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    if max_width is not None:
        width = cv2.getTextSize(text, font, scale, 1)[0][0]
        if width > max_width:
            scale *= max_width / width
    cv2.putText(canvas, text, org, font, scale, color, 1, cv2.LINE_AA)


def _fit(image: np.ndarray, tile: int) -> np.ndarray:
    """An image (H, W, C), C in {1, 3}, as uint8 RGB centred in a white tile x tile square."""
    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    height, width = rgb.shape[:2]
    scale = tile / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    small = cv2.resize(np.clip(rgb, 0.0, 1.0).astype(np.float32), size, interpolation=interpolation)
    canvas = np.full((tile, tile, 3), 255, np.uint8)
    top, left = (tile - size[1]) // 2, (tile - size[0]) // 2
    canvas[top:top + size[1], left:left + size[0]] = np.rint(small.reshape(size[1], size[0], 3) * 255)
    return canvas


def labelled_grid(rows: Sequence[Sequence[np.ndarray]], labels: Sequence[str], *, tile: int = 160, gap: int = 4,
                  header: int = 22) -> np.ndarray:
    """Images side by side under column labels: each row one sample, each column one label.

    Args:
        rows: per row, one image per label, float (H, W, C) with C in {1, 3} (gray is shown as RGB),
            values clipped to [0, 1]; each is scaled to fit a ``tile`` x ``tile`` square.
        labels: the column titles, drawn in a ``header``-pixel strip above the columns.
        tile: side of each square, in pixels.
        gap: white space between squares.

    Returns:
        float32 RGB image in [0, 1].
    """
    columns = len(labels)
    width = columns * tile + (columns - 1) * gap
    height = header + len(rows) * tile + max(0, len(rows) - 1) * gap
    canvas = np.full((height, width, 3), 255, np.uint8)
    for c, label in enumerate(labels):
        _text(canvas, label, (c * (tile + gap) + 3, header - 7), max_width=tile - 6)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            y, x = header + r * (tile + gap), c * (tile + gap)
            canvas[y:y + tile, x:x + tile] = _fit(image, tile)
    return canvas.astype(np.float32) / 255.0
