"""benchmarks.lowlight_goals on a tiny generated pairs folder: the goal rows, figures that match the
library's own baselines and metrics, the exposure sweep on both sets, and the rows a checkpoint that
follows no setting cannot fill."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from benchmarks import lowlight_goals
from rlenhance.baselines import global_curve, oracle_global
from rlenhance.checkpoint import save_checkpoint
from rlenhance.data import PairedImages, lowlight_test_set
from rlenhance.io import save_image, tensor_to_image
from rlenhance.models.policy import PixelActorCritic
from tests.specs import lowlight_spec

SCENES = ("001", "002", "003")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """Three scenes of two frames each: smooth colour references, a dim and a very dark low frame."""
    folder = tmp_path_factory.mktemp("goals")
    rng = np.random.default_rng(0)
    for scene in SCENES:
        coarse = rng.uniform(0.2, 0.9, (3, 4, 3)).astype(np.float32)
        high = np.clip(np.kron(coarse, np.ones((16, 16, 1), np.float32)), 0, 1)  # 48 x 64
        for frame, gain in ((0, 0.25), (1, 0.06)):
            save_image(folder / "high" / f"{scene}_{frame}.png", high)
            save_image(folder / "low" / f"{scene}_{frame}.png", gain * high)
    return folder


def test_the_goals_of_the_shipped_model_on_tiny_pairs(pairs, tmp_path, capsys):
    out = tmp_path / "goals.json"
    result = lowlight_goals.main(["--data", str(pairs), "--split", "all", "--size", "32", "--threads", "1",
                                  "--relightings", "1", "--json", str(out)])
    assert (result["scenes"], result["frames"], result["size"]) == (3, 6, [32, 32])
    goals = [row["goal"] for row in result["rows"]]
    assert goals == ["PSNR (GT-mean) over oracle-global", "PSNR (GT-mean) over global-curve",
                     "alpha-map spread (p95 - p5 of the summed map), median",
                     "the same spread on the pairs' own (even) light, median", "spread at w_smooth 0.1 / 100",
                     "exposure: worst abs(mean - target), all images",
                     "exposure: worst abs(mean - target), input mean < 0.08",
                     "the cap stopped the rollout: largest share"]
    # the shipped model follows every knob: each goal gets a verdict; the even light's spread has no goal
    assert [row["met"] is None for row in result["rows"]] == [goal.startswith("the same spread") for goal in goals]
    # the baselines' figures are the library's: the first frame of each scene relit, as compare relights it
    dataset = PairedImages(pairs)
    relit = lowlight_test_set(Subset(dataset, [0, 2, 4]), 32, light="uneven")
    assert relit.names == ["001_0.png", "002_0.png", "003_0.png"]
    for name, method in (("oracle-global", oracle_global), ("global-curve", lambda low, _: global_curve(low)),
                         ("input", lambda low, _: low)):
        expected = np.mean([lowlight_goals.gt_mean_psnr(method(tensor_to_image(low), tensor_to_image(high)), high)
                            for low, high in zip(relit.low, relit.high)])
        assert result["psnr"][name] == pytest.approx(expected, abs=1e-9)
    assert result["psnr"]["oracle-global"] > result["psnr"]["global-curve"]  # no global curve passes the oracle
    assert len(result["spreads"]) == 3 and all(s >= 0 for s in result["spreads"])
    assert len(result["even_spreads"]) == 6 and all(s >= 0 for s in result["even_spreads"])
    # the exposure sweep: every target on each set; the dark frames are the pairs' 6% ones, cropped or not
    assert [(e["set"], e["target"]) for e in result["exposure"]] == [
        (name, target) for name in ("relit", "pairs", "pairs 2:1") for target in lowlight_goals.TARGETS]
    assert {e["set"]: e["dark"] for e in result["exposure"]} == {
        "relit": sum(float(low.mean()) < lowlight_goals.DARK for low in relit.low), "pairs": 3, "pairs 2:1": 3}
    for e in result["exposure"]:
        assert e["error"] == pytest.approx(np.mean(e["errors"])) and 0.0 <= e["capped"] <= 1.0
    assert json.loads(out.read_text())["rows"] == result["rows"]
    printed = capsys.readouterr().out
    command = f"python -m benchmarks.lowlight_goals --data {pairs} --size 32 --split all --relightings 1"
    assert f"Every row: `{command}`" in printed
    assert "| PSNR (GT-mean) over global-curve |" in printed and "| pairs (6) | 0.3 |" in printed


def test_a_checkpoint_that_follows_no_setting_is_measured_at_its_own(pairs, tmp_path):
    torch.manual_seed(0)
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2, cond_dim=5)
    spec = lowlight_spec(alpha_table=[round((a - 6) / 20, 2) for a in range(27)], action_type="discrete",
                         test_steps=2, cond_scale=[1.0] * 5,
                         setting={"exposure_target": 0.4, "w_exposure": 10.0, "w_color": 5.0, "w_spatial": 1.0,
                                  "w_smooth": 20.0})
    path = save_checkpoint(tmp_path / "fixed.pt", model=policy, arch=policy.arch(), extra={"spec": spec})
    result = lowlight_goals.main(["--checkpoint", str(path), "--data", str(pairs), "--split", "all", "--size", "32",
                                  "--limit", "1"])
    assert (result["scenes"], result["relightings"], result["frames"]) == (1, 4, 2)
    assert len(result["spreads"]) == 4  # the default: each scene relit four times
    smooth = next(row for row in result["rows"] if row["goal"].startswith("spread at w_smooth"))
    assert smooth["met"] is None and "does not follow w_smooth" in smooth["value"]
    assert [(e["set"], e["target"]) for e in result["exposure"]] == [("relit", 0.4), ("pairs", 0.4), ("pairs 2:1", 0.4)]
    assert all(e["capped"] == 0.0 for e in result["exposure"])  # no cap recorded: it never stops a rollout
    assert result["command"].endswith(f"--checkpoint {path} --data {pairs} --size 32 --split all --limit 1")


def test_the_wide_crop_is_the_centre_rows_at_two_to_one():
    image = np.arange(8 * 6).reshape(8, 6)
    assert np.array_equal(lowlight_goals.wide_crop(image), image[2:5])
    assert lowlight_goals.wide_crop(image[:1]).shape == (1, 6)


def test_each_relighting_is_its_own_draw_of_light_on_the_same_references(pairs):
    once, _ = lowlight_goals.load_images(pairs, 32, split="all", split_seed=0, seed=3, limit=2, relightings=1)
    twice, frames = lowlight_goals.load_images(pairs, 32, split="all", split_seed=0, seed=3, limit=2, relightings=2)
    assert twice.names == ["001_0.png", "002_0.png", "1/001_0.png", "1/002_0.png"] and len(frames.names) == 4
    assert torch.equal(twice.low[:2], once.low) and torch.equal(twice.high[2:], once.high)
    seed4, _ = lowlight_goals.load_images(pairs, 32, split="all", split_seed=0, seed=4, limit=2, relightings=1)
    assert torch.equal(twice.low[2:], seed4.low) and not torch.equal(twice.low[2:], once.low)


def test_steps_sets_the_policy_and_the_global_curve_alike(pairs, capsys):
    """``--steps N`` runs the policy and the global curve it is compared with at N steps, and names it in
    the printed command; a step count below 1 is refused."""
    common = ["--data", str(pairs), "--split", "all", "--size", "32", "--threads", "1", "--relightings", "1",
              "--limit", "1"]
    result = lowlight_goals.main([*common, "--steps", "2"])
    dataset = PairedImages(pairs)
    relit = lowlight_test_set(Subset(dataset, [0]), 32, light="uneven")
    low, high = tensor_to_image(relit.low[0]), relit.high[0]
    assert result["psnr"]["global-curve"] == pytest.approx(lowlight_goals.gt_mean_psnr(
        global_curve(low, steps=2), high), abs=1e-9)
    assert result["psnr"]["global-curve"] != pytest.approx(lowlight_goals.gt_mean_psnr(global_curve(low), high))
    assert "--relightings 1 --steps 2`" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        lowlight_goals.main([*common, "--steps", "0"])
    assert "--steps 0: expected" in capsys.readouterr().err
