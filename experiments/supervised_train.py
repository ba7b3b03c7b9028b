"""Train a supervised baseline: MRPNet + Generator, the ConvLSTM PixelRNN or the gated PixelRNN.

    python -m experiments.supervised_train                      # MRPNet+Generator, embedded photos darkened
    python -m experiments.supervised_train --model mrpnet --task lowlight --data ../shared/data/sice_pairs/train
    python -m experiments.supervised_train --model mrpnet --task denoise --data ../shared/data/bsd/train432 --sigma 25
    python -m experiments.supervised_train --model pixelrnn --task completion --data ../shared/data/bedroom/train
    python -m experiments.supervised_train --model gated-pixelrnn --task completion --data ../shared/data/bedroom/train
    python -m experiments.supervised_train --out runs/supervised_train --resume     # continue a killed run

Without ``--data`` the clean images are scikit-image's photos (:class:`rlenhance.data.BuiltinImages`),
degraded on the fly by :func:`~rlenhance.data.synthetic_low_light`, :func:`~rlenhance.data.add_gaussian_noise`
or :func:`~rlenhance.data.random_occlusion`, so it runs with no data at all. Denoising is on gray images
(the DnCNN / PixelRL protocol: noise of ``--sigma`` on the 0-255 scale, not clipped).

Models and losses (the seeds' choices; ``--lr/--batch/--crop/--width`` default to them):

==============  ====================================  ==============================================  ====  =====  ====
--model         network                               loss                                            lr    batch  crop
==============  ====================================  ==============================================  ====  =====  ====
mrpnet          CombinedModel (MRPNet -> Generator)   MSE                                             1e-4  16     128
pixelrnn        PixelRNN (encoder-ConvLSTM-decoder)   0.8 MSE + 0.2 (1 - SSIM)                        1e-3  16     224
gated-pixelrnn  GatedPixelRNN (RGB + mask)            0.8 L1 in the hole + 0.2 (1 - SSIM) composite   1e-4  4      224
==============  ====================================  ==============================================  ====  =====  ====

``gated-pixelrnn`` needs the mask, so it trains on ``--task completion`` only; the others train on any
task. For completion the output shown and scored is the composite ``occluded (1 - mask) + pred mask``,
and the hole-only PSNR / L1 are reported next to the whole-image PSNR / SSIM.

An epoch is ``--steps-per-epoch`` batches of random crops (drawn with replacement), then a validation
pass over ``--val-samples`` fixed crops of the held-out images, spread evenly over them (the same
crops and degradations in every epoch and every run; ``--val-samples`` >= the number of held-out
images scores each of them). The run folder (``--out``, see :mod:`experiments.runs`) gets config.json
(the resolved arguments), TensorBoard events and metrics.csv, ``train_log.tsv`` (one row per epoch:
epoch, lr, each training loss term, the validation loss and metrics), ``loss_curve.png``, sample
grids ``samples/epoch_NNNN.png`` (input | output | reference), ``checkpoints/best.pt`` (lowest
validation loss) and ``checkpoints/last.pt`` (every epoch, with the optimizer and RNG states), and
summary.md. Ctrl-C (SIGINT) or SIGTERM saves last.pt before the next batch (with the batches done
of the current epoch) and exits with code 130 / 143. ``--resume`` continues from last.pt with the
saved arguments to the same total epochs (``--epochs`` may be given to change the total,
``--device``/``--threads`` to move the run); the result equals that of an uninterrupted run. A
``--resume`` that finds config.json but no last.pt (the run stopped before its first epoch ended)
starts the run anew with the saved arguments; one on a finished run changes nothing. Mixed
precision (``torch.autocast`` float16 with a gradient scaler) is used on CUDA and is a no-op on CPU.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from experiments.plots import loss_curves, save_figure
from experiments.runs import Run, StopSignals, arg, parse_config, run_cli
from rlenhance import metrics
from rlenhance.atomic import atomic_path
from rlenhance.checkpoint import SupervisedSpec, load_state_dict_strict
from rlenhance.data import (
    DEFAULT_COLOR_IMAGES,
    DEFAULT_GRAY_IMAGES,
    BuiltinImages,
    OccludedPairs,
    PairedImages,
    UnpairedImages,
    add_gaussian_noise,
    random_occlusion,
    sample_batch,
    split_names,
    synthetic_low_light,
)
from rlenhance.errors import DatasetError
from rlenhance.losses import mse_loss
from rlenhance.models.mrpnet import MODELS as MRPNET_MODELS
from rlenhance.models.mrpnet import CombinedModel, MRPNet
from rlenhance.models.pixelrnn import (
    MODELS as PIXELRNN_MODELS,
)
from rlenhance.models.pixelrnn import (
    GatedPixelRNN,
    PixelRNN,
    completion_loss,
    composite,
    hole_l1,
    hole_psnr,
    mse_ssim_loss,
)
from rlenhance.ops.fill import PREFILLS, prefill_hole
from rlenhance.runtime import configure_threads, flush_denormals, seed_everything, select_device

MODEL_CHOICES = ("mrpnet", "pixelrnn", "gated-pixelrnn")
TASKS = ("lowlight", "denoise", "completion")
OCCLUSIONS = ("box", "stroke", "mixed")
#: Every class a checkpoint of this experiment can name (for rlenhance.checkpoint.build_model).
REGISTRY: Mapping[str, type[nn.Module]] = MappingProxyType({**MRPNET_MODELS, **PIXELRNN_MODELS})
#: Seed of the validation crops and degradations: fixed, so every run and seed scores the same set.
VAL_SEED = 20_240_601
#: Arguments that --resume takes from the command line; the others come from the run's config.json.
RESUME_OVERRIDES = ("epochs", "device", "threads", "out", "resume")
#: The smallest crop: the SSIM window (11x11) must fit.
MIN_CROP = 16


class Defaults(NamedTuple):
    """The seeds' training settings of a model (used where an argument is left unset)."""

    lr: float
    batch: int
    crop: int
    width: int


MODEL_DEFAULTS: Mapping[str, Defaults] = MappingProxyType({
    "mrpnet": Defaults(lr=1e-4, batch=16, crop=128, width=64),
    # The bedroom photos are 224x224 with one 67x67 hole: the completion models take them whole
    # (the seeds resized them to 256 and 128), so no crop misses the hole.
    "pixelrnn": Defaults(lr=1e-3, batch=16, crop=224, width=64),
    "gated-pixelrnn": Defaults(lr=1e-4, batch=4, crop=224, width=48),
})


@dataclass
class Args:
    """Train a supervised baseline (MRPNet + Generator, ConvLSTM PixelRNN, gated PixelRNN)."""

    model: str = arg("mrpnet", "network: MRPNet + Generator, ConvLSTM PixelRNN, or gated PixelRNN (RGB + mask)",
                     choices=MODEL_CHOICES)
    task: str = arg("lowlight", "what to restore (gated-pixelrnn: completion only)", choices=TASKS)
    data: str | None = arg(None, "lowlight: a low/+high/ pair folder or a LOL parent (split by scene); denoise: a "
                                 "folder of clean images (read as gray); completion: occluded_images/+"
                                 "original_images/. Default: scikit-image photos degraded synthetically")
    sigma: float = arg(25.0, "denoise: Gaussian noise standard deviation on the 0-255 scale")
    occlusion: str = arg("box", "completion without --data: shape of the synthetic holes", choices=OCCLUSIONS)
    prefill: str = arg("diffusion", "completion: what the network sees in the hole: the diffusion fill (the "
                                    "completion env's start state) or none (the occluded input as is)",
                       choices=PREFILLS)
    generator: bool = arg(True, "mrpnet: chain the Generator after MRPNet (CombinedModel); --no-generator "
                                "trains MRPNet alone")
    width: int | None = arg(None, "feature planes; unset: the published size, 64 (gated-pixelrnn 48)")
    epochs: int = arg(20, "training epochs")
    steps_per_epoch: int = arg(50, "batches of random crops per epoch")
    batch: int | None = arg(None, "crops per batch; unset: 16 (gated-pixelrnn 4)")
    crop: int | None = arg(None, "crop size in pixels; unset: 128 (pixelrnn, gated-pixelrnn 224)")
    lr: float | None = arg(None, "Adam learning rate; unset: 1e-4 (pixelrnn 1e-3)")
    val_fraction: float = arg(0.1, "fraction of the images (scenes) held out for validation")
    val_samples: int = arg(32, "validation crops (fixed across epochs and runs), spread evenly over the validation "
                               "images: at least their number to score every one")
    samples: int = arg(4, "validation crops shown in each sample grid")
    amp: bool = arg(True, "mixed precision (float16 autocast + gradient scaling) on CUDA; ignored on CPU")
    device: str = arg("auto", "auto, cpu, cuda or cuda:N")
    threads: int = arg(0, "torch CPU threads (0: every core but one, at least 1)")
    seed: int = arg(0, "seed of the weights' initialisation and the training crops and degradations")
    out: str = arg("runs/supervised_train", "run folder")
    resume: bool = arg(False, "continue the run in --out from checkpoints/last.pt with its saved arguments")


class Example(NamedTuple):
    """A batch ready for a model: ``input`` and ``target`` float (B, C, H, W); ``mask`` (B, 1, H, W)
    with 1 = missing pixel (completion only, else None)."""

    input: Tensor
    target: Tensor
    mask: Tensor | None


# --- configuration ------------------------------------------------------------------------------
def given_flags(argv: Sequence[str]) -> set[str]:
    """Names of the Args fields set on the command line (``--no-amp`` counts as ``amp``)."""
    names = set()
    for token in argv:
        if token.startswith("--"):
            name = token[2:].split("=", 1)[0].replace("-", "_")
            names.add(name[3:] if name.startswith("no_") and name[3:] in {f.name for f in fields(Args)} else name)
    return names


def resolve_args(args: Args, argv: Sequence[str]) -> Args:
    """Fill the model's defaults (new run) or restore the saved arguments (``--resume``).

    Raises:
        FileNotFoundError: ``--resume`` without config.json in ``--out`` (a run that stopped before
            its first checkpoint has one and starts anew; see :class:`experiments.runs.Run`).
        ValueError: an invalid combination, or ``--resume`` with arguments that differ from the run's.
    """
    if args.resume:
        out = Path(args.out)
        if not (out / "config.json").is_file():
            raise FileNotFoundError(f"--resume: no checkpoint to resume from at {out / 'checkpoints' / 'last.pt'} "
                                    "(or no config.json next to it)")
        saved = json.loads((out / "config.json").read_text())
        known = {f.name for f in fields(Args)}
        explicit = given_flags(argv) & known
        conflicts = [f"--{name.replace('_', '-')} {getattr(args, name)!r} (the run has {saved.get(name)!r})"
                     for name in sorted(explicit - set(RESUME_OVERRIDES)) if getattr(args, name) != saved.get(name)]
        if conflicts:
            raise ValueError("--resume continues a run with its saved arguments; these differ: " + "; ".join(conflicts)
                             + f". Only {', '.join('--' + n for n in RESUME_OVERRIDES[:3])} may change.")
        merged = {name: saved[name] for name in known if name in saved}
        merged.update({name: getattr(args, name) for name in RESUME_OVERRIDES if name in explicit or name in
                       ("out", "resume")})
        args = Args(**merged)
    else:
        defaults = MODEL_DEFAULTS[args.model]
        args = replace(args, lr=args.lr if args.lr is not None else defaults.lr,
                       batch=args.batch if args.batch is not None else defaults.batch,
                       crop=args.crop if args.crop is not None else defaults.crop,
                       width=args.width if args.width is not None else defaults.width)
    check_args(args)
    return args


def check_args(args: Args) -> None:
    """Raise ValueError naming the first argument out of range."""
    if args.model == "gated-pixelrnn" and args.task != "completion":
        raise ValueError(f"--model gated-pixelrnn reads an image and its mask; it trains on --task completion only "
                         f"(got --task {args.task})")
    for name in ("epochs", "steps_per_epoch", "batch", "width", "val_samples"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected an integer >= 1")
    if args.crop < MIN_CROP:
        raise ValueError(f"--crop {args.crop}: expected at least {MIN_CROP} (the 11x11 SSIM window must fit)")
    if not 0.0 < args.val_fraction < 1.0:
        raise ValueError(f"--val-fraction {args.val_fraction}: expected a number in (0, 1)")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr {args.lr}: expected a finite number > 0")
    if not (math.isfinite(args.sigma) and args.sigma >= 0):
        raise ValueError(f"--sigma {args.sigma}: expected a finite number >= 0 (0-255 scale)")
    if args.samples < 0 or args.threads < 0:
        raise ValueError("--samples and --threads: expected integers >= 0")


# --- data -------------------------------------------------------------------------------------
def image_channels(args: Args) -> int:
    return 1 if args.task == "denoise" else 3


def open_datasets(args: Args):
    """(train, val) datasets; see the ``--data`` help for the layouts read per task."""
    gray = args.task == "denoise"
    if args.data is None:
        names = DEFAULT_GRAY_IMAGES if gray else DEFAULT_COLOR_IMAGES
        train_names, val_names = split_names(names, val_fraction=args.val_fraction, group=None)
        return BuiltinImages(names=train_names, gray=gray), BuiltinImages(names=val_names, gray=gray)
    root = Path(args.data)
    if not root.is_dir():
        raise DatasetError(f"--data {root}: not a folder")
    if args.task == "lowlight":
        opener = lambda split: PairedImages(root, split=split, val_fraction=args.val_fraction)  # noqa: E731
    elif args.task == "completion":
        opener = lambda split: OccludedPairs(root, split=split, val_fraction=args.val_fraction)  # noqa: E731
    elif (root / "low").is_dir() and (root / "high").is_dir():
        opener = lambda split: PairedImages(root, split=split, val_fraction=args.val_fraction, gray=True)  # noqa: E731
    else:
        opener = lambda split: UnpairedImages(root, split=split, val_fraction=args.val_fraction, gray=True)  # noqa: E731
    return opener("train"), opener("val")


def make_example(args: Args, batch: Mapping[str, Any], generator: torch.Generator, device: torch.device) -> Example:
    """Turn a batch of dataset crops into (input, target, mask), degrading clean images when needed.

    Every random draw comes from ``generator`` (a CPU generator, so CPU and CUDA runs agree).
    """
    if args.task == "completion":
        if "occluded" in batch:
            return Example(batch["occluded"].to(device), batch["original"].to(device), batch["mask"].to(device))
        clean = batch["high"].to(device)
        occluded, mask = random_occlusion(clean, generator=generator, kind=args.occlusion)
        return Example(occluded, clean, mask)
    if args.task == "lowlight":
        if "low" in batch and "high" in batch:
            return Example(batch["low"].to(device), batch["high"].to(device), None)
        clean = batch["high"].to(device)
        return Example(synthetic_low_light(clean, generator=generator), clean, None)
    clean = (batch["high"] if "high" in batch else batch["low"]).to(device)
    return Example(add_gaussian_noise(clean, args.sigma, generator=generator), clean, None)


def validation_set(args: Args, dataset) -> Example:
    """``val_samples`` fixed crops of the validation images, degraded with a fixed seed (CPU tensors):
    the images in a fixed shuffled order, each used ``val_samples // len(dataset)`` or one more
    times (``val_samples`` >= the number of validation images covers them all)."""
    batch = sample_batch(dataset, args.val_samples, crop=args.crop, rng=np.random.default_rng(VAL_SEED), flip=False,
                         spread=True)
    return make_example(args, batch, torch.Generator().manual_seed(VAL_SEED), torch.device("cpu"))


# --- model, forward pass and loss ---------------------------------------------------------------------
def build_network(args: Args) -> nn.Module:
    channels = image_channels(args)
    if args.model == "mrpnet":
        return CombinedModel(channels, width=args.width) if args.generator else MRPNet(channels, width=args.width)
    if args.model == "pixelrnn":
        return PixelRNN(channels, width=args.width)
    return GatedPixelRNN(channels, width=args.width)


def predict(model: nn.Module, example: Example, prefill: str) -> Tensor:
    """The model's raw prediction; for completion the hole is pre-filled as ``prefill`` says first
    (:func:`rlenhance.ops.fill.prefill_hole`) and the gated PixelRNN also reads the mask."""
    x = example.input if example.mask is None else prefill_hole(example.input, example.mask, prefill)
    if isinstance(model, GatedPixelRNN):
        return model(x, example.mask)
    return model(x)


def compute_loss(args: Args, pred: Tensor, example: Example) -> tuple[Tensor, dict[str, Tensor]]:
    """The model's training loss per image (B,) and its unweighted terms (each (B,))."""
    if args.model == "gated-pixelrnn":
        return completion_loss(pred, example.target, example.input, example.mask, return_terms=True)
    if args.model == "pixelrnn":
        return mse_ssim_loss(pred, example.target, return_terms=True)
    mse = mse_loss(pred, example.target)
    return mse, {"mse": mse}


def final_output(pred: Tensor, example: Example) -> Tensor:
    """What a user gets: the prediction clamped to [0, 1], composited with the known pixels for completion."""
    pred = pred.clamp(0.0, 1.0)
    return composite(example.input, pred, example.mask) if example.mask is not None else pred


@torch.no_grad()
def evaluate(model: nn.Module, args: Args, val: Example, device: torch.device, use_amp: bool
             ) -> tuple[dict[str, float], Tensor]:
    """Validation loss and metrics (per-image means, torchmetrics style) and the outputs (CPU)."""
    model.eval()
    per_image: dict[str, list[Tensor]] = {}
    outputs = []
    for start in range(0, val.input.shape[0], args.batch):
        part = Example(*(t[start:start + args.batch].to(device) if t is not None else None for t in val))
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            pred = predict(model, part, args.prefill)
        pred = pred.float()
        loss, _ = compute_loss(args, pred, part)
        out = final_output(pred, part)
        values = {"loss": loss, "psnr": metrics.psnr(out, part.target), "ssim": metrics.ssim(out, part.target)}
        if part.mask is not None:  # averaged over the crops that hold part of a hole
            no_hole = part.mask.sum(dim=(1, 2, 3)) == 0
            values["hole_psnr"] = hole_psnr(out, part.target, part.mask)
            values["hole_l1"] = hole_l1(out, part.target, part.mask).masked_fill(no_hole, float("nan"))
        for name, value in values.items():
            per_image.setdefault(name, []).append(value.cpu())
        outputs.append(out.cpu())
    model.train()
    scores = {}
    for name, chunks in per_image.items():
        values = torch.cat(chunks)
        finite = values[~torch.isnan(values)]  # hole metrics are NaN for a crop without hole
        scores[name] = float(finite.mean()) if finite.numel() else float("nan")
    return scores, torch.cat(outputs)


# --- logs ----------------------------------------------------------------------------------------
def write_log(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write ``train_log.tsv`` (tab-separated, one row per epoch) atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


# --- the experiment --------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> Path:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = resolve_args(parse_config(Args, argv), argv)
    flush_denormals()
    configure_threads(args.threads)
    seed_everything(args.seed)
    device = select_device(args.device)
    use_amp = args.amp and device.type == "cuda"

    train_set, val_set = open_datasets(args)
    val = validation_set(args, val_set)
    model = build_network(args).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    rng = np.random.default_rng(args.seed)  # training crops
    generator = torch.Generator().manual_seed(args.seed)  # training degradations
    run = Run(args.out, args, resume=args.resume)  # written on the first log
    log_path, curve_path = run.dir / "train_log.tsv", run.dir / "loss_curve.png"
    title = f"supervised_train: {run.dir}"
    spec = SupervisedSpec(model=args.model, task=args.task, channels=image_channels(args),
                          prefill=args.prefill if args.task == "completion" else "none")

    # epoch: epochs finished; batch: batches trained of epoch + 1 and sums: their loss sums;
    # scores: the last validation's; saved: (epoch, batch) of last.pt
    epoch, batch, sums, best, best_epoch, history = 0, 0, {}, math.inf, 0, []
    scores: dict[str, float] = {}
    saved = None
    if run.resuming:
        ckpt = run.load_last(expected_arch=model.arch())
        load_state_dict_strict(model, ckpt["state_dict"], source=str(run.last_path))
        extra = ckpt["extra"]
        optimizer.load_state_dict(extra["optimizer"])
        if use_amp and extra["scaler"]:  # a CPU run saves a disabled scaler's empty state
            scaler.load_state_dict(extra["scaler"])
        rng.bit_generator.state = extra["np_rng"]
        generator.set_state(extra["torch_rng"])
        epoch, best, best_epoch, history = int(extra["epoch"]), float(extra["best"]), int(extra["best_epoch"]), \
            list(extra["history"])
        batch, sums, scores = int(extra.get("batch", 0)), dict(extra.get("sums") or {}), dict(extra["scores"])
        best, best_epoch = run.best_so_far(best, best_epoch, step_key="best_epoch")
        saved = (epoch, batch)
        if epoch >= args.epochs:
            print(f"{run.dir}: already finished at epoch {epoch} of {args.epochs}; nothing to do; raise --epochs "
                  "to train on")
            if not run.summary_path.exists():  # killed between last.pt and summary.md
                run.summary([summary_row(args, model, epoch, best_epoch, history)], title=title)
            run.close()
            return run.dir
        run.truncate_metrics(epoch)
        if history:
            write_log(log_path, history)
        print(f"resumed {run.last_path} at epoch {epoch} of {args.epochs}"
              + (f", batch {batch} of {args.steps_per_epoch}" if batch else ""))

    def last_extra() -> dict[str, Any]:
        return {"epoch": epoch, "batch": batch, "sums": sums, "scores": scores, "args": asdict(args),
                "spec": spec, "best": best, "best_epoch": best_epoch, "history": history,
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "np_rng": rng.bit_generator.state, "torch_rng": generator.get_state()}

    bar = run.progress(args.epochs, initial=epoch, desc="epoch")
    start = time.perf_counter()
    with StopSignals() as stop:
        while epoch < args.epochs:
            if stop.signum:  # before the next batch or the validation: save this point and stop
                if saved != (epoch, batch):
                    run.save("last", model=model, arch=model.arch(), extra=last_extra())
                bar.close()
                run.close()
                where = f"after batch {batch} of {args.steps_per_epoch}" if batch else "at its start"
                raise stop.interrupted(f"interrupted in epoch {epoch + 1} of {args.epochs}, {where} ({stop.name}); "
                                       f"{run.last_path} saved; continue with --resume --out {run.dir}")
            if batch < args.steps_per_epoch:
                example = make_example(args, sample_batch(train_set, args.batch, crop=args.crop, rng=rng), generator,
                                       device)
                with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                    pred = predict(model, example, args.prefill)
                loss_values, terms = compute_loss(args, pred.float(), example)
                loss = loss_values.mean()
                if not use_amp and not bool(torch.isfinite(loss)):
                    raise FloatingPointError(f"training diverged at epoch {epoch + 1}: loss is {float(loss)}; "
                                             f"lower --lr (now {args.lr})")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                for name, value in {"loss": loss, **{k: v.mean() for k, v in terms.items()}}.items():
                    sums[name] = sums.get(name, 0.0) + float(value.detach())
                batch += 1
                continue
            # the epoch's batches are done: validate, log and checkpoint
            epoch += 1
            train = {name: total / args.steps_per_epoch for name, total in sums.items()}
            scores, outputs = evaluate(model, args, val, device, use_amp)
            seconds = time.perf_counter() - start
            lr = optimizer.param_groups[0]["lr"]
            row = {"epoch": epoch, "lr": lr, **{f"train_{k}": v for k, v in train.items() if k != "loss"},
                   "train_loss": train["loss"], **{f"val_{k}": v for k, v in scores.items()}, "seconds": seconds}
            history.append(row)
            run.log(epoch, {"charts/lr": lr, "charts/epoch_seconds": seconds,
                            **{f"losses/{k}": v for k, v in train.items()},
                            **{f"eval/{k}": v for k, v in scores.items()}})
            write_log(log_path, history)
            rows = [[val.input[i], outputs[i], val.target[i]] for i in range(min(args.samples, len(outputs)))]
            if rows:
                run.save_grid(f"epoch_{epoch:04d}", rows)
            save_figure(loss_curves({"train loss": [(r["epoch"], r["train_loss"]) for r in history],
                                     "val loss": [(r["epoch"], r["val_loss"]) for r in history]},
                                    title=f"{args.model} / {args.task}", ylabel="loss"), curve_path)
            batch, sums = 0, {}
            if scores["loss"] < best:  # best.pt before last.pt: a kill between them leaves last.pt's best behind
                best, best_epoch = scores["loss"], epoch
                run.save("best", model=model, arch=model.arch(), extra={
                    "epoch": epoch, "scores": scores, "args": asdict(args), "spec": spec,
                    "best": best, "best_epoch": best_epoch})
            run.save("last", model=model, arch=model.arch(), extra=last_extra())
            saved = (epoch, batch)
            bar.update(1)
            bar.set_postfix(loss=f"{train['loss']:.4g}", val=f"{scores['loss']:.4g}", psnr=f"{scores['psnr']:.2f}")
            start = time.perf_counter()
    bar.close()
    run.summary([summary_row(args, model, epoch, best_epoch, history)], title=title)
    run.close()
    return run.dir


def summary_row(args: Args, model: nn.Module, epoch: int, best_epoch: int,
                history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The closing summary table's row: model, size, epochs and the best epoch's validation scores."""
    row = {"model": args.model, "task": args.task, "class": type(model).__name__,
           "params": sum(p.numel() for p in model.parameters()), "epochs": epoch, "best_epoch": best_epoch}
    best_row = next((r for r in history if r["epoch"] == best_epoch), None)
    if best_row is not None:
        row.update({k: v for k, v in best_row.items() if k.startswith("val_")})
    return row


if __name__ == "__main__":
    run_cli(main, "supervised_train")
