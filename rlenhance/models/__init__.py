"""Network architectures: what a trained model needs at inference time.

Submodules (import them directly; importing this package runs nothing and imports no
submodule, so loading one architecture does not pull in the others):

* :mod:`rlenhance.models.policy` -- fully convolutional per-pixel actor-critic networks, with
  an optional supervised backbone (:mod:`rlenhance.models.backbones` loads its weights).
* :mod:`rlenhance.models.critic` -- per-pixel Q networks (SAC's critics).
* :mod:`rlenhance.models.mrpnet`, :mod:`rlenhance.models.pixelrnn` -- the supervised baselines.
* :mod:`rlenhance.models.peers` -- re-implementations of Zero-DCE, Zero-DCE++ and ReLLIE that
  load those methods' official weights for side-by-side comparisons.
"""
