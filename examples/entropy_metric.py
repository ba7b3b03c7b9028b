"""A no-reference metric of your own in one file: ``ENTROPY``, the Shannon entropy (bits) of the histogram
of an output's 256 luma levels, the information content low-light papers report next to NIQE. Importing
this module registers it in :data:`rlenhance.metrics.table.METRICS`; ``experiments.compare`` scores and reports
it, with its label and direction, when named by import path (docs/api.md, "A metric of your own"):

    python -m experiments.compare --task lowlight --metrics examples.entropy_metric:ENTROPY --out runs/compare
"""

from __future__ import annotations

import numpy as np

from rlenhance.io import BT601_LUMA_WEIGHTS
from rlenhance.metrics.table import Metric, register_metric

#: Levels of the luma histogram (8-bit).
LEVELS = 256


def luma_entropy(output: np.ndarray, input: np.ndarray) -> float:  # noqa: A002 - the table's call convention
    """The entropy in bits, in [0, 8], of the 256-level histogram of ``output``'s luma (BT.601; a gray
    image's plane as it is): float32 (H, W, C) in [0, 1]. ``input`` (the image it came from) is not read."""
    luma = output[..., 0] if output.shape[-1] == 1 else output @ np.asarray(BT601_LUMA_WEIGHTS, np.float32)
    counts = np.bincount(np.rint(np.clip(luma, 0.0, 1.0) * (LEVELS - 1)).astype(np.int64).ravel(), minlength=LEVELS)
    shares = counts[counts > 0] / counts.sum()
    return float(-(shares * np.log2(shares)).sum())


ENTROPY = register_metric(Metric("entropy", "entropy (bits)", True, "none", luma_entropy,
                                 "entropy (bits of the output's 256-level luma histogram)", digits=3))
