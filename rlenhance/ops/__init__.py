"""Image ops of pixel-wise RL enhancement: LE curves, PixelRL's filter bank, per-pixel selection.

All ops are batched torch functions on (B, C, H, W) float tensors (RGB, values in [0, 1]) on the input's
device, with an ``nn.Module`` where that makes sense. The dense filters reproduce OpenCV on float32 input:

==========================  ===================================  ===========
function                    OpenCV reference                     border
==========================  ===================================  ===========
:func:`gaussian_blur2d`     ``cv2.GaussianBlur(x, (k, k), s)``   reflect-101
:func:`box_blur2d`          ``cv2.blur`` / ``cv2.boxFilter``     reflect-101
:func:`median_blur2d`       ``cv2.medianBlur(x, k)``             replicate
:func:`bilateral_filter2d`  ``cv2.bilateralFilter``              reflect-101
==========================  ===================================  ===========

Modules, each importing only from those above it (``tests/rlenhance/test_ops_imports.py``): the private helpers
(``_checks``, ``_padding``, ``_workspace``, ``_sorting``, ``_sites``); ``fill``, ``select``, ``tiling``; one filter
family a module (``blur``, ``median``, ``bilateral``); ``actions``; ``sparse`` (a bank at chosen pixels); ``native`` (C
kernels, compiled on first use); ``curves``; ``bank``; ``clean`` (the Enhancer's clean stage).
"""

from rlenhance.ops.actions import PIXELRL_ACTION_TABLE, PIXELRL_ACTIONS, FilterAction, shift_intensity
from rlenhance.ops.bank import FilterBank, pixelrl_filter_bank
from rlenhance.ops.bilateral import bilateral_filter2d
from rlenhance.ops.blur import MAX_BLUR_SIGMA, box_blur2d, check_blur_sigma, gaussian_blur2d, gaussian_kernel1d
from rlenhance.ops.clean import clean_enhanced
from rlenhance.ops.curves import (
    LECurve,
    LECurveIterative,
    cap_mean,
    check_max_overshoot,
    couple_channels,
    le_curve,
    le_curve_iterative,
    le_curves_upsampled,
    le_gain,
    le_step,
    overshoot_limit,
)
from rlenhance.ops.median import median_blur2d
from rlenhance.ops.select import select_per_pixel
from rlenhance.ops.tiling import pad_to_multiple, tiled

__all__ = ["PIXELRL_ACTIONS", "PIXELRL_ACTION_TABLE", "FilterAction", "FilterBank", "LECurve", "LECurveIterative",
           "MAX_BLUR_SIGMA", "bilateral_filter2d", "box_blur2d", "cap_mean", "check_blur_sigma", "check_max_overshoot",
           "clean_enhanced", "couple_channels", "gaussian_blur2d", "gaussian_kernel1d", "le_curve",
           "le_curve_iterative", "le_curves_upsampled", "le_gain", "le_step", "median_blur2d", "overshoot_limit",
           "pad_to_multiple", "pixelrl_filter_bank", "select_per_pixel", "shift_intensity", "tiled"]
