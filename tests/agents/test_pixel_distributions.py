"""agents.distributions against torch.distributions references."""

import math

import pytest
import torch
from torch.distributions import Categorical, Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from agents.distributions import PixelCategorical, PixelGaussian


def _reference_categorical(logits):
    # (B, C, K, H, W) -> a torch Categorical with the K axis last
    return Categorical(logits=logits.movedim(2, -1))


def test_categorical_log_prob_entropy_mode_match_torch():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 4, 6) * 2
    d, ref = PixelCategorical(logits), _reference_categorical(logits)
    actions = torch.randint(0, 5, (2, 3, 4, 6))
    torch.testing.assert_close(d.log_prob(actions), ref.log_prob(actions))
    torch.testing.assert_close(d.entropy(), ref.entropy())
    torch.testing.assert_close(d.mode(), logits.argmax(dim=2))
    torch.testing.assert_close(d.probs.sum(dim=2), torch.ones(2, 3, 4, 6))
    uniform = PixelCategorical(torch.zeros(1, 1, 27, 2, 2)).entropy()
    torch.testing.assert_close(uniform, torch.full((1, 1, 2, 2), math.log(27)))


def test_categorical_sample_frequencies_and_generator():
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3])
    logits = probs.clamp_min(1e-30).log().view(1, 1, 4, 1, 1).expand(1, 1, 4, 100, 100)
    d = PixelCategorical(logits)
    g = torch.Generator().manual_seed(1)
    a = d.sample(g)
    assert a.dtype == torch.int64 and a.shape == (1, 1, 100, 100)
    freq = torch.bincount(a.flatten(), minlength=4).float() / a.numel()
    # 10,000 draws: standard error <= 0.005
    torch.testing.assert_close(freq, probs, atol=0.02, rtol=0)
    assert freq[1] == 0  # a zero-probability action is never drawn
    again = d.sample(torch.Generator().manual_seed(1))
    assert torch.equal(a, again)


def test_categorical_log_prob_has_gradient_and_bad_shapes_raise():
    logits = torch.randn(1, 2, 3, 2, 2, requires_grad=True)
    d = PixelCategorical(logits)
    a = d.sample()
    d.log_prob(a).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="actions"):
        d.log_prob(torch.zeros(1, 2, 2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, C, K, H, W\)"):
        PixelCategorical(torch.zeros(2, 3, 4, 5))


def test_gaussian_matches_torch_normal():
    torch.manual_seed(0)
    mean, log_std = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4) * 0.5
    d, ref = PixelGaussian(mean, log_std), Normal(mean, log_std.exp())
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(d.log_prob(x), ref.log_prob(x))
    torch.testing.assert_close(d.entropy(), ref.entropy())
    torch.testing.assert_close(d.mode(), mean)


def test_gaussian_sample_statistics_and_reparameterisation():
    mean = torch.full((1, 1, 100, 100), 0.3, requires_grad=True)
    log_std = torch.full((1, 1, 100, 100), math.log(0.2), requires_grad=True)
    d = PixelGaussian(mean, log_std)
    a, logp = d.rsample_with_log_prob(torch.Generator().manual_seed(0))
    assert abs(float(a.detach().mean()) - 0.3) < 0.01 and abs(float(a.detach().std()) - 0.2) < 0.01
    a.sum().backward()
    torch.testing.assert_close(mean.grad, torch.ones_like(mean))  # d(mean + std * eps)/d mean


def test_squashed_gaussian_matches_tanh_transformed_normal():
    torch.manual_seed(0)
    mean, log_std = torch.randn(1, 2, 3, 3), torch.randn(1, 2, 3, 3) * 0.3 - 0.5
    d = PixelGaussian(mean, log_std, squash=True)
    ref = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    a, logp = d.rsample_with_log_prob(torch.Generator().manual_seed(3))
    assert a.abs().max() < 1
    torch.testing.assert_close(logp, ref.log_prob(a), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(d.log_prob(a), logp, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(d.mode(), torch.tanh(mean))
    with pytest.raises(NotImplementedError):
        d.entropy()


@pytest.mark.parametrize("squash", [True, False])
def test_expected_action_is_the_mean_of_the_actions_drawn(squash):
    mean = torch.tensor([-2.0, -0.3, 0.0, 0.4, 1.5, 3.0]).view(1, 1, 2, 3)
    log_std = torch.tensor([-1.0, 0.0, 0.5, -0.2, 0.7, 0.1]).view(1, 1, 2, 3)
    dist = PixelGaussian(mean, log_std, squash=squash)
    draws = torch.stack([dist.sample(torch.Generator().manual_seed(i)) for i in range(4000)])
    if not squash:
        draws = draws.clamp(-1, 1)  # how A3C's continuous samples reach the env
    expected = dist.expected_action(clip=None if squash else 1.0)
    torch.testing.assert_close(expected, draws.mean(dim=0), atol=0.02, rtol=0)
    if squash:  # E[tanh(u)] lies nearer 0 than tanh(E[u]), the more so the wider u
        assert (expected.abs() < torch.tanh(mean).abs() + 1e-6).all()
        assert float((torch.tanh(mean) - expected).abs().max()) > 0.1
    assert torch.equal(PixelGaussian(mean, log_std).expected_action(), mean)  # unclipped, unsquashed


def test_expected_tanh_is_accurate_from_narrow_to_the_widest_gaussian():
    mean = torch.linspace(-4, 4, 9, dtype=torch.float64).repeat(8, 1)
    log_std = torch.linspace(-5, 2, 8, dtype=torch.float64)[:, None].expand(8, 9)  # std 0.007 .. 7.4 (the clamp)
    expected = PixelGaussian(mean[None, None], log_std[None, None], squash=True).expected_action()[0, 0]
    z = torch.linspace(-14, 14, 100_001, dtype=torch.float64)  # a dense Riemann sum of E[tanh(mean + std z)]
    density = torch.exp(-z * z / 2) / math.sqrt(2 * math.pi) * (z[1] - z[0])
    reference = (torch.tanh(mean[..., None] + log_std.exp()[..., None] * z) * density).sum(dim=-1)
    torch.testing.assert_close(expected, reference, atol=1e-6, rtol=0)
