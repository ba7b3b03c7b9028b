"""Deterministic rollouts of a trained pixel policy on given images: how A3C / SAC restore images.

A pixel policy (:class:`rlenhance.models.policy.PixelActorCritic`, trained by A3C or SAC) restores
an image by running the task's own transition for a fixed number of steps: the same batched core
(:class:`envs.base.PixelTask`: the Denoise filter bank, the Completion fill actions, the LowLight
curve) that training used, started from the images given through ``reset(options=...)``:

=============  ===================================================  ============================
task           ``options`` (tensors (C, H, W) or (B, C, H, W))      returned ``image``
=============  ===================================================  ============================
Denoise        ``{"clean", "noisy"}`` (clean only scores rewards)   the denoised image
Completion     ``{"occluded", "original", "mask"}`` (mask 1 = hole)  the completed image
LowLight       ``{"low"}`` (+ ``"high"``, ``"cond"``)                the enhanced image
=============  ===================================================  ============================

Three entry points:

* :func:`policy_rollout` - one batch of images of one size; returns the final images.
* :func:`rollout_images` - a list of whole images of any sizes (BSD68 mixes 321x481 and
  481x321): grouped by size, batched, returned in the input order.
* :func:`load_rollout_policy` - a checkpoint of ``experiments.denoise_train`` /
  ``experiments.completion_train`` (its :class:`rlenhance.checkpoint.RolloutPolicySpec`) as a
  ready :class:`RolloutPolicy`, a :class:`rlenhance.restore.Restorer` (one (H, W, C) image in
  [0, 1] and the optional hole mask in, the restored image out; the library's
  :class:`rlenhance.denoisers.PolicyDenoiser` and :class:`rlenhance.completion.PolicyCompleter`,
  which ``experiments.compare`` and the CLI run, restore the same)::

      restorer = load_rollout_policy("runs/denoise_train/checkpoints/best.pt", device="cpu")
      denoised = restorer.restore(noisy)                      # float32 (H, W, C) in [0, 1]
      outputs = restorer.restore_items([{"clean": clean, "noisy": noisy} for clean, noisy in pairs])

A policy trained with a predictor (``--predictor``: a supervised model's output as one more
per-pixel action) needs it back: :func:`load_predictor` loads a checkpoint of
``experiments.supervised_train`` as a completion or a denoise predictor, and
:func:`load_rollout_policy` the one its spec records (an absolute path, else one of that name beside
the policy's checkpoint or in ``rlenhance/weights/``; a bare name only there:
:func:`rlenhance.denoisers.find_predictor`).

The task object is never modified: the rollout runs on a shallow copy resized to the images
(:func:`task_view`), so a training env can lend its task to evaluation between episodes.

Actions are the policy's own step, :func:`rlenhance.models.policy.act`, decoded by
:meth:`~rlenhance.models.policy.PixelActorCritic.predict`: ``greedy=True`` (default) takes the
most probable action of a categorical policy, the mean of an A3C Gaussian (clamped to [-1, 1]) or
``tanh(mean)`` of SAC's tanh-Gaussian (``bounded_mean=False``); ``greedy=False`` samples from the
policy with ``generator``. With ``block_actions=True`` and a downscaled policy, actions are chosen
per ``downscale`` block at the policy's working resolution and repeated over the block, as A3C
trains with ``block_actions``.
For low-light images prefer :class:`rlenhance.Enhancer` (expected alphas, any image size, tiling);
:func:`policy_rollout` on a LowLight task is the env's own discrete/continuous transition.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from envs.base import PixelTask
from envs.checkpoints import rollout_env_kwargs
from rlenhance.checkpoint import SPEC_KEY, RolloutPolicySpec, build_model, load_checkpoint
from rlenhance.denoisers import DenoisePredictor, check_predictor_ensemble, find_predictor
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.io.arrays import as_result, result_dtype
from rlenhance.models.policy import PixelActorCritic, act
from rlenhance.restore import SupervisedRestorer, as_hwc_image, as_mask, check_ensemble

__all__ = [
    "CompletionPredictor",
    "RolloutPolicy",
    "load_predictor",
    "load_rollout_policy",
    "policy_rollout",
    "rollout_images",
    "task_view",
]

#: Rank of an image entry of ``options``: (C, H, W) for one image or (B, C, H, W).
_IMAGE_DIMS = (3, 4)
#: Rank of a per-image space of image planes, (C, H, W).
_PLANES_RANK = 3


# --- the task at the images' size ------------------------------------------------------------------
def _resized_space(space: gym.Space, size: tuple[int, int]) -> gym.Space:
    """``space`` with every (C, H, W) Box / MultiDiscrete resized to (C, *size); others unchanged."""
    if isinstance(space, gym.spaces.Dict):
        return gym.spaces.Dict({k: _resized_space(v, size) for k, v in space.spaces.items()})
    if space.shape is None or len(space.shape) != _PLANES_RANK:
        return space
    shape = (space.shape[0], *size)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return gym.spaces.MultiDiscrete(np.full(shape, int(space.nvec.flat[0])))
    if isinstance(space, gym.spaces.Box):
        return gym.spaces.Box(float(space.low.flat[0]), float(space.high.flat[0]), shape, space.dtype)
    return space


def task_view(task: Any, num_envs: int, size: tuple[int, int]) -> PixelTask:
    """A shallow copy of a task for ``num_envs`` images of ``size`` = (H, W).

    The copy shares the task's data set, tables and predictor, but has its own batch size, image
    size, spaces, state and torch generator, so stepping it never touches the original (a training
    env's task can be lent to evaluation).

    Args:
        task: a :class:`envs.base.PixelTask`, or a vector env holding one as ``.task``.
        num_envs: batch size B >= 1.
        size: (H, W) of the images.
    """
    task = getattr(task, "task", task)
    if not isinstance(task, PixelTask):
        raise TypeError(f"task: expected a PixelTask or a vector env with .task, got {type(task).__name__}")
    view = copy.copy(task)
    view.num_envs = int(num_envs)
    view.image_size = (int(size[0]), int(size[1]))
    view.generator = torch.Generator(device=task.device)
    view.single_observation_space = _resized_space(task.single_observation_space, view.image_size)
    view.single_action_space = _resized_space(task.single_action_space, view.image_size)
    view.t, view.done = 0, True
    return view


def _batch_shape(options: Mapping[str, Any]) -> tuple[int, tuple[int, int]]:
    """(B, (H, W)) shared by the image entries of ``options``; ValueError when they disagree."""
    shapes = {}
    for key, value in options.items():
        shape = tuple(np.shape(value))
        if len(shape) in _IMAGE_DIMS:
            shapes[key] = (1 if len(shape) == 3 else shape[0], shape[-2:])
    if not shapes:
        raise ImageError(f"options: no image entry among {sorted(options)}; expected tensors (C, H, W) or "
                         "(B, C, H, W), e.g. {'clean', 'noisy'} (Denoise) or {'occluded', 'original', 'mask'} "
                         "(Completion)")
    if len(set(shapes.values())) != 1:
        found = ", ".join(f"{k}: B={b}, HxW={h}x{w}" for k, (b, (h, w)) in shapes.items())
        raise ImageError(f"options: image entries disagree in batch or size ({found}); give images of one size "
                         "per call (rollout_images groups images of different sizes)")
    return next(iter(shapes.values()))


# --- rollouts --------------------------------------------------------------------------------------
@torch.no_grad()
def policy_rollout(policy: PixelActorCritic, task: Any, options: Mapping[str, Any], *, greedy: bool = True,
                   steps: int | None = None, block_actions: bool = False, seed: int = 0,
                   generator: torch.Generator | None = None, with_actions: bool = False
                   ) -> Tensor | tuple[Tensor, Tensor]:
    """Run a pixel policy on given images through a task's transition; return the final images
    (and, ``with_actions``, the per-pixel actions of every step).

    Equivalent to ``reset(options=options)`` on an env of the task sized to the images, then
    ``steps`` steps with the policy's greedy (or sampled) actions, carrying the ConvGRU state.
    The policy runs in eval mode (restored afterwards) on its own device; the task on its device.

    Args:
        policy: the trained actor.
        task: a :class:`envs.base.PixelTask` or a vector env (``.task``); not modified.
        options: the episode's images for the task's ``reset`` (module table): tensors or arrays
            (C, H, W) or (B, C, H, W), float in [0, 1] (a Denoise ``noisy`` image may leave [0, 1]),
            all of one batch and size.
        greedy: deterministic actions (default); False samples from the policy.
        steps: number of steps; None = the task's ``max_episode_steps``.
        block_actions: choose actions per ``policy.downscale`` block (as A3C's ``block_actions``).
        seed: seeds the task's own draws at reset (e.g. Denoise noise when ``noisy`` is absent).
        generator: sampling generator on the policy's device (``greedy=False`` only).
        with_actions: also return the actions the images took at each step.

    Returns:
        float32 (B, C, H, W) on the task's device: the task's ``image`` after the last step
        (denoised / completed / enhanced; Denoise outputs are not clipped, clamp before scoring),
        what the observation's ``image`` shows (but for Denoise's noise-level map, whose policy sees
        the noisy image); ``with_actions``: ``(image, actions)``, actions (B, steps, *action map) on
        the CPU, per pixel (uint8 action indices of a discrete task).

    Raises:
        ImageError: no image entry in ``options``, entries of different sizes, or images the
            policy cannot read (wrong channel count).
        ValueError: ``steps`` < 1, or options the task rejects.
    """
    batch, size = _batch_shape(options)
    view = task_view(task, batch, size)
    n_steps = view.max_episode_steps if steps is None else int(steps)
    if n_steps < 1:
        raise ValueError(f"steps: expected an int >= 1 (or None for the task's episode length), got {steps!r}")
    view.max_episode_steps = n_steps
    view.score_rewards = False  # the rewards are discarded
    device = next(policy.parameters()).device
    blocks = block_actions and policy.downscale > 1
    was_training = policy.training
    policy.eval()
    taken = []
    try:
        obs = view.reset(np.random.default_rng(seed), dict(options))
        hidden = None
        for _ in range(n_steps):
            actions, hidden = act(policy, {k: v.to(device) for k, v in obs.items()}, hidden, block_actions=blocks,
                                  deterministic=greedy, generator=generator)
            if with_actions:
                taken.append(actions.cpu() if actions.is_floating_point() else actions.to("cpu", torch.uint8))
            obs, *_ = view.step(actions.to(view.device))
    finally:
        policy.train(was_training)
    return (view.image, torch.stack(taken, 1)) if with_actions else view.image


@torch.no_grad()
def rollout_images(policy: PixelActorCritic, task: Any, items: Sequence[Mapping[str, Any]], *,
                   batch_size: int = 1, track: Callable[[Sequence[Any]], Iterable[Any]] | None = None,
                   **rollout_kwargs: Any) -> list[Tensor] | list[tuple[Tensor, Tensor]]:
    """:func:`policy_rollout` over whole images of any sizes, in batches of images of one size.

    Args:
        policy: the trained actor.
        task: the task (or vector env) whose transition restores the images.
        items: one ``options`` dict per image, entries (C, H, W).
        batch_size: images per rollout (only images of one size share a batch; 1 = one at a time).
        track: wraps the loop over the rollouts (a list of batches; e.g. a progress bar).
        **rollout_kwargs: ``greedy``, ``steps``, ``block_actions``, ``seed``, ``generator``,
            ``with_actions``.

    Returns:
        One (C, H, W) output per item, in the order of ``items``, on the task's device (with
        ``with_actions``: ``(output, actions)``, actions (steps, *action map) on the CPU).
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    groups: dict[tuple[int, int], list[int]] = {}
    for index, item in enumerate(items):
        count, size = _batch_shape(item)
        if count != 1 or any(len(np.shape(v)) == _IMAGE_DIMS[1] for v in item.values()):
            raise ImageError(f"items[{index}]: expected one image per item, entries (C, H, W)")
        groups.setdefault(size, []).append(index)
    outputs: list[Any] = [None] * len(items)
    chunks = [indices[start:start + batch_size] for indices in groups.values()
              for start in range(0, len(indices), batch_size)]
    for chunk in (track or iter)(chunks):
        options = {key: torch.stack([torch.as_tensor(items[i][key]) for i in chunk]) for key in items[chunk[0]]}
        result = policy_rollout(policy, task, options, **rollout_kwargs)
        for i, output in zip(chunk, zip(*result) if rollout_kwargs.get("with_actions") else result):
            outputs[i] = output
    return outputs


# --- predictors: a supervised model's output as a per-pixel action --------------------------------------
class CompletionPredictor:
    """A supervised completion model as ``CompletionTask``'s ``predictor``: ``(occluded, mask) ->
    prediction``, float (B, 3, H, W) in [0, 1], the model's output in the hole and ``occluded``
    elsewhere, computed as :class:`rlenhance.restore.SupervisedRestorer` computes it (the hole
    pre-filled as the model was trained, the image tiled, the self-ensemble averaged).

    Args:
        restorer: a completion :class:`~rlenhance.restore.SupervisedRestorer` (RGB; :func:`load_predictor`
            checks it).

    Attributes:
        restorer: as given.
    """

    def __init__(self, restorer: SupervisedRestorer):
        self.restorer = restorer

    @property
    def model(self) -> nn.Module:
        """The predictor's network."""
        return self.restorer.model

    def __call__(self, occluded: Tensor, mask: Tensor) -> Tensor:
        return self.restorer.restore_tensor(occluded, mask)


def load_predictor(path: str | Path, *, task: str = "completion", channels: int | None = None,
                   sigma: float | None = None, device: str | torch.device = "cpu",
                   ensemble: int = 1) -> CompletionPredictor | DenoisePredictor:
    """Load a checkpoint of ``experiments.supervised_train`` as the ``predictor`` of a task's env
    (the policy's "take the predictor's pixel" action), with the geometric self-``ensemble`` given
    (1: none; 2, 4 or 8: :class:`rlenhance.restore.SupervisedRestorer`):

    * ``task="completion"``: a :class:`CompletionPredictor`, ``(occluded, mask) -> prediction``
      (its :class:`rlenhance.checkpoint.SupervisedSpec` says whether the net reads the mask and
      what it sees in the hole); ``channels``, if given, must be 3.
    * ``task="denoise"``: a :class:`rlenhance.denoisers.DenoisePredictor`, ``(noisy) ->
      prediction``, for images of ``channels`` planes (required: 1 gray, 3 RGB), a noise-map
      denoiser (FFDNet) given the map of ``sigma`` (the known level, 0-255) or, when None, of
      each image's estimated level.

    Raises:
        CheckpointError: the file is not a supervised checkpoint of ``task`` with the env's planes
            (the message names the file and what it holds).
        ValueError: another ``task``; ``task="denoise"`` without ``channels``; a bad ``ensemble``.
    """
    if task == "denoise":
        if channels is None:
            raise ValueError("channels: required for a denoise predictor (the env's planes: 1 gray, 3 RGB)")
        return DenoisePredictor(path, channels=channels, sigma=sigma, device=device, ensemble=ensemble)
    if task != "completion":
        raise ValueError(f"task: expected 'completion' or 'denoise', got {task!r}")
    if channels not in (None, 3):
        raise ValueError(f"channels: completion is RGB (3), got {channels!r}")
    restorer = SupervisedRestorer(path, device=device, task="completion", ensemble=ensemble)
    if restorer.channels != 3:
        raise CheckpointError(f"--predictor {path}: a {restorer.channels}-channel model; completion is RGB")
    return CompletionPredictor(restorer)


# --- checkpoints ----------------------------------------------------------------------------------------
@dataclass
class RolloutPolicy:
    """A trained pixel policy with the task it restores images through (see :func:`load_rollout_policy`):
    a :class:`rlenhance.restore.Restorer` (:meth:`restore`), with :meth:`restore_items` for the
    task's own ``reset`` options.

    Attributes:
        policy: the actor (eval mode).
        task: the task core at batch 1 (resized per call by the rollout).
        spec: the checkpoint's :class:`~rlenhance.checkpoint.RolloutPolicySpec`.
        path: the checkpoint file.
    """

    policy: PixelActorCritic
    task: PixelTask
    spec: RolloutPolicySpec
    path: Path

    @property
    def steps(self) -> int:
        """Steps per rollout (the spec's transition's)."""
        return self.spec.transition.steps

    @property
    def block_actions(self) -> bool:
        """Actions per downscale block, as trained (the spec's)."""
        return self.spec.block_actions

    @property
    def config(self) -> dict[str, Any]:
        """The spec as a plain dict (:meth:`~rlenhance.checkpoint.CheckpointSpec.to_dict`); prefer :attr:`spec`."""
        return self.spec.to_dict()

    @property
    def channels(self) -> int:
        """Image planes the policy restores (1: a gray denoiser)."""
        return int(self.task.single_observation_space["image"].shape[0])

    @property
    def networks(self) -> tuple[nn.Module, ...]:
        """The learned networks its output depends on: the actor and, for a policy trained with a
        predictor, the predictor's network (a policy's size counts both)."""
        predictor = getattr(self.task, "predictor", None)
        return (self.policy,) if predictor is None else (self.policy, predictor.model)

    @property
    def takes_mask(self) -> bool:
        """Whether :meth:`restore` needs a hole mask (completion policies; denoisers refuse one)."""
        return self.spec.task == "completion"

    def restore(self, image: np.ndarray | Sequence[Mapping[str, Any]], *, mask: np.ndarray | None = None,
                batch_size: int = 1, dtype: type | np.dtype = np.float32) -> np.ndarray | list[Tensor]:
        """Restore one image (the :class:`rlenhance.restore.Restorer` interface): a greedy rollout
        of the spec's steps through the task's transition, the input standing in for the reference
        the env would score rewards against (the output never depends on it).

        Channels: a gray policy given an RGB image restores R, G and B separately; a colour policy
        given a gray image restores it replicated to RGB.

        Args:
            image: array (H, W, C) with C in {1, 3}, or (H, W): float values in [0, 1] (a denoiser
                also takes unclipped noisy values in :data:`rlenhance.io.NOISY_RANGE`), or uint8 /
                uint16 samples scaled by their range (:func:`rlenhance.io.as_unit_float`). A list
                of ``options`` dicts (the items API of earlier callers) is handed to
                :meth:`restore_items` and its list returned.
            mask: completion (required there): (H, W) or (H, W, 1), bool or numbers; values above
                :data:`rlenhance.restore.MASK_THRESHOLD` (True) mark missing pixels. Denoising: refused.
            batch_size: rollouts per batch (the channels of a gray policy on RGB input).
            dtype: of the result, ``np.float32`` or ``np.uint8`` (its levels, :func:`rlenhance.io.float_to_levels`).

        Returns:
            (H, W, C_out) of ``dtype``, float32 in [0, 1] (clamped), C_out = max(C, the policy's channels).

        Raises:
            ImageError: bad image or mask shape / dtype / values, a mask of another size, a mask
                missing for a completion policy or given to a denoiser.
        """
        if isinstance(image, (list, tuple)):
            if mask is not None:
                raise TypeError("restore: a list of options dicts carries its masks; give mask=None")
            return self.restore_items(image, batch_size=batch_size)
        out_dtype = result_dtype(dtype)
        denoise = self.spec.task == "denoise"
        hwc = as_hwc_image(image, noisy=denoise)
        if mask is None and self.takes_mask:
            raise ImageError(f"mask: required by {self.path} (a {self.spec.task} policy); give the hole mask "
                             "(1 = missing pixel), e.g. from a mask file or rlenhance.restore.hole_mask")
        if mask is not None and not self.takes_mask:
            raise ImageError(f"mask: given, but {self.path} is a {self.spec.task} policy that takes no mask")
        x = torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)))
        if self.channels == 1 and x.shape[0] > 1:
            planes = list(x.split(1))
        else:
            planes = [x.expand(self.channels, -1, -1)]
        if denoise:
            items = [{"clean": p, "noisy": p} for p in planes]
        else:
            hole = torch.from_numpy(as_mask(mask, size=hwc.shape[:2]).astype(np.float32))[None]
            items = [{"occluded": p, "original": p, "mask": hole} for p in planes]
        out = torch.cat(self.restore_items(items, batch_size=batch_size)).clamp(0.0, 1.0)
        return np.ascontiguousarray(as_result(out.permute(1, 2, 0).cpu().float(), out_dtype).numpy())

    def restore_items(self, items: Sequence[Mapping[str, Any]], *, batch_size: int = 1) -> list[Tensor]:
        """Greedy rollouts on whole images given as the task's ``reset`` options (one dict per image,
        entries (C, H, W), see the module table); outputs (C, H, W) in order, on the task's device,
        not clamped (a Denoise output may leave [0, 1])."""
        return rollout_images(self.policy, self.task, items, batch_size=batch_size, steps=self.steps,
                              block_actions=self.block_actions)


def load_rollout_policy(path: str | Path, *, device: str | torch.device = "cpu",
                        predictor: Callable[..., Tensor] | None = None, ensemble: int = 1) -> RolloutPolicy:
    """Load a checkpoint of ``experiments.denoise_train`` / ``experiments.completion_train``.

    The task is rebuilt from the checkpoint's :class:`~rlenhance.checkpoint.RolloutPolicySpec`
    (``env_id``, ``env_kwargs`` and its transition: :func:`envs.checkpoints.rollout_env_kwargs`) on the
    embedded default data (only its transition is used).
    A policy trained with ``--predictor`` needs the predictor back: ``predictor`` if given, else
    the checkpoint its spec's ``predictor`` records, found by
    :func:`rlenhance.denoisers.find_predictor` (the recorded path when it is absolute, else a file
    of that name beside ``path``, else in ``rlenhance/weights/``: a policy shipped in one folder with
    its predictor loads on any machine), loaded by :func:`load_predictor` (a denoising policy's as
    :class:`rlenhance.denoisers.PolicyDenoiser` loads it,
    :meth:`rlenhance.denoisers.DenoisePredictor.for_policy`: the policy's noise level, when it
    has one, is the known ``sigma`` of a noise-map denoiser), with the self-``ensemble`` given
    (1: none; 2, 4 or 8: :class:`rlenhance.restore.SupervisedRestorer`; the policy itself runs once).

    Raises:
        CheckpointError: not a checkpoint of a denoising / completion policy (e.g. a lol_train
            checkpoint: the message says to use :class:`rlenhance.Enhancer`); its predictor found
            nowhere (the message names the places tried).
        ValueError: an ``ensemble`` other than 1 where this function loads no predictor (a policy
            without one, a ``predictor`` given), or a bad one.
    """
    import envs  # registers the env ids

    check_ensemble(ensemble)
    ckpt = load_checkpoint(path, spec=RolloutPolicySpec)
    spec: RolloutPolicySpec = ckpt["extra"][SPEC_KEY]
    policy = build_model(ckpt, {"PixelActorCritic": PixelActorCritic}).to(device).eval()
    env_kwargs = rollout_env_kwargs(spec)
    if ensemble != 1 and predictor is not None:
        raise ValueError(f"ensemble: {ensemble!r} is the self-ensemble of the predictor a policy loads here, and a "
                         "predictor was given: use 1 (or give it ensembled)")
    check_predictor_ensemble(ensemble, spec.predictor, owner="a policy", this="this policy",
                             trainer=f"{spec.task}_train")
    if spec.task == "denoise" and predictor is None:
        predictor = DenoisePredictor.for_policy(spec, checkpoint=path, device=device, ensemble=ensemble)
    if spec.predictor is not None:
        if predictor is None:
            predictor = load_predictor(find_predictor(spec.predictor, path), device=device, ensemble=ensemble)
        env_kwargs["predictor"] = predictor
    venv = envs.make_vec(spec.env_id, num_envs=1, device=device, **env_kwargs)
    if venv.task.transition != spec.transition:
        raise CheckpointError(f"checkpoint {path}: its env steps {venv.task.transition}, not the checkpoint's "
                              f"transition {spec.transition}")
    return RolloutPolicy(policy=policy, task=venv.task, spec=spec, path=Path(path))
