"""The arguments of ``experiments.compare``: the :class:`Args` dataclass and its checks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from experiments.compare.methods import (
    ENSEMBLE_TASKS,
    LEARNED_METHODS,
    LEVEL_MAP_METHODS,
    PEER_METHODS,
    REFERENCE_METHODS,
    TASK_METHODS,
    checkpoint_path,
    method_flag,
)
from experiments.config import arg
from rlenhance import registry
from rlenhance.data import LOWLIGHT_INPUTS
from rlenhance.restore import ENSEMBLES
from rlenhance.tasks import TASKS

#: What report.md calls the embedded data (``--data`` unset), per task: scikit-image's photos, degraded
#: synthetically from a fixed seed, so that every comparison runs without any download.
EMBEDDED_DATA: Mapping[str, str] = MappingProxyType({
    "lowlight": "the embedded scikit-image colour photos (rlenhance.data.DEFAULT_COLOR_IMAGES) darkened by "
                "rlenhance.data.synthetic_low_light (image seeds from --seed and the photo's name)",
    "denoise": "the embedded scikit-image photos (rlenhance.data.DEFAULT_GRAY_IMAGES, or DEFAULT_COLOR_IMAGES "
               "with --no-gray)",
    "completion": "the embedded scikit-image colour photos (rlenhance.data.DEFAULT_COLOR_IMAGES) with synthetic "
                  "holes (rlenhance.data.occluded_test_set)",
})
#: Where the full-reference scores are taken (``--psnr-on``).
PSNR_PLANES = ("rgb", "y")
#: The self-ensemble sizes (``--ensemble``).
ENSEMBLE_SIZES = tuple(ENSEMBLES)


@dataclass
class Args:
    """Compare RL, supervised and classical methods on the same images (PSNR / SSIM / UQI / ms / params)."""

    task: Literal[TASKS] = arg("lowlight", "what to restore")
    data: str | None = arg(None, "lowlight: low/+high/ pairs, or a folder of photos without references (scored "
                                 "by the no-reference metrics); denoise: clean images, or real noisy/clean pairs "
                                 "(noisy/+clean/ or SIDD's scene folders), gray unless --no-gray; completion: "
                                 "occluded_images/+original_images/. Default: the embedded scikit-image photos, "
                                 "degraded synthetically")
    light: Literal[LOWLIGHT_INPUTS] = arg("data", "lowlight: the dark inputs: the data's own (the low frames of pairs; "
                                                  "the embedded photos darkened uniformly), or every reference relit "
                                                  "by smooth non-uniform light (rlenhance.data.uneven_capture, each "
                                                  "image's from --seed and its name) in place of its low frame")
    gray: bool = arg(True, "denoise: gray images (the PixelRL protocol); --no-gray denoises RGB (noise of --sigma on "
                           "every channel)")
    methods: str | None = arg(None, "comma-separated subset of the task's methods (default: all of them but the "
                                    "learned ones with no shipped checkpoint and none given); "
                                    "lowlight: " + ",".join(TASK_METHODS["lowlight"]) + "; denoise: "
                                    + ",".join(TASK_METHODS["denoise"]) + "; completion: "
                                    + ",".join(TASK_METHODS["completion"]))
    checkpoints: tuple[str, ...] = arg((), "checkpoints of supervised networks of your own (supervised_train --model "
                                           "package.module:Class), each a method named by its network")
    rl: str | None = arg(None, "low-light policy checkpoint of lol_train (A3C or SAC; default the shipped model)")
    a3c: str | None = arg(None, "A3C policy checkpoint of denoise_train / completion_train")
    sac: str | None = arg(None, "SAC policy checkpoint of denoise_train --agent sac (denoise)")
    noise_map: str | None = arg(None, "noise-level map policy checkpoint of denoise_train --preset noise-map (denoise)")
    mrpnet: str | None = arg(None, "supervised_train --model mrpnet checkpoint of this task")
    ffdnet: str | None = arg(None, "supervised_train --model ffdnet checkpoint (denoise; a noise-map denoiser, given "
                                   "the map of --sigma, or with --sigma-estimate and on real noise of each image's "
                                   "estimated level)")
    pixelrnn: str | None = arg(None, "supervised_train --model pixelrnn checkpoint (completion)")
    gated_pixelrnn: str | None = arg(None, "supervised_train --model gated-pixelrnn checkpoint (completion)")
    unet: str | None = arg(None, "supervised_train --model unet checkpoint (completion; the coarse completion U-Net)")
    rse: str | None = arg(None, "RSE-RL denoiser checkpoint of experiments.rse_train (denoise)")
    zero_dce: str | None = arg(None, "official Zero-DCE weights, zero_dce_Epoch99.pth (lowlight)")
    zero_dcepp: str | None = arg(None, "official Zero-DCE++ weights, zero_dcepp_Epoch99.pth (lowlight; method "
                                       "zero-dce++)")
    rellie: str | None = arg(None, "official ReLLIE weights converted to rellie_model.npz (lowlight)")
    metrics: str | None = arg(None, "comma-separated metrics to score besides the task's: names of "
                                    "rlenhance.metrics.table.METRICS or your own by import path (package.module:NAME, "
                                    "a rlenhance.metrics.table.Metric)")
    psnr_on: Literal[PSNR_PLANES] = arg("rgb", "full-reference scores (PSNR, SSIM, UQI) on the RGB channels or on Y "
                                               "(BT.601 YCbCr, studio swing, as MATLAB's rgb2ycbcr; RGB images only)")
    gt_mean: bool = arg(False, "scale each output so that its mean gray equals its reference's before the "
                               "full-reference scores (the GT-mean protocol, rlenhance.metrics.gt_mean_align)")
    sigma: float = arg(25.0, "denoise: standard deviation of the synthetic noise on the 0-255 scale, and the noise "
                             "level the classical denoisers and ffdnet get (unused with real noisy pairs)")
    sigma_to: float | None = arg(None, "denoise: a noise level that varies across each image: linear from --sigma at "
                                       "the left edge to this level at the right edge (0-255 scale); use with "
                                       "--sigma-estimate (no single level to give)")
    sigma_estimate: bool = arg(False, "denoise: give the classical denoisers and ffdnet each image's noise level "
                                      "estimated from the noisy image (rlenhance.noise_estimate.estimate_noise_sigma) "
                                      "instead of --sigma; always so for real noisy pairs")
    ensemble: Literal[ENSEMBLE_SIZES] = arg(1, "denoise and completion: geometric self-ensemble of the learned "
                                               "networks: the mean of the supervised network (mrpnet, ffdnet, unet, "
                                               "pixelrnn ...) over this many flips and quarter turns of each image "
                                               "(a3c / sac / rse: of their predictor's), at that many times the time; "
                                               "1: none")
    split: Literal["val", "tune", "all"] | None = arg(None, "which images: the trainers' validation split (report on "
                                                            "it), their tuning split (choose on it), or all (unset: "
                                                            "all for the embedded photos, denoise and low-light photos "
                                                            "without references; val otherwise)")
    split_seed: int = arg(0, "seed of the train / tune / validation split (the trainers' default split)")
    limit: int = arg(0, "evaluate at most this many images (0: all)")
    seed: int = arg(0, "seed of the denoise noise (each image's from this seed and its file name, exactly as "
                       "experiments.denoise_train evaluates) and of torch")
    samples: int = arg(3, "images shown in samples.png (and actions.png)")
    paired_against: str | None = arg(None, "also report, for every other method, the per-image difference of the "
                                           "main scores to this method (hole PSNR for completion, PSNR for "
                                           "pairs, and NIQE and dark-area colour noise for lowlight): mean, "
                                           "standard error and on how many of the images it is better")
    warmup: bool = arg(True, "run every method once on the first image before timing it (not recorded)")
    device: str = arg("auto", "auto, cpu, cuda or cuda:N")
    threads: int = arg(0, "torch CPU threads (0: every core but one, at least 1)")
    out: str = arg("runs/compare", "folder for report.md, results.csv (one row per image and method), "
                                   "quality_vs_time.png and samples.png")


def requested_methods(args: Args) -> list[str]:
    """The methods to run, in the task's order; without ``--methods``, all but the learned ones with no shipped or
    given checkpoint and :data:`LEVEL_MAP_METHODS` (only a method asked for is reported missing).

    Raises:
        ValueError: an unknown name or an empty list; the message lists the task's methods.
    """
    accepted = TASK_METHODS[args.task]
    if args.methods is None:
        given = given_checkpoints(args)
        return [name for name in accepted if name not in LEVEL_MAP_METHODS and (
                name in ("input", *REFERENCE_METHODS) or given.get(name) is not None
                or (checkpoint_path(args.task, name, None)[0] is not None if name in PEER_METHODS
                    else registry.ships(registry.find(args.task, name))))]
    names = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = [name for name in names if name not in accepted]
    if unknown or not names:
        raise ValueError(f"--methods {args.methods!r}: unknown method(s) {unknown or '(none given)'} for --task "
                         f"{args.task}; accepted: {', '.join(accepted)}")
    return [name for name in accepted if name in names]


def requested_metrics(args: Args) -> list[str]:
    """The names (or import paths) of ``--metrics``, in order; empty when not given."""
    return [] if args.metrics is None else [name.strip() for name in args.metrics.split(",") if name.strip()]


def check_args(args: Args) -> None:
    """Raise ValueError naming the first argument out of range."""
    if args.paired_against is not None and args.paired_against not in requested_methods(args):
        raise ValueError(f"--paired-against {args.paired_against!r}: not among the methods run; expected one of "
                         f"{', '.join(requested_methods(args))}")
    if not (math.isfinite(args.sigma) and args.sigma >= 0):
        raise ValueError(f"--sigma {args.sigma}: expected a finite noise level >= 0 (0-255 scale)")
    if args.sigma_to is not None and not (math.isfinite(args.sigma_to) and args.sigma_to >= 0):
        raise ValueError(f"--sigma-to {args.sigma_to}: expected a finite noise level >= 0 (0-255 scale)")
    for name in ("limit", "threads"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} {getattr(args, name)}: expected an integer >= 0")
    if args.psnr_on == "y" and args.task == "denoise" and args.gray:
        raise ValueError("--psnr-on y: Y is the luma of RGB images; gray images are scored as they are (drop it, or "
                         "--no-gray)")
    if args.samples < 1:
        raise ValueError(f"--samples {args.samples}: expected an integer >= 1 (images in samples.png)")


def given_checkpoints(args: Args) -> dict[str, str | None]:
    """Learned method -> the file its flag names (None: not given)."""
    return {method: getattr(args, method_flag(method).replace("-", "_")) for method in LEARNED_METHODS}


def ignored_flags(args: Args) -> list[str]:
    """Notes for the flags given that this run ignores (another task's, ``--split`` on the embedded photos)."""
    notes = [f"--{method_flag(method)} is ignored: --task {args.task} has no method {method}"
             for method, given in given_checkpoints(args).items()
             if given is not None and method not in TASK_METHODS[args.task]]
    if args.task not in ENSEMBLE_TASKS and args.ensemble != 1:
        notes.append(f"--ensemble is ignored: it is a --task {' / '.join(ENSEMBLE_TASKS)} option")
    if args.task != "denoise":
        notes += [f"{flag} is ignored: it is a --task denoise option"
                  for flag, given in (("--no-gray", not args.gray), ("--sigma-estimate", args.sigma_estimate),
                                      ("--sigma-to", args.sigma_to is not None)) if given]
    if args.task != "lowlight" and args.light != "data":
        notes.append(f"--light {args.light} is ignored: it is a --task lowlight option")
    if args.data is None and args.split in ("val", "tune"):
        notes.append(f"--split {args.split} is ignored: the embedded photos have no held-out split (all are "
                     "evaluated)")
    return notes


#: What report.md adds to the data's name with ``--light uneven`` (low light).
UNEVEN_LABEL = ("each reference relit by non-uniform light (rlenhance.data.uneven_capture, image seeds from --seed "
                "and the name) in place of its low frame")


def data_label(args: Args) -> str:
    """The data as report.md names it: the folder in backquotes, or the task's :data:`EMBEDDED_DATA`;
    with ``--light uneven`` (low light), the photos and :data:`UNEVEN_LABEL`."""
    if args.task == "lowlight" and args.light == "uneven":
        photos = "the embedded scikit-image colour photos (rlenhance.data.DEFAULT_COLOR_IMAGES)" if args.data is None \
            else f"`{args.data}`"
        return f"{photos}, {UNEVEN_LABEL}"
    return EMBEDDED_DATA[args.task] if args.data is None else f"`{args.data}`"


def resolved_split(args: Args) -> str:
    """``--split``, or its default: "all" for the embedded photos, denoise and low-light photos without references,
    else "val"."""
    if args.data is None:
        return "all"
    if args.split is not None:
        return args.split
    if args.task == "lowlight":
        root = Path(args.data)
        return "val" if any((root / sub).is_dir() for sub in ("high", "our485", "eval15")) else "all"
    return "all" if args.task == "denoise" else "val"
