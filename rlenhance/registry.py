"""Every method of every task in one table, keyed by ``(task, name)``: what loads it, its default
weights, its family and the settings it accepts. The command line (``rlenhance enhance|denoise|complete
--model NAME``), the web app, :func:`rlenhance.load_denoiser` and ``experiments.compare`` read it.

==========  ==================  ==========  ================================  ================================
task        name                family      restorer                          default weights (gray; RGB)
==========  ==================  ==========  ================================  ================================
lowlight    ``rl``              RL          ``rlenhance.Enhancer``            ``lowlight_a3c.pt``
lowlight    ``mrpnet``          Supervised  ``restore.SupervisedRestorer``    ``mrpnet_lowlight.pt``
denoise     ``ffdnet``          Supervised  ``denoisers.NoiseLevelDenoiser``  ``ffdnet_denoise[_color].pt``
denoise     ``mrpnet``          Supervised  ``restore.SupervisedRestorer``    ``mrpnet_denoise[_color].pt``
denoise     ``a3c``, ``sac``    RL          ``denoisers.PolicyDenoiser``      none; ``<name>_denoise_color.pt``
denoise     ``rse``             RL          ``rse.RSERestorer``               none
completion  ``unet``            Supervised  ``restore.SupervisedRestorer``    ``unet_completion.pt``
completion  ``gated-pixelrnn``  Supervised  ``restore.SupervisedRestorer``    ``gated_pixelrnn_completion.pt``
completion  ``pixelrnn``        Supervised  ``restore.SupervisedRestorer``    ``pixelrnn_completion.pt``
completion  ``a3c``             RL          ``completion.PolicyCompleter``    none
(each)      classical names     Classical   :class:`ClassicalRestorer`        (none: :mod:`rlenhance.baselines`)
==========  ==================  ==========  ================================  ================================

``rl`` also runs ``lowlight_local.pt``, for uneven light, given as its checkpoint (:attr:`Method.alternatives`).
The classical methods are those of :mod:`rlenhance.baselines` and, for completion, ``diffusion-fill``. "none":
no checkpoint ships (:attr:`Method.unshipped`); it runs a checkpoint given.

Every loader is called as ``loader(checkpoint, device=..., **settings)`` (:func:`load`) and returns a
restorer: ``restore(image, *, mask=None, **settings)``, an RGB (or gray) float32 (H, W, C) image in
[0, 1] in and out (:class:`rlenhance.restore.Restorer`). Importing this module imports no torch.

Example:
    >>> from rlenhance import registry
    >>> [m.name for m in registry.methods("completion", family="Supervised")]
    ['unet', 'gated-pixelrnn', 'pixelrnn']
    >>> restorer = registry.load("denoise", "mrpnet", planes=1)               # doctest: +SKIP
    >>> clean = restorer.restore(noisy, per_channel=True)                     # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from rlenhance import baselines
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.plugins import Registry, import_path, is_import_path
from rlenhance.tasks import TASKS

__all__ = ["ENSEMBLES", "FAMILIES", "METHODS", "TASKS", "WEIGHTS", "ClassicalRestorer", "Method", "default_weights",
           "find", "kind_of", "load", "methods", "missing", "register_method", "ships", "supervised_models"]

#: The families of methods.
FAMILIES = ("RL", "Supervised", "Classical")
#: The folder of the shipped weights.
WEIGHTS = Path(__file__).resolve().parent / "weights"
#: Self-ensemble sizes (``ensemble=n``) -> the D4 transforms (:func:`rlenhance.models.vae.d4_transform`)
#: averaged over; each is a subgroup of D4, so the mean is equivariant to its transforms.
ENSEMBLES: Mapping[int, tuple[int, ...]] = MappingProxyType({1: (0,), 2: (0, 4), 4: (0, 4, 2, 6),
                                                             8: (0, 4, 2, 6, 1, 3, 5, 7)})
_GRAY, _RGB = 1, 3
#: What ``restore`` of a learned model of each task accepts besides the image and the mask.
_RESTORE_SETTINGS = MappingProxyType({"lowlight": (), "denoise": ("per_channel",), "completion": ()})
#: How messages name a model of each task.
_NOUNS = MappingProxyType({"lowlight": "low-light model", "denoise": "denoiser", "completion": "completion model"})
_LOWLIGHT_SETTING = ("exposure", "w_exposure", "w_color", "w_spatial", "w_smooth")


@dataclass(frozen=True, eq=False)
class Method:
    """One method of one task (module table).

    Attributes:
        task: one of :data:`TASKS`.
        name: its name within the task (``--model NAME``).
        label: how the app names it.
        family: one of :data:`FAMILIES`.
        loader: ``"module:callable"``, called as ``loader(checkpoint, device=..., **settings)``; ``""`` for a
            classical method (:class:`ClassicalRestorer`).
        weights: ``{planes: file name}`` of its default checkpoints in :data:`WEIGHTS` (1 gray, 3 RGB), in
            order of preference; empty for a classical method and where none ships (``unshipped``).
        settings: the keyword settings its loader accepts (besides ``device``).
        restore_settings: the keyword settings its restorer's ``restore`` accepts (besides ``mask``).
        loader_kwargs: fixed keywords its loader is given (e.g. the task a supervised checkpoint must have).
        train: ``{planes: command}`` that trains each default checkpoint.
        gray_on_colour: what a gray model does with a colour image without ``per_channel``: ``"luma"``
            (restores the BT.601 luma, one plane out), ``"opponent"`` (the opponent colour planes, RGB out),
            ``"refuse"`` (an error naming ``per_channel``), or ``""`` (not a gray model).
        note: one line on what the shipped model was trained for.
        unshipped: why no checkpoint ships for the planes of ``train`` that ``weights`` lacks (its recipe's
            policy added nothing over its predictor); "": every default ships.
        loads: the kind of checkpoint its loader reads (its spec's ``kind``: ``"lowlight-policy"``,
            ``"supervised"``, ``"rollout-policy"``, ``"rse-denoiser"``); "" for a classical method.
            :func:`kind_of` finds a checkpoint's method by it.
        alternatives: ``{file name: what it is for}``, other checkpoints of :data:`WEIGHTS` it runs when
            given one (``--checkpoint``), not by default.
    """

    task: str
    name: str
    label: str
    family: str
    loader: str = ""
    weights: Mapping[int, str] = field(default_factory=dict)
    settings: tuple[str, ...] = ()
    restore_settings: tuple[str, ...] = ()
    loader_kwargs: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[int, str] = field(default_factory=dict)
    gray_on_colour: str = ""
    note: str = ""
    unshipped: str = ""
    loads: str = ""
    alternatives: Mapping[str, str] = field(default_factory=dict)

    def __reduce__(self) -> tuple[Callable[[str, str], Method], tuple[str, str]]:
        """Pickled (and copied) as its key: the registry's own entry comes back."""
        return find, (self.task, self.name)

    def __deepcopy__(self, memo: dict) -> Method:
        return self

    @property
    def key(self) -> str:
        """:attr:`name` (the app's word for it)."""
        return self.name

    @property
    def checkpoint(self) -> Path | None:
        """Its first default checkpoint (the gray one of a denoiser), or None (a classical method, or none ships)."""
        return WEIGHTS / next(iter(self.weights.values())) if self.weights else None

    @property
    def ensembles(self) -> tuple[int, ...]:
        """The geometric self-ensemble sizes the app offers (:data:`ENSEMBLES`): every supervised denoiser
        and completion model; (1,) for the others."""
        return tuple(ENSEMBLES) if "ensemble" in self.settings and self.task != "lowlight" \
            and self.family == "Supervised" else (1,)


def _supervised(task: str, name: str, label: str, weights: Mapping[int, str], train: Mapping[int, str], note: str,
                **extra: Any) -> Method:
    return Method(task, name, label, "Supervised", "rlenhance.restore:SupervisedRestorer", MappingProxyType(weights),
                  ("tile", "ensemble"), _RESTORE_SETTINGS[task], MappingProxyType({"task": task}),
                  MappingProxyType(train), note=note, loads="supervised", **extra)


def _denoise_weights(name: str) -> Mapping[int, str]:
    return MappingProxyType({_GRAY: f"{name}_denoise.pt", _RGB: f"{name}_denoise_color.pt"})


_FFDNET_TRAIN = ("python -m experiments.supervised_train --model ffdnet --task denoise --set data.noise=gaussian "
                 "--sigma 0 15 25 50 75 --set data.sigma_draw=uniform")
_POLICY_TRAIN = ("python -m experiments.denoise_train{agent} --sigma 15 25 50 --predictor "
                 "rlenhance/weights/ffdnet_denoise.pt --observe-prediction --set model.downscale=2")
#: Why the RL policies whose recipe added nothing over their predictor ship no checkpoint (rlenhance/weights/README.md).
_PASSENGER = "the policy of its recipe took {0}'s output at every pixel and step (the RL layer added 0.00 dB over {0})"
_CLASSICAL_LABELS = {"auto-gamma": "Auto gamma", "histeq": "Histogram equalisation", "clahe": "CLAHE",
                     "global-curve": "Global LE curve",
                     "gaussian": "Gaussian blur", "median": "Median filter", "bilateral": "Bilateral filter",
                     "bm3d": "BM3D", "telea": "Telea inpainting", "navier-stokes": "Navier-Stokes inpainting",
                     "diffusion-fill": "Diffusion fill"}
_CLASSICAL_NOTES = {"lowlight": "global, no learning", "denoise": "tuned for the noise level σ",
                    "completion": "OpenCV inpainting"}
_CLASSICAL_SETTINGS = {"lowlight": (), "denoise": ("sigma",), "completion": ()}


def _pixelrl(agent: str, label: str) -> Method:
    """PixelRL's filter-bank denoising policy trained by ``agent`` (a colour checkpoint ships)."""
    flag = "" if agent == "a3c" else f" --agent {agent}"
    return Method("denoise", agent, label, "RL", "rlenhance.denoisers:PolicyDenoiser",
                  MappingProxyType({_RGB: f"{agent}_denoise_color.pt"}), ("tile", "ensemble"), ("per_channel",),
                  MappingProxyType({"agent": agent, "level_map": False}),
                  MappingProxyType({_GRAY: _POLICY_TRAIN.format(agent=flag),
                                    _RGB: f"python -m experiments.denoise_train{flag} --no-gray"}),
                  "refuse", "PixelRL's 9 filters per pixel, one choice for R, G and B, 5 steps; trained on colour "
                  "images, sigma 25", _PASSENGER.format("FFDNet"), "rollout-policy")


def _diffusion_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The completion env's starting fill (:func:`rlenhance.ops.fill.diffusion_fill`) of ``image``'s
    ``mask`` (True: missing)."""
    import torch  # noqa: PLC0415 - this module imports no torch

    from rlenhance.io import tensor_to_image  # noqa: PLC0415
    from rlenhance.ops.fill import diffusion_fill  # noqa: PLC0415

    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    hole = torch.from_numpy(mask.astype(np.float32))[None, None]
    return tensor_to_image(diffusion_fill(x, hole)[0])


_BASELINES = {"lowlight": baselines.LOWLIGHT_BASELINES, "denoise": baselines.DENOISE_BASELINES,
              "completion": {**baselines.COMPLETION_BASELINES, "diffusion-fill": _diffusion_fill}}
_CLASSICAL_NOTE_OF = {"diffusion-fill": "the RL completion env's starting fill, smoothed from the outside in",
                      "global-curve": "one LE curve for the whole photo, repeated to the exposure target"}


def _classical(task: str) -> tuple[Method, ...]:
    return tuple(Method(task, key, _CLASSICAL_LABELS.get(key, key), "Classical", settings=_CLASSICAL_SETTINGS[task],
                        restore_settings=_CLASSICAL_SETTINGS[task],
                        note=_CLASSICAL_NOTE_OF.get(key, _CLASSICAL_NOTES[task]))
                 for key in _BASELINES[task])


def _check_method(method: Any) -> None:
    if not isinstance(method, Method):
        raise TypeError(f"expected a rlenhance.registry.Method, got {type(method).__name__}")
    if method.task not in TASKS or method.family not in FAMILIES:
        raise ValueError(f"task {method.task!r} and family {method.family!r} (accepted: {TASKS}; {FAMILIES})")
    if (method.family == "Classical") != (not method.loader) or (method.loader and not is_import_path(method.loader)):
        raise ValueError(f"loader {method.loader!r} (accepted: 'module:callable', '' for a classical method)")


#: Every method of every task, keyed ``"task/name"``, in the order the app lists them (the first learned
#: one of a task is not necessarily its default: :data:`DEFAULTS`); :func:`register_method` adds one.
METHODS: Registry[Method] = Registry("method", check=_check_method)


def register_method(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS` (the command line, the app, compare and :func:`load` then offer
    it) and return it.

    Raises:
        ValueError: its ``(task, name)`` is taken, or it is not a valid entry (task, family, loader).
    """
    return METHODS.add(f"{method.task}/{method.name}", method)


for _method in (
    Method("lowlight", "rl", "RL curve policy (A3C)", "RL", "rlenhance.enhance:Enhancer",
           MappingProxyType({_RGB: "lowlight_a3c.pt"}),
           ("steps", "max_side", "denoiser", "noise_sigma", "max_overshoot", "denoise"), _LOWLIGHT_SETTING,
           train=MappingProxyType({_RGB: "python -m experiments.lol_train --preset shipped"}),
           note="the low-light policy of the Enhance tab", loads="lowlight-policy",
           alternatives=MappingProxyType({"lowlight_local.pt": "uneven light: alpha maps that follow the light"})),
    _supervised("lowlight", "mrpnet", "MRPNet + Generator", {_RGB: "mrpnet_lowlight.pt"},
                {_RGB: "python -m experiments.supervised_train --preset mrpnet-lowlight"},
                "trained on SICE pairs"),
    *_classical("lowlight"),
    _pixelrl("a3c", "PixelRL (A3C)"),
    _pixelrl("sac", "PixelRL (SAC)"),
    Method("denoise", "ffdnet", "FFDNet (blind)", "Supervised", "rlenhance.denoisers:NoiseLevelDenoiser",
           _denoise_weights("ffdnet"), ("tile", "ensemble", "sigma"), ("per_channel",), MappingProxyType({}),
           MappingProxyType({_GRAY: _FFDNET_TRAIN, _RGB: _FFDNET_TRAIN + " --set data.gray=false"}), "opponent",
           "reads the noise level it estimates in each image; trained on gray images, sigma 0-75", loads="supervised"),
    Method("denoise", "noise-map", "FFDNet's noise-level map by RL (A3C)", "RL", "rlenhance.denoisers:PolicyDenoiser",
           _denoise_weights("noise_map"), ("tile", "ensemble"), ("per_channel",),
           MappingProxyType({"agent": "a3c", "level_map": True}),
           MappingProxyType({_GRAY: "python -m experiments.denoise_train --preset noise-map",
                             _RGB: "python -m experiments.denoise_train --preset noise-map-color"}),
           "refuse", "scales the blind FFDNet's noise-level map per 4 x 4 block, 3 steps: for noise whose level "
           "varies across the photo, sigma 10-50", loads="rollout-policy"),
    _supervised("denoise", "mrpnet", "MRPNet", _denoise_weights("mrpnet"),
                {_GRAY: "python -m experiments.supervised_train --preset mrpnet-denoise",
                 _RGB: "python -m experiments.supervised_train --preset mrpnet-denoise-color"},
                "trained on gray images, sigma 25", gray_on_colour="luma"),
    Method("denoise", "rse", "RSE-RL", "RL", "rlenhance.rse:RSERestorer", MappingProxyType({}),
           ("tile", "ensemble"), ("per_channel",), MappingProxyType({}),
           MappingProxyType({_GRAY: "python -m experiments.rse_train --set task.gray=true",
                             _RGB: "python -m experiments.rse_train --preset rse-denoise-color"}),
           "refuse", "patch latents refined by RL rounds, with the blind FFDNet's candidate",
           _PASSENGER.format("FFDNet"), "rse-denoiser"),
    *_classical("denoise"),
    Method("completion", "a3c", "RL fill actions (A3C)", "RL", "rlenhance.completion:PolicyCompleter",
           MappingProxyType({}), ("tile", "ensemble"),
           train=MappingProxyType({_RGB: "python -m experiments.completion_train --predictor "
                                         "rlenhance/weights/unet_completion.pt --set model.downscale=2"}),
           note="keep / diffuse / copy / blur / median or the U-Net's pixel per 2x2 block, 5 steps",
           unshipped=_PASSENGER.format("the U-Net"), loads="rollout-policy"),
    _supervised("completion", "unet", "Completion U-Net", {_RGB: "unet_completion.pt"},
                {_RGB: "python -m experiments.supervised_train --preset unet-completion --set train.init=none"},
                "corrects the diffusion fill on a 4x coarser grid that sees the whole photo; trained on bedroom "
                "photos"),
    _supervised("completion", "gated-pixelrnn", "Gated PixelRNN", {_RGB: "gated_pixelrnn_completion.pt"},
                {_RGB: "python -m experiments.supervised_train --preset gated-pixelrnn-completion"},
                "trained on bedroom photos"),
    _supervised("completion", "pixelrnn", "PixelRNN (ConvLSTM)", {_RGB: "pixelrnn_completion.pt"},
                {_RGB: "python -m experiments.supervised_train --preset pixelrnn-completion"},
                "trained on bedroom photos"),
    *_classical("completion"),
):
    register_method(_method)
#: The method each task uses when none is named.
DEFAULTS: Mapping[str, str] = MappingProxyType({"lowlight": "rl", "denoise": "ffdnet", "completion": "unet"})


def methods(task: str | None = None, *, family: str | None = None, learned: bool = False) -> list[Method]:
    """The methods of ``task`` (None: every task), optionally of one ``family`` or ``learned`` ones
    only (not classical), in the order of :data:`METHODS`.

    Raises:
        ValueError: an unknown ``task`` or ``family``.
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
    return [m for _, m in METHODS.items() if (task is None or m.task == task)
            and (family is None or m.family == family) and not (learned and m.family == "Classical")]


def names(task: str, *, learned: bool = True) -> tuple[str, ...]:
    """The names of :func:`methods` of ``task`` (learned ones only by default: the ``--model`` choices)."""
    return tuple(m.name for m in methods(task, learned=learned))


def supervised_models() -> tuple[str, ...]:
    """The networks of the supervised methods (the ``model`` their checkpoints' spec records), in table
    order: what ``experiments.supervised_train --model`` trains by name."""
    return tuple(dict.fromkeys(m.name for m in methods() if m.loads == "supervised"))


def find(task: str, name: str) -> Method:
    """The method ``name`` of ``task``; a name that is an import path ``"package.module:Class"`` is a
    supervised network of a user's (:func:`network_method`).

    Raises:
        ValueError: no such method (the accepted names are listed).
    """
    if is_import_path(name) and task in TASKS:
        return network_method(task, name)
    if f"{task}/{name}" not in METHODS:
        raise ValueError(f"{task}: no method {name!r}; accepted: {', '.join(m.name for m in methods(task))}")
    return METHODS.get(f"{task}/{name}")


def network_method(task: str, network: str) -> Method:
    """The method of a supervised network named by import path (a user's own network class, trained by
    ``experiments.supervised_train --model package.module:Class``); none ships."""
    return _supervised(task, network, network.rpartition(":")[2], {}, {}, f"the network {network}",
                       gray_on_colour="luma" if task == "denoise" else "")


def default_weights(method: Method, planes: int = _RGB, *, option: str = "checkpoint=PATH") -> Path:
    """The default checkpoint of ``method`` for images of ``planes`` planes (1 gray, 3 RGB): its file in
    :data:`WEIGHTS` for those planes, else (a method with one default) its only one.

    Args:
        option: how the caller gives a checkpoint instead, named in the error (``"--checkpoint PATH"`` on
            the command line; a Python caller's keyword by default).

    Raises:
        ValueError: ``planes`` not 1 or 3, or a classical method (no weights).
        CheckpointError: none ships for those planes (:attr:`Method.unshipped`), or the file is not
            installed (the message says how to train one and to pass it).
    """
    if planes not in (_GRAY, _RGB):
        raise ValueError(f"planes: expected 1 (gray) or 3 (RGB), got {planes!r}")
    if method.family == "Classical":
        raise ValueError(f"{method.task} method {method.name!r} is classical: it has no weights")
    chosen = planes if planes in method.weights or method.unshipped else next(iter(method.weights))
    kind = "" if len(method.train) == 1 or not method.weights else "gray " if chosen == _GRAY else "colour "
    train = method.train.get(chosen) or next(iter(method.train.values()))
    noun = _NOUNS[method.task]
    if chosen not in method.weights:
        raise CheckpointError(f"no {kind}{method.name} {noun} ships: {method.unshipped}; train one ({train}) and "
                              f"pass {option}")
    path = WEIGHTS / method.weights[chosen]
    if not path.is_file():
        raise CheckpointError(f"no checkpoint given and the default {kind}{method.name} {noun} {path} is not "
                              f"installed; pass {option} (a checkpoint of {train})")
    return path


def ships(method: Method) -> bool:
    """Whether ``method`` runs without a checkpoint given: a classical method, or one with a default file
    (installed or not)."""
    return method.family == "Classical" or bool(method.weights)


def missing(method: Method) -> str | None:
    """Why ``method`` cannot run here (no checkpoint ships, its default is not installed, or a classical
    method's optional package is absent), or None if it can."""
    if method.family == "Classical":
        return baselines.baseline_missing(method.name)
    if not method.weights:
        return f"no checkpoint ships: {method.unshipped}"
    if not any((WEIGHTS / name).is_file() for name in method.weights.values()):
        return f"its checkpoint {next(iter(method.weights.values()))} is not installed"
    return None


def loader(method: Method) -> Callable[..., Any]:
    """The callable behind ``method.loader`` (imported now)."""
    return import_path(method.loader, f"{method.task} method {method.name!r}: loader")


def load(task: str, name: str, checkpoint: str | os.PathLike[str] | None = None, *, planes: int = _RGB,
         device: Any = "auto", option: str = "checkpoint=PATH", **settings: Any) -> Any:
    """The restorer of the method ``(task, name)``: ``restore(image, *, mask=None, **settings)``.

    Args:
        checkpoint: its file; None: its default for images of ``planes`` planes (:func:`default_weights`).
        planes: 1 (gray) or 3 (RGB), the images' planes: picks a default checkpoint.
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        option: how the caller gives a checkpoint, named when the default is not installed.
        **settings: the method's loader settings (``method.settings``, e.g. ``tile``, ``ensemble``, ``sigma``).

    Raises:
        ValueError: an unknown method, a setting it does not accept (the accepted ones are named) or a bad value.
        CheckpointError: the default is not installed, or the file is not a checkpoint of the method.
    """
    method = find(task, name)
    unknown = sorted(set(settings) - set(method.settings))
    if unknown:
        accepted = ", ".join(method.settings) or "none"
        raise ValueError(f"{task} method {name!r} takes no setting {', '.join(map(repr, unknown))} (accepted: "
                         f"{accepted})")
    if method.family == "Classical":
        if checkpoint is not None:
            raise ValueError(f"{task} method {name!r} is classical: it takes no checkpoint")
        return ClassicalRestorer(method, **settings)
    path = Path(checkpoint) if checkpoint is not None else default_weights(method, planes, option=option)
    return loader(method)(path, device=device, **method.loader_kwargs, **settings)


def method_for(task: str, model: str | None, checkpoint: str | os.PathLike[str] | None) -> str:
    """The method a command runs: ``model`` (``--model``), else the one ``checkpoint`` records
    (:func:`kind_of`; a network of one's own by import path), else the task's default.

    Raises:
        CheckpointError: ``model`` and the method ``checkpoint`` records differ (the message says how to load it).
    """
    kind = None if checkpoint is None else kind_of(task, checkpoint)
    if model is not None and kind is not None and kind != model:
        how = "without --model" if is_import_path(kind) else f"with --model {kind}"
        raise CheckpointError(f"--checkpoint {checkpoint}: a {kind} {_NOUNS[task]}; load it {how}")
    return model or kind or DEFAULTS[task]


def kind_of(task: str, checkpoint: str | os.PathLike[str]) -> str | None:
    """The name of the method of ``task`` that loads ``checkpoint``, derived from what the file records
    (its spec's kind, task and ``model``, or the trainer's algorithm and transition); None: not a checkpoint
    of a method of ``task``."""
    from rlenhance.checkpoint import SPEC_KEY, load_checkpoint  # noqa: PLC0415 - torch, for a checkpoint only

    try:
        extra = load_checkpoint(checkpoint)["extra"] or {}
    except CheckpointError:
        return None
    spec = extra.get(SPEC_KEY)
    if spec is None or getattr(spec, "task", task) != task:
        return None
    model = getattr(spec, "model", None)
    if model is not None and is_import_path(model):
        return model
    recorded = {"agent": extra.get("algorithm"),
                "level_map": getattr(getattr(spec, "transition", None), "sets_level", None)}
    found = [m for m in methods(task) if m.loads == spec.kind and (model is None or m.name == model)
             and all(recorded[key] == value for key, value in m.loader_kwargs.items() if key in recorded)]
    return found[0].name if len(found) == 1 else None


class ClassicalRestorer:
    """A classical method of :mod:`rlenhance.baselines` behind the restorer interface.

    Args:
        method: a classical :class:`Method`.
        sigma: denoising: the noise level (0-255 scale) the filter is tuned for by default.

    Attributes:
        method: as given; takes_mask: whether :meth:`restore` needs a mask (completion).
    """

    def __init__(self, method: Method, *, sigma: float = 25.0):
        self.method = method
        self.sigma = sigma
        self._fn = _BASELINES[method.task][method.name]

    @property
    def takes_mask(self) -> bool:
        """Inpainting needs the hole mask; the other methods refuse one."""
        return self.method.task == "completion"

    def restore(self, image: np.ndarray, *, mask: np.ndarray | None = None, sigma: float | None = None,
                dtype: type | np.dtype = np.float32) -> np.ndarray:
        """The method on one image (float32 (H, W, C) in [0, 1], a denoiser's with noisy values, or uint8 / uint16
        samples, converted whole): the output has the image's shape, float32 or its uint8 levels (``dtype``,
        :data:`rlenhance.io.arrays.RESULT_DTYPES`). ``sigma``: denoising, this call's noise level (None: the one given).

        Raises:
            ImageError: a mask missing for inpainting or given to another method, a bad image.
            ValueError: another ``dtype``.
        """
        from rlenhance.io import as_unit_float  # noqa: PLC0415 - torch: not on importing the registry
        from rlenhance.io.arrays import as_result, result_dtype  # noqa: PLC0415

        out_dtype = result_dtype(dtype)
        if self.takes_mask != (mask is not None):
            raise ImageError(f"mask: {'required by' if self.takes_mask else 'given, but'} the {self.method.label} "
                             f"({self.method.task}){'' if self.takes_mask else ' takes none'}")
        if isinstance(image, np.ndarray) and image.dtype in (np.uint8, np.uint16):
            image = as_unit_float(image)
        if self.method.task == "completion":
            return as_result(self._fn(image, mask), out_dtype)
        if self.method.task == "denoise":
            return as_result(self._fn(image, sigma=self.sigma if sigma is None else sigma), out_dtype)
        return as_result(self._fn(image), out_dtype)
