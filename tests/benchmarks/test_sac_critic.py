"""benchmarks.sac_critic on a tiny denoise_train SAC run (embedded photos): its one-step rewards are
the env's, its Q values the agent's critics', and it refuses checkpoints without a SAC agent."""

import math
from pathlib import Path

import pytest
import torch

from agents.rollout import policy_rollout
from benchmarks import sac_critic
from experiments import denoise_train
from rlenhance.checkpoint import load_checkpoint

TINY = ["--episodes", "2", "--eval-every", "2", "--batch", "2", "--crop", "16", "--steps", "2", "--width", "8",
        "--samples", "0", "--threads", "1", "--eval-images", "1"]
CROPS, SEED = 3, 7
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sac_critic")
    sac = denoise_train.main(TINY + ["--agent", "sac", "--set", "sac.learning_starts=2", "--set", "sac.batch=2",
                                     "--out", str(root / "sac")])
    a3c = denoise_train.main(TINY + ["--out", str(root / "a3c")])
    return sac / "checkpoints" / "last.pt", a3c / "checkpoints" / "last.pt"


def test_report_reads_the_envs_rewards_and_the_critics(runs):
    (report,) = sac_critic.main([str(runs[0]), "--crops", str(CROPS), "--seed", str(SEED)])
    agent, args = sac_critic.load_agent(runs[0])
    venv = sac_critic.run_env(args, CROPS, runs[0])
    obs, rewards = sac_critic.one_step_rewards(venv, SEED)
    assert rewards.shape == (CROPS, 9, *obs["image"].shape[-2:])
    clean, noisy = venv.task.clean, obs["image"]
    assert not rewards[:, 1].any()  # action 1 keeps the pixel: no change, no reward
    # action 0 lowers every pixel by 1/255: the decrease of squared error x 255, per pixel
    shifted = ((clean - noisy).square() - (clean - (noisy - 1 / 255)).square())[:, 0] * 255
    assert torch.allclose(rewards[:, 0], shifted, atol=1e-4)
    assert report["reward_per_action"] == pytest.approx(rewards.mean((0, 2, 3)).tolist(), abs=1e-5)
    assert report["oracle"] == pytest.approx(float(rewards.amax(1).mean()), abs=1e-5)
    with torch.no_grad():
        q = torch.minimum(*(critic(noisy) for critic in agent.critics))
    assert report["q_per_action"] == pytest.approx(q.mean((0, 1, 3, 4)).tolist(), abs=1e-5)
    assert sum(report["greedy_freq"]) == pytest.approx(1.0)
    assert 0.0 <= report["entropy"] <= math.log(9) + 1e-5
    assert 0.0 <= report["agree"] <= 1.0 and -1.0 <= report["corr"] <= 1.0
    assert report["episodes"] == 2 and report["updates"] > 0


def test_a_run_with_a_predictor_scores_its_tenth_action(tmp_path):
    out = denoise_train.main(TINY + ["--agent", "sac", "--set", "sac.learning_starts=2", "--set", "sac.batch=2",
                                     "--predictor", str(ROOT / "rlenhance" / "weights" / "mrpnet_denoise.pt"),
                                     "--out", str(tmp_path / "sac")])
    (report,) = sac_critic.main([str(out / "checkpoints" / "last.pt"), "--crops", "2"])
    assert len(report["reward_per_action"]) == len(report["q_per_action"]) == len(report["greedy_freq"]) == 10


def test_refuses_a_checkpoint_without_a_sac_agent(runs):
    with pytest.raises(ValueError, match="a3c.*no SAC agent state"):
        sac_critic.main([str(runs[1])])


@pytest.mark.parametrize("part", ["critic", "actor"])
def test_fit_trains_one_part_alone(runs, capsys, part):
    """--fit-critic: the critics move on the one-step problem (gamma 0), the actor and temperature do not;
    --fit-actor: the actor moves on its own states, the critics and temperature do not. Either way the
    buffer then holds the refill's transitions only."""
    agent, args = sac_critic.load_agent(runs[0])
    before = {name: [p.detach().clone() for p in module.parameters()]
              for name, module in (("actor", agent.policy), ("critic", agent.critics))}
    alpha = agent.alpha
    venv = sac_critic.run_env(args, CROPS, runs[0], split="train")
    fit = (sac_critic.fit_critics(agent, venv, 3, episodes=2, seed=SEED, lr=1e-2) if part == "critic"
           else sac_critic.fit_actor(agent, venv, 3, episodes=2, seed=SEED))
    assert list(fit) == [1, 2, 3] and agent.alpha == alpha
    assert agent.config.gamma == (0.0 if part == "critic" else args.sac.gamma)
    assert len(agent.buffer) == 2 * CROPS * 2  # 2 episodes of --steps 2 on CROPS crops, nothing of the run's own
    for name, module in (("actor", agent.policy), ("critic", agent.critics)):
        same = all(torch.equal(a, b) for a, b in zip(before[name], module.parameters()))
        assert same == (name != part)
    sac_critic.main([str(runs[0]), "--crops", str(CROPS), f"--fit-{part}", "2", "--fit-every", "1",
                     "--fit-episodes", "1"])
    marker = " updates: Q " if part == "critic" else " steps: greedy = critic's best"
    lines = [line for line in capsys.readouterr().out.splitlines() if marker in line]
    assert [line.split()[0] for line in lines] == ["1", "2"]
    with pytest.raises(SystemExit):
        sac_critic.main([str(runs[0]), f"--fit-{part}", "-1"])


def test_validate_scores_the_actor_as_its_trainer_did_and_the_critics_greedy_choice(runs):
    (report,) = sac_critic.main([str(runs[0]), "--crops", str(CROPS), "--validate"])
    # the trainer's report of best.pt on the validation split (its one evaluation: best.pt is last.pt's policy)
    trained = load_checkpoint(runs[0])["extra"]["report"]["eval/psnr"]
    assert report["val_psnr_actor"] == pytest.approx(trained, abs=1e-4)
    assert math.isfinite(report["val_psnr_critic_greedy"])


class FixedQ(torch.nn.Module):
    """A critic whose Q values are fixed per action and image half: ``q[k]`` on the left, ``right[k]`` on the right."""

    def __init__(self, left, right):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))
        self.left, self.right = torch.tensor(left, dtype=torch.float32), torch.tensor(right, dtype=torch.float32)

    def forward(self, x, cond=None):
        b, _, h, w = x.shape
        q = self.left.view(1, 1, -1, 1, 1).repeat(b, 1, 1, h, w)
        q[..., w // 2:] = self.right.view(1, 1, -1, 1, 1)
        return q


def test_critic_greedy_takes_the_action_of_the_highest_lower_q(runs):
    """Critic 1 prefers action 6 everywhere; critic 2 agrees on the left and values 6 lowest on the right,
    where action 3 then has the highest min(Q1, Q2): the rollout is that of 6 | 3 at every step."""
    agent, args = sac_critic.load_agent(runs[0])
    prefer = [2.0 if k == 6 else 1.0 if k == 3 else 0.0 for k in range(9)]
    worst6 = [-5.0 if k == 6 else v for k, v in enumerate(prefer)]
    agent.critics = torch.nn.ModuleList([FixedQ(prefer, prefer), FixedQ(prefer, worst6)])
    venv = sac_critic.run_env(args, 2, runs[0])
    obs, _ = venv.reset(seed=SEED)
    options = {"clean": venv.task.clean.clone(), "noisy": obs["image"].clone()}
    output = policy_rollout(sac_critic.CriticGreedy(agent), venv.task, options, steps=args.task.steps)
    venv.reset(seed=SEED, options=options)
    w = obs["image"].shape[-1]
    actions = torch.full_like(obs["image"], 6, dtype=torch.long)
    actions[..., w // 2:] = 3
    for _ in range(args.task.steps):
        expected, *_ = venv.step(actions)
    torch.testing.assert_close(output, expected["image"])
