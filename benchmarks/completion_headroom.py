"""How much a per-pixel completion policy could add over the U-Net: the oracle of an action set, per block.

    python -m benchmarks.completion_headroom [--data ../shared/data/bedroom/train] [--split val] [--limit 0]
        [--unet rlenhance/weights/unet_completion.pt] [--pixelrnn rlenhance/weights/gated_pixelrnn_completion.pt]
        [--blocks 4 8 16] [--shift 0.02]

A completion policy that can take the U-Net's pixel (``completion_train --predictor``) can only
improve on it through its other actions. This prints, for the hole of each image of ``--data``
(``--split val``: the trainers' held-out split, split seed 0), the hole PSNR of the U-Net alone, of
every candidate, and of an oracle that picks, in every ``b x b`` block of the hole (and once per
image), the candidate closest to the original: an upper bound for any policy acting per block of
that size. The candidates, built on the U-Net's output ``u`` (hole composited into the input):

- ``transition``: the actions of :class:`rlenhance.transitions.CompletionTransition` one step after
  taking the U-Net's pixel everywhere (``keep`` is ``u``; the 4-neighbour mean, the 4 neighbour
  copies, Gaussian 5x5 and median 5x5 of ``u``): what the shipped action set can do;
- ``filters``: ``u``; ``u`` blurred (the transition's Gaussian); ``u`` sharpened (``2u - blur(u)``);
- ``shifts``: ``u``; ``u`` plus / minus ``--shift`` (all channels); ``u`` with each channel's mean
  on the hole's inner ring moved to the known pixels' on the outer ring (4 px each);
- ``models``: ``u``; the gated PixelRNN; Telea's and Navier-Stokes inpainting (OpenCV, radius 3,
  on the 8-bit image, channels independent); the diffusion fill; the mean of ``u`` and the PixelRNN;
- ``refine``: ``u``; the U-Net run again with ``u`` as its pre-fill;
- ``all``: every candidate above.

``single`` is the best one candidate for all images. ``rule`` is no oracle: Telea's fill blended half-way
into ``u`` on the hole's pixels within ``RULE_RING`` px of its border, everywhere (the best of such
fixed rules on the trainers' tuning split: Telea, Navier-Stokes, the diffusion fill or the PixelRNN, full
or half-way, on rings of 1-8 px): what a policy acting on the position in the hole alone could add.
Hole PSNR per image (3 channels), averaged over images, outputs clipped to [0, 1].
Numbers are printed, never asserted. Use validation images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from rlenhance.data import occluded_test_set, open_dataset
from rlenhance.ops import gaussian_blur2d
from rlenhance.ops.fill import diffusion_fill
from rlenhance.restore import SupervisedRestorer
from rlenhance.transitions import COMPLETION_ACTIONS, CompletionTransition

WEIGHTS = Path(__file__).resolve().parents[1] / "rlenhance" / "weights"
#: Width in pixels of the rings the ``border_shift`` candidate compares.
RING = 4
#: The action sets, by name: the candidates each offers (``unet`` first).
SETS: dict[str, tuple[str, ...]] = {
    "transition": ("unet", *COMPLETION_ACTIONS[1:]),
    "filters": ("unet", "gaussian", "sharpen"),
    "shifts": ("unet", "brighter", "darker", "border_shift"),
    "models": ("unet", "pixelrnn", "telea", "ns", "diffusion", "unet_pixelrnn_mean"),
    "refine": ("unet", "second_pass"),
}
SETS["all"] = tuple(dict.fromkeys(name for names in SETS.values() for name in names))
#: Width in pixels of the hole's outer ring that the ``rule`` blends half-way to Telea's fill.
RULE_RING = 2


def _ring(mask: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The known pixels within ``width`` of the hole and the hole pixels within ``width`` of its border,
    each float (B, 1, H, W) in {0, 1}."""
    k = 2 * width + 1
    grown = F.max_pool2d(mask, k, stride=1, padding=width)
    shrunk = 1.0 - F.max_pool2d(1.0 - mask, k, stride=1, padding=width)
    return grown - mask, mask - shrunk


def _telea_ns(occluded: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's Telea and Navier-Stokes inpainting of one RGB image (1, 3, H, W), radius 3."""
    rgb = np.clip(occluded[0].permute(1, 2, 0).numpy() * 255.0 + 0.5, 0, 255).astype(np.uint8)
    hole = (mask[0, 0].numpy() > 0.5).astype(np.uint8)
    outs = [cv2.inpaint(rgb, hole, 3, flag) for flag in (cv2.INPAINT_TELEA, cv2.INPAINT_NS)]
    return tuple(torch.from_numpy(out.astype(np.float32) / 255.0).permute(2, 0, 1)[None] for out in outs)


def candidates_of(unet: SupervisedRestorer, pixelrnn: SupervisedRestorer, occluded: torch.Tensor,
                  mask: torch.Tensor, shift: float) -> dict[str, torch.Tensor]:
    """Every candidate (see the module doc) for one image: name -> float (1, 3, H, W) in [0, 1],
    the input's pixels outside the hole."""
    u = unet.restore_tensor(occluded, mask)
    p = pixelrnn.restore_tensor(occluded, mask)
    blur = gaussian_blur2d(u, 5, 1.5)
    outer, inner = _ring(mask, RING)
    offset = ((occluded * outer).sum(dim=(2, 3), keepdim=True) / outer.sum().clamp_min(1.0)
              - (u * inner).sum(dim=(2, 3), keepdim=True) / inner.sum().clamp_min(1.0))
    with torch.inference_mode():
        second = unet.model(u.to(unet.device), mask.to(unet.device)).float().cpu()
    telea, ns = _telea_ns(occluded, mask)
    raw = {"unet": u, "sharpen": 2.0 * u - blur, "brighter": u + shift, "darker": u - shift,
           "border_shift": u + offset, "pixelrnn": p, "telea": telea, "ns": ns,
           "diffusion": diffusion_fill(occluded, mask), "unet_pixelrnn_mean": 0.5 * (u + p), "second_pass": second}
    raw.update(zip(COMPLETION_ACTIONS[1:], CompletionTransition(False, 0, 1).candidates(u)[0, 1:, None]))
    return {name: torch.where(mask > 0, x.clamp(0.0, 1.0), occluded) for name, x in raw.items()}


def block_errors(error: torch.Tensor, block: int) -> torch.Tensor:
    """Per-pixel squared errors (K, H, W) summed per ``block`` x ``block`` block (zero-padded to whole
    blocks): (K, ceil(H / block), ceil(W / block)). ``block`` 0: one block, the whole image."""
    k, h, w = error.shape
    if block == 0:
        return error.sum(dim=(1, 2)).view(k, 1, 1)
    padded = F.pad(error, (0, -w % block, 0, -h % block))
    return padded.view(k, padded.shape[1] // block, block, padded.shape[2] // block, block).sum(dim=(2, 4))


def _hole_error(x: torch.Tensor, original: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """The squared error of ``x`` (1, 3, H, W) at each pixel of the ``hole`` (H, W) (0 outside it), summed
    over the channels: float64 (H, W)."""
    return ((x - original)[0].square().sum(dim=0) * hole).double()


def psnr(mse: np.ndarray | float) -> np.ndarray:
    return -10.0 * np.log10(np.maximum(mse, 1e-12))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help="a folder of occluded / original pairs (OccludedPairs layout; default: the built-in "
                             "photos with synthetic box holes)")
    parser.add_argument("--split", choices=("val", "all"), default="val",
                        help="the trainers' held-out split (split seed 0), or every image")
    parser.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    parser.add_argument("--unet", type=Path, default=WEIGHTS / "unet_completion.pt", help="the completion U-Net")
    parser.add_argument("--pixelrnn", type=Path, default=WEIGHTS / "gated_pixelrnn_completion.pt",
                        help="the second completion model of the ``models`` set")
    parser.add_argument("--blocks", type=int, nargs="+", default=[4, 8, 16], help="block sizes of the oracle, pixels")
    parser.add_argument("--shift", type=float, default=0.02, help="the brighter / darker candidates' offset, in [0, 1]")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    if any(b < 1 for b in args.blocks):
        parser.error(f"--blocks: expected sizes >= 1, got {args.blocks}")
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    unet = SupervisedRestorer(args.unet, device="cpu", task="completion")
    pixelrnn = SupervisedRestorer(args.pixelrnn, device="cpu", task="completion")
    split = "val" if args.split == "val" and args.data is not None else None
    dataset = open_dataset(args.data, kind="occluded", split=split, gray=False, seed=0)
    images = occluded_test_set(dataset, limit=args.limit)
    blocks = [*args.blocks, 0]
    scores = {name: {"each": [], **{b: [] for b in blocks}} for name in SETS}
    rule: list[float] = []
    for item in images:
        occluded, original, mask = item.occluded[None], item.original[None], item.mask[None]
        cands = candidates_of(unet, pixelrnn, occluded, mask, args.shift)
        hole = mask[0, 0] > 0
        n = float(hole.sum()) * 3
        u = cands["unet"]
        ruled = u + 0.5 * _ring(mask, RULE_RING)[1] * (cands["telea"] - u)
        ruled_mse, unet_mse = (float(_hole_error(x, original, hole).sum()) / n for x in (ruled, u))
        rule.append(float(psnr(ruled_mse) - psnr(unet_mse)))
        for name, members in SETS.items():
            error = torch.stack([_hole_error(cands[m], original, hole) for m in members])
            scores[name]["each"].append(psnr(error.sum(dim=(1, 2)).numpy() / n))
            for b in blocks:
                scores[name][b].append(psnr(float(block_errors(error, b).min(dim=0).values.sum()) / n))
    where = f"{args.data} (split {split or 'all'})" if args.data is not None else "the built-in photos"
    print(f"{len(images)} images of {where}, hole PSNR (dB); U-Net {args.unet}")
    print("| action set | candidates | U-Net | single (best candidate) | "
          + " | ".join(f"oracle {b}x{b}" for b in args.blocks) + " | oracle per image |")
    print("|---|---|---|---|" + "---|" * len(blocks))
    for name, members in SETS.items():
        each = np.mean(scores[name]["each"], axis=0)
        base, best = float(each[0]), int(np.argmax(each))
        cells = [f"{np.mean(scores[name][b]):.2f} ({np.mean(scores[name][b]) - base:+.2f})" for b in blocks]
        single = f"{each[best]:.2f} ({members[best]}, {each[best] - base:+.3f})"
        print(f"| {name} | {len(members)} | {base:.2f} | {single} | " + " | ".join(cells) + " |", flush=True)
    each = np.mean(scores["all"]["each"], axis=0)
    print("candidates alone: " + ", ".join(f"{m} {v:.2f}" for m, v in zip(SETS["all"], each)))
    gain = np.asarray(rule)
    spread = gain.std(ddof=1) / np.sqrt(gain.size) if gain.size > 1 else float("nan")
    print(f"rule (Telea half-way in the hole's outer {RULE_RING} px, no oracle): {gain.mean():+.3f} dB "
          f"(s.e. {spread:.3f}), better on {int((gain > 0).sum())} of {gain.size}")


if __name__ == "__main__":
    main()
