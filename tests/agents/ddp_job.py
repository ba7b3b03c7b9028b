"""What the ``ddp`` tests run on several ranks (``torchrun --standalone --nproc_per_node 2
tests/agents/ddp_job.py OUT``) and, for the reference, in one process (imported by the tests).

Each scenario trains a tiny model for a few updates with one global batch and returns its weights:
under torchrun every rank holds its share of the batch, and rank 0 saves the weights to
``OUT/<scenario>.pt``; the tests compare them with one process's run of the same scenario.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import envs
from agents.a3c import A3C, A3CConfig, policy_kwargs_from_env
from agents.distributed import GlobalBatchNorm, Ranks, init_process_group, shutdown
from agents.sac import SAC, SACConfig
from rlenhance.models.policy import PixelActorCritic

#: Global batches and update counts of the scenarios (small: every scenario takes about a second).
ENV_BATCH = 4
CROP = 16
EPISODES = 3
SAC_BATCH = 4
BN_BATCH, BN_CHANNELS = 6, 3
#: supervised_train's arguments (the global --batch is 4); ``--out`` is added.
SUPERVISED_ARGS = ["--epochs", "1", "--steps-per-epoch", "3", "--batch", "4", "--crop", "32", "--width", "8",
                   "--set", "run.samples=1", "--set", "data.val_samples=2", "--device", "cpu", "--threads", "1"]


def a3c_weights(ranks: Ranks, episodes: int = EPISODES) -> dict[str, torch.Tensor]:
    """A3C (categorical, reward-map convolution) on Denoise-v0: EPISODES episodes of ENV_BATCH crops."""
    torch.manual_seed(0)
    venv = envs.make_vec("rlenhance/Denoise-v0", num_envs=ranks.split(ENV_BATCH), crop=CROP, max_episode_steps=2,
                         shard=ranks.shard)
    policy = PixelActorCritic(**policy_kwargs_from_env(venv, width=4))
    agent = A3C(policy, A3CConfig(seed=1, reward_map_conv=True, rmc_size=3, max_grad_norm=0.5), ranks=ranks)
    for episode in range(episodes):
        agent.train_episode(venv, seed=100 + episode)
    return {**{f"policy.{k}": v for k, v in agent.policy.state_dict().items()},
            **{f"rmc.{k}": v for k, v in agent.rmc.state_dict().items()}}


def a3c_smooth_weights(ranks: Ranks, episodes: int = EPISODES) -> dict[str, torch.Tensor]:
    """A3C (categorical) on LowLight-v1 with the smoothness left to the agent: each row's sampled w_smooth
    (the reset info's ``action_penalty_weight``, a rank's own rows) weights its penalty on the expected alpha map."""
    torch.manual_seed(0)
    venv = envs.make_vec("rlenhance/LowLight-v1", num_envs=ranks.split(ENV_BATCH), crop=CROP, max_episode_steps=2,
                         shard=ranks.shard, conditioned=True, w_smooth=50.0, weight_ranges={"w_smooth": (1.0, 1000.0)},
                         smooth_in_reward=False)
    policy = PixelActorCritic(**policy_kwargs_from_env(venv, width=4, policy_head_gain=3.0))
    config = A3CConfig(seed=1, action_penalty=1.0)
    agent = A3C(policy, config, ranks=ranks)
    for episode in range(episodes):
        agent.train_episode(venv, seed=300 + episode)
    return {f"policy.{k}": v for k, v in agent.policy.state_dict().items()}


def sac_weights(ranks: Ranks, episodes: int = EPISODES) -> dict[str, torch.Tensor]:
    """Continuous SAC with a trust region on LowLight-v1: replay minibatches of SAC_BATCH, alpha tuned."""
    torch.manual_seed(0)
    venv = envs.make_vec("rlenhance/LowLight-v1", num_envs=ranks.split(ENV_BATCH), crop=CROP, max_episode_steps=2,
                         action_type="continuous", shard=ranks.shard)
    policy = PixelActorCritic(**policy_kwargs_from_env(venv, width=4, bounded_mean=False))
    config = SACConfig(batch_size=SAC_BATCH, learning_starts=0, updates_per_episode=2, trust_region_kl=0.05, seed=3,
                       actor_updates=2)
    agent = SAC(policy, config, critic_kwargs={"width": 4}, ranks=ranks)
    for episode in range(episodes):
        agent.train_episode(venv, seed=200 + episode)
    return {**{f"policy.{k}": v for k, v in agent.policy.state_dict().items()},
            **{f"critics.{k}": v for k, v in agent.critics.state_dict().items()},
            **{f"targets.{k}": v for k, v in agent.critic_targets.state_dict().items()},
            "log_alpha": agent.log_alpha.detach()}


def batch_norm_values(ranks: Ranks) -> dict[str, torch.Tensor]:
    """A GlobalBatchNorm step on this rank's rows of a fixed batch: output, input gradient,
    weight and bias gradients (averaged over the ranks) and running statistics."""
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(BN_BATCH, BN_CHANNELS, 5, 4, generator=generator) * 3 + 1
    weights = torch.randn(BN_BATCH, BN_CHANNELS, 5, 4, generator=generator)
    rows = ranks.rows(ranks.split(BN_BATCH))
    x = x[rows].requires_grad_(True)
    norm = GlobalBatchNorm(BN_CHANNELS)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
        norm.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    y = norm(x)
    (y * weights[rows]).sum().div(BN_BATCH).backward()  # this rank's part of the global mean
    ranks.average_gradients(norm.parameters())
    return {"y": ranks.gather(y.detach()), "x_grad": ranks.gather(x.grad),
            "weight_grad": norm.weight.grad * ranks.world_size, "bias_grad": norm.bias.grad * ranks.world_size,
            "running_mean": norm.running_mean, "running_var": norm.running_var}


def supervised_weights(out: Path) -> dict[str, torch.Tensor]:
    """supervised_train (MRPNet + Generator, batch norm in its residual block) for 3 batches of 4 crops."""
    from experiments import supervised_train
    from rlenhance.checkpoint import load_checkpoint

    supervised_train.main([*SUPERVISED_ARGS, "--out", str(out)])
    return load_checkpoint(out / "checkpoints" / "last.pt")["state_dict"]


SCENARIOS = {"a3c": a3c_weights, "a3c_smooth": a3c_smooth_weights, "sac": sac_weights,
             "batch_norm": batch_norm_values}


def main(out: Path) -> None:
    torch.set_num_threads(1)
    ranks = Ranks.from_env()
    init_process_group(ranks, torch.device("cpu"))
    for name, scenario in SCENARIOS.items():
        values = scenario(ranks)
        if ranks.writes:
            torch.save(values, out / f"{name}.pt")
    values = supervised_weights(out / "supervised_run")  # its own process group use: after the others
    if ranks.writes:
        torch.save(values, out / "supervised.pt")
    shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
