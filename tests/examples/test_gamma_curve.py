"""examples/gamma_curve.py end to end: an action family of one's own, named by import path, trained a few
episodes by experiments.lol_train, applied by `rlenhance enhance --checkpoint` and scored by
experiments.compare (each in a fresh process, which finds the family by the path the checkpoint records),
with nothing inside the packages changed for it."""

import csv
import json

import numpy as np
import pytest

from examples.gamma_curve import GammaCurve
from experiments import lol_train
from rlenhance.checkpoint import SPEC_KEY, load_checkpoint
from rlenhance.enhance import Enhancer
from rlenhance.io import image_to_tensor, load_image, save_image
from rlenhance.metrics.table import METRICS
from rlenhance.transitions import LE
from tests.examples.packages import TINY_LOL, assert_plugs_in_from_outside, run_fresh, write_dark_pairs

FAMILY = "examples.gamma_curve:GammaCurve"


@pytest.mark.slow
def test_an_action_family_of_ones_own_trains_enhances_and_compares(tmp_path):
    out = lol_train.main([*TINY_LOL, "--set", f"task.curve={FAMILY}", "--out", str(tmp_path / "run")])
    best = out / "checkpoints" / "best.pt"
    assert load_checkpoint(best)["extra"][SPEC_KEY].transition.curve == FAMILY  # the checkpoint records the path
    assert json.loads((out / "config.json").read_text())["task"]["curve"] == FAMILY

    dark = np.random.default_rng(1).uniform(0.02, 0.3, (24, 40, 3)).astype(np.float32)
    save_image(tmp_path / "dark" / "photo.png", dark)
    run_fresh("-m", "rlenhance", "enhance", str(tmp_path / "dark"), "-o", str(tmp_path / "out"), "--checkpoint",
              str(best), "--denoise", "0")
    written = load_image(tmp_path / "out" / "photo.png")
    # the policy's alpha maps through the gamma curve, at full resolution; LE's curve on them is another image
    enhancer = Enhancer(best, device="cpu", denoise=0)
    image = image_to_tensor(load_image(tmp_path / "dark" / "photo.png"))[None]
    maps = enhancer.alpha_maps(image, enhancer.cond())
    gamma, le = (family.apply(image, maps)[0].permute(1, 2, 0).numpy() for family in (GammaCurve, LE))
    np.testing.assert_allclose(written, gamma, atol=0.5 / 255 + 1e-6)
    assert np.abs(written - le).max() > 4 / 255

    pairs = write_dark_pairs(tmp_path / "pairs")
    run_fresh("-m", "experiments.compare", "--task", "lowlight", "--data", str(pairs), "--split", "all", "--methods",
              "input,rl", "--rl", str(best), "--no-warmup", "--threads", "1", "--out", str(tmp_path / "cmp"))
    with open(tmp_path / "cmp" / "results.csv") as handle:
        row = next(r for r in csv.DictReader(handle) if r["method"] == "rl" and r["image"] == "0.png")
    low = load_image(pairs / "low" / "0.png")
    assert float(row["brightness"]) == pytest.approx(METRICS.get("brightness").fn(
        Enhancer(best, device="cpu").enhance(low), low), abs=1e-6)  # this checkpoint's curves, as enhance applies
    assert f"- rl: `{best}`" in (tmp_path / "cmp" / "report.md").read_text()
    assert_plugs_in_from_outside("gamma_curve")
