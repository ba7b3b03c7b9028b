"""A reward term of your own in one file: ``HighlightKeep``, which penalises the pixels a low-light policy
pushes above a highlight level (0.9) that were not that bright in the dark input: lamps, windows and
skies blown out to white while the rest is brought to the exposure target (the exposure term compares
patch means with the target, whichever pixels clip inside them). Name it by import path in
``reward.terms`` (``envs.rewards``; no registration needed), train, and use the model:

    python -m experiments.lol_train --preset global-light --set reward.terms=examples.reward_term:HighlightKeep=1000 \\
        --out runs/highlight_keep
    rlenhance enhance photo.jpg -o out/ --checkpoint runs/highlight_keep/checkpoints/best.pt
    python -m experiments.compare --task lowlight --methods input,rl \\
        --rl runs/highlight_keep/checkpoints/best.pt --out runs/compare_highlight_keep

The checkpoint records the term by its import path among its env's arguments, so the env it was trained
in can be rebuilt (``envs.make_for_checkpoint``) where this file is importable; ``rlenhance enhance`` does
not need it (a reward shapes training only). Change the level by subclassing: ``class Hard(HighlightKeep):
level = 0.8``, named ``package.module:Hard``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from envs.rewards import RewardTerm


def highlight_excess(image: torch.Tensor, original: torch.Tensor, level: float) -> torch.Tensor:
    """How far each pixel's brightest channel rises above ``max(level, its value in original)``, squared:
    float (B, 1, H, W), 0 where the pixel stays at or below ``level`` or below what it already was.

    Args:
        image: the state, float (B, 3, H, W) in [0, 1].
        original: the dark input it came from, float (B, 3, H, W) in [0, 1].
        level: the highlight level, in (0, 1].
    """
    allowed = original.amax(dim=1, keepdim=True).clamp_min(level)
    return (image.amax(dim=1, keepdim=True) - allowed).clamp_min(0.0).pow(2)


class HighlightKeep(RewardTerm):
    """:func:`highlight_excess` of a state against the episode's dark input (``task.original``), at
    :attr:`level`: the highlights that were there stay, none are made."""

    name = "highlight_keep"
    #: The brightness (of a pixel's brightest channel) above which a rise is penalised.
    level: ClassVar[float] = 0.9

    def __call__(self, image: torch.Tensor, task: Any) -> torch.Tensor:
        return highlight_excess(image, task.original, self.level)
