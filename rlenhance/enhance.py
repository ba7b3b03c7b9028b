"""Inference with a trained low-light policy: ``Enhancer``.

The policy runs greedily on a working image (the photo area-resized to a ``max_side`` square, the scale it
was trained at), producing one alpha map per step. The maps are upsampled bilinearly and the LE curves applied
to the full-resolution image band by band of rows (:func:`rlenhance.ops.le_curves_upsampled`; on the CPU one
pass of a native kernel, uint8 samples in and out, with no float copy of a large photo).

The noise the curves amplify is removed after them by a supervised ``denoiser`` (ReLLIE's denoiser module; a
noise-map one, FFDNet, reads ``noise_sigma / 255`` times the curves' per-pixel gain,
:func:`rlenhance.ops.le_gain`), or else by the clean stage (:func:`rlenhance.ops.clean.clean_enhanced`,
``denoise``), weighted by how much the curves brightened each pixel.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from rlenhance.checkpoint import ALPHA_MODES, SPEC_KEY, LowLightPolicySpec, build_model, load_checkpoint
from rlenhance.checkpoint.specs import in_range
from rlenhance.data.degrade import noise_level_map
from rlenhance.data.transforms import working_square
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.io import _INTEGER_SCALES, as_unit_float
from rlenhance.models.policy import PixelActorCritic
from rlenhance.ops import check_max_overshoot, le_curves_upsampled, native
from rlenhance.ops.clean import DEFAULT_STRENGTH, bands, check_strength, clean_band, knee_start, scratch_plane
from rlenhance.ops.curves import as_unit, store_samples
from rlenhance.restore import SupervisedRestorer
from rlenhance.rollouts import greedy_rollout
from rlenhance.runtime import flush_denormals, select_device
from rlenhance.temporal import TemporalSmoothing
from rlenhance.trace import ActionTrace
from rlenhance.transitions import LE, LowLightTransition

#: The low-light model shipped with the package (trained by experiments.lol_train; see README).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "lowlight_a3c.pt"
#: The dark input's noise level (0-255) a noise-map denoiser trained on Gaussian noise is given by default
#: (``Enhancer(noise_sigma=None)``); chosen on SICE (docs/evaluation.md#constants-chosen-by-measurement).
DARK_NOISE_SIGMA = 4.0


@dataclass
class EnhanceResult:
    """One enhanced image: RGB (H, W, 3), float32 in [0, 1] (or uint8 0-255 when asked for), and what it
    took; ``mean_before`` / ``mean_after``: mean values on the [0, 1] scale."""

    image: np.ndarray
    seconds: float
    mean_before: float
    mean_after: float


class Enhancer:
    """Apply a trained low-light policy to images of any size.

    Args:
        checkpoint: a checkpoint written by ``experiments.lol_train`` (None: the shipped model);
            its :class:`~rlenhance.checkpoint.LowLightPolicySpec` says how to run it.
        device: "auto", "cpu", "cuda" or "cuda:N".
        steps: curve steps at test time (None: the checkpoint transition's ``steps``).
        max_side: side of the square working image on which the policy runs (None: the checkpoint's
            ``max_side``, else 512).
        strip_pixels: pixels per band of rows in which the full-resolution image is worked on
            (bounds the temporaries of the torch path on large photos).
        alpha_mode: "mean" (the expected alpha) or "argmax" (the most probable one) (None: the
            checkpoint's ``alpha_mode``).
        denoiser: a denoising checkpoint of ``experiments.supervised_train`` (path, loaded on
            ``device``) or a :class:`~rlenhance.restore.SupervisedRestorer` of task ``"denoise"``,
            applied after the last curve step; None: no denoising. A noise-map one (``--model ffdnet``)
            also reads the per-pixel noise level of the curve steps.
        noise_sigma: noise-map denoisers only: the dark input's noise level on the 0-255 scale, within
            the checkpoint's trained range [0, sigma] (None: half its ``sigma`` for a denoiser trained on
            amplified dark-level noise, else :data:`DARK_NOISE_SIGMA`); refused otherwise.
        max_overshoot: no curve step lifts the image's mean (at the working resolution) more than
            this above the exposure target (a step that would is scaled down to end there); a number with
            ``0 <= max_overshoot < 1``, or ``math.inf``: no cap. None: the checkpoint's. A cap needs a
            checkpoint that has an exposure target; a weighted cap (``spec.transition.overshoot_reference``)
            becomes ``max_overshoot * sqrt(default / w_exposure)`` (:func:`rlenhance.ops.overshoot_limit`).
        denoise: the strength of the clean stage after the curves (:func:`rlenhance.ops.clean.clean_enhanced`),
            ``0 <= denoise <= 2``; 0: off. None: 1 without a ``denoiser``, 0 with one (which replaces it; a
            ``denoise`` above 0 given with one is refused).

    Attributes:
        spec: the checkpoint's :class:`~rlenhance.checkpoint.LowLightPolicySpec`.
        noise_sigma: the input noise level (0-255) a noise-map denoiser's map is scaled by; None without one.

    Raises:
        CheckpointError: a bad policy checkpoint (not a low-light policy, or a spec that does
            not describe its network), or a ``denoiser`` checkpoint that is not a denoising one
            (the message names the file, its task and the accepted one).
        ValueError: bad ``steps``, ``max_side``, ``strip_pixels``, ``alpha_mode``, ``max_overshoot``,
            ``denoise``, or a ``noise_sigma`` without a noise-map denoiser or outside its trained range.

    Example:
        >>> enhancer = Enhancer()                                        # doctest: +SKIP
        >>> out = enhancer.enhance(load_image("dark.jpg"), exposure=0.5)  # doctest: +SKIP
    """

    def __init__(self, checkpoint: str | Path | None = None, *, device: str = "auto", steps: int | None = None,
                 max_side: int | None = None, strip_pixels: int = 2_000_000, alpha_mode: str | None = None,
                 denoiser: str | Path | SupervisedRestorer | None = None, noise_sigma: float | None = None,
                 max_overshoot: float | None = None, denoise: float | None = None):
        flush_denormals()
        self.device = select_device(device)
        path = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
        ckpt = load_checkpoint(path, map_location="cpu", spec=LowLightPolicySpec)
        spec: LowLightPolicySpec = ckpt["extra"][SPEC_KEY]
        self.policy = build_model(ckpt, {"PixelActorCritic": PixelActorCritic}).to(self.device).eval()
        _check_policy(self.policy, spec, path)
        self.spec = spec
        self.path = path
        self.steps = int(steps if steps is not None else spec.transition.steps)
        if self.steps < 1:
            raise ValueError(f"steps: expected an int >= 1, got {steps!r}")
        max_side = int(max_side if max_side is not None else spec.working_side)
        if max_side < 16 or strip_pixels < 1:
            raise ValueError(f"max_side must be >= 16 and strip_pixels >= 1, got {max_side}, {strip_pixels}")
        alpha_mode = spec.alpha_mode if alpha_mode is None else alpha_mode
        if alpha_mode not in ALPHA_MODES:
            raise ValueError(f"alpha_mode: expected one of {ALPHA_MODES}, got {alpha_mode!r}")
        self.alpha_mode = alpha_mode
        #: The cap on each step's rise of the image mean above the exposure target; None: no cap.
        self.max_overshoot = (spec.transition.max_overshoot if max_overshoot is None
                              else check_max_overshoot(max_overshoot, inf_means_none=True))
        if self.max_overshoot is not None and "exposure_target" not in spec.setting:  # (it holds every cond field)
            raise ValueError(f"max_overshoot: {path} was trained without an exposure target, so there is no "
                             f"target to cap the mean above; accepted for it: None or math.inf (no cap)")
        #: The strength of the clean stage (:func:`rlenhance.ops.clean.clean_enhanced`); 0: off.
        self.denoise = check_strength(denoise) if denoise is not None else 0.0 if denoiser is not None \
            else DEFAULT_STRENGTH
        if denoiser is not None and self.denoise:
            raise ValueError(f"denoise {denoise!r} with a denoiser: the denoiser replaces the clean stage; give one "
                             "(or denoise=0)")
        #: The step the policy runs in: the checkpoint's, with this Enhancer's ``steps`` and cap.
        self.transition: LowLightTransition = dataclasses.replace(spec.transition, steps=self.steps,
                                                                  max_overshoot=self.max_overshoot)
        self.max_side = int(max_side)
        self.strip_pixels = int(strip_pixels)
        if denoiser is None or isinstance(denoiser, SupervisedRestorer):
            self.denoiser = denoiser
        else:
            self.denoiser = SupervisedRestorer(denoiser, device=self.device, task="denoise", noise_map=None)
        if self.denoiser is not None and self.denoiser.task != "denoise":
            raise CheckpointError(f"denoiser {self.denoiser.path}: trained for task {self.denoiser.task!r}; "
                                  "the denoiser must be a checkpoint of task 'denoise'")
        self.noise_sigma = _noise_sigma(self.denoiser, noise_sigma)

    # --- the user's setting --------------------------------------------------------------------
    @property
    def setting_ranges(self) -> dict[str, tuple[float, float]]:
        """``{name: (low, high)}``: the settings this checkpoint was trained to follow (keyword names of
        :meth:`cond`) and the range of each; every other setting is fixed and refused."""
        return {_setting_keyword(name): (float(low), float(high))
                for name, (low, high) in self.spec.setting_ranges.items()}

    def cond(self, **setting: float | None) -> torch.Tensor:
        """Conditioning vector (1, 5) from the training setting overridden by ``setting``
        (``exposure``, ``w_exposure``, ``w_color``, ``w_spatial``, ``w_smooth``; None: the
        training value), encoded as the transition encodes it (:meth:`LowLightTransition.encode`).

        Raises:
            ValueError: naming the setting: an unknown name, a value that is not a number, one this
                checkpoint was not trained to follow (:attr:`setting_ranges`), or one outside its range.
        """
        values = dict(self.spec.setting)
        for key, value in setting.items():
            name = "exposure_target" if key == "exposure" else key
            if name not in values:
                accepted = ["exposure" if k == "exposure_target" else k for k in values]
                raise ValueError(f"{key}: unknown setting; accepted: {', '.join(accepted)}")
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
            value = float(value)
            if name == "exposure_target" and not (math.isfinite(value) and 0 < value < 1):
                raise ValueError(f"exposure: expected a target mean brightness in (0, 1), got {value!r}")
            if name != "exposure_target" and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{key}: expected a finite reward weight >= 0, got {value!r}")
            bounds = self.spec.setting_ranges.get(name)
            if bounds is None:
                raise ValueError(f"{key}: {self._untrained(name)}")
            if not in_range(value, bounds):
                raise ValueError(f"{key}: {value:g} is outside the range this model was trained over, "
                                 f"[{bounds[0]:g}, {bounds[1]:g}] ({self.path.name})")
            values[name] = value
        raw = torch.tensor([[values[k] for k in self.transition.cond_fields]], dtype=torch.float32,
                           device=self.device)
        return self.transition.encode(raw)

    def _untrained(self, name: str) -> str:
        """Why the setting ``name`` (not in the spec's ranges) is refused."""
        value = self.spec.setting[name]
        accepted = ", ".join(f"{k} in [{lo:g}, {hi:g}]" for k, (lo, hi) in self.setting_ranges.items())
        if not accepted:
            return (f"{self.path.name} was trained at one setting (not conditioned), so it cannot follow another "
                    f"{_setting_keyword(name)} (trained with {value:g}); it takes no setting")
        fixed_weights = name.startswith("w_") and not any(k.startswith("w_") for k in self.spec.setting_ranges)
        what = "fixed reward weights" if fixed_weights else f"{_setting_keyword(name)} fixed"
        return (f"{self.path.name} was trained with {what} ({_setting_keyword(name)} = {value:g}), so it cannot "
                f"follow another; it accepts: {accepted}")

    # --- inference -------------------------------------------------------------------------------
    @torch.no_grad()
    def alpha_maps(self, image: torch.Tensor, cond: torch.Tensor) -> list[torch.Tensor]:
        """Greedy rollout at the working resolution; returns one (1, C, h, w) alpha map per step (C: the
        policy's 3 or 1 alpha channels). ``image``: float (1, 3, H, W) in [0, 1]."""
        return self._rollout(working_square(image, self.max_side), cond)

    @torch.no_grad()
    def capped_steps(self, image: np.ndarray, **setting: float | None) -> list[bool]:
        """Per curve step of the rollout on ``image`` (as in :meth:`enhance_array`) with ``setting``, whether the
        brightness cap (:attr:`max_overshoot`) cut it (scaled the policy's step down). All False without a cap."""
        if not (isinstance(image, np.ndarray) and image.dtype in (np.uint8, np.uint16)):
            image = as_unit_float(image)
        cond = self.cond(**setting)
        limit = self._target_and_limit(cond)[1]
        chosen: list[torch.Tensor] = []
        current = _working_image(np.ascontiguousarray(image), self.max_side, self.strip_pixels).to(self.device)
        self._rollout(current, cond, chosen=chosen)
        cut = []
        for alpha in chosen:  # the rollout's steps again, from the alphas the policy chose
            if self.policy.downscale > 1:
                alpha = self.policy.upsample(alpha, *current.shape[-2:])
            free = self.transition.step(current, alpha)[0]
            applied, current = self.transition.step(current, alpha, limit)
            cut.append(not torch.equal(applied, free))
        return cut

    def _rollout(self, small: torch.Tensor, cond: torch.Tensor, chosen: list[torch.Tensor] | None = None
                 ) -> list[torch.Tensor]:
        """:meth:`alpha_maps` of the image at the working resolution, ``small`` (``chosen``: as
        :func:`greedy_rollout`'s)."""
        target, limit = self._target_and_limit(cond)
        return greedy_rollout(self.policy, small, cond, transition=self.transition, alpha_mode=self.alpha_mode,
                              exposure_target=target, mean_limit=limit, chosen=chosen)[1]

    def _target_and_limit(self, cond: torch.Tensor) -> tuple[torch.Tensor | float | None, torch.Tensor | float | None]:
        """The exposure target of the setting ``cond`` and the cap's limit on the image mean (None: no cap)."""
        transition = self.transition
        fields = transition.cond_fields
        decoded = transition.decode(cond) if fields else None

        def setting(name: str) -> torch.Tensor | float | None:  # (B,) decoded from cond, or the fixed value
            return decoded[:, fields.index(name)] if name in fields else self.spec.setting.get(name)

        target = setting("exposure_target")
        return target, transition.limit(target, setting("w_exposure"))

    def knee(self, exposure: float | None = None) -> float:
        """Where the clean stage's highlight knee starts for the exposure target ``exposure`` (None: the
        checkpoint's; :func:`rlenhance.ops.clean.knee_start`)."""
        return knee_start(self.spec.setting.get("exposure_target") if exposure is None else exposure)

    @torch.no_grad()
    def enhance_array(self, image: np.ndarray, *, dtype: type | np.dtype = np.float32,
                      temporal: TemporalSmoothing | None = None, **setting: float | None) -> EnhanceResult:
        """Enhance one RGB image (H, W, 3); see :meth:`cond` for ``setting``.

        ``image``: float values in [0, 1], or uint8 / uint16 samples scaled by their range (checked by
        :func:`rlenhance.io.as_unit_float`; else an ImageError); integer samples are read band by band,
        with no float copy. ``dtype``: of the result, ``np.float32`` (values in [0, 1]) or ``np.uint8``
        (``round(255 v)``, the levels :func:`rlenhance.io.save_image` writes). A :attr:`denoiser` runs on
        the result of the last curve step; without one, a :attr:`denoise` above 0 runs the clean stage.
        ``temporal``: the state of the clip ``image`` is a frame of (:class:`TemporalSmoothing`)."""
        if np.dtype(dtype) not in (np.float32, np.uint8):
            raise ValueError(f"dtype: expected np.float32 or np.uint8, got {dtype!r}")
        if not (isinstance(image, np.ndarray) and image.dtype in (np.uint8, np.uint16)):
            image = as_unit_float(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
            raise ImageError(f"image: expected an RGB array (H, W, 3), got shape {image.shape}"
                             + (" (channels first? use np.transpose(image, (1, 2, 0)))"
                                if image.ndim == 3 and image.shape[0] == 3 else ""))
        start = time.perf_counter()
        # torch.from_numpy warns on a read-only array: copied
        image = np.ascontiguousarray(image) if image.flags.writeable else image.copy()
        height, width = image.shape[:2]
        small = _working_image(image, self.max_side, self.strip_pixels)
        cond = self.cond(**setting)
        maps = self._rollout(small.to(self.device), cond)
        if temporal is not None:
            maps = temporal.blend(small.to(self.device), maps, self._target_and_limit(cond)[1],
                                  family=self.transition.family)
        floats = self.denoiser is not None or temporal is not None  # work left on the float result
        scratch: dict = {} if temporal is None else temporal.scratch  # a clip's frames share working planes
        if floats and temporal is not None and np.dtype(dtype) != np.float32:
            out = scratch_plane(scratch, "result", image.shape)
        else:
            out = np.empty(image.shape, dtype=np.float32 if floats else dtype)
        gain = scratch_plane(scratch, "gain", image.shape) if self.noise_sigma is not None else None
        source, target = _as_batch(image), _as_batch(out)
        gains = None if gain is None else _as_batch(gain)
        rows = max(1, self.strip_pixels // width)
        if self.denoise > 0:  # the curves of each band and its halo rows in floats, then the clean stage
            knee = self.knee(setting.get("exposure"))
            for top, bottom, lo, hi in bands(height, rows, self.denoise):
                curved = scratch_plane(scratch, "curved", (hi - lo, width, 3))
                self.transition.apply(source[..., lo:hi, :].to(self.device), maps, top=lo, height=height,
                                      out=_as_batch(curved))
                clean_band(image[lo:hi], curved, self.denoise, top - lo, bottom - top, out[top:bottom], knee=knee,
                           scratch=scratch)
        else:
            for top in range(0, height, rows):
                band = slice(top, min(height, top + rows))
                if gains is None:
                    self.transition.apply(source[..., band, :].to(self.device), maps, top=top, height=height,
                                          out=target[..., band, :])
                else:  # a noise-map denoiser's map: the curves' per-pixel gain
                    _gain_steps(self.transition, source[..., band, :].to(self.device), maps, top, height,
                                target[..., band, :], gains[..., band, :])
        if self.denoiser is not None:
            levels = None if gain is None else noise_level_map(torch.from_numpy(gain), self.noise_sigma).numpy()
            # a gray plain denoiser: R, G and B separately; a gray noise-map one: the opponent colour planes
            out = self.denoiser.restore(out, per_channel=not self.denoiser.needs_noise_map, noise_map=levels)
        factor = 1.0 if temporal is None else temporal.gain(_unit_mean(out))
        if out.dtype != np.dtype(dtype):  # the levels of the float result (rounded half to even, as saved)
            out = cv2.convertScaleAbs(out, alpha=255.0 * factor)
        elif factor != 1.0:
            np.clip(cv2.multiply(out, factor, dst=out), 0.0, 1.0, out=out)
        return EnhanceResult(out, time.perf_counter() - start, _unit_mean(image), _unit_mean(out))

    def enhance(self, image: np.ndarray, **setting: float | None) -> np.ndarray:
        """Enhanced RGB float32 (H, W, 3) in [0, 1] of one image (same size); input as in :meth:`enhance_array`."""
        return self.enhance_array(image, **setting).image

    #: Low-light enhancement reads no mask (the :class:`~rlenhance.restore.Restorer` interface).
    takes_mask = False

    def restore(self, image: np.ndarray, *, mask: np.ndarray | None = None, dtype: type | np.dtype = np.float32,
                **setting: float | None) -> np.ndarray:
        """:meth:`enhance_array` as a :class:`~rlenhance.restore.Restorer`: RGB (H, W, 3), float32 in
        [0, 1] or its uint8 levels (``dtype``).

        Raises:
            ImageError: a bad image (as in :meth:`enhance_array`), or a ``mask`` (none is read).
            ValueError: another ``dtype``.
        """
        if mask is not None:
            raise ImageError(f"mask: given, but {self.path} is a low-light policy that takes no mask")
        return self.enhance_array(image, dtype=dtype, **setting).image

    @property
    def action_values(self) -> tuple[float, ...]:
        """The alphas a trace names (:meth:`restore_traced`): the alpha table of a discrete policy; for
        a continuous one, :data:`CONTINUOUS_ALPHAS`."""
        return self.transition.alpha_table if self.transition.action_type == "discrete" else CONTINUOUS_ALPHAS

    def restore_traced(self, image: np.ndarray, *, mask: np.ndarray | None = None,
                       **setting: float | None) -> tuple[np.ndarray, ActionTrace]:
        """:meth:`restore` and what the policy did (:meth:`action_trace`)."""
        return self.restore(image, mask=mask, **setting), self.action_trace(image, **setting)

    @torch.no_grad()
    def action_trace(self, image: np.ndarray, **setting: float | None) -> ActionTrace:
        """What the policy does on ``image`` (as in :meth:`enhance_array`) with ``setting``: at each step,
        the alpha it chooses for each block of its working resolution (per alpha channel), before coupling,
        damping and cap, as the nearest of :attr:`action_values`."""
        if not (isinstance(image, np.ndarray) and image.dtype in (np.uint8, np.uint16)):
            image = as_unit_float(image)
        chosen: list[torch.Tensor] = []
        small = _working_image(np.ascontiguousarray(image), self.max_side, self.strip_pixels)
        self._rollout(small.to(self.device), self.cond(**setting), chosen=chosen)
        values = torch.tensor(self.action_values, dtype=torch.float32, device=self.device)
        ids = [(alpha[0, ..., None] - values).abs().argmin(dim=-1) for alpha in chosen]  # (C, h, w) each
        names = tuple(f"α {v:+.2f}" for v in self.action_values)
        return ActionTrace(names, torch.stack(ids).cpu().numpy().astype(np.int16), values=self.action_values)


#: The alphas a continuous low-light policy's choices are shown as (:meth:`Enhancer.restore_traced`).
CONTINUOUS_ALPHAS = tuple(round(a / 10, 1) for a in range(-10, 11))


def _gain_steps(transition: LowLightTransition, x: torch.Tensor, maps: list[torch.Tensor], top: int, height: int,
                out: torch.Tensor, gain: torch.Tensor) -> None:
    """:meth:`LowLightTransition.apply` of the rows ``top ..`` of ``x`` into ``out``, and into ``gain`` how much
    the steps brightened each pixel and channel: the product of :func:`rlenhance.ops.le_gain` over the LE
    steps (exact for black pixels), ``output / input`` for another action family."""
    if transition.curve == LE.name:
        le_curves_upsampled(x, maps, top=top, height=height, out=out, gain=gain)
        return
    stepped = transition.apply(x, maps, top=top, height=height)
    gain.copy_(stepped / as_unit(x).clamp_min(1.0 / 255))
    store_samples(stepped, out)


def _check_policy(policy: PixelActorCritic, spec: LowLightPolicySpec, path: Path) -> None:
    """Raise CheckpointError unless ``spec`` describes ``policy`` (action count, alpha channels, cond width)."""
    problems = []
    transition = spec.transition
    if policy.n_actions != transition.n_actions:
        problems.append(f"action_type {transition.action_type!r} with {len(transition.alpha_table)} alpha_table "
                        f"values for a network with n_actions={policy.n_actions}")
    if policy.out_channels != transition.alpha_channels:
        problems.append(f"alpha_channels {transition.alpha_channels} for a network with out_channels="
                        f"{policy.out_channels}")
    if policy.cond_dim not in (0, len(transition.cond_fields)):
        problems.append(f"{len(transition.cond_fields)} cond_fields for cond_dim={policy.cond_dim}")
    if problems:
        raise CheckpointError(f"checkpoint {path}: its LowLightPolicySpec does not describe its network: "
                              + "; ".join(problems))


def _noise_sigma(denoiser: SupervisedRestorer | None, noise_sigma: float | None) -> float | None:
    """The input noise level (0-255) a noise-map ``denoiser`` reads (:class:`Enhancer`'s ``noise_sigma``);
    None without one. Raises ValueError for a ``noise_sigma`` it does not read or out of its range."""
    if denoiser is None or not denoiser.needs_noise_map:
        if noise_sigma is not None:
            what = "no denoiser is given" if denoiser is None else \
                f"the denoiser {denoiser.path} is a plain one ({denoiser.model_name}), which reads no noise-level map"
            raise ValueError(f"noise_sigma: read by a noise-map denoiser only (supervised_train --model ffdnet); "
                             f"{what}")
        return None
    trained = float(denoiser.spec.sigma)
    if noise_sigma is None:
        return trained / 2 if denoiser.spec.noise == "amplified" else min(DARK_NOISE_SIGMA, trained)
    if isinstance(noise_sigma, bool) or not isinstance(noise_sigma, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(noise_sigma) and 0 <= noise_sigma <= trained):
        raise ValueError(f"noise_sigma: expected a number in [0, {trained:g}] (0-255 scale: the range of input noise "
                         f"levels {denoiser.path} was trained over), got {noise_sigma!r}")
    return float(noise_sigma)


def _setting_keyword(name: str) -> str:
    """A spec's setting name as :meth:`Enhancer.cond` takes it (``exposure_target`` -> ``exposure``)."""
    return "exposure" if name == "exposure_target" else name


def _working_image(image: np.ndarray, side: int, band_pixels: int) -> torch.Tensor:
    """:func:`~rlenhance.data.transforms.working_square` of an RGB array (H, W, 3) (float32 in [0, 1],
    or uint8 / uint16 samples) as a float32 CPU tensor (1, 3, side, side), without a float copy of a large
    image (native kernel, or at most about ``band_pixels`` pixels converted at a time)."""
    height, width = image.shape[:2]
    if side <= min(height, width) and (side, side) != (height, width) and native.available():
        return native.area_downscale_native(_as_batch(image)[0], (side, side))[None]
    scale = _INTEGER_SCALES.get(image.dtype)

    def as_float(rows: slice) -> torch.Tensor:
        band = torch.from_numpy(image[rows]).permute(2, 0, 1).unsqueeze(0)
        band = band.to(torch.float32).div_(scale) if scale is not None else band
        return band.contiguous()

    if height * width <= band_pixels or (side, side) == (height, width):
        return working_square(as_float(slice(None)), side)
    # output row i averages input rows floor(i H / side) .. ceil((i + 1) H / side) - 1 (adaptive pooling)
    return torch.cat([F.adaptive_avg_pool2d(as_float(slice(i * height // side, -(-(i + 1) * height // side))),
                                            (1, side)) for i in range(side)], dim=-2)


def _as_batch(image: np.ndarray) -> torch.Tensor:
    """An (H, W, C) array as a (1, C, H, W) tensor view of the same memory."""
    return torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)


def _unit_mean(image: np.ndarray) -> float:
    """Mean value of an (H, W, 3) image on the [0, 1] scale (integer samples divided by their full scale)."""
    if image.dtype in _INTEGER_SCALES:  # OpenCV's sums: exact, and faster than numpy's
        return sum(cv2.sumElems(image)) / (image.size * _INTEGER_SCALES[image.dtype])
    if image.dtype == np.float32:
        return sum(cv2.sumElems(image)) / image.size
    return float(image.mean())

