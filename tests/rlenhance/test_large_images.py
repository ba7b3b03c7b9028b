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

from rlenhance import noise_estimate
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
    whole = noise_estimate.estimate_noise_sigma(image)
    monkeypatch.setattr(noise_estimate, "_NOISE_SAMPLE_PIXELS", 2**15)
    monkeypatch.setattr(noise_estimate, "_NOISE_BLOCK", 64)
    blocks = noise_estimate._noise_blocks(*image.shape)
    assert len(blocks) >= 6 and sum((r.stop - r.start) * (c.stop - c.start) for r, c in blocks) <= 2**15
    assert {(r.start, c.start) for r, c in blocks} >= {(0, 0), (1024 - 64, 1536 - 64)}  # corners included
    tracemalloc.start()
    try:
        sampled = noise_estimate.estimate_noise_sigma(image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert abs(sampled - whole) < 0.03 * whole and abs(sampled - 20.0) < 1.0
    # the sample's work only: no float64 (or float32) copy of the image
    assert peak < image.nbytes / 2, f"{peak / 1e6:.1f} MB traced for a {image.nbytes / 1e6:.1f} MB image"


def test_a_plane_below_the_sample_size_is_measured_whole():
    assert noise_estimate._noise_blocks(300, 400) == [(slice(0, 300), slice(0, 400))]
    image = _noisy_ramp(300, 400, 10.0)
    strided = np.asfortranarray(np.repeat(image[..., None], 3, axis=2))  # any strides, read in place
    estimate = noise_estimate.estimate_noise_sigma
    assert estimate(strided) == pytest.approx(estimate(image), rel=1e-12)


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
    assert [b for b, *_ in patches] == [0, 1, 1]  # a box per hole (image 1 has two); image 2 has none
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


# --- every learned denoiser and completion model tiles ------------------------------------------------
def _policy(path, task, *, in_channels, n_actions, predictor=None, steps=2, env=None, **net):
    """A random (untrained) policy saved as experiments.denoise_train / completion_train save one."""
    from rlenhance.checkpoint import save_checkpoint
    from rlenhance.models.policy import PixelActorCritic
    from tests.specs import rollout_spec

    torch.manual_seed(3)
    policy = PixelActorCritic(in_channels=in_channels, out_channels=1, n_actions=n_actions, width=8,
                              dilations=(1, 2), branch_dilations=(), **net)
    with torch.no_grad():  # a non-trivial policy: the near-uniform init would pick one action everywhere
        policy.policy_head.weight.normal_(0, 2.0)
    env_kwargs = {"sigma": [10.0, 40.0], "gray": True, "crop": 16} if task == "denoise" else {"crop": 16}
    if predictor is not None and task == "denoise":
        env_kwargs["observe_prediction"] = True
    env_kwargs.update(env or {})
    spec = rollout_spec(task, env_kwargs, steps=steps, block_actions=net.get("downscale", 1) > 1,
                        predictor=None if predictor is None else str(predictor))
    return save_checkpoint(path, model=policy, arch=policy.arch(), extra={"spec": spec, "algorithm": "a3c"})


def _blind_ffdnet(path):
    """A tiny untrained FFDNet (stride 2) trained over sigma 0-50: blind, it reads each image's level."""
    from rlenhance.checkpoint import SupervisedSpec, save_checkpoint
    from rlenhance.models.ffdnet import FFDNet

    torch.manual_seed(0)
    net = FFDNet(1, width=8, depth=3)
    spec = SupervisedSpec(model="ffdnet", task="denoise", channels=1, prefill="none", noise="gaussian", sigma=50.0,
                          sigmas=(0.0, 50.0))
    return save_checkpoint(path, model=net, arch=net.arch(), extra={"spec": spec})


def _counted(monkeypatch, owner, name):
    """Count the calls of ``owner.name`` (a method or function), returned as a one-item list."""
    calls = [0]
    original = getattr(owner, name)

    def counting(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


def _noisy_samples(height, width, channels, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    clean = np.stack([0.5 + 0.3 * np.sin(5 * x + 3 * y + c) for c in range(channels)], axis=-1)
    return np.rint(np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("downscale", [1, 2])
def test_a_policy_with_a_blind_predictor_tiles_and_equals_the_whole_image(tmp_path, monkeypatch, downscale):
    """A denoising policy that takes a blind FFDNet's pixel: the prediction is made window by window
    (each window's margin covers the rollout and the predictor), at the level found once in the whole
    image; the result is the whole image's, and each window's margin is needed."""
    from rlenhance.denoisers import PolicyDenoiser
    from rlenhance.predictors import DenoisePredictor

    ffdnet = _blind_ffdnet(tmp_path / "ffdnet.pt")
    path = _policy(tmp_path / "policy.pt", "denoise", in_channels=2, n_actions=10, predictor=ffdnet,
                   downscale=downscale)
    image = _noisy_samples(200, 223, 1, seed=4)
    whole = PolicyDenoiser(path, device="cpu", tile=4096)
    small = PolicyDenoiser(path, device="cpu", tile=16)
    assert small.overlap % (2 * downscale) == 0 and small.tile % (2 * downscale) == 0  # both grids kept
    assert small.overlap >= small.predictor.overlap and small.tile + 2 * small.overlap < 200  # really tiled
    expected = whole.restore(image, dtype=np.uint8)
    levels = _counted(monkeypatch, DenoisePredictor, "levels")
    predictions = _counted(monkeypatch, DenoisePredictor, "with_level")
    out = small.restore(image, dtype=np.uint8)
    assert levels[0] == 1 and predictions[0] == -(-200 // small.tile) * -(-223 // small.tile)
    np.testing.assert_array_equal(out, expected)
    small.overlap = 0  # without the margin the tiles' borders show
    assert np.abs(small.restore(image).astype(np.float32) - expected / 255).max() > 2 / 255


def test_a_noise_level_map_policy_tiles_and_equals_the_whole_image(tmp_path, monkeypatch):
    """A policy that scales the blind FFDNet's map per pixel: the map starts at the level found once
    in the whole image, and FFDNet runs on each window's final map."""
    from rlenhance.denoisers import PolicyDenoiser
    from rlenhance.predictors import DenoisePredictor

    ffdnet = _blind_ffdnet(tmp_path / "ffdnet.pt")
    path = _policy(tmp_path / "levels.pt", "denoise", in_channels=3, n_actions=3, predictor=ffdnet, downscale=2,
                   env={"level_scales": [0.5, 1.0, 2.0], "observe_prediction": False})
    image = _noisy_samples(180, 171, 1, seed=8)
    whole = PolicyDenoiser(path, device="cpu", tile=4096)
    small = PolicyDenoiser(path, device="cpu", tile=16)
    assert small.transition.sets_level and small.tile + 2 * small.overlap < 171
    expected = whole.restore(image, dtype=np.uint8)
    levels = _counted(monkeypatch, DenoisePredictor, "levels")
    np.testing.assert_array_equal(small.restore(image, dtype=np.uint8), expected)
    assert levels[0] == 1
    small.overlap = 0
    assert not np.array_equal(small.restore(image, dtype=np.uint8), expected)


def test_an_rse_model_tiles_round_by_round_and_equals_the_whole_image(tmp_path, monkeypatch):
    from rlenhance.checkpoint import RSEDenoiserSpec, save_checkpoint
    from rlenhance.models.rse import RSEDenoiser, RSERound
    from rlenhance.rse import RSERestorer

    torch.manual_seed(1)
    model = RSEDenoiser(channels=3, patch=8, stride=4, latent_dim=4, hidden=16, bank_size=64, clusters=4,
                        neighbours=3, width=8, max_rounds=2, policy_kwargs={"downscale": 2}).eval()
    for stage in model.rounds:
        stage.bank.fit(torch.randn(stage.bank.size, stage.vae.latent_dim))
    path = save_checkpoint(tmp_path / "rse.pt", model=model, arch=model.arch(),
                           extra={"spec": RSEDenoiserSpec(sigma=25.0, channels=3, rounds=2)})
    image = _noisy_samples(120, 131, 3, seed=2)
    whole = RSERestorer(path, device="cpu", tile=4096)
    small = RSERestorer(path, device="cpu", tile=16)
    assert small.overlap % 4 == 0 and small.tile % 4 == 0 and small.tile + 2 * small.overlap < 120
    expected = whole.model(torch.from_numpy(image).permute(2, 0, 1)[None] / 255, rounds=2).clamp(0, 1)
    windows = _counted(monkeypatch, RSERound, "forward")
    np.testing.assert_allclose(small.restore(image), expected[0].permute(1, 2, 0).numpy(), atol=1e-5, rtol=0)
    assert windows[0] == 2 * -(-120 // 16) * -(-131 // 16)  # each round, window by window
    np.testing.assert_array_equal(small.restore(image, dtype=np.uint8), whole.restore(image, dtype=np.uint8))
    traced, whole_traced = small.restore_traced(image)[1], whole.restore_traced(image)[1]
    np.testing.assert_array_equal(traced.maps, whole_traced.maps)


def test_a_completion_policy_tiles_skips_windows_without_holes_and_equals_the_whole_image(tmp_path, monkeypatch):
    from rlenhance.completion import PolicyCompleter

    path = _policy(tmp_path / "completion.pt", "completion", in_channels=4, n_actions=8, downscale=2)
    image = _noisy_samples(120, 130, 3, seed=5)
    mask = np.zeros((120, 130), bool)
    mask[10:30, 14:40] = True  # a hole across tile borders, and one at the bottom-right edge
    mask[100:, 115:] = True
    whole = PolicyCompleter(path, device="cpu", tile=4096)
    small = PolicyCompleter(path, device="cpu", tile=16)
    assert small.tile + 2 * small.overlap < 120
    rollouts = _counted(monkeypatch, PolicyCompleter, "rollout")
    out = small.restore(image, mask=mask, dtype=np.uint8)
    windows = -(-120 // 16) * -(-130 // 16)
    assert 0 < rollouts[0] < windows  # the windows without a hole pixel are their input
    np.testing.assert_array_equal(out[~mask], image[~mask])
    np.testing.assert_array_equal(out, whole.restore(image, mask=mask, dtype=np.uint8))
    occluded = torch.from_numpy(image).permute(2, 0, 1)[None] / 255 * torch.from_numpy(~mask)
    expected = whole.restore_tensor(occluded, torch.from_numpy(mask)[None, None].float())
    np.testing.assert_allclose(small.restore(image, mask=mask), expected[0].permute(1, 2, 0).numpy(), atol=1e-5)
    traced, whole_traced = small.restore_traced(image, mask=mask)[1], whole.restore_traced(image, mask=mask)[1]
    np.testing.assert_array_equal(traced.maps[:, :, mask], whole_traced.maps[:, :, mask])


def test_a_completion_model_runs_only_the_windows_that_hold_a_hole(monkeypatch):
    from rlenhance.restore import SupervisedRestorer

    unet = SupervisedRestorer(ROOT / "rlenhance" / "weights" / "gated_pixelrnn_completion.pt", device="cpu",
                              task="completion", tile=32, overlap=8)
    image = _noisy_samples(100, 90, 3, seed=6)
    mask = np.zeros((100, 90), bool)
    mask[5:12, 78:88] = True  # in the window of the top-right tile only
    calls = _counted(monkeypatch, unet, "_net")
    out = unet.restore(image, mask=mask, dtype=np.uint8)
    assert calls[0] == 1 and np.array_equal(out[~mask], image[~mask]) and not np.array_equal(out, image)


def test_holes_spread_over_a_photo_are_filled_box_by_box():
    """A user's mask of scattered holes: one box per hole (overlapping boxes merged), not one box
    over the whole frame; pasted, they are the whole frame's diffusion fill."""
    from rlenhance.ops.fill import hole_boxes

    g = torch.Generator().manual_seed(2)
    image = torch.rand(1, 3, 200, 300, generator=g)
    mask = torch.zeros(1, 1, 200, 300)
    for top, left in ((0, 0), (0, 290), (190, 0), (185, 280), (90, 140)):
        mask[0, 0, top:top + 10, left:left + 10] = 1.0
    mask[0, 0, 40:60, 40] = mask[0, 0, 59, 40:70] = 1.0  # an L, whose box holds a separate hole
    mask[0, 0, 45:48, 50:53] = 1.0
    boxes = hole_boxes(mask[0, 0])
    assert (40, 40, 60, 70) in boxes and len(boxes) == 6
    assert all(b1[2] <= b2[0] or b2[2] <= b1[0] or b1[3] <= b2[1] or b2[3] <= b1[1]
               for i, b1 in enumerate(boxes) for b2 in boxes[i + 1:])  # disjoint
    patches = prefill_patches(image, mask, "diffusion")
    assert sum(values[0].numel() for *_, values in patches) < 0.05 * 200 * 300
    pasted = paste(image * (1 - mask), patches, torch.arange(200), torch.arange(300))
    torch.testing.assert_close(pasted, prefill_hole(image, mask, "diffusion"), atol=1e-6, rtol=0)


@pytest.mark.parametrize("colour", [True, False], ids=["colour", "gray"])
def test_a_mask_file_is_read_as_the_thresholded_gray_image_without_a_float_copy(tmp_path, colour):
    from rlenhance.io import load_mask

    rng = np.random.default_rng(0)
    samples = rng.integers(0, 256, (1500, 1000, 3 if colour else 1), dtype=np.uint8)
    save_image(tmp_path / "mask.png", samples if colour else samples[..., 0])
    tracemalloc.start()
    try:
        mask = load_mask(tmp_path / "mask.png")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(mask, load_image(tmp_path / "mask.png", gray=True)[..., 0] > 0.5)
    # the decoded samples (and Pillow's bytes), the mask and a band's work: below a float32 copy of the
    # file's samples (reading it as a float image and thresholding made 34 MB of a colour file, 7.5 of a gray)
    assert peak < 4 * samples.size, f"{peak / 1e6:.1f} MB traced"
