"""One interface for every restorer, :class:`Restorer`, and the supervised baselines behind it:
:class:`SupervisedRestorer`.

A restorer takes one image, float (H, W, C) in [0, 1] or uint8 / uint16 samples (channels last,
RGB, checked by :func:`rlenhance.io.as_unit_float`), and the hole mask where its task has one, and
returns the restored image, float32 (H, W, C) in [0, 1], or with ``dtype=np.uint8`` the levels
:func:`rlenhance.io.save_image` writes of it: ``restore(image, *, mask=None, dtype=np.float32,
**settings)``. Every method of :mod:`rlenhance.registry` loads as one (``registry.load(task, name)``);
the RL ones also say what their agent did, ``restore_traced(image, ...) -> (output, trace)``
(:mod:`rlenhance.trace`):

===============================================  =================================================================
restorer                                         what restores the image
===============================================  =================================================================
:class:`rlenhance.Enhancer`                      a low-light RL policy (LE curves; the setting as ``**settings``)
:class:`SupervisedRestorer`                      a supervised checkpoint (MRPNet, PixelRNN, gated PixelRNN, FFDNet,
                                                 U-Net, a network of one's own)
:class:`rlenhance.denoisers.NoiseLevelDenoiser`  a noise-map denoiser (FFDNet) given the map of a level
:class:`rlenhance.denoisers.PolicyDenoiser`      an A3C / SAC filter-bank denoising policy (tiled)
:class:`rlenhance.rse.RSERestorer`               an RSE-RL denoiser (``experiments.rse_train``)
:class:`rlenhance.completion.PolicyCompleter`    an RL fill-action completion policy
:class:`rlenhance.registry.ClassicalRestorer`    a classical method of :mod:`rlenhance.baselines`
===============================================  =================================================================

:func:`hole_mask` (:mod:`rlenhance.data.occluded`) is importable here.

:class:`SupervisedRestorer` is the one loader and inference path for every checkpoint of
``experiments.supervised_train`` (the package's networks and a user's, named by import path). Its
:class:`rlenhance.checkpoint.SupervisedSpec` says the ``model``, ``task``, ``channels`` and ``prefill``; the
network's class says what it reads besides the image (``reads_mask``, ``reads_noise_map``). Large images
are processed in tiles (:func:`rlenhance.ops.tiling.tiled`) whose margins cover the receptive field, so
the result matches a whole-image pass to float rounding.

Example:
    >>> restorer = SupervisedRestorer("runs/supervised_train/checkpoints/best.pt")     # doctest: +SKIP
    >>> restorer.task                                                                  # doctest: +SKIP
    'completion'
    >>> out = restorer.restore(load_image("occluded.jpg"), hole_mask(load_image("occluded.jpg")))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from rlenhance import registry
from rlenhance.checkpoint import SPEC_KEY, SupervisedSpec, build_model, load_checkpoint
from rlenhance.data.occluded import HOLE_THRESHOLD, hole_mask
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.io import BT601_LUMA_WEIGHTS, MASK_THRESHOLD, as_unit_float
from rlenhance.io.arrays import RESULT_DTYPES, as_result, result_dtype, unit_window
from rlenhance.models import MODELS, model_name
from rlenhance.models.pixelrnn import composite
from rlenhance.models.vae import d4_inverse, d4_transform
from rlenhance.ops.fill import prefill_patches
from rlenhance.ops.tiling import on_grid, paste, tiled
from rlenhance.plugins import is_import_path
from rlenhance.runtime import flush_denormals, select_device
from rlenhance.tasks import TASKS

__all__ = ["DEFAULT_COMPLETION_CHECKPOINT", "DEFAULT_DENOISE_CHECKPOINT", "ENSEMBLES", "HOLE_THRESHOLD",
           "MASK_THRESHOLD", "OPPONENT_COLOUR", "OPPONENT_OFFSET", "Restorer", "SupervisedRestorer", "as_hwc_image",
           "as_mask", "check_ensemble", "default_checkpoint", "hole_mask"]

#: The shipped gray MRPNet denoiser (``SupervisedRestorer(task="denoise")`` without a checkpoint).
DEFAULT_DENOISE_CHECKPOINT = registry.WEIGHTS / registry.find("denoise", "mrpnet").weights[1]
#: The shipped completion U-Net (``SupervisedRestorer(task="completion")`` without a checkpoint).
DEFAULT_COMPLETION_CHECKPOINT = registry.WEIGHTS / registry.find("completion", "unet").weights[3]
#: Self-ensemble sizes -> the D4 transforms averaged over (:data:`rlenhance.registry.ENSEMBLES`).
ENSEMBLES = registry.ENSEMBLES
#: BM3D's opponent colour transform (orthogonal rows: the mean and two colour differences).
OPPONENT_COLOUR = ((1 / 3, 1 / 3, 1 / 3), (1 / 2, 0.0, -1 / 2), (1 / 4, -1 / 2, 1 / 4))
#: Added to the opponent planes so that an RGB image in [0, 1] gives planes in [0, 1].
OPPONENT_OFFSET = (0.0, 0.5, 0.5)
#: Image planes a restorer reads: gray or RGB.
_PLANES = (1, 3)


# --- the interface -------------------------------------------------------------------------------
@runtime_checkable
class Restorer(Protocol):
    """What every restorer offers (module table): one image in, the restored image out.

    Attributes:
        takes_mask: :meth:`restore` needs a hole mask (completion); else it refuses one.
    """

    @property
    def takes_mask(self) -> bool: ...

    def restore(self, image: np.ndarray, *, mask: np.ndarray | None = None, dtype: type | np.dtype = np.float32,
                **settings: Any) -> np.ndarray:
        """Restore one image.

        Args:
            image: array (H, W, C), C in {1, 3}, RGB (or (H, W)): float values in [0, 1] (a
                denoiser also takes unclipped noisy values in :data:`rlenhance.io.NOISY_RANGE`),
                or uint8 / uint16 samples scaled by their range (:func:`rlenhance.io.as_unit_float`).
            mask: (H, W) or (H, W, 1), bool or numbers, values above :data:`MASK_THRESHOLD`
                (True) mark missing pixels; required when :attr:`takes_mask`, else refused.
            dtype: of the result, one of :data:`RESULT_DTYPES`: ``np.float32`` (values in [0, 1]) or
                ``np.uint8`` (:func:`rlenhance.io.float_to_levels` of the float result).
            **settings: the method's own (its registry entry's ``restore_settings``: a denoiser's
                ``per_channel``, the low-light policy's setting, a classical denoiser's ``sigma``).

        Returns:
            (H, W, C_out) of ``dtype``, the input's height and width (times the ``upscale`` of a
            super-resolution model).

        Raises:
            ImageError: a bad image or mask (shape, dtype, values), a mask missing or refused.
            ValueError: another ``dtype``.
        """
        ...


def as_hwc_image(image: np.ndarray, *, noisy: bool = False, samples: bool = False) -> np.ndarray:
    """A restorer's ``image`` checked (:func:`rlenhance.io.as_unit_float`) and as float32 (H, W, C).

    Args:
        image: (H, W, C) with C in {1, 3}, or (H, W).
        noisy: a denoiser's input: unclipped noisy values are accepted.
        samples: uint8 / uint16 samples are kept (in native byte order), for :func:`unit_window`.

    Returns:
        float32 (or with ``samples``, the samples') (H, W, C), writable (a read-only input is copied).

    Raises:
        ImageError: another shape, dtype or range.
    """
    if samples and isinstance(image, np.ndarray) and image.dtype.kind == "u" and image.dtype.itemsize in (1, 2):
        image = image.astype(image.dtype.newbyteorder("="), copy=False)
    else:
        image = as_unit_float(image, noisy=noisy)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in _PLANES):
        raise ImageError(f"image: expected an array (H, W, C) with C in {{1, 3}}, or (H, W); got shape "
                         f"{image.shape}")
    image = image if image.flags.writeable else image.copy()
    return image if image.ndim == 3 else image[..., None]


def as_mask(mask: np.ndarray, *, size: tuple[int, int] | None = None) -> np.ndarray:
    """A restorer's ``mask`` as bool (H, W), True = missing pixel (values above :data:`MASK_THRESHOLD`).

    Args:
        mask: (H, W) or (H, W, 1), bool or numbers.
        size: the image's (H, W), which the mask must have; None: not checked.

    Raises:
        ImageError: another type, shape or dtype, or a mask of another size.
    """
    if not isinstance(mask, np.ndarray) or mask.ndim not in (2, 3) or (mask.ndim == 3 and mask.shape[2] != 1) \
            or not (mask.dtype == np.bool_ or np.issubdtype(mask.dtype, np.number)):
        raise ImageError(f"mask: expected a bool or numeric array (H, W) or (H, W, 1); got "
                         f"{getattr(mask, 'shape', type(mask).__name__)} {getattr(mask, 'dtype', '')}")
    plane = mask if mask.ndim == 2 else mask[..., 0]
    if size is not None and plane.shape != tuple(size):
        raise ImageError(f"mask: size {plane.shape} does not match the image {tuple(size)}; expected the same "
                         "height and width")
    return plane > MASK_THRESHOLD


def default_checkpoint(task: str) -> Path:
    """The shipped supervised checkpoint for ``task`` (the gray one for ``"denoise"``).

    Raises:
        CheckpointError: its file is not installed (the message says how to train one and to pass it).
        ValueError: an unknown ``task``.
    """
    loader = f"{__name__}:{SupervisedRestorer.__name__}"
    method = next(m for m in registry.methods(task) if m.loader == loader)
    return registry.default_weights(method, 1)


def _total_stride(model: nn.Module) -> int:
    """Product of the strides of the model's (non-transposed) convolutions and pixel-unshuffle blocks."""
    stride = 1
    for module in model.modules():
        if type(module) is nn.Conv2d:
            stride *= int(module.stride[0])
        elif isinstance(module, nn.PixelUnshuffle):
            stride *= int(module.downscale_factor)
    return stride


# --- supervised checkpoints --------------------------------------------------------------------------
class SupervisedRestorer:
    """Apply a supervised checkpoint of ``experiments.supervised_train`` to images of any size (a :class:`Restorer`).

    Args:
        checkpoint: the checkpoint file; None: the shipped model of ``task``
            (:data:`DEFAULT_DENOISE_CHECKPOINT` / :data:`DEFAULT_COMPLETION_CHECKPOINT`).
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        task: the task(s) accepted (a name or names from :data:`TASKS`); None accepts any task (and
            then ``checkpoint`` must be given).
        tile: side of the tiles' core, in pixels (rounded up to a multiple of the net's stride).
        overlap: margin read around each tile (rounded up to a multiple of the stride); at least
            the net's receptive radius for seamless output.
        noise_map: whether the caller gives :meth:`restore` a per-pixel noise-level map: False accepts
            plain checkpoints only, True noise-map denoisers only (FFDNet), None either.
        ensemble: geometric self-ensemble size (:data:`ENSEMBLES`: 1, none; 2, 4 or 8 flips and
            quarter turns averaged over).

    Attributes:
        spec: the checkpoint's :class:`~rlenhance.checkpoint.SupervisedSpec`.
        task, channels, composite, prefill, upscale, model_name: the spec's (``model_name`` its ``model``).
        needs_mask: the net reads the mask (gated PixelRNN).
        arch_class: the network's class name (``"CombinedModel"`` for MRPNet + Generator).
        model: the network, in eval mode, on ``device``; device: where it runs; path: the checkpoint file.
        takes_mask: :meth:`restore` needs a mask (completion checkpoints).
        needs_noise_map: :meth:`restore` needs a ``noise_map`` (FFDNet), refused otherwise.
        stride: the net's total stride; images are reflect-padded to a multiple of it.
        tile, overlap: the tiling actually used (multiples of ``stride``, in input pixels).
        ensemble: as given.

    Raises:
        CheckpointError: the file is missing or broken, not a supervised checkpoint (or its spec does
            not describe its network), its task is not accepted, a noise-map denoiser where
            ``noise_map`` is False or a plain one where it is True, or no default checkpoint is installed.
        ValueError: bad ``device``, ``task``, ``tile``, ``overlap``, ``noise_map`` or ``ensemble``.

    Example:
        >>> denoiser = SupervisedRestorer("mrpnet_denoise.pt", task="denoise")   # doctest: +SKIP
        >>> clean = denoiser.restore(noisy_rgb, per_channel=True)              # doctest: +SKIP
    """

    def __init__(self, checkpoint: str | os.PathLike[str] | None = None, *, device: str | torch.device = "auto",
                 task: str | Sequence[str] | None = None, tile: int = 512, overlap: int = 48,
                 noise_map: bool | None = False, ensemble: int = 1):
        flush_denormals()
        accepted = (task,) if isinstance(task, str) else tuple(task) if task is not None else TASKS
        unknown = [t for t in accepted if t not in TASKS]
        if unknown or not accepted:
            raise ValueError(f"task: expected one or more of {TASKS}, got {task!r}")
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
            raise ValueError(f"tile: expected an integer >= 1, got {tile!r}")
        if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
            raise ValueError(f"overlap: expected an integer >= 0, got {overlap!r}")
        if noise_map not in (True, False, None):
            raise ValueError(f"noise_map: expected True, False or None, got {noise_map!r}")
        check_ensemble(ensemble)
        if checkpoint is None:
            if len(accepted) != 1:
                raise ValueError("checkpoint: required unless exactly one task is given (to pick its shipped model)")
            checkpoint = default_checkpoint(accepted[0])
        self.device = select_device(device)
        self.path = Path(checkpoint)
        ckpt = load_checkpoint(self.path, map_location="cpu", spec=SupervisedSpec)
        spec: SupervisedSpec = ckpt["extra"][SPEC_KEY]
        network = self._network(spec, ckpt["arch"])
        if spec.task not in accepted:
            raise CheckpointError(f"checkpoint {self.path}: trained for task {spec.task!r}; this needs a "
                                  f"checkpoint of task {' or '.join(repr(t) for t in accepted)}")
        self.needs_mask: bool = bool(getattr(network, "reads_mask", False))
        self.needs_noise_map: bool = bool(getattr(network, "reads_noise_map", False))
        if noise_map is False and self.needs_noise_map:
            raise CheckpointError(f"checkpoint {self.path}: a noise-map denoiser (model {spec.model!r}) reads a "
                                  "per-pixel noise-level map, which this use does not supply; run it after the RL "
                                  "policy's curve steps, which set the map (rlenhance.Enhancer(denoiser=...), "
                                  "rlenhance enhance --denoiser), load it with rlenhance.load_denoiser('ffdnet', ...) "
                                  "(rlenhance denoise --model ffdnet), which gives it the map of a noise level, or "
                                  "give a plain denoiser (supervised_train --model mrpnet --task denoise)")
        if noise_map is True and not self.needs_noise_map:
            raise CheckpointError(f"checkpoint {self.path}: a plain {spec.task} model (model {spec.model!r}) that "
                                  "reads no noise-level map; this needs a noise-map denoiser (supervised_train "
                                  "--model ffdnet)")
        self.spec = spec
        self.task: str = spec.task
        self.channels: int = spec.channels
        self.composite: bool = spec.composite
        self.prefill: str = spec.prefill
        self.upscale: int = spec.upscale
        self.model_name: str = spec.model
        self.arch_class: str = ckpt["arch"]["class"]
        self.model = build_model(ckpt, MODELS).to(self.device).eval()
        if getattr(self.model, "in_channels", self.channels) != self.channels:
            raise CheckpointError(f"checkpoint {self.path}: its {spec} does not describe its network "
                                  f"{self.arch_class}({ckpt['arch']['kwargs']})")
        self.stride = _total_stride(self.model)
        self.tile, self.overlap = on_grid(tile, overlap, self.stride)
        self.ensemble: int = ensemble

    def _network(self, spec: SupervisedSpec, arch: Mapping[str, Any]) -> type[nn.Module]:
        """The network class ``arch`` names; raise CheckpointError unless it fits the ``spec``."""
        source = f"checkpoint {self.path}"
        if is_import_path(arch["class"]) and arch["class"] != spec.model:
            raise CheckpointError(f"{source}: its SupervisedSpec does not fit its network: model {spec.model!r} "
                                  f"with class {arch['class']!r}")
        try:
            network = MODELS.get(arch["class"])
        except ValueError as exc:
            raise CheckpointError(f"{source}: {exc}") from None
        problems = []
        if model_name(network) != spec.model:
            problems.append(f"model {spec.model!r} with class {arch['class']!r} (a network of model "
                            f"{model_name(network)!r})")
        if arch["kwargs"].get("variant", "default") != spec.variant:
            problems.append(f"variant {spec.variant!r} with a {arch['class']} of variant "
                            f"{arch['kwargs'].get('variant', 'default')!r}")
        if arch["kwargs"].get("upscale", 1) != spec.upscale:
            problems.append(f"upscale {spec.upscale} with a {arch['class']} of upscale "
                            f"{arch['kwargs'].get('upscale', 1)!r}")
        if getattr(network, "reads_mask", False) and spec.task != "completion":
            problems.append(f"model {spec.model!r} for task {spec.task!r} (it reads a hole mask: completion only)")
        if getattr(network, "reads_noise_map", False):
            problems += spec.noise_map_problems()
        if problems:
            raise CheckpointError(f"{source}: its SupervisedSpec does not fit its network: " + "; ".join(problems))
        return network

    @property
    def takes_mask(self) -> bool:
        """Whether :meth:`restore` needs a mask (completion checkpoints)."""
        return self.needs_mask or self.composite

    # --- numpy images ----------------------------------------------------------------------------
    def restore(self, image: np.ndarray, *, mask: np.ndarray | None = None, per_channel: bool = False,
                noise_map: np.ndarray | None = None, dtype: type | np.dtype = np.float32) -> np.ndarray:
        """Restore one image.

        Channels: a colour model given a gray image replicates it to RGB. A gray model given an RGB
        image reads its BT.601 luma and returns one plane, or with ``per_channel=True`` restores R, G
        and B separately and returns RGB. A gray noise-map denoiser given an RGB image without
        ``per_channel`` denoises its opponent colour planes (:data:`OPPONENT_COLOUR`) and returns RGB.

        Args:
            image: as :meth:`Restorer.restore`.
            mask: completion checkpoints only (required there): (H, W) or (H, W, 1), bool or
                float; values above 0.5 (True) mark missing pixels.
            per_channel: gray models on RGB input: restore each channel (see above).
            noise_map: noise-map denoisers only (required there): the noise standard deviation at
                each pixel in image units (``sigma / 255``), float >= 0, (H, W, C) or (H, W) / (H, W, 1).
            dtype: of the result (:data:`RESULT_DTYPES`): ``np.float32`` or ``np.uint8``, computed a
                tile at a time.

        Returns:
            (H, W, C_out) of ``dtype``, float32 in [0, 1] (for input in [0, 1]), or (:attr:`upscale` H,
            :attr:`upscale` W, C_out) for a super-resolution model; C_out is the model's planes,
            or 3 for a gray model on RGB input with ``per_channel=True`` or a noise map. For completion, the
            pixels outside the mask equal the input's exactly.

        Raises:
            ImageError: bad image, mask or noise map (shape, dtype, values, size), or one missing
                where required or given where refused.
            ValueError: another ``dtype``.
        """
        out_dtype = result_dtype(dtype)
        hwc = as_hwc_image(image, noisy=self.task == "denoise", samples=True)
        x = torch.from_numpy(hwc).permute(2, 0, 1)[None]  # a view: the tiles read the image in place
        m = None
        if mask is not None:
            m = torch.from_numpy(as_mask(mask))[None, None]  # bool: each window is converted on its own
        levels = None
        if noise_map is not None:
            if not isinstance(noise_map, np.ndarray) or noise_map.ndim not in (2, 3):
                raise ImageError(f"noise_map: expected an array (H, W) or (H, W, C), got "
                                 f"{getattr(noise_map, 'shape', type(noise_map).__name__)}")
            planes = noise_map if noise_map.ndim == 3 else noise_map[..., None]
            levels = torch.from_numpy(np.ascontiguousarray(planes.transpose(2, 0, 1), dtype=np.float32))[None]
        out = self.restore_tensor(x, m, per_channel=per_channel, noise_map=levels, dtype=out_dtype)
        return np.ascontiguousarray(out[0].permute(1, 2, 0).cpu().numpy())

    # --- tensors ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def restore_tensor(self, x: Tensor, mask: Tensor | None = None, *, per_channel: bool = False,
                       noise_map: Tensor | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """Batched :meth:`restore` on tensors (any device; the net runs on :attr:`device`).

        Args:
            x: float (B, C, H, W), C in {1, 3}, RGB, in [0, 1], or uint8 / uint16 samples (converted
                a window at a time, :func:`unit_window`).
            mask: completion only (required there): (B, 1, H, W) or (1, 1, H, W), 1 = missing
                pixel (binary, or bool; soft values blend).
            per_channel: gray models on RGB input: restore each channel separately.
            noise_map: noise-map denoisers only (required there): per-pixel noise standard
                deviation in image units, float >= 0, (B or 1, C or 1, H, W).
            dtype: ``torch.float32`` or ``torch.uint8`` (:func:`as_result`).

        Returns:
            (B, C_out, H, W) of ``dtype`` on ``x``'s device ((B, C_out, upscale H, upscale W) for a
            super-resolution model), clamped to [0, 1] except, for completion, the pixels outside
            the hole, which are ``x``'s exactly.

        Raises:
            ImageError: bad shapes, non-finite or out-of-range values (as in :meth:`restore`), mask
                or noise map missing / unexpected / of another size.
        """
        if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] not in (1, 3) or x.numel() == 0 \
                or not (x.is_floating_point() or x.dtype in (torch.uint8, torch.uint16)):
            raise ImageError(f"image: expected a float (or uint8 / uint16) tensor (B, C, H, W) with C in {{1, 3}}; got "
                             f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}"
                             f"{f' {x.dtype}' if torch.is_tensor(x) else ''}")
        if x.is_floating_point():  # samples are converted a window at a time
            x = as_unit_float(x, allow_tensor=True, noisy=self.task == "denoise").float()
        if mask is None and self.takes_mask:
            raise ImageError(f"mask: required by {self.path} (a {self.task} model, {self.arch_class}); give the "
                             "hole mask (1 = missing pixel), e.g. from a mask file or rlenhance.restore.hole_mask")
        if mask is not None:
            if not self.takes_mask:
                raise ImageError(f"mask: given, but {self.path} is a {self.task} model that takes no mask")
            if not torch.is_tensor(mask) or mask.dim() != 4 or mask.shape[1] != 1 \
                    or mask.shape[-2:] != x.shape[-2:] or mask.shape[0] not in (1, x.shape[0]):
                got = tuple(mask.shape) if torch.is_tensor(mask) else type(mask).__name__
                raise ImageError(f"mask: size {got} does not match the image {tuple(x.shape)}; expected "
                                 f"({x.shape[0]} or 1, 1, {x.shape[-2]}, {x.shape[-1]}), same height and width")
            mask = mask.to(device=x.device).expand(x.shape[0], -1, -1, -1)  # its dtype: windows are converted
        noise_map = self._checked_noise_map(noise_map, x)
        if dtype not in RESULT_DTYPES.values():
            raise ValueError(f"dtype: expected torch.float32 or torch.uint8, got {dtype!r}")
        if self.channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.channels == 1 and x.shape[1] == 3:
            if per_channel:
                batch = x.shape[0]
                planes = x.reshape(batch * 3, 1, *x.shape[-2:])
                planes_mask = mask.repeat_interleave(3, dim=0) if mask is not None else None
                planes_map = noise_map.expand(-1, 3, -1, -1).reshape(batch * 3, 1, *x.shape[-2:]) \
                    if noise_map is not None else None
                out = self._run(planes, planes_mask, planes_map, dtype=dtype)
                return out.reshape(batch, 3, *out.shape[-2:])
            if noise_map is not None:
                return self._run_opponent(x, noise_map, dtype)
            return self._run(x, mask, noise_map, luma=True, dtype=dtype)
        return self._run(x, mask, noise_map, dtype=dtype)

    def _run_opponent(self, x: Tensor, noise_map: Tensor, dtype: torch.dtype) -> Tensor:
        """A gray noise-map denoiser on RGB ``x`` (B, 3, H, W) through the opponent colour planes, tile by tile.

        Plane k's noise level is ``sqrt(sum_c A_kc^2 sigma_c^2)``.
        """
        transform = torch.tensor(OPPONENT_COLOUR, dtype=torch.float32, device=x.device)
        offset = torch.tensor(OPPONENT_OFFSET, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        inverse = torch.linalg.inv(transform)

        def window_fn(window: Tensor, levels: Tensor) -> Tensor:
            planes = torch.einsum("kc,bchw->bkhw", transform, unit_window(window)) + offset
            levels = torch.einsum("kc,bchw->bkhw", transform.square(), levels.expand(-1, 3, -1, -1).square()).sqrt()
            # plane by plane: one plane's activations at a time
            out = torch.cat([self._net(planes[:, k:k + 1], levels[:, k:k + 1]) for k in range(3)], dim=1)
            out = out.clamp_(0.0, 1.0) - offset.to(out.device)
            return as_result(torch.einsum("ck,bkhw->bchw", inverse.to(out.device), out).clamp_(0.0, 1.0), dtype)

        return tiled(window_fn, x, noise_map, tile=self.tile, overlap=self.overlap, multiple=self.stride,
                     scale=self.upscale)

    def _checked_noise_map(self, noise_map: Tensor | None, x: Tensor) -> Tensor | None:
        """``noise_map`` checked (ImageError) and as float32 (B, C or 1, H, W) on ``x``'s device."""
        if noise_map is None:
            if self.needs_noise_map:
                raise ImageError(f"noise_map: required by {self.path} (a noise-map denoiser, {self.arch_class}); give "
                                 "the per-pixel noise level (e.g. rlenhance.data.noise_level_map of the brightening), "
                                 "or run it as rlenhance.Enhancer's denoiser, which computes it")
            return None
        if not self.needs_noise_map:
            raise ImageError(f"noise_map: given, but {self.path} is a plain {self.task} model ({self.arch_class}) that "
                             "reads no noise-level map")
        if not torch.is_tensor(noise_map) or noise_map.dim() != 4 or not noise_map.is_floating_point() \
                or noise_map.shape[0] not in (1, x.shape[0]) or noise_map.shape[1] not in (1, x.shape[1]) \
                or noise_map.shape[-2:] != x.shape[-2:]:
            got = tuple(noise_map.shape) if torch.is_tensor(noise_map) else type(noise_map).__name__
            raise ImageError(f"noise_map: {got} does not fit the image {tuple(x.shape)}; expected a float tensor "
                             f"({x.shape[0]} or 1, {x.shape[1]} or 1, {x.shape[-2]}, {x.shape[-1]})")
        values = noise_map  # each value once: a map expanded from one level per image is checked as that level
        for dim in range(values.dim()):
            if values.stride(dim) == 0:
                values = values.narrow(dim, 0, 1)
        if not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
            raise ImageError("noise_map: expected finite noise levels >= 0 (standard deviations in image units)")
        return noise_map.to(device=x.device, dtype=torch.float32).expand(x.shape[0], -1, -1, -1)

    def _run(self, x: Tensor, mask: Tensor | None, noise_map: Tensor | None = None, *, luma: bool = False,
             dtype: torch.dtype = torch.float32) -> Tensor:
        """The net on ``x`` (B, channels, H, W; with ``luma``, the BT.601 luma of B, 3, H, W), tiled, clamped and
        composited, as ``dtype`` on ``x``'s device; no copy of ``x``'s size is made."""
        weights = torch.tensor(BT601_LUMA_WEIGHTS, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)

        def planes(window: Tensor) -> Tensor:  # what the net reads of a window of x
            window = unit_window(window)
            return (window * weights).sum(dim=1, keepdim=True) if luma else window

        patches = prefill_patches(x, mask, self.prefill, convert=planes) if mask is not None else []
        second = mask if self.needs_mask else noise_map if self.needs_noise_map else None
        aligned = (() if second is None else (second,)) + ((mask,) if self.composite else ())

        def window_fn(window: Tensor, *rest: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
            window = planes(window)
            if self.composite and self.upscale == 1 and not bool(rest[-1].any()):
                return as_result(window, dtype)  # no hole in the window: the composite is its input
            rest = tuple(r.float() for r in rest)
            out = self._net(paste(window, patches, rows, cols), *rest[:second is not None]).clamp_(0.0, 1.0)
            out = composite(window.to(out.device), out, rest[-1].to(out.device)) if self.composite else out
            return as_result(out, dtype)

        return tiled(window_fn, x, *aligned, tile=self.tile, overlap=self.overlap, multiple=self.stride,
                     scale=self.upscale, positions=True)

    def _net(self, window: Tensor, second: Tensor | None = None) -> Tensor:
        """The net on one window (and its mask or noise map), float32: the mean over the :attr:`ensemble`."""
        inputs = (window, second) if self.needs_mask or self.needs_noise_map else (window,)
        inputs = tuple(x.to(self.device) for x in inputs)
        transforms = ENSEMBLES[self.ensemble]
        return sum(d4_inverse(self.model(*(d4_transform(x, g) for x in inputs)).float(), g)
                   for g in transforms) / len(transforms)


def check_ensemble(ensemble: int) -> None:
    """Raise ValueError unless ``ensemble`` is a self-ensemble size of :data:`ENSEMBLES`."""
    if isinstance(ensemble, bool) or ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble: expected one of {tuple(ENSEMBLES)} (the flips and quarter turns averaged "
                         f"over; 1: none), got {ensemble!r}")
