"""benchmarks.knob_ranges on a tiny paired folder: each image gets the global curve that minimises
the weighted reward loss, so a dominant term has its way and the table covers every weight x value."""

import numpy as np
import pytest
import torch

from benchmarks import knob_ranges
from rlenhance.io import save_image


@pytest.fixture()
def pairs(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("001_1", "002_1"):
        high = rng.uniform(0.2, 0.8, (24, 32, 3)).astype(np.float32)
        high[..., 0] *= 0.6  # a colour cast, so the colour term has something to weigh
        save_image(tmp_path / "high" / f"{name}.png", high)
        save_image(tmp_path / "low" / f"{name}.png", high * 0.2)
    return tmp_path


def run(pairs, *extra):
    return knob_ranges.main(["--data", str(pairs), "--split", "all", "--exposure-patch", "8", "--steps", "4",
                             "--threads", "1", *extra])


def test_the_table_covers_every_weight_and_value(pairs, capsys):
    result = run(pairs, "--values", "1", "1000")
    assert [(r["weight"], r["value"]) for r in result["table"]] == [
        (w, v) for w in ("w_exposure", "w_color", "w_spatial") for v in (1.0, 1000.0)]
    assert result["images"] == 2
    assert "| w_spatial | 1000 |" in capsys.readouterr().out


def test_a_dominant_term_has_its_way(pairs):
    rows = {(r["weight"], r["value"]): r for r in run(pairs, "--values", "0", "100000", "--exposure", "0.5")["table"]}
    # w_exposure dominant: the mean lands near the target; nearly absent: the other terms keep the image dark
    assert rows["w_exposure", 100000.0]["|mean-E|"] < 0.05
    assert rows["w_exposure", 0.0]["mean"] < rows["w_exposure", 100000.0]["mean"] - 0.1
    # a dominant spatial or colour weight lowers its own loss (by brightening less), against the weight at 0
    assert rows["w_spatial", 100000.0]["spatial"] < 0.5 * rows["w_spatial", 0.0]["spatial"]
    assert rows["w_color", 100000.0]["color"] < 0.5 * rows["w_color", 0.0]["color"]


def test_curve_terms_match_the_losses_of_the_curved_image():
    low = torch.rand(3, 16, 16) * 0.3
    alphas = torch.tensor([0.0, 0.5])
    terms = knob_ranges.curve_terms(low, alphas, steps=2, target=0.5, patch=8)
    assert torch.allclose(terms["mean"][0], low.mean())  # alpha 0 keeps the image
    assert float(terms["spatial"][0]) == pytest.approx(0.0, abs=1e-9)
    assert terms["mean"][1] > terms["mean"][0] and terms["exposure"][1] < terms["exposure"][0]


def test_bad_arguments_are_refused(pairs):
    with pytest.raises(SystemExit):
        run(pairs, "--values", "-1")
    with pytest.raises(SystemExit):
        run(pairs, "--steps", "0")
