"""The reference terms of the low-light reward (envs.rewards): the reference brought to the episode's exposure
target by a tone curve (``reference``) or by a gain (``scaled_reference``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from envs.rewards import REWARD_TERMS, Reference, ScaledReference, reexpose, regain


def _two_tones(dark: float = 0.1, light: float = 0.4) -> torch.Tensor:
    """(1, 3, 8, 8): a dark object (left half) beside a lighter surround (right half)."""
    image = torch.full((1, 3, 8, 8), light)
    image[..., :4] = dark
    return image


@pytest.mark.parametrize("target", [0.05, 0.3, 0.5, 0.8])
def test_regain_meets_the_target_mean(target):
    image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) ** 2
    out = regain(image, torch.full((2, 1, 1, 1), target))
    assert torch.allclose(out.mean(dim=(1, 2, 3)), torch.full((2,), target), atol=1e-4)
    assert out.min() >= 0 and out.max() <= 1


def test_regain_keeps_the_ratio_of_a_dark_object_to_its_surround_where_a_tone_curve_lifts_it():
    image, target = _two_tones(), torch.full((1, 1, 1, 1), 0.5)
    scaled, toned = regain(image, target), reexpose(image, target)
    ratio = lambda x: float(x[..., 4:].mean() / x[..., :4].mean())  # noqa: E731
    assert ratio(scaled) == pytest.approx(4.0, rel=1e-4)
    assert ratio(toned) < 3.0  # the power curve brightens the dark half more


def test_regain_of_a_black_image_stays_black():
    out = regain(torch.zeros(1, 3, 4, 4), torch.full((1, 1, 1, 1), 0.4))
    assert torch.equal(out, torch.zeros(1, 3, 4, 4))


def test_the_scaled_reference_term_is_registered_and_scores_its_target_zero():
    term = REWARD_TERMS.get("scaled_reference")()
    assert isinstance(term, ScaledReference) and term.needs_reference
    high, target = _two_tones(), torch.full((1, 1, 1, 1), 0.5)
    task = SimpleNamespace(high=high, target=target, original=high / 4)
    term.reset(task)
    assert float(term(regain(high, target), task).abs().max()) == 0.0
    assert float(term(reexpose(high, target), task).mean()) > 1e-3  # the tone-mapped reference is not its target
    tone = Reference()
    tone.reset(task)
    assert float(tone(reexpose(high, target), task).abs().max()) == 0.0


def test_without_references_both_terms_are_zero():
    task = SimpleNamespace(high=None, target=torch.full((2, 1, 1, 1), 0.4), original=torch.rand(2, 3, 4, 4))
    for term in (Reference(), ScaledReference()):
        term.reset(task)
        assert torch.equal(term(torch.rand(2, 3, 4, 4), task), torch.zeros(2, 1, 4, 4))
