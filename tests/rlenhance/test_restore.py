"""SupervisedRestorer (every supervised checkpoint kind) and the hole finder (find_hole, hole_mask)."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rlenhance import registry
from rlenhance.checkpoint import FORMAT_TAG, FORMAT_VERSION, SupervisedSpec, save_checkpoint
from rlenhance.data.occluded import estimate_occlusion_mask, find_hole
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.io import BT601_LUMA_WEIGHTS, load_image
from rlenhance.models.mrpnet import CombinedModel, MRPNet
from rlenhance.models.pixelrnn import GatedPixelRNN, PixelRNN
from rlenhance.models.policy import PixelActorCritic
from rlenhance.ops.fill import diffusion_fill
from rlenhance.restore import (
    DEFAULT_DENOISE_CHECKPOINT,
    SupervisedRestorer,
    default_checkpoint,
    hole_mask,
)
from tests.specs import rollout_spec


def save_supervised(path: Path, model: torch.nn.Module, model_name: str, task: str, channels: int,
                    prefill: str = "none") -> Path:
    """Save ``model`` the way experiments.supervised_train does (its SupervisedSpec)."""
    spec = SupervisedSpec(model=model_name, task=task, channels=channels, prefill=prefill,
                          variant=model.arch()["kwargs"].get("variant", "default"))
    return save_checkpoint(path, model=model, arch=model.arch(),
                           extra={"epoch": 1, "scores": {"loss": 0.1}, "spec": spec})


def save_raw(path: Path, model: torch.nn.Module, spec: dict) -> Path:
    """Write a checkpoint whose spec dict was written by hand (not validated on the way out)."""
    torch.save({"format": FORMAT_TAG, "version": FORMAT_VERSION, "arch": model.arch(), "state_dict": model.state_dict(),
                "extra": {"spec": {"kind": "supervised", "prefill": "none", "variant": "default", "noise": None,
                                   "sigma": None, "upscale": 1, "sigmas": None, **spec}}}, path)
    return path


def _randomise_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Give batch-norm layers non-trivial running statistics (as a trained model has)."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model


# name: (factory, model name, task, channels[, prefill])
KINDS = {
    "mrpnet-denoise": (lambda: MRPNet(1, width=8), "mrpnet", "denoise", 1),
    "combined-lowlight": (lambda: CombinedModel(3, width=8), "mrpnet", "lowlight", 3),
    "pixelrnn-completion": (lambda: PixelRNN(3, width=8), "pixelrnn", "completion", 3),
    "gated-completion": (lambda: GatedPixelRNN(3, width=8), "gated-pixelrnn", "completion", 3),
    "pixelrnn-prefilled": (lambda: PixelRNN(3, width=8), "pixelrnn", "completion", 3, "diffusion"),
    "gated-prefilled": (lambda: GatedPixelRNN(3, width=8), "gated-pixelrnn", "completion", 3, "diffusion"),
    "pixelrnn-seed": (lambda: PixelRNN(3, width=8, variant="seed"), "pixelrnn", "completion", 3),
    "gated-seed": (lambda: GatedPixelRNN(3, width=8, variant="seed"), "gated-pixelrnn", "completion", 3, "diffusion"),
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("supervised")
    torch.manual_seed(0)
    return {name: save_supervised(folder / f"{name}.pt", _randomise_batchnorm(factory()), *rest)
            for name, (factory, *rest) in KINDS.items()}


def _image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, (height, width, channels)).astype(np.float32)


def _square_mask(height: int, width: int, top: int = 10, left: int = 12, size: int = 14) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    mask[top:top + size, left:left + size] = True
    return mask


def _direct(restorer: SupervisedRestorer, image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The network called by hand on the (pre-filled,) reflect-padded image, cropped, clamped, composited."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    height, width = image.shape[:2]
    pad = (0, -width % restorer.stride, 0, -height % restorer.stride)
    m = torch.from_numpy(mask.astype(np.float32))[None, None] if mask is not None else None
    xp = F.pad(diffusion_fill(x, m) if restorer.prefill == "diffusion" else x, pad, mode="reflect")
    with torch.no_grad():
        pred = restorer.model(xp, F.pad(m, pad, mode="reflect")) if restorer.needs_mask else restorer.model(xp)
    pred = pred[..., :height, :width].clamp(0, 1)
    if m is not None:
        pred = x * (1 - m) + pred * m
    return pred[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("kind", list(KINDS))
def test_output_equals_the_network_and_has_the_documented_form(checkpoints, kind):
    restorer = SupervisedRestorer(checkpoints[kind], device="cpu")
    _, model_name, task, channels, *_ = KINDS[kind]
    assert (restorer.task, restorer.channels, restorer.model_name) == (task, channels, model_name)
    image = _image(37, 45, channels)  # not a multiple of any stride: exercises the reflect padding
    mask = _square_mask(37, 45) if task == "completion" else None
    out = restorer.restore(image, mask=mask)
    assert out.shape == (37, 45, channels) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out, _direct(restorer, image, mask), atol=1e-5)


@pytest.mark.parametrize("kind", ["pixelrnn-completion", "gated-completion", "pixelrnn-prefilled", "gated-prefilled",
                                  "pixelrnn-seed", "gated-seed"])
def test_completion_keeps_known_pixels_bit_exact(checkpoints, kind):
    restorer = SupervisedRestorer(checkpoints[kind], device="cpu", task="completion")
    image = _image(40, 48, seed=3)
    mask = _square_mask(40, 48)
    image[mask] = 0.0  # the hole is black, as in the bedroom data
    out = restorer.restore(image, mask=mask.astype(np.float32)[..., None])  # (H, W, 1) float mask accepted
    assert np.array_equal(out[~mask], image[~mask])
    assert not np.array_equal(out[mask], image[mask])  # the hole was filled


@pytest.mark.parametrize("kind", list(KINDS))
def test_tiled_equals_whole_image(checkpoints, kind):
    _, _, task, channels, *_ = KINDS[kind]
    image = _image(70, 90, channels, seed=4)
    mask = _square_mask(70, 90, top=20, left=30, size=20) if task == "completion" else None
    whole = SupervisedRestorer(checkpoints[kind], device="cpu", tile=4096).restore(image, mask=mask)
    tiled_restorer = SupervisedRestorer(checkpoints[kind], device="cpu", tile=16, overlap=48)
    assert tiled_restorer.tile < 70  # many tiles
    np.testing.assert_allclose(tiled_restorer.restore(image, mask=mask), whole, atol=1e-5)


def test_tiles_without_overlap_show_seams(checkpoints):
    """The overlap is what makes tiling exact (guards the test above against a no-op tiling)."""
    image = _image(64, 64, seed=5)
    whole = SupervisedRestorer(checkpoints["combined-lowlight"], device="cpu").restore(image)
    seams = SupervisedRestorer(checkpoints["combined-lowlight"], device="cpu", tile=16, overlap=0).restore(image)
    assert np.abs(seams - whole).max() > 1e-3


def test_gray_model_on_colour_converts_or_runs_per_channel(checkpoints):
    restorer = SupervisedRestorer(checkpoints["mrpnet-denoise"], device="cpu", task="denoise")
    rgb = _image(32, 40, seed=6)
    luma = (rgb @ np.asarray(BT601_LUMA_WEIGHTS, np.float32))[..., None]
    out = restorer.restore(rgb)
    assert out.shape == (32, 40, 1)
    np.testing.assert_allclose(out, restorer.restore(luma), atol=1e-6)
    per_channel = restorer.restore(rgb, per_channel=True)
    assert per_channel.shape == (32, 40, 3)
    for c in range(3):
        np.testing.assert_allclose(per_channel[..., c:c + 1], restorer.restore(rgb[..., c:c + 1]), atol=1e-6)


def test_colour_model_on_gray_replicates(checkpoints):
    restorer = SupervisedRestorer(checkpoints["combined-lowlight"], device="cpu")
    gray = _image(32, 32, 1, seed=7)
    out = restorer.restore(gray[..., 0])  # (H, W) accepted
    assert out.shape == (32, 32, 3)
    np.testing.assert_allclose(out, restorer.restore(np.repeat(gray, 3, axis=2)), atol=1e-6)


def test_restore_tensor_batches(checkpoints):
    restorer = SupervisedRestorer(checkpoints["gated-completion"], device="cpu")
    x = torch.rand(2, 3, 24, 24)
    mask = torch.zeros(2, 1, 24, 24)
    mask[0, :, 4:12, 4:12] = 1
    mask[1, :, 10:20, 2:9] = 1
    out = restorer.restore_tensor(x, mask)
    assert out.shape == (2, 3, 24, 24) and out.device == x.device
    for i in range(2):
        single = restorer.restore(x[i].permute(1, 2, 0).numpy(), mask=mask[i, 0].numpy())
        np.testing.assert_allclose(out[i].permute(1, 2, 0).numpy(), single, atol=1e-6)


def test_wrong_task_is_refused_with_file_task_and_accepted(checkpoints):
    path = checkpoints["mrpnet-denoise"]
    with pytest.raises(CheckpointError) as info:
        SupervisedRestorer(path, device="cpu", task="completion")
    message = str(info.value)
    assert path.name in message and "'denoise'" in message and "'completion'" in message
    with pytest.raises(CheckpointError, match="'lowlight' or 'completion'"):
        SupervisedRestorer(path, device="cpu", task=("lowlight", "completion"))
    with pytest.raises(ValueError, match="task"):
        SupervisedRestorer(path, device="cpu", task="deblur")


def test_policy_checkpoint_is_not_a_supervised_one(tmp_path):
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=4)
    spec = rollout_spec("denoise", {}, steps=5)
    path = save_checkpoint(tmp_path / "policy.pt", model=policy, arch=policy.arch(), extra={"spec": spec})
    with pytest.raises(CheckpointError, match=r"policy\.pt.*not a supervised"):
        SupervisedRestorer(path, device="cpu")


def test_inconsistent_inference_record_is_refused(tmp_path):
    """Specs written by hand: loading or the restorer refuses each."""
    model = MRPNet(1, width=4)
    bad = {"model": "gated-pixelrnn", "task": "denoise", "channels": 1}
    path = save_raw(tmp_path / "bad.pt", model, bad)
    with pytest.raises(CheckpointError, match=r"bad\.pt.*model 'gated-pixelrnn' with class 'MRPNet' \(a network of "
                                              r"model 'mrpnet'\)"):
        SupervisedRestorer(path, device="cpu")
    path = save_raw(tmp_path / "masked.pt", GatedPixelRNN(1, width=4), bad)
    with pytest.raises(CheckpointError, match=r"masked\.pt.*'gated-pixelrnn' for task 'denoise'.*completion only"):
        SupervisedRestorer(path, device="cpu")
    for prefill, task in (("telea", "completion"), ("diffusion", "denoise")):
        path = save_raw(tmp_path / f"bad_{prefill}.pt", model, dict(bad, model="mrpnet", task=task, prefill=prefill))
        with pytest.raises(CheckpointError, match=rf"bad_{prefill}\.pt.*prefill '{prefill}'"):
            SupervisedRestorer(path, device="cpu")
    wrong_channels = dict(bad, model="mrpnet", channels=3)
    path = save_raw(tmp_path / "bad3.pt", model, wrong_channels)
    with pytest.raises(CheckpointError, match=r"bad3\.pt"):
        SupervisedRestorer(path, device="cpu")


def test_mask_errors(checkpoints):
    completion = SupervisedRestorer(checkpoints["gated-completion"], device="cpu")
    denoiser = SupervisedRestorer(checkpoints["mrpnet-denoise"], device="cpu")
    image = _image(32, 32)
    with pytest.raises(ImageError, match="mask: required"):
        completion.restore(image)
    with pytest.raises(ImageError, match=r"does not match the image"):
        completion.restore(image, mask=np.zeros((32, 31), bool))
    with pytest.raises(ImageError, match="takes no mask"):
        denoiser.restore(image[..., :1], mask=np.zeros((32, 32), bool))
    with pytest.raises(ImageError, match="image"):
        denoiser.restore(np.zeros((32, 32, 4), np.float32))
    with pytest.raises(ImageError, match="NaN"):
        denoiser.restore(np.full((8, 8, 1), np.nan, np.float32))


def test_image_dtypes_and_ranges(checkpoints):
    """uint8 / uint16 are scaled by their range; other dtypes and out-of-range values are refused;
    a denoiser also takes unclipped noisy values (the DnCNN / PixelRL protocol)."""
    lowlight = SupervisedRestorer(checkpoints["combined-lowlight"], device="cpu")
    denoiser = SupervisedRestorer(checkpoints["mrpnet-denoise"], device="cpu")
    samples = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(lowlight.restore(samples), lowlight.restore(samples.astype(np.float32) / 255))
    np.testing.assert_array_equal(lowlight.restore(samples.astype(np.uint16) * 257),
                                  lowlight.restore(samples.astype(np.float32) / 255))
    for bad, found in ((samples.astype(bool), "dtype bool"), (samples.astype(np.int32), "dtype int32"),
                       (samples.astype(np.float32), "divide by 255"), (-samples.astype(np.float32) / 255, "span")):
        with pytest.raises(ImageError, match=found):
            lowlight.restore(bad)
    noisy = np.full((16, 16, 1), 0.5, np.float32)
    noisy[0, 0], noisy[0, 1] = -0.4, 1.4
    assert np.isfinite(denoiser.restore(noisy)).all()
    with pytest.raises(ImageError, match=r"values span \[-0.4, 1.4\]"):
        lowlight.restore(np.repeat(noisy, 3, axis=2))
    with pytest.raises(ImageError, match="torch.Tensor"):
        lowlight.restore(torch.rand(16, 16, 3))
    with pytest.raises(ImageError, match="span"):
        lowlight.restore_tensor(torch.full((1, 3, 8, 8), 2.0))


def test_missing_default_checkpoint_asks_for_one():
    if DEFAULT_DENOISE_CHECKPOINT.is_file():
        assert default_checkpoint("denoise") == DEFAULT_DENOISE_CHECKPOINT
        return
    with pytest.raises(CheckpointError, match="--checkpoint"):
        SupervisedRestorer(task="denoise", device="cpu")
    with pytest.raises(CheckpointError, match="lowlight"):
        default_checkpoint("lowlight")


# --- hole_mask -----------------------------------------------------------------------------------------
def _jpeg_round_trip(image: np.ndarray, tmp_path: Path) -> np.ndarray:
    path = tmp_path / "occluded.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(np.rint(image * 255).astype(np.uint8), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 90])
    return load_image(path)


def test_hole_mask_finds_a_black_square_next_to_dark_content(tmp_path):
    rng = np.random.default_rng(8)
    image = cv2.GaussianBlur(rng.uniform(0.3, 1.0, (96, 96, 3)).astype(np.float32), (5, 5), 1.5)
    image[60:90, 5:25] = 0.01  # a dark object, smaller than the hole
    truth = _square_mask(96, 96, top=20, left=40, size=33)
    image[truth] = 0.0
    mask = hole_mask(_jpeg_round_trip(image, tmp_path))
    assert mask.dtype == bool and mask.shape == (96, 96)
    assert np.array_equal(mask, truth)
    free = hole_mask(_jpeg_round_trip(image, tmp_path), shape="free")
    assert free[truth].mean() > 0.95 and free[70:80, 10:20].all()  # "free" keeps every region
    assert not hole_mask(np.full((32, 32, 3), 0.5, np.float32)).any()
    with pytest.raises(ValueError, match="threshold"):
        hole_mask(image, threshold=-0.1)
    samples = np.rint(image * 255).astype(np.uint8)  # a file's samples, read a band at a time: the same mask
    assert np.array_equal(hole_mask(samples), hole_mask(samples.astype(np.float32) / np.float32(255)))
    with pytest.raises(ImageError, match="float or uint8 / uint16 array"):
        hole_mask(np.zeros((8, 8, 3), np.int32))


def test_the_hole_of_every_example_photo_is_found(tmp_path):
    """The example photos' holes, the astronaut's next to its black background included (a bounding box
    of the largest dark region took in the background: 24% of the photo for a 6% hole)."""
    from rlenhance.data.samples import COLOR_PHOTOS, write_samples
    from rlenhance.io import load_mask

    write_samples(tmp_path, size=96)
    for name in COLOR_PHOTOS:
        found = find_hole(load_image(tmp_path / "occluded" / f"{name}.png"))
        assert np.array_equal(found.mask, load_mask(tmp_path / "masks" / f"{name}.png")), name
        assert (found.doubt is not None) == (name == "astronaut"), (name, found.doubt)
    assert "edge" in find_hole(load_image(tmp_path / "occluded" / "astronaut.png")).doubt


def test_the_hole_finder_says_when_it_is_unsure():
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.uniform(0.3, 1.0, (96, 96, 3)).astype(np.float32), (5, 5), 1.5)
    truth = _square_mask(96, 96, top=20, left=30, size=30)
    clean = image.copy()
    clean[truth] = 0.0
    assert find_hole(clean).doubt is None and np.array_equal(find_hole(clean).mask, truth)
    beside = clean.copy()
    beside[20:50, 60:90] = 0.05  # dark content along the hole's right edge, as dark as a JPEG hole
    found = find_hole(beside)
    assert "edge" in found.doubt and found.mask[truth].all()
    rival = clean.copy()
    rival[60:85, 60:85] = 0.0  # a second black square, nearly as large
    found = find_hole(rival)
    assert "which one is the hole" in found.doubt and np.array_equal(found.mask, truth)
    nothing = find_hole(np.full((32, 32, 3), 0.5, np.float32))
    assert not nothing.mask.any() and "nothing is filled" in nothing.doubt
    assert find_hole(rival, shape="free").doubt is None  # several regions are what "free" is for


def test_hole_mask_on_real_bedroom_images(shared_dir):
    root = shared_dir / "data" / "bedroom" / "train"
    names = sorted(p.name for p in (root / "original_images").iterdir())[:20]
    exact = 0
    for name in names:
        occluded = load_image(root / "occluded_images" / f"occluded_{name}")
        reference = estimate_occlusion_mask(occluded, load_image(root / "original_images" / name))
        mask = hole_mask(occluded)
        exact += int(np.array_equal(mask, reference))
        assert (mask & reference).sum() >= 0.9 * reference.sum(), name  # the hole is found
    assert exact >= 14


# --- the Restorer interface ----------------------------------------------------------------------------
def test_supervised_restorer_is_a_restorer(checkpoints):
    from rlenhance.restore import Restorer

    completion = SupervisedRestorer(checkpoints["gated-completion"], device="cpu")
    denoiser = SupervisedRestorer(checkpoints["mrpnet-denoise"], device="cpu")
    assert isinstance(completion, Restorer) and isinstance(denoiser, Restorer)
    assert completion.takes_mask and not denoiser.takes_mask
    assert not isinstance(object(), Restorer)


def test_as_mask_binarises_and_checks_the_size():
    from rlenhance.restore import MASK_THRESHOLD, as_mask

    soft = np.array([[0.0, MASK_THRESHOLD], [0.6, 1.0]], np.float32)
    np.testing.assert_array_equal(as_mask(soft), [[False, False], [True, True]])
    np.testing.assert_array_equal(as_mask(soft[..., None], size=(2, 2)), as_mask(soft))
    with pytest.raises(ImageError, match="does not match the image"):
        as_mask(soft, size=(2, 3))
    with pytest.raises(ImageError, match="bool or numeric"):
        as_mask(np.zeros((2, 2, 2), bool))


def test_hole_mask_lives_with_the_mask_code():
    """hole_mask is rlenhance.data.occluded's (next to estimate_occlusion_mask), re-exported here."""
    import rlenhance.data
    import rlenhance.data.occluded
    import rlenhance.restore

    assert rlenhance.restore.hole_mask is rlenhance.data.occluded.hole_mask is rlenhance.data.hole_mask
    assert rlenhance.restore.HOLE_THRESHOLD == rlenhance.data.occluded.HOLE_THRESHOLD


def test_a_super_resolution_checkpoint_restores_at_its_upscale(tmp_path):
    """The seed's 4x Generator (spec upscale 4): outputs 4x the input, tiled or whole, equal to the
    network called by hand; a spec whose upscale does not fit the network is refused."""
    torch.manual_seed(0)
    model = _randomise_batchnorm(CombinedModel(3, width=8, upscale=4)).eval()
    spec = SupervisedSpec(model="mrpnet", task="lowlight", channels=3, prefill="none", upscale=4)
    path = save_checkpoint(tmp_path / "sr.pt", model=model, arch=model.arch(), extra={"spec": spec})
    image = _image(21, 18, seed=6)
    whole = SupervisedRestorer(path, device="cpu", task="lowlight")
    assert whole.upscale == 4
    out = whole.restore(image)
    assert out.shape == (84, 72, 3) and out.dtype == np.float32
    x = F.pad(torch.from_numpy(image).permute(2, 0, 1)[None], (0, -18 % whole.stride, 0, -21 % whole.stride),
              mode="reflect")
    with torch.no_grad():
        direct = model(x)[..., :84, :72].clamp(0, 1)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, direct, atol=1e-5)
    tiled_out = SupervisedRestorer(path, device="cpu", task="lowlight", tile=8, overlap=24).restore(image)
    np.testing.assert_allclose(tiled_out, out, atol=1e-5)
    stale = SupervisedSpec(model="mrpnet", task="lowlight", channels=3, prefill="none")  # upscale 1
    save_checkpoint(tmp_path / "stale.pt", model=model, arch=model.arch(), extra={"spec": stale})
    with pytest.raises(CheckpointError, match="upscale 1 with a CombinedModel of upscale 4"):
        SupervisedRestorer(tmp_path / "stale.pt", device="cpu")


def test_the_networks_of_the_supervised_methods_are_the_registered_classes_of_their_name():
    """Every supervised method's network (the model its checkpoints' spec records) has classes in the one
    table of networks, rlenhance.models.MODELS, whose model_name it is; what a network reads besides the
    image is its class's alone (the restorer takes reads_mask / reads_noise_map from it)."""
    from rlenhance.models import MODELS, model_name

    classes = {}
    for _, cls in MODELS.items():
        classes.setdefault(model_name(cls), []).append(cls.__name__)
    assert {name: classes.get(name) for name in registry.supervised_models()} == {
        "mrpnet": ["MRPNet", "Generator", "CombinedModel"], "ffdnet": ["FFDNet"], "unet": ["CompletionUNet"],
        "gated-pixelrnn": ["GatedPixelRNN"], "pixelrnn": ["PixelRNN"]}
    assert [name for name in registry.supervised_models() if any(
        getattr(MODELS.get(cls), "reads_mask", False) for cls in classes[name])] == ["unet", "gated-pixelrnn"]
