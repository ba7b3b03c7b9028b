"""The checkpoint file: atomic saving and validated loading of weights with their spec (:mod:`rlenhance.checkpoint`)."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlenhance.atomic import atomic_path
from rlenhance.checkpoint.metadata import corrupt, scan_torch_file
from rlenhance.checkpoint.specs import FORMAT_TAG, FORMAT_VERSION, SPEC_KEY, SPECS, CheckpointSpec
from rlenhance.errors import CheckpointError
from rlenhance.plugins import Registry

_REQUIRED_KEYS = ("format", "version", "arch", "state_dict", "extra")


def _describe_arch(arch: Any) -> str:
    """``arch`` as sorted JSON, or its repr where it is not JSON-able."""
    try:
        return json.dumps(arch, sort_keys=True)
    except (TypeError, ValueError):
        return repr(arch)


def _check_arch(arch: Any, source: str) -> None:
    """Raise unless ``arch`` is ``{"class": str, "kwargs": dict, ...}`` and JSON-able."""
    if not isinstance(arch, Mapping) or not isinstance(arch.get("class"), str) \
            or not isinstance(arch.get("kwargs"), Mapping):
        raise CheckpointError(f"{source}: arch must be a dict {{'class': str, 'kwargs': dict}} naming the model "
                              f"class and its constructor keyword arguments; got {arch!r}")
    try:
        json.dumps(arch)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: arch must be JSON-serialisable (str/int/float/bool/None/list/dict "
                              f"values); got {arch!r} ({exc})") from exc


def check_finite(state_dict: Mapping[str, Any], *, source: str) -> None:
    """Raise if any floating-point (or complex) tensor of ``state_dict`` holds NaN or +-inf.

    Args:
        state_dict: Mapping of parameter names to tensors (non-tensor values are ignored).
        source: What to call the weights in the message (usually the file path).

    Raises:
        CheckpointError: names ``source``, the first offending tensor and how many of its values are not finite.
    """
    for name, value in state_dict.items():
        if not isinstance(value, torch.Tensor) or not (value.is_floating_point() or value.is_complex()):
            continue
        finite = torch.isfinite(value)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise CheckpointError(f"{source}: tensor {name!r} (shape {tuple(value.shape)}) holds {bad} non-finite "
                                  f"(NaN/inf) value(s) of {value.numel()}; refusing to load broken weights")


def read_torch_file(path: str | os.PathLike, *, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with failures as :class:`CheckpointError`, once
    :func:`~rlenhance.checkpoint.metadata.scan_torch_file` has checked every size the file declares.

    Args:
        path: File written by ``torch.save``.
        map_location: Passed to ``torch.load`` (default ``"cpu"``: files saved from CUDA load on a CPU).

    Returns:
        The loaded object (only tensors, containers and primitives can be in it).

    Raises:
        CheckpointError: the file is missing, not a torch file, truncated/corrupt, declares more
            bytes than it holds, or holds objects that ``weights_only=True`` refuses.
    """
    path = Path(path)
    scan_torch_file(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refused an object: one line, no advice to turn it off
        raise CheckpointError(f"checkpoint {path}: cannot be read as a torch weights file: it holds objects other "
                              "than tensors, containers and primitives (rlenhance never writes them and refuses to "
                              "unpickle them, which could run code)") from exc
    except Exception as exc:  # torch raises RuntimeError, EOFError, OSError, KeyError, ... for bad files
        raise corrupt(f"checkpoint {path}", exc) from exc


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, Any], *, source: str) -> None:
    """``model.load_state_dict(state_dict, strict=True)`` with errors as :class:`CheckpointError`.

    Args:
        model: Module to fill.
        state_dict: Weights; keys and shapes must match ``model`` exactly.
        source: What to call the weights in the message (usually the file path).

    Raises:
        CheckpointError: missing or unexpected keys, or shape mismatches (torch's list of them is included),
            naming ``source`` and the model class.
    """
    try:
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{source}: weights do not fit {type(model).__name__}: {exc}") from exc


def save_checkpoint(path: str | os.PathLike, *, model: nn.Module, arch: Mapping[str, Any],
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Save ``model``'s weights with its architecture and metadata, atomically (format version 3).

    The file is written to a temporary file beside ``path``, read back with ``torch.load(weights_only=True)``,
    flushed and only then moved over ``path`` (:func:`rlenhance.atomic.atomic_path`): on any failure an
    existing file at ``path`` is left untouched. Parent folders are created.

    Args:
        path: Destination file (conventionally ``*.pt``).
        model: Module whose ``state_dict()`` is saved (tensors are copied to CPU).
        arch: JSON-able ``{"class": <name in the build registry>, "kwargs": {<constructor args>}}``.
        extra: Optional data to keep with the weights: ``extra["spec"]``, when present, the model's
            :class:`CheckpointSpec` (stored as its :meth:`~CheckpointSpec.to_dict`); the rest (step counters,
            config, metrics) only tensors, containers and primitives (what ``weights_only=True`` loads).

    Returns:
        The path written.

    Raises:
        CheckpointError: ``arch`` is malformed, the weights hold NaN/inf, ``extra["spec"]`` is not a spec
            object, or ``extra`` holds objects that cannot be loaded back with ``weights_only=True``.
        OSError: the folder cannot be created or written (a full disk included), naming ``path``, not
            ``torch.save``'s own text.
    """
    path = Path(path)
    _check_arch(arch, f"save_checkpoint({path})")
    if extra is not None and not isinstance(extra, Mapping):
        raise CheckpointError(f"save_checkpoint({path}): extra must be a dict or None; got {type(extra).__name__}")
    if extra is not None and SPEC_KEY in extra:
        if not isinstance(extra[SPEC_KEY], CheckpointSpec):
            raise CheckpointError(f"save_checkpoint({path}): extra['spec'] must be a spec object "
                                  f"({', '.join(c.__name__ for c in SPECS.values())}); got "
                                  f"{type(extra[SPEC_KEY]).__name__}")
        extra = {**extra, SPEC_KEY: extra[SPEC_KEY].to_dict()}
    state_dict = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    check_finite(state_dict, source=f"save_checkpoint({path})")
    payload = {
        "format": FORMAT_TAG,
        "version": FORMAT_VERSION,
        "arch": json.loads(json.dumps(arch)),  # a plain, detached copy
        "state_dict": state_dict,
        "extra": dict(extra) if extra is not None else None,
    }
    with atomic_path(path) as tmp:
        sink = _FileSink(tmp)
        try:
            torch.save(payload, sink)
        except RuntimeError as exc:  # torch's own text for a failed write: raise the OSError instead
            if sink.error is None:
                raise
            raise OSError(sink.error.errno, sink.error.strerror, str(tmp)) from exc
        finally:
            sink.close()
        try:
            torch.load(tmp, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"save_checkpoint({path}): the checkpoint would not load back with "
                                  f"weights_only=True; keep extra to tensors, containers and primitives "
                                  f"({type(exc).__name__}: {exc})") from exc
    return path


class _FileSink:
    """The file ``torch.save`` writes, keeping the ``OSError`` of a failed write (:attr:`error`), whose errno
    ``torch.save``'s own RuntimeError loses."""

    def __init__(self, path: Path):
        self.fd = os.open(path, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_BINARY", 0))
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        view = memoryview(data).cast("B")
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            self.error = exc
            raise
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        os.close(self.fd)


def check_arch(arch: Mapping[str, Any], expected_arch: Mapping[str, Any], *, source: str) -> None:
    """Refuse a checkpoint's ``arch`` that is not ``expected_arch`` (class and every kwarg).

    Raises:
        CheckpointError: the two differ; the message starts with ``source`` and shows both.
    """
    if dict(arch) != dict(expected_arch):
        raise CheckpointError(f"{source}: architecture mismatch: the file holds "
                              f"{_describe_arch(arch)}, expected {_describe_arch(expected_arch)}")


def load_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu",
                    expected_arch: Mapping[str, Any] | None = None,
                    spec: type[CheckpointSpec] | None = None) -> dict[str, Any]:
    """Load and validate a checkpoint written by :func:`save_checkpoint` (any readable version).

    Args:
        path: Checkpoint file.
        map_location: Where to put the tensors (``torch.load``'s argument; default CPU).
        expected_arch: When given, the stored ``arch`` must equal it (class and every kwarg).
        spec: When given, a spec class (e.g. :class:`LowLightPolicySpec`) the checkpoint's spec must be.

    Returns:
        The checkpoint dict (``format``, ``version``, ``arch``, ``state_dict``, ``extra``) plus ``"path"``,
        the file as a string (for :func:`build_model`'s messages); ``extra["spec"]``, when present, is the
        validated spec object.

    Raises:
        CheckpointError: (message names the file) missing file; not a torch file, truncated or corrupt; not an
            rlenhance checkpoint (wrong or missing ``format`` tag, missing keys, another format version, malformed
            ``arch``, ``state_dict`` or spec); a floating tensor with NaN/inf values (the first one is named);
            ``arch`` differs from ``expected_arch`` (both are shown); no spec of class ``spec`` (what it is instead).
    """
    path = Path(path)
    source = f"checkpoint {path}"
    obj = read_torch_file(path, map_location=map_location)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source}: not an rlenhance checkpoint (holds a {type(obj).__name__}, "
                              f"expected a dict with format={FORMAT_TAG!r})")
    if obj.get("format") != FORMAT_TAG:
        hint = " (it looks like a bare state_dict)" if "format" not in obj else ""
        raise CheckpointError(f"{source}: format tag is {obj.get('format')!r}, expected {FORMAT_TAG!r}{hint}")
    if missing := [key for key in _REQUIRED_KEYS if key not in obj]:
        raise CheckpointError(f"{source}: missing key(s) {missing}; an rlenhance checkpoint has "
                              f"{list(_REQUIRED_KEYS)}")
    version = obj["version"]
    if isinstance(version, bool) or version != FORMAT_VERSION:
        older = isinstance(version, int) and not isinstance(version, bool) and version < FORMAT_VERSION
        raise CheckpointError(f"{source}: format version {version!r}, " + (
            "an older format" if older else "not one this rlenhance knows (a newer rlenhance wrote it?)")
            + f"; this rlenhance reads version {FORMAT_VERSION}")
    _check_arch(obj["arch"], source)
    state_dict = obj["state_dict"]
    if not isinstance(state_dict, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise CheckpointError(f"{source}: state_dict must map parameter names (str) to tensors")
    check_finite(state_dict, source=source)
    if expected_arch is not None:
        check_arch(obj["arch"], expected_arch, source=source)
    extra = obj["extra"]
    if extra is not None and not isinstance(extra, Mapping):
        raise CheckpointError(f"{source}: extra must be a dict or None; got {type(extra).__name__}")
    if extra is not None:
        obj["extra"] = _read_spec(extra, source)
    if spec is not None:
        _check_spec_kind(obj["extra"], spec, source)
    obj["path"] = str(path)
    return obj


def build_model(checkpoint: Mapping[str, Any], registry: Registry | Mapping[str, type]) -> nn.Module:
    """Construct the model a checkpoint describes and load its weights (strict).

    Builds ``registry[arch["class"]](**arch["kwargs"])`` and loads ``state_dict`` with ``strict=True``;
    the model is in the mode its constructor leaves it (training): call ``.eval()`` for inference.

    Args:
        checkpoint: Dict returned by :func:`load_checkpoint`.
        registry: the classes it may build: a :class:`~rlenhance.plugins.Registry` (e.g.
            :data:`rlenhance.models.MODELS`, which also imports a user's class named by import path), or a
            mapping of class name -> ``nn.Module`` subclass, e.g. ``{"PixelActorCritic": PixelActorCritic}``.

    Returns:
        The model with the checkpoint's weights, on CPU (the weights are copied into the freshly built model).

    Raises:
        CheckpointError: (names the file) unknown class (the registry's names are listed),
            kwargs the constructor rejects, missing/unexpected keys or shape mismatches.
    """
    source = f"checkpoint {checkpoint.get('path', '<in-memory checkpoint>')}"
    arch = checkpoint.get("arch")
    _check_arch(arch, source)
    name = arch["class"]
    if isinstance(registry, Registry):
        try:
            cls = registry.get(name)
        except ValueError as exc:
            raise CheckpointError(f"{source}: {exc}") from None
    elif name in registry:
        cls = registry[name]
    else:
        raise CheckpointError(f"{source}: model class {name!r} is not in the registry; known: {sorted(registry)}")
    try:
        model = cls(**dict(arch["kwargs"]))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: {name}(**{dict(arch['kwargs'])!r}) failed: {exc}") from exc
    load_state_dict_strict(model, checkpoint.get("state_dict", {}), source=source)
    return model


def _read_spec(extra: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``extra`` with its spec (if any) parsed into the spec object."""
    extra = dict(extra)
    if SPEC_KEY in extra:
        data = extra[SPEC_KEY]
        kind = data.get("kind") if isinstance(data, Mapping) else None
        if kind not in SPECS:
            raise CheckpointError(f"{source}: extra['spec'] has kind {kind!r}; known kinds: {sorted(SPECS)}")
        extra[SPEC_KEY] = SPECS[kind].from_dict(data, source=f"{source}: extra['spec']")
    return extra


def _check_spec_kind(extra: Mapping[str, Any] | None, spec: type[CheckpointSpec], source: str) -> None:
    """Raise unless ``extra`` holds a spec of class ``spec`` (the message says what it holds instead)."""
    found = (extra or {}).get(SPEC_KEY)
    if isinstance(found, spec):
        return
    holds = ("holds no model metadata (no extra['spec'])" if found is None
             else f"is a {found.title} checkpoint (for {found.reader})")
    raise CheckpointError(f"{source} {holds}, so it is not a {spec.title} checkpoint (written by {spec.writer})")
