"""examples/entropy_metric.py end to end: a no-reference metric of one's own, registered by its file, scored
and reported by experiments.compare (in a fresh process) with its label and direction, with nothing inside the
packages changed for it."""

import csv

import numpy as np
import pytest

from examples.entropy_metric import ENTROPY, luma_entropy
from rlenhance.io import load_image
from rlenhance.metrics.table import METRICS
from tests.examples.packages import assert_plugs_in_from_outside, run_fresh, write_dark_pairs


def test_the_metric_is_registered_by_its_file_with_its_direction():
    assert METRICS.get("entropy") is ENTROPY is METRICS.get("examples.entropy_metric:ENTROPY")
    assert (ENTROPY.higher_is_better, ENTROPY.reference) == (True, "none")
    flat = np.full((8, 8, 3), 0.5, np.float32)
    assert luma_entropy(flat, flat) == 0.0
    halves = np.concatenate([np.zeros((8, 4, 1)), np.ones((8, 4, 1))], axis=1).astype(np.float32)
    assert luma_entropy(halves, halves) == pytest.approx(1.0)  # two equally frequent levels: one bit


@pytest.mark.slow
def test_compare_scores_and_reports_a_metric_named_by_import_path(tmp_path):
    write_dark_pairs(tmp_path / "pairs")
    out = tmp_path / "cmp"
    run_fresh("-m", "experiments.compare", "--task", "lowlight", "--data", str(tmp_path / "pairs"), "--split", "all",
              "--methods", "input,histeq", "--metrics", "examples.entropy_metric:ENTROPY", "--no-warmup", "--threads",
              "1", "--out", str(out))
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[-2:] == ["entropy", "ms"]  # after the task's own metrics
    low = load_image(tmp_path / "pairs" / "low" / "0.png")
    assert float(next(r for r in rows if r["method"] == "input" and r["image"] == "0.png")["entropy"]) == \
        pytest.approx(luma_entropy(low, low))
    report = (out / "report.md").read_text()
    assert "| entropy (bits) | ms/image |" in report
    assert "entropy (bits of the output's 256-level luma histogram); lower is better for NIQE, LOE and dark " \
           "colour noise; higher is better for entropy (bits)" in report
    assert_plugs_in_from_outside("entropy_metric")
