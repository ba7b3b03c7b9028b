"""Per-pixel selection among candidate images (PixelRL's action execution).

:func:`select_per_pixel` picks from candidates computed for every pixel; :func:`group_pixels` sorts the pixels by
their action, so that each action can be computed at the pixels that chose it only.
"""

from __future__ import annotations

import torch

from rlenhance.ops._checks import _check_action_range, _check_pixel_actions

__all__ = ["group_pixels", "select_per_pixel", "sort_by_key"]

#: Actions are sorted as uint8 keys where they fit (a radix sort over fewer bytes than int64 keys).
_SMALL_KEY_LIMIT = 256

#: On CPU torch sorts integer keys with a radix sort from this many keys on (a much slower comparison sort below),
#: so smaller key arrays from _RADIX_PAD_FROM on are padded to this size.
_RADIX_SORT_MIN = 32768
_RADIX_PAD_FROM = 4096


def select_per_pixel(candidates: torch.Tensor, actions: torch.Tensor, *, validate: bool = True) -> torch.Tensor:
    """Pick, at every pixel, the candidate chosen by that pixel's action (``torch.gather``).

    ``out[b, c, h, w] = candidates[b, actions[b, (c,) h, w], c, h, w]``

    Args:
        candidates: Candidate images, shape (B, K, C, H, W), any float dtype (e.g. the output of
            :func:`rlenhance.ops.pixelrl_filter_bank`). Gradients flow back to it.
        actions: Integer tensor (not bool) on the same device, values in [0, K - 1], of shape (B, H, W) or (B, 1, H, W)
            (one action per pixel, shared by all channels) or (B, C, H, W) (one action per pixel and channel).
        validate: Check that every action is in [0, K - 1] (a device sync on GPU; without it an out-of-range action
            gives an undefined result). Shape, dtype and device are always checked.

    Returns:
        Tensor of shape (B, C, H, W) with the dtype and device of ``candidates``.

    Raises:
        ValueError: wrong shapes, dtype or device, or (with ``validate``) an action outside [0, K - 1].

    Example:
        >>> cands = torch.stack([torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)], dim=1)
        >>> select_per_pixel(cands, torch.tensor([[[0, 1], [1, 0]]]))[0, 0]
        tensor([[0., 1.],
                [1., 0.]])
    """
    if not isinstance(candidates, torch.Tensor) or candidates.ndim != 5:
        got = tuple(candidates.shape) if isinstance(candidates, torch.Tensor) else type(candidates).__name__
        raise ValueError(f"candidates must be a tensor of shape (B, K, C, H, W); got {got}")
    b, k, c, h, w = candidates.shape
    _check_pixel_actions(actions, (b, c, h, w), candidates.device, like="candidates", like_shape=candidates.shape)
    if actions.dim() == 3:
        actions = actions.unsqueeze(1)
    if validate:
        _check_action_range(actions, k, "candidates")
    index = actions.long().expand(b, c, h, w).unsqueeze(1)  # (B, 1, C, H, W)
    return candidates.gather(1, index).squeeze(1)


def group_pixels(actions: torch.Tensor, n_actions: int, *, pixels: torch.Tensor | None = None,
                 validate: bool = True) -> tuple[torch.Tensor, list[int]]:
    """Pixels sorted by their action, for computing each action only where it was chosen.

    Args:
        actions: Integer tensor (not bool) of per-pixel actions in [0, ``n_actions`` - 1], shape
            (B, H, W) or (B, 1, H, W), any device.
        n_actions: Number of actions K (>= 1).
        pixels: Optional int64 tensor (n,) of flat pixel indices ``b * H * W + y * W + x`` to
            group (e.g. the pixels of a hole); None groups every pixel.
        validate: Check that the grouped actions are in [0, K - 1] (a device sync on GPU; the
            counts are read back to the host in any case).

    Returns:
        ``(order, counts)``: ``order`` is an int64 tensor (n,) on the device of ``actions`` holding the flat pixel
        indices, grouped by action (action 0 first) and ascending within a group; ``counts`` is a list of K ints, the
        number of pixels per action, so that the pixels of action k are ``order[sum(counts[:k]): sum(counts[:k + 1])]``.

    Raises:
        ValueError: wrong shape or dtype, ``n_actions`` < 1, or (with ``validate``) an action outside [0, K - 1].

    Example:
        >>> order, counts = group_pixels(torch.tensor([[[2, 0], [0, 1]]]), 3)
        >>> order.tolist(), counts
        ([1, 2, 3, 0], [2, 1, 1])
    """
    if isinstance(n_actions, bool) or not isinstance(n_actions, int) or n_actions < 1:
        raise ValueError(f"n_actions must be an int >= 1; got {n_actions!r}")
    if not isinstance(actions, torch.Tensor):
        raise ValueError(f"actions must be an integer tensor of shape (B, H, W) or (B, 1, H, W); "
                         f"got {type(actions).__name__}")
    if actions.is_floating_point() or actions.is_complex() or actions.dtype == torch.bool:
        raise ValueError(f"actions must be an integer tensor (e.g. torch.int64); got dtype {actions.dtype}")
    if actions.ndim not in (3, 4) or (actions.ndim == 4 and actions.shape[1] != 1):
        raise ValueError(f"actions must have shape (B, H, W) or (B, 1, H, W); got {tuple(actions.shape)}")
    flat = actions.reshape(-1)
    if pixels is not None:
        if not isinstance(pixels, torch.Tensor) or pixels.ndim != 1 or pixels.dtype != torch.long:
            raise ValueError("pixels must be an int64 tensor of flat pixel indices, shape (n,); got "
                             f"{tuple(pixels.shape) if isinstance(pixels, torch.Tensor) else type(pixels).__name__}")
        flat = flat.index_select(0, pixels)
    if validate and flat.numel() > 0:
        lo, hi = int(flat.min()), int(flat.max())
        if lo < 0 or hi >= n_actions:
            raise ValueError(f"actions must be in [0, {n_actions - 1}] (K = {n_actions}); got values in [{lo}, {hi}]")
    keys = flat.to(torch.uint8) if n_actions <= _SMALL_KEY_LIMIT else flat.long()
    order, counts = sort_by_key(keys, n_actions)
    if pixels is not None:
        order = pixels.index_select(0, order)
    return order, counts


def sort_by_key(keys: torch.Tensor, n_keys: int, *,
                out: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, list[int]]:
    """Positions of ``keys`` grouped by key (a stable sort), and the number of each key (:func:`group_pixels`).

    Args:
        keys: 1-D integer tensor (uint8 sorts fastest) with values in [0, ``n_keys`` - 1].
        n_keys: Number of distinct keys.
        out: Optional ``(values, indices)`` buffers for the sort, shaped like ``keys``, with the
            dtype of ``keys`` and int64.

    Returns:
        ``(order, counts)``: int64 positions (n,) grouped by key and ascending within a key, and a
        list of ``n_keys`` counts (read back to the host).
    """
    n = keys.numel()
    if keys.device.type == "cpu" and _RADIX_PAD_FROM <= n < _RADIX_SORT_MIN and not keys.is_floating_point():
        # padding sorts after every real key (a stable sort keeps the real ones first)
        padded = torch.full((_RADIX_SORT_MIN,), torch.iinfo(keys.dtype).max, dtype=keys.dtype)
        padded[:n] = keys
        order = torch.sort(padded, stable=True).indices[:n]
    else:
        order = torch.sort(keys, stable=True, out=out).indices if out is not None \
            else torch.sort(keys, stable=True).indices
    counts = torch.bincount(keys, minlength=n_keys)[:n_keys].tolist()
    return order, counts
