"""``rlenhance app``: check the options and the model, then serve the web app (:mod:`rlenhance.app_serve`)."""

from __future__ import annotations

import argparse
import sys

from rlenhance import registry
from rlenhance.app_serve import serve, streamlit_missing
from rlenhance.cli.batch import fail
from rlenhance.errors import CheckpointError


def run(args: argparse.Namespace) -> int:
    """``rlenhance app``: check the options and the model, then serve the web app until Ctrl-C."""
    missing = streamlit_missing()
    if missing:
        print(f"rlenhance app: {missing}", file=sys.stderr)
        return 2
    try:
        if not 1 <= args.port <= 65535:
            raise ValueError(f"--port {args.port}: expected a port number in 1..65535")
        if args.max_pixels < 1:
            raise ValueError(f"--max-pixels {args.max_pixels}: expected an integer >= 1")
        # a bad model or device is refused here, not in the page
        registry.load("lowlight", "rl", args.checkpoint, device=args.device, option="--checkpoint PATH")
    except (CheckpointError, ValueError) as exc:
        return fail("app", exc)
    return serve(port=args.port, host=args.host, checkpoint=args.checkpoint, device=args.device,
                 max_pixels=args.max_pixels, open_browser=not args.no_browser)
