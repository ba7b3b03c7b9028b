"""Every denoiser behind one entry point, :func:`load_denoiser`, and the RL denoisers as library
restorers (no env, no agent): each is a :class:`rlenhance.restore.Restorer`.

==========  ===========================================  =======================  ===========================
``model``   trained by (the checkpoint's spec)           restorer                 defaults (gray; colour)
==========  ===========================================  =======================  ===========================
``mrpnet``  ``experiments.supervised_train --task        SupervisedRestorer       ``mrpnet_denoise.pt``;
            denoise`` (SupervisedSpec; any plain                                  ``mrpnet_denoise_color.pt``
            supervised denoiser: MRPNet, PixelRNN)
``ffdnet``  ``experiments.supervised_train --model       :class:`NoiseLevel       ``ffdnet_denoise.pt``;
            ffdnet --task denoise`` (SupervisedSpec of   Denoiser` (a             ``ffdnet_denoise_color.pt``
            a noise-map denoiser)                        SupervisedRestorer)
``a3c``     ``experiments.denoise_train``                :class:`PolicyDenoiser`  none;
            (RolloutPolicySpec, task ``denoise``)                                 ``a3c_denoise_color.pt``
``sac``     ``experiments.denoise_train --agent sac``    :class:`PolicyDenoiser`  none;
            (the same)                                                            ``sac_denoise_color.pt``
``rse``     ``experiments.rse_train`` (RSEDenoiserSpec)  ``rse.RSERestorer``      none
==========  ===========================================  =======================  ===========================

An ``ffdnet`` reads a noise-level map: :class:`NoiseLevelDenoiser` gives it the constant map of ``sigma``,
or of each image's estimated level (blind). The supervised denoisers the RL models build on live in
:mod:`rlenhance.predictors`. The models, loaders and defaults are the ``denoise`` entries of
:mod:`rlenhance.registry`; a missing default is a :class:`~rlenhance.errors.CheckpointError` that says how to
train it, and a checkpoint of another kind is refused with a message naming the ``model`` that loads it.

Channels (``restore(image, per_channel=...)``): a colour model given a gray image denoises it replicated to
RGB; a gray model given an RGB image denoises R, G and B separately with ``per_channel=True``, and without it
``mrpnet`` denoises the BT.601 luma, ``ffdnet`` the opponent colour planes, while the RL models refuse the
image (an :class:`~rlenhance.errors.ImageError`).

Example:
    >>> denoiser = load_denoiser("mrpnet", channels=1)                   # doctest: +SKIP
    >>> clean = denoiser.restore(noisy_rgb, per_channel=True)            # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch
from torch import Tensor

from rlenhance import registry
from rlenhance.checkpoint import SPEC_KEY, RolloutPolicySpec, build_model, load_checkpoint
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.io import as_unit_float
from rlenhance.io.arrays import RESULT_DTYPES, as_result, unit_window
from rlenhance.models.policy import PixelActorCritic, act, acting_radius
from rlenhance.ops.actions import PIXELRL_ACTION_TABLE
from rlenhance.ops.tiling import on_grid, tiled
from rlenhance.plugins import is_import_path
from rlenhance.predictors import (
    DenoisePredictor,
    NoiseLevelDenoiser,
    check_predictor_ensemble,
    find_predictor,
    restore_one,
)
from rlenhance.restore import Restorer, as_hwc_image, check_ensemble
from rlenhance.rollouts import PolicyRollouts
from rlenhance.runtime import flush_denormals, select_device
from rlenhance.trace import ActionTrace
from rlenhance.transitions import DenoiseTransition

__all__ = ["DEFAULT_DENOISER", "DENOISER_CHECKPOINTS", "DENOISER_MODELS", "DenoisePredictor", "NoiseLevelDenoiser",
           "PlanesDenoiser", "PolicyDenoiser", "SUPERVISED_DENOISERS", "check_predictor_ensemble", "default_denoiser",
           "denoiser_kind", "find_predictor", "load_denoiser"]

#: The ``model`` names :func:`load_denoiser` accepts (:mod:`rlenhance.registry`'s denoise methods).
DENOISER_MODELS = registry.names("denoise")
#: The model :func:`load_denoiser` and ``rlenhance denoise`` use when none is named.
DEFAULT_DENOISER = registry.DEFAULTS["denoise"]
#: The models that serve a colour image with a gray checkpoint without ``per_channel`` (module docstring).
SUPERVISED_DENOISERS = tuple(m.name for m in registry.methods("denoise", learned=True)
                             if m.gray_on_colour not in ("", "refuse"))
#: The default checkpoint of each ``(model, channels)``: gray (1) and colour (3) files in ``rlenhance/weights/``.
DENOISER_CHECKPOINTS = MappingProxyType({
    (m.name, planes): registry.WEIGHTS / name for m in registry.methods("denoise", learned=True)
    for planes, name in m.weights.items()
})
#: The env whose transition a filter-bank denoising policy was trained in (its spec's ``env_id``).
_DENOISE_ENV_ID = "rlenhance/Denoise-v0"
#: Radius of PixelRL's filter windows: what one step of the filter bank reads around a pixel.
_FILTER_RADIUS = max(int(dict(action.params).get("ksize", dict(action.params).get("d", 1)))
                     for action in PIXELRL_ACTION_TABLE) // 2
_GRAY, _RGB = 1, 3


def default_denoiser(model: str, channels: int, *, option: str = "checkpoint=PATH") -> Path:
    """The default checkpoint of ``model`` for images of ``channels`` planes (:data:`DENOISER_CHECKPOINTS`).

    ``option``: how the caller gives a checkpoint instead, named in the error.

    Raises:
        ValueError: an unknown ``model`` or ``channels`` not 1 or 3.
        CheckpointError: none ships, or the file is not installed (the message says how to train one).
    """
    if model not in DENOISER_MODELS:
        raise ValueError(f"model: expected one of {DENOISER_MODELS}, got {model!r}")
    if channels not in (_GRAY, _RGB):
        raise ValueError(f"channels: expected 1 (gray) or 3 (RGB), got {channels!r}")
    method = registry.find("denoise", model)
    try:
        return registry.default_weights(method, channels, option=option)
    except CheckpointError as exc:
        hints = {"--checkpoint PATH": "--per-channel",
                 "checkpoint=PATH": "channels=1 and restore(..., per_channel=True)"}
        if channels == _GRAY or option not in hints or _GRAY not in method.weights:
            raise
        gray = hints[option]
        raise CheckpointError(f"{exc}; or denoise R, G and B separately with the gray model ({gray})") from None


# --- the channel rules shared by the RL denoisers -------------------------------------------------
class PlanesDenoiser:
    """The Restorer interface and channel rules (module docstring) around ``_denoise``, shared by the RL denoisers."""

    channels: int
    device: torch.device
    path: Path
    #: How messages name the model (e.g. "a3c denoising policy").
    label: str

    @property
    def takes_mask(self) -> bool:
        """Denoisers take no mask."""
        return False

    def restore(self, image: np.ndarray, *, mask: np.ndarray | None = None, per_channel: bool = False,
                dtype: type | np.dtype = np.float32) -> np.ndarray:
        """Denoise one image.

        Args:
            image: as :meth:`rlenhance.restore.Restorer.restore`.
            mask: refused (denoisers take none).
            per_channel: a gray model on an RGB image: denoise R, G and B separately (required there).
            dtype: of the result, ``np.float32`` or ``np.uint8``.

        Returns:
            (H, W, C_out) of ``dtype``, float32 in [0, 1], C_out = max(C, the model's channels).

        Raises:
            ImageError: a bad image, a mask, or an RGB image for a gray model without ``per_channel``.
            ValueError: another ``dtype``.
        """
        return restore_one(self, image, mask, per_channel, dtype)

    def restore_traced(self, image: np.ndarray, *, mask: np.ndarray | None = None,
                       per_channel: bool = False) -> tuple[np.ndarray, ActionTrace]:
        """:meth:`restore` and the action of every pixel at every step (:class:`~rlenhance.trace.ActionTrace`)."""
        if mask is not None:
            raise ImageError(f"mask: given, but {self.path} is a denoiser, which takes no mask")
        x = torch.from_numpy(as_hwc_image(image, noisy=True)).permute(2, 0, 1)[None]
        with torch.inference_mode():
            out, maps = self._restore(x, per_channel, traced=True)
        trace = ActionTrace(self.action_names, maps.permute(1, 0, 2, 3).cpu().numpy().astype(np.int16))
        return np.ascontiguousarray(out[0].permute(1, 2, 0).cpu().numpy(), dtype=np.float32), trace

    @torch.inference_mode()
    def restore_tensor(self, x: Tensor, *, per_channel: bool = False, dtype: torch.dtype = torch.float32) -> Tensor:
        """Batched :meth:`restore`: float (B, C, H, W) (or uint8 / uint16), C in {1, 3} -> (B, C_out, H, W) on
        ``x``'s device, float32 in [0, 1] or uint8 (``dtype``)."""
        return self._restore(x, per_channel, dtype=dtype)[0]

    def _restore(self, x: Tensor, per_channel: bool, traced: bool = False,
                 dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor | None]:
        """:meth:`restore_tensor`, and with ``traced`` the action ids (B * planes, steps, H, W) (else None)."""
        if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] not in (_GRAY, _RGB) or x.numel() == 0 \
                or not (x.is_floating_point() or x.dtype in (torch.uint8, torch.uint16)):
            raise ImageError(f"image: expected a float (or uint8 / uint16) tensor (B, C, H, W) with C in {{1, 3}}; got "
                             f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
        if dtype not in RESULT_DTYPES.values():
            raise ValueError(f"dtype: expected torch.float32 or torch.uint8, got {dtype!r}")
        if x.is_floating_point():  # samples are converted where they are read
            x = as_unit_float(x, allow_tensor=True, noisy=True).float()
        batch, planes = x.shape[:2]
        if self.channels == _RGB and planes == _GRAY:
            x = x.expand(-1, _RGB, -1, -1)
        elif self.channels == _GRAY and planes == _RGB:
            if not per_channel:
                raise ImageError(f"image: an RGB image, and {self.path} is a gray (1-channel) {self.label}; denoise "
                                 "R, G and B separately with it (per_channel=True, rlenhance denoise --per-channel) "
                                 "or give a colour (3-channel) checkpoint")
            x = x.reshape(batch * _RGB, 1, *x.shape[-2:])
        maps = None
        if traced:
            out, maps = self._denoise_traced(unit_window(x.to(self.device)))
        else:
            out = self._denoise(x.to(self.device), dtype)
        out = out.to(x.device)
        return out.reshape(batch, -1, *out.shape[-2:]), maps

    #: The names of the actions :meth:`_denoise_traced` reports, index = id.
    action_names: tuple[str, ...]

    def _denoise(self, x: Tensor, dtype: torch.dtype) -> Tensor:
        """The denoised batch ``x`` (float32, or samples), clamped to [0, 1], as ``dtype`` (:func:`as_result`)."""
        raise NotImplementedError

    def _denoise_traced(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`_denoise` and the action ids, int64 (B, steps, H, W), of every pixel at every step."""
        raise NotImplementedError


# --- PixelRL filter-bank policies (A3C, SAC) ------------------------------------------------------
class PolicyDenoiser(PlanesDenoiser, PolicyRollouts):
    """A PixelRL filter-bank denoising policy (A3C or SAC, ``experiments.denoise_train``) as a
    :class:`rlenhance.restore.Restorer`, no env or agent needed.

    ``restore`` runs the checkpoint's ``steps`` greedy steps of its
    :class:`~rlenhance.transitions.DenoiseTransition` (the ConvGRU state carried), with the policy's
    predictor (:func:`find_predictor`) when it was trained with one; the output equals a greedy rollout of
    the env built from the checkpoint. A noise-level map policy (``level_scales``) scales its predictor's
    noise-level map per pixel at each step; the predictor then runs once on the final map.

    Large images run in tiles whose margin covers what the rollout reads around a pixel (``steps`` x the
    policy's :func:`~rlenhance.models.policy.acting_radius` and the filters' radius, plus the predictor's
    margin); the result equals a whole-image pass up to float rounding. Policies with a supervised
    backbone run whole.

    Args:
        checkpoint: a checkpoint of ``experiments.denoise_train`` (its
            :class:`~rlenhance.checkpoint.RolloutPolicySpec`, task ``denoise``).
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        tile: side of the tiles' core in pixels (rounded up to a multiple of ``downscale``).
        agent: ``"a3c"`` or ``"sac"``: refuse a checkpoint that records another trainer; None accepts either.
        level_map: True: refuse a filter policy; False: refuse a noise-level map policy; None: accept either.
        ensemble: the self-ensemble of the policy's predictor (a policy without a predictor takes 1 only).

    Attributes:
        policy: the actor, in eval mode, on ``device``.
        spec: the checkpoint's spec; ``channels``, ``steps``, ``block_actions`` and ``clip`` repeat it.
        channels: planes the policy denoises (1 gray, 3 RGB).
        agent: the trainer the checkpoint records (``"a3c"``, ``"sac"``), or None.
        overlap: the tiles' margin (None: whole images), tile: the tiles' core.

    Raises:
        CheckpointError: the file is missing or broken, not a denoising policy, a policy the filter-bank
            transition cannot run, or one of another ``agent`` or kind (``level_map``).
        ValueError: bad ``device``, ``tile``, ``agent``, ``level_map`` or ``ensemble``.
    """

    #: the trainer the checkpoint records (``"a3c"``, ``"sac"``), or None (also a policy in memory)
    agent: str | None = None

    def __init__(self, checkpoint: str | os.PathLike[str], *, device: str | torch.device = "auto", tile: int = 512,
                 agent: str | None = None, level_map: bool | None = None, ensemble: int = 1):
        flush_denormals()
        if agent not in (None, "a3c", "sac"):
            raise ValueError(f"agent: expected 'a3c', 'sac' or None, got {agent!r}")
        if level_map not in (None, True, False):
            raise ValueError(f"level_map: expected True, False or None, got {level_map!r}")
        device = select_device(device)
        path = Path(checkpoint)
        ckpt = load_checkpoint(path, map_location="cpu", spec=RolloutPolicySpec)
        spec: RolloutPolicySpec = ckpt["extra"][SPEC_KEY]
        recorded = ckpt["extra"].get("algorithm")
        self.agent = recorded if recorded in ("a3c", "sac") else None
        if spec.task != "denoise" or spec.env_id != _DENOISE_ENV_ID:
            raise CheckpointError(f"checkpoint {path}: a {spec.task} policy of {spec.env_id}; a denoising policy "
                                  f"of {_DENOISE_ENV_ID} is needed (python -m experiments.denoise_train)")
        if agent is not None and self.agent is not None and self.agent != agent:
            raise CheckpointError(f"checkpoint {path}: a denoising policy trained by {self.agent.upper()} "
                                  f"(denoise_train --agent {self.agent}); an {agent.upper()} one was asked for")
        if level_map is not None and spec.transition.sets_level != level_map:
            kinds = {True: ("a noise-level map policy", "denoise_train --preset noise-map"),
                     False: ("a filter policy", "PixelRL's filters, denoise_train")}
            (found, trained_by), (asked, _) = kinds[spec.transition.sets_level], kinds[level_map]
            raise CheckpointError(f"checkpoint {path}: {found} ({trained_by}); {asked} was asked for")
        predictor = DenoisePredictor.for_policy(spec, checkpoint=path, device=device, ensemble=ensemble)
        self._setup(build_model(ckpt, {"PixelActorCritic": PixelActorCritic}).to(device).eval(), spec, predictor, tile,
                    path)

    def _setup(self, policy: PixelActorCritic, spec: RolloutPolicySpec, predictor: DenoisePredictor | None,
               tile: int, path: Path) -> None:
        """The policy, its spec's transition, its predictor and the tiling, checked to fit one another."""
        self._adopt(policy, spec, predictor, tile, path)
        #: The step the policy runs in (the checkpoint's :class:`~rlenhance.transitions.DenoiseTransition`).
        self.transition: DenoiseTransition = spec.transition
        self.channels: int = spec.channels
        n_actions = len(self.transition.actions)
        #: whether the policy reads the predictor's output next to the image (denoise_train --observe-prediction)
        self.observe_prediction: bool = bool(spec.env_kwargs.get("observe_prediction", False))
        sets_level = self.transition.sets_level
        planes = self.channels * (2 if self.observe_prediction else 1) + (2 if sets_level else 0)
        if policy.n_actions != n_actions or policy.cond_dim or policy.in_channels != planes:
            actions = (f"{n_actions} scales of the predictor's noise-level map" if sets_level else
                       f"PixelRL's {len(PIXELRL_ACTION_TABLE)} filters{' and the predictor' if spec.predictor else ''} "
                       f"({n_actions} actions)")
            seen = (" and the map" if sets_level else " and the prediction" if self.observe_prediction else " alone")
            raise CheckpointError(f"checkpoint {path}: a PixelActorCritic({policy.arch()['kwargs']}) with env "
                                  f"{dict(spec.env_kwargs)} is not a policy over {actions} on the "
                                  f"{'gray' if self.channels == _GRAY else 'RGB'} image{seen} ({planes} input "
                                  "plane(s))")
        self.steps: int = self.transition.steps
        self.block_actions: bool = spec.block_actions and policy.downscale > 1
        #: the supervised denoiser whose pixel action 9 takes (denoise_train --predictor), or None
        self.predictor: DenoisePredictor | None = predictor
        self.clip: bool = self.transition.clip
        self.label = f"{self.agent or 'RL'} denoising policy"
        # the margin: what the steps read (a noise-level map policy's steps filter nothing) plus the predictor's
        radius = acting_radius(policy)
        if radius is not None:
            radius = self.steps * (radius + (0 if sets_level else _FILTER_RADIUS))
            radius += self.predictor.overlap if self.predictor is not None else 0
        multiple = math.lcm(policy.downscale, self.predictor.stride if self.predictor is not None else 1)
        self.tile, self.overlap = on_grid(tile, radius, multiple)

    @property
    def action_names(self) -> tuple[str, ...]:
        """The actions of its transition (PixelRL's filters, ``predict``, or the scales of the noise-level map)."""
        return self.transition.actions

    def _denoise(self, x: Tensor, dtype: torch.dtype) -> Tensor:
        return self._tiled(lambda window, level: as_result(self.rollout(window, level=level), dtype), x)

    def _denoise_traced(self, x: Tensor) -> tuple[Tensor, Tensor]:
        def traced(window: Tensor, level: Tensor | None) -> Tensor:  # the image and its actions, tiled as one
            actions: list[Tensor] = []
            image = self.rollout(window, level=level, actions=actions)
            return torch.cat([image, *(a.to(image.dtype) for a in actions)], dim=1)

        both = self._tiled(traced, x)
        return both[:, :x.shape[1]], both[:, x.shape[1]:].round().long()

    def _tiled(self, rollout: Callable[[Tensor, Tensor | None], Tensor], x: Tensor) -> Tensor:
        """``rollout(window, level)`` over the float32 tiles of ``x`` (whole without a tile margin); a predictor
        that reads a noise level gets each image's, estimated once on the whole image."""
        level = None
        if self.predictor is not None and self.predictor.reads_level:
            level = self.predictor.levels(self.transition.start(x) if x.is_floating_point() else x)

        def window_fn(window: Tensor) -> Tensor:
            return rollout(unit_window(window), level)

        if self.overlap is None:
            return window_fn(x)
        return tiled(window_fn, x, tile=self.tile, overlap=self.overlap)

    def rollout_batch(self, noisy: Tensor, *, actions: list[Tensor] | None = None) -> Tensor:
        """:meth:`rollout` of noisy images (B, channels, H, W), whole: what the env's greedy rollout gives."""
        return self.rollout(noisy.to(self.device), actions=actions)

    def rollout(self, x: Tensor, prediction: Tensor | None = None, *, level: Tensor | None = None,
                actions: list[Tensor] | None = None) -> Tensor:
        """The greedy rollout of one batch (B, channels, H, W) on :attr:`device`, whole: float32 in [0, 1].

        ``prediction``: the predictor's output for ``x`` (None: computed here). ``level``: each image's noise
        level (float (B, 1, 1, 1), 0-255) for a predictor that reads one (None: estimated). ``actions``: a list
        that gets each step's action ids, int64 (B, 1, H, W).
        """
        image = self.transition.start(x)
        if self.transition.sets_level:
            return self._level_rollout(image, level, actions)
        if prediction is None and self.predictor is not None:
            prediction = self.predictor(image, level=level)
        hidden = None
        for _ in range(self.steps):
            seen = {"image": image, "prediction": prediction} if self.observe_prediction else {"image": image}
            chosen, hidden = self._act(seen, hidden, actions)
            image = self.transition.step(image, chosen, prediction)
        return image.clamp(0.0, 1.0)

    def _act(self, seen: dict[str, Tensor], hidden: Tensor | None,
             actions: list[Tensor] | None) -> tuple[Tensor, Tensor | None]:
        """The policy's greedy step on ``seen``: action ids int64 (B, 1, H, W) (appended to ``actions``), new state."""
        chosen, hidden = act(self.policy, seen, hidden, block_actions=self.block_actions)
        if actions is not None:
            actions.append(chosen)
        return chosen, hidden

    def _level_rollout(self, noisy: Tensor, level: Tensor | None = None, actions: list[Tensor] | None = None) -> Tensor:
        """A noise-level map policy's rollout: each step scales the map per pixel; the denoiser runs on the last."""
        level = self.predictor.levels(noisy) if level is None else level
        level = level.expand(-1, 1, *noisy.shape[-2:]).clamp(0.0, self.transition.max_level)
        hidden = None
        for _ in range(self.steps):
            chosen, hidden = self._act({"image": noisy, "level": self.transition.level_observation(noisy, level)},
                                       hidden, actions)
            level = self.transition.next_level(level, chosen)
        return self.predictor.with_level(noisy, level)


# --- one entry point ---------------------------------------------------------------------------------
def load_denoiser(model: str = DEFAULT_DENOISER, checkpoint: str | os.PathLike[str] | None = None, *, channels: int = 3,
                  device: str | torch.device = "auto", tile: int = 512, sigma: float | None = None,
                  ensemble: int = 1, option: str = "checkpoint=PATH") -> Restorer:
    """The denoiser ``model`` (module table) as a :class:`~rlenhance.restore.Restorer`.

    Args:
        model: ``"mrpnet"`` (supervised), ``"ffdnet"`` (supervised, reads a noise-level map:
            :class:`NoiseLevelDenoiser`), ``"a3c"``, ``"sac"`` (PixelRL filter-bank policies) or
            ``"rse"`` (RSE-RL); or a supervised network of a user's by import path
            (:func:`rlenhance.registry.network_method`; its ``checkpoint`` is required).
        checkpoint: the file; None: the default of ``model`` for ``channels`` (:func:`default_denoiser`).
        channels: the planes of the images to denoise, 1 (gray) or 3 (RGB): picks the default
            checkpoint; not used with a ``checkpoint``.
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        tile: tiles' core side in pixels for large images.
        sigma: ``ffdnet`` only: the noise level of its map, 0-255 scale, within the levels it was
            trained over; None: each image's estimate (blind).
        ensemble: geometric self-ensemble size (1, 2, 4 or 8) of the network, or of an RL model's predictor.
        option: how the caller gives a checkpoint, named when the default is not installed.

    Raises:
        ValueError: an unknown ``model``, bad ``channels``, ``device``, ``tile`` or ``ensemble``, a
            ``sigma`` for another model than ``ffdnet`` or outside its trained levels.
        CheckpointError: the default is not installed, the file is missing or broken, or it is not a
            checkpoint of ``model``.
    """
    if model not in DENOISER_MODELS and not is_import_path(model):
        raise ValueError(f"model: expected one of {DENOISER_MODELS} or an import path, got {model!r}")
    if sigma is not None and model != "ffdnet":
        raise ValueError(f"sigma: the noise level of a noise-map denoiser's map (model 'ffdnet'); model {model!r} "
                         f"reads none (got sigma={sigma!r})")
    check_ensemble(ensemble)
    path = Path(checkpoint) if checkpoint is not None else default_denoiser(model, channels, option=option)
    method = registry.find("denoise", model)
    given = {"tile": tile, "ensemble": ensemble, "sigma": sigma}
    try:
        return registry.load("denoise", model, path, device=device,
                             **{name: value for name, value in given.items() if name in method.settings})
    except CheckpointError as exc:
        other = denoiser_kind(path)
        if other is None or other == model:
            raise
        raise CheckpointError(f"{exc}; it is a checkpoint of model {other!r} (rlenhance denoise --model {other})") \
            from None


def denoiser_kind(path: str | os.PathLike[str]) -> str | None:
    """The :data:`DENOISER_MODELS` name that loads the checkpoint ``path``, or None (not a readable denoiser)."""
    return registry.kind_of("denoise", path)
