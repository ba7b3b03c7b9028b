"""Every checkpoint shipped in rlenhance/weights/ loads through the loader it is meant for and runs.

A new file in rlenhance/weights/ without an entry in LOADERS fails this test, so no shipped file
can go untested.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

import rlenhance
from agents.rollout import load_rollout_policy
from rlenhance.enhance import Enhancer
from rlenhance.restore import SupervisedRestorer

WEIGHTS = Path(rlenhance.__file__).resolve().parent / "weights"
SHAPE = (40, 52)  # odd sizes on purpose: not a multiple of any model's stride


def _image(channels: int, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """A smooth photo-like image (gradients and a soft blob) in [low, high]."""
    y, x = np.mgrid[0:SHAPE[0], 0:SHAPE[1]] / max(SHAPE)
    planes = [0.5 + 0.3 * np.sin(3 * x + 2 * y + c) + 0.2 * np.exp(-((x - 0.5) ** 2 + (y - 0.4) ** 2) * 20)
              for c in range(channels)]
    return (low + (high - low) * np.clip(np.stack(planes, axis=-1), 0, 1)).astype(np.float32)


def _with_hole(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros(SHAPE, dtype=bool)
    mask[10:26, 14:30] = True
    occluded = image.copy()
    occluded[mask] = 0.0
    return occluded, mask


def _enhancer(path: Path) -> np.ndarray:
    dark = _image(3, 0.02, 0.15)
    out = Enhancer(path, device="cpu").enhance(dark)
    assert out.mean() > dark.mean() + 0.1  # it brightens
    return out


def _rollout_denoiser(path: Path) -> np.ndarray:
    policy = load_rollout_policy(path, device="cpu")
    clean = torch.from_numpy(_image(1, 0.2, 0.8)).permute(2, 0, 1)
    noisy = clean + 25 / 255 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    out = policy.restore([{"clean": clean, "noisy": noisy}])[0].clamp(0, 1)
    assert float(((out - clean) ** 2).mean()) < float(((noisy - clean) ** 2).mean())  # it removes noise
    return out.permute(1, 2, 0).numpy()


def _rollout_completer(path: Path) -> np.ndarray:
    policy = load_rollout_policy(path, device="cpu")
    original = _image(3, 0.3, 0.7)
    occluded, mask = _with_hole(original)
    chw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))  # noqa: E731
    out = policy.restore([{"occluded": chw(occluded), "original": chw(original),
                           "mask": torch.from_numpy(mask)[None].float()}])[0]
    assert float(out[:, torch.from_numpy(mask)].mean()) > 0.1  # the hole is filled
    return out.permute(1, 2, 0).numpy()


def _supervised(task: str):
    def run(path: Path) -> np.ndarray:
        restorer = SupervisedRestorer(path, device="cpu", task=task)
        if task == "completion":
            occluded, mask = _with_hole(_image(3, 0.3, 0.7))
            out = restorer.restore(occluded, mask)
            np.testing.assert_array_equal(out[~mask], occluded[~mask])  # only the hole changes
            return out
        return restorer.restore(_image(restorer.channels, 0.05, 0.6))
    return run


#: file name -> the loader it is shipped for (what the CLI, compare and the docs use).
LOADERS = {
    "lowlight_a3c.pt": _enhancer,                      # Enhancer, `rlenhance enhance`
    "a3c_denoise.pt": _rollout_denoiser,               # agents.rollout.load_rollout_policy, compare's a3c
    "sac_denoise.pt": _rollout_denoiser,               # compare's sac
    "a3c_completion.pt": _rollout_completer,           # compare's a3c (completion)
    "mrpnet_denoise.pt": _supervised("denoise"),       # SupervisedRestorer, `rlenhance denoise`
    "mrpnet_lowlight.pt": _supervised("lowlight"),     # `rlenhance enhance --model mrpnet`, --init-backbone
    "pixelrnn_completion.pt": _supervised("completion"),
    "gated_pixelrnn_completion.pt": _supervised("completion"),  # `rlenhance complete`
}


def test_every_shipped_file_has_a_loader():
    shipped = sorted(p.name for p in WEIGHTS.iterdir() if p.is_file() and p.suffix in (".pt", ".pth"))
    assert shipped, f"no weights in {WEIGHTS}"
    assert shipped == sorted(LOADERS)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_shipped_file_loads_and_runs(name):
    out = LOADERS[name](WEIGHTS / name)
    assert out.shape[:2] == SHAPE
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0
