"""The files of a run folder, written by :class:`experiments.runs.Run` and read back: config.json, the
metrics tables metrics.csv and train.csv, captioned sample grids (with the colour maps of alphas and
actions and their keys), markdown tables and the closing "use it" line.
"""

from __future__ import annotations

import csv
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from experiments.config import read_settings
from rlenhance.atomic import atomic_path
from rlenhance.trace import action_colours as trace_colours

#: The first columns of metrics.csv and train.csv; one column per scalar follows.
INDEX_FIELDS = ("step", "wall_time")
#: Scalars in these groups make their row an evaluation's (metrics.csv); the others go to train.csv.
EVAL_GROUPS = ("eval/", "test/")
GRID_CAPTIONS = ("input", "output", "reference")
#: Sample grid columns narrower than this are enlarged (nearest, by an integer factor) so their caption fits.
MIN_COLUMN_WIDTH = 96
#: The caption band's height and font scale; a colour key's line height and font scale, and its most actions.
CAPTION_HEIGHT, CAPTION_SCALE = 18, 0.45
KEY_ROW_HEIGHT, KEY_SCALE, MAX_KEY_ACTIONS = 12, 0.35, 20


class RunFolderError(ValueError):
    """A run folder's file cannot be used: the message names the file and what to do."""


def trainer_name(config: Any) -> str:
    """The module of the trainer whose ``config`` dataclass this is, also under ``python -m`` (``__main__``)."""
    module = type(config).__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else module
    return module


def read_config(out: str | Path, trainer: str | None = None) -> dict[str, Any]:
    """The settings a run saved in ``out/config.json``; RunFolderError where the file is missing or damaged,
    or where ``trainer``, which would continue the run, is not the trainer config.json names."""
    path, fix = Path(out) / "config.json", f"delete {Path(out)} to start the run anew, or restore the file"
    try:
        config = read_settings(path)
    except FileNotFoundError:
        raise RunFolderError(f"{path} is missing: {Path(out)} holds no run settings to continue; start the run "
                             "without --resume") from None
    except ValueError as exc:
        raise RunFolderError(f"{path}: {exc}; {fix}") from None
    if not config:
        raise RunFolderError(f"{path} holds no settings (an empty object); {fix}")
    made_by = config.get("trainer")
    if trainer is not None and made_by != trainer:
        how = f"python -m {made_by} --resume --out {shlex.quote(str(out))}" if made_by else "the trainer that made it"
        raise RunFolderError(f"--resume: {Path(out)} is a run of {made_by or 'another trainer or version'}, not of "
                             f"{trainer}; continue it with {how}")
    return config


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The rows of a run's ``metrics.csv`` or ``train.csv`` as dicts without their empty cells (none for a
    missing file; a last row cut short by a kill is dropped); RunFolderError names a damaged file."""
    path = Path(path)
    fix = f"delete or repair {path} (the run's checkpoints are not affected)"
    if path.is_dir():
        raise RunFolderError(f"{path} is a folder, not the run's metrics table; {fix}")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            table = list(csv.reader(handle))
    except FileNotFoundError:
        return []
    except UnicodeDecodeError:
        raise RunFolderError(f"{path} is not UTF-8 text (a damaged file); {fix}") from None
    except (OSError, csv.Error) as exc:
        raise RunFolderError(f"{path} cannot be read ({getattr(exc, 'strerror', None) or exc}); {fix}") from None
    if not table:
        return []
    header = table[0]
    if tuple(header[:len(INDEX_FIELDS)]) != INDEX_FIELDS or len(set(header)) != len(header):
        raise RunFolderError(f"{path} is not a metrics table (its header does not start with "
                             f"{','.join(INDEX_FIELDS)}); {fix}")
    rows = []
    for number, cells in enumerate(table[1:], start=2):
        try:
            row = {name: float(cell) for name, cell in zip(header, cells) if cell != ""}
            if len(cells) != len(header) or not float(row["step"]).is_integer():
                raise ValueError
        except (ValueError, KeyError):
            if number == len(table):  # the row a kill cut short
                break
            raise RunFolderError(f"{path}: line {number} is not a row of numbers; {fix}") from None
        row["step"] = int(row["step"])
        rows.append(row)
    return rows


def scalar_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every scalar a run logged, one dict ``{"step", "wall_time", "metric", "value"}`` per value."""
    return [{"step": row["step"], "wall_time": row["wall_time"], "metric": name, "value": value}
            for file in ("train.csv", "metrics.csv") for row in read_metrics(Path(run_dir) / file)
            for name, value in row.items() if name not in INDEX_FIELDS]


def metric_series(run_dir: str | Path, name: str) -> dict[int, float]:
    """``{step: value}`` of scalar ``name`` (``eval/psnr``) in a run folder."""
    return {row["step"]: row["value"] for row in scalar_rows(run_dir) if row["metric"] == name}


class MetricsTable:
    """A wide CSV of scalars, one row per step: scalars of the last row's step join it, a new scalar widens
    the table (the file is then rewritten atomically; otherwise a row is appended)."""

    def __init__(self, path: Path):
        self.path = path
        self._rows: list[dict[str, Any]] | None = None
        self._header: list[str] = list(INDEX_FIELDS)

    def _load(self) -> list[dict[str, Any]]:
        if self._rows is None:
            self._rows = read_metrics(self.path)
            if self._rows and self.path.is_file():
                with open(self.path, newline="", encoding="utf-8") as handle:
                    self._header = next(csv.reader(handle))
        return self._rows

    def add(self, step: int, wall_time: float, values: Mapping[str, float]) -> None:
        rows = self._load()
        new = [name for name in values if name not in self._header]
        self._header += new
        if rows and rows[-1]["step"] == step:
            rows[-1].update(values)
            self._rewrite()
            return
        rows.append({"step": step, "wall_time": wall_time, **values})
        if new or len(rows) == 1 or not self.path.exists():
            self._rewrite()
            return
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow(self._cells(rows[-1]))

    @property
    def wall_time(self) -> float:
        rows = self._load()
        return float(rows[-1]["wall_time"]) if rows else 0.0

    def truncate(self, step: int) -> None:
        rows = self._load()
        rows[:] = [row for row in rows if row["step"] <= step]
        if self.path.exists():
            self._rewrite()

    def _cells(self, row: Mapping[str, Any]) -> list[str]:
        return [_cell(row[name]) if name in row else "" for name in self._header]

    def _rewrite(self) -> None:
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(self._header)
            writer.writerows(self._cells(row) for row in self._rows or [])


def _cell(value: Any) -> str:
    return str(value) if isinstance(value, int) else f"{float(value):.6g}"


def usage_lines(model: str | Path, command: Sequence[str]) -> list[str]:
    """What a trainer ends by printing: where its model is and the ``rlenhance`` command that uses it."""
    return [f"model: {model}", "use it: " + shlex.join(["rlenhance", *map(str, command)])]


def make_grid(rows: Iterable[Sequence[torch.Tensor]], *, gap: int = 2,
              captions: Sequence[str] | None = None) -> np.ndarray:
    """Tile rows of images (C, H, W) into one RGB (H, W, 3) float array in [0, 1]. With ``captions`` (one a
    column) a white band above names each column, and columns narrower than :data:`MIN_COLUMN_WIDTH` are
    enlarged (nearest, by an integer factor) so the caption fits."""
    rows = [[t.detach().float().cpu().clamp(0, 1) for t in row] for row in rows]
    rows = [[t.expand(3, *t.shape[-2:]) if t.shape[0] == 1 else t for t in row] for row in rows]
    if not any(rows):
        raise ValueError("make_grid: no images")
    columns = max(len(row) for row in rows)
    if captions is not None and len(captions) < columns:
        raise ValueError(f"make_grid: {len(captions)} caption(s) for {columns} columns")
    if captions is not None:
        zoom = max(1, -(-MIN_COLUMN_WIDTH // min(t.shape[2] for row in rows for t in row)))
        if zoom > 1:
            rows = [[t.repeat_interleave(zoom, 1).repeat_interleave(zoom, 2) for t in row] for row in rows]
    widths = [max(row[c].shape[2] for row in rows if c < len(row)) for c in range(columns)]
    height = max(t.shape[1] for row in rows for t in row)
    canvas = torch.ones(3, len(rows) * (height + gap) - gap, sum(widths) + gap * (columns - 1))
    for r, row in enumerate(rows):
        x = 0
        for c, t in enumerate(row):
            y = r * (height + gap)
            canvas[:, y:y + t.shape[1], x:x + t.shape[2]] = t
            x += widths[c] + gap
    grid = canvas.permute(1, 2, 0).numpy()
    if captions is None:
        return grid
    band = np.full((CAPTION_HEIGHT, grid.shape[1], 3), 255, np.uint8)
    x = 0
    for c in range(columns):
        _caption(band, str(captions[c]), x, widths[c])
        x += widths[c] + gap
    return np.concatenate([band.astype(np.float32) / 255.0, grid])


def _caption(band: np.ndarray, text: str, x: int, width: int) -> None:
    """Write ``text`` centred above the column at ``x`` (smaller, or cut with "..", where it does not fit)."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, CAPTION_SCALE
    while cv2.getTextSize(text, font, scale, 1)[0][0] > width - 2 and scale > 0.3:
        scale -= 0.05
    while len(text) > 2 and cv2.getTextSize(text, font, scale, 1)[0][0] > width - 2:
        text = text[:-3] + ".."
    (w, h), _ = cv2.getTextSize(text, font, scale, 1)
    origin = (x + max(0, (width - w) // 2), (CAPTION_HEIGHT + h) // 2)
    cv2.putText(band, text, origin, font, scale, (0, 0, 0), 1, cv2.LINE_AA)


def heatmap(values: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """A map (H, W) or (1, H, W) of numbers in [``low``, ``high``] as an RGB image (3, H, W) in [0, 1] (viridis)."""
    plane = values.detach().float().cpu().reshape(values.shape[-2:])
    scaled = ((plane - low) / max(high - low, 1e-12)).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    bgr = cv2.applyColorMap(scaled, cv2.COLORMAP_VIRIDIS)
    return torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1).float() / 255.0


def action_colours(names: Sequence[str]) -> torch.Tensor:
    """One RGB colour in [0, 1] per action of ``names``, (n, 3): those of :func:`rlenhance.trace.action_colours`."""
    if not 1 <= len(names) <= MAX_KEY_ACTIONS:
        raise ValueError(f"action_colours: {len(names)} actions (expected 1 .. {MAX_KEY_ACTIONS})")
    return torch.from_numpy(trace_colours(names)).float() / 255.0


def action_map(actions: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """A per-pixel action map (H, W) or (1, H, W) of indices into ``names`` as an RGB image (3, H, W)."""
    plane = actions.detach().long().cpu().reshape(actions.shape[-2:]).clamp(0, len(names) - 1)
    return action_colours(names)[plane].permute(2, 0, 1).contiguous()


def colour_key(entries: Sequence[tuple[torch.Tensor, str]], *, height: int | None = None,
               row_height: int = KEY_ROW_HEIGHT, width: int = MIN_COLUMN_WIDTH) -> torch.Tensor:
    """A key to a colour-mapped column (3, H, W): a swatch and a label per ``(colour, label)``, in columns of
    ``width`` pixels no taller than ``height`` (None: one column)."""
    per_column = len(entries) if height is None else max(1, (height - 2) // row_height)
    columns = -(-len(entries) // per_column)
    tile = np.full((row_height * min(per_column, len(entries)) + 2, width * columns, 3), 255, np.uint8)
    swatch = row_height - 4
    for i, (colour, label) in enumerate(entries):
        left, top = width * (i // per_column) + 2, 2 + (i % per_column) * row_height
        rgb = tuple(int(round(float(c) * 255)) for c in colour)
        cv2.rectangle(tile, (left, top), (left + swatch, top + swatch), rgb, thickness=-1)
        cv2.putText(tile, str(label), (left + swatch + 4, top + swatch - 1), cv2.FONT_HERSHEY_SIMPLEX, KEY_SCALE,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return torch.from_numpy(tile).permute(2, 0, 1).float() / 255.0


def action_key(names: Sequence[str], height: int | None = None) -> torch.Tensor:
    """The :func:`colour_key` of :func:`action_map`'s colours."""
    return colour_key(list(zip(action_colours(names), names)), height=height)


def heatmap_key(low: float, high: float, height: int | None = None, steps: int = 5) -> torch.Tensor:
    """The :func:`colour_key` of :func:`heatmap`'s scale, ``steps`` values from ``high`` down to ``low``."""
    values = np.linspace(high, low, steps)
    colours = heatmap(torch.tensor(values, dtype=torch.float32)[None], low, high)[:, 0].T
    return colour_key([(c, f"{v:.2g}") for c, v in zip(colours, values)], height=height)


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    keys = list(rows[0])

    def fmt(v: Any) -> str:  # a "|" inside a cell is escaped, so it does not end the cell
        return (f"{v:.4g}" if isinstance(v, float) else str(v)).replace("|", "\\|")

    lines = ["| " + " | ".join(fmt(k) for k in keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join(fmt(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines)
