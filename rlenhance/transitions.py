"""One frozen description of each task's MDP step, shared by the env, the inference paths and the
native kernels, and stored as part of a policy checkpoint's spec.

* :class:`LowLightTransition` (``envs.lowlight``, :class:`rlenhance.Enhancer`'s torch and native
  rollouts): per pixel an alpha (a table entry, or the action itself), R and G coupled to B, damped,
  one LE curve step capped above the exposure target; and the setting encoding the policy reads.
* :class:`DenoiseTransition` (``envs.denoise``, :class:`rlenhance.denoisers.PolicyDenoiser`): per pixel one of PixelRL's
  filters, or the predictor's pixel; or a scale of the noise-level map a noise-map denoiser (FFDNet) reads.
* :class:`CompletionTransition` (``envs.completion``): per hole pixel one fill action, or the predictor's pixel.

A policy checkpoint stores its transition in its spec (:meth:`Transition.to_dict` / :meth:`Transition.from_dict`),
so a policy always runs in the MDP it was trained in.

Example:
    >>> import torch
    >>> t = LowLightTransition("discrete", RELLIE_ALPHAS, 1, 0.0, 0.0, None, None, COND_FIELDS, (1.0,) * 5,
    ...                        (0.0,) * 5, ("linear",) * 5, False, 10)
    >>> t.alpha(torch.tensor([[[[6, 26]]]])).tolist()  # index 6 keeps, 26 is alpha 1
    [[[[0.0, 1.0]]]]
    >>> LowLightTransition.from_dict(t.to_dict()) == t
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from types import MappingProxyType
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from rlenhance.ops.actions import PIXELRL_ACTIONS
from rlenhance.ops.bank import pixelrl_filter_select
from rlenhance.ops.blur import gaussian_blur2d
from rlenhance.ops.curves import (
    check_max_overshoot,
    couple_channels,
    le_curve,
    le_curves_upsampled,
    le_step,
    overshoot_limit,
    store_samples,
    upsample_rows,
)
from rlenhance.ops.fill import diffusion_fill, neighbour_mean
from rlenhance.ops.median import median_blur2d
from rlenhance.ops.select import select_per_pixel
from rlenhance.plugins import Registry
from rlenhance.runtime import constant_tensor

__all__ = ["ACTION_FAMILIES", "ACTION_TYPES", "ActionFamily", "LE", "COMPLETION_ACTIONS", "COND_ENCODINGS",
           "COND_FIELDS", "PREDICT_ACTION", "RELLIE_ALPHAS", "TRANSITIONS", "Transition", "TransitionError",
           "CompletionTransition", "DenoiseTransition", "LowLightTransition", "decode_setting", "encode_setting"]

#: ReLLIE's alpha table: a = 0..26 -> alpha = (a - 6) / 20, i.e. -0.30 .. +1.00 in steps of 0.05.
RELLIE_ALPHAS = tuple(round((a - 6) / 20, 2) for a in range(27))
#: Per-pixel actions of a low-light policy: an index into the alpha table, or alpha itself in [-1, 1].
ACTION_TYPES = ("discrete", "continuous")
#: Order of the setting values in a low-light policy's conditioning vector.
COND_FIELDS = ("exposure_target", "w_exposure", "w_color", "w_spatial", "w_smooth")
#: How the conditioning vector encodes a setting value v: ``(v - offset) / scale``, or
#: ``(log(v) - offset) / scale`` (a weight sampled log-uniform over a wide range).
COND_ENCODINGS = ("linear", "log")
#: The name of the action that takes the predictor's pixel (after the task's own actions; only with a predictor).
PREDICT_ACTION = "predict"
#: The fill actions of completion, in action-id order ("predict" follows with a predictor).
COMPLETION_ACTIONS = ("keep", "diffuse", "copy_left", "copy_right", "copy_up", "copy_down", "gaussian", "median")


class TransitionError(ValueError):
    """A transition's fields that do not describe a step (the message names the class and the field)."""


class ActionFamily:
    """How one low-light step moves a pixel for its action value ``alpha``: the curve family of a
    :class:`LowLightTransition`; subclass it in your own file and name it by import path,
    ``task.curve=package.module:Class`` (``examples/gamma_curve.py``).

    A family defines :meth:`curve`; :meth:`step` and :meth:`apply` follow from it. ``alpha = 0`` must keep the
    pixel; the cap needs the image mean to rise monotonically with ``alpha``.

    Attributes:
        name: the family's registered name (:data:`ACTION_FAMILIES`).
        linear: the step's rise of the image mean is proportional to ``alpha`` (the cap then scales a
            step exactly; otherwise it bisects).
    """

    name: ClassVar[str] = ""
    linear: ClassVar[bool] = False

    @staticmethod
    def curve(x: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
        """One step of ``x`` (float (B, C, H, W) in [0, 1]) for ``alpha`` broadcastable to it; not clamped."""
        raise NotImplementedError

    @classmethod
    def step(cls, x: torch.Tensor, alpha: torch.Tensor,
             limit: float | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha applied, curve(x, alpha applied))``: ``alpha`` scaled down per image (by the largest
        factor in [0, 1], to within 1/256) so the image mean ends at or below ``limit`` (None: no cap)."""
        stepped = cls.curve(x, alpha)
        if limit is None:
            return alpha, stepped
        limit = torch.as_tensor(limit, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        over = stepped.mean(dim=(1, 2, 3), keepdim=True) > limit
        if not bool(over.any()):
            return alpha, stepped
        low, high = torch.zeros_like(limit), torch.ones_like(limit)
        for _ in range(8):  # the largest scale that stays at or below the limit
            mid = (low + high) / 2
            fits = cls.curve(x, alpha * mid).mean(dim=(1, 2, 3), keepdim=True) <= limit
            low, high = torch.where(fits, mid, low), torch.where(fits, high, mid)
        alpha = alpha * torch.where(over, low, torch.ones_like(low))
        return alpha, cls.curve(x, alpha)

    @classmethod
    def apply(cls, x: torch.Tensor, maps: list[torch.Tensor], *, top: int = 0, height: int | None = None,
              out: torch.Tensor | None = None) -> torch.Tensor:
        """The steps of the alpha ``maps`` (each (B, 1 or C, h, w), spanning the whole image) on ``x`` (rows
        ``top ..`` of an image of ``height`` rows, float in [0, 1] or uint8 / uint16 samples), each map upsampled
        bilinearly and every step clamped to [0, 1] (:func:`rlenhance.ops.le_curves_upsampled`'s contract).
        ``out``: where to write (float, or the samples' dtype, rounded); None: a new float tensor."""
        current = upsample_rows(x, maps, top=top, height=height, step=lambda v, up: cls.curve(v, up).clamp(0, 1))
        return current if out is None else store_samples(current, out)


def _check_family(family: Any) -> None:
    if not (isinstance(family, type) and issubclass(family, ActionFamily)):
        raise TypeError(f"expected a subclass of rlenhance.transitions.ActionFamily, got {family!r}")


#: The action families of low-light steps by name (``LowLightTransition.curve``); a user's own by import path.
ACTION_FAMILIES: Registry[type[ActionFamily]] = Registry("action family", check=_check_family)


@ACTION_FAMILIES.register()
class LE(ActionFamily):
    """Zero-DCE's light-enhancement curve ``x + alpha x (1 - x)`` (:func:`rlenhance.ops.le_curve`): linear in
    alpha, brightening for alpha > 0, darkening for alpha < 0; the native kernels run it on the CPU."""

    name = "le"
    linear = True

    @staticmethod
    def curve(x: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
        return le_curve(x, alpha)

    @classmethod
    def step(cls, x: torch.Tensor, alpha: torch.Tensor,
             limit: float | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return le_step(x, alpha, limit)

    @classmethod
    def apply(cls, x: torch.Tensor, maps: list[torch.Tensor], *, top: int = 0, height: int | None = None,
              out: torch.Tensor | None = None) -> torch.Tensor:
        return le_curves_upsampled(x, maps, top=top, height=height, out=out)


def encode_setting(values: torch.Tensor, offset: torch.Tensor, scale: torch.Tensor,
                   log: torch.Tensor) -> torch.Tensor:
    """Setting values -> the conditioning vector a low-light policy reads: per field
    ``(value - offset) / scale``, or ``(log(value) - offset) / scale`` where ``log`` is set (values > 0).

    Args:
        values: float (B, n), in the order of the fields.
        offset, scale: float (n,), the encoding of each field (scale non-zero).
        log: bool (n,), the log-encoded fields.

    Returns:
        float (B, n), the dtype of ``values``.
    """
    return (torch.where(log, values.log(), values) - offset) / scale


def decode_setting(cond: torch.Tensor, offset: torch.Tensor, scale: torch.Tensor, log: torch.Tensor) -> torch.Tensor:
    """The setting values (B, n) of conditioning vectors (B, n): the inverse of :func:`encode_setting`."""
    values = cond * scale + offset
    return torch.where(log, values.exp(), values)


@dataclass(frozen=True)
class Transition:
    """Base of the transitions: frozen, validated when built, and serialised as plain data."""

    #: The task the transition steps (the ``task`` key of :meth:`to_dict`).
    task: ClassVar[str] = ""
    #: Fields only ever read as float32 tensors: stored as their float32 values (equal after a checkpoint).
    _float32_fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list):
                object.__setattr__(self, field.name, tuple(value))
            if field.name in self._float32_fields:
                object.__setattr__(self, field.name, tuple(float(v) for v in torch.tensor(value, dtype=torch.float32)))
        problems = self._problems()
        if problems:
            raise TransitionError(f"{type(self).__name__}: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        return [] if self.steps is None or self.steps >= 1 else [f"steps {self.steps!r} (accepted: >= 1, or None)"]

    def to_dict(self) -> dict[str, Any]:
        """``{"task": ..., <field>: <value>, ...}``, JSON-able (tuples as lists)."""
        return {"task": self.task, **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transition:
        """The transition of ``data`` (a :meth:`to_dict` of this class or of :data:`TRANSITIONS`' ones).

        Raises:
            TransitionError: not a dict, another task, a missing or unknown key, or a bad value.
        """
        if not isinstance(data, Mapping):
            raise TransitionError(f"a transition must be a dict, got {type(data).__name__}")
        target = TRANSITIONS.get(data.get("task")) if cls is Transition else cls
        if target is None or data.get("task") != target.task:
            raise TransitionError(f"a {cls.__name__} has task {getattr(target, 'task', sorted(TRANSITIONS))!r}, got "
                                  f"{data.get('task')!r}")
        names = [f.name for f in fields(target)]
        unknown = sorted(str(k) for k in data if k != "task" and k not in names)
        missing = [f.name for f in fields(target) if f.name not in data and f.default is MISSING]
        if unknown or missing:
            raise TransitionError(f"{target.__name__}: unknown key(s) {unknown}, missing key(s) {missing} "
                                  f"(its keys: task, {', '.join(names)})")
        try:
            return target(**{k: data[k] for k in names if k in data})
        except TypeError as exc:
            raise TransitionError(f"{target.__name__}: {exc}") from None


@dataclass(frozen=True)
class LowLightTransition(Transition):
    """One step of ``rlenhance/LowLight-v1`` (ReLLIE's curve estimation).

    Per pixel the action gives an alpha (:meth:`alpha`); R and G are coupled to B, damped by ``1 - damping``,
    and the image takes one step of its action family (:attr:`curve`), capped above the exposure target
    (:meth:`limit`) and clamped to [0, 1] (:meth:`step`). :meth:`apply` runs a rollout's maps at full resolution.

    Attributes:
        action_type: ``"discrete"`` (an index into ``alpha_table``) or ``"continuous"`` (alpha in [-1, 1]).
        alpha_table: the alpha of each discrete action (ReLLIE's 27 by default).
        alpha_channels: 3 (one alpha per RGB channel) or 1 (one for all three).
        channel_coupling: ReLLIE's coupling ``c`` of R and G to B (``c alpha_b + (1 - c) alpha_own``), in [0, 1].
        damping: ReLLIE's damping ``d``, in [0, 1).
        max_overshoot: no step lifts an image's mean more than this above the exposure target;
            None: no cap (:func:`rlenhance.ops.check_max_overshoot`).
        overshoot_reference: the exposure weight ``w_0`` at which the cap is ``max_overshoot``; at
            another weight ``w`` it is ``max_overshoot sqrt(w_0 / w)`` (:func:`rlenhance.ops.overshoot_limit`).
            None: the same cap at every weight. Unused without a cap.
        cond_fields: the setting names, in the order of the conditioning vector.
        cond_scale, cond_offset: per field, ``cond = (value - offset) / scale``.
        cond_encodings: per field, ``"linear"`` or ``"log"`` (``cond = (log(value) - offset) / scale``).
        observe_exposure_gap: the policy also reads the plane ``E - mean_c(image)``
            (:func:`rlenhance.losses.exposure_gap`).
        steps: curve steps of an episode (the env's length; a policy's steps at inference); None:
            not fixed here (a one-image env, whose length gymnasium's ``TimeLimit`` sets).
        curve: the action family, a name of :data:`ACTION_FAMILIES` or an import path
            ``"package.module:Class"`` of an :class:`ActionFamily` (``"le"``: Zero-DCE's curve).
    """

    task: ClassVar[str] = "lowlight"
    _float32_fields: ClassVar[tuple[str, ...]] = ("alpha_table", "cond_scale", "cond_offset")

    action_type: str
    alpha_table: tuple[float, ...]
    alpha_channels: int
    channel_coupling: float
    damping: float
    max_overshoot: float | None
    overshoot_reference: float | None
    cond_fields: tuple[str, ...]
    cond_scale: tuple[float, ...]
    cond_offset: tuple[float, ...]
    cond_encodings: tuple[str, ...]
    observe_exposure_gap: bool
    steps: int | None
    curve: str = LE.name

    def _problems(self) -> list[str]:
        problems = super()._problems()
        try:
            ACTION_FAMILIES.get(self.curve)
        except ValueError as error:
            problems.append(str(error))
        if self.action_type not in ACTION_TYPES:
            problems.append(f"action_type {self.action_type!r} (accepted: {ACTION_TYPES})")
        if self.action_type == "discrete" and not self.alpha_table:
            problems.append("alpha_table is empty for discrete actions")
        if self.alpha_channels not in (1, 3):
            problems.append(f"alpha_channels {self.alpha_channels!r} (accepted: 3, one curve per RGB channel, or 1, "
                            "one for all three)")
        if not 0.0 <= self.channel_coupling <= 1.0:
            problems.append(f"channel_coupling {self.channel_coupling!r} (accepted: 0 <= channel_coupling <= 1)")
        if self.channel_coupling and self.alpha_channels != 3:
            problems.append("channel_coupling couples per-channel alphas; it needs alpha_channels 3")
        if not 0.0 <= self.damping < 1.0:
            problems.append(f"damping {self.damping!r} (accepted: 0 <= damping < 1)")
        try:
            check_max_overshoot(self.max_overshoot)
        except ValueError as error:
            problems.append(str(error))
        if self.overshoot_reference is not None and not self.overshoot_reference > 0:
            problems.append(f"overshoot_reference {self.overshoot_reference!r} (accepted: an exposure weight > 0, "
                            "or None)")
        n = len(self.cond_fields)
        if len(set(self.cond_fields)) != n:
            problems.append(f"cond_fields {list(self.cond_fields)} repeat a name")
        if not len(self.cond_scale) == len(self.cond_offset) == len(self.cond_encodings) == n:
            problems.append(f"cond_scale, cond_offset and cond_encodings need one value per cond_fields name ({n})")
        if any(not math.isfinite(v) or v == 0 for v in self.cond_scale) \
                or not all(math.isfinite(v) for v in self.cond_offset):
            problems.append(f"cond_scale {list(self.cond_scale)} / cond_offset {list(self.cond_offset)} (accepted: "
                            "finite, scales non-zero)")
        if not set(self.cond_encodings) <= set(COND_ENCODINGS):
            problems.append(f"cond_encodings {list(self.cond_encodings)} (accepted: {COND_ENCODINGS})")
        if self.observe_exposure_gap and "exposure_target" not in self.cond_fields:
            problems.append("observe_exposure_gap needs 'exposure_target' among cond_fields (the gap's target is "
                            "decoded from the cond)")
        return problems

    @property
    def family(self) -> type[ActionFamily]:
        """The action family of :attr:`curve`."""
        return ACTION_FAMILIES.get(self.curve)

    @property
    def n_actions(self) -> int | None:
        """Discrete actions per pixel and alpha channel; None for continuous actions."""
        return len(self.alpha_table) if self.action_type == "discrete" else None

    @property
    def alpha_range(self) -> tuple[float, float]:
        """The lowest and highest alpha an action gives (a map's colour scale)."""
        return (min(self.alpha_table), max(self.alpha_table)) if self.action_type == "discrete" else (-1.0, 1.0)

    def table(self, device: torch.device | str | None = None) -> torch.Tensor:
        """``alpha_table`` as float32 (n,) on ``device`` (made once per device: not to be modified)."""
        return constant_tensor(tuple(self.alpha_table), torch.float32, torch.device(device or "cpu"))

    def alpha(self, actions: torch.Tensor) -> torch.Tensor:
        """The alpha of each action, (B, alpha_channels, H, W): the table's entry of a discrete
        action, a continuous action itself."""
        return self.table(actions.device)[actions] if self.action_type == "discrete" else actions

    # --- the setting encoding ---------------------------------------------------------------
    def _encoding(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        offset = torch.tensor(self.cond_offset, dtype=torch.float32, device=device)
        scale = torch.tensor(self.cond_scale, dtype=torch.float32, device=device)
        log = torch.tensor([e == "log" for e in self.cond_encodings], dtype=torch.bool, device=device)
        return offset, scale, log

    def encode(self, values: torch.Tensor) -> torch.Tensor:
        """Setting values (B, n) in ``cond_fields`` order -> the conditioning vector (B, n) (:func:`encode_setting`)."""
        return encode_setting(values, *self._encoding(values.device))

    def decode(self, cond: torch.Tensor) -> torch.Tensor:
        """The setting values (B, n) of a conditioning vector (B, n) (:func:`decode_setting`)."""
        return decode_setting(cond, *self._encoding(cond.device))

    # --- the step -----------------------------------------------------------------------------
    def limit(self, target: float | torch.Tensor | None,
              w_exposure: float | torch.Tensor | None = None) -> float | torch.Tensor | None:
        """The highest image mean a step may reach for the exposure ``target`` (a number or (B,))
        and, with an ``overshoot_reference``, the exposure weight ``w_exposure`` in use; None: no cap."""
        if self.max_overshoot is None:
            return None
        weighted = self.overshoot_reference is not None
        return overshoot_limit(target, self.max_overshoot, w_exposure if weighted else None,
                               self.overshoot_reference if weighted else None)

    def step(self, image: torch.Tensor, alpha: torch.Tensor,
             limit: float | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of ``image`` (B, 3, H, W) in [0, 1] with the alpha maps of the actions
        (:meth:`alpha`, (B, 1 or 3, H, W)), capped at ``limit`` (:meth:`limit`).

        Returns:
            ``(alpha, image)``: the alpha map applied (coupled, damped, capped) and the next image,
            clamped to [0, 1].
        """
        alpha = couple_channels(alpha, self.channel_coupling) * (1.0 - self.damping)
        alpha, stepped = self.family.step(image, alpha, limit)
        return alpha, stepped.clamp(0.0, 1.0)

    def apply(self, image: torch.Tensor, maps: list[torch.Tensor], *, top: int = 0, height: int | None = None,
              out: torch.Tensor | None = None) -> torch.Tensor:
        """The steps of a rollout's applied alpha maps (:meth:`step`'s, at the working resolution) on the
        full-resolution ``image``, each map upsampled bilinearly (:meth:`ActionFamily.apply`; the native
        kernel for ``"le"`` on the CPU): rows ``top ..`` of an image of ``height`` rows, written to ``out``."""
        return self.family.apply(image, maps, top=top, height=height, out=out)


@dataclass(frozen=True)
class DenoiseTransition(Transition):
    """One step of ``rlenhance/Denoise-v0``, of one of two kinds.

    * Filters (PixelRL; ``level_scales`` empty): per pixel one of ``actions``, PixelRL's filters and,
      with a predictor, ``"predict"`` (the predictor's pixel).
    * Noise-level map (ReLLIE's map for FFDNet; ``level_scales`` given): per pixel the action multiplies a
      noise-level map by one of ``level_scales`` (:meth:`next_level`); the image is the noise-map denoiser's
      output for the noisy image and that map, run once after the last step.

    Attributes:
        predict: the last action takes the predictor's pixel (a supervised denoiser run once per episode);
            required by the noise-level map.
        clip: every state is clamped to [0, 1] (the noisy start included); False: the DnCNN /
            PixelRL protocol, unclipped.
        steps: steps of an episode (None: as :class:`LowLightTransition`'s).
        level_scales: the map's multipliers, index = action id (empty: PixelRL's filters).
        max_level: the highest level of the map, 0-255 scale (the levels the denoiser was trained over).
    """

    task: ClassVar[str] = "denoise"
    _float32_fields: ClassVar[tuple[str, ...]] = ("level_scales",)
    #: The map as the policy reads it: the level (0-255 scale) divided by this.
    LEVEL_PLANE_SCALE: ClassVar[float] = 50.0
    #: Side (pixels, odd) of the square over which the policy's noise strength is averaged.
    STRENGTH_BOX: ClassVar[int] = 9

    predict: bool
    clip: bool
    steps: int | None
    level_scales: tuple[float, ...] = ()
    max_level: float = 75.0

    def _problems(self) -> list[str]:
        problems = super()._problems()
        if self.level_scales:
            if not all(math.isfinite(s) and s > 0 for s in self.level_scales):
                problems.append(f"level_scales {list(self.level_scales)} (accepted: finite numbers > 0)")
            if not self.predict:
                problems.append("level_scales: the noise-level map needs predict (its predictor is the noise-map "
                                "denoiser)")
        if not (math.isfinite(self.max_level) and self.max_level > 0):
            problems.append(f"max_level {self.max_level!r} (accepted: a level > 0, 0-255 scale)")
        return problems

    @property
    def sets_level(self) -> bool:
        """Whether the actions set the noise-level map (else they pick PixelRL's filters)."""
        return bool(self.level_scales)

    @property
    def actions(self) -> tuple[str, ...]:
        """The action names, index = action id."""
        if self.sets_level:
            return tuple(f"level x{s:g}" for s in self.level_scales)
        return PIXELRL_ACTIONS + ((PREDICT_ACTION,) if self.predict else ())

    def start(self, noisy: torch.Tensor) -> torch.Tensor:
        """The first state of a noisy image (clamped with ``clip``)."""
        return noisy.clamp(0.0, 1.0) if self.clip else noisy

    def step(self, image: torch.Tensor, actions: torch.Tensor, prediction: torch.Tensor | None = None) -> torch.Tensor:
        """The next state of ``image`` (B, C, H, W) for per-pixel ``actions`` (B, 1, H, W) (or (B, H, W));
        ``prediction``: the predictor's output (B, C, H, W) when ``predict``. Filters only."""
        image = pixelrl_filter_select(image, actions, validate=False, prediction=prediction)
        return image.clamp_(0.0, 1.0) if self.clip else image

    def next_level(self, level: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The map after per-pixel ``actions`` (integer (B, 1, H, W)): ``level`` (float (B, 1, H, W),
        0-255 scale) times each pixel's scale, clamped to ``[0, max_level]``. Noise-level map only."""
        scales = torch.tensor(self.level_scales, dtype=level.dtype, device=level.device)
        return (level * scales[actions.long()]).clamp_(0.0, self.max_level)

    def level_observation(self, noisy: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """What a noise-level map policy reads besides the noisy image (B, C, H, W): float32
        (B, 2, H, W), the map ``level`` (B, 1, H, W) (0-255 scale) over :data:`LEVEL_PLANE_SCALE`,
        and the log ratio of the noise's local strength ``s`` to the map, ``log((s + 1) / (level + 1))``:
        ``s`` is the mean absolute finest diagonal Haar coefficient over the :data:`STRENGTH_BOX` square
        around the pixel, over ``sqrt(2 / pi)`` (Donoho's estimator)."""
        x = F.pad(noisy, (0, 1, 0, 1), mode="replicate")
        diagonal = (x[..., :-1, :-1] - x[..., :-1, 1:] - x[..., 1:, :-1] + x[..., 1:, 1:]).abs()
        diagonal = diagonal.mean(dim=1, keepdim=True) * (255.0 / 2 / math.sqrt(2 / math.pi))
        box = self.STRENGTH_BOX
        strength = F.avg_pool2d(F.pad(diagonal, (box // 2,) * 4, mode="replicate"), box, stride=1)
        return torch.cat([level / self.LEVEL_PLANE_SCALE, torch.log((strength + 1) / (level + 1))], dim=1)


@dataclass(frozen=True)
class CompletionTransition(Transition):
    """One step of ``rlenhance/Completion-v0``: per hole pixel one fill action of
    :data:`COMPLETION_ACTIONS` (keep, the 4-neighbour mean, a neighbour's value, a 5 x 5 Gaussian
    or median) or, with a predictor, ``"predict"``; pixels outside the hole never change. The hole
    starts filled by ``smooth_iters`` iterations of the diffusion fill (:func:`rlenhance.ops.fill.diffusion_fill`).

    Attributes:
        predict: the last action takes the predictor's pixel (a supervised completion model).
        smooth_iters: iterations of the diffusion fill of the starting state.
        steps: steps of an episode (None: as :class:`LowLightTransition`'s).
    """

    task: ClassVar[str] = "completion"

    predict: bool
    smooth_iters: int
    steps: int | None

    @property
    def actions(self) -> tuple[str, ...]:
        """The action names, index = action id."""
        return COMPLETION_ACTIONS + ((PREDICT_ACTION,) if self.predict else ())

    def start(self, occluded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The first state: the hole (``mask`` (B, 1, H, W), 1 = missing) of ``occluded`` (B, 3, H, W)
        filled by ``smooth_iters`` iterations of the diffusion fill."""
        return diffusion_fill(occluded, mask, smooth_iters=self.smooth_iters)

    @staticmethod
    def candidates(image: torch.Tensor, prediction: torch.Tensor | None = None) -> torch.Tensor:
        """Every action's value at every pixel of ``image`` (B, C, H, W): (B, n_actions, C, H, W) in the
        order of :attr:`actions` (the predictor's ``prediction`` last, when given)."""
        padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
        h, w = image.shape[-2:]
        results = [image, neighbour_mean(image)[0], padded[..., 1:h + 1, 0:w], padded[..., 1:h + 1, 2:w + 2],
                   padded[..., 0:h, 1:w + 1], padded[..., 2:h + 2, 1:w + 1], gaussian_blur2d(image, 5, 1.5),
                   median_blur2d(image, 5)]
        if prediction is not None:
            results.append(prediction)
        return torch.stack(results, dim=1)

    def step(self, image: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor,
             prediction: torch.Tensor | None = None) -> torch.Tensor:
        """The next state: each hole pixel (``mask`` > 0) takes its action's value (:meth:`candidates`),
        the others keep theirs. ``actions``: integer (B, 1, H, W)."""
        chosen = select_per_pixel(self.candidates(image, prediction), actions.long(), validate=False)
        return torch.where(mask > 0, chosen, image)

    def _problems(self) -> list[str]:
        problems = super()._problems()
        if self.smooth_iters < 0:
            problems.append(f"smooth_iters {self.smooth_iters!r} (accepted: >= 0)")
        return problems


#: Every transition class by its task.
TRANSITIONS: Mapping[str, type[Transition]] = MappingProxyType({
    cls.task: cls for cls in (LowLightTransition, DenoiseTransition, CompletionTransition)})
