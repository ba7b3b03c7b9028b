"""The ``rlenhance`` command line (also ``python -m rlenhance``).

    rlenhance enhance IMAGES... -o OUTDIR [--model rl|mrpnet] [--checkpoint PATH] [--denoiser mrpnet|ffdnet|PATH]
                     [--noise-sigma S] [--steps N] [--exposure E] [--w-exposure W] [--w-color W] [--w-spatial W]
                     [--w-smooth W] [--max-overshoot C] [--blur-sigma S] [--max-side N] [--device D]
    rlenhance denoise IMAGES... -o OUTDIR [--model ffdnet|mrpnet|a3c|sac|rse] [--checkpoint PATH] [--sigma S]
                     [--ensemble 1|2|4|8] [--per-channel] [--tile N] [--device D]
    rlenhance complete IMAGES... -o OUTDIR [--checkpoint PATH] [--masks DIR | --mask-threshold T]
                     [--ensemble 1|2|4|8] [--tile N] [--device D]
    rlenhance app [--port N] [--host H] [--checkpoint PATH] [--device D] [--no-browser]
    rlenhance export-csv IMAGES... -o submission.csv [--stride 8] [--id-prefix OLD NEW] [--overwrite]

``enhance --model rl`` (default) runs the trained RL policy (:class:`rlenhance.Enhancer`),
``--model mrpnet`` a supervised low-light checkpoint of ``experiments.supervised_train`` (MRPNet
+ Generator, via :class:`rlenhance.restore.SupervisedRestorer`); ``--denoiser`` runs a
denoising checkpoint on the enhanced image (ReLLIE's denoiser module; ``mrpnet`` / ``ffdnet``: the
shipped colour one of that model): a plain one (MRPNet), or
with ``--model rl`` a noise-map one (``supervised_train --model ffdnet``), which also reads the
noise level of each pixel: the input's, ``--noise-sigma``, times how much the policy's curves
brightened the pixel. ``denoise`` runs a denoiser of
:func:`rlenhance.denoisers.load_denoiser`: ``--model ffdnet`` (the default without ``--checkpoint``;
with one, ``--model`` defaults to the checkpoint's own kind) a noise-map checkpoint of
``experiments.supervised_train --model ffdnet``, given the map of ``--sigma``, or without it of the
level estimated in each image, ``mrpnet`` a plain supervised one, ``a3c`` / ``sac``
a PixelRL filter-bank policy of
``experiments.denoise_train`` (the shipped gray ones, blind, also take the blind FFDNet's pixel), ``rse``
an RSE-RL model of ``experiments.rse_train``; without
``--checkpoint``, the model's default in ``rlenhance/weights/``: the gray one for a gray image (three
equal channels), the colour one for a colour image, the gray one for every image with
``--per-channel`` (R, G and B denoised separately); a gray model given a colour image without it
denoises the luma (``mrpnet``), the three opponent colour planes, each at its noise level
(``ffdnet``, colour out), or refuses the image (the RL models). ``complete`` runs a supervised
completion checkpoint (default: the shipped one, when installed) and reads each image's mask from
``--masks DIR`` (same stem, or the stem without the ``occluded_`` prefix, any image extension,
white = missing) or estimates the hole
(black pixels, :func:`rlenhance.restore.hole_mask`). ``export-csv`` writes the MRPNet seed's
competition CSV of predicted images (gray, flattened, every 8th pixel, one row per image ID;
:mod:`rlenhance.submission`).

IMAGES are files or folders (a folder stands for the images directly inside it, sorted by name,
e.g. a test set: ``rlenhance enhance --model mrpnet --checkpoint best.pt test/ -o pred/``).
Images are read and written in RGB order (files on disk follow their format's convention);
outputs are PNG files named after the inputs (``OUTDIR/<input stem>.png``), written atomically.
Before any image is processed, every output path is planned and the run is refused (exit code 2,
nothing written) when an output would replace one of the inputs (or a ``--masks`` file), when two
inputs would write the same output (``a/p.png b/p.png``, or ``x.png x.jpg``: the message names
both; rename one or use separate ``-o`` folders), or when an output file already exists (pass
``--overwrite`` to replace existing outputs; inputs are never replaced). Without ``--overwrite``, an
output is also claimed create-exclusively when it is written: a file that another run wrote there
meanwhile is kept, and the image fails (with ``--skip-existing``, is skipped). One line per image; a
bad file is reported and skipped, as is an image whose ``--jobs`` worker process died, and the exit
code is 1 if any image failed (2 for bad arguments), 0 only when every output was written (or kept
with ``--skip-existing``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from rlenhance import __version__
from rlenhance.app_support import APP_MAX_PIXELS, DEFAULT_PORT
from rlenhance.data.occluded import OCCLUDED_PREFIX
from rlenhance.denoisers import (
    DEFAULT_DENOISER,
    DENOISER_MODELS,
    SUPERVISED_DENOISERS,
    default_denoiser,
    denoiser_kind,
    load_denoiser,
)
from rlenhance.enhance import Enhancer, checkpoint_setting_ranges
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.io import (
    BT601_LUMA_WEIGHTS,
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    is_gray,
    list_images,
    load_image,
    save_image,
)
from rlenhance.ops import check_blur_sigma, check_max_overshoot
from rlenhance.restore import ENSEMBLES, HOLE_THRESHOLD, MASK_THRESHOLD, Restorer, SupervisedRestorer, hole_mask
from rlenhance.runtime import configure_threads, flush_denormals
from rlenhance.submission import DEFAULT_STRIDE, write_submission

#: Options of ``enhance`` that only the RL policy reads (refused with ``--model mrpnet``).
RL_ONLY = ("steps", "exposure", "w_exposure", "w_color", "w_spatial", "w_smooth", "noise_sigma", "max_overshoot",
           "blur_sigma")
#: 0-255 scale of the residual figure printed by ``denoise``.
LEVELS = 255.0


def _add_common(parser: argparse.ArgumentParser, checkpoint_help: str) -> None:
    parser.add_argument("images", nargs="+", type=Path,
                        help="input image files (PNG/JPEG/BMP/TIFF), or folders of them (the images directly inside)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder (created if missing)")
    parser.add_argument("--checkpoint", type=Path, default=None, help=checkpoint_help)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist (input files are never replaced)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="skip inputs whose output already exists and decodes (continue an interrupted run; an "
                             "empty or truncated output is redone)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="largest width x height accepted per input image (decompression-bomb guard)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes restoring images at once (this one and N-1 spawned workers, each with "
                             "its share of the cores), an image at a time each")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="process every N-th input from the I-th (0-based), e.g. one of N machines given the "
                             "same file list; default: torchrun's RANK/WORLD_SIZE when set, else all")


def _add_tile(parser: argparse.ArgumentParser, models: str = "supervised models") -> None:
    parser.add_argument("--tile", type=int, default=512,
                        help=f"{models}: tile side in pixels (bounds memory on large images)")


def _add_ensemble(parser: argparse.ArgumentParser, models: str) -> None:
    parser.add_argument("--ensemble", type=int, choices=tuple(ENSEMBLES), default=1,
                        help="geometric self-ensemble: the mean of the network over this many flips and quarter "
                             f"turns of the image, at that many times the time ({models}); 1: none")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlenhance", description="Reinforcement-learning image enhancement.")
    parser.add_argument("--version", action="version", version=f"rlenhance {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    formatter = argparse.ArgumentDefaultsHelpFormatter

    enhance = commands.add_parser("enhance", help="brighten low-light images (RL policy or supervised model)",
                                  formatter_class=formatter)
    _add_common(enhance, "--model rl: policy checkpoint from experiments.lol_train (omitted: the shipped model); "
                         "--model mrpnet: a lowlight checkpoint from experiments.supervised_train (required)")
    enhance.add_argument("--model", choices=("rl", "mrpnet"), default="rl",
                         help="rl: the RL curve policy; mrpnet: a supervised MRPNet (+ Generator) model")
    enhance.add_argument("--denoiser", default=None,
                         help="denoiser applied after enhancement (ReLLIE's denoiser module): mrpnet, the shipped "
                              "blind colour MRPNet (slower; higher PSNR / SSIM on noisy dark photos), ffdnet, the "
                              "colour FFDNet in rlenhance/weights/ when installed, else the shipped blind gray one on "
                              "the opponent colour planes (a file of that name in the working directory wins; "
                              "./mrpnet is always a path), or a "
                              "checkpoint of experiments.supervised_train --task denoise: a plain one (--model "
                              "mrpnet), or with --model rl a noise-map one (--model ffdnet), driven by a per-pixel "
                              "noise-level map: --noise-sigma times how much the policy's curves brightened each "
                              "pixel")
    enhance.add_argument("--noise-sigma", type=float, default=None,
                         help="rl with a noise-map --denoiser: the input's noise level on the 0-255 scale, within "
                              "the denoiser's trained range [0, sigma] (default: 4 for a denoiser trained on Gaussian "
                              "noise, such as the shipped FFDNet; sigma / 2 for one trained on amplified noise)")
    enhance.add_argument("--steps", type=int, default=None, help="rl: curve steps (default: the checkpoint's)")
    shipped = checkpoint_setting_ranges()  # what the shipped model accepts, for the help lines (None: not installed)

    def knob_help(text: str, name: str) -> str:
        accepted = ("; a model takes only the settings it was trained over, in their ranges "
                    "(Enhancer.setting_ranges), and refuses others" if name == "exposure" else "")
        if shipped is None:
            return text + accepted
        if name in shipped:
            return f"{text}; the shipped model accepts {shipped[name][0]:g} to {shipped[name][1]:g}{accepted}"
        return f"{text}; refused by the shipped model (trained with fixed weights){accepted}"

    enhance.add_argument("--exposure", type=float, default=None,
                         help=knob_help("rl: target mean brightness", "exposure"))
    for name in ("exposure", "color", "spatial", "smooth"):
        enhance.add_argument(f"--w-{name}", type=float, default=None,
                             help=knob_help(f"rl: reward weight of the {name} term", f"w_{name}"))
    enhance.add_argument("--max-overshoot", type=float, default=None,
                         help="rl: no curve step lifts an image's mean more than this above the exposure target "
                              "(the step is scaled down; with the shipped model, the cap at the default "
                              "--w-exposure, and a heavier exposure weight w tightens it by sqrt(default / w)); "
                              "inf: no cap (default: the checkpoint's)")
    enhance.add_argument("--blur-sigma", type=float, default=None,
                         help="rl: sigma in pixels (0-3) of a Gaussian blur of the result, for the noise the curves "
                              "amplify; 0: none (default: the checkpoint's, 0.65 for the shipped model; not applied "
                              "with --denoiser)")
    enhance.add_argument("--max-side", type=int, default=None,
                         help="rl: working resolution of the policy (longer side; default: the checkpoint's, else 512)")
    _add_tile(enhance)

    denoise = commands.add_parser("denoise", help="remove noise (supervised MRPNet or FFDNet, A3C / SAC filter-bank "
                                                  "policies, RSE-RL)", formatter_class=formatter)
    _add_common(denoise, "a checkpoint of --model (mrpnet: experiments.supervised_train --task denoise; ffdnet: "
                         "experiments.supervised_train --model ffdnet --task denoise; a3c / sac: "
                         "experiments.denoise_train; rse: experiments.rse_train); omitted: the model's default in "
                         "rlenhance/weights/, gray (e.g. mrpnet_denoise.pt) for gray images, colour "
                         "(<model>_denoise_color.pt) for colour images, when installed")
    denoise.add_argument("--model", choices=DENOISER_MODELS, default=None,
                         help="ffdnet: a supervised noise-map denoiser (FFDNet; the shipped one is blind, sigma "
                              "0-75); mrpnet: a supervised denoiser; a3c / sac: a PixelRL filter-bank policy (the "
                              "shipped gray ones also take the blind FFDNet's pixel); rse: RSE-RL. Omitted: the "
                              f"--checkpoint's own kind, or without one {DEFAULT_DENOISER}")
    denoise.add_argument("--sigma", type=float, default=None,
                         help="ffdnet: the images' noise level on the 0-255 scale, within the levels the checkpoint "
                              "was trained over (its map is sigma / 255); omitted: estimated in each image")
    _add_ensemble(denoise, "mrpnet, ffdnet; a3c / sac / rse: their predictor")
    denoise.add_argument("--per-channel", action="store_true",
                         help="gray denoiser on colour images: denoise R, G, B separately and keep colour (without "
                              "--checkpoint: the gray default for every image); without it a gray model converts a "
                              "colour image to gray (mrpnet), denoises its opponent colour planes (ffdnet; better "
                              "than per channel) or refuses it (a3c, sac, rse)")
    _add_tile(denoise, "mrpnet, ffdnet, a3c, sac (rse runs whole images)")

    complete = commands.add_parser("complete", help="fill the holes of occluded images (completion U-Net)",
                                   formatter_class=formatter)
    _add_common(complete, "completion checkpoint from experiments.supervised_train (omitted: the shipped "
                          "rlenhance/weights/unet_completion.pt, when installed)")
    source = complete.add_mutually_exclusive_group()
    source.add_argument("--masks", type=Path, default=None,
                        help="folder of mask files (same stem as the image, or without its 'occluded_' prefix; "
                             "white = missing)")
    source.add_argument("--mask-threshold", type=float, default=HOLE_THRESHOLD,
                        help="without --masks: the hole is the largest near-black region, pixels within this "
                             "distance of black (max over channels, in [0, 1])")
    _add_ensemble(complete, "the completion network")
    _add_tile(complete)

    export = commands.add_parser("export-csv", help="the MRPNet seed's competition CSV of predicted images (gray, "
                                                    "every 8th pixel, one row per image)", formatter_class=formatter)
    export.add_argument("images", nargs="+", type=Path,
                        help="predicted image files, or folders of them (the images directly inside); one row each")
    export.add_argument("-o", "--out", type=Path, required=True, help="the CSV file to write")
    export.add_argument("--stride", type=int, default=DEFAULT_STRIDE,
                        help="keep every N-th pixel of each flattened gray image (the seed's 8)")
    export.add_argument("--id-prefix", nargs=2, default=None, metavar=("OLD", "NEW"),
                        help="IDs are the file stems, with a leading OLD replaced by NEW (the seed's: test_ gt_)")
    export.add_argument("--overwrite", action="store_true", help="replace the CSV file if it exists")
    export.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="largest width x height accepted per image (decompression-bomb guard)")

    app = commands.add_parser("app", help="try the models in a browser (a Streamlit web app: "
                                          "pip install 'rlenhance[app]')", formatter_class=formatter)
    app.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to serve on")
    app.add_argument("--host", default="localhost",
                     help="address to listen on (localhost: this machine only; 0.0.0.0: every network interface)")
    app.add_argument("--checkpoint", type=Path, default=None,
                     help="low-light policy from experiments.lol_train for the Enhance tab "
                          "(omitted: the shipped model)")
    app.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    app.add_argument("--max-pixels", type=int, default=APP_MAX_PIXELS,
                     help="largest width x height accepted per upload (larger ones are refused in the page)")
    app.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    return parser


def _fail(command: str, exc: Exception) -> int:
    print(f"rlenhance {command}: {exc}", file=sys.stderr)
    return 2


def expand_inputs(paths: Sequence[Path]) -> list[Path]:
    """The image files ``paths`` stand for: a folder gives the images directly inside it, sorted by
    name (:func:`rlenhance.io.list_images`); anything else is kept as given (a missing or bad file
    is reported when it is read).

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


def _export_csv(args: argparse.Namespace) -> int:
    """``rlenhance export-csv``: the seed's competition CSV (:func:`rlenhance.submission.write_submission`)."""
    try:
        if args.max_pixels < 1:
            raise ValueError(f"--max-pixels {args.max_pixels}: expected an integer >= 1")
        images = expand_inputs(args.images)
        rows = write_submission(images, args.out, stride=args.stride, overwrite=args.overwrite,
                                id_prefix=tuple(args.id_prefix) if args.id_prefix else None,
                                max_pixels=args.max_pixels)
    except ImageError as exc:  # an unreadable image or one of another size: nothing was written
        print(f"rlenhance export-csv: {exc}; nothing written", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        return _fail("export-csv", exc)
    print(f"{args.out}: {rows} row(s) written (gray levels, pixel stride {args.stride})")
    return 0


def plan_outputs(images: Sequence[Path], out: Path, *, overwrite: bool = False,
                 protected: Sequence[Path] = (), shard: tuple[int, int] = (0, 1)) -> list[tuple[Path, Path]]:
    """Pair each input with its output ``out/<stem>.png``, refusing any plan that could lose a file.

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
        ValueError: ``out`` exists and is not a folder; an input is listed twice; two inputs map to
            one output (compared case-insensitively, as on macOS and Windows file systems); an
            output is one of the inputs or ``protected`` files (also through a link); an output
            exists and ``overwrite`` is False. Nothing has been written.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"-o {out}: is a file; expected an output folder (created if missing)")
    kept = [Path(p) for p in (*images, *protected)]
    identities = {_identity(p): p for p in kept if p.exists()}
    by_key: dict[str, Path] = {}
    plan, existing = [], []
    index, count = shard
    for position, path in enumerate(images):
        target = out / f"{path.stem}.png"
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


Restore = Callable[[Path, np.ndarray], "tuple[np.ndarray, str]"]
#: One image's outcome: ``(input, error or None, the line to print, skipped)``; ``skipped`` is True for
#: an output that another run wrote meanwhile, kept with ``--skip-existing``.
Result = tuple[Path, "str | None", str, bool]
#: What saving does when the output file exists by then: replace it (``--overwrite``, or an output that
#: ``--skip-existing`` found broken), keep it and skip the image (``--skip-existing``), or keep it and
#: fail the image.
ON_EXISTS = ("replace", "skip", "fail")


def _process(args: argparse.Namespace, build: Callable[[argparse.Namespace], Restore]) -> int:
    """Load, restore and save every image of ``args.images``; one line per image, bad files skipped.

    ``build(args)`` loads the models and returns ``restore(path, image) -> (output, figure)``; it is
    called here (bad arguments or checkpoints end with exit code 2 before any work) and again in
    each ``--jobs`` worker process. The outputs are planned first (:func:`plan_outputs`): a plan
    that could lose a file is refused (exit 2). ``--shard i/n`` (or torchrun's ``RANK`` /
    ``WORLD_SIZE``) keeps every n-th input; ``--skip-existing`` skips inputs whose output exists and
    decodes (a broken one, e.g. empty or truncated by an interrupted copy, is redone). Without
    ``--overwrite``, an output is claimed create-exclusively when it is written: a file that another
    run wrote there meanwhile is kept, and the image counts as failed (skipped with
    ``--skip-existing``).
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
        return _fail(args.command, exc)
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
        results = (_restore_one(restore, *item, args.max_pixels) for item in todo)
    else:
        results = _parallel_results(restore, build, args, todo, jobs)
    try:
        return _report(results, len(todo))
    except KeyboardInterrupt:
        print(f"rlenhance {args.command}: interrupted; outputs written so far are complete, rerun with "
              "--skip-existing to continue", file=sys.stderr)
        return 130
    finally:
        results.close()  # stops the --jobs workers, whatever happened


def _decodes(path: Path) -> bool:
    """Whether the existing output ``path`` is a complete image (``--skip-existing`` keeps it)."""
    try:
        load_image(path, max_pixels=None, samples=True)
    except ImageError:
        return False
    return True


class _Worker:
    """A ``--jobs`` worker: its process (a spawned ``multiprocessing`` Process; None once it has ended),
    this process's end of their pipe (a ``multiprocessing`` Connection), whether it has said it is
    ready (or why it cannot be), and the indices of ``todo`` handed to it, in the order it restores them."""

    def __init__(self, process, connection) -> None:
        self.process, self.connection = process, connection
        self.ready = False
        self.why = ""
        self.assigned: list[int] = []


def _parallel_results(restore: Restore, build: Callable[[argparse.Namespace], Restore], args: argparse.Namespace,
                      todo: Sequence[tuple[Path, Path, str]], jobs: int) -> Iterator[Result]:
    """Results of ``todo``, in its order, from ``jobs`` processes: this one (whose models are loaded)
    and ``jobs - 1`` spawned workers, each with its share of the cores. Work is handed out an image
    at a time, so this process restores images while the workers start (importing torch and loading
    the models takes as long as a hundred 600x400 images): a worker is given images once it has
    said it is ready, so no image waits on a worker that is still starting, and nobody idles at the
    end. A worker that dies (killed, out of memory) fails the image it was restoring, with the cause;
    the images queued behind it go to the other processes. Closing the generator stops the workers."""
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
                    finished[i] = _restore_one(restore, *todo[i], args.max_pixels)
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


def shard_of(spec: str | None, environ: Mapping[str, str]) -> tuple[int, int]:
    """``(i, n)`` from ``--shard i/n``; without it, torchrun's ``RANK`` / ``WORLD_SIZE``, else ``(0, 1)``.

    Raises:
        ValueError: not two integers ``0 <= i < n``; the message names ``--shard``, or the
            environment variables the values came from.
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


def _restore_one(restore: Restore, path: Path, target: Path, on_exists: str, max_pixels: int) -> Result:
    """Load, restore and save one image (see :data:`Result`). A restore function with a true
    ``reads_samples`` attribute is given the file's integer samples (``load_image(samples=True)``)
    instead of floats. ``on_exists`` is one of :data:`ON_EXISTS`."""
    try:
        image = load_image(path, max_pixels=max_pixels, samples=getattr(restore, "reads_samples", False))
        start = time.perf_counter()
        result, figure = restore(path, image)
        seconds = time.perf_counter() - start
        save_image(target, result, overwrite=on_exists == "replace")
    except FileExistsError:
        if on_exists == "skip":
            return path, None, f"skipped {path}: {target} was written meanwhile (another run?); kept", True
        error = (f"{target} was written meanwhile (another run into the same folder?); it was kept, not replaced "
                 "(--overwrite replaces, --skip-existing keeps such outputs)")
        return path, error, f"FAILED {path}: {error}", False
    except (ImageError, OSError) as exc:
        return path, str(exc), f"FAILED {path}: {exc}", False
    height, width = image.shape[:2]
    size = f"{width}x{height}"
    if result.shape[:2] != image.shape[:2]:  # a super-resolution model
        size += f" -> {result.shape[1]}x{result.shape[0]}"
    return path, None, f"{path} -> {target}  {size}  {seconds * 1000:.0f} ms  {figure}", False


_WORKER_RESTORE: Restore | None = None


def _init_worker(build: Callable[[argparse.Namespace], Restore], args: argparse.Namespace, threads: int) -> None:
    global _WORKER_RESTORE
    configure_threads(threads)
    _WORKER_RESTORE = build(args)


def _worker_restore(item: tuple[Path, Path, str, int]) -> Result:
    """:func:`_restore_one` of ``(path, target, on_exists, max_pixels)`` in a worker (after :func:`_init_worker`)."""
    assert _WORKER_RESTORE is not None, "worker used before _init_worker"
    return _restore_one(_WORKER_RESTORE, *item)


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


def _mean_figure(before: np.ndarray, after: np.ndarray) -> str:
    return _means_text(float(before.mean()), float(after.mean()))


def _means_text(before: float, after: float) -> str:
    """The figure of a low-light command: the mean value (on the [0, 1] scale) before and after."""
    return f"mean {before:.3f} -> {after:.3f}"


def _check_tile(args: argparse.Namespace) -> None:
    if args.tile < 1:
        raise ValueError(f"--tile {args.tile}: expected an integer >= 1")


def _enhancer(args: argparse.Namespace) -> Restore:
    """``enhance``'s restore function (raises ValueError / CheckpointError for bad arguments)."""
    _check_tile(args)
    if args.model == "rl":  # named as the flags (the Enhancer checks them again, by its argument names)
        check_max_overshoot(args.max_overshoot, "--max-overshoot", inf_means_none=True)
        check_blur_sigma(args.blur_sigma, "--blur-sigma")
        if args.blur_sigma and args.denoiser is not None:
            raise ValueError(f"--blur-sigma {args.blur_sigma:g} with --denoiser: the denoiser replaces the blur; "
                             "give one of them")
    # a noise-map denoiser reads the gains of the policy's curves: --model rl only
    denoiser = None
    if args.denoiser is not None:
        # a model name, exactly as typed, with no such file here: the shipped colour checkpoint of that model
        path = Path(args.denoiser)
        if args.denoiser in SUPERVISED_DENOISERS and not path.is_file():
            path = _colour_default(args.denoiser)
        denoiser = SupervisedRestorer(path, device=args.device, task="denoise", tile=args.tile,
                                      noise_map=None if args.model == "rl" else False)
    if args.model == "mrpnet":
        given = [f"--{name.replace('_', '-')}" for name in RL_ONLY if getattr(args, name) is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: option(s) of --model rl; --model mrpnet takes none")
        if args.checkpoint is None:
            raise ValueError("--model mrpnet needs --checkpoint PATH (a lowlight checkpoint of "
                             "experiments.supervised_train --model mrpnet --task lowlight)")
        model = SupervisedRestorer(args.checkpoint, device=args.device, task="lowlight", tile=args.tile)

        def restore(path: Path, image: np.ndarray) -> tuple[np.ndarray, str]:
            out = model.restore(image)
            if denoiser is not None:
                out = denoiser.restore(out, per_channel=True)
            return out, _mean_figure(image, out)
        return restore

    enhancer = Enhancer(args.checkpoint, device=args.device, steps=args.steps, max_side=args.max_side,
                        denoiser=denoiser, noise_sigma=args.noise_sigma, max_overshoot=args.max_overshoot,
                        blur_sigma=args.blur_sigma)
    setting = {"exposure": args.exposure, "w_exposure": args.w_exposure, "w_color": args.w_color,
               "w_spatial": args.w_spatial, "w_smooth": args.w_smooth}
    enhancer.cond(**setting)  # validate the setting once, before any image

    def restore(path: Path, image: np.ndarray) -> tuple[np.ndarray, str]:
        # uint8 samples in and out: no float copy of a large photo (the PNG gets the same levels)
        result = enhancer.enhance_array(image, dtype=np.uint8, **setting)
        return result.image, _means_text(result.mean_before, result.mean_after)
    restore.reads_samples = True
    return restore


def _colour_default(model: str) -> Path:
    """``enhance --denoiser mrpnet|ffdnet``: the model's shipped colour checkpoint, else its gray one,
    which the Enhancer runs on R, G and B (mrpnet) or on the opponent colour planes (ffdnet); the
    colour default's error when neither is installed."""
    try:
        return default_denoiser(model, 3, option="--denoiser")
    except CheckpointError as missing:
        try:
            return default_denoiser(model, 1, option="--denoiser")
        except CheckpointError:
            raise missing from None


def _denoiser(args: argparse.Namespace) -> Restore:
    """``denoise``'s restore function: the ``--checkpoint``, else the defaults of ``--model`` by the
    image's planes (see the module docstring)."""
    _check_tile(args)
    kind = args.model  # None: the checkpoint's own kind (its loader's error says what a non-denoiser is)
    if kind is None:
        kind = (denoiser_kind(args.checkpoint) or "mrpnet") if args.checkpoint is not None else DEFAULT_DENOISER
    load = partial(load_denoiser, kind, device=args.device, tile=args.tile, sigma=args.sigma, ensemble=args.ensemble)
    models: dict[int, Restorer] = {}  # planes of the images it takes (1 gray, 3 colour) -> restorer
    missing: dict[int, CheckpointError] = {}
    if args.checkpoint is not None:
        models[1] = models[3] = load(args.checkpoint)
    else:
        for planes in (1,) if args.per_channel else (1, 3):
            try:
                path = default_denoiser(kind, planes)
            except CheckpointError as exc:  # not installed (a broken installed file is refused below)
                missing[planes] = exc
                continue
            models[planes] = load(path)
        if not models:  # mrpnet, ffdnet serve colour images with their gray default without a colour one
            raise missing[1] if args.per_channel or kind in SUPERVISED_DENOISERS else missing[3]

    def restore(path: Path, image: np.ndarray) -> tuple[np.ndarray, str]:
        gray = is_gray(image)
        planes = image[..., :1] if gray else image  # a gray file is read as three equal channels
        model = models.get(1 if gray or args.per_channel else 3)
        if model is None and gray:
            model = models[3]  # only the colour default: the gray image replicated to RGB
        elif model is None and kind not in SUPERVISED_DENOISERS:
            raise ImageError(f"a colour image, and {missing[3]}")
        elif model is None:
            model = models[1]  # mrpnet / ffdnet without its colour default: the luma / the opponent planes
        out = model.restore(planes, per_channel=args.per_channel)
        residual = _removed_std(planes, out) * LEVELS
        return out, f"removed noise std {residual:.1f}/255"
    return restore


def _removed_std(planes: np.ndarray, out: np.ndarray, band: int = 256) -> float:
    """The standard deviation of what a denoiser removed: ``out`` (H, W, C_out) from what it was
    given, ``planes`` (H, W, C), or their BT.601 luma for a gray supervised model without
    --per-channel (C_out < C). Computed ``band`` rows at a time (two passes, float64 sums): no
    difference image of the photo's size is made."""
    weights = np.asarray(BT601_LUMA_WEIGHTS, np.float32)[:, None]

    def differences():
        for top in range(0, out.shape[0], band):
            given = planes[top:top + band]
            yield (given @ weights if out.shape[-1] < planes.shape[-1] else given) - out[top:top + band]

    mean = sum(float(d.sum(dtype=np.float64)) for d in differences()) / out.size
    return math.sqrt(sum(float(np.square(d - mean, dtype=np.float64).sum()) for d in differences()) / out.size)


def _mask_lookup(folder: Path) -> Callable[[Path], Path]:
    """Image path -> its mask file in ``folder`` (same stem, or the stem without ``occluded_``)."""
    by_stem: dict[str, list[Path]] = {}
    for mask in list_images(folder):
        by_stem.setdefault(mask.stem, []).append(mask)

    def find(path: Path) -> Path:
        stems = [path.stem] + ([path.stem[len(OCCLUDED_PREFIX):]] if path.stem.startswith(OCCLUDED_PREFIX) else [])
        for stem in stems:
            found = by_stem.get(stem, [])
            if len(found) > 1:
                raise ImageError(f"{path}: several masks in {folder} share the stem {stem!r}: "
                                 f"{', '.join(p.name for p in found)}")
            if found:
                return found[0]
        raise ImageError(f"{path}: no mask in {folder} (looked for the stem(s) {', '.join(stems)}, any image "
                         "extension)")

    return find


def _completer(args: argparse.Namespace) -> Restore:
    """``complete``'s restore function."""
    _check_tile(args)
    if args.masks is not None and not args.masks.is_dir():
        raise ValueError(f"--masks {args.masks}: not a folder")
    if not (math.isfinite(args.mask_threshold) and args.mask_threshold >= 0):
        raise ValueError(f"--mask-threshold {args.mask_threshold}: expected a finite number >= 0 (distance "
                         "from black, in [0, 1])")
    find_mask = _mask_lookup(args.masks) if args.masks is not None else None
    model = SupervisedRestorer(args.checkpoint, device=args.device, task="completion", tile=args.tile,
                               ensemble=args.ensemble)

    def restore(path: Path, image: np.ndarray) -> tuple[np.ndarray, str]:
        if find_mask is not None:
            mask = load_image(find_mask(path), gray=True)[..., 0] > MASK_THRESHOLD
        else:
            mask = hole_mask(image, threshold=args.mask_threshold)
        out = model.restore(image, mask)
        return out, f"hole {100.0 * float(mask.mean()):.1f}% ({int(mask.sum())} px)"
    return restore


def _app(args: argparse.Namespace) -> int:
    """``rlenhance app``: check the options and the model, then serve the web app until Ctrl-C."""
    from rlenhance.app_support import serve, streamlit_missing  # noqa: PLC0415 - only this command serves

    missing = streamlit_missing()
    if missing:
        print(f"rlenhance app: {missing}", file=sys.stderr)
        return 2
    try:
        if not 1 <= args.port <= 65535:
            raise ValueError(f"--port {args.port}: expected a port number in 1..65535")
        if args.max_pixels < 1:
            raise ValueError(f"--max-pixels {args.max_pixels}: expected an integer >= 1")
        Enhancer(args.checkpoint, device=args.device)  # a bad model or device is refused here, not in the page
    except (CheckpointError, ValueError) as exc:
        return _fail("app", exc)
    return serve(port=args.port, host=args.host, checkpoint=args.checkpoint, device=args.device,
                 max_pixels=args.max_pixels, open_browser=not args.no_browser)


def _shard_values_attached(argv: Sequence[str]) -> list[str]:
    """``--shard -1/2`` as ``--shard=-1/2``: argparse takes a value starting with ``-`` for an option
    and would say "expected one argument"; attached, it reaches :func:`shard_of`, which says what is wrong."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--shard" and arg[:1] == "-" and arg[1:2].isdigit():
            out[-1] = f"--shard={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    flush_denormals()  # before any torch op starts torch's CPU threads (runtime.flush_denormals)
    args = _build_parser().parse_args(_shard_values_attached(sys.argv[1:] if argv is None else argv))
    if args.command == "app":
        return _app(args)
    if args.command == "export-csv":
        return _export_csv(args)
    configure_threads()  # every core but one: a busy neighbour process then costs little (runtime.configure_threads)
    builders = {"enhance": _enhancer, "denoise": _denoiser, "complete": _completer}
    return _process(args, builders[args.command])  # argparse only accepts known commands


if __name__ == "__main__":
    sys.exit(main())
