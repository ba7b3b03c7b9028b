"""Train a pixel-wise low-light enhancer (ReLLIE-style curve estimation) with A3C or SAC.

    python -m experiments.lol_train                       # local curves for uneven light, on the embedded photos
    python -m experiments.lol_train --preset global-light # the shipped default's MDP, on the embedded photos
    python -m experiments.lol_train --preset shipped      # the shipped default (SICE pairs, 4,500 episodes)
    python -m experiments.lol_train --preset rellie --data ../shared/data/sice_pairs/train   # ReLLIE's configuration
    python -m experiments.lol_train --preset local-light --init-policy runs/uneven/checkpoints/last.pt  # + settings
    python -m experiments.lol_train --print-config        # every setting; change one with --set reward.w_exposure=80
    python -m experiments.lol_train --config runs/lol_train --out runs/again   # re-run a run (its config.json)

The defaults are ``rlenhance/UnevenLight-v0``'s (:data:`ENV_ID`, docs/lowlight.md#uneven-light) on crops that
train within minutes on two CPU cores; validation reports the gain over ``global-curve`` (``eval/uneven_gain``).
Run folder: docs/training.md; best.pt by :func:`best_score`; the Enhancer's spec: :func:`inference_spec`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

import torch
from torch.utils.data import Subset

import envs
from agents.distributed import Ranks
from envs.checkpoints import LOWLIGHT_ENV_ID, lowlight_policy_spec
from envs.lowlight import DEFAULT_WEIGHT_RANGES, RELLIE_ALPHAS, REWARDS, WEIGHT_FIELDS, LowLightTask
from envs.rewards import term_items
from experiments import config
from experiments.config import Cost, Preset
from experiments.grids import map_captions, with_maps
from experiments.loop import TOP_ACTION_SHARE
from experiments.process import run_cli
from experiments.rl_common import (
    RL_FLAGS,
    A3CSettings,
    ModelSettings,
    RLConfig,
    RLRunSettings,
    Track,
    check_rl,
    env_batch,
    estimate_seconds,
    fit,
    make_agent,
    setup,
    split_seed,
    top_action_share,
    untracked,
)
from experiments.run_settings import open_run, parse_run
from experiments.runs import usage_lines
from rlenhance import losses, metrics
from rlenhance.baselines import global_curve
from rlenhance.checkpoint import LowLightPolicySpec
from rlenhance.data import (
    BuiltinImages,
    LowLightTestSet,
    ResizedImages,
    lowlight_test_set,
    open_dataset,
)
from rlenhance.models.policy import PixelActorCritic
from rlenhance.ops import check_max_overshoot
from rlenhance.rollouts import working_rollout

ENV_ID = "rlenhance/UnevenLight-v0"
#: Exposure targets at which a conditioned policy's brightness is checked in every evaluation.
EXPOSURE_SWEEP = (0.4, 0.5, 0.6, 0.7)
#: Fraction of the embedded photos held out for validation when no data folder is given.
BUILTIN_VAL_FRACTION = 0.34
BUILTIN_TUNE_FRACTION = 0.17  # of the 6 embedded photos: 2 validation, 1 tuning, 3 training
#: The env's draws of a conditioned run: one weight varied per crop, each log-encoded, the others fixed.
WEIGHT_DRAW, COND_ENCODING, WEIGHT_RANGE = "one", "log", (1.0, 1.0)
#: ``A3CConfig`` fields of ``reward.smooth_on_mean`` (the env's per-row ``w_smooth`` carries the magnitude).
SMOOTH_ON_MEAN = MappingProxyType({"action_penalty": 1.0})
#: The env's ``smooth_power`` for each agent's smooth-on-mean penalty: absolute (A3C) or squared (SAC) differences.
SMOOTH_POWER = MappingProxyType({"a3c": 1, "sac": 2})
#: The env's keyword defaults: the one source of the settings below that the env also takes.
ENV_DEFAULTS = MappingProxyType(envs.env_defaults(ENV_ID))


@dataclass(frozen=True)
class TaskSettings:
    """Data, curve steps and actions (envs.lowlight)."""

    data: str | None = None
    """low/ + high/ pairs, high/ alone (well-exposed photos) or a LOL layout (our485/ + eval15/); dark photos
    alone: --preset global-light (none: the embedded scikit-image photos)"""
    policy_side: int = 128
    """train and validate on images area-downscaled to this longer side, recorded as the Enhancer's working
    resolution (0: native resolution)"""
    eval_size: int = 256
    """validation images are area-downscaled to this longer side"""
    crop: int = 80
    """crop size in pixels, at policy_side (the shipped model: SICE's whole 128 px images)"""
    steps: int = ENV_DEFAULTS["max_episode_steps"]
    """curve steps of the longest training episode"""
    min_steps: int | None = 4
    """training episodes last min_steps .. steps, drawn: the policy learns to stop (none: always steps)"""
    test_steps: int = 4
    """curve steps at evaluation and inference"""
    curve: str = ENV_DEFAULTS["curve"]
    """the action family of each step: le (Zero-DCE's curve), or an ActionFamily of your own by import path
    (package.module:Class; rlenhance.transitions)"""
    action: Literal["discrete", "continuous"] | None = None
    """per-pixel actions: ReLLIE's alpha table, or continuous alpha (none: discrete for a3c, continuous for sac)"""
    alpha_channels: Literal[1, 3] = ENV_DEFAULTS["alpha_channels"]
    """alpha maps per step: one curve for R, G and B, or one per channel (ReLLIE)"""
    alpha_min: float | None = None
    """discrete actions: the smallest alpha of the table (none: 0, brightening curves only; ReLLIE: -0.3)"""
    channel_coupling: float = ENV_DEFAULTS["channel_coupling"]
    """ReLLIE's coupling c of the R and G alphas to B's (ReLLIE: 0.9; needs alpha_channels 3)"""
    damping: float = ENV_DEFAULTS["damping"]
    """ReLLIE's damping d in s <- (1 - d) LE(s) + d s (ReLLIE: 0.2)"""
    alpha_mode: Literal["mean", "argmax"] = "mean"
    """test-time alpha: the policy's expected alpha, or the most probable one (ReLLIE)"""
    exposure_gap: bool = ENV_DEFAULTS["observe_exposure_gap"]
    """the policy also sees the signed per-pixel distance to the exposure target"""
    uneven: float = ENV_DEFAULTS["uneven"]
    """fraction of training episodes whose dark image is its reference relit by uneven light
    (rlenhance.data.uneven_low_light); 0: the data's own dark images"""
    max_overshoot: float | None = None
    """recorded cap on how far a step lifts the image mean above the target, at the default exposure weight
    (scaled by sqrt(w_exposure / w) for another weight w); applied in validation and by the Enhancer, not in
    training (none: no cap)"""


@dataclass(frozen=True)
class RewardSettings:
    """The reward (rlenhance.losses: Zero-DCE's non-reference terms, or a reference metric)."""

    reward: Literal[REWARDS] = ENV_DEFAULTS["reward"]
    """non-reference losses, or ssim / psnr / mse against the references"""
    w_exposure: float = ENV_DEFAULTS["w_exposure"]
    """weight of the exposure term (distance of patch means to the target)"""
    w_color: float = ENV_DEFAULTS["w_color"]
    """weight of the colour-constancy term"""
    w_spatial: float = ENV_DEFAULTS["w_spatial"]
    """weight of the spatial-consistency term (gradients against the input)"""
    w_smooth: float = ENV_DEFAULTS["w_smooth"]
    """weight of the smoothness (total variation) of each step's alpha map"""
    terms: tuple[str, ...] = term_items(ENV_DEFAULTS["terms"])
    """reward terms with fixed weights, NAME=WEIGHT each (envs.rewards: reference, scaled_reference, color_ratio,
    or a RewardTerm of your own by import path, package.module:Class=WEIGHT)"""
    exposure_target: float = ENV_DEFAULTS["exposure_target"]
    """target mean brightness E of the exposure term (the default setting)"""
    exposure_patch: int = ENV_DEFAULTS["exposure_patch"]
    """patch size of the exposure term (Zero-DCE: 16)"""
    exposure_mean: float = ENV_DEFAULTS["exposure_mean"]
    """weight, relative to the patches, of the whole image's mean in the exposure term"""
    exposure_relative: bool = ENV_DEFAULTS["exposure_relative"]
    """scale the exposure term by (exposure_target / E)^2 for each episode's target E"""
    smooth_on_mean: bool = True
    """apply w_smooth as a penalty on the policy's expected alpha map in the agent's loss (a3c with discrete
    or sac with continuous actions) instead of a reward on the sampled one"""
    conditioned: bool = ENV_DEFAULTS["conditioned"]
    """draw the exposure target and one weight per crop from ranges and feed them to the policy, so one model
    serves any setting in them"""

    @staticmethod
    def upgrade(data: dict[str, Any]) -> dict[str, Any]:
        """Configs recorded before reward terms: ``w_color_ratio`` as the ``color_ratio`` term, the only one."""
        if "w_color_ratio" in data:
            ratio, terms = data.pop("w_color_ratio"), data.get("terms", ())
            try:
                ratio = float(ratio)
            except (TypeError, ValueError):
                raise ValueError(f"reward.w_color_ratio: expected a number, got {ratio!r}") from None
            if ratio:
                data["terms"] = (*((terms,) if isinstance(terms, str) else terms), f"color_ratio={ratio:g}")
        return data


@dataclass(frozen=True)
class RangeSettings:
    """With reward.conditioned: the ranges the settings are drawn from (the weights log-uniformly)."""

    exposure: tuple[float, float] = ENV_DEFAULTS["exposure_range"]
    """range of the exposure target"""
    w_exposure: tuple[float, float] = DEFAULT_WEIGHT_RANGES["w_exposure"]
    """range of w_exposure (LO = HI fixes it)"""
    w_color: tuple[float, float] = DEFAULT_WEIGHT_RANGES["w_color"]
    """range of w_color"""
    w_spatial: tuple[float, float] = DEFAULT_WEIGHT_RANGES["w_spatial"]
    """range of w_spatial"""
    w_smooth: tuple[float, float] = DEFAULT_WEIGHT_RANGES["w_smooth"]
    """range of w_smooth"""


@dataclass(frozen=True)
class Config(RLConfig):
    """Train a pixel-wise low-light enhancer (ReLLIE-style curves) with A3C or SAC."""

    task: TaskSettings = TaskSettings()
    reward: RewardSettings = RewardSettings()
    ranges: RangeSettings = RangeSettings()
    a3c: A3CSettings = A3CSettings(gamma=0.0, lr_decay="poly", entropy=0.1)
    model: ModelSettings = ModelSettings(downscale=8)
    run: RLRunSettings = RLRunSettings(episodes=600, batch=16, eval_every=100, out="runs/lol_train")

    @staticmethod
    def upgrade(data: dict[str, Any]) -> dict[str, Any]:
        """A whole config recorded before uneven light (its reward has ``w_color_ratio``) trained in uniform light."""
        reward, task = data.get("reward"), data.get("task")
        if {"agent", "run"} <= set(data) and isinstance(task, Mapping) and isinstance(reward, Mapping) \
                and "w_color_ratio" in reward:  # no terms, uniform light
            data["task"], data["reward"] = {"uneven": 0.0, **task}, {"terms": (), **reward}
        return data


def global_light() -> Config:
    """The MDP of the default file lowlight_a3c.pt on the embedded photos: LowLight-v1's defaults (uniform light,
    Zero-DCE's losses, conditioned), 10 steps under the cap, gamma 1, features at 1/16."""
    mdp = envs.env_defaults(LOWLIGHT_ENV_ID)
    return config.replace_path(Config(), {
        "task.uneven": mdp["uneven"], "reward.conditioned": mdp["conditioned"],
        "reward.terms": term_items(mdp["terms"]),
        **{f"reward.{name}": mdp[name] for name in WEIGHT_FIELDS},
        "task.test_steps": 10, "task.max_overshoot": 0.04, "a3c.gamma": 1.0, "model.downscale": 16,
        "run.eval_every": 500})


def shipped() -> Config:
    """The shipped rlenhance/weights/lowlight_a3c.pt: global-light on SICE pairs, 128 px crops, 32 a batch,
    4,500 episodes, every evaluation kept (the card picks episode 3,000)."""
    return config.replace_path(global_light(), {
        "task.data": "../shared/data/sice_pairs/train", "task.crop": 128, "run.batch": 32, "run.episodes": 4500,
        "run.keep_evals": True, "run.seed": 1, "run.split_seed": 0})


def shipped_sac() -> Config:
    """The shipped recipe with SAC (docs/lowlight.md's SAC row): continuous alphas, and the critics learn the
    return to the episode's end (``sac.end_is_terminal``) at gamma 1, A3C's objective, the final image's loss.
    Not shipped: A3C's file follows all six knob checks."""
    return config.replace_path(shipped(), {"agent": "sac", "sac.gamma": 1.0, "sac.end_is_terminal": True})


def rellie() -> Config:
    """ReLLIE's configuration (REFERENCES): 27 per-channel alphas from -0.3, R and G coupled 0.9 to B,
    damping 0.2, reward -(spatial + 80 exposure(16 x 16, E = 0.6) + 200 TV(alpha) + 20 colour ratio),
    entropy 0.01, gamma 1.05, Adam 5e-4, 32 crops of 70 px, 10 steps in training and 6 at test, a
    64-channel network at full resolution taking the most probable alpha, no conditioning; 1,100 episodes
    (ReLLIE: 30,000). That network at full resolution is costly on a CPU: train it on a GPU. Evaluations
    roll out one image at a time, the fastest way on a CPU (the scores of any run.eval_batch are the same)."""
    return config.replace_path(global_light(), {
        "task.action": "discrete", "task.alpha_channels": 3, "task.channel_coupling": 0.9,
        "task.damping": 0.2, "task.alpha_min": RELLIE_ALPHAS[0], "task.crop": 70, "task.min_steps": 10,
        "task.test_steps": 6, "task.alpha_mode": "argmax", "task.policy_side": 0, "task.max_overshoot": None,
        "task.exposure_gap": False, "reward.w_exposure": 80.0, "reward.exposure_target": 0.6,
        "reward.exposure_patch": 16, "reward.exposure_mean": 0.0, "reward.exposure_relative": False,
        "reward.w_color": 0.0, "reward.w_spatial": 1.0, "reward.w_smooth": 200.0, "reward.terms": ("color_ratio=20",),
        "reward.smooth_on_mean": False, "reward.conditioned": False,
        "a3c.entropy": 0.01, "a3c.gamma": 1.05, "a3c.lr": 5e-4, "a3c.lr_decay": "none",
        "model.width": 64, "model.downscale": 1, "run.batch": 32, "run.eval_batch": 1})


def uneven_light() -> Config:
    """The defaults on SICE references (docs/lowlight.md#uneven-light): 128 px crops, 3,000 episodes."""
    return config.replace_path(Config(), {
        "task.data": "../shared/data/sice_pairs/train", "task.crop": 128, "run.episodes": 3000,
        "run.eval_every": 1000})


def local_light() -> Config:
    """rlenhance/weights/lowlight_local.pt (the card ships episode 3,000 of the last run): uneven-light with the
    exposure term on the whole image, the reference brought to the target by a gain, conditioned on the exposure
    target and the four weights, three episodes in four relit, 10 steps taking the most probable alpha. From
    scratch it stays global; from uneven-light's policy (``--init-policy``) it keeps local light
    (experiments/recipes/lowlight_local.sh)."""
    return config.replace_path(uneven_light(), {
        "task.uneven": 0.75, "task.test_steps": 10, "task.alpha_mode": "argmax", "reward.conditioned": True,
        "reward.terms": ("scaled_reference=300",),
        "reward.w_exposure": 300.0, "reward.exposure_patch": 128, "ranges.w_exposure": (0.0, 500.0),
        "ranges.w_color": (0.0, 1000.0), "ranges.w_spatial": (0.0, 1000.0), "ranges.w_smooth": (0.1, 1000.0),
        "run.eval_every": 500, "run.keep_evals": True})


#: ``--preset NAME`` -> the config it names and its cost per episode and evaluation (``benchmarks.preset_cost``).
PRESETS: Mapping[str, Preset] = MappingProxyType({
    "global-light": Preset(global_light, cpu=Cost(0.086, eval_s=0.06)),
    "shipped": Preset(shipped, cpu=Cost(0.31, eval_s=1.39), cuda=Cost(0.144, eval_s=0.39)),
    "shipped-sac": Preset(shipped_sac, cpu=Cost(0.87, eval_s=1.63)),
    "rellie": Preset(rellie, cpu=Cost(52.8, eval_s=2.21), cuda=Cost(0.127, eval_s=0.09)),
    "uneven-light": Preset(uneven_light, cpu=Cost(0.43, eval_s=2.36)),
    "local-light": Preset(local_light, cpu=Cost(0.31, eval_s=1.77))})
#: The named flags (everything else: ``--set SECTION.KEY=VALUE``).
FLAGS: Mapping[str, str] = MappingProxyType({
    **RL_FLAGS, "data": "task.data", "crop": "task.crop", "steps": "task.steps", "test-steps": "task.test_steps",
    "eval-size": "task.eval_size"})


def check(cfg: Config, base: Config | None = None) -> Config:
    """The config with ``task.action`` and ``task.alpha_min`` resolved, sections that do not apply at their
    defaults; ValueError names a bad setting, or one set where it does not apply (``base``: the preset)."""
    cfg = check_rl(cfg, base)
    t, r = cfg.task, cfg.reward
    action = t.action or ("continuous" if cfg.agent == "sac" else "discrete")
    if t.alpha_min is not None and action != "discrete":
        raise ValueError(f"task.alpha_min {t.alpha_min:g}: cuts the discrete action table; continuous actions "
                         "take any alpha in [-1, 1]")
    alpha_min = (0.0 if t.alpha_min is None else t.alpha_min) if action == "discrete" else None
    cfg = dataclasses.replace(cfg, task=dataclasses.replace(t, action=action, alpha_min=alpha_min))
    t = cfg.task
    if r.smooth_on_mean and (cfg.agent, action) not in (("a3c", "discrete"), ("sac", "continuous")):
        raise ValueError(f"reward.smooth_on_mean: needs a3c with discrete actions (the expected alpha of a "
                         f"categorical policy) or sac with continuous ones (its greedy alpha), not {cfg.agent} with "
                         f"{action}; set reward.smooth_on_mean=false")
    if not r.conditioned:
        cfg = config.unused_section(cfg, "ranges", "reward.conditioned is false", base)
    for n in ("exposure", *WEIGHT_FIELDS):
        low, high = getattr(cfg.ranges, n)
        if not low <= high:
            raise ValueError(f"ranges.{n} {low:g} {high:g}: expected LO <= HI")
        if n != "exposure" and r.conditioned and not low <= getattr(r, n) <= high:
            raise ValueError(f"ranges.{n} {low:g} {high:g}: must hold reward.{n} {getattr(r, n):g}")
    if t.min_steps is not None and not 1 <= t.min_steps <= t.steps:
        raise ValueError(f"task.min_steps {t.min_steps}: expected an integer from 1 to task.steps ({t.steps}), or none")
    for name in ("crop", "steps", "test_steps", "eval_size", "exposure_patch"):
        holder = r if name == "exposure_patch" else t
        if getattr(holder, name) < 1:
            raise ValueError(f"{'reward' if holder is r else 'task'}.{name} {getattr(holder, name)}: expected >= 1")
    if t.channel_coupling and t.alpha_channels != 3:
        raise ValueError("task.channel_coupling: couples per-channel alphas; needs task.alpha_channels 3")
    if action == "discrete" and (alpha_min < RELLIE_ALPHAS[0] or alpha_min > RELLIE_ALPHAS[-2]):
        raise ValueError(f"task.alpha_min {alpha_min:g}: expected a value in [{RELLIE_ALPHAS[0]:g}, "
                         f"{RELLIE_ALPHAS[-2]:g}] (the table runs {RELLIE_ALPHAS[0]:g} .. {RELLIE_ALPHAS[-1]:g})")
    cap = check_max_overshoot(t.max_overshoot, "task.max_overshoot", inf_means_none=True)  # inf: none
    cfg = dataclasses.replace(cfg, task=dataclasses.replace(t, max_overshoot=cap))
    t = cfg.task
    if t.max_overshoot is not None and min((r.w_exposure, *(cfg.ranges.w_exposure if r.conditioned else ()))) <= 0:
        raise ValueError("task.max_overshoot: the cap is weighted by the exposure weight; needs exposure weights > 0 "
                         "(reward.w_exposure, ranges.w_exposure), or task.max_overshoot=none")
    return cfg


def builtin_data(cfg: Config, split: str) -> BuiltinImages:
    """The embedded colour photos of ``split``, held out by the split seed."""
    return BuiltinImages(split=split, val_fraction=BUILTIN_VAL_FRACTION, tune_fraction=BUILTIN_TUNE_FRACTION,
                         seed=split_seed(cfg))


def load_validation(cfg: Config, device: torch.device, split: str = "tune", limit: int | None = None,
                    light: str = "data") -> LowLightTestSet:
    """The evaluation images of ``split`` (names, low (N, 3, h, w), high or None; the first ``limit`` only), at
    ``task.eval_size`` (:func:`rlenhance.data.lowlight_test_set`, seeded by ``run.seed``; ``light="uneven"``:
    each reference relit by uneven light)."""
    t = cfg.task
    if t.data is None:
        dataset = builtin_data(cfg, split)
    else:
        dataset = open_dataset(t.data, kind="paired", split=split, gray=False, seed=split_seed(cfg))
    if t.policy_side:
        dataset = ResizedImages(dataset, t.policy_side)
    if limit is not None:
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    return lowlight_test_set(dataset, t.eval_size, seed=cfg.run.seed, device=device, light=light)


class UnevenSet(NamedTuple):
    """The relit evaluation images of a run with ``task.uneven`` and ``global_curve``'s PSNR (GT-mean aligned)."""

    low: torch.Tensor
    high: torch.Tensor
    global_curve_psnr: float


def load_uneven(cfg: Config, device: torch.device, split: str = "tune") -> UnevenSet | None:
    """:class:`UnevenSet` of ``split``, or None when the run trains on uniform light alone."""
    if not cfg.task.uneven:
        return None
    try:
        _, low, high = load_validation(cfg, device, split, light="uneven")
    except ValueError as error:  # dark photos alone
        raise ValueError(f"task.uneven {cfg.task.uneven:g}: {error}; for dark photos: --preset global-light") from None
    curves = torch.stack([torch.from_numpy(global_curve(image.permute(1, 2, 0).cpu().numpy(),
                                                        target=cfg.reward.exposure_target)).permute(2, 0, 1)
                          for image in low]).to(device)
    return UnevenSet(low, high, float(metrics.psnr(metrics.gt_mean_align(curves, high), high).mean()))


def grid_fill(cfg: Config, device: torch.device, tuning: int) -> LowLightTestSet | None:
    """The training images a sample grid shows after the ``tuning`` ones when those are fewer than ``run.samples``."""
    missing = cfg.run.samples - tuning
    return load_validation(cfg, device, "train", limit=missing) if missing > 0 else None


def training_data(cfg: Config):
    """What the training env draws from (the embedded photos minus the tuning and validation ones by default)."""
    t = cfg.task
    if t.data is None:
        data = builtin_data(cfg, "train")
    elif t.policy_side:  # resized below, so the split is taken here rather than by the env
        data = open_dataset(t.data, kind="paired", split="train", gray=False, seed=split_seed(cfg))
    else:
        return t.data
    return ResizedImages(data, t.policy_side, cache=True) if t.policy_side else data


def alpha_table(cfg: Config) -> tuple[float, ...]:
    """ReLLIE's alpha table from ``task.alpha_min`` up (the discrete actions'; unused by continuous ones)."""
    low = RELLIE_ALPHAS[0] if cfg.task.alpha_min is None else cfg.task.alpha_min
    return tuple(a for a in RELLIE_ALPHAS if a >= low - 1e-9)


def env_kwargs(cfg: Config) -> dict:
    """The arguments of the run's training env (the one place the config becomes the MDP; no overshoot cap)."""
    t, r, ranges = cfg.task, cfg.reward, cfg.ranges
    weight_ranges = {n: tuple(getattr(ranges, n)) for n in WEIGHT_FIELDS} if r.conditioned else {}
    return dict(crop=t.crop, curve=t.curve, max_episode_steps=t.steps, min_episode_steps=t.min_steps,
                action_type=t.action, alpha_table=alpha_table(cfg), alpha_channels=t.alpha_channels, damping=t.damping,
                channel_coupling=t.channel_coupling, reward=r.reward, w_exposure=r.w_exposure, w_color=r.w_color,
                w_spatial=r.w_spatial, w_smooth=r.w_smooth, smooth_in_reward=not r.smooth_on_mean,
                smooth_power=SMOOTH_POWER[cfg.agent], exposure_target=r.exposure_target,
                exposure_patch=r.exposure_patch,
                exposure_mean=r.exposure_mean, exposure_relative=r.exposure_relative, conditioned=r.conditioned,
                exposure_range=ranges.exposure, weight_range=WEIGHT_RANGE, weight_ranges=weight_ranges,
                observe_exposure_gap=t.exposure_gap, cond_encoding=COND_ENCODING, weight_draw=WEIGHT_DRAW,
                uneven=t.uneven, terms=term_weights(r.terms),
                split="train", split_seed=split_seed(cfg))


def term_weights(terms: Sequence[str]) -> dict[str, float]:
    """``{name: weight}`` of ``reward.terms``' items (ValueError: not NAME=WEIGHT); inverse: term_items."""
    weights = {}
    for item in terms:
        name, sep, weight = item.rpartition("=")
        try:
            weights[name] = float(weight)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise ValueError(f"reward.terms {item!r}: expected NAME=WEIGHT (e.g. reference=300)") from None
    return weights


def inference_spec(cfg: Config, task: LowLightTask) -> LowLightPolicySpec:
    """What the checkpoints carry for ``rlenhance.Enhancer``: how the training env ran the policy."""
    t = cfg.task
    return lowlight_policy_spec(task, env_kwargs(cfg), steps=t.test_steps, alpha_mode=t.alpha_mode,
                                max_side=t.policy_side or None, max_overshoot=t.max_overshoot,
                                overshoot_weighted=t.max_overshoot is not None)


def rollout_at(policy: PixelActorCritic, task: LowLightTask, cfg: Config, low: torch.Tensor,
               exposure_target: float | None = None, track: Track = untracked
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Greedy rollout as the Enhancer runs it (``rlenhance.rollouts.working_rollout``) at the fixed setting or
    ``exposure_target``, in batches of ``run.eval_batch`` images; the outputs and each step's alpha maps."""
    target = cfg.reward.exposure_target if exposure_target is None else exposure_target
    spec = inference_spec(cfg, task)
    transition, side = spec.transition, spec.working_side
    outs, maps = [], []
    desc = "validation" if exposure_target is None else f"validation at exposure {target:g}"
    for chunk in track(low.split(cfg.run.eval_batch), desc):
        cond = task.setting_cond(chunk.shape[0], target) if policy.cond_dim else None
        out, chunk_maps = working_rollout(policy, chunk, cond, side=side, transition=transition,
                                          alpha_mode=cfg.task.alpha_mode, exposure_target=target,
                                          mean_limit=transition.limit(target, cfg.reward.w_exposure))
        outs.append(out)
        maps.append(chunk_maps)
    return torch.cat(outs), [torch.cat(step_maps) for step_maps in zip(*maps)]


@torch.no_grad()
def evaluate(policy: PixelActorCritic, task: LowLightTask, cfg: Config, low: torch.Tensor,
             high: torch.Tensor | None, track: Track = untracked, fill: LowLightTestSet | None = None,
             uneven: UnevenSet | None = None) -> tuple[dict[str, float], list[list[torch.Tensor]]]:
    """Greedy rollout on the evaluation images at the fixed setting (per-image means); a conditioned policy also at
    each :data:`EXPOSURE_SWEEP` target (``eval/exposure_gap_max``); with ``uneven``, ``eval/uneven_psnr`` and
    ``eval/uneven_gain``. Returns the scores and the sample grid's rows (``fill``'s images last, unscored)."""
    target = cfg.reward.exposure_target
    start = time.perf_counter()
    out, maps = rollout_at(policy, task, cfg, low, track=track)
    ms = (time.perf_counter() - start) * 1000 / low.shape[0]
    scores = {
        "eval/brightness": float(out.mean()),
        "eval/exposure_loss": float(losses.exposure_loss(out, target=target).mean()),
        "eval/color_loss": float(losses.color_constancy_loss(out).mean()),
        "eval/spatial_loss": float(losses.spatial_consistency_loss(out, low).mean()),
        "eval/smooth_loss": float(torch.stack([losses.illumination_smoothness_loss(a) for a in maps]).mean()),
        "eval/ms_per_image": ms,
    }
    if high is not None:
        scores["eval/psnr"] = float(metrics.psnr(out, high).mean())
        scores["eval/ssim"] = float(metrics.ssim(out, high).mean())
        scores["eval/uqi"] = float(metrics.uqi(out, high).mean())
    if uneven is not None:
        relit = rollout_at(policy, task, cfg, uneven.low)[0]
        scores["eval/uneven_psnr"] = float(metrics.psnr(metrics.gt_mean_align(relit, uneven.high), uneven.high).mean())
        scores["eval/uneven_gain"] = scores["eval/uneven_psnr"] - uneven.global_curve_psnr
    if cfg.reward.conditioned and policy.cond_dim:
        # the fixed setting's target, when in the sweep, reuses the rollout above
        gaps = [float((out if e == target else rollout_at(policy, task, cfg, low, e, track)[0]).mean()) - e
                for e in EXPOSURE_SWEEP]
        scores["eval/exposure_gap_max"] = max(abs(g) for g in gaps)
    per_image = [torch.stack([m[i] for m in maps]) for i in range(low.shape[0])]
    scores[TOP_ACTION_SHARE] = top_action_share(per_image)
    rows = [[low[i], out[i]] + ([high[i]] if high is not None else []) for i in range(low.shape[0])]
    if fill is not None:
        fill_out, fill_maps = rollout_at(policy, task, cfg, fill.low)
        rows += [[fill.low[i], fill_out[i]] + ([fill.high[i]] if fill.high is not None else [])
                 for i in range(fill.low.shape[0])]
        per_image += [torch.stack([m[i] for m in fill_maps]) for i in range(fill.low.shape[0])]
    shown = min(cfg.run.samples, len(rows))
    return scores, with_maps(rows[:shown], per_image[:shown],
                             alpha_range=inference_spec(cfg, task).transition.alpha_range)


def grid_captions(cfg: Config, references: bool = True) -> tuple[str, ...]:
    """The sample grids' columns: input | output | reference (if ``references``), alpha maps, their key."""
    return map_captions(("input", "output", "reference")[:3 if references else 2], "alpha", cfg.task.test_steps)


def best_score(scores: Mapping[str, float], uneven: float = 0.0) -> float:
    """What picks best.pt: PSNR with references, else minus the exposure loss; mixed with the relit images' PSNR
    by the share ``uneven``."""
    own = scores.get("eval/psnr", -scores["eval/exposure_loss"])
    return own if "eval/uneven_psnr" not in scores else (1 - uneven) * own + uneven * scores["eval/uneven_psnr"]


def use_lines(best: Path, spec: LowLightPolicySpec) -> list[str]:
    """What the run ends by printing: where the model is and the ``rlenhance enhance`` command that uses it."""
    ranges = {("exposure" if k == "exposure_target" else k): v for k, v in spec.setting_ranges.items()}
    knobs = [part for k in ranges
             for part in (f"--{k.replace('_', '-')}", f"{spec.setting['exposure_target' if k == 'exposure' else k]:g}")]
    lines = usage_lines(best, ["enhance", "photo.jpg", "-o", "enhanced/", "--checkpoint", best, *knobs])
    if ranges:
        lines.append("settings it follows (each refused outside its range): "
                     + ", ".join(f"{k} {lo:g}..{hi:g}" for k, (lo, hi) in ranges.items()))
    else:
        how = "--preset local-light --init-policy on it" if spec.env_kwargs.get("uneven") else "customisation.md"
        lines.append(f"it was trained at one setting: it takes no --exposure / --w-* (one that does: {how})")
    lines.append(f"from Python: rlenhance.Enhancer({str(best)!r}).enhance(image"
                 + "".join(f", {k}=..." for k in ranges) + ")")
    return lines


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """The command line resolved and checked (:func:`experiments.run_settings.parse_run`)."""
    return parse_run(Config, sys.argv[1:] if argv is None else argv, presets=PRESETS, flags=FLAGS,
                     prog="lol_train", description=__doc__.split("\n\n")[0], check=check, estimate=estimate_seconds)


def main(argv: Sequence[str] | None = None) -> Path:
    cfg = parse_args(argv)
    ranks = Ranks.from_env()
    device = setup(cfg, ranks)
    run = open_run(cfg, ranks)

    def make_venv():
        return envs.make_vec(ENV_ID, device=device, data=training_data(cfg), **env_batch(cfg, ranks),
                             **env_kwargs(cfg))

    venv = make_venv()
    names, tune_low, tune_high = load_validation(cfg, device)
    _, val_low, val_high = load_validation(cfg, device, split="val")
    tune_uneven, val_uneven = load_uneven(cfg, device), load_uneven(cfg, device, "val")
    fill = grid_fill(cfg, device, len(names))
    if fill is not None:
        run.say(f"sample grids: the {len(names)} tuning image(s), then {len(fill.names)} training image(s) "
                f"(unscored), to show run.samples = {cfg.run.samples}")
    a3c_extra = dict(SMOOTH_ON_MEAN) if cfg.reward.smooth_on_mean else None
    agent = make_agent(cfg, venv, a3c_extra=a3c_extra, steps=cfg.task.steps, resume=run.resuming, ranks=ranks,
                       keys=("image", "original", "exposure_gap"), cond_film=cfg.reward.conditioned)
    spec = inference_spec(cfg, venv.task)
    out = fit(cfg, run, agent, venv, make_venv=make_venv,
              evaluate=lambda policy: evaluate(policy, venv.task, cfg, tune_low, tune_high, track=run.track, fill=fill,
                                               uneven=tune_uneven),
              metric=lambda scores: best_score(scores, cfg.task.uneven), spec=spec,
              summary={"tune_images": len(names), "val_images": val_low.shape[0],
                       "input_brightness": float(tune_low.mean())},
              captions=grid_captions(cfg, tune_high is not None), presets=PRESETS,
              check=check, split="tune",
              report=lambda policy: evaluate(policy, venv.task, cfg, val_low, val_high, track=run.track,
                                             uneven=val_uneven))
    run.say(*use_lines(Path(out) / "checkpoints" / "best.pt", spec))
    return out


if __name__ == "__main__":
    run_cli(main, "lol_train")
