"""Policy specs for tests, written from flat values (the transition's fields beside the spec's own)."""

from __future__ import annotations

from typing import Any

from envs.checkpoints import rollout_policy_spec
from rlenhance.checkpoint import LowLightPolicySpec, RolloutPolicySpec
from rlenhance.transitions import LowLightTransition

COND_FIELDS = ("exposure_target", "w_exposure", "w_color", "w_spatial", "w_smooth")
#: The spec's own keys; every other key of :func:`lowlight_spec` is the transition's.
_SPEC_KEYS = ("alpha_mode", "setting", "max_side", "conditioned", "setting_ranges", "blur_sigma", "env_kwargs")


def lowlight_spec(*, test_steps: int, overshoot_weighted: bool = False, **values: Any) -> LowLightPolicySpec:
    """A low-light policy spec: ``test_steps`` are the transition's ``steps``, ``overshoot_weighted`` a
    cap weighted at the setting's ``w_exposure``; left out: 3 alpha channels, no coupling, damping or
    cap, all cond fields linear, ``alpha_mode`` "mean", no ``max_side``, not conditioned, no blur."""
    spec = {"alpha_mode": "mean", "max_side": None, "conditioned": False, "setting_ranges": {}, "blur_sigma": None,
            "env_kwargs": {}, **{k: values.pop(k) for k in _SPEC_KEYS if k in values}}
    fields = values.pop("cond_fields", COND_FIELDS)
    transition = {"alpha_channels": 3, "channel_coupling": 0.0, "damping": 0.0, "max_overshoot": None,
                  "observe_exposure_gap": False, "cond_offset": [0.0] * len(fields),
                  "cond_encodings": ["linear"] * len(fields), **values}
    reference = spec["setting"].get("w_exposure") if overshoot_weighted else None
    return LowLightPolicySpec(transition=LowLightTransition(**transition, cond_fields=fields, steps=test_steps,
                                                            overshoot_reference=reference), **spec)


def rollout_spec(task: str, env_kwargs: dict[str, Any], *, steps: int, block_actions: bool = False,
                 predictor: str | None = None) -> RolloutPolicySpec:
    """A denoising / completion policy spec as the trainers write it (:func:`envs.checkpoints.rollout_policy_spec`)."""
    return rollout_policy_spec(task, {**env_kwargs, "max_episode_steps": steps}, block_actions=block_actions,
                               predictor=predictor)


#: A ReLLIE-style LowLight-v1 (27 alphas on each RGB channel, one fixed setting with ReLLIE-scale weights,
#: the smoothness term in the reward, Zero-DCE's squared smoothness, no cap): the test bed of the env's
#: mechanics, whose defaults are the shipped policy's env.
RELLIE_LOWLIGHT = {
    "alpha_channels": 3, "alpha_table": tuple(round((a - 6) / 20, 2) for a in range(27)), "w_exposure": 10.0,
    "w_color": 5.0, "w_smooth": 20.0, "exposure_target": 0.6, "exposure_patch": 16, "exposure_mean": 0.0,
    "exposure_relative": False, "conditioned": False, "exposure_range": (0.4, 0.7), "weight_range": (0.5, 2.0),
    "weight_ranges": None, "observe_exposure_gap": False, "smooth_in_reward": True, "cond_encoding": "linear",
    "weight_draw": "joint", "max_overshoot": None, "overshoot_weighted": False, "smooth_power": 2}
