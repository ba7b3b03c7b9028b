"""The ``rlenhance`` command line (also ``python -m rlenhance``).

    rlenhance enhance IMAGES... -o OUTDIR [--checkpoint PATH] [--steps N] [--exposure E]
                     [--w-exposure W] [--w-color W] [--w-spatial W] [--w-smooth W] [--device D]

Images are read and written in RGB order (files on disk follow their format's convention);
outputs are PNG files named after the inputs, written atomically. One line per image; a bad file
is reported and skipped, and the exit code is 1 if any image failed (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from rlenhance import __version__
from rlenhance.errors import CheckpointError, ImageError


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlenhance", description="Reinforcement-learning image enhancement.")
    parser.add_argument("--version", action="version", version=f"rlenhance {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    enhance = commands.add_parser("enhance", help="brighten low-light images with a trained RL policy",
                                  formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    enhance.add_argument("images", nargs="+", type=Path, help="input image files (PNG/JPEG/BMP/TIFF)")
    enhance.add_argument("-o", "--out", type=Path, required=True, help="output folder (created if missing)")
    enhance.add_argument("--checkpoint", type=Path, default=None,
                         help="policy checkpoint from experiments.lol_train (default: the shipped model)")
    enhance.add_argument("--steps", type=int, default=None, help="curve steps (default: the checkpoint's)")
    enhance.add_argument("--exposure", type=float, default=None,
                         help="target mean brightness in (0, 1) (conditioned models)")
    for name in ("exposure", "color", "spatial", "smooth"):
        enhance.add_argument(f"--w-{name}", type=float, default=None,
                             help=f"reward weight of the {name} term (conditioned models)")
    enhance.add_argument("--max-side", type=int, default=512, help="working resolution of the policy")
    enhance.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    return parser


def _enhance(args: argparse.Namespace) -> int:
    from rlenhance.enhance import Enhancer
    from rlenhance.io import load_image, save_image

    try:
        enhancer = Enhancer(args.checkpoint, device=args.device, steps=args.steps, max_side=args.max_side)
        setting = {"exposure": args.exposure, "w_exposure": args.w_exposure, "w_color": args.w_color,
                   "w_spatial": args.w_spatial, "w_smooth": args.w_smooth}
        enhancer.cond(**setting)  # validate the setting once, before any image
    except (CheckpointError, ValueError) as exc:
        print(f"rlenhance enhance: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for path in args.images:
        try:
            image = load_image(path)
            result = enhancer.enhance_array(image, **setting)
            target = args.out / f"{path.stem}.png"
            save_image(target, result.image)
        except ImageError as exc:
            failed += 1
            print(f"FAILED {path}: {exc}", file=sys.stderr)
            continue
        height, width = image.shape[:2]
        print(f"{path} -> {target}  {width}x{height}  {result.seconds * 1000:.0f} ms  "
              f"mean {result.mean_before:.3f} -> {result.mean_after:.3f}", flush=True)
    if failed:
        print(f"{failed} of {len(args.images)} image(s) failed", file=sys.stderr)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "enhance":
        return _enhance(args)
    raise AssertionError(args.command)  # argparse only accepts known commands


if __name__ == "__main__":
    sys.exit(main())
