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

Every ``--model NAME`` is a method of :mod:`rlenhance.registry`; without ``--checkpoint`` it runs its shipped
weights (where none ship, the error says why and how to train one). ``enhance`` runs the RL policy
(:class:`rlenhance.Enhancer`) or a supervised restorer, optionally followed by a ``--denoiser``; ``denoise``
runs a denoiser of :func:`rlenhance.denoisers.load_denoiser`; ``complete`` a completion model, with each image's
mask from ``--masks DIR`` (white = missing) or the estimated hole (:func:`rlenhance.data.occluded.find_hole`);
``export`` writes ``enhance --model rl`` as one ONNX graph (:mod:`rlenhance.export`); ``export-csv`` the
competition CSV (:mod:`rlenhance.submission`).

IMAGES are files or folders (the images directly inside, sorted by name), read and written in RGB order;
outputs are PNG files ``OUTDIR/<input stem>.png``, written atomically (videos: frame by frame with temporal
smoothing, :func:`rlenhance.io.video.transcode`). Every output path is planned first and the run is refused
(exit code 2, nothing written) when an output would replace an input, two inputs would write the same output,
or an output exists without ``--overwrite``. A bad image is reported and skipped; the exit code is 1 if any
image failed, 0 only when every output was written (or kept with ``--skip-existing``).
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
