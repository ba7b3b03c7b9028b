"""--init-policy: an RL trainer starts its policy from a trained policy checkpoint (fine-tuning, SAC from an
A3C policy, or a conditioned run from an unconditioned policy), and refuses a file that is no policy of the
architecture it builds."""

from pathlib import Path

import pytest
import torch

from experiments import denoise_train, lol_train
from experiments.rl_common import init_policy, make_agent
from rlenhance.checkpoint import load_checkpoint
from rlenhance.errors import CheckpointError
from rlenhance.models.policy import PixelActorCritic

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--episodes", "1", "--eval-every", "1", "--batch", "2", "--crop", "16", "--steps", "2", "--width", "8",
        "--samples", "1", "--threads", "1", "--eval-images", "1"]


@pytest.fixture(scope="module")
def a3c_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("init_policy") / "a3c"
    return Path(denoise_train.main([*TINY, "--out", str(out)])) / "checkpoints" / "best.pt"


def args_of(*argv):
    return denoise_train.parse_args([*TINY, *argv])


def fresh_policy(width=8):
    torch.manual_seed(123)
    return PixelActorCritic(1, 1, 9, width=width)


@pytest.mark.parametrize("agent", ["a3c", "sac"])
def test_the_agent_starts_from_every_weight_of_the_checkpoint(a3c_run, agent):
    args = args_of("--agent", agent, "--init-policy", str(a3c_run))
    venv = denoise_train.envs.make_vec(denoise_train.ENV_ID, device="cpu", num_envs=2, crop=16)
    built = make_agent(args, venv, steps=2)
    saved = load_checkpoint(a3c_run)["state_dict"]
    mine = built.policy.state_dict()
    assert set(mine) == set(saved)
    assert all(torch.equal(mine[k], saved[k]) for k in saved)
    fresh = make_agent(args_of("--agent", agent), venv, steps=2).policy.state_dict()  # without it: a new policy
    assert not all(torch.equal(fresh[k], saved[k]) for k in saved)


def test_a_run_from_a_policy_trains_on_from_it(a3c_run, tmp_path):
    """A run started from a policy that makes no update (SAC before learning_starts) evaluates that
    policy exactly: its validation score is the source run's."""
    source = load_checkpoint(a3c_run)["extra"]["scores"]["eval/psnr"]
    out = tmp_path / "sac"
    denoise_train.main([*TINY, "--agent", "sac", "--set", "sac.learning_starts=1000", "--init-policy", str(a3c_run),
                        "--out", str(out)])
    ckpt = load_checkpoint(out / "checkpoints" / "best.pt")
    assert ckpt["extra"]["algorithm"] == "sac"
    assert ckpt["extra"]["scores"]["eval/psnr"] == pytest.approx(source, abs=1e-4)


def test_another_architecture_is_refused_naming_what_differs(a3c_run):
    with pytest.raises(CheckpointError, match=r"--init-policy .*best.pt: the policy's architecture differs from this "
                                              r"run's: width: the file's 8, this run's 16 \(set by model.width\)"):
        init_policy(fresh_policy(width=16), a3c_run)
    with pytest.raises(CheckpointError, match=r"n_actions: the file's 9, this run's 10 \(set by the task's actions"):
        init_policy(PixelActorCritic(1, 1, 10, width=8), a3c_run)


def test_a_supervised_model_or_a_bad_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match=r"a supervised-model checkpoint, not an RL policy .*model.init_backbone"):
        init_policy(fresh_policy(), ROOT / "rlenhance" / "weights" / "mrpnet_denoise.pt")
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    policy = fresh_policy()
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    with pytest.raises(CheckpointError, match="bad.pt"):
        init_policy(policy, bad)
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())  # untouched


def test_argument_errors(a3c_run, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--init-policy .*missing.pt: no such file"):
        args_of("--init-policy", str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="model.init_policy .* and model.init_backbone .*: .* give one"):
        args_of("--init-policy", str(a3c_run), "--set", "model.backbone=mrpnet", "--set",
                f"model.init_backbone={ROOT / 'rlenhance' / 'weights' / 'mrpnet_denoise.pt'}")


def test_a_conditioned_run_starts_as_the_unconditioned_policy_it_is_given(tmp_path):
    """A low-light run with reward.conditioned adds FiLM to the policy; started from a policy without it, every
    weight is the file's and FiLM is zero, so the new policy's outputs are the file's at any setting. The other
    way round (FiLM weights into a net without FiLM) is refused."""
    tiny = ["--episodes", "1", "--eval-every", "1", "--batch", "2", "--crop", "16", "--steps", "2", "--test-steps",
            "2", "--eval-size", "32", "--width", "8", "--samples", "1", "--threads", "1", "--set",
            "task.min_steps=none"]
    plain = lol_train.main([*tiny, "--out", str(tmp_path / "plain")])  # the defaults: one setting
    source_file = Path(plain) / "checkpoints" / "last.pt"
    saved = load_checkpoint(source_file)
    assert "cond_film" not in saved["arch"]["kwargs"]
    conditioned = PixelActorCritic(**saved["arch"]["kwargs"], cond_film=True)
    with torch.no_grad():
        conditioned.film.weight.fill_(1.0)  # whatever FiLM held before, it starts at zero
    init_policy(conditioned, source_file)
    assert not conditioned.film.weight.any() and not conditioned.film.bias.any()
    source = PixelActorCritic(**saved["arch"]["kwargs"])
    source.load_state_dict(saved["state_dict"])
    torch.manual_seed(0)
    x, cond = torch.rand(2, source.in_channels, 24, 24), torch.randn(2, source.cond_dim)
    torch.testing.assert_close(conditioned(x, cond).logits, source(x, cond).logits, rtol=0, atol=0)
    filmed = Path(lol_train.main([*tiny, "--preset", "global-light", "--out", str(tmp_path / "filmed")]))
    filmed = filmed / "checkpoints" / "last.pt"
    with pytest.raises(CheckpointError, match=r"cond_film: the file's True, this run's None"):
        init_policy(source, filmed)
