"""Pixel-wise actor-critic network (PixelRL / ReLLIE style), shared by training and inference.

The network is fully convolutional: for every pixel it outputs an action distribution (one per
action map, e.g. one per colour channel) and a state value. Layout::

    x (B, in_channels, H, W) [+ cond planes]
      -> (optional) average-pool by ``downscale``
      -> trunk:  conv(d=dilations[0]) + ReLU, dilated convs(d=dilations[1:]) + ReLU
      -> policy branch: dilated convs(d=branch_dilations) + ReLU [-> ConvGRU] -> policy head
      -> value branch:  dilated convs(d=branch_dilations) + ReLU -> value head
      -> (optional) bilinear upsampling of logits / means / values back to (H, W)

With ``width=64, dilations=(1, 2, 3, 4), branch_dilations=(3, 2)`` this is the ReLLIE network;
adding ``conv_gru=True`` gives the PixelRL network.

The policy input is built by :func:`build_policy_input`; outputs become actions in
:meth:`PixelActorCritic.predict` (as SB3's ``BasePolicy.predict``):

================  =========================================  ==============================================
output            ``predict(out)`` (deterministic)            ``predict(out, deterministic=False)``
================  =========================================  ==============================================
``logits``        most probable action, int64                 a categorical sample, int64
bounded ``mean``  the mean, clamped to ``clip``               a Gaussian sample around it, clamped (A3C)
free ``mean``     ``tanh(mean)``                              ``tanh`` of a Gaussian sample (SAC)
================  =========================================  ==============================================

:meth:`PixelActorCritic.action_values` gives a deterministic step's action as a value per pixel.

Backbones. ``backbone="fcn"`` (default) is the dilated-conv trunk above; ``"mrpnet"`` and
``"pixelrnn"`` use a supervised network's feature extractor (:class:`SupervisedTrunk`,
:func:`rlenhance.models.backbones.load_backbone`)::

    x -> [image planes | (mask plane) | other planes] (+ cond planes)
      image (+ mask) -> supervised net .features()          (backbone_width planes)
      cat(features, other planes, cond planes) -> conv1x1 + ReLU   (width planes, fresh)
      -> policy / value branches and heads as above (fresh)

======================  ===================================================================
``backbone``            supervised network (its output convolution is dropped)
======================  ===================================================================
``"mrpnet"``            :class:`~rlenhance.models.mrpnet.MRPNet` on the image planes
``"pixelrnn"``          :class:`~rlenhance.models.pixelrnn.GatedPixelRNN` on image + mask when
                        the input is image + mask (Completion), else the ConvLSTM
                        :class:`~rlenhance.models.pixelrnn.PixelRNN` on the image planes
======================  ===================================================================

The image planes are the first ``backbone_channels`` of ``x``; the mask is its last plane.

Example:
    >>> net = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, cond_dim=5)
    >>> out = net(torch.rand(2, 6, 33, 31), cond=torch.rand(2, 5))
    >>> out.logits.shape, out.value.shape
    (torch.Size([2, 3, 27, 33, 31]), torch.Size([2, 1, 33, 31]))
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from rlenhance.checkpoint import ALPHA_MODES
from rlenhance.errors import ImageError
from rlenhance.models import MODELS, ArchMixin
from rlenhance.models.distributions import PixelCategorical, PixelGaussian
from rlenhance.models.trunks import (
    _RESERVED_BACKBONE_KWARGS,
    BACKBONES,
    ConvGRUCell,
    ConvTrunk,
    SupervisedTrunk,
    _conv,
    append_cond_planes,
    backbone_class,
    check_net_args,
    check_planes,
    pool_blocks,
    upsample_blocks,
)

__all__ = ["ACTION_BOUND", "append_cond_planes", "expected_value", "check_net_args", "BACKBONES",
           "POLICY_INPUT_KEYS", "ConvGRUCell", "ConvTrunk", "PixelActorCritic", "PolicyOutput", "SupervisedTrunk",
           "acting_radius", "act", "backbone_class", "blocks_to_pixels", "build_policy_input"]


#: Observation keys concatenated (in this order) into the policy input; see build_policy_input.
POLICY_INPUT_KEYS: tuple[str, ...] = ("image", "original", "exposure_gap", "mask", "prediction", "level")
#: Continuous actions live in the envs' Box [-ACTION_BOUND, ACTION_BOUND] (predict's default ``clip``).
ACTION_BOUND = 1.0
#: Image planes a supervised backbone reads by default: RGB when the input holds that many, else gray.
_RGB_PLANES, _GRAY_PLANES = 3, 1


class PolicyOutput(NamedTuple):
    """Per-pixel outputs of :class:`PixelActorCritic`, all at the input's full resolution.

    Attributes:
        logits: float, shape (B, out_channels, n_actions, H, W), unnormalised log-probabilities;
            ``None`` for a continuous net.
        mean: float, shape (B, out_channels, H, W), Gaussian mean, in (-1, 1) with
            ``bounded_mean=True`` (else unbounded); ``None`` for a categorical net.
        log_std: float, shape (B, out_channels, H, W), clamped to ``log_std_bounds``; ``None``
            for a categorical net.
        value: float, shape (B, 1, H, W), the per-pixel state value; ``None`` with ``with_value=False``.
        hidden: float, shape (B, width, h, w) at the working resolution, the next ConvGRU state;
            ``None`` without ConvGRU.
    """

    logits: Tensor | None
    mean: Tensor | None
    log_std: Tensor | None
    value: Tensor | None
    hidden: Tensor | None


def build_policy_input(
    obs: Mapping[str, Tensor],
    keys: Sequence[str] = POLICY_INPUT_KEYS,
    cond_key: str = "cond",
) -> tuple[Tensor, Tensor | None]:
    """Concatenate the image-like observation entries the policy sees, in a fixed order.

    Used by training and inference alike. LowLight: ``image``, ``original`` (+ ``exposure_gap``)
    and ``cond`` (B, 5); Denoise: ``image`` (+ ``prediction`` or ``level``); Completion: ``image``, ``mask``.

    Args:
        obs: observation dict of tensors. Image entries are float, shape (B, C_k, H, W);
            ``cond`` (optional) is float, shape (B, cond_dim).
        keys: the image-like keys to use, in concatenation order; missing keys are skipped.
        cond_key: the key of the conditioning vector.

    Returns:
        ``(x, cond)``: x float of shape (B, sum C_k, H, W); cond (B, cond_dim) or ``None``.

    Raises:
        ImageError: if none of ``keys`` is present, or the entries disagree in batch or size.
    """
    parts = [obs[k] for k in keys if k in obs]
    if not parts:
        raise ImageError(
            f"build_policy_input: observation has keys {sorted(obs)}, none of the accepted "
            f"image keys {list(keys)}"
        )
    first = parts[0]
    for k, p in zip([k for k in keys if k in obs], parts):
        if p.dim() != 4 or p.shape[0] != first.shape[0] or p.shape[-2:] != first.shape[-2:]:
            raise ImageError(
                f"build_policy_input: obs[{k!r}] has shape {tuple(p.shape)}; expected "
                f"(B, C, H, W) with B, H, W = {first.shape[0]}, {tuple(first.shape[-2:])}"
            )
    x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    cond = obs.get(cond_key)
    return x, cond


def blocks_to_pixels(actions: Tensor, scale: int, size: tuple[int, int]) -> Tensor:
    """Block actions (B, C, h, w) repeated over their ``scale`` x ``scale`` pixels, cropped to ``size`` = (H, W)."""
    return actions.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)[..., :size[0], :size[1]]


def act(policy: PixelActorCritic, obs: Mapping[str, Tensor], hidden: Tensor | None = None, *,
        block_actions: bool = False, deterministic: bool = True,
        generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
    """One acting step of ``policy`` on ``obs`` (no value head): :meth:`PixelActorCritic.predict`'s actions
    (mode, or a sample drawn with ``generator``); with ``block_actions``, one action per ``downscale`` block
    repeated over its pixels (:func:`blocks_to_pixels`).

    Returns:
        ``(actions, hidden)``: int64 (B, C, H, W) action indices (float32 within the action bound
        for a continuous net) at the observation's size, and the new ConvGRU state (None without one).
    """
    x, cond = build_policy_input(obs)
    out = policy(x, cond if policy.cond_dim else None, hidden, full_resolution=not block_actions, with_value=False)
    actions = policy.predict(out, deterministic=deterministic, generator=generator)
    if block_actions:
        actions = blocks_to_pixels(actions, policy.downscale, x.shape[-2:])
    return actions, out.hidden


def acting_radius(policy: PixelActorCritic) -> int | None:
    """Upper bound of how far (input pixels) one greedy action of ``policy`` reads around its pixel.

    The acting path's radius at the working resolution, plus one pixel each for pooling and upsampling,
    times ``downscale``; None for a supervised backbone.
    """
    if policy.backbone != "fcn":
        return None
    parts = (policy.trunk, policy.policy_branch, policy.gru, policy.policy_head)
    working = sum(int(m.dilation[0]) * (int(m.kernel_size[0]) // 2)
                  for part in parts if part is not None for m in part.modules() if isinstance(m, nn.Conv2d))
    return (working + 2) * policy.downscale


def expected_value(logits: Tensor, values: Tensor) -> Tensor:
    """Expected action value ``sum_a p(a) values[a]`` of per-pixel categorical outputs.

    Args:
        logits: float (B, C, n_actions, H, W), unnormalised log-probabilities (PolicyOutput.logits).
        values: float (n_actions,), the value of each action (e.g. LowLight's alpha table).

    Returns:
        float (B, C, H, W), differentiable in ``logits``.
    """
    return torch.einsum("bcahw,a->bchw", logits.softmax(dim=2), values.to(logits.dtype))


@MODELS.register()
class PixelActorCritic(ArchMixin, nn.Module):
    """Fully convolutional per-pixel actor-critic (PixelRL / ReLLIE network).

    Args:
        in_channels: image planes of the policy input (see :func:`build_policy_input`),
            not counting ``cond_dim``.
        out_channels: number of action maps (3 for per-channel LowLight, 1 for Denoise).
        n_actions: number of discrete actions per pixel (categorical heads), or ``None`` for
            continuous Gaussian heads.
        width: feature planes (ReLLIE / PixelRL use 64).
        dilations: dilations of the trunk convolutions (the first is the input conv).
        branch_dilations: dilations of the convolutions of each of the policy / value branches.
        kernel_size: odd kernel size of every convolution.
        conv_gru: put a ConvGRU (state carried across steps) at the end of the policy branch.
        downscale: s >= 1; the net runs on the input average-pooled by s and its outputs are
            upsampled bilinearly back to (H, W).
        cond_dim: number of conditioning values, broadcast as constant input planes (0 = none).
        log_std_bounds: (min, max) clamp of the Gaussian log standard deviation.
        policy_head_gain: scale of the policy head's initial weights (biases zeroed).
        bounded_mean: continuous heads only: the mean is ``tanh`` of the head output (A3C); False
            for a tanh-squashed Gaussian (SAC), whose mean lives before the squashing.
        backbone: the trunk, one of :data:`BACKBONES`: ``"fcn"`` (dilated convs), ``"mrpnet"`` or
            ``"pixelrnn"`` (module docstring). The ``backbone_*`` arguments must be unset with ``"fcn"``.
        backbone_channels: image planes the supervised network reads (the first planes of x);
            None = 3 when x has at least 3 planes, else 1.
        backbone_width: the supervised network's ``width``; None = its class default. Must equal
            the width of a checkpoint loaded with :func:`~rlenhance.models.backbones.load_backbone`.
        backbone_mask: ``"pixelrnn"`` only: use the gated PixelRNN, which also reads the last plane
            of x as the hole mask; None = True iff x is exactly the image planes plus one.
        backbone_kwargs: further constructor arguments of the supervised network (e.g.
            ``{"levels": 2}`` for PixelRNN, ``{"n_gated": 2, "n_res": 1}`` for GatedPixelRNN).
        cond_film: also modulate the trunk's and policy branch's features by ``cond`` (FiLM: per-channel
            scale ``1 + g`` and shift ``b``, zero initialised). Needs ``cond_dim > 0``.

    :meth:`arch` lists the ``backbone*`` arguments only for a supervised backbone.

    Shape:
        x: float (B, in_channels, H, W); cond: float (B, cond_dim); hidden: (B, width, h, w)
        with h = ceil(H / downscale), w = ceil(W / downscale).
    """

    def __init__(self, in_channels: int, out_channels: int, n_actions: int | None, width: int = 32,
                 dilations: Sequence[int] = (1, 2, 3, 4), branch_dilations: Sequence[int] = (3, 2),
                 kernel_size: int = 3, conv_gru: bool = False, downscale: int = 1, cond_dim: int = 0,
                 log_std_bounds: Sequence[float] = (-5.0, 2.0), policy_head_gain: float = 0.1,
                 bounded_mean: bool = True, backbone: str = "fcn", backbone_channels: int | None = None,
                 backbone_width: int | None = None, backbone_mask: bool | None = None,
                 backbone_kwargs: Mapping[str, Any] | None = None, cond_film: bool = False):
        super().__init__()
        self.backbone_trainable = True
        check_net_args("PixelActorCritic", in_channels=in_channels, out_channels=out_channels, width=width,
                       downscale=downscale, n_actions=n_actions, cond_dim=cond_dim, kernel_size=kernel_size,
                       dilations=dilations, branch_dilations=branch_dilations)
        lo, hi = (float(v) for v in log_std_bounds)
        if not lo < hi:
            raise ValueError(f"PixelActorCritic: log_std_bounds={list(log_std_bounds)}; expected min < max")

        self._kwargs: dict[str, Any] = dict(
            in_channels=int(in_channels), out_channels=int(out_channels),
            n_actions=None if n_actions is None else int(n_actions), width=int(width),
            dilations=[int(d) for d in dilations], branch_dilations=[int(d) for d in branch_dilations],
            kernel_size=int(kernel_size), conv_gru=bool(conv_gru), downscale=int(downscale),
            cond_dim=int(cond_dim), log_std_bounds=[lo, hi], policy_head_gain=float(policy_head_gain),
            bounded_mean=bool(bounded_mean),
        )
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.n_actions = self._kwargs["n_actions"]
        self.width = int(width)
        self.downscale = int(downscale)
        self.cond_dim = int(cond_dim)
        self.log_std_bounds = (lo, hi)
        self.bounded_mean = bool(bounded_mean)

        self.backbone = str(backbone)
        if self.backbone == "fcn":
            given = {k: v for k, v in (("backbone_channels", backbone_channels), ("backbone_width", backbone_width),
                                       ("backbone_mask", backbone_mask)) if v is not None}
            if given or backbone_kwargs:
                raise ValueError(f"PixelActorCritic: {sorted(given) or ['backbone_kwargs']} given with "
                                 "backbone='fcn'; they configure a supervised backbone ('mrpnet', 'pixelrnn')")
            self.trunk: nn.Module = ConvTrunk(self.in_channels + self.cond_dim, self.width, dilations, kernel_size)
        elif self.backbone in BACKBONES:
            self.trunk = self._supervised_trunk(backbone_channels, backbone_width, backbone_mask, backbone_kwargs)
        else:
            raise ValueError(f"PixelActorCritic: backbone={backbone!r}; expected one of {list(BACKBONES)}")
        feat = self.trunk.out_channels
        def branch() -> nn.Module:
            return ConvTrunk(feat, self.width, branch_dilations, kernel_size) if branch_dilations else nn.Identity()

        self.policy_branch = branch()
        self.value_branch = branch()
        branch_out = self.width if branch_dilations else feat
        self.gru = ConvGRUCell(branch_out, kernel_size) if conv_gru else None
        per_pixel = self.n_actions if self.n_actions is not None else 2  # (mean, log_std)
        self.policy_head = _conv(branch_out, self.out_channels * per_pixel, kernel_size)
        self.value_head = _conv(branch_out, 1, kernel_size)
        with torch.no_grad():
            self.policy_head.weight.mul_(policy_head_gain)
            self.policy_head.bias.zero_()
        self.film: nn.Linear | None = None
        if cond_film:
            if not self.cond_dim:
                raise ValueError("PixelActorCritic: cond_film=True needs conditioning values (cond_dim > 0)")
            self._kwargs["cond_film"] = True  # only when set: the arch of a net without it is unchanged
            self._film_split = [feat, feat, branch_out, branch_out]
            self.film = nn.Linear(self.cond_dim, sum(self._film_split))
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def _supervised_trunk(self, channels: int | None, width: int | None, mask: bool | None,
                          extra: Mapping[str, Any] | None) -> SupervisedTrunk:
        """Resolve the ``backbone_*`` arguments (recorded in ``_kwargs``) and build the trunk."""
        if channels is None:
            channels = _RGB_PLANES if self.in_channels >= _RGB_PLANES else _GRAY_PLANES
        if isinstance(channels, bool) or int(channels) != channels or channels < 1:
            raise ValueError(f"PixelActorCritic: backbone_channels={channels!r}; expected an integer >= 1")
        channels = int(channels)
        if mask is None:
            mask = self.backbone == "pixelrnn" and self.in_channels == channels + 1
        mask = bool(mask)
        if channels + int(mask) > self.in_channels:
            raise ValueError(f"PixelActorCritic: the {self.backbone} backbone reads backbone_channels={channels} "
                             f"image plane(s){' and a mask plane' if mask else ''}, more than in_channels="
                             f"{self.in_channels}")
        cls = backbone_class(self.backbone, mask)
        if width is None:
            width = inspect.signature(cls).parameters["width"].default
        if isinstance(width, bool) or int(width) != width or width < 1:
            raise ValueError(f"PixelActorCritic: backbone_width={width!r}; expected an integer >= 1")
        extra = dict(extra or {})
        reserved = sorted(set(extra) & set(_RESERVED_BACKBONE_KWARGS))
        if reserved:
            raise ValueError(f"PixelActorCritic: backbone_kwargs sets {reserved}; use backbone_channels / "
                             "backbone_width instead")
        try:
            net = cls(in_channels=channels, width=int(width), **extra)
        except TypeError as exc:
            raise ValueError(f"PixelActorCritic: backbone_kwargs={extra!r} do not build a {cls.__name__}: "
                             f"{exc}") from exc
        self._kwargs.update(backbone=self.backbone, backbone_channels=channels, backbone_width=int(width),
                            backbone_mask=mask, backbone_kwargs=extra)
        return SupervisedTrunk(net, self.in_channels, self.cond_dim, self.width, mask=mask)

    @property
    def backbone_module(self) -> nn.Module:
        """The supervised net inside :class:`SupervisedTrunk`, or the whole :class:`ConvTrunk` for ``"fcn"``."""
        return self.trunk.net if isinstance(self.trunk, SupervisedTrunk) else self.trunk

    def set_backbone_trainable(self, trainable: bool) -> None:
        """Freeze (False) or unfreeze (True) the backbone's parameters; a frozen backbone stays in eval mode."""
        self.backbone_trainable = bool(trainable)
        for param in self.backbone_module.parameters():
            param.requires_grad_(self.backbone_trainable)
        self.train(self.training)

    def train(self, mode: bool = True) -> PixelActorCritic:
        """``nn.Module.train``, except that a frozen backbone stays in eval mode."""
        super().train(mode)
        if not self.backbone_trainable:
            self.backbone_module.eval()
        return self

    def action_layers(self, cond: Tensor | None) -> list[tuple[nn.Conv2d, bool, tuple[Tensor, Tensor] | None]] | None:
        """The acting path's convolutions in order, as ``(conv, relu, film)``, for native kernels.

        ``film`` is FiLM's per-image ``(1 + g, b)`` (each (B, channels)) applied after the ReLU, or None;
        ``cond`` (B, cond_dim) is needed with FiLM. None for a supervised backbone, a ConvGRU, or FiLM
        without a policy branch.
        """
        if self.backbone != "fcn" or self.gru is not None or (self.film is not None
                                                                and isinstance(self.policy_branch, nn.Identity)):
            return None
        films: list[tuple[Tensor, Tensor] | None] = [None, None]
        if self.film is not None:
            g_feat, b_feat, g_pol, b_pol = self.film(cond.float()).split(self._film_split, dim=1)
            films = [(1 + g_feat, b_feat), (1 + g_pol, b_pol)]
        layers = []
        for part, film in ((self.trunk, films[0]), (self.policy_branch, films[1])):
            convs = [m for m in part if isinstance(m, nn.Conv2d)] if isinstance(part, ConvTrunk) else []
            layers += [(conv, True, film if i == len(convs) - 1 else None) for i, conv in enumerate(convs)]
        return [*layers, (self.policy_head, False, None)]

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) the trunk sees for an (height, width) input: ceil(size / downscale)."""
        s = self.downscale
        return -(-height // s), -(-width // s)

    def forward(self, x: Tensor, cond: Tensor | None = None, hidden: Tensor | None = None,
                full_resolution: bool = True, with_value: bool = True) -> PolicyOutput:
        """Per-pixel action distributions and values.

        Args:
            x: float, shape (B, in_channels, H, W) (any H, W >= 1).
            cond: float, shape (B, cond_dim), required iff ``cond_dim > 0``.
            hidden: ConvGRU state from the previous step, shape (B, width, h, w); ``None`` = zeros.
            full_resolution: upsample the outputs to (H, W); False keeps them at the working
                resolution (h, w) = ceil(H / downscale, W / downscale), one per block of pixels.
            with_value: run the value branch; False skips it (``value`` is None).

        Returns:
            :class:`PolicyOutput` at full resolution (H, W), or (h, w) with ``full_resolution=False``.

        Raises:
            ImageError: x has the wrong rank or channel count.
            ValueError: cond or hidden has the wrong shape.
        """
        check_planes("PixelActorCritic", x, self.in_channels)
        b, _, height, width = x.shape
        s = self.downscale
        z = pool_blocks(x, s)
        h, w = z.shape[-2:]
        z = append_cond_planes("PixelActorCritic", z, cond, self.cond_dim)

        feat = self.trunk(z)
        if self.film is not None:
            g_feat, b_feat, g_pol, b_pol = (t[:, :, None, None] for t in
                                            self.film(cond.to(feat.dtype)).split(self._film_split, dim=1))
            feat = feat * (1 + g_feat) + b_feat
        p = self.policy_branch(feat)
        if self.film is not None:
            p = p * (1 + g_pol) + b_pol
        new_hidden = None
        if self.gru is not None:
            if hidden is None:
                hidden = torch.zeros(b, p.shape[1], h, w, device=p.device, dtype=p.dtype)
            elif tuple(hidden.shape) != (b, p.shape[1], h, w):
                raise ValueError(f"PixelActorCritic: hidden has shape {tuple(hidden.shape)}; expected "
                                 f"{(b, p.shape[1], h, w)} (ceil of H, W / downscale={s})")
            new_hidden = self.gru(p, hidden)
            p = new_hidden
        pol = self.policy_head(p)
        value = self.value_head(self.value_branch(feat)) if with_value else None
        if s > 1 and full_resolution:
            pol = self.upsample(pol, height, width)
            value = self.upsample(value, height, width) if with_value else None
        else:
            height, width = h, w

        if self.n_actions is not None:
            logits = pol.reshape(b, self.out_channels, self.n_actions, height, width)
            return PolicyOutput(logits, None, None, value, new_hidden)
        mean, log_std = pol.reshape(b, self.out_channels, 2, height, width).unbind(dim=2)
        log_std = log_std.clamp(*self.log_std_bounds)
        if self.bounded_mean:
            mean = torch.tanh(mean)
        return PolicyOutput(None, mean, log_std, value, new_hidden)

    # --- from outputs to actions -----------------------------------------------------------------
    def distribution(self, out: PolicyOutput) -> PixelCategorical | PixelGaussian:
        """The per-pixel action distribution of an output (SB3's ``get_distribution``).

        Categorical over ``out.logits``, else a Gaussian, tanh-squashed when ``bounded_mean=False`` (SAC).
        """
        if out.logits is not None:
            return PixelCategorical(out.logits)
        return PixelGaussian(out.mean, out.log_std, squash=not self.bounded_mean)

    def sample_noise(self, n: int, height: int, width: int, *, generator: torch.Generator | None,
                     device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
        """Standard draws for :meth:`distribution`'s sample: uniform (n, C, 1, H, W) or normal (n, C, H, W)."""
        kind = PixelCategorical if self.n_actions is not None else PixelGaussian
        return kind.draw_noise((n, self.out_channels, height, width), generator, device, dtype)

    def clip_actions(self, actions: Tensor, clip: float | None = ACTION_BOUND) -> Tensor:
        """A continuous net's actions clamped to [-clip, clip] (None: unclamped); indices unchanged."""
        if self.n_actions is not None or clip is None:
            return actions
        return actions.clamp(-clip, clip)

    def predict(self, out: PolicyOutput, *, deterministic: bool = True, generator: torch.Generator | None = None,
                clip: float | None = ACTION_BOUND, noise: Tensor | None = None) -> Tensor:
        """The actions of one output (module table).

        Args:
            out: an output of this net (full or working resolution: the actions have its size).
            deterministic: the distribution's mode; False samples from it with ``generator``.
            generator: torch generator on the output's device for sampling (None: the global RNG).
            clip: continuous actions are clamped to [-clip, clip] (:meth:`clip_actions`); None: not.
            noise: standard draws (:meth:`sample_noise`) to sample with instead of ``generator``.

        Returns:
            int64 (B, C, h, w) action indices, or float32 (B, C, h, w) within [-clip, clip].
        """
        dist = self.distribution(out)
        actions = dist.mode() if deterministic else dist.sample(generator, noise)
        return self.clip_actions(actions, clip)

    def action_values(self, out: PolicyOutput, table: Tensor | None = None, *, mode: str = "mean") -> Tensor:
        """A deterministic step's action of one output as a value per pixel (LowLight's alpha).

        Args:
            out: an output of this net.
            table: float (n_actions,), the value of each discrete action (unused by a continuous net,
                whose actions are values already: :meth:`predict`).
            mode: ``"mean"``, the policy's expected action value (:func:`expected_value`,
                :meth:`PixelGaussian.expected_action`), or ``"argmax"``, :meth:`predict`'s action.

        Returns:
            float (B, C, h, w).

        Raises:
            ValueError: an unknown ``mode``, or no ``table`` for a discrete net.
        """
        if mode not in ALPHA_MODES:
            raise ValueError(f"mode: expected one of {ALPHA_MODES}, got {mode!r}")
        if out.logits is None:
            if mode == "argmax":
                return self.predict(out)
            return self.distribution(out).expected_action(clip=ACTION_BOUND if self.bounded_mean else None)
        if table is None:
            raise ValueError("action_values: a discrete policy needs the table of its action values")
        if mode == "mean":
            return expected_value(out.logits, table)
        return table[self.predict(out)]

    def upsample(self, t: Tensor, height: int, width: int) -> Tensor:
        """Bilinear upsampling of a working-resolution map by ``downscale``, cropped to (H, W)."""
        return upsample_blocks(t, self.downscale, height, width)
