"""Network architectures: what a trained model needs at inference time.

Submodules (import them directly: importing this package imports no submodule and no torch;
:data:`MODELS` imports them on its first lookup):

* :mod:`rlenhance.models.policy` -- fully convolutional per-pixel actor-critic networks, with
  an optional supervised backbone (:mod:`rlenhance.models.backbones` loads its weights).
* :mod:`rlenhance.models.distributions` -- the per-pixel action distributions a policy's outputs
  define (:meth:`rlenhance.models.policy.PixelActorCritic.predict` decodes actions from them).
* :mod:`rlenhance.models.critic` -- per-pixel Q networks (SAC's critics).
* :mod:`rlenhance.models.mrpnet`, :mod:`rlenhance.models.pixelrnn` -- the supervised baselines.
* :mod:`rlenhance.models.inpaint` -- the completion U-Net (a correction to a hole's pre-fill).
* :mod:`rlenhance.models.ffdnet` -- FFDNet, the denoiser driven by a per-pixel noise-level map.
* :mod:`rlenhance.models.peers` -- Zero-DCE, Zero-DCE++ and ReLLIE, loading their official weights.
* :mod:`rlenhance.models.vae` -- RSE-RL's patch VAE and seamless patch blending.
* :mod:`rlenhance.models.rse` -- RSE-RL's latent clustering, per-pixel blend and recursive rounds.

A supervised network (what ``experiments.supervised_train`` trains and
:class:`rlenhance.restore.SupervisedRestorer` runs; a user's own one named by import path, docs/api.md) is
an ``nn.Module`` built as ``Network(channels, width=W)`` with ``arch()`` (``{"class": ..., "kwargs": ...}``
for checkpoints) and ``forward(x)``, and these class attributes: ``model_name`` (the name its checkpoints'
spec records, :func:`model_name`), ``train_defaults`` (the trainer's ``lr``, ``batch``, ``crop`` and
``width`` where a run leaves them unset), ``reads_mask`` (``forward(x, mask)``, completion) or
``reads_noise_map`` (``forward(x, noise_map)``, denoising).
"""

from typing import Any

from rlenhance.plugins import Registry, path_of

__all__ = ["MODELS", "ArchMixin", "model_name"]


def _check_network(entry: Any) -> None:
    from torch import nn  # noqa: PLC0415 - importing the package imports no torch

    if not (isinstance(entry, type) and issubclass(entry, nn.Module)):
        raise TypeError(f"expected a torch.nn.Module subclass, got {entry!r}")


#: Every network class a checkpoint can name (its ``arch["class"]``): the package's own, registered by
#: ``@MODELS.register()`` under their class names, and a user's, named by import path ``"package.module:Class"``.
MODELS: Registry[Any] = Registry("network class", check=_check_network, modules=(
    "rlenhance.models.mrpnet", "rlenhance.models.pixelrnn", "rlenhance.models.ffdnet", "rlenhance.models.inpaint",
    "rlenhance.models.policy", "rlenhance.models.rse"))


def model_name(network: type) -> str:
    """The ``model`` a :class:`rlenhance.checkpoint.SupervisedSpec` records for the supervised ``network`` class:
    its own ``model_name`` attribute, else its import path."""
    return vars(network).get("model_name") or path_of(network)


class ArchMixin:
    """``arch()`` for networks that keep their constructor kwargs in ``self._kwargs``."""

    _kwargs: dict[str, Any]

    def arch(self) -> dict[str, Any]:
        """The architecture as a JSON-able dict ``{"class": ..., "kwargs": {...}}`` for checkpoints."""
        return {"class": type(self).__name__, "kwargs": {k: (list(v) if isinstance(v, (list, tuple)) else
                                                             dict(v) if isinstance(v, dict) else v)
                                                         for k, v in self._kwargs.items()}}
