"""The method registry of the comparisons (``experiments.compare`` and ``experiments.lol_eval``):
the methods of each task, where a learned method's checkpoint comes from, and one builder per
kind of method that turns it into a :class:`Method`, ready to run on an image. The learned methods
of rlenhance are :class:`rlenhance.restore.Restorer` objects, run through their one ``restore(image,
mask)``:

- :func:`enhancer_method`: low-light policies (``a3c``, ``sac``; lol_eval's ours), a
  :class:`rlenhance.Enhancer`;
- :func:`rollout_method`: denoising and completion policies (``a3c``, ``sac``), an
  :class:`agents.rollout.RolloutPolicy` (:func:`agents.rollout.load_rollout_policy`);
- :func:`supervised_method`: ``mrpnet``, ``pixelrnn``, ``gated-pixelrnn`` (and lol_eval's
  ``--combined``), a :class:`rlenhance.restore.SupervisedRestorer`;
- :func:`peer_method`: ``zero-dce`` (and lol_eval's Zero-DCE++ and ReLLIE) from official weights,
  :data:`PEERS` (networks on tensors, adapted here);
- :func:`baseline_method`: ``input``, the classical methods of :mod:`rlenhance.baselines` and
  ``diffusion-fill`` (:func:`rlenhance.ops.fill.diffusion_fill`).

:func:`build_methods` builds the methods of one task for ``experiments.compare``, reporting those
without a checkpoint or optional package as missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch
from torch import nn

from agents.rollout import load_rollout_policy
from rlenhance.baselines import COMPLETION_BASELINES, DENOISE_BASELINES, LOWLIGHT_BASELINES, baseline_missing
from rlenhance.enhance import DEFAULT_CHECKPOINT as DEFAULT_LOWLIGHT_CHECKPOINT
from rlenhance.enhance import Enhancer
from rlenhance.errors import CheckpointError
from rlenhance.io import tensor_to_image
from rlenhance.models.peers import load_rellie, load_zero_dce, load_zero_dcepp, rellie_enhance
from rlenhance.ops.fill import diffusion_fill
from rlenhance.restore import DEFAULT_COMPLETION_CHECKPOINT, DEFAULT_DENOISE_CHECKPOINT, SupervisedRestorer

TASKS = ("lowlight", "denoise", "completion")
#: Methods that need a checkpoint (or weights file), each with its command-line flag.
LEARNED_METHODS = ("a3c", "sac", "mrpnet", "pixelrnn", "gated-pixelrnn", "zero-dce")
#: Every method of each task, in report order.
TASK_METHODS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "lowlight": ("input", "a3c", "sac", "mrpnet", "pixelrnn", "zero-dce", *LOWLIGHT_BASELINES),
    "denoise": ("input", "a3c", "sac", "mrpnet", "pixelrnn", *DENOISE_BASELINES),
    "completion": ("input", "a3c", "sac", "mrpnet", "pixelrnn", "gated-pixelrnn", "diffusion-fill",
                   *COMPLETION_BASELINES),
})
#: Where the package keeps its shipped weights.
WEIGHTS_DIR = DEFAULT_LOWLIGHT_CHECKPOINT.parent
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


def _default_checkpoint(task: str, method: str) -> Path:
    """The shipped file of a learned method (those of Enhancer / SupervisedRestorer where they exist)."""
    shipped = {("lowlight", "a3c"): DEFAULT_LOWLIGHT_CHECKPOINT, ("denoise", "mrpnet"): DEFAULT_DENOISE_CHECKPOINT,
               ("completion", "gated-pixelrnn"): DEFAULT_COMPLETION_CHECKPOINT}
    if (task, method) in shipped:
        return shipped[task, method]
    if method == "zero-dce":
        return WEIGHTS_DIR / "zero_dce_Epoch99.pth"
    return WEIGHTS_DIR / f"{method.replace('-', '_')}_{task}.pt"


#: (task, learned method) -> the file used when its flag is not given (reported missing if absent).
DEFAULT_CHECKPOINTS: Mapping[tuple[str, str], Path] = MappingProxyType({
    (task, method): _default_checkpoint(task, method)
    for task in TASKS for method in TASK_METHODS[task] if method in LEARNED_METHODS})


@dataclass(frozen=True)
class Method:
    """A method ready to run.

    Attributes:
        name: the method's name (a name of :data:`TASK_METHODS`, or lol_eval's label).
        run: ``(input, mask) -> output``: float32 (H, W, C) and the bool (H, W) mask (None but for
            completion) to an output of the input's shape (clipped to [0, 1] before scoring): a
            :class:`rlenhance.restore.Restorer`'s ``restore``, or a function of the same kind.
        params: number of learned parameters; None for methods that learn nothing.
        source: the checkpoint it was loaded from ("" for classical methods and shipped models).
    """

    name: str
    run: Callable[[np.ndarray, np.ndarray | None], np.ndarray]
    params: int | None = None
    source: str = ""


def count_parameters(model: nn.Module) -> int:
    """Learned parameters of a network (buffers such as batch-norm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def checkpoint_path(task: str, method: str, given: str | None) -> tuple[Path | None, str]:
    """(the file of a learned method, "") or (None, why it is missing): ``given`` (its flag's
    value) when set, else the default of :data:`DEFAULT_CHECKPOINTS` if it exists."""
    if given is not None:
        path = Path(given)
        return (path, "") if path.is_file() else (None, f"--{method} {path}: no such file")
    path = DEFAULT_CHECKPOINTS[task, method]
    if path.is_file():
        return path, ""
    return None, f"no checkpoint: --{method} not given and no default {path}"


# --- builders ------------------------------------------------------------------------------------------
def enhancer_method(name: str, path: str | Path | None, device: torch.device, *, steps: int | None = None,
                    exposure: float | None = None, denoiser: SupervisedRestorer | None = None) -> Method:
    """A low-light policy of ``experiments.lol_train`` through :class:`rlenhance.Enhancer`
    (``path`` None: the shipped model), at ``exposure`` (None: its training setting), optionally
    followed by a supervised ``denoiser``."""
    enhancer = Enhancer(path, device=str(device), steps=steps, denoiser=denoiser)
    return Method(name, partial(enhancer.restore, exposure=exposure), count_parameters(enhancer.policy),
                  str(path) if path is not None else "")


def rollout_method(name: str, path: Path, device: torch.device, *, task: str) -> Method:
    """A denoising / completion policy of ``experiments.denoise_train`` / ``completion_train``, run
    through its env's own transition (:meth:`agents.rollout.RolloutPolicy.restore`: the reference
    slot of the env gets the input; methods never see the reference).

    Raises:
        CheckpointError: a policy of another task.
    """
    policy = load_rollout_policy(path, device=device)
    trained_for = policy.spec.task
    if trained_for != task:
        raise CheckpointError(f"--{name} {path}: a policy of task {trained_for!r}; this needs a {task} policy")
    return Method(name, policy.restore, count_parameters(policy.policy), str(path))


def supervised_method(name: str | None, path: str | Path, device: torch.device, *, task: str,
                      model: str | None = None) -> Method:
    """A checkpoint of ``experiments.supervised_train`` through
    :class:`rlenhance.restore.SupervisedRestorer` (each channel of an RGB image through a gray
    model; the task's mask, which a completion checkpoint reads, given as it comes).

    Args:
        name: the method's name; None: the network's display name (:data:`COMBINED_LABELS`).
        path: the checkpoint.
        device: where it runs.
        task: the task the checkpoint must have been trained for.
        model: the ``--model`` it must have been trained with (None: any).

    Raises:
        CheckpointError: a checkpoint of another model, or (denoise) a colour denoiser.
    """
    restorer = SupervisedRestorer(path, device=device, task=task)
    if model is not None and restorer.model_name != model:
        raise CheckpointError(f"--{model} {path}: a {restorer.model_name} checkpoint; give it to "
                              f"--{restorer.model_name}")
    if restorer.upscale != 1:
        raise CheckpointError(f"--{model or name} {path}: a super-resolution model (upscale {restorer.upscale}); "
                              "compare scores outputs against references of the input's size (supervised_train "
                              "without --upscale)")
    if task == "denoise" and restorer.channels != 1:
        raise CheckpointError(f"--{model or name} {path}: a {restorer.channels}-channel denoiser; compare denoises "
                              "gray images (supervised_train --task denoise trains gray models)")
    name = name or COMBINED_LABELS.get(restorer.arch_class, restorer.arch_class)
    return Method(name, partial(restorer.restore, per_channel=True), count_parameters(restorer.model), str(path))


def peer_method(name: str, kind: str, path: str | Path, device: torch.device) -> Method:
    """A peer network of :data:`PEERS` (``kind``) from its official weights file, on RGB images."""
    load, enhance = PEERS[kind]
    net = load(path).to(device).eval()

    def run(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(device)
        with torch.no_grad():
            return tensor_to_image(enhance(net, x)[0].clamp(0, 1))

    return Method(name, run, count_parameters(net), str(path))


def baseline_method(task: str, name: str, *, sigma: float = 25.0) -> Method:
    """A method that learns nothing: ``input`` (the degraded input itself), a classical method of
    the task (:mod:`rlenhance.baselines`; denoisers get ``sigma``, 0-255 scale) or (completion)
    ``diffusion-fill``, the completion env's starting fill."""
    if name == "input":
        return Method(name, lambda image, mask: image.copy())
    if task == "lowlight" and name in LOWLIGHT_BASELINES:
        return Method(name, lambda image, mask, fn=LOWLIGHT_BASELINES[name]: fn(image))
    if task == "denoise" and name in DENOISE_BASELINES:
        return Method(name, lambda image, mask, fn=DENOISE_BASELINES[name]: fn(image, sigma=sigma))
    if task == "completion" and name in COMPLETION_BASELINES:
        return Method(name, lambda image, mask, fn=COMPLETION_BASELINES[name]: fn(image, mask))
    if task == "completion" and name == "diffusion-fill":
        return Method(name, _diffusion_fill)
    raise ValueError(f"{name!r}: not a method of task {task} without learned parameters")


def _diffusion_fill(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    hole = torch.from_numpy(mask.astype(np.float32))[None, None]
    return tensor_to_image(diffusion_fill(x, hole)[0])


# --- one task's methods ----------------------------------------------------------------------------------
def build_methods(task: str, wanted: Sequence[str], device: torch.device, *, checkpoints: Mapping[str, str | None],
                  sigma: float) -> tuple[dict[str, Method], dict[str, str]]:
    """The methods of ``wanted`` (names of ``TASK_METHODS[task]``) that can run, and why each
    other one is missing.

    Args:
        task: one of :data:`TASKS`.
        wanted: the methods to build, in report order.
        device: where learned methods run.
        checkpoints: learned method -> the file given for it (its flag; None or absent: the
            default of :data:`DEFAULT_CHECKPOINTS`).
        sigma: noise level of the denoising baselines (0-255 scale).

    Returns:
        ``(methods, missing)``: name -> :class:`Method` in the order of ``wanted``, and
        name -> reason for the methods without a checkpoint or optional package.

    Raises:
        CheckpointError: a checkpoint exists but is broken or of another task / model.
    """
    methods: dict[str, Method] = {}
    missing: dict[str, str] = {}
    for name in wanted:
        if name in LEARNED_METHODS:
            path, why = checkpoint_path(task, name, checkpoints.get(name))
            if path is None:
                missing[name] = why
            elif name in ("a3c", "sac"):
                methods[name] = (enhancer_method(name, path, device) if task == "lowlight"
                                 else rollout_method(name, path, device, task=task))
            elif name == "zero-dce":
                methods[name] = peer_method(name, "zero-dce", path, device)
            else:
                methods[name] = supervised_method(name, path, device, task=task, model=name)
        elif baseline_missing(name) is not None:
            missing[name] = str(baseline_missing(name))
        else:
            methods[name] = baseline_method(task, name, sigma=sigma)
    return methods, missing
