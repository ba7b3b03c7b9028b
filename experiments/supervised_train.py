"""Train a supervised baseline: MRPNet + Generator, the ConvLSTM PixelRNN, the gated PixelRNN, FFDNet or the
completion U-Net.

    python -m experiments.supervised_train                      # MRPNet+Generator, embedded photos darkened
    python -m experiments.supervised_train --model mrpnet --task lowlight --data ../shared/data/sice_pairs/train
    python -m experiments.supervised_train --model mrpnet --task denoise --data ../shared/data/bsd/train432 --sigma 25
    python -m experiments.supervised_train --model ffdnet --task denoise --sigma 10   # ReLLIE's noise-map denoiser
    python -m experiments.supervised_train --model ffdnet --task denoise --noise gaussian --sigma 0 15 25 50 75 \
        --sigma-draw uniform                              # FFDNet's own: any level in [0, 75], its map given
    python -m experiments.supervised_train --task denoise --no-gray --sigma 5 15 25 35 50   # a blind colour denoiser
    python -m experiments.supervised_train --model pixelrnn --task completion --data ../shared/data/bedroom/train
    python -m experiments.supervised_train --model gated-pixelrnn --task completion --data ../shared/data/bedroom/train
    python -m experiments.supervised_train --model unet --task completion --data ../shared/data/bedroom/train \
        --shift-holes                                     # holes moved around each original
    python -m experiments.supervised_train --out runs/supervised_train --resume     # continue a killed run
    python -m experiments.supervised_train --data archive/train --upscale 4   # the MRPNet seed: 4x targets in gt/
    python -m experiments.supervised_train --init runs/a/checkpoints/best.pt --out runs/b   # fine-tune run a

Without ``--data`` the clean images are scikit-image's photos (:class:`rlenhance.data.BuiltinImages`),
degraded on the fly by :func:`~rlenhance.data.synthetic_low_light`, :func:`~rlenhance.data.add_gaussian_noise`
or :func:`~rlenhance.data.random_occlusion`, so it runs with no data at all. Denoising is on gray images
(the DnCNN / PixelRL protocol: noise of ``--sigma`` on the 0-255 scale, not clipped), or RGB with
``--no-gray`` (a network of 3 input and output planes). Several ``--sigma`` levels train a blind
denoiser (:mod:`experiments.sigmas`): each training crop draws one, the network is given none, and
the validation crops are scored at every level (``val_psnr_sigma15`` ... next to the mean over the
levels, ``val_psnr``; the mean ``val_loss`` picks best.pt); ``--sigma-draw uniform`` draws each
crop's level from the levels' whole range instead (FFDNet's protocol, sigma uniform in [0, 75]:
``--sigma 0 15 25 50 75 --sigma-draw uniform``; the levels are still the ones validated). An
``ffdnet`` on Gaussian noise is not blind: it reads each crop's own constant noise-level map,
``sigma / 255`` (:func:`~rlenhance.data.noise_level_map` of a unit gain), and is validated with
the map of the true level; at inference :func:`rlenhance.load_denoiser` (``rlenhance denoise
--model ffdnet [--sigma S]``) gives it the map of a level, or of the level it estimates in each
image. ``--noise amplified`` (ReLLIE's setting, :func:`~rlenhance.data.amplified_noise`) denoises
what follows the RL policy instead: each clean image darkened, given dark-level noise of a level
drawn from [0, ``--sigma``], brightened by random, spatially varying LE curves, with the target
the same curves on the noise-free dark image and a noise-level map ``sigma / 255 * enhanced / input``.

Models and losses (the seeds' choices; ``--lr/--batch/--crop/--width`` default to them):

==============  ====================================  ==============================================  ====  =====  ====
--model         network                               loss                                            lr    batch  crop
==============  ====================================  ==============================================  ====  =====  ====
mrpnet          CombinedModel (MRPNet -> Generator)   MSE                                             1e-4  16     128
pixelrnn        PixelRNN (encoder-ConvLSTM-decoder)   0.8 MSE + 0.2 (1 - SSIM)                        1e-3  16     224
gated-pixelrnn  GatedPixelRNN (RGB + mask)            0.8 L1 in the hole + 0.2 (1 - SSIM) composite   1e-4  4      224
ffdnet          FFDNet (image + noise-level map)      MSE                                             1e-3  16     64
unet            CompletionUNet (RGB + mask, coarse)   MSE in the hole (``--hole-loss psnr``: -PSNR)   1e-3  16     224
==============  ====================================  ==============================================  ====  =====  ====

``gated-pixelrnn`` and ``unet`` need the mask, so they train on ``--task completion`` only; ``ffdnet`` needs the
noise-level map, so it trains on ``--task denoise`` with synthetic noise only (``--noise amplified``,
its default, or ``gaussian``; not on real noisy pairs, which come with no map; its ``--depth``: 15
layers unset, the published gray model); the others train on any task. The checkpoint's
:class:`~rlenhance.checkpoint.SupervisedSpec` records the model, ``channels``, ``noise`` and the levels
(``sigma``, ``sigmas``), so
:class:`rlenhance.Enhancer` (``rlenhance enhance --denoiser``) feeds an FFDNet its map and a plain
denoiser none. For completion the output shown and scored is the composite ``occluded (1 - mask) + pred mask``,
and the hole-only PSNR / L1 are reported next to the whole-image PSNR / SSIM.

The seeds' own settings, each an option (see docs/seeds.md for what each measured):

- ``--variant seed``: the seed's architecture (pixelrnn: a 5x5 first encoder conv; gated-pixelrnn: a
  7x7 input conv without ReLU, a global input skip, a conv -> 32 -> ReLU -> 1x1 head, Xavier init;
  :mod:`rlenhance.models.pixelrnn`). Checkpoints record it, so inference rebuilds the same net.
- ``--ssim-window N``: the Gaussian taps of the loss's SSIM (sigma 1.5). Unset: 11 (PIQ's SSIM,
  the ConvLSTM seed's); gated-pixelrnn ``--variant seed``: 7 (the gated seed's).
- ``--mask-rule``: how the training masks come from ``--data`` pairs: ``estimate`` (the hole found by
  :func:`~rlenhance.data.estimate_occlusion_mask`) or ``channel-sum`` (the gated seed's
  ``sum_c |original - occluded| > 0.03``, JPEG noise included). Unset: ``estimate``; gated-pixelrnn
  ``--variant seed``: ``channel-sum``. Validation always scores the estimated hole, so runs compare.
- ``--resize H [W]``: every training and validation image resized to H x W before cropping (bilinear
  with antialiasing, :class:`~rlenhance.data.ResizedImages`; a mask, found at the native size,
  then covers every pixel the hole's black blends into), as the seeds did (256 for pixelrnn, 128
  for gated-pixelrnn). An unset ``--crop`` is then the resized shorter side. Hole metrics of runs
  at different sizes are not comparable.
- ``--shift-holes`` (completion with ``--data``): each training pair's hole is moved to a random place
  of its original (:func:`~rlenhance.data.moved_occlusion`), so every photo is seen with holes
  everywhere instead of the one its file has (validation keeps the files' holes).
- ``--hole-loss psnr`` (unet): each image's loss is minus its hole PSNR, ``10 log10(hole MSE + 1e-5)``,
  instead of the hole MSE. The mean hole PSNR that compare reports weighs each image by its relative
  error; the MSE weighs the badly missed holes (MSE 0.07 at 11.5 dB) about 70 times more than the nearly
  right ones on plain walls (0.001 at 30 dB), so an MSE-trained net neglects the images that PSNR
  rewards most. The loss is the metric's, per image.
- ``--flips horizontal``: training crops are flipped left-right only (unset: ``both``, left-right and
  up-down, each with p = 0.5). Photos of rooms have an up: a net that never sees them upside down may
  learn that a hole near the top is wall or ceiling. Its self-ensemble is then best over the same
  flips: the shipped completion U-Net scores 18.24 dB with ``--ensemble 2`` (the identity and the
  left-right flip), 18.22 with ``--ensemble 4``, whose half turn and up-down flip it was not trained on.
- ``--save-every N``: also ``checkpoints/model_epoch{N}.pt`` every N epochs (the gated seed saved
  every 5), in the format of best.pt, so each loads for inference.
- ``--upscale 2|4`` (mrpnet with the Generator, lowlight): the MRPNet seed's Generator upscales 4x
  (its 9x9 head at stride 1, then two PixelShuffle(2) stages); unset: 1, the head at stride 4 so
  the output has the input's size. ``--crop`` is the target's size. ``--data`` pairs whose ``high``
  images are ``UPSCALE`` times the ``low`` ones (the seed's ``train/`` + ``gt/`` layout, read by
  :class:`~rlenhance.data.PairedImages`) are used as they are; same-size pairs and synthetic
  degradations get their inputs area-downscaled. The spec records ``upscale``, so
  ``rlenhance enhance --model mrpnet`` writes outputs that many times larger; ``rlenhance
  export-csv`` turns them into the seed's competition CSV (:mod:`rlenhance.submission`).
- ``--init CHECKPOINT``: start from another run's weights (the seed resumed from a saved
  ``best_model.pth`` to fine-tune): weights only, with a new optimizer, epoch count and random
  state; the checkpoint must have this run's network (``--width``, ``--upscale``, ...) and spec
  (``--model``, ``--task``, ...), except that a ``--model unet`` run takes a U-Net of a smaller
  ``--width`` too, embedded so that the wider net starts out computing what it did
  (:meth:`~rlenhance.models.inpaint.CompletionUNet.widen_from`; the shipped ``unet_completion.pt``
  is width 64, grown from width 32 through 48). Not with ``--resume``, which continues a run; config.json records it.

An epoch is ``--steps-per-epoch`` batches of random crops (drawn with replacement), then a validation
pass over ``--val-samples`` fixed crops of the held-out images, spread evenly over them (the same crops
and degradations in every epoch and every run; ``--val-samples`` >= the number of held-out images scores
each of them). Adam runs at ``--lr``, or with ``--lr-decay cosine`` at a rate that falls from ``--lr``
to 0 over the run's batches (:func:`learning_rate`). The run folder (``--out``, see
:mod:`experiments.runs`) gets config.json (the resolved arguments), TensorBoard events and metrics.csv,
``train_log.tsv`` (one row per epoch: epoch, lr, each training loss term, the validation loss and
metrics), ``loss_curve.png``, sample grids ``samples/epoch_NNNN.png`` (input | output | reference),
``checkpoints/best.pt`` (lowest validation loss), ``checkpoints/last.pt`` (every epoch, with the
optimizer and RNG states), with ``--save-every N`` ``checkpoints/model_epochE.pt`` (every N-th epoch E),
and summary.md. Ctrl-C (SIGINT) or SIGTERM saves last.pt before the next batch (with the batches done of
the current epoch) and exits with code 130 / 143. ``--resume`` continues from last.pt with the saved
arguments to the same total epochs (``--epochs`` may be given to change the total,
``--device``/``--threads`` to move the run, ``--save-every`` to change the snapshots); the result equals
that of an uninterrupted run. A ``--resume`` that finds config.json but no last.pt (the run stopped
before its first epoch ended) starts the run anew with the saved arguments; one on a finished run
changes nothing. Mixed precision (``torch.autocast`` float16 with a gradient scaler) is used on CUDA and
is a no-op on CPU. Under ``torchrun --nproc_per_node N`` the model trains in DistributedDataParallel
(batch norm over the global batch), each rank on its ``--batch / N`` rows of the global batch, drawing
only those: each batch takes one seed, and global row i's item, crop, flips and degradation come from
generators seeded from (that seed, i) (:func:`draw_example`), so the ranks' rows are those of one
process drawing the whole batch; rank 0 validates and writes the run folder (docs/distributed.md).
"""

from __future__ import annotations

import csv
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
import torch.nn.functional as F
from torch import Tensor, nn

from agents.distributed import Ranks, wrap
from envs.base import episode_rows
from experiments.plots import loss_curves, save_figure
from experiments.runs import (
    Run,
    StopSignals,
    arg,
    given_flags,
    parse_config,
    read_config,
    run_cli,
    setup_process,
    trainer_name,
)
from experiments.sigmas import (
    SIGMA_DRAWS,
    SIGMA_HELP,
    draw_levels,
    has_real_noise,
    level_scores,
    levels_text,
    noise_levels,
    resolve_sigma,
)
from rlenhance import metrics
from rlenhance.atomic import atomic_path
from rlenhance.checkpoint import (
    MASKED_MODELS,
    NOISE_KINDS,
    SPEC_KEY,
    SupervisedSpec,
    check_arch,
    load_checkpoint,
    load_state_dict_strict,
)
from rlenhance.data import (
    DEFAULT_COLOR_IMAGES,
    DEFAULT_GRAY_IMAGES,
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
    split_names,
    synthetic_low_light,
)
from rlenhance.data.occluded import MASK_RULES
from rlenhance.errors import CheckpointError, DatasetError
from rlenhance.losses import mse_loss
from rlenhance.models.ffdnet import FFDNet
from rlenhance.models.inpaint import CompletionUNet
from rlenhance.models.mrpnet import UPSCALES as MRPNET_UPSCALES
from rlenhance.models.mrpnet import CombinedModel, MRPNet
from rlenhance.models.pixelrnn import (
    DEFAULT_SSIM_WINDOW,
    GATED_SEED_SSIM_WINDOW,
    VARIANTS,
    GatedPixelRNN,
    PixelRNN,
    completion_loss,
    composite,
    hole_l1,
    hole_mse,
    hole_psnr,
    mse_ssim_loss,
)
from rlenhance.ops.fill import PREFILLS, prefill_hole

MODEL_CHOICES = ("mrpnet", "pixelrnn", "gated-pixelrnn", "ffdnet", "unet")
TASKS = ("lowlight", "denoise", "completion")
OCCLUSIONS = ("box", "stroke", "mixed")
#: --noise unset: FFDNet's (it reads the map of amplified noise), else the DnCNN / PixelRL protocol.
#: --sigma unset, per noise: the Gaussian's level, or the largest dark-level one (amplified).
DEFAULT_SIGMA: Mapping[str, float] = MappingProxyType({"gaussian": 25.0, "amplified": 10.0})
#: --depth unset for ffdnet: the published gray FFDNet's convolution layers.
FFDNET_DEPTH = 15
#: Seed of the validation crops and degradations: fixed, so every run and seed scores the same set.
VAL_SEED = 20_240_601
#: Training batch seeds are drawn below this (the run's generator draws one per batch).
BATCH_SEED_BOUND = 2**62
#: Arguments that --resume takes from the command line; the others come from the run's config.json.
RESUME_OVERRIDES = ("epochs", "device", "threads", "save_every", "out", "resume")
#: The smallest crop: the SSIM window (11x11) must fit.
MIN_CROP = 16
#: ``--lr-decay``: the learning-rate schedules (:func:`learning_rate`).
LR_DECAYS = ("none", "cosine")
#: ``--hole-loss``: the U-Net's loss on each image's hole MSE (:func:`compute_loss`).
HOLE_LOSSES = ("mse", "psnr")
#: ``--hole-loss psnr``: the floor added to each hole MSE before its log (a 50 dB hole counts as perfect).
HOLE_MSE_FLOOR = 1e-5
#: ``--flips``: the training crops' random flips (:func:`~rlenhance.data.random_flip`).
FLIPS = ("both", "horizontal")


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
    # FFDNet trained with Adam at 1e-3 on small gray patches (50x50 at batch 128 in the paper).
    "ffdnet": Defaults(lr=1e-3, batch=16, crop=64, width=64),
    # Ours (rlenhance.models.inpaint): whole bedroom photos, as the PixelRNNs.
    "unet": Defaults(lr=1e-3, batch=16, crop=224, width=32),
})


@dataclass
class Args:
    """Train a supervised baseline (MRPNet + Generator, ConvLSTM PixelRNN, gated PixelRNN, FFDNet, completion U-Net)."""

    model: str = arg("mrpnet", "network: MRPNet + Generator, ConvLSTM PixelRNN, gated PixelRNN (RGB + mask), "
                               "FFDNet (image + noise-level map: ReLLIE's denoiser, --task denoise), or the coarse "
                               "completion U-Net (RGB + mask, --task completion)",
                     choices=MODEL_CHOICES)
    task: str = arg("lowlight", "what to restore (gated-pixelrnn, unet: completion only)", choices=TASKS)
    data: str | None = arg(None, "lowlight: a low/+high/ pair folder, a LOL parent (split by scene) or the MRPNet "
                                 "seed's train/+gt/ folder or its parent (PairedImages); denoise: a "
                                 "folder of clean images (read as gray; --no-gray: RGB), or of real noisy / clean "
                                 "pairs (noisy/ + clean/, or SIDD's scene folders), whose noisy images are used as "
                                 "they are (real noise; --noise gaussian); completion: occluded_images/+"
                                 "original_images/. Default: scikit-image photos degraded synthetically")
    sigma: tuple[float, ...] = arg((), "denoise: noise level: the Gaussian's standard deviation, or (--noise "
                                       "amplified: one level) the largest dark-level one; unset: 25 (amplified: 10); "
                                       "Gaussian levels " + SIGMA_HELP + " (the mean val_loss)")
    sigma_draw: str = arg("levels", "denoise, several Gaussian --sigma levels: each training crop draws one of the "
                                    "levels, or (uniform) any level in their range, uniformly (FFDNet's protocol: "
                                    "--sigma 0 15 25 50 75 --sigma-draw uniform); validation scores the levels",
                          choices=SIGMA_DRAWS)
    gray: bool = arg(True, "denoise: gray images (the DnCNN / PixelRL protocol); --no-gray trains an RGB denoiser "
                           "(3 input and output planes). The other tasks are RGB")
    noise: str | None = arg(None, "denoise: gaussian (white noise on the clean image; ffdnet reads its constant map, "
                                  "sigma / 255) or amplified (dark-level noise brightened by known curves, with its "
                                  "noise-level map: ReLLIE's setting); unset: amplified for ffdnet, else gaussian",
                            choices=NOISE_KINDS)
    depth: int | None = arg(None, "ffdnet: convolution layers (>= 2); unset: 15, the published gray FFDNet")
    occlusion: str = arg("box", "completion without --data: shape of the synthetic holes", choices=OCCLUSIONS)
    hole_loss: str = arg("mse", "unet: the loss of each image's hole: mse (its mean squared error) or psnr (minus its "
                                "PSNR, 10 log10 of the MSE: each image weighs by its relative error, as the mean hole "
                                "PSNR that compare reports does, so a nearly right hole on a plain wall counts as "
                                "much as a badly missed one)", choices=HOLE_LOSSES)
    shift_holes: bool = arg(False, "completion with --data: move each training pair's hole to a random place of its "
                                   "original (the original occluded there); validation keeps the files' holes")
    flips: str = arg("both", "training crops' random flips, each with p = 0.5: both (left-right and up-down) or "
                             "horizontal (left-right only, for scenes with an up such as rooms: the net may then "
                             "learn that ceilings are above floors)", choices=FLIPS)
    prefill: str = arg("diffusion", "completion: what the network sees in the hole: the diffusion fill (the "
                                    "completion env's start state) or none (the occluded input as is)",
                       choices=PREFILLS)
    generator: bool = arg(True, "mrpnet: chain the Generator after MRPNet (CombinedModel); --no-generator "
                                "trains MRPNet alone")
    upscale: int = arg(1, "mrpnet with the Generator, --task lowlight: output size over input size (the seed's "
                          "Generator: 4, a super-resolving enhancer). --crop is the target's size; --data pairs whose "
                          "high images are UPSCALE times the low ones (the seed's gt) are read as they are, other "
                          "inputs are area-downscaled by UPSCALE", choices=MRPNET_UPSCALES)
    width: int | None = arg(None, "feature planes; unset: the published size, 64 (gated-pixelrnn 48; unet, ours, 32)")
    variant: str = arg("default", "pixelrnn / gated-pixelrnn architecture: ours, or the seed's code exactly (pixelrnn: "
                                  "5x5 first conv; gated-pixelrnn: 7x7 input conv without ReLU, global input skip, "
                                  "conv-32-ReLU-1x1 head, Xavier init)", choices=VARIANTS)
    ssim_window: int | None = arg(None, "Gaussian taps per side of the loss's SSIM (sigma 1.5); unset: 11 "
                                        "(gated-pixelrnn --variant seed: 7, the seed's)")
    mask_rule: str | None = arg(None, "completion with --data: training masks from the pairs: estimate (the hole "
                                      "found by estimate_occlusion_mask) or channel-sum (the gated seed's sum over "
                                      "channels of |original - occluded| > 0.03); validation always scores the "
                                      "estimated hole. Unset: estimate (gated-pixelrnn --variant seed: channel-sum)",
                                choices=MASK_RULES)
    resize: tuple[int, ...] = arg((), "H [W]: resize every training and validation image to H x W (one number: "
                                      "square) before cropping, bilinear with antialiasing; masks cover every pixel "
                                      "the hole reaches (the seeds: pixelrnn 256, gated-pixelrnn 128); unset: "
                                      "native size")
    epochs: int = arg(20, "training epochs")
    steps_per_epoch: int = arg(50, "batches of random crops per epoch")
    batch: int | None = arg(None, "crops per batch; unset: 16 (gated-pixelrnn 4)")
    crop: int | None = arg(None, "crop size in pixels; unset: 128 (pixelrnn, gated-pixelrnn 224; with --resize its "
                                 "shorter side)")
    lr: float | None = arg(None, "Adam learning rate; unset: 1e-4 (pixelrnn, ffdnet 1e-3)")
    lr_decay: str = arg("none", "learning-rate schedule over the run's batches: none (--lr throughout) or cosine "
                                "(from --lr at the first batch down to 0 after the last of --epochs)",
                        choices=LR_DECAYS)
    val_fraction: float = arg(0.1, "fraction of the images (scenes) held out for validation")
    val_samples: int = arg(32, "validation crops (fixed across epochs and runs), spread evenly over the validation "
                               "images: at least their number to score every one")
    samples: int = arg(4, "validation crops shown in each sample grid")
    amp: bool = arg(True, "mixed precision (float16 autocast + gradient scaling) on CUDA; ignored on CPU")
    device: str = arg("auto", "auto, cpu, cuda or cuda:N")
    threads: int = arg(0, "torch CPU threads (0: every core but one, at least 1)")
    seed: int = arg(0, "seed of the weights' initialisation and the training crops and degradations")
    save_every: int = arg(0, "also write checkpoints/model_epochE.pt every N-th epoch E (0: never)")
    init: str | None = arg(None, "start from the weights of this checkpoint (another run's best.pt or last.pt of the "
                                 "same --model, --task and shape; for --model unet also of a smaller --width, whose "
                                 "net the wider one embeds and first computes exactly, CompletionUNet.widen_from): "
                                 "weights only, with a new optimizer, epoch count and random state (fine-tuning; "
                                 "--resume continues a run instead)")
    out: str = arg("runs/supervised_train", "run folder")
    resume: bool = arg(False, "continue the run in --out from checkpoints/last.pt with its saved arguments")


class Example(NamedTuple):
    """A batch ready for a model: ``input`` and ``target`` float (B, C, H, W); ``mask`` (B, 1, H, W)
    with 1 = missing pixel (completion only, else None); ``noise_map`` (B, C, H, W), the noise
    level of each pixel in image units (``--noise amplified``, and ``--model ffdnet`` on Gaussian
    noise: each crop's ``sigma / 255``; else None)."""

    input: Tensor
    target: Tensor
    mask: Tensor | None
    noise_map: Tensor | None = None


# --- configuration ------------------------------------------------------------------------------
def resolve_args(args: Args, argv: Sequence[str]) -> Args:
    """Fill the model's defaults (new run) or restore the saved arguments (``--resume``).

    Raises:
        FileNotFoundError: ``--resume`` without config.json in ``--out`` (a run that stopped before
            its first checkpoint has one and starts anew; see :class:`experiments.runs.Run`).
        ValueError: an invalid combination, or ``--resume`` with arguments that differ from the run's.
    """
    if args.resume and args.init is not None:
        raise ValueError(f"--init {args.init} and --resume: choose one (--init starts a new run from another run's "
                         "weights; --resume continues the run in --out with its own weights, optimizer and epoch)")
    if args.resume:
        out = Path(args.out)
        if not (out / "config.json").exists():
            raise FileNotFoundError(f"--resume: no checkpoint to resume from at {out / 'checkpoints' / 'last.pt'} "
                                    "(or no config.json next to it)")
        known = {f.name for f in fields(Args)}
        saved = read_config(out, trainer_name(args), known)
        explicit = given_flags(Args, argv) & known
        if "sigma" in explicit:  # as the run recorded it (one level a number)
            args = replace(args, sigma=resolve_sigma(args.sigma))
        conflicts = [f"--{name.replace('_', '-')} {getattr(args, name)!r} (the run has {saved.get(name)!r})"
                     for name in sorted(explicit - set(RESUME_OVERRIDES))
                     if _as_json(getattr(args, name)) != _as_json(saved.get(name))]
        if conflicts:
            raise ValueError("--resume continues a run with its saved arguments; these differ: " + "; ".join(conflicts)
                             + f". Only {', '.join('--' + n.replace('_', '-') for n in RESUME_OVERRIDES[:4])} "
                             "may change.")
        merged = {name: saved[name] for name in known if name in saved}
        merged.update({name: getattr(args, name) for name in RESUME_OVERRIDES if name in explicit or name in
                       ("out", "resume")})
        args = Args(**merged)
    else:
        defaults = MODEL_DEFAULTS[args.model]
        args = replace(args, lr=args.lr if args.lr is not None else defaults.lr,
                       batch=args.batch if args.batch is not None else defaults.batch,
                       crop=args.crop if args.crop is not None else min(args.resize or (defaults.crop,)),
                       width=args.width if args.width is not None else defaults.width)
    args = fill_noise_defaults(fill_seed_defaults(args))
    check_args(args)
    return args


def _as_json(value: Any) -> Any:
    """An argument as config.json holds it (tuples are lists)."""
    return list(value) if isinstance(value, tuple) else value


def fill_noise_defaults(args: Args) -> Args:
    """``--noise``, ``--sigma`` and ``--depth`` where unset (also for runs saved before they existed):
    see :data:`DEFAULT_SIGMA` and :data:`FFDNET_DEPTH`; ``--sigma`` as the run records it
    (:func:`experiments.sigmas.resolve_sigma`: one level a number, several an ascending tuple).

    Raises:
        ValueError: a bad ``--sigma`` (named).
    """
    noise = args.noise if args.noise is not None else "amplified" if args.model == "ffdnet" else "gaussian"
    unset = args.sigma is None or args.sigma == ()
    return replace(args, noise=noise, sigma=resolve_sigma(DEFAULT_SIGMA[noise] if unset else args.sigma),
                   depth=args.depth if args.depth is not None or args.model != "ffdnet" else FFDNET_DEPTH)


def fill_seed_defaults(args: Args) -> Args:
    """``--ssim-window`` and ``--mask-rule`` where unset: the gated seed's (7, channel-sum) for
    gated-pixelrnn ``--variant seed``, else 11 and estimate (also for runs saved before these
    arguments existed); ``--resize`` as a tuple."""
    gated_seed = args.model == "gated-pixelrnn" and args.variant == "seed"
    return replace(args, resize=tuple(args.resize),
                   ssim_window=args.ssim_window if args.ssim_window is not None else
                   GATED_SEED_SSIM_WINDOW if gated_seed else DEFAULT_SSIM_WINDOW,
                   mask_rule=args.mask_rule if args.mask_rule is not None else
                   "channel-sum" if gated_seed else "estimate")


def check_args(args: Args) -> None:
    """Raise ValueError naming the first argument out of range."""
    if args.upscale != 1:
        if args.model != "mrpnet" or not args.generator or args.task != "lowlight" or args.resize:
            raise ValueError(f"--upscale {args.upscale}: the Generator's super-resolution; an option of --model mrpnet "
                             f"(with the Generator) --task lowlight without --resize (got --model {args.model}"
                             f"{'' if args.generator else ' --no-generator'} --task {args.task}"
                             f"{' --resize' if args.resize else ''})")
        if args.crop % args.upscale:
            raise ValueError(f"--crop {args.crop}: with --upscale {args.upscale} the target's crop must be a multiple "
                             f"of {args.upscale} (the input's crop is --crop / {args.upscale})")
    if args.model == "ffdnet" and (args.task != "denoise" or args.variant != "default"):
        raise ValueError(f"--model ffdnet reads a noise-level map: it trains on --task denoise (--noise amplified or "
                         f"gaussian, --variant default) only (got --task {args.task} --variant {args.variant})")
    if args.sigma_draw != "levels" and (args.task != "denoise" or args.noise != "gaussian"
                                        or not isinstance(args.sigma, tuple)):
        raise ValueError(f"--sigma-draw {args.sigma_draw}: draws each crop's Gaussian level from the range of several "
                         f"--sigma levels; an option of --task denoise --noise gaussian with two levels or more "
                         f"(got --task {args.task} --noise {args.noise} --sigma {levels_text(args.sigma)})")
    if args.depth is not None and (args.model != "ffdnet" or args.depth < 2):
        raise ValueError(f"--depth {args.depth}: an option of --model ffdnet, an integer >= 2")
    if args.noise == "amplified" and isinstance(args.sigma, tuple):
        raise ValueError(f"--sigma {levels_text(args.sigma)}: --noise amplified draws each image's level from "
                         "[0, --sigma]; give one --sigma (several Gaussian levels: --noise gaussian)")
    if args.noise == "amplified" and (args.task != "denoise" or not args.sigma > 0):
        raise ValueError(f"--noise amplified: an option of --task denoise with a --sigma > 0 (got --task {args.task} "
                         f"--sigma {args.sigma})")
    if args.model in MASKED_MODELS and args.task != "completion":
        raise ValueError(f"--model {args.model} reads an image and its mask; it trains on --task completion only "
                         f"(got --task {args.task})")
    if args.hole_loss != "mse" and args.model != "unet":
        raise ValueError(f"--hole-loss {args.hole_loss}: the loss of the completion U-Net's holes; an option of "
                         f"--model unet (got --model {args.model})")
    if args.shift_holes and (args.task != "completion" or args.data is None):
        raise ValueError("--shift-holes moves the holes of occluded / original pairs: an option of --task completion "
                         "with --data (without --data every hole is drawn at random already)")
    for name in ("epochs", "steps_per_epoch", "batch", "width", "val_samples"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected an integer >= 1")
    if args.resize and (len(args.resize) > 2 or min(args.resize) < MIN_CROP):
        raise ValueError(f"--resize {' '.join(map(str, args.resize))}: expected H or H W, integers >= {MIN_CROP}")
    if args.crop < MIN_CROP:
        raise ValueError(f"--crop {args.crop}: expected at least {MIN_CROP} (the 11x11 SSIM window must fit)")
    if args.resize and args.crop > min(args.resize):
        raise ValueError(f"--crop {args.crop} does not fit the images resized to {args.resize[0]}x{args.resize[-1]}; "
                         f"give a --crop of at most {min(args.resize)}")
    if args.variant != "default" and args.model in ("mrpnet", "unet"):
        raise ValueError(f"--variant {args.variant}: only pixelrnn and gated-pixelrnn have a seed variant; "
                         f"{args.model} takes --variant default")
    if args.ssim_window < 1 or args.ssim_window % 2 == 0 or args.ssim_window >= MIN_CROP:
        raise ValueError(f"--ssim-window {args.ssim_window}: expected an odd integer in 1..{MIN_CROP - 1}")
    if args.save_every < 0:
        raise ValueError(f"--save-every {args.save_every}: expected an integer >= 0 (0: never)")
    if not 0.0 < args.val_fraction < 1.0:
        raise ValueError(f"--val-fraction {args.val_fraction}: expected a number in (0, 1)")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr {args.lr}: expected a finite number > 0")
    if args.samples < 0 or args.threads < 0:
        raise ValueError("--samples and --threads: expected integers >= 0")


# --- data -------------------------------------------------------------------------------------
def image_channels(args: Args) -> int:
    """Planes the network reads and writes: 1 for gray denoising (``--gray``), else 3 (RGB)."""
    return 1 if args.task == "denoise" and args.gray else 3


def open_datasets(args: Args):
    """(train, val) datasets, resized to ``--resize`` if given; see the ``--data`` help for the layouts
    read per task."""
    train, val = _open_datasets(args)
    if args.resize:
        size = (args.resize[0], args.resize[-1])
        train, val = ResizedImages(train, size=size), ResizedImages(val, size=size)
    return train, val


def _open_datasets(args: Args):
    gray = image_channels(args) == 1
    if args.data is None:
        names = DEFAULT_GRAY_IMAGES if gray else DEFAULT_COLOR_IMAGES
        train_names, val_names = split_names(names, val_fraction=args.val_fraction, group=None)
        return BuiltinImages(names=train_names, gray=gray), BuiltinImages(names=val_names, gray=gray)
    root = Path(args.data)
    if not root.is_dir():
        raise DatasetError(f"--data {root}: not a folder")
    if args.task == "lowlight":  # --upscale: targets UPSCALE times the inputs (the seed's), or of their size
        train, val = (PairedImages(root, split=split, val_fraction=args.val_fraction,
                                   scale=None if args.upscale > 1 else 1) for split in ("train", "val"))
        if {train.scale, val.scale} - {1, args.upscale}:
            raise DatasetError(f"--data {root}: its high images are {max(train.scale, val.scale)} times the low "
                               f"ones; --upscale {args.upscale} reads pairs of one size (inputs area-downscaled) or "
                               f"with targets {args.upscale} times the inputs")
        return train, val
    elif args.task == "completion":  # validation scores the estimated hole whatever the training masks
        opener = lambda split: OccludedPairs(root, split=split, val_fraction=args.val_fraction,  # noqa: E731
                                             mask_rule=args.mask_rule if split == "train" else "estimate")
    else:  # denoise: real noisy / clean pairs (NoisyPairs), else clean images; split seed 0 as the other tasks'
        opener = lambda split: open_dataset(root, kind="clean", split=split, gray=gray, seed=0,  # noqa: E731
                                            val_fraction=args.val_fraction)
    train, val = opener("train"), opener("val")
    if isinstance(train, NoisyPairs) and args.noise == "amplified":
        raise ValueError(f"--data {root}: real noisy / clean pairs, but --noise amplified draws its own noise (and "
                         "noise map) on clean images; give a folder of clean images, or --noise gaussian (real "
                         "pairs are then used as they are)")
    if isinstance(train, NoisyPairs) and args.model == "ffdnet":
        raise ValueError(f"--data {root}: real noisy / clean pairs, whose noise has no known level map, which --model "
                         "ffdnet reads; give a folder of clean images (synthetic noise of known level), or train "
                         "a blind model (--model mrpnet) on the pairs")
    return train, val


def make_example(args: Args, batch: Mapping[str, Any], generator: torch.Generator | Sequence[torch.Generator],
                 device: torch.device) -> Example:
    """Turn a batch of dataset crops into (input, target, mask), degrading clean images when needed.

    Every random draw comes from ``generator`` (CPU generators, so CPU and CUDA runs agree): one for
    the batch, or one per crop, crop k's noise level and values, mask or darkening then drawn from
    generator k alone (:mod:`rlenhance.data.degrade`).
    """
    if args.task == "completion":
        if "occluded" in batch and args.shift_holes:
            original = batch["original"].to(device)
            occluded, mask = moved_occlusion(original, batch["mask"].to(device), generator=generator)
            return Example(occluded, original, mask)
        if "occluded" in batch:
            return Example(batch["occluded"].to(device), batch["original"].to(device), batch["mask"].to(device))
        clean = batch["high"].to(device)
        occluded, mask = random_occlusion(clean, generator=generator, kind=args.occlusion)
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
    """``example`` with an input of the target's size area-downscaled by ``upscale`` (super-resolution
    training on same-size pairs or synthetic degradations: degraded first, then downscaled); an input
    already ``upscale`` times smaller (the seed's pairs) is kept."""
    if upscale == 1 or example.input.shape[-2:] != example.target.shape[-2:]:
        return example
    return example._replace(input=F.avg_pool2d(example.input, upscale))


def draw_example(args: Args, dataset, seed: int, rows: slice, device: torch.device) -> Example:
    """Rows ``rows`` (e.g. a rank's, :meth:`Ranks.rows`) of a training batch drawn with ``seed``, as an
    :class:`Example` on ``device``: global row i's item, crop, flips (:func:`sample_batch`) and
    degradation (:func:`make_example`) come from the generators of (``seed``, i) alone
    (:func:`envs.base.episode_rows`, torch generators on the CPU), so a rank of a data-parallel job
    draws only its own rows and gets what one process drawing the whole batch gives them."""
    parts = episode_rows(seed, range(rows.start, rows.stop), "cpu")
    drawn = sample_batch(dataset, len(parts), crop=crop_of(args, dataset), rng=[row.rng for row in parts],
                         vertical_flip=args.flips == "both")
    return make_example(args, drawn, [row.generator for row in parts], device)


def crop_of(args: Args, dataset) -> int:
    """The crop drawn from ``dataset``'s items, in the pixels of their smallest image: ``--crop`` (the
    target's size) over the pairs' scale (super-resolution pairs, :attr:`PairedImages.scale`)."""
    return args.crop // getattr(dataset, "scale", 1)


def validation_set(args: Args, dataset) -> Example:
    """``val_samples`` fixed crops of the validation images, degraded with a fixed seed (CPU tensors;
    occluded pairs keep their own holes, also with ``--shift-holes``):
    the images in a fixed shuffled order, each used ``val_samples // len(dataset)`` or one more
    times (``val_samples`` >= the number of validation images covers them all)."""
    batch = sample_batch(dataset, args.val_samples, crop=crop_of(args, dataset), rng=np.random.default_rng(VAL_SEED),
                         flip=False, spread=True)
    fixed = replace(args, shift_holes=False)  # the pairs' own holes, whatever the training examples get
    return make_example(fixed, batch, torch.Generator().manual_seed(VAL_SEED), torch.device("cpu"))


def validation_sets(args: Args, dataset) -> dict[float | None, Example]:
    """The validation crops (:func:`validation_set`) at each ``--sigma`` level of a blind Gaussian
    denoiser, ``{sigma: crops}`` (the same crops and noise pattern, scaled); else the one set (real
    noisy pairs carry their own noise)."""
    if args.task == "denoise" and isinstance(args.sigma, tuple) and not has_real_noise(dataset):
        return {sigma: validation_set(replace(args, sigma=sigma), dataset) for sigma in args.sigma}
    return {None: validation_set(args, dataset)}


def learning_rate(args: Args, step: int) -> float:
    """The learning rate of training batch ``step`` (0-based, counted over the whole run): ``--lr``,
    or with ``--lr-decay cosine`` ``lr (1 + cos(pi step / total)) / 2`` over the ``total`` =
    ``--epochs`` x ``--steps-per-epoch`` batches (a function of the step alone, so a resumed run
    continues the schedule; a resume that changes ``--epochs`` stretches what remains of it)."""
    if args.lr_decay == "none":
        return args.lr
    return args.lr * 0.5 * (1.0 + math.cos(math.pi * step / (args.epochs * args.steps_per_epoch)))


# --- model, forward pass and loss ---------------------------------------------------------------------
def init_weights(model: nn.Module, path: str, spec: SupervisedSpec) -> None:
    """Load the weights, and only them, of the checkpoint ``path`` into ``model`` (``--init``).

    Raises:
        CheckpointError: (names ``--init`` and the file) not a readable supervised checkpoint, or
            one of another network shape (width, upscale, Generator; a narrower U-Net is widened
            instead, and refused when its weights do not fit its recorded shape) or another spec
            (model, task, channels, prefill, variant, noise, ...): what differs is listed.
    """
    try:
        ckpt = load_checkpoint(path, spec=SupervisedSpec)
        # a narrower U-Net's weights are embedded in the wider one (CompletionUNet.widen_from)
        widen = isinstance(model, CompletionUNet) and model.embeds(ckpt["arch"])
        if not widen:
            check_arch(ckpt["arch"], model.arch(), source=f"checkpoint {path}")
    except CheckpointError as exc:
        raise CheckpointError(f"--init: {exc}; --init takes a checkpoint of experiments.supervised_train with this "
                              "run's --model, --task and shape (--width, --upscale, --generator, ...)") from None
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


def build_network(args: Args) -> nn.Module:
    channels = image_channels(args)
    if args.model == "mrpnet":
        return CombinedModel(channels, width=args.width, upscale=args.upscale) if args.generator \
            else MRPNet(channels, width=args.width)
    if args.model == "pixelrnn":
        return PixelRNN(channels, width=args.width, variant=args.variant)
    if args.model == "ffdnet":
        return FFDNet(channels, width=args.width, depth=args.depth)
    if args.model == "unet":
        return CompletionUNet(channels, width=args.width)
    return GatedPixelRNN(channels, width=args.width, variant=args.variant)


def predict(model: nn.Module, example: Example, prefill: str) -> Tensor:
    """The model's raw prediction; for completion the hole is pre-filled as ``prefill`` says first
    (:func:`rlenhance.ops.fill.prefill_hole`) and the gated PixelRNN and the U-Net also read the mask,
    FFDNet the noise-level map."""
    x = example.input if example.mask is None else prefill_hole(example.input, example.mask, prefill)
    net = getattr(model, "module", model)  # the network inside DistributedDataParallel
    if getattr(net, "reads_mask", False):
        return model(x, example.mask)
    if isinstance(net, FFDNet):
        return model(x, example.noise_map)
    return model(x)


def compute_loss(args: Args, pred: Tensor, example: Example) -> tuple[Tensor, dict[str, Tensor]]:
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


def sample_rows(args: Args, vals: Mapping[Any, Example], outputs: Mapping[Any, Tensor]) -> list[list[Tensor]]:
    """The sample grid's first ``--samples`` rows (input | output | reference): each validation crop
    at every level in turn (a super-resolution input shown at the target's size, nearest)."""
    level_rows = []
    for level, val in vals.items():
        shown, out = val.input[:args.samples], outputs[level]
        shown = F.interpolate(shown, size=val.target.shape[-2:], mode="nearest") if args.upscale > 1 else shown
        level_rows.append([[shown[i], out[i], val.target[i]] for i in range(min(args.samples, len(out)))])
    return [row for rows in zip(*level_rows) for row in rows][:args.samples]


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
    ranks = Ranks.from_env()  # torchrun's ranks (one process without it): data-parallel, see docs/distributed.md
    local_batch = ranks.split(args.batch, "--batch")
    device = setup_process(threads=args.threads, seed=args.seed, device=args.device, ranks=ranks)
    use_amp = args.amp and device.type == "cuda"

    train_set, val_set = open_datasets(args)
    vals = validation_sets(args, val_set)
    model = build_network(args).to(device)
    # DistributedDataParallel under torchrun (batch norm over the global batch); the model itself alone.
    # `model` stays the network that checkpoints save and validation runs.
    trained = wrap(model, ranks, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    rng = np.random.default_rng(args.seed)  # one seed per training batch (draw_example), on every rank alike
    run = Run(args.out, args, resume=args.resume, ranks=ranks)  # written on the first log, by rank 0
    log_path, curve_path = run.dir / "train_log.tsv", run.dir / "loss_curve.png"
    title = f"supervised_train: {run.dir}"
    levels = noise_levels(args.sigma) if args.task == "denoise" else None
    spec = SupervisedSpec(model=args.model, task=args.task, channels=image_channels(args),
                          prefill=args.prefill if args.task == "completion" else "none", variant=args.variant,
                          noise=args.noise if args.task == "denoise" else None,
                          sigma=levels[-1] if levels else None, sigmas=levels, upscale=args.upscale)

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
        epoch, best, best_epoch, history = int(extra["epoch"]), float(extra["best"]), int(extra["best_epoch"]), \
            list(extra["history"])
        batch, sums, scores = int(extra.get("batch", 0)), dict(extra.get("sums") or {}), dict(extra["scores"])
        best, best_epoch = run.best_so_far(best, best_epoch, step_key="best_epoch")
        saved = (epoch, batch)
        if epoch >= args.epochs:
            run.say(f"{run.dir}: already finished at epoch {epoch} of {args.epochs}; nothing to do; raise --epochs "
                  "to train on")
            if not run.summary_path.exists():  # killed between last.pt and summary.md
                run.summary([summary_row(args, model, epoch, best_epoch, history)], title=title)
            run.close()
            return run.dir
        run.truncate_metrics(epoch)
        if history and run.writes:
            write_log(log_path, history)
        run.say(f"resumed {run.last_path} at epoch {epoch} of {args.epochs}"
              + (f", batch {batch} of {args.steps_per_epoch}" if batch else ""))
    elif args.init is not None:  # a new run (or one started anew) from another run's weights
        init_weights(model, args.init, spec)
        run.say(f"initialised the weights from {args.init}")

    def last_extra() -> dict[str, Any]:
        return {"epoch": epoch, "batch": batch, "sums": sums, "scores": scores, "args": asdict(args),
                "spec": spec, "best": best, "best_epoch": best_epoch, "history": history,
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "np_rng": rng.bit_generator.state}

    bar = run.progress(args.epochs, initial=epoch, desc="epoch")
    start = time.perf_counter()
    with StopSignals(ranks) as stop:
        while epoch < args.epochs:
            if stop.check():  # before the next batch or the validation (any rank's signal): save and stop
                if saved != (epoch, batch):
                    run.save("last", model=model, arch=model.arch(), extra=last_extra())
                ranks.barrier()  # no rank ends (and has torchrun stop the others) before last.pt is written
                bar.close()
                run.close()
                where = f"after batch {batch} of {args.steps_per_epoch}" if batch else "at its start"
                raise stop.interrupted(f"interrupted in epoch {epoch + 1} of {args.epochs}, {where} ({stop.name}); "
                                       f"{run.last_path} saved; continue with --resume --out {run.dir}")
            if batch < args.steps_per_epoch:
                # this rank's rows of the global batch, drawn alone (one process: all of them)
                example = draw_example(args, train_set, int(rng.integers(BATCH_SEED_BOUND)),
                                       ranks.rows(local_batch), device)
                with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                    pred = predict(trained, example, args.prefill)
                loss_values, terms = compute_loss(args, pred.float(), example)
                loss = loss_values.mean()
                if not use_amp and not bool(torch.isfinite(loss)):
                    raise FloatingPointError(f"training diverged at epoch {epoch + 1}: loss is {float(loss)}; "
                                             f"lower --lr (now {args.lr})")
                optimizer.zero_grad(set_to_none=True)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(args, epoch * args.steps_per_epoch + batch)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                for name, value in {"loss": loss, **{k: v.mean() for k, v in terms.items()}}.items():
                    sums[name] = sums.get(name, 0.0) + float(value.detach())
                batch += 1
                continue
            # the epoch's batches are done: validate, log and checkpoint
            epoch += 1
            train = ranks.mean_stats({name: total / args.steps_per_epoch for name, total in sums.items()})
            results = ranks.on_rank0(lambda: {level: evaluate(model, args, val, device, use_amp)  # rank 0 validates
                                              for level, val in vals.items()})
            scores = level_scores({level: level_result[0] for level, level_result in results.items()})
            seconds = time.perf_counter() - start
            lr = optimizer.param_groups[0]["lr"]
            row = {"epoch": epoch, "lr": lr, **{f"train_{k}": v for k, v in train.items() if k != "loss"},
                   "train_loss": train["loss"], **{f"val_{k}": v for k, v in scores.items()}, "seconds": seconds}
            history.append(row)
            run.log(epoch, {"charts/lr": lr, "charts/epoch_seconds": seconds,
                            **{f"losses/{k}": v for k, v in train.items()},
                            **{f"eval/{k}": v for k, v in scores.items()}})
            if run.writes:
                write_log(log_path, history)
            rows = sample_rows(args, vals, {level: level_result[1] for level, level_result in results.items()})
            if rows:
                run.save_grid(f"epoch_{epoch:04d}", rows)
            if run.writes:
                save_figure(loss_curves({"train loss": [(r["epoch"], r["train_loss"]) for r in history],
                                         "val loss": [(r["epoch"], r["val_loss"]) for r in history]},
                                        title=f"{args.model} / {args.task}", ylabel="loss"), curve_path)
            batch, sums = 0, {}
            if scores["loss"] < best:  # best.pt before last.pt: a kill between them leaves last.pt's best behind
                best, best_epoch = scores["loss"], epoch
                run.save("best", model=model, arch=model.arch(), extra={
                    "epoch": epoch, "scores": scores, "args": asdict(args), "spec": spec,
                    "best": best, "best_epoch": best_epoch})
            if args.save_every and epoch % args.save_every == 0:  # before last.pt, like best.pt
                run.save(f"model_epoch{epoch}", model=model, arch=model.arch(), extra={
                    "epoch": epoch, "scores": scores, "args": asdict(args), "spec": spec})
            run.save("last", model=model, arch=model.arch(), extra=last_extra())
            saved = (epoch, batch)
            ranks.barrier()
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
