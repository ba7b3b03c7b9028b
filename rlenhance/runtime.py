"""Process-wide runtime settings: device choice, denormal flushing and seeding (nothing runs at import time)."""

from __future__ import annotations

import functools
import os
import random
import re

import cv2
import numpy as np
import torch

__all__ = ["configure_threads", "constant_tensor", "flush_denormals", "seed_everything", "select_device"]

_DEVICE_SPECS = '"auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N"'
_CUDA_SPEC = re.compile(r"^cuda(?::(\d+))?$")
_MAX_NUMPY_SEED = 2**32 - 1


def select_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn a device spec into a :class:`torch.device`, checking that it exists.

    Args:
        spec: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``
            (case-insensitive, surrounding spaces ignored), or a ``torch.device`` of type cpu/cuda.

    Returns:
        The device. ``"cuda"`` without an index maps to ``cuda:0`` semantics (``torch.device("cuda")``).

    Raises:
        ValueError: ``spec`` is not one of the accepted forms, or names CUDA (or a CUDA index)
            that this machine does not have.

    Example:
        >>> select_device("cpu")
        device(type='cpu')
    """
    if isinstance(spec, torch.device):
        text = str(spec)
    elif isinstance(spec, str):
        text = spec.strip().lower()
    else:
        raise ValueError(f"device must be a string or torch.device; got {type(spec).__name__}. "
                         f"Accepted: {_DEVICE_SPECS}")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA_SPEC.match(text)
    if match is None:
        raise ValueError(f"device {spec!r} is not recognised; accepted: {_DEVICE_SPECS}")
    if not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available on this machine "
                         f"(torch {torch.__version__}); use \"cpu\" or \"auto\"")
    if match.group(1) is not None:
        index = int(match.group(1))
        count = torch.cuda.device_count()
        if index >= count:
            raise ValueError(f"device {spec!r} requested but this machine has {count} CUDA device(s) "
                             f"(valid indices 0..{count - 1})")
        return torch.device("cuda", index)
    return torch.device("cuda")


def physical_memory() -> int | None:
    """This machine's memory in bytes; None where the system does not say (``os.sysconf``)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(need: int, what: str, fix: str) -> None:
    """Refuse settings whose memory, at least ``need`` bytes, is more than this machine has, before
    anything is allocated.

    Args:
        need: a floor of the bytes (what is sure to be allocated, not an estimate of the whole).
        what: what takes them, naming the settings (``"train.batch 1000 of 64 px crops"``).
        fix: what to change.

    Raises:
        ValueError: ``"{what}: at least N GiB, more than this machine's M GiB of memory; {fix}"``.
    """
    memory = physical_memory()
    if memory is not None and need > memory:
        raise ValueError(f"{what}: at least {_amount(need)}, more than this machine's {_amount(memory)} of memory; "
                         f"{fix}")


def _amount(size: int) -> str:
    """``size`` bytes in GiB (MiB below one GiB), for a message."""
    return f"{size / 2**30:,.1f} GiB" if size >= 2**30 else f"{size / 2**20:,.1f} MiB"


def configure_threads(threads: int = 0, processes: int = 1, *, spare: int = 1) -> int:
    """Set torch's (and OpenCV's) CPU threads; ``0``: every core but ``spare``, at least one, shared by the
    ``processes`` that run on this machine (a ``torchrun --nproc_per_node N`` job's N ranks each get
    ``(cores - spare) // N``).

    The inference entry points leave one core free: torch's OpenMP threads meet at a barrier after every op, so a busy
    neighbour process slows each op; the trainers take every core (``spare=0``; docs/performance.md#threads).

    Args:
        threads: the number of threads; 0: ``max(1, (os.cpu_count() - spare) // processes)``.
        processes: processes sharing this machine's cores (torchrun's ``LOCAL_WORLD_SIZE``); an
            explicit ``threads`` is taken as given.
        spare: cores left free with ``threads`` 0 (0 or 1).

    Returns:
        The number set.

    Raises:
        ValueError: ``threads`` is negative or not an int, or ``processes`` < 1.
    """
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
        raise ValueError(f"threads: expected an int >= 0 (0: every core{' but one' if spare else ''}), got {threads!r}")
    if isinstance(processes, bool) or not isinstance(processes, (int, np.integer)) or processes < 1:
        raise ValueError(f"processes: expected an int >= 1, got {processes!r}")
    count = int(threads) or max(1, ((os.cpu_count() or 1) - spare) // int(processes))
    torch.set_num_threads(count)
    cv2.setNumThreads(count)  # OpenCV's own pool (e.g. the Enhancer's blur of its result)
    return count


def flush_denormals() -> bool:
    """Make CPU float math treat denormal (subnormal) numbers as zero (FTZ/DAZ): ``torch.set_flush_denormal``.

    The setting is per thread and copied into threads created later, so it must run before torch's intra-op
    CPU thread pool starts (the first parallel torch op); the entry points and model loaders call it. The official
    Zero-DCE / Zero-DCE++ weights hold denormals (the :mod:`rlenhance.models.peers` loaders zero them), and
    activations can become denormal: slow on CPUs with a denormal penalty.

    Returns:
        True when the CPU supports flushing (x86 with SSE3), False otherwise (nothing changed).
    """
    return bool(torch.set_flush_denormal(True))


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device).

    Environments should still draw from their own ``np_random``.

    Args:
        seed: Integer in [0, 2**32 - 1] (NumPy's limit).

    Raises:
        ValueError: ``seed`` is not an int in that range.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= _MAX_NUMPY_SEED:
        raise ValueError(f"seed must be an int in [0, {_MAX_NUMPY_SEED}]; got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.cuda.manual_seed_all(seed)  # no-op without CUDA; explicit for older torch versions


@functools.lru_cache(maxsize=256)
def constant_tensor(values: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.tensor(values, dtype=dtype, device=device)``, made once per (values, dtype, device) (no host
    copy per call); shared: never modify it in place.

    Args:
        values: numbers, or tuples of numbers (hashable).
        dtype: the tensor's dtype.
        device: its device (a ``torch.device``).
    """
    return torch.tensor(values, dtype=dtype, device=device)
