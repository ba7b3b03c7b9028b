"""The ONNX graph of ``rlenhance export`` against ``rlenhance enhance``: agreement on real photos of any
size, and CPU time.

    python -m benchmarks.export [--checkpoint PATH] [--photos ../shared/data/sice_pairs/train/low] [--count 4]
                                [--sizes 600x400 1920x1080 4000x3000 6000x4000] [--threads 1] [--repeats 20]

Exports the model (``--checkpoint``, default the shipped one) to a temporary file, then prints:

1. per size of ``--sizes``: ``--count`` dark photos of ``--photos`` (:func:`photos`, :func:`resized`) as uint8
   samples through ``Enhancer.enhance_array(dtype=np.uint8)`` and through onnxruntime
   (``examples/onnx_enhance.py``'s conversion): the lowest and mean share of 8-bit levels within 1 of each
   other, and the largest difference;
2. at 600 x 400, ``--threads`` threads each: the Enhancer and onnxruntime's ``session.run`` in alternation
   over ``--repeats`` rounds, best and median wall ms and the median CPU ms of a call.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.inference import ms_alternating

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = ROOT.parent / "shared" / "data" / "sice_pairs" / "train" / "low"


def photos(folder: Path, count: int) -> list[np.ndarray]:
    """``count`` uint8 RGB dark photos: evenly spaced files of ``folder``, else darkened builtin photos."""
    from rlenhance.io import list_images, load_image

    if folder.is_dir():
        files = list_images(folder)
        return [load_image(files[i * len(files) // count], samples=True) for i in range(count)]
    from rlenhance.data.builtin import BUILTIN_IMAGES, DEFAULT_COLOR_IMAGES

    names = DEFAULT_COLOR_IMAGES[:count]
    return [np.rint(BUILTIN_IMAGES[name]() * 0.15).astype(np.uint8) for name in names]


def resized(photo: np.ndarray, width: int, height: int) -> np.ndarray:
    """``photo`` at ``width`` x ``height``: area filter down, cubic up."""
    shrink = width * height < photo.shape[0] * photo.shape[1]
    return cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def graph_levels(session, samples: np.ndarray) -> np.ndarray:
    """onnxruntime's result for uint8 samples, as uint8 levels (the example script's conversion)."""
    image = (samples.astype(np.float32) / np.float32(255)).transpose(2, 0, 1)[None]
    out = session.run(["enhanced"], {"image": image})[0][0].transpose(1, 2, 0)
    return np.rint(np.clip(out, 0, 1) * 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="low-light policy (default: the shipped one)")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of real dark photos")
    parser.add_argument("--count", type=int, default=4, help="photos per size")
    parser.add_argument("--sizes", nargs="+", default=["600x400", "1920x1080", "4000x3000", "6000x4000"],
                        help="WIDTHxHEIGHT of the agreement check")
    parser.add_argument("--threads", type=int, default=1, help="threads of each, for the timing")
    parser.add_argument("--repeats", type=int, default=20, help="timing rounds")
    args = parser.parse_args(argv)

    import onnxruntime as ort

    from rlenhance.enhance import Enhancer
    from rlenhance.export import export_lowlight
    from rlenhance.runtime import configure_threads, flush_denormals

    flush_denormals()
    configure_threads(args.threads)
    enhancer = Enhancer(args.checkpoint, device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path, _ = export_lowlight(enhancer, Path(folder) / "lowlight.onnx")
        print(f"exported {enhancer.path.name} in {time.perf_counter() - start:.1f} s: {path.stat().st_size // 1024} KB")
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    shots = photos(args.photos, args.count)
    source = args.photos if args.photos.is_dir() else "builtin photos x 0.15"
    print(f"agreement, {len(shots)} photos of {source}: share of 8-bit levels within 1 (lowest, mean), largest diff")
    for size in args.sizes:
        width, height = (int(v) for v in size.lower().split("x"))
        shares, largest = [], 0
        for photo in shots:
            samples = resized(photo, width, height)
            expected = enhancer.enhance_array(samples, dtype=np.uint8).image
            diff = np.abs(graph_levels(session, samples).astype(np.int16) - expected)
            shares.append(float(np.mean(diff <= 1)))
            largest = max(largest, int(diff.max()))
        print(f"  {width}x{height}: {min(shares):.4%} lowest, {np.mean(shares):.4%} mean, largest difference "
              f"{largest} levels")

    samples = resized(shots[0], 600, 400)
    cpu: dict[str, list[float]] = {"rlenhance enhance": [], "onnxruntime": []}

    def timed(name, fn):
        def call():
            start = time.process_time()
            fn()
            cpu[name].append((time.process_time() - start) * 1000)
        return call

    ms = ms_alternating({"rlenhance enhance": timed("rlenhance enhance",
                                                    lambda: enhancer.enhance_array(samples, dtype=np.uint8)),
                         "onnxruntime": timed("onnxruntime", lambda: graph_levels(session, samples))}, args.repeats)
    print(f"600x400, {args.threads} thread(s), {args.repeats} rounds in alternation "
          f"(load average {os.getloadavg()[0]:.2f}):")
    for name, times in ms.items():
        print(f"  {name}: best {times.min():.1f} ms, median {np.median(times):.1f} ms wall; median "
              f"{np.median(cpu[name][2:]):.1f} ms CPU")


if __name__ == "__main__":
    main()
