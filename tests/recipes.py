"""Untrained checkpoints of the RL recipes whose policies do not ship (their policy took the predictor's
output everywhere): the spec, transition, predictor and network a trainer of the recipe writes, with
random weights, so that the inference paths are tested without training or a shipped file."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

import envs
from envs.checkpoints import rollout_env_kwargs
from experiments import completion_train, config, denoise_train
from experiments.rl_common import make_policy
from rlenhance.checkpoint import RSEDenoiserSpec, save_checkpoint
from rlenhance.models.rse import RSEDenoiser

WEIGHTS = Path(__file__).resolve().parents[1] / "rlenhance" / "weights"
#: The recipes: name -> (trainer, preset).
RECIPES = {"a3c_denoise": (denoise_train, "over-ffdnet"), "sac_denoise": (denoise_train, "over-ffdnet-sac"),
           "a3c_completion": (completion_train, "over-unet")}


def recipe_config(name: str) -> Any:
    """The checked config of recipe ``name``, its predictor the shipped file (an absolute path)."""
    trainer, preset = RECIPES[name]
    cfg = trainer.PRESETS[preset]()
    return trainer.check(config.replace_path(cfg, {"task.predictor": str(WEIGHTS / Path(cfg.task.predictor).name)}))


def recipe_spec(name: str, predictor_dir: Path = WEIGHTS) -> Any:
    """The :class:`~rlenhance.checkpoint.RolloutPolicySpec` recipe ``name``'s trainer writes, recording its
    predictor in ``predictor_dir`` (a trainer's folder elsewhere: found by name in the shipped weights)."""
    trainer, _ = RECIPES[name]
    spec = trainer.inference_spec(recipe_config(name))
    return dataclasses.replace(spec, predictor=str(predictor_dir / Path(spec.predictor).name))


def recipe_policy(path: Path, name: str, *, predictor_dir: Path = WEIGHTS, seed: int = 0) -> Path:
    """A random-weight policy of recipe ``name`` saved at ``path`` as its trainer saves one (its spec:
    :func:`recipe_spec`)."""
    cfg = recipe_config(name)
    spec = recipe_spec(name, predictor_dir)
    # the spaces only: the policy reads the predictor's output as one more plane, never steps here
    venv = envs.make_vec(spec.env_id, num_envs=1, **rollout_env_kwargs(spec), predictor=lambda x, *rest: x)
    torch.manual_seed(seed)
    policy = make_policy(cfg, venv)
    with torch.no_grad():  # a non-trivial policy: the near-uniform init would pick one action everywhere
        policy.policy_head.weight.normal_(0, 2.0)
    return save_checkpoint(path, model=policy, arch=policy.arch(), extra={"spec": spec, "algorithm": cfg.agent})


def rse_with_predictor(path: Path, channels: int = 3, *, seed: int = 0) -> Path:
    """A tiny random RSE-RL denoiser over the shipped FFDNet (the RSE-RL recipe's candidate), saved as
    experiments.rse_train saves one."""
    torch.manual_seed(seed)
    model = RSEDenoiser(channels=channels, patch=8, stride=4, latent_dim=4, hidden=8, bank_size=16, clusters=2,
                        neighbours=2, width=4, max_rounds=1, predicted=True).eval()
    for stage in model.rounds:
        stage.bank.fit(torch.randn(stage.bank.size, stage.vae.latent_dim))
    spec = RSEDenoiserSpec(sigma=25.0, channels=channels, rounds=1, predictor=str(WEIGHTS / "ffdnet_denoise.pt"))
    return save_checkpoint(path, model=model, arch=model.arch(), extra={"spec": spec})
