"""An action family of your own: a per-pixel gamma curve instead of Zero-DCE's LE curve.

Each step moves a pixel ``x`` to ``x ** (2 ** -alpha)``: alpha 0 keeps it, alpha 1 takes its square root
(brighter), alpha -1 squares it (darker). Train a low-light policy with it, then use it:

    python -m experiments.lol_train --set task.curve=examples.gamma_curve:GammaCurve --out runs/gamma
    rlenhance enhance photo.jpg -o out/ --checkpoint runs/gamma/checkpoints/best.pt
    rlenhance export -o gamma.onnx --checkpoint runs/gamma/checkpoints/best.pt

The checkpoint records ``examples.gamma_curve:GammaCurve``, so this file must be importable where the
checkpoint is loaded (run from the folder that holds ``examples/``, or install it).
"""

import math

import torch

from rlenhance.transitions import ActionFamily


class GammaCurve(ActionFamily):
    """``x ** (2 ** -alpha)`` per pixel: alpha in [-1, 1] maps to gamma 2 .. 0.5."""

    name = "gamma"

    @staticmethod
    def curve(x: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
        alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
        return x.clamp_min(0.0).pow(torch.exp(alpha * -math.log(2.0)))  # 2 ** -alpha (ONNX has no exp2)
