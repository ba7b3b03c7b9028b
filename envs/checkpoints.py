"""The env of a policy checkpoint: :func:`env_kwargs_for_checkpoint`, :func:`make_for_checkpoint`; and a
registered id's keyword defaults, :func:`env_defaults`.

A policy checkpoint's spec holds its transition (:mod:`rlenhance.transitions`) and the rest of its training
env's keyword arguments; these functions turn them back into the registered env stepping that transition, so a
rollout of that env is what inference computes. A low-light policy's transition also holds what inference
alone applies: the overshoot cap and the test-time number of steps.

>>> import envs
>>> env_id, kwargs = envs.env_kwargs_for_checkpoint("runs/completion_train/checkpoints/best.pt")  # doctest: +SKIP
>>> venv = envs.make_for_checkpoint("rlenhance/weights/lowlight_a3c.pt", num_envs=4)       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import gymnasium as gym
import torch

from rlenhance.checkpoint import SPEC_KEY, LowLightPolicySpec, RolloutPolicySpec, load_checkpoint
from rlenhance.errors import CheckpointError
from rlenhance.transitions import COND_FIELDS, TRANSITIONS

__all__ = ["LOWLIGHT_ENV_ID", "ROLLOUT_ENV_IDS", "env_defaults", "env_kwargs_for_checkpoint", "lowlight_env_kwargs",
           "lowlight_policy_spec", "make_for_checkpoint", "rollout_env_kwargs", "rollout_policy_spec"]

#: The env of every low-light policy.
LOWLIGHT_ENV_ID = "rlenhance/LowLight-v1"
#: The env of each task of :class:`~rlenhance.checkpoint.RolloutPolicySpec`.
ROLLOUT_ENV_IDS = MappingProxyType({"denoise": "rlenhance/Denoise-v0", "completion": "rlenhance/Completion-v0"})
#: The env keyword arguments of each rollout task's transition beyond the episode length (``max_episode_steps``).
_TRANSITION_KWARGS = MappingProxyType({"denoise": ("clip", "level_scales"), "completion": ("smooth_iters",)})


def env_defaults(env_id: str) -> dict[str, Any]:
    """The keyword defaults of a registered env: its task class's, under its registration's kwargs and
    ``max_episode_steps``."""
    spec = gym.spec(env_id)
    module, _, name = str(spec.vector_entry_point).partition(":")
    task_class = getattr(importlib.import_module(module), name).task_class
    defaults: dict[str, Any] = {}
    for klass in reversed(task_class.__mro__):
        init = klass.__dict__.get("__init__")
        if init is not None:
            defaults.update({p.name: p.default for p in inspect.signature(init).parameters.values()
                             if p.default is not inspect.Parameter.empty})
    defaults.update(spec.kwargs or {})
    if spec.max_episode_steps is not None:
        defaults["max_episode_steps"] = spec.max_episode_steps
    return defaults


def lowlight_env_kwargs(spec: LowLightPolicySpec) -> dict[str, Any]:
    """The ``rlenhance/LowLight-v1`` keyword arguments of a low-light policy's spec: its transition, its setting
    and ranges, and its ``env_kwargs``."""
    t, setting, ranges = spec.transition, spec.setting, spec.setting_ranges
    target = setting["exposure_target"]
    recorded = dict(spec.env_kwargs)
    ratio = recorded.pop("w_color_ratio", 0.0)  # the colour-ratio weight of files written before reward terms
    if ratio:
        recorded["terms"] = {**recorded.get("terms", {}), "color_ratio": ratio}
    return {
        **recorded, "curve": t.curve,
        "action_type": t.action_type, "alpha_table": t.alpha_table, "alpha_channels": t.alpha_channels,
        "damping": t.damping, "channel_coupling": t.channel_coupling, "max_overshoot": t.max_overshoot,
        "overshoot_weighted": t.overshoot_reference is not None, "cond_scale": t.cond_scale,
        "cond_offset": t.cond_offset, "cond_encoding": "log" if "log" in t.cond_encodings else "linear",
        "observe_exposure_gap": t.observe_exposure_gap, "max_episode_steps": t.steps,
        "conditioned": spec.conditioned, "exposure_target": target,
        **{name: setting[name] for name in COND_FIELDS[1:]},
        "exposure_range": ranges.get("exposure_target", (target, target)), "weight_range": (1.0, 1.0),
        "weight_ranges": {name: tuple(bounds) for name, bounds in ranges.items() if name != "exposure_target"},
    }


#: Keys never in a low-light spec's ``env_kwargs``: those of its transition and setting, and the data's.
_LOWLIGHT_NOT_RECORDED = (
    "curve", "action_type", "alpha_table", "alpha_channels", "damping", "channel_coupling", "max_overshoot",
    "overshoot_weighted", "cond_scale", "cond_offset", "cond_encoding", "observe_exposure_gap", "max_episode_steps",
    "conditioned", "exposure_target", *COND_FIELDS[1:], "exposure_range", "weight_range", "weight_ranges",
    "data", "split", "split_seed", "device")


def lowlight_policy_spec(task: Any, env_kwargs: Mapping[str, Any], *, steps: int, alpha_mode: str,
                         max_side: int | None, max_overshoot: float | None, overshoot_weighted: bool
                         ) -> LowLightPolicySpec:
    """The spec of a low-light policy trained in ``task`` (a ``LowLightTask`` built with ``env_kwargs``), with
    the inference ``steps`` and cap: the inverse of :func:`lowlight_env_kwargs`."""
    weighted = overshoot_weighted and max_overshoot is not None
    transition = dataclasses.replace(task.transition, steps=steps, max_overshoot=max_overshoot,
                                     overshoot_reference=float(task.weights["w_exposure"]) if weighted else None)
    return LowLightPolicySpec(
        transition=transition, alpha_mode=alpha_mode,
        setting={"exposure_target": task.exposure_target, **{k: float(v) for k, v in task.weights.items()}},
        max_side=max_side, conditioned=task.conditioned, setting_ranges=task.setting_ranges, blur_sigma=None,
        env_kwargs={k: v for k, v in env_kwargs.items() if k not in _LOWLIGHT_NOT_RECORDED})


def rollout_env_kwargs(spec: RolloutPolicySpec) -> dict[str, Any]:
    """The keyword arguments of a denoising / completion policy's env (``spec.env_id``), without its
    ``predictor`` (a callable: :mod:`rlenhance.predictors` loads the one the spec names)."""
    t = spec.transition
    own = ({"clip": t.clip, **({"level_scales": list(t.level_scales)} if t.level_scales else {})}
           if spec.task == "denoise" else {"smooth_iters": t.smooth_iters})
    return {**spec.env_kwargs, **own, "max_episode_steps": t.steps}


def rollout_policy_spec(task: str, env_kwargs: Mapping[str, Any], *, block_actions: bool,
                        predictor: str | None) -> RolloutPolicySpec:
    """The spec of a denoising / completion policy trained in its task's env with ``env_kwargs`` (JSON-able,
    without ``predictor``): the inverse of :func:`rollout_env_kwargs`.

    Raises:
        CheckpointError: an unknown ``task`` or values the spec refuses.
    """
    if task not in ROLLOUT_ENV_IDS:
        raise CheckpointError(f"task: expected one of {tuple(ROLLOUT_ENV_IDS)}, got {task!r}")
    env_id = ROLLOUT_ENV_IDS[task]
    registered = gym.spec(env_id)
    defaults = env_defaults(env_id)
    kwargs = dict(env_kwargs)
    own = {name: kwargs.pop(name, defaults[name]) for name in _TRANSITION_KWARGS[task]}
    steps = kwargs.pop("max_episode_steps", registered.max_episode_steps)
    transition = TRANSITIONS[task](predict=predictor is not None, steps=steps, **own)
    return RolloutPolicySpec(task=task, env_id=env_id, env_kwargs=kwargs, transition=transition,
                             block_actions=block_actions, predictor=predictor)


def env_kwargs_for_checkpoint(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """``(env_id, kwargs)`` of the env that steps a policy checkpoint's transition, for ``envs.make_vec(env_id,
    **kwargs)`` (a policy trained with a predictor also needs ``predictor=``).

    Raises:
        CheckpointError: not a policy checkpoint (the message says what it is).
    """
    ckpt = load_checkpoint(path, map_location="cpu")
    spec = (ckpt["extra"] or {}).get(SPEC_KEY)
    if isinstance(spec, LowLightPolicySpec):
        return LOWLIGHT_ENV_ID, lowlight_env_kwargs(spec)
    if isinstance(spec, RolloutPolicySpec):
        return spec.env_id, rollout_env_kwargs(spec)
    what = "no spec" if spec is None else f"a {spec.title} spec"
    raise CheckpointError(f"checkpoint {path}: holds {what}; a policy checkpoint (experiments.lol_train, "
                          "denoise_train or completion_train) has the env it was trained in")


def make_for_checkpoint(path: str | os.PathLike[str], num_envs: int = 1, *, device: str | torch.device = "cpu",
                        **overrides: Any):
    """The vector env of :func:`env_kwargs_for_checkpoint` (``overrides`` replace its kwargs), checked to step
    exactly the checkpoint's transition; a policy's predictor is the one its spec names unless given.

    Raises:
        CheckpointError: not a policy checkpoint, or one whose transition the env does not rebuild; its
            predictor found nowhere.
    """
    import envs

    env_id, kwargs = env_kwargs_for_checkpoint(path)
    spec = load_checkpoint(path, map_location="cpu")["extra"][SPEC_KEY]
    if isinstance(spec, RolloutPolicySpec) and spec.predictor is not None and "predictor" not in overrides:
        kwargs["predictor"] = _predictor(spec, path, device)
    venv = envs.make_vec(env_id, num_envs=num_envs, device=device, **{**kwargs, **overrides})
    if "max_episode_steps" not in overrides and venv.task.transition != spec.transition:
        raise CheckpointError(f"checkpoint {path}: its env steps {venv.task.transition}, not the checkpoint's "
                              f"transition {spec.transition}")
    return venv


def _predictor(spec: RolloutPolicySpec, path: str | os.PathLike[str], device: str | torch.device) -> Any:
    """The predictor a policy's spec names, as its env takes it."""
    from rlenhance.denoisers import DenoisePredictor, find_predictor
    from rlenhance.restore import SupervisedRestorer

    if spec.task == "denoise":
        return DenoisePredictor.for_policy(spec, checkpoint=path, device=device)
    return SupervisedRestorer(find_predictor(spec.predictor, path), device=device, task="completion").restore_tensor
