"""``rlenhance export``: the low-light RL enhancer with its setting as one ONNX graph
(:func:`rlenhance.export.export_lowlight`; onnx and onnxruntime: ``pip install 'rlenhance[export]'``)."""

from __future__ import annotations

import argparse

from rlenhance import registry
from rlenhance.cli.batch import fail
from rlenhance.cli.enhance import rl_enhancer
from rlenhance.export import INPUT, OPSET, OUTPUT, ExportError, denoiser_refused, export_lowlight


def run(args: argparse.Namespace) -> int:
    """``rlenhance export``: write the graph (exit code 2 for what it cannot express or bad arguments)."""
    try:
        name = args.model or registry.method_for("lowlight", None, args.checkpoint)
        if name != "rl":
            raise ExportError(f"{name}: a low-light model the export cannot write; it writes the RL curve policy "
                              "(--model rl)")
        if args.denoiser is not None:
            raise denoiser_refused(args.denoiser)
        enhancer, setting = rl_enhancer(args, "cpu")
        path, share = export_lowlight(enhancer, args.out, overwrite=args.overwrite, **setting)
    except (ValueError, OSError, ModuleNotFoundError) as exc:  # ExportError and CheckpointError are ValueErrors
        return fail("export", exc)
    print(f"{path}: {path.stat().st_size / 1024:.0f} KB, ONNX opset {OPSET}: input {INPUT!r} float32 (1, 3, H, W) RGB "
          f"in [0, 1], output {OUTPUT!r}; onnxruntime matches the enhance command on its check images "
          f"({share:.2%} of 8-bit levels within 1)")
    return 0
