"""Checkpoints: atomic saving and validated loading of model weights and their typed metadata.

A checkpoint file (format version 2) is a ``torch.save`` of the dict::

    {
        "format": "rlenhance-checkpoint",
        "version": 2,
        "arch": {"class": "PixelActorCritic", "kwargs": {...}},   # JSON-able
        "state_dict": {name: tensor, ...},                        # CPU tensors
        "extra": {"spec": {"kind": ..., ...}, ...} or None,       # the spec + the trainer's own data
    }

It is written atomically (temporary file in the same folder, ``fsync``, ``os.replace``), so a
crash mid-save leaves the previous checkpoint intact, and it is read with
``torch.load(weights_only=True)`` (no arbitrary code from the file is run). Loading refuses
files that are missing, unreadable, of another format, hold NaN/inf weights, or describe
another architecture than the caller expects, with a :class:`CheckpointError` naming the file.

What a model needs at inference beyond its weights is one typed, frozen **spec** per kind of
checkpoint, written and read only here:

===========================  ================================  ==========================================
spec (``kind``)              written by                        read by
===========================  ================================  ==========================================
:class:`LowLightPolicySpec`  ``experiments.lol_train``         :class:`rlenhance.Enhancer`
(``lowlight-policy``)
:class:`RolloutPolicySpec`   ``experiments.denoise_train``,    :func:`agents.rollout.load_rollout_policy`
(``rollout-policy``)         ``experiments.completion_train``
:class:`SupervisedSpec`      ``experiments.supervised_train``  :class:`rlenhance.restore.SupervisedRestorer`,
(``supervised``)                                               :func:`agents.rollout.load_predictor`
:class:`RSEDenoiserSpec`     ``experiments.rse_train``         :func:`rlenhance.models.rse.load_rse`
(``rse-denoiser``)
===========================  ================================  ==========================================

A writer puts the spec object in ``extra["spec"]`` (:func:`save_checkpoint` stores its
:meth:`~CheckpointSpec.to_dict`); :func:`load_checkpoint` gives it back as the spec object,
validated (a missing, unknown or ill-typed key is refused, naming the file and the key), and
with ``spec=SpecClass`` refuses a checkpoint of another kind. The rest of ``extra`` (step
counters, arguments, scores, optimiser state) belongs to the trainer that wrote it.

Version 1 kept the metadata as untyped dicts, ``extra["env"]`` (RL policies) or
``extra["inference"]`` (supervised models); such files, the shipped weights among them, are
upgraded on load by :func:`upgrade_v1_extra`, the one place that reads them. A later version
is refused.

The helpers :func:`read_torch_file`, :func:`check_finite` and :func:`load_state_dict_strict`
are shared with loaders of foreign weights (see :mod:`rlenhance.models.peers`).

Example:
    >>> spec = SupervisedSpec(model="mrpnet", task="denoise", channels=1, prefill="none")
    >>> SupervisedSpec.from_dict(spec.to_dict()) == spec
    True
    >>> spec.needs_mask, spec.composite
    (False, False)
"""

from __future__ import annotations

import json
import math
import os
import pickle
import types
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

import torch
from torch import nn

from rlenhance.atomic import atomic_path
from rlenhance.errors import CheckpointError
from rlenhance.ops.fill import PREFILLS

__all__ = [
    "ACTION_TYPES",
    "ALPHA_MODES",
    "FORMAT_TAG",
    "FORMAT_VERSION",
    "ROLLOUT_TASKS",
    "SPEC_KEY",
    "SPECS",
    "SUPERVISED_MODELS",
    "SUPERVISED_TASKS",
    "CheckpointSpec",
    "LowLightPolicySpec",
    "RSEDenoiserSpec",
    "RolloutPolicySpec",
    "SupervisedSpec",
    "build_model",
    "check_finite",
    "encoded_setting_ranges",
    "load_checkpoint",
    "load_state_dict_strict",
    "read_torch_file",
    "save_checkpoint",
    "upgrade_v1_extra",
]

FORMAT_TAG = "rlenhance-checkpoint"
#: The version written. 2: typed metadata in ``extra["spec"]`` (1: untyped ``extra["env"]`` /
#: ``extra["inference"]``, still read through :func:`upgrade_v1_extra`).
FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, FORMAT_VERSION)
_REQUIRED_KEYS = ("format", "version", "arch", "state_dict", "extra")
#: The key of ``extra`` that holds the checkpoint's spec (the one key of ``extra`` this module owns).
SPEC_KEY = "spec"
#: Version 1's metadata blocks: never written any more, upgraded on load.
_V1_BLOCKS = ("env", "inference")

#: Per-pixel actions of a low-light policy.
ACTION_TYPES = ("discrete", "continuous")
#: How a discrete low-light policy's alpha is chosen at test time (see rlenhance.enhance.greedy_rollout).
ALPHA_MODES = ("mean", "argmax")
#: Tasks of RL policies restored by rollouts through their env.
ROLLOUT_TASKS = ("denoise", "completion")
#: Tasks a supervised checkpoint can be trained for (``experiments.supervised_train --task``).
SUPERVISED_TASKS = ("lowlight", "denoise", "completion")
#: The ``model`` names of a supervised checkpoint and the network classes each may build.
SUPERVISED_MODELS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "mrpnet": ("MRPNet", "CombinedModel", "Generator"),
    "pixelrnn": ("PixelRNN",),
    "gated-pixelrnn": ("GatedPixelRNN",),
})
#: Smallest working resolution (longer side) of a low-light policy.
MIN_MAX_SIDE = 16


def _describe_arch(arch: Any) -> str:
    try:
        return json.dumps(arch, sort_keys=True)
    except (TypeError, ValueError):
        return repr(arch)


def _check_arch(arch: Any, source: str) -> None:
    """Raise unless ``arch`` is ``{"class": str, "kwargs": dict, ...}`` and JSON-able."""
    if not isinstance(arch, Mapping) or not isinstance(arch.get("class"), str) \
            or not isinstance(arch.get("kwargs"), Mapping):
        raise CheckpointError(f"{source}: arch must be a dict {{'class': str, 'kwargs': dict}} naming the model "
                              f"class and its constructor keyword arguments; got {arch!r}")
    try:
        json.dumps(arch)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: arch must be JSON-serialisable (str/int/float/bool/None/list/dict "
                              f"values); got {arch!r} ({exc})") from exc


def check_finite(state_dict: Mapping[str, Any], *, source: str) -> None:
    """Raise if any floating-point (or complex) tensor of ``state_dict`` holds NaN or +-inf.

    Args:
        state_dict: Mapping of parameter names to tensors (non-tensor values are ignored).
        source: What to call the weights in the message (usually the file path).

    Raises:
        CheckpointError: names ``source``, the first offending tensor and how many of its
            values are not finite.
    """
    for name, value in state_dict.items():
        if not isinstance(value, torch.Tensor) or not (value.is_floating_point() or value.is_complex()):
            continue
        finite = torch.isfinite(value)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise CheckpointError(f"{source}: tensor {name!r} (shape {tuple(value.shape)}) holds {bad} non-finite "
                                  f"(NaN/inf) value(s) of {value.numel()}; refusing to load broken weights")


def read_torch_file(path: str | os.PathLike, *, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with failures turned into :class:`CheckpointError`.

    Args:
        path: File written by ``torch.save``.
        map_location: Passed to ``torch.load`` (default ``"cpu"``: files saved from CUDA load
            on a CPU-only machine).

    Returns:
        The loaded object (only tensors, containers and primitives can be in it).

    Raises:
        CheckpointError: the file is missing, not a torch file, truncated/corrupt, or holds
            objects that ``weights_only=True`` refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: file not found" + (" (it is a folder)" if path.is_dir() else ""))
    with open(path, "rb") as handle:
        head = handle.read(len(_ZIP_MAGIC))
    if not (head.startswith(_ZIP_MAGIC) or head[:1] == _PICKLE_PROTO):
        raise CheckpointError(f"checkpoint {path}: cannot be read as a torch weights file: {_describe_head(head)}; "
                              "expected a .pt file written by rlenhance's trainers")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refused an object: one line, no advice to turn it off
        raise CheckpointError(f"checkpoint {path}: cannot be read as a torch weights file: it holds objects other "
                              "than tensors, containers and primitives (rlenhance never writes them and refuses to "
                              "unpickle them, which could run code)") from exc
    except Exception as exc:  # torch raises RuntimeError, EOFError, OSError, KeyError, ... for bad files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(f"checkpoint {path}: cannot be read as a torch weights file (truncated or corrupt): "
                              f"{type(exc).__name__}: {first_line}") from exc


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's zip format
_PICKLE_PROTO = b"\x80"  # torch.save's legacy format starts with a pickle protocol opcode
_FILE_SIGNATURES = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8", "a JPEG image"), (b"BM", "a BMP image"),
                    (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"\x93NUMPY", "a .npy array"),
                    (b"\x89HDF", "an HDF5 file"), (b"%PDF", "a PDF document"))


def _describe_head(head: bytes) -> str:
    """What a file that is not a torch file looks like, from its first bytes."""
    if not head:
        return "the file is empty"
    for signature, kind in _FILE_SIGNATURES:
        if head.startswith(signature):
            return f"it is {kind}"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return f"it starts with the bytes {head.hex(' ')}"
    return "it is a text file"


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, Any], *, source: str) -> None:
    """``model.load_state_dict(state_dict, strict=True)`` with errors as :class:`CheckpointError`.

    Args:
        model: Module to fill.
        state_dict: Weights; keys and shapes must match ``model`` exactly.
        source: What to call the weights in the message (usually the file path).

    Raises:
        CheckpointError: missing or unexpected keys, or shape mismatches (torch's list of them
            is included), naming ``source`` and the model class.
    """
    try:
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{source}: weights do not fit {type(model).__name__}: {exc}") from exc


# --- typed metadata ------------------------------------------------------------------------------------
class _Problem(Exception):
    """A field value that does not fit its spec (turned into a CheckpointError naming the spec)."""


def _type_name(hint: Any) -> str:
    """How messages name a field type: "an int", "a str or None", "a list of float", "a dict of str -> float"."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is tuple:
        return f"a list of {args[0].__name__}"
    if origin is Mapping:
        return f"a dict of str -> {'JSON-able values' if args[1] is Any else args[1].__name__}"
    return "None" if hint is type(None) else f"a{'n' if hint is int else ''} {hint.__name__}"


def _checked(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against the field type ``hint`` and normalised (an int float field gets a
    float, a list a tuple, a dict a read-only copy); raises :class:`_Problem` naming ``key``."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):  # X | None
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        try:
            return _checked(value, inner, key)
        except _Problem:
            pass
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise _Problem(f"key {key!r} must be finite, got {value!r}")
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:  # tuple[X, ...]
        if isinstance(value, (list, tuple)):
            return tuple(_checked(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    elif origin is Mapping:  # Mapping[str, X]
        if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
            if args[1] is Any:
                try:
                    return MappingProxyType(json.loads(json.dumps(dict(value))))
                except (TypeError, ValueError):
                    raise _Problem(f"key {key!r} must hold JSON-able values, got {value!r}") from None
            return MappingProxyType({k: _checked(v, args[1], f"{key}[{k!r}]") for k, v in value.items()})
    else:  # pragma: no cover - a field type this module does not handle
        raise TypeError(f"spec field {key!r}: unsupported type {hint!r}")
    raise _Problem(f"key {key!r} must be {_type_name(hint)}, got {type(value).__name__} {value!r}")


def _plain(value: Any) -> Any:
    """A field value as plain JSON-able data (tuples -> lists, read-only dicts -> dicts)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_Spec = TypeVar("_Spec", bound="CheckpointSpec")


@dataclass(frozen=True)
class CheckpointSpec:
    """Base of the typed metadata specs: one frozen dataclass per kind of checkpoint.

    A spec validates itself when built (types, then the kind's own rules), so a spec object is
    always valid: a bad value raises :class:`CheckpointError` naming the spec class and the key.
    :meth:`to_dict` is what :func:`save_checkpoint` writes, :meth:`from_dict` what
    :func:`load_checkpoint` reads back (every key required but those of :attr:`added_later`, none unknown).
    """

    #: The ``kind`` tag stored with the fields.
    kind: ClassVar[str] = ""
    #: How messages name such a checkpoint, what writes it and what reads it.
    title: ClassVar[str] = ""
    writer: ClassVar[str] = ""
    reader: ClassVar[str] = ""
    #: Fields added after format version 2 was first written -> the value :meth:`from_dict` gives
    #: files that predate them (the behaviour those files were read with).
    added_later: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        try:
            for field in fields(self):
                object.__setattr__(self, field.name, _checked(getattr(self, field.name), hints[field.name], field.name))
        except _Problem as exc:
            raise CheckpointError(f"{type(self).__name__}: {exc}") from None
        problems = self._problems()
        if problems:
            raise CheckpointError(f"{type(self).__name__}: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        """What breaks the kind's own rules (values are already of the right types)."""
        return []

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": ..., <field>: <value>, ...}``, JSON-able (what :func:`save_checkpoint` stores)."""
        return {"kind": self.kind, **{f.name: _plain(getattr(self, f.name)) for f in fields(self)}}

    @classmethod
    def from_dict(cls: type[_Spec], data: Any, *, source: str = "spec") -> _Spec:
        """The spec of ``data`` (a :meth:`to_dict`), validated.

        Raises:
            CheckpointError: (message starts with ``source``) not a dict, another ``kind``, a
                missing or unknown key, or a value of the wrong type or out of range (the key is named).
        """
        names = [f.name for f in fields(cls)]
        if not isinstance(data, Mapping):
            raise CheckpointError(f"{source}: a {cls.__name__} must be a dict, got {type(data).__name__}")
        if data.get("kind") != cls.kind:
            got = f"kind {data['kind']!r}" if "kind" in data else "no key 'kind'"
            raise CheckpointError(f"{source}: a {cls.__name__} has kind {cls.kind!r}, got {got}")
        data = {**cls.added_later, **data}
        unknown = sorted(str(k) for k in data if k != "kind" and k not in names)
        missing = [k for k in names if k not in data]
        if unknown or missing:
            what = "; ".join(([f"unknown key(s) {unknown}"] if unknown else [])
                             + ([f"missing key(s) {missing}"] if missing else []))
            raise CheckpointError(f"{source}: {cls.__name__}: {what} (its keys: kind, {', '.join(names)})")
        try:
            return cls(**{k: data[k] for k in names})
        except CheckpointError as exc:
            raise CheckpointError(f"{source}: {exc}") from None


def _in_range(value: float, bounds: tuple[float, ...]) -> bool:
    """``low <= value <= high``, forgiving float32 round-off at the ends."""
    slack = 1e-6 * max(1.0, abs(bounds[0]), abs(bounds[1]))
    return bounds[0] - slack <= value <= bounds[1] + slack


def encoded_setting_ranges(cond_fields: Any, cond_scale: Any, cond_offset: Any, setting: Any,
                           conditioned: Any) -> dict[str, tuple[float, float]]:
    """The setting ranges a conditioning encoding implies, for files that did not record them.

    ``lol_train`` encodes each conditioned value as ``(value - offset) / scale`` with its sampling
    range mapped onto [-1, 1], so the range is ``offset -+ scale``; a value that was never varied
    has the neutral encoding ``offset = setting value, scale = 1`` and is left out. Not
    conditioned: ``{}``. Values that are not a well-formed encoding give ``{}`` (the spec's own
    checks then name what is wrong). Ends are rounded to 6 significant digits (float32 storage).
    """
    try:
        if conditioned is not True:
            return {}
        ranges = {}
        for name, scale, offset in zip(cond_fields, cond_scale, cond_offset, strict=True):
            scale, offset, value = float(scale), float(offset), float(setting[name])
            if math.isclose(scale, 1.0) and math.isclose(offset, value, rel_tol=1e-6, abs_tol=1e-9):
                continue
            low, high = float(f"{offset - scale:.6g}"), float(f"{offset + scale:.6g}")
            valid = 0.0 < low < high < 1.0 if name == "exposure_target" else 0.0 <= low < high
            if valid and _in_range(value, (low, high)):  # else not a range encoding (e.g. cond = value / scale)
                ranges[str(name)] = (low, high)
        return ranges
    except (TypeError, ValueError, KeyError):
        return {}


@dataclass(frozen=True)
class LowLightPolicySpec(CheckpointSpec):
    """What :class:`rlenhance.Enhancer` needs to run a low-light policy of ``experiments.lol_train``.

    Attributes:
        alpha_table: the alpha of each discrete action (the env's table).
        damping: ReLLIE's damping ``d`` of each curve step, in [0, 1).
        action_type: ``"discrete"`` (the network has ``n_actions`` = ``len(alpha_table)``) or
            ``"continuous"`` (alpha in [-1, 1]; ``alpha_table`` is not used).
        test_steps: curve steps at inference (the Enhancer's default ``steps``), >= 1.
        alpha_mode: the test-time alpha of a discrete policy that training validated with,
            ``"mean"`` or ``"argmax"`` (the Enhancer's default ``alpha_mode``).
        cond_fields: the setting names, in the order of the conditioning vector.
        cond_scale: the env's encoding ``cond = (value - cond_offset) / cond_scale``, one
            non-zero value per field.
        cond_offset: as above, one per field.
        setting: the env's own setting in training (``exposure_target`` and the reward weights,
            e.g. ``w_smooth`` 0 with ``--smooth-on-mean``): the cond the Enhancer feeds by default.
            Holds every name of ``cond_fields``.
        observe_exposure_gap: the policy reads the exposure-gap plane (needs ``"exposure_target"``
            among ``cond_fields``, from which the gap's target is decoded).
        max_side: the working resolution (longer side) trained at (``lol_train --policy-side``),
            >= 16; None: not fixed (the Enhancer uses its default).
        conditioned: trained over random settings (``setting_ranges``); False: trained at
            ``setting`` only.
        setting_ranges: ``{name: (low, high)}``: the settings (``cond_fields`` names) the policy
            was trained to follow and the range each was drawn from; any other setting was fixed
            at its ``setting`` value. Empty when not ``conditioned``. Files written before the
            field get the ranges their encoding implies (:func:`encoded_setting_ranges`).
        channel_coupling: ReLLIE's coupling ``c`` of the red and green alphas to the blue one
            (``c alpha_b + (1 - c) alpha_own``), in [0, 1]; 0: independent channels.
    """

    kind: ClassVar[str] = "lowlight-policy"
    title: ClassVar[str] = "low-light policy"
    writer: ClassVar[str] = "experiments.lol_train"
    reader: ClassVar[str] = "rlenhance.Enhancer"
    added_later: ClassVar[Mapping[str, Any]] = MappingProxyType({"setting_ranges": None, "channel_coupling": 0.0})

    alpha_table: tuple[float, ...]
    damping: float
    action_type: str
    test_steps: int
    alpha_mode: str
    cond_fields: tuple[str, ...]
    cond_scale: tuple[float, ...]
    cond_offset: tuple[float, ...]
    setting: Mapping[str, float]
    observe_exposure_gap: bool
    max_side: int | None
    conditioned: bool
    setting_ranges: Mapping[str, tuple[float, ...]] = None  # type: ignore[assignment]  # None: derived
    channel_coupling: float = 0.0

    def __post_init__(self) -> None:
        if self.setting_ranges is None:  # a file that predates the field: the ranges of its encoding
            object.__setattr__(self, "setting_ranges", encoded_setting_ranges(
                self.cond_fields, self.cond_scale, self.cond_offset, self.setting, self.conditioned))
        super().__post_init__()

    def _problems(self) -> list[str]:
        problems = []
        for name, bounds in self.setting_ranges.items():
            if name not in self.cond_fields:
                problems.append(f"setting_ranges names {name!r}, not one of cond_fields {list(self.cond_fields)}")
            elif len(bounds) != 2 or not bounds[0] < bounds[1]:
                problems.append(f"setting_ranges[{name!r}] {list(bounds)} (accepted: [low, high] with low < high)")
            elif name == "exposure_target" and not 0.0 < bounds[0] < bounds[1] < 1.0:
                problems.append(f"setting_ranges['exposure_target'] {list(bounds)} (accepted: within (0, 1))")
            elif name != "exposure_target" and bounds[0] < 0.0:
                problems.append(f"setting_ranges[{name!r}] {list(bounds)} (a reward weight is >= 0)")
            elif name in self.setting and not _in_range(self.setting[name], bounds):
                problems.append(f"setting[{name!r}] {self.setting[name]!r} lies outside setting_ranges[{name!r}] "
                                f"{list(bounds)}")
        if self.setting_ranges and not self.conditioned:
            problems.append("setting_ranges must be empty when not conditioned")
        if not 0.0 <= self.channel_coupling <= 1.0:
            problems.append(f"channel_coupling {self.channel_coupling!r} (accepted: 0 <= channel_coupling <= 1)")
        if self.action_type not in ACTION_TYPES:
            problems.append(f"action_type {self.action_type!r} (accepted: {ACTION_TYPES})")
        if self.action_type == "discrete" and not self.alpha_table:
            problems.append("alpha_table is empty for discrete actions")
        if not 0.0 <= self.damping < 1.0:
            problems.append(f"damping {self.damping!r} (accepted: 0 <= damping < 1)")
        if self.test_steps < 1:
            problems.append(f"test_steps {self.test_steps!r} (accepted: >= 1)")
        if self.alpha_mode not in ALPHA_MODES:
            problems.append(f"alpha_mode {self.alpha_mode!r} (accepted: {ALPHA_MODES})")
        if len(set(self.cond_fields)) != len(self.cond_fields):
            problems.append(f"cond_fields {list(self.cond_fields)} repeat a name")
        if not len(self.cond_scale) == len(self.cond_offset) == len(self.cond_fields):
            problems.append(f"cond_scale ({len(self.cond_scale)} values) and cond_offset ({len(self.cond_offset)}) "
                            f"must have one value per cond_fields name ({len(self.cond_fields)})")
        if 0.0 in self.cond_scale:
            problems.append(f"cond_scale {list(self.cond_scale)} holds 0")
        missing = [name for name in self.cond_fields if name not in self.setting]
        if missing:
            problems.append(f"setting lacks the cond_fields {missing}")
        if self.observe_exposure_gap and "exposure_target" not in self.cond_fields:
            problems.append("observe_exposure_gap needs 'exposure_target' among cond_fields")
        if self.max_side is not None and self.max_side < MIN_MAX_SIDE:
            problems.append(f"max_side {self.max_side!r} (accepted: None or >= {MIN_MAX_SIDE})")
        return problems


@dataclass(frozen=True)
class RolloutPolicySpec(CheckpointSpec):
    """What :func:`agents.rollout.load_rollout_policy` needs to restore images with a denoising
    or completion policy (``experiments.denoise_train`` / ``experiments.completion_train``).

    Attributes:
        task: ``"denoise"`` or ``"completion"``.
        env_id: the registered env whose transition the policy was trained in (e.g.
            ``"rlenhance/Denoise-v0"``).
        env_kwargs: the env's keyword arguments in training (JSON-able), without ``predictor``.
        steps: steps per rollout, >= 1.
        block_actions: actions chosen per ``downscale`` block, as A3C trained them.
        predictor: completion only: the path of the supervised completion checkpoint whose
            prediction is the policy's "predict" action; None: trained without one.
    """

    kind: ClassVar[str] = "rollout-policy"
    title: ClassVar[str] = "denoising / completion policy"
    writer: ClassVar[str] = "experiments.denoise_train or experiments.completion_train"
    reader: ClassVar[str] = "agents.rollout.load_rollout_policy"

    task: str
    env_id: str
    env_kwargs: Mapping[str, Any]
    steps: int
    block_actions: bool
    predictor: str | None

    def _problems(self) -> list[str]:
        problems = []
        if self.task not in ROLLOUT_TASKS:
            problems.append(f"task {self.task!r} (accepted: {ROLLOUT_TASKS}; low-light policies have a "
                            "LowLightPolicySpec)")
        if not self.env_id:
            problems.append("env_id is empty")
        if "predictor" in self.env_kwargs:
            problems.append("env_kwargs holds 'predictor' (it is the predictor key)")
        if self.steps < 1:
            problems.append(f"steps {self.steps!r} (accepted: >= 1)")
        if self.predictor == "":
            problems.append("predictor is empty (None: trained without one)")
        if self.predictor is not None and self.task != "completion":
            problems.append(f"predictor {self.predictor!r} for task {self.task!r} (completion only)")
        return problems


@dataclass(frozen=True)
class SupervisedSpec(CheckpointSpec):
    """What :class:`rlenhance.restore.SupervisedRestorer` (and :func:`agents.rollout.load_predictor`)
    need to apply a network of ``experiments.supervised_train``.

    Attributes:
        model: ``"mrpnet"``, ``"pixelrnn"`` or ``"gated-pixelrnn"`` (:data:`SUPERVISED_MODELS`
            lists the network classes each may build).
        task: ``"lowlight"``, ``"denoise"`` or ``"completion"``.
        channels: image planes the network reads and writes, 1 (gray) or 3 (RGB).
        prefill: what the network sees in the hole (:data:`rlenhance.ops.fill.PREFILLS`);
            ``"none"`` unless the task is completion.

    ``needs_mask`` and ``composite`` follow from ``model`` and ``task``.
    """

    kind: ClassVar[str] = "supervised"
    title: ClassVar[str] = "supervised-model"
    writer: ClassVar[str] = "experiments.supervised_train"
    reader: ClassVar[str] = "rlenhance.restore.SupervisedRestorer"

    model: str
    task: str
    channels: int
    prefill: str

    @property
    def needs_mask(self) -> bool:
        """The network reads the mask as a second input (the gated PixelRNN)."""
        return self.model == "gated-pixelrnn"

    @property
    def composite(self) -> bool:
        """The output keeps the input outside the hole (completion)."""
        return self.task == "completion"

    def _problems(self) -> list[str]:
        problems = []
        if self.model not in SUPERVISED_MODELS:
            problems.append(f"model {self.model!r} (accepted: {tuple(SUPERVISED_MODELS)})")
        if self.task not in SUPERVISED_TASKS:
            problems.append(f"task {self.task!r} (accepted: {SUPERVISED_TASKS})")
        if self.channels not in (1, 3):
            problems.append(f"channels {self.channels!r} (accepted: 1, 3)")
        if self.prefill not in PREFILLS or (self.task != "completion" and self.prefill != "none"):
            problems.append(f"prefill {self.prefill!r} for task {self.task!r} (accepted: {PREFILLS} for "
                            "completion, 'none' otherwise)")
        return problems


@dataclass(frozen=True)
class RSEDenoiserSpec(CheckpointSpec):
    """What :func:`rlenhance.models.rse.load_rse` needs to denoise with an RSE-RL model of
    ``experiments.rse_train`` (its patch VAEs, clean-latent banks and blend policies are the
    weights; their shapes are the ``arch``).

    Attributes:
        sigma: the Gaussian noise level trained for, on the 0-255 scale, >= 0.
        channels: image planes, 1 (gray) or 3 (RGB).
        rounds: self-enhancement rounds to apply, >= 1 (the recursion's stopping point; the
            model may hold more).
    """

    kind: ClassVar[str] = "rse-denoiser"
    title: ClassVar[str] = "RSE-RL denoiser"
    writer: ClassVar[str] = "experiments.rse_train"
    reader: ClassVar[str] = "rlenhance.models.rse.load_rse"

    sigma: float
    channels: int
    rounds: int

    def _problems(self) -> list[str]:
        problems = []
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            problems.append(f"sigma {self.sigma!r} (accepted: a finite number >= 0)")
        if self.channels not in (1, 3):
            problems.append(f"channels {self.channels!r} (accepted: 1, 3)")
        if self.rounds < 1:
            problems.append(f"rounds {self.rounds!r} (accepted: >= 1)")
        return problems


#: Every spec class by its ``kind``.
SPECS: Mapping[str, type[CheckpointSpec]] = MappingProxyType(
    {cls.kind: cls for cls in (LowLightPolicySpec, RolloutPolicySpec, SupervisedSpec, RSEDenoiserSpec)})


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
    """The spec fields of a version-1 block: defaults for later keys, dropped keys left out."""
    required, later, dropped = layout
    missing = [k for k in required if k not in block]
    unknown = sorted(str(k) for k in block if k not in required and k not in later and k not in dropped)
    if missing or unknown:
        problems = [f"missing key(s) {missing}"] if missing else []
        if unknown:
            problems.append(f"unknown key(s) {unknown} (no rlenhance version wrote them)")
        raise _Problem("; ".join(problems))
    values = {**later, **{k: v for k, v in block.items() if k not in dropped}}
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


# --- files ----------------------------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, *, model: nn.Module, arch: Mapping[str, Any],
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Save ``model``'s weights with its architecture and metadata, atomically (format version 2).

    The file is written to a temporary file in the destination folder, read back with
    ``torch.load(weights_only=True)`` to prove it loads, flushed with ``fsync`` and only then
    moved over ``path`` with ``os.replace`` (:func:`rlenhance.atomic.atomic_path`). On any failure the temporary file is
    removed and an existing file at ``path`` is left untouched. Parent folders are created.

    Args:
        path: Destination file (conventionally ``*.pt``).
        model: Module whose ``state_dict()`` is saved (tensors are copied to CPU).
        arch: JSON-able ``{"class": <name in the build registry>, "kwargs": {<constructor args>}}``.
        extra: Optional data to keep with the weights. ``extra["spec"]``, when present, is the
            model's :class:`CheckpointSpec` object (stored as its :meth:`~CheckpointSpec.to_dict`);
            the rest (step counters, config, metrics) only tensors, containers and primitives:
            what ``torch.load(weights_only=True)`` accepts.

    Returns:
        The path written.

    Raises:
        CheckpointError: ``arch`` is malformed, the weights hold NaN/inf (a broken model must
            not replace a good checkpoint), ``extra["spec"]`` is not a spec object, ``extra``
            holds version 1's ``env`` / ``inference`` blocks, or ``extra`` holds objects that
            cannot be loaded back with ``weights_only=True``.
        OSError: the folder cannot be created or written.
    """
    path = Path(path)
    _check_arch(arch, f"save_checkpoint({path})")
    if extra is not None and not isinstance(extra, Mapping):
        raise CheckpointError(f"save_checkpoint({path}): extra must be a dict or None; got {type(extra).__name__}")
    if extra is not None:
        stale = [k for k in _V1_BLOCKS if k in extra]
        if stale:
            raise CheckpointError(f"save_checkpoint({path}): extra{stale} is version 1's untyped metadata; put the "
                                  f"model's spec ({', '.join(c.__name__ for c in SPECS.values())}) in extra['spec']")
        if SPEC_KEY in extra:
            if not isinstance(extra[SPEC_KEY], CheckpointSpec):
                raise CheckpointError(f"save_checkpoint({path}): extra['spec'] must be a spec object "
                                      f"({', '.join(c.__name__ for c in SPECS.values())}); got "
                                      f"{type(extra[SPEC_KEY]).__name__}")
            extra = {**extra, SPEC_KEY: extra[SPEC_KEY].to_dict()}
    state_dict = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    check_finite(state_dict, source=f"save_checkpoint({path})")
    payload = {
        "format": FORMAT_TAG,
        "version": FORMAT_VERSION,
        "arch": json.loads(json.dumps(arch)),  # a plain, detached copy
        "state_dict": state_dict,
        "extra": dict(extra) if extra is not None else None,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
        try:
            torch.load(tmp, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"save_checkpoint({path}): the checkpoint would not load back with "
                                  f"weights_only=True; keep extra to tensors, containers and primitives "
                                  f"({type(exc).__name__}: {exc})") from exc
    return path


def load_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu",
                    expected_arch: Mapping[str, Any] | None = None,
                    spec: type[CheckpointSpec] | None = None) -> dict[str, Any]:
    """Load and validate a checkpoint written by :func:`save_checkpoint` (any readable version).

    Args:
        path: Checkpoint file.
        map_location: Where to put the tensors (``torch.load``'s argument; default CPU).
        expected_arch: When given, the stored ``arch`` must equal it (class and every kwarg).
        spec: When given, a spec class (e.g. :class:`LowLightPolicySpec`): the checkpoint must
            hold a spec of that kind.

    Returns:
        The checkpoint dict (``format``, ``version`` as in the file, ``arch``, ``state_dict``,
        ``extra``) plus ``"path"``: the file it came from, as a string (used in
        :func:`build_model`'s messages). ``extra["spec"]``, when present, is the validated spec
        object; a version-1 file's ``extra`` comes upgraded (:func:`upgrade_v1_extra`).

    Raises:
        CheckpointError: (message names the file) missing file; not a torch file, truncated or
            corrupt; not an rlenhance checkpoint (wrong or missing ``format`` tag, missing keys,
            unsupported version, malformed ``arch``, ``state_dict`` or spec, a version-1
            file that cannot be upgraded); a floating tensor with NaN/inf values (the first one
            is named); ``arch`` differs from ``expected_arch`` (both are shown); no spec of
            class ``spec`` (what the file is instead is said).
    """
    path = Path(path)
    source = f"checkpoint {path}"
    obj = read_torch_file(path, map_location=map_location)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source}: not an rlenhance checkpoint (holds a {type(obj).__name__}, "
                              f"expected a dict with format={FORMAT_TAG!r})")
    if obj.get("format") != FORMAT_TAG:
        hint = " (it looks like a bare state_dict)" if "format" not in obj else ""
        raise CheckpointError(f"{source}: format tag is {obj.get('format')!r}, expected {FORMAT_TAG!r}{hint}")
    missing = [key for key in _REQUIRED_KEYS if key not in obj]
    if missing:
        raise CheckpointError(f"{source}: missing key(s) {missing}; an rlenhance checkpoint has "
                              f"{list(_REQUIRED_KEYS)}")
    version = obj["version"]
    if isinstance(version, bool) or version not in _READABLE_VERSIONS:
        raise CheckpointError(f"{source}: format version {version!r} is not supported; this rlenhance reads "
                              f"versions {' and '.join(map(str, _READABLE_VERSIONS))} (a newer rlenhance wrote it?)")
    _check_arch(obj["arch"], source)
    state_dict = obj["state_dict"]
    if not isinstance(state_dict, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise CheckpointError(f"{source}: state_dict must map parameter names (str) to tensors")
    check_finite(state_dict, source=source)
    if expected_arch is not None and dict(obj["arch"]) != dict(expected_arch):
        raise CheckpointError(f"{source}: architecture mismatch: the file holds "
                              f"{_describe_arch(obj['arch'])}, expected {_describe_arch(expected_arch)}")
    extra = obj["extra"]
    if extra is not None and not isinstance(extra, Mapping):
        raise CheckpointError(f"{source}: extra must be a dict or None; got {type(extra).__name__}")
    if version == 1:
        obj["extra"] = upgrade_v1_extra(extra, source=source)
    elif extra is not None:
        obj["extra"] = _read_spec(extra, source)
    if spec is not None:
        _check_spec_kind(obj["extra"], spec, source)
    obj["path"] = str(path)
    return obj


def build_model(checkpoint: Mapping[str, Any], registry: Mapping[str, type]) -> nn.Module:
    """Construct the model a checkpoint describes and load its weights (strict).

    Builds ``registry[arch["class"]](**arch["kwargs"])`` and calls
    ``load_state_dict(state_dict, strict=True)``. The model is returned in the mode its
    constructor leaves it (training); call ``.eval()`` for inference.

    Args:
        checkpoint: Dict returned by :func:`load_checkpoint`.
        registry: Class name -> ``nn.Module`` subclass, e.g. ``{"PixelActorCritic": PixelActorCritic}``.

    Returns:
        The model with the checkpoint's weights, on CPU (or wherever ``map_location`` put the
        tensors: parameters are copied into the freshly built CPU model).

    Raises:
        CheckpointError: (names the file) unknown class (the registry's names are listed),
            kwargs the constructor rejects, missing/unexpected keys or shape mismatches.
    """
    source = f"checkpoint {checkpoint.get('path', '<in-memory checkpoint>')}"
    arch = checkpoint.get("arch")
    _check_arch(arch, source)
    name = arch["class"]
    if name not in registry:
        raise CheckpointError(f"{source}: model class {name!r} is not in the registry; known: {sorted(registry)}")
    try:
        model = registry[name](**dict(arch["kwargs"]))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: {name}(**{dict(arch['kwargs'])!r}) failed: {exc}") from exc
    load_state_dict_strict(model, checkpoint.get("state_dict", {}), source=source)
    return model
