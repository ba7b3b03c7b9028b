"""The RL training loop shared by every pixel-wise RL experiment (low light, denoising, completion).

A task module (``experiments.lol_train``, ``experiments.denoise_train``,
``experiments.completion_train``) reads top to bottom like a CleanRL script and plugs its own
pieces into this loop::

    args = resolve_args(parse_config(Args, argv))          # Args subclasses RLArgs
    ranks = Ranks.from_env()                                # torchrun's ranks (one process without it)
    device = setup(args, ranks)                             # threads, denormals, seeds, device, process group
    run = open_run(args, ranks)                             # --out checked (written on first use, by rank 0)
    venv = make_venv()                                      # the task's batched torch vector env, with
                                                            # **env_batch(args, ranks): this rank's rows
    agent = make_agent(args, venv, resume=run.resuming, ranks=ranks)  # --agent a3c | sac, --backbone ...
    train(args, run, agent, venv, make_venv=make_venv,
          evaluate=lambda policy: (scores, grid_rows),      # task-specific, on held-out images
          metric="eval/psnr", spec=...)                     # "best" by this score; the checkpoint spec

What :func:`train` does:

* episode ``k`` resets the env with seed ``seed * 1_000_003 + k`` (:func:`episode_seed`), so a
  run continued with ``--resume`` draws the same images, noise and masks as an uninterrupted one
  and, for A3C, ends with the same weights (SAC's replay buffer is not checkpointed: a resumed
  SAC run refills it);
* ``--freeze-backbone K`` keeps the policy's backbone frozen for episodes ``0 .. K-1``;
* every ``--eval-every`` episodes (and at the end): ``evaluate(policy)`` in eval mode without
  gradients, scalars to TensorBoard / metrics.csv, a sample grid, and atomic checkpoints:
  ``checkpoints/best.pt`` when ``metric`` improved, ``checkpoints/last.pt`` always. ``metric`` is
  a validation score: a trainer with a ``--test`` set scores it for reporting only, under
  ``test/...`` (:func:`with_test_scores`), and such a score never picks best.pt. Both carry
  ``extra["spec"]`` (the task's :class:`rlenhance.checkpoint.CheckpointSpec`: what inference needs
  to run the policy as trained), ``extra["args"]``,
  ``extra["scores"]``, ``extra["algorithm"]``; only last.pt carries ``extra["agent"]`` (the
  agent's full state: optimisers, counters, generator) for ``--resume``;
* per-episode scalars: ``charts/*`` (return, reward, lr, alpha ...) and ``losses/*`` (every stat
  whose name holds "loss", and the entropy); a tqdm bar; a closing summary table;
* SIGINT / SIGTERM (:class:`experiments.runs.StopSignals`) stop the run before the next episode
  (or Hogwild chunk, or a due evaluation): last.pt gets the state of that point (with
  ``extra["eval_episode"]``, the episode of its ``scores``, so ``--resume`` runs a skipped
  evaluation first) and :class:`experiments.runs.Interrupted` ends the run: with :func:`run_cli`,
  one line on stderr and exit code 130 / 143. A resumed A3C run still ends with the weights of an
  uninterrupted one;
* ``--resume`` on a finished run (last.pt at ``--episodes``, evaluated) changes nothing: one line
  says so, and summary.md is only written if it is missing.

Under ``torchrun --nproc_per_node N`` (and ``--nnodes``) the same script trains data-parallel
(:mod:`agents.distributed`): each rank steps ``--batch / N`` envs, its rows of the global batch
(the same images, noise and action draws as one process with ``--batch``), the agents average
their gradients over the ranks, so the job computes one process's updates; rank 0 evaluates,
logs and writes the run folder (config.json records ``world_size``), the logged episode stats are
averaged over the ranks, and a signal on any rank stops every rank at the same episode with
rank 0's last.pt. ``--resume`` may change the number of processes (the global batch stays).
Hogwild ``--workers`` stay on one machine (refused under torchrun).
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import textwrap
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import gymnasium as gym
import torch
from torch import Tensor

from agents.a3c import A3C, A3CConfig, policy_kwargs_from_env
from agents.distributed import Ranks
from agents.sac import SAC, SACConfig
from experiments.runs import Run, StopSignals, arg, run_cli, setup_process
from rlenhance.checkpoint import (
    CheckpointSpec,
    LowLightPolicySpec,
    RolloutPolicySpec,
    SupervisedSpec,
    load_checkpoint,
    load_state_dict_strict,
)
from rlenhance.errors import CheckpointError
from rlenhance.models.policy import BACKBONES, PixelActorCritic

__all__ = [
    "AGENTS",
    "EPISODE_SEED_STRIDE",
    "Evaluate",
    "RLArgs",
    "TEST_GROUP",
    "backbone_kwargs_from_checkpoint",
    "check_args",
    "config_arg",
    "config_flags",
    "env_batch",
    "init_policy",
    "episode_scalars",
    "episode_seed",
    "make_agent",
    "make_policy",
    "open_run",
    "resolve_args",
    "run_cli",
    "sac_config",
    "setup",
    "split_seed",
    "train",
    "uses_block_actions",
    "with_test_scores",
]

#: Episode ``k`` of a run with seed ``s`` resets its env with ``s * EPISODE_SEED_STRIDE + k``.
EPISODE_SEED_STRIDE = 1_000_003
#: Learning algorithms of ``--agent``.
AGENTS = ("a3c", "sac")
#: Largest ``--seed`` (NumPy's global seed limit).
MAX_SEED = 2**32 - 1
#: Arguments that ``--resume`` may change (the rest must equal the run's; see :func:`open_run`).
RESUME_OVERRIDES = ("episodes", "eval_every", "eval_batch", "samples", "device", "threads", "out", "resume")
#: Episode stats that are counters, not curves (not logged per episode).
_COUNTER_STATS = ("episode", "steps", "updates", "actor_updates", "worker")
#: Supervised-checkpoint constructor arguments that :func:`backbone_kwargs_from_checkpoint` maps to
#: ``backbone_channels`` / ``backbone_width`` or drops (the output planes of a dropped head).
_IMAGE_PLANE_KWARGS = ("in_channels", "channels")
_DROPPED_BACKBONE_KWARGS = ("out_channels",)
#: A CombinedModel checkpoint (MRPNet -> Generator) lends its MRPNet: only ``width`` shapes it.
_COMBINED_MODEL = "CombinedModel"
#: Gated PixelRNN checkpoints read a mask plane.
_MASKED_BACKBONE = "GatedPixelRNN"

#: ``evaluate(policy) -> (scores, grid_rows)``: scores named ``eval/...`` (floats), grid rows are
#: lists of (C, H, W) images placed side by side (input | output | reference).
Evaluate = Callable[[PixelActorCritic], "tuple[dict[str, float], list[list[Tensor]]]"]
#: Score group of a run's ``--test`` images: logged and summarised beside the validation scores
#: (``eval/``), never used to pick best.pt (:func:`with_test_scores`).
TEST_GROUP = "test"


def with_test_scores(evaluate: Callable[[PixelActorCritic, Any], tuple[dict[str, float], list[list[Tensor]]]],
                     val_images: Any, test_images: Any | None) -> Evaluate:
    """The :data:`Evaluate` of a run with a validation split and, optionally, a ``--test`` set.

    ``evaluate(policy, images) -> (scores, grid_rows)`` scores one set of images (``eval/...``).
    The result scores ``val_images`` (its ``eval/...`` scores pick best.pt; its grid rows are the
    sample grid) and, when ``test_images`` is not None, the test images with the same policy,
    renamed ``test/...`` (``eval/psnr`` -> ``test/psnr``): reported (TensorBoard, metrics.csv,
    the checkpoints' scores, the summary's ``test_*`` columns), never used for selection.
    """
    def scores_and_rows(policy: PixelActorCritic) -> tuple[dict[str, float], list[list[Tensor]]]:
        scores, rows = evaluate(policy, val_images)
        if test_images is not None:
            test_scores, _ = evaluate(policy, test_images)
            scores = {**scores, **{f"{TEST_GROUP}/{k.split('/', 1)[-1]}": v for k, v in test_scores.items()}}
        return scores, rows

    return scores_and_rows


def split_seed(args: RLArgs) -> int:
    """The seed of the run's train/validation split: ``--split-seed``, else ``--seed``."""
    return args.seed if args.split_seed is None else args.split_seed


def episode_seed(seed: int, episode: int) -> int:
    """The env seed of episode ``episode`` (0-based) of a run seeded ``seed``."""
    return seed * EPISODE_SEED_STRIDE + episode


# --- arguments ---------------------------------------------------------------------------------
def _field_docs(config_class: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string literal under each field), by field
    name, on one line each ({} when its source cannot be read)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(config_class)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body
    return {node.target.id: " ".join(after.value.value.split()) for node, after in zip(body, body[1:])
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)}


def config_arg(config_class: type, name: str, *, prefix: str) -> Any:
    """An :func:`~experiments.runs.arg` field that overrides field ``name`` of an agent's config
    dataclass (e.g. ``sac_tau`` -> ``SACConfig.tau``): unset (None) by default, so the config's own
    default applies; the help is the config field's docstring and its default.
    :func:`config_flags` maps such fields back to the config's."""
    default = next(f.default for f in fields(config_class) if f.name == name)
    doc = _field_docs(config_class).get(name, name.replace("_", " ")).rstrip(".")
    shown = f"{default:g}" if isinstance(default, float) else default
    unset = "" if default is None else f" (unset: {shown})"  # a None default is explained by the docstring
    return arg(None, f"{prefix}: {doc}{unset}".replace("%", "%%"), config=(config_class, name))


def config_flags(args: Any, config_class: type) -> dict[str, str]:
    """The :func:`config_arg` fields of an arguments dataclass (class or instance) for
    ``config_class``: argument field -> config field (``{"sac_batch": "batch_size", ...}``)."""
    return {f.name: f.metadata["config"][1] for f in fields(args)
            if f.metadata.get("config", (None,))[0] is config_class}


@dataclass
class RLArgs:
    """Arguments every pixel-wise RL trainer shares (a task's ``Args`` subclasses this and may
    override defaults). Fields left ``None`` are filled by :func:`resolve_args` from
    ``AGENT_DEFAULTS`` (and SAC's from :class:`agents.sac.SACConfig`), so config.json records the
    values a run used."""

    #: Defaults that depend on ``--agent``: agent -> {field: value}.
    AGENT_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = MappingProxyType({
        "a3c": MappingProxyType({"lr": A3CConfig.lr, "gamma": A3CConfig.gamma}),
        "sac": MappingProxyType({"lr": SACConfig.actor_lr, "gamma": SACConfig.gamma}),
    })

    agent: str = arg("a3c", "learning algorithm: pixel-wise A3C (PixelRL / ReLLIE) or pixel-wise SAC (RSE-RL); "
                            "SAC's continuous actor is a tanh-Gaussian", choices=AGENTS)
    episodes: int = arg(300, "training episodes (each a batch of crops for --steps steps, then the agent's updates)")
    batch: int = arg(16, "crops per episode (the vector env's num_envs)")
    crop: int = arg(64, "crop size in pixels")
    steps: int = arg(5, "steps per episode")
    gamma: float | None = arg(None, "discount factor (unset: the agent's default, see --help of the task)")
    lr: float | None = arg(None, f"Adam learning rate (unset: {A3CConfig.lr:g} for a3c, {SACConfig.actor_lr:g} "
                                 "for sac's actor and critics)")
    entropy: float = arg(A3CConfig.entropy_coef, "a3c: entropy bonus coefficient (SAC tunes its temperature itself)")
    lr_decay: str = arg(A3CConfig.lr_decay, "a3c: learning-rate schedule: none (constant) or poly (PixelRL: "
                                "lr (1 - episode / --episodes) ** 0.9)", choices=("none", "poly"))
    width: int = arg(32, "channels of the policy network (PixelRL / ReLLIE: 64)")
    downscale: int = arg(1, "the policy sees the image average-pooled by this factor; its maps are upsampled")
    block_actions: bool = arg(True, "with --downscale > 1: sample one action per downscale x downscale block and "
                                    "repeat it over the block; --no-block-actions samples every pixel")
    conv_gru: bool = arg(False, "a3c: ConvGRU in the policy branch (PixelRL)")
    reward_map_conv: bool = arg(A3CConfig.reward_map_conv, "a3c: PixelRL's learned reward-map convolution on the "
                                                           "returns")
    workers: int = arg(0, "a3c: 0 = synchronous batched A2C; K >= 1 = asynchronous A3C with K Hogwild processes")
    backbone: str = arg("fcn", "policy trunk: PixelRL's dilated convs, or a supervised MRPNet / (gated) PixelRNN "
                               "feature extractor", choices=BACKBONES)
    init_backbone: str | None = arg(None, "checkpoint of experiments.supervised_train whose weights start the "
                                          "--backbone (its width and depth are read from the file)")
    random_backbone: bool = arg(False, "build the --init-backbone checkpoint's backbone but keep its random "
                                       "initial weights: the control run of a bootstrapping comparison "
                                       "(benchmarks.bootstrap)")
    freeze_backbone: int = arg(0, "keep the backbone frozen for the first K episodes (0: never)")
    init_policy: str | None = arg(None, "a trained policy of this task (a run's best.pt or a shipped file, A3C or "
                                        "SAC) whose weights start the policy: fine-tuning on other data, or SAC "
                                        "from an A3C policy; the arguments must build its architecture (the error "
                                        "says which differ); the optimiser, critics and schedule start anew")
    # --sac-*: each sets one agents.sac.SACConfig field, whose default and docstring make its help (config_arg)
    sac_buffer_mb: float | None = config_arg(SACConfig, "buffer_mb", prefix="sac")
    sac_tau: float | None = config_arg(SACConfig, "tau", prefix="sac")
    sac_batch: int | None = config_arg(SACConfig, "batch_size", prefix="sac")
    sac_updates: int | None = config_arg(SACConfig, "updates_per_episode", prefix="sac")
    sac_learning_starts: int | None = config_arg(SACConfig, "learning_starts", prefix="sac")
    sac_alpha_lr: float | None = config_arg(SACConfig, "alpha_lr", prefix="sac")
    sac_init_alpha: float | None = config_arg(SACConfig, "init_alpha", prefix="sac")
    sac_all_action_rewards: bool | None = config_arg(SACConfig, "all_action_rewards", prefix="sac")
    sac_actor_updates: int | None = config_arg(SACConfig, "actor_updates", prefix="sac")
    sac_trust_region_kl: float | None = config_arg(SACConfig, "trust_region_kl", prefix="sac")
    sac_critic_warmup: int | None = config_arg(SACConfig, "critic_warmup", prefix="sac")
    sac_critic_lr: float | None = arg(None, "sac: Adam learning rate of the twin critics (unset: --lr, the actor's; "
                                            "CleanRL's --q-lr)")
    eval_every: int = arg(100, "evaluate every N episodes (and at the end); checkpoints are written then")
    keep_evals: bool = arg(False, "also keep the policy of every evaluation as checkpoints/episode_NNNNNN.pt, to "
                                  "choose a checkpoint by another measure than best.pt's (e.g. benchmarks.knobs)")
    eval_batch: int = arg(4, "images per rollout batch at whole-image evaluation (denoise, completion; only "
                                "images of one size share a batch)")
    samples: int = arg(4, "evaluation images shown in each sample grid")
    device: str = arg("auto", "auto, cpu, cuda or cuda:N")
    threads: int = arg(0, "torch CPU threads (0: every core but one, at least 1)")
    seed: int = arg(0, "seed of everything (env draws, policy init, action sampling, train/val split)")
    split_seed: int | None = arg(None, "seed of the train/validation split alone (unset: --seed); runs with "
                                       "different --seed and one --split-seed hold out the same images")
    out: str = arg("runs/rl_train", "run folder")
    resume: bool = arg(False, "continue the run in --out from checkpoints/last.pt (same arguments)")

    #: How a field whose value may be None is given on the command line, where that is not by
    #: leaving it out (e.g. lol_train's ``--max-overshoot inf``): named when a resume's arguments differ.
    NONE_SPELLING: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: The task's env hands every action's reward in its step info (``--sac-all-action-rewards``).
    ACTION_REWARDS: ClassVar[bool] = False

    @classmethod
    def added_later(cls, saved: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments of a run saved before some fields existed, with the values of those fields
        that reproduce it (a task's ``Args`` overrides this when it adds a field whose default would
        change an older run), so that ``--resume`` compares them too."""
        return dict(saved)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def resolve_args(args: RLArgs) -> RLArgs:
    """Fill the agent-dependent defaults (fields left ``None``) and check the arguments.

    ``AGENT_DEFAULTS[args.agent]`` fills ``None`` fields of any name (a task may add its own, e.g.
    lol_train's ``action``); with ``--agent sac`` the ``sac_*`` fields left unset take
    :class:`~agents.sac.SACConfig`'s defaults (``sac_updates`` stays None: one update per step).

    Raises:
        ValueError: see :func:`check_args`.
    """
    if args.agent not in AGENTS:
        raise ValueError(f"--agent {args.agent!r}: expected one of {', '.join(AGENTS)}")
    names = {f.name for f in fields(args)}
    fill = {k: v for k, v in type(args).AGENT_DEFAULTS[args.agent].items()
            if k in names and getattr(args, k) is None}
    if args.agent == "sac":
        sac_defaults = {f.name: f.default for f in fields(SACConfig)}
        fill.update({flag: sac_defaults[name] for flag, name in config_flags(args, SACConfig).items()
                     if getattr(args, flag) is None})
    args = replace(args, **fill)
    check_args(args)
    return args


def check_args(args: RLArgs) -> None:
    """Raise ValueError (FileNotFoundError for a missing file) naming the first bad argument."""
    positive = ("episodes", "batch", "crop", "steps", "width", "downscale", "eval_every", "eval_batch")
    for name in positive:
        value = getattr(args, name)
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{_flag(name)} {value!r}: expected an integer >= 1")
    for name in ("samples", "threads", "workers", "freeze_backbone"):
        value = getattr(args, name)
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise ValueError(f"{_flag(name)} {value!r}: expected an integer >= 0")
    if not (args.lr is not None and math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr {args.lr!r}: expected a finite number > 0")
    if not (args.gamma is not None and math.isfinite(args.gamma) and args.gamma >= 0):
        raise ValueError(f"--gamma {args.gamma!r}: expected a finite number >= 0")
    if not (math.isfinite(args.entropy) and args.entropy >= 0):
        raise ValueError(f"--entropy {args.entropy!r}: expected a finite number >= 0")
    for name in ("seed", "split_seed"):
        value = getattr(args, name)
        if value is None and name == "split_seed":
            continue
        if isinstance(value, bool) or int(value) != value or not 0 <= value <= MAX_SEED:
            raise ValueError(f"{_flag(name)} {value!r}: expected an integer in [0, {MAX_SEED}]")
    if args.backbone not in BACKBONES:
        raise ValueError(f"--backbone {args.backbone!r}: expected one of {', '.join(BACKBONES)}")
    if args.init_backbone is not None:
        if args.backbone == "fcn":
            raise ValueError(f"--init-backbone {args.init_backbone}: a supervised checkpoint starts a supervised "
                             "backbone; add --backbone mrpnet or --backbone pixelrnn")
        if not Path(args.init_backbone).is_file():
            raise FileNotFoundError(f"--init-backbone {args.init_backbone}: no such file (expected a checkpoint "
                                    "written by experiments.supervised_train)")
    elif args.random_backbone:
        raise ValueError("--random-backbone builds the architecture of an --init-backbone checkpoint; "
                         "name one with --init-backbone")
    if args.init_policy is not None:
        if args.init_backbone is not None:
            raise ValueError(f"--init-policy {args.init_policy} and --init-backbone {args.init_backbone}: the policy's "
                             "weights come from one of them; give one")
        if not Path(args.init_policy).is_file():
            raise FileNotFoundError(f"--init-policy {args.init_policy}: no such file (expected a policy checkpoint "
                                    "of this trainer: a run's checkpoints/best.pt, or a shipped file)")
    if args.agent == "sac":
        a3c_only = [_flag(n) for n in ("conv_gru", "reward_map_conv") if getattr(args, n)]
        if args.workers:
            a3c_only.append(f"--workers {args.workers}")
        if args.lr_decay != "none":
            a3c_only.append(f"--lr-decay {args.lr_decay}")
        if a3c_only:
            raise ValueError(f"{', '.join(a3c_only)}: A3C options; --agent sac replays single transitions "
                             "(no ConvGRU state, no reward-map convolution, no Hogwild workers)")
        if args.sac_all_action_rewards and not type(args).ACTION_REWARDS:
            raise ValueError("--sac-all-action-rewards: this task's env does not hand each action's reward "
                             "(experiments.denoise_train's does)")
        try:
            sac_config(args)
        except ValueError as exc:
            raise ValueError(f"--agent sac: {exc} (set by --gamma, --lr or the --sac-* flags)") from exc


# --- setup, policy and agent ----------------------------------------------------------------------
def setup(args: Any, ranks: Ranks | None = None) -> torch.device:
    """Process-wide settings in one place (:func:`experiments.runs.setup_process`): denormal
    flushing, CPU threads (the node's share of its ranks), seeds; returns the device
    (``cuda:LOCAL_RANK`` for a rank on a GPU node), after joining the job's process group when
    ``ranks`` has several (:mod:`agents.distributed`).

    Raises:
        ValueError: a bad ``--device``, or ``--workers`` (Hogwild, one machine) under torchrun.
    """
    ranks = ranks if ranks is not None else Ranks()
    if ranks.distributed and getattr(args, "workers", 0):
        raise ValueError(f"--workers {args.workers}: Hogwild worker processes share one machine's memory; under "
                         f"torchrun ({ranks.world_size} processes) use --workers 0: the ranks train data-parallel")
    return setup_process(threads=args.threads, seed=args.seed, device=args.device, ranks=ranks)


def env_batch(args: RLArgs, ranks: Ranks) -> dict[str, Any]:
    """``envs.make_vec`` arguments of this rank's part of the ``--batch`` envs: ``num_envs`` (the
    batch over the ranks) and ``shard`` (its rows of the global batch's draws).

    Raises:
        ValueError: ``--batch`` is not a multiple of the number of ranks.
    """
    return {"num_envs": ranks.split(args.batch, "--batch"), "shard": ranks.shard}


def backbone_kwargs_from_checkpoint(path: str | Path) -> dict[str, Any]:
    """``PixelActorCritic`` backbone arguments that fit a supervised checkpoint.

    Reads the checkpoint's architecture (class and constructor arguments) so that
    ``--backbone X --init-backbone PATH`` builds a backbone of the checkpoint's image planes,
    width and depth: ``backbone_channels``, ``backbone_width``, ``backbone_mask`` (True for a
    GatedPixelRNN) and ``backbone_kwargs`` (the other constructor arguments, e.g. ``levels``).
    A CombinedModel lends its MRPNet: only its width and image planes are used.

    Raises:
        CheckpointError: the file is not a valid checkpoint.
    """
    arch = load_checkpoint(path)["arch"]
    kwargs = dict(arch.get("kwargs", {}))
    out: dict[str, Any] = {}
    planes = next((kwargs[k] for k in _IMAGE_PLANE_KWARGS if kwargs.get(k) is not None), None)
    if planes is not None:
        out["backbone_channels"] = int(planes)
    if kwargs.get("width") is not None:
        out["backbone_width"] = int(kwargs["width"])
    if arch.get("class") != _COMBINED_MODEL:
        out["backbone_mask"] = arch.get("class") == _MASKED_BACKBONE
        extra = {k: v for k, v in kwargs.items()
                 if k not in (*_IMAGE_PLANE_KWARGS, *_DROPPED_BACKBONE_KWARGS, "width")}
        if extra:
            out["backbone_kwargs"] = extra
    return out


def make_policy(args: RLArgs, venv: Any, **policy_kwargs: Any) -> PixelActorCritic:
    """The policy network for ``venv``'s spaces and the arguments.

    ``width``, ``downscale``, ``conv_gru`` and the backbone come from ``args``; a continuous SAC
    actor gets ``bounded_mean=False`` (tanh-squashed Gaussian). ``policy_kwargs`` go to
    :func:`agents.a3c.policy_kwargs_from_env` (``keys=`` the observation planes the policy reads,
    or any ``PixelActorCritic`` argument) and win over the derived ones.
    """
    kwargs: dict[str, Any] = dict(width=args.width, downscale=args.downscale, conv_gru=args.conv_gru)
    if args.agent == "sac" and isinstance(venv.single_action_space, gym.spaces.Box):
        kwargs["bounded_mean"] = False
    if args.backbone != "fcn":
        kwargs["backbone"] = args.backbone
        if args.init_backbone is not None:
            kwargs.update(backbone_kwargs_from_checkpoint(args.init_backbone))
    kwargs.update(policy_kwargs)
    return PixelActorCritic(**policy_kwargs_from_env(venv, **kwargs))


#: The arguments that set a policy's architecture (its ``arch()`` kwargs), named in
#: :func:`init_policy`'s refusal; the others follow from the task's env (its planes and actions).
_ARCH_FLAGS = MappingProxyType({"width": "--width", "downscale": "--downscale", "conv_gru": "--conv-gru",
                                "backbone": "--backbone", "n_actions": "the task's actions (e.g. --predictor)",
                                "bounded_mean": "--agent (a continuous SAC actor is unbounded)",
                                "in_channels": "the task's image planes (e.g. --gray)",
                                "cond_dim": "the conditioning (e.g. --conditioned)"})


def init_policy(policy: PixelActorCritic, path: str | Path) -> str:
    """Start ``policy`` from the weights of a trained policy checkpoint (``--init-policy``): a
    checkpoint of an RL trainer (``extra["spec"]`` a policy spec) whose architecture is exactly
    ``policy``'s; every tensor is copied (an A3C's value head too, which a SAC actor leaves unused).
    Returns the checkpoint's algorithm (``"a3c"``, ``"sac"``, or ``"policy"`` when it says none).

    Raises:
        CheckpointError: the file is missing or invalid, not a policy (a supervised model goes to
            ``--init-backbone``), or of another architecture (the differing constructor arguments
            are named, with the options that set them).
    """
    ckpt = load_checkpoint(path)
    source = f"--init-policy {path}"
    spec = (ckpt["extra"] or {}).get("spec")
    if not isinstance(spec, (LowLightPolicySpec, RolloutPolicySpec)):
        what = f"a {spec.title} checkpoint" if spec is not None else "a checkpoint without a spec"
        hint = "; a supervised model starts a policy's trunk with --backbone and --init-backbone" \
            if isinstance(spec, SupervisedSpec) else ""
        raise CheckpointError(f"{source}: {what}, not an RL policy (lol_train, denoise_train or completion_train)"
                              f"{hint}")
    mine, theirs = policy.arch(), ckpt["arch"]
    if dict(theirs) != dict(mine):
        if theirs["class"] != mine["class"]:
            raise CheckpointError(f"{source}: holds a {theirs['class']}, the run builds a {mine['class']}")
        names = sorted(k for k in {*mine["kwargs"], *theirs["kwargs"]}
                       if mine["kwargs"].get(k) != theirs["kwargs"].get(k))
        differ = "; ".join(f"{k}: the file's {theirs['kwargs'].get(k)!r}, this run's {mine['kwargs'].get(k)!r}"
                           f"{f' (set by {_ARCH_FLAGS[k]})' if k in _ARCH_FLAGS else ''}" for k in names)
        raise CheckpointError(f"{source}: the policy's architecture differs from this run's: {differ}")
    load_state_dict_strict(policy, ckpt["state_dict"], source=source)
    return str(ckpt["extra"].get("algorithm", "policy"))


def uses_block_actions(args: RLArgs) -> bool:
    """Whether the trained policy picks one action per ``downscale`` block (A3C with
    ``--block-actions`` and ``--downscale`` > 1); its rollouts must do the same."""
    return args.agent == "a3c" and args.block_actions and args.downscale > 1


def sac_config(args: RLArgs) -> SACConfig:
    """The :class:`~agents.sac.SACConfig` of the arguments (``--lr`` for the actor, and for the critics
    unless ``--sac-critic-lr``)."""
    given = {name: getattr(args, flag) for flag, name in config_flags(args, SACConfig).items()}
    critic_lr = args.lr if args.sac_critic_lr is None else args.sac_critic_lr
    return SACConfig(gamma=args.gamma, actor_lr=args.lr, critic_lr=critic_lr, seed=args.seed,
                     **{k: v for k, v in given.items() if v is not None})


def make_agent(args: RLArgs, venv: Any, a3c_extra: Mapping[str, Any] | None = None, *,
               resume: bool | None = None, ranks: Ranks | None = None, **policy_kwargs: Any) -> A3C | SAC:
    """An A3C or SAC agent (``--agent``) with a fresh policy (:func:`make_policy`) on ``venv``'s
    device, data-parallel over ``ranks`` (``venv`` then holds this rank's rows: :func:`env_batch`).

    ``a3c_extra`` holds task-specific :class:`agents.a3c.A3CConfig` fields (e.g. ``action_penalty``).

    A new run with ``--init-backbone`` copies the supervised weights into the backbone
    (:func:`rlenhance.models.backbones.load_backbone`), unless ``--random-backbone``; one with
    ``--init-policy`` starts the whole policy from a trained one (:func:`init_policy`); a resumed
    run takes every weight from its last.pt. ``resume`` says which (default ``args.resume``; pass
    ``run.resuming``: a ``--resume`` that finds no checkpoint starts anew).
    """
    resume = args.resume if resume is None else resume
    ranks = ranks if ranks is not None else Ranks()
    policy = make_policy(args, venv, **policy_kwargs)
    if args.init_backbone is not None and not resume and args.random_backbone and ranks.writes:
        print(f"--random-backbone: the {args.backbone} backbone has the shape of {args.init_backbone} "
              "and random initial weights")
    elif args.init_backbone is not None and not resume and not args.random_backbone:
        from rlenhance.models.backbones import load_backbone

        copied = load_backbone(policy, args.init_backbone)
        if ranks.writes:
            print(f"--init-backbone: {copied['tensors']} tensors ({copied['params']} values) of the {copied['model']} "
              f"in {copied['path']} copied into the {args.backbone} backbone")
    elif args.init_policy is not None and not resume:
        algorithm = init_policy(policy, args.init_policy)
        if ranks.writes:
            print(f"--init-policy: the policy starts from the {algorithm} policy in {args.init_policy}")
    if args.agent == "sac":
        return SAC(policy, sac_config(args), device=venv.device, ranks=ranks)
    config = A3CConfig(gamma=args.gamma, lr=args.lr, entropy_coef=args.entropy, n_steps=args.steps,
                       lr_decay=args.lr_decay, total_episodes=args.episodes,
                       reward_map_conv=args.reward_map_conv, seed=args.seed, block_actions=args.block_actions,
                       **dict(a3c_extra or {}))
    return A3C(policy, config, device=venv.device, ranks=ranks)


# --- the run folder ----------------------------------------------------------------------------------
def open_run(args: RLArgs, ranks: Ranks | None = None) -> Run:
    """The run folder of ``--out`` (:class:`experiments.runs.Run`), checked (by rank 0, for every
    rank of a job); nothing is written until the run logs its first episode, so it may be opened
    before the data are loaded.

    ``--resume`` must repeat the run's arguments (those of last.pt, or of config.json when the
    run stopped before its first checkpoint and starts anew): only those in
    :data:`RESUME_OVERRIDES` (the episode total, the evaluation schedule, the device ...) may
    change, since any other would make the continued run differ from an uninterrupted one.
    ``run.resuming`` says whether there is a checkpoint to continue from.

    Raises:
        FileNotFoundError: ``--resume`` on a folder that holds no run.
        FileExistsError: a new run in a folder that holds one with a checkpoint.
        ValueError: ``--resume`` with arguments that differ from the run's.
    """
    ranks = ranks if ranks is not None else Ranks()
    ranks.on_rank0(lambda: _check_resume(args))
    return Run(args.out, args, resume=args.resume, ranks=ranks)


def _check_resume(args: RLArgs) -> None:
    """Raise ValueError when ``--resume`` changes an argument the run fixed (see :func:`open_run`)."""
    out = Path(args.out)
    last, config = out / "checkpoints" / "last.pt", out / "config.json"
    if args.resume and (last.is_file() or config.is_file()):
        saved = load_checkpoint(last)["extra"].get("args", {}) if last.is_file() else json.loads(config.read_text())
        saved = type(args).added_later(saved)
        current = asdict(args)

        def spelled(name: str) -> str:  # how the run's None is given, where the flag needs a value for it
            return f": {_flag(name)} {args.NONE_SPELLING[name]}" if saved[name] is None and \
                name in args.NONE_SPELLING else ""

        conflicts = [f"{_flag(k)} {current[k]!r} (the run has {saved[k]!r}{spelled(k)})" for k in sorted(current)
                     if k in saved and k not in RESUME_OVERRIDES and _differs(current[k], saved[k])]
        if conflicts:
            raise ValueError("--resume continues a run with its own arguments; these differ: " + "; ".join(conflicts)
                             + f". Only {', '.join(_flag(k) for k in RESUME_OVERRIDES[:-2])} may change")


def _differs(a: Any, b: Any) -> bool:
    """Argument values differ (tuples and lists of equal items are the same)."""
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return list(a) != list(b)
    return a != b


# --- the loop ----------------------------------------------------------------------------------------
def episode_scalars(stats: Mapping[str, Any]) -> dict[str, float]:
    """Per-episode stats as logged: ``losses/<k>`` for losses and the entropy, ``charts/<k>`` for the
    rest; counters and non-finite values (e.g. SAC before its first update) are left out."""
    out = {}
    for key, value in stats.items():
        if key in _COUNTER_STATS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            continue
        group = "losses" if ("loss" in key or key == "entropy") else "charts"
        out[f"{group}/{key}"] = float(value)
    return out


def _set_backbone(policy: PixelActorCritic, args: RLArgs, episode: int) -> None:
    """Freeze the backbone for episodes < --freeze-backbone, unfreeze it afterwards."""
    if args.freeze_backbone:
        trainable = episode >= args.freeze_backbone
        if policy.backbone_trainable != trainable:
            policy.set_backbone_trainable(trainable)


def train(args: RLArgs, run: Run, agent: A3C | SAC, venv: Any, *, evaluate: Evaluate,
          metric: str | Callable[[Mapping[str, float]], float], spec: CheckpointSpec,
          make_venv: Callable[[], Any] | None = None, summary: Mapping[str, Any] | None = None,
          title: str | None = None) -> Path:
    """Train ``agent`` on ``venv`` for ``args.episodes`` episodes, evaluating and checkpointing.

    Args:
        args: the resolved arguments (episodes, eval_every, seed, workers, freeze_backbone,
            samples ... are read here).
        run: the run folder (:class:`experiments.runs.Run`; ``run.resuming`` continues its
            last.pt); closed on return.
        agent: from :func:`make_agent`.
        venv: the training vector env.
        evaluate: ``policy -> (scores, grid_rows)``; called in eval mode, without gradients.
        metric: the score that picks ``best.pt`` (higher is better): a key of the scores (not a
            ``test/...`` one: :data:`TEST_GROUP`), or a function of them.
        spec: what inference needs (a :class:`~rlenhance.checkpoint.LowLightPolicySpec` or
            :class:`~rlenhance.checkpoint.RolloutPolicySpec`), saved as ``extra["spec"]`` in both checkpoints.
        make_venv: builds a fresh env in each Hogwild worker (``--workers``); default: not allowed.
        summary: extra columns of the closing summary table (before the final scores).
        title: the summary's title.

    Returns:
        The run folder.

    Raises:
        experiments.runs.Interrupted: SIGINT or SIGTERM stopped the run (last.pt saved).
    """
    if args.workers and make_venv is None:
        raise ValueError("--workers: this experiment cannot build environments in worker processes")
    if isinstance(metric, str) and metric.startswith(f"{TEST_GROUP}/"):
        raise ValueError(f"metric {metric!r}: a test-set score never picks best.pt; give a validation score (eval/...)")
    ranks = run.ranks
    policy = agent.policy
    score_of = (lambda s: s[metric]) if isinstance(metric, str) else metric
    metric_name = metric if isinstance(metric, str) else "metric"
    title = title or f"{run.dir}"
    # episode: episodes trained; evaluated: the episode of `scores`; saved: the episode of last.pt
    episode, best, best_episode, evaluated, saved = 0, -math.inf, 0, 0, None
    scores: dict[str, float] = {}
    if run.resuming:
        extra = run.load_last(expected_arch=policy.arch())["extra"]
        agent.load_state_dict(extra["agent"])
        episode, best = int(extra["episode"]), float(extra["best"])
        best_episode = int(extra.get("best_episode", 0))
        evaluated = int(extra.get("eval_episode", episode))  # older last.pt: written at evaluations only
        scores, saved = dict(extra.get("scores") or {}), episode
        best, best_episode = run.best_so_far(best, best_episode, step_key="best_episode")
        if episode >= args.episodes and evaluated == episode:
            run.say(f"{run.dir}: already finished at episode {episode}; nothing to do; raise --episodes to train on")
            if run.writes and not run.summary_path.exists():  # killed between last.pt and summary.md
                run.summary([_summary_row(args, episode, scores, best, best_episode, metric_name, summary)],
                            _summary_title(title, scores))
            run.close()
            return run.dir
        run.truncate_metrics(episode)
        run.say(f"resumed {run.last_path} at episode {episode}")

    def due() -> bool:  # an evaluation is due at this episode and not yet done
        return evaluated < episode and (episode >= args.episodes or episode % args.eval_every == 0)

    def checkpoint_extra() -> dict[str, Any]:
        return {"episode": episode, "spec": spec, "scores": scores, "args": asdict(args),
                "algorithm": args.agent, "metric": metric_name, "best": best, "best_episode": best_episode}

    bar = run.progress(args.episodes, initial=episode)
    with StopSignals(ranks) as stop:
        while due() or episode < args.episodes:
            if stop.check():  # before the next episode or a due evaluation (any rank's signal): save and stop
                if saved != episode and run.writes:
                    run.save("last", model=policy, arch=policy.arch(),
                             extra={**checkpoint_extra(), "eval_episode": evaluated, "agent": agent.state_dict()})
                ranks.barrier()  # no rank ends (and has torchrun stop the others) before last.pt is written
                bar.close()
                run.close()
                raise stop.interrupted(f"interrupted at episode {episode} of {args.episodes} ({stop.name}); "
                                       f"{run.last_path} saved; continue with the same arguments and --resume")
            if due():  # rank 0 evaluates and writes; the others wait for it
                if run.writes:
                    start = time.perf_counter()
                    policy.eval()
                    with torch.no_grad():
                        scores, rows = evaluate(policy)
                    policy.train()
                    scores = {**scores, "eval/seconds": time.perf_counter() - start}
                    run.log(episode, scores)
                    value = float(score_of(scores))
                    if value > best:  # best.pt before last.pt: a kill between them leaves last.pt's best behind
                        best, best_episode = value, episode
                        run.save("best", model=policy, arch=policy.arch(), extra=checkpoint_extra())
                    if args.keep_evals:
                        run.save(f"episode_{episode:06d}", model=policy, arch=policy.arch(), extra=checkpoint_extra())
                    run.save("last", model=policy, arch=policy.arch(),
                             extra={**checkpoint_extra(), "eval_episode": episode, "agent": agent.state_dict()})
                    if rows and args.samples:
                        run.save_grid(f"episode_{episode:06d}", rows[:args.samples])
                evaluated = saved = episode
                ranks.barrier()
                continue
            _set_backbone(policy, args, episode)
            stop_at = min(args.episodes, (episode // args.eval_every + 1) * args.eval_every)
            if args.workers:  # Hogwild chunks never straddle the end of the frozen phase
                frozen_until = args.freeze_backbone if episode < args.freeze_backbone else stop_at
                chunk = min(stop_at, frozen_until) - episode
                stats = agent.train_hogwild(lambda rank: make_venv(), workers=args.workers, episodes=chunk,
                                            seed=episode_seed(args.seed, episode))
                episode += chunk
                run.log(episode, {f"charts/{k}": v for k, v in stats.items()
                                  if isinstance(v, (int, float)) and not isinstance(v, bool)})
                bar.update(chunk)
            else:
                stats = ranks.mean_stats(agent.train_episode(venv, seed=episode_seed(args.seed, episode)))
                episode += 1
                run.log(episode, episode_scalars(stats))
                bar.update(1)
                bar.set_postfix(ret=f"{stats['episode_return']:.3f}",
                                best=f"{best:.4g}" if math.isfinite(best) else "-")
    bar.close()
    run.summary([_summary_row(args, episode, scores, best, best_episode, metric_name, summary)],
                _summary_title(title, scores))
    run.close()
    return run.dir


def _summary_title(title: str, scores: Mapping[str, float]) -> str:
    """The summary's title; with ``test/...`` scores it says which columns picked best.pt."""
    if not any(k.startswith(f"{TEST_GROUP}/") for k in scores):
        return title
    return f"{title} (best.pt picked on the validation split: val_*, best_*; test_*: the --test images, reported only)"


def _summary_row(args: RLArgs, episode: int, scores: Mapping[str, float], best: float, best_episode: int,
                 metric_name: str, summary: Mapping[str, Any] | None) -> dict[str, Any]:
    """The closing summary table's row: the task's columns, then the last evaluation and the best.

    Scores go under their names without the group (``eval/psnr`` -> ``psnr``); with ``test/...``
    scores (:data:`TEST_GROUP`) those are ``test_psnr`` ..., and a validation score of the same
    name is ``val_psnr`` (so is the best: ``best_val_psnr``)."""
    tested = {k.split("/", 1)[-1] for k in scores if k.startswith(f"{TEST_GROUP}/")}

    def column(key: str) -> str:
        group, _, name = key.partition("/") if "/" in key else ("", "", key)
        return f"test_{name}" if group == TEST_GROUP else f"val_{name}" if name in tested else name

    row = {"episodes": episode, "agent": args.agent, **(summary or {})}
    row.update({column(k): v for k, v in scores.items()})
    row.update({f"best_{column(metric_name)}": best, "best_episode": best_episode})
    return row
