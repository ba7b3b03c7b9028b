"""ReLLIE's noise-map denoiser (FFDNet) against the plain denoisers, on synthetic noisy low-light photos.

    python -m benchmarks.noise_map [--steps 1500] [--sigma 10] [--seeds 0 1] [--csv noise_map.csv]

What a denoiser after the RL policy's curve steps faces: dark-level sensor noise amplified by
however much each pixel was brightened (:func:`rlenhance.data.amplified_noise`: the built-in gray
photos darkened, noise of a level drawn per image from [0, ``--sigma``] on the 0-255 scale,
brightened by 4 random LE curve steps that vary smoothly across the image). Three gray denoisers
of about the same size are trained on the same batches, in one loop, the same number of Adam steps
(``--steps``; learning rate 2e-3 decayed to 0 on a cosine, batches of 8 crops of 32x32):

* ``MRPNet (plain)``: :class:`~rlenhance.models.mrpnet.MRPNet` width 32, today's plain ``--denoiser``;
* ``FFDNet, no map (plain)``: :class:`~rlenhance.models.ffdnet.FFDNet` width 30, depth 4, reading
  zeros in its map planes: the same network as the next one, without the map;
* ``FFDNet + map (ReLLIE)``: that network reading its noise-level map, ``sigma / 255`` times the
  brightening, as :class:`rlenhance.Enhancer` computes it from its curve steps.

Each is then scored on the held-out photos, whole (:func:`rlenhance.data.split_names` of the gray
photos with 30% held out: clock, chelsea, motorcycle_right), each degraded with ``--eval-draws``
fixed seeds: PSNR and SSIM against the noise-free brightened photo, means over the images (and over
``--seeds``). Two more rows read the trained FFDNet with a wrong map: ``flat map`` (each image's
mean level everywhere: the map without its spatial variation) and ``map x 0.5`` / ``map x 2`` (the
input's noise level under- or over-estimated twofold, as a wrong ``--noise-sigma`` does). Numbers
are printed, never asserted.
About 2-4 minutes on 1-2 CPU threads at the defaults.

``experiments.supervised_train --model ffdnet --task denoise`` trains the FFDNet the Enhancer runs
(``rlenhance enhance --denoiser``); this benchmark trains in its own loop so that the three nets see
identical batches under a decaying learning rate (``supervised_train`` keeps its rate fixed).
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from rlenhance import metrics
from rlenhance.atomic import atomic_path
from rlenhance.data import DEFAULT_GRAY_IMAGES, BuiltinImages, amplified_noise, sample_batch, split_names
from rlenhance.models.ffdnet import FFDNet
from rlenhance.models.mrpnet import MRPNet
from rlenhance.runtime import configure_threads, seed_everything

#: Fraction of the built-in gray photos held out for scoring.
VAL_FRACTION = 0.3
#: Seed of the held-out degradations (draw i uses EVAL_SEED + i).
EVAL_SEED = 20_240_601
LR = 2e-3
BATCH, CROP = 8, 32
MRPNET_WIDTH, FFDNET_WIDTH, FFDNET_DEPTH = 32, 30, 4
#: The trained methods: name -> (network factory, the map it reads given the true one).
Feed = Callable[[Tensor], Tensor]
TRAINED: dict[str, tuple[Callable[[], nn.Module], Feed | None]] = {
    "MRPNet (plain)": (lambda: MRPNet(1, width=MRPNET_WIDTH), None),
    "FFDNet, no map (plain)": (lambda: FFDNet(1, width=FFDNET_WIDTH, depth=FFDNET_DEPTH), torch.zeros_like),
    "FFDNet + map (ReLLIE)": (lambda: FFDNet(1, width=FFDNET_WIDTH, depth=FFDNET_DEPTH), lambda level: level),
}
#: The map-driven FFDNet scored again with a wrong map: name -> the map it is given instead of the true one.
WRONG_MAPS: dict[str, Feed] = {
    "FFDNet + flat map": lambda level: level.mean(dim=(-2, -1), keepdim=True).expand_as(level),
    "FFDNet + map x 0.5": lambda level: level * 0.5,
    "FFDNet + map x 2": lambda level: level * 2.0,
}
#: The trained method that :data:`WRONG_MAPS` re-scores.
MAP_DRIVEN = "FFDNet + map (ReLLIE)"


def run(model: nn.Module, x: Tensor, level: Tensor | None) -> Tensor:
    return model(x) if level is None else model(x, level)


def train(seed: int, steps: int, sigma: float, train_set: BuiltinImages) -> dict[str, tuple[nn.Module, float]]:
    """Every method of :data:`TRAINED` trained on the same batches: name -> (network, seconds)."""
    seed_everything(seed)
    nets = {}
    for name, (factory, _) in TRAINED.items():
        torch.manual_seed(seed)
        nets[name] = factory()
    optimizers = {name: torch.optim.Adam(net.parameters(), lr=LR) for name, net in nets.items()}
    schedules = {name: torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) for name, opt in optimizers.items()}
    seconds = dict.fromkeys(nets, 0.0)
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    for _ in range(steps):
        noisy, target, level = amplified_noise(sample_batch(train_set, BATCH, crop=CROP, rng=rng)["high"], sigma,
                                               generator=generator)
        for name, net in nets.items():
            start = time.perf_counter()
            feed = TRAINED[name][1]
            loss = (run(net, noisy, None if feed is None else feed(level)) - target).square().mean()
            optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[name].step()
            schedules[name].step()
            seconds[name] += time.perf_counter() - start
    return {name: (net.eval(), seconds[name]) for name, net in nets.items()}


def held_out(sigma: float, draws: int) -> list[tuple[str, Tensor, Tensor, Tensor]]:
    """(name, noisy, target, map) of every held-out photo, whole, per draw: each (1, 1, H, W)."""
    names = split_names(DEFAULT_GRAY_IMAGES, val_fraction=VAL_FRACTION, tune_fraction=0, group=None).val
    photos = BuiltinImages(names=names, gray=True)
    items = []
    for i in range(len(photos)):
        item = photos[i]
        for draw in range(draws):
            noisy, target, level = amplified_noise(item["high"][None], sigma,
                                                   generator=torch.Generator().manual_seed(EVAL_SEED + draw))
            items.append((f"{item['name']}#{draw}", noisy, target, level))
    return items


@torch.no_grad()
def score(model: nn.Module | None, feed: Feed | None, items: Sequence[tuple[str, Tensor, Tensor, Tensor]]
          ) -> dict[str, float]:
    """Mean PSNR / SSIM over ``items`` of the model's clamped output (None: the noisy input itself)."""
    psnr, ssim = [], []
    for _, noisy, target, level in items:
        out = noisy if model is None else run(model, noisy, None if feed is None else feed(level)).clamp(0, 1)
        psnr.append(float(metrics.psnr(out, target)[0]))
        ssim.append(float(metrics.ssim(out, target)[0]))
    return {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim))}


def compare(steps: int, sigma: float, seeds: Sequence[int], draws: int) -> list[dict[str, object]]:
    """One row per method: name, params, training seconds and scores, means over ``seeds``."""
    train_names = split_names(DEFAULT_GRAY_IMAGES, val_fraction=VAL_FRACTION, tune_fraction=0, group=None).train
    train_set = BuiltinImages(names=train_names, gray=True)
    items = held_out(sigma, draws)
    per_seed: dict[str, list[dict[str, float]]] = {}
    params: dict[str, int] = {}
    for seed in seeds:
        trained = train(seed, steps, sigma, train_set)
        per_seed.setdefault("noisy input", []).append({**score(None, None, items), "seconds": 0.0})
        for name, (net, seconds) in trained.items():
            params[name] = sum(p.numel() for p in net.parameters())
            per_seed.setdefault(name, []).append({**score(net, TRAINED[name][1], items), "seconds": seconds})
        for name, feed in WRONG_MAPS.items():
            params[name] = params[MAP_DRIVEN]
            per_seed.setdefault(name, []).append({**score(trained[MAP_DRIVEN][0], feed, items), "seconds": 0.0})
    rows = []
    for name, runs in per_seed.items():
        row: dict[str, object] = {"method": name, "params": params.get(name, 0)}
        for key in ("psnr", "ssim", "seconds"):
            row[key] = float(np.mean([r[key] for r in runs]))
        if len(runs) > 1:
            row["psnr_per_seed"] = " ".join(f"{r['psnr']:.2f}" for r in runs)
        rows.append(row)
    return rows


def print_table(rows: Sequence[dict[str, object]], header: str) -> None:
    print(header)
    print(f"{'method':<28} {'params':>7} {'train s':>8} {'PSNR':>7} {'SSIM':>7}  per seed")
    for r in rows:
        print(f"{r['method']:<28} {r['params']:>7} {r['seconds']:>8.1f} {r['psnr']:>7.2f} {r['ssim']:>7.4f}  "
              f"{r.get('psnr_per_seed', '')}")


def main(argv: Sequence[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.noise_map", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1500, help="Adam steps of each network")
    parser.add_argument("--sigma", type=float, default=10.0,
                        help="largest dark-level noise level (0-255), supervised_train's default for --noise amplified")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (scores are averaged)")
    parser.add_argument("--eval-draws", type=int, default=3, help="noise draws per held-out photo")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: every core but one)")
    parser.add_argument("--csv", type=Path, default=None, help="also write the table to this CSV file")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.eval_draws < 1 or not args.sigma > 0:
        parser.error("--steps and --eval-draws must be >= 1 and --sigma > 0")
    configure_threads(args.threads)
    start = time.perf_counter()
    rows = compare(args.steps, args.sigma, args.seeds, args.eval_draws)
    print_table(rows, f"noise-map denoiser vs plain: {args.steps} steps, dark-level sigma <= {args.sigma:g}, "
                      f"seeds {' '.join(map(str, args.seeds))}, {args.eval_draws} draws of each held-out photo "
                      f"({time.perf_counter() - start:.0f} s)")
    if args.csv is not None:
        with atomic_path(args.csv) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["method", "params", "seconds", "psnr", "ssim", "psnr_per_seed"])
            writer.writeheader()
            writer.writerows(rows)
    return rows


if __name__ == "__main__":
    main()
