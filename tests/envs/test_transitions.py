"""One transition per task: the env rebuilt from a policy checkpoint steps what inference computes, and
``gym.make(id)`` without arguments is the env of the recipe of its task's policy."""

import dataclasses
import inspect
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from envs.checkpoints import env_kwargs_for_checkpoint, lowlight_env_kwargs, make_for_checkpoint
from rlenhance.checkpoint import SPEC_KEY, load_checkpoint
from rlenhance.completion import PolicyCompleter
from rlenhance.denoisers import PolicyDenoiser
from rlenhance.enhance import Enhancer
from rlenhance.rollouts import greedy_rollout
from rlenhance.transitions import DenoiseTransition, LowLightTransition, Transition
from tests.recipes import recipe_policy, recipe_spec
from tests.rollouts import stepped

WEIGHTS = Path(__file__).resolve().parents[2] / "rlenhance" / "weights"


def smooth(batch, channels, size, seed):
    """Smooth random images (B, C, H, W) in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    small = torch.rand(batch, channels, 4, 4, generator=gen)
    return torch.nn.functional.interpolate(small, size=size, mode="bilinear", align_corners=False)


@pytest.fixture(scope="module")
def lowlight():
    return Enhancer(WEIGHTS / "lowlight_a3c.pt", device="cpu", alpha_mode="argmax", denoise=0)


def test_lowlight_inference_is_a_greedy_rollout_of_the_checkpoints_env(lowlight):
    """Step for step, the Enhancer's rollout (argmax alphas) equals the env of the checkpoint stepped with
    the policy's greedy actions: the same curve, cap, setting encoding and exposure-gap plane. The images
    are one block of the policy (16 px), so its bilinearly upsampled alphas are the env's block actions."""
    path = WEIGHTS / "lowlight_a3c.pt"
    venv = make_for_checkpoint(path, num_envs=3, min_episode_steps=None, crop=16)  # every episode 10 steps
    assert venv.task.transition == load_checkpoint(path)["extra"][SPEC_KEY].transition
    low = smooth(3, 3, (16, 16), seed=0) * 0.3
    cond = torch.cat([lowlight.cond(exposure=0.35), lowlight.cond(exposure=0.7, w_exposure=900.0),
                      lowlight.cond(exposure=0.55, w_color=500.0, w_smooth=1.0)])
    setting = lowlight.transition.decode(cond)
    target, w_exposure = setting[:, 0], setting[:, 1]
    for steps in range(1, lowlight.steps + 1):
        transition = dataclasses.replace(lowlight.transition, steps=steps)
        enhanced, _ = greedy_rollout(lowlight.policy, low, cond, transition=transition, alpha_mode="argmax",
                                     exposure_target=target, mean_limit=transition.limit(target, w_exposure))
        env_image, _ = stepped(lowlight.policy, venv, {"low": low, "cond": cond}, steps=steps, block_actions=True)
        torch.testing.assert_close(env_image, enhanced, atol=1e-6, rtol=0)
    assert float(env_image[1].mean()) > float(env_image[0].mean()) + 0.1  # the settings were followed
    # the whole inference path (full-resolution curves) too, on a working image of the photo's own size
    image = low[1].permute(1, 2, 0).numpy()
    whole = Enhancer(path, device="cpu", alpha_mode="argmax", denoise=0, max_side=16)
    out = whole.enhance_array(image, exposure=0.7, w_exposure=900.0).image
    np.testing.assert_allclose(out, env_image[1].permute(1, 2, 0).numpy(), atol=1e-5)


@pytest.mark.parametrize("name", ["a3c_denoise", "a3c_denoise_color.pt"])
def test_denoising_inference_is_a_greedy_rollout_of_the_checkpoints_env(name, tmp_path):
    """PolicyDenoiser (the library's rollout, with the predictor's pixel for the gray recipe's policy,
    untrained) equals the checkpoint's env stepped with the policy's greedy actions, after every step."""
    path = WEIGHTS / name if name.endswith(".pt") else recipe_policy(tmp_path / "policy.pt", name)
    denoiser = PolicyDenoiser(path, device="cpu")
    venv = make_for_checkpoint(path, crop=(36, 44))
    assert venv.task.transition == denoiser.transition
    clean = smooth(1, denoiser.channels, (36, 44), seed=1)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))
    for steps in range(1, denoiser.transition.steps + 1):
        denoiser.steps = steps
        env_image, _ = stepped(denoiser.policy, venv, {"clean": clean, "noisy": noisy}, steps=steps,
                               block_actions=denoiser.block_actions)
        torch.testing.assert_close(env_image.clamp(0, 1), denoiser.rollout(noisy), atol=1e-6, rtol=0)


def test_completion_inference_is_a_greedy_rollout_of_the_checkpoints_env(tmp_path):
    path = recipe_policy(tmp_path / "policy.pt", "a3c_completion")  # untrained, over the shipped U-Net
    restorer = PolicyCompleter(path, device="cpu")
    venv = make_for_checkpoint(path, crop=(48, 40))
    assert venv.task.transition == restorer.spec.transition == restorer.transition
    original = smooth(1, 3, (48, 40), seed=3)
    mask = torch.zeros(1, 1, 48, 40)
    mask[..., 12:30, 8:26] = 1.0
    options = {"occluded": original * (1 - mask), "original": original, "mask": mask}
    image = options["occluded"][0].permute(1, 2, 0).numpy()
    for steps in range(1, restorer.transition.steps + 1):
        env_image, _ = stepped(restorer.policy, venv, options, steps=steps, block_actions=restorer.block_actions)
        restorer.steps = steps
        restored = restorer.restore(image, mask=mask[0, 0].numpy() > 0)
        np.testing.assert_allclose(restored, env_image[0].clamp(0, 1).permute(1, 2, 0).numpy(), atol=1e-6)


# --- one source of defaults --------------------------------------------------------------------------
#: Per env id: the policy whose training env the id's defaults are (a shipped file, or a recipe's
#: untrained policy: tests.recipes), and the kwargs of its checkpoint's env that the defaults leave out,
#: with why.
SHIPPED = {
    # the episode length drawn at random in training (4-10 steps): the registered length is the fixed 10;
    # the overshoot cap: inference's, the training env had none
    "rlenhance/LowLight-v1": ("lowlight_a3c.pt", {"min_episode_steps", "max_overshoot", "overshoot_weighted"}),
    # reading the predictor's output needs the predictor (a supervised model): make_for_checkpoint loads it
    "rlenhance/Denoise-v0": ("a3c_denoise", {"observe_prediction"}),
    "rlenhance/Completion-v0": ("a3c_completion", set()),
}


def _policy(name, folder):
    """The shipped file ``name``, or an untrained policy of the recipe ``name`` saved in ``folder``."""
    return WEIGHTS / name if name.endswith(".pt") else recipe_policy(folder / f"{name}.pt", name)


def _defaults(env_id):
    registered = gym.spec(env_id)
    task_class = gym.envs.registration.load_env_creator(registered.vector_entry_point).task_class
    defaults = {name: p.default for name, p in inspect.signature(task_class).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return {**defaults, **registered.kwargs, "max_episode_steps": registered.max_episode_steps}


def _plain(value):
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("env_id", sorted(SHIPPED))
def test_the_registered_defaults_are_the_training_env_of_each_tasks_recipe(env_id, tmp_path):
    name, left_out = SHIPPED[env_id]
    path = _policy(name, tmp_path)
    checkpoint_id, kwargs = env_kwargs_for_checkpoint(path)
    assert checkpoint_id == env_id
    defaults = _defaults(env_id)
    transition_keys = {"alpha_table", "cond_scale", "cond_offset"}  # compared as the transition below
    for key, value in kwargs.items():
        if key in left_out or key in transition_keys:
            continue
        assert _plain(value) == _plain(defaults[key]), key
    spec = load_checkpoint(path)["extra"][SPEC_KEY]
    default_transition = envs.make_vec(env_id).task.transition
    expected = dataclasses.replace(spec.transition, max_overshoot=None, overshoot_reference=None) \
        if env_id.startswith("rlenhance/LowLight") else \
        dataclasses.replace(spec.transition, predict=False)  # the default env has no predictor
    assert default_transition == expected
    assert gym.make(env_id).unwrapped.task.transition == dataclasses.replace(expected, steps=None)


def test_a_lowlight_spec_gives_back_the_kwargs_it_was_written_from():
    spec = load_checkpoint(WEIGHTS / "lowlight_a3c.pt")["extra"][SPEC_KEY]
    task = envs.make_vec("rlenhance/LowLight-v1", **lowlight_env_kwargs(spec)).task
    assert task.transition == spec.transition and task.setting_ranges == {
        k: tuple(v) for k, v in spec.setting_ranges.items()}


def test_transitions_round_trip_and_refuse_what_is_not_a_step():
    transitions = [load_checkpoint(WEIGHTS / "lowlight_a3c.pt")["extra"][SPEC_KEY].transition,
                   *(recipe_spec(name).transition for name in ("a3c_denoise", "a3c_completion"))]
    for transition in transitions:
        assert Transition.from_dict(transition.to_dict()) == transition
    with pytest.raises(ValueError, match="damping 1.0"):
        dataclasses.replace(envs.make_vec("rlenhance/LowLight-v1").task.transition, damping=1.0)
    with pytest.raises(ValueError, match=r"missing key\(s\) \['steps'\]"):
        DenoiseTransition.from_dict({"task": "denoise", "predict": False, "clip": False})
    with pytest.raises(ValueError, match="has task 'lowlight', got 'denoise'"):
        LowLightTransition.from_dict({"task": "denoise"})
