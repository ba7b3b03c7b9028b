"""Learning algorithms for the pixel-wise MDPs in ``envs``: update math, buffers, distributions.

The networks live in :mod:`rlenhance.models.policy`; agents own only the learning.
"""

from agents.a3c import A3C, A3CConfig, RewardMapConv, SharedAdam, a3c_loss, nstep_returns, policy_kwargs_from_env
from agents.buffers import PixelReplayBuffer, ReplaySample
from agents.common import evaluate_policy
from agents.distributions import PixelCategorical, PixelGaussian
from agents.sac import SAC, SACConfig

__all__ = [
    "A3C",
    "A3CConfig",
    "PixelCategorical",
    "PixelGaussian",
    "PixelReplayBuffer",
    "ReplaySample",
    "RewardMapConv",
    "SAC",
    "SACConfig",
    "SharedAdam",
    "a3c_loss",
    "evaluate_policy",
    "nstep_returns",
    "policy_kwargs_from_env",
]
