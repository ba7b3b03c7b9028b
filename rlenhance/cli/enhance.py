"""``rlenhance enhance``: brighten low-light images with a method of :mod:`rlenhance.registry`
(``--model rl``, the RL curve policy, :class:`rlenhance.Enhancer`; ``--model mrpnet``, a supervised
MRPNet + Generator), optionally followed by a denoiser (``--denoiser``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rlenhance import registry
from rlenhance.cli.batch import check_tile
from rlenhance.cli.jobs import Restore
from rlenhance.denoisers import SUPERVISED_DENOISERS, default_denoiser
from rlenhance.enhance import Enhancer
from rlenhance.errors import CheckpointError
from rlenhance.ops import check_max_overshoot
from rlenhance.ops.clean import check_strength
from rlenhance.restore import SupervisedRestorer
from rlenhance.temporal import TemporalSmoothing

#: Options of ``enhance`` that only the RL policy reads (refused with ``--model mrpnet``).
RL_ONLY = ("steps", "exposure", "w_exposure", "w_color", "w_spatial", "w_smooth", "noise_sigma", "max_overshoot",
           "denoise")


def build(args: argparse.Namespace) -> Restore:
    """``enhance``'s restore function (raises ValueError / CheckpointError for bad arguments)."""
    check_tile(args)
    name = registry.method_for("lowlight", args.model, args.checkpoint)
    if name != "rl":
        denoiser = _denoiser(args, rl=False)
        given = [f"--{option.replace('_', '-')}" for option in RL_ONLY if getattr(args, option) is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: option(s) of --model rl; {name} takes none")
        model = registry.load("lowlight", name, args.checkpoint, device=args.device, tile=args.tile,
                              option="--checkpoint PATH")

        def restore(path: Path, image: np.ndarray) -> tuple[np.ndarray, str]:
            out = model.restore(image)
            if denoiser is not None:
                out = denoiser.restore(out, per_channel=True)
            return out, _means_text(float(image.mean()), float(out.mean()))
        return restore

    enhancer, setting = rl_enhancer(args, args.device)

    def restore(path: Path, image: np.ndarray) -> tuple[np.ndarray, str]:
        # uint8 samples in and out: no float copy of a large photo (the PNG gets the same levels)
        result = enhancer.enhance_array(image, dtype=np.uint8, **setting)
        return result.image, _means_text(result.mean_before, result.mean_after)

    def clip() -> Callable[[np.ndarray], np.ndarray]:
        """A video's frames, in order: each enhanced with the clip's temporal smoothing."""
        temporal = TemporalSmoothing()
        return lambda frame: enhancer.enhance_array(frame, dtype=np.uint8, temporal=temporal, **setting).image
    restore.reads_samples = True
    restore.clip = clip
    return restore


def rl_enhancer(args: argparse.Namespace, device: str) -> tuple[Enhancer, dict[str, float | None]]:
    """The :class:`~rlenhance.Enhancer` of ``--model rl`` and its options (:func:`rlenhance.cli.options.add_lowlight`)
    on ``device``, and the setting of its flags (``exposure``, ``w_exposure``, ...), checked once.

    Raises:
        ValueError, CheckpointError: a bad option or checkpoint (named as the flag).
    """
    # named as the flags (the Enhancer checks them again, by its argument names)
    check_max_overshoot(args.max_overshoot, "--max-overshoot", inf_means_none=True)
    if args.denoise is not None:
        check_strength(args.denoise, "--denoise")
    if args.denoise and args.denoiser is not None:
        raise ValueError(f"--denoise {args.denoise:g} with --denoiser: the denoiser replaces the clean stage; "
                         "give one of them")
    enhancer = registry.load("lowlight", "rl", args.checkpoint, device=device, option="--checkpoint PATH",
                             steps=args.steps, max_side=args.max_side, denoiser=_denoiser(args),
                             noise_sigma=args.noise_sigma, max_overshoot=args.max_overshoot, denoise=args.denoise)
    setting = {"exposure": args.exposure, "w_exposure": args.w_exposure, "w_color": args.w_color,
               "w_spatial": args.w_spatial, "w_smooth": args.w_smooth}
    enhancer.cond(**setting)  # validate the setting once, before any image
    return enhancer, setting


def _denoiser(args: argparse.Namespace, *, rl: bool = True) -> SupervisedRestorer | None:
    """The ``--denoiser`` (None without one): a file, or a model name exactly as typed with no such file
    here, the shipped colour checkpoint of that model. A noise-map denoiser reads the gains of the
    policy's curves: after the RL policy (``rl``) only."""
    if args.denoiser is None:
        return None
    path = Path(args.denoiser)
    if args.denoiser in SUPERVISED_DENOISERS and not path.is_file():
        path = _colour_default(args.denoiser)
    return SupervisedRestorer(path, device=args.device, task="denoise", tile=args.tile,
                              noise_map=None if rl else False)


def _means_text(before: float, after: float) -> str:
    """The figure of a low-light command: the mean value (on the [0, 1] scale) before and after."""
    return f"mean {before:.3f} -> {after:.3f}"


def _colour_default(model: str) -> Path:
    """``enhance --denoiser mrpnet|ffdnet``: the model's shipped colour checkpoint, else its gray one; the
    colour default's error when neither is installed."""
    try:
        return default_denoiser(model, 3, option="--denoiser PATH")
    except CheckpointError as missing:
        try:
            return default_denoiser(model, 1, option="--denoiser PATH")
        except CheckpointError:
            raise missing from None
