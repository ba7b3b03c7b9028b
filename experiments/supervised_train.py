"""Train a supervised restorer: MRPNet (+ Generator), the ConvLSTM PixelRNN, the gated PixelRNN, FFDNet,
the completion U-Net, or a network of your own named by import path (``--model package.module:Class``).

    python -m experiments.supervised_train                                  # MRPNet+Generator, embedded photos
    python -m experiments.supervised_train --preset ffdnet-denoise          # the shipped ffdnet_denoise.pt recipe
    python -m experiments.supervised_train --model unet --task completion --data ../shared/data/bedroom/train
    python -m experiments.supervised_train --preset mrpnet-denoise --print-config > my.json   # edit, then --config
    python -m experiments.supervised_train --resume --out runs/supervised_train            # continue a stopped run

The settings form one config of four sections (``data``, ``model``, ``train``, ``run``; ``--print-config``,
``--set SECTION.KEY=VALUE``, ``--config FILE``, ``--preset NAME``). Unset sizes come from the network class's
``train_defaults``:

==============  ====================================  ==============================================  ====  =====  ====
model.name      network                               loss                                            lr    batch  crop
==============  ====================================  ==============================================  ====  =====  ====
mrpnet          CombinedModel (MRPNet -> Generator)   MSE                                             1e-4  16     128
pixelrnn        PixelRNN (encoder-ConvLSTM-decoder)   0.8 MSE + 0.2 (1 - SSIM)                        1e-3  16     224
gated-pixelrnn  GatedPixelRNN (RGB + mask)            0.8 L1 in the hole + 0.2 (1 - SSIM) composite   1e-4  4      224
ffdnet          FFDNet (image + noise-level map)      MSE                                             1e-3  16     64
unet            CompletionUNet (RGB + mask, coarse)   MSE in the hole (``train.hole_loss psnr``: -PSNR)  1e-3  16  224
==============  ====================================  ==============================================  ====  =====  ====

A network of your own (``examples/supervised_baseline.py``, docs/api.md) is built as ``Network(channels,
width=W)`` and trained on the MSE (with the hole mask when its class ``reads_mask``); its checkpoints record its
import path.

Without ``data.data`` the clean images are scikit-image's photos (:class:`rlenhance.data.BuiltinImages`),
degraded on the fly. Denoising is on gray images (``data.gray``) with noise of ``data.sigma`` (0-255; several
levels: a blind denoiser, :mod:`experiments.sigmas`); ``data.noise amplified`` (FFDNet's default) denoises what
follows the low-light policy. A setting that does not apply to the model or task is an error. The checkpoint's
:class:`~rlenhance.checkpoint.SupervisedSpec` records what inference needs.

An epoch is ``train.steps_per_epoch`` batches of random crops, then an evaluation on ``data.val_samples`` fixed
crops of the tuning split; after the last epoch best.pt (lowest evaluation loss) is scored once on the validation
split (the summary's ``val_*`` columns). The run folder: docs/training.md; the loop is
:class:`experiments.loop.Loop` (``--resume``, Ctrl-C); mixed precision on CUDA; DistributedDataParallel under
``torchrun`` (docs/distributed.md).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from agents.distributed import Ranks, wrap
from experiments import config as configs
from experiments.config import Cost, Preset
from experiments.loop import Callback, Loop, SampleGrids, Snapshots, preset_estimate, run_seconds
from experiments.plots import loss_curves, save_figure
from experiments.process import run_cli, setup_process
from experiments.run_settings import RESUME_MAY_CHANGE, RUN_COST_FREE, check_run, open_run, parse_run, run_section
from experiments.runs import Run, usage_lines
from experiments.sigmas import noise_levels, resolve_sigma
from experiments.supervised import (
    BATCH_SEED_BOUND,
    DEFAULT_KEYS,
    DEFAULT_SIGMA,
    Settings,
    check_settings,
    compute_loss,
    draw_example,
    evaluate,
    image_channels,
    init_weights,
    learning_rate,
    network_defaults,
    open_datasets,
    predict,
    sample_rows,
    validation_sets,
)
from rlenhance import registry
from rlenhance.checkpoint import SupervisedSpec, load_checkpoint
from rlenhance.data import TUNE_FRACTION
from rlenhance.tasks import TASKS

PROG = "supervised_train"


@dataclass(frozen=True)
class DataConfig:
    """What to restore and from which images."""

    task: Literal[TASKS] = "lowlight"
    """what to restore (gated-pixelrnn and unet: completion only; ffdnet: denoise only)"""
    data: str | None = None
    """lowlight: low/ + high/ pairs, a LOL parent or the MRPNet seed's train/ + gt/; denoise: clean images, or real
    noisy/ + clean/ pairs; completion: occluded_images/ + original_images/. None: scikit-image photos degraded"""
    gray: bool = True
    """denoise: gray images (the DnCNN / PixelRL protocol); false: RGB"""
    noise: Literal["gaussian", "amplified"] | None = None
    """denoise: gaussian (white noise) or amplified (dark-level noise brightened by known curves, ReLLIE's);
    None: amplified for ffdnet, else gaussian"""
    sigma: tuple[float, ...] = ()
    """denoise: noise level(s) on the 0-255 scale (several: a blind denoiser); empty: 25 (amplified: 10)"""
    sigma_draw: Literal["levels", "uniform"] = "levels"
    """denoise with several Gaussian levels: each crop draws one of them, or (uniform) any level in their range"""
    shift_holes: bool = False
    """completion with data: move each training pair's hole to a random place of its original"""
    flips: Literal["both", "horizontal"] = "both"
    """training crops' random flips: left-right and up-down, or left-right only (scenes with an up)"""
    prefill: Literal["diffusion", "none"] = "diffusion"
    """completion: what the network sees in the hole: the diffusion fill, or the occluded input as is"""
    resize: tuple[int, ...] = ()
    """H [W]: every image resized before cropping (the PixelRNN seeds: 256, 128); empty: native size"""
    tune_fraction: float = TUNE_FRACTION
    """fraction of the images (scenes) held out of training as the tuning split, whose crops pick best.pt; best.pt
    is then scored on the validation split's (0: no tuning split; the validation split picks)"""
    val_samples: int = 32
    """evaluation crops, spread evenly over the held-out images of a split (at least their number scores every
    one)"""


@dataclass(frozen=True)
class ModelConfig:
    """The network."""

    name: str = "mrpnet"
    """the network: mrpnet, pixelrnn, gated-pixelrnn, ffdnet, unet (the table in the module docstring), or a
    network class of your own by import path, package.module:Class"""
    width: int | None = None
    """feature planes; None: the network's (its class's train_defaults)"""
    generator: bool = True
    """mrpnet: chain the Generator after MRPNet; false: MRPNet alone"""
    upscale: Literal[1, 2, 4] = 1
    """mrpnet with the Generator, lowlight: output size over input size (the MRPNet seed: 4)"""
    variant: Literal["default", "seed"] = "default"
    """pixelrnn / gated-pixelrnn: ours, or the seed's architecture (and, gated, its SSIM window and mask rule)"""


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation."""

    epochs: int = 20
    """training epochs"""
    steps_per_epoch: int = 50
    """batches of random crops per epoch"""
    batch: int | None = None
    """crops per batch; None: the model's"""
    crop: int | None = None
    """crop side in pixels (the target's); None: the model's (with data.resize its shorter side)"""
    lr: float | None = None
    """Adam learning rate; None: the model's"""
    lr_decay: Literal["none", "cosine"] = "none"
    """learning-rate schedule over the run's batches: constant, or cosine from lr to 0"""
    hole_loss: Literal["mse", "psnr"] = "mse"
    """unet: each image's loss is its hole MSE, or minus its hole PSNR"""
    init: str | None = None
    """start from this checkpoint's weights (same model and task; a narrower unet is widened): fine-tuning"""


#: The run folder and the machine.
RunConfig = run_section("RunConfig", ("out", "resume", "device", "threads", "seed", "samples", "save_every"),
                        module=__name__, out="runs/supervised_train")


@dataclass(frozen=True)
class Config:
    """Train a supervised restorer (MRPNet + Generator, PixelRNN, gated PixelRNN, FFDNet, completion U-Net)."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    run: RunConfig = RunConfig()


#: The named flags (the rest: ``--set``).
FLAGS = {"model": "model.name", "task": "data.task", "data": "data.data", "sigma": "data.sigma",
         "width": "model.width", "epochs": "train.epochs", "steps-per-epoch": "train.steps_per_epoch",
         "batch": "train.batch", "crop": "train.crop", "lr": "train.lr", "init": "train.init", "out": "run.out",
         "resume": "run.resume", "device": "run.device", "threads": "run.threads", "seed": "run.seed"}
#: Settings a ``--resume`` may change (the rest must be the run's).
MAY_CHANGE = ("train.epochs", *RESUME_MAY_CHANGE)
#: Held-out images of the shipped recipes.
BSD, SICE, SICE_HIGH, BEDROOM = ("../shared/data/bsd/train432", "../shared/data/sice_pairs/train",
                                 "../shared/data/sice_pairs/train/high", "../shared/data/bedroom/train")


# --- presets: the shipped models' recipes and the seeds' settings ------------------------------------
def _preset(**changes: Any) -> Config:
    return configs.replace_path(Config(), changes)


def _shipped(**changes: Any) -> Config:
    """The recipe of a shipped file picked on val: no tuning split, best.pt picked on the validation split."""
    return _preset(**{"data.tune_fraction": 0.0, **changes})


def mrpnet_lowlight() -> Config:
    """mrpnet_lowlight.pt: MRPNet + Generator on the SICE pairs, best.pt picked on the tuning split."""
    return _preset(**{"data.data": SICE, "model.width": 32, "train.crop": 96, "train.batch": 8, "train.lr": 5e-4,
                      "train.epochs": 8, "train.steps_per_epoch": 30, "run.threads": 1,
                      "run.out": "runs/mrpnet_lowlight"})


def mrpnet_denoise() -> Config:
    """mrpnet_denoise.pt: MRPNet alone, gray, sigma 25 on BSD."""
    return _shipped(**{"data.task": "denoise", "data.data": BSD, "data.sigma": (25.0,), "model.generator": False,
                      "train.crop": 64, "train.batch": 16, "train.lr": 1e-3, "train.epochs": 30,
                      "train.steps_per_epoch": 40, "run.threads": 1, "run.out": "runs/mrpnet_denoise"})


def mrpnet_denoise_color() -> Config:
    """mrpnet_denoise_color.pt: MRPNet alone, RGB, blind over sigma 5-50 on SICE, best.pt picked on the tuning split."""
    return configs.replace_path(mrpnet_denoise(), {"data.gray": False, "data.data": SICE_HIGH,
                                                   "data.tune_fraction": TUNE_FRACTION,
                                                   "data.sigma": (5.0, 15.0, 25.0, 35.0, 50.0),
                                                   "run.out": "runs/mrpnet_denoise_color"})


def ffdnet_denoise() -> Config:
    """ffdnet_denoise.pt's last stage: FFDNet fine-tuned blind over sigma 0-75.

    The shipped file itself fine-tuned with a cosine schedule over 28,000 steps; four such stages, each from the
    previous one's best.pt (the first from scratch, lr 1e-3, 50 epochs), made the shipped file."""
    return _shipped(**{"data.task": "denoise", "data.data": BSD, "data.noise": "gaussian",
                      "data.sigma": (0.0, 15.0, 25.0, 50.0, 75.0), "data.sigma_draw": "uniform", "model.name": "ffdnet",
                      "model.width": 64, "train.crop": 64, "train.batch": 16, "train.lr": 3e-4,
                      "train.lr_decay": "cosine", "train.epochs": 280, "train.steps_per_epoch": 100,
                      "train.init": "rlenhance/weights/ffdnet_denoise.pt", "run.threads": 2, "run.seed": 3,
                      "run.out": "runs/ffdnet_denoise"})


def pixelrnn_completion() -> Config:
    """pixelrnn_completion.pt: ConvLSTM PixelRNN, width 24, bedroom pairs, best.pt picked on the tuning split."""
    return _preset(**{"data.task": "completion", "data.data": BEDROOM, "model.name": "pixelrnn", "model.width": 24,
                      "train.crop": 224, "train.batch": 8, "train.lr": 1e-3, "train.epochs": 30,
                      "train.steps_per_epoch": 30, "run.threads": 1, "run.out": "runs/pixelrnn_completion"})


def gated_pixelrnn_completion() -> Config:
    """gated_pixelrnn_completion.pt: gated PixelRNN, width 16, bedroom pairs, best.pt picked on the tuning split."""
    return _preset(**{"data.task": "completion", "data.data": BEDROOM, "model.name": "gated-pixelrnn",
                      "model.width": 16, "train.crop": 224, "train.batch": 4, "train.lr": 5e-4, "train.epochs": 30,
                      "train.steps_per_epoch": 30, "run.threads": 1, "run.out": "runs/gated_pixelrnn_completion"})


def unet_completion() -> Config:
    """unet_completion.pt's last stage: the U-Net fine-tuned on minus the hole PSNR.

    The shipped width-64 file itself, holes moved, left-right flips only; the shipped file is that run's
    checkpoints/model_epoch64.pt (the last epoch)."""
    return _shipped(**{"data.task": "completion", "data.data": BEDROOM, "data.shift_holes": True,
                      "data.flips": "horizontal", "data.val_samples": 90, "model.name": "unet", "model.width": 64,
                      "train.hole_loss": "psnr", "train.epochs": 64, "train.steps_per_epoch": 100, "train.lr": 1e-4,
                      "train.lr_decay": "cosine", "train.init": "rlenhance/weights/unet_completion.pt",
                      "run.threads": 2, "run.seed": 8, "run.save_every": 16, "run.out": "runs/unet_completion"})


def mrpnet_seed() -> Config:
    """The MRPNet seed's setting: the Generator super-resolves 4x, ``train/`` + ``gt/`` data."""
    return _preset(**{"model.upscale": 4, "run.out": "runs/mrpnet_seed"})


def pixelrnn_seed() -> Config:
    """The ConvLSTM PixelRNN seed's setting: 5x5 first conv, 256 x 256 images, black holes."""
    return _preset(**{"data.task": "completion", "data.data": BEDROOM, "data.resize": (256,), "data.prefill": "none",
                      "model.name": "pixelrnn", "model.variant": "seed", "train.epochs": 20,
                      "train.steps_per_epoch": 57, "run.out": "runs/pixelrnn_seed"})


def gated_pixelrnn_seed() -> Config:
    """The gated PixelRNN seed's setting: its net, SSIM and masks at 128 x 128.

    Black holes, a snapshot every 5 epochs."""
    return _preset(**{"data.task": "completion", "data.data": BEDROOM, "data.resize": (128,), "data.prefill": "none",
                      "model.name": "gated-pixelrnn", "model.variant": "seed", "train.epochs": 200,
                      "train.steps_per_epoch": 225, "run.save_every": 5, "run.out": "runs/gated_pixelrnn_seed"})


#: ``--preset NAME`` -> the config it names and its cost per step and validation (``benchmarks.preset_cost``).
PRESETS = {
    "mrpnet-lowlight": Preset(mrpnet_lowlight, cpu=Cost(0.38, eval_s=0.52), cuda=Cost(0.0104, eval_s=0.04)),
    "mrpnet-denoise": Preset(mrpnet_denoise, cpu=Cost(0.19, eval_s=0.13), cuda=Cost(0.0069, eval_s=0.01)),
    "mrpnet-denoise-color": Preset(mrpnet_denoise_color, cpu=Cost(0.25, eval_s=1.19),
                                   cuda=Cost(0.0078, eval_s=0.03)),
    "ffdnet-denoise": Preset(ffdnet_denoise, cpu=Cost(0.57, eval_s=1.63), cuda=Cost(0.0094, eval_s=0.04)),
    "pixelrnn-completion": Preset(pixelrnn_completion, cpu=Cost(0.84, eval_s=1.6), cuda=Cost(0.0274, eval_s=0.09)),
    "gated-pixelrnn-completion": Preset(gated_pixelrnn_completion, cpu=Cost(1.73, eval_s=4.94),
                                        cuda=Cost(0.039, eval_s=0.17)),
    "unet-completion": Preset(unet_completion, cpu=Cost(2.21, eval_s=6.28)),
    "mrpnet-seed": Preset(mrpnet_seed, cpu=Cost(2.52, eval_s=1.78), cuda=Cost(0.015, eval_s=0.01)),
    "pixelrnn-seed": Preset(pixelrnn_seed, cpu=Cost(10.9, eval_s=8.75), cuda=Cost(0.0483, eval_s=0.03)),
    "gated-pixelrnn-seed": Preset(gated_pixelrnn_seed, cpu=Cost(3.36, eval_s=8.47), cuda=Cost(0.0227, eval_s=0.05))}
#: Settings that change how long a run is, its seeds, hardware or folder, but not what a step costs.
COST_FREE = ("train.epochs", "train.steps_per_epoch", *RUN_COST_FREE)


def estimate_seconds(cfg: Config, cost: Cost) -> float:
    """The seconds of a whole run of ``cfg`` at ``cost`` (per step, per validation)."""
    return run_seconds(cfg.train.epochs, 1, epoch_cost(cfg, cost))


def epoch_cost(cfg: Config, cost: Cost) -> tuple[float, float]:
    """Seconds per epoch and per validation at ``cost``."""
    return cfg.train.steps_per_epoch * cost.step_s, cost.eval_s


# --- the config, resolved --------------------------------------------------------------------------------
def resolve(cfg: Config, base: Config | None = None) -> Config:
    """The config with the model's sizes and the task's noise filled in, checked (``base`` is unused).

    Raises:
        ValueError: a setting out of range, or set where it does not apply (named by its path).
    """
    data, task = cfg.data, cfg.data.task
    if task != "denoise":
        given = [name for name, changed in (("data.sigma", data.sigma != ()), ("data.noise", data.noise is not None),
                                            ("data.gray", not data.gray),
                                            ("data.sigma_draw", data.sigma_draw != "levels")) if changed]
        if given:
            raise ValueError(f"{', '.join(given)}: settings of data.task denoise (got data.task {task}); leave them "
                             "unset")
    else:
        noise = data.noise or ("amplified" if cfg.model.name == "ffdnet" else "gaussian")
        sigma = resolve_sigma(data.sigma or DEFAULT_SIGMA[noise])
        data = dataclasses.replace(data, noise=noise, sigma=sigma if isinstance(sigma, tuple) else (sigma,))
    defaults, train, model = network_defaults(cfg.model.name), cfg.train, cfg.model
    resized = min(data.resize) if data.resize else None
    given = {"lr": train.lr, "batch": train.batch, "crop": train.crop if train.crop is not None else resized,
             "width": model.width}
    unset = [key for key in DEFAULT_KEYS if given[key] is None and key not in defaults]
    if unset:
        raise ValueError(f"model.name {cfg.model.name}: its class has no train_defaults for {', '.join(unset)}; set "
                         f"{', '.join('model.width' if key == 'width' else f'train.{key}' for key in unset)}")
    value = {key: defaults[key] if given[key] is None else given[key] for key in DEFAULT_KEYS}
    train = dataclasses.replace(train, lr=value["lr"], batch=value["batch"], crop=value["crop"])
    model = dataclasses.replace(model, width=value["width"])
    cfg = dataclasses.replace(cfg, data=data, model=model, train=train)
    check_run(cfg.run)
    check_settings(settings(cfg))
    return cfg


def settings(cfg: Config) -> Settings:
    """The flat settings the training pieces read (:class:`experiments.supervised.Settings`) of a resolved config."""
    d, m, t, r = cfg.data, cfg.model, cfg.train, cfg.run
    sigma = resolve_sigma(d.sigma) if d.task == "denoise" else ()
    return Settings(model=m.name, task=d.task, data=d.data, tune_fraction=d.tune_fraction, sigma=sigma,
                    sigma_draw=d.sigma_draw, gray=d.gray, noise=d.noise, hole_loss=t.hole_loss,
                    shift_holes=d.shift_holes, flips=d.flips, prefill=d.prefill, generator=m.generator,
                    upscale=m.upscale, width=m.width, variant=m.variant, resize=tuple(d.resize), epochs=t.epochs,
                    steps_per_epoch=t.steps_per_epoch, batch=t.batch, crop=t.crop, lr=t.lr, lr_decay=t.lr_decay,
                    val_samples=d.val_samples, samples=r.samples, save_every=r.save_every)


def parse(argv: Sequence[str]) -> Config:
    """The resolved config of a command line (:func:`experiments.run_settings.parse_run`)."""
    return parse_run(Config, argv, trainer="experiments.supervised_train", presets=PRESETS, flags=FLAGS, prog=PROG,
                     check=resolve, estimate=estimate_seconds)


# --- the trainer ---------------------------------------------------------------------------------------
class SupervisedTrainer:
    """One epoch of training, the validation and the state last.pt keeps, for :class:`experiments.loop.Loop`."""

    def __init__(self, cfg: Config, run: Run, device: torch.device, ranks: Ranks):
        self.cfg, self.args, self.run, self.device, self.ranks = cfg, settings(cfg), run, device, ranks
        args = self.args
        self.use_amp = device.type == "cuda"
        self.local_batch = ranks.split(args.batch, "train.batch")
        data = open_datasets(args)
        self.train_set = data.train
        #: the split whose crops pick best.pt ("tune", or "val" without a tuning split), its crops, and the
        #: validation crops best.pt is reported on after the run (None: it picked on them)
        self.split = data.split
        self.vals = validation_sets(args, data.picking)
        self.reported = None if data.reported is None else validation_sets(args, data.reported)
        self.model = build = _network(args).to(device)
        # DistributedDataParallel under torchrun; `model` stays the network that checkpoints save and validation runs
        self.trained = wrap(build, ranks, device)
        self.optimizer = torch.optim.Adam(build.parameters(), lr=args.lr)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.rng = np.random.default_rng(cfg.run.seed)  # one seed per training batch, on every rank alike
        levels = noise_levels(args.sigma) if args.task == "denoise" else None
        self.spec = SupervisedSpec(model=args.model, task=args.task, channels=image_channels(args),
                                   prefill=args.prefill if args.task == "completion" else "none",
                                   variant=args.variant, noise=args.noise if args.task == "denoise" else None,
                                   sigma=levels[-1] if levels else None, sigmas=levels, upscale=args.upscale)

    def train(self, epoch: int, until: int) -> tuple[int, dict[str, float]]:
        """Epoch ``epoch + 1``'s batches; its mean losses and learning rate."""
        args, sums = self.args, {}
        start = time.perf_counter()
        for batch in range(args.steps_per_epoch):
            example = draw_example(args, self.train_set, int(self.rng.integers(BATCH_SEED_BOUND)),
                                   self.ranks.rows(self.local_batch), self.device)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
                pred = predict(self.trained, example, args.prefill)
            loss_values, terms = compute_loss(args, pred.float(), example)
            loss = loss_values.mean()
            if not self.use_amp and not bool(torch.isfinite(loss)):
                raise FloatingPointError(f"training diverged at epoch {epoch + 1}: loss is {float(loss)}; lower "
                                         f"train.lr (now {args.lr})")
            self.optimizer.zero_grad(set_to_none=True)
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(args, epoch * args.steps_per_epoch + batch)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            for name, value in {"loss": loss, **{k: v.mean() for k, v in terms.items()}}.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
        means = self.ranks.mean_stats({name: total / args.steps_per_epoch for name, total in sums.items()})
        return epoch + 1, {"charts/lr": self.optimizer.param_groups[0]["lr"],
                           "charts/epoch_seconds": time.perf_counter() - start,
                           **{f"losses/{k}": v for k, v in means.items()}}

    def evaluate(self, vals: Mapping[Any, Any] | None = None) -> tuple[dict[str, float], list[list[torch.Tensor]]]:
        """The scores at every level (``eval/...``) of the crops that pick best.pt (or of ``vals``) and grid rows."""
        from experiments.sigmas import level_scores

        vals = self.vals if vals is None else vals
        results = {level: evaluate(self.model, self.args, val, self.device, self.use_amp,
                                   track=lambda starts, total: self.run.track(starts, "evaluation", total=total))
                   for level, val in vals.items()}
        scores = level_scores({level: result[0] for level, result in results.items()})
        rows = sample_rows(self.args, vals, {level: result[1] for level, result in results.items()})
        return {f"eval/{k}": v for k, v in scores.items()}, rows

    def state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "np_rng": self.rng.bit_generator.state}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.use_amp and state["scaler"]:  # a CPU run saves a disabled scaler's empty state
            self.scaler.load_state_dict(state["scaler"])
        self.rng.bit_generator.state = state["np_rng"]


def _network(args: Settings) -> torch.nn.Module:
    from experiments.supervised import build_network

    return build_network(args)


class LossCurve(Callback):
    """``loss_curve.png``: the training and evaluated split's loss per epoch (from train.csv and metrics.csv)."""

    def __init__(self, title: str):
        self.title = title

    def on_evaluation(self, loop: Loop, scores: Mapping[str, float], rows: Sequence[Sequence[torch.Tensor]]) -> None:
        from experiments.runs import metric_series

        curves = {"train loss": sorted(metric_series(loop.run.dir, "losses/loss").items()),
                  f"{loop.split} loss": sorted(metric_series(loop.run.dir, "eval/loss").items())}
        save_figure(loss_curves(curves, title=self.title, ylabel="loss"), loop.run.dir / "loss_curve.png")


def use_command(args: Settings, model: Path) -> list[str]:
    """The ``rlenhance`` arguments that apply the model at ``model`` to an image."""
    if args.task == "completion":
        return ["complete", "occluded.png", "-o", "completed/", "--checkpoint", str(model)]
    verb, example, folder = ("denoise", "noisy.png", "denoised/") if args.task == "denoise" \
        else ("enhance", "photo.jpg", "enhanced/")
    registered = args.model in registry.names(args.task)
    return [verb, example, "-o", folder, *(["--model", args.model] if registered else []), "--checkpoint", str(model)]


def main(argv: Sequence[str] | None = None) -> Path:
    cfg = parse(sys.argv[1:] if argv is None else argv)
    ranks = Ranks.from_env()  # torchrun's ranks (one process without it): data-parallel, see docs/distributed.md
    device = setup_process(threads=cfg.run.threads, seed=cfg.run.seed, device=cfg.run.device, ranks=ranks)
    run = open_run(cfg, ranks, may_change=MAY_CHANGE)  # written on the first log, by rank 0
    trainer = SupervisedTrainer(cfg, run, device, ranks)
    args, model = trainer.args, trainer.model
    if not run.resuming and cfg.train.init is not None:  # a new run (or one started anew) from another's weights
        init_weights(model, cfg.train.init, trainer.spec)
        run.say(f"initialised the weights from {cfg.train.init}")

    def summary(state) -> dict[str, Any]:
        row = {"model": args.model, "task": args.task, "class": type(model).__name__,
               "params": sum(p.numel() for p in model.parameters()), "epochs": state.step,
               "best_epoch": state.best_step}
        if run.best_path.is_file():
            row.update({k.replace("eval/", f"{trainer.split}_"): v for k, v in
                        load_checkpoint(run.best_path)["extra"]["scores"].items()
                        if k.startswith("eval/") and k != "eval/seconds"})
        return row

    every = cfg.run.save_every  # checkpoints/model_epochE.pt every this many epochs E (0: never)
    loop = Loop(run, total=cfg.train.epochs, eval_every=1, unit="epoch", train=trainer.train,
                evaluate=trainer.evaluate, metric=lambda scores: -scores["eval/loss"], model=model,
                state=trainer.state, load_state=trainer.load_state,
                extra=lambda: {"spec": trainer.spec, "config": configs.to_dict(cfg)},
                callbacks=[Snapshots(lambda e: f"model_epoch{e}" if every and e % every == 0 else None),
                           SampleGrids(cfg.run.samples), LossCurve(f"{args.model} / {args.task}"),
                           preset_estimate(cfg, PRESETS, device.type, ignore=COST_FREE, check=resolve,
                                           per_step=lambda cost: epoch_cost(cfg, cost), warmup=2)],
                progress=("losses/loss", "loss"),
                summary=summary, split=trainer.split,
                report=None if trainer.reported is None else lambda: trainer.evaluate(trainer.reported))
    out = loop.fit()
    best = Path(out) / "checkpoints" / "best.pt"
    run.say(*usage_lines(best, use_command(args, best)))
    return out


if __name__ == "__main__":
    run_cli(main, PROG)
