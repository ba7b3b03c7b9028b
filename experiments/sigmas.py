"""``--sigma`` of the denoising trainers (``denoise_train``, ``supervised_train``, ``rse_train``): one Gaussian
noise level (0-255 scale), or several for a blind denoiser, and the per-level scores of their evaluations.

With several levels each training crop draws one of them (or, ``draw="uniform"``, any level of their range) and
the model is given none; the held-out images are scored at every level (``<name>_sigma<S>`` columns) and the mean
over the levels, under the plain name, picks ``best.pt``. A run records one level as a number, several as an
ascending list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from rlenhance.checkpoint.specs import noise_levels
from rlenhance.data import NoisyImage, noisy_test_set

__all__ = ["RAMP", "SIGMA_DRAWS", "draw_levels", "has_real_noise", "level_key", "level_scores", "levels_text",
           "noise_levels", "noise_text", "noisy_test_sets", "resolve_sigma"]

#: How a crop draws its level from several: one of the levels, or any level of their range, uniformly.
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
    """The noise levels of a batch of ``n`` crops, for :func:`rlenhance.data.add_gaussian_noise`: one level as it is;
    several: a (n, 1, 1, 1) float32 tensor drawn by ``generator`` (or crop k's by generator k of ``n``), on its
    device. ``draw`` (:data:`SIGMA_DRAWS`): ``"levels"`` picks one of the levels, ``"uniform"`` any in their range.

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
        """``sample(generator, k)``: all n by the one generator, or one by each crop's, gathered on ``device``."""
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
    """Whether ``dataset`` holds real noisy / clean pairs (items with a ``"noisy"`` image) rather than clean images."""
    return dataset is not None and len(dataset) > 0 and "noisy" in dataset[0]


def noise_text(sigma: Any, train_set: Any, test_set: Any) -> str:
    """The noise of a run as its reports say it: ``"sigma 5 15 25"``, ``"real noise"``, or both when the training
    and held-out data differ: ``"real noise (training), sigma 25 (held-out)"``."""
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
    """One row of scores from an evaluation at each level (``{sigma: {name: value}}``): one level's scores as they
    are; several: the means under the plain names, then every score at every level (:func:`level_key`)."""
    rows = list(by_level.items())
    if len(rows) == 1:
        return dict(rows[0][1])
    names = list(rows[0][1])
    scores = {name: sum(values[name] for _, values in rows) / len(rows) for name in names}
    scores.update({level_key(name, sigma): values[name] for sigma, values in rows for name in names})
    return scores


def noisy_test_sets(dataset: Any, sigma: Any, *, seed: int, device: Any = "cpu",
                    limit: int = 0, ramp: bool = False) -> dict[float | str, list[NoisyImage]]:
    """``{level: images}``: the held-out images with fixed noise at each level (:func:`rlenhance.data.noisy_test_set`,
    one pattern scaled; real pairs once, under the first level). ``ramp``: first, under :data:`RAMP`, a set whose
    level rises from the lowest at each image's left edge to the highest at its right."""
    levels = noise_levels(sigma)
    if ramp and not has_real_noise(dataset):
        ramped = noisy_test_set(dataset, levels[0], seed=seed, device=device, limit=limit, sigma_to=levels[-1])
        return {RAMP: ramped, **noisy_test_sets(dataset, sigma, seed=seed, device=device, limit=limit)}
    first = noisy_test_set(dataset, levels[0], seed=seed, device=device, limit=limit)
    if len(levels) == 1 or not first or has_real_noise(dataset):
        return {levels[0]: first}
    return {levels[0]: first, **{level: noisy_test_set(dataset, level, seed=seed, device=device, limit=limit)
                                 for level in levels[1:]}}
