"""Video: what carries a clip's low-light enhancement from frame to frame, so that it does not flicker
(:class:`TemporalSmoothing`, read by :meth:`rlenhance.enhance.Enhancer.enhance_array`)."""

from __future__ import annotations

import torch

from rlenhance.data.transforms import fit_longer_side
from rlenhance.transitions import LE, ActionFamily


class TemporalSmoothing:
    """What carries a clip's enhancement decisions from frame to frame (``Enhancer.enhance_array(...,
    temporal=...)``, one object per clip, its frames in order), so that its brightness does not flicker.

    * The alpha maps: each frame's (as applied: coupled, damped and capped) are blended with those of the
      frames before, an exponential moving average ``m_t = (1 - w) m_(t-1) + w a_t`` with ``w = maps_weight``
      (:meth:`blend`), each step capped again on the frame.
    * The gain: each frame's result is scaled by ``b_t / mean_t`` (:meth:`gain`), its mean brightness
      brought to the moving average ``b_t`` of the frames' means, weight ``gain_weight`` (FFmpeg's ``deflicker``).

    A scene cut restarts both: the mean absolute difference of two consecutive working images (pooled to
    ``CUT_SIDE`` pixels a side) above ``cut`` times their mean brightness. The weights were chosen with
    ``python -m benchmarks.video``.

    Args:
        maps_weight, gain_weight: the current frame's share of each average, in (0, 1] (1: each frame alone).
        cut: the relative change of the working image taken for a cut, > 0.

    Example:
        >>> import numpy as np
        >>> from rlenhance import Enhancer
        >>> smoothing = TemporalSmoothing()
        >>> clip = [np.full((8, 8, 3), 40, np.uint8)] * 3
        >>> out = [Enhancer().enhance_array(frame, temporal=smoothing).image for frame in clip]  # doctest: +SKIP
    """

    #: The defaults: a frame's maps weigh a half, its brightness a quarter; a cut is a 30% change of brightness.
    MAPS_WEIGHT, GAIN_WEIGHT, CUT = 0.5, 0.25, 0.3
    #: The longer side of the images compared for a cut.
    CUT_SIDE = 32

    def __init__(self, maps_weight: float = MAPS_WEIGHT, gain_weight: float = GAIN_WEIGHT, cut: float = CUT):
        for name, weight in (("maps_weight", maps_weight), ("gain_weight", gain_weight)):
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= 1:
                raise ValueError(f"{name}: expected the current frame's share, 0 < {name} <= 1; got {weight!r}")
        if isinstance(cut, bool) or not isinstance(cut, (int, float)) or not cut > 0:
            raise ValueError(f"cut: expected a relative change > 0; got {cut!r}")
        self.maps_weight, self.gain_weight, self.cut = float(maps_weight), float(gain_weight), float(cut)
        #: The working planes of the clip's frames, reused from frame to frame.
        self.scratch: dict = {}
        self.reset()

    def reset(self) -> None:
        """Forget the frames so far (the next one starts the averages)."""
        self.previous: torch.Tensor | None = None
        self.maps: list[torch.Tensor] | None = None
        self.brightness: float | None = None
        #: Scene cuts met (the first frame is none).
        self.cuts = 0

    def is_cut(self, small: torch.Tensor) -> bool:
        """Whether the frame whose working image is ``small`` (1, 3, h, w) starts a new scene after the
        previous frame (the first frame does)."""
        current, previous = fit_longer_side(small, self.CUT_SIDE), self.previous
        self.previous = current
        if previous is None or previous.shape != current.shape:
            return True
        brightness = max(float((previous + current).mean()) / 2, 1 / 255)
        return float((current - previous).abs().mean()) > self.cut * brightness

    def blend(self, small: torch.Tensor, maps: list[torch.Tensor], limit: float | torch.Tensor | None = None, *,
              family: type[ActionFamily] = LE) -> list[torch.Tensor]:
        """The maps to apply to the frame whose working image is ``small``, its own maps being ``maps``, capped
        again at ``limit`` on this frame by the steps of the checkpoint's action ``family``
        (:meth:`ActionFamily.step`: a blend holds the cap of the step as each frame's maps do)."""
        first = self.previous is None
        if self.is_cut(small) or self.maps is None or [m.shape for m in self.maps] != [m.shape for m in maps]:
            self.cuts += not first
            self.brightness = None
            blended = [m.clone() for m in maps]
        else:
            blended = [torch.lerp(before, now, self.maps_weight) for before, now in zip(self.maps, maps)]
        self.maps = blended
        if limit is None:
            return blended
        capped, current = [], small
        for alpha in blended:
            alpha, current = family.step(current, alpha, limit)
            capped.append(alpha)
            current = current.clamp(0.0, 1.0)
        return capped

    def gain(self, mean: float) -> float:
        """The factor the frame whose result has the mean brightness ``mean`` is scaled by (1 after a cut)."""
        before = self.brightness
        self.brightness = mean if before is None else before + self.gain_weight * (mean - before)
        return self.brightness / mean if mean > 0 else 1.0
