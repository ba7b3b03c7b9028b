"""RSE-RL at inference: latent clustering, the per-pixel blend the agent controls, and the
recursive self-enhancement rounds, in one module that a trained checkpoint rebuilds.

One **round** (:class:`RSERound`) turns an image into a better one:

1. the image is cut into overlapping patches and encoded by the round's
   :class:`~rlenhance.models.vae.PatchVAE`;
2. **candidates**: each patch is decoded from its own latent and from the mean latent of its
   ``neighbours`` nearest *clean* latents (:class:`LatentBank`), both blended back with Hann windows;
3. the round's per-pixel SAC policy looks at the image and its candidates and picks, at every pixel,
   numbers in [-1, 1] that :func:`rse_blend` turns into the new pixel.

A round built with ``predicted=True`` has a third candidate, a supervised denoiser's output
(:meth:`RSEDenoiser.attach_predictor`; not part of the weights), and a third action.
:class:`RSEDenoiser` chains rounds (recursive self-enhancement); :func:`rlenhance.rse.load_rse` rebuilds
a trained one from a checkpoint of ``experiments.rse_train``.

Example:
    >>> torch.manual_seed(0) is not None
    True
    >>> model = RSEDenoiser(channels=3, patch=8, stride=4, latent_dim=4, hidden=16, bank_size=32, clusters=4,
    ...                     neighbours=2, width=8, max_rounds=2)
    >>> model(torch.rand(1, 3, 20, 24), rounds=2).shape
    torch.Size([1, 3, 20, 24])
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rlenhance.errors import ImageError
from rlenhance.models import MODELS, ArchMixin
from rlenhance.models.policy import PixelActorCritic
from rlenhance.models.vae import PatchVAE, blend_patches, extract_patches

#: A round's predictor: a supervised denoiser, ``(B, C, H, W) images -> (B, C, H, W) prediction``.
Predictor = Callable[[Tensor], Tensor]

__all__ = ["ACTION_MAPS", "BLEND_ACTIONS", "SOURCES", "LatentBank", "RSEBlend", "RSEDenoiser", "RSERound",
           "dominant_source", "rse_blend"]

#: The per-pixel actions of a round: (index, name, meaning at -1 .. +1); the third only with a predictor.
BLEND_ACTIONS = (
    (0, "strength", "keep the pixel .. move it all the way to the target"),
    (1, "mix", "target = the VAE's reconstruction .. the decoded clean-neighbour mean"),
    (2, "predict", "target = that mix .. the predictor's output (rounds with a predictor only)"),
)
#: Where the new pixel of a blend comes from (:func:`dominant_source`).
SOURCES = ("keep", "vae", "neighbours", "predict")
#: Action maps per pixel (shared by the colour channels), without a predictor: one per candidate.
ACTION_MAPS = 2
#: Candidate images a round computes without a predictor (``CANDIDATES + 1`` with one).
CANDIDATES = 2
#: Patches per VAE call when a round processes whole images (bounds memory).
PATCH_CHUNK = 8192
#: Queries per distance-matrix block in the neighbour search (bounds memory).
QUERY_CHUNK = 2048
#: A predicted round's untrained policy starts with the Gaussian means of "strength" and "predict" here,
#: i.e. near the prediction.
PREDICT_START = 3.0


# --- The transition the agent controls --------------------------------------------------------
def rse_blend(image: Tensor, candidates: Tensor, actions: Tensor) -> Tensor:
    """Move every pixel toward a mix of its candidates, by amounts the per-pixel actions set.

    With ``t = (a_0 + 1) / 2``, ``m = (a_1 + 1) / 2`` and, with a predictor's candidate,
    ``p = (a_2 + 1) / 2`` (all in [0, 1])::

        target = (1 - m) * vae + m * neighbours
        target = (1 - p) * target + p * prediction      (with a predictor)
        out    = image + t * (target - image)

    so ``a_0 = -1`` keeps the pixel (the identity action) and ``a_0 = 1`` replaces it by the target.

    Args:
        image: float (B, C, H, W), the current estimate.
        candidates: float (B, nC, H, W), n = 2 or 3 (:meth:`RSERound.candidates`).
        actions: float (B, n, H, W) in [-1, 1] (n numbers per pixel, shared by the channels).

    Returns:
        float (B, C, H, W).
    """
    c, n = image.shape[1], actions.shape[1]
    if n not in (CANDIDATES, CANDIDATES + 1) or candidates.shape[1] != n * c \
            or candidates.shape[-2:] != image.shape[-2:] or actions.shape[-2:] != image.shape[-2:]:
        raise ImageError(f"rse_blend: image {tuple(image.shape)}, candidates {tuple(candidates.shape)} and actions "
                         f"{tuple(actions.shape)}; expected (B, C, H, W), (B, nC, H, W) and (B, n, H, W) with n "
                         f"{CANDIDATES} or, with a predictor, {CANDIDATES + 1}")
    weights = ((actions + 1.0) * 0.5).clamp(0.0, 1.0).split(1, dim=1)
    parts = candidates.split(c, dim=1)
    target = torch.lerp(parts[0], parts[1], weights[1])
    if n > CANDIDATES:
        target = torch.lerp(target, parts[2], weights[2])
    return torch.lerp(image, target, weights[0])


def dominant_source(actions: Tensor) -> Tensor:
    """The source of most of each new pixel of :func:`rse_blend` (an index of :data:`SOURCES`).

    Args:
        actions: float (B, n, H, W) in [-1, 1], n = 2 or 3.

    Returns:
        int64 (B, 1, H, W).
    """
    weights = ((actions + 1.0) * 0.5).clamp(0.0, 1.0)
    t, m = weights[:, 0:1], weights[:, 1:2]
    p = weights[:, 2:3] if actions.shape[1] > CANDIDATES else torch.zeros_like(t)
    shares = [1.0 - t, t * (1.0 - m) * (1.0 - p), t * m * (1.0 - p)] + ([t * p] if actions.shape[1] > CANDIDATES
                                                                         else [])
    return torch.cat(shares, dim=1).argmax(dim=1, keepdim=True)


class RSEBlend(nn.Module):
    """Module form of :func:`rse_blend` (no parameters)."""

    def forward(self, image: Tensor, candidates: Tensor, actions: Tensor) -> Tensor:
        return rse_blend(image, candidates, actions)


# --- Latent clustering ---------------------------------------------------------------------------
class LatentBank(nn.Module):
    """Clean patch latents grouped by k-means, and the nearest-clean-neighbour search.

    Buffers (saved with the model): ``latents`` (N, L), the posterior means of N clean patches;
    ``centres`` (K, L), the k-means centres; ``assignment`` (N,), each latent's cluster. A query is
    searched in its ``probe`` nearest clusters only (:meth:`neighbours`).

    Args:
        size: N, latents held.
        clusters: K, k-means clusters (<= N).
        latent_dim: L.
        probe: clusters searched per query, >= 1.
    """

    def __init__(self, size: int, clusters: int, latent_dim: int, probe: int = 2):
        super().__init__()
        for name, value in (("size", size), ("clusters", clusters), ("latent_dim", latent_dim), ("probe", probe)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"LatentBank: {name}={value!r}; expected an integer >= 1")
        if clusters > size:
            raise ValueError(f"LatentBank: clusters={clusters} > size={size}; expected at most one cluster per latent")
        self.probe = min(int(probe), int(clusters))
        self.register_buffer("latents", torch.zeros(int(size), int(latent_dim)))
        self.register_buffer("centres", torch.zeros(int(clusters), int(latent_dim)))
        self.register_buffer("assignment", torch.zeros(int(size), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.latents.shape[0]

    @property
    def clusters(self) -> int:
        return self.centres.shape[0]

    @torch.no_grad()
    def fit(self, latents: Tensor, *, seed: int = 0, iterations: int = 20) -> None:
        """Hold ``latents`` (N, L) and cluster them with k-means (``scipy.cluster.vq.kmeans2``,
        k-means++ start from ``seed``). Empty clusters keep their centre and receive no latent."""
        from scipy.cluster.vq import kmeans2  # scipy is slow to import; only training needs it

        if tuple(latents.shape) != tuple(self.latents.shape):
            raise ValueError(f"LatentBank.fit: expected latents {tuple(self.latents.shape)}, "
                             f"got {tuple(latents.shape)}")
        if not bool(torch.isfinite(latents).all()):
            raise ValueError("LatentBank.fit: latents hold NaN or infinite values")
        data = latents.detach().double().cpu().numpy()
        with warnings.catch_warnings():  # an empty cluster is handled by the search, not an error
            warnings.simplefilter("ignore", UserWarning)
            centres, _ = kmeans2(data, self.clusters, iter=int(iterations), minit="++",
                                 seed=np.random.default_rng(int(seed)))
        self.latents.copy_(latents)
        self.centres.copy_(torch.as_tensor(centres, dtype=self.centres.dtype))
        self.assignment.copy_(self.nearest_cluster(self.latents))

    def nearest_cluster(self, queries: Tensor) -> Tensor:
        """The cluster (int64 (Q,)) of each query latent (Q, L)."""
        return torch.cdist(queries, self.centres).argmin(dim=1)

    def cluster_sizes(self) -> Tensor:
        """Latents per cluster, int64 (K,)."""
        return torch.bincount(self.assignment, minlength=self.clusters)

    @torch.no_grad()
    def neighbours(self, queries: Tensor, k: int) -> Tensor:
        """Indices (Q, k) into ``latents`` of each query's ``k`` nearest clean latents, nearest first.

        A query is searched in its nearest cluster and the ``probe - 1`` clusters nearest to it (the whole
        bank when these hold fewer than ``k``).
        """
        k = min(int(k), self.size)
        out = torch.zeros(queries.shape[0], k, dtype=torch.long, device=queries.device)
        if queries.shape[0] == 0:
            return out
        cell = self.nearest_cluster(queries)
        cells = torch.cdist(self.centres, self.centres).topk(self.probe, dim=1, largest=False).indices  # (K, probe)
        everything = torch.arange(self.size, device=queries.device)
        for c in cell.unique().tolist():
            rows = (cell == c).nonzero().view(-1)
            members = (self.assignment[None, :] == cells[c][:, None]).any(dim=0).nonzero().view(-1)
            if members.numel() < k:
                members = everything
            for part in rows.split(QUERY_CHUNK):
                d = torch.cdist(queries[part], self.latents[members])
                out[part] = members[d.topk(k, dim=1, largest=False).indices]
        return out


# --- One round and the recursion ---------------------------------------------------------------
class RSERound(nn.Module):
    """One self-enhancement round: patch VAE, clean-latent bank and the per-pixel blend policy.

    Args:
        channels: image channels C (3 RGB, 1 gray).
        patch, stride: the patch grid.
        latent_dim, hidden, depth: the :class:`PatchVAE`.
        bank_size, clusters, probe: the :class:`LatentBank`.
        neighbours: clean latents averaged into the neighbour candidate.
        width: channels of the policy network.
        policy_kwargs: further :class:`PixelActorCritic` arguments (dilations, downscale ...).
        predicted: a third candidate, the output of the round's :attr:`predictor`, and a third action.

    Attributes:
        predictor: the :data:`Predictor` of a ``predicted`` round (None until set).
        n_candidates: candidates (and action maps) per pixel: 2, or 3 with ``predicted``.
    """

    def __init__(self, channels: int = 3, patch: int = 16, stride: int = 8, latent_dim: int = 64, hidden: int = 512,
                 depth: int = 2, bank_size: int = 4096, clusters: int = 32, probe: int = 2, neighbours: int = 8,
                 width: int = 16, policy_kwargs: dict[str, Any] | None = None, predicted: bool = False):
        super().__init__()
        if isinstance(stride, bool) or int(stride) != stride or not 1 <= stride <= patch:
            raise ValueError(f"RSERound: stride={stride!r}; expected an integer in 1..patch ({patch})")
        if isinstance(neighbours, bool) or int(neighbours) != neighbours or not 1 <= neighbours <= bank_size:
            raise ValueError(f"RSERound: neighbours={neighbours!r}; expected an integer in 1..bank_size ({bank_size})")
        self.channels, self.patch, self.stride, self.k = int(channels), int(patch), int(stride), int(neighbours)
        self.n_candidates = CANDIDATES + bool(predicted)
        self.predictor: Predictor | None = None
        self.vae = PatchVAE(channels, patch, latent_dim, hidden, depth)
        self.bank = LatentBank(bank_size, clusters, latent_dim, probe)
        self.policy = PixelActorCritic(in_channels=(1 + self.n_candidates) * self.channels,
                                       out_channels=self.n_candidates, n_actions=None, width=width, bounded_mean=False,
                                       **dict(policy_kwargs or {}))
        if predicted:  # start at the predictor (PREDICT_START): the head's outputs are (mean, log_std) per map
            with torch.no_grad():
                self.policy.policy_head.bias.view(self.n_candidates, 2)[[0, 2], 0] = PREDICT_START

    @torch.no_grad()
    def candidates(self, images: Tensor) -> Tensor:
        """The two candidate images of a batch (no gradients).

        Args:
            images: float (B, C, H, W), the current estimates (unclipped values allowed).

        Returns:
            float (B, nC, H, W): the VAE reconstruction, the clean-neighbour candidate and, in a
            ``predicted`` round, the :attr:`predictor`'s output.

        Raises:
            ImageError: images of another shape. RuntimeError: a ``predicted`` round without its
            predictor.
        """
        if images.dim() != 4 or images.shape[1] != self.channels:
            raise ImageError(f"RSERound: expected images (B, {self.channels}, H, W) of {self.channels} channel(s), "
                             f"got {tuple(images.shape)}")
        if self.n_candidates > CANDIDATES and self.predictor is None:
            raise RuntimeError("RSERound: a round trained with a predictor (rse_train --predictor) needs it back: "
                               "load the model with rlenhance.rse.load_rse, or attach_predictor(...)")
        patches, grid = extract_patches(images, self.patch, self.stride)
        flat = patches.reshape(-1, *patches.shape[2:])
        own, near = [], []
        for part in flat.split(PATCH_CHUNK):
            code = self.vae.analyse(part)
            own.append(self.vae.synthesise(code.mu, code))
            index = self.bank.neighbours(code.mu, self.k)
            near.append(self.vae.synthesise(self.bank.latents[index].mean(dim=1), code))
        shape = patches.shape
        predicted = (self.predictor(images).to(images.dtype),) if self.n_candidates > CANDIDATES else ()
        return torch.cat([blend_patches(torch.cat(own).reshape(shape), grid),
                          blend_patches(torch.cat(near).reshape(shape), grid), *predicted], dim=1)

    @staticmethod
    def policy_input(images: Tensor, candidates: Tensor) -> Tensor:
        """What the policy sees: the image then its candidates, float (B, (1 + n) C, H, W)."""
        return torch.cat([images, candidates], dim=1)

    @torch.no_grad()
    def act(self, images: Tensor, candidates: Tensor) -> Tensor:
        """The greedy per-pixel actions (B, n, H, W) in (-1, 1): ``tanh`` of the Gaussian mean."""
        return torch.tanh(self.policy(self.policy_input(images, candidates)).mean)

    @torch.no_grad()
    def forward(self, images: Tensor, steps: int = 1, actions: list[Tensor] | None = None) -> Tensor:
        """Enhance a batch: ``steps`` greedy blend steps, the candidates recomputed before each.
        ``actions``: a list that gets each step's actions (B, n, H, W)."""
        for _ in range(int(steps)):
            candidates = self.candidates(images)
            chosen = self.act(images, candidates)
            if actions is not None:
                actions.append(chosen)
            images = rse_blend(images, candidates, chosen)
        return images


@MODELS.register()
class RSEDenoiser(ArchMixin, nn.Module):
    """Up to ``max_rounds`` :class:`RSERound` of one architecture, applied in turn.

    Every round has the same shape (the arguments of :class:`RSERound`).

    Args:
        max_rounds: rounds held, >= 1.
        steps: blend steps per round at inference, >= 1.
        **round_kwargs: see :class:`RSERound`.

    Shape:
        float (B, C, H, W) in, same out (not clipped).
    """

    def __init__(self, channels: int = 3, patch: int = 16, stride: int = 8, latent_dim: int = 64, hidden: int = 512,
                 depth: int = 2, bank_size: int = 4096, clusters: int = 32, probe: int = 2, neighbours: int = 8,
                 width: int = 16, policy_kwargs: dict[str, Any] | None = None, max_rounds: int = 3, steps: int = 1,
                 predicted: bool = False):
        super().__init__()
        for name, value in (("max_rounds", max_rounds), ("steps", steps)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"RSEDenoiser: {name}={value!r}; expected an integer >= 1")
        round_kwargs = dict(channels=int(channels), patch=int(patch), stride=int(stride), latent_dim=int(latent_dim),
                            hidden=int(hidden), depth=int(depth), bank_size=int(bank_size), clusters=int(clusters),
                            probe=int(probe), neighbours=int(neighbours), width=int(width),
                            policy_kwargs=dict(policy_kwargs or {}), predicted=bool(predicted))
        self._kwargs = dict(round_kwargs, max_rounds=int(max_rounds), steps=int(steps))
        if not predicted:  # the arch of files that predate the predictor
            del self._kwargs["predicted"]
        self.predicted = bool(predicted)
        self.channels = int(channels)
        self.steps = int(steps)
        self.rounds = nn.ModuleList(RSERound(**round_kwargs) for _ in range(int(max_rounds)))

    @property
    def max_rounds(self) -> int:
        return len(self.rounds)

    def attach_predictor(self, predictor: Predictor) -> None:
        """Give every round of a ``predicted`` model its predictor (ValueError for another model)."""
        if not self.predicted:
            raise ValueError("attach_predictor: this RSE-RL model was trained without a predictor (predicted=False)")
        for stage in self.rounds:  # a plain attribute, never a submodule: the predictor is not in the weights
            object.__setattr__(stage, "predictor", predictor)

    @torch.no_grad()
    def forward(self, images: Tensor, rounds: int | None = None, actions: list[Tensor] | None = None) -> Tensor:
        """Apply the first ``rounds`` rounds (None: all held) to a batch (B, C, H, W). ``actions``: a
        list that gets the actions (B, n, H, W) of every step of every round, in order."""
        rounds = self.max_rounds if rounds is None else int(rounds)
        if not 1 <= rounds <= self.max_rounds:
            raise ValueError(f"RSEDenoiser: rounds={rounds!r}; expected 1..{self.max_rounds}")
        for stage in self.rounds[:rounds]:
            images = stage(images, self.steps, actions)
        return images
