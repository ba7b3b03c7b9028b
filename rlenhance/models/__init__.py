"""Network architectures: what a trained model needs at inference time.

Submodules (import them directly; importing this package runs nothing and imports no
submodule, so loading one architecture does not pull in the others):

* :mod:`rlenhance.models.policy` -- fully convolutional per-pixel actor-critic networks, with
  an optional supervised backbone (:mod:`rlenhance.models.backbones` loads its weights).
* :mod:`rlenhance.models.distributions` -- the per-pixel action distributions a policy's outputs
  define (:meth:`rlenhance.models.policy.PixelActorCritic.predict` decodes actions from them).
* :mod:`rlenhance.models.critic` -- per-pixel Q networks (SAC's critics).
* :mod:`rlenhance.models.mrpnet`, :mod:`rlenhance.models.pixelrnn` -- the supervised baselines.
* :mod:`rlenhance.models.inpaint` -- the completion U-Net: a correction to a hole's pre-fill,
  predicted on a coarse grid that sees the whole photo.
* :mod:`rlenhance.models.ffdnet` -- FFDNet, the denoiser driven by a per-pixel noise-level map
  (ReLLIE's denoiser module, run by :class:`rlenhance.Enhancer` with the map of its curve steps).
* :mod:`rlenhance.models.peers` -- re-implementations of Zero-DCE, Zero-DCE++ and ReLLIE that
  load those methods' official weights for side-by-side comparisons.
* :mod:`rlenhance.models.vae` -- RSE-RL's patch VAE (latent invariant to flips and quarter turns),
  overlapping patches and their seamless Hann-window blending.
* :mod:`rlenhance.models.rse` -- RSE-RL's latent clustering, per-pixel blend and recursive rounds
  (the denoiser of ``experiments.rse_train``; :func:`rlenhance.denoisers.load_rse` loads a trained one).
"""
