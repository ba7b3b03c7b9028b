"""Peer methods on CPU: Zero-DCE, Zero-DCE++ and the ReLLIE rollout with their official weights.

    python -m benchmarks.peers [--size 512] [--repeats 3] [--threads 2] [--image PATH] [--no-flush]
                               [--methods zero_dce,zero_dcepp,rellie]

Loads one real SICE low-light image (``../shared/data/sice_pairs/train/low``, first file by
default; channel order converted BGR -> RGB at the boundary), resizes it to ``size`` x ``size``
with ``cv2.INTER_AREA``, runs each model ``repeats`` times after one warm-up, and prints the best
wall time per image (ms), PSNR and SSIM against the image's ``high`` reference, and the mean
brightness of input, output and reference. Numbers only; nothing is asserted.

``--no-flush`` skips :func:`rlenhance.runtime.flush_denormals` and loads the weights without
zeroing their subnormal values, to measure what denormals cost on this CPU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image", type=Path, default=None)
    parser.add_argument("--no-flush", action="store_true")
    parser.add_argument("--methods", default="zero_dce,zero_dcepp,rellie")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    # flush_denormals must run before torch starts its CPU thread pool: import order matters here.
    from rlenhance import runtime
    if not args.no_flush:
        runtime.flush_denormals()

    import cv2
    import torch

    from rlenhance.metrics import psnr, ssim
    from rlenhance.models.peers import load_rellie, load_zero_dce, load_zero_dcepp, rellie_enhance

    torch.set_num_threads(args.threads)
    low_path = args.image or sorted((SHARED / "data" / "sice_pairs" / "train" / "low").iterdir())[0]
    high_path = low_path.parent.parent / "high" / low_path.name

    def read_rgb(path: Path) -> torch.Tensor:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot read image {path}")
        rgb = cv2.cvtColor(cv2.resize(bgr, (args.size, args.size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0

    x, ref = read_rgb(low_path), read_rgb(high_path)
    weights = SHARED / "weights"
    flush = not args.no_flush
    wanted = {m.strip() for m in args.methods.split(",") if m.strip()}
    known = {"zero_dce", "zero_dcepp", "rellie"}
    if not wanted or wanted - known:
        raise SystemExit(f"--methods: unknown {sorted(wanted - known)}; choose from {sorted(known)}")
    methods = {}
    if "zero_dce" in wanted:
        zero_dce = load_zero_dce(weights / "zero_dce_Epoch99.pth", flush_subnormals=flush)
        methods["Zero-DCE"] = lambda img: zero_dce(img)[0]
    if "zero_dcepp" in wanted:
        zero_dcepp = load_zero_dcepp(weights / "zero_dcepp_Epoch99.pth", flush_subnormals=flush)
        methods["Zero-DCE++"] = lambda img: zero_dcepp(img)[0]
    if "rellie" in wanted:
        rellie = load_rellie(weights / "rellie_model.npz", flush_subnormals=flush)
        methods["ReLLIE (6 steps)"] = lambda img: rellie_enhance(rellie, img, steps=6)

    print(f"image {low_path.name} ({args.size}x{args.size}), {torch.get_num_threads()} CPU thread(s), "
          f"torch {torch.__version__}, denormals {'kept' if args.no_flush else 'flushed'}")
    print(f"input mean {x.mean():.3f}, reference mean {ref.mean():.3f}, "
          f"input PSNR {psnr(ref, x).item():.2f} dB")
    print(f"{'method':18s} {'ms/image':>9s} {'PSNR dB':>8s} {'SSIM':>6s} {'mean':>6s}")
    with torch.no_grad():
        for name, fn in methods.items():
            out = fn(x)  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                out = fn(x)
                times.append(time.perf_counter() - start)
            print(f"{name:18s} {min(times) * 1000:9.1f} {psnr(ref, out).item():8.2f} "
                  f"{ssim(ref, out).item():6.3f} {out.mean().item():6.3f}")


if __name__ == "__main__":
    main()
