"""The terms of the low-light reward: each a per-pixel loss map of a state, whose weighted sum ``L(s)``
the reward decreases (``r_t = L(s_{t-1}) - L(s_t)``, :class:`envs.lowlight.LowLightEnv`).

The conditioned terms (``exposure``, ``color``, ``spatial``) are weighted by the setting; the others are added
with fixed weights through the env's ``terms`` argument, ``{name or import path: weight}``: :data:`REWARD_TERMS`
holds the shipped ones, a user's own :class:`RewardTerm` subclass is named by import path::

    python -m experiments.lol_train --set reward.terms=reference=300,examples.reward_term:HighlightKeep=1000

A term is built once per env (no arguments); :meth:`RewardTerm.reset` is called at each episode's start and
:meth:`RewardTerm.__call__` on every state, both reading ``task.original`` (the dark input, (B, 3, H, W)),
``task.high`` (the reference, or None) and ``task.target`` (each row's exposure target, (B, 1, 1, 1)). A term
that is zero without references sets ``needs_reference``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch

from rlenhance import losses
from rlenhance.plugins import Registry

__all__ = ["REWARD_TERMS", "ColorRatio", "Reference", "RewardTerm", "ScaledReference", "build_terms", "reexpose",
           "regain", "term_items"]


class RewardTerm:
    """Base of a reward term: a loss map of a state, lower is better (module docstring)."""

    #: Its registered name (:data:`REWARD_TERMS`).
    name: ClassVar[str] = ""
    #: Whether it reads the references alone (zero without them): a reward of such terms alone needs pairs.
    needs_reference: ClassVar[bool] = False

    def reset(self, task: Any) -> None:
        """Called at the start of each episode, once the images and the setting are drawn."""

    def __call__(self, image: torch.Tensor, task: Any) -> torch.Tensor:
        """The loss map (B, 1, H, W) of the state ``image`` (B, 3, H, W) in [0, 1]."""
        raise NotImplementedError


def _check_term(term: Any) -> None:
    if not (isinstance(term, type) and issubclass(term, RewardTerm)):
        raise TypeError(f"expected a subclass of envs.rewards.RewardTerm, got {term!r}")


#: The reward terms added with fixed weights, by name; a user's own by import path.
REWARD_TERMS: Registry[type[RewardTerm]] = Registry("reward term", check=_check_term)


def _match_mean(expose: Callable[[torch.Tensor], torch.Tensor], target: torch.Tensor, bound: float,
                iterations: int) -> torch.Tensor:
    """``expose(t)`` with one ``t`` per image in [-bound, bound] chosen by bisection so the mean is ``target``
    (B, 1, 1, 1); ``expose`` brightens as ``t`` rises."""
    low, high = torch.full_like(target, -bound), torch.full_like(target, bound)
    for _ in range(iterations):
        middle = (low + high) / 2
        bright = expose(middle).mean(dim=(1, 2, 3), keepdim=True) > target
        low, high = torch.where(bright, low, middle), torch.where(bright, middle, high)
    return expose((low + high) / 2)


def reexpose(image: torch.Tensor, target: torch.Tensor, iterations: int = 24) -> torch.Tensor:
    """``image ** g`` with one exponent ``g`` per image, chosen so the mean is ``target`` (B, 1, 1, 1): the
    image's look at another exposure, its tones kept in order (bisection on ``log g`` in [-4, 4])."""
    x = image.clamp(1e-4, 1.0)
    return _match_mean(lambda t: x.pow((-t).exp()), target, 4.0, iterations)


def regain(image: torch.Tensor, target: torch.Tensor, iterations: int = 24) -> torch.Tensor:
    """``clamp(s * image, 0, 1)`` with one gain ``s`` per image, chosen so the mean is ``target`` (B, 1, 1, 1): the
    image at another exposure with the ratios of its unclipped tones kept (bisection on ``log s`` in [-6, 6])."""
    return _match_mean(lambda t: (image * t.exp()).clamp(0, 1), target, 6.0, iterations)


@REWARD_TERMS.register()
class Reference(RewardTerm):
    """Squared error (mean over RGB) to the reference brought to the episode's exposure target
    (:func:`reexpose`): where pairs exist, how the light should be spread, at the brightness asked for.
    Zero on unpaired data (no reference)."""

    name = "reference"
    needs_reference = True
    #: ``(reference, target) -> the reference at the target``: what the state is compared with.
    expose = staticmethod(reexpose)

    def reset(self, task: Any) -> None:
        self.exposed = None if task.high is None else self.expose(task.high, task.target)

    def __call__(self, image: torch.Tensor, task: Any) -> torch.Tensor:
        if self.exposed is None:
            return image.new_zeros(image.shape[0], 1, *image.shape[-2:])
        return (image - self.exposed).pow(2).mean(dim=1, keepdim=True)


@REWARD_TERMS.register()
class ScaledReference(Reference):
    """:class:`Reference` with the reference brought to the target by a gain (:func:`regain`), not a tone curve:
    a dark object stays as much darker than its surroundings as in the reference, which GT-mean evaluation
    (:func:`rlenhance.metrics.gt_mean_align`) compares; a tone curve lifts it as if it were in shadow."""

    name = "scaled_reference"
    expose = staticmethod(regain)


@REWARD_TERMS.register()
class ColorRatio(RewardTerm):
    """ReLLIE's colour-ratio term: the change of each pixel's colour ratios from the dark input
    (:func:`rlenhance.losses.color_ratio_loss`)."""

    name = "color_ratio"

    def __call__(self, image: torch.Tensor, task: Any) -> torch.Tensor:
        return losses.color_ratio_loss(image, task.original, return_map=True)[1]


def build_terms(terms: Mapping[str, float]) -> list[tuple[float, RewardTerm]]:
    """``[(weight, term), ...]`` of ``{name or import path: weight}`` (weights finite and >= 0; a zero weight
    is left out).

    Raises:
        ValueError: an unknown term, a path that does not name a :class:`RewardTerm`, or a bad weight.
    """
    built = []
    for key, weight in dict(terms).items():
        term = REWARD_TERMS.get(key)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0 \
                or weight == float("inf"):
            raise ValueError(f"terms[{key!r}]: expected a finite weight >= 0, got {weight!r}")
        if weight:
            built.append((float(weight), term()))
    return built


def term_items(terms: Mapping[str, float]) -> tuple[str, ...]:
    """``{name or import path: weight}`` as NAME=WEIGHT items, the spelling of a trainer's ``reward.terms``."""
    return tuple(f"{name}={weight:g}" for name, weight in terms.items())
