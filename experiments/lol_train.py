"""Train a pixel-wise low-light enhancer (ReLLIE-style curve estimation) with A3C or SAC.

    python -m experiments.lol_train                       # embedded photos, darkened synthetically
    python -m experiments.lol_train --data ../shared/data/sice_pairs/train --conditioned
    python -m experiments.lol_train --agent sac           # continuous alphas, tanh-Gaussian actor

The run folder (``--out``) gets config.json, TensorBoard events, metrics.csv, checkpoints
(last.pt every evaluation, best.pt by validation PSNR, or by the exposure loss without references),
sample grids (input | output | reference) and a summary table. Ctrl-C (SIGINT) or SIGTERM saves
checkpoints/last.pt before the next episode and exits with code 130 / 143; ``--resume`` continues a
stopped or killed run from last.pt to the same episode count; episode ``k`` always resets the env with
seed ``seed * 1_000_003 + k``, so a resumed run draws the same images as an uninterrupted one. The loop
is :func:`experiments.rl_common.train`; the checkpoints' :class:`~rlenhance.checkpoint.LowLightPolicySpec`
(:func:`inference_spec`) is what :class:`rlenhance.Enhancer` needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Mapping, Sequence

import torch

import envs
from agents.a3c import A3CConfig
from agents.sac import SACConfig
from envs.base import open_dataset
from envs.lowlight import COND_FIELDS, REWARDS, LowLightTask
from experiments.rl_common import RLArgs, make_agent, open_run, resolve_args, run_cli, setup, split_seed, train
from experiments.runs import arg, parse_config
from rlenhance import losses, metrics
from rlenhance.checkpoint import LowLightPolicySpec
from rlenhance.data import (DEFAULT_COLOR_IMAGES, BuiltinImages, LowLightTestSet, ResizedImages, lowlight_test_set,
                            split_names)
from rlenhance.enhance import greedy_rollout
from rlenhance.models.policy import PixelActorCritic

ENV_ID = "rlenhance/LowLight-v0"
#: Exposure targets at which a conditioned policy's brightness is checked in every evaluation.
EXPOSURE_SWEEP = (0.4, 0.5, 0.6, 0.7)
#: Fraction of the embedded photos held out for validation when no --data is given.
BUILTIN_VAL_FRACTION = 0.34
#: ReLLIE discounts with gamma > 1; per-step improvements need no discount for A3C.
A3C_GAMMA = 1.0


@dataclass
class Args(RLArgs):
    """Train a pixel-wise low-light enhancer (ReLLIE-style curves, non-reference or reference rewards)."""

    AGENT_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = MappingProxyType({
        "a3c": MappingProxyType({"lr": A3CConfig.lr, "gamma": A3C_GAMMA, "action": "discrete"}),
        "sac": MappingProxyType({"lr": SACConfig.actor_lr, "gamma": SACConfig.gamma, "action": "continuous"}),
    })

    data: str | None = arg(None, "LOL layout (our485/ + eval15/), a low/+high/ pair folder, or a folder of "
                                 "low-light images alone; default: scikit-image photos darkened synthetically")
    reward: str = arg("nonref", "reward: non-reference losses, or ssim/psnr/mse against references", choices=REWARDS)
    w_exposure: float = arg(30.0, "weight of the exposure term (distance of patch means to the target)")
    w_color: float = arg(5.0, "weight of the colour-constancy term")
    w_spatial: float = arg(1.0, "weight of the spatial-consistency term (gradients vs the input)")
    w_smooth: float = arg(5.0, "weight of the smoothness (total variation) of each step's alpha map")
    exposure_target: float = arg(0.5, "target mean brightness E of the exposure term")
    exposure_patch: int = arg(8, "patch size of the exposure term (Zero-DCE: 16; smaller = more local credit)")
    conditioned: bool = arg(False, "sample the exposure target and weights per episode and feed them to the "
                                   "policy, so one model serves any setting at test time")
    exposure_range: tuple[float, float] = arg((0.4, 0.7), "with --conditioned: the range the exposure target is drawn "
                                                          "from per episode (a range wider than the targets you will "
                                                          "ask for keeps them away from its edges)")
    weight_range: tuple[float, float] = arg((0.5, 2.0), "with --conditioned: each reward weight is multiplied by a "
                                                        "log-uniform factor in this range per episode (1 1: fixed "
                                                        "weights, only the exposure target varies)")
    smooth_on_mean: bool = arg(False, "a3c: apply the smoothness weight --w-smooth as a differentiable penalty on "
                                      "the policy's expected alpha map instead of a reward on the sampled one "
                                      "(which penalises exploration noise)")
    exposure_gap: bool = arg(False, "also feed the policy the signed per-pixel distance to the exposure target "
                                    "(E - mean brightness) as an input plane")
    episodes: int = arg(1000, "training episodes (each a batch of crops for --steps steps, then one update)")
    batch: int = arg(16, "crops per episode (the vector env's num_envs)")
    crop: int = arg(64, "crop size in pixels")
    steps: int = arg(6, "curve steps per training episode (ReLLIE trains with 10)")
    test_steps: int = arg(6, "curve steps at evaluation and inference (ReLLIE tests with 6)")
    alpha_mode: str = arg("mean", "test-time alpha of a discrete policy: the expected alpha, or the most "
                                  "probable one (ReLLIE)", choices=("mean", "argmax"))
    action: str | None = arg(None, "per-pixel actions: 27 alphas (ReLLIE) or continuous alpha (unset: discrete "
                                   "for a3c, continuous for sac)", choices=("discrete", "continuous"))
    alpha_channels: int = arg(3, "alpha maps per step: 3 (a curve per RGB channel, ReLLIE) or 1 (one curve for all "
                                 "channels: brightness changes, hues stay)", choices=(1, 3))
    damping: float = arg(0.0, "ReLLIE's damping d in s <- (1-d) LE(s) + d s (ReLLIE: 0.2)")
    gamma: float | None = arg(None, f"discount factor (unset: {A3C_GAMMA:g} for a3c, as rewards are per-step "
                                    f"improvements; {SACConfig.gamma:g} for sac, which needs gamma < 1)")
    width: int = arg(32, "channels of the policy network (ReLLIE: 64)")
    policy_side: int = arg(0, "train and validate on images area-downscaled to this longer side, and record it as "
                              "the Enhancer's working resolution (curves estimated at low resolution and upsampled, "
                              "as Zero-DCE++); 0: native resolution (the Enhancer then works at 512)")
    downscale: int = arg(4, "the policy sees the image average-pooled by this factor; its maps are upsampled")
    eval_every: int = arg(250, "evaluate on the validation split every N episodes (and at the end)")
    eval_size: int = arg(256, "validation images are area-downscaled to this longer side")
    val_fraction: float = arg(0.1, "fraction of scenes held out for validation (pair folders)")
    out: str = arg("runs/lol_train", "run folder")


def load_validation(args: Args, device: torch.device) -> LowLightTestSet:
    """Validation images (names, low (N, 3, h, w), high or None), area-downscaled to ``eval_size``
    and centre-cropped to a common size so they batch (:func:`rlenhance.data.lowlight_test_set`:
    images smaller than ``eval_size`` are not upscaled; the common size is then the smallest height
    and width). Synthetic lows use the fixed seed ``--seed``."""
    if args.data is None:
        train_names, val_names = split_names(DEFAULT_COLOR_IMAGES, val_fraction=BUILTIN_VAL_FRACTION,
                                             seed=split_seed(args))
        dataset = BuiltinImages(names=val_names)
    else:
        dataset = open_dataset(args.data, kind="paired", split="val", gray=False, seed=split_seed(args))
    if args.policy_side:
        dataset = ResizedImages(dataset, args.policy_side)
    return lowlight_test_set(dataset, args.eval_size, seed=args.seed, device=device)


def training_data(args: Args):
    """What the training env draws from (the embedded photos minus the validation ones by default)."""
    if args.data is None:
        train_names, _ = split_names(DEFAULT_COLOR_IMAGES, val_fraction=BUILTIN_VAL_FRACTION,
                                     seed=split_seed(args))
        data = BuiltinImages(names=train_names)
    elif args.policy_side:  # resized below, so the split is taken here rather than by the env
        data = open_dataset(args.data, kind="paired", split="train", gray=False, seed=split_seed(args))
    else:
        return args.data
    return ResizedImages(data, args.policy_side) if args.policy_side else data


def env_kwargs(args: Args) -> dict:
    return dict(crop=args.crop, max_episode_steps=args.steps, action_type=args.action, alpha_channels=args.alpha_channels,
                damping=args.damping,
                reward=args.reward, w_exposure=args.w_exposure, w_color=args.w_color, w_spatial=args.w_spatial,
                w_smooth=0.0 if args.smooth_on_mean else args.w_smooth, exposure_target=args.exposure_target, exposure_patch=args.exposure_patch,
                conditioned=args.conditioned, exposure_range=args.exposure_range,
                weight_range=args.weight_range, observe_exposure_gap=args.exposure_gap,
                split="train", split_seed=split_seed(args))


def inference_spec(args: Args, task: LowLightTask) -> LowLightPolicySpec:
    """What the checkpoints carry for ``rlenhance.Enhancer``: how the training env ran the policy."""
    return LowLightPolicySpec(
        alpha_table=[float(a) for a in task.alpha_table.cpu()],
        damping=args.damping,
        action_type=args.action,
        test_steps=args.test_steps,
        alpha_mode=args.alpha_mode,
        cond_fields=list(COND_FIELDS),
        cond_scale=[float(c) for c in task.cond_scale.cpu()],
        cond_offset=[float(c) for c in task.cond_offset.cpu()],
        # the env's own setting, which the policy saw as cond in training (with --smooth-on-mean the
        # env's w_smooth is 0: the smoothness weight went to the A3C loss instead)
        setting={"exposure_target": task.exposure_target, **{k: float(v) for k, v in task.weights.items()}},
        observe_exposure_gap=args.exposure_gap,
        max_side=args.policy_side or None,
        conditioned=args.conditioned,
    )


def rollout_at(policy: PixelActorCritic, task: LowLightTask, args: Args, low: torch.Tensor,
               exposure_target: float | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Greedy rollout (``rlenhance.enhance.greedy_rollout``, as at inference) at the fixed
    setting, or with its exposure target replaced (conditioned policies)."""
    target = args.exposure_target if exposure_target is None else exposure_target
    cond = task.setting_cond(low.shape[0], target) if policy.cond_dim else None
    return greedy_rollout(policy, low, cond, steps=args.test_steps, alpha_table=task.alpha_table,
                          damping=args.damping, alpha_mode=args.alpha_mode,
                          exposure_target=target if args.exposure_gap else None)


@torch.no_grad()
def evaluate(policy: PixelActorCritic, task: LowLightTask, args: Args, low: torch.Tensor,
             high: torch.Tensor | None) -> tuple[dict[str, float], list[list[torch.Tensor]]]:
    """Greedy rollout on the validation images at the fixed setting; metrics are per-image means.
    A conditioned policy is also run at each exposure target of :data:`EXPOSURE_SWEEP`:
    ``eval/exposure_gap_max`` is the largest |mean output brightness - target| (how well
    ``--exposure`` customises). Returns the scores and the sample grid rows (input | output | reference)."""
    start = time.perf_counter()
    out, maps = rollout_at(policy, task, args, low)
    ms = (time.perf_counter() - start) * 1000 / low.shape[0]
    scores = {
        "eval/brightness": float(out.mean()),
        "eval/exposure_loss": float(losses.exposure_loss(out, target=args.exposure_target).mean()),
        "eval/color_loss": float(losses.color_constancy_loss(out).mean()),
        "eval/spatial_loss": float(losses.spatial_consistency_loss(out, low).mean()),
        "eval/smooth_loss": float(torch.stack([losses.illumination_smoothness_loss(a) for a in maps]).mean()),
        "eval/ms_per_image": ms,
    }
    if high is not None:
        scores["eval/psnr"] = float(metrics.psnr(out, high).mean())
        scores["eval/ssim"] = float(metrics.ssim(out, high).mean())
        scores["eval/uqi"] = float(metrics.uqi(out, high).mean())
    if args.conditioned and policy.cond_dim:
        # the fixed setting's target, when in the sweep, reuses the rollout above
        gaps = [float((out if e == args.exposure_target else rollout_at(policy, task, args, low, e)[0]).mean()) - e
                for e in EXPOSURE_SWEEP]
        scores["eval/exposure_gap_max"] = max(abs(g) for g in gaps)
    rows = [[low[i], out[i]] + ([high[i]] if high is not None else []) for i in range(low.shape[0])]
    return scores, rows


def best_score(scores: Mapping[str, float]) -> float:
    """What picks best.pt: validation PSNR with references, else minus the exposure loss."""
    return scores.get("eval/psnr", -scores["eval/exposure_loss"])


def main(argv: Sequence[str] | None = None) -> Path:
    args = resolve_args(parse_config(Args, argv))
    if args.smooth_on_mean and (args.agent != "a3c" or args.action != "discrete"):
        raise ValueError("--smooth-on-mean: needs --agent a3c with --action discrete (the expected alpha of a "
                         "categorical policy)")
    device = setup(args)
    run = open_run(args)

    def make_venv():
        return envs.make_vec(ENV_ID, num_envs=args.batch, device=device, data=training_data(args),
                             **env_kwargs(args))

    venv = make_venv()
    names, val_low, val_high = load_validation(args, device)
    a3c_extra = ({"mean_action_tv": args.w_smooth, "action_values": tuple(venv.task.alpha_table.tolist())}
                 if args.smooth_on_mean else None)
    agent = make_agent(args, venv, a3c_extra=a3c_extra, resume=run.resuming,
                       keys=("image", "original", "exposure_gap"))
    return train(args, run, agent, venv, make_venv=make_venv,
                 evaluate=lambda policy: evaluate(policy, venv.task, args, val_low, val_high),
                 metric=best_score, spec=inference_spec(args, venv.task),
                 summary={"val_images": len(names), "input_brightness": float(val_low.mean())},
                 title=f"lol_train: {run.dir}")


if __name__ == "__main__":
    run_cli(main, "lol_train")
