"""Typed checkpoint metadata: one frozen spec class per checkpoint kind, validated on write and read (they
live in ``extra["spec"]`` of the file :mod:`rlenhance.checkpoint` describes)."""

from __future__ import annotations

import json
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass, fields
from numbers import Real
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

from rlenhance.errors import CheckpointError
from rlenhance.ops.blur import check_blur_sigma
from rlenhance.ops.fill import PREFILLS
from rlenhance.tasks import TASKS
from rlenhance.transitions import LowLightTransition, Transition, TransitionError

FORMAT_TAG = "rlenhance-checkpoint"
#: The version written and read (typed metadata in ``extra["spec"]``); others are refused, saying so.
FORMAT_VERSION = 3
#: The key of ``extra`` that holds the checkpoint's spec.
SPEC_KEY = "spec"

#: How a low-light policy's alpha is chosen at test time (see rlenhance.rollouts.greedy_rollout).
ALPHA_MODES = ("mean", "argmax")
#: Tasks of RL policies restored by rollouts through their env.
ROLLOUT_TASKS = ("denoise", "completion")
#: A denoiser's noise (``supervised_train --noise``): white Gaussian, or dark-level noise amplified by
#: known curves (:func:`rlenhance.data.amplified_noise`).
NOISE_KINDS = ("gaussian", "amplified")
#: Architecture variants of a supervised checkpoint: ours, or the seed's code exactly (PixelRNN models only).
SUPERVISED_VARIANTS = ("default", "seed")
#: Output size over input size of a supervised model (:data:`rlenhance.models.mrpnet.UPSCALES`).
SUPERVISED_UPSCALES = (1, 2, 4)
#: Smallest side of a low-light policy's square working image.
MIN_MAX_SIDE = 16
#: Side of the square working image of a low-light policy whose checkpoint names none.
DEFAULT_MAX_SIDE = 512
#: ``rlenhance/Denoise-v0``'s own ``gray`` and ``sigma``, for a denoising policy whose ``env_kwargs`` lack them.
DENOISE_ENV_DEFAULTS: Mapping[str, Any] = MappingProxyType({"gray": True, "sigma": (15.0, 25.0, 50.0)})


def noise_levels(sigma: Any) -> tuple[float, ...]:
    """The Gaussian noise levels (0-255 scale) of ``sigma``, ascending: one number, or a non-empty sequence of
    distinct numbers (several: a blind denoiser), each finite and >= 0.

    Raises:
        ValueError: anything else (the message says what is wrong and what is accepted).
    """
    values = list(sigma) if isinstance(sigma, (list, tuple)) else [sigma]
    if not values:
        raise ValueError("expected one noise level or more (0-255 scale), got none")
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, Real) or not (math.isfinite(v) and v >= 0)]
    if bad:
        raise ValueError(f"expected noise levels that are finite numbers >= 0 (0-255 scale), got {bad[0]!r}")
    levels = tuple(sorted(float(v) for v in values))
    if len(set(levels)) != len(levels):
        raise ValueError(f"noise levels {', '.join(f'{v:g}' for v in levels)}: a level is repeated (list each once)")
    return levels


def _levels_problems(sigma: Any, sigmas: Any) -> list[str]:
    """What is wrong with a spec's ``sigmas`` (valid :func:`noise_levels`) and its ``sigma`` (their largest)."""
    try:
        levels = noise_levels(sigmas)
    except ValueError as exc:
        return [f"sigmas {sigmas!r}: {exc}"]
    problems = [] if levels == tuple(sigmas) else [f"sigmas {list(sigmas)} (accepted: ascending)"]
    if sigma != levels[-1]:
        problems.append(f"sigma {sigma!r} is not the largest of sigmas {list(levels)}")
    return problems


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
    if isinstance(hint, type) and issubclass(hint, Transition):
        return f"a {hint.__name__} dict"
    return "None" if hint is type(None) else f"a{'n' if hint is int else ''} {hint.__name__}"


def _checked(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against the field type ``hint`` and normalised (an int of a float field -> float,
    list -> tuple, dict -> read-only copy); raises :class:`_Problem` naming ``key``."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):  # X | None
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        try:
            return _checked(value, inner, key)
        except _Problem:
            pass
    elif hint in (bool, str):
        if isinstance(value, hint):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise _Problem(f"key {key!r} must be finite, got {value!r}")
            return float(value)
    elif isinstance(hint, type) and issubclass(hint, Transition):
        if isinstance(value, Mapping):
            try:
                value = hint.from_dict(value)
            except TransitionError as exc:
                raise _Problem(f"key {key!r}: {exc}") from None
        if isinstance(value, hint):
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
    """A field value as plain JSON-able data (tuples -> lists, read-only dicts -> dicts, transitions -> dicts)."""
    if isinstance(value, Transition):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_Spec = TypeVar("_Spec", bound="CheckpointSpec")


@dataclass(frozen=True)
class CheckpointSpec:
    """Base of the typed metadata specs: one frozen dataclass per kind of checkpoint.

    A spec validates itself when built (types, then the kind's own rules): a bad value raises
    :class:`CheckpointError` naming the spec class and the key. :func:`save_checkpoint` writes
    :meth:`to_dict`, :func:`load_checkpoint` reads it back with :meth:`from_dict`.
    """

    #: The ``kind`` tag stored with the fields.
    kind: ClassVar[str] = ""
    #: How messages name such a checkpoint, what writes it and what reads it.
    title: ClassVar[str] = ""
    writer: ClassVar[str] = ""
    reader: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        try:
            for field in fields(self):
                object.__setattr__(self, field.name, _checked(getattr(self, field.name), hints[field.name], field.name))
        except _Problem as exc:
            raise CheckpointError(f"{type(self).__name__}: {exc}") from None
        if problems := self._problems():
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


@dataclass(frozen=True)
class LowLightPolicySpec(CheckpointSpec):
    """What :class:`rlenhance.Enhancer` needs to run a low-light policy of ``experiments.lol_train``.

    Attributes:
        transition: the step the policy runs in (:class:`rlenhance.transitions.LowLightTransition`; its
            ``steps``, >= 1, are the Enhancer's default): the training env's, with any cap given afterwards.
        alpha_mode: the test-time alpha (the Enhancer's default): ``"mean"`` (the expected alpha) or
            ``"argmax"`` (the most probable; continuous: ``tanh`` of the mean).
        setting: the env's setting in training (``exposure_target``, the reward weights), the Enhancer's
            default cond; holds every name of the transition's ``cond_fields``.
        max_side: the side of the square working image trained at (``lol_train --policy-side``), >= 16;
            None: not fixed (:attr:`working_side` gives the default).
        conditioned: trained over random settings (``setting_ranges``); False: at ``setting`` only.
        setting_ranges: ``{name: (low, high)}``: each setting (a ``cond_fields`` name) the policy was trained
            to follow and its range; the others were fixed at ``setting``. Empty when not ``conditioned``.
        blur_sigma: a blur (px) the file records; nothing applies it (``lol_train`` writes None).
        env_kwargs: the rest of the training env's keyword arguments (JSON-able), from which
            :func:`envs.env_kwargs_for_checkpoint` rebuilds the env with the transition and the setting.
    """

    kind: ClassVar[str] = "lowlight-policy"
    title: ClassVar[str] = "low-light policy"
    writer: ClassVar[str] = "experiments.lol_train"
    reader: ClassVar[str] = "rlenhance.Enhancer"

    transition: LowLightTransition
    alpha_mode: str
    setting: Mapping[str, float]
    max_side: int | None
    conditioned: bool
    setting_ranges: Mapping[str, tuple[float, ...]]
    blur_sigma: float | None
    env_kwargs: Mapping[str, Any]

    @property
    def working_side(self) -> int:
        """The side of the square working image the policy runs on: ``max_side``, else :data:`DEFAULT_MAX_SIDE`."""
        return self.max_side or DEFAULT_MAX_SIDE

    def _problems(self) -> list[str]:
        problems = []
        transition = self.transition
        fields_ = transition.cond_fields
        if transition.steps is None:
            problems.append("transition: steps is None (accepted: the curve steps at inference, >= 1)")
        for name, bounds in self.setting_ranges.items():
            if name not in fields_:
                problems.append(f"setting_ranges names {name!r}, not one of cond_fields {list(fields_)}")
            elif len(bounds) != 2 or not bounds[0] < bounds[1]:
                problems.append(f"setting_ranges[{name!r}] {list(bounds)} (accepted: [low, high] with low < high)")
            elif name == "exposure_target" and not 0.0 < bounds[0] < bounds[1] < 1.0:
                problems.append(f"setting_ranges['exposure_target'] {list(bounds)} (accepted: within (0, 1))")
            elif name != "exposure_target" and bounds[0] < 0.0:
                problems.append(f"setting_ranges[{name!r}] {list(bounds)} (a reward weight is >= 0)")
            elif name in self.setting and not in_range(self.setting[name], bounds):
                problems.append(f"setting[{name!r}] {self.setting[name]!r} lies outside setting_ranges[{name!r}] "
                                f"{list(bounds)}")
        if self.setting_ranges and not self.conditioned:
            problems.append("setting_ranges must be empty when not conditioned")
        try:
            check_blur_sigma(self.blur_sigma)
        except ValueError as error:
            problems.append(str(error))
        lowest_w = min((self.setting.get("w_exposure", 0), *self.setting_ranges.get("w_exposure", ())))
        if transition.overshoot_reference is not None and not lowest_w > 0:
            problems.append("transition: a cap weighted by the exposure weight (overshoot_reference) needs a "
                            "'w_exposure' > 0 in setting and setting_ranges")
        for name, encoding in zip(fields_, transition.cond_encodings):
            values = [self.setting.get(name, 1.0), *self.setting_ranges.get(name, ())]
            if encoding == "log" and min(values) <= 0:
                problems.append(f"cond_encodings: {name!r} is log-encoded, but its setting or range reaches "
                                f"{min(values)!r} (accepted: values > 0)")
        if missing := [name for name in fields_ if name not in self.setting]:
            problems.append(f"setting lacks the cond_fields {missing}")
        if transition.max_overshoot is not None and "exposure_target" not in self.setting:
            problems.append("transition: max_overshoot needs an 'exposure_target' in setting (the target it caps the "
                            "mean above)")
        if self.alpha_mode not in ALPHA_MODES:
            problems.append(f"alpha_mode {self.alpha_mode!r} (accepted: {ALPHA_MODES})")
        if self.max_side is not None and self.max_side < MIN_MAX_SIDE:
            problems.append(f"max_side {self.max_side!r} (accepted: None or >= {MIN_MAX_SIDE})")
        return problems


def in_range(value: float, bounds: tuple[float, ...]) -> bool:
    """``low <= value <= high``, forgiving float32 round-off at the ends."""
    slack = 1e-6 * max(1.0, abs(bounds[0]), abs(bounds[1]))
    return bounds[0] - slack <= value <= bounds[1] + slack


@dataclass(frozen=True)
class RolloutPolicySpec(CheckpointSpec):
    """What :class:`rlenhance.denoisers.PolicyDenoiser` and :class:`rlenhance.completion.PolicyCompleter`
    need to run a policy of ``experiments.denoise_train`` / ``experiments.completion_train``.

    Attributes:
        task: ``"denoise"`` or ``"completion"``.
        env_id: the registered env the policy was trained in (e.g. ``"rlenhance/Denoise-v0"``).
        env_kwargs: the env's keyword arguments in training (JSON-able), without ``predictor`` and the
            transition's (``clip``, ``smooth_iters``, ``max_episode_steps``). A denoising policy's ``gray``
            (bool) and ``sigma`` (one noise level, or a list: a blind policy) left out are Denoise-v0's
            (:data:`DENOISE_ENV_DEFAULTS`); :attr:`channels` and :attr:`sigmas` read them.
        transition: the step the policy runs in (:class:`rlenhance.transitions.DenoiseTransition` or
            :class:`~rlenhance.transitions.CompletionTransition`, of ``task``); its ``steps`` (>= 1) are the
            steps per rollout; it has the "predict" action exactly when ``predictor`` is set.
        block_actions: actions chosen per ``downscale`` block, as A3C trained them.
        predictor: the supervised checkpoint of the policy's task whose prediction is the "predict" action:
            the absolute path the trainer resolved, or a bare file name (looked for beside the policy and in
            ``rlenhance/weights/``, :func:`rlenhance.denoisers.find_predictor`); None: trained without one.
    """

    kind: ClassVar[str] = "rollout-policy"
    title: ClassVar[str] = "denoising / completion policy"
    writer: ClassVar[str] = "experiments.denoise_train or experiments.completion_train"
    reader: ClassVar[str] = "rlenhance.denoisers.PolicyDenoiser or rlenhance.completion.PolicyCompleter"

    task: str
    env_id: str
    env_kwargs: Mapping[str, Any]
    transition: Transition
    block_actions: bool
    predictor: str | None

    def _problems(self) -> list[str]:
        problems = []
        if self.task not in ROLLOUT_TASKS:
            problems.append(f"task {self.task!r} (accepted: {ROLLOUT_TASKS}; low-light policies have a "
                            "LowLightPolicySpec)")
        if not self.env_id:
            problems.append("env_id is empty")
        if inside := [k for k in ("predictor", "clip", "smooth_iters", "max_episode_steps") if k in self.env_kwargs]:
            problems.append(f"env_kwargs holds {inside} (the predictor key and the transition hold them)")
        if self.transition.task != self.task:
            problems.append(f"transition of task {self.transition.task!r} for task {self.task!r}")
        if self.transition.steps is None:
            problems.append("transition: steps is None (accepted: the steps per rollout, >= 1)")
        if getattr(self.transition, "predict", False) != (self.predictor is not None):
            problems.append(f"transition: predict {getattr(self.transition, 'predict', None)!r} with predictor "
                            f"{self.predictor!r} (the predict action exists exactly when there is a predictor)")
        problems += _predictor_problems(self.predictor)
        if self.env_kwargs.get("observe_prediction") and self.predictor is None:
            problems.append("env_kwargs['observe_prediction'] is set without a predictor (the observation's "
                            "'prediction' is the predictor's output)")
        if self.task == "denoise":
            if not isinstance(self.env_kwargs.get("gray", DENOISE_ENV_DEFAULTS["gray"]), bool):
                problems.append(f"env_kwargs['gray'] {self.env_kwargs['gray']!r} (accepted: true or false)")
            try:
                noise_levels(self.env_kwargs.get("sigma", DENOISE_ENV_DEFAULTS["sigma"]))
            except ValueError as exc:
                problems.append(f"env_kwargs['sigma'] {self.env_kwargs['sigma']!r}: {exc}")
        return problems

    @property
    def channels(self) -> int:
        """Image planes the policy restores: 1 for a gray denoising policy, else 3 (RGB)."""
        gray = self.task == "denoise" and self.env_kwargs.get("gray", DENOISE_ENV_DEFAULTS["gray"])
        return 1 if gray else 3

    @property
    def sigmas(self) -> tuple[float, ...] | None:
        """A denoising policy's noise levels (0-255 scale, ascending; several: a blind policy); None for completion."""
        sigma = self.env_kwargs.get("sigma", DENOISE_ENV_DEFAULTS["sigma"])
        return noise_levels(sigma) if self.task == "denoise" else None


@dataclass(frozen=True)
class SupervisedSpec(CheckpointSpec):
    """What :class:`rlenhance.restore.SupervisedRestorer` (and the policies' predictors,
    :mod:`rlenhance.predictors`) need to apply a network of ``experiments.supervised_train``.

    Attributes:
        model: the ``model_name`` of one of :data:`rlenhance.models.MODELS` (``"mrpnet"``, ``"pixelrnn"``,
            ``"gated-pixelrnn"``, ``"ffdnet"``, ``"unet"``; the restorer checks it against the network the file
            builds), or a user's network class by import path (``"package.module:Class"``).
        task: one of :data:`rlenhance.tasks.TASKS` (``"lowlight"``, ``"denoise"``, ``"completion"``).
        channels: image planes the network reads and writes, 1 (gray) or 3 (RGB).
        prefill: what the network sees in the hole (:data:`rlenhance.ops.fill.PREFILLS`); ``"none"`` unless
            the task is completion.
        variant: the network's ``variant`` (:data:`SUPERVISED_VARIANTS`): ``"default"``, or ``"seed"``
            (pixelrnn / gated-pixelrnn: the seed's code exactly, :mod:`rlenhance.models.pixelrnn`).
        noise: denoise only: the noise trained on (:data:`NOISE_KINDS`); None for other tasks.
        sigma: denoise only, 0-255 scale: the largest of ``sigmas``, or (amplified) the largest dark-level
            noise level, each image drawing one from [0, sigma]; None as ``noise``.
        sigmas: denoise only: the noise levels trained on (:func:`noise_levels`): gaussian: each training
            image drew one (or, ``--sigma-draw uniform``, a level of their range), several making a blind
            denoiser (an ``"ffdnet"`` reads the level's map, trained over ``[sigmas[0], sigmas[-1]]``);
            amplified: ``(sigma,)``. None as ``noise``; not given: ``(sigma,)``.
        upscale: output size over input size (the network's ``upscale``): 1, or for low-light models
            (MRPNet with the Generator) 2 or 4 (super-resolution).

    What the network reads besides the image (``reads_mask``, ``reads_noise_map``) is its class's, checked
    when the restorer builds it; ``composite`` follows from ``task``.
    """

    kind: ClassVar[str] = "supervised"
    title: ClassVar[str] = "supervised-model"
    writer: ClassVar[str] = "experiments.supervised_train"
    reader: ClassVar[str] = "rlenhance.restore.SupervisedRestorer"

    model: str
    task: str
    channels: int
    prefill: str
    variant: str = "default"
    noise: str | None = None
    sigma: float | None = None
    upscale: int = 1
    sigmas: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.sigmas is None and self.sigma is not None:  # one level
            object.__setattr__(self, "sigmas", (self.sigma,))
        super().__post_init__()

    @property
    def composite(self) -> bool:
        """The output keeps the input outside the hole (completion)."""
        return self.task == "completion"

    def _problems(self) -> list[str]:
        problems = []
        module, colon, name = self.model.partition(":")
        if not self.model or self.model != self.model.strip() or (colon and not (module and name)):
            problems.append(f"model {self.model!r} (accepted: a network's name, or its class's import path "
                            "'package.module:Class')")
        if self.task not in TASKS:
            problems.append(f"task {self.task!r} (accepted: {TASKS})")
        if self.channels not in (1, 3):
            problems.append(f"channels {self.channels!r} (accepted: 1, 3)")
        if self.prefill not in PREFILLS or (self.task != "completion" and self.prefill != "none"):
            problems.append(f"prefill {self.prefill!r} for task {self.task!r} (accepted: {PREFILLS} for "
                            "completion, 'none' otherwise)")
        if self.variant not in SUPERVISED_VARIANTS:
            problems.append(f"variant {self.variant!r} (accepted: {SUPERVISED_VARIANTS})")
        if self.task != "denoise" and (self.noise is not None or self.sigma is not None or self.sigmas is not None):
            problems.append(f"noise {self.noise!r}, sigma {self.sigma!r} and sigmas {self.sigmas!r} for task "
                            f"{self.task!r} (accepted: None unless the task is denoise)")
        if self.noise is not None and self.noise not in NOISE_KINDS:
            problems.append(f"noise {self.noise!r} (accepted: {NOISE_KINDS} or None)")
        if self.sigma is not None and self.sigma < 0:
            problems.append(f"sigma {self.sigma!r} (accepted: >= 0, on the 0-255 scale, or None)")
        elif self.sigmas is not None:
            problems += _levels_problems(self.sigma, self.sigmas)
            if self.noise == "amplified" and len(self.sigmas) > 1:
                problems.append(f"sigmas {list(self.sigmas)} with noise 'amplified' (accepted: one level, its "
                                "largest dark-level noise)")
        if self.upscale not in (SUPERVISED_UPSCALES if self.task == "lowlight" else (1,)):
            problems.append(f"upscale {self.upscale!r} for task {self.task!r} (accepted: {SUPERVISED_UPSCALES} for "
                            "lowlight models, 1 otherwise)")
        return problems

    def noise_map_problems(self) -> list[str]:
        """Why a noise-map network (FFDNet) cannot use this spec: it needs known denoise noise, the default variant."""
        if self.task != "denoise" or self.noise not in NOISE_KINDS or self.sigma is None \
                or (self.noise == "amplified" and not self.sigma) or self.variant != "default":
            return [f"a noise-map network with task {self.task!r}, noise {self.noise!r}, sigma {self.sigma!r}, "
                    f"variant {self.variant!r} (accepted: task 'denoise', noise 'gaussian' or 'amplified' with "
                    "sigma > 0, variant 'default')"]
        return []


@dataclass(frozen=True)
class RSEDenoiserSpec(CheckpointSpec):
    """What :func:`rlenhance.rse.load_rse` needs to denoise with an RSE-RL model of ``experiments.rse_train``
    (its patch VAEs, clean-latent banks and blend policies are the weights; their shapes the ``arch``).

    Attributes:
        sigma: the largest of ``sigmas`` (0-255 scale, >= 0).
        channels: image planes, 1 (gray) or 3 (RGB).
        rounds: self-enhancement rounds to apply, >= 1 (the model may hold more).
        sigmas: the noise levels trained on (:func:`noise_levels`; several: a blind denoiser); not given:
            ``(sigma,)``.
        predictor: the supervised denoiser whose output is every round's third candidate (``rse_train
            --predictor``), recorded as :class:`RolloutPolicySpec`'s ``predictor``; None: trained without one.
    """

    kind: ClassVar[str] = "rse-denoiser"
    title: ClassVar[str] = "RSE-RL denoiser"
    writer: ClassVar[str] = "experiments.rse_train"
    reader: ClassVar[str] = "rlenhance.rse.load_rse"

    sigma: float
    channels: int
    rounds: int
    sigmas: tuple[float, ...] = None  # type: ignore[assignment]  # None: (sigma,)
    predictor: str | None = None

    def __post_init__(self) -> None:
        if self.sigmas is None:  # one level
            object.__setattr__(self, "sigmas", (self.sigma,))
        super().__post_init__()

    def _problems(self) -> list[str]:
        problems = []
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            problems.append(f"sigma {self.sigma!r} (accepted: a finite number >= 0)")
        else:
            problems += _levels_problems(self.sigma, self.sigmas)
        if self.channels not in (1, 3):
            problems.append(f"channels {self.channels!r} (accepted: 1, 3)")
        if self.rounds < 1:
            problems.append(f"rounds {self.rounds!r} (accepted: >= 1)")
        return problems + _predictor_problems(self.predictor)


def _predictor_problems(predictor: str | None) -> list[str]:
    """What is wrong with a spec's recorded ``predictor`` (None: trained without one)."""
    if predictor == "":
        return ["predictor is empty (None: trained without one)"]
    if predictor is not None and not PurePosixPath(predictor).is_absolute() \
            and PurePosixPath(predictor).name != predictor:
        return [f"predictor {predictor!r} is a relative path (accepted: the absolute path the trainer resolved, or a "
                "bare file name, looked for beside the checkpoint and in rlenhance/weights/)"]
    return []


#: Every spec class by its ``kind``.
SPECS: Mapping[str, type[CheckpointSpec]] = MappingProxyType(
    {cls.kind: cls for cls in (LowLightPolicySpec, RolloutPolicySpec, SupervisedSpec, RSEDenoiserSpec)})

