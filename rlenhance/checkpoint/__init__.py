"""Checkpoints: atomic saving and validated loading of model weights and their typed metadata.

A checkpoint file (format version 3) is a ``torch.save`` of the dict::

    {
        "format": "rlenhance-checkpoint",
        "version": 3,
        "arch": {"class": "PixelActorCritic", "kwargs": {...}},   # JSON-able
        "state_dict": {name: tensor, ...},                        # CPU tensors
        "extra": {"spec": {"kind": ..., ...}, ...} or None,       # the spec + the trainer's own data
    }

It is written atomically (a crash mid-save leaves the previous checkpoint intact) and read with
``torch.load(weights_only=True)``. Loading refuses, with a :class:`CheckpointError` naming the file, files that
are missing, unreadable, of another format or format version (older or newer: the message says which), hold
NaN/inf weights, or describe another architecture than the caller expects.

What a model needs at inference beyond its weights is one typed, frozen **spec** per kind of checkpoint
(``kind``: written by -> read by):

- :class:`LowLightPolicySpec` (``lowlight-policy``): ``experiments.lol_train`` -> :class:`rlenhance.Enhancer`;
- :class:`RolloutPolicySpec` (``rollout-policy``): ``experiments.denoise_train`` / ``completion_train`` ->
  :class:`rlenhance.denoisers.PolicyDenoiser` / :class:`rlenhance.completion.PolicyCompleter`;
- :class:`SupervisedSpec` (``supervised``): ``experiments.supervised_train`` ->
  :class:`rlenhance.restore.SupervisedRestorer` (and the policies' predictors);
- :class:`RSEDenoiserSpec` (``rse-denoiser``): ``experiments.rse_train`` -> :func:`rlenhance.rse.load_rse`.

A writer puts the spec object in ``extra["spec"]``; :func:`load_checkpoint` gives it back validated (a
missing, unknown or ill-typed key is refused, naming the file and the key) and, with ``spec=SpecClass``,
refuses a checkpoint of another kind. The rest of ``extra`` (step counters, arguments, scores, optimiser
state) belongs to the trainer that wrote it.

Without torch, :func:`read_metadata` reads a file's dict with its tensors as :class:`TensorStub`
placeholders (:mod:`rlenhance.checkpoint.metadata`); importing this package imports neither torch nor a
model. Neither reader believes the sizes a file declares (:func:`~rlenhance.checkpoint.metadata.scan_torch_file`).

:func:`read_torch_file`, :func:`read_npz`, :func:`check_finite` and :func:`load_state_dict_strict` are shared
with loaders of foreign weights (:mod:`rlenhance.models.peers`); :func:`check_arch` is :func:`load_checkpoint`'s
architecture-mismatch refusal, for callers that read the architecture first (``supervised_train --init``).

Example:
    >>> from rlenhance.checkpoint import SupervisedSpec
    >>> spec = SupervisedSpec(model="mrpnet", task="denoise", channels=1, prefill="none")
    >>> SupervisedSpec.from_dict(spec.to_dict()) == spec
    True
    >>> spec.composite
    False
"""


import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlenhance.checkpoint.archives import read_npz
    from rlenhance.checkpoint.files import (
        build_model,
        check_arch,
        check_finite,
        load_checkpoint,
        load_state_dict_strict,
        read_torch_file,
        save_checkpoint,
    )
    from rlenhance.checkpoint.metadata import TensorStub, read_metadata
    from rlenhance.checkpoint.specs import (
        ALPHA_MODES,
        FORMAT_TAG,
        FORMAT_VERSION,
        NOISE_KINDS,
        ROLLOUT_TASKS,
        SPEC_KEY,
        SPECS,
        SUPERVISED_UPSCALES,
        SUPERVISED_VARIANTS,
        CheckpointSpec,
        LowLightPolicySpec,
        RolloutPolicySpec,
        RSEDenoiserSpec,
        SupervisedSpec,
    )
    from rlenhance.transitions import ACTION_TYPES, COND_ENCODINGS

#: The module of each public name, imported on first use (PEP 562): the files and specs need torch.
_MODULES = {
    **dict.fromkeys(("build_model", "check_arch", "check_finite", "load_checkpoint", "load_state_dict_strict",
                     "read_torch_file", "save_checkpoint"), "rlenhance.checkpoint.files"),
    **dict.fromkeys(("TensorStub", "read_metadata"), "rlenhance.checkpoint.metadata"),
    "read_npz": "rlenhance.checkpoint.archives",
    **dict.fromkeys(("ACTION_TYPES", "COND_ENCODINGS"), "rlenhance.transitions"),
    **dict.fromkeys(("ALPHA_MODES", "FORMAT_TAG", "FORMAT_VERSION", "NOISE_KINDS", "ROLLOUT_TASKS", "SPEC_KEY",
                     "SPECS", "SUPERVISED_UPSCALES", "SUPERVISED_VARIANTS", "CheckpointSpec", "LowLightPolicySpec",
                     "RSEDenoiserSpec", "RolloutPolicySpec", "SupervisedSpec"),
                    "rlenhance.checkpoint.specs"),
}

__all__ = [
    "ACTION_TYPES", "ALPHA_MODES", "COND_ENCODINGS", "FORMAT_TAG", "FORMAT_VERSION", "NOISE_KINDS", "ROLLOUT_TASKS",
    "SPEC_KEY", "SPECS", "SUPERVISED_UPSCALES", "SUPERVISED_VARIANTS", "CheckpointSpec", "LowLightPolicySpec",
    "RSEDenoiserSpec", "RolloutPolicySpec", "SupervisedSpec", "TensorStub", "build_model", "check_arch",
    "check_finite", "load_checkpoint", "load_state_dict_strict", "read_metadata", "read_npz", "read_torch_file",
    "save_checkpoint",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULES))
