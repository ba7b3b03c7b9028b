"""Does a denoising SAC's critic rank the nine filters, and does its actor follow it?

    python -m benchmarks.sac_critic RUN/checkpoints/last.pt [RUN2/checkpoints/last.pt ...] [--crops 16]
                                    [--fit-critic N [--fit-every 100] [--fit-lr LR]] [--fit-actor N] [--validate]

Reads the agent state of ``experiments.denoise_train --agent sac`` runs (``last.pt`` holds it: actor,
twin critics, temperature), draws ``--crops`` noisy crops of each run's validation split (its data,
noise level, crop size and split; ``--seed`` fixes them, so runs of one data set see the same crops;
a ``--predictor`` run's env gets its predictor back, found as its policy's is, and with it a tenth action)
and compares, at every pixel of the first step:

* the true one-step reward of each action (the env's own reward map of every pixel taking it: the
  decrease of squared error x 255), its mean per action, and the per-pixel best (``oracle``);
* the critics' ``min(Q1, Q2)`` per action: their mean per action, the spread over the actions (mean
  over pixels of the standard deviation over the nine actions), next to the rewards' spread;
* ``corr``: the mean over pixels of the correlation over actions between Q and the reward;
  ``agree``: how often the critics' best action is the per-pixel best one (chance: 1 / 9);
* the actor: its entropy (uniform: log 9 = 2.20 nats), how often its greedy action is the critics'
  best, the reward its greedy action earns, and how often it picks each action.

``--fit-actor N`` then trains the actor alone against the critics as they stand (critics and
temperature frozen: the actor-only steps of ``SACConfig.actor_updates``) on ``--fit-episodes`` episodes
of its own sampled actions, a line every ``--fit-every`` steps: whether an actor that does not follow
its critics can. ``--validate`` adds the whole-image PSNR, on the run's validation images as its trainer
scores them, of the actor's greedy rollout and of the critics' own greedy choice (``argmax min(Q1, Q2)``
at every pixel and step): what the critics know that the actor has not taken up.

Q values include the discounted future, so they need not rank actions as the one-step reward does;
the table shows which actions the critic prefers and how sure it is. Prints one block per checkpoint.

``--fit-critic N`` first trains the checkpoint's critics alone (actor and temperature untouched) on
the one-step problem, a supervised test of the critic: its buffer is refilled with ``--fit-episodes``
episodes of uniformly random actions on the run's training crops, and each of N updates (SAC's own
critic loss, the run's batch, learning rate ``--fit-lr`` or the run's) regresses the critics on the
reward alone (gamma 0, as if every step ended its episode), so Q should tend to the one-step
reward of each action in each state. Every ``--fit-every`` updates a line shows Q per action, its spread,
``corr`` and ``agree`` on the validation crops: how many updates the critic needs to rank the filters.
(The buffer also holds later steps, whose rewards differ from the first step's, so Q matches the table's
rewards only as far as the critic reads the state.)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import torch

import envs
from agents.common import episode_length
from agents.sac import SAC, SACConfig, polyak_update
from experiments import denoise_train
from experiments.config import from_dict
from experiments.sigmas import noisy_test_sets
from rlenhance.checkpoint import load_checkpoint
from rlenhance.denoisers import DenoisePredictor
from rlenhance.models.policy import PixelActorCritic, build_policy_input


def load_agent(path: str | Path) -> tuple[SAC, denoise_train.Config]:
    """The SAC agent of a denoise_train ``last.pt`` (its own loader checks it) and the run's config."""
    extra = load_checkpoint(path)["extra"]
    if "state" not in extra or "config" not in extra or extra.get("algorithm") != "sac":
        raise ValueError(f"{path}: not the last.pt of a denoise_train --agent sac run (it holds no SAC agent state)")
    state = extra["state"]
    agent = SAC(PixelActorCritic(**state["arch"]["kwargs"]), SACConfig(**state["config"]), device="cpu")
    agent.load_state_dict(state)
    return agent, from_dict(denoise_train.Config, extra["config"])


def run_env(run: denoise_train.Config, crops: int, checkpoint: str | Path, split: str = "val"):
    """The run's env (its Denoise-v0 arguments and, for a ``--predictor`` run, its predictor, found as
    the policy's is from ``checkpoint``) on ``crops`` crops of its validation split (``split="train"``: of
    its training split)."""
    data = denoise_train.open_data(run)
    predictor = DenoisePredictor.for_policy(denoise_train.inference_spec(run), checkpoint=checkpoint, device="cpu")
    return envs.make_vec(denoise_train.ENV_ID, crops, data=data.val if split == "val" else data.train,
                         predictor=predictor, **denoise_train.env_kwargs(run))


@torch.no_grad()
def refill_buffer(agent: SAC, venv, *, episodes: int, seed: int, actor: bool) -> torch.Generator:
    """Empty ``agent``'s buffer and fill it with ``episodes`` episodes in ``venv`` (reset with seeds from
    ``seed``) of uniformly random actions, or with ``actor`` of the actor's own samples; returns the
    generator that drew them (seeded with ``seed``)."""
    generator = torch.Generator().manual_seed(seed)
    agent.buffer.clear()
    for episode in range(episodes):
        obs, _ = venv.reset(seed=seed + episode)
        for _ in range(episode_length(venv)):
            b, _, h, w = obs["image"].shape
            if actor:
                x, cond = build_policy_input(obs)
                actions = agent.policy.predict(agent.policy(x, cond, with_value=False), deterministic=False,
                                               generator=generator)
            else:
                actions = torch.randint(0, venv.task.n_actions, (b, 1, h, w), generator=generator)
            next_obs, _, terminated, _, info = venv.step(actions)
            agent.buffer.add(obs, actions, info["reward_map"], next_obs, torch.as_tensor(terminated).view(-1))
            obs = next_obs
    return generator


def fit_critics(agent: SAC, venv, updates: int, *, episodes: int, seed: int,
                lr: float | None = None) -> Iterator[int]:
    """Train ``agent``'s critics alone on the one-step problem (see the module docstring): refill its
    buffer with ``episodes`` episodes of uniformly random actions in ``venv`` (reset with seeds from
    ``seed``), then run ``updates`` critic updates with gamma 0; yields the number done after each."""
    generator = refill_buffer(agent, venv, episodes=episodes, seed=seed, actor=False)
    agent.config = dataclasses.replace(agent.config, gamma=0.0)  # the target: the reward alone
    if lr is not None:
        for group in agent.critic_optimizer.param_groups:
            group["lr"] = lr
    alpha = agent.log_alpha.detach().exp()
    for done in range(1, updates + 1):
        batch = agent.buffer.get(agent.buffer.sample_indices(agent.local_batch, generator=generator))
        agent._critic_step(batch, alpha)
        polyak_update(agent.critics.parameters(), agent.critic_targets.parameters(), agent.config.tau)
        yield done


def fit_actor(agent: SAC, venv, updates: int, *, episodes: int, seed: int) -> Iterator[int]:
    """Train ``agent``'s actor alone against its critics as they stand (the actor-only steps of
    ``SACConfig.actor_updates``: critics and alpha frozen, the run's actor optimiser): its buffer is
    refilled with ``episodes`` episodes of the actor's own sampled actions in ``venv`` (the states it
    meets), then ``updates`` actor steps; yields the number done after each."""
    generator = refill_buffer(agent, venv, episodes=episodes, seed=seed, actor=True)
    alpha = agent.log_alpha.detach().exp()
    for done in range(1, updates + 1):
        agent._actor_step(agent.buffer.get(agent.buffer.sample_indices(agent.local_batch, generator=generator)), alpha)
        yield done


class _QOutput(NamedTuple):
    q: torch.Tensor  # min(Q1, Q2) of action map 0, (B, K, H, W)
    hidden: None = None


class CriticGreedy(torch.nn.Module):
    """The policy that takes, at every pixel, the action of highest ``min(Q1, Q2)`` under an agent's
    critics, in the interface :func:`agents.rollout.policy_rollout` drives (greedy only)."""

    def __init__(self, agent: SAC):
        super().__init__()
        self.critics, self.downscale, self.cond_dim = agent.critics, agent.policy.downscale, agent.policy.cond_dim

    def forward(self, x, cond=None, hidden=None, full_resolution=True, with_value=True) -> _QOutput:
        return _QOutput(torch.minimum(*(critic(x, cond) for critic in self.critics))[:, 0])

    def predict(self, out: _QOutput, deterministic=True, generator=None) -> torch.Tensor:
        return out.q.argmax(1, keepdim=True)


@torch.no_grad()
def validation_psnr(agent: SAC, run: denoise_train.Config, checkpoint: str | Path) -> dict[str, float]:
    """Whole-image PSNR on the run's validation images (its ``--eval-images``, noise and episode
    length, as its trainer scores them) of the actor's greedy rollout and of :class:`CriticGreedy`'s."""
    images = noisy_test_sets(denoise_train.open_data(run).val, denoise_train.sigma_value(run),
                             seed=run.task.noise_seed, device="cpu", limit=run.task.eval_images)
    task = run_env(run, 1, checkpoint).task
    return {name: denoise_train.evaluate(policy, task, images, run)[0]["eval/psnr"]
            for name, policy in (("actor", agent.policy), ("critic_greedy", CriticGreedy(agent)))}


@torch.no_grad()
def one_step_rewards(venv, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The first observation of ``venv.reset(seed=seed)`` and the env's own reward map of each action
    taken at every pixel from it, float (B, K, H, W) (one reset and step per action)."""
    obs, _ = venv.reset(seed=seed)
    b, _, h, w = obs["image"].shape
    maps = []
    for action in range(venv.task.n_actions):
        venv.reset(seed=seed)
        _, _, _, _, info = venv.step(torch.full((b, 1, h, w), action, dtype=torch.long, device=obs["image"].device))
        maps.append(info["reward_map"].mean(1))  # (B, H, W): channels averaged, as the scalar reward
    return obs, torch.stack(maps, dim=1)


@torch.no_grad()
def critic_report(agent: SAC, obs: dict[str, torch.Tensor], rewards: torch.Tensor) -> dict[str, object]:
    """The figures of the module docstring for one batch of first-step observations and the one-step
    reward maps of every action from them (:func:`one_step_rewards`)."""
    x, cond = build_policy_input(obs)
    q = torch.minimum(*(critic(x, cond) for critic in agent.critics))[:, 0]  # (B, K, H, W): action map 0
    actor = agent.policy.distribution(agent.policy(x, cond, with_value=False))  # the policy's own decoding
    greedy, q_best, oracle = actor.mode()[:, :1], q.argmax(1, keepdim=True), rewards.argmax(1, keepdim=True)
    qc, rc = q - q.mean(1, keepdim=True), rewards - rewards.mean(1, keepdim=True)
    corr = ((qc * rc).sum(1) / (qc.norm(dim=1) * rc.norm(dim=1)).clamp_min(1e-12)).mean()
    k = q.shape[1]
    return {
        "reward_per_action": rewards.mean((0, 2, 3)).tolist(), "oracle": float(rewards.amax(1).mean()),
        "q_per_action": q.mean((0, 2, 3)).tolist(), "q_spread": float(q.std(1).mean()),
        "reward_spread": float(rewards.std(1).mean()), "corr": float(corr),
        "agree": float((q_best == oracle).float().mean()),
        "entropy": float(actor.entropy()[:, 0].mean()),
        "follows_q": float((greedy == q_best).float().mean()), "greedy_reward": float(rewards.gather(1, greedy).mean()),
        "greedy_freq": torch.bincount(greedy.view(-1), minlength=k).div(greedy.numel()).tolist(),
        "alpha": agent.alpha, "updates": agent.updates, "episodes": agent.episodes,
    }


def main(argv=None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="last.pt of denoise_train --agent sac runs")
    parser.add_argument("--crops", type=int, default=16, help="validation crops scored")
    parser.add_argument("--seed", type=int, default=123, help="seed of the crops and their noise")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--fit-critic", type=int, default=0, metavar="N",
                        help="first train the critics alone for N updates on the one-step problem (module docstring)")
    parser.add_argument("--fit-every", type=int, default=100,
                        help="with --fit-critic / --fit-actor: a line every this many steps")
    parser.add_argument("--fit-lr", type=float, default=None, help="with --fit-critic: the critics' learning rate "
                                                                   "(default: the run's)")
    parser.add_argument("--fit-actor", type=int, default=0, metavar="N",
                        help="then train the actor alone for N steps against the critics as they stand (docstring)")
    parser.add_argument("--fit-episodes", type=int, default=6,
                        help="with --fit-critic / --fit-actor: episodes on --crops training crops in the buffer")
    parser.add_argument("--validate", action="store_true",
                        help="also the whole-image validation PSNR of the actor and of the critics' greedy choice")
    args = parser.parse_args(argv)
    if min(args.fit_critic, args.fit_actor) < 0 or args.fit_every < 1 or args.fit_episodes < 1:
        parser.error(f"--fit-critic {args.fit_critic}, --fit-actor {args.fit_actor}, --fit-every {args.fit_every}, "
                     f"--fit-episodes {args.fit_episodes}: expected N >= 0 updates, a line every >= 1 of them, "
                     ">= 1 episode")
    if args.threads:
        torch.set_num_threads(args.threads)
    reports = []
    for path in args.checkpoints:
        agent, run = load_agent(path)
        obs, rewards = one_step_rewards(run_env(run, args.crops, path), args.seed)
        if args.fit_critic:
            print(f"{path}: the critics alone, {args.fit_critic} updates on the one-step problem (gamma 0)")
            for done in fit_critics(agent, run_env(run, args.crops, path, split="train"), args.fit_critic,
                                    episodes=args.fit_episodes, seed=args.seed + 1, lr=args.fit_lr):
                if done % args.fit_every == 0 or done == args.fit_critic:
                    fitted = critic_report(agent, obs, rewards)
                    print(f"  {done:6d} updates: Q {' '.join(f'{v:5.2f}' for v in fitted['q_per_action'])}  spread "
                          f"{fitted['q_spread']:.3f} corr {fitted['corr']:.3f} agree {fitted['agree']:.3f}", flush=True)
        if args.fit_actor:
            print(f"{path}: the actor alone, {args.fit_actor} steps against the critics as they stand")
            for done in fit_actor(agent, run_env(run, args.crops, path, split="train"), args.fit_actor,
                                  episodes=args.fit_episodes, seed=args.seed + 2):
                if done % args.fit_every == 0 or done == args.fit_actor:
                    fitted = critic_report(agent, obs, rewards)
                    print(f"  {done:6d} steps: greedy = critic's best {fitted['follows_q']:.3f}, greedy reward "
                          f"{fitted['greedy_reward']:.3f}, entropy {fitted['entropy']:.2f}", flush=True)
        report = critic_report(agent, obs, rewards)
        if args.validate:
            report.update({f"val_psnr_{k}": v for k, v in validation_psnr(agent, run, path).items()})
        reports.append(report)
        fmt = lambda values: " ".join(f"{v:6.2f}" for v in values)  # noqa: E731
        print(f"{path}: episode {report['episodes']}, {report['updates']} updates, alpha {report['alpha']:.4f}")
        print(f"  action             {' '.join(f'{a:6d}' for a in range(len(report['q_per_action'])))}")
        print(f"  reward (one step)  {fmt(report['reward_per_action'])}   per-pixel best {report['oracle']:.2f}")
        print(f"  critic Q           {fmt(report['q_per_action'])}")
        print(f"  greedy actor picks {fmt(report['greedy_freq'])}")
        print(f"  Q spread {report['q_spread']:.3f} (rewards' {report['reward_spread']:.3f}), corr(Q, reward) "
              f"{report['corr']:.3f}, critic's best = per-pixel best {report['agree']:.3f} (chance "
              f"{1 / len(report['q_per_action']):.3f}); actor entropy {report['entropy']:.2f} nats (uniform "
              f"{math.log(len(report['q_per_action'])):.2f}), greedy = critic's best {report['follows_q']:.3f}, "
              f"greedy reward {report['greedy_reward']:.3f}")
        if args.validate:
            shown = run.task.eval_images or "all"
            print(f"  validation PSNR ({shown} images): actor {report['val_psnr_actor']:.2f} dB, "
                  f"critics' greedy choice {report['val_psnr_critic_greedy']:.2f} dB")
    return reports


if __name__ == "__main__":
    main()
