"""The methods of ``experiments.compare`` and ``experiments.lol_eval``: those of :mod:`rlenhance.registry`
and the evaluation-only ones kept here (``input``, the peers of :data:`PEERS`, :data:`LEVEL_MAP_METHODS`,
:data:`REFERENCE_METHODS`). One ``*_method`` builder per kind turns a method into a :class:`Method`;
:func:`build_methods` builds one task's, reporting those without a checkpoint or optional package as missing.
Channels: a gray model on RGB images runs per channel (a gray ``ffdnet`` on the opponent planes); a colour model on
gray images is refused (:func:`channel_note`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch
from torch import nn

from rlenhance import registry
from rlenhance.baselines import NOISE_SCALE, oracle_global
from rlenhance.completion import PolicyCompleter
from rlenhance.denoisers import PolicyDenoiser, load_denoiser
from rlenhance.enhance import Enhancer
from rlenhance.errors import CheckpointError, not_a_file
from rlenhance.io import tensor_to_image
from rlenhance.models.peers import load_rellie, load_zero_dce, load_zero_dcepp, rellie_enhance
from rlenhance.noise_estimate import NOISE_WINDOW, estimate_noise_map, estimate_noise_sigma
from rlenhance.restore import SupervisedRestorer
from rlenhance.rse import RSERestorer
from rlenhance.tasks import TASKS
from rlenhance.trace import ActionTrace

#: Tasks whose learned networks ``--ensemble`` self-ensembles (:func:`build_methods`).
ENSEMBLE_TASKS = ("denoise", "completion")
#: Peer low-light networks, run from their official weights given by path (nothing of theirs ships).
PEER_METHODS = ("zero-dce", "zero-dce++", "rellie")
#: ``ffdnet`` given a per-pixel map of the level estimated in each window, or of the true level (an oracle).
LEVEL_MAP_METHODS = ("ffdnet-local", "ffdnet-oracle")
#: Low-light bounds fitted with each image's reference (:func:`rlenhance.baselines.oracle_global`).
REFERENCE_METHODS = ("oracle-global",)
#: Methods that need a checkpoint (or weights file), each with its command-line flag.
LEARNED_METHODS = (*dict.fromkeys(name for task in TASKS for name in registry.names(task)), *PEER_METHODS)
#: Every method of each task, in report order.
TASK_METHODS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    task: ("input", *registry.names(task), *{"lowlight": PEER_METHODS, "denoise": LEVEL_MAP_METHODS}.get(task, ()),
           *(m.name for m in registry.methods(task, family="Classical")),
           *{"lowlight": REFERENCE_METHODS}.get(task, ()))
    for task in TASKS})
#: Display names of supervised low-light checkpoints by network class (lol_eval's ``--combined``).
COMBINED_LABELS: Mapping[str, str] = MappingProxyType({"CombinedModel": "MRPNet+Generator"})
#: ``(net, x) -> output`` of a peer network on a (1, 3, H, W) batch in [0, 1].
Enhance = Callable[[nn.Module, torch.Tensor], torch.Tensor]
#: Peer low-light networks with official weights: kind -> (loader of the weights file, its enhancement).
PEERS: Mapping[str, tuple[Callable[[str], nn.Module], Enhance]] = MappingProxyType({
    "zero-dce": (load_zero_dce, lambda net, x: net(x)[0]),
    "zero-dce++": (load_zero_dcepp, lambda net, x: net(x)[0]),
    "rellie": (load_rellie, lambda net, x: rellie_enhance(net, x, steps=6)),  # ReLLIE's test setting
})
#: The official weights files of the peers, by their release names (looked for in the registry's folder).
PEER_FILES: Mapping[str, str] = MappingProxyType({
    "zero-dce": "zero_dce_Epoch99.pth", "zero-dce++": "zero_dcepp_Epoch99.pth", "rellie": "rellie_model.npz"})
#: What :attr:`Method.note` says of a gray model on RGB images.
PER_CHANNEL_NOTE = "gray model, run on R, G and B separately"
#: How a gray noise-map denoiser (``ffdnet``) runs on RGB images (SupervisedRestorer's opponent route).
OPPONENT_NOTE = "gray model, run on the opponent colour planes (BM3D's transform), each at its level"


def method_flag(method: str) -> str:
    """The command-line flag of a learned method, without the dashes: ``zero-dce++`` -> ``zero-dcepp``."""
    return method.replace("++", "pp")


@dataclass(frozen=True)
class Method:
    """A method ready to run.

    Attributes:
        name: the method's name (a name of :data:`TASK_METHODS`, or lol_eval's label).
        run: ``(input, *, mask) -> output``: float32 (H, W, C) and the bool (H, W) mask (None but for
            completion) to an output of the input's shape (clipped to [0, 1] before scoring).
        params: number of learned parameters; None for methods that learn nothing.
        source: the checkpoint it was loaded from ("" for classical methods and shipped models).
        note: how it runs where that is not plain (:data:`PER_CHANNEL_NOTE`), shown in the report.
        trace: an RL method's ``run`` that also returns its :class:`rlenhance.trace.ActionTrace`; None for others.
        oracle: the :class:`~experiments.compare.samples.Sample` field ``run`` also takes, under that name, that no
            method is told: ``"level"`` (``ffdnet-oracle``), ``"reference"`` (``oracle-global``); "" for a method.
    """

    name: str
    run: Callable[..., np.ndarray]
    params: int | None = None
    source: str = ""
    note: str = ""
    trace: Callable[..., tuple[np.ndarray, ActionTrace]] | None = None
    oracle: str = ""


def count_parameters(model: nn.Module) -> int:
    """Learned parameters of a network (buffers such as batch-norm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def checkpoint_path(task: str, method: str, given: str | None, *, planes: int = 3) -> tuple[Path | None, str]:
    """(the file of a learned method, "") or (None, why it is missing): ``given`` when set, else its default
    for images of ``planes`` planes if installed (:data:`PEER_FILES`, :func:`rlenhance.registry.default_weights`)."""
    flag = method_flag(method)
    if given is not None:
        path = Path(given)
        problem = not_a_file(path)
        return (None, f"--{flag} {path}: {problem}") if problem else (path, "")
    if method in PEER_FILES:
        path = registry.WEIGHTS / PEER_FILES[method]
        return (path, "") if path.is_file() else (None, f"no checkpoint: --{flag} not given and no default {path}")
    entry = registry.find(task, method)
    try:
        return registry.default_weights(entry, planes, option=f"--{flag} PATH"), ""
    except CheckpointError as exc:
        why = str(exc)
    gray = registry.WEIGHTS / entry.weights.get(1, "")
    if planes == 3 and 3 in entry.weights and 1 in entry.weights and gray.is_file():
        why += f"; a gray checkpoint runs per channel: --{flag} {gray}"
    return None, why


def channel_note(flag: str, path: str | Path, model_channels: int, channels: int | None) -> str:
    """How a model of ``model_channels`` planes runs on images of ``channels`` planes (None: not checked): "" (as
    it is) or :data:`PER_CHANNEL_NOTE` (a gray model on RGB images).

    Raises:
        CheckpointError: a colour model on gray images (its output would not be gray).
    """
    if channels is None or model_channels == channels:
        return ""
    if model_channels == 1:
        return PER_CHANNEL_NOTE
    raise CheckpointError(f"--{flag} {path}: a {model_channels}-channel (colour) model, but the images are gray; "
                          "compare it on colour images (--task denoise --no-gray) or give a gray checkpoint")


# --- builders ------------------------------------------------------------------------------------------
def enhancer_method(name: str, path: str | Path | None, device: torch.device, *, steps: int | None = None,
                    exposure: float | None = None, denoiser: SupervisedRestorer | None = None,
                    alpha_mode: str | None = None, denoise: float | None = None,
                    noise_sigma: float | None = None) -> Method:
    """A low-light policy of ``experiments.lol_train`` through :class:`rlenhance.Enhancer` (``path`` None: the
    shipped model; the other arguments are the Enhancer's, None: its defaults); ``exposure`` None: its training
    setting."""
    enhancer = Enhancer(path, device=str(device), steps=steps, denoiser=denoiser, alpha_mode=alpha_mode,
                        denoise=denoise, noise_sigma=noise_sigma)
    return Method(name, partial(enhancer.restore, exposure=exposure), count_parameters(enhancer.policy),
                  str(path) if path is not None else "", trace=partial(enhancer.restore_traced, exposure=exposure))


def rollout_method(name: str, path: Path, device: torch.device, *, task: str, channels: int | None = None,
                   ensemble: int = 1) -> Method:
    """A policy of ``experiments.denoise_train`` / ``completion_train`` (:class:`rlenhance.denoisers.PolicyDenoiser`,
    :class:`rlenhance.completion.PolicyCompleter`) on images of ``channels`` planes (:func:`channel_note`), its
    predictor with the self-``ensemble`` given. Its size counts the predictor's network with the policy's.

    Raises:
        CheckpointError: a policy of another task, or a colour policy for gray images.
        ValueError: an ``ensemble`` other than 1 for a policy without a predictor.
    """
    if task == "completion":
        restorer = PolicyCompleter(path, device=device, ensemble=ensemble)
        run, trace = restorer.restore, restorer.restore_traced
    else:
        restorer = PolicyDenoiser(path, device=device, ensemble=ensemble)
        run, trace = partial(restorer.restore, per_channel=True), partial(restorer.restore_traced, per_channel=True)
    note = channel_note(name, path, restorer.channels, channels)
    predictor = restorer.predictor
    params = count_parameters(restorer.policy) + (count_parameters(predictor.model) if predictor is not None else 0)
    return Method(name, run, params, str(path), note, trace)


def rse_method(name: str, path: str | Path, device: torch.device, *, channels: int | None = None,
               ensemble: int = 1) -> Method:
    """The RSE-RL denoiser of an ``experiments.rse_train`` checkpoint (:class:`rlenhance.rse.RSERestorer`), its
    spec's rounds, on images of ``channels`` planes (:func:`channel_note`), its predictor with the self-``ensemble``.

    Raises:
        CheckpointError: not an RSE-RL checkpoint, or a colour model for gray images.
        ValueError: an ``ensemble`` other than 1 for a model without a predictor.
    """
    restorer = RSERestorer(path, device=device, ensemble=ensemble)
    model, spec = restorer.model, restorer.spec
    note = channel_note(name, path, spec.channels, channels)
    predictor = model.rounds[0].predictor  # rse_train --predictor: counted with the rounds, as a policy's is
    used = sum(count_parameters(stage) for stage in model.rounds[:spec.rounds]) \
        + (count_parameters(predictor.model) if predictor is not None else 0)
    return Method(name, partial(restorer.restore, per_channel=True), used, str(path), note,
                  partial(restorer.restore_traced, per_channel=True))


def supervised_method(name: str | None, path: str | Path, device: torch.device, *, task: str,
                      model: str | None = None, channels: int | None = None, ensemble: int = 1) -> Method:
    """A checkpoint of ``experiments.supervised_train`` through :class:`rlenhance.restore.SupervisedRestorer`.

    Args:
        name: the method's name; None: the network's display name (:data:`COMBINED_LABELS`).
        path: the checkpoint.
        device: where it runs.
        task: the task the checkpoint must have been trained for.
        model: the ``--model`` it must have been trained with (None: any).
        channels: planes of the images it will get (:func:`channel_note`); None: not checked.
        ensemble: the network's geometric self-ensemble (:class:`rlenhance.restore.SupervisedRestorer`).

    Raises:
        CheckpointError: a checkpoint of another model, a super-resolution model, or a colour
            model for gray images.
    """
    restorer = SupervisedRestorer(path, device=device, task=task, ensemble=ensemble)
    if model is not None and restorer.model_name != model:
        raise CheckpointError(f"--{model} {path}: a {restorer.model_name} checkpoint; give it to "
                              f"--{restorer.model_name}")
    if restorer.upscale != 1:
        raise CheckpointError(f"--{model or name} {path}: a super-resolution model (upscale {restorer.upscale}); "
                              "compare scores outputs against references of the input's size (supervised_train "
                              "without --upscale)")
    note = channel_note(model or name or "checkpoint", path, restorer.channels, channels)
    name = name or COMBINED_LABELS.get(restorer.arch_class, restorer.arch_class)
    return Method(name, partial(restorer.restore, per_channel=True), count_parameters(restorer.model), str(path),
                  note)


def ffdnet_method(name: str, path: str | Path, device: torch.device, *, sigma: float | None,
                  channels: int | None = None, ensemble: int = 1) -> Method:
    """A noise-map denoiser of ``supervised_train --model ffdnet`` (:func:`rlenhance.load_denoiser`) given the map
    of ``sigma`` (0-255), or with ``sigma`` None of each image's level estimated inside the timed run
    (:func:`rlenhance.noise_estimate.estimate_noise_sigma`); a gray model on RGB runs as :data:`OPPONENT_NOTE` says.

    Raises:
        CheckpointError: not a noise-map denoiser, or a colour model for gray images.
        ValueError: a ``sigma`` outside the levels the checkpoint was trained over.
    """
    denoiser = load_denoiser("ffdnet", path, device=device, sigma=sigma, ensemble=ensemble)
    level = "each image's estimated sigma" if sigma is None else f"sigma {sigma:g}"
    route = OPPONENT_NOTE if channel_note(name, path, denoiser.channels, channels) else ""
    note = "; ".join(filter(None, [f"noise map of {level}", route]))
    return Method(name, denoiser.restore, count_parameters(denoiser.model), str(path), note)


def level_map_method(name: str, path: str | Path, device: torch.device, *, channels: int | None = None,
                     ensemble: int = 1) -> Method:
    """``ffdnet-local`` or ``ffdnet-oracle`` (:data:`LEVEL_MAP_METHODS`): ``ffdnet`` given the level of each pixel's
    window (:func:`rlenhance.noise_estimate.estimate_noise_map`) or the true one (``level=``), clipped to its
    trained levels; channels and self-``ensemble`` as :func:`ffdnet_method`'s."""
    denoiser = load_denoiser("ffdnet", path, device=device, ensemble=ensemble)
    low, high = denoiser.sigma_range

    def restore(image: np.ndarray, levels: np.ndarray) -> np.ndarray:
        return denoiser.restorer.restore(image, noise_map=np.clip(levels, low, high) / NOISE_SCALE)

    if name == "ffdnet-oracle":
        def run(image: np.ndarray, *, mask: np.ndarray | None = None, level: np.ndarray) -> np.ndarray:
            return restore(image, level)
        given = "the true level (an oracle)"
    else:
        def run(image: np.ndarray, *, mask: np.ndarray | None = None) -> np.ndarray:
            return restore(image, estimate_noise_map(image))
        given = f"the level estimated in each {NOISE_WINDOW} px window"
    route = OPPONENT_NOTE if channel_note("ffdnet", path, denoiser.channels, channels) else ""
    return Method(name, run, count_parameters(denoiser.model), str(path),
                  "; ".join(filter(None, [f"noise map of {given}", route])),
                  oracle="level" if name == "ffdnet-oracle" else "")


def peer_method(name: str, kind: str, path: str | Path, device: torch.device) -> Method:
    """A peer network of :data:`PEERS` (``kind``) from its official weights file, on RGB images."""
    load, enhance = PEERS[kind]
    net = load(path).to(device).eval()

    def run(image: np.ndarray, *, mask: np.ndarray | None = None) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(device)
        with torch.no_grad():
            return tensor_to_image(enhance(net, x)[0].clamp(0, 1))

    return Method(name, run, count_parameters(net), str(path))


def baseline_method(task: str, name: str, *, sigma: float = 25.0, sigma_estimate: bool = False) -> Method:
    """``input`` or a classical method of the task (denoisers get ``sigma``, 0-255, or each image's estimate)."""
    if name == "input":
        return Method(name, lambda image, *, mask=None: image.copy())
    entry = registry.find(task, name)
    if entry.family != "Classical":
        raise ValueError(f"{name!r}: not a method of task {task} without learned parameters")
    restorer = registry.load(task, name)
    if sigma_estimate and "sigma" in entry.restore_settings:
        return Method(name, lambda image, *, mask=None: restorer.restore(image, mask=mask,
                                                                          sigma=estimate_noise_sigma(image)))
    given = {"sigma": sigma} if "sigma" in entry.restore_settings else {}
    return Method(name, partial(restorer.restore, **given))


def reference_method(name: str) -> Method:
    """``oracle-global`` (:data:`REFERENCE_METHODS`), given the reference as ``reference=``."""
    def run(image: np.ndarray, *, mask: np.ndarray | None = None, reference: np.ndarray) -> np.ndarray:
        return oracle_global(image, reference)

    return Method(name, run, note="an upper bound fitted with the reference (the best monotone curve per "
                                  "channel), not a method", oracle="reference")


# --- one task's methods ----------------------------------------------------------------------------------
def build_methods(task: str, wanted: Sequence[str], device: torch.device, *, checkpoints: Mapping[str, str | None],
                  sigma: float, channels: int | None = None, sigma_estimate: bool = False, ensemble: int = 1,
                  known_level: bool = False, reference: bool = True) -> tuple[dict[str, Method], dict[str, str]]:
    """The methods of ``wanted`` (names of ``TASK_METHODS[task]``) that can run, and why each other one is missing.

    Args:
        task: one of :data:`TASKS`.
        wanted: the methods to build, in report order.
        device: where learned methods run.
        checkpoints: learned method -> the file given for it (None or absent: its default, :func:`checkpoint_path`).
        sigma: noise level of the denoising baselines and of ``ffdnet``'s map (0-255 scale).
        channels: planes of the images (1 gray, 3 RGB; :func:`channel_note`); None: not checked.
        sigma_estimate: the denoising baselines and ``ffdnet`` estimate each image's noise level instead of ``sigma``.
        ensemble: denoise and completion: the geometric self-ensemble of the supervised networks and of the
            predictors (models without a predictor and low-light methods run once).
        known_level: denoise: the images' noise is synthetic, of a known level (``ffdnet-oracle`` needs it).
        reference: the images have references (:data:`REFERENCE_METHODS` need them).

    Returns:
        ``(methods, missing)``: name -> :class:`Method` in the order of ``wanted``, and name -> why it is missing.

    Raises:
        CheckpointError: a checkpoint exists but is broken, of another task / model, or a colour model for gray images.
    """
    methods: dict[str, Method] = {}
    missing: dict[str, str] = {}
    ensemble = ensemble if task in ENSEMBLE_TASKS else 1
    planes = 3 if channels == 3 else 1
    ensembled = f"x{ensemble} self-ensemble" if ensemble != 1 else ""
    for name in wanted:
        if name in REFERENCE_METHODS:
            if reference:
                methods[name] = reference_method(name)
            else:
                missing[name] = "it is fitted to each image's reference, and these images have none"
        elif name in LEVEL_MAP_METHODS:
            path, why = _ffdnet_path(task, checkpoints.get("ffdnet"), planes)
            if path is None:
                missing[name] = why
            elif name == "ffdnet-oracle" and not known_level:
                missing[name] = "the true noise level is known only for synthetic noise (clean images, --sigma)"
            else:
                methods[name] = _noted(level_map_method(name, path, device, channels=channels, ensemble=ensemble),
                                       ensembled)
        elif name in LEARNED_METHODS:
            path, why = _ffdnet_path(task, checkpoints.get(name), planes) if name == "ffdnet" else \
                checkpoint_path(task, name, checkpoints.get(name), planes=planes)
            loader = "" if name in PEER_METHODS else registry.find(task, name).loader
            if path is None:
                missing[name] = why
            elif loader == "rlenhance.enhance:Enhancer":
                methods[name] = enhancer_method(name, path, device)
            elif name in PEER_METHODS:
                methods[name] = peer_method(name, name, path, device)
            elif registry.find(task, name).family == "RL":  # the self-ensemble of their predictor
                build = partial(rse_method, name, path, device, channels=channels) \
                    if loader == "rlenhance.rse:RSERestorer" else \
                    partial(rollout_method, name, path, device, task=task, channels=channels)
                try:
                    methods[name] = _noted(build(ensemble=ensemble), ensembled and f"its predictor's {ensembled}")
                except CheckpointError:  # a ValueError too, but a bad file, not a model without a predictor
                    raise
                except ValueError:  # a model without a predictor: nothing to ensemble
                    methods[name] = _noted(build(), ensembled and "runs once (no predictor to self-ensemble)")
            elif loader == "rlenhance.denoisers:NoiseLevelDenoiser":
                try:
                    methods[name] = _noted(ffdnet_method(name, path, device, sigma=None if sigma_estimate else sigma,
                                                         channels=channels, ensemble=ensemble), ensembled)
                except CheckpointError:  # a broken file or another model: an error, as for every checkpoint
                    raise
                except ValueError as exc:  # --sigma outside its trained levels
                    missing[name] = f"{path}: {exc}"
            else:
                methods[name] = _noted(supervised_method(name, path, device, task=task, model=name, channels=channels,
                                                         ensemble=ensemble), ensembled)
        elif name != "input" and registry.missing(registry.find(task, name)) is not None:
            missing[name] = str(registry.missing(registry.find(task, name)))
        else:
            methods[name] = baseline_method(task, name, sigma=sigma, sigma_estimate=sigma_estimate)
    return methods, missing


def own_methods(task: str, paths: Sequence[str], device: torch.device, *, channels: int | None = None,
                ensemble: int = 1) -> dict[str, Method]:
    """The methods of ``--checkpoints``: each file a supervised network of one's own, named by its class
    (:func:`rlenhance.registry.network_method`), run by :func:`supervised_method`.

    Raises:
        ValueError: a file that is not a checkpoint of a network of one's own of ``task`` (a checkpoint of a
            registered method goes to that method's flag).
        CheckpointError: a broken file, a colour model for gray images.
    """
    methods, ensemble = {}, ensemble if task in ENSEMBLE_TASKS else 1
    for path in paths:
        if not Path(path).is_file():
            raise ValueError(f"--checkpoints {path}: no such file")
        name = registry.kind_of(task, path)
        if name is None or name in registry.names(task):
            give = f"give it to --{method_flag(name)}" if name else f"not a checkpoint of a --task {task} network"
            raise ValueError(f"--checkpoints {path}: {give} (--checkpoints takes networks of your own, "
                             "experiments.supervised_train --model package.module:Class)")
        method = supervised_method(name, path, device, task=task, model=name, channels=channels, ensemble=ensemble)
        methods[name] = _noted(method, f"x{ensemble} self-ensemble" if ensemble != 1 else "")
    return methods


def _ffdnet_path(task: str, given: str | None, planes: int) -> tuple[Path | None, str]:
    """:func:`checkpoint_path` of ``ffdnet``; on colour images without one given, the gray default."""
    path, why = checkpoint_path(task, "ffdnet", given, planes=planes)
    if path is None and given is None:
        path = checkpoint_path(task, "ffdnet", None, planes=1)[0]
    return path, why


def _noted(method: Method, note: str) -> Method:
    """``method`` with ``note`` added to its note (unchanged for an empty one)."""
    return dataclasses.replace(method, note="; ".join(filter(None, [method.note, note]))) if note else method
