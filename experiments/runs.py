"""The run folder of every experiment (docs/training.md#the-run-folder): config, TensorBoard, metrics.csv /
train.csv, atomic checkpoints with resume, sample grids, a progress bar and a summary table.

Nothing is written until the first log or save; the writing run holds a ``flock`` on the folder; a damaged
file is a :class:`RunFolderError` naming it. Under torchrun rank 0 checks and writes the folder.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shlex
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from agents.distributed import Ranks
from experiments.config import read_settings
from experiments.grids import GRID_CAPTIONS, make_grid
from rlenhance.atomic import atomic_path, write_text_atomic
from rlenhance.checkpoint import save_checkpoint
from rlenhance.io import save_image

try:
    import fcntl
except ImportError:  # not POSIX: folders are not locked
    fcntl = None

INDEX_FIELDS = ("step", "wall_time")  # metrics.csv's and train.csv's first columns; a column per scalar follows
EVAL_GROUPS = ("eval/", "test/")  # scalars of an evaluation's row (metrics.csv); the others go to train.csv


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
    or where ``trainer`` did not make the run."""
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
    if trainer is not None and (made_by := config.get("trainer")) != trainer:
        how = f"python -m {made_by} --resume --out {shlex.quote(str(out))}" if made_by else "the trainer that made it"
        raise RunFolderError(f"--resume: {Path(out)} is a run of {made_by or 'another trainer or version'}, not of "
                             f"{trainer}; continue it with {how}")
    return config


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The rows of ``metrics.csv`` or ``train.csv`` as dicts without empty cells ([] for a missing file; a last
    row cut short by a kill dropped); RunFolderError names a damaged file."""
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
    """A wide CSV of scalars, one row per step; a new scalar widens the table (rewritten atomically)."""

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
        else:
            rows.append({"step": step, "wall_time": wall_time, **values})
            if len(rows) > 1 and not new and self.path.exists():  # a row of the columns there: appended
                with open(self.path, "a", newline="", encoding="utf-8") as handle:
                    csv.writer(handle).writerow(self._cells(rows[-1]))
                return
        self._rewrite()

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


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    keys = list(rows[0])

    def fmt(v: Any) -> str:  # a "|" inside a cell is escaped, so it does not end the cell
        return (f"{v:.4g}" if isinstance(v, float) else str(v)).replace("|", "\\|")

    lines = ["| " + " | ".join(fmt(k) for k in keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join(fmt(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


PLAIN_PROGRESS_S = 15.0  # plain progress (stderr not a terminal) prints a line at most this often


def _is_terminal(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


class PlainProgress:
    """A tqdm bar's stand-in where stderr is not a terminal: a line at most every :data:`PLAIN_PROGRESS_S`
    seconds (``episode 200/1100 (18%) 41 s, 4.9 episode/s, ret=1.2, best=27``), and with ``leave`` one at the end."""

    def __init__(self, total: int, *, initial: int = 0, desc: str = "", leave: bool = True):
        self.total, self.n, self.first, self.desc, self.leave = int(total), int(initial), int(initial), desc, leave
        self.postfix, self.closed, self.printed = "", False, None  # printed: the count of the last line printed
        self.start = self.shown = time.monotonic()

    def _print(self) -> None:
        elapsed, done = time.monotonic() - self.start, self.n - self.first
        rate = f", {done / elapsed:.3g} {self.desc or 'step'}/s" if done and elapsed > 0 else ""
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        postfix = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc} {self.n}/{self.total}{share} {elapsed:.0f} s{rate}{postfix}", file=sys.stderr, flush=True)
        self.shown, self.printed = time.monotonic(), self.n

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        if time.monotonic() - self.shown >= PLAIN_PROGRESS_S:
            self._print()

    def set_postfix(self, postfix: Mapping[str, Any] | None = None, refresh: bool = True) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in (postfix or {}).items())

    def set_description_str(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def close(self) -> None:
        lasted = time.monotonic() - self.start >= PLAIN_PROGRESS_S
        if not self.closed and self.printed != self.n and (self.leave or lasted):
            self._print()
        self.closed = True


class Run:
    """A run folder (see the module docstring); creating it checks the folder and writes nothing.

    ====================================  ===============  ========================
    ``out`` holds                         new run          ``resume=True``
    ====================================  ===============  ========================
    nothing (absent or empty)             starts           FileNotFoundError
    ``checkpoints/last.pt``               FileExistsError  continues (``resuming``)
    config.json, no checkpoint            starts anew      starts anew
    config.json and best.pt, no last.pt   FileExistsError  starts anew
    other files                           FileExistsError  FileNotFoundError
    ====================================  ===============  ========================

    Starting anew says so and removes that start's metrics, TensorBoard events, best.pt and summary.md.
    ``config`` is saved as config.json with ``world_size`` and ``trainer`` (default: its class's module).
    """

    def __init__(self, out: str | Path, config: Any, *, resume: bool = False, ranks: Ranks | None = None,
                 trainer: str | None = None):
        self.dir = Path(out)
        self.last_path = self.dir / "checkpoints" / "last.pt"
        self.best_path = self.dir / "checkpoints" / "best.pt"
        self.metrics_path = self.dir / "metrics.csv"
        self.summary_path = self.dir / "summary.md"
        self.ranks = ranks if ranks is not None else Ranks()
        self.writes = self.ranks.writes  # this process writes the folder (rank 0)
        self.trainer = trainer or trainer_name(config)
        self.config = {**dataclasses.asdict(config), "world_size": self.ranks.world_size, "trainer": self.trainer}
        self._tables = {"metrics": MetricsTable(self.metrics_path), "train": MetricsTable(self.dir / "train.csv")}
        self._seen: tuple = ()  # the folder as the check saw it: what another run's writes would change
        self._lock: _FolderLock | None = None  # held by rank 0 once it writes the folder
        # resuming: --resume with a last.pt to continue; _anew: the line said when a used folder starts anew
        self.resuming, self._anew = self.ranks.on_rank0(lambda: self._check(resume))
        self._opened, self._writer, self._purge_step = False, None, None
        self.start_time = time.time()

    def _check(self, resume: bool) -> tuple[bool, str | None]:
        """(resuming, the line that says the folder is started anew or None); raises as the class table says."""
        self._seen = _state(self.dir)
        if resume and (self.dir / "config.json").exists():
            read_config(self.dir, self.trainer)
        if resume and self.last_path.is_file():
            return True, None
        if not _entries(self.dir):
            if resume:
                raise FileNotFoundError(f"--resume: no checkpoint to resume from at {self.last_path}; start the run "
                                        "without --resume")
            return False, None
        started = (self.dir / "config.json").is_file()
        if resume and started:
            return False, (f"--resume: {self.dir} holds no checkpoints/last.pt (the run stopped before its first "
                           "checkpoint); starting it anew there")
        if resume:
            raise FileNotFoundError(f"--resume: no checkpoint to resume from at {self.last_path} ({self.dir} holds "
                                    "no run)")
        checkpoints = [p for p in (self.dir / "checkpoints").glob("*.pt") if not p.name.startswith(".")]
        if started and not checkpoints:
            return False, (f"--out {self.dir} holds the start of a run that never reached a checkpoint; starting the "
                           "run anew there")
        if started or checkpoints:
            raise FileExistsError(f"--out {self.dir} already holds a run; pass --resume to continue it "
                                  "or choose an empty folder")
        raise FileExistsError(f"--out {self.dir} is not empty and holds no run; choose an empty folder")

    def _open(self) -> None:
        """Create the folder and write config.json (once, rank 0); clear a dead start's files first."""
        if self._opened or not self.writes:
            return
        self._hold()
        if self._anew is not None:
            print(self._anew)
            for path in (self.metrics_path, self.dir / "train.csv", self.summary_path, self.best_path,
                         *(self.dir / "tb").glob("events.out.tfevents.*")):
                path.unlink(missing_ok=True)
            self._tables = {name: MetricsTable(table.path) for name, table in self._tables.items()}
        self.dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.dir / "config.json", json.dumps(self.config, indent=2, default=str) + "\n")
        self._opened = True

    @property
    def writer(self):
        """The TensorBoard ``SummaryWriter`` of ``tb/``."""
        if self._writer is None:
            self._open()
            from torch.utils.tensorboard import SummaryWriter  # imported late: slow to import

            self._writer = SummaryWriter(str(self.dir / "tb"), purge_step=self._purge_step)
        return self._writer

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        """Write scalars to TensorBoard and to one row of metrics.csv (:data:`EVAL_GROUPS`) or train.csv."""
        if not self.writes:
            return
        writer = self.writer  # opens the folder
        values = {name: float(value) for name, value in scalars.items()}
        for name, value in values.items():
            writer.add_scalar(name, value, step)
        table = "metrics" if any(name.startswith(EVAL_GROUPS) for name in values) else "train"
        self._tables[table].add(int(step), round(time.time() - self.start_time, 3), values)
        writer.flush()

    def truncate_metrics(self, step: int) -> None:
        """Drop the metrics rows and TensorBoard events after ``step`` (a resumed run repeats them); call it before
        the first :meth:`log`."""
        self._purge_step = step + 1
        if not self.writes:
            return
        self._hold()  # before this run rewrites any file
        for table in self._tables.values():
            table.truncate(step)  # reads (and checks) the file before the folder is opened
        self.start_time = time.time() - max(table.wall_time for table in self._tables.values())
        self._open()

    def save(self, name: str, *, model: torch.nn.Module, arch: Mapping[str, Any],
             extra: Mapping[str, Any]) -> Path:
        """Write ``checkpoints/<name>.pt`` atomically (rank 0); its path."""
        path = self.dir / "checkpoints" / f"{name}.pt"
        if not self.writes:
            return path
        self._open()
        try:
            return save_checkpoint(path, model=model, arch=arch, extra=extra)
        except (OSError, RuntimeError) as exc:  # a failed write is an OSError naming path; torch's own errors
            reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno \
                else str(exc).strip().splitlines()[0]
            kept = f"the previous {path.name} is intact; " if path.is_file() else ""
            raise RunFolderError(f"could not write {path} ({reason}); {kept}free space on that disk (or choose "
                                 f"another --out) and continue with --resume") from exc

    def save_grid(self, name: str, rows: Iterable[Sequence[torch.Tensor]], *,
                  captions: Sequence[str] | None = GRID_CAPTIONS, step: int | None = None) -> Path:
        """Save ``samples/<name>.png``: rows of (C, H, W) images in [0, 1] under column ``captions``
        (:func:`make_grid`); with ``step`` also TensorBoard's image ``samples``."""
        path = self.dir / "samples" / f"{name}.png"
        if not self.writes:
            return path
        grid = make_grid(rows, captions=captions)
        self._open()
        save_image(path, grid)
        if step is not None:
            self.writer.add_image("samples", grid, int(step), dataformats="HWC")
            self.writer.flush()
        return path

    def progress(self, total: int, initial: int = 0, desc: str = "episode", *,
                 leave: bool = True) -> tqdm | PlainProgress:
        """A progress bar on a terminal, else :class:`PlainProgress`; rank 0's only; ``leave=False`` clears it."""
        if self.writes and not _is_terminal(sys.stderr):
            return PlainProgress(total, initial=initial, desc=desc, leave=leave)
        return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, mininterval=1.0,
                    disable=not self.writes, leave=leave)

    def track(self, items: Iterable[Any], desc: str = "eval", *, total: int | None = None) -> Iterable[Any]:
        """``items`` under a progress bar cleared at the end: an evaluation's progress."""
        bar = self.progress(total if total is not None else len(items), desc=desc, leave=False)  # type: ignore[arg-type]
        try:
            for item in items:
                yield item
                bar.update(1)
        finally:
            bar.close()

    def say(self, *lines: str) -> None:
        """Print ``lines`` (rank 0 only: one copy for the job)."""
        if self.writes:
            print(*lines, sep="\n", flush=True)

    def summary(self, rows: Sequence[Mapping[str, Any]], title: str = "Summary") -> str:
        """Print and save (``summary.md``) a markdown table of ``rows``; rank 0 only."""
        text = f"## {title}\n\n{markdown_table(rows)}\n"
        if self.writes:
            self._open()
            write_text_atomic(self.summary_path, text)
            print(text)
        return text

    def _hold(self) -> None:
        """Create the folder and lock it (once); refuse it when another run wrote it since :meth:`_check`."""
        if self._lock is not None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = _FolderLock(self.dir)
        if not lock.held:
            raise FileExistsError(f"--out {self.dir} is in use by another run (a process writing it now); wait for it "
                                  "to end, or choose another folder")
        if _state(self.dir) != self._seen:
            raise FileExistsError(f"--out {self.dir} was written by another run since this one started; look at it, "
                                  "then --resume it or choose another folder")
        self._lock = lock

    def close(self) -> None:
        """Close the TensorBoard writer and release the folder's lock."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


class _FolderLock:
    """An exclusive ``flock`` of a folder taken without waiting (``held``; always without ``flock``)."""

    def __init__(self, folder: Path) -> None:
        self._fd, self.held = (os.open(folder, os.O_RDONLY) if fcntl is not None else None), True
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.held = False
            self.release()

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the lock goes with it
            self._fd = None

    def __del__(self) -> None:
        self.release()


def _state(folder: Path) -> tuple:
    """The name, size and modification time of each entry of ``folder`` and of its checkpoints."""
    entries = (*_entries(folder), *_entries(folder / "checkpoints"))
    return tuple(sorted((str(e), e.stat().st_size, e.stat().st_mtime_ns) for e in entries))


def _entries(folder: Path) -> list[Path]:
    """What ``folder`` holds, without the temporary files of interrupted atomic writes."""
    return [p for p in folder.iterdir() if not (p.name.startswith(".") and ".tmp" in p.name)] if folder.is_dir() else []
