"""Per-pixel action distributions: :mod:`rlenhance.models.distributions`, where the policy that
builds them lives (:meth:`rlenhance.models.policy.PixelActorCritic.distribution`); the names are
kept here for code that imports them from ``agents``."""

from rlenhance.models.distributions import PixelCategorical, PixelGaussian

__all__ = ["PixelCategorical", "PixelGaussian"]
