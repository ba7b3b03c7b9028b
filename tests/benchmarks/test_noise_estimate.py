"""benchmarks.noise_estimate: the estimator's error table over a folder."""

import numpy as np

from benchmarks import noise_estimate
from rlenhance.io import save_image


def test_prints_one_row_per_level_with_the_estimators_bias(tmp_path, capsys):
    ramp = np.tile(np.linspace(0.2, 0.8, 48, dtype=np.float32), (40, 1))
    for i in range(3):
        save_image(tmp_path / f"img{i}.png", np.roll(ramp, 5 * i, axis=1)[..., None].repeat(3, axis=2))
    noise_estimate.main(["--data", str(tmp_path), "--sigma", "10", "30", "--limit", "2"])
    out = capsys.readouterr().out
    assert out.startswith("2 gray images from")
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| 10 ") or line.startswith("| 30 ")]
    assert len(rows) == 2
    for row, sigma in zip(rows, (10, 30)):
        mean, bias = float(row[1]), float(row[2])
        assert abs(mean - sigma) < 0.1 * sigma  # a smooth ramp: the estimate finds the added level
        assert bias == round(mean - sigma, 2) or abs(bias - (mean - sigma)) < 0.011
