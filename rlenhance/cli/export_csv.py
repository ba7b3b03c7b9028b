"""``rlenhance export-csv``: the MRPNet seed's competition CSV of predicted images
(:func:`rlenhance.submission.write_submission`)."""

from __future__ import annotations

import argparse
import sys

from rlenhance.cli.batch import expand_inputs, fail
from rlenhance.errors import ImageError
from rlenhance.submission import write_submission


def run(args: argparse.Namespace) -> int:
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
        return fail("export-csv", exc)
    print(f"{args.out}: {rows} row(s) written (gray levels, pixel stride {args.stride})")
    return 0
