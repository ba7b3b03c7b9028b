"""Image ops of pixel-wise RL enhancement: LE curves, PixelRL's filter bank, per-pixel selection.

All ops are batched torch functions on (B, C, H, W) float tensors (RGB, values in [0, 1]) that
run on the input's device; each comes with an ``nn.Module`` where that makes sense.
"""

from rlenhance.ops.curves import LECurve, LECurveIterative, le_curve, le_curve_iterative
from rlenhance.ops.filters import (
    PIXELRL_ACTION_TABLE,
    PIXELRL_ACTIONS,
    FilterAction,
    FilterBank,
    bilateral_filter2d,
    box_blur2d,
    gaussian_blur2d,
    gaussian_kernel1d,
    median_blur2d,
    pixelrl_filter_bank,
    shift_intensity,
)
from rlenhance.ops.select import select_per_pixel

__all__ = [
    "PIXELRL_ACTIONS",
    "PIXELRL_ACTION_TABLE",
    "FilterAction",
    "FilterBank",
    "LECurve",
    "LECurveIterative",
    "bilateral_filter2d",
    "box_blur2d",
    "gaussian_blur2d",
    "gaussian_kernel1d",
    "le_curve",
    "le_curve_iterative",
    "median_blur2d",
    "pixelrl_filter_bank",
    "select_per_pixel",
    "shift_intensity",
]
