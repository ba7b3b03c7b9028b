"""The ``rlenhance`` command line (also ``python -m rlenhance``).

    rlenhance enhance IMAGES... -o OUTDIR [--model rl|mrpnet] [--checkpoint PATH] [--denoiser mrpnet|ffdnet|PATH]
                     [--noise-sigma S] [--steps N] [--exposure E] [--w-exposure W] [--w-color W] [--w-spatial W]
                     [--w-smooth W] [--max-overshoot C] [--denoise S] [--max-side N] [--device D]
    rlenhance denoise IMAGES... -o OUTDIR [--model ffdnet|mrpnet|a3c|sac|rse] [--checkpoint PATH] [--sigma S]
                     [--ensemble 1|2|4|8] [--per-channel] [--tile N] [--device D]
    rlenhance complete IMAGES... -o OUTDIR [--model unet|gated-pixelrnn|pixelrnn|a3c] [--checkpoint PATH]
                     [--masks DIR | --mask-threshold T]
                     [--ensemble 1|2|4|8] [--tile N] [--device D]
    rlenhance app [--port N] [--host H] [--checkpoint PATH] [--device D] [--no-browser]
    rlenhance export -o model.onnx [--checkpoint PATH] [--steps N] [--exposure E] [--w-... W] [--max-overshoot C]
                     [--denoise S] [--max-side N] [--overwrite]
    rlenhance export-csv IMAGES... -o submission.csv [--stride 8] [--id-prefix OLD NEW] [--overwrite]

Every ``--model NAME`` is a method of :mod:`rlenhance.registry`; without ``--checkpoint`` it runs
its shipped weights (where none ship, the error says why and how to train one). ``enhance --model
rl`` (default) runs the trained RL policy (:class:`rlenhance.Enhancer`), ``--model mrpnet`` a
supervised low-light checkpoint of ``experiments.supervised_train`` (MRPNet + Generator, via
:class:`rlenhance.restore.SupervisedRestorer`); ``--denoiser`` runs a
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
``experiments.denoise_train`` (colour ones ship), ``rse`` an RSE-RL model of ``experiments.rse_train``
(none ships); without
``--checkpoint``, the model's default in ``rlenhance/weights/``: the gray one for a gray image (three
equal channels), the colour one for a colour image, the gray one for every image with
``--per-channel`` (R, G and B denoised separately); a gray model given a colour image without it
denoises the luma (``mrpnet``), the three opponent colour planes, each at its noise level
(``ffdnet``, colour out), or refuses the image (the RL models). ``complete`` runs a completion
model: ``--model unet`` (the default without ``--checkpoint``; with one, the checkpoint's own kind),
``gated-pixelrnn`` or ``pixelrnn`` (supervised, ``experiments.supervised_train``), or ``a3c``, the RL
fill-action policy of ``experiments.completion_train`` (:class:`rlenhance.completion.PolicyCompleter`;
none ships), and reads each image's mask from
``--masks DIR`` (same stem, or the stem without the ``occluded_`` prefix, any image extension,
white = missing) or estimates the hole (the largest black rectangle,
:func:`rlenhance.data.occluded.find_hole`; a warning when it is unsure). ``export`` writes ``enhance --model rl``
with its options as one ONNX graph (:mod:`rlenhance.export`). ``export-csv`` writes the MRPNet seed's
competition CSV of predicted images (gray, flattened, every 8th pixel, one row per image ID;
:mod:`rlenhance.submission`).

IMAGES are files or folders (a folder stands for the images directly inside it, sorted by name,
e.g. a test set: ``rlenhance enhance --model mrpnet --checkpoint best.pt test/ -o pred/``).
Images are read and written in RGB order (files on disk follow their format's convention);
outputs are PNG files named after the inputs (``OUTDIR/<input stem>.png``), written atomically. ``enhance
--model rl`` also takes videos (:func:`rlenhance.io.video.is_video`), enhanced frame by frame with temporal
smoothing into ``OUTDIR/<input name>`` (:func:`rlenhance.io.video.transcode`).
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

import importlib
import sys
from collections.abc import Sequence

from rlenhance.cli.options import build_parser

__all__ = ["build_parser", "main"]

#: Each command's module: ``build(args)`` (the restore function of an image command, run over the
#: images by :func:`rlenhance.cli.batch.process`) or ``run(args)`` (the exit code). Imported once the
#: arguments are parsed: ``--help`` imports no torch.
COMMANDS = {"enhance": "rlenhance.cli.enhance", "denoise": "rlenhance.cli.denoise",
            "complete": "rlenhance.cli.complete", "export": "rlenhance.cli.export",
            "export-csv": "rlenhance.cli.export_csv", "app": "rlenhance.cli.serve"}


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
    """Run the ``rlenhance`` command line ``argv`` (None: ``sys.argv[1:]``); the exit code."""
    args = build_parser().parse_args(_shard_values_attached(sys.argv[1:] if argv is None else argv))
    from rlenhance.runtime import configure_threads, flush_denormals  # noqa: PLC0415 - torch, once parsed

    flush_denormals()  # before any torch op starts torch's CPU threads (runtime.flush_denormals)
    command = importlib.import_module(COMMANDS[args.command])  # argparse only accepts known commands
    if not hasattr(command, "build"):
        return command.run(args)
    configure_threads()  # every core but one: a busy neighbour process then costs little (runtime.configure_threads)
    from rlenhance.cli.batch import process  # noqa: PLC0415 - torch, once parsed

    return process(args, command.build)
