"""Train an RSE-RL denoiser: patch VAE with a D4-invariant latent, clustering of clean patch
latents, a trust-region SAC agent blending every pixel toward its candidates, and recursive
self-enhancement rounds.

    python -m experiments.rse_train                                          # embedded colour photos, CPU minutes
    python -m experiments.rse_train --data ../shared/data/sice_pairs/train/high --out runs/rse_sice
    python -m experiments.rse_train --data DIR --test DIR --baselines bilateral bm3d   # bm3d: pip install bm3d
    python -m experiments.rse_train --sigma 5 15 25 35 50                    # a blind denoiser
    python -m experiments.rse_train --predictor rlenhance/weights/ffdnet_denoise.pt   # + a supervised candidate
    python -m experiments.rse_train --preset rse-denoise-color               # the shipped rse_denoise_color.pt
    python -m experiments.rse_train --preset rse-rl --print-config            # every setting, as a --config file

The settings form one config of four sections (``task``, ``rse``, ``sac``, ``run``): ``--print-config``
shows them, ``--set SECTION.KEY=VALUE`` changes any, ``--config FILE`` reads a TOML / JSON file or a run
folder's config.json, ``--preset NAME`` starts from a shipped recipe.

Each round ``k`` (1 .. ``--rounds``) runs four phases, then evaluates:

1. **vae**: the round's :class:`rlenhance.models.vae.PatchVAE` learns to map degraded 16 x 16
   patches onto their clean versions (and clean patches onto themselves): round 1 on clean
   training crops with fresh Gaussian noise of ``--sigma`` at every step (several levels: each
   patch draws one, as each pool crop and each SAC crop does; :mod:`experiments.sigmas`), or, with
   real noisy / clean pairs (``--data`` read as ``NoisyPairs``), on the pool's real noisy crops;
   round k > 1 fine-tunes round k-1's VAE on the pool of round k-1's outputs;
2. **bank**: ``rse.bank_size`` clean training patches are encoded and clustered by k-means
   (``rse.clusters``); ``samples/roundK_clusters.png`` shows member patches of the largest clusters,
   ``samples/roundK_neighbours.png`` degraded patches with their candidates and nearest clean patches;
3. **sac**: pixel-wise SAC with a trust region (``sac.trust_region_kl``) on ``rlenhance/RSE-v0``:
   per pixel, how far to move toward the VAE reconstruction or the decoded clean-neighbour mean,
   rewarded by the squared-error decrease x 255 minus ``sac.w_deblock`` x the seam penalty; the policy
   with the best held-out PSNR is kept (round k > 1 starts from round k-1's);
4. **pool**: the round is applied to the pool of training crops (``rse.pool_crops``, noise fixed by
   ``--seed``), whose outputs are the next round's inputs (self-enhancement).

``--predictor`` (a supervised denoiser of ``experiments.supervised_train --task denoise``, run as
:class:`rlenhance.denoisers.DenoisePredictor` runs it, given each image's estimated noise level; a
gray FFDNet serves colour images through the opponent planes) adds its output for each round's
input as a third candidate and a third action (how far the target moves toward it); the summary
gets a row for the predictor alone, and the spec records its path (:func:`rlenhance.denoisers.load_rse`
finds it again).

Held-out images (``--test``, else the held-out split of ``--data``, else the embedded photo
``chelsea``) get fixed noise (``task.noise_seed``, :func:`rlenhance.data.noisy_test_set`; real pairs
keep their own noisy images); round k is
applied to round k-1's outputs on them and scored (PSNR / SSIM / UQI of the clamped output, per
image, averaged). With several ``--sigma`` levels the held-out images are noised at each and
scored per level (``psnr_sigma15`` ...), the plain scores being the mean over the levels; the
classical baselines are told each image's level. The recursion stops after a round that gains no
more than ``rse.min_gain`` dB over the previous one (that round is not kept). ``summary.md`` and
``rounds.csv`` hold the per-round table with the noisy input and the ``--baselines``;
``checkpoints/best.pt`` is the denoiser with the best rounds (:func:`rlenhance.denoisers.load_rse`),
``checkpoints/last.pt`` what ``--resume`` continues (a SAC phase restarts with an empty replay
buffer, as in the other trainers; everything else continues exactly). Ctrl-C / SIGTERM save last.pt and stop.

Under ``torchrun --nproc_per_node N`` (:mod:`agents.distributed`) the VAE steps split
``rse.vae_batch`` and the SAC phase ``sac.batch`` and ``sac.update_batch`` over the ranks (each rank its
rows of the global batch, drawn per row so that a rank draws only its own (:func:`vae_batch`, the
envs' ``shard``); gradients averaged), which computes one process's updates; the bank
and the pool's next inputs are computed by every rank alike; rank 0 alone scores the held-out
images, runs the baselines and writes the run folder, and hands its scores to the other ranks.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from agents.distributed import Ranks
from agents.sac import SAC, SACConfig
from envs.base import EpisodeRow, episode_rows
from envs.rse import make_rse_vec
from experiments import config as configs
from experiments import denoise_train
from experiments.loop import check_resume
from experiments.rl_common import episode_scalars, episode_seed
from experiments.runs import Run, StopSignals, read_config, run_cli, setup_process, usage_lines
from experiments.sigmas import (
    draw_levels,
    has_real_noise,
    level_key,
    level_scores,
    noise_levels,
    noise_text,
    noisy_test_sets,
    resolve_sigma,
)
from rlenhance import metrics
from rlenhance.atomic import write_text_atomic
from rlenhance.baselines import baseline_missing, bilateral_denoise, bm3d_denoise, gaussian_denoise
from rlenhance.checkpoint import RSEDenoiserSpec, load_checkpoint
from rlenhance.data import (
    NoisyImage,
    add_gaussian_noise,
    sample_batch,
)
from rlenhance.denoisers import DenoisePredictor
from rlenhance.models.rse import RSEDenoiser, RSERound
from rlenhance.models.vae import canonicalise, d4_inverse, vae_loss

#: Fraction of the embedded photos held out when neither --data nor --test is given (as denoise_train).
BUILTIN_VAL_FRACTION = 0.2
PROG = "rse_train"
#: The phases of a round, in order; "done" once the recursion has stopped.
PHASES = ("vae", "bank", "sac", "pool")
DONE = "done"
#: Classical baselines of the summary table.
BASELINES = {"gaussian": gaussian_denoise, "bilateral": bilateral_denoise, "bm3d": bm3d_denoise}
#: VAE losses are logged every this many steps.
VAE_LOG_EVERY = 50
#: Cluster picture: clusters shown (largest first) and patches per cluster; neighbour picture: rows.
PICTURE_CLUSTERS, PICTURE_MEMBERS, PICTURE_ROWS, PICTURE_NEIGHBOURS = 8, 10, 6, 5
#: Patches are shown enlarged by this factor (nearest neighbour) in the pictures.
PICTURE_ZOOM = 3
#: Crops per batch when a round is applied to the pool.
POOL_BATCH = 32
#: The step of a round's bank draw in :func:`phase_seed` (past any VAE step).
BANK_STEP = 1 << 20
_MS_PER_S = 1000.0


@dataclass(frozen=True)
class TaskSettings:
    """The images, their noise and the held-out scoring."""

    data: str | None = None
    """clean training images (e.g. ../shared/data/sice_pairs/train/high), or real noisy/ + clean/ pairs (their
    own noise); None: the embedded scikit-image colour photos"""
    test: str | None = None
    """clean held-out images, scored whole, or real pairs; None: the held-out split of data (or the photo chelsea)"""
    sigma: tuple[float, ...] = (25.0,)
    """Gaussian noise level(s) on the 0-255 scale (several: a blind denoiser, scored per level)"""
    gray: bool = False
    """gray images (default: RGB)"""
    noise_seed: int = 0
    """seed of the held-out noise (each image's noise is seeded by it and the file name)"""
    eval_images: int = 0
    """score the first N held-out images only (0: all)"""
    baselines: tuple[str, ...] = ("bilateral",)
    """classical baselines of the summary: gaussian, bilateral, bm3d (pip install bm3d)"""

    #: Fraction of the data images (by scene) held out when no test folder is given.
    val_fraction: ClassVar[float] = 0.1


@dataclass(frozen=True)
class RSESettings:
    """The recursion, the pool, the patch VAE and the clean-latent bank."""

    rounds: int = 3
    """self-enhancement rounds at most (K)"""
    min_gain: float = 0.05
    """stop after a round gaining no more than this (dB of held-out PSNR); that round is not kept (negative: keep
    every round)"""
    pool_crops: int = 128
    """training crops (fixed noise) whose round-k outputs are round k+1's inputs; the VAE's and the bank's clean
    patches come from them"""
    pool_size: int = 96
    """side of the pool crops (at most the smallest training image)"""
    patch: int = 16
    """patch side (RSE-RL: 16)"""
    stride: int = 8
    """step between patches (8: half-overlap, the Hann windows sum to one)"""
    latent_dim: int = 64
    """VAE latent size"""
    hidden: int = 512
    """VAE hidden units per layer"""
    depth: int = 2
    """VAE hidden layers (encoder and decoder each)"""
    vae_steps: int = 1500
    """VAE training steps of round 1"""
    vae_finetune_steps: int = 500
    """VAE fine-tuning steps of rounds k > 1"""
    vae_batch: int = 256
    """patch pairs per VAE step"""
    vae_lr: float = 1e-3
    """VAE Adam learning rate of round 1 (cosine decay over the round's steps)"""
    vae_finetune_lr: float = 3e-4
    """VAE Adam learning rate of rounds k > 1 (cosine decay)"""
    vae_beta: float = 1e-3
    """KL weight (a Gaussian decoder of standard deviation sqrt(beta / 2))"""
    vae_align: float = 1.0
    """weight of the alignment of degraded latents with their clean latents"""
    bank_size: int = 4096
    """clean patch latents clustered per round (the neighbour search's bank)"""
    clusters: int = 32
    """k-means clusters of the clean latents"""
    probe: int = 2
    """clusters searched per query"""
    neighbours: int = 8
    """nearest clean latents averaged into the neighbour candidate"""
    predictor: str | None = None
    """a denoiser of experiments.supervised_train (e.g. rlenhance/weights/ffdnet_denoise.pt) whose output for each
    round's input is a third candidate (and a third action)"""


@dataclass(frozen=True)
class SACPhaseSettings:
    """The trust-region SAC phase of each round (rlenhance/RSE-v0)."""

    episodes: int = 120
    """SAC episodes per round (each a batch of crops, the blend steps, then the updates)"""
    eval_every: int = 40
    """score the policy on the held-out images every N episodes (and at the end); the best is kept"""
    batch: int = 8
    """crops per episode (the vector env's num_envs)"""
    crop: int = 48
    """crop size in pixels"""
    steps: int = 1
    """blend steps per round, in training and at inference"""
    width: int = 16
    """channels of the policy network (and of the critics)"""
    policy_downscale: int = 2
    """the policy and critics run on the image average-pooled by this factor (cheaper inference)"""
    gamma: float = 0.0
    """discount (0 with one step: every step is scored on its own)"""
    lr: float = 3e-4
    """Adam learning rate of the actor and critics"""
    w_deblock: float = 1.0
    """weight of the de-blocking penalty in the reward"""
    trust_region_kl: float = 0.01
    """bound on the mean per-pixel KL(pi_old || pi_new) of every actor step, by a line search (RSE-RL); 0: off"""
    update_batch: int = 8
    """transitions (crops) per SAC update"""
    updates: int = 2
    """SAC updates after each episode"""
    learning_starts: int = 16
    """transitions in the replay buffer before the first update"""
    buffer_mb: float = 128.0
    """memory bound of the replay buffer in MB"""
    init_alpha: float = SACConfig.init_alpha
    """initial entropy temperature"""
    critic_warmup: int = SACConfig.critic_warmup
    """critic-only updates before the actor's first"""


@dataclass(frozen=True)
class RunSettings:
    """Seeds, hardware and the run folder."""

    samples: int = 2
    """held-out images shown in each round's sample grid"""
    seed: int = 0
    """seed of everything (pool, noise draws, weights, SAC)"""
    split_seed: int | None = None
    """seed of the train/held-out split alone (None: seed)"""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N"""
    threads: int = 0
    """torch CPU threads (0: every core but one)"""
    out: str = "runs/rse_train"
    """run folder"""
    resume: bool = False
    """continue the run in out from checkpoints/last.pt with its own config"""


@dataclass(frozen=True)
class Config:
    """Train an RSE-RL denoiser (patch VAE + latent clustering + trust-region SAC, recursive rounds)."""

    task: TaskSettings = TaskSettings()
    rse: RSESettings = RSESettings()
    sac: SACPhaseSettings = SACPhaseSettings()
    run: RunSettings = RunSettings()


#: The named flags (the rest: ``--set``).
FLAGS = {"data": "task.data", "test": "task.test", "sigma": "task.sigma", "eval-images": "task.eval_images",
         "baselines": "task.baselines", "rounds": "rse.rounds", "vae-steps": "rse.vae_steps",
         "predictor": "rse.predictor", "episodes": "sac.episodes", "eval-every": "sac.eval_every",
         "samples": "run.samples", "seed": "run.seed", "device": "run.device", "threads": "run.threads",
         "out": "run.out", "resume": "run.resume"}
#: Settings a ``--resume`` may change.
MAY_CHANGE = ("run.device", "run.threads", "run.out", "run.resume", "run.samples")
SICE_HIGH = "../shared/data/sice_pairs/train/high"
_SHIPPED = {"task.data": SICE_HIGH, "task.eval_images": 8, "task.baselines": ("bilateral",), "rse.vae_steps": 3000,
            "rse.pool_crops": 256, "run.threads": 1, "run.seed": 0}


def rse_denoise_color() -> Config:
    """rse_denoise_color.pt: one round on the FFDNet's candidate, SICE colour, sigma 25 (~12 min on 1 CPU core).

    The shipped file is this run's best.pt with its spec's predictor set to the bare name ffdnet_denoise.pt
    (rlenhance/weights/README.md)."""
    return configs.replace_path(Config(), {**_SHIPPED, "rse.rounds": 1, "rse.predictor":
                                           "rlenhance/weights/ffdnet_denoise.pt", "sac.episodes": 200,
                                           "sac.eval_every": 25, "sac.critic_warmup": 200, "sac.init_alpha": 0.01,
                                           "sac.updates": 4, "run.out": "runs/rse_denoise_color"})


def rse_rl() -> Config:
    """RSE-RL's recursion alone: two rounds, no predictor, SICE colour, sigma 25 (~20 min on 1 CPU core)."""
    return configs.replace_path(Config(), {**_SHIPPED, "rse.rounds": 2, "sac.episodes": 60, "sac.eval_every": 30,
                                           "run.out": "runs/rse_rl"})


PRESETS = {"rse-denoise-color": rse_denoise_color, "rse-rl": rse_rl}


@dataclass(frozen=True)
class Settings:
    """A run's settings as the trainer reads them: the config's sections flattened (``sac.batch`` is
    ``batch``, ``sac.update_batch`` ``sac_batch``, ``rse.vae_steps`` ``vae_steps`` ...)."""

    data: str | None
    test: str | None
    sigma: float | tuple[float, ...]
    gray: bool
    noise_seed: int
    eval_images: int
    baselines: tuple[str, ...]
    rounds: int
    min_gain: float
    pool_crops: int
    pool_size: int
    patch: int
    stride: int
    latent_dim: int
    hidden: int
    depth: int
    vae_steps: int
    vae_finetune_steps: int
    vae_batch: int
    vae_lr: float
    vae_finetune_lr: float
    vae_beta: float
    vae_align: float
    bank_size: int
    clusters: int
    probe: int
    neighbours: int
    predictor: str | None
    episodes: int
    eval_every: int
    batch: int
    crop: int
    steps: int
    width: int
    policy_downscale: int
    gamma: float
    lr: float
    w_deblock: float
    sac_trust_region_kl: float
    sac_batch: int
    sac_updates: int
    sac_learning_starts: int
    sac_buffer_mb: float
    sac_init_alpha: float
    sac_critic_warmup: int
    samples: int
    seed: int
    threads: int


#: Where each :class:`Settings` field lives in the config (the name its errors give).
PATHS = {**{f: f"task.{f}" for f in ("data", "test", "sigma", "gray", "noise_seed", "eval_images", "baselines")},
         **{f.name: f"rse.{f.name}" for f in fields(RSESettings)},
         **{f: f"sac.{f}" for f in ("episodes", "eval_every", "batch", "crop", "steps", "width", "policy_downscale",
                                    "gamma", "lr", "w_deblock")},
         "sac_trust_region_kl": "sac.trust_region_kl", "sac_batch": "sac.update_batch", "sac_updates": "sac.updates",
         "sac_learning_starts": "sac.learning_starts", "sac_buffer_mb": "sac.buffer_mb",
         "sac_init_alpha": "sac.init_alpha", "sac_critic_warmup": "sac.critic_warmup",
         "samples": "run.samples", "seed": "run.seed", "threads": "run.threads"}


def settings(cfg: Config) -> Settings:
    """The flat settings of a config (not yet checked: :func:`resolve`)."""
    values = {**asdict(cfg.task), **asdict(cfg.rse), **asdict(cfg.run)}
    sac = asdict(cfg.sac)
    values.update({k: sac[k] for k in ("episodes", "eval_every", "batch", "crop", "steps", "width", "policy_downscale",
                                       "gamma", "lr", "w_deblock")})
    values.update(sac_trust_region_kl=sac["trust_region_kl"], sac_batch=sac["update_batch"],
                  sac_updates=sac["updates"], sac_learning_starts=sac["learning_starts"],
                  sac_buffer_mb=sac["buffer_mb"], sac_init_alpha=sac["init_alpha"],
                  sac_critic_warmup=sac["critic_warmup"])
    return Settings(**{f.name: values[f.name] for f in fields(Settings)})


def check(cfg: Config) -> Config:
    """The config, checked (:func:`resolve`); ValueError naming the first bad setting."""
    resolve(settings(cfg))
    return cfg


def parse(argv: Sequence[str]) -> Config:
    """The config of a command line; ``--resume`` without ``--config`` starts from the run's own config.json."""
    argv = list(argv)
    if "--resume" in argv and "--config" not in argv and "--print-config" not in argv:
        out = Path(configs.parse(Config, argv, presets=PRESETS, flags=FLAGS, prog=PROG).run.out)
        if (out / "config.json").exists():
            read_config(out, "experiments.rse_train", [f.name for f in fields(Config)])
            argv = ["--config", str(out), *argv]
    return configs.parse(Config, argv, presets=PRESETS, flags=FLAGS, prog=PROG, check=check)


def resolve(args: Settings) -> Settings:
    """The arguments, checked (ValueError naming the first bad one)."""
    positive = ("rounds", "pool_crops", "pool_size", "patch", "stride", "latent_dim", "hidden", "depth", "vae_steps",
                "vae_batch", "bank_size", "clusters", "probe", "neighbours", "episodes", "batch", "crop", "steps",
                "width", "policy_downscale", "eval_every", "sac_batch", "sac_updates")
    for name in positive:
        value = getattr(args, name)
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{PATHS[name]} {value!r}: expected an integer >= 1")
    for name in ("vae_finetune_steps", "eval_images", "noise_seed", "samples", "threads", "sac_learning_starts",
                 "seed"):
        value = getattr(args, name)
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise ValueError(f"{PATHS[name]} {value!r}: expected an integer >= 0")
    if not (math.isfinite(args.sac_trust_region_kl) and args.sac_trust_region_kl >= 0):
        raise ValueError(f"sac.trust_region_kl {args.sac_trust_region_kl!r}: expected a finite number >= 0 (0: off)")
    args = replace(args, sigma=resolve_sigma(args.sigma))
    if args.stride > args.patch:
        raise ValueError(f"rse.stride {args.stride}: expected at most rse.patch ({args.patch})")
    if args.clusters > args.bank_size or args.neighbours > args.bank_size:
        raise ValueError(f"rse.clusters {args.clusters} / rse.neighbours {args.neighbours}: expected at most "
                         f"rse.bank_size ({args.bank_size})")
    if args.patch > args.pool_size or args.patch > args.crop:
        raise ValueError(f"rse.patch {args.patch}: expected at most rse.pool_size ({args.pool_size}) and sac.crop "
                         f"({args.crop})")
    for name in ("vae_lr", "vae_finetune_lr", "lr"):
        if not (math.isfinite(getattr(args, name)) and getattr(args, name) > 0):
            raise ValueError(f"{PATHS[name]} {getattr(args, name)!r}: expected a finite number > 0")
    if not math.isfinite(args.min_gain):
        raise ValueError(f"rse.min_gain {args.min_gain!r}: expected a finite number (negative: keep every round)")
    for name in ("vae_beta", "vae_align", "w_deblock"):
        if not (math.isfinite(getattr(args, name)) and getattr(args, name) >= 0):
            raise ValueError(f"{PATHS[name]} {getattr(args, name)!r}: expected a finite number >= 0")
    if args.predictor is not None and not Path(args.predictor).is_file():
        raise FileNotFoundError(f"rse.predictor {args.predictor}: no such file (expected a denoiser checkpoint of "
                                "experiments.supervised_train --task denoise)")
    unknown = [b for b in args.baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"task.baselines {' '.join(unknown)}: expected some of {', '.join(BASELINES)}")
    sac_config(args)  # SACConfig checks gamma and the sac.* values
    return args


def sac_config(args: Settings, round_index: int = 0) -> SACConfig:
    """The SAC hyper-parameters of a round (seeded by --seed and the round)."""
    try:
        return SACConfig(gamma=args.gamma, actor_lr=args.lr, critic_lr=args.lr, batch_size=args.sac_batch,
                         updates_per_episode=args.sac_updates, learning_starts=args.sac_learning_starts,
                         buffer_mb=args.sac_buffer_mb, trust_region_kl=args.sac_trust_region_kl or None,
                         init_alpha=args.sac_init_alpha, critic_warmup=args.sac_critic_warmup,
                         seed=args.seed + round_index)
    except ValueError as exc:
        raise ValueError(f"SAC: {exc} (the sac.* settings)") from exc


# --- data ----------------------------------------------------------------------------------------
def open_data(cfg: Config) -> tuple[Any, Any]:
    """(training data set, held-out data set); see ``task.data`` / ``task.test``. The same rules as
    denoise_train (the embedded photos or the data split by seed); the held-out set is ``task.test``
    when given, else the validation split."""
    train_set, val_set, test_set = denoise_train.open_data(cfg)
    return train_set, val_set if test_set is None else test_set


class PoolPairs:
    """The pool of a round as a data set for ``rlenhance/RSE-v0``: items ``{"clean", "noisy", "name"}``
    (the round's inputs in ``"noisy"``), (C, s, s) tensors."""

    def __init__(self, clean: Tensor, inputs: Tensor):
        self.clean, self.inputs = clean, inputs

    def __len__(self) -> int:
        return self.clean.shape[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"clean": self.clean[index], "noisy": self.inputs[index], "name": f"pool{index}"}


def make_pool(train_set: Any, args: Settings, device: torch.device) -> tuple[Tensor, Tensor]:
    """(clean, noisy) pool crops (N, C, s, s), drawn and noised from --seed alone (real noisy / clean
    pairs, ``NoisyPairs``: their own noisy crops)."""
    batch = sample_batch(train_set, args.pool_crops, crop=args.pool_size, rng=np.random.default_rng(args.seed))
    if "noisy" in batch:
        return batch["clean"].to(device), batch["noisy"].to(device)
    clean = (batch["high"] if "high" in batch else batch["low"]).to(device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    return clean, add_gaussian_noise(clean, draw_levels(args.sigma, clean.shape[0], generator), generator=generator)


def sample_patch_pairs(clean: Tensor, inputs: Tensor | None, rows: Sequence[EpisodeRow], patch: int,
                       sigma: float | tuple[float, ...]) -> tuple[Tensor, Tensor]:
    """Random (input, clean) patch pairs (N, C, P, P) of the pool, one per row of ``rows``: the
    pool's inputs, or (``inputs`` None) fresh Gaussian noise of ``sigma`` on the clean patches
    (several levels: one drawn per patch). Row k's pool image and window come from ``rows[k].rng``,
    its noise level and values from ``rows[k].generator``
    (:func:`envs.base.episode_rows`): a patch does not depend on the other rows."""
    n, _, h, w = clean.shape
    picks = np.array([row.rng.integers(0, (n, h - patch + 1, w - patch + 1)) for row in rows]).reshape(-1, 3)
    idx, ys, xs = torch.as_tensor(picks.T, device=clean.device)
    offsets = torch.arange(patch, device=clean.device)
    ys, xs = (ys[:, None] + offsets)[:, :, None], (xs[:, None] + offsets)[:, None, :]

    def cut(images: Tensor) -> Tensor:
        return images[idx[:, None, None], :, ys, xs].permute(0, 3, 1, 2).contiguous()

    target = cut(clean)
    if inputs is not None:
        return cut(inputs), target
    generators = [row.generator for row in rows]
    return add_gaussian_noise(target, draw_levels(sigma, len(rows), generators), generator=generators), target


def phase_seed(seed: int, round_index: int, step: int) -> int:
    """The seed of the draws of a round's VAE step ``step`` (the bank's: :data:`BANK_STEP`), from
    ``--seed`` alone: the same on every rank, and after a resume."""
    return int(np.random.default_rng([seed, round_index, step]).integers(2**62))


def vae_batch(args: Settings, clean: Tensor, inputs: Tensor | None, latent_dim: int, seed: int,
              rows: slice) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
    """Rows ``rows`` (e.g. a rank's, :meth:`Ranks.rows`) of a VAE step's ``--vae-batch`` (input,
    clean) patch pairs of the pool (:func:`sample_patch_pairs`) and their two reparameterisation
    noises (N, ``latent_dim``), drawn with ``seed``: global row i's from the generators of (``seed``,
    i) alone (:func:`envs.base.episode_rows`, on the pool's device), so a rank of a data-parallel job
    draws only its own rows and gets what one process drawing the whole batch gives them."""
    parts = episode_rows(seed, range(rows.start, rows.stop), clean.device)
    source, target = sample_patch_pairs(clean, inputs, parts, args.patch, args.sigma)
    noise = torch.stack([torch.randn(2, latent_dim, generator=row.generator, device=clean.device) for row in parts],
                        dim=1)
    return source, target, (noise[0], noise[1])


# --- evaluation ------------------------------------------------------------------------------------
def score(outputs: Sequence[Tensor], images: Sequence[NoisyImage]) -> dict[str, float]:
    """Per-image PSNR / SSIM / UQI of the clamped outputs, averaged."""
    values: dict[str, list[float]] = {"psnr": [], "ssim": [], "uqi": []}
    for out, image in zip(outputs, images):
        x, y = out.clamp(0.0, 1.0)[None].float(), image.clean[None].float()
        values["psnr"].append(float(metrics.psnr(x, y)[0]))
        values["ssim"].append(float(metrics.ssim(x, y)[0]))
        values["uqi"].append(float(metrics.uqi(x, y)[0]))
    return {k: sum(v) / len(v) for k, v in values.items()}


def level_score(outputs: Sequence[Tensor], test_sets: Mapping[float, Sequence[NoisyImage]]) -> dict[str, float]:
    """:func:`score` of the outputs of the held-out images of every level (``test_sets`` flattened
    in order), per level (several levels: per-level columns and their mean,
    :func:`experiments.sigmas.level_scores`)."""
    by_level, done = {}, 0
    for sigma, images in test_sets.items():
        by_level[sigma] = score(outputs[done:done + len(images)], images)
        done += len(images)
    return level_scores(by_level)


@torch.no_grad()
def apply_round(stage: RSERound, inputs: Sequence[Tensor], steps: int, *,
                vae_only: bool = False) -> tuple[list[Tensor], float]:
    """A round on each image (one at a time: sizes differ); the outputs and the mean seconds per image.
    ``vae_only``: the VAE reconstruction alone (every pixel takes its VAE candidate)."""
    outputs, seconds = [], 0.0
    for image in inputs:
        start = time.perf_counter()
        x = image[None]
        if vae_only:
            x = stage.candidates(x)[:, :stage.channels]
        else:
            x = stage(x, steps)
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        seconds += time.perf_counter() - start
        outputs.append(x[0])
    return outputs, seconds / max(1, len(inputs))


@torch.no_grad()
def apply_to_pool(stage: RSERound, inputs: Tensor, steps: int) -> Tensor:
    return torch.cat([stage(part, steps) for part in inputs.split(POOL_BATCH)])


def baseline_scores(names: Sequence[str], test_sets: Mapping[float, Sequence[NoisyImage]]) -> list[dict[str, Any]]:
    """Rows of the classical baselines on the held-out images of each noise level, each told its
    level (bm3d skipped, with a line, when missing)."""
    images = [im for level in test_sets.values() for im in level]
    sigmas = [sigma for sigma, level in test_sets.items() for _ in level]
    rows = []
    for name in names:
        missing = baseline_missing(name) if name == "bm3d" else None
        if missing:
            print(f"--baselines bm3d skipped: {missing}")
            continue
        outputs, start = [], time.perf_counter()
        for image, sigma in zip(images, sigmas):
            hwc = image.noisy.detach().cpu().permute(1, 2, 0).numpy()
            out = BASELINES[name](hwc, sigma=sigma)
            out = out.reshape(*out.shape[:2], -1)
            outputs.append(torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1).to(image.clean.device))
        seconds = (time.perf_counter() - start) / max(1, len(images))
        rows.append({"method": name, **level_score(outputs, test_sets), "ms_per_image": seconds * _MS_PER_S})
    return rows


@torch.no_grad()
def predictor_scores(predictor: DenoisePredictor, test_sets: Mapping[float, Sequence[NoisyImage]]) -> dict[str, Any]:
    """The summary row of the ``--predictor`` alone on the held-out images (what round 1 adds to it)."""
    images = [im for level in test_sets.values() for im in level]
    outputs, start = [], time.perf_counter()
    for image in images:
        outputs.append(predictor(image.noisy[None])[0].to(image.clean.device))
    seconds = (time.perf_counter() - start) / max(1, len(images))
    return {"method": "predictor", **level_score(outputs, test_sets), "ms_per_image": seconds * _MS_PER_S}


# --- pictures ----------------------------------------------------------------------------------------
def _zoom(patch: Tensor) -> Tensor:
    return patch.repeat_interleave(PICTURE_ZOOM, dim=-2).repeat_interleave(PICTURE_ZOOM, dim=-1)


@torch.no_grad()
def save_pictures(run: Run, stage: RSERound, clean_patches: Tensor, inputs: Tensor, targets: Tensor,
                  round_index: int) -> None:
    """``samples/roundK_clusters.png``: for the largest clusters (one row each), the clean bank
    patches nearest to the centre, in canonical orientation (``clean_patches``: the bank's patches,
    canonical); ``samples/roundK_neighbours.png``: rows of degraded patch | VAE candidate |
    neighbour candidate | clean patch | its nearest clean bank patches (turned to its orientation, shown
    with its mean colour: latents describe structure, the mean colour bypasses them)."""
    bank = stage.bank
    sizes = bank.cluster_sizes()
    rows = []
    for cluster in sizes.argsort(descending=True)[:PICTURE_CLUSTERS].tolist():
        members = (bank.assignment == cluster).nonzero().view(-1)
        if members.numel() == 0:
            continue
        order = (bank.latents[members] - bank.centres[cluster]).norm(dim=1).argsort()[:PICTURE_MEMBERS]
        rows.append([_zoom(p) for p in clean_patches[members[order]]])
    if rows:
        run.save_grid(f"round{round_index + 1}_clusters", rows, captions=None)
    code = stage.vae.analyse(inputs[:PICTURE_ROWS])
    own = stage.vae.synthesise(code.mu, code)
    index = bank.neighbours(code.mu, max(stage.k, PICTURE_NEIGHBOURS))
    near = stage.vae.synthesise(bank.latents[index[:, :stage.k]].mean(dim=1), code)
    rows = []
    for i in range(code.mu.shape[0]):
        g = int(code.orientation[i])
        dc = inputs[i].mean(dim=(-2, -1), keepdim=True)  # the latent holds structure: show it in the patch's colour
        neighbours = [d4_inverse(clean_patches[j], g) - clean_patches[j].mean(dim=(-2, -1), keepdim=True) + dc
                      for j in index[i, :PICTURE_NEIGHBOURS].tolist()]
        rows.append([_zoom(p) for p in (inputs[i], own[i], near[i], targets[i], *neighbours)])
    nearest = (f"near {k + 1}" for k in range(PICTURE_NEIGHBOURS))
    run.save_grid(f"round{round_index + 1}_neighbours", rows,
                  captions=("input", "VAE", "neighbours", "clean", *nearest))


# --- the run -------------------------------------------------------------------------------------------
class RSETrainer:
    """The state of an RSE-RL run between phases: the model, the pools, the held-out inputs per
    round, the per-round table and the resumable progress (see the module docstring)."""

    def __init__(self, cfg: Config, run: Run, device: torch.device, train_set: Any, test_set: Any):
        self.cfg, self.args, self.run, self.device = cfg, resolve(settings(cfg)), run, device
        args = self.args
        self.ranks: Ranks = run.ranks
        self.train_set = train_set
        # the held-out images at each noise level, and flattened (level by level): test_inputs' order
        self.test_sets = noisy_test_sets(test_set, args.sigma, seed=args.noise_seed, device=device,
                                         limit=args.eval_images)
        self.images = [im for level in self.test_sets.values() for im in level]
        self.model = RSEDenoiser(channels=1 if args.gray else 3, patch=args.patch, stride=args.stride,
                                 latent_dim=args.latent_dim, hidden=args.hidden, depth=args.depth,
                                 bank_size=args.bank_size, clusters=args.clusters, probe=args.probe,
                                 neighbours=args.neighbours, width=args.width,
                                 policy_kwargs={"downscale": args.policy_downscale}, max_rounds=args.rounds,
                                 steps=args.steps, predicted=args.predictor is not None).to(device)
        #: the --predictor, every round's third candidate (None without one)
        self.predictor = None if args.predictor is None else \
            DenoisePredictor(args.predictor, channels=self.model.channels, device=device)
        if self.predictor is not None:
            self.model.attach_predictor(self.predictor)
        self.pool_clean, pool_noisy = make_pool(train_set, args, device)
        self.pool_inputs = [pool_noisy]              # pool_inputs[k]: round k's inputs
        self.real_noise = has_real_noise(train_set)  # real pairs: round 1's VAE learns their noisy crops
        self.noise = noise_text(args.sigma, train_set, test_set)  # as the summary says it
        self.test_inputs = [[im.noisy for im in self.images]]
        self.progress = {"round": 0, "phase": PHASES[0], "step": 0, "tick": 0}
        self.rows: list[dict[str, Any]] = []        # one per finished round
        self.baselines: list[dict[str, Any]] | None = None
        self.best = -math.inf                       # held-out PSNR of best.pt
        self.kept = 0                               # rounds best.pt applies
        self.stopped_early = False
        self.phase_state: dict[str, Any] = {}       # optimiser / agent state of the phase in progress
        self.seconds: list[float] = []              # seconds per held-out image, per round

    # -- checkpoints --
    def spec(self, rounds: int) -> RSEDenoiserSpec:
        levels = noise_levels(self.args.sigma)
        return RSEDenoiserSpec(sigma=levels[-1], sigmas=levels, channels=self.model.channels, rounds=max(1, rounds),
                               predictor=str(Path(self.args.predictor).resolve()) if self.args.predictor else None)

    def extra(self) -> dict[str, Any]:
        return {"spec": self.spec(self.kept or self.progress["round"] + 1), "config": configs.to_dict(self.cfg),
                "progress": dict(self.progress), "rows": self.rows, "baselines": self.baselines, "best": self.best,
                "kept": self.kept, "stopped_early": self.stopped_early, "seconds": self.seconds,
                "phase_state": self.phase_state}

    def save_last(self) -> None:
        self.run.save("last", model=self.model, arch=self.model.arch(), extra=self.extra())

    def save_best(self) -> None:
        self.run.save("best", model=self.model, arch=self.model.arch(),
                      extra={"spec": self.spec(self.kept), "config": configs.to_dict(self.cfg), "rows": self.rows,
                             "best": self.best, "kept": self.kept})

    def resume(self) -> None:
        """Continue from last.pt (its config was checked by :func:`experiments.loop.check_resume`)."""
        checkpoint = self.run.load_last()
        extra = checkpoint["extra"]
        # same architecture (rank 0 checks the file for every rank)
        self.ranks.on_rank0(lambda: load_checkpoint(self.run.last_path, expected_arch=self.model.arch()) and None)
        self.model.load_state_dict({k: v.to(self.device) for k, v in checkpoint["state_dict"].items()})
        self.progress = dict(extra["progress"])
        self.rows, self.baselines = list(extra["rows"]), extra["baselines"]
        self.best, self.kept = float(extra["best"]), int(extra["kept"])
        self.stopped_early, self.seconds = bool(extra["stopped_early"]), list(extra["seconds"])
        self.phase_state = dict(extra.get("phase_state") or {})
        if self.finished:
            return
        self.run.truncate_metrics(int(self.progress["tick"]))
        for k in range(self.progress["round"]):  # the inputs of the round in progress
            self.next_inputs(k)
        self.run.say(f"resumed {self.run.last_path}: round {self.progress['round'] + 1}, phase "
                     f"{self.progress['phase']}, step {self.progress['step']}")

    @property
    def finished(self) -> bool:
        return self.progress["phase"] == DONE

    @torch.no_grad()
    def next_inputs(self, r: int) -> None:
        """Round r applied to its pool and held-out inputs: round r + 1's inputs (self-enhancement).
        Every rank trains on the pool; rank 0 alone scores the held-out images."""
        stage = self.model.rounds[r]
        self.pool_inputs.append(apply_to_pool(stage, self.pool_inputs[r], self.args.steps))
        self.test_inputs.append(apply_round(stage, self.test_inputs[r], self.args.steps)[0] if self.run.writes else [])

    def interrupt(self, stop: StopSignals) -> None:
        self.save_last()
        self.ranks.barrier()  # no rank ends (and has torchrun stop the others) before last.pt is written
        self.run.close()
        where = f"round {self.progress['round'] + 1}, phase {self.progress['phase']}, step {self.progress['step']}"
        raise stop.interrupted(f"interrupted at {where} ({stop.name}); {self.run.last_path} saved; continue with the "
                               "same arguments and --resume")

    def advance(self, phase: str | None) -> None:
        """Move to the next phase (the next round's first: ``phase`` None) and save last.pt."""
        if phase is None:
            self.progress.update(round=self.progress["round"] + 1, phase=PHASES[0], step=0)
        else:
            self.progress.update(phase=phase, step=0)
        self.phase_state = {}
        self.save_last()

    # -- phases --
    def train_vae(self, r: int, stop: StopSignals) -> None:
        args, stage = self.args, self.model.rounds[r]
        total = args.vae_steps if r == 0 else args.vae_finetune_steps
        lr = args.vae_lr if r == 0 else args.vae_finetune_lr
        if self.progress["step"] == 0 and r > 0:
            stage.vae.load_state_dict(self.model.rounds[r - 1].vae.state_dict())
        optimizer = torch.optim.Adam(stage.vae.parameters(), lr=lr)
        if "vae_optimizer" in self.phase_state:
            optimizer.load_state_dict(self.phase_state["vae_optimizer"])
        inputs = self.vae_inputs(r)
        local = self.ranks.split(args.vae_batch, "--vae-batch")
        stage.vae.train()
        bar = self.run.progress(total, initial=self.progress["step"], desc=f"round {r + 1} vae")
        while self.progress["step"] < total:
            if stop.check():
                self.phase_state = {"vae_optimizer": optimizer.state_dict()}
                bar.close()
                self.interrupt(stop)
            step = self.progress["step"]
            source, target, noise = vae_batch(args, self.pool_clean, inputs, stage.vae.latent_dim,
                                              phase_seed(args.seed, r, step), self.ranks.rows(local))
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
            losses = vae_loss(stage.vae, source, target, beta=args.vae_beta, align=args.vae_align, noise=noise)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            self.ranks.average_gradients(stage.vae.parameters())
            optimizer.step()
            self.progress["step"] += 1
            self.progress["tick"] += 1
            bar.update(1)
            if step % VAE_LOG_EVERY == 0 or self.progress["step"] == total:
                losses = self.ranks.mean_stats({k: float(v.detach()) for k, v in losses.items()})
                self.run.log(self.progress["tick"], {"losses/vae_loss": losses["loss"],
                                                     "losses/vae_kl": losses["kl"],
                                                     "losses/vae_align": losses["align"],
                                                     "charts/vae_psnr": -10.0 * math.log10(losses["mse"]),
                                                     "charts/round": r + 1})
        bar.close()
        stage.vae.eval()

    def vae_inputs(self, r: int) -> Tensor | None:
        """The degraded pool crops whose patches round r's VAE learns: the pool's inputs of round r,
        or None (round 1 on clean images: fresh Gaussian noise of ``--sigma`` at each step; with real
        pairs round 1 takes their noisy crops, as the SAC phase does)."""
        return None if r == 0 and not self.real_noise else self.pool_inputs[r]

    @torch.no_grad()
    def fit_bank(self, r: int) -> None:
        args, stage = self.args, self.model.rounds[r]
        rows = episode_rows(phase_seed(args.seed, r, BANK_STEP), range(args.bank_size + PICTURE_ROWS), self.device)
        _, clean = sample_patch_pairs(self.pool_clean, None, rows[:args.bank_size], args.patch, args.sigma)
        code = stage.vae.analyse(clean)
        stage.bank.fit(code.mu, seed=args.seed + r)
        canonical = canonicalise(clean, code.orientation)[0]  # as the bank's latents describe them
        sizes = stage.bank.cluster_sizes()
        self.run.log(self.progress["tick"], {"charts/bank_clusters_used": float((sizes > 0).sum()),
                                             "charts/bank_largest_cluster": float(sizes.max())})
        source, target = sample_patch_pairs(self.pool_clean, self.vae_inputs(r), rows[args.bank_size:], args.patch,
                                            args.sigma)
        if self.run.writes:
            save_pictures(self.run, stage, canonical, source, target, r)

    def evaluate(self, r: int) -> tuple[dict[str, float], list[Tensor], float]:
        stage = self.model.rounds[r]
        was_training = stage.policy.training
        stage.policy.eval()
        outputs, seconds = apply_round(stage, self.test_inputs[r], self.args.steps)
        stage.policy.train(was_training)
        return level_score(outputs, self.test_sets), outputs, seconds

    def train_sac(self, r: int, stop: StopSignals) -> None:
        args, stage = self.args, self.model.rounds[r]
        if self.progress["step"] == 0 and r > 0 and "agent" not in self.phase_state:
            stage.policy.load_state_dict(self.model.rounds[r - 1].policy.state_dict())
        data = self.train_set if r == 0 else PoolPairs(self.pool_clean, self.pool_inputs[r])
        venv = make_rse_vec(self.ranks.split(args.batch, "--batch"), shard=self.ranks.shard, device=self.device,
                            data=data, model=stage, crop=args.crop, max_episode_steps=args.steps, sigma=args.sigma,
                            gray=args.gray, w_deblock=args.w_deblock)
        agent = SAC(stage.policy, sac_config(args, r), device=self.device, critic_kwargs={"width": args.width},
                    ranks=self.ranks)
        state = self.phase_state
        if "agent" in state:
            agent.load_state_dict(state["agent"])
        best_score = float(state.get("best_score", -math.inf))
        best_policy = state.get("best_policy")
        evaluated = int(state.get("evaluated", -1))
        bar = self.run.progress(args.episodes, initial=self.progress["step"], desc=f"round {r + 1} sac")

        def snapshot() -> None:
            self.phase_state = {"agent": agent.state_dict(), "best_score": best_score, "best_policy": best_policy,
                                "evaluated": evaluated}

        while True:
            episode = self.progress["step"]
            if stop.check():
                snapshot()
                bar.close()
                self.interrupt(stop)
            if evaluated < episode and (episode % args.eval_every == 0 or episode >= args.episodes):
                scores, seconds = self.ranks.on_rank0(lambda: self.evaluate(r)[::2])  # rank 0 scores
                evaluated = episode
                self.run.log(self.progress["tick"], {f"eval/{k}": v for k, v in scores.items()}
                             | {"eval/ms_per_image": seconds * _MS_PER_S, "charts/round": r + 1})
                if scores["psnr"] > best_score:
                    best_score = scores["psnr"]
                    best_policy = {k: v.detach().cpu().clone() for k, v in stage.policy.state_dict().items()}
                snapshot()
                self.save_last()
                continue
            if episode >= args.episodes:
                break
            stats = self.ranks.mean_stats(agent.train_episode(venv, seed=episode_seed(args.seed * (args.rounds + 1) + r,
                                                                                      episode)))
            self.progress["step"] += 1
            self.progress["tick"] += 1
            bar.update(1)
            self.run.log(self.progress["tick"], episode_scalars(stats))
        bar.close()
        if best_policy is not None:
            stage.policy.load_state_dict({k: v.to(self.device) for k, v in best_policy.items()})
        stage.policy.eval()

    def finish_round(self, r: int) -> bool:
        """Score round r, add its table row and picture, decide whether the recursion goes on."""
        args = self.args
        scores, seconds, vae_only = self.ranks.on_rank0(lambda: self._score_round(r))  # rank 0 scores
        self.seconds = self.seconds[:r] + [seconds]
        previous = self.rows[-1]["psnr"] if self.rows else level_score(self.test_inputs[0], self.test_sets)["psnr"]
        gain = scores["psnr"] - previous
        keep = r == 0 or gain > args.min_gain
        row = {"round": r + 1, **scores, "gain_db": gain, "vae_only_psnr": vae_only["psnr"],
               "ms_per_image": sum(self.seconds) * _MS_PER_S, "kept": "yes" if keep else "no (stop)"}
        self.rows.append(row)
        self.run.say(f"round {r + 1}: held-out PSNR {scores['psnr']:.3f} dB (gain {gain:+.3f}, VAE alone "
                     f"{vae_only['psnr']:.3f}), SSIM {scores['ssim']:.4f}, UQI {scores['uqi']:.4f}, "
                     f"{row['ms_per_image']:.0f} ms per image; kept: {row['kept']}")
        self.run.log(self.progress["tick"], {f"eval/round_{k}": v for k, v in row.items() if isinstance(v, float)})
        if keep:
            self.kept = r + 1
            self.best = scores["psnr"]
            self.save_best()
        else:
            self.stopped_early = True
        return keep

    def _score_round(self, r: int) -> tuple[dict[str, float], float, dict[str, float]]:
        """Round r's held-out scores, seconds per image and scores of its VAE alone; saves the
        round's held-out sample grid."""
        args, stage = self.args, self.model.rounds[r]
        scores, outputs, seconds = self.evaluate(r)
        vae_only = level_score(apply_round(stage, self.test_inputs[r], args.steps, vae_only=True)[0], self.test_sets)
        if args.samples:
            self.run.save_grid(f"round{r + 1}_heldout", [[im.noisy, out, im.clean] for im, out in
                                                          zip(self.images[:args.samples], outputs)],
                               captions=("noisy", "output", "clean"), step=self.progress["tick"])
        return scores, seconds, vae_only

    def summary(self) -> Path:
        args = self.args
        noisy = level_score(self.test_inputs[0], self.test_sets)
        levels = [level_key("psnr", sigma) for sigma in self.test_sets] if len(self.test_sets) > 1 else []
        table = [{"method": "noisy input", **{k: noisy[k] for k in ("psnr", "ssim", "uqi")}, "gain_db": "",
                  "ms_per_image": "", "vae_only_psnr": "", **{k: noisy[k] for k in levels}}]
        for row in self.rows:
            table.append({"method": f"RSE-RL round {row['round']} (kept: {row['kept']})",
                          **{k: row[k] for k in ("psnr", "ssim", "uqi", "gain_db", "ms_per_image", "vae_only_psnr",
                                                 *levels)}})
        for row in self.baselines or []:
            table.append({"method": row["method"], **{k: row[k] for k in ("psnr", "ssim", "uqi")}, "gain_db": "",
                          "ms_per_image": row["ms_per_image"], "vae_only_psnr": "", **{k: row[k] for k in levels}})
        first = self.rows[0]["psnr"] if self.rows else float("nan")
        best = self.best
        title = (f"rse_train: {self.run.dir} ({self.noise}, "
                 f"{len(next(iter(self.test_sets.values())))} held-out image(s); "
                 f"checkpoints/best.pt applies {self.kept} round(s))")
        text = self.run.summary(table, title=title)
        notes = [f"Recursion: {len(self.rows)} round(s) trained, {self.kept} kept; "
                 + ("it stopped when a round gained no more than "
                    f"{args.min_gain:g} dB." if self.stopped_early else f"--rounds {args.rounds} reached.")]
        if self.kept > 1:
            verdict = "beats" if best > first else "does not beat"
            notes.append(f"K = {self.kept} rounds {verdict} a single round on the held-out images: "
                         f"{best:.2f} dB vs {first:.2f} dB ({best - first:+.2f} dB).")
        elif self.rows:
            notes.append(f"K = 1: round 2 did not gain more than {args.min_gain:g} dB over round 1 "
                         f"({self.rows[-1]['gain_db']:+.3f} dB)." if len(self.rows) > 1 else
                         "K = 1: only one round was asked for.")
        if args.predictor:
            notes.append(f"predictor: the --predictor ({Path(args.predictor).name}) alone, on the noisy held-out "
                         "images (each round's third candidate is its output for that round's input).")
        notes.append("vae_only_psnr: the same round with every pixel taking its VAE candidate (no SAC policy); "
                     "ms_per_image: all kept rounds up to that one (a baseline: its own time), on this run's "
                     "device and threads.")
        write_text_atomic(self.run.summary_path, text + "\n" + "\n\n".join(notes) + "\n")
        self._write_rounds_csv()
        return self.run.dir

    def _write_rounds_csv(self) -> None:
        if not self.rows:
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(self.rows[0]))
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.run.dir / "rounds.csv", buffer.getvalue())


def main(argv: Sequence[str] | None = None) -> Path:
    cfg = parse(sys.argv[1:] if argv is None else argv)
    ranks = Ranks.from_env()
    if cfg.run.resume:
        ranks.on_rank0(lambda: check_resume(cfg.run.out, configs.to_dict(cfg), MAY_CHANGE))
    device = setup_process(threads=cfg.run.threads, seed=cfg.run.seed, device=cfg.run.device, ranks=ranks)
    run = Run(cfg.run.out, cfg, resume=cfg.run.resume, ranks=ranks)
    train_set, test_set = open_data(cfg)
    trainer = RSETrainer(cfg, run, device, train_set, test_set)
    args = trainer.args
    if run.resuming:
        trainer.resume()
    if trainer.baselines is None and run.writes:  # rank 0 scores; the others never write them
        trainer.baselines = baseline_scores(args.baselines, trainer.test_sets)
        if trainer.predictor is not None:
            trainer.baselines.append(predictor_scores(trainer.predictor, trainer.test_sets))
        noisy = level_score(trainer.test_inputs[0], trainer.test_sets)
        run.log(trainer.progress["tick"],  # psnr (and ssim), and psnr_sigmaS ... with several levels
                {f"eval/input_{k}": v for k, v in noisy.items() if k.startswith(("psnr", "ssim"))}
                | {f"eval/baseline_{row['method']}_{k}": v for row in trainer.baselines for k, v in row.items()
                   if k.startswith("psnr")})
    progress = trainer.progress
    if run.resuming and trainer.finished:
        run.say(f"{run.dir}: already finished ({trainer.kept} round(s) kept); nothing to do")
        if ranks.on_rank0(run.summary_path.exists):
            run.close()
            return run.dir
    with StopSignals(ranks) as stop:
        while not trainer.finished:
            r, phase = progress["round"], progress["phase"]
            if phase == "vae":
                trainer.train_vae(r, stop)
                trainer.advance("bank")
            elif phase == "bank":
                trainer.fit_bank(r)
                trainer.advance("sac")
            elif phase == "sac":
                trainer.train_sac(r, stop)
                keep = trainer.finish_round(r)
                trainer.advance("pool" if keep and r + 1 < args.rounds else DONE)
            else:  # "pool"
                trainer.next_inputs(r)
                trainer.advance(None)
            if stop.check() and not trainer.finished:
                trainer.interrupt(stop)
    path = trainer.summary() if run.writes else run.dir
    run.close()
    best = Path(path) / "checkpoints" / "best.pt"
    run.say(*usage_lines(best, ["denoise", "noisy.png", "-o", "denoised/", "--model", "rse", "--checkpoint", best]))
    return path


if __name__ == "__main__":
    run_cli(main, PROG)
