"""Constants chosen by measurement, chosen on the tuning split and reported on the validation split.

    python -m benchmarks.tuning_split --constant max-overshoot --values 0.03 0.04 0.05 0.06
    python -m benchmarks.tuning_split --constant noise-sigma --values 2 4 8 --pick-limit 10 --val-limit 11

Every value of the constant is measured on the tuning split of ``--data`` (``experiments.lol_train``'s
split, held out of training; the first ``--pick-limit`` images; ``--pick-split train``: its training
split, also disjoint from the validation split), the constant's rule picks one there, and then every
value is measured on the validation split (the held-out images the documentation reports), so that
the figure reported for the pick was not used to pick it. The last line says whether the validation
split would have picked the same value.

The constants and their rules:

* ``max-overshoot``: the Enhancer's cap on a curve step's rise of the image mean above the exposure
  target (:func:`rlenhance.ops.cap_mean`; the shipped model's 0.04). Rule: the checks of
  :mod:`benchmarks.knobs` (each reward weight moves its quantity the right way, the exposure sweep
  within its tolerance, no setting darkens an image or takes it above 0.9): the most checks passed,
  then the highest PSNR against the references at the defaults (the quality the docs report).
* ``noise-sigma``: the dark input's noise level a noise-map denoiser is given by default
  (:data:`rlenhance.enhance.DARK_NOISE_SIGMA`, 4), with the shipped blind FFDNet (``--denoiser``).
  Rule: the highest PSNR at the defaults against the references.

Figures are printed, never asserted: a benchmark reports.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from benchmarks import knobs
from rlenhance import metrics
from rlenhance.enhance import DEFAULT_CHECKPOINT, Enhancer
from rlenhance.runtime import configure_threads

#: The shipped blind FFDNet, the noise-map denoiser ``noise-sigma`` is measured with by default.
DEFAULT_DENOISER = DEFAULT_CHECKPOINT.parent / "ffdnet_denoise.pt"
#: The exposure targets of the cap's sweep (benchmarks.knobs' default).
EXPOSURES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
Images = Sequence[tuple[str, np.ndarray, np.ndarray]]
#: ``--pick-split`` -> its name in the printout.
PICK_SPLITS = {"tune": "tuning", "train": "training"}


@dataclass(frozen=True)
class Constant:
    """A constant to choose: how to measure a value on images, and the rule's key (the highest wins)."""

    measure: Callable[[float, Images, argparse.Namespace], dict]
    key: Callable[[float, dict], tuple]
    columns: tuple[str, ...]


def quality(outputs: Sequence[np.ndarray], images: Images) -> dict:
    """Mean PSNR (dB) and SSIM of outputs against the references of ``images``."""
    pairs = [(torch.from_numpy(out).permute(2, 0, 1)[None], torch.from_numpy(high).permute(2, 0, 1)[None])
             for out, (_, _, high) in zip(outputs, images)]
    return {"psnr": float(np.mean([float(metrics.psnr(x, y)[0]) for x, y in pairs])),
            "ssim": float(np.mean([float(metrics.ssim(x, y)[0]) for x, y in pairs]))}


def measure_cap(value: float, images: Images, args: argparse.Namespace) -> dict:
    """benchmarks.knobs' report of the shipped model with the cap ``value`` (its printout swallowed)."""
    options = argparse.Namespace(data=args.data, split="", exposures=EXPOSURES, tolerance=0.03, min_effect=0.05,
                                 grid_image=0)
    with contextlib.redirect_stdout(io.StringIO()):
        result = knobs.report(Enhancer(None, device="cpu", max_overshoot=value), images, options)
    return {"checks": f"{result['checks_passed']} / {result['checks']}", "passed": result["checks_passed"],
            "worst sweep gap": result["worst_gap"], "> 0.9": result["white"], "psnr": result["psnr"],
            "ssim": result["ssim"]}


def measure_noise_sigma(value: float, images: Images, args: argparse.Namespace) -> dict:
    """PSNR / SSIM at the defaults of the shipped model followed by the noise-map denoiser at level ``value``."""
    enhancer = Enhancer(None, device="cpu", denoiser=args.denoiser, noise_sigma=value)
    return quality([enhancer.enhance(low) for _, low, _ in images], images)


CONSTANTS = {
    "max-overshoot": Constant(measure_cap, lambda value, m: (m["passed"], m["psnr"]),
                              ("checks", "worst sweep gap", "> 0.9", "psnr", "ssim")),
    "noise-sigma": Constant(measure_noise_sigma, lambda value, m: (m["psnr"],), ("psnr", "ssim")),
}


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else str(value)


def table(constant: str, results: dict[float, dict], columns: Sequence[str]) -> str:
    """A markdown table: one row per value of the constant."""
    lines = [f"| {constant} | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    lines += [f"| {value:g} | " + " | ".join(_fmt(m[c]) for c in columns) + " |" for value, m in results.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    """Measure every value on both splits; returns ``{SPLIT: ..., "val": ..., "pick": ..., "val_pick": ...}``
    (``SPLIT``: ``--pick-split``, the measurements the pick is made on)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--constant", required=True, choices=sorted(CONSTANTS))
    parser.add_argument("--values", type=float, nargs="+", required=True, help="the candidate values")
    parser.add_argument("--data", default="../shared/data/sice_pairs/train", help="low/ + high/ pair folder")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the split (lol_train's --seed)")
    parser.add_argument("--pick-split", default="tune", choices=("tune", "train"),
                        help="the split the value is chosen on: lol_train's tuning split, or its training split")
    parser.add_argument("--pick-limit", type=int, default=0, help="images of --pick-split to choose on (0: all)")
    parser.add_argument("--val-limit", type=int, default=0, help="validation images to report on (0: all)")
    parser.add_argument("--denoiser", default=str(DEFAULT_DENOISER), help="noise-sigma: the noise-map denoiser")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    configure_threads(args.threads)
    constant = CONSTANTS[args.constant]
    splits = {split: knobs.load_images(args.data, split, args.split_seed, limit)
              for split, limit in ((args.pick_split, args.pick_limit), ("val", args.val_limit))}
    results: dict[str, dict[float, dict]] = {}
    for split, images in splits.items():
        results[split] = {value: constant.measure(value, images, args) for value in args.values}
        print(f"\n{split} split of {args.data} (split seed {args.split_seed}): {len(images)} image(s)\n")
        print(table(args.constant, results[split], constant.columns), flush=True)
    pick = max(args.values, key=lambda v: constant.key(v, results[args.pick_split][v]))
    val_pick = max(args.values, key=lambda v: constant.key(v, results["val"][v]))
    chosen = results["val"][pick]
    print(f"\nchosen on the {PICK_SPLITS[args.pick_split]} split: {args.constant} {pick:g}; on the validation "
          "split it scores "
          + ", ".join(f"{c} {_fmt(chosen[c])}" for c in constant.columns)
          + f"; the validation split alone would pick {val_pick:g}"
          + (" (the same)" if val_pick == pick else ""))
    return {**results, "pick": pick, "val_pick": val_pick}


if __name__ == "__main__":
    main()
