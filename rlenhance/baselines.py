"""Classical (non-learned) enhancement baselines, for side-by-side comparisons.

Every function takes and returns RGB float32 (H, W, 3) images in [0, 1] (OpenCV's BGR order is
never used: the luma/chroma conversions below are channel-order explicit).
"""

from __future__ import annotations

import cv2
import numpy as np


def auto_gamma(image: np.ndarray, *, target: float = 0.5, eps: float = 1e-4) -> np.ndarray:
    """Global gamma chosen so the mean brightness maps to ``target``: ``x ** (log target / log mean)``."""
    mean = float(np.clip(image.mean(), eps, 1 - eps))
    gamma = np.log(target) / np.log(mean)
    return np.power(np.clip(image, 0.0, 1.0), gamma).astype(np.float32)


def _on_luma(image: np.ndarray, fn) -> np.ndarray:
    """Apply an 8-bit luma operation in YCrCb space, keeping chroma (RGB in, RGB out)."""
    u8 = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    ycrcb = cv2.cvtColor(u8, cv2.COLOR_RGB2YCrCb)
    ycrcb[..., 0] = fn(np.ascontiguousarray(ycrcb[..., 0]))
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB).astype(np.float32) / 255.0


def histogram_equalization(image: np.ndarray) -> np.ndarray:
    """Global histogram equalisation of the luma channel (OpenCV ``equalizeHist``)."""
    return _on_luma(image, cv2.equalizeHist)


def clahe(image: np.ndarray, *, clip_limit: float = 2.0, tiles: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of the luma channel."""
    op = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles))
    return _on_luma(image, op.apply)


LOWLIGHT_BASELINES = {"auto-gamma": auto_gamma, "histeq": histogram_equalization, "clahe": clahe}
