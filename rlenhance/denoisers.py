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
``a3c``     ``experiments.denoise_train``                :class:`PolicyDenoiser`  ``a3c_denoise.pt``;
            (RolloutPolicySpec, task ``denoise``)                                 ``a3c_denoise_color.pt``
``sac``     ``experiments.denoise_train --agent sac``    :class:`PolicyDenoiser`  ``sac_denoise.pt``;
            (the same)                                                            ``sac_denoise_color.pt``
``rse``     ``experiments.rse_train`` (RSEDenoiserSpec)  :class:`RSERestorer`     ``rse_denoise.pt``;
                                                                                  ``rse_denoise_color.pt``
==========  ===========================================  =======================  ===========================

An ``ffdnet`` reads a noise-level map: :class:`NoiseLevelDenoiser` gives it the constant map of
``sigma`` when one is given (``load_denoiser("ffdnet", sigma=25)``, ``rlenhance denoise --model
ffdnet --sigma 25``), else of the level :func:`rlenhance.baselines.estimate_noise_sigma` finds in
each image (blind). An ``rse`` checkpoint is rebuilt by :func:`load_rse` (the network, in eval mode,
with its predictor, and its spec), which :class:`RSERestorer` runs.

The defaults live in ``rlenhance/weights/`` (:data:`DENOISER_CHECKPOINTS`); the gray ``mrpnet``,
``ffdnet``, ``a3c`` and ``sac`` ones are shipped, the others are installed there once trained (a
missing one is a :class:`~rlenhance.errors.CheckpointError` that says how to train it). :func:`load_denoiser`
takes the default with the images' planes (``channels``); a checkpoint of another kind than
``model`` asks for (a low-light or completion policy, an RSE-RL model for ``"a3c"`` ...) is refused
with a message that says what the file is and which ``model`` loads it.

Channels, the same for every restorer here (``restore(image, per_channel=...)``): a model of the
image's planes denoises it as it is; a colour model given a gray image denoises it replicated to
RGB; a gray model given an RGB image denoises R, G and B separately with ``per_channel=True`` (each
channel carries the noise level the model was trained on), and without it ``mrpnet`` denoises the
BT.601 luma (one plane out, :class:`~rlenhance.restore.SupervisedRestorer`), ``ffdnet`` the three
opponent colour planes (BM3D's transform), each at its own noise level (RGB out; about 1 dB above
per channel at sigma 25), while the RL models refuse the image (an
:class:`~rlenhance.errors.ImageError` naming both ways out).

Example:
    >>> denoiser = load_denoiser("a3c", channels=1)                      # doctest: +SKIP
    >>> clean = denoiser.restore(noisy_rgb, per_channel=True)            # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rlenhance.baselines import estimate_noise_sigma
from rlenhance.checkpoint import (
    SPEC_KEY,
    RolloutPolicySpec,
    RSEDenoiserSpec,
    SupervisedSpec,
    build_model,
    load_checkpoint,
)
from rlenhance.data import noise_level_map
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.io import as_unit_float
from rlenhance.models.policy import PixelActorCritic, blocks_to_pixels, build_policy_input
from rlenhance.models.rse import RSEDenoiser
from rlenhance.ops.actions import PIXELRL_ACTION_TABLE
from rlenhance.ops.tiling import tiled
from rlenhance.restore import DEFAULT_DENOISE_CHECKPOINT, Restorer, SupervisedRestorer, as_hwc_image, check_ensemble
from rlenhance.runtime import flush_denormals, select_device
from rlenhance.transitions import DenoiseTransition

__all__ = [
    "DEFAULT_DENOISER",
    "DENOISER_CHECKPOINTS",
    "DENOISER_MODELS",
    "DenoisePredictor",
    "NoiseLevelDenoiser",
    "PolicyDenoiser",
    "RSERestorer",
    "SUPERVISED_DENOISERS",
    "default_denoiser",
    "check_predictor_ensemble",
    "denoiser_kind",
    "find_predictor",
    "load_denoiser",
    "load_rse",
    "rollout_radius",
]

#: The ``model`` names :func:`load_denoiser` accepts.
DENOISER_MODELS = ("mrpnet", "a3c", "sac", "rse", "ffdnet")
#: The model :func:`load_denoiser` and ``rlenhance denoise`` use when none is named: the blind FFDNet
#: (any noise level of 0-75, estimated per image; colour images in opponent planes), the best of
#: the shipped denoisers in gray and colour (docs/results.md).
DEFAULT_DENOISER = "ffdnet"
#: The models run by :class:`~rlenhance.restore.SupervisedRestorer`: a gray one given a colour image
#: without ``per_channel`` denoises its BT.601 luma (``mrpnet``) or its opponent colour planes
#: (``ffdnet``); the RL models refuse the image.
SUPERVISED_DENOISERS = ("mrpnet", "ffdnet")
_WEIGHTS = DEFAULT_DENOISE_CHECKPOINT.parent
#: The default checkpoint of each ``(model, channels)``: gray (1) and colour (3) files in ``rlenhance/weights/``.
DENOISER_CHECKPOINTS = MappingProxyType({
    (model, channels): _WEIGHTS / f"{model}_denoise{'_color' if channels == 3 else ''}.pt"
    for model in DENOISER_MODELS for channels in (1, 3)
})  # ("mrpnet", 1) is rlenhance.restore.DEFAULT_DENOISE_CHECKPOINT
#: How to train each default (the colour ones: ``--no-gray``, or rse_train's own RGB default).
_TRAIN_COMMAND = MappingProxyType({
    ("mrpnet", 1): "python -m experiments.supervised_train --model mrpnet --task denoise",
    ("mrpnet", 3): "python -m experiments.supervised_train --model mrpnet --task denoise --no-gray",
    ("ffdnet", 1): "python -m experiments.supervised_train --model ffdnet --task denoise --noise gaussian "
                   "--sigma 0 15 25 50 75 --sigma-draw uniform",
    ("ffdnet", 3): "python -m experiments.supervised_train --model ffdnet --task denoise --noise gaussian "
                   "--sigma 0 15 25 50 75 --sigma-draw uniform --no-gray",
    ("a3c", 1): "python -m experiments.denoise_train --sigma 15 25 50 --predictor rlenhance/weights/ffdnet_denoise.pt "
                "--observe-prediction --downscale 2",
    ("a3c", 3): "python -m experiments.denoise_train --no-gray",
    ("sac", 1): "python -m experiments.denoise_train --agent sac --sigma 15 25 50 --predictor "
                "rlenhance/weights/ffdnet_denoise.pt --observe-prediction --downscale 2",
    ("sac", 3): "python -m experiments.denoise_train --agent sac --no-gray",
    ("rse", 1): "python -m experiments.rse_train --gray",
    ("rse", 3): "python -m experiments.rse_train --predictor rlenhance/weights/ffdnet_denoise.pt",
})
#: The env whose transition a filter-bank denoising policy was trained in (its spec's ``env_id``).
_DENOISE_ENV_ID = "rlenhance/Denoise-v0"
#: Radius of PixelRL's filter windows (5 x 5: 2), what one step of the filter bank reads around a pixel.
_FILTER_RADIUS = max(int(dict(action.params).get("ksize", dict(action.params).get("d", 1)))
                     for action in PIXELRL_ACTION_TABLE) // 2
_GRAY, _RGB = 1, 3


def default_denoiser(model: str, channels: int, *, option: str = "--checkpoint") -> Path:
    """The default checkpoint of ``model`` for images of ``channels`` planes (:data:`DENOISER_CHECKPOINTS`).
    ``option``: the command-line option that takes a checkpoint instead, named in the error (the
    per-channel hint is given only for ``--checkpoint``, the ``denoise`` command's).

    Raises:
        ValueError: an unknown ``model`` or ``channels`` not 1 or 3.
        CheckpointError: the file is not installed (the message says how to train one and to pass
            it explicitly; for colour, also that the gray model can denoise R, G and B separately).
    """
    if model not in DENOISER_MODELS:
        raise ValueError(f"model: expected one of {DENOISER_MODELS}, got {model!r}")
    if channels not in (_GRAY, _RGB):
        raise ValueError(f"channels: expected 1 (gray) or 3 (RGB), got {channels!r}")
    path = DENOISER_CHECKPOINTS[model, channels]
    if not path.is_file():
        kind = "gray" if channels == _GRAY else "colour"
        other = ("" if channels == _GRAY or option != "--checkpoint" else
                 "; or denoise R, G and B separately with the gray model (--per-channel, channels=1 and "
                 "restore(..., per_channel=True))")
        train = _TRAIN_COMMAND[model, channels]
        raise CheckpointError(f"no checkpoint given and the default {kind} {model} denoiser {path} is not installed; "
                              f"pass {option} PATH (a checkpoint of {train}){other}")
    return path


# --- the channel rules shared by the RL denoisers -------------------------------------------------
class _PlanesDenoiser:
    """What :class:`PolicyDenoiser` and :class:`RSERestorer` share: the Restorer interface and the
    channel rules of the module docstring around ``_denoise`` (a (B, channels, H, W) float32 batch
    on :attr:`device` -> the denoised batch, clamped to [0, 1])."""

    channels: int
    device: torch.device
    path: Path
    #: How messages name the model (e.g. "a3c denoising policy").
    label: str

    @property
    def takes_mask(self) -> bool:
        """Denoisers take no mask."""
        return False

    def restore(self, image: np.ndarray, mask: np.ndarray | None = None, *, per_channel: bool = False) -> np.ndarray:
        """Denoise one image.

        Args:
            image: array (H, W, C) with C in {1, 3} (RGB) or (H, W): float values in [0, 1] or
                unclipped noisy values in :data:`rlenhance.io.NOISY_RANGE`, or uint8 / uint16 samples
                scaled by their range (:func:`rlenhance.io.as_unit_float`).
            mask: refused (denoisers take none).
            per_channel: a gray model on an RGB image: denoise R, G and B separately (required there).

        Returns:
            float32 (H, W, C_out) in [0, 1], C_out = max(C, the model's channels).

        Raises:
            ImageError: a bad image, a mask, or an RGB image for a gray model without ``per_channel``.
        """
        return _restore_one(self, image, mask, per_channel)

    @torch.inference_mode()
    def restore_tensor(self, x: Tensor, *, per_channel: bool = False) -> Tensor:
        """Batched :meth:`restore` on tensors: float (B, C, H, W), C in {1, 3}, RGB -> float32
        (B, C_out, H, W) in [0, 1] on ``x``'s device (the model runs on :attr:`device`)."""
        if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] not in (_GRAY, _RGB) or not x.is_floating_point() \
                or x.numel() == 0:
            raise ImageError(f"image: expected a float tensor (B, C, H, W) with C in {{1, 3}}; got "
                             f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
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
        out = self._denoise(x.to(self.device)).to(x.device)
        return out.reshape(batch, -1, *out.shape[-2:])

    def _denoise(self, x: Tensor) -> Tensor:
        raise NotImplementedError


# --- PixelRL filter-bank policies (A3C, SAC) ------------------------------------------------------
def rollout_radius(policy: PixelActorCritic, steps: int) -> int | None:
    """How far (pixels) a greedy filter-bank rollout of ``steps`` steps reads around an output pixel:
    ``steps`` x (the acting path's radius + :data:`_FILTER_RADIUS`), the acting path being the
    trunk, the policy branch, the ConvGRU and the policy head at the working resolution, times
    ``downscale``, plus a working pixel for the pooling block and one for the bilinear upsampling.
    An upper bound (the ConvGRU's convolutions are all counted); None for a supervised backbone,
    whose radius is not bounded here."""
    if policy.backbone != "fcn":
        return None
    parts = (policy.trunk, policy.policy_branch, policy.gru, policy.policy_head)
    working = sum(int(m.dilation[0]) * (int(m.kernel_size[0]) // 2)
                  for part in parts if part is not None for m in part.modules() if isinstance(m, nn.Conv2d))
    return int(steps) * ((working + 2) * policy.downscale + _FILTER_RADIUS)


class PolicyDenoiser(_PlanesDenoiser):
    """A PixelRL filter-bank denoising policy (A3C or SAC, ``experiments.denoise_train``) run in the
    library: a :class:`rlenhance.restore.Restorer`, no env or agent needed.

    ``restore`` runs the checkpoint's ``steps`` greedy steps of ``rlenhance/Denoise-v0``'s
    transition: at each step the policy picks one of PixelRL's nine filters per pixel
    (:meth:`~rlenhance.models.policy.PixelActorCritic.predict`, deterministic; per ``downscale``
    block, :func:`~rlenhance.models.policy.blocks_to_pixels`, when trained with ``block_actions``),
    the checkpoint's :class:`~rlenhance.transitions.DenoiseTransition` steps the image (clamped to
    [0, 1] when trained with ``clip``), and the ConvGRU state, if any, is carried. A policy trained with a predictor
    (``denoise_train --predictor``: action 9 takes the supervised denoiser's pixel) runs it too
    (:class:`DenoisePredictor`, the checkpoint its spec records, or one of that name beside
    ``checkpoint`` or in ``rlenhance/weights/``: :func:`find_predictor`), once, on the whole noisy image.
    The output, clamped to [0, 1],
    equals ``agents.rollout.load_rollout_policy(path).restore(image)`` (which steps the env); a
    policy trained with ``clip`` sees its noisy input clamped to [0, 1], as it was trained.

    Large images run in tiles: each tile's window runs the whole rollout and only its core is kept;
    the margin is the rollout's receptive radius (:func:`rollout_radius`: 100 px for the shipped
    policies), so the result equals a whole-image pass up to float rounding of the network (which
    can, on a near-tie, change one pixel's filter). Policies with a supervised backbone run whole.

    Args:
        checkpoint: a checkpoint of ``experiments.denoise_train`` (its
            :class:`~rlenhance.checkpoint.RolloutPolicySpec`, task ``denoise``).
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        tile: side of the tiles' core in pixels (rounded up to a multiple of ``downscale``).
        agent: ``"a3c"`` or ``"sac"``: refuse a checkpoint that records another trainer
            (``extra["algorithm"]``); None accepts either.
        ensemble: the self-ensemble of the policy's predictor (:class:`DenoisePredictor`; 1: none;
            a policy without a predictor takes 1 only). The policy itself runs once.

    Attributes:
        policy: the actor, in eval mode, on ``device``.
        spec: the checkpoint's spec; ``channels``, ``steps``, ``block_actions`` and ``clip`` repeat it.
        channels: planes the policy denoises (1 gray, 3 RGB): the spec's
            (:attr:`~rlenhance.checkpoint.RolloutPolicySpec.channels`), which the network's input must match.
        agent: the trainer the checkpoint records (``"a3c"``, ``"sac"``), or None.
        overlap: the tiles' margin (None: whole images), tile: the tiles' core.

    Raises:
        CheckpointError: the file is missing or broken, not a denoising policy (a low-light or a
            completion policy, another model's checkpoint: the message says what it is), a policy
            the filter-bank transition cannot run, or one of another ``agent``.
        ValueError: bad ``device``, ``tile``, ``agent`` or ``ensemble``.
    """

    def __init__(self, checkpoint: str | os.PathLike[str], *, device: str | torch.device = "auto", tile: int = 512,
                 agent: str | None = None, ensemble: int = 1):
        flush_denormals()
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
            raise ValueError(f"tile: expected an integer >= 1, got {tile!r}")
        if agent not in (None, "a3c", "sac"):
            raise ValueError(f"agent: expected 'a3c', 'sac' or None, got {agent!r}")
        self.device = select_device(device)
        self.path = Path(checkpoint)
        ckpt = load_checkpoint(self.path, map_location="cpu", spec=RolloutPolicySpec)
        spec: RolloutPolicySpec = ckpt["extra"][SPEC_KEY]
        recorded = ckpt["extra"].get("algorithm")  # experiments.rl_common writes it; older files may lack it
        self.agent: str | None = recorded if recorded in ("a3c", "sac") else None
        if spec.task != "denoise" or spec.env_id != _DENOISE_ENV_ID:
            raise CheckpointError(f"checkpoint {self.path}: a {spec.task} policy of {spec.env_id}; a denoising policy "
                                  f"of {_DENOISE_ENV_ID} is needed (python -m experiments.denoise_train)")
        if agent is not None and self.agent is not None and self.agent != agent:
            raise CheckpointError(f"checkpoint {self.path}: a denoising policy trained by {self.agent.upper()} "
                                  f"(denoise_train --agent {self.agent}); an {agent.upper()} one was asked for")
        self.policy = build_model(ckpt, {"PixelActorCritic": PixelActorCritic}).to(self.device).eval()
        self.spec = spec
        #: The step the policy runs in (the checkpoint's :class:`~rlenhance.transitions.DenoiseTransition`).
        self.transition: DenoiseTransition = spec.transition
        self.channels: int = spec.channels
        n_actions = len(self.transition.actions)
        #: whether the policy reads the predictor's output next to the image (denoise_train --observe-prediction)
        self.observe_prediction: bool = bool(spec.env_kwargs.get("observe_prediction", False))
        planes = self.channels * (2 if self.observe_prediction else 1)
        if self.policy.n_actions != n_actions or self.policy.cond_dim or self.policy.in_channels != planes:
            raise CheckpointError(f"checkpoint {self.path}: a PixelActorCritic({ckpt['arch']['kwargs']}) with env "
                                  f"{dict(spec.env_kwargs)} is not a policy over PixelRL's {len(PIXELRL_ACTION_TABLE)} "
                                  f"filters{' and the predictor' if spec.predictor else ''} ({n_actions} actions) on "
                                  f"the {'gray' if self.channels == _GRAY else 'RGB'} image"
                                  f"{' and the prediction' if self.observe_prediction else ' alone'} ({planes} "
                                  "input plane(s))")
        self.steps: int = self.transition.steps
        self.block_actions: bool = spec.block_actions and self.policy.downscale > 1
        #: the supervised denoiser whose pixel action 9 takes (denoise_train --predictor), or None
        self.predictor: DenoisePredictor | None = DenoisePredictor.for_policy(spec, checkpoint=self.path,
                                                                              device=self.device, ensemble=ensemble)
        self.clip: bool = self.transition.clip
        self.label = f"{self.agent or 'RL'} denoising policy"
        radius = rollout_radius(self.policy, self.steps)
        scale = self.policy.downscale
        self.overlap: int | None = None if radius is None else -(-radius // scale) * scale
        self.tile: int = -(-tile // scale) * scale

    def _denoise(self, x: Tensor) -> Tensor:
        # the prediction of the whole image (as the env's, once per episode), cut into the tiles
        aligned = () if self.predictor is None else (self.predictor(self.transition.start(x)),)
        if self.overlap is None:
            return self.rollout(x, *aligned)
        return tiled(self.rollout, x, *aligned, tile=self.tile, overlap=self.overlap)

    def rollout(self, x: Tensor, prediction: Tensor | None = None) -> Tensor:
        """The greedy rollout of one batch (B, channels, H, W) on :attr:`device` (module docstring),
        whole: float32, clamped to [0, 1]. ``prediction``: the predictor's output for ``x`` (same
        shape; None: computed here when the policy has a predictor)."""
        image = self.transition.start(x)
        if prediction is None and self.predictor is not None:
            prediction = self.predictor(image)
        size = image.shape[-2:]
        hidden = None
        for _ in range(self.steps):
            seen = {"image": image, "prediction": prediction} if self.observe_prediction else {"image": image}
            out = self.policy(build_policy_input(seen)[0], None, hidden, full_resolution=not self.block_actions,
                              with_value=False)
            actions = self.policy.predict(out)
            if self.block_actions:
                actions = blocks_to_pixels(actions, self.policy.downscale, size)
            image = self.transition.step(image, actions, prediction)
            hidden = out.hidden
        return image.clamp(0.0, 1.0)


def find_predictor(recorded: str | os.PathLike[str], checkpoint: str | os.PathLike[str] | None = None) -> Path:
    """The predictor file of a policy trained with one (a :class:`~rlenhance.checkpoint.RolloutPolicySpec`'s
    ``predictor``: the absolute path the trainer resolved, on its machine, or a bare file name, as the
    shipped policies record), looked for in turn at:

    1. ``recorded`` itself, when it is an absolute path (the trainers record the path they resolved);
    2. a file of the same name beside the policy's ``checkpoint`` (a policy shipped in one folder
       with its predictor; skipped when ``checkpoint`` is None);
    3. a file of the same name in ``rlenhance/weights/`` (the shipped models).

    A bare name (``mrpnet_denoise.pt``: what the shipped policies record, so that no path of the
    machine that trained them is ever opened) is only looked for in 2 and 3, never in the working
    directory.

    Raises:
        CheckpointError: none of them exists; the message names every place tried and how to pass
            a predictor instead.
    """
    recorded = Path(recorded)
    itself = None if checkpoint is None else Path(checkpoint).resolve()
    # never the policy's own file (a predictor named best.pt, like the policy, recorded on another machine)
    places = [place for place in (*([recorded] if recorded.is_absolute() else []),
                                  *([Path(checkpoint).parent / recorded.name] if checkpoint is not None else []),
                                  _WEIGHTS / recorded.name) if place.resolve() != itself]
    found = next((place for place in places if place.is_file()), None)
    if found is None:
        model = f"the model {checkpoint}" if checkpoint is not None else "the model"
        tried = ", ".join(map(str, dict.fromkeys(places)))
        raise CheckpointError(f"predictor {recorded.name}: no such file at {tried}; "
                              f"{model} was trained with this supervised model (its spec's predictor) and takes "
                              "its output: put the file beside the model's checkpoint (or in rlenhance/weights/), or, "
                              "for a policy, pass the predictor: agents.rollout.load_rollout_policy(..., "
                              "predictor=agents.rollout.load_predictor(PATH, ...))")
    return found


def check_predictor_ensemble(ensemble: int, predictor: str | None, *, owner: str, this: str, trainer: str) -> None:
    """Raise ValueError for a self-``ensemble`` other than 1 asked of the predictor of a model that
    has none (its spec's ``predictor`` None): ``owner`` names the kind of model ("a policy"),
    ``this`` the model itself, ``trainer`` the command that trains it."""
    if ensemble != 1 and predictor is None:
        raise ValueError(f"ensemble: {ensemble!r} is the self-ensemble of {owner}'s predictor, and {this} has none "
                         f"({trainer} without --predictor); use ensemble=1")


class DenoisePredictor:
    """A supervised denoiser of ``experiments.supervised_train --task denoise`` as a denoising
    policy's predictor (``experiments.denoise_train --predictor``; the ``predictor`` of
    ``rlenhance/Denoise-v0``, whose action 9 takes its pixel): ``predictor(noisy) -> prediction``.

    The checkpoint runs as :func:`load_denoiser` runs it (``mrpnet``: a plain denoiser;
    ``ffdnet``: a :class:`NoiseLevelDenoiser`, given the map of ``sigma``, or of each image's
    estimated level when ``sigma`` is None).

    Args:
        checkpoint: a supervised denoiser (:class:`~rlenhance.checkpoint.SupervisedSpec`, task
            ``"denoise"``).
        channels: the planes of the policy's images, 1 (gray) or 3 (RGB); the denoiser's must match,
            except that a gray noise-map denoiser (FFDNet) serves RGB images through the opponent colour
            planes, as :func:`load_denoiser` runs it on colour images.
        sigma: the known noise level (0-255 scale) given to a noise-map denoiser (``ffdnet``); None:
            estimated per image. A plain denoiser reads none (ignored).
        device: where the denoiser runs: "auto", "cpu", "cuda" or "cuda:N".
        ensemble: the denoiser's geometric self-ensemble (1: none; 2, 4 or 8: :func:`load_denoiser`).

    Attributes:
        restorer: the denoiser (:func:`load_denoiser`); path, channels, sigma: as given.

    Raises:
        CheckpointError: the file is missing or broken, not a supervised denoiser (the message says
            what it is), or one of other planes than ``channels`` (but a gray FFDNet for RGB).
        ValueError: ``channels`` not 1 or 3, a ``sigma`` outside an ``ffdnet``'s trained levels, a bad
            ``ensemble``.
    """

    def __init__(self, checkpoint: str | os.PathLike[str], *, channels: int, sigma: float | None = None,
                 device: str | torch.device = "auto", ensemble: int = 1):
        if channels not in (_GRAY, _RGB):
            raise ValueError(f"channels: expected 1 (gray) or 3 (RGB), got {channels!r}")
        self.path = Path(checkpoint)
        spec = (load_checkpoint(self.path)["extra"] or {}).get(SPEC_KEY)
        if not (isinstance(spec, SupervisedSpec) and spec.task == "denoise"):
            what = (f"a {spec.model} trained for task {spec.task!r}" if isinstance(spec, SupervisedSpec) else
                    f"a {spec.title} checkpoint" if spec is not None else "a checkpoint without a spec")
            raise CheckpointError(f"predictor {self.path}: {what}; the predictor of a denoising policy or of an "
                                  "RSE-RL model is a supervised denoiser (python -m experiments.supervised_train "
                                  "--task denoise, --model mrpnet or ffdnet)")
        model = _supervised_model(spec)
        self.restorer = load_denoiser(model, self.path, device=device, ensemble=ensemble,
                                      **({"sigma": sigma} if model == "ffdnet" else {}))
        if self.restorer.channels != channels and not (model == "ffdnet" and channels == _RGB):
            names = {_GRAY: "gray (1-plane)", _RGB: "RGB (3-plane)"}
            raise CheckpointError(f"predictor {self.path}: a {names[self.restorer.channels]} denoiser; the model "
                                  f"denoises {names[channels]} images: give a {names[channels]} one (supervised_train "
                                  f"--task denoise{' --no-gray' if channels == _RGB else ''}; a gray FFDNet also "
                                  "serves RGB images, through the opponent colour planes)")
        self.channels: int = channels
        self.sigma: float | None = None if sigma is None else float(sigma)

    @classmethod
    def for_policy(cls, spec: RolloutPolicySpec, *, checkpoint: str | os.PathLike[str] | None = None,
                   device: str | torch.device = "auto", ensemble: int = 1) -> DenoisePredictor | None:
        """The predictor a denoising policy was trained with (its spec's ``predictor``, found by
        :func:`find_predictor` from the policy's ``checkpoint`` path; None without one), for the
        spec's planes, with the policy's noise level as ``sigma`` when it was trained on one
        (several: estimated per image), and the self-``ensemble`` given.

        Raises:
            CheckpointError: the predictor file is found nowhere (see :func:`find_predictor`), or
                is not a denoiser of the spec's planes.
            ValueError: an ``ensemble`` other than 1 for a policy without a predictor, or a bad one.
        """
        check_predictor_ensemble(ensemble, spec.predictor, owner="a policy", this="this policy",
                                 trainer="denoise_train")
        if spec.predictor is None:
            return None
        sigmas = spec.sigmas
        return cls(find_predictor(spec.predictor, checkpoint), channels=spec.channels,
                   sigma=sigmas[0] if len(sigmas) == 1 else None, device=device, ensemble=ensemble)

    @property
    def model(self) -> nn.Module:
        """The predictor's network."""
        return self.restorer.model

    def __call__(self, noisy: Tensor) -> Tensor:
        """The prediction of noisy images, float (B, channels, H, W) (unclipped noisy values
        allowed): float32 (B, channels, H, W) in [0, 1] on ``noisy``'s device.

        Raises:
            ImageError: not a float tensor of the predictor's planes (or bad values).
        """
        if not torch.is_tensor(noisy) or noisy.dim() != 4 or noisy.shape[1] != self.channels:
            raise ImageError(f"noisy: expected a float tensor (B, {self.channels}, H, W) for {self.path}; got "
                             f"{tuple(noisy.shape) if torch.is_tensor(noisy) else type(noisy).__name__}")
        return self.restorer.restore_tensor(noisy)


# --- RSE-RL ------------------------------------------------------------------------------------------
def load_rse(path: str | os.PathLike, *, device: str | torch.device = "cpu",
             ensemble: int = 1) -> tuple[RSEDenoiser, RSEDenoiserSpec]:
    """The trained denoiser of an ``experiments.rse_train`` checkpoint, in eval mode, and its spec.

    Denoise with ``model(noisy, rounds=spec.rounds).clamp(0, 1)`` on float (B, C, H, W) images
    (C = ``spec.channels``) with noise of a level in ``spec.sigmas`` (0-255 scale; several:
    a blind denoiser, trained on each and told none; ``spec.sigma`` is the largest). A model
    trained with a predictor (``rse_train --predictor``) gets it back, found as a policy's is
    (:func:`find_predictor`: the recorded path, else that name beside ``path``, else in
    ``rlenhance/weights/``) and run as :class:`DenoisePredictor` runs it, given each image's
    estimated noise level (every round's input is denoised by it), with the geometric
    self-``ensemble`` given (1: none; 2, 4 or 8: :func:`load_denoiser`).

    Raises:
        CheckpointError: the file is not a valid RSE-RL checkpoint (wrong kind, broken or
            non-finite weights, an architecture that does not build, more rounds than it holds, a
            predictor in the spec and not in the architecture or the other way round), or its
            predictor is found nowhere or is not a denoiser of its planes.
        ValueError: an ``ensemble`` other than 1 for a model without a predictor, or a bad one.
    """
    check_ensemble(ensemble)
    checkpoint = load_checkpoint(path, spec=RSEDenoiserSpec)
    model = build_model(checkpoint, {"RSEDenoiser": RSEDenoiser})
    spec = checkpoint["extra"]["spec"]
    if spec.rounds > model.max_rounds or spec.channels != model.channels:
        raise CheckpointError(f"checkpoint {path}: its spec asks for {spec.rounds} round(s) of {spec.channels} "
                              f"channel(s); the model holds {model.max_rounds} of {model.channels}")
    if (spec.predictor is not None) != model.predicted:
        raise CheckpointError(f"checkpoint {path}: its spec's predictor is {spec.predictor!r} and its rounds were "
                              f"built {'with' if model.predicted else 'without'} a predictor's candidate")
    check_predictor_ensemble(ensemble, spec.predictor, owner="an RSE-RL model", this=str(path), trainer="rse_train")
    model = model.to(device).eval()
    if spec.predictor is not None:
        model.attach_predictor(DenoisePredictor(find_predictor(spec.predictor, path), channels=spec.channels,
                                                device=device, ensemble=ensemble))
    return model, spec


class RSERestorer(_PlanesDenoiser):
    """An RSE-RL denoiser of ``experiments.rse_train`` (:func:`load_rse`) as a
    :class:`rlenhance.restore.Restorer`: its spec's ``rounds`` rounds on the whole image (no
    tiling: the patch grid and the clean-latent search are laid over the whole image), clamped to
    [0, 1].

    Args:
        checkpoint: a checkpoint of ``experiments.rse_train``.
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        ensemble: the self-ensemble of its predictor (``rse_train --predictor``; 1: none; a model
            without a predictor takes 1 only). The rounds themselves run once.

    Attributes:
        model: the :class:`~rlenhance.models.rse.RSEDenoiser`, in eval mode; spec: its spec;
        channels: its planes (1 gray, 3 RGB).

    Raises:
        CheckpointError: not a valid RSE-RL checkpoint (the message says what the file is).
        ValueError: an ``ensemble`` other than 1 for a model without a predictor, or a bad one.
    """

    def __init__(self, checkpoint: str | os.PathLike[str], *, device: str | torch.device = "auto", ensemble: int = 1):
        flush_denormals()
        self.device = select_device(device)
        self.path = Path(checkpoint)
        self.model, self.spec = load_rse(self.path, device=self.device, ensemble=ensemble)
        self.channels: int = self.spec.channels
        self.label = "RSE-RL denoiser"

    def _denoise(self, x: Tensor) -> Tensor:
        return self.model(x, rounds=self.spec.rounds).clamp(0.0, 1.0)


# --- FFDNet: a noise-map denoiser given a level's map ---------------------------------------------------
class NoiseLevelDenoiser:
    """A noise-map denoiser (FFDNet, ``experiments.supervised_train --model ffdnet``) on noisy images
    of one noise level: a :class:`~rlenhance.restore.Restorer` that gives the network the constant
    map of that level, ``sigma / 255`` (:func:`rlenhance.data.noise_level_map` of a unit gain),
    through :class:`~rlenhance.restore.SupervisedRestorer`'s noise-map path (tiling, channel rules).

    The level is ``sigma`` when given (known noise, e.g. a synthetic test set); else each image's
    own, estimated from it (:func:`rlenhance.baselines.estimate_noise_sigma`, blind; real noise)
    and clipped to the levels the checkpoint was trained over (:attr:`sigma_range`).

    Args:
        checkpoint: a noise-map denoiser of ``experiments.supervised_train`` (``--model ffdnet``,
            trained on ``--noise gaussian`` or ``amplified``).
        sigma: the noise level on the 0-255 scale, in :attr:`sigma_range`; None: estimated per image.
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        tile: side of the tiles' core in pixels (:class:`~rlenhance.restore.SupervisedRestorer`).
        ensemble: the network's geometric self-ensemble, 1 (none), 2, 4 or 8 flips and quarter
            turns averaged over (:class:`~rlenhance.restore.SupervisedRestorer`).

    Attributes:
        restorer: the :class:`~rlenhance.restore.SupervisedRestorer` (``noise_map=True``);
            ``spec``, ``channels``, ``model``, ``device`` and ``path`` repeat its own.
        sigma: the level given, or None (estimated per image).
        sigma_range: ``(low, high)``, the levels trained over (0-255 scale): Gaussian noise: the
            spec's ``sigmas[0]`` and ``sigmas[-1]``; amplified noise: 0 and ``sigma``.

    Raises:
        CheckpointError: not a noise-map denoiser (the message says what it is).
        ValueError: a ``sigma`` that is not a finite number in :attr:`sigma_range`, bad ``device``,
            ``tile`` or ``ensemble``.

    Example:
        >>> denoiser = NoiseLevelDenoiser("runs/ffdnet/checkpoints/best.pt", sigma=25)   # doctest: +SKIP
        >>> clean = denoiser.restore(noisy_gray)                                        # doctest: +SKIP
    """

    def __init__(self, checkpoint: str | os.PathLike[str], *, sigma: float | None = None,
                 device: str | torch.device = "auto", tile: int = 512, ensemble: int = 1):
        self.restorer = SupervisedRestorer(checkpoint, device=device, task="denoise", tile=tile, noise_map=True,
                                           ensemble=ensemble)
        self.spec, self.channels, self.model = self.restorer.spec, self.restorer.channels, self.restorer.model
        self.device, self.path = self.restorer.device, self.restorer.path
        levels = self.spec.sigmas or (self.spec.sigma,)
        self.sigma_range: tuple[float, float] = (0.0, float(levels[-1])) if self.spec.noise == "amplified" \
            else (float(levels[0]), float(levels[-1]))
        low, high = self.sigma_range
        number = not isinstance(sigma, bool) and isinstance(sigma, (int, float, np.integer, np.floating))
        if sigma is not None and not (number and math.isfinite(sigma) and low <= sigma <= high):
            raise ValueError(f"sigma: expected a noise level in [{low:g}, {high:g}] (0-255 scale: the levels "
                             f"{self.path} was trained over), got {sigma!r}")
        self.sigma: float | None = None if sigma is None else float(sigma)

    @property
    def takes_mask(self) -> bool:
        """Denoisers take no mask."""
        return False

    def levels(self, x: Tensor) -> Tensor:
        """The noise level of each image of the batch ``x`` (float (B, C, H, W)), 0-255 scale, as
        float32 (B, 1, 1, 1) on ``x``'s device: :attr:`sigma`, or each image's estimate clipped to
        :attr:`sigma_range`."""
        if self.sigma is not None:
            return torch.full((x.shape[0], 1, 1, 1), self.sigma, device=x.device)
        low, high = self.sigma_range
        found = [min(max(estimate_noise_sigma(image.permute(1, 2, 0).cpu().numpy()), low), high) for image in x]
        return torch.tensor(found, dtype=torch.float32, device=x.device).view(-1, 1, 1, 1)

    def restore(self, image: np.ndarray, mask: np.ndarray | None = None, *, per_channel: bool = False) -> np.ndarray:
        """Denoise one image: the arguments, result and errors of the other denoisers' ``restore``
        (:meth:`PolicyDenoiser.restore`), the map of each image's level given; a gray model on an RGB
        image denoises R, G and B at their level with ``per_channel``, else its opponent colour
        planes, each at its own level (:class:`~rlenhance.restore.SupervisedRestorer`; RGB out)."""
        return _restore_one(self, image, mask, per_channel)

    def restore_tensor(self, x: Tensor, *, per_channel: bool = False) -> Tensor:
        """Batched :meth:`restore` on tensors: float (B, C, H, W), C in {1, 3}, RGB -> float32
        (B, C_out, H, W) in [0, 1] on ``x``'s device, each image at its level (:meth:`levels`)."""
        if not torch.is_tensor(x) or x.dim() != 4 or x.numel() == 0:
            raise ImageError(f"image: expected a float tensor (B, C, H, W) with C in {{1, 3}}; got "
                             f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
        levels = noise_level_map(torch.ones(1, 1, 1, 1, device=x.device), self.levels(x))
        return self.restorer.restore_tensor(x, per_channel=per_channel,
                                            noise_map=levels.expand(-1, -1, *x.shape[-2:]))


# --- one entry point ---------------------------------------------------------------------------------
def load_denoiser(model: str = DEFAULT_DENOISER, checkpoint: str | os.PathLike[str] | None = None, *, channels: int = 3,
                  device: str | torch.device = "auto", tile: int = 512, sigma: float | None = None,
                  ensemble: int = 1) -> Restorer:
    """The denoiser ``model`` (module table) as a :class:`~rlenhance.restore.Restorer`:
    ``restore(image, per_channel=False)`` on (H, W, C) images in [0, 1] (noisy values allowed).

    Args:
        model: ``"mrpnet"`` (supervised), ``"ffdnet"`` (supervised, reads a noise-level map:
            :class:`NoiseLevelDenoiser`), ``"a3c"``, ``"sac"`` (PixelRL filter-bank policies) or
            ``"rse"`` (RSE-RL).
        checkpoint: the file; None: the default of ``model`` for ``channels`` (:func:`default_denoiser`).
        channels: the planes of the images to denoise, 1 (gray) or 3 (RGB): picks the default
            checkpoint (use 1 to run the gray model on colour images with ``per_channel=True``);
            not used with a ``checkpoint`` (whose planes its spec says: ``restorer.channels``).
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        tile: tiles' core side in pixels for large images (``mrpnet``, ``ffdnet`` and ``a3c`` /
            ``sac``; ``rse`` runs whole images).
        sigma: ``ffdnet`` only: the noise level of its map, 0-255 scale, within the levels it was
            trained over; None: each image's estimate (blind).
        ensemble: geometric self-ensemble (:class:`~rlenhance.restore.SupervisedRestorer`): the mean
            of the network over 1 (none), 2, 4 or 8 flips and quarter turns of the image, at that
            many times the time; ``mrpnet`` and ``ffdnet`` themselves, ``a3c`` / ``sac`` / ``rse``
            their predictor (a model without one takes 1 only).

    Raises:
        ValueError: an unknown ``model``, bad ``channels``, ``device``, ``tile`` or ``ensemble``, a
            ``sigma`` for another model than ``ffdnet`` or outside its trained levels.
        CheckpointError: the default is not installed (how to train it is said), the file is
            missing or broken, or it is not a checkpoint of ``model`` (what it is, and which
            ``model`` loads it when it is another denoiser, is said).
    """
    if model not in DENOISER_MODELS:
        raise ValueError(f"model: expected one of {DENOISER_MODELS}, got {model!r}")
    if sigma is not None and model != "ffdnet":
        raise ValueError(f"sigma: the noise level of a noise-map denoiser's map (model 'ffdnet'); model {model!r} "
                         f"reads none (got sigma={sigma!r})")
    check_ensemble(ensemble)
    path = Path(checkpoint) if checkpoint is not None else default_denoiser(model, channels)
    loaders: dict[str, Callable[[], Any]] = {
        "mrpnet": lambda: SupervisedRestorer(path, device=device, task="denoise", tile=tile, ensemble=ensemble),
        "ffdnet": lambda: NoiseLevelDenoiser(path, sigma=sigma, device=device, tile=tile, ensemble=ensemble),
        "a3c": lambda: PolicyDenoiser(path, device=device, tile=tile, agent="a3c", ensemble=ensemble),
        "sac": lambda: PolicyDenoiser(path, device=device, tile=tile, agent="sac", ensemble=ensemble),
        "rse": lambda: RSERestorer(path, device=device, ensemble=ensemble),
    }
    try:
        return loaders[model]()
    except CheckpointError as exc:
        other = denoiser_kind(path)
        if other is None or other == model:
            raise
        raise CheckpointError(f"{exc}; it is an {other} denoiser: load it as model {other!r} (rlenhance denoise "
                              f"--model {other})") from None


def denoiser_kind(path: str | os.PathLike[str]) -> str | None:
    """The :data:`DENOISER_MODELS` name that loads the checkpoint ``path``, or None (not a denoiser,
    or not readable)."""
    try:
        extra = load_checkpoint(path)["extra"] or {}
    except CheckpointError:
        return None
    spec = extra.get(SPEC_KEY)
    if isinstance(spec, SupervisedSpec) and spec.task == "denoise":
        return _supervised_model(spec)
    if isinstance(spec, RolloutPolicySpec) and spec.task == "denoise":
        return extra.get("algorithm") if extra.get("algorithm") in ("a3c", "sac") else "a3c"
    if isinstance(spec, RSEDenoiserSpec):
        return "rse"
    return None


def _restore_one(denoiser: _PlanesDenoiser | NoiseLevelDenoiser, image: np.ndarray, mask: np.ndarray | None,
                 per_channel: bool) -> np.ndarray:
    """``denoiser.restore(image, mask, per_channel=...)``: one (H, W[, C]) image through its batched
    ``restore_tensor``, as float32 (H, W, C_out)."""
    if mask is not None:
        raise ImageError(f"mask: given, but {denoiser.path} is a denoiser, which takes no mask")
    hwc = as_hwc_image(image, noisy=True)
    x = torch.from_numpy(hwc).permute(2, 0, 1)[None]  # a view: the tiles read the image in place
    out = denoiser.restore_tensor(x, per_channel=per_channel)
    return np.ascontiguousarray(out[0].permute(1, 2, 0).cpu().numpy(), dtype=np.float32)


def _supervised_model(spec: SupervisedSpec) -> str:
    """The :data:`SUPERVISED_DENOISERS` name that loads a supervised denoiser of ``spec``."""
    return "ffdnet" if spec.needs_noise_map else "mrpnet"
