"""RL vs supervised vs classical methods on the same images, with the same metrics.

    python -m experiments.compare --task lowlight --data ../shared/data/sice_pairs/train \\
        --zero-dce ../shared/weights/zero_dce_Epoch99.pth --out runs/compare_lowlight
    python -m experiments.compare --task denoise --data ../shared/data/bsd/BSD68 --split all --sigma 25 \\
        --a3c runs/denoise_train/checkpoints/best.pt --mrpnet runs/supervised_denoise/checkpoints/best.pt \\
        --out runs/compare_denoise
    python -m experiments.compare --task completion --data ../shared/data/bedroom/train \\
        --gated-pixelrnn runs/supervised_completion/checkpoints/best.pt --out runs/compare_completion

The images of each task (``--split val``: the held-out split the trainers never see, the same
scene-level split for the same ``--split-seed``; ``--split all``: every image; ``--limit N``: the
first N):

==========  ===========================================  =============================================
task        ``--data``                                   input -> reference
==========  ===========================================  =============================================
lowlight    ``low/`` + ``high/`` (or a LOL parent)        ``low`` -> ``high``, RGB (as experiments.lol_eval)
denoise     a folder of clean images (read as gray)      clean + N(0, (sigma/255)^2) noise, not clipped
                                                         (DnCNN / PixelRL protocol) -> clean
completion  ``occluded_images/`` + ``original_images/``  occluded + the mask from the pair -> original
==========  ===========================================  =============================================

The noise of each image is drawn from a generator seeded by ``--seed`` and the file name
(:func:`experiments.denoise_train.noisy_test_set`, the trainers' own test noise), so every method
sees the same noisy image, here and in ``denoise_train``'s evaluation. Methods never see the reference: an RL
rollout is given the input in place of the reference its env would use for rewards.

Methods (``--methods a,b,...`` picks a subset; :data:`TASK_METHODS` lists each task's):

* ``input``: the degraded input itself (the floor every method should beat);
* ``a3c``, ``sac``: pixel-wise RL policies. Low light through :class:`rlenhance.Enhancer` (A3C
  defaults to the shipped model); denoise and completion through the env's own transition
  (:func:`agents.rollout.load_rollout_policy`, checkpoints of ``experiments.denoise_train`` /
  ``experiments.completion_train``);
* ``mrpnet``, ``pixelrnn``, ``gated-pixelrnn``: supervised checkpoints of
  ``experiments.supervised_train`` through :class:`rlenhance.restore.SupervisedRestorer`;
* ``zero-dce`` (low light): the official Zero-DCE weights, as in ``experiments.lol_eval``;
* classical: :data:`rlenhance.baselines.LOWLIGHT_BASELINES` (the low-light ones are built by
  :func:`experiments.lol_eval.build_methods`), :data:`~rlenhance.baselines.DENOISE_BASELINES`
  (parameters picked by ``--sigma``; BM3D when the optional ``bm3d`` package is installed),
  :data:`~rlenhance.baselines.COMPLETION_BASELINES` and ``diffusion-fill`` (the completion env's
  starting fill, :func:`rlenhance.ops.fill.diffusion_fill`).

A learned method without a checkpoint (flag not given and no default file under
``rlenhance/weights/``, see :data:`DEFAULT_CHECKPOINTS`) or a baseline without its optional
package is reported as ``missing: <why>`` on stdout and in report.md, never dropped silently.

Scores, per image: PSNR / SSIM / UQI of the output clipped to [0, 1] against the reference at full
resolution (:mod:`rlenhance.metrics`); completion adds the hole-only PSNR and SSIM; ``ms``: wall
time of the method alone on that image (no file I/O; each method runs once untimed on the first
image before, unless ``--no-warmup``). Written to ``--out``:

* ``report.md``: mean and standard deviation over images per metric and method, ms/image,
  learned parameters, the command line, the data, missing methods;
* ``results.csv``: one row per image and method (identical across runs with the same arguments,
  the ``ms`` column aside);
* ``quality_vs_time.png``: mean PSNR against ms/image (log scale), one labelled point per method;
* ``samples.png``: input | every method | reference for the first ``--samples`` images, labelled.
"""

from __future__ import annotations

import csv
import math
import shlex
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from agents.rollout import load_rollout_policy
from envs.base import open_dataset
from rlenhance.ops.fill import diffusion_fill
from experiments import lol_eval
from experiments.denoise_train import noisy_test_set
from experiments.runs import arg, markdown_table, parse_config
from rlenhance import metrics
from rlenhance.atomic import atomic_path, write_text_atomic
from rlenhance.baselines import COMPLETION_BASELINES, DENOISE_BASELINES, LOWLIGHT_BASELINES, baseline_missing
from rlenhance.checkpoint import build_model, load_checkpoint
from rlenhance.enhance import DEFAULT_CHECKPOINT as DEFAULT_LOWLIGHT_CHECKPOINT
from rlenhance.enhance import Enhancer
from rlenhance.errors import CheckpointError, DatasetError
from rlenhance.io import save_image
from rlenhance.models.peers import ZeroDCE
from rlenhance.models.pixelrnn import hole_psnr, hole_ssim
from rlenhance.models.policy import PixelActorCritic
from rlenhance.restore import (
    DEFAULT_COMPLETION_CHECKPOINT,
    DEFAULT_DENOISE_CHECKPOINT,
    MASK_THRESHOLD,
    SupervisedRestorer,
)
from rlenhance.runtime import flush_denormals, seed_everything, select_device

TASKS = ("lowlight", "denoise", "completion")
#: Methods that need a checkpoint (or weights file), each with its command-line flag.
LEARNED_METHODS = ("a3c", "sac", "mrpnet", "pixelrnn", "gated-pixelrnn", "zero-dce")
#: Every method of each task, in report order.
TASK_METHODS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "lowlight": ("input", "a3c", "sac", "mrpnet", "pixelrnn", "zero-dce", *LOWLIGHT_BASELINES),
    "denoise": ("input", "a3c", "sac", "mrpnet", "pixelrnn", *DENOISE_BASELINES),
    "completion": ("input", "a3c", "sac", "mrpnet", "pixelrnn", "gated-pixelrnn", "diffusion-fill",
                   *COMPLETION_BASELINES),
})
#: ``--data`` when it is not given (relative to the working directory, as experiments.lol_eval).
DEFAULT_DATA: Mapping[str, str] = MappingProxyType({
    "lowlight": "../shared/data/sice_pairs/train",
    "denoise": "../shared/data/bsd/BSD68",
    "completion": "../shared/data/bedroom/train",
})
#: Where the package keeps its shipped weights.
WEIGHTS_DIR = DEFAULT_LOWLIGHT_CHECKPOINT.parent


def _default_checkpoint(task: str, method: str) -> Path:
    """The shipped file of a learned method (those of Enhancer / SupervisedRestorer where they exist)."""
    shipped = {("lowlight", "a3c"): DEFAULT_LOWLIGHT_CHECKPOINT, ("denoise", "mrpnet"): DEFAULT_DENOISE_CHECKPOINT,
               ("completion", "gated-pixelrnn"): DEFAULT_COMPLETION_CHECKPOINT}
    if (task, method) in shipped:
        return shipped[task, method]
    if method == "zero-dce":
        return WEIGHTS_DIR / "zero_dce_Epoch99.pth"
    return WEIGHTS_DIR / f"{method.replace('-', '_')}_{task}.pt"


#: (task, learned method) -> the file used when its flag is not given (reported missing if absent).
DEFAULT_CHECKPOINTS: Mapping[tuple[str, str], Path] = MappingProxyType({
    (task, method): _default_checkpoint(task, method)
    for task in TASKS for method in TASK_METHODS[task] if method in LEARNED_METHODS})
#: Per-image scores of every task (completion adds HOLE_FIELDS); "ms" is the timing column.
SCORE_FIELDS = ("psnr", "ssim", "uqi")
HOLE_FIELDS = ("hole_psnr", "hole_ssim")
TIMING_FIELD = "ms"
#: Labels of the score columns in report.md.
LABELS: Mapping[str, str] = MappingProxyType({"psnr": "PSNR", "ssim": "SSIM", "uqi": "UQI",
                                              "hole_psnr": "hole PSNR", "hole_ssim": "hole SSIM"})


@dataclass
class Args:
    """Compare RL, supervised and classical methods on the same images (PSNR / SSIM / UQI / ms / params)."""

    task: str = arg("lowlight", "what to restore", choices=TASKS)
    data: str | None = arg(None, "lowlight: low/+high/ pairs; denoise: clean images (read as gray); completion: "
                                 "occluded_images/+original_images/. Default: the task's folder under ../shared/data")
    methods: str | None = arg(None, "comma-separated subset of the task's methods (default: all of them); "
                                    "lowlight: " + ",".join(TASK_METHODS["lowlight"]) + "; denoise: "
                                    + ",".join(TASK_METHODS["denoise"]) + "; completion: "
                                    + ",".join(TASK_METHODS["completion"]))
    a3c: str | None = arg(None, "A3C policy checkpoint (lowlight: lol_train, default the shipped model; denoise / "
                                "completion: denoise_train / completion_train)")
    sac: str | None = arg(None, "SAC policy checkpoint (lowlight: lol_train --agent sac; denoise / completion: "
                                "denoise_train / completion_train --agent sac)")
    mrpnet: str | None = arg(None, "supervised_train --model mrpnet checkpoint of this task")
    pixelrnn: str | None = arg(None, "supervised_train --model pixelrnn checkpoint of this task")
    gated_pixelrnn: str | None = arg(None, "supervised_train --model gated-pixelrnn checkpoint (completion)")
    zero_dce: str | None = arg(None, "official Zero-DCE weights, zero_dce_Epoch99.pth (lowlight)")
    sigma: float = arg(25.0, "denoise: noise standard deviation on the 0-255 scale")
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
    threads: int = arg(0, "torch CPU threads (0: torch's default)")
    out: str = arg("runs/compare", "folder for report.md, results.csv, quality_vs_time.png and samples.png")


@dataclass(frozen=True)
class Sample:
    """One evaluation image.

    Attributes:
        name: the image's name in the data set.
        input: what every method gets, float32 (H, W, C) (C = 1 for denoise, else 3, RGB); in
            [0, 1] except noisy images, which are not clipped.
        reference: the target, float32 (H, W, C) in [0, 1].
        mask: completion: bool (H, W), True = missing pixel; else None.
    """

    name: str
    input: np.ndarray
    reference: np.ndarray
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class Method:
    """A method ready to run.

    Attributes:
        name: the method's name (a name of :data:`TASK_METHODS`).
        run: ``(input, mask) -> output``: float32 (H, W, C) and the bool (H, W) mask (None but for
            completion) to an output of the input's shape (clipped to [0, 1] before scoring).
        params: number of learned parameters; None for methods that learn nothing.
        source: the checkpoint it was loaded from ("" for classical methods).
    """

    name: str
    run: Callable[[np.ndarray, np.ndarray | None], np.ndarray]
    params: int | None = None
    source: str = ""


# --- arguments ---------------------------------------------------------------------------------------
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


def ignored_flags(args: Args) -> list[str]:
    """Notes for checkpoint flags given for methods the task does not have."""
    notes = []
    for method in LEARNED_METHODS:
        flag = method.replace("-", "_")
        if getattr(args, flag) is not None and method not in TASK_METHODS[args.task]:
            notes.append(f"--{method} is ignored: --task {args.task} has no method {method}")
    return notes


def checkpoint_path(args: Args, method: str) -> tuple[Path | None, str]:
    """(the file of a learned method, "") or (None, why it is missing)."""
    flag = method.replace("-", "_")
    given = getattr(args, flag)
    if given is not None:
        path = Path(given)
        return (path, "") if path.is_file() else (None, f"--{method} {path}: no such file")
    path = DEFAULT_CHECKPOINTS[args.task, method]
    if path.is_file():
        return path, ""
    return None, f"no checkpoint: --{method} not given and no default {path}"


# --- data --------------------------------------------------------------------------------------------
def _hwc(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.permute(1, 2, 0).numpy(), dtype=np.float32)


def resolved_split(args: Args) -> str:
    """``--split``, or its task default: "all" for denoise (its default data is a test set), else "val"."""
    return args.split or ("all" if args.task == "denoise" else "val")


def load_samples(args: Args) -> list[Sample]:
    """The task's evaluation images (see the module docstring), in the data set's order.

    Raises:
        DatasetError: the folder is missing or not of the task's layout, or (lowlight) a pair
            lacks its reference.
    """
    data = args.data if args.data is not None else DEFAULT_DATA[args.task]
    kind = {"lowlight": "paired", "denoise": "clean", "completion": "occluded"}[args.task]
    split = None if resolved_split(args) == "all" else "val"
    dataset = open_dataset(data, kind=kind, split=split, gray=args.task == "denoise", seed=args.split_seed)
    count = len(dataset) if not args.limit else min(args.limit, len(dataset))
    if args.task == "denoise":  # the trainers' own fixed-seed test noise
        noisy_set = noisy_test_set(dataset, args.sigma, seed=args.seed, limit=count)
        samples = [Sample(item.name, _hwc(item.noisy), _hwc(item.clean)) for item in noisy_set]
        count = 0
    else:
        samples = []
    for index in range(count):
        item = dataset[index]
        if args.task == "lowlight":
            if "high" not in item:
                raise DatasetError(f"--data {data}: {item['name']} has no reference (high/); compare needs pairs")
            samples.append(Sample(item["name"], _hwc(item["low"]), _hwc(item["high"])))
        else:
            samples.append(Sample(item["name"], _hwc(item["occluded"]), _hwc(item["original"]),
                                  item["mask"][0].numpy() > MASK_THRESHOLD))
    if not samples:
        raise DatasetError(f"--data {data}: no images to evaluate (split {resolved_split(args)})")
    return samples


# --- methods -----------------------------------------------------------------------------------------
def count_parameters(model: nn.Module) -> int:
    """Learned parameters of a network (buffers such as batch-norm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def _supervised(args: Args, method: str, path: Path, device: torch.device) -> Method:
    restorer = SupervisedRestorer(path, device=device, task=args.task)
    if restorer.model_name != method:
        raise CheckpointError(f"--{method} {path}: a {restorer.model_name} checkpoint; give it to "
                              f"--{restorer.model_name}")
    if args.task == "denoise" and restorer.channels != 1:
        raise CheckpointError(f"--{method} {path}: a {restorer.channels}-channel denoiser; compare denoises gray "
                              "images (supervised_train --task denoise trains gray models)")

    def run(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        return restorer.restore(image, mask if restorer.takes_mask else None, per_channel=True)

    return Method(method, run, count_parameters(restorer.model), str(path))


def _rollout(args: Args, method: str, path: Path, device: torch.device) -> Method:
    policy = load_rollout_policy(path, device=device)
    task = policy.config.get("task")
    if task != args.task:
        raise CheckpointError(f"--{method} {path}: a policy of task {task!r}; this needs a {args.task} policy")

    def run(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        x = torch.from_numpy(image).permute(2, 0, 1)
        if args.task == "denoise":  # the reference slot gets the input: methods never see the reference
            item = {"clean": x, "noisy": x}
        else:
            item = {"occluded": x, "original": x, "mask": torch.from_numpy(mask[None].astype(np.float32))}
        return _hwc(policy.restore([item])[0].float().cpu())

    return Method(method, run, count_parameters(policy.policy), str(path))


def _enhancer(method: str, path: Path, device: torch.device) -> Method:
    enhancer = Enhancer(path, device=str(device))
    return Method(method, lambda image, mask: enhancer.enhance(image), count_parameters(enhancer.policy), str(path))


def _policy_parameters(path: Path) -> int:
    return count_parameters(build_model(load_checkpoint(path), {"PixelActorCritic": PixelActorCritic}))


def _lowlight_builtins(args: Args, wanted: Sequence[str], paths: Mapping[str, Path],
                       device: torch.device) -> dict[str, Method]:
    """Our A3C model, Zero-DCE and the classical methods, built by experiments.lol_eval."""
    classical = [name for name in wanted if name in LOWLIGHT_BASELINES]
    if not (classical or "a3c" in paths or "zero-dce" in paths):
        return {}
    lol_args = replace(lol_eval.Args(), checkpoint=str(paths["a3c"]) if "a3c" in paths else None,
                       zero_dce=str(paths["zero-dce"]) if "zero-dce" in paths else None,
                       classical=bool(classical), device=str(device))
    built = lol_eval.build_methods(lol_args, device)
    methods = {name: Method(name, lambda image, mask, fn=built[name]: fn(image)) for name in classical}
    if "a3c" in paths:
        methods["a3c"] = Method("a3c", lambda image, mask, fn=built["rlenhance (ours)"]: fn(image),
                                _policy_parameters(paths["a3c"]), str(paths["a3c"]))
    if "zero-dce" in paths:  # the official architecture: its parameter count needs no weights
        methods["zero-dce"] = Method("zero-dce", lambda image, mask, fn=built["Zero-DCE"]: fn(image),
                                     count_parameters(ZeroDCE()), str(paths["zero-dce"]))
    return methods


def build_methods(args: Args, wanted: Sequence[str], device: torch.device) -> tuple[dict[str, Method], dict[str, str]]:
    """The methods of ``wanted`` that can run, and why each other one is missing.

    Returns:
        ``(methods, missing)``: name -> :class:`Method` in the order of ``wanted``, and
        name -> reason for the methods without a checkpoint or optional package.

    Raises:
        CheckpointError: a checkpoint exists but is broken or of another task / model.
    """
    missing: dict[str, str] = {}
    paths: dict[str, Path] = {}
    for name in wanted:
        if name in LEARNED_METHODS:
            path, why = checkpoint_path(args, name)
            if path is None:
                missing[name] = why
            else:
                paths[name] = path
        elif baseline_missing(name) is not None:
            missing[name] = str(baseline_missing(name))
    methods: dict[str, Method] = {}
    if args.task == "lowlight":
        methods.update(_lowlight_builtins(args, [n for n in wanted if n not in missing], paths, device))
        if "sac" in paths:
            methods["sac"] = _enhancer("sac", paths["sac"], device)
    else:
        for name in ("a3c", "sac"):
            if name in paths:
                methods[name] = _rollout(args, name, paths[name], device)
    for name in ("mrpnet", "pixelrnn", "gated-pixelrnn"):
        if name in paths:
            methods[name] = _supervised(args, name, paths[name], device)
    sigma = args.sigma
    for name in wanted:
        if name in missing or name in methods:
            continue
        if name == "input":
            methods[name] = Method(name, lambda image, mask: image.copy())
        elif name in DENOISE_BASELINES:
            methods[name] = Method(name, lambda image, mask, fn=DENOISE_BASELINES[name]: fn(image, sigma=sigma))
        elif name in COMPLETION_BASELINES:
            methods[name] = Method(name, lambda image, mask, fn=COMPLETION_BASELINES[name]: fn(image, mask))
        elif name == "diffusion-fill":
            methods[name] = Method(name, _diffusion_fill)
    return {name: methods[name] for name in wanted if name in methods}, missing


def _diffusion_fill(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    hole = torch.from_numpy(mask.astype(np.float32))[None, None]
    return _hwc(diffusion_fill(x, hole)[0])


# --- scoring -----------------------------------------------------------------------------------------
def score(output: np.ndarray, sample: Sample) -> dict[str, float]:
    """PSNR / SSIM / UQI (and the hole scores for completion) of one output, clipped to [0, 1]."""
    x = torch.from_numpy(np.clip(output, 0.0, 1.0)).permute(2, 0, 1)[None]
    y = torch.from_numpy(sample.reference).permute(2, 0, 1)[None]
    scores = {"psnr": float(metrics.psnr(x, y)[0]), "ssim": float(metrics.ssim(x, y)[0]),
              "uqi": float(metrics.uqi(x, y)[0])}
    if sample.mask is not None:
        hole = torch.from_numpy(sample.mask.astype(np.float32))[None, None]
        scores["hole_psnr"] = float(hole_psnr(x, y, hole)[0])
        scores["hole_ssim"] = float(hole_ssim(x, y, hole)[0])
    return scores


def evaluate(method: Method, samples: Sequence[Sample], *, warmup: bool, keep: int
             ) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Run a method on every sample; per-image rows (scores and ms) and the first ``keep`` outputs."""
    if warmup:
        method.run(samples[0].input, samples[0].mask)
    rows, kept = [], []
    for i, sample in enumerate(samples):
        start = time.perf_counter()
        output = method.run(sample.input, sample.mask)
        ms = (time.perf_counter() - start) * 1000.0
        if output.shape != sample.reference.shape:
            raise ValueError(f"{method.name}: output of shape {output.shape} for {sample.name}, expected "
                             f"{sample.reference.shape}")
        rows.append({"image": sample.name, "method": method.name, **score(output, sample), TIMING_FIELD: ms})
        if i < keep:
            kept.append(np.clip(output, 0.0, 1.0))
    return rows, kept


def summarize(rows: Sequence[Mapping[str, Any]], methods: Mapping[str, Method], fields: Sequence[str]
              ) -> list[dict[str, Any]]:
    """Per method: image count, mean and (population) standard deviation of every score over images
    (NaN hole scores of images without hole are skipped), mean ms, parameters."""
    table = []
    for name, method in methods.items():
        mine = [row for row in rows if row["method"] == name]
        entry: dict[str, Any] = {"method": name, "images": len(mine)}
        for field in fields:
            values = np.array([row[field] for row in mine], dtype=np.float64)
            values = values[~np.isnan(values)]
            entry[field] = float(values.mean()) if values.size else math.nan
            entry[f"{field}_std"] = float(values.std()) if values.size else math.nan
        entry[TIMING_FIELD] = float(np.mean([row[TIMING_FIELD] for row in mine]))
        entry["params"] = method.params
        table.append(entry)
    return table


def paired_field(task: str) -> str:
    """The score a paired comparison uses: hole PSNR for completion, else PSNR."""
    return "hole_psnr" if task == "completion" else "psnr"


def paired_differences(rows: Sequence[Mapping[str, Any]], against: str, field: str) -> list[dict[str, Any]]:
    """Per method other than ``against``: mean and standard error of ``field(method) -
    field(against)`` over the images both scored (finite values), and the count of images where the
    method is higher (strictly)."""
    base = {row["image"]: row[field] for row in rows if row["method"] == against}
    methods = list(dict.fromkeys(row["method"] for row in rows if row["method"] != against))
    table = []
    for name in methods:
        diffs = np.array([row[field] - base[row["image"]] for row in rows
                          if row["method"] == name and row["image"] in base
                          and math.isfinite(row[field]) and math.isfinite(base[row["image"]])], dtype=np.float64)
        sem = float(diffs.std(ddof=1) / math.sqrt(diffs.size)) if diffs.size > 1 else math.nan
        table.append({"method": name, "images": int(diffs.size),
                      "mean": float(diffs.mean()) if diffs.size else math.nan, "sem": sem,
                      "higher": int((diffs > 0).sum())})
    return table


# --- outputs -----------------------------------------------------------------------------------------
def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def report_table(summary: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> str:
    """The markdown table of report.md (dB with 2 decimals, indices with 4, ms with 1)."""
    rows = []
    for entry in summary:
        row = {"method": entry["method"], "images": str(entry["images"])}
        for field in fields:
            digits = 2 if "psnr" in field else 4
            row[LABELS[field]] = _fmt(entry[field], digits)
            row[f"{LABELS[field]} std"] = _fmt(entry[f"{field}_std"], digits)
        row["ms/image"] = _fmt(entry[TIMING_FIELD], 1)
        row["params"] = f"{entry['params']:,}" if entry["params"] is not None else "-"
        rows.append(row)
    return markdown_table(rows)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> None:
    """results.csv (atomically): image, method, the scores (full precision), ms."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "method", *fields, TIMING_FIELD], lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()} for row in rows)


def _text(canvas: np.ndarray, text: str, org: tuple[int, int], *, scale: float = 0.4,
          color: tuple[int, int, int] = (40, 40, 40), max_width: int | None = None) -> None:
    """Draw ``text`` with OpenCV's Hershey font, shrunk to fit ``max_width`` pixels."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    if max_width is not None:
        width = cv2.getTextSize(text, font, scale, 1)[0][0]
        if width > max_width:
            scale *= max_width / width
    cv2.putText(canvas, text, org, font, scale, color, 1, cv2.LINE_AA)


def plot_quality_vs_time(points: Sequence[tuple[str, float, float]], *, title: str = "",
                         size: tuple[int, int] = (720, 480)) -> np.ndarray:
    """Scatter plot of quality against speed, drawn with OpenCV: x = ms per image (log scale), y = PSNR.

    Args:
        points: (label, ms per image, mean PSNR in dB); points with a non-finite value or ms <= 0
            are left out.
        title: drawn above the plot.
        size: (width, height) of the image in pixels.

    Returns:
        float32 RGB image (height, width, 3) in [0, 1].
    """
    width, height = size
    left, right, top, bottom = 60, 30, 34, 46
    ink, grid_ink, dot = (40, 40, 40), (225, 225, 225), (31, 119, 180)
    canvas = np.full((height, width, 3), 255, np.uint8)
    pts = [(label, math.log10(ms), db) for label, ms, db in points
           if math.isfinite(ms) and ms > 0 and math.isfinite(db)]
    xs = [p[1] for p in pts] or [0.0]
    ys = [p[2] for p in pts] or [0.0]
    x0, x1 = math.floor(min(xs)), math.ceil(max(xs))
    x1 = x1 if x1 > x0 else x0 + 1
    y_pad = max((max(ys) - min(ys)) * 0.1, 0.5)
    y0, y1 = min(ys) - y_pad, max(ys) + y_pad

    def to_px(x: float, y: float) -> tuple[int, int]:
        px = left + (x - x0) / (x1 - x0) * (width - left - right)
        py = height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)
        return int(round(px)), int(round(py))

    for decade in range(x0, x1 + 1):
        px, _ = to_px(decade, y0)
        cv2.line(canvas, (px, top), (px, height - bottom), grid_ink, 1)
        tick = f"{10.0 ** decade:g}"
        tick_width = cv2.getTextSize(tick, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0]
        _text(canvas, tick, (min(px - tick_width // 2, width - tick_width - 2), height - bottom + 16))
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        _, py = to_px(x0, y)
        cv2.line(canvas, (left, py), (width - right, py), grid_ink, 1)
        _text(canvas, f"{y:.1f}", (6, py + 4))
    cv2.rectangle(canvas, (left, top), (width - right, height - bottom), ink, 1)
    _text(canvas, "ms per image (log scale)", (width // 2 - 70, height - 10))
    _text(canvas, "PSNR (dB)", (6, top - 12))
    _text(canvas, title, (left + 80, top - 12), scale=0.5)
    for label, x, y in pts:
        px, py = to_px(x, y)
        cv2.circle(canvas, (px, py), 5, dot, -1, cv2.LINE_AA)
        text_width = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0]
        tx = px + 8 if px + 8 + text_width < width - 2 else px - 8 - text_width
        _text(canvas, label, (tx, py - 6))
    return canvas.astype(np.float32) / 255.0


def _fit(image: np.ndarray, tile: int) -> np.ndarray:
    """An image (H, W, C), C in {1, 3}, as uint8 RGB centred in a white tile x tile square."""
    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    height, width = rgb.shape[:2]
    scale = tile / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    small = cv2.resize(np.clip(rgb, 0.0, 1.0).astype(np.float32), size, interpolation=interpolation)
    canvas = np.full((tile, tile, 3), 255, np.uint8)
    top, left = (tile - size[1]) // 2, (tile - size[0]) // 2
    canvas[top:top + size[1], left:left + size[0]] = np.rint(small.reshape(size[1], size[0], 3) * 255)
    return canvas


def labelled_grid(rows: Sequence[Sequence[np.ndarray]], labels: Sequence[str], *, tile: int = 160, gap: int = 4,
                  header: int = 22) -> np.ndarray:
    """Images side by side under column labels: each row one sample, each column one label.

    Args:
        rows: per row, one image per label, float (H, W, C) with C in {1, 3} (gray is shown as RGB),
            values clipped to [0, 1]; each is scaled to fit a ``tile`` x ``tile`` square.
        labels: the column titles, drawn in a ``header``-pixel strip above the columns.
        tile: side of each square, in pixels.
        gap: white space between squares.

    Returns:
        float32 RGB image in [0, 1].
    """
    columns = len(labels)
    width = columns * tile + (columns - 1) * gap
    height = header + len(rows) * tile + max(0, len(rows) - 1) * gap
    canvas = np.full((height, width, 3), 255, np.uint8)
    for c, label in enumerate(labels):
        _text(canvas, label, (c * (tile + gap) + 3, header - 7), max_width=tile - 6)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            y, x = header + r * (tile + gap), c * (tile + gap)
            canvas[y:y + tile, x:x + tile] = _fit(image, tile)
    return canvas.astype(np.float32) / 255.0


def write_report(path: Path, *, args: Args, argv: Sequence[str], summary: Sequence[Mapping[str, Any]],
                 fields: Sequence[str], samples: Sequence[Sample], missing: Mapping[str, str],
                 notes: Sequence[str], device: torch.device, paired: Sequence[Mapping[str, Any]] = ()) -> str:
    """report.md (atomically); returns its text."""
    data = args.data if args.data is not None else DEFAULT_DATA[args.task]
    what = f"{len(samples)} image(s) of `{data}` (split {resolved_split(args)}, split seed {args.split_seed})"
    if args.task == "denoise":
        what += f", gray, Gaussian noise sigma {args.sigma:g} (0-255 scale, not clipped), noise seed {args.seed}"
    lines = [f"# Comparison: {args.task}", "",
             "Command: `" + shlex.join(["python", "-m", "experiments.compare", *argv]) + "`",
             "", f"Data: {what}. Device: {device}, {torch.get_num_threads()} CPU thread(s).", "",
             report_table(summary, fields), "",
             "Means and population standard deviations over images. Scores of the output clipped to [0, 1] "
             "against the reference at full resolution" + (" (hole: inside the mask only)" if args.task ==
                                                           "completion" else "")
             + "; ms/image: the method alone, no file I/O" + (", after one untimed warm-up run" if args.warmup else "")
             + "; params: learned parameters (- for methods that learn nothing).", ""]
    if paired:
        field = paired_field(args.task)
        lines += [f"## Paired with {args.paired_against}", "",
                  f"Per image, {LABELS[field]} of the method minus that of {args.paired_against}: mean, standard "
                  "error of the mean, and the images where the method scores higher.", "",
                  "| method | images | mean difference (dB) | s.e. | higher on |", "|---|---|---|---|---|",
                  *[f"| {e['method']} | {e['images']} | {e['mean']:+.3f} | {_fmt(e['sem'], 3)} | {e['higher']} |"
                    for e in paired], ""]
    sources = [f"- {entry['method']}: `{entry['source']}`" for entry in summary if entry.get("source")]
    if sources:
        lines += ["## Checkpoints", "", *sources, ""]
    if missing:
        lines += ["## Missing methods", "", *[f"- {name}: missing: {why}" for name, why in missing.items()], ""]
    if notes:
        lines += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    text = "\n".join(lines)
    write_text_atomic(path, text)
    return text


# --- the experiment ----------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run the comparison; returns the summary (one dict per method: means, stds, ms, params)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_config(Args, argv)
    check_args(args)
    wanted = requested_methods(args)
    flush_denormals()
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    device = select_device(args.device)
    out = Path(args.out)

    samples = load_samples(args)
    notes = ignored_flags(args)
    methods, missing = build_methods(args, wanted, device)
    for note in notes:
        print(f"note: {note}")
    for name, why in missing.items():
        print(f"{name}: missing: {why}", flush=True)
    fields = SCORE_FIELDS + (HOLE_FIELDS if args.task == "completion" else ())
    keep = min(args.samples, len(samples))
    rows: list[dict[str, Any]] = []
    outputs: dict[str, list[np.ndarray]] = {}
    for name, method in methods.items():
        method_rows, outputs[name] = evaluate(method, samples, warmup=args.warmup, keep=keep)
        rows += method_rows
        print(f"{name}: {len(samples)} image(s), PSNR {np.mean([r['psnr'] for r in method_rows]):.2f} dB, "
              f"{np.mean([r[TIMING_FIELD] for r in method_rows]):.1f} ms/image", flush=True)

    summary = summarize(rows, methods, fields)
    for entry in summary:
        entry["source"] = methods[entry["method"]].source
    paired = (paired_differences(rows, args.paired_against, paired_field(args.task))
              if args.paired_against in methods else ())  # a method missing its checkpoint is listed as such
    report = write_report(out / "report.md", args=args, argv=argv, summary=summary, fields=fields, samples=samples,
                          missing=missing, notes=notes, device=device, paired=paired)
    write_csv(out / "results.csv", rows, fields)
    save_image(out / "quality_vs_time.png", plot_quality_vs_time(
        [(e["method"], e[TIMING_FIELD], e["psnr"]) for e in summary if e["method"] != "input"],
        title=f"{args.task}: quality vs time"))
    shown = [name for name in methods if name != "input"]  # the input has its own column
    grid = [[s.input, *(outputs[name][i] for name in shown), s.reference] for i, s in enumerate(samples[:keep])]
    save_image(out / "samples.png", labelled_grid(grid, ["input", *shown, "reference"]))
    print("\n" + report)
    return summary


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as exc:  # bad arguments, data or checkpoints: no traceback
        print(f"compare: error: {exc}", file=sys.stderr)
        sys.exit(2)
