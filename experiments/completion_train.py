"""Train a pixel-wise image-completion policy (fill actions inside the hole) with A3C or SAC.

    python -m experiments.completion_train                                # embedded photos, synthetic holes
    python -m experiments.completion_train --data ../shared/data/bedroom/train
    python -m experiments.completion_train --data ../shared/data/bedroom/train \\
        --predictor runs/supervised_train/checkpoints/best.pt            # + "take the gated PixelRNN's pixel"
    python -m experiments.completion_train --data ../shared/data/bedroom/train \\
        --backbone pixelrnn --init-backbone runs/supervised_train/checkpoints/best.pt --freeze-backbone 100

``rlenhance/Completion-v0``: the hole (mask = 1) is pre-filled by diffusion, then for ``--steps``
steps every hole pixel picks a fill action (keep, diffuse, copy a neighbour, Gaussian, median, and
with ``--predictor`` the supervised model's prediction; see :mod:`envs.completion`); the reward is
the decrease of squared error to the original inside the hole (or the SSIM gain).

Data: ``--data`` in the occluded-bedroom layout (``occluded_images/occluded_NAME`` +
``original_images/NAME``, the mask estimated from the pair), split deterministically
(``--val-fraction``, ``--split-seed``): training on ``split="train"``, validation on the held-out
``split="val"``, which picks best.pt. ``--test`` (same layout) adds a test set, scored at the same
evaluations for reporting only (``test/hole_psnr`` ..., the summary's ``test_*`` columns beside
``val_*``); it never picks a checkpoint. Without ``--data``: the embedded scikit-image photos, split
alike, with synthetic ``--occlusion`` holes; the evaluation holes are seeded by
``--occlusion-seed`` and the image name, so every run sees the same (the photos are first
area-downscaled to ``--eval-size``).

Evaluation is on whole images: hole-only PSNR (:func:`rlenhance.models.pixelrnn.hole_psnr`),
hole-only SSIM (the SSIM map averaged over the hole) and whole-image PSNR / SSIM, per image then
averaged (images without a hole are left out of the hole metrics), for the policy's output, the
starting diffusion fill (``eval/input_*``) and, with ``--predictor``, the predictor's composite
(``eval/predictor_*``). best.pt has the highest validation ``eval/hole_psnr``. The loop, run folder and
``--resume`` are those of :func:`experiments.rl_common.train`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import envs
from agents.distributed import Ranks
from agents.rollout import load_predictor, rollout_images
from envs.checkpoints import rollout_policy_spec
from envs.completion import REWARDS
from experiments.rl_common import (
    RLArgs,
    env_batch,
    make_agent,
    open_run,
    resolve_args,
    run_cli,
    setup,
    split_seed,
    train,
    uses_block_actions,
    with_test_scores,
)
from experiments.runs import arg, parse_config
from rlenhance import metrics
from rlenhance.checkpoint import RolloutPolicySpec
from rlenhance.data import (
    DEFAULT_COLOR_IMAGES,
    BuiltinImages,
    OccludedImage,
    OccludedPairs,
    occluded_test_set,
    split_names,
)
from rlenhance.errors import DatasetError
from rlenhance.models.pixelrnn import composite, hole_psnr, hole_ssim
from rlenhance.models.policy import PixelActorCritic
from rlenhance.ops.fill import diffusion_fill

ENV_ID = "rlenhance/Completion-v0"
OCCLUSIONS = ("box", "stroke", "mixed")
#: Fraction of the embedded photos held out for evaluation when neither --data nor --test is given.
BUILTIN_VAL_FRACTION = 0.34
_MS_PER_S = 1000.0


@dataclass
class Args(RLArgs):
    """Train a pixel-wise image-completion policy (per-pixel fill actions in the hole) with A3C or SAC."""

    data: str | None = arg(None, "occluded/original pair folder (occluded_images/ + original_images/, e.g. "
                                 "../shared/data/bedroom/train); default: scikit-image photos with synthetic holes")
    test: str | None = arg(None, "pair folder (same layout) scored whole at every evaluation for reporting only "
                                 "(test/hole_psnr ...); best.pt is still chosen on the validation split of --data; "
                                 "default: no test set")
    occlusion: str = arg("box", "shape of the synthetic holes (embedded photos only)", choices=OCCLUSIONS)
    occlusion_seed: int = arg(0, "seed of the synthetic evaluation holes (per image: this and the image name)")
    predictor: str | None = arg(None, "completion checkpoint of experiments.supervised_train (e.g. --model "
                                      "gated-pixelrnn --task completion) whose prediction becomes an extra action")
    reward: str = arg("mse", "reward: decrease of squared error in the hole, or the SSIM gain", choices=REWARDS)
    smooth_iters: int = arg(20, "diffusion rounds of the starting fill inside the hole")
    val_fraction: float = arg(0.1, "fraction of the --data pairs held out for validation (it picks best.pt)")
    eval_images: int = arg(0, "evaluate on the first N validation images (and N --test images) only (0: all)")
    eval_size: int = arg(256, "embedded photos are area-downscaled to this longer side before their evaluation "
                              "holes are cut (0: full size); pair folders are evaluated at full size")
    episodes: int = arg(100, "training episodes (each a batch of crops for --steps steps, then the agent's updates); "
                             "the defaults finish in minutes on 2 CPU cores")
    batch: int = arg(8, "crops per episode (the vector env's num_envs)")
    crop: int = arg(48, "crop size in pixels (the bedroom photos are 224x224 with a 67x67 hole)")
    steps: int = arg(5, "fill steps per episode, in training and evaluation")
    eval_every: int = arg(50, "evaluate on the validation (and --test) images every N episodes (and at the end)")
    out: str = arg("runs/completion_train", "run folder")


def open_data(args: Args) -> tuple[Any, Any, Any | None]:
    """(training, validation, test) data sets; see the ``--data`` / ``--test`` help. The
    validation split is held out of ``--data`` (of the embedded photos without it) by
    ``split_seed`` whether or not ``--test`` is given; the test set is None without ``--test``."""
    try:
        if args.data is None:
            train_names, val_names = split_names(DEFAULT_COLOR_IMAGES, val_fraction=BUILTIN_VAL_FRACTION,
                                                 seed=split_seed(args), group=None)
            train_set, val_set = BuiltinImages(names=train_names), BuiltinImages(names=val_names)
        else:
            split = dict(val_fraction=args.val_fraction, seed=split_seed(args))
            train_set, val_set = (OccludedPairs(args.data, split=part, **split) for part in ("train", "val"))
    except DatasetError as exc:
        raise DatasetError(f"--data {args.data}: {exc}") from exc
    test_set = None
    if args.test is not None:
        try:
            test_set = OccludedPairs(args.test)
        except DatasetError as exc:
            raise DatasetError(f"--test {args.test}: {exc}") from exc
    return train_set, val_set, test_set


def check_task_args(args: Args) -> None:
    """Raise ValueError (FileNotFoundError for a missing predictor) naming the first bad argument."""
    if not 0.0 < args.val_fraction < 1.0:
        raise ValueError(f"--val-fraction {args.val_fraction}: expected a number in (0, 1)")
    for name in ("smooth_iters", "eval_images", "eval_size", "occlusion_seed"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected an integer >= 0")
    if args.predictor is not None and not Path(args.predictor).is_file():
        raise FileNotFoundError(f"--predictor {args.predictor}: no such file (expected a completion checkpoint of "
                                "experiments.supervised_train)")


def env_kwargs(args: Args) -> dict[str, Any]:
    """The Completion-v0 arguments of the run (JSON-able; saved in the checkpoints' spec; the
    predictor is saved as its path)."""
    return {"crop": args.crop, "max_episode_steps": args.steps, "occlusion": args.occlusion,
            "smooth_iters": args.smooth_iters, "reward": args.reward}


def inference_spec(args: Args) -> RolloutPolicySpec:
    """What :func:`agents.rollout.load_rollout_policy` needs to restore images (saved in the checkpoints)."""
    return rollout_policy_spec("completion", env_kwargs(args), block_actions=uses_block_actions(args),
                               predictor=str(Path(args.predictor).resolve()) if args.predictor else None)


def completion_scores(output: torch.Tensor, image: OccludedImage) -> dict[str, float]:
    """Hole PSNR / SSIM and whole-image PSNR / SSIM of one completed image (3, H, W)."""
    out, original, mask = output.clamp(0.0, 1.0)[None], image.original[None], image.mask[None]
    return {"hole_psnr": float(hole_psnr(out, original, mask)[0]),
            "hole_ssim": float(hole_ssim(out, original, mask)[0]),
            "psnr": float(metrics.psnr(out, original)[0]), "ssim": float(metrics.ssim(out, original)[0])}


def _mean_finite(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


@torch.no_grad()
def evaluate(policy: PixelActorCritic, task: Any, images: Sequence[OccludedImage], args: Args,
             predictor: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
             ) -> tuple[dict[str, float], list[list[torch.Tensor]]]:
    """Greedy rollouts on the whole held-out images; scores of the output, of the starting fill
    (``input_``) and of the predictor (``predictor_``), per image then averaged. Returns the scores
    and grid rows (occluded | output | original)."""
    start = time.perf_counter()
    outputs = rollout_images(policy, task, [{"occluded": im.occluded, "original": im.original, "mask": im.mask}
                                            for im in images],
                             batch_size=args.eval_batch, steps=args.steps, block_actions=uses_block_actions(args))
    ms = (time.perf_counter() - start) * _MS_PER_S / len(images)
    per_image: dict[str, list[float]] = {}
    for image, output in zip(images, outputs):
        occluded, mask = image.occluded[None], image.mask[None]
        candidates = {"": output, "input_": diffusion_fill(occluded, mask, smooth_iters=args.smooth_iters)[0]}
        if predictor is not None:
            candidates["predictor_"] = composite(occluded, predictor(occluded, mask), mask)[0]
        for prefix, result in candidates.items():
            for name, value in completion_scores(result, image).items():
                per_image.setdefault(prefix + name, []).append(value)
    scores = {f"eval/{k}": _mean_finite(v) for k, v in per_image.items()}
    scores["eval/ms_per_image"] = ms
    rows = [[im.occluded, out, im.original] for im, out in zip(images, outputs)]
    return scores, rows


def main(argv: Sequence[str] | None = None) -> Path:
    args = resolve_args(parse_config(Args, argv))
    check_task_args(args)
    ranks = Ranks.from_env()
    device = setup(args, ranks)
    train_set, val_set, test_set = open_data(args)
    predictor = load_predictor(args.predictor, device=device) if args.predictor else None
    run = open_run(args, ranks)

    def make_venv():
        return envs.make_vec(ENV_ID, device=device, **env_batch(args, ranks), data=train_set, predictor=predictor,
                             **env_kwargs(args))

    venv = make_venv()
    val_images, test_images = (None if data is None else
                               occluded_test_set(data, occlusion=args.occlusion, seed=args.occlusion_seed,
                                                 device=device, limit=args.eval_images, max_side=args.eval_size)
                               for data in (val_set, test_set))
    counts = {f"{name}_images": len(images) for name, images in (("val", val_images), ("test", test_images))
              if images is not None}
    agent = make_agent(args, venv, resume=run.resuming, ranks=ranks)
    return train(args, run, agent, venv, make_venv=make_venv,
                 evaluate=with_test_scores(lambda policy, images: evaluate(policy, venv.task, images, args, predictor),
                                           val_images, test_images),
                 metric="eval/hole_psnr", spec=inference_spec(args),
                 summary={**counts, "predictor": args.predictor is not None},
                 title=f"completion_train: {run.dir}")


if __name__ == "__main__":
    run_cli(main, "completion_train")
