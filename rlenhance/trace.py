"""What an RL restorer did: the action each pixel took at each step (:class:`ActionTrace`), how often
each action was taken (:func:`usage`), and the pictures of both (:func:`action_map_image`, :func:`legend_image`).

Every RL restorer has ``restore_traced``, which takes the arguments of its ``restore`` and returns ``(output, trace)``:

=============================================  ============================================================
restorer                                       its actions (:attr:`ActionTrace.names`)
=============================================  ============================================================
:class:`rlenhance.Enhancer`                    the alpha the policy chose, as the nearest entry of its alpha
                                               table (:attr:`ActionTrace.values`: the alphas), at the
                                               policy's working resolution
:class:`rlenhance.denoisers.PolicyDenoiser`    PixelRL's nine filters and, with a predictor, ``predict``
:class:`rlenhance.rse.RSERestorer`       the source of most of the new pixel: ``keep``, ``vae``,
                                               ``neighbours`` or ``predict`` (:data:`rlenhance.models.rse.SOURCES`)
:class:`rlenhance.completion.PolicyCompleter`  the fill actions and ``predict``; :attr:`ActionTrace.region`:
                                               the hole, the only pixels the actions change
=============================================  ============================================================

Example:
    >>> import numpy as np
    >>> maps = np.zeros((2, 1, 4, 4), np.int16)
    >>> maps[1] = 1
    >>> trace = ActionTrace(("keep", "predict"), maps)
    >>> trace.usage().tolist()
    [0.5, 0.5]
    >>> action_map_image(trace, 1).shape
    (4, 4, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from rlenhance.transitions import PREDICT_ACTION

__all__ = ["ActionTrace", "TracedRestorer", "action_colours", "action_map_image", "legend_image", "step_pictures",
           "usage"]

#: The colour of the action that takes the predictor's pixel, and of the one that keeps the pixel (RGB).
PREDICT_COLOUR = (214, 39, 40)
KEEP_COLOUR = (190, 190, 190)
#: The colours of the other actions, in action-id order: Tableau's 20 without reds and greys, then 4 more.
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189), (140, 86, 75), (227, 119, 194),
           (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120), (152, 223, 138), (197, 176, 213),
           (196, 156, 148), (247, 182, 210), (219, 219, 141), (158, 218, 229), (0, 0, 128), (128, 128, 0),
           (0, 128, 128), (255, 215, 0))
#: The colour of the pixels outside a trace's region, whose actions change nothing (RGB).
OUTSIDE_REGION = (238, 238, 238)
#: Ends of the scale of valued actions: below zero (blue), zero (white), above zero (orange).
_SCALE = {"low": (33, 102, 172), "zero": (247, 247, 247), "high": (230, 97, 1)}


@dataclass(frozen=True, eq=False)
class ActionTrace:
    """The action each pixel (or plane of a pixel) took at each step of one image's rollout.

    Attributes:
        names: the action names, index = action id.
        maps: integer (steps, P, H, W) action ids (kept as uint8 for up to 256 actions); P: planes that act
            separately (1: one action for all the channels of a pixel; 3: R, G and B, a gray model on a
            colour image, or per-channel alphas).
        region: bool (H, W), the pixels the actions act on (completion: the hole); None: every pixel.
        values: the number each action stands for (an alpha, a noise level): their colours follow a
            scale; None: the actions are categories.

    Raises:
        ValueError: maps that are not integer (steps, P, H, W) ids of ``names``, a region of another
            size, or ``values`` not one per name.
    """

    names: tuple[str, ...]
    maps: np.ndarray
    region: np.ndarray | None = None
    values: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        maps = np.asarray(self.maps)
        if maps.ndim != 4 or not np.issubdtype(maps.dtype, np.integer) or maps.size == 0:
            raise ValueError(f"maps: expected integer action ids (steps, P, H, W), got {maps.dtype} {maps.shape}")
        if maps.min() < 0 or maps.max() >= len(self.names):
            raise ValueError(f"maps: action ids {int(maps.min())}..{int(maps.max())}, expected "
                             f"0..{len(self.names) - 1} (one per name of {self.names})")
        if self.region is not None and np.shape(self.region) != maps.shape[-2:]:
            raise ValueError(f"region: shape {np.shape(self.region)}, expected the maps' (H, W) {maps.shape[-2:]}")
        if self.values is not None and len(self.values) != len(self.names):
            raise ValueError(f"values: {len(self.values)} for {len(self.names)} names")
        object.__setattr__(self, "maps", maps.astype(np.uint8 if len(self.names) <= 256 else np.int32, copy=False))
        if self.region is not None:
            object.__setattr__(self, "region", np.asarray(self.region, dtype=bool))

    @property
    def steps(self) -> int:
        """Steps of the rollout."""
        return self.maps.shape[0]

    def counts(self) -> np.ndarray:
        """int64 (steps, n_actions): per step, how many pixels (and planes) of the region took each action."""
        maps = self.maps if self.region is None else self.maps[..., self.region]
        flat = maps.reshape(self.steps, -1)
        return np.stack([np.bincount(row, minlength=len(self.names)) for row in flat]).astype(np.int64)

    def usage(self, *, per_step: bool = False) -> np.ndarray:
        """The fraction of pixel-steps (of the region) that took each action: float64 (n_actions,), or
        (steps, n_actions) with ``per_step`` (:func:`usage`)."""
        return usage([self], per_step=per_step)


@runtime_checkable
class TracedRestorer(Protocol):
    """A restorer that can say what it did: ``restore_traced(image, **restore's keywords) -> (output, trace)``."""

    def restore_traced(self, image: np.ndarray, **kwargs: Any) -> tuple[np.ndarray, ActionTrace]: ...


def usage(traces: Sequence[ActionTrace], *, per_step: bool = False) -> np.ndarray:
    """The fraction of pixel-steps that took each action over several images' traces (pooled): float64
    (n_actions,), or (steps, n_actions) with ``per_step``; NaN where no pixel was in a region.

    Raises:
        ValueError: no trace, or traces of other actions or step counts.
    """
    traces = list(traces)
    if not traces:
        raise ValueError("usage: no trace")
    first = traces[0]
    for trace in traces[1:]:
        if trace.names != first.names or trace.steps != first.steps:
            raise ValueError(f"usage: traces of other actions or steps ({trace.names}, {trace.steps} steps; expected "
                             f"{first.names}, {first.steps})")
    counts = sum(trace.counts() for trace in traces).astype(np.float64)
    if not per_step:
        counts = counts.sum(axis=0)
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts / np.where(total > 0, total, 1), np.nan)


def action_colours(names: Sequence[str], values: Sequence[float] | None = None) -> np.ndarray:
    """uint8 (n, 3) RGB: the colour of each action of ``names``. Valued actions (``values``) on a scale
    (square root of the value over the largest magnitude), white at 0, blue below, orange above; categories
    from :data:`PALETTE` in id order, ``keep`` grey and ``predict`` red."""
    if values is not None:
        values = np.asarray(values, dtype=np.float64)
        reach = float(np.abs(values).max()) or 1.0
        t = (np.sign(values) * np.sqrt(np.abs(values) / reach))[:, None]
        zero, low, high = (np.asarray(_SCALE[k], np.float64) for k in ("zero", "low", "high"))
        colours = np.where(t < 0, zero + (low - zero) * -t, zero + (high - zero) * t)
        return np.rint(colours).astype(np.uint8)
    colours, others = [], iter(PALETTE * (1 + len(names) // len(PALETTE)))
    for name in names:
        colours.append(PREDICT_COLOUR if name == PREDICT_ACTION else KEEP_COLOUR if name == "keep" else next(others))
    return np.asarray(colours, dtype=np.uint8)


def action_map_image(trace: ActionTrace, step: int, plane: int = 0, *,
                     size: tuple[int, int] | None = None) -> np.ndarray:
    """The actions of one step as a picture: each pixel in its action's colour (:func:`action_colours`),
    pixels outside the region in :data:`OUTSIDE_REGION`.

    Args:
        trace: the trace.
        step: 0-based step.
        plane: which of the trace's planes.
        size: (H, W) to show it at (nearest neighbour: block actions stay blocks); None: the maps'.

    Returns:
        uint8 RGB (H, W, 3).
    """
    if not (0 <= step < trace.steps and 0 <= plane < trace.maps.shape[1]):
        raise ValueError(f"step {step}, plane {plane}: the trace has {trace.steps} step(s) and "
                         f"{trace.maps.shape[1]} plane(s) (0-based)")
    picture = action_colours(trace.names, trace.values)[trace.maps[step, plane]]
    if trace.region is not None:
        picture = np.where(trace.region[..., None], picture, np.asarray(OUTSIDE_REGION, np.uint8))
    if size is not None and tuple(size) != picture.shape[:2]:
        picture = cv2.resize(picture, (int(size[1]), int(size[0])), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(picture)


def step_pictures(trace: ActionTrace, size: tuple[int, int], plane: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Every step's :func:`action_map_image` at ``size`` (H, W), and its caption: the step and its most
    taken action with its share, e.g. ``"actions at step 1: predict 100.0%"``."""
    per_step = trace.usage(per_step=True)
    pictures = [action_map_image(trace, k, plane, size=size) for k in range(trace.steps)]
    captions = []
    for k, shares in enumerate(per_step):
        top = int(np.nanargmax(shares)) if not np.isnan(shares).all() else None
        captions.append(f"actions at step {k + 1}: " + ("none in the region" if top is None else
                                                         f"{trace.names[top]} {100 * shares[top]:.1f}%"))
    return pictures, captions


def legend_image(traces: Sequence[ActionTrace], *, width: int = 480, row: int = 18) -> np.ndarray:
    """The legend of the traces' maps: per action taken, in id order, its colour, its name, a bar as long
    as its share of the pixel-steps (:func:`usage`) and that share in percent.

    Args:
        traces: the traces of one restorer (one image or several).
        width: of the picture, in pixels (at least 200).
        row: height of a line.

    Returns:
        uint8 RGB (4 + row x actions taken, width, 3), white background.
    """
    width = max(200, int(width))
    shares = usage(traces)
    colours = action_colours(traces[0].names, traces[0].values)
    shown = [i for i in range(len(shares)) if shares[i] > 0]
    canvas = np.full((4 + row * max(1, len(shown)), width, 3), 255, np.uint8)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    label = min(150, width // 3)  # the names' column
    bar = width - label - 64  # the bars' column; the percentages after it
    for k, index in enumerate(shown):
        y = 2 + k * row
        colour = tuple(int(c) for c in colours[index])
        cv2.rectangle(canvas, (2, y + 3), (row - 4, y + row - 3), colour, -1)
        name = traces[0].names[index]
        fit = min(scale, scale * (label - row - 4) / max(1, cv2.getTextSize(name, font, scale, 1)[0][0]))
        cv2.putText(canvas, name, (row, y + row - 5), font, fit, (40, 40, 40), 1, cv2.LINE_AA)
        length = max(1, round(bar * float(shares[index])))
        cv2.rectangle(canvas, (label, y + 3), (label + length, y + row - 3), colour, -1)
        cv2.putText(canvas, f"{100 * shares[index]:.1f}%", (label + bar + 4, y + row - 5), font, scale,
                    (40, 40, 40), 1, cv2.LINE_AA)
    return canvas
