"""Running a command over many images: the inputs expanded and sharded, the outputs planned so that
no file is lost, one line per image, a bad file reported and skipped, the exit code (see
:mod:`rlenhance.cli`); ``--jobs`` hands images to worker processes (:mod:`rlenhance.cli.jobs`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from rlenhance.cli.jobs import Restore, Result, parallel_results, restore_one
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.io import IMAGE_EXTENSIONS, list_images, load_image
from rlenhance.io.video import is_video, video_decodes


def fail(command: str, exc: Exception) -> int:
    print(f"rlenhance {command}: {exc}", file=sys.stderr)
    return 2


def expand_inputs(paths: Sequence[Path]) -> list[Path]:
    """The image files ``paths`` stand for: a folder gives the images directly inside it, sorted by
    name (:func:`rlenhance.io.list_images`); anything else is kept as given.

    Raises:
        ValueError: a folder holds no images (the accepted extensions are named).
    """
    files = []
    for path in paths:
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise ValueError(f"{path}: a folder without images; accepted extensions: "
                                 f"{', '.join(IMAGE_EXTENSIONS)} (case-insensitive)")
            files += found
        else:
            files.append(path)
    return files


def plan_outputs(images: Sequence[Path], out: Path, *, overwrite: bool = False,
                 protected: Sequence[Path] = (), shard: tuple[int, int] = (0, 1)) -> list[tuple[Path, Path]]:
    """Pair each input with its output ``out/<stem>.png`` (a video: ``out/<its name>``, the same container),
    refusing any plan that could lose a file.

    Args:
        images: the input files, in order (every shard is given the same list).
        out: the output folder (need not exist yet).
        overwrite: allow replacing existing files that are not inputs.
        protected: further files that must never be replaced (e.g. the ``--masks`` files).
        shard: ``(i, n)``: this run does every n-th input from the i-th. Collisions are checked over
            all inputs (so every shard agrees), existing outputs only over this shard's.

    Returns:
        ``[(input, output), ...]`` of this shard, in the order of ``images``.

    Raises:
        ValueError: ``out`` exists and is not a folder; an input is listed twice; two inputs map to one output
            (compared case-insensitively); an output is one of the inputs or ``protected`` files (also through a
            link); an output exists and ``overwrite`` is False. Nothing has been written.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"-o {out}: is a file; expected an output folder (created if missing)")
    kept = [Path(p) for p in (*images, *protected)]
    identities = {_identity(p): p for p in kept if p.exists()}
    by_key: dict[str, Path] = {}
    plan, existing = [], []
    index, count = shard
    for position, path in enumerate(images):
        target = out / (path.name if is_video(path) else f"{path.stem}.png")
        key = os.path.normcase(str(target.resolve())).casefold()
        if key in by_key:
            first = by_key[key]
            if first == path or (first.exists() and path.exists() and _identity(first) == _identity(path)):
                raise ValueError(f"{path} is listed twice")
            raise ValueError(f"{first} and {path} would both be written to {target}; rename one of them or "
                             "process them with different -o folders")
        by_key[key] = path
        if target.exists():
            source = identities.get(_identity(target))
            if source is not None:
                raise ValueError(f"{path} -> {target} would replace the input {source}; choose an -o folder "
                                 "that holds none of the inputs")
            if position % count == index:
                existing.append(target)
        if position % count == index:
            plan.append((path, target))
    if existing and not overwrite:
        more = f" and {len(existing) - 3} more" if len(existing) > 3 else ""
        shown = ", ".join(str(t) for t in existing[:3]) + more
        raise ValueError(f"{len(existing)} output file(s) already exist: {shown}; pass --overwrite to replace "
                         "them, or choose another -o folder")
    return plan


def _identity(path: Path) -> tuple[int, int]:
    """(device, inode) of an existing file: the same file whatever the path (links included)."""
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def shard_of(spec: str | None, environ: Mapping[str, str]) -> tuple[int, int]:
    """``(i, n)`` from ``--shard i/n``; without it, torchrun's ``RANK`` / ``WORLD_SIZE``, else ``(0, 1)``.

    Raises:
        ValueError: not two integers ``0 <= i < n``; the message names where the values came from.
    """
    if spec is None:
        if "WORLD_SIZE" not in environ or "RANK" not in environ:
            return 0, 1
        rank, size = environ["RANK"], environ["WORLD_SIZE"]
        source = (f"RANK={rank!r} and WORLD_SIZE={size!r} in the environment (torchrun's, read when --shard is not "
                  "given)")
        accepted = "integers 0 <= RANK < WORLD_SIZE; unset them or pass --shard I/N"
    else:
        rank, _, size = spec.partition("/")
        source, accepted = f"--shard {spec!r}", "I/N with integers 0 <= I < N (e.g. 0/4)"
    try:
        index, count = int(rank), int(size)
    except ValueError:
        raise ValueError(f"{source}: expected {accepted}") from None
    if count < 1:
        raise ValueError(f"{source}: {count} shards; expected {accepted}")
    if not 0 <= index < count:
        raise ValueError(f"{source}: shard {index} is outside 0..{count - 1}; expected {accepted}")
    return index, count


def process(args: argparse.Namespace, build: Callable[[argparse.Namespace], Restore]) -> int:
    """Load, restore and save every image of ``args.images``; one line per image, bad files skipped.

    ``build(args)`` loads the models and returns ``restore(path, image) -> (output, figure)``; it is called
    here (bad arguments or checkpoints: exit code 2 before any work) and again in each ``--jobs`` worker. The
    outputs are planned first (:func:`plan_outputs`); ``--shard i/n`` keeps every n-th input;
    ``--skip-existing`` skips inputs whose output exists and decodes (a broken one is redone).
    """
    try:
        if args.max_pixels < 1:
            raise ValueError(f"--max-pixels {args.max_pixels}: expected an integer >= 1")
        if args.jobs < 1:
            raise ValueError(f"--jobs {args.jobs}: expected an integer >= 1")
        if args.overwrite and args.skip_existing:
            raise ValueError("--overwrite and --skip-existing: choose one (replace existing outputs, or keep them)")
        index, count = shard_of(args.shard, os.environ)
        args.images = expand_inputs(args.images)
        restore = build(args)
        protected = list_images(args.masks) if getattr(args, "masks", None) is not None else ()
        plan = plan_outputs(args.images, args.out, overwrite=args.overwrite or args.skip_existing,
                            protected=protected, shard=(index, count))
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"-o {args.out}: cannot create the output folder ({exc.strerror or exc})") from exc
        if not os.access(args.out, os.W_OK | os.X_OK):
            raise ValueError(f"-o {args.out}: the output folder is not writable")
    except (CheckpointError, ValueError) as exc:
        return fail(args.command, exc)
    on_exists = "replace" if args.overwrite else "skip" if args.skip_existing else "fail"
    todo, broken = [], []
    for path, target in plan:
        if args.skip_existing and os.path.lexists(target):
            if _decodes(target):
                continue
            broken.append(target)
            todo.append((path, target, "replace"))
        else:
            todo.append((path, target, on_exists))
    if len(todo) < len(plan):
        print(f"skipping {len(plan) - len(todo)} input(s) whose output exists (--skip-existing)", flush=True)
    if broken:
        more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
        print(f"redoing {len(broken)} input(s) whose output exists but does not decode (empty, truncated or corrupt): "
              f"{', '.join(map(str, broken[:3]))}{more}", flush=True)
    jobs = min(args.jobs, max(1, len(todo)))
    if jobs == 1:
        results = (restore_one(restore, *item, args.max_pixels, progress=True) for item in todo)
    else:
        results = parallel_results(restore, build, args, todo, jobs)
    try:
        return _report(results, len(todo))
    except KeyboardInterrupt:
        print(f"rlenhance {args.command}: interrupted; outputs written so far are complete, rerun with "
              "--skip-existing to continue", file=sys.stderr)
        return 130
    finally:
        results.close()  # stops the --jobs workers, whatever happened


def _decodes(path: Path) -> bool:
    """Whether the existing output ``path`` is a complete image or video (``--skip-existing`` keeps it)."""
    if is_video(path):
        try:
            return video_decodes(path)
        except ImageError:  # no PyAV: the input fails the same way when it is redone
            return False
    try:
        load_image(path, max_pixels=None, samples=True)
    except ImageError:
        return False
    return True


def _report(results: Iterable[Result], total: int) -> int:
    """Print one line per image as results come; the closing count and the exit code."""
    failed = skipped = 0
    for _path, error, line, kept in results:
        if error is not None:
            failed += 1
            print(line, file=sys.stderr, flush=True)
        else:
            skipped += kept
            print(line, flush=True)
    if skipped:
        print(f"{skipped} image(s) skipped: another run wrote their output meanwhile (--skip-existing)", flush=True)
    if failed:
        others = "; the other outputs were written" if failed < total else ""
        print(f"{failed} of {total} image(s) failed{others}", file=sys.stderr)
    return 1 if failed else 0


def check_tile(args: argparse.Namespace) -> None:
    """Raise ValueError for a ``--tile`` below 1."""
    if args.tile < 1:
        raise ValueError(f"--tile {args.tile}: expected an integer >= 1")
