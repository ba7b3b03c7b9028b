"""RSE-RL denoising as a pixel-wise MDP: per-pixel blends toward a patch VAE's reconstruction and
the decoded mean of the nearest clean patch latents, rewarded by the error decrease and
de-blocking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import VectorObservationWrapper
from gymnasium.vector.utils import batch_space

from envs.base import PixelEnv, PixelTask, PixelVectorEnv
from envs.denoise import draw_noisy, start_noisy
from rlenhance.data import RowDraws
from rlenhance.models.rse import RSERound, rse_blend
from rlenhance.models.vae import seam_energy

__all__ = ["RSEEnv", "RSETask", "RSEVectorEnv", "StackObservation", "default_round", "make_rse_vec"]

#: The default (untrained) round of an env made without ``model``: for the env contract and tests only.
_DEFAULT_ROUND = dict(patch=16, stride=8, latent_dim=8, hidden=32, bank_size=64, clusters=4, neighbours=4, width=8)
_DEFAULT_ROUND_SEED = 0


def default_round(channels: int) -> RSERound:
    """A small untrained :class:`RSERound` with fixed weights and random bank latents (same every call, global
    RNG untouched); its candidates are meaningless: pass a trained round as ``model``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_DEFAULT_ROUND_SEED)
        stage = RSERound(channels, **_DEFAULT_ROUND)
        latents = torch.randn(stage.bank.size, stage.vae.latent_dim)
    stage.bank.fit(latents, seed=_DEFAULT_ROUND_SEED)
    return stage.eval()


class RSETask(PixelTask):
    """Batched core of :class:`RSEEnv`; see its docstring for the MDP."""

    #: Continuous actions.
    action_dtype = torch.float32

    def __init__(
        self,
        num_envs: int,
        *,
        crop: int | tuple[int, int] | None = 64,
        max_episode_steps: int | None = 1,
        sigma: float | Sequence[float] = 25.0,
        gray: bool = False,
        model: RSERound | None = None,
        w_deblock: float = 1.0,
        reward_scale: float = 255.0,
        **common: Any,
    ):
        super().__init__(num_envs, crop=crop, max_episode_steps=max_episode_steps, data_kind="clean", gray=gray,
                         **common)
        sigmas = np.atleast_1d(np.asarray(sigma, dtype=np.float64))
        if sigmas.size == 0 or not np.all(np.isfinite(sigmas)) or np.any(sigmas < 0):
            raise ValueError(f"sigma: expected a noise level >= 0 (0-255 scale) or a sequence of them, got {sigma!r}")
        if not (np.isfinite(w_deblock) and w_deblock >= 0):
            raise ValueError(f"w_deblock: expected a finite number >= 0, got {w_deblock!r}")
        self.sigmas = sigmas
        self.channels = 1 if gray else 3
        self.round = (model if model is not None else default_round(self.channels)).to(self.device)
        if self.round.channels != self.channels:
            raise ValueError(f"model: a round of {self.round.channels} channel(s) for an env of {self.channels} "
                             f"(gray={gray})")
        self.w_deblock = float(w_deblock)
        self.reward_scale = float(reward_scale)
        self.n_actions = None
        self.clean: torch.Tensor | None = None
        self.candidates: torch.Tensor | None = None
        h, w = self.image_size
        self.single_observation_space = spaces.Dict({
            "image": spaces.Box(-np.inf, np.inf, (self.channels, h, w), np.float32),
            "candidates": spaces.Box(-np.inf, np.inf, (self.round.n_candidates * self.channels, h, w), np.float32),
        })
        self.single_action_space = spaces.Box(-1.0, 1.0, (self.round.n_candidates, h, w), np.float32)

    def _start(self, rng: np.random.Generator, options: dict[str, Any] | None) -> None:
        self.clean, self.image = start_noisy(self, rng, options)
        self.candidates = self.round.candidates(self.image)

    def _draw(self, rows: RowDraws) -> dict[str, torch.Tensor]:
        return draw_noisy(self, rows)

    def observe(self) -> dict[str, torch.Tensor]:
        return {"image": self.image, "candidates": self.candidates}

    def seams(self, image: torch.Tensor) -> torch.Tensor:
        """The de-blocking penalty map (B, 1, H, W) of ``image`` against the clean references."""
        return seam_energy(image, self.round.patch, self.round.stride, self.clean)

    def _transition(self, actions: torch.Tensor) -> torch.Tensor:
        previous = self.image
        self.image = rse_blend(previous, self.candidates, actions)
        error_before = torch.sub(self.clean, previous).square_().mean(dim=1, keepdim=True)
        error_after = torch.sub(self.clean, self.image).square_().mean(dim=1, keepdim=True)
        reward = error_before.sub_(error_after)
        if self.w_deblock:
            reward.sub_(self.seams(self.image).sub_(self.seams(previous)).mul_(self.w_deblock))
        self.candidates = self.round.candidates(self.image)
        return reward.mul_(self.reward_scale)


class RSEEnv(PixelEnv):
    """RSE-RL denoising: every pixel blends itself toward candidates built from a patch VAE and its
    nearest clean patch latents.

    ## Description
    The state is a noisy colour image (Gaussian noise, not clipped) or, in later rounds, an earlier round's
    output. A frozen :class:`~rlenhance.models.rse.RSERound` encodes its overlapping 16 x 16 patches with a patch
    VAE and builds two candidate images (Hann-blended): every patch decoded from its own latent and from the
    mean of its nearest clean latents (a round with a predictor adds its output as a third). At every step each
    pixel chooses how far to move toward a mix of the candidates (:func:`rlenhance.models.rse.rse_blend`); the
    candidates are recomputed from the new image.

    ## Action Space
    ``Box(-1, 1, (n, H, W), float32)``: n numbers per pixel, shared by the channels; n = 2, or 3 with a round
    built with a predictor (``predicted=True``).

    | index | action   | -1                         | +1                                   |
    |-------|----------|----------------------------|--------------------------------------|
    | 0     | strength | keep the pixel             | replace it by the target             |
    | 1     | mix      | target = VAE reconstruction | target = decoded clean-neighbour mean |
    | 2     | predict  | target = that mix          | target = the predictor's output      |

    ``new = image + t (((1 - m) vae + m neighbours) - image)`` with ``t, m = (a + 1) / 2``
    (with a predictor, the target moves by ``p = (a_2 + 1) / 2`` toward its output).

    ## Observation Space
    ``Dict`` with ``"image"``: ``Box(-inf, inf, (C, H, W), float32)``, the current estimate (C = 3,
    or 1 with ``gray=True``), and ``"candidates"``: ``Box(-inf, inf, (nC, H, W), float32)``, the VAE
    reconstruction then the clean-neighbour candidate (then the predictor's output). The agents read one
    stacked input: wrap the vector env in :class:`StackObservation`.

    ## Rewards
    Per pixel, x ``reward_scale`` (255): the decrease of squared error to the clean image (averaged
    over channels), minus ``w_deblock`` times the increase of the de-blocking penalty
    (:func:`rlenhance.models.vae.seam_energy`: gradient energy across patch borders beyond the clean
    image's). The scalar reward is the mean of ``info["reward_map"]`` (shape (1, H, W)); the
    identity action (strength -1) earns 0.

    ## Starting State
    A random crop (and flips) of an image of ``data``: clean images (None = the embedded scikit-image photos) get
    Gaussian noise of ``sigma`` / 255 (one value, or a sequence sampled per episode); items holding ``"clean"``
    and ``"noisy"`` are used as they are. Or
    ``reset(options={"clean": ..., "noisy": ...})`` ("noisy" optional), images as for
    ``rlenhance/Denoise-v0``: numpy arrays or torch tensors, channels first, the env's (H, W);
    ``"noisy"`` (and ``"clean"`` next to it) may leave [0, 1] but must be finite.

    ## Episode End
    The vector env truncates after ``max_episode_steps`` (1 by default: one blend per round); never terminates.
    The id registers no length (``check_env`` refuses one-step episodes): ``gym.make(id)`` refines until the
    caller stops, ``gym.make(id, max_episode_steps=N)`` truncates after N steps.

    ## Arguments
    Those of :class:`envs.base.PixelTask` (``data``, ``split``, ``split_seed``, ``device``,
    ``validate_actions``), ``crop`` (64), ``sigma`` (25), ``gray`` (False), ``model`` (the trained
    :class:`~rlenhance.models.rse.RSERound` whose VAE and bank make the candidates, moved to the
    env's device; None: a small untrained round, for tests), ``w_deblock`` (1), ``reward_scale``
    (255); ``max_episode_steps`` for the vector env only. ``render_mode``: None or ``"rgb_array"``.

    ## Version History
    * v0: initial version, extended under the same id: per-row episode draws (``rlenhance.data.RowDraws``);
      ``gym.make(id)`` applies no one-step ``TimeLimit``.
    """

    task_class = RSETask


class RSEVectorEnv(PixelVectorEnv):
    """Batched torch twin of :class:`RSEEnv` (``max_episode_steps`` default 1, truncated by the env)."""

    task_class = RSETask


class StackObservation(VectorObservationWrapper):
    """Present a torch vector env's image entries as one stacked ``"image"`` entry.

    An RSE-RL policy reads the image and its candidates together, as
    :meth:`rlenhance.models.rse.RSERound.policy_input` stacks them; ``num_envs``, ``device``,
    ``max_episode_steps`` and ``task`` stay reachable.

    Args:
        env: a :class:`PixelVectorEnv` (torch observations).
        keys: the entries to stack along the channel axis, in order.
    """

    def __init__(self, env: PixelVectorEnv, keys: Sequence[str] = ("image", "candidates")):
        super().__init__(env)
        space = env.single_observation_space
        missing = [k for k in keys if k not in space.spaces]
        if missing:
            raise ValueError(f"StackObservation: the env observes {list(space.spaces)}; missing {missing}")
        self.keys = tuple(keys)
        h, w = space[self.keys[0]].shape[-2:]
        channels = sum(int(space[k].shape[0]) for k in self.keys)
        self.single_observation_space = spaces.Dict({"image": spaces.Box(-np.inf, np.inf, (channels, h, w),
                                                                         np.float32)})
        self.observation_space = batch_space(self.single_observation_space, env.num_envs)

    def observations(self, observations: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"image": torch.cat([observations[k] for k in self.keys], dim=1)}

    @property
    def device(self) -> torch.device:
        return self.env.device

    @property
    def max_episode_steps(self) -> int:
        return self.env.max_episode_steps

    @property
    def n_actions(self) -> int | None:
        return self.env.n_actions

    @property
    def task(self) -> PixelTask:
        return self.env.task


def make_rse_vec(num_envs: int, *, device: str | torch.device = "cpu", **kwargs: Any) -> StackObservation:
    """The batched RSE-RL env as the agents see it: :class:`RSEVectorEnv` in :class:`StackObservation`."""
    return StackObservation(gym.make_vec("rlenhance/RSE-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                                         device=device, **kwargs))
