"""Version-1 checkpoints (untyped ``extra["env"]`` / ``extra["inference"]`` blocks): upgraded to
specs in one place, on load."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from rlenhance.checkpoint.specs import (
    FORMAT_VERSION,
    SPEC_KEY,
    SPECS,
    CheckpointSpec,
    LowLightPolicySpec,
    RolloutPolicySpec,
    SupervisedSpec,
    _Problem,
)
from rlenhance.errors import CheckpointError

#: Version 1's metadata blocks: never written any more, upgraded on load.
_V1_BLOCKS = ("env", "inference")


# --- version 1 ------------------------------------------------------------------------------------------
#: Per version-1 block: (keys it always held, keys added later -> their value in files without them,
#: keys version 2 drops: never read by anything, or copies of kept ones).
_V1_LOWLIGHT = (("alpha_table", "damping", "action_type", "test_steps", "cond_fields", "cond_scale", "setting"),
                {"alpha_mode": "mean", "cond_offset": None, "observe_exposure_gap": False, "max_side": None,
                 "conditioned": False, "setting_ranges": None, "channel_coupling": 0.0},
                ("task", "env_id"))
_V1_ROLLOUT = (("task", "env_id", "env_kwargs", "steps", "block_actions"),
               {"predictor": None},
               ("greedy", "actions", "sigma", "gray", "noise_seed", "clip_output", "occlusion_seed"))
_V1_SUPERVISED = (("model", "task", "channels"),
                  {"prefill": "none"},
                  ("needs_mask", "composite"))


def _from_v1(block: Mapping[str, Any], layout: tuple, spec_class: type[CheckpointSpec]) -> dict[str, Any]:
    """The spec fields of a version-1 block: defaults for later keys (those of ``layout`` and the
    spec's own :attr:`~CheckpointSpec.added_later`), dropped keys left out."""
    required, later, dropped = layout
    missing = [k for k in required if k not in block]
    unknown = sorted(str(k) for k in block if k not in required and k not in later and k not in dropped)
    if missing or unknown:
        problems = [f"missing key(s) {missing}"] if missing else []
        if unknown:
            problems.append(f"unknown key(s) {unknown} (no rlenhance version wrote them)")
        raise _Problem("; ".join(problems))
    values = {**spec_class.added_later, **later, **{k: v for k, v in block.items() if k not in dropped}}
    return {f.name: values[f.name] for f in fields(spec_class)}


def _v1_argument_ranges(values: Mapping[str, Any], args: Any) -> dict[str, tuple[float, float]]:
    """Setting ranges of a version-1 policy without ``cond_offset``, from its recorded ``lol_train``
    arguments (``exposure_range``; each weight times ``weight_range``); ``{}`` without them."""
    try:
        if values["conditioned"] is not True or not isinstance(args, Mapping):
            return {}
        low, high = (float(v) for v in args["weight_range"])
        ranges = {"exposure_target": tuple(float(v) for v in args["exposure_range"])}
        for name in values["cond_fields"]:
            weight = float(values["setting"][name])
            if name != "exposure_target" and weight > 0 and high > low:
                ranges[name] = (weight * low, weight * high)
        return {name: bounds for name, bounds in ranges.items() if bounds[0] < bounds[1]}
    except (KeyError, TypeError, ValueError):
        return {}


def upgrade_v1_extra(extra: Mapping[str, Any] | None, *, source: str) -> dict[str, Any] | None:
    """The ``extra`` of a version-1 checkpoint as version 2 has it: the one reader of version 1's metadata.

    ``extra["inference"]`` (supervised_train) becomes a :class:`SupervisedSpec`;
    ``extra["env"]`` a :class:`LowLightPolicySpec` (lol_train: it holds ``alpha_table``) or a
    :class:`RolloutPolicySpec` (denoise_train / completion_train); both go to ``extra["spec"]``
    and the rest of ``extra`` is kept. Keys added to version 1 over time get the value files
    without them were read with (``alpha_mode`` "mean", ``cond_offset`` zeros,
    ``observe_exposure_gap`` False, ``max_side`` None, ``conditioned`` False, ``predictor``
    None, ``prefill`` "none"); keys that nothing read, or that copy kept ones, are dropped
    (``task`` / ``env_id`` of low-light blocks, ``greedy``, ``actions``, ``sigma``, ``gray``,
    ``noise_seed``, ``clip_output``, ``occlusion_seed``; ``needs_mask`` and ``composite``,
    which follow from ``model`` and ``task``).

    A ``lol_train --smooth-on-mean`` run (``extra["args"]["smooth_on_mean"]``) trained its env
    with ``w_smooth`` 0 (the weight went to the A3C loss): its setting gets ``w_smooth`` 0, the
    cond the policy saw, whatever the file recorded (files written before that fix recorded
    ``--w-smooth``).

    Raises:
        CheckpointError: one line naming ``source``: the block is not a dict, lacks a key every
            version-1 file has, holds a key no version wrote, a value the spec refuses, or
            ``extra`` holds both blocks or a ``spec``.
    """
    if extra is None:
        return None
    extra = dict(extra)
    blocks = [k for k in _V1_BLOCKS if k in extra]
    if not blocks:
        if SPEC_KEY in extra:
            raise CheckpointError(f"{source}: a version-1 checkpoint with extra['spec'] (version 1 had none); "
                                  "it was not written by rlenhance")
        return extra
    name = blocks[0]
    prefix = f"{source}: version-1 extra[{name!r}] cannot be upgraded to format version {FORMAT_VERSION}"
    if len(blocks) > 1 or SPEC_KEY in extra:
        raise CheckpointError(f"{prefix}: extra also holds {[k for k in (*blocks[1:], SPEC_KEY) if k in extra]} "
                              "(a checkpoint describes one model)")
    block = extra.pop(name)
    if not isinstance(block, Mapping):
        raise CheckpointError(f"{prefix}: it is a {type(block).__name__}, not a dict")
    try:
        if name == "inference":
            values = _from_v1(block, _V1_SUPERVISED, SupervisedSpec)
            spec: CheckpointSpec = SupervisedSpec(**values)
        elif "alpha_table" in block or block.get("task") == "lowlight":
            values = _from_v1(block, _V1_LOWLIGHT, LowLightPolicySpec)
            args = extra.get("args")
            if values["cond_offset"] is None:  # before the range encoding: cond = value / cond_scale
                scale = values["cond_scale"]
                values["cond_offset"] = [0.0] * len(scale) if isinstance(scale, (list, tuple)) else scale
                # the encoding says nothing of the ranges then: only the training arguments do
                values["setting_ranges"] = _v1_argument_ranges(values, args)
            if isinstance(args, Mapping) and args.get("smooth_on_mean") is True \
                    and isinstance(values["setting"], Mapping) and "w_smooth" in values["setting"]:
                values["setting"] = {**values["setting"], "w_smooth": 0.0}
            spec = LowLightPolicySpec(**values)
        else:
            spec = RolloutPolicySpec(**_from_v1(block, _V1_ROLLOUT, RolloutPolicySpec))
    except (_Problem, CheckpointError) as exc:
        raise CheckpointError(f"{prefix}: {exc}") from None
    extra[SPEC_KEY] = spec
    return extra


def _read_spec(extra: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A version-2 ``extra`` with its spec (if any) parsed into the spec object."""
    extra = dict(extra)
    stale = [k for k in _V1_BLOCKS if k in extra]
    if stale:
        raise CheckpointError(f"{source}: a version-{FORMAT_VERSION} checkpoint with version-1 metadata "
                              f"extra{stale}; it was not written by rlenhance")
    if SPEC_KEY in extra:
        data = extra[SPEC_KEY]
        kind = data.get("kind") if isinstance(data, Mapping) else None
        if kind not in SPECS:
            raise CheckpointError(f"{source}: extra['spec'] has kind {kind!r}; known kinds: {sorted(SPECS)}")
        extra[SPEC_KEY] = SPECS[kind].from_dict(data, source=f"{source}: extra['spec']")
    return extra


def _check_spec_kind(extra: Mapping[str, Any] | None, spec: type[CheckpointSpec], source: str) -> None:
    """Raise unless ``extra`` holds a spec of class ``spec`` (the message says what it holds instead)."""
    found = (extra or {}).get(SPEC_KEY)
    if isinstance(found, spec):
        return
    if found is None:
        holds = "holds no model metadata (no extra['spec'])"
    else:
        holds = f"is a {found.title} checkpoint (for {found.reader})"
    raise CheckpointError(f"{source} {holds}, so it is not a {spec.title} checkpoint (written by {spec.writer})")


