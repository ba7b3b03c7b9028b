"""rlenhance: reinforcement-learning image enhancement (ReLLIE / PixelRL / RSE-RL style).

Channel order is RGB everywhere inside the library; images are float32 in [0, 1].

``import rlenhance`` is cheap and changes no global state: it imports neither torch nor any model; :class:`Enhancer`,
:func:`load_denoiser`, :class:`SupervisedRestorer`, :func:`load_image` and :func:`save_image` are imported on first use.
Process-wide settings (:mod:`rlenhance.runtime`) are the entry points' to make.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rlenhance.errors import CheckpointError, DatasetError, ImageError

if TYPE_CHECKING:
    from rlenhance.denoisers import load_denoiser
    from rlenhance.enhance import Enhancer
    from rlenhance.io import load_image, save_image
    from rlenhance.restore import SupervisedRestorer

__version__ = "0.1.0"

#: The names imported on first use, and the module of each.
_LAZY = {
    "Enhancer": "rlenhance.enhance",
    "SupervisedRestorer": "rlenhance.restore",
    "load_denoiser": "rlenhance.denoisers",
    "load_image": "rlenhance.io",
    "save_image": "rlenhance.io",
}

__all__ = ["CheckpointError", "DatasetError", "Enhancer", "ImageError", "SupervisedRestorer", "__version__",
           "load_denoiser", "load_image", "save_image"]


def __getattr__(name: str) -> Any:
    """Import a name of :data:`_LAZY` from its module on first use (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
