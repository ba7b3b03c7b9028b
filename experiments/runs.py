"""The run folder shared by every experiment: typed arguments, resolved config, TensorBoard,
metrics.csv, atomic checkpoints with resume, sample grids, a progress bar and a summary table.

A run folder looks like::

    OUT/
      config.json          the resolved arguments (written atomically)
      metrics.csv          long format: step, wall_time, metric, value (one row per scalar)
      tb/                  TensorBoard events (groups charts/, losses/, eval/)
      checkpoints/last.pt  written atomically after every evaluation; ``--resume`` starts here
      checkpoints/best.pt  the best by the experiment's validation metric
      samples/*.png        sample grids: input | output | reference
      summary.md           the closing table
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import time
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from rlenhance.atomic import atomic_path, write_text_atomic
from rlenhance.checkpoint import load_checkpoint, save_checkpoint
from rlenhance.io import save_image

METRICS_FIELDS = ("step", "wall_time", "metric", "value")


# --- typed command line from a dataclass -------------------------------------------------------
def parse_config(config_class: type, argv: Sequence[str] | None = None, description: str | None = None):
    """Build an argparse parser from a dataclass (one ``--flag`` per field, help from the
    field's ``metadata["help"]``), parse ``argv`` and return an instance of the dataclass."""
    parser = argparse.ArgumentParser(description=description or config_class.__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        options: dict[str, Any] = {"help": field.metadata.get("help", ""), "dest": field.name}
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        options["default"] = default
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif origin is tuple:
            options.update(type=args[0], nargs="+" if args[-1] is Ellipsis else len(args))
        elif origin in (typing.Union, types.UnionType):  # Optional[X] / X | None
            inner = next(a for a in args if a is not type(None))
            options["type"] = inner
        else:
            options["type"] = kind
        if "choices" in field.metadata:
            options["choices"] = field.metadata["choices"]
        parser.add_argument(flag, **options)
    values = vars(parser.parse_args(argv))
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return config_class(**values)


def arg(default: Any, help: str, **metadata: Any):
    """A dataclass field with a help line (and optional ``choices``) for :func:`parse_config`."""
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: default, metadata={"help": help, **metadata})
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


# --- the run folder ------------------------------------------------------------------------------
class Run:
    """A run folder (see the module docstring).

    Args:
        out: the folder. A new run needs it absent or empty; ``resume=True`` needs
            ``checkpoints/last.pt`` in it.
        config: the experiment's dataclass (saved as ``config.json``).
        resume: continue the run in ``out``.
    """

    def __init__(self, out: str | Path, config: Any, *, resume: bool = False):
        self.dir = Path(out)
        self.last_path = self.dir / "checkpoints" / "last.pt"
        if resume and not self.last_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint to resume from at {self.last_path}")
        if not resume and self.dir.exists() and any(self.dir.iterdir()):
            raise FileExistsError(f"--out {self.dir} already holds a run; pass --resume to continue it "
                                  "or choose an empty folder")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = dataclasses.asdict(config)
        write_text_atomic(self.dir / "config.json", json.dumps(self.config, indent=2, default=str) + "\n")
        from torch.utils.tensorboard import SummaryWriter  # imported late: slow to import

        self.writer = SummaryWriter(str(self.dir / "tb"))
        self.metrics_path = self.dir / "metrics.csv"
        self.start_time = time.time()

    # -- scalars --
    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        """Write scalars (names like ``charts/reward``, ``eval/psnr``) to TensorBoard and metrics.csv."""
        new_file = not self.metrics_path.exists()
        wall = round(time.time() - self.start_time, 3)
        with open(self.metrics_path, "a", newline="") as handle:
            writer = csv.writer(handle)
            if new_file:
                writer.writerow(METRICS_FIELDS)
            for name, value in scalars.items():
                value = float(value)
                self.writer.add_scalar(name, value, step)
                writer.writerow((step, wall, name, f"{value:.6g}"))
        self.writer.flush()

    def truncate_metrics(self, step: int) -> None:
        """Drop metrics rows logged after ``step`` (a resumed run repeats them)."""
        if not self.metrics_path.exists():
            return
        with open(self.metrics_path, newline="") as handle:
            rows = [row for row in csv.reader(handle)][1:]
        kept = [row for row in rows if row and int(row[0]) <= step]
        with atomic_path(self.metrics_path) as tmp, open(tmp, "w", newline="") as handle:
            csv.writer(handle).writerows([METRICS_FIELDS, *kept])

    # -- checkpoints --
    def save(self, name: str, *, model: torch.nn.Module, arch: Mapping[str, Any],
             extra: Mapping[str, Any]) -> Path:
        """Write ``checkpoints/<name>.pt`` atomically (``last`` is what ``--resume`` reads)."""
        return save_checkpoint(self.dir / "checkpoints" / f"{name}.pt", model=model, arch=arch, extra=extra)

    def load_last(self, expected_arch: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return load_checkpoint(self.last_path, expected_arch=expected_arch)

    # -- images --
    def save_grid(self, name: str, rows: Iterable[Sequence[torch.Tensor]], *, gap: int = 2) -> Path:
        """Save ``samples/<name>.png``: each row is a list of (C, H, W) images placed side by side."""
        grid = make_grid(rows, gap=gap)
        path = self.dir / "samples" / f"{name}.png"
        save_image(path, grid)
        return path

    def progress(self, total: int, initial: int = 0, desc: str = "episode") -> tqdm:
        return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, mininterval=1.0)

    def summary(self, rows: Sequence[Mapping[str, Any]], title: str = "Summary") -> str:
        """Print and save (``summary.md``) a markdown table of ``rows`` (dicts with equal keys)."""
        text = f"## {title}\n\n{markdown_table(rows)}\n"
        write_text_atomic(self.dir / "summary.md", text)
        print(text)
        return text

    def close(self) -> None:
        self.writer.close()


def make_grid(rows: Iterable[Sequence[torch.Tensor]], *, gap: int = 2) -> np.ndarray:
    """Tile images (C, H, W) into one RGB (H, W, 3) float array; gray images are expanded."""
    rows = [[t.detach().float().cpu().clamp(0, 1) for t in row] for row in rows]
    rows = [[t.expand(3, *t.shape[-2:]) if t.shape[0] == 1 else t for t in row] for row in rows]
    height = max(t.shape[1] for row in rows for t in row)
    width = max(sum(t.shape[2] for t in row) + gap * (len(row) - 1) for row in rows)
    canvas = torch.ones(3, len(rows) * (height + gap) - gap, width)
    for r, row in enumerate(rows):
        x = 0
        for t in row:
            y = r * (height + gap)
            canvas[:, y:y + t.shape[1], x:x + t.shape[2]] = t
            x += t.shape[2] + gap
    return canvas.permute(1, 2, 0).numpy()


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    keys = list(rows[0])

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join(fmt(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines)
