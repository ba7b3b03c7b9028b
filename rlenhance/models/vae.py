"""RSE-RL's patch VAE: overlapping patches, a latent space invariant to flips and 90-degree
rotations by construction, and a seamless (Hann-window) overlap-add back to the image.

The eight flips and rotations of a square patch form the dihedral group D4. The latent is made
**invariant by construction** and the decoder **equivariant**, by canonicalising each patch first::

    patch x (C, P, P)
      -> g = canonical_orientation(x)        one of the 8 transforms, chosen by a fixed rule
      -> c = d4_transform(x, g) - dc(x)       the canonical, zero-mean patch  (dc: per-channel mean)
      -> (mu, logvar) = encoder(c)            the latent: identical for x and T x, for every T in D4
      -> y = d4_inverse(decoder(z), g) + dc   the decoded patch, back in x's orientation

The rule (:func:`canonical_orientation`) scores each transform ``g`` by ``<w, mean_c(g x)>`` with a
fixed, orientation-sensitive weight map ``w`` (:func:`orientation_weights`) and keeps the highest, so
``z(T x) = z(x)`` and ``decode(T x) = T decode(x)`` hold exactly (ties aside). The per-channel mean (DC)
bypasses the bottleneck: the latent describes structure, not brightness.

Patches: :func:`extract_patches` cuts a (B, C, H, W) batch into P x P patches every S pixels;
:func:`blend_patches` puts them back with a separable Hann window, normalised by the summed weights, so
patches that disagree are cross-faded without seams. :func:`seam_energy` measures what is left at the
patch borders.

Example:
    >>> vae = PatchVAE(channels=3, patch=8, latent_dim=6, hidden=32)
    >>> x = torch.rand(5, 3, 8, 8)
    >>> code = vae.analyse(x)
    >>> bool(torch.allclose(vae.analyse(d4_transform(x, 3)).mu, code.mu, atol=1e-6))
    True
    >>> vae.synthesise(code.mu, code).shape
    torch.Size([5, 3, 8, 8])
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlenhance.errors import ImageError
from rlenhance.models import ArchMixin

__all__ = ["D4_ORDER", "PatchCode", "PatchGrid", "PatchVAE", "blend_patches", "canonical_orientation", "canonicalise",
           "decanonicalise", "d4_inverse", "d4_permutations", "d4_transform", "extract_patches", "hann_window",
           "orientation_weights", "patch_borders", "seam_energy", "vae_loss"]

#: The number of flips and 90-degree rotations of a square (the dihedral group D4).
D4_ORDER = 8
#: Rotations per flip state: ``g`` is ``g % 4`` quarter turns after a left-right flip when ``g >= 4``.
_ROTATIONS = 4
#: Weights of the orientation score's terms: the centroid ``2 m_y + m_x`` decides; the product and
#: cubic terms only break the ties it leaves (patches symmetric about a diagonal or an axis).
_SCORE_TERMS = (2.0, 1.0, 0.125, 0.03125)


# --- D4: flips and quarter turns of square patches ----------------------------------------------
def d4_transform(x: Tensor, g: int) -> Tensor:
    """Transform ``g`` (0..7) of D4 on the last two axes: a left-right flip when ``g >= 4``, then ``g % 4``
    counter-clockwise quarter turns.

    Args:
        x: float (..., P, P) (or (..., H, W): a quarter turn then swaps H and W).
        g: transform index in 0..7 (0 is the identity).

    Returns:
        A tensor like ``x`` (a view where torch makes one).
    """
    _check_group_index(g)
    if g >= _ROTATIONS:
        x = x.flip(-1)
    return torch.rot90(x, g % _ROTATIONS, dims=(-2, -1))


def d4_inverse(x: Tensor, g: int) -> Tensor:
    """The inverse of :func:`d4_transform`: ``d4_inverse(d4_transform(x, g), g) == x``."""
    _check_group_index(g)
    x = torch.rot90(x, -(g % _ROTATIONS), dims=(-2, -1))
    return x.flip(-1) if g >= _ROTATIONS else x


def _check_group_index(g: int) -> None:
    if isinstance(g, bool) or int(g) != g or not 0 <= g < D4_ORDER:
        raise ValueError(f"D4 transform index: expected an integer in 0..{D4_ORDER - 1}, got {g!r}")


def d4_permutations(patch: int, device: torch.device | str | None = None) -> Tensor:
    """Index tables of the 8 transforms on flattened P x P patches: int64 (8, P * P) with
    ``d4_transform(x, g).flatten(-2) == x.flatten(-2)[..., table[g]]``."""
    grid = torch.arange(patch * patch).reshape(patch, patch)
    return torch.stack([d4_transform(grid, g).reshape(-1) for g in range(D4_ORDER)]).to(device)


def _per_patch(x: Tensor, index: Tensor, inverse: bool) -> Tensor:
    """Transform ``index[i]`` (or its inverse) applied to each patch ``x[i]`` of (N, C, P, P): one gather."""
    n, c, p, _ = x.shape
    tables = d4_permutations(p, x.device)
    if inverse:
        tables = tables.argsort(dim=1)
    gather = tables[index].unsqueeze(1).expand(n, c, p * p)
    return x.reshape(n, c, p * p).gather(2, gather).reshape(n, c, p, p)


def orientation_weights(patch: int, *, dtype: torch.dtype = torch.float32,
                        device: torch.device | str | None = None) -> Tensor:
    """The weight map ``w`` (P, P) of the orientation score: ``2 y + x + (x y) / 8 + (y^2 x) / 32``
    on centred coordinates in [-1, 1] (rows y, columns x)."""
    coords = torch.linspace(-1.0, 1.0, patch, dtype=torch.float64)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    a, b, c, d = _SCORE_TERMS
    w = a * y + b * x + c * x * y + d * y * y * x
    return w.to(dtype=dtype, device=device)


def canonical_orientation(patches: Tensor) -> Tensor:
    """The transform that brings each patch to its canonical orientation (see the module docstring).

    Args:
        patches: float (N, C, P, P).

    Returns:
        int64 (N,) in 0..7: ``d4_transform(patches[i], g[i])`` is the canonical patch. The transforms
        of one patch give the same canonical patch (ties aside).
    """
    if patches.dim() != 4 or patches.shape[-1] != patches.shape[-2]:
        raise ImageError(f"canonical_orientation: expected square patches (N, C, P, P), got {tuple(patches.shape)}")
    luma = patches.mean(dim=1)
    luma = luma - luma.mean(dim=(-2, -1), keepdim=True)
    w = orientation_weights(patches.shape[-1], dtype=patches.dtype, device=patches.device)
    # <w, g x> = <g^-1 w, x>: one product scores all 8
    weights = torch.stack([d4_inverse(w, g) for g in range(D4_ORDER)]).reshape(D4_ORDER, -1)
    scores = luma.reshape(luma.shape[0], -1) @ weights.T
    return scores.argmax(dim=1)


def canonicalise(patches: Tensor, orientation: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Patches (N, C, P, P) turned to their canonical orientation, and the transforms used (N,)
    (``orientation``: given transforms instead of :func:`canonical_orientation`'s)."""
    if orientation is None:
        orientation = canonical_orientation(patches)
    return _per_patch(patches, orientation, inverse=False), orientation


def decanonicalise(patches: Tensor, orientation: Tensor) -> Tensor:
    """The inverse of :func:`canonicalise`: patches (N, C, P, P) back in their own orientations."""
    return _per_patch(patches, orientation, inverse=True)


# --- Patches: extraction and seamless blending ---------------------------------------------------
class PatchGrid(NamedTuple):
    """Where the patches of an (H, W) image lie.

    Attributes:
        size: the image's (H, W).
        patch: P, the side of a patch.
        stride: S, the step between patches.
        pad: (top, bottom, left, right) padding applied before cutting.
        rows, cols: patches per column and per row; N = rows * cols, row-major.
    """

    size: tuple[int, int]
    patch: int
    stride: int
    pad: tuple[int, int, int, int]
    rows: int
    cols: int

    @classmethod
    def of(cls, height: int, width: int, patch: int, stride: int) -> PatchGrid:
        """The grid of an (height, width) image: the first patch starts ``stride`` pixels before
        the image (so border pixels are covered as interior ones) and the last ends at or after it."""
        if not (isinstance(patch, int) and isinstance(stride, int) and 1 <= stride <= patch):
            raise ValueError(f"patch grid: expected integers 1 <= stride <= patch, got patch={patch!r}, "
                             f"stride={stride!r}")
        pads = []
        counts = []
        for n in (height, width):
            before = stride if stride < patch else 0
            span = n + before
            count = max(1, math.ceil((span + (before if stride < patch else 0) - patch) / stride) + 1)
            after = (count - 1) * stride + patch - span
            pads.append((before, after))
            counts.append(count)
        return cls((height, width), patch, stride, (pads[0][0], pads[0][1], pads[1][0], pads[1][1]),
                   counts[0], counts[1])

    @property
    def count(self) -> int:
        return self.rows * self.cols


def _pad(images: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """Reflect padding (replicate where the image is too small to reflect)."""
    top, bottom, left, right = pad
    h, w = images.shape[-2:]
    mode = "reflect" if max(top, bottom) < h and max(left, right) < w else "replicate"
    return F.pad(images, (left, right, top, bottom), mode=mode)


def extract_patches(images: Tensor, patch: int, stride: int) -> tuple[Tensor, PatchGrid]:
    """Cut a batch of images into overlapping square patches.

    Args:
        images: float (B, C, H, W).
        patch: P, the patch side.
        stride: S in 1..P, the step between patches (S = P / 2 makes the Hann windows sum to one).

    Returns:
        ``(patches, grid)``: float (B, N, C, P, P) in the grid's row-major order, and the
        :class:`PatchGrid` that :func:`blend_patches` needs.
    """
    if images.dim() != 4:
        raise ImageError(f"extract_patches: expected images (B, C, H, W), got {tuple(images.shape)}")
    b, c, h, w = images.shape
    grid = PatchGrid.of(h, w, patch, stride)
    cols = F.unfold(_pad(images, grid.pad), kernel_size=patch, stride=stride)  # (B, C*P*P, N)
    patches = cols.transpose(1, 2).reshape(b, grid.count, c, patch, patch)
    return patches, grid


def hann_window(patch: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """The separable blending window (P, P): ``sin^2(pi (n + 1/2) / P)`` along each axis, > 0 everywhere."""
    n = torch.arange(patch, dtype=torch.float64)
    w1 = torch.sin(math.pi * (n + 0.5) / patch) ** 2
    return torch.outer(w1, w1).to(dtype=dtype, device=device)


def blend_patches(patches: Tensor, grid: PatchGrid, *, window: str = "hann") -> Tensor:
    """Overlap-add patches back into images, weighted by ``window`` and normalised.

    Args:
        patches: float (B, N, C, P, P) on ``grid``.
        grid: from :func:`extract_patches`.
        window: ``"hann"`` (seamless) or ``"box"`` (plain averaging).

    Returns:
        float (B, C, H, W). ``blend_patches(*extract_patches(x, P, S)) == x``.
    """
    b, n, c, p, _ = patches.shape
    if n != grid.count or p != grid.patch:
        raise ImageError(f"blend_patches: {n} patches of side {p}, but the grid has {grid.count} of side {grid.patch}")
    if window == "hann":
        weight = hann_window(p, dtype=patches.dtype, device=patches.device)
    elif window == "box":
        weight = torch.ones(p, p, dtype=patches.dtype, device=patches.device)
    else:
        raise ValueError(f"blend_patches: window must be 'hann' or 'box', got {window!r}")
    top, bottom, left, right = grid.pad
    h, w = grid.size
    out_size = (h + top + bottom, w + left + right)
    cols = (patches * weight).reshape(b, n, c * p * p).transpose(1, 2)
    total = F.fold(cols, out_size, kernel_size=p, stride=grid.stride)
    norm = F.fold(weight.reshape(1, p * p, 1).expand(1, p * p, n), out_size, kernel_size=p, stride=grid.stride)
    return (total / norm)[..., top:top + h, left:left + w]


def patch_borders(length: int, patch: int, stride: int) -> list[int]:
    """The positions ``p`` in 1..length-1 with a patch border between pixels ``p - 1`` and ``p``
    (a patch of :class:`PatchGrid` starts at ``p`` or ends at ``p - 1``), along one axis."""
    grid = PatchGrid.of(length, length, patch, stride)
    starts = [-grid.pad[0] + k * stride for k in range(grid.rows)]
    edges = set(starts) | {s + patch for s in starts}
    return sorted(p for p in edges if 0 < p < length)


def seam_energy(images: Tensor, patch: int, stride: int, reference: Tensor | None = None) -> Tensor:
    """Per-pixel gradient energy across the grid's patch borders, beyond the reference's: the de-blocking penalty.

    At border row (column) ``p`` (:func:`patch_borders`) the map holds ``relu(d^2 - d_ref^2)`` averaged over
    channels, ``d`` the difference across the border (``d_ref`` in ``reference``, 0 without one); else 0.

    Args:
        images: float (B, C, H, W).
        patch, stride: the patch grid (:func:`extract_patches`).
        reference: float (B, C, H, W) or None (e.g. the clean image: its own edges are not seams).

    Returns:
        float (B, 1, H, W), >= 0.
    """
    def across(x: Tensor, dim: int) -> Tensor:
        d = torch.zeros_like(x)
        index = torch.tensor(patch_borders(x.shape[dim], patch, stride), dtype=torch.long, device=x.device)
        if index.numel():
            diff = x.index_select(dim, index) - x.index_select(dim, index - 1)
            d.index_copy_(dim, index, diff)
        return d.square()

    energy = []
    for dim in (-2, -1):
        e = across(images, dim)
        if reference is not None:
            e = (e - across(reference, dim)).clamp_min(0.0)
        energy.append(e.mean(dim=1, keepdim=True))
    return energy[0] + energy[1]


# --- The VAE ------------------------------------------------------------------------------------
class PatchCode(NamedTuple):
    """What :meth:`PatchVAE.analyse` returns for N patches.

    Attributes:
        mu, logvar: float (N, latent_dim): the posterior of the canonical patch (invariant).
        orientation: int64 (N,), the D4 transform that made the patch canonical.
        dc: float (N, C, 1, 1), the per-channel mean that bypasses the latent.
    """

    mu: Tensor
    logvar: Tensor
    orientation: Tensor
    dc: Tensor


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class PatchVAE(ArchMixin, nn.Module):
    """A VAE over P x P patches of C channels with a D4-invariant latent (see the module docstring).

    Encoder and decoder are MLPs (SiLU) over the flattened canonical, zero-mean patch.

    Args:
        channels: C, 3 (RGB) or 1 (gray).
        patch: P, the patch side.
        latent_dim: size of the latent.
        hidden: units of each hidden layer.
        depth: hidden layers of the encoder and of the decoder, >= 1.
        logvar_bounds: clamp of the posterior log-variance.

    Shape:
        :meth:`analyse` takes float (N, C, P, P); :meth:`synthesise` returns the same.
    """

    def __init__(self, channels: int = 3, patch: int = 16, latent_dim: int = 64, hidden: int = 512, depth: int = 2,
                 logvar_bounds: tuple[float, float] = (-12.0, 4.0)):
        super().__init__()
        for name, value in (("channels", channels), ("patch", patch), ("latent_dim", latent_dim),
                            ("hidden", hidden), ("depth", depth)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"PatchVAE: {name}={value!r}; expected an integer >= 1")
        lo, hi = (float(v) for v in logvar_bounds)
        if not lo < hi:
            raise ValueError(f"PatchVAE: logvar_bounds={logvar_bounds!r}; expected min < max")
        self._kwargs = dict(channels=int(channels), patch=int(patch), latent_dim=int(latent_dim), hidden=int(hidden),
                            depth=int(depth), logvar_bounds=[lo, hi])
        self.channels, self.patch, self.latent_dim = int(channels), int(patch), int(latent_dim)
        self.logvar_bounds = (lo, hi)
        dim = self.channels * self.patch * self.patch
        self.encoder = _mlp([dim] + [int(hidden)] * int(depth) + [2 * self.latent_dim])
        self.decoder = _mlp([self.latent_dim] + [int(hidden)] * int(depth) + [dim])

    def _check(self, patches: Tensor) -> None:
        expected = (self.channels, self.patch, self.patch)
        if patches.dim() != 4 or tuple(patches.shape[1:]) != expected:
            raise ImageError(f"PatchVAE: expected patches (N, {self.channels}, {self.patch}, {self.patch}), got "
                             f"{tuple(patches.shape)}")

    def encode(self, canonical: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior ``(mu, logvar)`` (N, latent_dim) of canonical zero-mean patches (N, C, P, P)."""
        mu, logvar = self.encoder(canonical.reshape(canonical.shape[0], -1)).chunk(2, dim=1)
        return mu, logvar.clamp(*self.logvar_bounds)

    def decode(self, z: Tensor) -> Tensor:
        """Canonical zero-mean patches (N, C, P, P) of latents (N, latent_dim)."""
        return self.decoder(z).reshape(z.shape[0], self.channels, self.patch, self.patch)

    def analyse(self, patches: Tensor, orientation: Tensor | None = None) -> PatchCode:
        """Canonicalise and encode patches.

        Args:
            patches: float (N, C, P, P).
            orientation: int64 (N,) transforms to use instead of the canonical ones; None: canonical.
        """
        self._check(patches)
        if orientation is None:
            orientation = canonical_orientation(patches)
        dc = patches.mean(dim=(-2, -1), keepdim=True)
        canonical, orientation = canonicalise(patches - dc, orientation)
        mu, logvar = self.encode(canonical)
        return PatchCode(mu, logvar, orientation, dc)

    def synthesise(self, z: Tensor, code: PatchCode) -> Tensor:
        """Decode latents (N, latent_dim) into patches in the orientation and with the DC of ``code``."""
        return decanonicalise(self.decode(z), code.orientation) + code.dc

    def forward(self, patches: Tensor) -> Tensor:
        """The deterministic reconstruction (z = mu) of patches (N, C, P, P)."""
        code = self.analyse(patches)
        return self.synthesise(code.mu, code)


def vae_loss(vae: PatchVAE, inputs: Tensor, targets: Tensor, *, beta: float, align: float,
             generator: torch.Generator | None = None, noise: tuple[Tensor, Tensor] | None = None) -> dict[str, Tensor]:
    """The patch VAE's training loss on (degraded input, clean target) patch pairs.

    Three terms, each a mean over patches of a sum over the patch's values (or latent units)::

        recon  = |decode(z_in) - clean|^2 + |decode(z_clean) - clean|^2     z ~ q(z | x), reparameterised
        kl     = KL(q(z | input) || N(0, I)) + KL(q(z | clean) || N(0, I))
        align  = |mu(input) - mu(clean in the input's orientation)|^2
        loss   = recon + beta * kl + align * align_term

    The input is decoded into the clean patch and the clean patch into itself.

    Args:
        vae: the model.
        inputs, targets: float (N, C, P, P): degraded patches and their clean versions.
        beta: KL weight, >= 0.
        align: weight of the latent alignment, >= 0.
        generator: source of the reparameterisation noise.
        noise: that noise given instead: standard normals (N, latent_dim) for the input's, then the clean's.

    Returns:
        dict of scalar tensors: ``loss`` (differentiable), ``recon``, ``kl``, ``align``, ``mse`` (the
        per-value squared error of the input's reconstruction).
    """
    code_in = vae.analyse(inputs)
    code_clean = vae.analyse(targets)
    mu_clean_aligned = vae.encode(canonicalise(targets - targets.mean(dim=(-2, -1), keepdim=True),
                                               code_in.orientation)[0])[0]

    def sample(code: PatchCode, eps: Tensor | None) -> Tensor:
        if eps is None:
            eps = torch.randn(code.mu.shape, generator=generator, device=code.mu.device, dtype=code.mu.dtype)
        return code.mu + eps * (0.5 * code.logvar).exp()

    def kl(code: PatchCode) -> Tensor:
        return 0.5 * (code.mu.square() + code.logvar.exp() - 1.0 - code.logvar).sum(dim=1).mean()

    eps_in, eps_clean = noise if noise is not None else (None, None)
    out_in = vae.synthesise(sample(code_in, eps_in), code_in)
    out_clean = vae.synthesise(sample(code_clean, eps_clean), code_clean)
    sse_in = (out_in - targets).square().flatten(1).sum(dim=1).mean()
    sse_clean = (out_clean - targets).square().flatten(1).sum(dim=1).mean()
    recon = sse_in + sse_clean
    kl_term = kl(code_in) + kl(code_clean)
    align_term = (code_in.mu - mu_clean_aligned).square().sum(dim=1).mean()
    loss = recon + beta * kl_term + align * align_term
    return {"loss": loss, "recon": recon.detach(), "kl": kl_term.detach(), "align": align_term.detach(),
            "mse": sse_in.detach() / targets[0].numel()}
