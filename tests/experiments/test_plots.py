"""experiments.plots: the matplotlib figures (size in pixels, what is drawn) and their atomic files."""

import numpy as np
import pytest

from experiments.plots import loss_curves, quality_vs_time, save_figure
from rlenhance.io import load_image


def test_loss_curves_draw_each_series(tmp_path):
    """Moved from test_supervised_train (the OpenCV plot_curves): the same checks on the figure's file."""
    figure = loss_curves({"a": [(1, 1.0), (2, 0.5), (3, 0.25)], "b": [(1, 0.8), (2, float("nan")), (3, 0.7)]},
                         size=(320, 200))
    image = load_image(save_figure(figure, tmp_path / "curves.png"))
    assert image.shape == (200, 320, 3) and image.dtype == np.float32
    blue = (np.abs(image - np.array([31, 119, 180]) / 255).max(axis=-1) < 0.02).sum()
    orange = (np.abs(image - np.array([255, 127, 14]) / 255).max(axis=-1) < 0.02).sum()
    assert blue > 50 and orange > 50
    single = load_image(save_figure(loss_curves({"a": [(1, 0.3)]}), tmp_path / "single.png"))  # flat range
    assert single.shape == (400, 640, 3) and single.min() < 1.0


def test_loss_curves_skip_non_finite_points_and_label_the_lines():
    figure = loss_curves({"train": [(1, 1.0), (2, float("nan")), (3, 0.5)], "val": [(1, 0.9)]}, xlabel="epoch")
    (ax,) = figure.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == ["train", "val"]
    assert list(lines["train"].get_xdata()) == [1.0, 3.0] and list(lines["train"].get_ydata()) == [1.0, 0.5]
    assert ax.get_xlabel() == "epoch" and ax.get_legend() is not None


def test_quality_vs_time_is_a_labelled_log_scale_scatter(tmp_path):
    figure = quality_vs_time([("fast", 1.0, 20.0), ("slow", 1000.0, 30.0), ("nan", 5.0, float("nan")),
                              ("free", 0.0, 25.0)], title="denoise: quality vs time")
    (ax,) = figure.axes
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "PSNR (dB)" and ax.get_title() == "denoise: quality vs time"
    (points,) = ax.collections
    assert points.get_offsets().tolist() == [[1.0, 20.0], [1000.0, 30.0]]  # non-finite and ms <= 0 left out
    assert [text.get_text() for text in ax.texts] == ["fast", "slow"]
    image = load_image(save_figure(figure, tmp_path / "quality.png"))
    assert image.shape == (480, 720, 3)


def test_quality_vs_time_without_points_still_draws_axes(tmp_path):
    image = load_image(save_figure(quality_vs_time([], size=(300, 200)), tmp_path / "empty.png"))
    assert image.shape == (200, 300, 3) and image.min() < 1.0  # axes and labels


def test_save_figure_writes_atomically_in_the_format_of_the_suffix(tmp_path):
    figure = loss_curves({"a": [(1, 1.0), (2, 0.5)]}, size=(160, 100))
    path = save_figure(figure, tmp_path / "sub" / "curve.svg")
    assert path.read_text().lstrip().startswith("<?xml")
    assert sorted(p.name for p in path.parent.iterdir()) == ["curve.svg"]  # no temporary file left
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match="curve.png"):
        save_figure(figure, tmp_path / "file" / "curve.png")
    with pytest.raises(ValueError, match="size"):
        loss_curves({}, size=(0, 100))
