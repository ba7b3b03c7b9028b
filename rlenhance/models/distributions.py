"""Per-pixel action distributions over action maps.

Every pixel of every action map has its own independent distribution; ``log_prob`` and
``entropy`` are returned per pixel, shape (B, C, H, W). Sampling takes an optional ``torch.Generator``
(on the logits' device), or the standard draws themselves (``noise``, from :meth:`~PixelCategorical.noise`).
:meth:`rlenhance.models.policy.PixelActorCritic.distribution` builds them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["PixelCategorical", "PixelGaussian"]

_HALF_LOG_2PI_E = 0.5 * math.log(2 * math.pi * math.e)
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class PixelCategorical:
    """Independent categorical distribution at every pixel of every action map.

    Args:
        logits: float, shape (B, C, K, H, W): unnormalised log-probabilities of the K actions.

    Example:
        >>> d = PixelCategorical(torch.zeros(1, 3, 27, 4, 4))
        >>> d.sample().shape, float(d.entropy()[0, 0, 0, 0])  # log(27)
        (torch.Size([1, 3, 4, 4]), 3.295836...)
    """

    def __init__(self, logits: Tensor):
        if logits.dim() != 5:
            raise ValueError(f"PixelCategorical: logits have shape {tuple(logits.shape)}; "
                             "expected (B, C, K, H, W)")
        self.log_probs = F.log_softmax(logits, dim=2)
        self.n_actions = logits.shape[2]

    @property
    def probs(self) -> Tensor:
        """Action probabilities, shape (B, C, K, H, W), summing to 1 over K."""
        return self.log_probs.exp()

    def noise(self, generator: torch.Generator | None = None, n: int | None = None) -> Tensor:
        """The uniform numbers a sample consumes, (n, C, 1, H, W) in [0, 1) (n default B)."""
        b, c, _, h, w = self.log_probs.shape
        return self.draw_noise((b if n is None else n, c, h, w), generator, self.log_probs.device, self.log_probs.dtype)

    @staticmethod
    def draw_noise(shape: tuple[int, int, int, int], generator: torch.Generator | None, device: torch.device,
                   dtype: torch.dtype) -> Tensor:
        """:meth:`noise` of a distribution of actions of ``shape`` (n, C, H, W), drawn before it exists."""
        n, c, h, w = shape
        return torch.rand((n, c, 1, h, w), generator=generator, device=device, dtype=dtype)

    def sample(self, generator: torch.Generator | None = None, noise: Tensor | None = None) -> Tensor:
        """Draw one action per pixel (inverse-CDF, one uniform number per pixel).

        Args:
            generator: source of the uniform numbers (None: the global RNG).
            noise: the uniform numbers to use instead, (B, C, 1, H, W) (:meth:`noise`).

        Returns:
            int64, shape (B, C, H, W), values in [0, K).
        """
        with torch.no_grad():
            cdf = self.probs.cumsum(dim=2)
            u = self.noise(generator) if noise is None else noise
            # Scale u by the last cdf entry so rounding in cumsum never leaves it unreachable.
            a = (cdf < u * cdf[:, :, -1:]).sum(dim=2)
        return a.clamp_(max=self.n_actions - 1)

    def mode(self) -> Tensor:
        """The most probable action per pixel, int64 shape (B, C, H, W)."""
        return self.log_probs.argmax(dim=2)

    def log_prob(self, actions: Tensor) -> Tensor:
        """Log-probability of ``actions`` (int64, (B, C, H, W)); returns float (B, C, H, W)."""
        if actions.shape != self.log_probs.shape[:2] + self.log_probs.shape[3:]:
            raise ValueError(f"PixelCategorical.log_prob: actions have shape {tuple(actions.shape)}; "
                             f"expected {tuple(self.log_probs.shape[:2] + self.log_probs.shape[3:])}")
        return self.log_probs.gather(2, actions.long().unsqueeze(2)).squeeze(2)

    def entropy(self) -> Tensor:
        """Per-pixel entropy in nats, float (B, C, H, W), in [0, log K]."""
        return -(self.log_probs.exp() * self.log_probs).sum(dim=2)


#: Nodes of the Gauss-Hermite rule of :meth:`PixelGaussian.expected_action` for standard deviations up to 1.
QUADRATURE_NODES = 32
#: Wider Gaussians: ``E[tanh(u)] = 1 - int sech^2(t) Phi((t - mean) / std) dt``, trapezoid rule on [-10, 10].
_SECH2_STEP = 0.25
#: (t, trapezoid weight sech^2(t) dt) of that rule.
_SECH2_RULE = [(i * _SECH2_STEP, _SECH2_STEP / math.cosh(i * _SECH2_STEP) ** 2) for i in range(-40, 41)]


def _hermite_rule() -> list[tuple[float, float]]:
    """(node ``sqrt(2) x_i``, weight ``w_i / sqrt(pi)``) with ``E[f(Z)] ~ sum w f(x)`` for Z ~ N(0, 1)."""
    x, w = np.polynomial.hermite.hermgauss(QUADRATURE_NODES)
    return list(zip((x * math.sqrt(2.0)).tolist(), (w / math.sqrt(math.pi)).tolist()))


_HERMITE_RULE = _hermite_rule()  # computed once: expected_action runs at every curve step


def _normal_cdf(z: Tensor) -> Tensor:
    return 0.5 * (1 + torch.erf(z / math.sqrt(2.0)))


def _normal_pdf(z: Tensor) -> Tensor:
    return torch.exp(-0.5 * z * z - _HALF_LOG_2PI)


class PixelGaussian:
    """Independent Gaussian at every pixel, optionally tanh-squashed into (-1, 1) (for SAC).

    Args:
        mean: float, shape (B, C, H, W).
        log_std: float, same shape (or broadcastable), log standard deviation.
        squash: if True actions are ``tanh(u)`` with ``u ~ N(mean, std)`` and ``log_prob``
            includes the tanh change of variables.
        eps: clamp margin used when inverting tanh in :meth:`log_prob`.
    """

    def __init__(self, mean: Tensor, log_std: Tensor, squash: bool = False, eps: float = 1e-6):
        self.mean = mean
        self.log_std = log_std.expand_as(mean)
        self.std = self.log_std.exp()
        self.squash = squash
        self.eps = eps

    def _normal_log_prob(self, u: Tensor) -> Tensor:
        return -0.5 * ((u - self.mean) / self.std) ** 2 - self.log_std - _HALF_LOG_2PI

    @staticmethod
    def _tanh_log_det(u: Tensor) -> Tensor:
        # log(1 - tanh(u)^2), computed stably as 2 * (log 2 - u - softplus(-2u)).
        return 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))

    def noise(self, generator: torch.Generator | None = None, n: int | None = None) -> Tensor:
        """The standard normal numbers a sample consumes, (n, C, H, W) (n default B)."""
        shape = self.mean.shape if n is None else (n, *self.mean.shape[1:])
        return self.draw_noise(tuple(shape), generator, self.mean.device, self.mean.dtype)

    @staticmethod
    def draw_noise(shape: tuple[int, int, int, int], generator: torch.Generator | None, device: torch.device,
                   dtype: torch.dtype) -> Tensor:
        """:meth:`noise` of a distribution of actions of ``shape`` (n, C, H, W), drawn before it exists."""
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)

    def rsample_with_log_prob(self, generator: torch.Generator | None = None,
                              noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Reparameterised sample and its per-pixel log-probability (differentiable).

        Args:
            generator: source of the normal numbers (None: the global RNG).
            noise: the standard normal numbers to use instead, (B, C, H, W) (:meth:`noise`).

        Returns:
            ``(action, log_prob)``, both float (B, C, H, W); actions in (-1, 1) when squashed.
        """
        if noise is None:
            noise = self.noise(generator)
        u = self.mean + self.std * noise
        log_prob = self._normal_log_prob(u)
        if not self.squash:
            return u, log_prob
        return torch.tanh(u), log_prob - self._tanh_log_det(u)

    def sample(self, generator: torch.Generator | None = None, noise: Tensor | None = None) -> Tensor:
        """A sample without gradient, float (B, C, H, W) (``noise`` as in :meth:`rsample_with_log_prob`)."""
        with torch.no_grad():
            return self.rsample_with_log_prob(generator, noise)[0]

    def mode(self) -> Tensor:
        """The deterministic action: ``mean`` (``tanh(mean)`` when squashed)."""
        return torch.tanh(self.mean) if self.squash else self.mean

    def expected_action(self, clip: float | None = None) -> Tensor:
        """The expected action per pixel, float (B, C, H, W): ``E[tanh(u)]`` when squashed (by quadrature),
        ``E[clamp(u, -clip, clip)]`` (closed form) for an unsquashed one whose samples are clipped, else ``mean``.
        """
        if self.squash:
            out = torch.zeros_like(self.mean)
            for x, w in _HERMITE_RULE:
                out = out + w * torch.tanh(self.mean + self.std * x)
            wide = self.std > 1
            if torch.jit.is_tracing() or bool(wide.any()):  # a trace (ONNX export) keeps no branch
                integral = torch.zeros_like(self.mean)
                for t, w in _SECH2_RULE:
                    integral = integral + w * _normal_cdf((t - self.mean) / self.std)
                out = torch.where(wide, 1 - integral, out)
            return out
        if clip is None:
            return self.mean
        lo = (-clip - self.mean) / self.std
        hi = (clip - self.mean) / self.std
        cdf_lo, cdf_hi = _normal_cdf(lo), _normal_cdf(hi)
        return (-clip * cdf_lo + clip * (1 - cdf_hi) + self.mean * (cdf_hi - cdf_lo)
                + self.std * (_normal_pdf(lo) - _normal_pdf(hi)))

    def log_prob(self, actions: Tensor) -> Tensor:
        """Per-pixel log-density of ``actions`` (float (B, C, H, W)); returns float (B, C, H, W).

        For a squashed distribution the actions are clamped to ``(-1 + eps, 1 - eps)`` before
        ``atanh``; prefer :meth:`rsample_with_log_prob` when the sample is yours.
        """
        if not self.squash:
            return self._normal_log_prob(actions)
        a = actions.clamp(-1 + self.eps, 1 - self.eps)
        u = torch.atanh(a)
        return self._normal_log_prob(u) - self._tanh_log_det(u)

    def entropy(self) -> Tensor:
        """Per-pixel differential entropy, float (B, C, H, W) (unsquashed only).

        Raises:
            NotImplementedError: for a squashed distribution (no closed form; use ``-log_prob``
                of a sample as the estimate, as SAC does).
        """
        if self.squash:
            raise NotImplementedError("PixelGaussian.entropy: no closed form for squash=True; "
                                      "use -log_prob of a sample")
        return self.log_std + _HALF_LOG_2PI_E
