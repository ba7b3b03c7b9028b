"""A supervised baseline of your own in one file: ``TinyDenoiser``, a small residual CNN that
``experiments.supervised_train`` trains, ``rlenhance denoise`` runs and ``experiments.compare`` scores beside
the shipped methods, with no edit inside the package (docs/api.md, "A network of your own").

    python -m experiments.supervised_train --model examples.supervised_baseline:TinyDenoiser --task denoise \\
        --epochs 5 --out runs/tiny_denoiser
    rlenhance denoise noisy.png -o denoised/ --checkpoint runs/tiny_denoiser/checkpoints/best.pt
    python -m experiments.compare --task denoise --methods input,gaussian,ffdnet \\
        --checkpoints runs/tiny_denoiser/checkpoints/best.pt --out runs/compare_tiny

The trainer builds ``TinyDenoiser(channels, width=W)`` (``--width``, else the class's ``train_defaults``) and
trains it on the MSE of its output. ``arch()`` records the class by import path, which the checkpoint's spec
keeps as its model: any process that can import this module (run from the repository root, or with its folder
on ``PYTHONPATH``) loads the checkpoint, as the method named by that path.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from rlenhance.plugins import path_of


class TinyDenoiser(nn.Module):
    """Predicts the noise of an image with a stack of 3 x 3 convolutions and subtracts it (DnCNN's rule).

    Args:
        channels: image planes, 1 (gray) or 3 (RGB).
        width: feature planes of the hidden convolutions.
        depth: convolutions, >= 2.

    Shape:
        x: float (B, channels, H, W), any H, W -> (B, channels, H, W), nominally in [0, 1] (not clamped).
    """

    #: ``experiments.supervised_train``'s settings where a run leaves them unset
    train_defaults: ClassVar[dict[str, float]] = {"lr": 1e-3, "batch": 16, "crop": 48, "width": 16}

    def __init__(self, channels: int = 1, width: int = 16, depth: int = 4):
        super().__init__()
        if depth < 2:
            raise ValueError(f"TinyDenoiser: depth={depth!r}; expected an integer >= 2")
        self.in_channels = channels
        self._kwargs = {"channels": channels, "width": width, "depth": depth}
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def arch(self) -> dict[str, Any]:
        """``{"class": "examples.supervised_baseline:TinyDenoiser", "kwargs": {...}}``: what a checkpoint
        records to rebuild the network."""
        return {"class": path_of(type(self)), "kwargs": dict(self._kwargs)}

    def forward(self, x: Tensor) -> Tensor:
        """The denoised image, float (B, channels, H, W)."""
        return x - self.body(x)
