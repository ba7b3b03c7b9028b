"""Which reward-weight ranges can move what a knob should move: the best global curve per setting.

    python -m benchmarks.knob_ranges [--data ../shared/data/sice_pairs/train] [--exposure 0.4]
        [--w-exposure 300 --w-color 5 --w-spatial 1] [--values 1 3 10 30 100 300 1000 3000 10000]

A conditioned low-light policy can only learn to follow a weight over a range where the weight
changes what the best enhancement is. This prints, before any training, how far it can: for each
weight of the non-reference reward (``w_exposure``, ``w_color``, ``w_spatial``) at each of
``--values``, the others at their given defaults, every image of the split gets the one curve
strength alpha (the same for every step and pixel, on a fine grid over the policy's [-0.3, 1.0])
that minimises the weighted loss ``rlenhance.losses.nonreference_loss`` after ``--steps`` curve
steps, and the table gives the means over the images of what ``benchmarks.knobs`` measures of a
trained policy: mean brightness, ``|mean-E|``, the colour-constancy and spatial-consistency losses.

Read it as an upper bound on a knob's effect for a near-global policy (the shipped one is: see
``benchmarks.policy_spread``): a weight whose row does not move over a range cannot be learnt
there, because the reward does not change with it. With the reward's defaults (300 / 5 / 1) the
colour and spatial losses move by under 3% up to a weight of 100 (docs/customisation.md). The
smoothness weight is not covered: a global curve has no roughness.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import torch

from benchmarks.knobs import load_images
from rlenhance import losses
from rlenhance.data.transforms import fit_longer_side
from rlenhance.ops import le_curve_iterative

WEIGHTS = ("w_exposure", "w_color", "w_spatial")
COLUMNS = ("alpha", "mean", "|mean-E|", "color", "spatial")


def curve_terms(low: torch.Tensor, alphas: torch.Tensor, *, steps: int, target: float,
                patch: int) -> dict[str, torch.Tensor]:
    """For one image ``low`` (3, H, W) and each global curve strength of ``alphas`` (A,): the output
    mean and the three loss terms, each (A,)."""
    out = le_curve_iterative(low.expand(len(alphas), -1, -1, -1), alphas.view(-1, 1, 1, 1), n_iter=steps)
    return {"mean": out.mean(dim=(1, 2, 3)),
            "exposure": losses.exposure_loss(out, target=target, patch_size=patch),
            "color": losses.color_constancy_loss(out),
            "spatial": losses.spatial_consistency_loss(out, low.expand_as(out))}


def best_curves(terms: list[dict[str, torch.Tensor]], alphas: torch.Tensor, weights: dict[str, float],
                target: float) -> dict[str, float]:
    """Means over the images of the quantities at each image's loss-minimising curve strength."""
    rows = []
    for t in terms:
        loss = sum(weights[f"w_{term}"] * t[term] for term in ("exposure", "color", "spatial"))
        j = int(torch.argmin(loss))
        mean = float(t["mean"][j])
        rows.append((float(alphas[j]), mean, abs(mean - target), float(t["color"][j]), float(t["spatial"][j])))
    return dict(zip(COLUMNS, np.mean(rows, axis=0).tolist()))


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/sice_pairs/train", help="low/ + high/ pair folder")
    parser.add_argument("--split", default="tune", choices=("tune", "val", "train", "all"),
                        help="lol_train's tuning split (held out of training; choose ranges on it), its validation "
                             "split (report on it), its training split, or all")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the split (lol_train's --seed)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many images (0: all)")
    parser.add_argument("--exposure", type=float, default=0.4, help="exposure target E (lol_train's default)")
    parser.add_argument("--exposure-patch", type=int, default=32, help="patch side of the exposure term")
    parser.add_argument("--w-exposure", type=float, default=300.0, help="default of w_exposure")
    parser.add_argument("--w-color", type=float, default=5.0, help="default of w_color")
    parser.add_argument("--w-spatial", type=float, default=1.0, help="default of w_spatial")
    parser.add_argument("--values", type=float, nargs="+",
                        default=[0.3, 1, 3, 10, 30, 100, 300, 1000, 3000, 10000], help="weight values to try")
    parser.add_argument("--steps", type=int, default=6, help="curve steps (lol_train's --steps)")
    parser.add_argument("--side", type=int, default=256, help="images area-downscaled to this longer side")
    parser.add_argument("--grid", type=int, default=131, help="curve strengths tried, evenly over [-0.3, 1.0]")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    for name in ("steps", "side", "grid", "exposure_patch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected an int >= 1, got {getattr(args, name)}")
    if any(v < 0 for v in args.values):
        parser.error(f"--values: weights must be >= 0, got {args.values}")
    if args.threads:
        torch.set_num_threads(args.threads)
    alphas = torch.linspace(-0.3, 1.0, args.grid)
    terms = []
    with torch.no_grad():
        for _, low, _ in load_images(args.data, args.split, args.split_seed, args.limit):
            x = fit_longer_side(torch.from_numpy(low).permute(2, 0, 1), args.side)
            terms.append(curve_terms(x, alphas, steps=args.steps, target=args.exposure, patch=args.exposure_patch))
    defaults = {"w_exposure": args.w_exposure, "w_color": args.w_color, "w_spatial": args.w_spatial}
    print(f"{len(terms)} image(s) of {args.data} (split {args.split}), E {args.exposure:g}, defaults "
          + ", ".join(f"{k} {v:g}" for k, v in defaults.items())
          + f"; each image's best global curve ({args.steps} steps):")
    print("\n| weight | value | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    table = []
    for weight in WEIGHTS:
        for value in args.values:
            row = best_curves(terms, alphas, {**defaults, weight: value}, args.exposure)
            table.append({"weight": weight, "value": value, **row})
            print(f"| {weight} | {value:g} | " + " | ".join(f"{row[c]:.4g}" for c in COLUMNS) + " |")
    return {"table": table, "images": len(terms)}


if __name__ == "__main__":
    main()
