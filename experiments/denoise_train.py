"""Train a pixel-wise denoiser (PixelRL: every pixel picks one of nine filters per step) with A3C or SAC.

    python -m experiments.denoise_train                                   # embedded photos, a few minutes on CPU
    python -m experiments.denoise_train --data ../shared/data/bsd/train432 --test ../shared/data/bsd/BSD68
    python -m experiments.denoise_train --preset pixelrl --data ../shared/data/bsd/train432   # PixelRL's network
    python -m experiments.denoise_train --preset over-ffdnet              # blind gray A3C over FFDNet's pixel
    python -m experiments.denoise_train --agent sac                        # discrete pixel-wise SAC
    python -m experiments.denoise_train --no-gray --sigma 5 15 25 35 50    # a blind colour denoiser
    python -m experiments.denoise_train --predictor rlenhance/weights/mrpnet_denoise.pt   # + "take MRPNet's pixel"
    python -m experiments.denoise_train --preset noise-map      # A3C sets FFDNet's noise-level map per 4 x 4 block

The PixelRL protocol: gray images, ``rlenhance/Denoise-v0`` (Gaussian noise of ``task.sigma`` on the 0-255
scale, not clipped; reward = decrease of squared error x 255), 70x70 crops, 5 steps, gamma 0.95; the defaults are
sized for a CPU, ``--preset pixelrl`` is PixelRL's network. Several ``--sigma`` levels train a blind policy
(:mod:`experiments.sigmas`). ``--predictor`` (:class:`rlenhance.denoisers.DenoisePredictor`) adds a tenth action,
"take the predictor's pixel"; the checkpoints record its path.

Evaluation is on WHOLE images: the tuning split picks best.pt, scored once on the validation split after the run
(the summary's ``val_*`` columns); ``--test`` adds a set scored for reporting only (``test/psnr`` ...). Each
image's noise is seeded by ``task.noise_seed`` and its name (:func:`rlenhance.data.noisy_test_set`); real noisy /
clean pairs carry their own. With several levels every image is scored at each (``eval/psnr_sigma15`` ...) and
``eval/psnr`` is their mean. Use a checkpoint with ``rlenhance denoise --model a3c --checkpoint PATH``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

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
    split_seed,
    top_action_share,
    untracked,
    uses_block_actions,
    with_test_scores,
)
from experiments.run_settings import open_run, parse_run
from experiments.runs import usage_lines
from experiments.sigmas import RAMP, level_scores, noise_text, noisy_test_sets, resolve_sigma
from rlenhance import metrics
from rlenhance.checkpoint import RolloutPolicySpec
from rlenhance.data import (
    TUNE_FRACTION,
    BuiltinImages,
    NoisyImage,
    open_dataset,
)
from rlenhance.denoisers import DenoisePredictor, PolicyDenoiser
from rlenhance.errors import not_a_file
from rlenhance.models.policy import PixelActorCritic

ENV_ID = "rlenhance/Denoise-v0"
#: Denoise-v0's defaults: the task settings' defaults (one source).
ENV = MappingProxyType(envs.env_defaults(ENV_ID))
#: Fraction of the embedded photos held out for evaluation when no --data is given.
BUILTIN_VAL_FRACTION = 0.2
_MS_PER_S = 1000.0


@dataclass(frozen=True)
class TaskSettings:
    """Data, noise and the MDP (envs.denoise; its defaults are Denoise-v0's)."""

    data: str | None = None
    """folder of clean training images (e.g. ../shared/data/bsd/train432), or of real noisy / clean pairs
    (noisy/ + clean/, or SIDD's scene folders) used as they are (none: the embedded scikit-image photos)"""
    test: str | None = None
    """folder of test images (clean, or noisy / clean pairs) scored at every evaluation for reporting only"""
    sigma: tuple[float, ...] = tuple(float(v) for v in ENV["sigma"])
    """Gaussian noise standard deviation on the 0-255 scale; several train a blind denoiser (each crop draws
    one; evaluation scores each and their mean picks best.pt)"""
    gray: bool = ENV["gray"]
    """gray images (the PixelRL protocol); false denoises RGB"""
    crop: int = ENV["crop"]
    """crop size in pixels (PixelRL: 70)"""
    steps: int = ENV["max_episode_steps"]
    """filter steps per episode, in training and evaluation (PixelRL: 5)"""
    predictor: str | None = None
    """supervised denoiser checkpoint (MRPNet, FFDNet; of the run's planes) whose prediction becomes a tenth
    action, e.g. rlenhance/weights/mrpnet_denoise.pt"""
    observe_prediction: bool = ENV["observe_prediction"]
    """with a predictor: the policy (and SAC's critics) also see its output"""
    level_scales: tuple[float, ...] = tuple(ENV["level_scales"])
    """the actions set the noise-level map of the predictor (a noise-map denoiser, FFDNet): per pixel a scale
    of the map, which starts at the image's level (empty: PixelRL's filters)"""
    level_error: float = ENV["level_error"]
    """with task.level_scales: each training episode's map starts at the estimated level times a factor drawn
    log-uniformly from [1 / level_error, level_error] (a mis-estimated level; 1: the estimate itself);
    evaluation and inference start at the estimate"""
    reward_blur: int = ENV["reward_blur"]
    """each pixel's reward is the gain averaged over this box (odd, pixels) around it (1: its own gain)"""
    noise_ramp: bool = ENV["noise_ramp"]
    """each crop's noise level varies across it, linear between two levels of the --sigma range, in a random
    direction; the held-out images are also scored with a level from the lowest at the left edge to the
    highest at the right (eval/psnr_ramp), and that score counts in the mean that picks best.pt"""
    noise_seed: int = 0
    """seed of the evaluation noise (each image's noise is seeded by it and the file name)"""
    val_fraction: float = 0.1
    """fraction of the data images (scenes) held out for validation (best.pt is reported on it)"""
    tune_fraction: float = TUNE_FRACTION
    """fraction of the data images (scenes) held out of training as the tuning split, which picks best.pt
    (0: none; the validation split picks)"""
    eval_images: int = 0
    """evaluate on the first N tuning, validation (and test) images only (0: all)"""


@dataclass(frozen=True)
class Config(RLConfig):
    """Train a pixel-wise denoiser (PixelRL: per-pixel choice among nine filters) with A3C or SAC."""

    task: TaskSettings = TaskSettings()
    run: RLRunSettings = RLRunSettings(episodes=100, batch=8, eval_every=50, out="runs/denoise_train")

    ACTION_REWARDS = True


def _over_ffdnet(**changes: Any) -> Config:
    return config.replace_path(Config(), {
        "task.data": "../shared/data/bsd/train432", "task.tune_fraction": 0.0, "task.sigma": (15.0, 25.0, 50.0),
        "task.predictor": "rlenhance/weights/ffdnet_denoise.pt", "task.observe_prediction": True,
        "task.eval_images": 16, "model.downscale": 2, **changes})


def over_ffdnet() -> Config:
    """Blind gray A3C over BSD train432 at sigma 15 / 25 / 50 with the shipped FFDNet's pixel as a tenth
    action it also sees; 3,600 episodes of 32 crops, evaluated every 300. Not shipped: its best.pt took
    FFDNet's pixel everywhere (rlenhance/weights/README.md, "RL policies not shipped"). The presets of
    the files whose figures are quoted pick on the validation split, as those files were (no tuning split)."""
    return _over_ffdnet(**{"a3c.lr_decay": "poly", "run.batch": 32, "run.episodes": 3600, "run.eval_every": 300})


def over_ffdnet_sac() -> Config:
    """The task of ``over-ffdnet`` with pixel-wise SAC, 100 critic and 100 actor updates per episode of 16
    crops, every action's reward; 150 episodes evaluated every 25. Not shipped, as ``over-ffdnet``."""
    return _over_ffdnet(**{"agent": "sac", "sac.updates": 100, "sac.actor_updates": 100,
                            "sac.all_action_rewards": True, "run.batch": 16, "run.episodes": 150,
                            "run.eval_every": 25})


def _shipped_color(**changes: Any) -> Config:
    return config.replace_path(Config(), {
        "task.data": "../shared/data/sice_pairs/train/high", "task.gray": False,
        "task.sigma": (25.0,),
        "task.eval_images": 6, "run.batch": 16, **changes})


def color() -> Config:
    """The shipped rlenhance/weights/a3c_denoise_color.pt: RGB A3C at sigma 25 on SICE's normal-light
    images, 400 episodes of 16 crops evaluated every 100 (its best.pt: episode 400)."""
    return _shipped_color(**{"a3c.lr_decay": "poly", "run.episodes": 400, "run.eval_every": 100})


def color_sac() -> Config:
    """The shipped rlenhance/weights/sac_denoise_color.pt: the task of ``color`` with pixel-wise SAC, 60
    episodes evaluated every 30."""
    return _shipped_color(**{"agent": "sac", "run.episodes": 60, "run.eval_every": 30})


def pixelrl() -> Config:
    """PixelRL's denoiser (REFERENCES): 64-channel network with a ConvGRU, A3C with the learned reward-map
    convolution, lr 1e-3 decayed polynomially, 64 crops of 70 px, 5 steps, gamma 0.95, sigma 25 (its
    30,000 episodes left to --episodes). Costly on a CPU (64 crops through the 64-channel ConvGRU network
    an episode): a GPU is the place for it."""
    return config.replace_path(Config(), {
        "model.width": 64, "model.conv_gru": True, "a3c.reward_map_conv": True, "a3c.lr_decay": "poly",
        "run.batch": 64, "task.sigma": (25.0,)})


def noise_map() -> Config:
    """The shipped rlenhance/weights/noise_map_denoise.pt (docs/denoising.md): A3C scales the shipped FFDNet's
    noise-level map per 4 x 4 block in 3 steps (x0.5 .. x2 from the estimated level), on BSD train432 with noise
    ramps of 10-50 and a mis-estimated starting map; best.pt by the mean PSNR over the ramp and the levels 10,
    25, 50."""
    return config.replace_path(Config(), {
        "task.data": "../shared/data/bsd/train432", "task.sigma": (10.0, 25.0, 50.0), "task.noise_ramp": True,
        "task.predictor": "rlenhance/weights/ffdnet_denoise.pt", "task.level_scales": LEVEL_SCALES,
        "task.level_error": 2.0,
        "task.steps": 3, "task.crop": 64, "task.reward_blur": 9, "task.eval_images": 4, "model.downscale": 4,
        "a3c.gamma": 0.0, "a3c.entropy": 0.003, "a3c.lr_decay": "poly",
        "run.batch": 16, "run.episodes": 300, "run.eval_every": 50})


def noise_map_color() -> Config:
    """The shipped rlenhance/weights/noise_map_denoise_color.pt: the task of ``noise-map`` on RGB images (SICE's
    normal-light photos), FFDNet running on their opponent colour planes."""
    return config.replace_path(noise_map(), {"task.data": "../shared/data/sice_pairs/train/high", "task.gray": False})


#: The noise-level map's scales of the ``noise-map`` preset.
LEVEL_SCALES = (0.5, 0.7, 0.85, 1.0, 1.2, 1.4, 2.0)
#: ``--preset NAME`` -> the config it names and its cost per episode and evaluation (``benchmarks.preset_cost``).
PRESETS: Mapping[str, Preset] = MappingProxyType({
    "over-ffdnet": Preset(over_ffdnet, cpu=Cost(1.49, eval_s=58.0), cuda=Cost(0.084, eval_s=3.45)),
    "over-ffdnet-sac": Preset(over_ffdnet_sac, cpu=Cost(48.7, eval_s=70.7), cuda=Cost(2.13, eval_s=5.36)),
    "color": Preset(color, cpu=Cost(2.28, eval_s=25.9), cuda=Cost(0.053, eval_s=0.2)),
    "color-sac": Preset(color_sac, cpu=Cost(7.1, eval_s=26.2), cuda=Cost(0.117, eval_s=0.3)),
    "pixelrl": Preset(pixelrl, cpu=Cost(85.1, eval_s=7.18), cuda=Cost(0.162, eval_s=0.17)),
    "noise-map": Preset(noise_map, cpu=Cost(0.86, eval_s=20.9)),
    "noise-map-color": Preset(noise_map_color, cpu=Cost(2.59, eval_s=86.9))})
#: The named flags (everything else: ``--set SECTION.KEY=VALUE``).
FLAGS: Mapping[str, str] = MappingProxyType({
    **RL_FLAGS, "data": "task.data", "test": "task.test", "sigma": "task.sigma", "gray": "task.gray",
    "predictor": "task.predictor", "observe-prediction": "task.observe_prediction", "crop": "task.crop",
    "steps": "task.steps", "eval-images": "task.eval_images"})


def check(cfg: Config, base: Config | None = None) -> Config:
    """Raise ValueError (FileNotFoundError for a missing predictor) naming a bad setting or one that does
    not apply; the config returned records one noise level as a one-level tuple, several ascending."""
    cfg = check_rl(cfg, base)
    t = cfg.task
    levels = resolve_sigma(t.sigma)
    cfg = config.replace_path(cfg, {"task.sigma": levels if isinstance(levels, tuple) else (levels,)})
    check_fractions(t.val_fraction, t.tune_fraction)
    if t.eval_images < 0 or t.noise_seed < 0:
        raise ValueError(f"task.eval_images {t.eval_images} / task.noise_seed {t.noise_seed}: expected integers >= 0")
    if t.crop < 1 or t.steps < 1:
        raise ValueError(f"task.crop {t.crop} / task.steps {t.steps}: expected integers >= 1")
    if t.observe_prediction and t.predictor is None:
        raise ValueError("--observe-prediction: the policy would see the --predictor's output; give --predictor")
    if t.level_scales and (t.predictor is None or t.observe_prediction or cfg.agent != "a3c"):
        raise ValueError("task.level_scales: the actions set a --predictor's noise-level map (an FFDNet), for A3C; "
                         "give --predictor, without --observe-prediction")
    if t.level_error != ENV["level_error"] and not t.level_scales:
        raise ValueError("task.level_error: the error of the noise-level map's start; it needs task.level_scales")
    if t.noise_ramp and len(cfg.task.sigma) < 2:
        raise ValueError("task.noise_ramp: the level varies within the --sigma range; give two levels or more")
    if t.predictor is not None and not_a_file(t.predictor):
        raise FileNotFoundError(f"--predictor {t.predictor}: {not_a_file(t.predictor)} (expected a denoiser "
                                "checkpoint of experiments.supervised_train --task denoise)")
    return cfg


def open_data(cfg: Config) -> DataSplits:
    """The training, tuning (None with ``task.tune_fraction`` 0), validation and test (None without ``task.test``)
    data sets, split by the split seed (:func:`rlenhance.data.open_dataset`)."""
    t = cfg.task
    opener = BuiltinImages if t.data is None else partial(open_dataset, t.data, kind="clean")
    return data_splits(cfg, opener, BUILTIN_VAL_FRACTION,
                       partial(open_dataset, kind="clean", split=None, gray=t.gray, seed=split_seed(cfg)), gray=t.gray)


def sigma_value(cfg: Config) -> float | list[float]:
    """The noise level(s) as the env and the spec take them: one level a number, several a list."""
    levels = resolve_sigma(cfg.task.sigma)
    return list(levels) if isinstance(levels, tuple) else levels


def env_kwargs(cfg: Config) -> dict[str, Any]:
    """The Denoise-v0 arguments of the run (JSON-able; saved in the checkpoints' spec, the predictor apart)."""
    t = cfg.task
    kwargs = {"sigma": sigma_value(cfg), "gray": t.gray, "crop": t.crop, "max_episode_steps": t.steps}
    optional = {"observe_prediction": t.observe_prediction, "level_scales": list(t.level_scales),
                "level_error": t.level_error if t.level_error != ENV["level_error"] else None,
                "reward_blur": t.reward_blur if t.reward_blur != ENV["reward_blur"] else None,
                "noise_ramp": t.noise_ramp}
    return {**kwargs, **{k: v for k, v in optional.items() if v}}


def inference_spec(cfg: Config) -> RolloutPolicySpec:
    """What :class:`rlenhance.denoisers.PolicyDenoiser` needs to restore images (saved in the checkpoints)."""
    predictor = cfg.task.predictor
    return rollout_policy_spec("denoise", env_kwargs(cfg), block_actions=uses_block_actions(cfg),
                               predictor=str(Path(predictor).resolve()) if predictor else None)


@torch.no_grad()
def evaluate(policy: PixelActorCritic, images: Mapping[float, Sequence[NoisyImage]],
             cfg: Config, predictor: DenoisePredictor | None = None, track: Track = untracked,
             ) -> tuple[dict[str, float], list[list[torch.Tensor]]]:
    """Greedy rollouts (:meth:`rlenhance.denoisers.PolicyDenoiser.from_policy`) on the whole noisy images of each
    level (``{sigma: images}``): per-image PSNR / SSIM of the clamped output, the input (``input_``) and the
    ``predictor`` (``predictor_``), averaged per level (:func:`experiments.sigmas.level_scores`). Returns the scores
    and the sample grid's rows (:func:`grid_captions`)."""
    flat = [im for level in images.values() for im in level]
    start = time.perf_counter()
    denoiser = PolicyDenoiser.from_policy(policy, inference_spec(cfg), predictor=predictor)
    results = denoiser.rollout_images([(im.noisy,) for im in flat], batch_size=cfg.run.eval_batch,
                                      track=lambda batches: track(batches, "rollouts"))
    ms = (time.perf_counter() - start) * _MS_PER_S / len(flat)
    outputs, actions = [out for out, _ in results], [taken for _, taken in results]
    by_level, level_rows, done = {}, [], 0
    for sigma, level in images.items():
        level_outputs, done = outputs[done:done + len(level)], done + len(level)
        per_image: dict[str, list[float]] = {}
        where = "on the noise ramp" if sigma == RAMP else f"at sigma {sigma:g}"
        for image, output in track(list(zip(level, level_outputs)), f"scores {where}"):
            clean = image.clean[None]
            candidates = {"": output.clamp(0.0, 1.0)[None], "input_": image.noisy.clamp(0.0, 1.0)[None]}
            if predictor is not None:
                candidates["predictor_"] = predictor(image.noisy[None])
            for prefix, result in candidates.items():
                per_image.setdefault(f"{prefix}psnr", []).append(float(metrics.psnr(result, clean)[0]))
                per_image.setdefault(f"{prefix}ssim", []).append(float(metrics.ssim(result, clean)[0]))
        by_level[sigma] = {f"eval/{k}": sum(v) / len(v) for k, v in per_image.items()}
        level_rows.append([([im.noisy, out, im.clean], taken) for im, out, taken in
                           zip(level, level_outputs, actions[done - len(level):done])])
    scores = level_scores(by_level)
    scores["eval/ms_per_image"] = ms
    scores[TOP_ACTION_SHARE] = top_action_share(actions)
    shown = [row for rows in zip(*level_rows) for row in rows][:cfg.run.samples]
    return scores, with_maps([row for row, _ in shown], [taken for _, taken in shown], actions=denoiser.action_names)


def grid_captions(cfg: Config) -> tuple[str, ...]:
    """The columns of the sample grids: noisy | output | clean, the actions of the first and last step, their key."""
    return map_captions(("noisy", "output", "clean"), "actions", cfg.task.steps)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """The command line resolved and checked (:func:`experiments.run_settings.parse_run`)."""
    return parse_run(Config, sys.argv[1:] if argv is None else argv, presets=PRESETS, flags=FLAGS,
                     prog="denoise_train", description=__doc__.split("\n\n")[0], check=check,
                     estimate=estimate_seconds)


def main(argv: Sequence[str] | None = None) -> Path:
    cfg = parse_args(argv)
    ranks = Ranks.from_env()
    device = setup(cfg, ranks)
    data = open_data(cfg)
    # the predictor as the trained policy will run it (the spec's path and noise level)
    predictor = DenoisePredictor.for_policy(inference_spec(cfg), device=device)
    run = open_run(cfg, ranks)
    action_rewards = cfg.agent == "sac" and cfg.sac.all_action_rewards  # A3C would not read them

    def make_venv():
        return envs.make_vec(ENV_ID, device=device, **env_batch(cfg, ranks), data=data.train, predictor=predictor,
                             action_rewards=action_rewards, **env_kwargs(cfg))

    venv = make_venv()
    sigma = sigma_value(cfg)
    images = {name: noisy_test_sets(part, sigma, seed=cfg.task.noise_seed, device=device,
                                    limit=cfg.task.eval_images, ramp=cfg.task.noise_ramp)
              for name, part in ((data.split, data.picking), ("val", data.reported), ("test", data.test))
              if part is not None}
    counts = {f"{name}_images": len(next(iter(level.values()))) for name, level in images.items()}
    agent = make_agent(cfg, venv, steps=cfg.task.steps, resume=run.resuming, ranks=ranks)

    def scored(policy: PixelActorCritic, levels: Any) -> tuple[dict[str, float], list[list[torch.Tensor]]]:
        return evaluate(policy, levels, cfg, predictor, track=run.track)

    out = fit(cfg, run, agent, venv, make_venv=make_venv,
              evaluate=with_test_scores(scored, images[data.split], images.get("test")),
              metric="eval/psnr", spec=inference_spec(cfg),
              summary={"noise": noise_text(sigma, data.train, data.picking if data.test is None else data.test),
                       **counts, "predictor": cfg.task.predictor is not None},
              captions=grid_captions(cfg), presets=PRESETS,
              check=check, split=data.split,
              report=None if data.reported is None else lambda policy: scored(policy, images["val"]))
    best = Path(out) / "checkpoints" / "best.pt"
    model = "noise-map" if cfg.task.level_scales else cfg.agent  # rlenhance.registry's name for the policy
    run.say(*usage_lines(best, ["denoise", "noisy.png", "-o", "denoised/", "--model", model, "--checkpoint", best]))
    return out


if __name__ == "__main__":
    run_cli(main, "denoise_train")
