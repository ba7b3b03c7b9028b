"""Train a pixel-wise denoiser (PixelRL: every pixel picks one of nine filters per step) with A3C or SAC.

    python -m experiments.denoise_train                                   # embedded photos, a few minutes on CPU
    python -m experiments.denoise_train --data ../shared/data/bsd/train432 --test ../shared/data/bsd/BSD68
    python -m experiments.denoise_train --sigma 50 --width 64 --conv-gru --reward-map-conv   # PixelRL's network
    python -m experiments.denoise_train --agent sac                        # discrete pixel-wise SAC
    python -m experiments.denoise_train --no-gray --sigma 5 15 25 35 50    # a blind colour denoiser
    python -m experiments.denoise_train --predictor rlenhance/weights/mrpnet_denoise.pt   # + "take MRPNet's pixel"
    python -m experiments.denoise_train --predictor rlenhance/weights/ffdnet_denoise.pt --observe-prediction

The PixelRL protocol: gray images, ``rlenhance/Denoise-v0`` (Gaussian noise of ``--sigma`` on the
0-255 scale, not clipped; reward = decrease of squared error x 255), 70x70 crops, 5 steps, gamma
0.95. ``--width 64 --conv-gru --reward-map-conv`` is PixelRL's network and A3C; the defaults are
sized for a CPU (width 32, 16 crops per episode). Several ``--sigma`` levels train a blind policy:
each crop of an episode draws one of them (:mod:`experiments.sigmas`); ``--no-gray`` denoises RGB.
``--predictor`` (a supervised denoiser of ``experiments.supervised_train --task denoise``: MRPNet,
or FFDNet given the map of the one ``--sigma`` level, else of each image's estimated level; see
:class:`rlenhance.denoisers.DenoisePredictor`) adds a tenth action, "take the predictor's pixel",
its prediction computed once per episode on the noisy image (``--observe-prediction``: the policy,
and SAC's critics, also read it); the checkpoints record its path, so the policy restores images
with it (:func:`agents.rollout.load_rollout_policy`, ``rlenhance.load_denoiser("a3c", checkpoint=...)``).

Evaluation is on WHOLE images. The validation split of ``--data`` (``--val-fraction`` of it,
held out by ``--split-seed``; of the embedded photos without ``--data``) is always held out of
training and picks best.pt. ``--test`` (e.g. BSD68, 321x481 and 481x321) adds a test set, scored
at the same evaluations for reporting only: its scores are ``test/psnr``, ``test/ssim``,
``test/input_psnr`` ... (``test/predictor_psnr`` with ``--predictor``), the summary's ``test_*``
columns (beside ``val_*``); it never picks a checkpoint. Each image's noise is drawn from a
generator seeded by ``--noise-seed`` and the file name (:func:`rlenhance.data.noisy_test_set`), so
every method and run sees the same noisy images. A folder of real noisy / clean pairs (``noisy/`` +
``clean/``, or SIDD's scene folders: :class:`rlenhance.data.NoisyPairs`) carries its own noise: its
noisy images are trained on and scored as they are, and the summary's ``noise`` says "real noise".
Outputs are clamped to [0, 1] before scoring; PSNR and SSIM are per image, then averaged;
``eval/input_psnr`` is the noisy input's PSNR for reference, ``eval/predictor_psnr`` (and
``_ssim``) the predictor's, with ``--predictor``. With several ``--sigma`` levels every image is
scored at each (``eval/psnr_sigma15`` ...) and ``eval/psnr`` is the mean over the levels. best.pt
is the checkpoint of the highest validation ``eval/psnr``. The loop, run folder and ``--resume``
are those of :func:`experiments.rl_common.train`; restore images with a checkpoint through
:func:`agents.rollout.load_rollout_policy`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import torch

import envs
from agents.distributed import Ranks
from agents.rollout import rollout_images
from envs.checkpoints import rollout_policy_spec
from experiments.rl_common import (
    RLArgs,
    env_batch,
    make_agent,
    open_run,
    resolve_args,
    run_cli,
    setup,
    split_seed,
    train,
    uses_block_actions,
    with_test_scores,
)
from experiments.runs import arg, parse_config
from experiments.sigmas import SIGMA_HELP, level_scores, noise_text, noisy_test_sets, resolve_sigma
from rlenhance import metrics
from rlenhance.checkpoint import RolloutPolicySpec
from rlenhance.data import (
    DEFAULT_COLOR_IMAGES,
    DEFAULT_GRAY_IMAGES,
    BuiltinImages,
    NoisyImage,
    open_dataset,
    split_names,
)
from rlenhance.denoisers import DenoisePredictor
from rlenhance.errors import DatasetError
from rlenhance.models.policy import PixelActorCritic

ENV_ID = "rlenhance/Denoise-v0"
#: Fraction of the embedded photos held out for evaluation when neither --data nor --test is given.
BUILTIN_VAL_FRACTION = 0.2
_MS_PER_S = 1000.0


@dataclass
class Args(RLArgs):
    """Train a pixel-wise denoiser (PixelRL: per-pixel choice among nine filters) with A3C or SAC."""

    data: str | None = arg(None, "folder of clean training images, read as gray (--no-gray: RGB; e.g. "
                                 "../shared/data/bsd/train432), or of real noisy / clean pairs (noisy/ + clean/, or "
                                 "SIDD's scene folders), whose noisy images are used as they are (real noise); "
                                 "default: the embedded scikit-image photos")
    test: str | None = arg(None, "folder of clean test images (e.g. ../shared/data/bsd/BSD68), or of real noisy / "
                                 "clean pairs (as --data: real noise), scored whole at every evaluation for reporting "
                                 "only (test/psnr ...); best.pt is still chosen on the validation split of --data; "
                                 "default: no test set")
    sigma: tuple[float, ...] = arg((25.0,), "Gaussian noise standard deviation (PixelRL / DnCNN: 15, 25, 50) "
                                             + SIGMA_HELP)
    gray: bool = arg(True, "gray images (the PixelRL protocol); --no-gray denoises RGB")
    noise_seed: int = arg(0, "seed of the evaluation noise (each image's noise is seeded by it and the file name)")
    val_fraction: float = arg(0.1, "fraction of the --data images held out for validation (it picks best.pt)")
    eval_images: int = arg(0, "evaluate on the first N validation images (and N --test images) only (0: all)")
    predictor: str | None = arg(None, "supervised denoiser checkpoint of experiments.supervised_train --task denoise "
                                      "(MRPNet, FFDNet; of the run's planes) whose prediction becomes a tenth action, "
                                      "e.g. rlenhance/weights/mrpnet_denoise.pt")
    observe_prediction: bool = arg(False, "with --predictor: the policy (and SAC's critics) also see the predictor's "
                                           "output, so they can judge its pixel against the filters' (Denoise-v0's "
                                           "observe_prediction); recorded in the checkpoints' spec")
    episodes: int = arg(100, "training episodes (each a batch of crops for --steps steps, then the agent's updates); "
                             "the defaults finish in minutes on 2 CPU cores")
    batch: int = arg(8, "crops per episode (the vector env's num_envs)")
    crop: int = arg(70, "crop size in pixels (PixelRL: 70)")
    steps: int = arg(5, "filter steps per episode, in training and evaluation (PixelRL: 5)")
    eval_every: int = arg(50, "evaluate on the validation (and --test) images every N episodes (and at the end)")
    out: str = arg("runs/denoise_train", "run folder")

    ACTION_REWARDS: ClassVar[bool] = True


def open_data(args: Args) -> tuple[Any, Any, Any | None]:
    """(training, validation, test) data sets; see the ``--data`` / ``--test`` help. The
    validation split is held out of ``--data`` (of the embedded photos without it) by
    ``split_seed`` whether or not ``--test`` is given; the test set is None without ``--test``. A
    folder is read by :func:`rlenhance.data.open_dataset`: real noisy / clean pairs (``noisy/`` +
    ``clean/``, SIDD) as ``NoisyPairs``, whose noisy images are used as they are, else clean images."""
    try:
        if args.data is None:
            names = DEFAULT_GRAY_IMAGES if args.gray else DEFAULT_COLOR_IMAGES
            train_names, val_names = split_names(names, val_fraction=BUILTIN_VAL_FRACTION, seed=split_seed(args),
                                                 group=None)
            train_set, val_set = (BuiltinImages(names=train_names, gray=args.gray),
                                  BuiltinImages(names=val_names, gray=args.gray))
        else:
            split = dict(kind="clean", val_fraction=args.val_fraction, seed=split_seed(args), gray=args.gray)
            train_set, val_set = (open_dataset(args.data, split=part, **split) for part in ("train", "val"))
    except DatasetError as exc:
        raise DatasetError(f"--data {args.data}: {exc}") from exc
    test_set = None
    if args.test is not None:
        try:
            test_set = open_dataset(args.test, kind="clean", split=None, gray=args.gray, seed=split_seed(args))
        except DatasetError as exc:
            raise DatasetError(f"--test {args.test}: {exc}") from exc
    return train_set, val_set, test_set


def resolve_task_args(args: Args) -> Args:
    """The denoising arguments checked (ValueError naming the first out of range), ``--sigma`` as
    the run records it (:func:`experiments.sigmas.resolve_sigma`: one level a number)."""
    args = replace(args, sigma=resolve_sigma(args.sigma))
    if not 0.0 < args.val_fraction < 1.0:
        raise ValueError(f"--val-fraction {args.val_fraction}: expected a number in (0, 1)")
    if args.eval_images < 0 or args.noise_seed < 0:
        raise ValueError(f"--eval-images {args.eval_images} / --noise-seed {args.noise_seed}: expected integers >= 0")
    if args.observe_prediction and args.predictor is None:
        raise ValueError("--observe-prediction: the policy would see the --predictor's output; give --predictor")
    if args.predictor is not None and not Path(args.predictor).is_file():
        raise FileNotFoundError(f"--predictor {args.predictor}: no such file (expected a denoiser checkpoint of "
                                "experiments.supervised_train --task denoise)")
    return args


def env_kwargs(args: Args) -> dict[str, Any]:
    """The Denoise-v0 arguments of the run (JSON-able; saved in the checkpoints' spec; several
    ``sigma`` levels as a list; the predictor is saved as its path, in the spec's ``predictor``)."""
    sigma = list(args.sigma) if isinstance(args.sigma, tuple) else args.sigma
    kwargs = {"sigma": sigma, "gray": args.gray, "crop": args.crop, "max_episode_steps": args.steps}
    return {**kwargs, "observe_prediction": True} if args.observe_prediction else kwargs


def inference_spec(args: Args) -> RolloutPolicySpec:
    """What :func:`agents.rollout.load_rollout_policy` needs to restore images (saved in the checkpoints)."""
    return rollout_policy_spec("denoise", env_kwargs(args), block_actions=uses_block_actions(args),
                               predictor=str(Path(args.predictor).resolve()) if args.predictor else None)


@torch.no_grad()
def evaluate(policy: PixelActorCritic, task: Any, images: Mapping[float, Sequence[NoisyImage]],
             args: Args, predictor: DenoisePredictor | None = None,
             ) -> tuple[dict[str, float], list[list[torch.Tensor]]]:
    """Greedy rollouts on the whole noisy images of each noise level (``{sigma: images}``);
    per-image PSNR / SSIM of the clamped output (and of the noisy input, and of the ``predictor``'s
    output: ``predictor_``), averaged per level (several levels: per-level columns and their
    mean, :func:`experiments.sigmas.level_scores`). Returns the scores and grid rows (noisy |
    output | clean; each image at every level in turn)."""
    flat = [im for level in images.values() for im in level]
    start = time.perf_counter()
    outputs = rollout_images(policy, task, [{"clean": im.clean, "noisy": im.noisy} for im in flat],
                             batch_size=args.eval_batch, steps=args.steps, block_actions=uses_block_actions(args))
    ms = (time.perf_counter() - start) * _MS_PER_S / len(flat)
    by_level, level_rows, done = {}, [], 0
    for sigma, level in images.items():
        level_outputs, done = outputs[done:done + len(level)], done + len(level)
        per_image: dict[str, list[float]] = {}
        for image, output in zip(level, level_outputs):
            clean = image.clean[None]
            candidates = {"": output.clamp(0.0, 1.0)[None], "input_": image.noisy.clamp(0.0, 1.0)[None]}
            if predictor is not None:
                candidates["predictor_"] = predictor(image.noisy[None])
            for prefix, result in candidates.items():
                per_image.setdefault(f"{prefix}psnr", []).append(float(metrics.psnr(result, clean)[0]))
                per_image.setdefault(f"{prefix}ssim", []).append(float(metrics.ssim(result, clean)[0]))
        by_level[sigma] = {f"eval/{k}": sum(v) / len(v) for k, v in per_image.items()}
        level_rows.append([[im.noisy, out, im.clean] for im, out in zip(level, level_outputs)])
    scores = level_scores(by_level)
    scores["eval/ms_per_image"] = ms
    return scores, [row for rows in zip(*level_rows) for row in rows]


def main(argv: Sequence[str] | None = None) -> Path:
    args = resolve_task_args(resolve_args(parse_config(Args, argv)))
    ranks = Ranks.from_env()
    device = setup(args, ranks)
    train_set, val_set, test_set = open_data(args)
    # the predictor as the trained policy will run it (the spec's path and noise level)
    predictor = DenoisePredictor.for_policy(inference_spec(args), device=device)
    run = open_run(args, ranks)

    action_rewards = args.agent == "sac" and bool(args.sac_all_action_rewards)  # A3C would not read them

    def make_venv():
        return envs.make_vec(ENV_ID, device=device, **env_batch(args, ranks), data=train_set, predictor=predictor,
                             action_rewards=action_rewards, **env_kwargs(args))

    venv = make_venv()
    val_images, test_images = (None if data is None else noisy_test_sets(data, args.sigma, seed=args.noise_seed,
                                                                         device=device, limit=args.eval_images)
                               for data in (val_set, test_set))
    counts = {f"{name}_images": len(next(iter(images.values())))
              for name, images in (("val", val_images), ("test", test_images)) if images is not None}
    agent = make_agent(args, venv, resume=run.resuming, ranks=ranks)
    return train(args, run, agent, venv, make_venv=make_venv,
                 evaluate=with_test_scores(lambda policy, images: evaluate(policy, venv.task, images, args, predictor),
                                           val_images, test_images),
                 metric="eval/psnr", spec=inference_spec(args),
                 summary={"noise": noise_text(args.sigma, train_set, val_set if test_set is None else test_set),
                          **counts, "predictor": args.predictor is not None},
                 title=f"denoise_train: {run.dir}")


if __name__ == "__main__":
    run_cli(main, "denoise_train")
