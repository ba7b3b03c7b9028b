"""The metrics of comparisons, each carrying what a report needs of it: the one table that
``experiments.compare`` scores from and labels its reports with, and where a user's own metric joins.

A :class:`Metric` is the function and how to read its value: its ``label``, its direction
(``higher_is_better``, torchmetrics' attribute: True, False, or None for a measure with no better side)
and what it compares the output with (``reference``). :data:`METRICS` holds the package's:

=================  ==========  ====  ===========================================================
name               reference   best  function
=================  ==========  ====  ===========================================================
``psnr``           full        high  :func:`rlenhance.metrics.psnr`
``ssim``           full        high  :func:`rlenhance.metrics.ssim`
``uqi``            full        high  :func:`rlenhance.metrics.uqi`
``hole_psnr``      hole        high  :func:`rlenhance.metrics.hole.hole_psnr` (completion)
``hole_ssim``      hole        high  :func:`rlenhance.metrics.hole.hole_ssim` (completion)
``niqe``           none        low   :func:`rlenhance.metrics.niqe` (NaN under 96 px or flat; low light)
``loe``            none        low   :func:`rlenhance.metrics.loe` against the input (low light)
``brightness``     none        -     mean BT.601 luma, 0-1 (low light)
``clipped``        none        -     :func:`rlenhance.metrics.clipped_fraction` (low light)
``dark_noise``     none        low   :func:`rlenhance.metrics.dark_colour_noise` (low light)
=================  ==========  ====  ===========================================================

A user's metric is a :class:`Metric` in a file of their own, registered there
(:func:`register_metric`) and named by import path wherever a metric name is accepted
(``experiments.compare --metrics package.module:NAME``; ``examples/entropy_metric.py``).

Example:
    >>> METRICS.get("niqe").higher_is_better, METRICS.get("psnr").label
    (False, 'PSNR (dB)')
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlenhance.errors import ImageError
from rlenhance.io import BT601_LUMA_WEIGHTS
from rlenhance.metrics import psnr, ssim, uqi
from rlenhance.metrics.hole import hole_psnr, hole_ssim
from rlenhance.plugins import Registry
from rlenhance.tasks import TASKS

__all__ = ["METRICS", "REFERENCES", "Metric", "register_metric"]

#: What a metric compares the output with: the whole reference, the reference inside the hole mask
#: (completion), or nothing (a no-reference metric, which may read the input the output came from).
REFERENCES = ("full", "hole", "none")


@dataclass(frozen=True)
class Metric:
    """One metric of comparisons.

    Attributes:
        name: its key (a column of ``experiments.compare``'s results.csv).
        label: how report tables name it (``"PSNR (dB)"``).
        higher_is_better: True, False, or None (no better side: brightness, clipped pixels).
        reference: one of :data:`REFERENCES`; it says how ``fn`` is called:

            * ``"full"``: ``fn(output, reference)`` on float tensors (B, C, H, W) in [0, 1] (after the
              comparison's protocol: RGB or Y, GT-mean or not) -> (B,) values;
            * ``"hole"``: ``fn(output, reference, mask)``, the mask float (B, 1, H, W), 1 = missing -> (B,);
            * ``"none"``: ``fn(output, input) -> float`` on one float32 (H, W, C) image in [0, 1] and the
              input it came from (clipped to [0, 1]).
        fn: the per-image score.
        about: how a report's protocol names it; a no-reference metric's also says what it measures
            (``"NIQE (the MATLAB release's pristine model; nan under 96 px)"``).
        digits: decimals in a report; percent: shown multiplied by 100.
        tasks: the tasks whose comparisons score it without being asked (the package's); (): only when
            named (``--metrics``).
    """

    name: str
    label: str
    higher_is_better: bool | None
    reference: str
    fn: Callable[..., Any]
    about: str = ""
    digits: int = 4
    percent: bool = False
    tasks: tuple[str, ...] = ()


def _check_metric(metric: Any) -> None:
    if not isinstance(metric, Metric):
        raise TypeError(f"expected a rlenhance.metrics.table.Metric, got {type(metric).__name__}")
    if metric.reference not in REFERENCES or metric.higher_is_better not in (True, False, None) \
            or not callable(metric.fn) or not set(metric.tasks) <= set(TASKS):
        raise ValueError(f"reference {metric.reference!r} (accepted: {REFERENCES}), higher_is_better "
                         f"{metric.higher_is_better!r} (True, False or None), a callable fn and tasks of {TASKS}")


#: Every metric by name; a user's is named by import path (``"package.module:NAME"``, a :class:`Metric`).
METRICS: Registry[Metric] = Registry("metric", check=_check_metric)


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` to :data:`METRICS` under its ``name`` and return it.

    Raises:
        ValueError: the name is taken by another metric, or the entry is not valid.
    """
    return METRICS.add(metric.name, metric)


def _niqe(output: np.ndarray, input: np.ndarray) -> float:  # noqa: A002 - the table's call convention
    from rlenhance.metrics.no_reference import NIQE_BLOCK, niqe  # noqa: PLC0415 - scipy, on first use

    try:
        return niqe(output) if min(output.shape[:2]) >= NIQE_BLOCK else math.nan
    except ImageError:  # a flat output: NIQE is undefined
        return math.nan


def _loe(output: np.ndarray, input: np.ndarray) -> float:  # noqa: A002
    from rlenhance.metrics.no_reference import loe  # noqa: PLC0415

    return loe(input, output)


def _brightness(output: np.ndarray, input: np.ndarray) -> float:  # noqa: A002
    return float((output.astype(np.float64) @ np.asarray(BT601_LUMA_WEIGHTS)).mean())


def _clipped(output: np.ndarray, input: np.ndarray) -> float:  # noqa: A002
    from rlenhance.metrics.no_reference import clipped_fraction  # noqa: PLC0415

    return clipped_fraction(output)


def _dark_noise(output: np.ndarray, input: np.ndarray) -> float:  # noqa: A002
    from rlenhance.metrics.no_reference import dark_colour_noise  # noqa: PLC0415

    return dark_colour_noise(input, output)


for _metric in (
    Metric("psnr", "PSNR (dB)", True, "full", psnr, "PSNR", digits=2, tasks=TASKS),
    Metric("ssim", "SSIM", True, "full", ssim, "SSIM", tasks=TASKS),
    Metric("uqi", "UQI", True, "full", uqi, "UQI", tasks=TASKS),
    Metric("hole_psnr", "hole PSNR (dB)", True, "hole", hole_psnr, "hole PSNR", digits=2, tasks=("completion",)),
    Metric("hole_ssim", "hole SSIM", True, "hole", hole_ssim, "hole SSIM", tasks=("completion",)),
    Metric("niqe", "NIQE", False, "none", _niqe, "NIQE (the MATLAB release's pristine model; nan under 96 px)",
           digits=3, tasks=("lowlight",)),
    Metric("loe", "LOE", False, "none", _loe, "LOE (grid of 50 px short side, against the input)", digits=1,
           tasks=("lowlight",)),
    Metric("brightness", "brightness", None, "none", _brightness, "brightness (mean BT.601 luma, 0-1)", digits=3,
           tasks=("lowlight",)),
    Metric("clipped", "clipped %", None, "none", _clipped, "clipped % (pixels with a channel at 255)", digits=2,
           percent=True, tasks=("lowlight",)),
    Metric("dark_noise", "dark colour noise", False, "none", _dark_noise,
           "dark colour noise (chroma noise in the input's darkest 30%, flat areas, 0-255 scale)", digits=2,
           tasks=("lowlight",)),
):
    register_metric(_metric)
