"""benchmarks.tuning_split on a tiny paired folder: every value is measured on both splits, the pick is the
rule's best on the tuning split, and the validation figures are of the held-out images."""

import numpy as np
import pytest

from benchmarks import tuning_split
from rlenhance.data import open_dataset
from rlenhance.io import save_image


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """Twelve 32 x 32 scenes: lol_train's split holds one out for tuning and one for validation."""
    folder = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    for i in range(12):
        high = rng.uniform(0.2, 0.8, (32, 32, 3)).astype(np.float32)
        save_image(folder / "high" / f"{i:03d}_1.png", high)
        save_image(folder / "low" / f"{i:03d}_1.png", high * 0.15)
    return folder


def test_the_pick_is_the_best_on_the_tuning_split_and_reported_on_validation(pairs, capsys):
    result = tuning_split.main(["--constant", "noise-sigma", "--values", "0", "8", "--data", str(pairs)])
    assert set(result["tune"]) == set(result["val"]) == {0.0, 8.0}
    assert result["pick"] == max((0.0, 8.0), key=lambda v: result["tune"][v]["psnr"])
    assert result["val_pick"] == max((0.0, 8.0), key=lambda v: result["val"][v]["psnr"])
    assert result["tune"][0.0]["psnr"] != result["tune"][8.0]["psnr"]  # the level changes the output
    tune, val = (open_dataset(str(pairs), kind="paired", split=split, gray=False, seed=0) for split in ("tune", "val"))
    assert not {item["name"] for item in tune} & {item["name"] for item in val}
    out = capsys.readouterr().out
    assert f"tune split of {pairs} (split seed 0): {len(tune)} image(s)" in out
    assert f"val split of {pairs} (split seed 0): {len(val)} image(s)" in out
    assert f"chosen on the tuning split: noise-sigma {result['pick']:g}" in out
    on_train = tuning_split.main(["--constant", "noise-sigma", "--values", "0", "8", "--data", str(pairs),
                                  "--pick-split", "train", "--pick-limit", "2"])
    assert set(on_train) == {"train", "val", "pick", "val_pick"} and on_train["val"] == result["val"]
    assert on_train["pick"] == max((0.0, 8.0), key=lambda v: on_train["train"][v]["psnr"])
    assert "chosen on the training split" in capsys.readouterr().out


def test_the_cap_rule_takes_the_most_checks_then_the_highest_psnr():
    key = tuning_split.CONSTANTS["max-overshoot"].key
    measured = {0.03: {"passed": 5, "psnr": 23.0}, 0.04: {"passed": 6, "psnr": 22.2}, 0.06: {"passed": 6, "psnr": 22.1},
                float("inf"): {"passed": 5, "psnr": 22.5}}
    assert max(measured, key=lambda v: key(v, measured[v])) == 0.04
