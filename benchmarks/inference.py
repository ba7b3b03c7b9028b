"""Inference cost of the low-light Enhancer: time per image vs Zero-DCE, and peak memory on a large photo.

    python -m benchmarks.inference [--checkpoint PATH] [--zero-dce ../shared/weights/zero_dce_Epoch99.pth]
                                   [--megapixels 24] [--threads 2]

Times the Enhancer and (when given) Zero-DCE / Zero-DCE++ on a 600x400 image in the same run,
then enhances a synthetic ``--megapixels`` image in a fresh subprocess and reports its peak
resident memory (``ru_maxrss``: the whole process, Python and torch included).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import numpy as np
import torch


def best_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def large_image_peak(checkpoint: str | None, megapixels: float) -> None:
    """Run in a subprocess: enhance one large image, print its size, time and peak RSS."""
    from rlenhance import Enhancer

    width = int(round((megapixels * 1e6 * 1.5) ** 0.5))
    height = int(round(megapixels * 1e6 / width))
    rng = np.random.default_rng(0)
    image = (rng.random((height, width, 3), dtype=np.float32) * 0.15).astype(np.float32)
    enhancer = Enhancer(checkpoint, device="cpu")
    result = enhancer.enhance_array(image)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    image_mb = image.nbytes / 2**20
    print(f"{width}x{height} ({width * height / 1e6:.1f} MP): {result.seconds:.1f} s, peak RSS {peak_mb:.0f} MB "
          f"(input and output arrays alone: {2 * image_mb:.0f} MB), mean {result.mean_before:.3f} -> "
          f"{result.mean_after:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="policy checkpoint (default: the shipped model)")
    parser.add_argument("--zero-dce", default=None, help="official Zero-DCE weights, timed in the same run")
    parser.add_argument("--zero-dcepp", default=None, help="official Zero-DCE++ weights, timed in the same run")
    parser.add_argument("--megapixels", type=float, default=24.0, help="size of the large-photo memory test")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (best is reported)")
    parser.add_argument("--large-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.large_only:
        large_image_peak(args.checkpoint, args.megapixels)
        return
    from rlenhance import Enhancer
    from rlenhance.models.peers import load_zero_dce, load_zero_dcepp

    rng = np.random.default_rng(0)
    image = (rng.random((400, 600, 3), dtype=np.float32) * 0.15).astype(np.float32)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    enhancer = Enhancer(args.checkpoint, device="cpu")
    print(f"600x400 image, {args.threads} thread(s), best of {args.repeats}:")
    print(f"  rlenhance ({enhancer.path.name}): {best_ms(lambda: enhancer.enhance(image), args.repeats):8.1f} ms")
    peers = (("Zero-DCE", args.zero_dce, load_zero_dce), ("Zero-DCE++", args.zero_dcepp, load_zero_dcepp))
    for name, path, loader in peers:
        if path:
            net = loader(path).eval()
            with torch.no_grad():
                print(f"  {name:28s}: {best_ms(lambda net=net: net(x), args.repeats):8.1f} ms")
    cmd = [sys.executable, "-m", "benchmarks.inference", "--large-only", "--megapixels", str(args.megapixels),
           "--threads", str(args.threads)] + (["--checkpoint", args.checkpoint] if args.checkpoint else [])
    print("large photo (fresh process):")
    print("  " + subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
