"""Bootstrapping policy backbones from supervised checkpoints.

A :class:`~rlenhance.models.policy.PixelActorCritic` built with ``backbone="mrpnet"`` or ``"pixelrnn"``
holds a supervised network (without its output convolution) as its feature extractor. This module copies
a supervised checkpoint's weights into it, and freezes or unfreezes it.

Which checkpoint fits which backbone (the supervised ``head`` convolution is never copied):

* ``backbone="mrpnet"``: an ``MRPNet`` checkpoint, or a ``CombinedModel`` one (its ``denoiser``,
  the MRPNet part; the Generator is skipped);
* ``backbone="pixelrnn"`` with a mask plane (``backbone_mask=True``): a ``GatedPixelRNN`` checkpoint;
* ``backbone="pixelrnn"`` without: a ``PixelRNN`` (ConvLSTM) checkpoint.

The checkpoint's image planes, ``width`` and depth arguments must equal the policy's backbone's.

Example:
    >>> from pathlib import Path
    >>> from rlenhance.models.policy import PixelActorCritic
    >>> shipped = Path(__file__).parent.parent / "weights" / "mrpnet_denoise.pt"   # MRPNet, width 64
    >>> policy = PixelActorCritic(1, 1, 9, backbone="mrpnet", backbone_width=64)
    >>> summary = load_backbone(policy, shipped)     # or a supervised_train run's checkpoints/best.pt
    >>> set_backbone_trainable(policy, False)        # e.g. for the first K episodes
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any

from torch import nn

from rlenhance.checkpoint import load_checkpoint, load_state_dict_strict
from rlenhance.errors import CheckpointError
from rlenhance.models.policy import PixelActorCritic, SupervisedTrunk

__all__ = ["backbone_parameters", "load_backbone", "set_backbone_trainable"]

#: Name of the supervised output convolution in every supervised network (not copied).
_HEAD = "head"
#: ``CombinedModel`` attribute holding its MRPNet, and the kwarg naming its image planes.
_COMBINED_DENOISER, _COMBINED_CHANNELS = "denoiser", "channels"
#: Constructor arguments that shape the feature extractor, per supervised class.
_SHAPE_KWARGS: Mapping[str, tuple[str, ...]] = {
    "MRPNet": ("in_channels", "width"),
    "PixelRNN": ("in_channels", "width", "levels"),
    "GatedPixelRNN": ("in_channels", "width", "n_gated", "n_res"),
}


def _check_policy(policy: Any, owner: str) -> PixelActorCritic:
    if not isinstance(policy, PixelActorCritic):
        raise TypeError(f"{owner}: policy is a {type(policy).__name__}; expected a PixelActorCritic")
    return policy


def _supervised_net(policy: PixelActorCritic, source: str) -> nn.Module:
    if not isinstance(policy.trunk, SupervisedTrunk):
        raise CheckpointError(f"{source}: the policy has backbone={policy.backbone!r}, which has no supervised "
                              "weights to load; build it with backbone='mrpnet' or backbone='pixelrnn'")
    return policy.trunk.net


def _defaults(cls: type) -> dict[str, Any]:
    """The default values of a class's constructor arguments."""
    return {name: p.default for name, p in inspect.signature(cls).parameters.items()
            if p.default is not inspect.Parameter.empty}


def load_backbone(policy: PixelActorCritic, checkpoint_path: str | os.PathLike) -> dict[str, Any]:
    """Copy a supervised checkpoint's feature-extractor weights into a policy's backbone.

    Its tensors (the MRPNet part of a ``CombinedModel``), less the supervised output convolution, are
    copied exactly (strict, batch norm statistics included); nothing else in the policy changes.

    Args:
        policy: a :class:`PixelActorCritic` with ``backbone="mrpnet"`` or ``"pixelrnn"``.
        checkpoint_path: a checkpoint of MRPNet, CombinedModel, PixelRNN or GatedPixelRNN.

    Returns:
        dict: ``path`` (str), ``model`` (the checkpoint's class), ``part`` (``"denoiser"`` for a
        CombinedModel, else None), ``tensors`` (number of tensors copied, buffers included),
        ``params`` (number of parameter values copied), ``skipped`` (names of the checkpoint's
        tensors not copied: the supervised head, a CombinedModel's Generator).

    Raises:
        CheckpointError: the file is missing or invalid, the policy has no supervised backbone, or the
            checkpoint's class, image planes, width, depth or tensors do not fit the backbone.
        TypeError: ``policy`` is not a PixelActorCritic.
    """
    policy = _check_policy(policy, "load_backbone")
    ckpt = load_checkpoint(checkpoint_path)
    source = f"checkpoint {ckpt['path']}"
    net = _supervised_net(policy, source)
    expected = type(net).__name__
    found = ckpt["arch"]["class"]
    kwargs = dict(ckpt["arch"]["kwargs"])
    prefix, part = "", None
    if found == "CombinedModel" and expected == "MRPNet":
        prefix, part = f"{_COMBINED_DENOISER}.", _COMBINED_DENOISER
        kwargs = {"in_channels": kwargs.get(_COMBINED_CHANNELS), "width": kwargs.get("width")}
        found_as = "CombinedModel's MRPNet"
    elif found != expected:
        fits = "MRPNet or CombinedModel" if expected == "MRPNet" else expected
        raise CheckpointError(
            f"{source}: holds a {found}, but the policy's backbone={policy.backbone!r} "
            f"(backbone_mask={policy.trunk.mask}) is a {expected}; it loads {fits} checkpoints "
            "(mrpnet: MRPNet / CombinedModel; pixelrnn: GatedPixelRNN with a mask plane, PixelRNN without)")
    else:
        found_as = found

    defaults = _defaults(type(net))
    mine = defaults | dict(net.arch()["kwargs"])
    mismatched = [(name, kwargs.get(name, defaults.get(name)), mine[name]) for name in _SHAPE_KWARGS[expected]
                  if kwargs.get(name, defaults.get(name)) != mine[name]]
    if mismatched:
        hint = {"in_channels": "backbone_channels", "width": "backbone_width"}
        got_s = ", ".join(f"{n}={g!r}" for n, g, _ in mismatched)
        want_s = ", ".join(f"{n}={w!r}" for n, _, w in mismatched)
        fix = ", ".join(f"{hint[n]}={g!r}" if n in hint else f"backbone_kwargs[{n!r}]={g!r}"
                        for n, g, _ in mismatched)
        raise CheckpointError(f"{source}: the {found_as} has {got_s}; the policy's {policy.backbone} backbone "
                              f"has {want_s}. Build the policy with {fix} to load it")

    chosen, skipped = {}, []
    for name, tensor in ckpt["state_dict"].items():
        local = name[len(prefix):] if name.startswith(prefix) else None
        if local is None or local.startswith(f"{_HEAD}."):
            skipped.append(name)
        else:
            chosen[local] = tensor
    # check every key and shape first: load_state_dict copies the fitting tensors before it raises
    target = net.state_dict()
    bad = sorted(set(chosen) ^ set(target)) + sorted(
        f"{k} {tuple(chosen[k].shape)} vs {tuple(target[k].shape)}"
        for k in set(chosen) & set(target) if chosen[k].shape != target[k].shape)
    if bad:
        raise CheckpointError(f"{source}: the {found_as}'s tensors do not fit the policy's {expected} backbone "
                              f"(missing/unexpected/mis-shaped: {bad[:5]}{' ...' if len(bad) > 5 else ''})")
    load_state_dict_strict(net, chosen, source=source)
    param_names = {name for name, _ in net.named_parameters()}
    return {
        "path": ckpt["path"],
        "model": found,
        "part": part,
        "tensors": len(chosen),
        "params": int(sum(t.numel() for name, t in chosen.items() if name in param_names)),
        "skipped": sorted(skipped),
    }


def set_backbone_trainable(policy: PixelActorCritic, trainable: bool) -> None:
    """Freeze (``False``) or unfreeze (``True``) the policy's backbone.

    Frozen parameters have ``requires_grad=False`` and the backbone stays in eval mode. For
    ``backbone="fcn"`` the whole dilated trunk is the backbone.

    Args:
        policy: a :class:`PixelActorCritic`.
        trainable: the new state.

    Raises:
        TypeError: ``policy`` is not a PixelActorCritic, or ``trainable`` is not a bool.
    """
    policy = _check_policy(policy, "set_backbone_trainable")
    if not isinstance(trainable, bool):
        raise TypeError(f"set_backbone_trainable: trainable={trainable!r}; expected True or False")
    policy.set_backbone_trainable(trainable)


def backbone_parameters(policy: PixelActorCritic) -> list[nn.Parameter]:
    """The parameters of the policy's backbone (:attr:`PixelActorCritic.backbone_module`), in order.

    Raises:
        TypeError: ``policy`` is not a PixelActorCritic.
    """
    return list(_check_policy(policy, "backbone_parameters").backbone_module.parameters())
