"""experiments.sigmas.draw_levels: a level drawn per crop from the list or uniformly from its range,
reproducibly, each crop's level from its own generator alone."""

import pytest
import torch

from experiments.sigmas import SIGMA_DRAWS, draw_levels

LEVELS = (0.0, 15.0, 75.0)


def _generators(n, seed=0):
    return [torch.Generator().manual_seed(seed + k) for k in range(n)]


@pytest.mark.parametrize("draw", SIGMA_DRAWS)
def test_draws_are_reproducible_and_per_crop(draw):
    levels = draw_levels(LEVELS, 64, torch.Generator().manual_seed(0), draw=draw)
    assert levels.shape == (64, 1, 1, 1) and levels.dtype == torch.float32
    assert torch.equal(levels, draw_levels(LEVELS, 64, torch.Generator().manual_seed(0), draw=draw))
    rows = draw_levels(LEVELS, 6, _generators(6), draw=draw)
    assert torch.equal(rows[:3], draw_levels(LEVELS, 3, _generators(3), draw=draw))  # row k: generator k alone
    assert draw_levels(25.0, 4, torch.Generator(), draw=draw) == 25.0  # one level: as it is, no draw


def test_levels_picks_the_listed_levels_and_uniform_their_range():
    picked = draw_levels(LEVELS, 256, torch.Generator().manual_seed(0)).flatten()
    assert set(picked.tolist()) == set(LEVELS)
    drawn = draw_levels(LEVELS, 256, torch.Generator().manual_seed(0), draw="uniform").flatten()
    assert float(drawn.min()) >= 0.0 and float(drawn.max()) <= 75.0
    assert len(set(drawn.tolist())) == 256  # continuous: no level repeats
    assert 20.0 < float(drawn.mean()) < 55.0  # spread over the range (mean 37.5), not bunched at the list
    assert float(drawn.max()) > 60.0 and float(drawn.min()) < 15.0


def test_bad_draw_and_generator_count_are_refused():
    with pytest.raises(ValueError, match=r"draw: expected one of \('levels', 'uniform'\), got 'gauss'"):
        draw_levels(LEVELS, 2, torch.Generator(), draw="gauss")
    with pytest.raises(ValueError, match=r"generator: expected one per crop \(3\), got 2"):
        draw_levels(LEVELS, 3, _generators(2), draw="uniform")
