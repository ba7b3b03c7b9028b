"""Sample grids: rows of images under a caption per column (:func:`make_grid`), and the colour maps of an RL
policy's alphas and actions with their keys (:func:`with_maps`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

from rlenhance.trace import action_colours as trace_colours

GRID_CAPTIONS = ("input", "output", "reference")
#: Sample grid columns narrower than this are enlarged (nearest, by an integer factor) so their caption fits.
MIN_COLUMN_WIDTH = 96
#: The caption band's height and font scale; a colour key's line height and font scale, and its most actions.
CAPTION_HEIGHT, CAPTION_SCALE = 18, 0.45
KEY_ROW_HEIGHT, KEY_SCALE, MAX_KEY_ACTIONS = 12, 0.35, 20


def make_grid(rows: Iterable[Sequence[torch.Tensor]], *, gap: int = 2,
              captions: Sequence[str] | None = None) -> np.ndarray:
    """Tile rows of images (C, H, W) into one RGB (H, W, 3) float array in [0, 1]; ``captions`` (one a column) are
    written in a white band above, narrow columns enlarged (:data:`MIN_COLUMN_WIDTH`)."""
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


def map_steps(steps: int) -> list[int]:
    """The steps whose maps a sample grid shows: the first and the last."""
    return [0] if steps == 1 else [0, steps - 1]


def map_captions(captions: Sequence[str], kind: str, steps: int) -> tuple[str, ...]:
    """A sample grid's captions: ``captions``, the ``kind`` map of the first and last of ``steps`` steps, the key."""
    return (*captions, *(f"{kind}, step {s + 1}" for s in map_steps(steps)), "key")


def with_maps(rows: Sequence[Sequence[Tensor]], maps: Sequence[Tensor], *, actions: Sequence[str] | None = None,
              alpha_range: tuple[float, float] | None = None, where: Sequence[Tensor] | None = None
              ) -> list[list[Tensor]]:
    """Sample-grid rows with each image's colour-mapped maps after them (:func:`map_captions`), the key after the
    first row's. ``maps``: per image (steps, C', H, W), indices into ``actions`` or alphas in ``alpha_range``;
    ``where``: per image, a (1, H, W) mask of the pixels shown (the others white)."""
    out = []
    for i, (row, steps) in enumerate(zip(rows, maps)):
        shown = [action_map(steps[s][:1], actions) if actions is not None
                 else heatmap(steps[s].float().mean(0), *alpha_range) for s in map_steps(steps.shape[0])]
        if where is not None:
            counts = where[i].detach().cpu().reshape(1, *steps.shape[-2:]) > 0
            shown = [torch.where(counts, image, torch.ones_like(image)) for image in shown]
        out.append([*row, *shown])
    if out:
        height = out[0][0].shape[-2]
        out[0].append(action_key(actions, height) if actions is not None else heatmap_key(*alpha_range, height))
    return out
