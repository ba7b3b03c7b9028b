"""The vector env's attributes are explicit: what callers read is there, anything else is an AttributeError."""

import pickle

import pytest
import torch

import envs
from envs.base import PixelTask


@pytest.mark.parametrize("env_id,kwargs,n_actions", [
    ("rlenhance/LowLight-v1", {}, 21),  # the shipped policy's brightening alphas
    ("rlenhance/LowLight-v1", {"action_type": "continuous"}, None),
    ("rlenhance/Denoise-v0", {}, 9),
    ("rlenhance/Completion-v0", {}, 8),
])
def test_what_callers_read_is_there(env_id, kwargs, n_actions):
    venv = envs.make_vec(env_id, num_envs=2, crop=16, max_episode_steps=3, **kwargs)
    assert isinstance(venv.task, PixelTask)
    assert venv.n_actions == n_actions
    assert venv.max_episode_steps == 3
    assert venv.num_envs == 2 and venv.device == torch.device("cpu")


def test_lowlight_vector_env_exposes_the_cond_encoding():
    venv = envs.make_vec("rlenhance/LowLight-v1", num_envs=1, crop=16)
    assert torch.equal(venv.cond_scale, venv.task.cond_scale)
    assert torch.equal(venv.cond_offset, venv.task.cond_offset)


@pytest.mark.parametrize("name", ["dataset", "generator", "observe", "check_actions", "t", "alpha",
                                  "no_such_attribute"])
def test_task_internals_and_unknown_names_are_attribute_errors(name):
    venv = envs.make_vec("rlenhance/LowLight-v1", num_envs=1, crop=16)
    with pytest.raises(AttributeError, match=name):
        getattr(venv, name)
    assert hasattr(venv.task, name) or name == "no_such_attribute"


def test_vector_env_pickles():
    venv = envs.make_vec("rlenhance/Denoise-v0", num_envs=2, crop=8, max_episode_steps=2)
    copy = pickle.loads(pickle.dumps(venv))
    assert copy.max_episode_steps == 2 and copy.n_actions == 9


def test_episode_steps_is_the_current_episodes_length():
    venv = envs.make_vec("rlenhance/Denoise-v0", num_envs=2, crop=16, max_episode_steps=6, min_episode_steps=2)
    lengths = set()
    for seed in range(8):
        venv.reset(seed=seed)
        steps = 0
        while True:
            _, _, terminated, truncated, _ = venv.step(torch.ones(2, 1, 16, 16, dtype=torch.long))
            steps += 1
            assert not terminated.any()
            if truncated.all():
                break
            assert not truncated.any()  # all end together, never before
        assert steps == venv.episode_steps
        lengths.add(steps)
    assert len(lengths) > 1 and lengths <= set(range(2, 7))


def test_action_values_are_checked_every_step_on_the_cpu_and_at_an_episodes_first_elsewhere():
    task = envs.make_vec("rlenhance/Denoise-v0", num_envs=1, crop=16, max_episode_steps=3).task
    task.t = 1
    assert task._check_values()
    task.device = torch.device("cuda")  # the decision only (no tensor is made)
    assert not task._check_values()
    task.t = 0
    assert task._check_values()
    task.validate_actions = False
    assert not task._check_values()
    venv = envs.make_vec("rlenhance/Denoise-v0", num_envs=1, crop=16, max_episode_steps=3)
    venv.reset(seed=0)
    venv.step(torch.ones(1, 1, 16, 16, dtype=torch.long))
    with pytest.raises(ValueError, match=r"values must be in 0\.\.8"):  # a later step, on the CPU
        venv.step(torch.full((1, 1, 16, 16), 9))
