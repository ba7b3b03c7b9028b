"""What each setting ("knob") of a low-light policy does, measured on held-out real images.

    python -m benchmarks.knobs [--checkpoint PATH [PATH ...]] [--data ../shared/data/sice_pairs/train]
                               [--grid docs/knobs.png] [--csv knobs.csv]

For every setting the checkpoint accepts (``Enhancer.setting_ranges``), the policy enhances the ``--split``
of a paired folder (``experiments.lol_eval``'s splits, full resolution) at the setting's minimum, middle
(geometric for a ``--cond-encoding log`` weight) and maximum, the others at their defaults; the table prints
knob x value x quantity, means over the images:

* ``mean``: output brightness; ``|mean-E|``: its distance to the exposure target; ``image_gap``: each
  image's own distance to the target, averaged (over- and undershoots do not cancel);
* ``color`` / ``spatial``: colour-constancy loss / spatial-consistency loss against the input;
* ``gain_tv``: roughness of the per-pixel gain of the policy's curves on a flat image at the input's mean
  (mean absolute neighbour difference x 1000; 0: one gain for the whole image);
* ``psnr``: PSNR against the references (dB).

Each knob is checked for its effect (:data:`EXPECTED`) from minimum to middle to maximum, by at least
``--min-effect`` over the range; no setting may darken an image or take its mean above 0.9; the exposure
target is swept (``--exposures``, within ``--tolerance``); the dark-area colour noise must fall over
``denoise`` 0, 1, 2 (printed, not counted). ``--max-overshoot`` / ``--denoise`` set the Enhancer's cap and
clean stage; ``--grid`` draws one row per knob, one column per value. Each report ends with PSNR / SSIM
at the defaults.

Given several checkpoints (``lol_train --keep-evals``), it names the one that passes the most checks, the
best PSNR at the defaults among those (best.pt follows PSNR alone); ``--grid`` and ``--csv`` are of that one.
Pick on ``--split tune``, report on ``--split val``. The verdicts are printed, never asserted.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rlenhance import losses, metrics
from rlenhance.atomic import atomic_path
from rlenhance.data import check_pair, open_dataset
from rlenhance.enhance import Enhancer
from rlenhance.ops import le_curve
from rlenhance.runtime import configure_threads

#: Every setting keyword of ``Enhancer.cond`` -> (what raising it should do, the quantity, its direction).
EXPECTED = {
    "exposure": ("the mean follows the target", "|mean-E|", 0),
    "w_exposure": ("each image's mean closer to the target", "image_gap", -1),
    "w_color": ("lower colour-constancy loss", "color", -1),
    "w_spatial": ("lower spatial-consistency loss", "spatial", -1),
    "w_smooth": ("smoother per-pixel gain", "gain_tv", -1),
}
QUANTITIES = ("mean", "|mean-E|", "image_gap", "color", "spatial", "gain_tv", "psnr")
#: Above this mean brightness an output counts as pushed towards white.
WHITE = 0.9
#: The strengths of the Enhancer's clean stage the denoise check compares (0: off, 1: the default).
DENOISE_VALUES = (0.0, 1.0, 2.0)


def load_images(data: str, split: str, split_seed: int, limit: int, needed_by: str = "benchmarks.knobs"
                ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, low-light image, its reference) of the split's pairs at full resolution, RGB float32 (H, W, 3);
    DatasetError names an item that is not a pair and ``needed_by``, the command that needs pairs."""
    dataset = open_dataset(data, kind="paired", split=None if split == "all" else split, gray=False, seed=split_seed)
    count = len(dataset) if not limit else min(limit, len(dataset))
    items = [dataset[i] for i in range(count)]
    for item in items:
        check_pair(item, f"{needed_by} --data {data}")
    return [(item["name"], item["low"].permute(1, 2, 0).numpy(), item["high"].permute(1, 2, 0).numpy())
            for item in items]


def gain_roughness(enhancer: Enhancer, image: torch.Tensor, cond: torch.Tensor) -> float:
    """``gain_tv``: mean |neighbour difference| x 1000 of the curves' gain on a flat image at ``image``'s mean."""
    maps = enhancer.alpha_maps(image, cond)
    height, width = image.shape[-2:]
    level = float(image.mean())
    flat = torch.full((1, 3, height, width), level)
    out = flat
    for alpha in maps:
        up = F.interpolate(alpha, size=(height, width), mode="bilinear", align_corners=False)
        out = le_curve(out, up).clamp(0, 1)
    gain = out.mean(dim=1) / max(level, 1e-6)
    tv = (gain[:, 1:, :] - gain[:, :-1, :]).abs().mean() + (gain[:, :, 1:] - gain[:, :, :-1]).abs().mean()
    return 1000.0 * float(tv) / 2


@torch.no_grad()
def measure(enhancer: Enhancer, images: Sequence[tuple[str, np.ndarray, np.ndarray]],
            setting: dict[str, float]) -> dict:
    """Means over ``images`` of the measured quantities at one setting, and the enhanced images."""
    cond = enhancer.cond(**setting)
    target = setting.get("exposure", enhancer.spec.setting["exposure_target"])
    rows, outputs = [], []
    for _, low, high in images:
        out = enhancer.enhance(low, **setting)
        outputs.append(out)
        x = torch.from_numpy(out).permute(2, 0, 1)[None]
        original = torch.from_numpy(low).permute(2, 0, 1)[None]
        reference = torch.from_numpy(high).permute(2, 0, 1)[None]
        rows.append({"mean": float(out.mean()), "image_gap": abs(float(out.mean()) - target),
                     "color": float(losses.color_constancy_loss(x)),
                     "spatial": float(losses.spatial_consistency_loss(x, original)),
                     "gain_tv": gain_roughness(enhancer, original, cond),
                     "psnr": float(metrics.psnr(x, reference)),
                     "darker": float(out.mean()) < float(low.mean())})
    result = {k: float(np.mean([r[k] for r in rows])) for k in QUANTITIES if k != "|mean-E|"}
    result["darkened"] = sum(r["darker"] for r in rows)
    result["white"] = sum(r["mean"] > WHITE for r in rows)
    result["max_mean"] = max(r["mean"] for r in rows)
    result["|mean-E|"] = abs(result["mean"] - target)  # of the mean over images, as the exposure sweep reports
    return {"quantities": result, "outputs": outputs}


def knob_values(low: float, high: float, log: bool = False) -> list[float]:
    """Minimum, middle and maximum of a range; with ``log`` (read by the policy as log(value)) the geometric middle."""
    return [low, math.sqrt(low * high) if log else (low + high) / 2, high]


def fmt(value: float) -> str:
    return f"{value:.4g}"


def grid_image(path: Path, image: np.ndarray, cells: dict[str, list[tuple[float, np.ndarray, str]]],
               notes: dict[str, str]) -> None:
    """One row per knob: the input, then the output at each value titled with its quantity; ``notes`` below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 1 + max([len(row) for row in cells.values()] + [3])
    notes = {**notes, "numbers": "each title's quantity is the mean over all the images of the split"}
    note_inches = 0.3 * len(notes) + 0.2
    height = 2.6 * len(cells) + note_inches
    fig, axes = plt.subplots(len(cells), columns, figsize=(2.4 * columns, height), squeeze=False)
    for i, (knob, note) in enumerate(notes.items()):
        fig.text(0.02, (note_inches - 0.3 * (i + 1)) / height, f"{knob}: {note}", fontsize=9)
    for r, (knob, row) in enumerate(cells.items()):
        axes[r][0].imshow(np.clip(image, 0, 1))
        axes[r][0].set_title("input", fontsize=9)
        axes[r][0].set_ylabel(knob, fontsize=11)
        for c in range(1, columns):
            ax = axes[r][c]
            if c - 1 < len(row):
                value, out, label = row[c - 1]
                ax.imshow(np.clip(out, 0, 1))
                ax.set_title(f"{knob} {value:.5g}: {label}", fontsize=7)
            else:
                ax.axis("off")
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout(rect=(0.0, note_inches / height, 1.0, 1.0), h_pad=1.2)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        fig.savefig(handle, format="png", dpi=80)
    plt.close(fig)


def verdict(knob: str, results: list[dict], min_effect: float) -> str:
    """"ok" when the knob's quantity moves the expected way at each step, by ``min_effect`` (a fraction of its
    value at the minimum) or more in all; else what fails."""
    _, quantity, direction = EXPECTED[knob]
    return trend([r[quantity] for r in results], direction, min_effect)


def trend(values: Sequence[float], direction: int, min_effect: float) -> str:
    """The verdict of :func:`verdict` on ``values`` that should move in ``direction`` (+1 or -1)."""
    if not all(direction * (b - a) > 0 for a, b in zip(values, values[1:])):
        return "NOT MONOTONE"
    effect = abs(values[-1] - values[0]) / max(abs(values[0]), 1e-12)
    return "ok" if effect >= min_effect else f"too weak ({100 * effect:.1f}% < {100 * min_effect:g}%)"


def report(enhancer: Enhancer, images: Sequence[tuple[str, np.ndarray, np.ndarray]], args: argparse.Namespace) -> dict:
    """Measure one policy and print it: the table, the verdicts, the exposure sweep, PSNR / SSIM at the defaults."""
    ranges = enhancer.setting_ranges
    spec, transition = enhancer.spec, enhancer.transition
    defaults = {("exposure" if k == "exposure_target" else k): v for k, v in spec.setting.items()}
    log_knobs = {name for name, encoding in zip(transition.cond_fields, transition.cond_encodings) if encoding == "log"}
    input_mean = float(np.mean([low.mean() for _, low, _ in images]))
    cap = "no cap" if enhancer.max_overshoot is None else f"max_overshoot {enhancer.max_overshoot:g}" + (
        " at the default w_exposure, weighted by it" if transition.overshoot_reference is not None else "")
    cap += f", denoise {enhancer.denoise:g}"
    print(f"{enhancer.path.name} ({enhancer.steps} curve steps, {cap}): {len(images)} image(s) of {args.data} "
          f"(split {args.split}), input mean "
          f"brightness {input_mean:.3f}; defaults: " + ", ".join(f"{k} {v:g}" for k, v in defaults.items()))
    refused = [k for k in EXPECTED if k not in ranges]
    if refused:
        print("refused (fixed in training, so the model cannot follow them): "
              + ", ".join(f"{k} (= {defaults[k]:g})" for k in refused))
    print("\n| knob | value | " + " | ".join(q.replace("|", "\\|") for q in QUANTITIES) + " | darkened | > 0.9 |")
    print("|---|---|" + "---|" * (len(QUANTITIES) + 2))
    table, cells, verdicts = [], {}, {}
    base = measure(enhancer, images, {})
    for knob, (low, high) in ranges.items():
        results = []
        for value in knob_values(low, high, knob in log_knobs):
            measured = base if math.isclose(value, defaults[knob]) else measure(enhancer, images, {knob: value})
            q = measured["quantities"]
            results.append(q)
            table.append({"knob": knob, "value": value, **{k: q[k] for k in QUANTITIES},
                          "darkened": q["darkened"], "white": q["white"]})
            print(f"| {knob} | {value:g} | " + " | ".join(fmt(q[k]) for k in QUANTITIES)
                  + f" | {q['darkened']} | {q['white']} |")
            quantity = EXPECTED[knob][1] if knob != "exposure" else "mean"
            cells.setdefault(knob, []).append((value, measured["outputs"][args.grid_image],
                                               f"{quantity} {fmt(q[quantity])}"))
        if knob != "exposure":
            verdicts[knob] = verdict(knob, results, args.min_effect)
    sweep = [e for e in args.exposures if "exposure" in ranges and ranges["exposure"][0] <= e <= ranges["exposure"][1]]
    gaps, image_gaps = {}, {}
    for target in sweep:
        q = measure(enhancer, images, {"exposure": target})["quantities"]
        gaps[target], image_gaps[target] = q["mean"] - target, q["image_gap"]
    print("\nverdicts (min -> middle -> max, others at their defaults):")
    for knob, result in verdicts.items():
        print(f"  {knob}: raising it should give {EXPECTED[knob][0]}: {result}")
    worst_gap = max((abs(g) for g in gaps.values()), default=math.nan)
    sweep_ok = worst_gap <= args.tolerance  # False without a sweep (nan)
    if gaps:
        print("  exposure sweep, mean - target: " + ", ".join(f"{t:g}: {g:+.3f}" for t, g in gaps.items())
              + f"; largest |gap| {worst_gap:.3f} ({'ok' if sweep_ok else 'ABOVE'} the tolerance "
              f"{args.tolerance:g})")
        print("  each image's |mean - target|, averaged: "
              + ", ".join(f"{t:g}: {g:.3f}" for t, g in image_gaps.items()))
    denoise = denoise_sweep(enhancer, images, args.min_effect)
    print(f"  denoise (the clean stage's strength), raising it should give lower dark-area colour noise: "
          f"{denoise['verdict']} (" + ", ".join(f"{s:g}: {v:.3f}" for s, v in denoise["noise"].items()) + ")")
    darkened = sum(row["darkened"] for row in table)
    white = sum(row["white"] for row in table)
    print(f"  no setting darkens an image or takes it above {WHITE:g}: "
          f"{'ok' if not darkened and not white else f'{darkened} darkened, {white} above {WHITE:g}'} "
          f"(over {len(table)} settings x {len(images)} images)")
    highs = [torch.from_numpy(high).permute(2, 0, 1)[None] for _, _, high in images]
    outs = [torch.from_numpy(out).permute(2, 0, 1)[None] for out in base["outputs"]]
    quality = {"psnr": base["quantities"]["psnr"],
               "ssim": float(np.mean([float(metrics.ssim(x, y)) for x, y in zip(outs, highs)]))}
    print(f"  at the defaults against the references: PSNR {quality['psnr']:.2f} dB, SSIM {quality['ssim']:.3f}")
    passed = sum(v == "ok" for v in verdicts.values()) + sweep_ok + (not darkened and not white)
    return {"checkpoint": str(enhancer.path), "table": table, "verdicts": verdicts, "exposure_gaps": gaps,
            "image_gaps": image_gaps,
            "worst_gap": worst_gap, "refused": refused, "darkened": darkened, "white": white, **quality,
            "checks_passed": int(passed), "checks": len(verdicts) + bool(gaps) + 1, "cells": cells,
            "denoise": denoise}


def denoise_sweep(enhancer: Enhancer, images: Sequence[tuple[str, np.ndarray, np.ndarray]],
                  min_effect: float) -> dict:
    """Mean dark-area colour noise at each of :data:`DENOISE_VALUES`, and whether it falls by ``min_effect``."""
    kept = enhancer.denoise
    noise = {}
    try:
        for strength in DENOISE_VALUES:
            enhancer.denoise = strength
            noise[strength] = float(np.mean([metrics.dark_colour_noise(low, enhancer.enhance(low))
                                             for _, low, _ in images]))
    finally:
        enhancer.denoise = kept
    return {"noise": noise, "verdict": trend(list(noise.values()), -1, min_effect)}


def write_files(result: dict, images: Sequence[tuple[str, np.ndarray, np.ndarray]], args: argparse.Namespace) -> None:
    """``--grid`` and ``--csv`` of one report."""
    if args.grid:
        notes = {k: "refused by this model (fixed in training)" for k in result["refused"]}
        grid_image(Path(args.grid), images[args.grid_image][1], result["cells"], notes)
        print(f"grid: {args.grid} (image {images[args.grid_image][0]}, {result['checkpoint']})")
    if args.csv:
        with atomic_path(args.csv) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(result["table"][0]))
            writer.writeheader()
            writer.writerows(result["table"])


def pick(reports: Sequence[dict]) -> dict:
    """The report that passes the most checks, the best PSNR at the defaults among those."""
    return max(reports, key=lambda r: (r["checks_passed"], r["psnr"]))


def main(argv: Sequence[str] | None = None) -> dict:
    """Measure each ``--checkpoint``; returns ``{"reports": [report per checkpoint], "pick": the named one}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", nargs="+", default=[None],
                        help="low-light policy checkpoint(s) (default: the shipped model); with several (e.g. the "
                             "episode_*.pt of lol_train --keep-evals), each is measured and the one passing the most "
                             "checks, the best PSNR at the defaults among those, is named")
    parser.add_argument("--data", default="../shared/data/sice_pairs/train", help="low/ + high/ pair folder")
    parser.add_argument("--split", default="tune", choices=("tune", "val", "train", "all"),
                        help="which pairs: lol_train's tuning split (held out of training; pick checkpoints and "
                             "constants on it), its validation split (report on it), its training split, or all")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the split (lol_train's --seed)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many images (0: all)")
    parser.add_argument("--exposures", type=float, nargs="*", default=[0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
                        help="exposure targets of the sweep (those outside the checkpoint's range are skipped)")
    parser.add_argument("--tolerance", type=float, default=0.03, help="largest |mean - target| the sweep accepts")
    parser.add_argument("--min-effect", type=float, default=0.05,
                        help="smallest change of a knob's quantity over its range, as a fraction of its value at "
                             "the minimum, that counts as an effect")
    parser.add_argument("--grid", default=None,
                        help="write the knob x value picture here (PNG; of the picked checkpoint)")
    parser.add_argument("--grid-image", type=int, default=0, help="index of the image the grid shows")
    parser.add_argument("--csv", default=None, help="write knob, value, quantities rows to this CSV file (of the "
                                                     "picked checkpoint)")
    parser.add_argument("--steps", type=int, default=None,
                        help="curve steps at inference (default: the checkpoint's test steps), e.g. its training steps")
    parser.add_argument("--max-overshoot", type=float, default=None,
                        help="the Enhancer's cap on a step's rise of the image mean above the target (default: the "
                             "checkpoint's; inf: none, the policy alone)")
    parser.add_argument("--denoise", type=float, default=None,
                        help="the strength (0-2) of the Enhancer's clean stage (default: the Enhancer's; 0: off)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        configure_threads(args.threads)
    images = load_images(args.data, args.split, args.split_seed, args.limit)
    weights = [k for k in EXPECTED if k != "exposure"]
    reports = []
    for path in args.checkpoint:
        if len(args.checkpoint) > 1:
            print(f"\n## {path}\n")
        reports.append(report(Enhancer(path, device="cpu", steps=args.steps, max_overshoot=args.max_overshoot,
                                       denoise=args.denoise), images, args))
    best = pick(reports)
    if len(reports) > 1:
        print("\n| checkpoint | checks passed | " + " | ".join(weights) + " | worst sweep gap | darkened | > 0.9 "
              "| PSNR | SSIM |")
        print("|---|---|" + "---|" * (len(weights) + 5))
        for r in reports:
            print(f"| {r['checkpoint']} | {r['checks_passed']} / {r['checks']} | "
                  + " | ".join(r["verdicts"].get(k, "refused") for k in weights)
                  + f" | {r['worst_gap']:.3f} | {r['darkened']} | {r['white']} | {r['psnr']:.2f} | {r['ssim']:.3f} |")
        print(f"\npick: {best['checkpoint']} ({best['checks_passed']} of {best['checks']} checks, "
              f"PSNR {best['psnr']:.2f} dB at the defaults)")
    write_files(best, images, args)
    return {"reports": reports, "pick": best}

if __name__ == "__main__":
    main()
