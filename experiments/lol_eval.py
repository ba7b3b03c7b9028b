"""Evaluate low-light enhancers on paired images: ours next to classical methods and peers.

    python -m experiments.lol_eval --data ../shared/data/sice_pairs/train \\
        --zero-dce ../shared/weights/zero_dce_Epoch99.pth --rellie ../shared/weights/rellie_model.npz
    python -m experiments.lol_eval --denoiser runs/denoise/checkpoints/best.pt \\
        --combined runs/supervised_train/checkpoints/best.pt

For a ``low/`` + ``high/`` folder the held-out validation split of ``experiments.lol_train`` is
used (same scene-level split for the same ``--split-seed``); ``--split all`` takes every pair.
Prints, per method, PSNR / SSIM / UQI / mean brightness (means over images, full resolution) and
milliseconds per image (the method alone, no file I/O), and writes per-image rows to ``--csv``.

``--denoiser`` adds "rlenhance (ours) + denoiser": our policy followed by a supervised denoising
checkpoint after the last curve step (ReLLIE's denoiser module, :class:`rlenhance.Enhancer`'s
``denoiser``). ``--combined`` adds a supervised low-light checkpoint of
``experiments.supervised_train`` (the MRPNet + Generator model) as a method, run through
:class:`rlenhance.restore.SupervisedRestorer`.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Callable

import numpy as np
import torch

from envs.base import open_dataset
from experiments.runs import arg, markdown_table, parse_config
from rlenhance import metrics
from rlenhance.atomic import atomic_path
from rlenhance.baselines import LOWLIGHT_BASELINES
from rlenhance.enhance import Enhancer
from rlenhance.io import tensor_to_image
from rlenhance.models.peers import load_rellie, load_zero_dce, load_zero_dcepp, rellie_enhance
from rlenhance.restore import SupervisedRestorer
from rlenhance.runtime import flush_denormals, select_device


#: Method names of supervised low-light checkpoints (``--combined``), by network class.
COMBINED_LABELS = MappingProxyType({"CombinedModel": "MRPNet+Generator"})


@dataclass
class Args:
    """Evaluate low-light enhancers on a paired folder (PSNR / SSIM / UQI / brightness / ms per image)."""

    data: str = arg("../shared/data/sice_pairs/train", "paired folder: low/ + high/, or LOL's our485/ + eval15/")
    split: str = arg("val", "which pairs: the validation split of lol_train, the training split, or all",
                     choices=("val", "train", "all"))
    split_seed: int = arg(0, "seed of the train/validation split (lol_train's --seed)")
    checkpoint: str | None = arg(None, "our policy checkpoint (default: the model shipped in the package)")
    steps: int | None = arg(None, "curve steps for our model (default: the checkpoint's)")
    exposure: float | None = arg(None, "exposure target for our (conditioned) model; default: its training setting")
    zero_dce: str | None = arg(None, "official Zero-DCE weights (zero_dce_Epoch99.pth)")
    zero_dcepp: str | None = arg(None, "official Zero-DCE++ weights (zero_dcepp_Epoch99.pth)")
    rellie: str | None = arg(None, "ReLLIE's released policy (rellie_model.npz)")
    denoiser: str | None = arg(None, "denoising checkpoint of experiments.supervised_train, run after our model's "
                                     "last curve step (ReLLIE's denoiser module) as the method 'rlenhance (ours) + "
                                     "denoiser'")
    combined: str | None = arg(None, "lowlight checkpoint of experiments.supervised_train (MRPNet + Generator), "
                                     "evaluated as an extra method")
    classical: bool = arg(True, "include auto-gamma, histogram equalisation and CLAHE")
    sweep_exposure: tuple[float, ...] = arg((), "also run our (conditioned) model at each of these exposure "
                                                "targets and report the mean output brightness")
    limit: int = arg(0, "evaluate at most this many images (0: all)")
    device: str = arg("auto", "auto, cpu, cuda or cuda:N")
    threads: int = arg(0, "torch CPU threads (0: torch's default)")
    csv: str | None = arg(None, "write one row per image and method to this CSV file")


def build_methods(args: Args, device: torch.device) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Name -> function (RGB float32 (H, W, 3) -> same) for every requested method."""
    enhancer = Enhancer(args.checkpoint, device=args.device, steps=args.steps)
    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "rlenhance (ours)": lambda img: enhancer.enhance(img, exposure=args.exposure)}
    if args.denoiser:
        denoised = Enhancer(args.checkpoint, device=args.device, steps=args.steps,
                            denoiser=SupervisedRestorer(args.denoiser, device=device, task="denoise"))
        methods["rlenhance (ours) + denoiser"] = lambda img: denoised.enhance(img, exposure=args.exposure)
    for target in args.sweep_exposure:
        methods[f"ours, exposure {target:g}"] = lambda img, e=target: enhancer.enhance(img, exposure=e)
    if args.combined:
        combined = SupervisedRestorer(args.combined, device=device, task="lowlight")
        label = COMBINED_LABELS.get(combined.arch_class, combined.arch_class)
        methods[label] = lambda img: combined.restore(img, per_channel=True)  # RGB out, gray models too
    if args.classical:
        methods.update(LOWLIGHT_BASELINES)

    def torch_method(fn):
        def run(img: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].to(device)
            with torch.no_grad():
                return tensor_to_image(fn(x)[0].clamp(0, 1))
        return run

    if args.zero_dce:
        zero_dce = load_zero_dce(args.zero_dce).to(device).eval()
        methods["Zero-DCE"] = torch_method(lambda x: zero_dce(x)[0])
    if args.zero_dcepp:
        zero_dcepp = load_zero_dcepp(args.zero_dcepp).to(device).eval()
        methods["Zero-DCE++"] = torch_method(lambda x: zero_dcepp(x)[0])
    if args.rellie:
        rellie = load_rellie(args.rellie).to(device).eval()
        methods["ReLLIE"] = torch_method(lambda x: rellie_enhance(rellie, x, steps=6))
    return methods


def main(argv=None) -> list[dict]:
    args = parse_config(Args, argv)
    flush_denormals()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    split = None if args.split == "all" else args.split
    dataset = open_dataset(args.data, kind="paired", split=split, gray=False, seed=args.split_seed)
    count = len(dataset) if not args.limit else min(args.limit, len(dataset))
    methods = build_methods(args, device)
    rows: list[dict] = []
    for i in range(count):
        item = dataset[i]
        if "high" not in item:
            raise ValueError(f"{args.data}: lol_eval needs references (high/) for {item['name']}")
        low = item["low"].permute(1, 2, 0).numpy()
        high = item["high"][None]
        for name, fn in methods.items():
            start = time.perf_counter()
            out = fn(low)
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
    main()
