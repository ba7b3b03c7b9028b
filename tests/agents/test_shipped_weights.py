"""Every checkpoint shipped in rlenhance/weights/ loads through the loader it is meant for and runs.

A new file in rlenhance/weights/ without an entry in LOADERS fails this test, so no shipped file
can go untested. The entries of files to be shipped (:data:`TO_BE_SHIPPED`: the colour denoisers)
are skipped while the file is absent; every other entry's file must be there.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

import rlenhance
from rlenhance.data import BuiltinImages
from rlenhance.denoisers import DENOISER_CHECKPOINTS, load_denoiser
from rlenhance.enhance import Enhancer
from rlenhance.restore import SupervisedRestorer

WEIGHTS = Path(rlenhance.__file__).resolve().parent / "weights"
SHAPE = (40, 52)  # odd sizes on purpose: not a multiple of any model's stride
#: The colour denoisers' test: a crop of an embedded photo (chelsea's face: texture and edges) with
#: Gaussian noise of this level (0-255 scale) from this seed ...
PHOTO, PHOTO_TOP_LEFT, PHOTO_SIGMA, PHOTO_SEED = "chelsea", (100, 150), 25.0, 0
#: ... whose PSNR a shipped colour denoiser raises by at least this (dB; the shipped gray denoisers,
#: run on R, G and B separately, gain 7 to 9 dB there, bilateral 7).
MIN_PHOTO_GAIN_DB = 3.0


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


def _photo_denoiser(model: str, channels: int = 3):
    """``load_denoiser(model, path)``: a colour (or gray, ``channels`` 1) model that denoises a photo
    at sigma 25 (PSNR up by at least :data:`MIN_PHOTO_GAIN_DB` over the noisy input, clipped; an
    ffdnet estimates the level)."""
    def run(path: Path) -> np.ndarray:
        restorer = load_denoiser(model, path, device="cpu")
        assert restorer.channels == channels, f"{path.name}: a {restorer.channels}-channel model, expected {channels}"
        (top, left), (height, width) = PHOTO_TOP_LEFT, SHAPE
        clean = BuiltinImages(names=[PHOTO], gray=channels == 1)[0]["high"][:, top:top + height, left:left + width]
        noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(PHOTO_SEED)) * PHOTO_SIGMA / 255
        noisy = (clean + noise).permute(1, 2, 0).numpy()
        out = restorer.restore(noisy)
        assert out.shape == (*SHAPE, channels)
        reference = clean.permute(1, 2, 0).numpy()
        psnr, input_psnr = (-10 * np.log10(((x - reference) ** 2).mean()) for x in (out, np.clip(noisy, 0, 1)))
        assert psnr >= input_psnr + MIN_PHOTO_GAIN_DB, f"{path.name}: PSNR {psnr:.2f} dB, noisy input {input_psnr:.2f}"
        return out
    return run


def _supervised(task: str):
    def run(path: Path) -> np.ndarray:
        restorer = SupervisedRestorer(path, device="cpu", task=task)
        if task == "completion":
            occluded, mask = _with_hole(_image(3, 0.3, 0.7))
            out = restorer.restore(occluded, mask=mask)
            np.testing.assert_array_equal(out[~mask], occluded[~mask])  # only the hole changes
            return out
        return restorer.restore(_image(restorer.channels, 0.05, 0.6))
    return run


#: file name -> the loader it is shipped for (what the CLI, compare and the docs use).
LOADERS = {
    "lowlight_a3c.pt": _enhancer,                      # Enhancer, `rlenhance enhance`
    "lowlight_local.pt": _enhancer,                    # `rlenhance enhance --checkpoint` (registry alternative)
    "mrpnet_denoise.pt": _supervised("denoise"),       # SupervisedRestorer, `rlenhance denoise`
    "mrpnet_lowlight.pt": _supervised("lowlight"),     # `rlenhance enhance --model mrpnet`, --init-backbone
    "pixelrnn_completion.pt": _supervised("completion"),
    "gated_pixelrnn_completion.pt": _supervised("completion"),
    "unet_completion.pt": _supervised("completion"),  # `rlenhance complete`, compare's unet
    # the colour defaults of `rlenhance denoise --model mrpnet|a3c|sac|noise-map` (rlenhance.denoisers)
    **{path.name: _photo_denoiser(model) for (model, channels), path in DENOISER_CHECKPOINTS.items() if channels == 3},
    "ffdnet_denoise.pt": _photo_denoiser("ffdnet", channels=1),  # `rlenhance denoise`'s default, compare's ffdnet
    "noise_map_denoise.pt": _photo_denoiser("noise-map", channels=1),  # `rlenhance denoise --model noise-map`
}
#: Entries whose file is not shipped yet: skipped while absent, tested once there.
TO_BE_SHIPPED = frozenset(path.name for (_, channels), path in DENOISER_CHECKPOINTS.items() if channels == 3)


def test_every_shipped_file_has_a_loader():
    shipped = {p.name for p in WEIGHTS.iterdir() if p.is_file() and p.suffix in (".pt", ".pth")}
    assert shipped, f"no weights in {WEIGHTS}"
    assert sorted(shipped - set(LOADERS)) == [], "shipped files without an entry in LOADERS"
    assert sorted(set(LOADERS) - TO_BE_SHIPPED - shipped) == [], "entries whose file is missing"


def test_the_colour_denoisers_to_be_shipped_are_the_denoisers_defaults():
    assert TO_BE_SHIPPED == {f"{model}_denoise_color.pt" for model in ("mrpnet", "a3c", "sac", "ffdnet", "noise_map")}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_shipped_file_loads_and_runs(name):
    if name in TO_BE_SHIPPED and not (WEIGHTS / name).is_file():
        pytest.skip(f"{name} is not shipped yet")
    out = LOADERS[name](WEIGHTS / name)
    assert out.shape[:2] == SHAPE
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0
