"""What the pixel-wise RL trainers (low light, denoising, completion) share: the agent, model and run
config sections, the policy and agent they build, and the RL step of the training loop.

A trainer reads like a CleanRL script: ``parse_run`` -> :func:`setup` -> ``open_run`` -> its vector env ->
:func:`make_agent` -> :func:`fit` (:class:`experiments.loop.Loop`, one episode a step, seeded by
:func:`episode_seed` so a resumed run draws what an uninterrupted one would).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import gymnasium as gym
import torch
from torch import Tensor

from agents.a3c import A3C, A3CConfig, policy_kwargs_from_env
from agents.distributed import Ranks
from agents.sac import SAC, SACConfig
from experiments.config import Cost, Preset, to_dict, unused_section
from experiments.loop import (
    TEST_GROUP,
    DataSplits,
    Loop,
    SampleGrids,
    Snapshots,
    StuckHint,
    check_tune_fraction,
    preset_estimate,
    run_seconds,
)
from experiments.process import setup_process
from experiments.run_settings import RUN_COST_FREE, check_int, check_run, run_section
from experiments.runs import Run
from rlenhance.checkpoint import (
    CheckpointSpec,
    LowLightPolicySpec,
    RolloutPolicySpec,
    SupervisedSpec,
    load_checkpoint,
    load_state_dict_strict,
)
from rlenhance.errors import CheckpointError, DatasetError
from rlenhance.models.policy import PixelActorCritic

#: ``track(items, desc)``: an evaluation's items under a progress bar (:meth:`experiments.runs.Run.track`).
Track = Callable[[Sequence[Any], str], Iterable[Any]]
SAME_ALPHA = 0.01  # alphas this close count as one action in :func:`top_action_share`
EPISODE_SEED_STRIDE = 1_000_003  # episode k of a run seeded s resets its env with s * stride + k
_COUNTER_STATS = ("episode", "steps", "updates", "actor_updates", "worker")  # not logged per episode
_SAC = SACConfig()


@dataclass(frozen=True)
class A3CSettings:
    """Pixel-wise A3C (PixelRL / ReLLIE); the defaults are agents.a3c.A3CConfig's."""

    gamma: float = A3CConfig.gamma
    """discount factor"""
    lr: float = A3CConfig.lr
    """Adam learning rate"""
    entropy: float = A3CConfig.entropy_coef
    """entropy bonus coefficient"""
    lr_decay: Literal["none", "poly"] = A3CConfig.lr_decay
    """learning-rate schedule: none (constant) or poly (PixelRL: lr (1 - episode / episodes) ** 0.9)"""
    reward_map_conv: bool = A3CConfig.reward_map_conv
    """PixelRL's learned reward-map convolution on the returns"""
    workers: int = 0
    """0: synchronous batched A2C; K >= 1: asynchronous A3C, K processes taking the episodes in turn (one machine)"""


@dataclass(frozen=True)
class SACSettings:
    """Pixel-wise SAC (RSE-RL); the defaults are agents.sac.SACConfig's."""

    gamma: float = _SAC.gamma
    """discount factor (< 1, or 1 with end_is_terminal)"""
    lr: float = _SAC.actor_lr
    """Adam learning rate of the actor and the twin critics"""
    batch: int = _SAC.batch_size
    """transitions (images) per update"""
    updates: int | None = _SAC.updates_per_episode
    """gradient updates after each collected episode (none: one per environment step)"""
    actor_updates: int = _SAC.actor_updates
    """actor updates per episode when they differ from the critics' (0: with every critic update)"""
    learning_starts: int = _SAC.learning_starts
    """transitions collected before the first update"""
    buffer_mb: float = _SAC.buffer_mb
    """replay buffer size in MB"""
    all_action_rewards: bool = _SAC.all_action_rewards
    """the critics learn every action's reward, which the env hands (denoising only)"""
    end_is_terminal: bool = _SAC.end_is_terminal
    """the episode's last step ends the critics' return (a finite horizon; admits gamma 1)"""


@dataclass(frozen=True)
class ModelSettings:
    """The policy network (rlenhance.models.policy.PixelActorCritic)."""

    width: int = 32
    """channels of the policy network (PixelRL / ReLLIE: 64)"""
    downscale: int = 1
    """the policy sees the image average-pooled by this factor; its maps are upsampled (A3C samples one action
    per block)"""
    conv_gru: bool = False
    """a3c: ConvGRU in the policy branch (PixelRL)"""
    backbone: Literal["fcn", "mrpnet", "pixelrnn"] = "fcn"
    """policy trunk: PixelRL's dilated convs, or a supervised MRPNet / (gated) PixelRNN feature extractor"""
    init_backbone: str | None = None
    """checkpoint of experiments.supervised_train whose weights start the backbone (its shape is read from it)"""
    random_backbone: bool = False
    """build init_backbone's backbone but keep random weights: the control run of a bootstrapping comparison"""
    freeze_backbone: int = 0
    """keep the backbone frozen for the first K episodes (0: never)"""
    init_policy: str | None = None
    """a trained policy of this task (a run's best.pt or a shipped file) whose weights start the policy"""


#: The run section of the RL trainers (a trainer sets its own defaults: ``RLRunSettings(episodes=1100, ...)``).
RLRunSettings = run_section("RLRunSettings", ("episodes", "batch", "eval_every", "eval_batch", "samples", "keep_evals",
                                              "seed", "split_seed", "device", "threads", "out", "resume"),
                            module=__name__, out="runs/rl_train")


@dataclass(frozen=True)
class RLConfig:
    """The sections every RL trainer's config has; a trainer adds its task (and reward) section."""

    agent: Literal["a3c", "sac"] = "a3c"
    """learning algorithm: pixel-wise A3C (PixelRL / ReLLIE) or pixel-wise SAC (RSE-RL)"""
    a3c: A3CSettings = A3CSettings()
    sac: SACSettings = SACSettings()
    model: ModelSettings = ModelSettings()
    run: RLRunSettings = RLRunSettings()

    #: The task's env hands every action's reward in its step info (``sac.all_action_rewards``).
    ACTION_REWARDS = False


#: The named flags every RL trainer has (flag -> setting); a trainer adds its task's.
RL_FLAGS: Mapping[str, str] = MappingProxyType({
    "agent": "agent", "episodes": "run.episodes", "batch": "run.batch", "eval-every": "run.eval_every",
    "samples": "run.samples", "keep-evals": "run.keep_evals", "seed": "run.seed", "split-seed": "run.split_seed",
    "device": "run.device", "threads": "run.threads", "out": "run.out", "resume": "run.resume",
    "width": "model.width", "init-policy": "model.init_policy",
})


def check_rl(cfg: RLConfig, base: RLConfig | None = None) -> RLConfig:
    """``cfg`` with the other agent's section at its defaults (:func:`experiments.config.unused_section`);
    ValueError (FileNotFoundError for a missing file) names the first bad setting of the shared sections."""
    model = cfg.model
    check_run(cfg.run)
    for name, value, low in (("model.width", model.width, 1), ("model.downscale", model.downscale, 1),
                             ("model.freeze_backbone", model.freeze_backbone, 0), ("a3c.workers", cfg.a3c.workers, 0)):
        check_int(name, value, low)
    if model.init_backbone is not None:
        if model.backbone == "fcn":
            raise ValueError(f"model.init_backbone {model.init_backbone}: a supervised checkpoint starts a supervised "
                             "backbone; set model.backbone to mrpnet or pixelrnn")
        if not Path(model.init_backbone).is_file():
            raise FileNotFoundError(f"model.init_backbone {model.init_backbone}: no such file (expected a checkpoint "
                                    "written by experiments.supervised_train)")
    elif model.random_backbone:
        raise ValueError("model.random_backbone builds the architecture of a model.init_backbone checkpoint; name one")
    if model.init_policy is not None:
        if model.init_backbone is not None:
            raise ValueError(f"model.init_policy {model.init_policy} and model.init_backbone {model.init_backbone}: "
                             "the policy's weights come from one of them; give one")
        if not Path(model.init_policy).is_file():
            raise FileNotFoundError(f"--init-policy {model.init_policy}: no such file (expected a policy checkpoint "
                                    "of this trainer: a run's checkpoints/best.pt, or a shipped file)")
    if cfg.agent == "a3c":
        cfg = unused_section(cfg, "sac", "the agent is a3c", base)
        for name, zero in (("lr", False), ("gamma", True), ("entropy", True)):
            value = getattr(cfg.a3c, name)
            if not (math.isfinite(value) and (value >= 0 if zero else value > 0)):
                raise ValueError(f"a3c.{name} {value!r}: expected a finite number {'>= 0' if zero else '> 0'}")
    else:
        cfg = unused_section(cfg, "a3c", "the agent is sac (no entropy bonus, schedule, reward-map conv or "
                                         "A3C workers)", base)
        if model.conv_gru:
            raise ValueError("model.conv_gru: an A3C option; sac replays single transitions (no ConvGRU state)")
        if cfg.sac.all_action_rewards and not type(cfg).ACTION_REWARDS:
            raise ValueError("sac.all_action_rewards: this task's env does not hand each action's reward "
                             "(experiments.denoise_train's does)")
        try:
            sac_config(cfg)
        except ValueError as exc:
            raise ValueError(f"sac: {exc}") from exc
    return cfg


def check_fractions(val_fraction: float, tune_fraction: float) -> None:
    """Raise ValueError unless ``task.val_fraction`` is in (0, 1) and ``task.tune_fraction`` in [0, 1)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"task.val_fraction {val_fraction}: expected a number in (0, 1)")
    check_tune_fraction(tune_fraction, "task.tune_fraction")


def split_seed(cfg: RLConfig) -> int:
    """The seed of the run's train/validation split: ``run.split_seed``, else ``run.seed``."""
    return cfg.run.seed if cfg.run.split_seed is None else cfg.run.split_seed


def data_splits(cfg: RLConfig, opener: Any, builtin_val_fraction: float, open_test: Any, **kwargs: Any) -> DataSplits:
    """``opener(split=...)``'s training, tuning and validation sets and ``open_test(task.test)``."""
    t = cfg.task
    parts = ("train", "tune", "val") if t.tune_fraction else ("train", "val")
    try:
        common = dict(val_fraction=builtin_val_fraction if t.data is None else t.val_fraction,
                      tune_fraction=t.tune_fraction, seed=split_seed(cfg), **kwargs)
        sets = {part: opener(split=part, **common) for part in parts}
    except DatasetError as exc:
        raise DatasetError(f"--data {t.data}: {exc}") from exc
    test_set = None
    if t.test is not None:
        try:
            test_set = open_test(t.test)
        except DatasetError as exc:
            raise DatasetError(f"--test {t.test}: {exc}") from exc
    return DataSplits(sets["train"], sets.get("tune"), sets["val"], test_set)


def estimate_seconds(cfg: RLConfig, cost: Cost) -> float:
    """The seconds of a whole run of ``cfg`` at ``cost``."""
    return run_seconds(cfg.run.episodes, cfg.run.eval_every, (cost.step_s, cost.eval_s))


def untracked(items: Sequence[Any], desc: str = "") -> Sequence[Any]:
    """The :data:`Track` that shows no progress."""
    return items


def episode_seed(seed: int, episode: int) -> int:
    """The env seed of episode ``episode`` (0-based) of a run seeded ``seed``."""
    return seed * EPISODE_SEED_STRIDE + episode


def setup(cfg: RLConfig, ranks: Ranks | None = None) -> torch.device:
    """Process-wide settings (:func:`experiments.process.setup_process`); returns the device."""
    ranks = ranks if ranks is not None else Ranks()
    if ranks.distributed and cfg.a3c.workers:
        raise ValueError(f"a3c.workers {cfg.a3c.workers}: A3C's worker processes share one machine's memory; under "
                         f"torchrun ({ranks.world_size} processes) use 0: the ranks train data-parallel")
    return setup_process(threads=cfg.run.threads, seed=cfg.run.seed, device=cfg.run.device, ranks=ranks)


def env_batch(cfg: RLConfig, ranks: Ranks) -> dict[str, Any]:
    """``envs.make_vec``'s ``num_envs`` and ``shard``: this rank's part of the batch."""
    return {"num_envs": ranks.split(cfg.run.batch, "--batch"), "shard": ranks.shard}


def backbone_kwargs_from_checkpoint(path: str | Path) -> dict[str, Any]:
    """``PixelActorCritic`` backbone arguments that fit a supervised checkpoint: its planes and width, whether it
    reads a mask (GatedPixelRNN) and its other constructor arguments (none for a CombinedModel's MRPNet)."""
    arch = load_checkpoint(path)["arch"]
    kwargs, out = dict(arch.get("kwargs", {})), {}
    planes = next((kwargs[k] for k in ("in_channels", "channels") if kwargs.get(k) is not None), None)
    if planes is not None:
        out["backbone_channels"] = int(planes)
    if kwargs.get("width") is not None:
        out["backbone_width"] = int(kwargs["width"])
    if arch.get("class") != "CombinedModel":
        out["backbone_mask"] = arch.get("class") == "GatedPixelRNN"
        extra = {k: v for k, v in kwargs.items() if k not in ("in_channels", "channels", "out_channels", "width")}
        if extra:
            out["backbone_kwargs"] = extra
    return out


def make_policy(cfg: RLConfig, venv: Any, **policy_kwargs: Any) -> PixelActorCritic:
    """The policy network for ``venv``'s spaces and the model section (a continuous SAC actor unbounded);
    ``policy_kwargs`` (any ``PixelActorCritic`` argument) win over the derived ones."""
    model = cfg.model
    kwargs: dict[str, Any] = dict(width=model.width, downscale=model.downscale, conv_gru=model.conv_gru)
    if cfg.agent == "sac" and isinstance(venv.single_action_space, gym.spaces.Box):
        kwargs["bounded_mean"] = False
    if model.backbone != "fcn":
        kwargs["backbone"] = model.backbone
        if model.init_backbone is not None:
            kwargs.update(backbone_kwargs_from_checkpoint(model.init_backbone))
    kwargs.update(policy_kwargs)
    return PixelActorCritic(**policy_kwargs_from_env(venv, **kwargs))


#: The settings that shape a policy (its ``arch()`` kwargs), named in :func:`init_policy`'s refusal.
_ARCH_SETTINGS = MappingProxyType({"width": "model.width", "downscale": "model.downscale",
                                   "conv_gru": "model.conv_gru", "backbone": "model.backbone",
                                   "n_actions": "the task's actions (e.g. task.predictor)",
                                   "bounded_mean": "agent (a continuous SAC actor is unbounded)",
                                   "in_channels": "the task's image planes (e.g. task.gray)",
                                   "cond_dim": "the conditioning (e.g. reward.conditioned)"})


def init_policy(policy: PixelActorCritic, path: str | Path) -> str:
    """Start ``policy`` from a trained policy checkpoint of its architecture (or of it without FiLM, which then
    starts at zero); returns its algorithm. CheckpointError names what differs and the settings that shape it."""
    ckpt = load_checkpoint(path)
    source = f"--init-policy {path}"
    spec = (ckpt["extra"] or {}).get("spec")
    if not isinstance(spec, (LowLightPolicySpec, RolloutPolicySpec)):
        what = f"a {spec.title} checkpoint" if spec is not None else "a checkpoint without a spec"
        hint = "; a supervised model starts a policy's trunk with model.backbone and model.init_backbone" \
            if isinstance(spec, SupervisedSpec) else ""
        raise CheckpointError(f"{source}: {what}, not an RL policy (lol_train, denoise_train or "
                              f"completion_train){hint}")
    mine, theirs, state = policy.arch(), ckpt["arch"], ckpt["state_dict"]
    if mine["kwargs"].get("cond_film") and "cond_film" not in theirs.get("kwargs", {}) and policy.film is not None:
        # FiLM starts at zero (PixelActorCritic), so the conditioned net starts as the file's policy
        theirs = {**theirs, "kwargs": {**theirs["kwargs"], "cond_film": True}}
        state = {**state, **{f"film.{name}": torch.zeros_like(tensor)
                             for name, tensor in policy.film.state_dict().items()}}
    if dict(theirs) != dict(mine):
        if theirs["class"] != mine["class"]:
            raise CheckpointError(f"{source}: holds a {theirs['class']}, the run builds a {mine['class']}")
        names = sorted(k for k in {*mine["kwargs"], *theirs["kwargs"]}
                       if mine["kwargs"].get(k) != theirs["kwargs"].get(k))
        differ = "; ".join(f"{k}: the file's {theirs['kwargs'].get(k)!r}, this run's {mine['kwargs'].get(k)!r}"
                           f"{f' (set by {_ARCH_SETTINGS[k]})' if k in _ARCH_SETTINGS else ''}" for k in names)
        raise CheckpointError(f"{source}: the policy's architecture differs from this run's: {differ}")
    load_state_dict_strict(policy, state, source=source)
    return str(ckpt["extra"].get("algorithm", "policy"))


def uses_block_actions(cfg: RLConfig) -> bool:
    """Whether the policy picks one action per ``downscale`` block (A3C with a downscaled policy)."""
    return cfg.agent == "a3c" and cfg.model.downscale > 1


def sac_config(cfg: RLConfig) -> SACConfig:
    """The :class:`~agents.sac.SACConfig` of the ``sac`` section (one learning rate for actor and critics)."""
    s = cfg.sac
    return SACConfig(gamma=s.gamma, actor_lr=s.lr, critic_lr=s.lr, seed=cfg.run.seed, batch_size=s.batch,
                     updates_per_episode=s.updates, actor_updates=s.actor_updates, learning_starts=s.learning_starts,
                     buffer_mb=s.buffer_mb, all_action_rewards=s.all_action_rewards, end_is_terminal=s.end_is_terminal)


def make_agent(cfg: RLConfig, venv: Any, a3c_extra: Mapping[str, Any] | None = None, *, steps: int,
               resume: bool = False, ranks: Ranks | None = None, **policy_kwargs: Any) -> A3C | SAC:
    """An A3C or SAC agent with a fresh policy (:func:`make_policy`) on ``venv``'s device, data-parallel over
    ``ranks``, started from ``model.init_backbone`` / ``model.init_policy`` in a new run. ``steps``: the env's
    steps per episode; ``a3c_extra``: task-specific A3CConfig fields."""
    ranks = ranks if ranks is not None else Ranks()
    model, said = cfg.model, None
    policy = make_policy(cfg, venv, **policy_kwargs)
    if model.init_backbone is not None and not resume and model.random_backbone:
        said = (f"model.random_backbone: the {model.backbone} backbone has the shape of {model.init_backbone} "
                "and random initial weights")
    elif model.init_backbone is not None and not resume:
        from rlenhance.models.backbones import load_backbone

        copied = load_backbone(policy, model.init_backbone)
        said = (f"model.init_backbone: {copied['tensors']} tensors ({copied['params']} values) of the "
                f"{copied['model']} in {copied['path']} copied into the {model.backbone} backbone")
    elif model.init_policy is not None and not resume:
        said = (f"--init-policy: the policy starts from the {init_policy(policy, model.init_policy)} policy in "
                f"{model.init_policy}")
    if said is not None and ranks.writes:
        print(said)
    if cfg.agent == "sac":
        return SAC(policy, sac_config(cfg), device=venv.device, ranks=ranks)
    a3c = cfg.a3c
    config = A3CConfig(gamma=a3c.gamma, lr=a3c.lr, entropy_coef=a3c.entropy, n_steps=steps, lr_decay=a3c.lr_decay,
                       total_episodes=cfg.run.episodes, reward_map_conv=a3c.reward_map_conv, seed=cfg.run.seed,
                       block_actions=True, **dict(a3c_extra or {}))
    return A3C(policy, config, device=venv.device, ranks=ranks)


def episode_scalars(stats: Mapping[str, Any]) -> dict[str, float]:
    """Per-episode stats as logged: ``losses/<k>`` (losses, entropy), ``charts/<k>``, finite, no counters."""
    return {f"{'losses' if 'loss' in key or key == 'entropy' else 'charts'}/{key}": float(value)
            for key, value in stats.items() if key not in _COUNTER_STATS and not isinstance(value, bool)
            and isinstance(value, (int, float)) and math.isfinite(value)}


def with_test_scores(evaluate: Callable[[PixelActorCritic, Any], tuple[dict[str, float], list[list[Tensor]]]],
                     images: Any, test_images: Any | None
                     ) -> Callable[[PixelActorCritic], tuple[dict[str, float], list[list[Tensor]]]]:
    """``policy -> (scores, rows)`` of ``images`` and, when given, of ``test_images`` as ``test/...`` scores."""
    def scores_and_rows(policy: PixelActorCritic) -> tuple[dict[str, float], list[list[Tensor]]]:
        scores, rows = evaluate(policy, images)
        if test_images is not None:
            test_scores, _ = evaluate(policy, test_images)
            scores = {**scores, **{f"{TEST_GROUP}/{k.split('/', 1)[-1]}": v for k, v in test_scores.items()}}
        return scores, rows

    return scores_and_rows


def top_action_share(maps: Sequence[Tensor], where: Sequence[Tensor] | None = None) -> float:
    """The share of pixels that took their step's median action (within :data:`SAME_ALPHA`), averaged over the
    images and steps of ``maps`` (each (steps, C, H, W); ``where``: each a (1, H, W) mask of the pixels that count)."""
    shares = []
    for i, steps in enumerate(maps):
        inside = None if where is None else where[i].detach().reshape(steps.shape[-2:]) > 0
        for step in steps:
            values = (step[:, inside] if inside is not None else step).float()
            if values.numel():
                shares.append(float(((values - values.median()).abs() <= SAME_ALPHA).float().mean()))
    return sum(shares) / len(shares) if shares else float("nan")


def fit(cfg: RLConfig, run: Run, agent: A3C | SAC, venv: Any, *,
        evaluate: Callable[[PixelActorCritic], tuple[dict[str, float], list[list[Tensor]]]],
        metric: str | Callable[[Mapping[str, float]], float], spec: CheckpointSpec, make_venv: Callable[[], Any],
        summary: Mapping[str, Any], captions: Sequence[str], presets: Mapping[str, Preset],
        check: Callable[[Any, Any], Any], split: str = "val",
        report: Callable[[PixelActorCritic], tuple[dict[str, float], list[list[Tensor]]]] | None = None) -> Path:
    """Train ``agent`` on ``venv`` for ``run.episodes`` episodes (:class:`experiments.loop.Loop`); returns the run
    folder. ``summary``: the task's summary columns; ``presets`` and ``check``: for a preset's run time."""
    ranks, policy, r = run.ranks, agent.policy, cfg.run
    workers, freeze = cfg.a3c.workers, cfg.model.freeze_backbone

    def train(episode: int, until: int) -> tuple[int, dict[str, float]]:
        if freeze and policy.backbone_trainable != (episode >= freeze):
            policy.set_backbone_trainable(episode >= freeze)
        if workers:  # a chunk never straddles an evaluation or the end of the frozen phase
            chunk = min(until, freeze if episode < freeze else until) - episode
            result = agent.train_async(lambda rank: make_venv(), workers,
                                       [episode_seed(r.seed, e) for e in range(episode, episode + chunk)],
                                       on_episode=lambda stats: loop.advance(int(stats["episode"]) + 1,
                                                                             episode_scalars(stats)),
                                       stop=loop.stop_requested)
            return episode + result["episodes"], {}
        stats = ranks.mean_stats(agent.train_episode(venv, seed=episode_seed(r.seed, episode)))
        return episode + 1, episode_scalars(stats)

    def summary_row(state) -> dict[str, Any]:
        def column(key: str) -> str:
            group, _, name = key.partition("/") if "/" in key else ("", "", key)
            return f"{TEST_GROUP}_{name}" if group == TEST_GROUP else f"{split}_{name}"

        return {"episodes": state.step, "agent": cfg.agent, **summary,
                **{column(k): v for k, v in state.scores.items()},
                f"best_{column(loop.metric_name)}": state.best, "best_episode": state.best_step}

    estimate = preset_estimate(cfg, presets, torch.device(venv.device).type, ignore=RUN_COST_FREE, check=check,
                               per_step=lambda cost: (cost.step_s, cost.eval_s))
    loop = Loop(run, total=r.episodes, eval_every=r.eval_every, train=train, unit="episode",
                evaluate=lambda: evaluate(policy), metric=metric, model=policy,
                state=agent.state_dict, load_state=agent.load_state_dict,
                extra=lambda: {"spec": spec, "config": to_dict(cfg), "algorithm": cfg.agent},
                callbacks=[Snapshots(lambda e: f"episode_{e:06d}" if r.keep_evals else None),
                           SampleGrids(r.samples, captions), estimate, StuckHint()],
                summary=summary_row, split=split,
                report=None if report is None else lambda: report(policy))
    return loop.fit()
