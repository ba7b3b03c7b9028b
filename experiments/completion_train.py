"""Train a pixel-wise image-completion policy (fill actions inside the hole) with A3C or SAC.

    python -m experiments.completion_train                                # embedded photos, synthetic holes
    python -m experiments.completion_train --data ../shared/data/bedroom/train
    python -m experiments.completion_train --preset over-unet             # A3C over the shipped U-Net's pixel
    python -m experiments.completion_train --data ../shared/data/bedroom/train \\
        --predictor rlenhance/weights/unet_completion.pt                  # + "take the U-Net's pixel"
    python -m experiments.completion_train --data ../shared/data/bedroom/train --set model.backbone=pixelrnn \\
        --set model.init_backbone=runs/supervised_train/checkpoints/best.pt --set model.freeze_backbone=100

``rlenhance/Completion-v0`` (its defaults are the task's): the hole is pre-filled by diffusion, then for
``task.steps`` steps every hole pixel picks a fill action (:mod:`envs.completion`); the reward is the decrease of
squared error to the original inside the hole.

Data: ``--data`` in the occluded-bedroom layout (``occluded_images/occluded_NAME`` + ``original_images/NAME``),
split with the split seed: the tuning split picks best.pt, scored once on the validation split after the run;
``--test`` adds a set scored for reporting only. Without ``--data``: the embedded photos with synthetic
``task.occlusion`` holes seeded by ``task.occlusion_seed`` and the image name.

Evaluation is on whole images: hole-only and whole-image PSNR / SSIM per image, averaged, for the policy, the
diffusion fill (``eval/input_*``) and the predictor (``eval/predictor_*``). best.pt has the highest
``eval/hole_psnr``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import torch

import envs
from agents.distributed import Ranks
from envs.checkpoints import rollout_policy_spec
from experiments import config
from experiments.config import Cost, Preset
from experiments.grids import map_captions, with_maps
from experiments.loop import TOP_ACTION_SHARE, DataSplits
from experiments.process import run_cli
from experiments.rl_common import (
    RL_FLAGS,
    RLConfig,
    RLRunSettings,
    Track,
    check_fractions,
    check_rl,
    data_splits,
    env_batch,
    estimate_seconds,
    fit,
    make_agent,
    setup,
    top_action_share,
    untracked,
    uses_block_actions,
    with_test_scores,
)
from experiments.run_settings import open_run, parse_run
from experiments.runs import usage_lines
from rlenhance import metrics
from rlenhance.checkpoint import RolloutPolicySpec
from rlenhance.completion import PolicyCompleter
from rlenhance.data import (
    TUNE_FRACTION,
    BuiltinImages,
    OccludedImage,
    OccludedPairs,
    occluded_test_set,
)
from rlenhance.errors import not_a_file
from rlenhance.metrics.hole import hole_psnr, hole_ssim
from rlenhance.models.pixelrnn import composite
from rlenhance.models.policy import PixelActorCritic
from rlenhance.ops.fill import diffusion_fill
from rlenhance.predictors import CompletionPredictor

ENV_ID = "rlenhance/Completion-v0"
#: Completion-v0's defaults: the task settings' defaults (one source).
ENV = MappingProxyType(envs.env_defaults(ENV_ID))
#: Fraction of the embedded photos held out for evaluation when no --data is given.
BUILTIN_VAL_FRACTION = 0.34
_MS_PER_S = 1000.0


@dataclass(frozen=True)
class TaskSettings:
    """Data, holes and the MDP (envs.completion; its defaults are Completion-v0's)."""

    data: str | None = None
    """occluded/original pair folder (occluded_images/ + original_images/, e.g. ../shared/data/bedroom/train)
    (none: the embedded scikit-image photos with synthetic holes)"""
    test: str | None = None
    """pair folder (same layout) scored whole at every evaluation for reporting only"""
    occlusion: Literal["box", "stroke", "mixed"] = ENV["occlusion"]
    """shape of the synthetic holes (embedded photos only)"""
    occlusion_seed: int = 0
    """seed of the synthetic evaluation holes (per image: this and the image name)"""
    predictor: str | None = None
    """completion checkpoint of experiments.supervised_train (e.g. rlenhance/weights/unet_completion.pt) whose
    prediction becomes an extra action"""
    crop: int = 48
    """crop size in pixels (the bedroom photos are 224x224 with a 67x67 hole)"""
    steps: int = ENV["max_episode_steps"]
    """fill steps per episode, in training and evaluation"""
    val_fraction: float = 0.1
    """fraction of the data pairs held out for validation (best.pt is reported on it)"""
    tune_fraction: float = TUNE_FRACTION
    """fraction of the data pairs held out of training as the tuning split, which picks best.pt (0: none; the
    validation split picks)"""
    eval_images: int = 0
    """evaluate on the first N tuning, validation (and test) images only (0: all)"""
    eval_size: int = 256
    """embedded photos are area-downscaled to this longer side before their evaluation holes are cut (0: full
    size); pair folders are evaluated at full size"""


@dataclass(frozen=True)
class Config(RLConfig):
    """Train a pixel-wise image-completion policy (per-pixel fill actions in the hole) with A3C or SAC."""

    task: TaskSettings = TaskSettings()
    run: RLRunSettings = RLRunSettings(episodes=100, batch=8, eval_every=50, out="runs/completion_train")


def over_unet() -> Config:
    """A3C over the bedroom pairs' whole 224 px images with the shipped completion U-Net's pixel as an
    extra action, 8 crops an episode at half-resolution actions, 150 episodes evaluated every 50. Not
    shipped: its best.pt took the U-Net's pixel everywhere (rlenhance/weights/README.md); picked on the
    validation split as that file was (no tuning split)."""
    return config.replace_path(Config(), {
        "task.data": "../shared/data/bedroom/train", "task.tune_fraction": 0.0,
        "task.predictor": "rlenhance/weights/unet_completion.pt",
        "task.crop": 224, "model.downscale": 2, "run.episodes": 150, "run.eval_every": 50})


#: ``--preset NAME`` -> the config it names and its cost per episode and evaluation (``benchmarks.preset_cost``).
PRESETS: Mapping[str, Preset] = MappingProxyType({"over-unet": Preset(over_unet, cpu=Cost(3.43, eval_s=25.6))})
#: The named flags (everything else: ``--set SECTION.KEY=VALUE``).
FLAGS: Mapping[str, str] = MappingProxyType({
    **RL_FLAGS, "data": "task.data", "test": "task.test", "occlusion": "task.occlusion",
    "predictor": "task.predictor", "crop": "task.crop", "steps": "task.steps", "val-fraction": "task.val_fraction",
    "eval-images": "task.eval_images"})


def check(cfg: Config, base: Config | None = None) -> Config:
    """Raise ValueError (FileNotFoundError for a missing predictor) naming a bad setting or one that
    does not apply."""
    cfg = check_rl(cfg, base)
    t = cfg.task
    check_fractions(t.val_fraction, t.tune_fraction)
    for name in ("eval_images", "eval_size", "occlusion_seed"):
        if getattr(t, name) < 0:
            raise ValueError(f"task.{name} {getattr(t, name)}: expected an integer >= 0")
    if t.crop < 1 or t.steps < 1:
        raise ValueError(f"task.crop {t.crop} / task.steps {t.steps}: expected integers >= 1")
    if t.data is not None and t.occlusion != ENV["occlusion"]:
        raise ValueError(f"task.occlusion {t.occlusion}: shapes the synthetic holes of the embedded photos; "
                         f"--data {t.data} brings its own holes")
    if t.predictor is not None and not_a_file(t.predictor):
        raise FileNotFoundError(f"--predictor {t.predictor}: {not_a_file(t.predictor)} (expected a completion "
                                "checkpoint of experiments.supervised_train)")
    return cfg


def open_data(cfg: Config) -> DataSplits:
    """The training, tuning (None with ``task.tune_fraction`` 0), validation and test (None without
    ``task.test``) data sets; see ``task.data`` / ``task.test``."""
    opener = BuiltinImages if cfg.task.data is None else partial(OccludedPairs, cfg.task.data)
    return data_splits(cfg, opener, BUILTIN_VAL_FRACTION, OccludedPairs)


def env_kwargs(cfg: Config) -> dict[str, Any]:
    """The Completion-v0 arguments of the run (JSON-able; saved in the checkpoints' spec, the predictor apart)."""
    t = cfg.task
    return {"crop": t.crop, "max_episode_steps": t.steps, "occlusion": t.occlusion,
            "smooth_iters": ENV["smooth_iters"], "reward": ENV["reward"]}


def inference_spec(cfg: Config) -> RolloutPolicySpec:
    """What :class:`rlenhance.completion.PolicyCompleter` needs to restore images (saved in the checkpoints)."""
    predictor = cfg.task.predictor
    return rollout_policy_spec("completion", env_kwargs(cfg), block_actions=uses_block_actions(cfg),
                               predictor=str(Path(predictor).resolve()) if predictor else None)


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
def evaluate(policy: PixelActorCritic, images: Sequence[OccludedImage], cfg: Config,
             predictor: CompletionPredictor | None = None,
             track: Track = untracked) -> tuple[dict[str, float], list[list[torch.Tensor]]]:
    """Greedy rollouts (:meth:`rlenhance.completion.PolicyCompleter.from_policy`) on the whole held-out images:
    scores of the output, the starting fill (``input_``) and the ``predictor`` (``predictor_``), per image then
    averaged. Returns the scores and the sample grid's rows (:func:`grid_captions`)."""
    start = time.perf_counter()
    completer = PolicyCompleter.from_policy(policy, inference_spec(cfg), predictor=predictor)
    results = completer.rollout_images([(im.occluded, im.mask) for im in images], batch_size=cfg.run.eval_batch,
                                       track=lambda batches: track(batches, "rollouts"))
    ms = (time.perf_counter() - start) * _MS_PER_S / len(images)
    outputs = [out for out, _ in results]
    per_image: dict[str, list[float]] = {}
    for image, output in track(list(zip(images, outputs)), "scores"):
        occluded, mask = image.occluded[None], image.mask[None]
        candidates = {"": output, "input_": diffusion_fill(occluded, mask, smooth_iters=ENV["smooth_iters"])[0]}
        if predictor is not None:
            candidates["predictor_"] = composite(occluded, predictor(occluded, mask), mask)[0]
        for prefix, result in candidates.items():
            for name, value in completion_scores(result, image).items():
                per_image.setdefault(prefix + name, []).append(value)
    scores = {f"eval/{k}": _mean_finite(v) for k, v in per_image.items()}
    scores["eval/ms_per_image"] = ms
    scores[TOP_ACTION_SHARE] = top_action_share([taken for _, taken in results], [im.mask for im in images])
    shown = range(min(cfg.run.samples, len(images)))
    return scores, with_maps([[images[i].occluded, outputs[i], images[i].original] for i in shown],
                             [results[i][1] for i in shown], actions=completer.transition.actions,
                             where=[images[i].mask for i in shown])


def grid_captions(cfg: Config) -> tuple[str, ...]:
    """The sample grids' columns: occluded | output | original, the actions in the hole, their key."""
    return map_captions(("occluded", "output", "original"), "actions", cfg.task.steps)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """The command line resolved and checked (:func:`experiments.run_settings.parse_run`)."""
    return parse_run(Config, sys.argv[1:] if argv is None else argv, presets=PRESETS, flags=FLAGS,
                     prog="completion_train", description=__doc__.split("\n\n")[0], check=check,
                     estimate=estimate_seconds)


def main(argv: Sequence[str] | None = None) -> Path:
    cfg = parse_args(argv)
    ranks = Ranks.from_env()
    device = setup(cfg, ranks)
    data = open_data(cfg)
    # the predictor as the trained policy will run it (the spec's path)
    predictor = CompletionPredictor.for_policy(inference_spec(cfg), device=device)
    run = open_run(cfg, ranks)

    def make_venv():
        return envs.make_vec(ENV_ID, device=device, **env_batch(cfg, ranks), data=data.train, predictor=predictor,
                             **env_kwargs(cfg))

    venv = make_venv()
    t = cfg.task
    images = {name: occluded_test_set(part, occlusion=t.occlusion, seed=t.occlusion_seed, device=device,
                                      limit=t.eval_images, max_side=t.eval_size)
              for name, part in ((data.split, data.picking), ("val", data.reported), ("test", data.test))
              if part is not None}
    counts = {f"{name}_images": len(part) for name, part in images.items()}
    agent = make_agent(cfg, venv, steps=t.steps, resume=run.resuming, ranks=ranks)

    def scored(policy: PixelActorCritic, part: Any) -> tuple[dict[str, float], list[list[torch.Tensor]]]:
        return evaluate(policy, part, cfg, predictor, track=run.track)

    out = fit(cfg, run, agent, venv, make_venv=make_venv,
              evaluate=with_test_scores(scored, images[data.split], images.get("test")),
              metric="eval/hole_psnr", spec=inference_spec(cfg),
              summary={**counts, "predictor": t.predictor is not None},
              captions=grid_captions(cfg), presets=PRESETS,
              check=check, split=data.split,
              report=None if data.reported is None else lambda policy: scored(policy, images["val"]))
    best = Path(out) / "checkpoints" / "best.pt"
    run.say(*usage_lines(best, ["complete", "occluded.png", "-o", "completed/", "--model", cfg.agent,
                    "--checkpoint", best]))
    return out


if __name__ == "__main__":
    run_cli(main, "completion_train")
