"""examples/reward_term.py end to end: a reward term of one's own, named by import path in lol_train's
reward.terms, changing the reward of a training run, recorded in its checkpoint (whose env, rebuilt, adds
it), the model applied by `rlenhance enhance --checkpoint` and scored by experiments.compare (each in a fresh
process), with nothing inside the packages changed for it."""

import csv
import json

import numpy as np
import pytest
import torch

from envs.checkpoints import make_for_checkpoint
from envs.rewards import REWARD_TERMS, build_terms
from examples.reward_term import HighlightKeep, highlight_excess
from experiments import lol_train
from experiments.runs import read_metrics
from rlenhance.checkpoint import SPEC_KEY, load_checkpoint
from rlenhance.io import load_image, save_image
from tests.examples.packages import TINY_LOL, assert_plugs_in_from_outside, run_fresh

TERM = "examples.reward_term:HighlightKeep"
WEIGHT = 1000.0


def night_photos(folder, count=6, size=48, seed=0):
    """``count`` dark RGB photos (levels 0.02-0.2) with a lamp (a square at 0.8) each, large enough that every
    32 px crop holds some of it: the folder."""
    rng = np.random.default_rng(seed)
    for k in range(count):
        photo = rng.uniform(0.02, 0.2, (size, size, 3)).astype(np.float32)
        top, left = rng.integers(0, size - 20, 2)
        photo[top:top + 20, left:left + 20] = 0.8
        save_image(folder / f"night{k}.png", photo)
    return folder


def test_the_term_penalises_the_highlights_a_step_makes_and_no_others():
    original = torch.tensor([0.5, 0.5, 0.95, 0.2]).reshape(1, 1, 1, 4).expand(1, 3, 1, 4)
    image = torch.tensor([0.85, 1.0, 1.0, 0.2]).reshape(1, 1, 1, 4).repeat(1, 3, 1, 1)
    image[0, 0, 0, 3] = 0.95  # one channel pushed over the level is enough
    expected = torch.tensor([0.0, 0.1 ** 2, 0.05 ** 2, 0.05 ** 2]).reshape(1, 1, 1, 4)
    torch.testing.assert_close(highlight_excess(image, original, 0.9), expected)
    assert REWARD_TERMS.get(TERM) is HighlightKeep and TERM not in REWARD_TERMS  # named by path, not registered
    ((weight, term),) = build_terms({TERM: 2})
    assert weight == 2.0 and isinstance(term, HighlightKeep)


@pytest.mark.slow
def test_a_reward_term_of_ones_own_changes_the_reward_and_its_model_enhances_and_compares(tmp_path):
    photos = night_photos(tmp_path / "night")
    args = [*TINY_LOL, "--data", str(photos)]
    out = lol_train.main([*args, "--set", f"reward.terms={TERM}={WEIGHT:g}", "--out", str(tmp_path / "with")])
    plain = lol_train.main([*args, "--out", str(tmp_path / "without")])
    best = out / "checkpoints" / "best.pt"
    assert json.loads((out / "config.json").read_text())["reward"]["terms"] == [f"{TERM}={WEIGHT:g}"]
    assert load_checkpoint(best)["extra"][SPEC_KEY].env_kwargs["terms"] == {TERM: WEIGHT}
    returns = [[row["charts/episode_return"] for row in read_metrics(run / "train.csv")] for run in (out, plain)]
    assert len(returns[0]) == 2 and returns[0] != returns[1]  # same seed, same draws: the term alone differs

    # the env rebuilt from the checkpoint adds the term: its reward is the plain one less WEIGHT x the excess made
    lamp = np.full((3, 32, 32), 0.1, np.float32)
    lamp[:, 8:16, 8:16] = 0.8
    rewards = []
    for terms in (None, {}):
        venv = make_for_checkpoint(best, data=str(photos), **({} if terms is None else {"terms": terms}))
        venv.reset(seed=0, options={"low": lamp})
        _, reward, *_ = venv.step(np.full(venv.action_space.shape, venv.single_action_space.nvec.max() - 1))
        rewards.append(float(reward[0]))
    excess = float(highlight_excess(venv.task.image, venv.task.original, HighlightKeep.level).mean())
    assert excess > 0 and rewards[0] == pytest.approx(rewards[1] - WEIGHT * excess, rel=1e-4)

    run_fresh("-m", "rlenhance", "enhance", str(photos / "night0.png"), "-o", str(tmp_path / "out"), "--checkpoint",
              str(best))
    assert load_image(tmp_path / "out" / "night0.png").mean() > load_image(photos / "night0.png").mean()
    run_fresh("-m", "experiments.compare", "--task", "lowlight", "--data", str(photos), "--methods", "input,rl",
              "--rl", str(best), "--limit", "2", "--no-warmup", "--threads", "1", "--out", str(tmp_path / "cmp"))
    with open(tmp_path / "cmp" / "results.csv") as handle:
        assert [r["image"] for r in csv.DictReader(handle) if r["method"] == "rl"] == ["night0.png", "night1.png"]
    assert f"- rl: `{best}`" in (tmp_path / "cmp" / "report.md").read_text()
    assert_plugs_in_from_outside("reward_term")
