"""The low-light step's action family (rlenhance.transitions.ActionFamily): LE by name, a user's own by import
path, owning the step at the working resolution (with the cap) and at full resolution."""

import dataclasses

import numpy as np
import pytest
import torch

from rlenhance.ops import le_curves_upsampled, le_step
from rlenhance.transitions import ACTION_FAMILIES, COND_FIELDS, LE, ActionFamily, LowLightTransition, TransitionError

GAMMA = "examples.gamma_curve:GammaCurve"


def transition(curve="le", **changes):
    base = LowLightTransition("continuous", (0.0,), 1, 0.0, 0.0, 0.04, None, COND_FIELDS, (1.0,) * 5, (0.0,) * 5,
                              ("linear",) * 5, False, 4, curve=curve)
    return dataclasses.replace(base, **changes)


def images(seed=0, shape=(2, 3, 9, 13)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 0.4


def test_le_is_the_default_and_its_step_is_le_step():
    t = transition()
    assert t.family is LE and ACTION_FAMILIES.get("le") is LE
    x, alpha = images(), torch.rand(2, 1, 9, 13) * 2 - 1
    for limit in (None, torch.tensor([0.2, 0.9])):
        expected_alpha, expected = le_step(x, alpha, limit)
        got_alpha, got = t.step(x, alpha, limit)
        torch.testing.assert_close(got_alpha, expected_alpha)
        torch.testing.assert_close(got, expected.clamp(0, 1))


def test_a_family_named_by_import_path_steps_and_is_stored_by_its_path():
    t = transition(GAMMA)
    assert t.family.name == "gamma" and LowLightTransition.from_dict(t.to_dict()) == t
    x, alpha = images(), torch.full((2, 1, 9, 13), 1.0)
    _, stepped = t.step(x, alpha)
    torch.testing.assert_close(stepped, x.sqrt())


def test_the_generic_cap_holds_the_mean_at_the_limit():
    """A family that is not linear in alpha is capped by bisection: the mean ends at or just below the limit,
    and a step that ends below it is not changed."""
    t = transition(GAMMA)
    x = images()
    alpha = torch.ones(2, 1, 9, 13)
    limit = torch.tensor([0.3, 0.99])
    capped_alpha, stepped = t.step(x, alpha, limit)
    means = stepped.mean(dim=(1, 2, 3))
    assert float(means[0]) <= 0.3 + 1e-6 and float(means[0]) > 0.3 - 0.02
    torch.testing.assert_close(stepped[1], x[1].sqrt())  # below its limit: the full step
    assert float(capped_alpha[0].max()) < 1.0


def test_the_full_resolution_step_is_the_families_own_and_le_keeps_its_kernel():
    """apply() upsamples the maps onto the full image: for LE it is le_curves_upsampled; for another family
    the same bilinear upsampling with its curve, equal on a map that is flat."""
    x = images(1, (1, 3, 20, 30))
    maps = [torch.rand(1, 1, 4, 6) for _ in range(3)]
    torch.testing.assert_close(transition().apply(x, maps), le_curves_upsampled(x, maps))
    flat = [torch.full((1, 1, 4, 6), 0.5)]
    gamma = transition(GAMMA).apply(x, flat)
    torch.testing.assert_close(gamma, x.pow(2 ** -0.5))
    samples = (x * 255).round().to(torch.uint8)
    out = torch.empty_like(samples)
    transition(GAMMA).apply(samples, flat, out=out)
    torch.testing.assert_close(out, ((samples / 255.0).pow(2 ** -0.5) * 255).round().to(torch.uint8))


def test_a_bad_family_is_refused_naming_what_is_wrong():
    with pytest.raises(TransitionError, match="unknown action family 'nope'"):
        transition("nope")
    with pytest.raises(TransitionError, match="subclass of rlenhance.transitions.ActionFamily"):
        transition("math:sqrt")

    class Twice(ActionFamily):
        name = "twice-test"

        @staticmethod
        def curve(x, alpha):
            return x * (1 + alpha)

    ACTION_FAMILIES.add("twice-test", Twice)
    assert transition("twice-test").family is Twice


def test_a_videos_blend_and_the_apps_step_pictures_take_the_checkpoints_family():
    """A clip's blended maps are capped again by the family's own step, and the app shows its steps: the
    gamma curve's, not LE's."""
    from rlenhance.app_support import step_pictures
    from rlenhance.enhance import TemporalSmoothing

    gamma = transition(GAMMA).family
    x = images(2, (1, 3, 8, 10))
    alpha, limit = torch.ones(1, 1, 8, 10), torch.tensor([0.35])
    (capped,) = TemporalSmoothing().blend(x, [alpha], limit, family=gamma)
    torch.testing.assert_close(capped, gamma.step(x, alpha, limit)[0])
    assert not torch.allclose(capped, LE.step(x, alpha, limit)[0])
    image = x[0].permute(1, 2, 0).numpy()
    (picture,) = step_pictures(image, [torch.full((1, 1, 8, 10), 0.5)], width=10, family=gamma)
    expected = (x.pow(2 ** -0.5)[0].permute(1, 2, 0).numpy() * 255).round()
    np.testing.assert_allclose(picture, expected, atol=1)
    (le_picture,) = step_pictures(image, [torch.full((1, 1, 8, 10), 0.5)], width=10)
    assert np.abs(le_picture.astype(float) - expected).max() > 5
