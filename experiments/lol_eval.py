"""Evaluate low-light enhancers on paired images: ours next to classical methods and peers.

    python -m experiments.lol_eval --data ../shared/data/sice_pairs/train \\
        --zero-dce ../shared/weights/zero_dce_Epoch99.pth --rellie ../shared/weights/rellie_model.npz
    python -m experiments.lol_eval --denoiser runs/denoise/checkpoints/best.pt \\
        --combined runs/supervised_train/checkpoints/best.pt

For a ``low/`` + ``high/`` folder the validation split of ``experiments.lol_train`` is used (``--split tune``:
its tuning split, ``--split all``: every pair). Prints, per method, PSNR / SSIM / UQI / mean brightness (means over
images, full resolution) and ms per image (the method alone), and writes per-image rows to ``--csv``.
``--denoiser`` adds our policy followed by a supervised denoiser, ``--combined`` a supervised low-light checkpoint.
Every method is built by :mod:`experiments.compare.methods`, as compare runs it.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np
import torch

from experiments.compare.methods import Method, baseline_method, enhancer_method, peer_method, supervised_method
from experiments.config import arg, flat_flags, parse
from experiments.process import run_cli
from experiments.runs import markdown_table
from rlenhance import metrics
from rlenhance.atomic import atomic_path
from rlenhance.baselines import LOWLIGHT_BASELINES
from rlenhance.data import check_pair, open_dataset
from rlenhance.restore import SupervisedRestorer
from rlenhance.runtime import configure_threads, flush_denormals, select_device

#: The name of our policy's method in the table.
OURS = "rlenhance (ours)"
#: Peer flags: argument -> (kind in :data:`experiments.compare.methods.PEERS`, name in the table).
PEER_FLAGS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "zero_dce": ("zero-dce", "Zero-DCE"), "zero_dcepp": ("zero-dce++", "Zero-DCE++"), "rellie": ("rellie", "ReLLIE")})


@dataclass
class Args:
    """Evaluate low-light enhancers on a paired folder (PSNR / SSIM / UQI / brightness / ms per image)."""

    data: str = arg("../shared/data/sice_pairs/train", "paired folder: low/ + high/, or LOL's our485/ + eval15/")
    split: Literal["val", "tune", "train", "all"] = arg("val", "which pairs: the validation split of lol_train (report "
                                                               "on it), its tuning split (choose on it), its training "
                                                               "split, or all")
    split_seed: int = arg(0, "seed of the train / tune / validation split (lol_train's --seed)")
    checkpoint: str | None = arg(None, "our policy checkpoint (default: the model shipped in the package)")
    steps: int | None = arg(None, "curve steps for our model (default: the checkpoint's)")
    exposure: float | None = arg(None, "exposure target for our (conditioned) model; default: its training setting")
    alpha_mode: Literal["mean", "argmax"] | None = arg(None, "our model's test-time alpha: mean (the stochastic "
                                                             "policy's expected alpha) or argmax (its most probable "
                                                             "one; continuous: tanh of the Gaussian's mean); default: "
                                                             "the checkpoint's")
    denoise: float | None = arg(None, "the strength (0-2) of our model's clean stage (0: off, the policy's curves "
                                      "alone); default: the Enhancer's")
    zero_dce: str | None = arg(None, "official Zero-DCE weights (zero_dce_Epoch99.pth)")
    zero_dcepp: str | None = arg(None, "official Zero-DCE++ weights (zero_dcepp_Epoch99.pth)")
    rellie: str | None = arg(None, "ReLLIE's released policy (rellie_model.npz)")
    denoiser: str | None = arg(None, "denoising checkpoint of experiments.supervised_train, run after our model's "
                                     "last curve step (ReLLIE's denoiser module) as the method 'rlenhance (ours) + "
                                     "denoiser'")
    noise_sigma: float | None = arg(None, "with a noise-map --denoiser (FFDNet): the dark input's noise level on "
                                          "the 0-255 scale, scaled by the curves' per-pixel gain (default: the "
                                          "Enhancer's, rlenhance.enhance.DARK_NOISE_SIGMA for a Gaussian-trained one)")
    combined: str | None = arg(None, "lowlight checkpoint of experiments.supervised_train (MRPNet + Generator), "
                                     "evaluated as an extra method")
    classical: bool = arg(True, "include the classical methods: auto-gamma, histogram equalisation, CLAHE and the "
                                "global LE curve")
    sweep_exposure: tuple[float, ...] = arg((), "also run our (conditioned) model at each of these exposure "
                                                "targets and report the mean output brightness")
    limit: int = arg(0, "evaluate at most this many images (0: all)")
    device: str = arg("auto", "auto, cpu, cuda or cuda:N")
    threads: int = arg(0, "torch CPU threads (0: every core but one, at least 1)")
    csv: str | None = arg(None, "write one row per image and method to this CSV file")


def build_methods(args: Args, device: torch.device) -> dict[str, Method]:
    """Name -> :class:`~experiments.compare.methods.Method` (RGB float32 (H, W, 3) -> same) of every requested one."""
    ours = dict(steps=args.steps, exposure=args.exposure, alpha_mode=args.alpha_mode, denoise=args.denoise)
    methods = [enhancer_method(OURS, args.checkpoint, device, **ours)]
    if args.denoiser:
        # plain or noise-map (FFDNet, fed the map of our curve steps at its default noise level)
        denoiser = SupervisedRestorer(args.denoiser, device=device, task="denoise", noise_map=None)
        methods.append(enhancer_method(f"{OURS} + denoiser", args.checkpoint, device, **ours, denoiser=denoiser,
                                       noise_sigma=args.noise_sigma))
    methods += [enhancer_method(f"ours, exposure {target:g}", args.checkpoint, device, **{**ours, "exposure": target})
                for target in args.sweep_exposure]
    if args.combined:  # named after its network (COMBINED_LABELS); RGB out, gray models too
        methods.append(supervised_method(None, args.combined, device, task="lowlight"))
    if args.classical:
        methods += [baseline_method("lowlight", name) for name in LOWLIGHT_BASELINES]
    for flag, (kind, label) in PEER_FLAGS.items():
        if getattr(args, flag):
            methods.append(peer_method(label, kind, getattr(args, flag), device))
    return {method.name: method for method in methods}


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = parse(Args, argv, flags=flat_flags(Args), prog="lol_eval")
    flush_denormals()
    configure_threads(args.threads)
    device = select_device(args.device)
    split = None if args.split == "all" else args.split
    dataset = open_dataset(args.data, kind="paired", split=split, gray=False, seed=args.split_seed)
    count = len(dataset) if not args.limit else min(args.limit, len(dataset))
    methods = build_methods(args, device)
    rows: list[dict] = []
    for i in range(count):
        item = dataset[i]
        check_pair(item, f"lol_eval --data {args.data}")
        low = item["low"].permute(1, 2, 0).numpy()
        high = item["high"][None]
        for name, method in methods.items():
            start = time.perf_counter()
            out = method.run(low)
            ms = (time.perf_counter() - start) * 1000
            x = torch.from_numpy(out).permute(2, 0, 1)[None]
            rows.append({"image": item["name"], "method": name, "psnr": float(metrics.psnr(x, high)),
                         "ssim": float(metrics.ssim(x, high)), "uqi": float(metrics.uqi(x, high)),
                         "brightness": float(out.mean()), "ms": ms})
        print(f"[{i + 1}/{count}] {item['name']}", flush=True)
    table = []
    for name in methods:
        mine = [r for r in rows if r["method"] == name]
        table.append({"method": name, **{k: float(np.mean([r[k] for r in mine]))
                                          for k in ("psnr", "ssim", "uqi", "brightness", "ms")}})
    print(f"\n{count} image(s) of {args.data} (split {args.split}); reference brightness "
          f"{float(np.mean([dataset[i]['high'].mean() for i in range(count)])):.3f}\n")
    print(markdown_table(table))
    if args.sweep_exposure:
        by_name = {row["method"]: row["brightness"] for row in table}
        gaps = {t: by_name[f"ours, exposure {t:g}"] - t for t in args.sweep_exposure}
        print("\nexposure sweep, mean output brightness - target: "
              + ", ".join(f"{t:g}: {g:+.3f}" for t, g in gaps.items())
              + f"; largest |gap| {max(abs(g) for g in gaps.values()):.3f}")
    if args.csv:
        with atomic_path(args.csv) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return table


if __name__ == "__main__":
    run_cli(main, "lol_eval")
