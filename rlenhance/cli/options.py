"""The ``rlenhance`` command line's options: one parser, built from :mod:`rlenhance.registry` and the
libraries' defaults without importing torch, so that ``--help`` answers at once."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlenhance import __version__, registry
from rlenhance.app_serve import APP_MAX_PIXELS, DEFAULT_PORT
from rlenhance.cli.parser import HintingParser
from rlenhance.io import DEFAULT_MAX_PIXELS, HOLE_THRESHOLD
from rlenhance.submission import DEFAULT_STRIDE

#: The inputs of an image command.
IMAGES_HELP = "input image files (PNG/JPEG/BMP/TIFF), or folders of them (the images directly inside)"


def add_common(parser: argparse.ArgumentParser, checkpoint_help: str, images_help: str = IMAGES_HELP) -> None:
    """The options of every image command: inputs, output folder, checkpoint, device, outputs kept or
    replaced, the size guard, ``--jobs`` and ``--shard``."""
    parser.add_argument("images", nargs="+", type=Path, help=images_help)
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder (created if missing)")
    parser.add_argument("--checkpoint", type=Path, default=None, help=checkpoint_help)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist (input files are never replaced)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="skip inputs whose output already exists and decodes (continue an interrupted run; an "
                             "empty or truncated output is redone)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="largest width x height accepted per input image or video frame (decompression-bomb "
                             "guard)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes restoring images at once (this one and N-1 spawned workers, each with "
                             "its share of the cores), an image at a time each")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="process every N-th input from the I-th (0-based), e.g. one of N machines given the "
                             "same file list; default: torchrun's RANK/WORLD_SIZE when set, else all")


def add_tile(parser: argparse.ArgumentParser, models: str = "supervised models") -> None:
    """``--tile``, for the ``models`` named."""
    parser.add_argument("--tile", type=int, default=512,
                        help=f"{models}: tile side in pixels (bounds memory on large images)")


def add_ensemble(parser: argparse.ArgumentParser, models: str) -> None:
    """``--ensemble`` (:data:`rlenhance.registry.ENSEMBLES`), for the ``models`` named."""
    parser.add_argument("--ensemble", type=int, choices=tuple(registry.ENSEMBLES), default=1,
                        help="geometric self-ensemble: the mean of the network over this many flips and quarter "
                             f"turns of the image, at that many times the time ({models}); 1: none")


def add_lowlight(parser: argparse.ArgumentParser) -> None:
    """The options of the low-light methods (``enhance`` and ``export``): ``--model``, the RL policy's steps,
    setting, cap, clean stage and working side, and ``--denoiser``."""
    parser.add_argument("--model", choices=registry.names("lowlight"), default=None,
                        help="omitted: the method --checkpoint records (a network of your own, trained by "
                             "experiments.supervised_train --model package.module:Class, runs as itself), else rl. "
                             "rl: the RL curve policy; mrpnet: the supervised MRPNet + Generator baseline, for "
                             "comparison only: trained briefly on SICE pairs, it pulls other photos towards SICE's "
                             "colours (a washed-out, olive cast) and its stride-2 transposed convolution leaves a "
                             "faint 2-pixel grid")
    parser.add_argument("--denoiser", default=None,
                        help="denoiser applied after enhancement (ReLLIE's denoiser module): mrpnet, the shipped "
                             "blind colour MRPNet (slower; higher PSNR / SSIM on noisy dark photos), ffdnet, the "
                             "colour FFDNet in rlenhance/weights/ when installed, else the shipped blind gray one on "
                             "the opponent colour planes (a file of that name in the working directory wins; "
                             "./mrpnet is always a path), or a "
                             "checkpoint of experiments.supervised_train --task denoise: a plain one (--model "
                             "mrpnet), or with --model rl a noise-map one (--model ffdnet), driven by a per-pixel "
                             "noise-level map: --noise-sigma times how much the policy's curves brightened each "
                             "pixel")
    parser.add_argument("--noise-sigma", type=float, default=None,
                        help="rl with a noise-map --denoiser: the input's noise level on the 0-255 scale, within "
                             "the denoiser's trained range [0, sigma] (default: 4 for a denoiser trained on Gaussian "
                             "noise, such as the shipped FFDNet; sigma / 2 for one trained on amplified noise)")
    parser.add_argument("--steps", type=int, default=None, help="rl: curve steps (default: the checkpoint's)")
    accepted = ("; a model takes only the settings it was trained over, in their ranges (Enhancer.setting_ranges; "
                "a value outside them is refused, naming them)")
    parser.add_argument("--exposure", type=float, default=None,
                        help="rl: target mean brightness" + accepted)
    for name in ("exposure", "color", "spatial", "smooth"):
        parser.add_argument(f"--w-{name}", type=float, default=None,
                             help=f"rl: reward weight of the {name} term" + accepted)
    parser.add_argument("--max-overshoot", type=float, default=None,
                        help="rl: no curve step lifts an image's mean more than this above the exposure target "
                             "(the step is scaled down; with the shipped model, the cap at the default "
                             "--w-exposure, and a heavier exposure weight w tightens it by sqrt(default / w)); "
                             "inf: no cap (default: the checkpoint's)")
    parser.add_argument("--denoise", type=float, default=None,
                        help="rl: strength (0-2) of the clean stage after the curves: colour and light luma noise "
                             "smoothed where the curves brightened, highlights kept from clipping; 0: off, the "
                             "curves alone (default: 1; 0 with --denoiser, which replaces it)")
    parser.add_argument("--max-side", type=int, default=None,
                        help="rl: side of the policy's square working image (default: the checkpoint's, else 512)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (imports no torch)."""
    parser = HintingParser(prog="rlenhance", description="Reinforcement-learning image enhancement.")
    parser.add_argument("--version", action="version", version=f"rlenhance {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    formatter = argparse.ArgumentDefaultsHelpFormatter

    enhance = commands.add_parser("enhance", help="brighten low-light images (RL policy or supervised model)",
                                  formatter_class=formatter)
    add_common(enhance, "--model rl: policy checkpoint from experiments.lol_train; --model mrpnet: a lowlight "
                        "checkpoint from experiments.supervised_train (omitted: the model's shipped one in "
                        "rlenhance/weights/)",
               IMAGES_HELP + "; with --model rl also videos (MP4, MOV, MKV, WebM, AVI, ...; pip install "
               "'rlenhance[video]'): every frame enhanced, smoothed over time, audio copied, written to OUTDIR/<its "
               "name>")
    add_lowlight(enhance)
    add_tile(enhance)

    denoise = commands.add_parser("denoise", help="remove noise (supervised MRPNet or FFDNet, FFDNet's noise-level "
                                                  "map by RL, A3C / SAC filter-bank policies, RSE-RL)",
                                  formatter_class=formatter)
    add_common(denoise, "a checkpoint of --model (mrpnet: experiments.supervised_train --task denoise; ffdnet: "
                         "experiments.supervised_train --model ffdnet --task denoise; a3c / sac: "
                         "experiments.denoise_train; noise-map: its --preset noise-map; rse: experiments.rse_train); "
                         "omitted: the model's default in rlenhance/weights/, gray (e.g. mrpnet_denoise.pt) for gray "
                         "images, colour (<model>_denoise_color.pt) for colour images, when installed")
    denoise.add_argument("--model", choices=registry.names("denoise"), default=None,
                         help="ffdnet: a supervised noise-map denoiser (FFDNet; the shipped one is blind, sigma "
                              "0-75); noise-map: an A3C policy setting the blind FFDNet's noise-level map per 4 x 4 "
                              "block, for noise whose level varies across the image; mrpnet: a supervised "
                              "denoiser; a3c / sac: a PixelRL filter-bank policy (colour ones ship); rse: RSE-RL "
                              "(none ships: give --checkpoint). Omitted: the "
                              f"--checkpoint's own kind, or without one {registry.DEFAULTS['denoise']}")
    denoise.add_argument("--sigma", type=float, default=None,
                         help="ffdnet: the images' noise level on the 0-255 scale, within the levels the checkpoint "
                              "was trained over (its map is sigma / 255); omitted: estimated in each image")
    add_ensemble(denoise, "mrpnet, ffdnet; a3c / sac / noise-map / rse: their predictor")
    denoise.add_argument("--per-channel", action="store_true",
                         help="gray denoiser on colour images: denoise R, G, B separately and keep colour (without "
                              "--checkpoint: the gray default for every image); without it a gray model converts a "
                              "colour image to gray (mrpnet), denoises its opponent colour planes (ffdnet; better "
                              "than per channel) or refuses it (a3c, sac, noise-map, rse)")
    add_tile(denoise, "every model")

    complete = commands.add_parser("complete", help="fill the holes of occluded images (completion U-Net, PixelRNNs, "
                                                    "RL fill-action policy)", formatter_class=formatter)
    add_common(complete, "a checkpoint of --model (unet, gated-pixelrnn, pixelrnn: experiments.supervised_train "
                         "--task completion; a3c: experiments.completion_train); omitted: the model's shipped one in "
                         "rlenhance/weights/")
    complete.add_argument("--model", choices=registry.names("completion"), default=None,
                          help="unet: the completion U-Net; gated-pixelrnn, pixelrnn: supervised PixelRNNs; a3c: the "
                               "RL fill-action policy (keep / diffuse / copy / blur / median or the U-Net's pixel; "
                               "none ships: give --checkpoint). "
                               "Omitted: the --checkpoint's own kind, or without one "
                               f"{registry.DEFAULTS['completion']}")
    source = complete.add_mutually_exclusive_group()
    source.add_argument("--masks", type=Path, default=None,
                        help="folder of mask files (same stem as the image, or without its 'occluded_' prefix; "
                             "white = missing)")
    source.add_argument("--mask-threshold", type=float, default=HOLE_THRESHOLD,
                        help="without --masks: the hole is the largest near-black rectangle, pixels within this "
                             "distance of black (max over channels, in [0, 1]); a warning says when it is unsure")
    add_ensemble(complete, "the completion network; a3c: its predictor")
    add_tile(complete, "every learned model")

    graph = commands.add_parser("export", help="write the low-light RL enhancer, setting included, as one ONNX graph "
                                               "(pip install 'rlenhance[export]')", formatter_class=formatter)
    graph.add_argument("-o", "--out", type=Path, required=True, help="the .onnx file to write")
    graph.add_argument("--checkpoint", type=Path, default=None,
                       help="policy checkpoint from experiments.lol_train (omitted: the shipped model)")
    graph.add_argument("--overwrite", action="store_true", help="replace the file if it exists")
    add_lowlight(graph)

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
