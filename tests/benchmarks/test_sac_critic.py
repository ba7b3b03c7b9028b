"""benchmarks.sac_critic on a tiny denoise_train SAC run (embedded photos): its one-step rewards are
the env's, its Q values the agent's critics', and it refuses checkpoints without a SAC agent."""

import math

import pytest
import torch

import envs
from benchmarks import sac_critic
from experiments import denoise_train

TINY = ["--episodes", "2", "--eval-every", "2", "--batch", "2", "--crop", "16", "--steps", "2", "--width", "8",
        "--samples", "0", "--threads", "1", "--eval-images", "1"]
CROPS, SEED = 3, 7


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sac_critic")
    sac = denoise_train.main(TINY + ["--agent", "sac", "--sac-learning-starts", "2", "--sac-batch", "2",
                                     "--out", str(root / "sac")])
    a3c = denoise_train.main(TINY + ["--out", str(root / "a3c")])
    return sac / "checkpoints" / "last.pt", a3c / "checkpoints" / "last.pt"


def test_rewards_are_the_envs_and_q_the_critics(runs):
    (report,) = sac_critic.main([str(runs[0]), "--crops", str(CROPS), "--seed", str(SEED)])
    agent, args = sac_critic.load_agent(runs[0])
    _, val_set, _ = denoise_train.open_data(args)
    venv = envs.make_vec(denoise_train.ENV_ID, CROPS, data=val_set, **denoise_train.env_kwargs(args))
    obs, _ = venv.reset(seed=SEED)
    h, w = obs["image"].shape[-2:]
    n_actions = len(report["reward_per_action"])
    assert n_actions == 9
    for action in range(n_actions):  # every pixel taking one action: the env's own reward
        venv.reset(seed=SEED)
        _, reward, *_ = venv.step(torch.full((CROPS, 1, h, w), action, dtype=torch.long))
        assert report["reward_per_action"][action] == pytest.approx(float(reward.mean()), abs=1e-4)
    assert report["reward_per_action"][1] == 0.0  # "keep"
    assert report["oracle"] >= max(report["reward_per_action"]) - 1e-6
    with torch.no_grad():
        q = torch.minimum(*(critic(obs["image"]) for critic in agent.critics))
    assert report["q_per_action"] == pytest.approx(q.mean((0, 1, 3, 4)).tolist(), abs=1e-5)
    assert sum(report["greedy_freq"]) == pytest.approx(1.0)
    assert 0.0 <= report["entropy"] <= math.log(n_actions) + 1e-5
    assert 0.0 <= report["agree"] <= 1.0 and -1.0 <= report["corr"] <= 1.0
    assert report["episodes"] == 2 and report["updates"] > 0


def test_refuses_a_checkpoint_without_a_sac_agent(runs):
    with pytest.raises(ValueError, match="a3c.*no SAC agent state"):
        sac_critic.main([str(runs[1])])
