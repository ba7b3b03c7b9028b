"""The supervised models the RL policies build on: :class:`NoiseLevelDenoiser`, :class:`DenoisePredictor`,
:class:`CompletionPredictor`, and :func:`find_predictor`, which finds the predictor file a model's spec records.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from rlenhance import registry
from rlenhance.checkpoint import SPEC_KEY, RolloutPolicySpec, SupervisedSpec, load_checkpoint
from rlenhance.data import noise_level_map
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.io.arrays import result_dtype
from rlenhance.noise_estimate import estimate_noise_sigma
from rlenhance.restore import SupervisedRestorer, as_hwc_image

__all__ = ["CompletionPredictor", "DenoisePredictor", "NoiseLevelDenoiser", "check_predictor_ensemble",
           "find_predictor"]

_GRAY, _RGB = 1, 3


def find_predictor(recorded: str | os.PathLike[str], checkpoint: str | os.PathLike[str] | None = None) -> Path:
    """The predictor file a model's spec records (``recorded``: an absolute path or a bare file name), looked for at:

    1. ``recorded`` itself, when it is an absolute path;
    2. a file of the same name beside the model's ``checkpoint`` (skipped when None);
    3. a file of the same name in ``rlenhance/weights/``.

    Never the working directory, nor the model's own file.

    Raises:
        CheckpointError: none of them exists (the message names every place tried).
    """
    recorded = Path(recorded)
    itself = None if checkpoint is None else Path(checkpoint).resolve()
    places = [place for place in (*([recorded] if recorded.is_absolute() else []),
                                  *([Path(checkpoint).parent / recorded.name] if checkpoint is not None else []),
                                  registry.WEIGHTS / recorded.name) if place.resolve() != itself]
    found = next((place for place in places if place.is_file()), None)
    if found is None:
        model = f"the model {checkpoint}" if checkpoint is not None else "the model"
        tried = ", ".join(map(str, dict.fromkeys(places)))
        raise CheckpointError(f"predictor {recorded.name}: no such file at {tried}; "
                              f"{model} was trained with this supervised model (its spec's predictor) and takes "
                              "its output: put the file beside the model's checkpoint (or in rlenhance/weights/)")
    return found


def check_predictor_ensemble(ensemble: int, predictor: str | None, *, owner: str, this: str, trainer: str) -> None:
    """Raise ValueError for a self-``ensemble`` other than 1 asked of a model without a ``predictor``.

    ``owner``, ``this`` and ``trainer`` name the kind of model, the model and its training command in the message.
    """
    if ensemble != 1 and predictor is None:
        raise ValueError(f"ensemble: {ensemble!r} is the self-ensemble of {owner}'s predictor, and {this} has none "
                         f"({trainer} without --predictor); use ensemble=1")


class CompletionPredictor:
    """A supervised completion model as a completion policy's predictor: ``predictor(occluded, mask) -> prediction``.

    The prediction is float (B, 3, H, W), the model's output in the hole and ``occluded`` elsewhere, computed
    by :class:`~rlenhance.restore.SupervisedRestorer`.

    Args:
        checkpoint: a supervised completion model (RGB).
        device: where it runs: "auto", "cpu", "cuda" or "cuda:N".
        ensemble: its geometric self-ensemble (1: none; 2, 4 or 8).

    Attributes:
        restorer: the :class:`~rlenhance.restore.SupervisedRestorer`; path: as given.

    Raises:
        CheckpointError: not a supervised completion checkpoint, or not an RGB one.
        ValueError: a bad ``device`` or ``ensemble``.
    """

    def __init__(self, checkpoint: str | os.PathLike[str], *, device: str | torch.device = "auto", ensemble: int = 1):
        self.path = Path(checkpoint)
        self.restorer = SupervisedRestorer(self.path, device=device, task="completion", ensemble=ensemble)
        if self.restorer.channels != _RGB:
            raise CheckpointError(f"predictor {self.path}: a {self.restorer.channels}-channel model; completion is RGB")

    @classmethod
    def for_policy(cls, spec: RolloutPolicySpec, *, checkpoint: str | os.PathLike[str] | None = None,
                   device: str | torch.device = "auto", ensemble: int = 1) -> CompletionPredictor | None:
        """The predictor a completion policy was trained with (:func:`find_predictor`; None without one).

        Raises:
            CheckpointError: the file is found nowhere, or is not an RGB completion model.
            ValueError: an ``ensemble`` other than 1 for a policy without a predictor, or a bad one.
        """
        check_predictor_ensemble(ensemble, spec.predictor, owner="a policy", this="this policy",
                                 trainer="completion_train")
        if spec.predictor is None:
            return None
        return cls(find_predictor(spec.predictor, checkpoint), device=device, ensemble=ensemble)

    @property
    def model(self) -> nn.Module:
        """The predictor's network."""
        return self.restorer.model

    @property
    def overlap(self) -> int:
        """How far (pixels) the prediction of a pixel reads around it, at most (the tile margin)."""
        return self.restorer.overlap

    @property
    def stride(self) -> int:
        """The network's total stride: windows cut at multiples of it see the whole image's sampling grid."""
        return self.restorer.stride

    def __call__(self, occluded: Tensor, mask: Tensor) -> Tensor:
        return self.restorer.restore_tensor(occluded, mask)


class DenoisePredictor:
    """A supervised denoiser as the predictor of a denoising policy or RSE-RL model: ``predictor(noisy) -> prediction``.

    The checkpoint runs as :func:`load_denoiser` runs it (``ffdnet``: a :class:`NoiseLevelDenoiser`).

    Args:
        checkpoint: a supervised denoiser (task ``"denoise"``).
        channels: the planes of the policy's images, 1 (gray) or 3 (RGB); the denoiser's must match,
            except that a gray FFDNet serves RGB images.
        sigma: the known noise level (0-255 scale) given to an ``ffdnet``; None: estimated per image
            (ignored by a plain denoiser).
        device: where the denoiser runs: "auto", "cpu", "cuda" or "cuda:N".
        ensemble: the denoiser's geometric self-ensemble (1: none; 2, 4 or 8).

    Attributes:
        restorer: the denoiser (:func:`load_denoiser`); path, channels, sigma: as given.

    Raises:
        CheckpointError: the file is missing or broken, not a supervised denoiser, or one of other planes.
        ValueError: ``channels`` not 1 or 3, a ``sigma`` outside an ``ffdnet``'s trained levels, a bad
            ``ensemble``.
    """

    def __init__(self, checkpoint: str | os.PathLike[str], *, channels: int, sigma: float | None = None,
                 device: str | torch.device = "auto", ensemble: int = 1):
        if channels not in (_GRAY, _RGB):
            raise ValueError(f"channels: expected 1 (gray) or 3 (RGB), got {channels!r}")
        self.path = Path(checkpoint)
        spec = (load_checkpoint(self.path)["extra"] or {}).get(SPEC_KEY)
        model = registry.kind_of("denoise", self.path) if isinstance(spec, SupervisedSpec) else None
        if model is None:
            what = (f"a {spec.model} trained for task {spec.task!r}" if isinstance(spec, SupervisedSpec) else
                    f"a {spec.title} checkpoint" if spec is not None else "a checkpoint without a spec")
            raise CheckpointError(f"predictor {self.path}: {what}; the predictor of a denoising policy or of an "
                                  "RSE-RL model is a supervised denoiser (python -m experiments.supervised_train "
                                  "--task denoise, --model mrpnet or ffdnet)")
        self.restorer = registry.load("denoise", model, self.path, device=device, ensemble=ensemble,
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
        """The predictor a denoising policy was trained with (:func:`find_predictor`; None without one), with
        the policy's noise level as ``sigma`` when it was trained on one.

        Raises:
            CheckpointError: the file is found nowhere, or is not a denoiser of the spec's planes.
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

    def __call__(self, noisy: Tensor, *, level: Tensor | None = None) -> Tensor:
        """The prediction of noisy images, float (B, channels, H, W): float32 (B, channels, H, W) in [0, 1].

        ``level``: for a noise-map denoiser, each image's level (float (B, 1, 1, 1), 0-255) instead of :meth:`levels`.

        Raises:
            ImageError: not a float tensor of the predictor's planes (or bad values).
        """
        noisy = self._checked(noisy)
        if level is not None and self.reads_level:
            return self.with_level(noisy, level.expand(-1, 1, *noisy.shape[-2:]))
        return self.restorer.restore_tensor(noisy)

    @property
    def supervised(self) -> SupervisedRestorer:
        """The :class:`~rlenhance.restore.SupervisedRestorer` that runs the network."""
        return self.restorer.restorer if isinstance(self.restorer, NoiseLevelDenoiser) else self.restorer

    @property
    def overlap(self) -> int:
        """How far (pixels) the prediction of a pixel reads around it, at most (the tile margin)."""
        return self.supervised.overlap

    @property
    def stride(self) -> int:
        """The network's total stride: windows cut at multiples of it see the whole image's sampling grid."""
        return self.supervised.stride

    def _checked(self, noisy: Tensor) -> Tensor:
        if not torch.is_tensor(noisy) or noisy.dim() != 4 or noisy.shape[1] != self.channels:
            raise ImageError(f"noisy: expected a float tensor (B, {self.channels}, H, W) for {self.path}; got "
                             f"{tuple(noisy.shape) if torch.is_tensor(noisy) else type(noisy).__name__}")
        return noisy

    @property
    def reads_level(self) -> bool:
        """Whether the predictor is a noise-map denoiser (FFDNet), for :meth:`levels` and :meth:`with_level`."""
        return isinstance(self.restorer, NoiseLevelDenoiser)

    def _noise_map_denoiser(self) -> NoiseLevelDenoiser:
        if not isinstance(self.restorer, NoiseLevelDenoiser):
            raise CheckpointError(f"predictor {self.path}: reads no noise-level map; a noise-level map policy needs a "
                                  "noise-map denoiser (supervised_train --model ffdnet)")
        return self.restorer

    def levels(self, noisy: Tensor) -> Tensor:
        """The level of each noisy image (B, channels, H, W), 0-255, float32 (B, 1, 1, 1): ``sigma`` or estimated.

        Raises:
            CheckpointError: the predictor reads no noise-level map.
        """
        return self._noise_map_denoiser().levels(self._checked(noisy))

    def with_level(self, noisy: Tensor, level: Tensor) -> Tensor:
        """The noise-map denoiser's output for noisy images (B, channels, H, W) and a level map (B, 1, H, W), 0-255.

        Returns float32 (B, channels, H, W) in [0, 1] on ``noisy``'s device.

        Raises:
            CheckpointError: the predictor reads no noise-level map.
            ImageError: bad shapes.
        """
        denoiser = self._noise_map_denoiser()
        noisy = self._checked(noisy)
        return denoiser.restorer.restore_tensor(noisy, noise_map=noise_level_map(torch.ones_like(level), level))


# --- FFDNet: a noise-map denoiser given a level's map ---------------------------------------------------
class NoiseLevelDenoiser:
    """A noise-map denoiser (FFDNet) given the constant map of one level: a :class:`~rlenhance.restore.Restorer`.

    The level is ``sigma`` when given, else each image's estimate
    (:func:`rlenhance.noise_estimate.estimate_noise_sigma`) clipped to :attr:`sigma_range`.

    Args:
        checkpoint: a noise-map denoiser of ``experiments.supervised_train --model ffdnet``.
        sigma: the noise level on the 0-255 scale, in :attr:`sigma_range`; None: estimated per image.
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        tile: side of the tiles' core in pixels (:class:`~rlenhance.restore.SupervisedRestorer`).
        ensemble: the network's geometric self-ensemble, 1 (none), 2, 4 or 8.

    Attributes:
        restorer: the :class:`~rlenhance.restore.SupervisedRestorer` (``noise_map=True``);
            ``spec``, ``channels``, ``model``, ``device`` and ``path`` repeat its own.
        sigma: the level given, or None (estimated per image).
        sigma_range: ``(low, high)``, the levels trained over (0-255 scale).

    Raises:
        CheckpointError: not a noise-map denoiser.
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
        """The noise level of each image of ``x`` (B, C, H, W), 0-255, float32 (B, 1, 1, 1): :attr:`sigma`, or
        each image's estimate clipped to :attr:`sigma_range`."""
        if self.sigma is not None:
            return torch.full((x.shape[0], 1, 1, 1), self.sigma, device=x.device)
        low, high = self.sigma_range
        found = [min(max(estimate_noise_sigma(image.permute(1, 2, 0).cpu().numpy()), low), high) for image in x]
        return torch.tensor(found, dtype=torch.float32, device=x.device).view(-1, 1, 1, 1)

    def restore(self, image: np.ndarray, *, mask: np.ndarray | None = None, per_channel: bool = False,
                dtype: type | np.dtype = np.float32) -> np.ndarray:
        """Denoise one image, as :meth:`PolicyDenoiser.restore`; a gray model on an RGB image without
        ``per_channel`` denoises its opponent colour planes (RGB out)."""
        return restore_one(self, image, mask, per_channel, dtype)

    def restore_tensor(self, x: Tensor, *, per_channel: bool = False, dtype: torch.dtype = torch.float32) -> Tensor:
        """Batched :meth:`restore`: float (B, C, H, W) (or uint8 / uint16), C in {1, 3} -> (B, C_out, H, W) on
        ``x``'s device, float32 in [0, 1] or uint8 (``dtype``), each image at its level (:meth:`levels`)."""
        if not torch.is_tensor(x) or x.dim() != 4 or x.numel() == 0:
            raise ImageError(f"image: expected a float tensor (B, C, H, W) with C in {{1, 3}}; got "
                             f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
        levels = noise_level_map(torch.ones(1, 1, 1, 1, device=x.device), self.levels(x))
        return self.restorer.restore_tensor(x, per_channel=per_channel,
                                            noise_map=levels.expand(-1, -1, *x.shape[-2:]), dtype=dtype)


def restore_one(denoiser, image: np.ndarray, mask: np.ndarray | None, per_channel: bool,
                dtype: type | np.dtype = np.float32) -> np.ndarray:
    """``denoiser.restore``: one (H, W[, C]) image through its ``restore_tensor``, as (H, W, C_out) of ``dtype``."""
    out_dtype = result_dtype(dtype)
    if mask is not None:
        raise ImageError(f"mask: given, but {denoiser.path} is a denoiser, which takes no mask")
    hwc = as_hwc_image(image, noisy=True, samples=True)
    x = torch.from_numpy(hwc).permute(2, 0, 1)[None]  # a view: the tiles read the image in place
    out = denoiser.restore_tensor(x, per_channel=per_channel, dtype=out_dtype)
    return np.ascontiguousarray(out[0].permute(1, 2, 0).cpu().numpy())
