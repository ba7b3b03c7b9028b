"""An RSE-RL denoiser (``experiments.rse_train``) run in the library: :func:`load_rse` rebuilds the model
of a checkpoint, :class:`RSERestorer` runs it as a :class:`rlenhance.restore.Restorer` (``rlenhance denoise
--model rse``, :func:`rlenhance.load_denoiser`)."""

from __future__ import annotations

import math
import os
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from rlenhance.checkpoint import RSEDenoiserSpec, build_model, load_checkpoint
from rlenhance.denoisers import PlanesDenoiser
from rlenhance.errors import CheckpointError
from rlenhance.io.arrays import as_result, unit_window
from rlenhance.models.policy import acting_radius
from rlenhance.models.rse import SOURCES, RSEDenoiser, dominant_source
from rlenhance.ops.tiling import on_grid, tiled
from rlenhance.predictors import DenoisePredictor, check_predictor_ensemble, find_predictor
from rlenhance.restore import check_ensemble
from rlenhance.runtime import flush_denormals, select_device

__all__ = ["RSERestorer", "load_rse"]


def load_rse(path: str | os.PathLike, *, device: str | torch.device = "cpu",
             ensemble: int = 1) -> tuple[RSEDenoiser, RSEDenoiserSpec]:
    """The trained denoiser of an ``experiments.rse_train`` checkpoint, in eval mode, and its spec.

    Denoise with ``model(noisy, rounds=spec.rounds).clamp(0, 1)`` on float (B, C, H, W) images
    (C = ``spec.channels``) with noise of a level in ``spec.sigmas`` (0-255 scale). A model trained with
    a predictor gets it back (:func:`find_predictor`, run as :class:`DenoisePredictor`), with the
    geometric self-``ensemble`` given (1: none; 2, 4 or 8).

    Raises:
        CheckpointError: the file is not a valid RSE-RL checkpoint (or its spec does not fit its
            architecture), or its predictor is found nowhere or is not a denoiser of its planes.
        ValueError: an ``ensemble`` other than 1 for a model without a predictor, or a bad one.
    """
    check_ensemble(ensemble)
    checkpoint = load_checkpoint(path, spec=RSEDenoiserSpec)
    model = build_model(checkpoint, {"RSEDenoiser": RSEDenoiser})
    spec = checkpoint["extra"]["spec"]
    if spec.rounds > model.max_rounds or spec.channels != model.channels:
        raise CheckpointError(f"checkpoint {path}: its spec asks for {spec.rounds} round(s) of {spec.channels} "
                              f"channel(s); the model holds {model.max_rounds} of {model.channels}")
    if (spec.predictor is not None) != model.predicted:
        raise CheckpointError(f"checkpoint {path}: its spec's predictor is {spec.predictor!r} and its rounds were "
                              f"built {'with' if model.predicted else 'without'} a predictor's candidate")
    check_predictor_ensemble(ensemble, spec.predictor, owner="an RSE-RL model", this=str(path), trainer="rse_train")
    model = model.to(device).eval()
    if spec.predictor is not None:
        model.attach_predictor(DenoisePredictor(find_predictor(spec.predictor, path), channels=spec.channels,
                                                device=device, ensemble=ensemble))
    return model, spec


class RSERestorer(PlanesDenoiser):
    """An RSE-RL denoiser of ``experiments.rse_train`` (:func:`load_rse`) as a :class:`rlenhance.restore.Restorer`:
    its spec's ``rounds`` rounds, clamped to [0, 1].

    Large images run in tiles, round by round, with a margin covering the patches, the predictor's margin and
    the policy's :func:`~rlenhance.models.policy.acting_radius` per step, on the patch grid, so a window's core
    equals a whole-image round up to float rounding. Intermediate images are kept whole, as float32.

    Args:
        checkpoint: a checkpoint of ``experiments.rse_train``.
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        tile: side of the tiles' core in pixels (rounded up to a multiple of the windows' grid).
        ensemble: the self-ensemble of its predictor (a model without a predictor takes 1 only).

    Attributes:
        model: the :class:`~rlenhance.models.rse.RSEDenoiser`, in eval mode; spec: its spec;
        channels: its planes (1 gray, 3 RGB); tile, overlap: the tiling used.

    Raises:
        CheckpointError: not a valid RSE-RL checkpoint.
        ValueError: an ``ensemble`` other than 1 for a model without a predictor, or a bad one, or a bad
            ``tile``.
    """

    def __init__(self, checkpoint: str | os.PathLike[str], *, device: str | torch.device = "auto", tile: int = 512,
                 ensemble: int = 1):
        flush_denormals()
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
            raise ValueError(f"tile: expected an integer >= 1, got {tile!r}")
        self.device = select_device(device)
        self.path = Path(checkpoint)
        self.model, self.spec = load_rse(self.path, device=self.device, ensemble=ensemble)
        self.channels: int = self.spec.channels
        self.label = "RSE-RL denoiser"
        #: the predictor every round reads (rse_train --predictor), or None
        self.predictor: DenoisePredictor | None = getattr(self.model.rounds[0], "predictor", None)
        stage = self.model.rounds[0]
        reach = max(stage.patch, self.predictor.overlap if self.predictor is not None else 0)
        radius = acting_radius(stage.policy)
        multiple = math.lcm(stage.stride, stage.policy.downscale,
                            self.predictor.stride if self.predictor is not None else 1)
        self.tile, self.overlap = on_grid(tile, None if radius is None else self.model.steps * (reach + radius),
                                          multiple)

    @property
    def action_names(self) -> tuple[str, ...]:
        """The sources a pixel can take most of (:data:`rlenhance.models.rse.SOURCES`)."""
        return SOURCES if self.model.predicted else SOURCES[:-1]

    def _denoise(self, x: Tensor, dtype: torch.dtype) -> Tensor:
        return self._rounds(x, dtype)[0]

    def _denoise_traced(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._rounds(x, torch.float32, traced=True)

    def _rounds(self, x: Tensor, dtype: torch.dtype, traced: bool = False) -> tuple[Tensor, Tensor | None]:
        """The spec's rounds on ``x``, each tiled, the last clamped, as ``dtype``; with ``traced``, also the
        dominant source of every pixel at every step of every round, int64 (B, steps * rounds, H, W)."""
        images, maps = x, []
        rounds = self.model.rounds[:self.spec.rounds]
        for index, stage in enumerate(rounds):
            last = index == len(rounds) - 1

            def window_fn(window: Tensor, stage=stage, last=last) -> Tensor:
                actions: list[Tensor] | None = [] if traced else None
                out = stage(unit_window(window), self.model.steps, actions)
                out = as_result(out.clamp(0.0, 1.0), dtype) if last else out
                return torch.cat([out, *(dominant_source(a).to(out.dtype) for a in actions)], dim=1) if traced \
                    else out

            if self.predictor is not None and self.predictor.reads_level:  # the whole round input's level
                self.model.attach_predictor(partial(self.predictor, level=self.predictor.levels(images)))
            try:
                both = window_fn(images) if self.overlap is None else \
                    tiled(window_fn, images, tile=self.tile, overlap=self.overlap)
            finally:
                if self.predictor is not None:
                    self.model.attach_predictor(self.predictor)
            images = both[:, :self.channels]
            if traced:
                maps.append(both[:, self.channels:].round().long())
        return images, torch.cat(maps, dim=1) if traced else None
