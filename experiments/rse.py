"""The pieces of :mod:`experiments.rse_train`: its config (sections, presets, the flat :class:`Settings` checked by
:func:`resolve`), the pool and its patch draws, the held-out scoring, the baselines and the bank's pictures."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from agents.sac import SACConfig
from envs.base import EpisodeRow, episode_rows
from experiments import config as configs
from experiments.loop import run_seconds
from experiments.run_settings import run_section
from experiments.runs import Run
from experiments.sigmas import draw_levels, level_scores, resolve_sigma
from rlenhance import metrics
from rlenhance.baselines import baseline_missing, bilateral_denoise, bm3d_denoise, gaussian_denoise
from rlenhance.data import TUNE_FRACTION, NoisyImage, add_gaussian_noise, sample_batch
from rlenhance.denoisers import DenoisePredictor
from rlenhance.errors import not_a_file
from rlenhance.models.rse import RSERound
from rlenhance.models.vae import d4_inverse
from rlenhance.runtime import check_memory

#: Classical baselines of the summary table.
BASELINES = {"gaussian": gaussian_denoise, "bilateral": bilateral_denoise, "bm3d": bm3d_denoise}
#: Cluster picture: clusters shown (largest first) and patches per cluster; neighbour picture: rows.
PICTURE_CLUSTERS, PICTURE_MEMBERS, PICTURE_ROWS, PICTURE_NEIGHBOURS = 8, 10, 6, 5
#: Patches are shown enlarged by this factor (nearest neighbour) in the pictures.
PICTURE_ZOOM = 3
#: Crops per batch when a round is applied to the pool.
POOL_BATCH = 32
MS_PER_S = 1000.0


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
    tune_fraction: float = TUNE_FRACTION
    """fraction of the data images (scenes) held out of training as the tuning split: without test, its images
    are the held-out ones that pick each round's policy and the rounds kept, and best.pt is scored on the
    validation split after the run (0: the validation split is the held-out one)"""

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


#: The run section: held-out images in each round's sample grid, seeds, hardware, the run folder.
RunSettings = run_section("RunSettings", ("samples", "seed", "split_seed", "device", "threads", "out", "resume"),
                          module=__name__, samples=2, out="runs/rse_train")


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
SICE_HIGH = "../shared/data/sice_pairs/train/high"
_SHIPPED = {"task.data": SICE_HIGH, "task.eval_images": 8, "task.baselines": ("bilateral",), "rse.vae_steps": 3000,
            "rse.pool_crops": 256, "run.threads": 1, "run.seed": 0}


def rse_denoise_color() -> Config:
    """One round on the FFDNet's candidate, SICE colour, sigma 25. Not shipped: its best.pt took FFDNet's
    output everywhere (rlenhance/weights/README.md); its predictor is found by its name,
    ffdnet_denoise.pt, in rlenhance/weights/ on any checkout. Picked on the validation split, as the
    file whose figures the card quotes was (no tuning split)."""
    return configs.replace_path(Config(), {**_SHIPPED, "task.tune_fraction": 0.0, "rse.rounds": 1, "rse.predictor":
                                           "rlenhance/weights/ffdnet_denoise.pt", "sac.episodes": 200,
                                           "sac.eval_every": 25, "sac.critic_warmup": 200, "sac.init_alpha": 0.01,
                                           "sac.updates": 4, "run.out": "runs/rse_denoise_color"})


def rse_rl() -> Config:
    """RSE-RL's recursion alone: two rounds, no predictor, SICE colour, sigma 25."""
    return configs.replace_path(Config(), {**_SHIPPED, "rse.rounds": 2, "sac.episodes": 60, "sac.eval_every": 30,
                                           "run.out": "runs/rse_rl"})


#: ``--preset NAME`` -> the config it names and its cost per loop step and evaluation (``benchmarks.preset_cost``).
PRESETS = {"rse-denoise-color": configs.Preset(rse_denoise_color, cpu=configs.Cost(0.117, eval_s=27.4)),
           "rse-rl": configs.Preset(rse_rl, cpu=configs.Cost(0.094, eval_s=12.4))}


@dataclass(frozen=True)
class Settings:
    """A run's settings as the trainer reads them: the config's sections flattened (:data:`PATHS`)."""

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


def sac_spans(args: Settings) -> list[tuple[int, int]]:
    """The training loop's steps (first, last) of each round's SAC phase (each round's VAE steps come first)."""
    spans, step = [], 0
    for r in range(args.rounds):
        step += args.vae_steps if r == 0 else args.vae_finetune_steps
        spans.append((step, step + args.episodes))
        step += args.episodes
    return spans


def evaluates_at(args: Settings, step: int) -> bool:
    """Whether the loop evaluates at ``step``: every ``sac.eval_every`` episodes of a SAC phase, its start and end."""
    every = args.eval_every
    return any(first <= step <= last and ((step - first) % every == 0 or step == last)
               for first, last in sac_spans(args))


def estimate_seconds(cfg: Config, cost: configs.Cost) -> float:
    """The seconds of a whole run of ``cfg`` (all its rounds) at ``cost`` (per loop step, per evaluation)."""
    args = settings(cfg)
    return run_seconds(sac_spans(args)[-1][1], partial(evaluates_at, args), (cost.step_s, cost.eval_s))


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


def resolve(args: Settings) -> Settings:
    """The arguments, checked (ValueError naming the first bad one)."""
    positive = ("rounds", "pool_crops", "pool_size", "patch", "stride", "latent_dim", "hidden", "depth", "vae_steps",
                "vae_batch", "bank_size", "clusters", "probe", "neighbours", "episodes", "batch", "crop", "steps",
                "width", "policy_downscale", "eval_every", "sac_batch", "sac_updates")
    for names, low in ((positive, 1), (("vae_finetune_steps", "eval_images", "noise_seed", "sac_learning_starts"), 0)):
        for name in names:
            value = getattr(args, name)
            if isinstance(value, bool) or int(value) != value or value < low:
                raise ValueError(f"{PATHS[name]} {value!r}: expected an integer >= {low}")
    if not (math.isfinite(args.sac_trust_region_kl) and args.sac_trust_region_kl >= 0):
        raise ValueError(f"sac.trust_region_kl {args.sac_trust_region_kl!r}: expected a finite number >= 0 (0: off)")
    args = replace(args, sigma=resolve_sigma(args.sigma))
    planes = 1 if args.gray else 3
    check_memory(args.pool_crops * planes * args.pool_size**2 * 4, f"rse.pool_crops {args.pool_crops:,} of "
                 f"{args.pool_size} px crops: the pool's float32 crops alone",
                 "a smaller rse.pool_crops or rse.pool_size")
    check_memory(args.vae_batch * planes * args.patch**2 * 4, f"rse.vae_batch {args.vae_batch:,} of {args.patch} px "
                 "patches: the batch's float32 patches alone", "a smaller rse.vae_batch or rse.patch")
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
    if args.predictor is not None and not_a_file(args.predictor):
        raise FileNotFoundError(f"rse.predictor {args.predictor}: {not_a_file(args.predictor)} (expected a denoiser "
                                "checkpoint of experiments.supervised_train --task denoise)")
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


class PoolPairs:
    """A round's pool as a data set for ``rlenhance/RSE-v0``: items ``{"clean", "noisy", "name"}``, (C, s, s)."""

    def __init__(self, clean: Tensor, inputs: Tensor):
        self.clean, self.inputs = clean, inputs

    def __len__(self) -> int:
        return self.clean.shape[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"clean": self.clean[index], "noisy": self.inputs[index], "name": f"pool{index}"}


def make_pool(train_set: Any, args: Settings, device: torch.device) -> tuple[Tensor, Tensor]:
    """(clean, noisy) pool crops (N, C, s, s), drawn and noised from --seed alone (real pairs: their own noise)."""
    batch = sample_batch(train_set, args.pool_crops, crop=args.pool_size, rng=np.random.default_rng(args.seed))
    if "noisy" in batch:
        return batch["clean"].to(device), batch["noisy"].to(device)
    clean = (batch["high"] if "high" in batch else batch["low"]).to(device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    return clean, add_gaussian_noise(clean, draw_levels(args.sigma, clean.shape[0], generator), generator=generator)


def sample_patch_pairs(clean: Tensor, inputs: Tensor | None, rows: Sequence[EpisodeRow], patch: int,
                       sigma: float | tuple[float, ...]) -> tuple[Tensor, Tensor]:
    """Random (input, clean) patch pairs (N, C, P, P) of the pool, one per row of ``rows`` (drawn by that row alone):
    the pool's inputs, or (``inputs`` None) fresh Gaussian noise of ``sigma`` on the clean patches."""
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
    """The seed of a round's VAE step ``step`` (or bank draw), from ``--seed`` alone: the same on every rank."""
    return int(np.random.default_rng([seed, round_index, step]).integers(2**62))


def vae_batch(args: Settings, clean: Tensor, inputs: Tensor | None, latent_dim: int, seed: int,
              rows: slice) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
    """Rows ``rows`` (e.g. a rank's) of a VAE step's (input, clean) patch pairs (:func:`sample_patch_pairs`) and their
    two reparameterisation noises (N, ``latent_dim``), row i's drawn from (``seed``, i) alone."""
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
    """:func:`score` of ``test_sets``' outputs (flattened), per level (:func:`experiments.sigmas.level_scores`)."""
    by_level, done = {}, 0
    for sigma, images in test_sets.items():
        by_level[sigma] = score(outputs[done:done + len(images)], images)
        done += len(images)
    return level_scores(by_level)


@torch.no_grad()
def apply_round(stage: RSERound, inputs: Sequence[Tensor], steps: int, *, vae_only: bool = False,
                track: Callable[[Sequence[Tensor]], Iterable[Tensor]] = iter) -> tuple[list[Tensor], float]:
    """A round on each image (one at a time); the outputs and mean seconds per image (``vae_only``: the VAE's)."""
    outputs, seconds = [], 0.0
    for image in track(inputs):
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
    """Rows of the classical baselines on the held-out images, each told its level (bm3d skipped when missing)."""
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
        rows.append({"method": name, **level_score(outputs, test_sets), "ms_per_image": seconds * MS_PER_S})
    return rows


@torch.no_grad()
def predictor_scores(predictor: DenoisePredictor, test_sets: Mapping[float, Sequence[NoisyImage]]) -> dict[str, Any]:
    """The summary row of the ``--predictor`` alone on the held-out images (what round 1 adds to it)."""
    images = [im for level in test_sets.values() for im in level]
    outputs, start = [], time.perf_counter()
    for image in images:
        outputs.append(predictor(image.noisy[None])[0].to(image.clean.device))
    seconds = (time.perf_counter() - start) / max(1, len(images))
    return {"method": "predictor", **level_score(outputs, test_sets), "ms_per_image": seconds * MS_PER_S}


# --- pictures ----------------------------------------------------------------------------------------
def _zoom(patch: Tensor) -> Tensor:
    return patch.repeat_interleave(PICTURE_ZOOM, dim=-2).repeat_interleave(PICTURE_ZOOM, dim=-1)


@torch.no_grad()
def save_pictures(run: Run, stage: RSERound, clean_patches: Tensor, inputs: Tensor, targets: Tensor,
                  round_index: int) -> None:
    """``samples/roundK_clusters.png`` (the largest clusters' patches nearest their centre, canonical) and
    ``samples/roundK_neighbours.png`` (input | VAE | neighbours | clean | its nearest bank patches)."""
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
