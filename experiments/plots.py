"""The figures the experiments write (:func:`quality_vs_time`, :func:`loss_curves`), drawn with matplotlib's
object API on the Agg canvas, ``size`` pixels at :data:`DPI`, and saved atomically (:func:`save_figure`).

Example:
    >>> fig = loss_curves({"train loss": [(1, 0.5), (2, 0.25)]}, size=(320, 200))
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['train loss']
    >>> save_figure(fig, "runs/loss_curve.png")   # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from rlenhance.atomic import atomic_path

__all__ = ["DPI", "loss_curves", "quality_vs_time", "save_figure"]

#: Dots per inch of every figure: ``size`` in pixels is ``figsize * DPI``.
DPI = 100
#: Offset of a point's label from the point, in typographic points.
_LABEL_OFFSET = (5, 4)


def _figure(size: tuple[int, int]) -> Figure:
    """An empty figure of ``size`` (width, height) pixels on the Agg canvas."""
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"size {size}: expected a width and a height >= 1 pixel")
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def quality_vs_time(points: Sequence[tuple[str, float, float]], *, title: str = "", ylabel: str = "PSNR (dB)",
                    size: tuple[int, int] = (720, 480)) -> Figure:
    """Scatter plot of quality against speed: x = ms per image (log scale), y = quality.

    Args:
        points: (label, ms per image, mean quality, e.g. PSNR in dB); points with a non-finite
            value or ms <= 0 are left out.
        title: the axes' title.
        ylabel: what the quality is.
        size: (width, height) of the figure in pixels.

    Returns:
        The figure (one axes; save it with :func:`save_figure`).
    """
    figure = _figure(size)
    ax = figure.add_subplot()
    kept = [(label, ms, value) for label, ms, value in points
            if math.isfinite(ms) and ms > 0 and math.isfinite(value)]
    ax.set_xscale("log")
    if kept:
        ax.scatter([ms for _, ms, _ in kept], [value for _, _, value in kept], s=30, zorder=3)
        for label, ms, value in kept:
            ax.annotate(label, (ms, value), xytext=_LABEL_OFFSET, textcoords="offset points", fontsize=8)
        ax.margins(x=0.15, y=0.12)  # room for the labels right of the points
    ax.grid(True, which="major", color="0.88")
    ax.set_xlabel("ms per image (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return figure


def loss_curves(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str = "", xlabel: str = "epoch",
                ylabel: str = "", size: tuple[int, int] = (640, 400)) -> Figure:
    """Line plots of several series against a shared x axis (integer ticks), with a legend.

    Args:
        series: label -> list of (x, y) points; points with a non-finite y are left out.
        title: the axes' title.
        xlabel: the x axis label.
        ylabel: the y axis label.
        size: (width, height) of the figure in pixels.

    Returns:
        The figure (one axes, one line per series; save it with :func:`save_figure`).
    """
    figure = _figure(size)
    ax = figure.add_subplot()
    for label, pts in series.items():
        kept = [(float(x), float(y)) for x, y in pts if math.isfinite(float(y))]
        ax.plot([x for x, _ in kept], [y for _, y in kept], marker="o", markersize=4, linewidth=2, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, color="0.88")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if series:
        ax.legend(fontsize=8)
    return figure


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` to ``path`` atomically, in the format of its suffix (PNG without one); returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=path.suffix[1:].lower() or "png", dpi=figure.dpi)
    return path
