"""The pieces of :mod:`experiments.supervised_train`: the resolved :class:`Settings`, the data and their
degradations, the networks (:mod:`rlenhance.registry`'s supervised models or a class by import path), the loss, the
validation and the sample grid rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from envs.base import episode_rows
from experiments.loop import DataSplits, check_tune_fraction
from experiments.sigmas import (
    draw_levels,
    has_real_noise,
    levels_text,
)
from rlenhance import metrics, registry
from rlenhance.checkpoint import (
    SPEC_KEY,
    SupervisedSpec,
    check_arch,
    load_checkpoint,
    load_state_dict_strict,
)
from rlenhance.data import (
    BuiltinImages,
    NoisyPairs,
    OccludedPairs,
    PairedImages,
    ResizedImages,
    add_gaussian_noise,
    amplified_noise,
    moved_occlusion,
    noise_level_map,
    open_dataset,
    random_occlusion,
    sample_batch,
    synthetic_low_light,
)
from rlenhance.errors import CheckpointError, DatasetError
from rlenhance.losses import mse_loss
from rlenhance.metrics.hole import hole_l1, hole_mse, hole_psnr
from rlenhance.models import MODELS, model_name
from rlenhance.models.ffdnet import FFDNet
from rlenhance.models.inpaint import CompletionUNet
from rlenhance.models.mrpnet import CombinedModel, MRPNet
from rlenhance.models.pixelrnn import (
    DEFAULT_SSIM_WINDOW,
    GATED_SEED_SSIM_WINDOW,
    GatedPixelRNN,
    PixelRNN,
    completion_loss,
    composite,
    mse_ssim_loss,
)
from rlenhance.ops.fill import prefill_hole
from rlenhance.plugins import is_import_path
from rlenhance.runtime import check_memory

#: Synthetic holes (completion without data): boxes.
OCCLUSION = "box"
#: --noise unset: FFDNet's (it reads the map of amplified noise), else the DnCNN / PixelRL protocol.
#: --sigma unset, per noise: the Gaussian's level, or the largest dark-level one (amplified).
DEFAULT_SIGMA: Mapping[str, float] = MappingProxyType({"gaussian": 25.0, "amplified": 10.0})
#: FFDNet's convolution layers: the published gray FFDNet's.
FFDNET_DEPTH = 15
#: Fraction of the images (scenes) held out for validation (best.pt is reported on it).
VAL_FRACTION = 0.1
#: Seed of the validation crops and degradations: fixed, so every run and seed scores the same set.
VAL_SEED = 20_240_601
#: Training batch seeds are drawn below this (the run's generator draws one per batch).
BATCH_SEED_BOUND = 2**62
#: The smallest crop: the SSIM window (11x11) must fit.
MIN_CROP = 16
#: ``train.hole_loss psnr``: the floor added to each hole MSE before its log (a 50 dB hole counts as perfect).
HOLE_MSE_FLOOR = 1e-5
#: What a network's ``train_defaults`` give (``Settings`` names).
DEFAULT_KEYS = ("lr", "batch", "crop", "width")


def network_class(name: str) -> type[nn.Module]:
    """The network class of ``model.name`` (:data:`rlenhance.models.MODELS`' by ``model_name``, or an import path).

    Raises:
        ValueError: another name (the accepted ones are listed), or a path that names no network class.
    """
    if is_import_path(name):
        try:
            return MODELS.get(name)
        except ValueError as exc:
            raise ValueError(f"model.name: {exc}") from None
    names = registry.supervised_models()
    found = [cls for _, cls in MODELS.items() if model_name(cls) == name] if name in names else []
    if not found:
        raise ValueError(f"model.name {name!r}: expected one of {', '.join(names)}, or a network class of your own "
                         "by import path 'package.module:Class' (docs/api.md)")
    return found[0]


def network_defaults(name: str) -> Mapping[str, float]:
    """``model.name``'s ``train_defaults``: the settings (:data:`DEFAULT_KEYS`) a run leaves unset take them."""
    return getattr(network_class(name), "train_defaults", {})


@dataclass(frozen=True)
class Settings:
    """A run's flat settings (:mod:`experiments.supervised_train`'s config says what each means), resolved."""

    model: str
    task: str
    data: str | None
    tune_fraction: float
    sigma: float | tuple[float, ...]
    sigma_draw: str
    gray: bool
    noise: str | None
    hole_loss: str
    shift_holes: bool
    flips: str
    prefill: str
    generator: bool
    upscale: int
    width: int
    variant: str
    resize: tuple[int, ...]
    epochs: int
    steps_per_epoch: int
    batch: int
    crop: int
    lr: float
    lr_decay: str
    val_samples: int
    samples: int
    save_every: int

    @property
    def ssim_window(self) -> int:
        """Gaussian taps of the loss's SSIM: the gated seed's 7 for gated-pixelrnn ``variant seed``, else 11."""
        return GATED_SEED_SSIM_WINDOW if self.gated_seed else DEFAULT_SSIM_WINDOW

    @property
    def mask_rule(self) -> str:
        """How training masks come from occluded pairs: the gated seed's channel-sum rule, else ``estimate``."""
        return "channel-sum" if self.gated_seed else "estimate"

    @property
    def gated_seed(self) -> bool:
        return self.model == "gated-pixelrnn" and self.variant == "seed"


class Example(NamedTuple):
    """A batch ready for a model: ``input`` and ``target`` float (B, C, H, W); ``mask`` (B, 1, H, W), 1 = missing
    (completion, else None); ``noise_map`` (B, C, H, W), each pixel's noise level in image units (or None)."""

    input: Tensor
    target: Tensor
    mask: Tensor | None
    noise_map: Tensor | None = None


def check_settings(args: Settings) -> None:
    """Raise ValueError naming (by config path) the first setting out of range or set where it does not apply."""
    model, task = f"model.name {args.model}", f"data.task {args.task}"
    if args.upscale != 1:
        if args.model != "mrpnet" or not args.generator or args.task != "lowlight" or args.resize:
            raise ValueError(f"model.upscale {args.upscale}: the Generator's super-resolution; a setting of model.name "
                             f"mrpnet with the Generator and data.task lowlight without data.resize (got {model}, "
                             f"model.generator {args.generator}, {task}, data.resize {list(args.resize)})")
        if args.crop % args.upscale:
            raise ValueError(f"train.crop {args.crop}: with model.upscale {args.upscale} the target's crop must be a "
                             f"multiple of {args.upscale} (the input's crop is train.crop / {args.upscale})")
    if not args.generator and args.model != "mrpnet":
        raise ValueError(f"model.generator false: the Generator follows MRPNet only (got {model})")
    if args.model == "ffdnet" and (args.task != "denoise" or args.variant != "default"):
        raise ValueError(f"model.name ffdnet reads a noise-level map: it trains on data.task denoise with "
                         f"model.variant default only (got {task}, model.variant {args.variant})")
    if args.task != "denoise":
        return _check_sizes(args)
    if args.sigma_draw != "levels" and (args.noise != "gaussian" or not isinstance(args.sigma, tuple)):
        raise ValueError(f"data.sigma_draw {args.sigma_draw}: draws each crop's Gaussian level from the range of "
                         f"several data.sigma levels; a setting of data.noise gaussian with two levels or more (got "
                         f"data.noise {args.noise}, data.sigma {levels_text(args.sigma)})")
    if args.noise == "amplified" and isinstance(args.sigma, tuple):
        raise ValueError(f"data.sigma {levels_text(args.sigma)}: data.noise amplified draws each image's level from "
                         "[0, sigma]; give one level (several Gaussian levels: data.noise gaussian)")
    if args.noise == "amplified" and not args.sigma > 0:
        raise ValueError(f"data.noise amplified: needs a data.sigma > 0 (got {args.sigma})")
    _check_sizes(args)


def _check_sizes(args: Settings) -> None:
    check_memory(args.batch * image_channels(args) * args.crop**2 * 4,
                 f"train.batch {args.batch:,} of {args.crop} px crops: the batch's float32 targets alone",
                 "a smaller train.batch or train.crop")
    if getattr(network_class(args.model), "reads_mask", False) and args.task != "completion":
        raise ValueError(f"model.name {args.model} reads an image and its mask; it trains on data.task completion "
                         f"only (got data.task {args.task})")
    if args.task != "completion" and (args.prefill != "diffusion" or args.shift_holes):
        raise ValueError(f"data.prefill / data.shift_holes: settings of data.task completion (got data.task "
                         f"{args.task}); leave them unset")
    if args.hole_loss != "mse" and args.model != "unet":
        raise ValueError(f"train.hole_loss {args.hole_loss}: the loss of the completion U-Net's holes; a setting of "
                         f"model.name unet (got model.name {args.model})")
    if args.shift_holes and args.data is None:
        raise ValueError("data.shift_holes moves the holes of occluded / original pairs: a setting of data.task "
                         "completion with data.data (without it every hole is drawn at random already)")
    for name in ("epochs", "steps_per_epoch", "batch", "width", "val_samples"):
        if getattr(args, name) < 1:
            raise ValueError(f"{name} {getattr(args, name)}: expected an integer >= 1")
    if args.resize and (len(args.resize) > 2 or min(args.resize) < MIN_CROP):
        raise ValueError(f"data.resize {' '.join(map(str, args.resize))}: expected H or H W, integers >= {MIN_CROP}")
    if args.crop < MIN_CROP:
        raise ValueError(f"train.crop {args.crop}: expected at least {MIN_CROP} (the 11x11 SSIM window must fit)")
    if args.resize and args.crop > min(args.resize):
        raise ValueError(f"train.crop {args.crop} does not fit the images resized to {args.resize[0]}x"
                         f"{args.resize[-1]}; give a crop of at most {min(args.resize)}")
    if args.variant != "default" and args.model not in ("pixelrnn", "gated-pixelrnn"):
        raise ValueError(f"model.variant {args.variant}: only pixelrnn and gated-pixelrnn have a seed variant; "
                         f"{args.model} takes model.variant default")
    check_tune_fraction(args.tune_fraction, "data.tune_fraction")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"train.lr {args.lr}: expected a finite number > 0")


# --- data -------------------------------------------------------------------------------------
def image_channels(args: Settings) -> int:
    """Planes the network reads and writes: 1 for gray denoising (``data.gray``), else 3 (RGB)."""
    return 1 if args.task == "denoise" and args.gray else 3


def open_datasets(args: Settings) -> DataSplits:
    """The train, tune and val datasets (by scene, seed 0), resized to ``data.resize`` if given."""
    parts = _open_datasets(args)
    if args.resize:
        size = (args.resize[0], args.resize[-1])
        parts = DataSplits(*(None if part is None else ResizedImages(part, size=size) for part in parts))
    return parts


def _open_datasets(args: Settings) -> DataSplits:
    gray = image_channels(args) == 1
    names = ("train", "tune", "val") if args.tune_fraction else ("train", "val")
    split = dict(val_fraction=VAL_FRACTION, tune_fraction=args.tune_fraction)
    if args.data is None:
        return DataSplits(**{name: BuiltinImages(split=name, gray=gray, **split) if name in names else None
                             for name in ("train", "tune", "val")})
    root = Path(args.data)
    if not root.is_dir():
        raise DatasetError(f"--data {root}: not a folder")
    if args.task == "lowlight":  # model.upscale: targets UPSCALE times the inputs (the seed's), or of their size
        opener = lambda name: PairedImages(root, split=name, scale=None if args.upscale > 1 else 1,  # noqa: E731
                                           **split)
    elif args.task == "completion":  # validation scores the estimated hole whatever the training masks
        opener = lambda name: OccludedPairs(root, split=name,  # noqa: E731
                                            mask_rule=args.mask_rule if name == "train" else "estimate", **split)
    else:  # denoise: real noisy / clean pairs (NoisyPairs), else clean images; split seed 0 as the other tasks'
        opener = lambda name: open_dataset(root, kind="clean", split=name, gray=gray, seed=0, **split)  # noqa: E731
    parts = DataSplits(**{name: opener(name) if name in names else None for name in ("train", "tune", "val")})
    if args.task == "lowlight":
        scales = {part.scale for part in parts if part is not None}
        if scales - {1, args.upscale}:
            raise DatasetError(f"--data {root}: its high images are {max(scales)} times the low ones; model.upscale "
                               f"{args.upscale} reads pairs of one size (inputs area-downscaled) or with targets "
                               f"{args.upscale} times the inputs")
        return parts
    if isinstance(parts.train, NoisyPairs) and args.noise == "amplified":
        raise ValueError(f"--data {root}: real noisy / clean pairs, but data.noise amplified draws its own noise (and "
                         "noise map) on clean images; give a folder of clean images, or data.noise gaussian (real "
                         "pairs are then used as they are)")
    if isinstance(parts.train, NoisyPairs) and args.model == "ffdnet":
        raise ValueError(f"--data {root}: real noisy / clean pairs, whose noise has no known level map, which --model "
                         "ffdnet reads; give a folder of clean images (synthetic noise of known level), or train "
                         "a blind model (--model mrpnet) on the pairs")
    return parts


def make_example(args: Settings, batch: Mapping[str, Any], generator: torch.Generator | Sequence[torch.Generator],
                 device: torch.device) -> Example:
    """Turn a batch of dataset crops into an :class:`Example`, degrading clean images when needed; every draw comes
    from ``generator`` (CPU: one for the batch, or one per crop)."""
    if args.task == "completion":
        if "occluded" in batch and args.shift_holes:
            original = batch["original"].to(device)
            occluded, mask = moved_occlusion(original, batch["mask"].to(device), generator=generator)
            return Example(occluded, original, mask)
        if "occluded" in batch:
            return Example(batch["occluded"].to(device), batch["original"].to(device), batch["mask"].to(device))
        clean = batch["high"].to(device)
        occluded, mask = random_occlusion(clean, generator=generator, kind=OCCLUSION)
        return Example(occluded, clean, mask)
    if args.task == "lowlight":
        if "low" in batch and "high" in batch:
            return at_input_size(Example(batch["low"].to(device), batch["high"].to(device), None), args.upscale)
        clean = batch["high"].to(device)
        return at_input_size(Example(synthetic_low_light(clean, generator=generator), clean, None), args.upscale)
    if "noisy" in batch:  # real noisy / clean pairs (NoisyPairs): their own noise
        return Example(batch["noisy"].to(device), batch["clean"].to(device), None)
    clean = (batch["high"] if "high" in batch else batch["low"]).to(device)
    if args.noise == "amplified":
        noisy, target, noise_map = amplified_noise(clean, args.sigma, generator=generator)
        return Example(noisy, target, None, noise_map)
    # several levels: one per crop (blind, but for ffdnet, which reads each crop's level as its map)
    sigma = draw_levels(args.sigma, clean.shape[0], generator, draw=args.sigma_draw)
    noise_map = noise_level_map(clean.new_ones(()), sigma).expand_as(clean) if args.model == "ffdnet" else None
    return Example(add_gaussian_noise(clean, sigma, generator=generator), clean, None, noise_map)


def at_input_size(example: Example, upscale: int) -> Example:
    """``example`` with an input of the target's size area-downscaled by ``upscale`` (a smaller one is kept)."""
    if upscale == 1 or example.input.shape[-2:] != example.target.shape[-2:]:
        return example
    return example._replace(input=F.avg_pool2d(example.input, upscale))


def draw_example(args: Settings, dataset, seed: int, rows: slice, device: torch.device) -> Example:
    """Rows ``rows`` (e.g. a rank's) of a training batch drawn with ``seed``, as an :class:`Example` on ``device``:
    row i's draws come from (``seed``, i) alone (:func:`envs.base.episode_rows`), as in one process's whole batch."""
    parts = episode_rows(seed, range(rows.start, rows.stop), "cpu")
    drawn = sample_batch(dataset, len(parts), crop=crop_of(args, dataset), rng=[row.rng for row in parts],
                         vertical_flip=args.flips == "both")
    return make_example(args, drawn, [row.generator for row in parts], device)


def crop_of(args: Settings, dataset) -> int:
    """The crop drawn from ``dataset``'s items: ``--crop`` over the pairs' scale (:attr:`PairedImages.scale`)."""
    return args.crop // getattr(dataset, "scale", 1)


def validation_set(args: Settings, dataset) -> Example:
    """``val_samples`` fixed crops spread over the validation images, degraded with a fixed seed (CPU tensors)."""
    batch = sample_batch(dataset, args.val_samples, crop=crop_of(args, dataset), rng=np.random.default_rng(VAL_SEED),
                         flip=False, spread=True)
    fixed = replace(args, shift_holes=False)  # the pairs' own holes, whatever the training examples get
    return make_example(fixed, batch, torch.Generator().manual_seed(VAL_SEED), torch.device("cpu"))


def validation_sets(args: Settings, dataset) -> dict[float | None, Example]:
    """``{sigma: crops}`` (:func:`validation_set`) at each level of a blind Gaussian denoiser, else ``{None: ...}``."""
    if args.task == "denoise" and isinstance(args.sigma, tuple) and not has_real_noise(dataset):
        return {sigma: validation_set(replace(args, sigma=sigma), dataset) for sigma in args.sigma}
    return {None: validation_set(args, dataset)}


def learning_rate(args: Settings, step: int) -> float:
    """The learning rate of training batch ``step`` (0-based, over the run): ``--lr``, or with ``train.lr_decay
    cosine`` ``lr (1 + cos(pi step / total)) / 2`` over the run's ``total`` batches."""
    if args.lr_decay == "none":
        return args.lr
    return args.lr * 0.5 * (1.0 + math.cos(math.pi * step / (args.epochs * args.steps_per_epoch)))


# --- model, forward pass and loss ---------------------------------------------------------------------
def init_weights(model: nn.Module, path: str, spec: SupervisedSpec) -> None:
    """Load the weights, and only them, of the checkpoint ``path`` into ``model`` (``--init``).

    Raises:
        CheckpointError: not a readable supervised checkpoint, or one of another network shape (a narrower U-Net is
            widened instead) or spec.
    """
    try:
        ckpt = load_checkpoint(path, spec=SupervisedSpec)
        # a narrower U-Net's weights are embedded in the wider one (CompletionUNet.widen_from)
        widen = isinstance(model, CompletionUNet) and model.embeds(ckpt["arch"])
        if not widen:
            check_arch(ckpt["arch"], model.arch(), source=f"checkpoint {path}")
    except CheckpointError as exc:
        raise CheckpointError(f"--init: {exc}; --init takes a checkpoint of experiments.supervised_train with this "
                              "run's --model, --task and shape (--width, model.upscale, model.generator, ...)"
                              ) from None
    theirs = ckpt["extra"][SPEC_KEY]
    differ = [f"{f.name} {getattr(theirs, f.name)!r} (this run: {getattr(spec, f.name)!r})" for f in fields(spec)
              if getattr(theirs, f.name) != getattr(spec, f.name)]
    if differ:
        raise CheckpointError(f"--init {path}: a checkpoint of another kind of run: " + "; ".join(differ)
                              + "; --init takes a checkpoint of the same --model, --task and settings as this run")
    if widen:
        try:
            model.widen_from(ckpt["state_dict"], ckpt["arch"]["kwargs"]["width"])
        except ValueError as exc:
            raise CheckpointError(f"--init {path}: {exc}") from None
    else:
        load_state_dict_strict(model, ckpt["state_dict"], source=f"--init {path}")


def build_network(args: Settings) -> nn.Module:
    channels = image_channels(args)
    if is_import_path(args.model):
        return network_class(args.model)(channels, width=args.width)
    if args.model == "mrpnet":
        return CombinedModel(channels, width=args.width, upscale=args.upscale) if args.generator \
            else MRPNet(channels, width=args.width)
    if args.model == "pixelrnn":
        return PixelRNN(channels, width=args.width, variant=args.variant)
    if args.model == "ffdnet":
        return FFDNet(channels, width=args.width, depth=FFDNET_DEPTH)
    if args.model == "unet":
        return CompletionUNet(channels, width=args.width)
    return GatedPixelRNN(channels, width=args.width, variant=args.variant)


def predict(model: nn.Module, example: Example, prefill: str) -> Tensor:
    """The model's raw prediction (completion: the hole pre-filled first; networks that read them get the mask or the
    noise-level map)."""
    x = example.input if example.mask is None else prefill_hole(example.input, example.mask, prefill)
    net = getattr(model, "module", model)  # the network inside DistributedDataParallel
    if getattr(net, "reads_mask", False):
        return model(x, example.mask)
    if getattr(net, "reads_noise_map", False):
        return model(x, example.noise_map)
    return model(x)


def compute_loss(args: Settings, pred: Tensor, example: Example) -> tuple[Tensor, dict[str, Tensor]]:
    """The model's training loss per image (B,) and its unweighted terms (each (B,))."""
    if args.model == "gated-pixelrnn":
        return completion_loss(pred, example.target, example.input, example.mask, ssim_window=args.ssim_window,
                               return_terms=True)
    if args.model == "pixelrnn":
        return mse_ssim_loss(pred, example.target, ssim_window=args.ssim_window, return_terms=True)
    if args.model == "unet":
        mse = hole_mse(pred, example.target, example.mask)
        if args.hole_loss == "psnr":
            return 10.0 * torch.log10(mse + HOLE_MSE_FLOOR), {"hole_mse": mse}
        return mse, {"hole_mse": mse}
    mse = mse_loss(pred, example.target)
    return mse, {"mse": mse}


def final_output(pred: Tensor, example: Example) -> Tensor:
    """What a user gets: the prediction clamped to [0, 1], composited with the known pixels for completion."""
    pred = pred.clamp(0.0, 1.0)
    return composite(example.input, pred, example.mask) if example.mask is not None else pred


@torch.no_grad()
def evaluate(model: nn.Module, args: Settings, val: Example, device: torch.device, use_amp: bool,
             track: Callable[[Iterable[int], int], Iterable[int]] = lambda starts, total: starts
             ) -> tuple[dict[str, float], Tensor]:
    """Validation loss and metrics (per-image means) and the outputs (CPU); ``track`` wraps the batch loop."""
    model.eval()
    per_image: dict[str, list[Tensor]] = {}
    outputs = []
    starts = range(0, val.input.shape[0], args.batch)
    for start in track(starts, len(starts)):
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


def sample_rows(args: Settings, vals: Mapping[Any, Example], outputs: Mapping[Any, Tensor]) -> list[list[Tensor]]:
    """The sample grid's first ``run.samples`` rows (input | output | reference), each crop at every level in turn."""
    level_rows = []
    for level, val in vals.items():
        shown, out = val.input[:args.samples], outputs[level]
        shown = F.interpolate(shown, size=val.target.shape[-2:], mode="nearest") if args.upscale > 1 else shown
        level_rows.append([[shown[i], out[i], val.target[i]] for i in range(min(args.samples, len(out)))])
    return [row for rows in zip(*level_rows) for row in rows][:args.samples]
