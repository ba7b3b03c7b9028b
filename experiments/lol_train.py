"""Train a pixel-wise low-light enhancer (ReLLIE-style curve estimation) with A3C or SAC.

    python -m experiments.lol_train                       # the shipped model's recipe, embedded photos, ~5 min
    python -m experiments.lol_train --data ../shared/data/sice_pairs/train --crop 128 --batch 32 --episodes 4500
        --keep-evals --seed 1 --split-seed 0   # (one line) the shipped model; benchmarks.knobs picks the episode
    python -m experiments.lol_train --preset rellie       # ReLLIE's configuration (RL-vs-RL comparisons)
    python -m experiments.lol_train --agent sac           # continuous alphas, tanh-Gaussian actor

The defaults are the recipe of the shipped ``rlenhance/weights/lowlight_a3c.pt`` (see its model card),
with fewer episodes and smaller batches so that a run on the embedded photos ends within minutes on two
CPU cores: a policy conditioned on the exposure target and on each reward weight over its range
(``--w-*-range``, one weight varied per crop: ``--weight-draw one``, log-encoded, FiLM-modulated
features), brightening-only curves (``--alpha-min 0``), one curve for R, G and B, estimated at 128 px, an
exposure term that holds the image mean to the target relative to the target (``--exposure-mean``,
``--exposure-relative``). The checkpoint also carries what the Enhancer applies after the policy, as the
shipped model does: a cap on how far a step may lift the mean above the target, 0.04 at the default
exposure weight and weighted by it (``--max-overshoot``, ``--overshoot-weighted``; validation applies
it too, training only with ``--cap-in-training``), and a light blur of the result (``--blur-sigma``).
``--preset rellie`` sets ReLLIE's configuration instead (:data:`PRESETS`:
27 per-channel alphas coupled 0.9 / 0.1, damping 0.2, gamma 1.05, its reward weights and colour-ratio
term, 10 training / 6 test steps, a 64-channel full-resolution network); flags given after it (or
before it) override it. The checkpoint records the ranges (``Enhancer.setting_ranges``) and the
Enhancer refuses settings outside them; ``benchmarks.knobs`` checks that every knob does what it says.

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

import dataclasses
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import torch

import envs
from agents.a3c import A3CConfig
from agents.distributed import Ranks
from agents.sac import SACConfig
from envs.checkpoints import lowlight_policy_spec
from envs.lowlight import RELLIE_ALPHAS, REWARDS, WEIGHT_DRAWS, WEIGHT_FIELDS, LowLightTask
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
)
from experiments.runs import arg, given_flags, parse_config
from rlenhance import losses, metrics
from rlenhance.checkpoint import COND_ENCODINGS, LowLightPolicySpec
from rlenhance.data import (
    DEFAULT_COLOR_IMAGES,
    BuiltinImages,
    LowLightTestSet,
    ResizedImages,
    lowlight_test_set,
    open_dataset,
    split_names,
)
from rlenhance.enhance import greedy_rollout
from rlenhance.models.policy import PixelActorCritic
from rlenhance.ops import check_blur_sigma, check_max_overshoot

ENV_ID = "rlenhance/LowLight-v0"
#: Exposure targets at which a conditioned policy's brightness is checked in every evaluation.
EXPOSURE_SWEEP = (0.4, 0.5, 0.6, 0.7)
#: Fraction of the embedded photos held out for validation when no --data is given.
BUILTIN_VAL_FRACTION = 0.34
#: ReLLIE discounts with gamma > 1; per-step improvements need no discount for A3C.
A3C_GAMMA = 1.0
#: ``--exposure-mean``: the image mean's error weighs 1 + 4 against the patch means' spread, enough for a
#: heavier ``--w-exposure`` to pull the mean itself to the target (docs/customisation.md, runs k13b-i).
EXPOSURE_MEAN = 4.0
#: ``A3CConfig.action_penalty`` with ``--smooth-on-mean``: a pure multiplier, the env's per-row ``w_smooth``
#: (``info["action_penalty_weight"]``) carries the magnitude, so the number has one owner, the env's setting.
SMOOTH_ON_MEAN_COEF = 1.0
#: ``--preset NAME`` -> the flags it stands for (given before the command line's own, which override them).
#: rellie: ReLLIE's configuration (REFERENCES: 27 alphas, R/G coupled 0.9 / 0.1 to B, damping 0.2, reward
#: -(spatial + 80 exposure(16x16, E = 0.6) + 200 TV(alpha) + 20 colour-ratio change), entropy 0.01,
#: gamma 1.05, Adam 5e-4, batch 32 of 70x70 crops, 10 steps in every training episode and 6 at test, a
#: 64-channel net at full resolution picking the most probable alpha; its 30,000 episodes are left to --episodes).
PRESETS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "rellie": ("--agent", "a3c", "--action", "discrete", "--alpha-channels", "3", "--channel-coupling", "0.9",
               "--damping", "0.2", "--gamma", "1.05", "--reward", "nonref", "--w-exposure", "80",
               "--exposure-target", "0.6", "--exposure-patch", "16", "--exposure-mean", "0", "--exposure-over", "0",
               "--no-exposure-relative", "--alpha-min", f"{RELLIE_ALPHAS[0]:g}", "--w-color", "0", "--w-spatial", "1",
               "--w-smooth", "200", "--w-color-ratio", "20", "--no-smooth-on-mean", "--no-conditioned",
               "--no-exposure-gap", "--entropy", "0.01", "--lr", "5e-4", "--lr-decay", "none", "--batch", "32",
               "--crop", "70", "--steps", "10", "--min-steps", "10", "--test-steps", "6", "--alpha-mode", "argmax",
               "--width", "64", "--downscale", "1", "--policy-side", "0", "--blur-sigma", "0",
               "--max-overshoot", "inf"),
})


@dataclass
class Args(RLArgs):
    """Train a pixel-wise low-light enhancer (ReLLIE-style curves, non-reference or reference rewards)."""

    AGENT_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = MappingProxyType({
        "a3c": MappingProxyType({"lr": A3CConfig.lr, "gamma": A3C_GAMMA, "action": "discrete", "lr_decay": "poly"}),
        "sac": MappingProxyType({"lr": SACConfig.actor_lr, "gamma": SACConfig.gamma, "action": "continuous",
                                 "lr_decay": "none"}),
    })

    preset: str | None = arg(None, "start from a named configuration (PRESETS; rellie: ReLLIE's); other flags "
                                   "override it", choices=tuple(PRESETS))
    data: str | None = arg(None, "LOL layout (our485/ + eval15/), a low/+high/ pair folder, or a folder of "
                                 "low-light images alone; default: scikit-image photos darkened synthetically")
    reward: str = arg("nonref", "reward: non-reference losses, or ssim/psnr/mse against references", choices=REWARDS)
    w_exposure: float = arg(300.0, "weight of the exposure term (distance of patch means to the target)")
    w_color: float = arg(20.0, "weight of the colour-constancy term")
    w_spatial: float = arg(1.0, "weight of the spatial-consistency term (gradients vs the input)")
    w_smooth: float = arg(10.0, "weight of the smoothness (total variation) of each step's alpha map")
    w_color_ratio: float = arg(0.0, "weight of ReLLIE's colour-ratio term (change of each pixel's channel ratios "
                                    "against the input; ReLLIE: 20); never conditioned")
    exposure_target: float = arg(0.4, "target mean brightness E of the exposure term (the default setting)")
    exposure_patch: int = arg(32, "patch size of the exposure term (Zero-DCE: 16; smaller = more local credit)")
    exposure_mean: float = arg(EXPOSURE_MEAN, "weight, relative to the patches, of the whole image's mean in the "
                                              "exposure term: > 0 makes a heavier --w-exposure pull the image mean "
                                              "itself to the target (patches alone let bright patches hold it off)")
    exposure_over: float = arg(0.0, "extra weight of exposure errors above the target: a patch mean or image mean "
                                    "brighter than the target counts 1 + this times its square error (0: "
                                    "symmetric); tried against outputs pushed past a high target, it lowers every "
                                    "target's brightness instead (docs/customisation.md, h16)")
    exposure_relative: bool = arg(True, "scale the exposure term by (--exposure-target / E)^2 for each episode's "
                                         "target E: errors relative to the target, so low targets are held as "
                                         "tightly as high ones (unchanged at the default target)")
    exposure_relative_floor: float = arg(0.0, "with --exposure-relative: the smallest factor it applies (1: targets "
                                              "above --exposure-target weigh as it does instead of (target / E)^2 "
                                              "less); tried against outputs pushed past a high target, it makes the "
                                              "high targets brighter still (docs/customisation.md, h16)")
    max_overshoot: float | None = arg(0.04, "the cap on the overshoot: no curve step lifts an image's mean more than "
                                            "this above its exposure target, 0 <= cap < 1 (the step is scaled down, "
                                            "rlenhance.ops.cap_mean); the checkpoint records it, the Enhancer applies "
                                            "it by default and the validation here does too; the training env only "
                                            "with --cap-in-training (the shipped model: 0.04, weighted, inference "
                                            "only); inf: no cap")
    overshoot_weighted: bool = arg(True, "with --max-overshoot: the cap is the one at --w-exposure, and a setting "
                                         "whose exposure weight is w gets cap * sqrt(w_exposure / w), so a heavier "
                                         "exposure weight holds the target more tightly (rlenhance.ops."
                                         "overshoot_limit); the checkpoint records it")
    cap_in_training: bool = arg(False, "with --max-overshoot: the training env caps its steps too, so the policy "
                                       "learns in the MDP it is run in (tried in the h17 runs: the curves came out "
                                       "nearly global and w_smooth stopped working, docs/customisation.md); "
                                       "default: the cap acts at validation and inference only")
    #: ``--max-overshoot inf`` is no cap (None).
    NONE_SPELLING: ClassVar[Mapping[str, str]] = MappingProxyType({"max_overshoot": "inf"})

    @classmethod
    def added_later(cls, saved: Mapping[str, Any]) -> dict[str, Any]:
        """A run saved before ``--overshoot-weighted`` and ``--cap-in-training`` existed: its cap, if it
        had one, was fixed and in the training env."""
        return {"overshoot_weighted": False, "cap_in_training": saved.get("max_overshoot") is not None, **saved}

    conditioned: bool = arg(True, "sample the exposure target and weights per episode and feed them to the "
                                  "policy, so one model serves any setting in the ranges at test time")
    exposure_range: tuple[float, float] = arg((0.3, 0.8), "with --conditioned: the range the exposure target is drawn "
                                                          "from per episode (a range wider than the targets you will "
                                                          "ask for keeps them away from its edges)")
    weight_range: tuple[float, float] = arg((1.0, 1.0), "with --conditioned: each reward weight without a range of "
                                                        "its own is multiplied by a log-uniform factor in this range "
                                                        "per episode (1 1: fixed weights)")
    w_exposure_range: tuple[float, ...] = arg((100.0, 1000.0), "with --conditioned: LO HI, the range --w-exposure "
                                                               "is drawn from (log-uniform) instead of --weight-range; "
                                                               "must hold --w-exposure; LO = HI fixes the weight")
    w_color_range: tuple[float, ...] = arg((20.0, 10000.0), "with --conditioned: LO HI for --w-color, as "
                                                            "--w-exposure-range")
    w_spatial_range: tuple[float, ...] = arg((1.0, 1000.0), "with --conditioned: LO HI for --w-spatial, as "
                                                            "--w-exposure-range")
    w_smooth_range: tuple[float, ...] = arg((0.1, 100.0), "with --conditioned: LO HI for --w-smooth, as "
                                                          "--w-exposure-range; with --smooth-on-mean each crop's "
                                                          "w_smooth weights its own penalty in the agent's loss, else "
                                                          "its smoothness reward term")
    smooth_on_mean: bool = arg(True, "a3c, discrete: apply the smoothness weight --w-smooth as a differentiable "
                                     "penalty on the policy's expected alpha map (in the A3C loss, each crop "
                                     "weighted by its own w_smooth, a setting the policy is conditioned on like the "
                                     "other weights) instead of a reward on the sampled one (which penalises "
                                     "exploration noise); sac, continuous: the same penalty on the greedy alpha map "
                                     "tanh(mean) in the actor loss (SACConfig.action_penalty); off by itself for "
                                     "other combinations")
    smooth_power: int = arg(1, "a3c with --smooth-on-mean: the penalty's alpha differences squared (2, Zero-DCE's "
                               "illumination smoothness) or absolute (1: its pull does not fade as the map "
                               "flattens, so a large --w-smooth flattens the curves and a small one lets them vary)",
                            choices=(1, 2))
    cond_film: bool = arg(True, "with --conditioned: the conditioning values also scale and shift the policy's "
                                 "features (FiLM), where otherwise they only enter as constant input planes; "
                                 "recorded in the checkpoint's arch")
    cond_encoding: str = arg("log", "how the policy's conditioning vector encodes each weight: linear, its "
                                       "range mapped onto [-1, 1]; or log, log(LO)..log(HI) mapped onto [-1, 1] "
                                       "for each weight varied over a range with LO > 0, so that its log-uniform "
                                       "samples spread evenly (wide --w-*-range); recorded in the checkpoint",
                             choices=COND_ENCODINGS)
    weight_draw: str = arg("one", "with --conditioned: how each crop's reward weights are drawn: joint, every "
                                    "weight with a --w-*-range from its range; or one, one of them (or none, each "
                                    "equally likely) with the others at their defaults, so the defaults and each "
                                    "knob varied alone (as users and benchmarks.knobs vary them) are trained often",
                           choices=WEIGHT_DRAWS)
    exposure_gap: bool = arg(True, "also feed the policy the signed per-pixel distance to the exposure target "
                                   "(E - mean brightness) as an input plane")
    episodes: int = arg(1100, "training episodes (each a batch of crops for --steps steps, then one update)")
    batch: int = arg(16, "crops per episode (the vector env's num_envs; the shipped model: 32)")
    crop: int = arg(80, "crop size in pixels, at --policy-side (80 fits every embedded photo at 128 px; the "
                        "shipped model took SICE's whole 128x128 images: --crop 128)")
    steps: int = arg(10, "curve steps per training episode, the longest with --min-steps (ReLLIE trains with 10)")
    min_steps: int | None = arg(4, "draw each training episode's length from --min-steps .. --steps at random: "
                                   "the policy, which does not see the step count, cannot learn a brightening "
                                   "schedule for one horizon (which overshoots the target on bright inputs and "
                                   "falls short on dark ones) and is pushed to reach the exposure target on each "
                                   "image, then stop (alpha 0); --min-steps equal to --steps: always --steps")
    blur_sigma: float = arg(0.65, "recorded in the checkpoint: the sigma in pixels (0-3) of the Gaussian blur the "
                                  "Enhancer applies to its results by default, for the noise the curves amplify "
                                  "(0: none; the shipped model's 0.65, docs/results.md); not used in training or "
                                  "in the trainer's validation")
    test_steps: int = arg(10, "curve steps at evaluation and inference (ReLLIE tests with 6); the default runs a "
                              "policy trained with --min-steps for its longest training episode")
    alpha_mode: str = arg("mean", "test-time alpha: the stochastic policy's expected alpha (discrete: sum p(a) "
                                  "alpha_a; sac: E[tanh(u)]), or the most probable one (ReLLIE; sac: tanh of the "
                                  "Gaussian's mean)", choices=("mean", "argmax"))
    action: str | None = arg(None, "per-pixel actions: 27 alphas (ReLLIE) or continuous alpha (unset: discrete "
                                   "for a3c, continuous for sac)", choices=("discrete", "continuous"))
    alpha_channels: int = arg(1, "alpha maps per step: 3 (a curve per RGB channel, ReLLIE) or 1 (one curve for all "
                                 "channels: brightness changes, hues stay)", choices=(1, 3))
    alpha_min: float = arg(0.0, "the smallest alpha of the discrete action table (ReLLIE's -0.30 .. 1.00 "
                                             "in steps of 0.05); 0 keeps only the brightening curves, so no pixel is "
                                             "ever made darker whatever the setting")
    channel_coupling: float = arg(0.0, "ReLLIE's channel coupling c: the R and G alphas become c alpha_B + (1 - c) "
                                       "alpha_own (ReLLIE: 0.9; needs --alpha-channels 3)")
    damping: float = arg(0.0, "ReLLIE's damping d in s <- (1-d) LE(s) + d s (ReLLIE: 0.2)")
    gamma: float | None = arg(None, f"discount factor (unset: {A3C_GAMMA:g} for a3c, as rewards are per-step "
                                    f"improvements; {SACConfig.gamma:g} for sac, which needs gamma < 1)")
    width: int = arg(32, "channels of the policy network (ReLLIE: 64)")
    policy_side: int = arg(128, "train and validate on images area-downscaled to this longer side, and record it as "
                              "the Enhancer's working resolution (curves estimated at low resolution and upsampled, "
                              "as Zero-DCE++); 0: native resolution (the Enhancer then works at 512)")
    downscale: int = arg(16, "the policy sees the image average-pooled by this factor; its maps are upsampled")
    entropy: float = arg(0.1, "a3c: entropy bonus coefficient; the reward grows with its weights, so scale it "
                              "with them (0.1 at --w-exposure 300, 0.01 at ReLLIE's 80; see docs/training.md)")
    lr_decay: str | None = arg(None, "a3c: learning-rate schedule: none (constant) or poly (PixelRL: lr (1 - episode "
                                     "/ --episodes) ** 0.9); unset: poly for a3c, none for sac",
                               choices=("none", "poly"))
    eval_every: int = arg(500, "evaluate on the validation split every N episodes (and at the end)")
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


def weight_ranges(args: Args) -> dict[str, tuple[float, float]]:
    """The reward weights given a range of their own (``--w-*-range LO HI``): name -> (LO, HI)."""
    ranges = {}
    for name in WEIGHT_FIELDS:
        bounds = getattr(args, f"{name}_range")
        if bounds:
            if len(bounds) != 2:
                raise ValueError(f"--{name.replace('_', '-')}-range: expected two numbers LO HI, got {list(bounds)}")
            ranges[name] = (float(bounds[0]), float(bounds[1]))
    return ranges


def alpha_table(args: Args) -> tuple[float, ...]:
    """ReLLIE's alpha table from ``--alpha-min`` up (the discrete actions' curve parameters)."""
    table = tuple(a for a in RELLIE_ALPHAS if a >= args.alpha_min - 1e-9)
    if len(table) < 2 or args.alpha_min < RELLIE_ALPHAS[0]:
        raise ValueError(f"--alpha-min: expected a value in [{RELLIE_ALPHAS[0]:g}, {RELLIE_ALPHAS[-2]:g}] (the "
                         f"table runs {RELLIE_ALPHAS[0]:g} .. {RELLIE_ALPHAS[-1]:g}), got {args.alpha_min:g}")
    return table


def env_kwargs(args: Args) -> dict:
    return dict(crop=args.crop, max_episode_steps=args.steps, min_episode_steps=args.min_steps,
                action_type=args.action,
                alpha_table=alpha_table(args),
                alpha_channels=args.alpha_channels, damping=args.damping, channel_coupling=args.channel_coupling,
                reward=args.reward, w_exposure=args.w_exposure, w_color=args.w_color, w_spatial=args.w_spatial,
                w_smooth=args.w_smooth, smooth_in_reward=not args.smooth_on_mean, smooth_power=args.smooth_power,
                w_color_ratio=args.w_color_ratio,
                exposure_target=args.exposure_target, exposure_patch=args.exposure_patch,
                exposure_mean=args.exposure_mean, exposure_over=args.exposure_over,
                exposure_relative=args.exposure_relative, exposure_relative_floor=args.exposure_relative_floor,
                conditioned=args.conditioned, exposure_range=args.exposure_range,
                weight_range=args.weight_range, weight_ranges=weight_ranges(args),
                observe_exposure_gap=args.exposure_gap, cond_encoding=args.cond_encoding,
                weight_draw=args.weight_draw, max_overshoot=args.max_overshoot if args.cap_in_training else None,
                overshoot_weighted=args.overshoot_weighted and args.cap_in_training, split="train",
                split_seed=split_seed(args))


def inference_spec(args: Args, task: LowLightTask) -> LowLightPolicySpec:
    """What the checkpoints carry for ``rlenhance.Enhancer``: how the training env ran the policy."""
    return lowlight_policy_spec(task, env_kwargs(args), steps=args.test_steps, alpha_mode=args.alpha_mode,
                                max_side=args.policy_side or None, max_overshoot=args.max_overshoot,
                                overshoot_weighted=args.overshoot_weighted, blur_sigma=args.blur_sigma)


def rollout_at(policy: PixelActorCritic, task: LowLightTask, args: Args, low: torch.Tensor,
               exposure_target: float | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Greedy rollout (``rlenhance.enhance.greedy_rollout``, as at inference) at the fixed
    setting, or with its exposure target replaced (conditioned policies). The setting's exposure weight
    is the one a weighted cap (``--overshoot-weighted``) is set for, so the cap is ``--max-overshoot``."""
    target = args.exposure_target if exposure_target is None else exposure_target
    cond = task.setting_cond(low.shape[0], target) if policy.cond_dim else None
    transition = inference_spec(args, task).transition
    return greedy_rollout(policy, low, cond, transition=transition, alpha_mode=args.alpha_mode,
                          exposure_target=target, mean_limit=transition.limit(target, args.w_exposure))


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


def expand_preset(argv: Sequence[str]) -> list[str]:
    """``argv`` with the flags of its ``--preset NAME`` (if any) put first, so that the command
    line's own flags override them (argparse keeps the last value given)."""
    argv = list(argv)
    names = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--preset"]
    names += [a.split("=", 1)[1] for a in argv if a.startswith("--preset=")]
    if not names or names[-1] not in PRESETS:
        return argv  # no preset, or an unknown name that argparse refuses with the choices
    return [*PRESETS[names[-1]], *argv]


def check_lowlight_args(args: Args, given: Sequence[str]) -> Args:
    """Raise ValueError naming a bad combination. A default that only applies to some configurations
    (the shipped recipe's ``--smooth-on-mean``, ``--smooth-power 1``, ``--alpha-min 0``, ``--cond-film``,
    ``--w-*-range`` and ``--min-steps``, which needs ``--steps`` at least as large) is set to its neutral value
    where it does not apply, e.g. under ``--preset rellie`` or ``--agent sac`` (or with ``--steps 2``), and is
    an error there only when asked for on the command line (``given``).
    Each rule's condition reads the arguments as the rules before it left them (``--smooth-power``
    applies once ``--smooth-on-mean`` is settled)."""
    args = dataclasses.replace(args, max_overshoot=check_max_overshoot(args.max_overshoot, "--max-overshoot",
                                                                        inf_means_none=True))  # inf: none
    rules: tuple[tuple[str, Any, Callable[[Args], bool], str], ...] = (
        ("smooth_on_mean", False, lambda a: (a.agent, a.action) in (("a3c", "discrete"), ("sac", "continuous")),
         "needs --agent a3c with --action discrete (the expected alpha of a categorical policy) or --agent sac "
         "with --action continuous (its greedy alpha)"),
        ("smooth_power", 2, lambda a: a.smooth_on_mean and a.agent == "a3c",
         "shapes A3C's --smooth-on-mean penalty; needs --agent a3c with --action discrete and --smooth-on-mean"),
        ("alpha_min", RELLIE_ALPHAS[0], lambda a: a.action == "discrete",
         "cuts the discrete action table; continuous actions (--action continuous) take any alpha in [-1, 1]"),
        ("cond_film", False, lambda a: a.conditioned,
         "modulates the policy by its conditioning values; needs --conditioned"),
        *((f"{name}_range", (), lambda a: a.conditioned, "only with --conditioned") for name in WEIGHT_FIELDS),
        ("overshoot_weighted", False,
         lambda a: a.max_overshoot is not None and min((a.w_exposure, *a.w_exposure_range)) > 0,  # range settled
         "weights the --max-overshoot cap by the exposure weight; needs --max-overshoot (not inf) and exposure "
         "weights > 0 (--w-exposure, --w-exposure-range)"),
        ("cap_in_training", False, lambda a: a.max_overshoot is not None,
         "applies the --max-overshoot cap in training; needs --max-overshoot (not inf)"),
        ("min_steps", None, lambda a: a.min_steps is None or 1 <= a.min_steps <= a.steps,
         f"expected an int from 1 to --steps ({args.steps}), the longest episode"),
    )
    asked = given_flags(Args, given)
    for field, neutral, applies, why in rules:
        value = getattr(args, field)
        if value == neutral or applies(args):
            continue
        if field in asked:
            shown = "" if isinstance(value, bool) else " " + (" ".join(f"{v:g}" for v in value)
                                                               if isinstance(value, tuple) else f"{value:g}")
            raise ValueError(f"--{field.replace('_', '-')}{shown}: {why}")
        args = dataclasses.replace(args, **{field: neutral})
    if args.channel_coupling and args.alpha_channels != 3:
        raise ValueError("--channel-coupling: couples per-channel alphas; needs --alpha-channels 3")
    check_blur_sigma(args.blur_sigma, "--blur-sigma", none_ok=False)
    return args


def usage_lines(best: Path, spec: LowLightPolicySpec) -> list[str]:
    """What the run ends by printing: where the model is and the ``rlenhance enhance`` line that uses it."""
    ranges = {("exposure" if k == "exposure_target" else k): v for k, v in spec.setting_ranges.items()}
    knobs = " ".join(f"[--{k.replace('_', '-')} {spec.setting['exposure_target' if k == 'exposure' else k]:g}]"
                     for k in ranges)
    lines = [f"model: {best}",
             f"use it: rlenhance enhance photo.jpg -o enhanced/ --checkpoint {best}" + (f" {knobs}" if knobs else "")]
    if ranges:
        lines.append("settings it follows (each refused outside its range): "
                     + ", ".join(f"{k} {lo:g}..{hi:g}" for k, (lo, hi) in ranges.items()))
    else:
        lines.append("it was trained at one setting: it takes no --exposure / --w-* (train with --conditioned)")
    lines.append(f"from Python: rlenhance.Enhancer({str(best)!r}).enhance(image"
                 + "".join(f", {k}=..." for k in ranges) + ")")
    return lines


def parse_args(argv: Sequence[str]) -> Args:
    """The command line ``argv`` as the run takes it: the preset expanded, the flags parsed, the agent's
    defaults resolved and the low-light combination checked (:func:`check_lowlight_args`)."""
    given = list(argv)
    return check_lowlight_args(resolve_args(parse_config(Args, expand_preset(given))), given)


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    ranks = Ranks.from_env()
    device = setup(args, ranks)
    run = open_run(args, ranks)

    def make_venv():
        return envs.make_vec(ENV_ID, device=device, data=training_data(args), **env_batch(args, ranks),
                             **env_kwargs(args))

    venv = make_venv()
    names, val_low, val_high = load_validation(args, device)
    a3c_extra = {"action_penalty": SMOOTH_ON_MEAN_COEF} if args.smooth_on_mean else None
    agent = make_agent(args, venv, a3c_extra=a3c_extra, resume=run.resuming, ranks=ranks,
                       keys=("image", "original", "exposure_gap"), cond_film=args.cond_film)
    spec = inference_spec(args, venv.task)
    out = train(args, run, agent, venv, make_venv=make_venv,
                evaluate=lambda policy: evaluate(policy, venv.task, args, val_low, val_high),
                metric=best_score, spec=spec,
                summary={"val_images": len(names), "input_brightness": float(val_low.mean())},
                title=f"lol_train: {run.dir}")
    run.say(*usage_lines(Path(out) / "checkpoints" / "best.pt", spec))
    return out


if __name__ == "__main__":
    run_cli(main, "lol_train")
