"""Enhance dark photos with the ONNX graph that ``rlenhance export`` writes, using onnxruntime and numpy
alone for the enhancement (Pillow reads and writes the files); neither torch nor rlenhance is needed.

    rlenhance export -o lowlight.onnx
    python examples/onnx_enhance.py lowlight.onnx dark.jpg bright.png

The PNG holds the levels ``rlenhance enhance dark.jpg -o out/`` writes, within 1 (docs/deploy.md).
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps


def enhance(session: ort.InferenceSession, rgb: np.ndarray) -> np.ndarray:
    """An RGB photo, uint8 (H, W, 3), through the graph: the enhanced uint8 (H, W, 3) levels."""
    image = (rgb.astype(np.float32) / np.float32(255)).transpose(2, 0, 1)[None]  # (1, 3, H, W) in [0, 1]
    (enhanced,) = session.run(["enhanced"], {"image": image})
    return np.rint(np.clip(enhanced[0].transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)


def main(model: str, source: str, target: str) -> None:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    with Image.open(source) as file:
        rgb = np.asarray(ImageOps.exif_transpose(file).convert("RGB"))  # upright, as the camera meant it
    Image.fromarray(enhance(session, rgb)).save(target)
    print(f"{source} -> {target}  {rgb.shape[1]}x{rgb.shape[0]}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python examples/onnx_enhance.py MODEL.onnx INPUT_IMAGE OUTPUT.png")
    main(*sys.argv[1:])
