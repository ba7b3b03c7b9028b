"""The goals of a low-light policy under non-uniform light, measured on a held-out split.

    python -m benchmarks.lowlight_goals [--checkpoint FILE] [--data ../shared/data/sice_pairs/train] [--size 256]
                                        [--split val] [--relightings 4] [--steps N] [--json goals.json]

The images, a ``--split`` of a ``low/`` + ``high/`` folder fitted to ``--size`` (:func:`load_images`), as two
sets: *relit*, each scene's reference relit by smooth non-uniform light ``--relightings`` times (as
``experiments.compare --light uneven``); *pairs*, every frame with its own low image (uniform light), also
cropped to :data:`WIDE`:1 for the exposure goals. The policy (``--checkpoint``, default the shipped model)
runs through :class:`rlenhance.Enhancer` at its default setting unless a row says otherwise. One markdown
table, each row a goal met or not, and the command that printed it:

* quality: GT-mean aligned PSNR (:func:`rlenhance.metrics.gt_mean_align`), mean over images, of the
  policy, ``global-curve`` (one LE curve alpha per image at the policy's steps and target,
  :func:`rlenhance.baselines.global_curve`), ``oracle-global`` (the best monotone curve per channel
  fitted with the reference, :func:`rlenhance.baselines.oracle_global`) and the input; goals: the policy
  :data:`ORACLE_MARGIN` dB above ``oracle-global`` and :data:`CURVE_MARGIN` dB above ``global-curve``;
* adaptivity: the median over images of the spread of the summed alpha map (:func:`spread`) at least
  :data:`MIN_SPREAD`; the same on the pairs (no goal); for a checkpoint that follows ``w_smooth`` over
  :data:`SMOOTH_WEIGHTS`, the ratio of their spreads at least :data:`MIN_SMOOTH_RATIO`;
* exposure, on each set and target of :data:`TARGETS` the checkpoint follows: the mean over images of
  ``|mean(output) - target|``, on all images and on those with input mean below :data:`DARK`, the worst at
  most :data:`MAX_EXPOSURE_ERROR`;
* the cap: the share of images whose rollout the brightness cap cut (:meth:`rlenhance.Enhancer.capped_steps`),
  the largest at most :data:`MAX_CAPPED`.

A second table gives the exposure sweep per set and target. The verdicts are printed, never asserted.
``--json`` writes the rows and figures.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset

from rlenhance import metrics
from rlenhance.atomic import atomic_path
from rlenhance.baselines import global_curve, oracle_global
from rlenhance.data import LowLightTestSet, check_pair, lowlight_test_set, open_dataset, scene_key
from rlenhance.enhance import Enhancer
from rlenhance.io import tensor_to_image
from rlenhance.runtime import configure_threads

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "sice_pairs" / "train"
#: How far above ``oracle-global`` and ``global-curve`` the policy's GT-mean PSNR must be (dB).
ORACLE_MARGIN = 0.5
CURVE_MARGIN = 3.0
#: The smallest median spread of the summed alpha map that counts as adapting to the light.
MIN_SPREAD = 0.2
#: The smoothness weights compared, and how much their spreads must differ (low over high).
SMOOTH_WEIGHTS = (0.1, 100.0)
MIN_SMOOTH_RATIO = 3.0
#: The exposure targets swept, the largest mean distance to them accepted, and the input mean below
#: which an image counts as very dark.
TARGETS = (0.3, 0.4, 0.6, 0.8)
MAX_EXPOSURE_ERROR = 0.03
DARK = 0.08
#: The largest share of images whose rollout the brightness cap may cut.
MAX_CAPPED = 0.10
#: The width / height of the pairs' crops of the exposure sweep's third set.
WIDE = 2
#: How many times each scene's reference is relit (each relighting its own seed).
RELIGHTINGS = 4
#: The percentiles of the spread.
SPREAD_QUANTILES = (0.05, 0.95)


def load_images(data: str | Path, size: int, *, split: str, split_seed: int, seed: int, limit: int = 0,
                relightings: int = RELIGHTINGS) -> tuple[LowLightTestSet, LowLightTestSet]:
    """``(relit, pairs)`` of ``split`` (``"all"``: every image), the first ``limit`` scenes (0: all), fitted to
    ``size`` (:func:`rlenhance.data.lowlight_test_set`): each scene's first reference relit ``relightings`` times
    (relighting ``k`` by ``seed + k``, named ``"{k}/{name}"`` from the second on), and every frame as it is."""
    dataset = open_dataset(data, kind="paired", split=None if split == "all" else split, gray=False, seed=split_seed)
    scenes = list(dict.fromkeys(scene_key(name) for name in dataset.names))[:limit or None]
    frames = [index for index, name in enumerate(dataset.names) if scene_key(name) in scenes]
    check_pair(dataset[frames[0]], f"benchmarks.lowlight_goals --data {data}")  # its second set: the pairs
    firsts = list({scene_key(dataset.names[index]): index for index in reversed(frames)}.values())[::-1]
    relit = [lowlight_test_set(Subset(dataset, firsts), size, seed=seed + k, light="uneven")
             for k in range(relightings)]
    return (LowLightTestSet([name if k == 0 else f"{k}/{name}" for k, part in enumerate(relit) for name in part.names],
                            torch.cat([part.low for part in relit]), torch.cat([part.high for part in relit])),
            lowlight_test_set(Subset(dataset, frames), size))


def gt_mean_psnr(output: np.ndarray, reference: torch.Tensor) -> float:
    """PSNR (dB) of ``output`` (H, W, 3), clipped to [0, 1] and GT-mean aligned, against ``reference`` (3, H, W)."""
    x = torch.from_numpy(np.clip(output, 0.0, 1.0)).permute(2, 0, 1)[None]
    return float(metrics.psnr(metrics.gt_mean_align(x, reference[None]), reference[None])[0])


def spread(enhancer: Enhancer, low: torch.Tensor, **setting: float) -> float:
    """The 95th minus the 5th percentile over pixels of ``low``'s alpha maps, summed over steps, channel mean."""
    maps = enhancer.alpha_maps(low[None].to(enhancer.device), enhancer.cond(**setting))
    summed = torch.stack(maps).sum(dim=0)[0].mean(dim=0).flatten().float().cpu()
    lo, hi = torch.quantile(summed, torch.tensor(SPREAD_QUANTILES)).tolist()
    return hi - lo


def wide_crop(image: np.ndarray) -> np.ndarray:
    """The centre rows of ``image`` (H, W, ...), W / :data:`WIDE` of them (at least one)."""
    rows = max(1, image.shape[1] // WIDE)
    top = max(0, (image.shape[0] - rows) // 2)
    return image[top:top + rows]


def follows(enhancer: Enhancer, name: str, value: float) -> bool:
    """Whether the checkpoint was trained to follow setting ``name`` at ``value``."""
    low, high = enhancer.setting_ranges.get(name, (math.nan, math.nan))
    return low <= value <= high


def _row(goal: str, value: str, needed: str, met: bool | None) -> dict[str, Any]:
    return {"goal": goal, "value": value, "needed": needed, "met": met}


def measure(enhancer: Enhancer, images: LowLightTestSet, pairs: LowLightTestSet | None = None) -> dict[str, Any]:
    """Every figure of the module docstring for the relit ``images`` (and the exposure sweep on the ``pairs``'
    own low frames too): ``{"rows": [goal rows], "exposure": [sweep rows], "psnr": {...}, ...}``."""
    lows = [tensor_to_image(low) for low in images.low]
    target, steps = enhancer.spec.setting.get("exposure_target"), enhancer.steps
    curve = {"steps": steps, **({} if target is None else {"target": target})}
    psnr: dict[str, list[float]] = {"policy": [], "global-curve": [], "oracle-global": [], "input": []}
    for low, high in zip(lows, images.high):
        psnr["policy"].append(gt_mean_psnr(enhancer.enhance(low), high))
        psnr["global-curve"].append(gt_mean_psnr(global_curve(low, **curve), high))
        psnr["oracle-global"].append(gt_mean_psnr(oracle_global(low, tensor_to_image(high)), high))
        psnr["input"].append(gt_mean_psnr(low, high))
    means = {name: float(np.mean(values)) for name, values in psnr.items()}
    rows = []
    for rival, margin in (("oracle-global", ORACLE_MARGIN), ("global-curve", CURVE_MARGIN)):
        gain = means["policy"] - means[rival]
        rows.append(_row(f"PSNR (GT-mean) over {rival}", f"{means['policy']:.2f} - {means[rival]:.2f} = {gain:+.2f} dB",
                         f">= +{margin:.1f} dB", gain >= margin))
    spreads = [spread(enhancer, low) for low in images.low]
    median = float(np.median(spreads))
    rows.append(_row("alpha-map spread (p95 - p5 of the summed map), median", f"{median:.4f}", f">= {MIN_SPREAD:g}",
                     median >= MIN_SPREAD))
    even = None if pairs is None else [spread(enhancer, low) for low in pairs.low]
    if even is not None:  # no goal: a policy that tells the light apart spreads its maps less here
        rows.append(_row("the same spread on the pairs' own (even) light, median", f"{np.median(even):.4f}",
                         "below the relit one", None))
    low_w, high_w = SMOOTH_WEIGHTS
    smooth, value, met = None, f"n/a: the checkpoint does not follow w_smooth over {low_w:g}-{high_w:g}", None
    if all(follows(enhancer, "w_smooth", w) for w in SMOOTH_WEIGHTS):
        smooth = {w: float(np.median([spread(enhancer, low, w_smooth=w) for low in images.low]))
                  for w in SMOOTH_WEIGHTS}
        ratio = smooth[low_w] / smooth[high_w] if smooth[high_w] > 0 else math.inf
        value, met = f"{smooth[low_w]:.4f} / {smooth[high_w]:.4f} = {ratio:.2f}x", ratio >= MIN_SMOOTH_RATIO
    rows.append(_row(f"spread at w_smooth {low_w:g} / {high_w:g}", value, f">= {MIN_SMOOTH_RATIO:g}x", met))
    sets = {"relit": lows}
    if pairs is not None:
        sets["pairs"] = [tensor_to_image(low) for low in pairs.low]
        sets[f"pairs {WIDE}:1"] = [wide_crop(low) for low in sets["pairs"]]
    sweep = [entry for name, images_of in sets.items() for entry in exposure_sweep(enhancer, name, images_of)]
    rows += exposure_goals(sweep)
    return {"rows": rows, "exposure": sweep, "psnr": means, "psnr_per_image": psnr, "spreads": spreads,
            "even_spreads": even, "smooth_spreads": smooth}


def exposure_sweep(enhancer: Enhancer, name: str, lows: Sequence[np.ndarray]) -> list[dict[str, Any]]:
    """Per target of :data:`TARGETS` the checkpoint follows (or its own fixed one): each output mean's distance to
    it, their means over all and the dark images, and the share of rollouts the cap cut."""
    own = enhancer.spec.setting.get("exposure_target")
    dark = [i for i, low in enumerate(lows) if float(low.mean()) < DARK]
    sweep = []
    for target in TARGETS:
        if follows(enhancer, "exposure", target):
            asked = {"exposure": target}
        elif target == own:
            asked = {}
        else:
            continue
        offsets = [enhancer.enhance_array(low, **asked).mean_after - target for low in lows]
        errors = [abs(offset) for offset in offsets]
        capped = sum(any(enhancer.capped_steps(low, **asked)) for low in lows) / len(lows)
        sweep.append({"set": name, "target": target, "images": len(lows), "dark": len(dark), "errors": errors,
                      "error": float(np.mean(errors)), "offset": float(np.mean(offsets)),
                      "dark_error": float(np.mean([errors[i] for i in dark])) if dark else None, "capped": capped})
    return sweep


def exposure_goals(sweep: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The goal rows of an exposure sweep: its worst mean distances to the target and the cap's largest share."""
    if not sweep:
        return [_row("exposure: worst abs(mean - target)", "n/a: it follows none of the targets",
                     f"<= {MAX_EXPOSURE_ERROR}", None)]
    rows = []
    for subset, key in (("all images", "error"), (f"input mean < {DARK:g}", "dark_error")):
        measured = [entry for entry in sweep if entry[key] is not None]
        if not measured:
            rows.append(_row(f"exposure: worst abs(mean - target), {subset}", "n/a: no such image",
                             f"<= {MAX_EXPOSURE_ERROR}", None))
            continue
        worst = max(measured, key=lambda entry: entry[key])
        rows.append(_row(f"exposure: worst abs(mean - target), {subset}",
                         f"{worst[key]:.3f} ({worst['set']}, {worst['target']:g})", f"<= {MAX_EXPOSURE_ERROR}",
                         worst[key] <= MAX_EXPOSURE_ERROR))
    worst = max(sweep, key=lambda entry: entry["capped"])
    rows.append(_row("the cap stopped the rollout: largest share", f"{100 * worst['capped']:.0f}% ({worst['set']}, "
                     f"{worst['target']:g})", f"<= {100 * MAX_CAPPED:.0f}%", worst["capped"] <= MAX_CAPPED))
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The goal rows as a markdown table."""
    verdict = {True: "met", False: "**not met**", None: "-"}
    lines = ["| goal | measured | needed | verdict |", "|---|---|---|---|"]
    lines += [f"| {r['goal']} | {r['value']} | {r['needed']} | {verdict[r['met']]} |" for r in rows]
    return "\n".join(lines)


def sweep_table(sweep: Sequence[dict[str, Any]]) -> str:
    """The exposure sweep as a markdown table: per set and target, the mean distances and the cap's share."""
    lines = ["| images | target | mean abs(mean - target) | mean (mean - target) | the same abs, input mean < "
             f"{DARK:g} | cap stopped |", "|---|---|---|---|---|---|"]
    for e in sweep:
        dark = "-" if e["dark_error"] is None else f"{e['dark_error']:.3f} ({e['dark']})"
        lines.append(f"| {e['set']} ({e['images']}) | {e['target']:g} | {e['error']:.3f} | {e['offset']:+.3f} | "
                     f"{dark} | {100 * e['capped']:.0f}% |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure and print; returns what ``--json`` writes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="low-light policy checkpoint (default: the shipped model)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="low/ + high/ pair folder (the references relit)")
    parser.add_argument("--size", type=int, default=256, help="side of the square each reference is fitted to")
    parser.add_argument("--split", default="val", choices=("val", "tune", "all"),
                        help="lol_train's validation split (report on it), its tuning split (choose on it), or all")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the split (lol_train's --seed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the relighting (compare's --seed)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many scenes (0: all)")
    parser.add_argument("--relightings", type=int, default=RELIGHTINGS,
                        help="relight each scene's reference this many times (seeds --seed, --seed + 1, ...)")
    parser.add_argument("--steps", type=int, default=None, help="curve steps (default: the checkpoint's test steps)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: every core but one)")
    parser.add_argument("--json", default=None, help="also write the rows and figures to this JSON file")
    args = parser.parse_args(argv)
    if args.size < 16 or args.limit < 0 or args.relightings < 1 or (args.steps is not None and args.steps < 1):
        parser.error(f"--size {args.size} / --limit {args.limit} / --relightings {args.relightings} / --steps "
                     f"{args.steps}: expected a size >= 16, a limit >= 0, at least one relighting and one step")
    configure_threads(args.threads)
    images, pairs = load_images(args.data, args.size, split=args.split, split_seed=args.split_seed, seed=args.seed,
                                limit=args.limit, relightings=args.relightings)
    enhancer = Enhancer(args.checkpoint, device="cpu", steps=args.steps)
    result = measure(enhancer, images, pairs)
    command = shlex.join(["python", "-m", "benchmarks.lowlight_goals",  # the options that shape the figures
                          *(word for dest in ("checkpoint", "data", "size", "split", "split_seed", "seed", "limit",
                                                     "relightings", "steps")
                            if getattr(args, dest) != parser.get_default(dest)
                            for word in (f"--{dest.replace('_', '-')}", str(getattr(args, dest))))])
    result.update(command=command, checkpoint=str(enhancer.path), scenes=len(images.names) // args.relightings,
                  relightings=args.relightings, frames=len(pairs.names),
                  size=list(images.low.shape[-2:]))
    print(f"{args.data}, split {args.split}: relit, the reference of each of {result['scenes']} scene(s) relit by "
          f"non-uniform light {args.relightings} time(s); pairs, its {len(pairs.names)} frame(s) with their own low "
          f"images; {images.low.shape[-1]} x {images.low.shape[-2]} px")
    print("PSNR after GT-mean alignment on relit, mean over images: "
          + ", ".join(f"{name} {value:.2f} dB" for name, value in result["psnr"].items()))
    print(f"\nEvery row: `{command}`\n")
    print(table(result["rows"]))
    print("\nExposure: over images, the mean of abs(mean(output) - target) and of the signed distance, the first "
          f"on the images of input mean < {DARK:g} (how many), and the share of images whose rollout the "
          "brightness cap cut\n")
    print(sweep_table(result["exposure"]))
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
