"""Image ops of pixel-wise RL enhancement: LE curves, PixelRL's filter bank, per-pixel selection.

All ops are batched torch functions on (B, C, H, W) float tensors (RGB, values in [0, 1]) that
run on the input's device; each comes with an ``nn.Module`` where that makes sense.

The dense filters reproduce OpenCV on the same float32 input, border handling included, so that an
agent trained on these ops sees what PixelRL's ``cv2`` loop produced:

==========================  ===================================  ===========
function                    OpenCV reference                     border
==========================  ===================================  ===========
:func:`gaussian_blur2d`     ``cv2.GaussianBlur(x, (k, k), s)``   reflect-101
:func:`box_blur2d`          ``cv2.blur`` / ``cv2.boxFilter``     reflect-101
:func:`median_blur2d`       ``cv2.medianBlur(x, k)``             replicate
:func:`bilateral_filter2d`  ``cv2.bilateralFilter``              reflect-101
==========================  ===================================  ===========

Modules, each importing only from those above it (``tests/rlenhance/test_ops_imports.py`` keeps
it so):

* ``_checks`` (argument checks), ``_padding`` (OpenCV borders), ``_workspace`` (working dtype,
  temporaries), ``_sorting`` (comparator networks), ``_sites`` (reads at chosen pixels);
* ``fill`` (hole filling), ``select`` (per-pixel selection, grouping), ``tiling`` (:func:`tiled`:
  a function evaluated on overlapping tiles of a large image);
* one filter family a module: ``blur`` (Gaussian, box), ``median``, ``bilateral``;
* ``actions``: :class:`FilterAction`, :data:`PIXELRL_ACTION_TABLE` and how a bank is planned;
* ``sparse``: a bank evaluated at chosen pixels only (``filters_at``, the torch per-pixel choice);
* ``native``: the same per-pixel choice, and the LE curve steps with upsampled alpha maps, as C
  kernels (``csrc/``), compiled on first use;
* ``curves``: LE curves (:func:`le_curves_upsampled` runs the ``native`` kernel where it can);
* ``bank``: :func:`pixelrl_filter_bank`, ``pixelrl_filter_select`` (native kernel or torch path)
  and :class:`FilterBank`;
* ``clean``: :func:`clean_enhanced`, the Enhancer's clean stage (noise removed where the curves
  brightened, highlights protected; native kernel or torch).
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

__all__ = [
    "PIXELRL_ACTIONS",
    "PIXELRL_ACTION_TABLE",
    "FilterAction",
    "FilterBank",
    "LECurve",
    "LECurveIterative",
    "MAX_BLUR_SIGMA",
    "bilateral_filter2d",
    "box_blur2d",
    "cap_mean",
    "check_blur_sigma",
    "check_max_overshoot",
    "clean_enhanced",
    "couple_channels",
    "gaussian_blur2d",
    "gaussian_kernel1d",
    "le_curve",
    "le_curve_iterative",
    "le_curves_upsampled",
    "le_gain",
    "le_step",
    "median_blur2d",
    "overshoot_limit",
    "pad_to_multiple",
    "pixelrl_filter_bank",
    "select_per_pixel",
    "shift_intensity",
    "tiled",
]
