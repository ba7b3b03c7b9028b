"""Train a pixel-wise A3C low-light enhancer (ReLLIE-style curve estimation).

    python -m experiments.lol_train                       # embedded photos, darkened synthetically
    python -m experiments.lol_train --data ../shared/data/sice_pairs/train --conditioned

The run folder (``--out``) gets config.json, TensorBoard events, metrics.csv, checkpoints
(last.pt every evaluation, best.pt by validation), sample grids (input | output | reference) and a
summary table. ``--resume`` continues a killed run from checkpoints/last.pt to the same episode
count; episode ``k`` always resets the env with seed ``seed * 1_000_003 + k``, so a resumed run
draws the same images as an uninterrupted one.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import envs
from agents.a3c import A3C, A3CConfig, policy_kwargs_from_env
from envs.base import open_dataset
from envs.lowlight import COND_FIELDS, REWARDS, LowLightTask
from experiments.runs import Run, arg, parse_config
from rlenhance import losses, metrics
from rlenhance.data import BuiltinImages, DEFAULT_COLOR_IMAGES, split_names, synthetic_low_light
from rlenhance.enhance import greedy_rollout
from rlenhance.models.policy import PixelActorCritic
from rlenhance.runtime import flush_denormals, seed_everything, select_device

EPISODE_SEED_STRIDE = 1_000_003


@dataclass
class Args:
    """Train a pixel-wise A3C low-light enhancer (ReLLIE-style curves, non-reference or reference rewards)."""

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
    episodes: int = arg(1000, "training episodes (each a batch of crops for --steps steps, then one update)")
    batch: int = arg(16, "crops per episode (the vector env's num_envs)")
    crop: int = arg(64, "crop size in pixels")
    steps: int = arg(6, "curve steps per training episode (ReLLIE trains with 10)")
    test_steps: int = arg(6, "curve steps at evaluation and inference (ReLLIE tests with 6)")
    alpha_mode: str = arg("mean", "test-time alpha of a discrete policy: the expected alpha, or the most "
                                  "probable one (ReLLIE)", choices=("mean", "argmax"))
    action: str = arg("discrete", "per-pixel actions: 27 alphas (ReLLIE) or continuous alpha",
                      choices=("discrete", "continuous"))
    damping: float = arg(0.0, "ReLLIE's damping d in s <- (1-d) LE(s) + d s (ReLLIE: 0.2)")
    gamma: float = arg(1.0, "discount factor (rewards are per-step improvements)")
    lr: float = arg(1e-3, "Adam learning rate")
    entropy: float = arg(0.01, "entropy bonus coefficient")
    width: int = arg(32, "channels of the policy network (ReLLIE: 64)")
    downscale: int = arg(4, "the policy sees the image average-pooled by this factor; its maps are upsampled")
    block_actions: bool = arg(True, "sample one action per downscale x downscale block and repeat it over "
                                    "the block (less action noise); --no-block-actions samples every pixel")
    conv_gru: bool = arg(False, "ConvGRU in the policy branch (PixelRL)")
    reward_map_conv: bool = arg(False, "PixelRL's learned reward-map convolution on the returns")
    workers: int = arg(0, "0: synchronous batched A2C; K >= 1: asynchronous A3C with K Hogwild processes")
    eval_every: int = arg(250, "evaluate on the validation split every N episodes (and at the end)")
    eval_size: int = arg(256, "validation images are area-downscaled to this longer side")
    val_fraction: float = arg(0.1, "fraction of scenes held out for validation (pair folders)")
    samples: int = arg(4, "validation images shown in each sample grid")
    device: str = arg("auto", "auto, cpu, cuda or cuda:N")
    threads: int = arg(0, "torch CPU threads (0: torch's default)")
    seed: int = arg(0, "seed of everything (env draws, policy init and sampling)")
    out: str = arg("runs/lol_train", "run folder")
    resume: bool = arg(False, "continue the run in --out from checkpoints/last.pt")


def load_validation(args: Args, device: torch.device) -> tuple[list[str], torch.Tensor, torch.Tensor | None]:
    """Validation images (names, low (N, 3, h, w), high or None), area-downscaled to ``eval_size``
    and centre-cropped to a common size so they batch. Synthetic lows use a fixed seed."""
    if args.data is None:
        train_names, val_names = split_names(DEFAULT_COLOR_IMAGES, val_fraction=0.34, seed=args.seed)
        dataset = BuiltinImages(names=val_names)
    else:
        dataset = open_dataset(args.data, kind="paired", split="val", gray=False, seed=args.seed)
    items = [dataset[i] for i in range(len(dataset))]
    size = args.eval_size
    lows, highs = [], []
    for item in items:
        for key, out in (("low", lows), ("high", highs)):
            if key in item:
                out.append(_fit(item[key], size))
    high = torch.stack(highs).to(device) if highs else None
    if lows:
        low = torch.stack(lows).to(device)
    else:
        generator = torch.Generator(device=device).manual_seed(args.seed)
        low = synthetic_low_light(high, generator=generator)
    return [item["name"] for item in items], low, high


def _fit(image: torch.Tensor, size: int) -> torch.Tensor:
    """Area-downscale so the shorter side is ``size``, then centre-crop to size x size."""
    h, w = image.shape[-2:]
    scale = size / min(h, w)
    if scale < 1:
        image = F.interpolate(image[None], size=(max(size, round(h * scale)), max(size, round(w * scale))),
                              mode="area")[0]
    h, w = image.shape[-2:]
    top, left = (h - min(h, size)) // 2, (w - min(w, size)) // 2
    return image[:, top:top + size, left:left + size]


def training_data(args: Args):
    """What the training env draws from (the embedded photos minus the validation ones by default)."""
    if args.data is None:
        train_names, _ = split_names(DEFAULT_COLOR_IMAGES, val_fraction=0.34, seed=args.seed)
        return BuiltinImages(names=train_names)
    return args.data


def env_kwargs(args: Args) -> dict:
    return dict(crop=args.crop, max_episode_steps=args.steps, action_type=args.action, damping=args.damping,
                reward=args.reward, w_exposure=args.w_exposure, w_color=args.w_color, w_spatial=args.w_spatial,
                w_smooth=args.w_smooth, exposure_target=args.exposure_target, exposure_patch=args.exposure_patch,
                conditioned=args.conditioned,
                split="train", split_seed=args.seed)


def inference_config(args: Args, task: LowLightTask) -> dict:
    """What a checkpoint must carry for ``rlenhance.Enhancer`` (see ENV_KEYS there)."""
    return {
        "alpha_table": [float(a) for a in task.alpha_table.cpu()],
        "damping": args.damping,
        "action_type": args.action,
        "test_steps": args.test_steps,
        "alpha_mode": args.alpha_mode,
        "cond_fields": list(COND_FIELDS),
        "cond_scale": [float(c) for c in task.cond_scale.cpu()],
        "cond_offset": [float(c) for c in task.cond_offset.cpu()],
        "setting": {"exposure_target": args.exposure_target, "w_exposure": args.w_exposure,
                    "w_color": args.w_color, "w_spatial": args.w_spatial, "w_smooth": args.w_smooth},
        "conditioned": args.conditioned,
    }


@torch.no_grad()
def evaluate(policy, task: LowLightTask, args: Args, low: torch.Tensor, high: torch.Tensor | None) -> tuple[dict, torch.Tensor]:
    """Greedy rollout on the validation images at the fixed setting; metrics are per-image means."""
    policy.eval()
    cond = task._sample_cond(np.random.default_rng(0))[:1].expand(low.shape[0], -1) if policy.cond_dim else None
    start = time.perf_counter()
    out, maps = greedy_rollout(policy, low, cond, steps=args.test_steps, alpha_table=task.alpha_table,
                               damping=args.damping, alpha_mode=args.alpha_mode)
    ms = (time.perf_counter() - start) * 1000 / low.shape[0]
    policy.train()
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
    return scores, out


def main(argv=None) -> Path:
    args = parse_config(Args, argv)
    flush_denormals()
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    device = select_device(args.device)
    run = Run(args.out, args, resume=args.resume)

    venv = envs.make_vec("rlenhance/LowLight-v0", num_envs=args.batch, device=device, data=training_data(args),
                         **env_kwargs(args))
    names, val_low, val_high = load_validation(args, device)
    policy = PixelActorCritic(**policy_kwargs_from_env(venv, keys=("image", "original"), width=args.width,
                                                       downscale=args.downscale, conv_gru=args.conv_gru))
    agent = A3C(policy, A3CConfig(gamma=args.gamma, lr=args.lr, entropy_coef=args.entropy,
                                  n_steps=args.steps, reward_map_conv=args.reward_map_conv, seed=args.seed,
                                  block_actions=args.block_actions),
                device=device)
    episode, best = 0, -float("inf")
    if args.resume:
        ckpt = run.load_last(expected_arch=policy.arch())
        agent.load_state_dict(ckpt["extra"]["agent"])
        episode, best = int(ckpt["extra"]["episode"]), float(ckpt["extra"]["best"])
        run.truncate_metrics(episode)
        print(f"resumed {run.last_path} at episode {episode}")
    extra_env = inference_config(args, venv.task)
    bar = run.progress(args.episodes, initial=episode)
    scores: dict[str, float] = {}

    def checkpoint(scores: dict) -> None:
        nonlocal best
        metric = scores.get("eval/psnr", -scores["eval/exposure_loss"])
        extra = {"episode": episode, "best": max(best, metric), "env": extra_env, "scores": scores,
                 "args": asdict(args)}
        if metric > best:
            best = metric
            run.save("best", model=policy, arch=policy.arch(), extra=extra)
        run.save("last", model=policy, arch=policy.arch(), extra={**extra, "agent": agent.state_dict()})

    while episode < args.episodes:
        chunk = min(args.eval_every - episode % args.eval_every, args.episodes - episode)
        if args.workers:
            stats = agent.train_hogwild(lambda rank: envs.make_vec("rlenhance/LowLight-v0", num_envs=args.batch,
                                                                   device=device, data=training_data(args),
                                                                   **env_kwargs(args)),
                                        workers=args.workers, episodes=chunk,
                                        seed=args.seed * EPISODE_SEED_STRIDE + episode)
            run.log(episode + chunk, {f"charts/{k}": v for k, v in stats.items() if isinstance(v, (int, float))})
            episode += chunk
            bar.update(chunk)
        else:
            for _ in range(chunk):
                stats = agent.train_episode(venv, seed=args.seed * EPISODE_SEED_STRIDE + episode)
                episode += 1
                run.log(episode, {"charts/episode_return": stats["episode_return"],
                                  "losses/loss": stats["loss"], "losses/policy_loss": stats["policy_loss"],
                                  "losses/value_loss": stats["value_loss"], "losses/entropy": stats["entropy"]})
                bar.update(1)
                bar.set_postfix(ret=f"{stats['episode_return']:.3f}",
                                psnr=f"{scores.get('eval/psnr', float('nan')):.2f}")
        scores, out = evaluate(policy, venv.task, args, val_low, val_high)
        run.log(episode, scores)
        checkpoint(scores)
        rows = [[val_low[i], out[i]] + ([val_high[i]] if val_high is not None else [])
                for i in range(min(args.samples, len(names)))]
        run.save_grid(f"episode_{episode:06d}", rows)
    bar.close()
    summary = {"episodes": episode, "val_images": len(names), "input_brightness": float(val_low.mean())}
    summary.update({k.split("/")[1]: v for k, v in scores.items()})
    run.summary([summary], title=f"lol_train: {run.dir}")
    run.close()
    return run.dir


if __name__ == "__main__":
    main()
