"""Large photos: the memory of a restore is the image, its result and one tile's work, not copies of
the photo's size; the noise estimate of a large plane reads a bounded sample of it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from rlenhance import baselines
from rlenhance.io import load_image, save_image
from rlenhance.ops.fill import prefill_hole, prefill_patches
from rlenhance.ops.tiling import paste, tiled

ROOT = Path(__file__).resolve().parents[2]


def _noisy_ramp(height: int, width: int, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.2, 0.8, width, dtype=np.float32)[None, :].repeat(height, axis=0)
    return ramp + rng.normal(0, sigma / 255, (height, width)).astype(np.float32)


def test_a_large_plane_is_measured_on_a_sample_that_agrees_with_the_whole(monkeypatch):
    image = _noisy_ramp(1024, 1536, 20.0)
    whole = baselines.estimate_noise_sigma(image)
    monkeypatch.setattr(baselines, "_NOISE_SAMPLE_PIXELS", 2**15)
    monkeypatch.setattr(baselines, "_NOISE_BLOCK", 64)
    blocks = baselines._noise_blocks(*image.shape)
    assert len(blocks) >= 6 and sum((r.stop - r.start) * (c.stop - c.start) for r, c in blocks) <= 2**15
    assert {(r.start, c.start) for r, c in blocks} >= {(0, 0), (1024 - 64, 1536 - 64)}  # corners included
    tracemalloc.start()
    try:
        sampled = baselines.estimate_noise_sigma(image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert abs(sampled - whole) < 0.03 * whole and abs(sampled - 20.0) < 1.0
    # the sample's work only: no float64 (or float32) copy of the image
    assert peak < image.nbytes / 2, f"{peak / 1e6:.1f} MB traced for a {image.nbytes / 1e6:.1f} MB image"


def test_a_plane_below_the_sample_size_is_measured_whole():
    assert baselines._noise_blocks(300, 400) == [(slice(0, 300), slice(0, 400))]
    image = _noisy_ramp(300, 400, 10.0)
    strided = np.asfortranarray(np.repeat(image[..., None], 3, axis=2))  # any strides, read in place
    assert baselines.estimate_noise_sigma(strided) == pytest.approx(baselines.estimate_noise_sigma(image), rel=1e-12)


_CHILD = textwrap.dedent("""
    import json, re, sys
    from pathlib import Path
    import numpy as np
    from rlenhance.denoisers import load_denoiser

    def status(key):
        return int(re.search(key + r":\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024

    denoiser = load_denoiser("ffdnet", channels=1, device="cpu", sigma=25.0, tile=int(sys.argv[4]))
    denoiser.restorer.model = lambda planes, levels: planes  # the tiling, not the network, is measured
    samples = sys.argv[3] == "samples"  # uint8 in, uint8 out, as the commands run it
    dtype = np.uint8 if samples else np.float32
    denoiser.restore(np.full((64, 64, 3), 128 if samples else 0.5, dtype), dtype=dtype)  # warm up
    image = np.random.default_rng(0).random((int(sys.argv[1]), int(sys.argv[2]), 3), dtype=np.float32)
    if samples:
        image = np.rint(image * 255).astype(np.uint8)
    Path("/proc/self/clear_refs").write_text("5")  # the peak from here on
    before = status("VmRSS")
    out = denoiser.restore(image, dtype=dtype)
    print(json.dumps({"growth": status("VmHWM") - before, "image": image.nbytes,
                      "max_error": float(np.abs(out.astype(np.float32) - image).max())}))
""")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads the peak memory from /proc (Linux)")
def test_restoring_a_large_photo_adds_its_result_and_one_tile_not_copies_of_it():
    """A 6-megapixel colour photo through the blind FFDNet's opponent-colour path (the network
    replaced by the identity, so the result is the input): the peak adds the float32 result and
    one tile's work (and what the allocator keeps of the freed windows), under 2.5 times the
    image's size; photo-size copies of the input, the opponent planes, their noise levels and the
    output made it more than five times."""
    result = subprocess.run([sys.executable, "-c", _CHILD, "2000", "3000", "floats", "512"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["max_error"] < 1e-5
    growth, size = found["growth"] / 1e6, found["image"] / 1e6
    assert growth < 2.5 * size, f"{growth:.0f} MB over a {size:.0f} MB photo"


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads the peak memory from /proc (Linux)")
def test_restoring_a_large_photo_in_samples_makes_no_float_copy_of_it_or_of_its_result():
    """The same 6-megapixel photo as uint8 samples, its result asked as uint8 (what ``rlenhance
    denoise`` runs), in tiles of 128 pixels: each window is converted to float and each tile's
    result to levels on its own, so the peak adds the uint8 result (18 MB) and one small tile's
    work (24 MB measured): under half a float32 copy of the photo (72 MB), which converting the
    input or returning a float result would each make."""
    result = subprocess.run([sys.executable, "-c", _CHILD, "2000", "3000", "samples", "128"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["max_error"] == 0  # the identity network: the same levels back
    growth, floats = found["growth"] / 1e6, 4 * found["image"] / 1e6
    assert growth < 0.5 * floats, f"{growth:.0f} MB over a photo of {floats:.0f} MB in float32"


def test_saving_a_large_float_image_converts_it_a_band_at_a_time(tmp_path):
    ramp = np.linspace(-0.1, 1.1, 1000, dtype=np.float32)  # clipped at both ends; a small PNG file
    image = np.repeat(np.repeat(ramp[None, :, None], 1500, axis=0), 3, axis=2)
    tracemalloc.start()
    try:
        save_image(tmp_path / "big.png", image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    expected = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(load_image(tmp_path / "big.png", samples=True), expected)
    # the uint8 samples (4.5 MB) and the PNG encoder's bands, less than one float copy of the image (18 MB)
    assert peak < image.nbytes, f"{peak / 1e6:.1f} MB traced for a {image.nbytes / 1e6:.1f} MB image"


def _holes(batch: int, height: int, width: int) -> torch.Tensor:
    mask = torch.zeros(batch, 1, height, width)
    mask[0, :, 3:9, 4:12] = 1.0
    if batch > 1:
        mask[1, :, height - 5:, width - 7:] = 1.0  # at the bottom-right edge, where the tiles pad
        mask[1, :, 2:4, 2:3] = 1.0
    return mask


def test_prefill_patches_pasted_over_the_image_are_prefill_hole():
    g = torch.Generator().manual_seed(0)
    image, mask = torch.rand(3, 3, 23, 30, generator=g), _holes(3, 23, 30)
    patches = prefill_patches(image, mask, "diffusion")
    assert [b for b, *_ in patches] == [0, 1]  # image 2 has no hole: nothing to paste
    pasted = paste(image, patches, torch.arange(23), torch.arange(30))
    torch.testing.assert_close(pasted, prefill_hole(image, mask, "diffusion"), atol=1e-6, rtol=0)
    assert pasted is not image and torch.equal(image, image.clone())
    assert prefill_patches(image, mask, "none") == []


@pytest.mark.parametrize("tile, overlap, multiple", [(8, 3, 4), (16, 8, 8), (5, 2, 1)])
def test_a_completion_run_tile_by_tile_equals_the_prefilled_image_tiled(tile, overlap, multiple):
    """SupervisedRestorer._run pastes the pre-filled holes into each window (its rows and columns,
    padded ones included) instead of pre-filling a copy of the image: the windows the net sees are
    those of the pre-filled image, padded as a whole."""
    g = torch.Generator().manual_seed(1)
    image, mask = torch.rand(2, 3, 23, 30, generator=g), _holes(2, 23, 30)

    def net(window, hole):
        return (window.mean(dim=(1, 2, 3), keepdim=True) + window * 0.5 + hole).expand_as(window)

    expected = tiled(net, prefill_hole(image, mask, "diffusion"), mask, tile=tile, overlap=overlap,
                     multiple=multiple)
    patches = prefill_patches(image, mask, "diffusion")
    out = tiled(lambda w, m, rows, cols: net(paste(w, patches, rows, cols), m), image, mask, tile=tile,
                overlap=overlap, multiple=multiple, positions=True)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_finding_the_hole_of_a_large_photo_makes_no_float_copy_of_it():
    from rlenhance.data.occluded import hole_mask
    image = np.full((1500, 1000, 3), 0.5, np.float32)
    image[400:700, 300:500] = 0.0
    tracemalloc.start()
    try:
        mask = hole_mask(image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert mask.sum() == 300 * 200 and mask[400:700, 300:500].all()
    # the candidates are found a band at a time; what remains is scipy's labelling of the regions
    # (the float copies of the image made it twice the image's size)
    assert peak < 1.5 * image.nbytes, f"{peak / 1e6:.1f} MB traced for a {image.nbytes / 1e6:.1f} MB image"
