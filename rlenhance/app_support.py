"""What the web app computes, without Streamlit: uploads, knobs, previews, methods, pictures, serving.

:mod:`rlenhance.app` is the page (Streamlit widgets -> one call here or to the library -> images); everything
it computes lives here so that it can be tested without a browser. Images are RGB float32 (H, W, 3) in [0, 1]
unless a function says otherwise; pictures for the page are RGB uint8.

Each tab computes live at a *work size* (:func:`work_image`) and the download at full size on request. Every
method of a tab is an entry of :mod:`rlenhance.registry`, run through its restorer's ``restore``. Nothing is
written outside a temporary folder; results are encoded in memory.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from rlenhance import metrics, registry
from rlenhance.app_serve import (
    APP_MAX_PIXELS,
    APP_SCRIPT,
    INSTALL_HINT,
    page_options,
    serve,
    streamlit_command,
    streamlit_missing,
)
from rlenhance.data.builtin import BUILTIN_IMAGES
from rlenhance.data.degrade import add_gaussian_noise, synthetic_low_light
from rlenhance.data.transforms import fit_longer_side
from rlenhance.enhance import Enhancer
from rlenhance.errors import ImageError
from rlenhance.io import IMAGE_EXTENSIONS, is_gray, load_image
from rlenhance.restore import MASK_THRESHOLD
from rlenhance.tasks import TASKS
from rlenhance.trace import ActionTrace, TracedRestorer
from rlenhance.transitions import LE, ActionFamily

__all__ = [
    "APP_MAX_PIXELS", "APP_SCRIPT", "COMPLETE_SIDE", "DENOISE_CROP", "ENHANCE_METHOD", "EnhanceKnobs", "EnhanceView",
    "INSTALL_HINT", "Knob", "METHODS", "Method", "PREVIEW_SIDE", "TASKS", "UPLOAD_TYPES", "alpha_pictures",
    "centre_crop", "decode_image", "enhance_knobs", "enhance_view", "find_method", "full_size_refused", "load_model",
    "mask_overlay", "method_missing", "methods_for", "noisy_copy", "page_options", "png_bytes", "quality",
    "read_mask", "restore", "restore_traced", "sample_photo", "serve", "split_view", "step_pictures",
    "streamlit_command", "streamlit_missing", "to_channels", "to_uint8", "work_image",
]

#: Longer side of the Enhance tab's live preview, in pixels.
PREVIEW_SIDE = 1280
#: Side of the Denoise tab's 100% centre crop, in pixels (RL rollouts take seconds per megapixel on a CPU).
DENOISE_CROP = 384
#: Longer side of the Complete tab's work image, in pixels.
COMPLETE_SIDE = 512
#: RL rollouts (filters per pixel and step) are slow on a CPU: the full-size result is offered up to this size.
RL_FULL_SIZE_PIXELS = 1_000_000
#: File types the uploaders accept (the decoder reads the content, whatever the name says).
UPLOAD_TYPES = tuple(ext.lstrip(".") for ext in IMAGE_EXTENSIONS)
#: Noise level (0-255) at which the shipped denoisers were trained.
TRAINED_SIGMA = 25.0
#: Seed of the synthetic noise and sample darkening (the same picture on every rerun).
SEED = 0


# Uploads


def decode_image(data: bytes, name: str, *, max_pixels: int = APP_MAX_PIXELS, gray: bool = False) -> np.ndarray:
    """Decode an uploaded image with :func:`rlenhance.io.load_image` (same formats, checks and messages),
    through a temporary file; messages name the upload.

    Args:
        data: the file's content.
        name: the upload's file name (for messages only; the format comes from the content).
        max_pixels: largest accepted width x height (checked from the header, before decoding).
        gray: one plane (BT.601 luma), as ``load_image(gray=True)``.

    Returns:
        float32 (H, W, 3) RGB, or (H, W, 1) with ``gray``, in [0, 1].

    Raises:
        ImageError: empty, not an image, corrupt or truncated, or more than ``max_pixels`` pixels.
    """
    shown = Path(name).name or "upload"
    if not data:
        raise ImageError(f"cannot load image '{shown}': the upload is empty (0 bytes)")
    suffix = Path(shown).suffix.lower() if Path(shown).suffix.lower() in IMAGE_EXTENSIONS else ".img"
    with tempfile.TemporaryDirectory(prefix="rlenhance-app-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return load_image(path, max_pixels=max_pixels, gray=gray)
        except ImageError as exc:
            raise ImageError(str(exc).replace(str(path), shown)) from None


def read_mask(data: bytes, name: str, size: tuple[int, int], *, max_pixels: int = APP_MAX_PIXELS) -> np.ndarray:
    """An uploaded mask image as a bool (H, W) hole (white = missing), resized to ``size`` = (H, W).

    A mask of another size is accepted only with the image's aspect ratio (within 1%), e.g. the
    mask of the full-size photo given with its work image; it is resized by nearest neighbour.

    Raises:
        ImageError: not an image (see :func:`decode_image`), or another aspect ratio (the message gives both sizes).
    """
    plane = decode_image(data, name, max_pixels=max_pixels, gray=True)[..., 0]
    height, width = size
    if plane.shape != (height, width):
        mask_ratio, image_ratio = plane.shape[1] / plane.shape[0], width / height
        if abs(mask_ratio / image_ratio - 1) > 0.01:
            raise ImageError(f"mask '{Path(name).name}' is {plane.shape[1]}x{plane.shape[0]} but the image is "
                             f"{width}x{height} (width x height); upload the mask made for this image (same size, "
                             "white = missing)")
        rows = np.minimum((np.arange(height) + 0.5) * plane.shape[0] / height, plane.shape[0] - 1).astype(int)
        cols = np.minimum((np.arange(width) + 0.5) * plane.shape[1] / width, plane.shape[1] - 1).astype(int)
        plane = plane[rows][:, cols]
    return plane > MASK_THRESHOLD


def work_image(image: np.ndarray, task: str) -> tuple[np.ndarray, str]:
    """The image a tab computes on live, and how it was made: the photo area-downscaled to :data:`PREVIEW_SIDE`
    (Enhance) or :data:`COMPLETE_SIDE` (Complete), or a 100% centre crop of :data:`DENOISE_CROP` px (Denoise).

    Args:
        image: the full-size upload, float32 (H, W, C).
        task: one of :data:`TASKS`.

    Returns:
        ``(work, how)``: ``how`` is ``"full"`` (the image itself), ``"downscaled"`` or ``"crop"``.
    """
    if task == "denoise":
        crop = centre_crop(image, DENOISE_CROP)
        return crop, "full" if crop.shape == image.shape else "crop"
    side = PREVIEW_SIDE if task == "lowlight" else COMPLETE_SIDE
    if max(image.shape[:2]) <= side:
        return image, "full"
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    small = fit_longer_side(x, side).clamp(0.0, 1.0)
    return np.ascontiguousarray(small.permute(1, 2, 0).numpy(), dtype=np.float32), "downscaled"


def centre_crop(image: np.ndarray, side: int) -> np.ndarray:
    """The centre ``side`` x ``side`` pixels of ``image`` (H, W, ...) (each side capped by the image's)."""
    height, width = image.shape[:2]
    h, w = min(height, side), min(width, side)
    top, left = (height - h) // 2, (width - w) // 2
    return image[top:top + h, left:left + w]


def noisy_copy(image: np.ndarray, sigma: float, *, seed: int = SEED) -> np.ndarray:
    """``image`` plus white Gaussian noise of ``sigma`` (0-255 scale), not clipped (the DnCNN /
    PixelRL protocol the denoisers were trained and scored with); the same noise for the same seed."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    noisy = add_gaussian_noise(x, float(sigma), generator=generator)
    return np.ascontiguousarray(noisy.permute(1, 2, 0).numpy(), dtype=np.float32)


def sample_photo(task: str) -> tuple[str, bytes, bytes]:
    """A photo to try a tab on without an upload: ``(file name, input PNG, reference PNG)``: scikit-image's
    astronaut darkened, the clean coffee photo (the tab adds the noise), or the cat photo with a square hole.
    """
    if task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
    name = {"lowlight": "astronaut", "denoise": "coffee", "completion": "chelsea"}[task]
    clean = BUILTIN_IMAGES[name]().astype(np.float32) / 255.0
    if task == "lowlight":
        x = torch.from_numpy(np.ascontiguousarray(clean.transpose(2, 0, 1)))[None]
        dark = synthetic_low_light(x, generator=torch.Generator().manual_seed(SEED))[0]
        return "astronaut_dark.png", png_bytes(dark.permute(1, 2, 0).numpy()), png_bytes(clean)
    if task == "completion":
        occluded = clean.copy()
        occluded[100:164, 200:264] = 0.0
        return "chelsea_occluded.png", png_bytes(occluded), png_bytes(clean)
    return "coffee.png", png_bytes(clean), png_bytes(clean)


# Pictures


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] (values outside are clipped) -> uint8 with three channels (gray replicated)."""
    out = np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    if out.ndim == 2:
        out = out[..., None]
    return np.repeat(out, 3, axis=2) if out.shape[2] == 1 else out


def png_bytes(image: np.ndarray) -> bytes:
    """An RGB float image in [0, 1] (or uint8) encoded as an 8-bit RGB PNG, in memory."""
    pixels = image if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 else to_uint8(image)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def split_view(before: np.ndarray, after: np.ndarray, position: float) -> np.ndarray:
    """One picture, ``before`` left of ``position`` (0-1 of the width) and ``after`` right of it, with a
    white 2-pixel line at the split. Both images (H, W, C) of one size; returns uint8 RGB."""
    if before.shape[:2] != after.shape[:2]:
        raise ImageError(f"split_view: before {before.shape} and after {after.shape} differ in size")
    left, right = to_uint8(before), to_uint8(after)
    width = left.shape[1]
    cut = int(round(float(np.clip(position, 0.0, 1.0)) * width))
    out = right.copy()
    out[:, :cut] = left[:, :cut]
    out[:, max(0, cut - 1):min(width, cut + 1)] = 255
    return out


def mask_overlay(image: np.ndarray, mask: np.ndarray, *, opacity: float = 0.55) -> np.ndarray:
    """``image`` with the hole ``mask`` (bool (H, W), True = missing) tinted red; uint8 RGB."""
    out = to_uint8(image).astype(np.float32)
    red = np.array([255.0, 0.0, 0.0], np.float32)
    out[mask] = (1.0 - opacity) * out[mask] + opacity * red
    return np.rint(out).astype(np.uint8)


def alpha_pictures(maps: Sequence[torch.Tensor], *, width: int = 128,
                   aspect: float | None = None) -> tuple[list[np.ndarray], list[str]]:
    """Pictures of the per-step alpha maps of :meth:`rlenhance.Enhancer.alpha_maps`: where the agent
    brightened more or less.

    Each map (1, C, h, w) is stretched from its smallest alpha (black) to its largest (white), RGB for 3
    channels, gray for 1; the caption gives the range. Maps are enlarged by nearest neighbour to ``width``
    pixels, at the photo's height / width ``aspect`` (None: the map's own).

    Returns:
        ``(pictures, captions)``: uint8 RGB (H', width, 3) per step, and "step k: lo…hi" (the alpha range).
    """
    pictures, captions = [], []
    for step, alpha in enumerate(maps, start=1):
        planes = alpha.detach().float()[0].cpu().numpy().transpose(1, 2, 0)  # (h, w, C)
        low, high = float(planes.min()), float(planes.max())
        stretched = (planes - low) / (high - low) if high - low > 1e-6 else np.full_like(planes, 0.5)
        height = max(1, round(width * (planes.shape[0] / planes.shape[1] if aspect is None else aspect)))
        rows = np.minimum((np.arange(height) * planes.shape[0]) // height, planes.shape[0] - 1)
        cols = np.minimum((np.arange(width) * planes.shape[1]) // width, planes.shape[1] - 1)
        pictures.append(to_uint8(stretched[rows][:, cols]))
        captions.append(f"step {step}: {low:+.2f}…{high:+.2f}")
    return pictures, captions


def step_pictures(image: np.ndarray, maps: Sequence[torch.Tensor], *, width: int = 128,
                  family: type[ActionFamily] = LE) -> list[np.ndarray]:
    """The image after each curve step, at the alpha maps' resolution (what the agent saw): the
    maps of :meth:`~rlenhance.Enhancer.alpha_maps` applied in turn with the curve of the policy's action
    ``family`` (:attr:`LowLightTransition.family <rlenhance.transitions.LowLightTransition.family>`).
    Returns uint8 RGB pictures of ``width`` pixels at the image's aspect ratio."""
    if not maps:
        return []
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    height_map, width_map = maps[0].shape[-2:]
    x = torch.nn.functional.interpolate(x, size=(height_map, width_map), mode="area")
    pictures = []
    for alpha in maps:
        x = family.curve(x, alpha.detach().float().cpu()).clamp(0.0, 1.0)
        big = torch.nn.functional.interpolate(x, size=(max(1, round(image.shape[0] * width / image.shape[1])), width),
                                              mode="bilinear", align_corners=False)
        pictures.append(to_uint8(big[0].permute(1, 2, 0).numpy()))
    return pictures


# The enhancer's knobs


@dataclass(frozen=True)
class Knob:
    """One slider: the :meth:`rlenhance.Enhancer.cond` keyword ``name``, its range and default."""

    name: str
    label: str
    low: float
    high: float
    default: float

    @property
    def log(self) -> bool:
        """A weight over a wide range (high / low >= :data:`LOG_KNOB_RATIO`) is offered on a log scale."""
        return self.name != "exposure" and self.low > 0 and self.high / self.low >= LOG_KNOB_RATIO

    def stops(self, count: int = 25) -> tuple[float, ...]:
        """The positions of a :attr:`log` knob's slider: ``count`` geometric steps from low to high at
        two significant digits (the ends exact), and the default."""
        inner = (float(f"{v:.2g}") for v in np.geomspace(self.low, self.high, count)[1:-1])
        return tuple(sorted({self.low, self.high, self.default, *(v for v in inner if self.low < v < self.high)}))


@dataclass(frozen=True)
class EnhanceKnobs:
    """What a low-light model lets the user change (see :func:`enhance_knobs`).

    Attributes:
        sliders: the settings the model was trained to follow, each in its trained range.
        fixed: the settings it was trained with fixed values, ``{name: value}`` (shown, not changeable).
        steps: the curve-steps slider (1 to twice the trained test steps, default the checkpoint's).
        conditioned: the model was trained over random settings (its spec's ``conditioned``).
    """

    sliders: tuple[Knob, ...]
    fixed: Mapping[str, float]
    steps: Knob
    conditioned: bool


#: A weight range at least this wide (high / low) gets a log-scale slider (:attr:`Knob.log`).
LOG_KNOB_RATIO = 10.0
#: Setting keyword of :meth:`Enhancer.cond` -> slider label.
_KNOB_LABELS = {"exposure": "Target brightness (exposure)", "w_exposure": "Exposure weight",
                "w_color": "Colour-constancy weight", "w_spatial": "Spatial-consistency weight",
                "w_smooth": "Smoothness weight"}


def enhance_knobs(enhancer: Enhancer) -> EnhanceKnobs:
    """The sliders a low-light model accepts: the settings it was trained to vary, each in its trained range
    (:attr:`Enhancer.setting_ranges`); every other setting is fixed at its training value."""
    spec = enhancer.spec
    ranges = enhancer.setting_ranges
    sliders, fixed = [], {}
    for key, value in spec.setting.items():
        name, value = ("exposure" if key == "exposure_target" else key), float(value)
        low, high = ranges.get(name, (value, value))
        if high > low:
            default = float(np.clip(value, low, high))
            sliders.append(Knob(name, _KNOB_LABELS.get(name, name), float(low), float(high), default))
        else:
            fixed[name] = value
    trained_steps = int(spec.transition.steps)
    steps = Knob("steps", "Curve steps", 1, max(2 * trained_steps, 2), trained_steps)
    return EnhanceKnobs(tuple(sliders), fixed, steps, bool(spec.conditioned))


@dataclass(frozen=True)
class EnhanceView:
    """One enhanced photo as the Enhance tab shows it (see :func:`enhance_view`).

    Attributes:
        image: the result, RGB float32 (H, W, 3) in [0, 1].
        png: ``image`` as PNG bytes (shown and downloaded without re-encoding).
        seconds: enhancement time.
        mean_before, mean_after: mean brightness of the input and of the result.
        alpha: one picture per step (:func:`alpha_pictures`), with ``alpha_captions``.
        steps: the image after each step at the policy's resolution (:func:`step_pictures`).
    """

    image: np.ndarray
    png: bytes
    seconds: float
    mean_before: float
    mean_after: float
    alpha: list[np.ndarray]
    alpha_captions: list[str]
    steps: list[np.ndarray]


def enhance_view(enhancer: Enhancer, image: np.ndarray, setting: Mapping[str, float]) -> EnhanceView:
    """Enhance ``image`` (RGB float32 (H, W, 3)) with ``setting`` (:meth:`Enhancer.cond` keywords) and
    draw what the agent did: the per-step alpha maps and the image after each step."""
    result = enhancer.enhance_array(image, **setting)
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(enhancer.device)
    maps = [m.cpu() for m in enhancer.alpha_maps(x, enhancer.cond(**setting))]
    alpha, captions = alpha_pictures(maps, aspect=image.shape[0] / image.shape[1])
    return EnhanceView(result.image, png_bytes(result.image), result.seconds, result.mean_before, result.mean_after,
                       alpha, captions, step_pictures(image, maps, family=enhancer.transition.family))


# Methods: RL, supervised, classical


#: A method of a tab: an entry of :mod:`rlenhance.registry`.
Method = registry.Method
#: Every method the app offers (those that ship), per task, in the order the page lists them.
METHODS: tuple[Method, ...] = tuple(m for m in registry.methods() if registry.ships(m))
#: The method of the Enhance tab (the one that takes the app's ``--checkpoint``).
ENHANCE_METHOD = ("lowlight", registry.DEFAULTS["lowlight"])


def methods_for(task: str, family: str | None = None) -> list[Method]:
    """The methods of ``task`` (one of :data:`TASKS`) that ship (:func:`rlenhance.registry.ships`: the app
    loads no other checkpoint), optionally of one family only."""
    return [m for m in registry.methods(task, family=family) if registry.ships(m)]


def method_missing(method: Method) -> str | None:
    """Why ``method`` cannot run here (a file, a package), or None if it can."""
    return registry.missing(method)


def find_method(task: str, key: str) -> Method:
    """The method ``key`` of ``task``; ValueError naming the accepted keys when there is none."""
    return registry.find(task, key)


def load_model(method: Method, *, device: str = "auto", checkpoint: str | os.PathLike[str] | None = None,
               ensemble: int = 1) -> Any:
    """The restorer behind ``method`` (:func:`rlenhance.registry.load`); load it once and reuse it.
    A denoiser is its gray model when that is installed, else its colour one.

    Args:
        method: one of :data:`METHODS`.
        device: "auto", "cpu", "cuda" or "cuda:N".
        checkpoint: the low-light RL method (the Enhance tab's): the policy to load (None: the
            shipped one); the other methods load their shipped weights.
        ensemble: one of ``method.ensembles``: the self-ensemble of a network.

    Raises:
        CheckpointError: a bad checkpoint. ValueError: an ``ensemble`` the method does not offer.
    """
    if ensemble not in method.ensembles:
        raise ValueError(f"ensemble: {method.label} offers {method.ensembles}, got {ensemble!r}")
    settings = {"ensemble": ensemble} if len(method.ensembles) > 1 else {}
    gray = method.weights.get(1)
    planes = 1 if gray is not None and (registry.WEIGHTS / gray).is_file() else 3
    given = checkpoint if (method.task, method.name) == ENHANCE_METHOD else None
    return registry.load(method.task, method.name, given, planes=planes, device=device, **settings)


def restore(method: Method, model: Any, image: np.ndarray, *, mask: np.ndarray | None = None,
            sigma: float = TRAINED_SIGMA, setting: Mapping[str, float] | None = None) -> np.ndarray:
    """Run one method on one image (RGB float32 (H, W, 3); a denoiser also takes unclipped noisy values).

    Args:
        method: one of :data:`METHODS`.
        model: :func:`load_model` of ``method``.
        image: the input.
        mask: completion: bool (H, W), True = missing pixel (required).
        sigma: denoise, classical filters: the noise level (0-255) they are tuned for.
        setting: low light, RL policy: :meth:`rlenhance.Enhancer.cond` keywords.

    Returns:
        RGB float32 (H, W, 3) in [0, 1] (gray models: R, G and B separately, or the opponent colour planes).

    Raises:
        ImageError: a bad image or mask.
    """
    return _run(method, model, image, mask, sigma, setting, traced=False)[0]


def restore_traced(method: Method, model: Any, image: np.ndarray, *, mask: np.ndarray | None = None,
                   sigma: float = TRAINED_SIGMA, setting: Mapping[str, float] | None = None
                   ) -> tuple[np.ndarray, ActionTrace | None]:
    """:func:`restore` and what an RL method's agent did (:mod:`rlenhance.trace`; None for other methods)."""
    return _run(method, model, image, mask, sigma, setting, traced=True)


def _run(method: Method, model: Any, image: np.ndarray, mask: np.ndarray | None, sigma: float,
         setting: Mapping[str, float] | None, traced: bool) -> tuple[np.ndarray, ActionTrace | None]:
    if method.task == "completion" and (mask is None or mask.shape != image.shape[:2]):
        raise ImageError(f"{method.label}: needs a hole mask of the image's size {image.shape[:2]}, got "
                         f"{None if mask is None else mask.shape}")
    offered = {"sigma": sigma, "per_channel": method.gray_on_colour != "opponent", **dict(setting or {})}
    settings = {name: value for name, value in offered.items() if name in method.restore_settings}
    if method.task != "denoise":
        image = np.clip(image, 0.0, 1.0)
    elif "per_channel" in settings and is_gray(image):
        image = image[..., :1]  # a gray image once
    given = {"mask": mask if method.task == "completion" else None, **settings}
    out, trace = model.restore_traced(image, **given) if traced and isinstance(model, TracedRestorer) \
        else (model.restore(image, **given), None)
    out = np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)
    return (np.repeat(out, 3, axis=2) if out.shape[2] == 1 else out), trace


def full_size_refused(method: Method, pixels: int) -> str | None:
    """Why ``method`` is not offered at full size for an image of ``pixels`` pixels, or None: an RL
    filter or fill policy above :data:`RL_FULL_SIZE_PIXELS`."""
    steps_filters = method.loader_kwargs.get("level_map") is not True
    if method.family == "RL" and method.task != "lowlight" and steps_filters and pixels > RL_FULL_SIZE_PIXELS:
        return (f"RL rollouts run many filters per pixel and step (6-16 s per megapixel on one CPU thread); the "
                f"full-size result is offered up to {RL_FULL_SIZE_PIXELS / 1e6:.0f} MP")
    return None


def quality(output: np.ndarray, reference: np.ndarray | None) -> dict[str, float]:
    """PSNR (dB) and SSIM of ``output`` against ``reference`` (both (H, W, C) in [0, 1], data range 1);
    none without a reference. SSIM is left out for images smaller than its 11-pixel window.

    Raises:
        ImageError: the two differ in size.
    """
    if reference is None:
        return {}
    if output.shape[:2] != reference.shape[:2]:
        raise ImageError(f"the reference is {reference.shape[1]}x{reference.shape[0]} but the result is "
                         f"{output.shape[1]}x{output.shape[0]} (width x height); upload the reference of this image")
    x = torch.from_numpy(np.ascontiguousarray(to_channels(reference, 3).transpose(2, 0, 1)))[None]
    y = torch.from_numpy(np.ascontiguousarray(to_channels(np.clip(output, 0, 1), 3).transpose(2, 0, 1)))[None]
    scores = {"PSNR": float(metrics.psnr(x, y, data_range=1.0)[0])}
    if min(x.shape[-2:]) >= 11:
        scores["SSIM"] = float(metrics.ssim(x, y, data_range=1.0)[0])
    return scores


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """(H, W, 1) or (H, W, 3) float32 -> ``channels`` planes (gray replicated)."""
    image = np.asarray(image, dtype=np.float32)
    if image.shape[2] == channels:
        return image
    return np.repeat(image[..., :1], channels, axis=2)
