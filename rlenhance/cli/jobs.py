"""One image's work, :func:`restore_one` (load, restore, save), in this process or, with ``--jobs N``,
in N-1 spawned workers as well, an image at a time each (:func:`parallel_results`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from rlenhance.errors import ImageError
from rlenhance.io import load_image, save_image
from rlenhance.io.video import is_video, transcode
from rlenhance.runtime import configure_threads

Restore = Callable[[Path, np.ndarray], "tuple[np.ndarray, str]"]
#: One image's outcome: ``(input, error or None, the line to print, skipped)``; ``skipped`` is True for
#: an output that another run wrote meanwhile, kept with ``--skip-existing``.
Result = tuple[Path, "str | None", str, bool]
#: What saving does when the output file exists by then: replace it, keep it and skip the image
#: (``--skip-existing``), or keep it and fail the image.
ON_EXISTS = ("replace", "skip", "fail")


#: A restoration that has taken this long (a large photo: minutes) shows a progress bar of its tiles.
PROGRESS_AFTER_S = 2.0


def restore_one(restore: Restore, path: Path, target: Path, on_exists: str, max_pixels: int, *,
                progress: bool = False) -> Result:
    """Load, restore and save one image (see :data:`Result`). A restore function with a true
    ``reads_samples`` attribute is given the file's integer samples instead of floats. A video is streamed
    through the function its ``clip`` attribute makes (:func:`rlenhance.io.video.transcode`). ``on_exists``
    is one of :data:`ON_EXISTS`. ``progress``: a slow restoration shows a bar of its tiles (:func:`tile_bar`)."""
    try:
        if is_video(path):
            return _restore_clip(restore, path, target, on_exists, max_pixels)
        image = load_image(path, max_pixels=max_pixels, samples=getattr(restore, "reads_samples", False))
        start = time.perf_counter()
        with tile_bar(path.name) if progress else contextlib.nullcontext():
            result, figure = restore(path, image)
        seconds = time.perf_counter() - start
        height, width = image.shape[:2]
        del image  # not needed to save the result: a large photo's input is freed first
        save_image(target, result, overwrite=on_exists == "replace")
    except FileExistsError:
        if on_exists == "skip":
            return path, None, f"skipped {path}: {target} was written meanwhile (another run?); kept", True
        error = (f"{target} was written meanwhile (another run into the same folder?); it was kept, not replaced "
                 "(--overwrite replaces, --skip-existing keeps such outputs)")
        return path, error, f"FAILED {path}: {error}", False
    except (ImageError, OSError) as exc:
        return path, str(exc), f"FAILED {path}: {exc}", False
    size = f"{width}x{height}"
    if result.shape[:2] != (height, width):  # a super-resolution model
        size += f" -> {result.shape[1]}x{result.shape[0]}"
    return path, None, f"{path} -> {target}  {size}  {seconds * 1000:.0f} ms  {figure}", False


@contextlib.contextmanager
def tile_bar(name: str) -> Iterator[None]:
    """A progress bar on stderr of the tiles restored within the block, one per :func:`rlenhance.ops.tiling.tiled`
    pass, shown once the pass has taken :data:`PROGRESS_AFTER_S` and cleared at its end."""
    from tqdm import tqdm

    from rlenhance.ops.tiling import reporting_windows

    bars: list[tqdm] = []

    def report(done: int, total: int) -> None:
        if done == 1:
            if bars:
                bars[-1].close()
            bars.append(tqdm(total=total, desc=f"{name} pass {len(bars) + 1}" if bars else name, unit="tile",
                             delay=PROGRESS_AFTER_S, leave=False, file=sys.stderr, dynamic_ncols=True, mininterval=1.0))
        bars[-1].update()

    try:
        with reporting_windows(report):
            yield
    finally:
        if bars:
            bars[-1].close()


def _restore_clip(restore: Restore, path: Path, target: Path, on_exists: str, max_pixels: int) -> Result:
    """:func:`restore_one` of a video: its frames through ``restore.clip()``."""
    clip = getattr(restore, "clip", None)
    if clip is None:
        raise ImageError(f"{path} is a video; videos are enhanced by rlenhance enhance --model rl")
    done = transcode(path, target, clip(), overwrite=on_exists == "replace", max_pixels=max_pixels, progress=True)
    audio = f", {done.audio_streams} audio stream(s) copied" if done.audio_streams else ""
    return path, None, (f"{path} -> {target}  {done.width}x{done.height}, {done.frames} frames at {done.rate:g} "
                        f"frames/s{audio}  {done.frames / done.seconds:.1f} frames/s"), False


_WORKER_RESTORE: Restore | None = None


def _init_worker(build: Callable[[argparse.Namespace], Restore], args: argparse.Namespace, threads: int) -> None:
    global _WORKER_RESTORE
    configure_threads(threads)
    _WORKER_RESTORE = build(args)


def _worker_restore(item: tuple[Path, Path, str, int]) -> Result:
    """:func:`restore_one` of ``(path, target, on_exists, max_pixels)`` in a worker (after :func:`_init_worker`)."""
    assert _WORKER_RESTORE is not None, "worker used before _init_worker"
    return restore_one(_WORKER_RESTORE, *item)


class _Worker:
    """A ``--jobs`` worker: its process (a spawned ``multiprocessing`` Process; None once it has ended),
    this process's end of their pipe (a ``multiprocessing`` Connection), whether it has said it is
    ready (or why it cannot be), and the indices of ``todo`` handed to it, in the order it restores them."""

    def __init__(self, process, connection) -> None:
        self.process, self.connection = process, connection
        self.ready = False
        self.why = ""
        self.assigned: list[int] = []


def parallel_results(restore: Restore, build: Callable[[argparse.Namespace], Restore], args: argparse.Namespace,
                      todo: Sequence[tuple[Path, Path, str]], jobs: int) -> Iterator[Result]:
    """Results of ``todo``, in its order, from ``jobs`` processes: this one (whose models are loaded)
    and ``jobs - 1`` spawned workers. Work is handed out an image at a time, to a worker once it has said
    it is ready. A worker that dies fails the image it was restoring, with the cause; the images queued
    behind it go to the other processes. Closing the generator stops the workers."""
    import multiprocessing  # spawned workers rebuild the models: no fork of a process with running threads
    from multiprocessing.connection import wait

    threads = configure_threads(max(1, (os.cpu_count() or 1) // jobs))
    context = multiprocessing.get_context("spawn")
    pending = list(range(len(todo)))[::-1]  # a stack: the next index is popped from the end
    finished: dict[int, Result] = {}
    per_worker = 4  # images handed to a worker at once: it never waits for its next path
    workers: list[_Worker] = []

    def feed() -> None:
        for worker in workers:
            while worker.ready and len(worker.assigned) < per_worker and pending:
                i = pending.pop()
                try:
                    worker.connection.send((i, todo[i]))
                except OSError:  # it has died: its sentinel says so at the next collect
                    pending.append(i)
                    break
                worker.assigned.append(i)

    def collect(block: bool) -> None:
        alive = [w for w in workers if w.process is not None]
        handles = [h for w in alive for h in (w.connection, w.process.sentinel)]
        ready = set(wait(handles, timeout=None if block else 0)) if handles else set()
        for worker in alive:
            if worker.connection in ready:
                _drain(worker, todo, finished)
            if worker.process.sentinel in ready:
                _drain(worker, todo, finished)  # what it sent before it ended
                _bury(worker, todo, finished, pending)

    try:
        for _ in range(jobs - 1):
            ours, theirs = context.Pipe()
            process = context.Process(target=_worker_main, args=(theirs, build, args, threads), daemon=True)
            process.start()
            theirs.close()
            workers.append(_Worker(process, ours))
        for index in range(len(todo)):
            while index not in finished:
                collect(block=False)
                feed()
                if index in finished:
                    break
                if pending:
                    i = pending.pop()
                    finished[i] = restore_one(restore, *todo[i], args.max_pixels)
                else:
                    collect(block=True)  # the image is at a worker: its result, or its death, comes
            yield finished.pop(index)
    finally:
        for worker in workers:
            if worker.process is not None:
                worker.process.terminate()  # finished, or stopped: a worker removes its unfinished file
        for worker in workers:
            if worker.process is not None:
                worker.process.join(timeout=10)
                worker.process.kill()
            worker.connection.close()


def _drain(worker: _Worker, todo: Sequence[tuple[Path, Path, str]], finished: dict[int, Result]) -> None:
    """Take every message ``worker`` has sent: it is ready, a result, or a bug (raised here)."""
    while True:
        try:
            if not worker.connection.poll():
                return
            message = worker.connection.recv()
        except (EOFError, OSError):
            return
        if message[0] == "ready":
            worker.ready = True
        elif message[0] == "result":
            _, i, result = message
            worker.assigned.remove(i)
            finished[i] = result
        elif message[0] == "bug":  # a bad image is a result, not an exception
            _, i, text = message
            raise RuntimeError(f"a --jobs worker failed on {todo[i][0]}:\n{text}")
        else:  # "unusable": its models could not be built (the first build, in this process, worked)
            worker.why = message[1]


def _bury(worker: _Worker, todo: Sequence[tuple[Path, Path, str]], finished: dict[int, Result],
          pending: list[int]) -> None:
    """``worker`` has ended: the image it was restoring failed, the ones queued behind it go back."""
    import signal

    worker.process.join(timeout=10)
    code = worker.process.exitcode
    try:
        how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
    except ValueError:
        how = f"killed by signal {-code}"
    if worker.assigned:
        i, *queued = worker.assigned
        path, target = todo[i][:2]
        error = (f"the --jobs worker process restoring it died ({how}) before it reported; {target} may be "
                 "missing: rerun with --skip-existing to redo it")
        finished[i] = (path, error, f"FAILED {path}: {error}", False)
        pending.extend(reversed(queued))
    elif not worker.ready:
        why = f":\n{worker.why}" if worker.why else f" ({how})"
        print(f"rlenhance: a --jobs worker could not start, the other processes go on{why}", file=sys.stderr,
              flush=True)
    worker.assigned = []
    worker.process = None


def _worker_main(connection, build: Callable[[argparse.Namespace], Restore], args: argparse.Namespace,
                 threads: int) -> None:
    """A ``--jobs`` worker: build the models, say so, then restore the images sent through
    ``connection`` (its end of a ``multiprocessing`` Pipe) until it closes."""
    import signal
    import traceback

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the run in the parent, which stops us
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwinds: an unfinished output's temporary file goes
    try:
        _init_worker(build, args, threads)
    except Exception:
        connection.send(("unusable", traceback.format_exc()))
        return
    connection.send(("ready",))
    while True:
        try:
            i, item = connection.recv()
        except EOFError:
            return
        try:
            result = _worker_restore((*item, args.max_pixels))
        except Exception:
            connection.send(("bug", i, traceback.format_exc()))
            return
        connection.send(("result", i, result))
