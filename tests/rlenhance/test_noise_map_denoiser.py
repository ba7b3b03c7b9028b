"""ReLLIE's noise-map denoiser end to end: the checkpoint spec that records it, SupervisedRestorer
feeding it a map (and refusing it where no map comes, or a plain model where one is required), the
Enhancer computing the map from its curve steps, and ``rlenhance enhance --denoiser --noise-sigma``."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rlenhance.checkpoint import SupervisedSpec, save_checkpoint
from rlenhance.cli import main
from rlenhance.data import BuiltinImages, noise_level_map
from rlenhance.denoisers import DENOISER_CHECKPOINTS, load_denoiser
from rlenhance.enhance import DARK_NOISE_SIGMA, Enhancer
from rlenhance.errors import CheckpointError, ImageError
from rlenhance.io import load_image, save_image
from rlenhance.models.ffdnet import FFDNet
from rlenhance.models.mrpnet import MRPNet
from rlenhance.models.policy import PixelActorCritic
from rlenhance.models.vae import d4_inverse, d4_transform
from rlenhance.ops import le_curve, le_gain
from rlenhance.restore import ENSEMBLES, OPPONENT_COLOUR, OPPONENT_OFFSET, SupervisedRestorer
from tests.specs import lowlight_spec

SIGMA = 12.0  # the denoiser's trained largest dark-level noise
POLICY_SPEC = lowlight_spec(
    alpha_table=[round((a - 6) / 20, 2) for a in range(27)], damping=0.2, action_type="discrete", test_steps=3,
    alpha_mode="mean", cond_fields=[], cond_scale=[], cond_offset=[],
    setting={"exposure_target": 0.6, "w_exposure": 10.0, "w_color": 5.0, "w_spatial": 1.0, "w_smooth": 20.0},
    observe_exposure_gap=False, max_side=None, conditioned=False)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """A tiny FFDNet (as supervised_train --model ffdnet saves it), a plain MRPNet denoiser and a policy
    whose head gain makes its alphas differ across the image."""
    folder = tmp_path_factory.mktemp("noise_map")
    torch.manual_seed(0)
    ffdnet = FFDNet(1, width=8, depth=3)
    ffdnet_spec = SupervisedSpec(model="ffdnet", task="denoise", channels=1, prefill="none", noise="amplified",
                                 sigma=SIGMA)
    mrpnet = MRPNet(1, width=8)
    mrpnet_spec = SupervisedSpec(model="mrpnet", task="denoise", channels=1, prefill="none", noise="gaussian",
                                 sigma=25.0)
    policy = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2, policy_head_gain=3.0)
    return {
        "ffdnet": save_checkpoint(folder / "ffdnet.pt", model=ffdnet, arch=ffdnet.arch(), extra={"spec": ffdnet_spec}),
        "mrpnet": save_checkpoint(folder / "mrpnet.pt", model=mrpnet, arch=mrpnet.arch(), extra={"spec": mrpnet_spec}),
        "policy": save_checkpoint(folder / "policy.pt", model=policy, arch=policy.arch(), extra={"spec": POLICY_SPEC}),
    }


def _image(height=37, width=53, channels=3, seed=0, high=0.3):
    return np.random.default_rng(seed).uniform(0.0, high, (height, width, channels)).astype(np.float32)


# --- the spec -------------------------------------------------------------------------------------------
def test_the_spec_records_the_noise_and_a_plain_denoiser_none():
    spec = SupervisedSpec(model="ffdnet", task="denoise", channels=1, prefill="none", noise="amplified", sigma=10.0)
    assert spec.noise_map_problems() == [] and SupervisedSpec.from_dict(spec.to_dict()) == spec
    plain = SupervisedSpec(model="mrpnet", task="denoise", channels=1, prefill="none")
    assert SupervisedSpec.from_dict(plain.to_dict()) == plain
    assert (plain.noise, plain.sigma) == (None, None) and plain.noise_map_problems()
    without = plain.to_dict()
    del without["noise"]
    with pytest.raises(CheckpointError, match=r"missing key\(s\) \['noise'\]"):
        SupervisedSpec.from_dict(without)


def test_the_spec_of_an_ffdnet_on_gaussian_noise_records_its_levels():
    spec = SupervisedSpec(model="ffdnet", task="denoise", channels=1, prefill="none", noise="gaussian", sigma=75.0,
                          sigmas=(0.0, 15.0, 75.0))
    assert spec.noise_map_problems() == [] and SupervisedSpec.from_dict(spec.to_dict()) == spec
    spec = SupervisedSpec(model="ffdnet", task="denoise", channels=1, prefill="none", noise="gaussian")
    assert "a noise-map network with task 'denoise', noise 'gaussian', sigma None" in spec.noise_map_problems()[0]


@pytest.mark.parametrize("changes, match, where", [
    ({"noise": None, "sigma": None}, "a noise-map network with task 'denoise', noise None", "network"),
    ({"variant": "seed"}, "accepted: task 'denoise', noise 'gaussian' or 'amplified' with sigma > 0, variant",
     "network"),
    ({"sigma": 0.0}, "sigma 0.0", "network"),
    ({"task": "lowlight"}, "unless the task is denoise", "spec"),
    ({"noise": "speckle"}, r"noise 'speckle' \(accepted: \('gaussian', 'amplified'\)", "spec"),
])
def test_spec_rules_of_the_noise_map_model(changes, match, where, tmp_path):
    """The spec's own rules refuse it when it is built; those a network that reads a noise-level map
    (FFDNet's class) puts on it refuse the checkpoint when the restorer builds the network."""
    fields = {"model": "ffdnet", "task": "denoise", "channels": 1, "prefill": "none", "noise": "amplified",
              "sigma": 10.0, **changes}
    if where == "spec":
        with pytest.raises(CheckpointError, match=match):
            SupervisedSpec(**fields)
        return
    net = FFDNet(1, width=4, depth=2)
    path = save_checkpoint(tmp_path / "f.pt", model=net, arch=net.arch(), extra={"spec": SupervisedSpec(**fields)})
    with pytest.raises(CheckpointError, match=match):
        SupervisedRestorer(path, device="cpu", noise_map=True)


# --- SupervisedRestorer ---------------------------------------------------------------------------------------
def test_a_noise_map_denoiser_is_refused_where_no_map_comes_and_a_plain_one_where_one_is_required(ckpts):
    with pytest.raises(CheckpointError, match=r"ffdnet\.pt: a noise-map denoiser .* rlenhance enhance --denoiser"):
        SupervisedRestorer(ckpts["ffdnet"], device="cpu", task="denoise")  # the default: no map given
    with pytest.raises(CheckpointError, match=r"mrpnet\.pt: a plain denoise model .* --model ffdnet"):
        SupervisedRestorer(ckpts["mrpnet"], device="cpu", noise_map=True)
    with pytest.raises(ValueError, match="noise_map: expected True, False or None"):
        SupervisedRestorer(ckpts["mrpnet"], device="cpu", noise_map="yes")
    either = [SupervisedRestorer(ckpts[name], device="cpu", noise_map=None) for name in ("ffdnet", "mrpnet")]
    assert [r.needs_noise_map for r in either] == [True, False]


def test_restore_feeds_the_map_and_tiles_on_the_unshuffle_grid(ckpts):
    """restore(image, noise_map=...) is the network on (image, map), clamped, for an odd size; tiles
    of an odd side are rounded to the 2x2 blocks, so a tiled pass equals the whole one."""
    restorer = SupervisedRestorer(ckpts["ffdnet"], device="cpu", noise_map=True)
    assert restorer.stride == 2
    image = _image(channels=1, high=1.0)
    levels = _image(channels=1, seed=1, high=0.1)[..., 0]
    out = restorer.restore(image, noise_map=levels)
    x, m = (torch.from_numpy(a).permute(2, 0, 1)[None] for a in (image, levels[..., None]))
    with torch.no_grad():
        direct = restorer.model(x, m).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, direct, atol=1e-6)
    tiled = SupervisedRestorer(ckpts["ffdnet"], device="cpu", noise_map=True, tile=15, overlap=16)
    assert tiled.tile == 16
    np.testing.assert_allclose(tiled.restore(image, noise_map=levels), out, atol=1e-5)
    assert np.abs(restorer.restore(image, noise_map=levels * 3) - out).max() > 1e-4  # the map is read


@pytest.mark.parametrize("ensemble", [2, 4, 8])
def test_the_self_ensemble_is_the_mean_over_its_transforms_and_equivariant_to_them(ckpts, ensemble):
    """ensemble=n: the clamped mean of the network over the n transforms of ENSEMBLES (each turned
    back), so the output turns with the input under those transforms (exactly, on sides that need no
    padding), and not under the others; tiled as whole; 1 is the plain network."""
    image = _image(height=36, width=52, channels=1, high=1.0)
    levels = _image(height=36, width=52, channels=1, seed=1, high=0.1)
    restorer = SupervisedRestorer(ckpts["ffdnet"], device="cpu", noise_map=True, ensemble=ensemble)
    out = restorer.restore(image, noise_map=levels[..., 0])
    x, m = (torch.from_numpy(a).permute(2, 0, 1)[None] for a in (image, levels))
    with torch.no_grad():
        mean = sum(d4_inverse(restorer.model(d4_transform(x, g), d4_transform(m, g)), g) for g in ENSEMBLES[ensemble])
    np.testing.assert_allclose(out[..., 0], (mean / ensemble).clamp(0, 1)[0, 0].numpy(), atol=1e-6)
    plain = SupervisedRestorer(ckpts["ffdnet"], device="cpu", noise_map=True).restore(image, noise_map=levels[..., 0])
    assert np.abs(out - plain).max() > 1e-3
    for g in range(8):
        turned = restorer.restore(d4_transform(x, g)[0].permute(1, 2, 0).numpy(),
                                  noise_map=d4_transform(m, g)[0, 0].numpy())
        gap = np.abs(turned[..., 0] - d4_transform(torch.from_numpy(out[..., 0]), g).numpy()).max()
        assert gap < 1e-5 if g in ENSEMBLES[ensemble] else gap > 1e-3, (g, gap)
    tiled = SupervisedRestorer(ckpts["ffdnet"], device="cpu", noise_map=True, ensemble=ensemble, tile=16, overlap=16)
    np.testing.assert_allclose(tiled.restore(image, noise_map=levels[..., 0]), out, atol=1e-5)


@pytest.mark.parametrize("ensemble", [0, 3, 16, True, "2", None])
def test_a_self_ensemble_size_outside_one_two_four_eight_is_refused(ckpts, ensemble):
    with pytest.raises(ValueError, match=r"ensemble: expected one of \(1, 2, 4, 8\)"):
        SupervisedRestorer(ckpts["mrpnet"], device="cpu", ensemble=ensemble)
    with pytest.raises(ValueError, match=r"ensemble: expected one of \(1, 2, 4, 8\)"):
        load_denoiser("ffdnet", ckpts["ffdnet"], ensemble=ensemble)


def test_per_channel_colour_reads_each_channels_level(ckpts):
    restorer = SupervisedRestorer(ckpts["ffdnet"], device="cpu", noise_map=None)
    image, levels = _image(high=1.0), _image(seed=2, high=0.1)
    out = restorer.restore(image, per_channel=True, noise_map=levels)
    for c in range(3):
        np.testing.assert_allclose(out[..., c], restorer.restore(image[..., c], noise_map=levels[..., c])[..., 0],
                                   atol=1e-6)
    shared = restorer.restore(image, per_channel=True, noise_map=levels[..., :1])  # one level for all planes
    np.testing.assert_allclose(shared[..., 1], restorer.restore(image[..., 1], noise_map=levels[..., 0])[..., 0],
                               atol=1e-6)


def test_a_gray_model_on_colour_denoises_the_opponent_planes_at_their_levels(ckpts, monkeypatch):
    """Without per_channel: BM3D's opponent planes (shifted into [0, 1]) denoised as gray images,
    each with its level sqrt(sum_c A_kc^2 sigma_c^2), and mapped back to RGB."""
    restorer = SupervisedRestorer(ckpts["ffdnet"], device="cpu", noise_map=True)
    image, levels = _image(high=1.0), _image(seed=2, high=0.1)
    transform, offset = np.asarray(OPPONENT_COLOUR, np.float32), np.asarray(OPPONENT_OFFSET, np.float32)
    planes, plane_levels = image @ transform.T + offset, np.sqrt(levels ** 2 @ (transform ** 2).T)
    assert planes.min() >= 0 and planes.max() <= 1
    out = restorer.restore(image, noise_map=levels)
    assert out.shape == image.shape and out.dtype == np.float32
    denoised = np.concatenate([restorer.restore(planes[..., k], noise_map=plane_levels[..., k]) for k in range(3)],
                              axis=-1)
    np.testing.assert_allclose(out, np.clip((denoised - offset) @ np.linalg.inv(transform).T, 0, 1), atol=1e-5)
    one_level = restorer.restore(image, noise_map=levels[..., :1])  # one level for every channel
    assert np.abs(one_level - out).max() > 1e-4
    monkeypatch.setattr(restorer, "_net", lambda window, second=None: window)  # a model returning its input
    np.testing.assert_allclose(restorer.restore(image, noise_map=levels), image, atol=1e-6)  # the transform round-trips


def test_the_shipped_gray_ffdnet_denoises_colour_better_in_opponent_planes_than_per_channel():
    denoiser = load_denoiser("ffdnet", channels=1, device="cpu", sigma=25)
    clean = BuiltinImages(names=["coffee"], gray=False)[0]["high"][:, 64:160, 64:192]
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0)) * 25 / 255
    noisy, reference = (clean + noise).permute(1, 2, 0).numpy(), clean.permute(1, 2, 0).numpy()
    psnr = {route: -10 * np.log10(((denoiser.restore(noisy, per_channel=route == "rgb") - reference) ** 2).mean())
            for route in ("opponent", "rgb")}
    assert psnr["opponent"] >= psnr["rgb"] + 0.5, psnr


def test_noise_map_errors_name_what_is_wrong(ckpts):
    ffdnet = SupervisedRestorer(ckpts["ffdnet"], device="cpu", noise_map=True)
    plain = SupervisedRestorer(ckpts["mrpnet"], device="cpu")
    image = _image(16, 16, channels=1)
    with pytest.raises(ImageError, match="noise_map: required by .*ffdnet.pt .*rlenhance.Enhancer"):
        ffdnet.restore(image)
    with pytest.raises(ImageError, match="noise_map: given, but .*mrpnet.pt is a plain denoise model"):
        plain.restore(image, noise_map=np.zeros((16, 16), np.float32))
    with pytest.raises(ImageError, match=r"noise_map: \(1, 1, 16, 15\) does not fit the image"):
        ffdnet.restore(image, noise_map=np.zeros((16, 15), np.float32))
    with pytest.raises(ImageError, match="finite noise levels >= 0"):
        ffdnet.restore(image, noise_map=np.full((16, 16), -0.1, np.float32))
    with pytest.raises(ImageError, match="noise_map: expected an array"):
        ffdnet.restore(image, noise_map=[[0.1]])


# --- the Enhancer computes the map from its curve steps -----------------------------------------------------
def test_enhancer_feeds_sigma_times_the_brightening_of_each_pixel(ckpts):
    """denoise(enhance(x), map = noise_sigma / 255 * prod_t le_gain(x_t, alpha_t)), computed by hand
    from the policy's alpha maps; the brightening varies across the image, and the map with it."""
    image = _image()
    plain = Enhancer(ckpts["policy"], device="cpu", max_side=20, denoise=0)
    enhancer = Enhancer(ckpts["policy"], device="cpu", max_side=20, denoiser=ckpts["ffdnet"], noise_sigma=9.0)
    assert enhancer.noise_sigma == 9.0
    result = enhancer.enhance_array(image)
    full = torch.from_numpy(image).permute(2, 0, 1)[None]
    current, gain = full, torch.ones_like(full)
    for alpha in plain.alpha_maps(full, plain.cond()):
        up = F.interpolate(alpha, size=image.shape[:2], mode="bilinear", align_corners=False)
        gain, current = gain * le_gain(current, up), le_curve(current, up).clamp(0, 1)
    assert float(gain.max()) > 1.2 * float(gain.min()) > 1.0  # brightened, unevenly
    levels = noise_level_map(gain, 9.0)[0].permute(1, 2, 0).numpy()
    enhanced = current[0].permute(1, 2, 0).numpy()
    # a gray noise-map denoiser: the opponent colour planes, each at its level (not R, G and B apart)
    manual = enhancer.denoiser.restore(enhanced, noise_map=levels)
    np.testing.assert_allclose(result.image, manual, atol=1e-5)
    per_channel = enhancer.denoiser.restore(enhanced, per_channel=True, noise_map=levels)
    assert np.abs(per_channel - manual).max() > 1e-4
    np.testing.assert_allclose(plain.enhance(image), enhanced, atol=1e-5)
    other = Enhancer(ckpts["policy"], device="cpu", max_side=20, denoiser=ckpts["ffdnet"], noise_sigma=1.0)
    assert np.abs(other.enhance(image) - result.image).max() > 1e-4  # the level reaches the denoiser


def test_noise_sigma_defaults_to_half_the_trained_range_and_is_refused_elsewhere(ckpts):
    """Amplified-noise training: half its largest level; Gaussian training (the shipped blind
    FFDNet, sigma 0-75): DARK_NOISE_SIGMA, within its levels."""
    assert Enhancer(ckpts["policy"], device="cpu", denoiser=ckpts["ffdnet"]).noise_sigma == SIGMA / 2
    shipped = DENOISER_CHECKPOINTS["ffdnet", 1]
    assert Enhancer(ckpts["policy"], device="cpu", denoiser=shipped).noise_sigma == DARK_NOISE_SIGMA == 4.0
    assert Enhancer(ckpts["policy"], device="cpu", denoiser=ckpts["mrpnet"]).noise_sigma is None
    with pytest.raises(ValueError, match=r"noise_sigma: expected a number in \[0, 12\] .*ffdnet.pt.*got 13"):
        Enhancer(ckpts["policy"], device="cpu", denoiser=ckpts["ffdnet"], noise_sigma=13)
    with pytest.raises(ValueError, match=r"noise_sigma: read by a noise-map denoiser only .*mrpnet\.pt is a plain"):
        Enhancer(ckpts["policy"], device="cpu", denoiser=ckpts["mrpnet"], noise_sigma=5.0)
    with pytest.raises(ValueError, match="noise_sigma: read by a noise-map denoiser only .*no denoiser is given"):
        Enhancer(ckpts["policy"], device="cpu", noise_sigma=5.0)


# --- the command line ---------------------------------------------------------------------------------------------
def test_cli_enhance_drives_a_noise_map_denoiser_and_refuses_it_without_curves(ckpts, tmp_path, capsys):
    source = tmp_path / "dark.png"
    save_image(source, _image(24, 32))
    common = ["--checkpoint", str(ckpts["policy"]), "--denoiser", str(ckpts["ffdnet"]), "--device", "cpu"]
    outs = {}
    for sigma in ("2", "10"):
        out = tmp_path / f"out{sigma}"
        assert main(["enhance", str(source), "-o", str(out), *common, "--noise-sigma", sigma]) == 0
        outs[sigma] = load_image(out / "dark.png")
    assert np.abs(outs["2"] - outs["10"]).max() > 0  # --noise-sigma reaches the map
    expected = Enhancer(ckpts["policy"], device="cpu", denoiser=ckpts["ffdnet"], noise_sigma=10.0).enhance(
        load_image(source))
    np.testing.assert_allclose(outs["10"], expected, atol=1 / 255 + 1e-6)
    capsys.readouterr()
    assert main(["enhance", str(source), "-o", str(tmp_path / "x"), *common, "--noise-sigma", "99"]) == 2
    assert "noise_sigma: expected a number in [0, 12]" in capsys.readouterr().err
    lowlight = tmp_path / "lowlight.pt"
    model = MRPNet(3, width=4)
    save_checkpoint(lowlight, model=model, arch=model.arch(),
                    extra={"spec": SupervisedSpec(model="mrpnet", task="lowlight", channels=3, prefill="none")})
    assert main(["enhance", str(source), "-o", str(tmp_path / "y"), "--model", "mrpnet", "--checkpoint",
                 str(lowlight), "--denoiser", str(ckpts["ffdnet"]), "--device", "cpu"]) == 2
    assert "a noise-map denoiser" in capsys.readouterr().err
    assert main(["denoise", str(source), "-o", str(tmp_path / "z"), "--checkpoint", str(ckpts["ffdnet"]),
                 "--model", "mrpnet", "--device", "cpu"]) == 2
    assert "does not supply" in capsys.readouterr().err
    # without --model, the checkpoint's own kind: the noise-map denoiser at each image's estimated level
    assert main(["denoise", str(source), "-o", str(tmp_path / "z"), "--checkpoint", str(ckpts["ffdnet"]),
                 "--device", "cpu"]) == 0
    np.testing.assert_allclose(load_image(tmp_path / "z" / "dark.png"), load_denoiser(
        "ffdnet", ckpts["ffdnet"], device="cpu").restore(load_image(source)), atol=1 / 255 + 1e-6)
