"""A3C's compiled training step (rlenhance.runtime.Compiled, on CUDA by default): the same episodes as
the eager step, compiled here on the CPU by inductor; the switch and the fallback to eager."""

import pytest
import torch

import envs
from agents.a3c import A3C, A3CConfig, policy_kwargs_from_env, policy_step
from rlenhance.models.policy import PixelActorCritic
from rlenhance.runtime import COMPILE_SWITCH, Compiled, compile_mode


def _episodes(env_id, env_kwargs, policy_kwargs, config, compiled):
    venv = envs.make_vec(env_id, **env_kwargs)
    torch.manual_seed(0)
    agent = A3C(PixelActorCritic(**policy_kwargs_from_env(venv, **policy_kwargs)), A3CConfig(seed=3, **config))
    if compiled:
        agent.step = Compiled(policy_step, "default", "A3C's training step")
    stats = [agent.train_episode(venv, seed=5), agent.train_episode(venv)]
    if compiled:
        assert agent.step.active and venv.task.compiled_transition.active  # nothing fell back to eager
    return stats, [p.detach().clone() for p in agent.parameters()]


@pytest.mark.slow
@pytest.mark.parametrize("env_id, env_kwargs, policy_kwargs, config", [
    ("rlenhance/LowLight-v0", dict(num_envs=3, crop=24, max_episode_steps=3, smooth_in_reward=False),
     dict(width=8, downscale=4, cond_film=True), dict(action_penalty=1.0)),
    ("rlenhance/Denoise-v0", dict(num_envs=2, crop=16, max_episode_steps=2), dict(width=8), {}),
], ids=["lowlight", "denoise"])
def test_the_compiled_step_trains_as_the_eager_one(env_id, env_kwargs, policy_kwargs, config):
    eager, eager_params = _episodes(env_id, env_kwargs, policy_kwargs, config, compiled=False)
    fast, fast_params = _episodes(env_id, env_kwargs, policy_kwargs, config, compiled=True)
    for a, b in zip(eager, fast):
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-5), key
    for a, b in zip(eager_params, fast_params):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5)


def test_compile_mode_is_cuda_only_and_follows_the_switch(monkeypatch):
    monkeypatch.delenv(COMPILE_SWITCH, raising=False)
    assert compile_mode("cpu") is None and compile_mode("cuda") == "default"
    monkeypatch.setenv(COMPILE_SWITCH, "reduce-overhead")
    assert compile_mode("cuda:0") == "reduce-overhead" and compile_mode(torch.device("cpu")) is None
    monkeypatch.setenv(COMPILE_SWITCH, "0")
    assert compile_mode("cuda") is None
    monkeypatch.setenv(COMPILE_SWITCH, "fast")
    with pytest.raises(ValueError, match="RLENHANCE_COMPILE='fast'"):
        compile_mode("cuda")


def test_a_failed_compile_says_so_once_and_runs_eagerly(monkeypatch, capsys):
    def broken(fn, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("backend compiler failed\nmore detail")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    double = Compiled(lambda x: 2 * x, "default", "the step")
    assert double.active and double(torch.ones(2)).tolist() == [2.0, 2.0]
    assert not double.active and double(torch.ones(1)).tolist() == [2.0]
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["the step: torch.compile (mode default) failed (RuntimeError: backend compiler failed); "
                     "running eagerly"]
    assert not Compiled(lambda x: x, None, "eager").active
