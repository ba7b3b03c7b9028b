"""Train an RSE-RL denoiser: patch VAE with a D4-invariant latent, clustering of clean patch
latents, a trust-region SAC agent blending every pixel toward its candidates, and recursive
self-enhancement rounds.

    python -m experiments.rse_train                                          # embedded colour photos, CPU minutes
    python -m experiments.rse_train --data ../shared/data/sice_pairs/train/high --out runs/rse_sice
    python -m experiments.rse_train --data DIR --test DIR --baselines bilateral bm3d   # bm3d: pip install bm3d
    python -m experiments.rse_train --sigma 5 15 25 35 50                    # a blind denoiser
    python -m experiments.rse_train --predictor rlenhance/weights/ffdnet_denoise.pt   # + a supervised candidate
    python -m experiments.rse_train --preset rse-denoise-color               # one round over FFDNet's output
    python -m experiments.rse_train --preset rse-rl --print-config            # every setting, as a --config file

The settings form one config of four sections (``task``, ``rse``, ``sac``, ``run``): ``--print-config``
shows them, ``--set SECTION.KEY=VALUE`` changes any, ``--config FILE`` reads a TOML / JSON file or a run
folder's config.json, ``--preset NAME`` starts from a recipe.

Each round ``k`` (1 .. ``--rounds``) runs four phases, then evaluates:

1. **vae**: the round's :class:`rlenhance.models.vae.PatchVAE` learns to map degraded 16 x 16 patches onto their
   clean versions: round 1 on clean crops with fresh noise of ``--sigma`` (each patch draws a level;
   :mod:`experiments.sigmas`) or on real noisy crops, round k > 1 fine-tunes round k-1's VAE on its outputs;
2. **bank**: ``rse.bank_size`` clean training patches are encoded and clustered by k-means (``rse.clusters``;
   ``samples/roundK_clusters.png``, ``samples/roundK_neighbours.png``);
3. **sac**: pixel-wise SAC with a trust region on ``rlenhance/RSE-v0``: per pixel, how far to move toward the VAE
   reconstruction or the decoded clean-neighbour mean; the policy with the best held-out PSNR is kept;
4. **pool**: the round is applied to the pool of training crops, whose outputs are the next round's inputs.

``--predictor`` (a denoiser of ``experiments.supervised_train --task denoise``, run as
:class:`rlenhance.denoisers.DenoisePredictor`) adds its output as a third candidate and action; the summary gets
a row for it alone and the spec records its path.

Held-out images (``--test``, else the tuning split) get fixed noise (:func:`rlenhance.data.noisy_test_set`, at
each ``--sigma`` level: ``psnr_sigma15`` ..., the plain scores their mean); round k is applied to round k-1's
outputs and scored. The recursion stops after a round that gains no more than ``rse.min_gain`` dB (not kept).
``summary.md`` and ``rounds.csv`` hold the per-round table with the noisy input and the ``--baselines``;
``checkpoints/best.pt`` is the denoiser with the best rounds (:func:`rlenhance.rse.load_rse`), scored once on the
validation split when the tuning split picked it.

The rounds run on :class:`experiments.loop.Loop`, whose steps are the VAE steps and SAC episodes in turn;
``--resume`` continues from ``checkpoints/last.pt`` (a SAC phase with an empty replay buffer). Under ``torchrun``
the VAE and SAC batches split over the ranks; rank 0 alone scores, runs the baselines and writes the run folder.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import sys
import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from agents.distributed import Ranks
from agents.sac import SAC
from envs.base import episode_rows
from envs.rse import make_rse_vec
from experiments import config as configs
from experiments import denoise_train
from experiments.loop import Callback, Loop, preset_estimate
from experiments.process import run_cli, setup_process
from experiments.rl_common import check_fractions, episode_scalars, episode_seed
from experiments.rse import (
    FLAGS,
    MS_PER_S,
    PICTURE_ROWS,
    PRESETS,
    Config,
    PoolPairs,
    apply_round,
    apply_to_pool,
    baseline_scores,
    estimate_seconds,
    evaluates_at,
    level_score,
    make_pool,
    phase_seed,
    predictor_scores,
    resolve,
    sac_config,
    sac_spans,
    sample_patch_pairs,
    save_pictures,
    settings,
    vae_batch,
)
from experiments.run_settings import RUN_COST_FREE, check_run, open_run, parse_run
from experiments.runs import Run, usage_lines
from experiments.sigmas import (
    has_real_noise,
    level_key,
    noise_levels,
    noise_text,
    noisy_test_sets,
)
from rlenhance.atomic import write_text_atomic
from rlenhance.checkpoint import RSEDenoiserSpec
from rlenhance.denoisers import DenoisePredictor
from rlenhance.models.rse import RSEDenoiser
from rlenhance.models.vae import canonicalise, vae_loss

PROG = "rse_train"
#: The trainer that makes the runs (its config lives in experiments.rse).
PROG_MODULE = "experiments.rse_train"
#: The phases of a round, in order; "done" once the recursion has stopped.
PHASES = ("vae", "bank", "sac", "pool")
DONE = "done"
#: VAE losses are logged every this many steps.
VAE_LOG_EVERY = 50
#: The step of a round's bank draw in :func:`phase_seed` (past any VAE step).
BANK_STEP = 1 << 20


def check(cfg: Config, base: Config | None = None) -> Config:
    """The config, checked (:func:`experiments.run_settings.check_run`, :func:`resolve`; ValueError naming the first bad
    setting), its noise levels in ascending order (``base``, the preset, is not needed: every section applies)."""
    check_run(cfg.run)
    check_fractions(cfg.task.val_fraction, cfg.task.tune_fraction)
    sigma = resolve(settings(cfg)).sigma
    return dataclasses.replace(cfg, task=dataclasses.replace(cfg.task, sigma=sigma if isinstance(sigma, tuple)
                                                              else (sigma,)))


def parse(argv: Sequence[str]) -> Config:
    """The config of a command line (:func:`experiments.run_settings.parse_run`: ``--resume`` continues a run with
    its own config)."""
    return parse_run(Config, argv, trainer=PROG_MODULE, presets=PRESETS, flags=FLAGS, prog=PROG,
                     check=check, estimate=estimate_seconds)


# --- data ----------------------------------------------------------------------------------------
def open_data(cfg: Config) -> tuple[Any, Any, Any | None]:
    """(training data set, held-out data set, report data set or None), as denoise_train's: the held-out images
    (``task.test``, else the tuning split, else the validation split) pick the policies and rounds kept."""
    if cfg.task.test is not None:
        cfg = configs.replace_path(cfg, {"task.tune_fraction": 0.0})
    data = denoise_train.open_data(cfg)
    return (data.train, data.test, None) if data.test is not None else (data.train, data.picking, data.reported)


# --- the run -------------------------------------------------------------------------------------------
class RSETrainer(Callback):
    """The state of an RSE-RL run (model, pools, per-round inputs and table, phase in progress): it hands
    :class:`experiments.loop.Loop` one step at a time and, as its callback, ends each SAC phase."""

    def __init__(self, cfg: Config, run: Run, device: torch.device, train_set: Any, test_set: Any,
                 report_set: Any | None = None):
        self.cfg, self.args, self.run, self.device = cfg, resolve(settings(cfg)), run, device
        args = self.args
        self.ranks: Ranks = run.ranks
        self.train_set = train_set
        # the held-out images at each noise level, and flattened (level by level): test_inputs' order
        self.test_sets = noisy_test_sets(test_set, args.sigma, seed=args.noise_seed, device=device,
                                         limit=args.eval_images)
        self.images = [im for level in self.test_sets.values() for im in level]
        #: the validation images best.pt is scored on after the run (:meth:`report`; None: it picked on them)
        self.report_sets = None if report_set is None else noisy_test_sets(
            report_set, args.sigma, seed=args.noise_seed, device=device, limit=args.eval_images)
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
        self.progress = {"round": 0, "phase": PHASES[0], "step": 0}
        self.rows: list[dict[str, Any]] = []        # one per finished round
        self.baselines: list[dict[str, Any]] | None = None
        self.best = -math.inf                       # held-out PSNR of best.pt
        self.kept = 0                               # rounds best.pt applies
        self.stopped_early = False
        self.seconds: list[float] = []              # seconds per held-out image, per round
        self.phase_state: dict[str, Any] = {}       # the restored state of the phase in progress
        # the phase in progress: the VAE's optimiser, or the SAC env, agent and best policy so far
        self.optimizer: torch.optim.Optimizer | None = None
        self.venv: Any = None
        self.agent: SAC | None = None
        self.best_score, self.best_policy = -math.inf, None

    # -- the loop's step schedule: round k's VAE steps, then its SAC episodes --
    def vae_total(self, r: int) -> int:
        return self.args.vae_steps if r == 0 else self.args.vae_finetune_steps

    # -- checkpoints --
    def spec(self, rounds: int) -> RSEDenoiserSpec:
        levels = noise_levels(self.args.sigma)
        return RSEDenoiserSpec(sigma=levels[-1], sigmas=levels, channels=self.model.channels, rounds=max(1, rounds),
                               predictor=str(Path(self.args.predictor).resolve()) if self.args.predictor else None)

    def extra(self) -> dict[str, Any]:
        """What every checkpoint carries (:class:`experiments.loop.Loop`'s ``extra``)."""
        return {"spec": self.spec(self.kept or self.progress["round"] + 1), "config": configs.to_dict(self.cfg)}

    def state_dict(self) -> dict[str, Any]:
        """The resumable state (last.pt's ``extra["state"]``): progress, table, and the phase in progress."""
        if self.progress["phase"] == "vae" and self.optimizer is not None:
            phase = {"vae_optimizer": self.optimizer.state_dict()}
        elif self.progress["phase"] == "sac" and self.agent is not None:
            phase = {"agent": self.agent.state_dict(), "best_score": self.best_score,
                     "best_policy": self.best_policy}
        else:
            phase = {}
        return {"progress": dict(self.progress), "rows": self.rows, "baselines": self.baselines, "best": self.best,
                "kept": self.kept, "stopped_early": self.stopped_early, "seconds": self.seconds, "phase_state": phase}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from last.pt's state; the held-out and pool inputs of the rounds done are computed again."""
        self.progress = dict(state["progress"])
        self.rows, self.baselines = list(state["rows"]), state["baselines"]
        self.best, self.kept = float(state["best"]), int(state["kept"])
        self.stopped_early, self.seconds = bool(state["stopped_early"]), list(state["seconds"])
        self.phase_state = dict(state.get("phase_state") or {})
        if self.finished:
            return
        for k in range(self.progress["round"]):  # the inputs of the round in progress
            self.next_inputs(k)
        self.run.say(f"round {self.progress['round'] + 1}, phase {self.progress['phase']}, step "
                     f"{self.progress['step']}")

    def save_best(self) -> None:
        self.run.save("best", model=self.model, arch=self.model.arch(),
                      extra={"spec": self.spec(self.kept), "config": configs.to_dict(self.cfg), "rows": self.rows,
                             "best": self.best, "kept": self.kept})

    def tracked(self, desc: str):
        """A progress bar over a list of held-out images (:meth:`experiments.runs.Run.track`)."""
        return lambda images: self.run.track(images, desc, total=len(images))

    @property
    def finished(self) -> bool:
        return self.progress["phase"] == DONE

    # -- the loop's callbacks --
    def on_start(self, loop: Loop) -> None:
        """The baselines' scores (once per run, rank 0), then the phase in progress is set up."""
        if self.baselines is None and self.run.writes:  # rank 0 scores; the others never write them
            self.baselines = baseline_scores(self.args.baselines, self.test_sets)
            if self.predictor is not None:
                self.baselines.append(predictor_scores(self.predictor, self.test_sets))
            noisy = level_score(self.test_inputs[0], self.test_sets)
            self.run.log(loop.state.step,  # psnr (and ssim), and psnr_sigmaS ... with several levels
                         {f"eval/input_{k}": v for k, v in noisy.items() if k.startswith(("psnr", "ssim"))}
                         | {f"eval/baseline_{row['method']}_{k}": v for row in self.baselines for k, v in row.items()
                            if k.startswith("psnr")})
        self.start_phase()
        self.describe(loop)

    def on_train(self, loop: Loop, scalars: Mapping[str, float], steps: int) -> None:
        self.describe(loop)

    def on_evaluation(self, loop: Loop, scores: Mapping[str, float], rows: Sequence[Sequence[Tensor]]) -> None:
        """Keep the SAC phase's best policy; at the phase's end, score the round and go on to the pool or end."""
        r, stage = self.progress["round"], self.model.rounds[self.progress["round"]]
        if scores["eval/psnr"] > self.best_score:
            self.best_score = scores["eval/psnr"]
            self.best_policy = {k: v.detach().cpu().clone() for k, v in stage.policy.state_dict().items()}
        if self.progress["step"] < self.args.episodes:
            return
        if self.best_policy is not None:
            stage.policy.load_state_dict({k: v.to(self.device) for k, v in self.best_policy.items()})
        stage.policy.eval()
        keep = self.finish_round(r, loop.state.step)
        self.advance("pool" if keep and r + 1 < self.args.rounds else DONE)
        if self.finished:
            loop.end()

    def on_end(self, loop: Loop) -> None:
        if self.run.writes:
            self.summary(loop.state.report)

    def describe(self, loop: Loop) -> None:
        if loop.bar is not None and self.run.writes:
            loop.bar.set_description_str(f"round {self.progress['round'] + 1} {self.progress['phase']}")

    # -- phases --
    def advance(self, phase: str | None) -> None:
        """Move to the next phase (the next round's first: ``phase`` None) and set it up."""
        if phase is None:
            self.progress.update(round=self.progress["round"] + 1, phase=PHASES[0], step=0)
        else:
            self.progress.update(phase=phase, step=0)
        self.phase_state = {}
        self.start_phase()

    def start_phase(self) -> None:
        """Set up the phase in progress (from :attr:`phase_state` on resume): the VAE's optimiser or SAC's agent."""
        r, phase, args = self.progress["round"], self.progress["phase"], self.args
        state = self.phase_state
        self.optimizer = self.venv = self.agent = None
        if phase == "vae":
            stage = self.model.rounds[r]
            if self.progress["step"] == 0 and r > 0:
                stage.vae.load_state_dict(self.model.rounds[r - 1].vae.state_dict())
            lr = args.vae_lr if r == 0 else args.vae_finetune_lr
            self.optimizer = torch.optim.Adam(stage.vae.parameters(), lr=lr)
            if "vae_optimizer" in state:
                self.optimizer.load_state_dict(state["vae_optimizer"])
            stage.vae.train()
        elif phase == "sac":
            stage = self.model.rounds[r]
            if self.progress["step"] == 0 and r > 0 and "agent" not in state:
                stage.policy.load_state_dict(self.model.rounds[r - 1].policy.state_dict())
            data = self.train_set if r == 0 else PoolPairs(self.pool_clean, self.pool_inputs[r])
            self.venv = make_rse_vec(self.ranks.split(args.batch, "sac.batch"), shard=self.ranks.shard,
                                     device=self.device, data=data, model=stage, crop=args.crop,
                                     max_episode_steps=args.steps, sigma=args.sigma, gray=args.gray,
                                     w_deblock=args.w_deblock)
            self.agent = SAC(stage.policy, sac_config(args, r), device=self.device,
                             critic_kwargs={"width": args.width}, ranks=self.ranks)
            if "agent" in state:
                self.agent.load_state_dict(state["agent"])
            self.best_score = float(state.get("best_score", -math.inf))
            self.best_policy = state.get("best_policy")

    def train(self, step: int, until: int) -> tuple[int, dict[str, float]]:
        """One loop step: a VAE step (the last one followed by the bank) or a SAC episode."""
        if self.progress["phase"] == "pool":
            self.next_inputs(self.progress["round"])
            self.advance(None)
        if self.progress["phase"] == "vae":
            scalars = self.vae_step()
            if self.progress["step"] == self.vae_total(self.progress["round"]):
                self.model.rounds[self.progress["round"]].vae.eval()
                self.advance("bank")
                scalars |= self.fit_bank(self.progress["round"])
                self.advance("sac")
            return step + 1, scalars
        r = self.progress["round"]
        seed = episode_seed(self.args.seed * (self.args.rounds + 1) + r, self.progress["step"])
        stats = self.ranks.mean_stats(self.agent.train_episode(self.venv, seed=seed))
        self.progress["step"] += 1
        return step + 1, episode_scalars(stats)

    def vae_step(self) -> dict[str, float]:
        """One step of the round's VAE (cosine learning-rate decay); its losses every :data:`VAE_LOG_EVERY` steps."""
        args, r, step = self.args, self.progress["round"], self.progress["step"]
        stage, total = self.model.rounds[r], self.vae_total(r)
        lr = args.vae_lr if r == 0 else args.vae_finetune_lr
        local = self.ranks.split(args.vae_batch, "rse.vae_batch")
        source, target, noise = vae_batch(args, self.pool_clean, self.vae_inputs(r), stage.vae.latent_dim,
                                          phase_seed(args.seed, r, step), self.ranks.rows(local))
        for group in self.optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
        losses = vae_loss(stage.vae, source, target, beta=args.vae_beta, align=args.vae_align, noise=noise)
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        self.ranks.average_gradients(stage.vae.parameters())
        self.optimizer.step()
        self.progress["step"] += 1
        if step % VAE_LOG_EVERY and self.progress["step"] != total:
            return {}
        losses = self.ranks.mean_stats({k: float(v.detach()) for k, v in losses.items()})
        return {"losses/vae_loss": losses["loss"], "losses/vae_kl": losses["kl"], "losses/vae_align": losses["align"],
                "charts/vae_psnr": -10.0 * math.log10(losses["mse"]), "charts/round": r + 1}

    def vae_inputs(self, r: int) -> Tensor | None:
        """The degraded pool crops round r's VAE learns from; None: round 1 on clean images, fresh noise each step."""
        return None if r == 0 and not self.real_noise else self.pool_inputs[r]

    @torch.no_grad()
    def fit_bank(self, r: int) -> dict[str, float]:
        """Cluster the round's clean patch latents (and draw its pictures); the bank's scalars."""
        args, stage = self.args, self.model.rounds[r]
        rows = episode_rows(phase_seed(args.seed, r, BANK_STEP), range(args.bank_size + PICTURE_ROWS), self.device)
        _, clean = sample_patch_pairs(self.pool_clean, None, rows[:args.bank_size], args.patch, args.sigma)
        code = stage.vae.analyse(clean)
        stage.bank.fit(code.mu, seed=args.seed + r)
        canonical = canonicalise(clean, code.orientation)[0]  # as the bank's latents describe them
        sizes = stage.bank.cluster_sizes()
        source, target = sample_patch_pairs(self.pool_clean, self.vae_inputs(r), rows[args.bank_size:], args.patch,
                                            args.sigma)
        if self.run.writes:
            save_pictures(self.run, stage, canonical, source, target, r)
        return {"charts/bank_clusters_used": float((sizes > 0).sum()),
                "charts/bank_largest_cluster": float(sizes.max())}

    @torch.no_grad()
    def next_inputs(self, r: int) -> None:
        """Round r applied to its pool and (rank 0) held-out inputs: round r + 1's inputs."""
        stage = self.model.rounds[r]
        self.pool_inputs.append(apply_to_pool(stage, self.pool_inputs[r], self.args.steps))
        self.test_inputs.append(apply_round(stage, self.test_inputs[r], self.args.steps,
                                            track=self.tracked("next inputs"))[0]
                                if self.run.writes else [])

    def score(self, r: int) -> tuple[dict[str, float], list[Tensor], float]:
        """Round r on its held-out inputs: scores, outputs, seconds per image (policy in eval mode)."""
        stage = self.model.rounds[r]
        was_training = stage.policy.training
        stage.policy.eval()
        outputs, seconds = apply_round(stage, self.test_inputs[r], self.args.steps, track=self.tracked("held-out"))
        stage.policy.train(was_training)
        return level_score(outputs, self.test_sets), outputs, seconds

    def evaluate(self) -> tuple[dict[str, float], list[list[Tensor]]]:
        """The loop's evaluation (rank 0): the SAC phase's policy on the held-out images."""
        r = self.progress["round"]
        scores, _, seconds = self.score(r)
        return ({f"eval/{k}": v for k, v in scores.items()}
                | {"eval/ms_per_image": seconds * MS_PER_S, "charts/round": r + 1}), []

    def report(self) -> tuple[dict[str, float], list[list[Tensor]]]:
        """The loop's report: best.pt's rounds applied in turn to the noisy validation images."""
        inputs = [im.noisy for level in self.report_sets.values() for im in level]
        for stage in self.model.rounds[:self.kept]:
            inputs = apply_round(stage, inputs, self.args.steps, track=self.tracked("validation"))[0]
        return {f"eval/{k}": v for k, v in level_score(inputs, self.report_sets).items()}, []

    def finish_round(self, r: int, step: int) -> bool:
        """Score round r, add its table row and picture, decide whether the recursion goes on."""
        args, start = self.args, time.perf_counter()
        scores, seconds, vae_only = self.ranks.on_rank0(lambda: self._score_round(r, step))  # rank 0 scores
        scoring_s = time.perf_counter() - start
        self.seconds = self.seconds[:r] + [seconds]
        previous = self.rows[-1]["psnr"] if self.rows else level_score(self.test_inputs[0], self.test_sets)["psnr"]
        gain = scores["psnr"] - previous
        keep = r == 0 or gain > args.min_gain
        row = {"round": r + 1, **scores, "gain_db": gain, "vae_only_psnr": vae_only["psnr"],
               "ms_per_image": sum(self.seconds) * MS_PER_S, "kept": "yes" if keep else "no (stop)"}
        self.rows.append(row)
        self.run.say(f"round {r + 1}: held-out PSNR {scores['psnr']:.3f} dB (gain {gain:+.3f}, VAE alone "
                     f"{vae_only['psnr']:.3f}), SSIM {scores['ssim']:.4f}, UQI {scores['uqi']:.4f}, "
                     f"{row['ms_per_image']:.0f} ms per image; kept: {row['kept']}")
        self.run.log(step, {f"eval/round_{k}": v for k, v in row.items() if isinstance(v, float)}
                     | {"eval/round_seconds": scoring_s})
        if keep:
            self.kept = r + 1
            self.best = scores["psnr"]
            self.save_best()
        else:
            self.stopped_early = True
        return keep

    def _score_round(self, r: int, step: int) -> tuple[dict[str, float], float, dict[str, float]]:
        """Round r's held-out scores, seconds per image and VAE-alone scores; saves its sample grid."""
        args, stage = self.args, self.model.rounds[r]
        scores, outputs, seconds = self.score(r)
        vae_only = level_score(apply_round(stage, self.test_inputs[r], args.steps, vae_only=True,
                                           track=self.tracked("VAE alone"))[0], self.test_sets)
        if args.samples:
            self.run.save_grid(f"round{r + 1}_heldout", [[im.noisy, out, im.clean] for im, out in
                                                          zip(self.images[:args.samples], outputs)],
                               captions=("noisy", "output", "clean"), step=step)
        return scores, seconds, vae_only

    def summary(self, report: Mapping[str, float] | None = None) -> Path:
        """summary.md (rounds, baselines, best.pt on the validation split: ``report``) and rounds.csv."""
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
        if report:
            table.append({"method": f"best.pt ({self.kept} round(s)) on the validation split",
                          **{k: report[f"eval/{k}"] for k in ("psnr", "ssim", "uqi", *levels)}, "gain_db": "",
                          "ms_per_image": "", "vae_only_psnr": ""})
        first = self.rows[0]["psnr"] if self.rows else float("nan")
        best = self.best
        held = "tuning-split" if self.report_sets is not None else "held-out"
        title = (f"rse_train: {self.run.dir} ({self.noise}, "
                 f"{len(next(iter(self.test_sets.values())))} {held} image(s); "
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
    device = setup_process(threads=cfg.run.threads, seed=cfg.run.seed, device=cfg.run.device, ranks=ranks)
    run = open_run(cfg, ranks, trainer=PROG_MODULE)
    train_set, test_set, report_set = open_data(cfg)
    trainer = RSETrainer(cfg, run, device, train_set, test_set, report_set)
    reported = report_set is not None
    loop = Loop(run, total=sac_spans(trainer.args)[-1][1], eval_every=partial(evaluates_at, trainer.args),
                train=trainer.train, evaluate=trainer.evaluate, metric="eval/psnr", model=trainer.model,
                state=trainer.state_dict, load_state=trainer.load_state_dict, extra=trainer.extra, unit="step",
                split="tune" if reported else "val", report=trainer.report if reported else None,
                save_best=False, callbacks=[trainer, preset_estimate(
                    cfg, PRESETS, device.type, ignore=RUN_COST_FREE, check=check,
                    per_step=lambda cost: (cost.step_s, cost.eval_s), warmup=None)])
    path = loop.fit()
    best = Path(path) / "checkpoints" / "best.pt"
    run.say(*usage_lines(best, ["denoise", "noisy.png", "-o", "denoised/", "--model", "rse", "--checkpoint", best]))
    return path


if __name__ == "__main__":
    run_cli(main, PROG)
