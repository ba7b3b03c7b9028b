"""``--sigma`` of the denoising trainers (``denoise_train``, ``supervised_train``, ``rse_train``):
one Gaussian noise level, or several for a blind denoiser, and the per-level scores of their
evaluations.

One meaning in the three: ``--sigma 25`` trains at 25 (0-255 scale) as ever; ``--sigma 5 15 25 35
50`` trains a blind denoiser: each training crop (an env row, a batch row, a patch) draws one of
the levels, uniformly, and the model is given none. The held-out images are scored at every level
(the same fixed-seed noise, scaled) and each score gets a column per level, ``<name>_sigma<S>``,
next to the mean over the levels under the plain name, which picks ``best.pt``. The run records
one level as a number (config.json, the spec's ``env_kwargs``, as before several were accepted)
and several as an ascending list; checkpoint specs record the levels
(:func:`rlenhance.checkpoint.specs.noise_levels`).

A trainer may also draw each crop's level uniformly from the levels' range instead
(:data:`SIGMA_DRAWS`, ``draw="uniform"``; ``supervised_train --sigma-draw uniform --sigma 0 15 25 50
75``: any level in [0, 75], FFDNet's protocol): the levels are then the range's ends and the points
evaluated, and the checkpoint records them as ever (the range is their first and last).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from rlenhance.checkpoint.specs import noise_levels
from rlenhance.data import NoisyImage, noisy_test_set

__all__ = ["RAMP", "SIGMA_DRAWS", "SIGMA_HELP", "draw_levels", "has_real_noise", "level_key", "level_scores",
           "levels_text",
           "noise_levels", "noise_text", "noisy_test_sets", "resolve_sigma"]

#: The ``--help`` of ``--sigma`` after each trainer's first words (what the level is).
SIGMA_HELP = ("on the 0-255 scale; several (e.g. --sigma 5 15 25 35 50) train a blind denoiser: each training crop "
              "draws one of them and the model is given none; evaluation scores each level (columns NAME_sigmaS) "
              "and their mean (the plain names) picks best.pt")
#: How a crop draws its level from several: one of the levels (each equally likely), or any level
#: of their range, uniformly (a continuous draw; the levels are still the points evaluated).
SIGMA_DRAWS = ("levels", "uniform")


def resolve_sigma(sigma: Any) -> float | tuple[float, ...]:
    """``--sigma`` as a run records it: one level as a number, several as an ascending tuple.

    Raises:
        ValueError: (names ``--sigma``) no level, a negative or non-finite one, or one repeated.
    """
    try:
        levels = noise_levels(sigma)
    except ValueError as exc:
        shown = " ".join(map(str, sigma)) if isinstance(sigma, (list, tuple)) else sigma
        raise ValueError(f"--sigma {shown}: {exc}") from None
    return levels[0] if len(levels) == 1 else levels


def draw_levels(sigma: float | tuple[float, ...], n: int,
                generator: torch.Generator | Sequence[torch.Generator], *,
                draw: str = "levels") -> float | torch.Tensor:
    """The noise levels of a batch of ``n`` crops, for :func:`rlenhance.data.add_gaussian_noise`:
    one level as it is (no draw, so a one-level run draws what it always did); several: a
    (n, 1, 1, 1) float32 tensor of levels drawn by ``generator``, on its device, or, given one
    generator per crop (``n`` of them), crop k's level by generator k (on the first one's device).
    ``draw`` (:data:`SIGMA_DRAWS`): ``"levels"`` picks one of the levels, uniformly; ``"uniform"``
    draws a level uniformly from ``[min(sigma), max(sigma)]``.

    Raises:
        ValueError: a sequence of generators that is not ``n`` long, or an unknown ``draw``.
    """
    if draw not in SIGMA_DRAWS:
        raise ValueError(f"draw: expected one of {SIGMA_DRAWS}, got {draw!r}")
    if not isinstance(sigma, tuple):
        return sigma
    if isinstance(generator, torch.Generator):
        generators, device = [generator], generator.device
    elif len(generator) != n:
        raise ValueError(f"generator: expected one per crop ({n}), got {len(generator)}")
    else:
        generators, device = list(generator), generator[0].device

    def per_crop(sample: Callable[[torch.Generator, int], torch.Tensor]) -> torch.Tensor:
        """``sample(generator, k)`` (k,) on the generator's device: all n by the one generator,
        or one by each crop's, gathered on ``device``."""
        if len(generators) == 1:
            return sample(generators[0], n)
        return torch.cat([sample(g, 1).to(device) for g in generators])

    if draw == "uniform":
        low, high = min(sigma), max(sigma)
        unit = per_crop(lambda g, k: torch.rand((k,), generator=g, device=g.device))
        return (low + (high - low) * unit).view(-1, 1, 1, 1)
    picks = per_crop(lambda g, k: torch.randint(len(sigma), (k,), generator=g, device=g.device))
    return torch.tensor(sigma, device=picks.device)[picks].view(-1, 1, 1, 1)


def levels_text(sigma: Any) -> str:
    """The levels of ``sigma`` as a summary shows them: ``"25"``, ``"5 15 25"``."""
    return " ".join(f"{level:g}" for level in noise_levels(sigma))


def has_real_noise(dataset: Any) -> bool:
    """Whether ``dataset`` holds real noisy / clean pairs (items with their own ``"noisy"`` image:
    :class:`rlenhance.data.NoisyPairs`) rather than clean images that get Gaussian noise."""
    return dataset is not None and len(dataset) > 0 and "noisy" in dataset[0]


def noise_text(sigma: Any, train_set: Any, test_set: Any) -> str:
    """The noise of a run as its reports say it: ``"sigma 25"`` or ``"sigma 5 15 25"`` (Gaussian
    noise of ``--sigma``), ``"real noise"`` (real pairs, :func:`has_real_noise`), or both when the
    training and the held-out data differ: ``"real noise (training), sigma 25 (held-out)"``."""
    train, test = (("real noise" if has_real_noise(data) else f"sigma {levels_text(sigma)}")
                   for data in (train_set, test_set))
    return train if train == test else f"{train} (training), {test} (held-out)"


#: The key of :func:`noisy_test_sets`' images whose level varies across them (``ramp=True``).
RAMP = "ramp"


def level_key(name: str, sigma: float | str) -> str:
    """The column of score ``name`` at noise level ``sigma``: ``eval/psnr`` -> ``eval/psnr_sigma25``
    (the noise ramp's, :data:`RAMP`: ``eval/psnr_ramp``)."""
    return f"{name}_{RAMP}" if sigma == RAMP else f"{name}_sigma{sigma:g}"


def level_scores(by_level: Mapping[float, Mapping[str, float]]) -> dict[str, float]:
    """One row of scores from an evaluation at each noise level (``{sigma: {name: value}}``).

    One level: its scores, under their own names (a one-level run logs what it always did).
    Several: under the plain names the mean over the levels, then every score at every level
    (:func:`level_key`), levels in the given order.
    """
    rows = list(by_level.items())
    if len(rows) == 1:
        return dict(rows[0][1])
    names = list(rows[0][1])
    scores = {name: sum(values[name] for _, values in rows) / len(rows) for name in names}
    scores.update({level_key(name, sigma): values[name] for sigma, values in rows for name in names})
    return scores


def noisy_test_sets(dataset: Any, sigma: Any, *, seed: int, device: Any = "cpu",
                    limit: int = 0, ramp: bool = False) -> dict[float | str, list[NoisyImage]]:
    """The held-out images with fixed noise at each level of ``sigma``, ``{level: images}``
    (:func:`rlenhance.data.noisy_test_set`: each image's noise seeded by ``seed`` and its name, so
    the levels share one noise pattern, scaled). Real noisy / clean pairs carry their own noise:
    they are scored once, under the first level. ``ramp``: a set more, first, under :data:`RAMP`, whose
    level goes from the lowest at each image's left edge to the highest at its right edge."""
    levels = noise_levels(sigma)
    if ramp and not has_real_noise(dataset):
        ramped = noisy_test_set(dataset, levels[0], seed=seed, device=device, limit=limit, sigma_to=levels[-1])
        return {RAMP: ramped, **noisy_test_sets(dataset, sigma, seed=seed, device=device, limit=limit)}
    first = noisy_test_set(dataset, levels[0], seed=seed, device=device, limit=limit)
    if len(levels) == 1 or not first or has_real_noise(dataset):
        return {levels[0]: first}
    return {levels[0]: first, **{level: noisy_test_set(dataset, level, seed=seed, device=device, limit=limit)
                                 for level in levels[1:]}}
