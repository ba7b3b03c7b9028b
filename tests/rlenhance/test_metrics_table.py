"""rlenhance.metrics.table: every metric of comparisons with its label, direction and what it compares."""

import numpy as np
import pytest
import torch

from rlenhance.metrics import psnr
from rlenhance.metrics.table import METRICS, Metric, register_metric


def _mean(output, input):  # noqa: A002 - the table's call convention
    return float(output.mean())


#: A user's metric, named by import path (tests.rlenhance.test_metrics_table:MEAN).
MEAN = Metric("mean_value", "mean value", None, "none", _mean, "mean value (0-1)")


def test_the_table_holds_each_metric_once_with_its_direction_label_and_reference():
    directions = {name: (m.higher_is_better, m.reference) for name, m in METRICS.items()
                  if m.fn.__module__.startswith("rlenhance.")}  # the package's (an example's may join)
    assert directions == {"psnr": (True, "full"), "ssim": (True, "full"), "uqi": (True, "full"),
                          "hole_psnr": (True, "hole"), "hole_ssim": (True, "hole"), "niqe": (False, "none"),
                          "loe": (False, "none"), "brightness": (None, "none"), "clipped": (None, "none"),
                          "dark_noise": (False, "none")}
    assert all(name == m.name and m.label and m.about for name, m in METRICS.items())
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(METRICS.get("psnr").fn(x, x.flip(-1)), psnr(x, x.flip(-1)))
    image = np.full((8, 8, 3), 0.25, np.float32)
    assert METRICS.get("brightness").fn(image, image) == pytest.approx(0.25)


def test_a_users_metric_joins_by_import_path_or_registration_and_a_bad_one_is_refused():
    assert METRICS.get("tests.rlenhance.test_metrics_table:MEAN") is MEAN
    assert "mean_value" not in METRICS
    try:
        assert register_metric(MEAN) is MEAN and METRICS.get("mean_value") is MEAN
    finally:
        METRICS._entries.pop("mean_value", None)  # the table of this process only
    with pytest.raises(ValueError, match="expected a rlenhance.metrics.table.Metric"):
        METRICS.get("tests.rlenhance.test_metrics_table:_mean")
    with pytest.raises(ValueError, match="reference 'sometimes'"):
        register_metric(Metric("odd", "odd", True, "sometimes", _mean))
    with pytest.raises(ValueError, match="metric 'psnr' is registered already"):
        register_metric(Metric("psnr", "PSNR", True, "full", psnr))
