"""The arguments of ``experiments.compare``: the :class:`Args` dataclass and its checks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from experiments.compare.methods import ENSEMBLE_TASKS, LEARNED_METHODS, TASK_METHODS, TASKS
from experiments.runs import arg
from rlenhance.restore import ENSEMBLES

#: ``--data`` when it is not given (relative to the working directory, as experiments.lol_eval);
#: colour denoising (``--no-gray``) reads the embedded photos instead (BSD68 is gray).
DEFAULT_DATA: Mapping[str, str] = MappingProxyType({
    "lowlight": "../shared/data/sice_pairs/train",
    "denoise": "../shared/data/bsd/BSD68",
    "completion": "../shared/data/bedroom/train",
})
#: What the report calls the embedded data (``--data`` unset with ``--task denoise --no-gray``).
EMBEDDED_COLOR_DATA = "the embedded scikit-image colour photos (rlenhance.data.DEFAULT_COLOR_IMAGES)"


@dataclass
class Args:
    """Compare RL, supervised and classical methods on the same images (PSNR / SSIM / UQI / ms / params)."""

    task: str = arg("lowlight", "what to restore", choices=TASKS)
    data: str | None = arg(None, "lowlight: low/+high/ pairs; denoise: clean images, or real noisy/clean pairs "
                                 "(noisy/+clean/ or SIDD's scene folders), gray unless --no-gray; completion: "
                                 "occluded_images/+original_images/. Default: the task's folder under ../shared/data "
                                 "(denoise --no-gray: the embedded scikit-image colour photos)")
    gray: bool = arg(True, "denoise: gray images (the PixelRL protocol); --no-gray denoises RGB (noise of --sigma on "
                           "every channel)")
    methods: str | None = arg(None, "comma-separated subset of the task's methods (default: all of them); "
                                    "lowlight: " + ",".join(TASK_METHODS["lowlight"]) + "; denoise: "
                                    + ",".join(TASK_METHODS["denoise"]) + "; completion: "
                                    + ",".join(TASK_METHODS["completion"]))
    a3c: str | None = arg(None, "A3C policy checkpoint (lowlight: lol_train, default the shipped model; denoise / "
                                "completion: denoise_train / completion_train)")
    sac: str | None = arg(None, "SAC policy checkpoint (lowlight: lol_train --agent sac; denoise / completion: "
                                "denoise_train / completion_train --agent sac)")
    mrpnet: str | None = arg(None, "supervised_train --model mrpnet checkpoint of this task")
    ffdnet: str | None = arg(None, "supervised_train --model ffdnet checkpoint (denoise; a noise-map denoiser, given "
                                   "the map of --sigma, or with --sigma-estimate and on real noise of each image's "
                                   "estimated level)")
    pixelrnn: str | None = arg(None, "supervised_train --model pixelrnn checkpoint of this task")
    gated_pixelrnn: str | None = arg(None, "supervised_train --model gated-pixelrnn checkpoint (completion)")
    unet: str | None = arg(None, "supervised_train --model unet checkpoint (completion; the coarse completion U-Net)")
    rse: str | None = arg(None, "RSE-RL denoiser checkpoint of experiments.rse_train (denoise)")
    zero_dce: str | None = arg(None, "official Zero-DCE weights, zero_dce_Epoch99.pth (lowlight)")
    sigma: float = arg(25.0, "denoise: standard deviation of the synthetic noise on the 0-255 scale, and the noise "
                             "level the classical denoisers and ffdnet get (unused with real noisy pairs)")
    sigma_estimate: bool = arg(False, "denoise: give the classical denoisers and ffdnet each image's noise level "
                                      "estimated from the noisy image (rlenhance.baselines.estimate_noise_sigma) "
                                      "instead of --sigma; always so for real noisy pairs")
    ensemble: int = arg(1, "denoise and completion: geometric self-ensemble of the learned networks: the mean of "
                           "the supervised network (mrpnet, ffdnet, unet, pixelrnn ...) over this many flips and "
                           "quarter turns of each image (a3c / sac / rse: of their predictor's), at that "
                           "many times the time; 1: none",
                        choices=tuple(ENSEMBLES))
    split: str | None = arg(None, "which images: the trainers' held-out split, or all (unset: all for denoise, "
                                  "whose default data is the BSD68 test set; val otherwise)", choices=("val", "all"))
    split_seed: int = arg(0, "seed of the train/validation split (the trainers' default split)")
    limit: int = arg(0, "evaluate at most this many images (0: all)")
    seed: int = arg(0, "seed of the denoise noise (each image's from this seed and its file name, exactly as "
                       "experiments.denoise_train evaluates) and of torch")
    samples: int = arg(3, "images shown in samples.png")
    paired_against: str | None = arg(None, "also report, for every other method, the per-image difference of the "
                                           "main score (hole PSNR for completion, else PSNR) to this method: "
                                           "mean, standard error and how many images it is higher on")
    warmup: bool = arg(True, "run every method once on the first image before timing it (not recorded)")
    device: str = arg("auto", "auto, cpu, cuda or cuda:N")
    threads: int = arg(0, "torch CPU threads (0: every core but one, at least 1)")
    out: str = arg("runs/compare", "folder for report.md, results.csv, quality_vs_time.png and samples.png")


def requested_methods(args: Args) -> list[str]:
    """The methods to run, in the task's order (all of them without ``--methods``).

    Raises:
        ValueError: an unknown name or an empty list; the message lists the task's methods.
    """
    accepted = TASK_METHODS[args.task]
    if args.methods is None:
        return list(accepted)
    names = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = [name for name in names if name not in accepted]
    if unknown or not names:
        raise ValueError(f"--methods {args.methods!r}: unknown method(s) {unknown or '(none given)'} for --task "
                         f"{args.task}; accepted: {', '.join(accepted)}")
    return [name for name in accepted if name in names]


def check_args(args: Args) -> None:
    """Raise ValueError naming the first argument out of range."""
    if args.paired_against is not None and args.paired_against not in requested_methods(args):
        raise ValueError(f"--paired-against {args.paired_against!r}: not among the methods run; expected one of "
                         f"{', '.join(requested_methods(args))}")
    if not (math.isfinite(args.sigma) and args.sigma >= 0):
        raise ValueError(f"--sigma {args.sigma}: expected a finite noise level >= 0 (0-255 scale)")
    for name in ("limit", "threads"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} {getattr(args, name)}: expected an integer >= 0")
    if args.samples < 1:
        raise ValueError(f"--samples {args.samples}: expected an integer >= 1 (images in samples.png)")


def given_checkpoints(args: Args) -> dict[str, str | None]:
    """Learned method -> the file its flag names (None: not given)."""
    return {method: getattr(args, method.replace("-", "_")) for method in LEARNED_METHODS}


def ignored_flags(args: Args) -> list[str]:
    """Notes for checkpoint flags given for methods the task does not have, and for denoising
    options given to another task."""
    notes = [f"--{method} is ignored: --task {args.task} has no method {method}"
             for method, given in given_checkpoints(args).items()
             if given is not None and method not in TASK_METHODS[args.task]]
    if args.task not in ENSEMBLE_TASKS and args.ensemble != 1:
        notes.append(f"--ensemble is ignored: it is a --task {' / '.join(ENSEMBLE_TASKS)} option")
    if args.task != "denoise":
        notes += [f"{flag} is ignored: it is a --task denoise option"
                  for flag, given in (("--no-gray", not args.gray), ("--sigma-estimate", args.sigma_estimate)) if given]
    elif resolved_data(args) is None and args.split == "val":
        notes.append("--split val is ignored: the embedded photos have no held-out split (all are evaluated)")
    return notes


def resolved_data(args: Args) -> str | None:
    """``--data``, or the task's default folder; None: the embedded colour photos (denoise
    ``--no-gray`` without ``--data``)."""
    if args.data is not None:
        return args.data
    return None if args.task == "denoise" and not args.gray else DEFAULT_DATA[args.task]


def data_label(args: Args) -> str:
    """The data as report.md names it: the folder in backquotes, or :data:`EMBEDDED_COLOR_DATA`."""
    data = resolved_data(args)
    return EMBEDDED_COLOR_DATA if data is None else f"`{data}`"


def resolved_split(args: Args) -> str:
    """``--split``, or its task default: "all" for denoise (its default data is a test set), else "val"."""
    return args.split or ("all" if args.task == "denoise" else "val")
