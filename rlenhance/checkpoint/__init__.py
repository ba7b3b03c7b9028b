"""Checkpoints: atomic saving and validated loading of model weights and their typed metadata.

A checkpoint file (format version 3) is a ``torch.save`` of the dict::

    {
        "format": "rlenhance-checkpoint",
        "version": 3,
        "arch": {"class": "PixelActorCritic", "kwargs": {...}},   # JSON-able
        "state_dict": {name: tensor, ...},                        # CPU tensors
        "extra": {"spec": {"kind": ..., ...}, ...} or None,       # the spec + the trainer's own data
    }

It is written atomically (temporary file in the same folder, ``fsync``, ``os.replace``), so a
crash mid-save leaves the previous checkpoint intact, and it is read with
``torch.load(weights_only=True)`` (no arbitrary code from the file is run). Loading refuses
files that are missing, unreadable, of another format, hold NaN/inf weights, or describe
another architecture than the caller expects, with a :class:`CheckpointError` naming the file.

What a model needs at inference beyond its weights is one typed, frozen **spec** per kind of
checkpoint, written and read only here:

===========================  ================================  ================================================
spec (``kind``)              written by                        read by
===========================  ================================  ================================================
:class:`LowLightPolicySpec`  ``experiments.lol_train``         :class:`rlenhance.Enhancer`
(``lowlight-policy``)
:class:`RolloutPolicySpec`   ``experiments.denoise_train``,    :class:`rlenhance.denoisers.PolicyDenoiser`,
(``rollout-policy``)         ``experiments.completion_train``  :class:`rlenhance.completion.PolicyCompleter`
:class:`SupervisedSpec`      ``experiments.supervised_train``  :class:`rlenhance.restore.SupervisedRestorer`
(``supervised``)                                               (the policies' predictors too)
:class:`RSEDenoiserSpec`     ``experiments.rse_train``         :func:`rlenhance.rse.load_rse`
(``rse-denoiser``)
===========================  ================================  ================================================

A writer puts the spec object in ``extra["spec"]`` (:func:`save_checkpoint` stores its
:meth:`~CheckpointSpec.to_dict`); :func:`load_checkpoint` gives it back as the spec object,
validated (a missing, unknown or ill-typed key is refused, naming the file and the key), and
with ``spec=SpecClass`` refuses a checkpoint of another kind. The rest of ``extra`` (step
counters, arguments, scores, optimiser state) belongs to the trainer that wrote it.

A file of another format version (an older one, or a newer one) is refused, the message saying which.

Without torch, :func:`read_metadata` reads a file's dict with its tensors as :class:`TensorStub`
placeholders (:mod:`rlenhance.checkpoint.metadata`: a restricted unpickler, as safe as
``weights_only=True``); importing this package imports neither torch nor a model: its names are
imported from their modules on first use.

Neither reader believes the sizes a file declares: a zip member's uncompressed size, a pickle's
``bytearray`` or a storage's byte count larger than the file is refused before anything is allocated
(:func:`rlenhance.checkpoint.metadata.scan_torch_file`, :mod:`rlenhance.checkpoint.archives`).

The helpers :func:`read_torch_file`, :func:`read_npz`, :func:`check_finite` and
:func:`load_state_dict_strict` are shared with loaders of foreign weights (see :mod:`rlenhance.models.peers`).
:func:`check_arch` is the architecture-mismatch refusal of :func:`load_checkpoint`, for callers
that read the architecture first (``supervised_train --init``, which widens a narrower U-Net).

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
    "ACTION_TYPES",
    "ALPHA_MODES",
    "COND_ENCODINGS",
    "FORMAT_TAG",
    "FORMAT_VERSION",
    "NOISE_KINDS",
    "ROLLOUT_TASKS",
    "SPEC_KEY",
    "SPECS",
    "SUPERVISED_UPSCALES",
    "SUPERVISED_VARIANTS",
    "CheckpointSpec",
    "LowLightPolicySpec",
    "RSEDenoiserSpec",
    "RolloutPolicySpec",
    "SupervisedSpec",
    "TensorStub",
    "build_model",
    "check_arch",
    "check_finite",
    "load_checkpoint",
    "load_state_dict_strict",
    "read_metadata",
    "read_npz",
    "read_torch_file",
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
