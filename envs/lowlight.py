"""Low-light enhancement as a pixel-wise MDP (ReLLIE-style curve estimation)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from envs.base import ACTION_PENALTY_WEIGHT, PixelEnv, PixelTask, PixelVectorEnv
from envs.rewards import build_terms
from rlenhance import losses, metrics
from rlenhance.data import RowDraws, RowStream, synthetic_low_light
from rlenhance.data.illumination import uneven_low_light
from rlenhance.ops import check_max_overshoot
from rlenhance.transitions import COND_ENCODINGS, COND_FIELDS, RELLIE_ALPHAS, LowLightTransition

REWARDS = ("nonref", "ssim", "psnr", "mse")
#: ReLLIE's alphas from 0 up: the brightening-only actions of the shipped policy (the default table).
BRIGHTENING_ALPHAS = tuple(a for a in RELLIE_ALPHAS if a >= 0.0)
#: The default sampling range of each reward weight of a conditioned env (the shipped policy's).
DEFAULT_WEIGHT_RANGES: Mapping[str, tuple[float, float]] = MappingProxyType({
    "w_exposure": (100.0, 1000.0), "w_color": (20.0, 10000.0), "w_spatial": (1.0, 1000.0), "w_smooth": (0.1, 100.0)})
#: The reward weights among them (each may get its own sampling range, ``weight_ranges``).
WEIGHT_FIELDS = COND_FIELDS[1:]
#: How a conditioned env draws the reward weights: "joint" (each from its range, independently) or
#: "one" (per image, one weight drawn from its range, or none, the others at their defaults).
WEIGHT_DRAWS = ("joint", "one")


class LowLightTask(PixelTask):
    """Batched core of :class:`LowLightEnv`; see its docstring for the MDP."""

    def __init__(
        self,
        num_envs: int,
        *,
        max_episode_steps: int = 10,
        crop: int | tuple[int, int] | None = 128,
        curve: str = "le",
        action_type: str = "discrete",
        alpha_channels: int = 1,
        alpha_table: tuple[float, ...] = BRIGHTENING_ALPHAS,
        damping: float = 0.0,
        reward: str = "nonref",
        w_exposure: float = 300.0,
        w_color: float = 20.0,
        w_spatial: float = 1.0,
        w_smooth: float = 10.0,
        exposure_target: float = 0.4,
        exposure_patch: int = 32,
        exposure_mean: float = 4.0,
        exposure_over: float = 0.0,
        exposure_relative: bool = True,
        exposure_relative_floor: float = 0.0,
        conditioned: bool = True,
        exposure_range: tuple[float, float] = (0.3, 0.8),
        weight_range: tuple[float, float] = (1.0, 1.0),
        weight_ranges: Mapping[str, tuple[float, float]] | None = DEFAULT_WEIGHT_RANGES,
        channel_coupling: float = 0.0,
        cond_scale: tuple[float, ...] | None = None,
        cond_offset: tuple[float, ...] | None = None,
        reward_scale: float = 255.0,
        observe_exposure_gap: bool = True,
        smooth_in_reward: bool = False,
        smooth_power: int = 1,
        cond_encoding: str = "log",
        weight_draw: str = "one",
        max_overshoot: float | None = None,
        overshoot_weighted: bool = False,
        uneven: float = 0.0,
        terms: Mapping[str, float] = MappingProxyType({}),
        **common: Any,
    ):
        super().__init__(num_envs, max_episode_steps=max_episode_steps, crop=crop, data_kind="paired", **common)
        if reward not in REWARDS:
            raise ValueError(f"reward: expected one of {REWARDS}, got {reward!r}")
        if weight_draw not in WEIGHT_DRAWS:
            raise ValueError(f"weight_draw: expected one of {WEIGHT_DRAWS}, got {weight_draw!r}")
        if action_type not in ("discrete", "continuous"):
            raise ValueError(f"action_type: expected 'discrete' or 'continuous', got {action_type!r}")
        if alpha_channels not in (1, 3):
            raise ValueError(f"alpha_channels: expected 3 (one curve per RGB channel, ReLLIE) or 1 (one curve for "
                             f"all three, which keeps the colours), got {alpha_channels!r}")
        weights = {"w_exposure": w_exposure, "w_color": w_color, "w_spatial": w_spatial, "w_smooth": w_smooth}
        for name, value in weights.items():
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name}: reward weights must be finite and >= 0, got {value!r}")
        if not 0.0 <= channel_coupling <= 1.0:
            raise ValueError(f"channel_coupling: expected 0 <= channel_coupling <= 1 (ReLLIE: 0.9), "
                             f"got {channel_coupling!r}")
        if channel_coupling and alpha_channels != 3:
            raise ValueError("channel_coupling: couples per-channel alphas; needs alpha_channels=3")
        if not 0.0 <= damping < 1.0:
            raise ValueError(f"damping: expected 0 <= damping < 1, got {damping!r}")
        for name, value, accepted in (("exposure_mean", exposure_mean, "weight >= 0 (0: patches only)"),
                                      ("exposure_over", exposure_over, "weight >= 0 (0: symmetric)"),
                                      ("exposure_relative_floor", exposure_relative_floor, "factor >= 0 (0: none)")):
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected a finite {accepted}, got {value!r}")
        if not 0.0 < exposure_target < 1.0:
            raise ValueError(f"exposure_target: expected a value in (0, 1), got {exposure_target!r}")
        if not (0 < exposure_range[0] <= exposure_range[1] < 1) or not (0 < weight_range[0] <= weight_range[1]):
            raise ValueError(f"exposure_range/weight_range: expected 0 < lo <= hi (< 1 for exposure), "
                             f"got {exposure_range!r} / {weight_range!r}")
        if cond_encoding not in COND_ENCODINGS:
            raise ValueError(f"cond_encoding: expected one of {COND_ENCODINGS}, got {cond_encoding!r}")
        ranges = _setting_ranges(exposure_range, weight_range, weights, weight_ranges or {})
        #: Per ``COND_FIELDS`` value, "log" or "linear": how ``cond`` encodes it.
        self.cond_encodings = tuple("log" if cond_encoding == "log" and name in WEIGHT_FIELDS and 0 < lo < hi
                                    else "linear" for name, (lo, hi) in ranges.items())
        auto_offset, auto_scale = _cond_normalisation([
            (np.log(lo), np.log(hi)) if encoding == "log" else (lo, hi)
            for (lo, hi), encoding in zip(ranges.values(), self.cond_encodings)])
        cond_scale = auto_scale if cond_scale is None else tuple(cond_scale)
        cond_offset = auto_offset if cond_offset is None else tuple(cond_offset)
        if len(cond_scale) != len(COND_FIELDS) or min(cond_scale) <= 0:
            raise ValueError(f"cond_scale: expected {len(COND_FIELDS)} positive values for {COND_FIELDS}, "
                             f"got {cond_scale!r}")
        if len(cond_offset) != len(COND_FIELDS) or not np.all(np.isfinite(cond_offset)):
            raise ValueError(f"cond_offset: expected {len(COND_FIELDS)} finite values for {COND_FIELDS}, "
                             f"got {cond_offset!r}")
        self.reward = reward
        self.action_type = action_type
        self.alpha_channels = alpha_channels
        self.alpha_table = torch.tensor(alpha_table, dtype=torch.float32, device=self.device)
        self.n_actions = len(alpha_table) if action_type == "discrete" else None
        self.damping = float(damping)
        self.weights = weights
        self.exposure_target = float(exposure_target)
        self.exposure_patch = int(exposure_patch)
        self.exposure_mean = float(exposure_mean)
        self.exposure_over = float(exposure_over)
        self.exposure_relative = bool(exposure_relative)
        self.exposure_relative_floor = float(exposure_relative_floor)
        self.conditioned = conditioned
        self.exposure_range = tuple(exposure_range)
        self.weight_range = tuple(weight_range)
        #: Sampling range of each conditioning value (``COND_FIELDS`` order) when conditioned.
        self.sampling_ranges = ranges
        self.weight_draw = weight_draw
        self.channel_coupling = float(channel_coupling)
        #: The fixed-weight reward terms, ``{name or import path: weight}`` (:mod:`envs.rewards`).
        self.terms = dict(terms)
        self._terms = build_terms(terms)
        self.cond_scale = torch.tensor(cond_scale, dtype=torch.float32, device=self.device)
        self.cond_offset = torch.tensor(cond_offset, dtype=torch.float32, device=self.device)
        self.cond_log = torch.tensor([e == "log" for e in self.cond_encodings], dtype=torch.bool, device=self.device)
        self.reward_scale = float(reward_scale)
        self.observe_exposure_gap = bool(observe_exposure_gap)
        self.smooth_in_reward = bool(smooth_in_reward)
        if smooth_power not in (1, 2):
            raise ValueError(f"smooth_power: expected 1 (absolute alpha differences) or 2 (squared, Zero-DCE's), "
                             f"got {smooth_power!r}")
        #: The power of the alpha differences in :meth:`action_penalty`.
        self.smooth_power = int(smooth_power)
        self.max_overshoot = check_max_overshoot(max_overshoot)
        lowest_w = ranges["w_exposure"][0] if conditioned else w_exposure  # the lowest exposure weight of an episode
        if overshoot_weighted and (self.max_overshoot is None or not lowest_w > 0):
            raise ValueError(f"overshoot_weighted: weights the cap max_overshoot by w_exposure; needs a max_overshoot "
                             f"and exposure weights > 0, got max_overshoot={max_overshoot!r}, lowest w_exposure "
                             f"{lowest_w!r}")
        self.overshoot_weighted = bool(overshoot_weighted)
        if not 0.0 <= uneven <= 1.0:
            raise ValueError(f"uneven: expected a fraction of episodes in [0, 1], got {uneven!r}")
        self.uneven = float(uneven)
        #: The step (actions, coupling, damping, cap, setting encoding), as checkpoints record it.
        self.transition = LowLightTransition(
            curve=curve, action_type=action_type, alpha_table=tuple(alpha_table), alpha_channels=alpha_channels,
            channel_coupling=self.channel_coupling, damping=self.damping, max_overshoot=self.max_overshoot,
            overshoot_reference=float(w_exposure) if self.overshoot_weighted else None, cond_fields=COND_FIELDS,
            cond_scale=cond_scale, cond_offset=cond_offset, cond_encodings=self.cond_encodings,
            observe_exposure_gap=self.observe_exposure_gap, steps=self.max_episode_steps)

        h, w = self.image_size
        image = spaces.Box(0.0, 1.0, (3, h, w), np.float32)
        self.single_observation_space = spaces.Dict({
            "image": image,
            "original": image,
            "cond": spaces.Box(-np.inf, np.inf, (len(COND_FIELDS),), np.float32),
        })
        if self.observe_exposure_gap:
            self.single_observation_space["exposure_gap"] = spaces.Box(-1.0, 1.0, (1, h, w), np.float32)
        if action_type == "discrete":
            self.single_action_space = spaces.MultiDiscrete(np.full((alpha_channels, h, w), len(alpha_table)))
        else:
            self.single_action_space = spaces.Box(-1.0, 1.0, (alpha_channels, h, w), np.float32)

    # --- episode start ---------------------------------------------------------------------
    def _start(self, rng: np.random.Generator, options: dict[str, Any] | None) -> None:
        if options:
            channels = self.single_observation_space["image"].shape[0]
            batch = self.options_batch(options, {"low": channels, "high": channels}, ("low",),
                                       vectors={"cond": len(COND_FIELDS)})
        else:
            batch = self.draw_start()
        self.original = batch["low"].clamp(0.0, 1.0)
        self.high = batch.get("high")
        if self.reward != "nonref" and self.high is None:
            raise ValueError(f"reward={self.reward!r} needs references (paired data with high/); "
                             "use reward='nonref' for unpaired images")
        self.image = self.original.clone()
        self.cond = batch["cond"] if "cond" in batch else self._encode_cond(self._sample_setting(rng, self.num_envs))
        setting = self.transition.decode(self.cond)
        self.target, *self.w = (c.view(-1, 1, 1, 1) for c in setting.unbind(1))
        #: whether any row weights the exposure, colour and spatial terms (a term no row weights is not computed)
        self.weighted = [bool(w.any()) for w in self.w[:3]]
        if self.high is None and (self.uneven or not any(self.weighted) and self._terms
                                  and all(term.needs_reference for _, term in self._terms)):
            raise ValueError(f"{'uneven' if self.uneven else 'terms'}: needs references (paired data with high/), "
                             f"{'to relight' if self.uneven else 'the reward is the distance to them'}; these images "
                             "have none")
        for _, term in self._terms:
            term.reset(self)
        self.state_loss = self._state_loss(self.image)

    def _draw(self, rows: RowDraws) -> dict[str, Any]:
        batch = self.draw_batch(rows)
        if "low" not in batch:  # clean photos only: darken them synthetically (each row's from its numbers)
            batch["low"] = synthetic_low_light(batch["high"], generator=rows.stream("darkening"))
        if self.uneven and "high" in batch:  # some rows relit by uneven light instead
            relit = np.flatnonzero(rows.stream("uneven").random(len(rows)) < self.uneven)
            if relit.size:
                at = torch.from_numpy(relit).to(self.device)
                batch["low"] = batch["low"].clone()
                batch["low"][at] = uneven_low_light(batch["high"][at], generator=rows.select(relit).stream("relight"))
        batch["cond"] = self._encode_cond(self._sample_setting(rows.stream("setting"), len(rows)))
        return batch

    def reset_info(self) -> dict[str, torch.Tensor]:
        """``{ACTION_PENALTY_WEIGHT: w_smooth}`` (float32 (B,)) with ``smooth_in_reward=False``; ``{}`` otherwise."""
        return {} if self.smooth_in_reward else {ACTION_PENALTY_WEIGHT: self.w[3].reshape(-1).clone()}

    @property
    def action_values(self) -> tuple[float, ...] | None:
        """The alpha of each discrete action (the transition's table); None for continuous actions."""
        return self.transition.alpha_table if self.transition.action_type == "discrete" else None

    def action_penalty(self, actions: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Each row's weight times the illumination smoothness (B,) of its alpha maps ``actions`` (B, C, h, w)
        (:func:`rlenhance.losses.illumination_smoothness_loss`, power ``smooth_power``)."""
        tv = losses.illumination_smoothness_loss(actions, power=self.smooth_power)
        return tv if weights is None else tv * weights.view(-1).to(tv.dtype)

    def setting_cond(self, n: int, exposure_target: float | None = None) -> torch.Tensor:
        """The encoded cond of the env's fixed setting (or the ``exposure_target`` given), repeated (n, 5)."""
        target = self.exposure_target if exposure_target is None else float(exposure_target)
        return self._encode_cond(np.array([[target, *self.weights.values()]])).expand(n, -1)

    def _encode_cond(self, values: np.ndarray) -> torch.Tensor:
        """Setting values (B, 5) in ``COND_FIELDS`` order -> the cond the policy sees, (B, 5) float32."""
        return self.transition.encode(torch.as_tensor(values, dtype=torch.float32, device=self.device))

    @property
    def setting_ranges(self) -> dict[str, tuple[float, float]]:
        """``{name: (low, high)}`` of the settings a conditioned env varies (fixed ones left out); ``{}`` otherwise."""
        if not self.conditioned:
            return {}
        return {name: (lo, hi) for name, (lo, hi) in self.sampling_ranges.items() if hi > lo}

    def _sample_setting(self, rng: np.random.Generator | RowStream, n: int) -> np.ndarray:
        """Setting values (n, 5) in ``COND_FIELDS`` order, not encoded: the fixed setting, or when conditioned the
        exposure target uniform and each weight log-uniform in its range (uniform from 0); ``weight_draw="one"``
        draws one weight per image, or none. ``rng``: a numpy Generator or a :class:`rlenhance.data.RowStream`."""
        values = np.array([self.exposure_target, *self.weights.values()], dtype=np.float64)
        values = np.tile(values, (n, 1))
        if self.conditioned:
            values[:, 0] = rng.uniform(*self.exposure_range, size=n)
            # one draw per weight and image, also for a fixed weight (keeps the random stream)
            draws = rng.uniform(size=(n, len(WEIGHT_FIELDS)))
            drawn_here = np.ones_like(draws, dtype=bool)
            if self.weight_draw == "one":
                varied = [i for i, name in enumerate(WEIGHT_FIELDS) if name in self.setting_ranges]
                pick = rng.integers(0, len(varied) + 1, size=n)  # len(varied): every weight at its default
                drawn_here = np.array(varied + [-1])[pick][:, None] == np.arange(len(WEIGHT_FIELDS))
            for i, name in enumerate(WEIGHT_FIELDS, start=1):
                lo, hi = self.sampling_ranges[name]
                if lo == 0.0:
                    drawn = hi * draws[:, i - 1]
                else:
                    drawn = np.exp(np.log(lo) + (np.log(hi) - np.log(lo)) * draws[:, i - 1])
                values[:, i] = np.where(drawn_here[:, i - 1], drawn, values[:, i])
        return values

    # --- observation, transition, reward ---------------------------------------------------
    def observe(self) -> dict[str, torch.Tensor]:
        obs = {"image": self.image, "original": self.original, "cond": self.cond}
        if self.observe_exposure_gap:
            obs["exposure_gap"] = losses.exposure_gap(self.image, self.target)
        return obs

    def alpha(self, actions: torch.Tensor) -> torch.Tensor:
        """Curve parameters (B, alpha_channels, H, W) for a batch of actions (one channel broadcasts to RGB)."""
        return self.transition.alpha(actions)

    def _transition(self, actions: torch.Tensor) -> torch.Tensor:
        previous = self.image
        alpha, self.image = self.transition.step(previous, self.alpha(actions),
                                                 self.transition.limit(self.target.view(-1), self.w[0].view(-1)))
        if self.reward == "nonref":
            loss = self._state_loss(self.image)
            reward_map = self.state_loss - loss
            if self.smooth_in_reward:
                reward_map = reward_map - self.w[3] * losses.illumination_smoothness_loss(alpha, return_map=True)[1]
            self.state_loss = loss
            return reward_map
        if self.reward == "ssim":
            return (metrics.ssim(self.image, self.high, return_map=True)[1]
                    - metrics.ssim(previous, self.high, return_map=True)[1])
        if self.reward == "psnr":
            gain = (metrics.psnr(self.high, self.image, mse_floor=1e-10)
                    - metrics.psnr(self.high, previous, mse_floor=1e-10))
            return gain.view(-1, 1, 1, 1).expand(-1, 1, *self.image.shape[-2:])
        return ((self.high - previous) ** 2 - (self.high - self.image) ** 2) * self.reward_scale

    def _state_loss(self, image: torch.Tensor) -> torch.Tensor | None:
        """Weighted non-reference loss map of a state (B, 1, H, W); the per-step reward is its decrease."""
        if self.reward != "nonref":
            return None
        loss = image.new_zeros(image.shape[0], 1, *image.shape[-2:])
        if self.weighted[0]:
            exposure = losses.exposure_loss(image, target=self.target, patch_size=self.exposure_patch,
                                            over=self.exposure_over, return_map=True)[1]
            if self.exposure_mean:  # the whole image's mean as one more patch: every pixel shares its error
                mean = image.mean(dim=(1, 2, 3), keepdim=True)
                exposure = exposure + self.exposure_mean * losses.exposure_score(mean, self.target,
                                                                                 over=self.exposure_over)
            if self.exposure_relative:  # errors relative to each episode's target, as scaled at the default one
                exposure = exposure * (self.exposure_target / self.target).pow(2).clamp(
                    min=self.exposure_relative_floor)
            loss = loss + self.w[0] * exposure
        if self.weighted[1]:
            loss = loss + self.w[1] * losses.color_constancy_loss(image, return_map=True)[1]
        if self.weighted[2]:
            loss = loss + self.w[2] * losses.spatial_consistency_loss(image, self.original, return_map=True)[1]
        for weight, term in self._terms:
            loss = loss + weight * term(image, self)
        return loss


def _setting_ranges(exposure_range: tuple[float, float], weight_range: tuple[float, float],
                    weights: dict[str, float], weight_ranges: dict[str, tuple[float, float]]
                    ) -> dict[str, tuple[float, float]]:
    """Sampling range of each ``COND_FIELDS`` value: ``exposure_range``; a weight's own or ``w * weight_range``."""
    unknown = sorted(set(weight_ranges) - set(WEIGHT_FIELDS))
    if unknown:
        raise ValueError(f"weight_ranges: unknown weight(s) {unknown}; expected some of {WEIGHT_FIELDS}")
    ranges = {"exposure_target": (float(exposure_range[0]), float(exposure_range[1]))}
    for name, w in weights.items():
        lo, hi = weight_ranges.get(name, (w * weight_range[0], w * weight_range[1]))
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo <= w <= hi):
            raise ValueError(f"weight_ranges[{name!r}]: expected 0 <= low <= {name} ({w:g}) <= high, got "
                             f"({lo!r}, {hi!r})")
        ranges[name] = (float(lo), float(hi))
    return ranges


def _cond_normalisation(ranges: list[tuple[float, float]]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(offset, scale) mapping each sampling range onto [-1, 1]; a fixed value gets scale 1, offset the value."""
    offset = tuple(float(lo + hi) / 2 for lo, hi in ranges)
    scale = tuple(float(hi - lo) / 2 if hi > lo else 1.0 for lo, hi in ranges)
    return offset, scale


class LowLightEnv(PixelEnv):
    """Low-light enhancement by iterated per-pixel LE curves (ReLLIE).

    ## Description
    The state is an RGB image. At every step each pixel and channel picks a curve parameter alpha and the image
    moves along the light-enhancement curve ``LE(x) = x + alpha * x * (1 - x)`` (Zero-DCE / ReLLIE). With
    ``damping=d`` the update is ReLLIE's ``s <- (1 - d) LE(s) + d s``, one LE step with alpha scaled by ``1 - d``.

    ## Action Space
    ``action_type="discrete"`` (default): ``MultiDiscrete(np.full((C, H, W), n))``, an index per pixel and alpha
    channel into ``alpha_table`` (default ``BRIGHTENING_ALPHAS``, ReLLIE's alphas from 0 up; ReLLIE's 27 values
    ``RELLIE_ALPHAS``, index a -> (a - 6) / 20, also darken):

    | index (default table) | alpha | effect          |
    |-----------------------|-------|-----------------|
    | 0                     | 0.00  | keep (identity) |
    | 1..20                 | 0.05..1.00 | brighten   |

    ``action_type="continuous"``: ``Box(-1, 1, (C, H, W), float32)``, the action is alpha itself. With
    ``alpha_channels=1`` (default, C = 1) one alpha per pixel is applied to all three channels (brightness, not
    hue); with 3, one per RGB channel (ReLLIE).

    ## Observation Space
    ``Dict`` with ``"image"``: the current image, ``Box(0, 1, (3, H, W), float32)``, RGB; ``"original"``: the
    episode's low-light input, same space; ``"cond"``: ``Box(-inf, inf, (5,))``, the exposure target and the four
    reward weights (order ``COND_FIELDS``), each encoded as ``(value - cond_offset) / cond_scale`` (by default
    each value's sampling range mapped onto [-1, 1]). With ``cond_encoding="log"`` a weight sampled over
    ``0 < low < high`` is encoded by its log instead (``cond_encodings`` says which fields are).
    With ``observe_exposure_gap=True`` also ``"exposure_gap"``, ``Box(-1, 1, (1, H, W))``: ``E - mean_c(image)``
    per pixel (``rlenhance.losses.exposure_gap``).

    ## Transition
    One LE step per action, ``s' = LE(s; (1 - damping) alpha)`` (with ``channel_coupling`` the R and G alphas are
    first coupled to B's). With ``max_overshoot = o`` (None: off; ``0 <= o < 1``) a step that would lift an
    image's mean above ``E + o`` is scaled down to end there (``rlenhance.ops.cap_mean``), as
    ``rlenhance.Enhancer`` does. With ``overshoot_weighted=True`` an episode's cap is ``o sqrt(w_0 / w)``, ``w``
    its exposure weight, ``w_0`` the env's ``w_exposure`` (``rlenhance.ops.overshoot_limit``). The reward's
    smoothness term sees the capped alpha map.

    ## Rewards
    Per pixel, the decrease of a loss between the previous and the new state. ``reward="nonref"``:
    ``L(s) = w_exposure * (exposure(s, E) + m * (mean(s) - E)^2) + w_color * colour_constancy(s) +
    w_spatial * spatial_consistency(s, original)`` (``exposure`` over ``exposure_patch`` patches;
    ``m = exposure_mean``; with ``exposure_over = o`` an error above E counts ``1 + o`` times; with
    ``exposure_relative=True`` the exposure term is multiplied by ``(E_0 / E)^2``, ``E_0`` the default
    ``exposure_target``, at least ``exposure_relative_floor``) and
    ``r_t = L(s_{t-1}) - L(s_t) - w_smooth * TV(alpha_t)``. With ``smooth_in_reward=False`` the smoothness term
    is left out of ``r_t`` and the reset's info hands ``w_smooth`` to the agent as
    ``info["action_penalty_weight"]`` (a float; float32 (B,) from the vector env) for ``action_penalty``
    (differences to the power ``smooth_power``) on the alpha map it means to take. With references (paired
    data): ``"ssim"`` (SSIM-map gain), ``"psnr"`` (per-image PSNR gain, constant over the image) or ``"mse"``
    (decrease of squared error x ``reward_scale``, per channel). The scalar reward is the mean of
    ``info["reward_map"]``; the identity action (alpha = 0) earns exactly 0.

    ## Starting State
    A random image of ``data`` (random crop and flips), or the images given as
    ``reset(options={"low": ..., "high": ..., "cond": ...})``. Clean images without a low-light partner are
    darkened by ``rlenhance.data.synthetic_low_light``. With ``conditioned=True`` the setting is drawn per image
    (see ``weight_draw``). Given images are numpy arrays or torch tensors, channels first ((C, H, W), or
    (B, C, H, W) for the vector env), of the env's (H, W), float in [0, 1] or uint8 / uint16; others raise
    ``rlenhance.errors.ImageError`` (a ``ValueError``). ``"low"`` is required, ``"high"`` optional (3, H, W);
    ``"cond"``, the encoded conditioning vector, is (5,) (or (B, 5)), finite.

    ## Episode End
    Truncation after 10 steps (ReLLIE trains with 10 and tests with 6); never terminates. Gymnasium's
    ``TimeLimit`` truncates the one-image env (``gym.make(id, max_episode_steps=N)``); the vector env
    (``envs.make_vec(id, max_episode_steps=N)``) truncates its B episodes itself.

    ## Arguments
    The defaults are the shipped policy's env (``rlenhance/weights/lowlight_a3c.pt``; its inference cap is recorded
    in the checkpoint and applied by ``envs.make_for_checkpoint``). Those of :class:`envs.base.PixelTask`
    (``crop`` 128), those named in the sections above, and ``conditioned``, ``exposure_range``, ``weight_range``
    (a log-uniform factor on each weight), ``weight_ranges`` (a weight's own range ``{name: (low, high)}``,
    holding its value), ``weight_draw`` (``"joint"``: every ranged weight drawn for every image; ``"one"``: per
    image one ranged weight, or none, the others at their defaults), ``channel_coupling`` (ReLLIE's 0.9: R and G
    alphas become ``c alpha_B + (1 - c) alpha_own``, with ``alpha_channels=3``), ``terms`` (fixed-weight reward
    terms, ``{name or import path: weight}``, :mod:`envs.rewards`), ``curve`` (the action family,
    :mod:`rlenhance.transitions`), ``uneven`` (the fraction of episodes whose dark image is the reference relit by
    :func:`rlenhance.data.uneven_low_light`), ``smooth_power`` (1 or 2); ``max_episode_steps`` for the vector env
    only. ``render_mode``: None or ``"rgb_array"`` (uint8 (H, W, 3) RGB).

    ## Version History
    * v1: per-row episode draws (``rlenhance.data.RowDraws``: env i's start does not depend on ``num_envs``);
      ``terms`` replaces ``w_color_ratio``; new ``curve`` and ``uneven``, whose defaults change nothing.
    * v0: the shipped policy's env (conditioned, brightening alphas, one curve for RGB, a recorded inference
      cap, ``render_mode="rgb_array"``, checked ``reset(options=...)``).
    """

    task_class = LowLightTask


class LowLightVectorEnv(PixelVectorEnv):
    """Batched torch twin of :class:`LowLightEnv` (same task, B images on ``device``).

    ``max_episode_steps`` (default 10) is the vector env's own. With ``smooth_in_reward=False`` the reset's info
    holds ``"action_penalty_weight"``, float32 (B,) on ``device``: each row's ``w_smooth``.
    """

    task_class = LowLightTask

    @property
    def cond_scale(self) -> torch.Tensor:
        """float32 (5,): ``obs["cond"] * cond_scale + cond_offset`` are the setting's values (logs where "log")."""
        return self.task.cond_scale

    @property
    def cond_offset(self) -> torch.Tensor:
        """float32 (5,): see :attr:`cond_scale`."""
        return self.task.cond_offset

    @property
    def cond_encodings(self) -> tuple[str, ...]:
        """"linear" or "log" per ``COND_FIELDS`` value: how ``obs["cond"]`` encodes it (see :attr:`cond_scale`)."""
        return self.task.cond_encodings
