"""Supervised baselines: MRPNet + Generator, ConvLSTM PixelRNN, gated PixelRNN, the completion U-Net, their losses
and metrics."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from rlenhance.checkpoint import SupervisedSpec, build_model, load_checkpoint, save_checkpoint
from rlenhance.data import random_occlusion
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.metrics.hole import hole_l1, hole_mse, hole_psnr
from rlenhance.models import MODELS as REGISTRY
from rlenhance.models.inpaint import CompletionUNet
from rlenhance.models.mrpnet import CombinedModel, Generator, MRPNet
from rlenhance.models.pixelrnn import (
    CompletionLoss,
    ConvLSTMCell,
    GatedPixelRNN,
    MSESSIMLoss,
    PixelRNN,
    completion_loss,
    composite,
    mse_ssim_loss,
)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def sk_ssim(a, b):
    """skimage's SSIM of (C, H, W) tensors with the settings rlenhance.metrics.ssim matches."""
    return structural_similarity(a.double().numpy(), b.double().numpy(), channel_axis=0, data_range=1.0,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


# --- parameter counts of the published models ----------------------------------------------------
@pytest.mark.parametrize("build, published, tolerance", [
    (MRPNet, 77_000, 0.01),
    (Generator, 364_000, 0.01),
    (PixelRNN, 6_600_000, 0.01),
    (GatedPixelRNN, 400_000, 0.1),
])
def test_default_parameter_counts_are_near_the_published_ones(build, published, tolerance):
    assert abs(n_params(build()) - published) / published < tolerance


def test_generator_size_does_not_depend_on_upscale_and_combined_is_the_sum():
    counts = {u: n_params(Generator(upscale=u)) for u in (1, 2, 4)}
    assert len(set(counts.values())) == 1
    assert n_params(CombinedModel()) == n_params(MRPNet()) + counts[1]


def test_width_makes_tiny_models():
    for build in (MRPNet, Generator, PixelRNN, GatedPixelRNN):
        assert n_params(build(width=8)) < n_params(build()) / 20


# --- shapes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(1, 1), (16, 16), (37, 30)])
def test_mrpnet_keeps_any_size(size):
    net = MRPNet(width=8)
    x = torch.rand(2, 3, *size)
    assert net(x).shape == x.shape
    assert net.features(x).shape == (2, net.out_channels, *size)
    assert MRPNet(1, width=8)(torch.rand(1, 1, *size)).shape == (1, 1, *size)


@pytest.mark.parametrize("upscale", [1, 2, 4])
@pytest.mark.parametrize("size", [(1, 1), (16, 16), (37, 30)])
def test_generator_and_combined_scale_by_upscale(upscale, size):
    x = torch.rand(2, 3, *size)
    expected = (2, 3, size[0] * upscale, size[1] * upscale)
    gen = Generator(width=8, upscale=upscale)
    assert gen(x).shape == expected
    assert gen.features(x).shape == (2, gen.out_channels, *expected[2:])
    combined = CombinedModel(width=8, upscale=upscale)
    assert combined(x).shape == expected
    assert combined.features(x).shape == (2, combined.out_channels, *expected[2:])


@pytest.mark.parametrize("size", [(1, 1), (16, 16), (37, 30)])
def test_pixelrnn_keeps_any_size_in_0_1(size):
    net = PixelRNN(width=8)
    y = net(torch.rand(2, 3, *size))
    assert y.shape == (2, 3, *size) and bool(((y > 0) & (y < 1)).all())
    assert net.features(torch.rand(1, 3, *size)).shape == (1, net.out_channels, *size)
    assert PixelRNN(1, 3, width=8)(torch.rand(1, 1, *size)).shape == (1, 3, *size)


def test_gated_pixelrnn_takes_mask_separately_or_concatenated():
    net = GatedPixelRNN(width=8).eval()
    image, mask = torch.rand(2, 3, 20, 17), (torch.rand(2, 1, 20, 17) > 0.5).float()
    y = net(image, mask)
    assert y.shape == (2, 3, 20, 17) and bool(((y > 0) & (y < 1)).all())
    assert torch.equal(y, net(torch.cat([image, mask], dim=1)))
    assert net.features(image, mask).shape == (2, net.out_channels, 20, 17)
    assert GatedPixelRNN(1, width=8)(torch.rand(1, 1, 9, 9), torch.zeros(1, 1, 9, 9)).shape == (1, 1, 9, 9)


def test_mask_changes_the_gated_prediction():
    torch.manual_seed(0)
    net = GatedPixelRNN(width=8).eval()
    image = torch.rand(1, 3, 16, 16)
    assert not torch.allclose(net(image, torch.zeros(1, 1, 16, 16)), net(image, torch.ones(1, 1, 16, 16)))


def test_bad_inputs_and_arguments_raise():
    with pytest.raises(ImageError, match=r"\(B, 3, H, W\)"):
        MRPNet(width=8)(torch.rand(1, 1, 8, 8))
    with pytest.raises(ImageError, match="float"):
        Generator(width=8)(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ImageError):
        PixelRNN(width=8)(torch.rand(3, 8, 8))
    with pytest.raises(ImageError, match="mask"):
        GatedPixelRNN(width=8)(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 9))
    with pytest.raises(ImageError, match=r"\(B, 4, H, W\)"):
        GatedPixelRNN(width=8)(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="upscale"):
        Generator(upscale=3)
    with pytest.raises(ValueError, match="residual"):
        MRPNet(3, 1)
    with pytest.raises(ValueError, match="width"):
        PixelRNN(width=0)
    assert MRPNet(3, 1, residual=False)(torch.rand(1, 3, 8, 8)).shape == (1, 1, 8, 8)


# --- known values --------------------------------------------------------------------------------
def test_residual_models_with_a_zero_output_layer_are_identity_or_bilinear():
    x = torch.rand(2, 3, 13, 10)
    mrp = MRPNet(width=8)
    torch.nn.init.zeros_(mrp.head.weight)
    torch.nn.init.zeros_(mrp.head.bias)
    assert torch.equal(mrp(x), x)
    gen = Generator(width=8, upscale=2)
    torch.nn.init.zeros_(gen.tail.weight)
    torch.nn.init.zeros_(gen.tail.bias)
    assert torch.allclose(gen(x), F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))


def test_convlstm_cell_gates():
    cell = ConvLSTMCell(2, 3)
    torch.nn.init.zeros_(cell.gates.weight)
    big = 30.0
    with torch.no_grad():  # gate order i, f, o, g: input closed, forget open, output open
        cell.gates.bias.copy_(torch.tensor([-big] * 3 + [big] * 3 + [big] * 3 + [0.5] * 3))
    c = torch.randn(1, 3, 4, 4)
    h, c_new = cell(torch.rand(1, 2, 4, 4), (torch.zeros_like(c), c))
    assert torch.allclose(c_new, c, atol=1e-6) and torch.allclose(h, torch.tanh(c), atol=1e-6)
    with torch.no_grad():  # from a zero state with the input gate open: c = tanh(g), h = sigmoid(o) tanh(c)
        cell.gates.bias.copy_(torch.tensor([big] * 3 + [0.0] * 3 + [0.0] * 3 + [0.5] * 3))
    h, c_new = cell(torch.rand(1, 2, 4, 4))
    assert torch.allclose(c_new, torch.full_like(c_new, np.tanh(0.5)), atol=1e-6)
    assert torch.allclose(h, torch.full_like(h, 0.5 * np.tanh(np.tanh(0.5))), atol=1e-6)


def test_composite_keeps_known_pixels_and_takes_the_prediction_in_the_hole():
    g = torch.Generator().manual_seed(0)
    original = torch.rand(3, 3, 32, 32, generator=g)
    occluded, mask = random_occlusion(original, generator=g, kind="mixed")
    pred = torch.rand(3, 3, 32, 32, generator=g)
    out = composite(occluded, pred, mask)
    known = (mask == 0).expand_as(out)
    assert bool(known.any()) and bool((~known).any())
    assert torch.equal(out[known], occluded[known]) and torch.equal(out[~known], pred[~known])
    net = GatedPixelRNN(width=8)
    out = composite(occluded, net(occluded, mask), mask)
    assert torch.equal(out[known], occluded[known])
    with pytest.raises(ImageError, match="mask"):
        composite(occluded, pred, mask[:, :, :-1])


def test_hole_metrics_known_values_and_skimage():
    target = torch.full((2, 3, 16, 16), 0.2)
    pred = target.clone()
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 4:8, 2:12] = 1
    pred[:, :, 4:8, 2:12] += 0.1  # error 0.1 inside the hole
    pred[:, :, 12:, :] = 1.0  # large errors outside it must not count
    assert torch.allclose(hole_l1(pred, target, mask), torch.full((2,), 0.1))
    assert torch.allclose(hole_psnr(pred, target, mask), torch.full((2,), 20.0))
    assert torch.allclose(hole_mse(pred, target, mask), torch.full((2,), 0.01))
    g = torch.Generator().manual_seed(1)
    noisy = (target + 0.05 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    hole = mask[0, 0].bool()
    expected = peak_signal_noise_ratio(target[0][:, hole].numpy(), noisy[0][:, hole].numpy(), data_range=1.0)
    assert float(hole_psnr(noisy, target, mask)[0]) == pytest.approx(expected, rel=1e-5)
    empty = torch.zeros_like(mask)
    assert torch.equal(hole_l1(pred, target, empty), torch.zeros(2))
    assert bool(torch.isnan(hole_psnr(pred, target, empty)).all())
    # The seed's L1 (mean over the whole image of |pred m - target m|) is hole_l1 times the hole fraction.
    seed_l1 = (pred * mask - target * mask).abs().mean(dim=(1, 2, 3))
    assert torch.allclose(seed_l1, hole_l1(pred, target, mask) * mask.mean(dim=(1, 2, 3)))


def test_mse_ssim_loss_matches_skimage():
    g = torch.Generator().manual_seed(2)
    target = 0.2 + 0.6 * torch.rand(2, 3, 24, 24, generator=g)
    pred = (target + 0.05 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    values, terms = mse_ssim_loss(pred, target, return_terms=True)
    for i in range(2):
        mse = float(((pred[i] - target[i]) ** 2).mean())
        ssim = sk_ssim(pred[i], target[i])
        assert float(terms["mse"][i]) == pytest.approx(mse, rel=1e-5)
        assert float(terms["ssim_loss"][i]) == pytest.approx(1 - ssim, abs=1e-5)
        assert float(values[i]) == pytest.approx(0.8 * mse + 0.2 * (1 - ssim), abs=1e-5)
    assert torch.allclose(mse_ssim_loss(target, target), torch.zeros(2), atol=1e-6)
    assert torch.allclose(MSESSIMLoss(0.5, 0.5)(pred, target), mse_ssim_loss(pred, target, w_mse=0.5, w_ssim=0.5))


def test_completion_loss_known_value_and_gradient_only_in_the_hole():
    g = torch.Generator().manual_seed(3)
    original = 0.2 + 0.6 * torch.rand(2, 3, 24, 24, generator=g)
    occluded, mask = random_occlusion(original, generator=g, box_size=0.4)
    pred = (original + 0.1).requires_grad_(True)
    values, terms = completion_loss(pred, original, occluded, mask, return_terms=True)
    assert torch.allclose(terms["hole_l1"], torch.full((2,), 0.1), atol=1e-6)
    comp = composite(occluded, pred.detach(), mask)
    for i in range(2):
        expected = 0.8 * 0.1 + 0.2 * (1 - sk_ssim(comp[i], original[i]))
        assert float(values[i].detach()) == pytest.approx(expected, abs=1e-5)
    values.sum().backward()
    known = (mask == 0).expand_as(pred)
    assert bool((pred.grad[known] == 0).all()) and bool((pred.grad[~known] != 0).any())
    perfect = completion_loss(original, original, occluded, mask)
    assert torch.allclose(perfect, torch.zeros(2), atol=1e-6)
    assert torch.allclose(CompletionLoss()(pred, original, occluded, mask), values)


# --- training and checkpoints -----------------------------------------------------------------------
TINY = [
    (MRPNet, {"width": 8}, False),
    (Generator, {"width": 8, "upscale": 2}, False),
    (CombinedModel, {"width": 8}, False),
    (PixelRNN, {"width": 8}, False),
    (GatedPixelRNN, {"width": 8}, True),
    (PixelRNN, {"width": 8, "variant": "seed"}, False),
    (GatedPixelRNN, {"width": 8, "variant": "seed"}, True),
]


def _forward(model, x, needs_mask):
    if needs_mask:
        return model(x, (x[:, :1] > 0.5).float())
    return model(x)


@pytest.mark.parametrize("cls, kwargs, needs_mask", TINY)
def test_every_parameter_gets_a_finite_gradient(cls, kwargs, needs_mask):
    torch.manual_seed(0)
    model = cls(**kwargs)
    x = torch.rand(2, 3, 16, 16)
    y = _forward(model, x, needs_mask)
    F.mse_loss(y, torch.rand_like(y)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().sum()) > 0, name


@pytest.mark.parametrize("cls, kwargs, needs_mask", TINY)
def test_arch_round_trip_through_a_checkpoint(cls, kwargs, needs_mask, tmp_path):
    torch.manual_seed(0)
    model = cls(**kwargs)
    _forward(model, torch.rand(2, 3, 16, 16), needs_mask)  # moves BatchNorm running statistics
    arch = model.arch()
    assert arch["class"] == cls.__name__ and json.loads(json.dumps(arch)) == arch
    assert all(arch["kwargs"][k] == v for k, v in kwargs.items())
    save_checkpoint(tmp_path / "m.pt", model=model, arch=arch, extra={"epoch": 1})
    ckpt = load_checkpoint(tmp_path / "m.pt", expected_arch=arch)
    rebuilt = build_model(ckpt, REGISTRY)
    assert type(rebuilt) is cls and rebuilt.arch() == arch
    x = torch.rand(1, 3, 12, 20)
    model.eval(), rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(_forward(model, x, needs_mask), _forward(rebuilt, x, needs_mask))


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = CombinedModel(width=8)
    clean = torch.rand(4, 3, 16, 16)
    noisy = clean + 0.1 * torch.randn_like(clean)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = F.mse_loss(model(noisy), clean)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


# --- the seeds' own architectures (variant="seed") ------------------------------------------------
def _convs(model):
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_seed_gated_pixelrnn_has_the_seeds_layers_and_init():
    torch.manual_seed(0)
    seed, ours = GatedPixelRNN(width=48, variant="seed"), GatedPixelRNN(width=48)
    assert (seed.input_conv.kernel_size, seed.input_conv.padding) == ((7, 7), (3, 3))
    assert (ours.input_conv.kernel_size, ours.input_conv.padding) == ((3, 3), (1, 1))
    assert [type(m) for m in seed.head] == [nn.Conv2d, nn.ReLU, nn.Conv2d]
    first, last = seed.head[0], seed.head[2]
    assert (first.kernel_size, first.out_channels, last.kernel_size, last.out_channels) == ((3, 3), 32, (1, 1), 3)
    assert isinstance(ours.head, nn.Conv2d)
    assert (n_params(seed), n_params(ours)) == (398_291, 377_955)
    for conv in _convs(seed):  # Xavier-uniform: |w| <= sqrt(6 / (fan_in + fan_out)), filling the range; zero bias
        k = conv.kernel_size[0] * conv.kernel_size[1]
        bound = math.sqrt(6.0 / (conv.in_channels * k + conv.out_channels * k))
        assert 0.9 * bound < float(conv.weight.detach().abs().max()) <= bound
        assert bool((conv.bias == 0).all())
    assert all(bool((conv.bias != 0).any()) for conv in _convs(ours))  # torch's default init


def test_seed_gated_pixelrnn_computes_the_seeds_forward_pass():
    """input conv without ReLU, kept as a skip added after every gated layer: x = f*g + h + skip."""
    torch.manual_seed(0)
    net = GatedPixelRNN(width=8, variant="seed").eval()
    image, mask = torch.rand(2, 3, 16, 16), (torch.rand(2, 1, 16, 16) > 0.7).float()

    def by_hand(skip_weight, relu):
        x0 = net.input_conv(torch.cat([image, mask], dim=1))
        x, state = (F.relu(x0) if relu else x0), None
        for layer in net.gated:
            x = layer(x)
            state = net.cell(x, state)
            x = x + state[0] + skip_weight * x0
        return torch.sigmoid(net.head(net.res_blocks(x)))

    with torch.no_grad():
        got = net(image, mask)
        assert torch.allclose(got, by_hand(1.0, relu=False), atol=1e-6)
        assert not torch.allclose(got, by_hand(0.0, relu=False), atol=1e-3)  # the skip matters
        assert not torch.allclose(got, by_hand(1.0, relu=True), atol=1e-3)  # and so does the missing ReLU


def test_seed_pixelrnn_has_a_5x5_first_conv():
    seed, ours = PixelRNN(variant="seed"), PixelRNN()
    assert [c.kernel_size[0] for c in _convs(seed.encoder)] == [5, 3, 3]
    assert [c.kernel_size[0] for c in _convs(ours.encoder)] == [3, 3, 3]
    assert seed.encoder[0].padding == (2, 2) and seed.encoder[0].stride == (2, 2)
    assert (n_params(seed), n_params(ours)) == (6_643_555, 6_640_483)
    assert PixelRNN(width=8, variant="seed")(torch.rand(1, 3, 37, 30)).shape == (1, 3, 37, 30)


@pytest.mark.parametrize("cls", [PixelRNN, GatedPixelRNN])
def test_variant_is_in_arch_only_when_not_default_and_a_bad_one_is_refused(cls):
    assert "variant" not in cls(width=8).arch()["kwargs"]  # checkpoints of before the variants are unchanged
    assert cls(width=8, variant="seed").arch()["kwargs"]["variant"] == "seed"
    with pytest.raises(ValueError, match=r"variant='paper'.*\('default', 'seed'\)"):
        cls(width=8, variant="paper")


def _gaussian_ssim_by_hand(a, b, taps, sigma=1.5):
    """skimage's Gaussian SSIM recipe in float64 for (C, H, W) arrays with a window of ``taps``: scipy's
    Gaussian filter (mode reflect) truncated to ``taps`` taps, population statistics, the mean of the
    map without its border of (taps - 1) // 2 pixels."""
    from scipy.ndimage import gaussian_filter

    radius = (taps - 1) // 2

    def blur(t):
        return np.stack([gaussian_filter(c, sigma, truncate=radius / sigma, mode="reflect") for c in t])

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map[:, radius:-radius, radius:-radius].mean())


def test_seed_loss_ssim_window_changes_the_ssim_term():
    g = torch.Generator().manual_seed(4)
    original = 0.2 + 0.6 * torch.rand(2, 3, 24, 24, generator=g)
    occluded, mask = random_occlusion(original, generator=g, box_size=0.4)
    pred = (original + 0.1 * torch.randn(original.shape, generator=g)).clamp(0, 1)
    comp = composite(occluded, pred, mask)
    _, terms7 = completion_loss(pred, original, occluded, mask, ssim_window=7, return_terms=True)
    for i in range(2):  # skimage fixes its window at 11 taps for sigma 1.5: its recipe, by hand, with 7
        expected = _gaussian_ssim_by_hand(comp[i].double().numpy(), original[i].double().numpy(), taps=7)
        assert float(terms7["ssim_loss"][i]) == pytest.approx(1 - expected, abs=1e-5)
        eleven = _gaussian_ssim_by_hand(comp[i].double().numpy(), original[i].double().numpy(), taps=11)
        assert eleven == pytest.approx(sk_ssim(comp[i], original[i]), abs=1e-6)  # the recipe is skimage's
    _, terms11 = completion_loss(pred, original, occluded, mask, return_terms=True)
    assert not torch.allclose(terms7["ssim_loss"], terms11["ssim_loss"], atol=1e-4)
    assert torch.allclose(CompletionLoss(ssim_window=7)(pred, original, occluded, mask),
                          completion_loss(pred, original, occluded, mask, ssim_window=7))
    assert torch.allclose(MSESSIMLoss(ssim_window=7)(pred, original), mse_ssim_loss(pred, original, ssim_window=7))
    assert not torch.allclose(mse_ssim_loss(pred, original, ssim_window=7), mse_ssim_loss(pred, original), atol=1e-5)


@pytest.mark.parametrize("cls, model_name", [(PixelRNN, "pixelrnn"), (GatedPixelRNN, "gated-pixelrnn")])
def test_seed_variant_checkpoint_round_trip_through_the_restorer(cls, model_name, tmp_path):
    from rlenhance.restore import SupervisedRestorer

    torch.manual_seed(0)
    net = cls(3, width=8, variant="seed").eval()
    spec = SupervisedSpec(model=model_name, task="completion", channels=3, prefill="none", variant="seed")
    path = save_checkpoint(tmp_path / "seed.pt", model=net, arch=net.arch(), extra={"spec": spec})
    restorer = SupervisedRestorer(path, device="cpu", task="completion")
    assert restorer.spec.variant == "seed" and restorer.model.variant == "seed"
    x = torch.rand(1, 3, 24, 24)
    mask = torch.zeros(1, 1, 24, 24)
    with torch.no_grad():
        expected = net(x, mask) if cls is GatedPixelRNN else net(x)
        got = restorer.model(x, mask) if cls is GatedPixelRNN else restorer.model(x)
    assert torch.equal(got, expected)
    # a spec that contradicts the network is refused, naming both variants
    lying = SupervisedSpec(model=model_name, task="completion", channels=3, prefill="none")
    path = save_checkpoint(tmp_path / "lying.pt", model=net, arch=net.arch(), extra={"spec": lying})
    with pytest.raises(CheckpointError, match=r"lying\.pt.*variant 'default'.*variant 'seed'"):
        SupervisedRestorer(path, device="cpu")


def test_supervised_spec_variant_is_required_and_checked(tmp_path):
    from rlenhance.restore import SupervisedRestorer

    old = {"kind": "supervised", "model": "gated-pixelrnn", "task": "completion", "channels": 3, "prefill": "none"}
    with pytest.raises(CheckpointError, match=r"missing key\(s\) \[.*'variant'"):
        SupervisedSpec.from_dict(old)  # an older format
    full = SupervisedSpec(model="gated-pixelrnn", task="completion", channels=3, prefill="none").to_dict()
    assert SupervisedSpec.from_dict({**full, "variant": "seed"}).variant == "seed"
    with pytest.raises(CheckpointError, match=r"variant 'paper'"):
        SupervisedSpec.from_dict({**full, "variant": "paper"})
    seed = SupervisedSpec(model="mrpnet", task="denoise", channels=1, prefill="none", variant="seed")
    net = MRPNet(1, width=4)  # a network without variants: the default only
    path = save_checkpoint(tmp_path / "seed.pt", model=net, arch=net.arch(), extra={"spec": seed})
    with pytest.raises(CheckpointError, match=r"variant 'seed' with a MRPNet of variant 'default'"):
        SupervisedRestorer(path, device="cpu")


# --- the coarse completion U-Net ---------------------------------------------------------------------
def _box(shape, rows, cols):
    mask = torch.zeros(shape[0], 1, *shape[-2:])
    mask[..., rows, cols] = 1
    return mask


def test_completion_unet_starts_as_its_prefill_and_only_changes_the_hole():
    torch.manual_seed(0)
    net = CompletionUNet(width=8, levels=2, scale=2)
    image, mask = torch.rand(2, 3, 30, 26), _box((2, 3, 30, 26), slice(6, 18), slice(5, 15))
    assert torch.equal(net(image, mask), image)  # zero-initialised correction: the pre-fill as it is
    nn.init.normal_(net.head.weight, std=0.1)
    with torch.no_grad():
        out = net(image, mask)
    assert torch.equal(out * (1 - mask), image * (1 - mask))
    assert float((out - image).abs().amax()) > 1e-3  # the hole is corrected
    assert torch.equal(net(torch.cat([image, mask], dim=1)), out)  # the concatenated form
    assert net.features(image, mask).shape == (2, 8, 30, 26)


@pytest.mark.parametrize("size", [(7, 9), (33, 17), (64, 64)])
def test_completion_unet_keeps_any_size(size):
    net = CompletionUNet(width=8, levels=2, scale=4)
    nn.init.normal_(net.head.weight, std=0.1)
    image = torch.rand(1, 3, *size)
    mask = _box(image.shape, slice(1, size[0] // 2 + 1), slice(1, size[1] // 2 + 1))
    assert net(image, mask).shape == image.shape


def test_completion_unet_sees_far_outside_the_hole():
    """A pixel 80 px from the hole's centre changes the prediction there: the context of a large hole."""
    torch.manual_seed(0)
    net = CompletionUNet(width=8, levels=3, scale=4)
    nn.init.normal_(net.head.weight, std=0.1)
    image = torch.rand(1, 3, 128, 128, requires_grad=True)
    mask = _box(image.shape, slice(40, 80), slice(40, 80))
    net(image, mask)[0, :, 60, 60].sum().backward()
    assert float(image.grad[0, :, 60, 120].abs().sum()) > 0  # 60 px right of the centre, 40 px out of the hole
    assert float(image.grad[0, :, 127, 127].abs().sum()) > 0  # the far corner


def test_completion_unet_learns_to_reduce_the_hole_error_and_round_trips(tmp_path):
    torch.manual_seed(0)
    net = CompletionUNet(width=8, levels=2, scale=2)
    target = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(4, 3, 32, 32).contiguous()
    mask = _box(target.shape, slice(8, 24), slice(8, 24))
    prefill = target * (1 - mask) + 0.5 * mask  # a flat grey guess in the hole
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = hole_mse(net(prefill, mask), target, mask).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert float(net.enc[0][0].weight.grad.abs().sum()) > 0  # the first conv learns once the head is not zero
    save_checkpoint(tmp_path / "u.pt", model=net, arch=net.arch(), extra={"epoch": 1})
    rebuilt = build_model(load_checkpoint(tmp_path / "u.pt", expected_arch=net.arch()), REGISTRY)
    assert torch.equal(rebuilt(prefill, mask), net(prefill, mask))


@pytest.mark.parametrize("levels", [1, 3])
def test_a_wider_completion_unet_embeds_a_narrower_one_and_then_learns_with_its_new_planes(levels):
    """widen_from: the wider net computes what the narrower one did (its new planes feed only
    new planes, and the head reads only the old ones), and the new planes get gradients."""
    torch.manual_seed(0)
    narrow = CompletionUNet(width=8, levels=levels, scale=2)
    nn.init.normal_(narrow.head.weight, std=0.1)
    wide = CompletionUNet(width=12, levels=levels, scale=2)
    wide.widen_from(narrow.state_dict(), 8)
    image, mask = torch.rand(2, 3, 24, 32), _box((2, 3, 24, 32), slice(5, 17), slice(6, 20))
    with torch.no_grad():
        assert float((narrow(image, mask) - image).abs().amax()) > 1e-3  # the narrow net does correct the hole
        assert torch.allclose(wide(image, mask), narrow(image, mask), atol=1e-6)
    hole_mse(wide(image, mask), torch.rand(2, 3, 24, 32), mask).mean().backward()
    assert float(wide.head.weight.grad[:, 8:].abs().sum()) > 0  # the head's weights on the new planes learn
    last = dict(wide.named_parameters())[f"dec.{levels - 1}.0.weight"]  # reads [upsampled (12 or 24), skip (12)]
    assert float(last.grad[:, last.shape[1] - 4:].abs().sum()) > 0  # ...and those on the skip's new planes


def test_completion_unet_widening_refuses_what_it_cannot_embed():
    narrow, wide = CompletionUNet(width=4, levels=2, scale=2), CompletionUNet(width=6, levels=2, scale=2)
    assert wide.embeds(narrow.arch())
    assert not narrow.embeds(wide.arch()) and not wide.embeds(wide.arch())  # a wider or the same width
    assert not wide.embeds(CompletionUNet(width=4, levels=3, scale=2).arch())  # another layout
    assert not wide.embeds({"class": "MRPNet", "kwargs": {"width": 4}})
    with pytest.raises(ValueError, match="width 6 is not a narrower width"):
        narrow.widen_from(wide.state_dict(), 6)
    state = narrow.state_dict()
    with pytest.raises(ValueError, match="dec.0.2.weight of shape .* is not that of a width-4"):
        wide.widen_from({**state, "dec.0.2.weight": state["dec.0.2.weight"][:, :3]}, 4)
    with pytest.raises(ValueError, match="parameters are not a CompletionUNet's"):
        wide.widen_from({k: v for k, v in state.items() if k != "head.bias"}, 4)


def test_completion_unet_refuses_bad_inputs_and_arguments():
    net = CompletionUNet(width=4, levels=1, scale=2)
    with pytest.raises(ImageError, match="CompletionUNet"):
        net(torch.rand(1, 1, 16, 16), torch.zeros(1, 1, 16, 16))
    with pytest.raises(ImageError):
        net(torch.rand(1, 3, 16, 16), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ImageError, match="image and mask concatenated"):
        net(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="scale"):
        CompletionUNet(scale=0)
