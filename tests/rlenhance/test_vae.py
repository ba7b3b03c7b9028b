"""rlenhance.models.vae: D4 transforms, the invariant latent (to ~1e-6 for all 8 transforms), the
equivariant decoder, patch extraction and seamless blending, the seam penalty, the VAE loss."""

from __future__ import annotations

import pytest
import torch

from rlenhance.errors import ImageError
from rlenhance.models.vae import (
    D4_ORDER,
    PatchVAE,
    blend_patches,
    canonical_orientation,
    canonicalise,
    d4_inverse,
    d4_permutations,
    d4_transform,
    decanonicalise,
    extract_patches,
    hann_window,
    patch_borders,
    seam_energy,
    vae_loss,
)

TOL = 1e-5


def small_vae(channels=3, patch=8):
    torch.manual_seed(0)
    return PatchVAE(channels=channels, patch=patch, latent_dim=6, hidden=32).eval()


def test_d4_is_a_group_of_eight_distinct_transforms_with_inverses():
    x = torch.arange(16.0).reshape(1, 4, 4)
    images = [d4_transform(x, g) for g in range(D4_ORDER)]
    assert len({tuple(im.flatten().tolist()) for im in images}) == D4_ORDER
    for g in range(D4_ORDER):
        assert torch.equal(d4_inverse(d4_transform(x, g), g), x)
        for h in range(D4_ORDER):  # closure: a composition is again one of the eight
            composed = d4_transform(d4_transform(x, g), h)
            assert any(torch.equal(composed, im) for im in images)
    with pytest.raises(ValueError, match="0..7"):
        d4_transform(x, 8)


def test_permutation_tables_match_the_transforms_and_the_batched_helpers():
    x = torch.randn(9, 2, 5, 5)
    tables = d4_permutations(5)
    orientation = torch.arange(9) % D4_ORDER
    canonical, used = canonicalise(x, orientation)
    for i in range(9):
        g = int(orientation[i])
        assert torch.equal(d4_transform(x[i], g).flatten(-2), x[i].flatten(-2)[..., tables[g]])
        assert torch.equal(canonical[i], d4_transform(x[i], g))
    assert torch.equal(used, orientation) and torch.equal(decanonicalise(canonical, orientation), x)


def test_canonical_patch_is_the_same_for_all_eight_transforms():
    x = torch.randn(64, 3, 8, 8)
    reference, _ = canonicalise(x)
    for g in range(D4_ORDER):
        transformed, _ = canonicalise(d4_transform(x, g))
        assert torch.equal(transformed, reference), g


def test_latent_is_invariant_and_decoder_equivariant_numerically():
    vae = small_vae()
    x = torch.rand(128, 3, 8, 8)
    with torch.no_grad():
        code = vae.analyse(x)
        out = vae(x)
        for g in range(D4_ORDER):
            moved = vae.analyse(d4_transform(x, g))
            assert (moved.mu - code.mu).abs().max() < TOL, g                   # z(T x) = z(x)
            assert (moved.logvar - code.logvar).abs().max() < TOL, g
            assert (vae(d4_transform(x, g)) - d4_transform(out, g)).abs().max() < TOL, g   # D(T x) = T D(x)


def test_the_orientation_rule_follows_the_low_frequency_structure_under_noise():
    """A noisy ramp mostly keeps its clean version's orientation (what makes noisy and clean latents
    comparable)."""
    ramp = torch.linspace(0, 1, 16).view(1, 1, 16).expand(200, 3, 16, 16)
    ramp = torch.stack([d4_transform(r, i % D4_ORDER) for i, r in enumerate(ramp)])
    noisy = ramp + 0.1 * torch.randn(ramp.shape, generator=torch.Generator().manual_seed(0))
    clean_canonical, _ = canonicalise(ramp)
    turned_by_noisy, _ = canonicalise(ramp, canonical_orientation(noisy))  # the clean ramp in the noisy one's frame
    agree = (turned_by_noisy - clean_canonical).flatten(1).abs().amax(dim=1).lt(1e-6).float().mean()
    assert agree > 0.9


@pytest.mark.parametrize("patch,stride", [(16, 8), (16, 12), (8, 8), (8, 3)])
def test_extract_then_blend_gives_the_image_back(patch, stride):
    x = torch.rand(2, 3, 37, 29)
    patches, grid = extract_patches(x, patch, stride)
    assert patches.shape == (2, grid.rows * grid.cols, 3, patch, patch)
    assert torch.allclose(blend_patches(patches, grid), x, atol=1e-6)
    assert torch.allclose(blend_patches(patches, grid, window="box"), x, atol=1e-6)


def test_hann_windows_at_half_overlap_sum_to_one():
    patch = 8
    w = hann_window(patch)
    assert float(w.min()) > 0
    total = w[:, :patch // 2] + w[:, patch // 2:]  # two windows half a patch apart, along one axis
    total = total[:patch // 2] + total[patch // 2:]
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)


def test_hann_blending_leaves_no_seams_where_box_blending_does():
    """Patches that disagree (each shifted by its own offset) are cross-faded by the Hann window;
    plain averaging leaves steps at the patch borders."""
    x = torch.full((1, 3, 64, 64), 0.5)
    patches, grid = extract_patches(x, 16, 8)
    offsets = torch.rand(patches.shape[:2], generator=torch.Generator().manual_seed(0))
    shifted = patches + 0.2 * offsets[..., None, None, None]
    hann = seam_energy(blend_patches(shifted, grid), 16, 8)
    box = seam_energy(blend_patches(shifted, grid, window="box"), 16, 8)
    assert float(box.mean()) > 20 * float(hann.mean())


def test_seam_energy_counts_only_borders_and_excess_over_the_reference():
    assert patch_borders(32, 16, 8) == [8, 16, 24]
    x = torch.zeros(1, 1, 32, 32)
    x[..., 16:] = 1.0  # a step at the border between columns 15 and 16
    energy = seam_energy(x, 16, 8)
    assert float(energy[..., :, 16].min()) == 1.0 and float(energy.sum()) == 32.0
    assert float(seam_energy(x, 16, 8, reference=x).abs().max()) == 0.0
    y = torch.zeros(1, 1, 32, 32)
    y[..., 13:] = 1.0  # a step inside a patch is no seam
    assert float(seam_energy(y, 16, 8).sum()) == 0.0


def test_vae_loss_trains_toward_clean_patches():
    vae = small_vae(channels=1)
    torch.manual_seed(1)
    clean = torch.linspace(0, 1, 8).view(1, 1, 1, 8).expand(64, 1, 8, 8).contiguous()
    clean = torch.stack([d4_transform(c, i % D4_ORDER) for i, c in enumerate(clean)])
    noisy = clean + 0.1 * torch.randn(clean.shape)
    optimizer = torch.optim.Adam(vae.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        losses = vae_loss(vae, noisy, clean, beta=1e-3, align=1.0, generator=torch.Generator().manual_seed(0))
        first = first if first is not None else float(losses["mse"])
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    assert float(losses["mse"]) < 0.3 * first
    assert set(losses) == {"loss", "recon", "kl", "align", "mse"}


def test_bad_inputs_raise_named_errors():
    vae = small_vae()
    with pytest.raises(ImageError, match="patches"):
        vae.analyse(torch.rand(2, 3, 8, 9))
    with pytest.raises(ImageError, match="square"):
        canonical_orientation(torch.rand(2, 3, 8, 9))
    with pytest.raises(ValueError, match="stride"):
        extract_patches(torch.rand(1, 3, 16, 16), 8, 9)
    with pytest.raises(ValueError, match="latent_dim"):
        PatchVAE(latent_dim=0)
    patches, grid = extract_patches(torch.rand(1, 3, 16, 16), 8, 4)
    with pytest.raises(ValueError, match="window"):
        blend_patches(patches, grid, window="gauss")


def test_arch_round_trip():
    vae = small_vae()
    again = PatchVAE(**vae.arch()["kwargs"])
    assert again.arch() == vae.arch() and sum(p.numel() for p in again.parameters()) == sum(
        p.numel() for p in vae.parameters())
