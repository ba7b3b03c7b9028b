"""Tests for rlenhance.models.peers (Zero-DCE, Zero-DCE++, ReLLIE) and rlenhance.runtime."""

from rlenhance import runtime

runtime.flush_denormals()  # before any torch op: the official Zero-DCE weights are ~24% denormal

import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from rlenhance.errors import CheckpointError, ImageError  # noqa: E402
from rlenhance.models.peers import (  # noqa: E402
    RELLIE_NPZ_KEYS,
    ReLLIENet,
    ZeroDCE,
    ZeroDCEPP,
    _rellie_key_map,
    load_rellie,
    load_zero_dce,
    load_zero_dcepp,
    rellie_enhance,
)

ZERO_DCE_FILE = "zero_dce_Epoch99.pth"
ZERO_DCEPP_FILE = "zero_dcepp_Epoch99.pth"
RELLIE_FILE = "rellie_model.npz"


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- architecture facts

def test_parameter_counts_match_published():
    assert _n_params(ZeroDCE()) == 79_416
    assert _n_params(ZeroDCEPP()) == 10_561
    assert _n_params(ReLLIENet()) == 307_602


def test_output_shapes_and_ranges_random_init():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 24, 36)
    enhanced, alpha = ZeroDCE()(x)
    assert enhanced.shape == x.shape and alpha.shape == (2, 24, 24, 36)
    enhanced_pp, alpha_pp = ZeroDCEPP()(x)
    assert enhanced_pp.shape == x.shape and alpha_pp.shape == x.shape
    logits, value = ReLLIENet()(x)
    assert logits.shape == (2, 3, 27, 24, 36) and value.shape == (2, 1, 24, 36)
    for out in (enhanced, enhanced_pp):
        assert out.min() >= 0 and out.max() <= 1
    for a in (alpha, alpha_pp):
        assert a.abs().max() <= 1


def _oracle_curve(x: np.ndarray, r_maps: list) -> np.ndarray:
    """The official update x <- x + r (x^2 - x), written out in numpy."""
    for r in r_maps:
        x = x + r * (x * x - x)
    return x


def test_zero_dce_sign_convention_known_value():
    net = ZeroDCE()
    r_value = 0.5  # official r; our alpha = -r darkens
    with torch.no_grad():
        net.e_conv7.weight.zero_()
        net.e_conv7.bias.fill_(math.atanh(r_value))
    x = torch.full((1, 3, 5, 5), 0.5)
    enhanced, alpha = net(x)
    assert torch.allclose(alpha, torch.full_like(alpha, -r_value), atol=1e-6)
    expected = _oracle_curve(np.float64(0.5), [r_value] * 8)
    assert torch.allclose(enhanced, torch.full_like(x, float(expected)), atol=1e-6)
    assert expected < 0.5


def test_zero_dcepp_constant_map_is_shared_by_all_steps():
    net = ZeroDCEPP(scale_factor=4)
    with torch.no_grad():
        net.e_conv7.point_conv.weight.zero_()
        net.e_conv7.point_conv.bias.copy_(torch.tensor([-0.2, 0.4, -0.7]).atanh())
    x = torch.rand(1, 3, 20, 28)
    enhanced, alpha = net(x)
    r = torch.tensor([-0.2, 0.4, -0.7]).view(1, 3, 1, 1)
    assert torch.allclose(alpha, (-r).expand_as(alpha), atol=1e-6)
    expected = _oracle_curve(x.double().numpy(), [r.double().numpy()] * 8)
    assert np.allclose(enhanced.detach().double().numpy(), expected, atol=1e-6)


def test_zero_dcepp_any_size_keeps_size():
    x = torch.rand(1, 3, 29, 13)
    enhanced, alpha = ZeroDCEPP()(x)
    assert enhanced.shape == x.shape and alpha.shape == x.shape


def test_zero_dce_gradients_flow_to_input_and_weights():
    net = ZeroDCE()
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    enhanced, _ = net(x)
    enhanced.mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert net.e_conv1.weight.grad is not None and net.e_conv1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [torch.rand(3, 8, 8), torch.rand(1, 1, 8, 8), torch.randint(0, 255, (1, 3, 8, 8))])
def test_bad_input_raises_image_error(bad):
    for model in (ZeroDCE(), ZeroDCEPP(scale_factor=2)):
        with pytest.raises(ImageError, match=r"\(B, 3, H, W\)"):
            model(bad)
    with pytest.raises(ImageError):
        rellie_enhance(ReLLIENet(), bad)


def test_zero_dcepp_image_smaller_than_scale_factor():
    with pytest.raises(ImageError, match="scale_factor=12"):
        ZeroDCEPP()(torch.rand(1, 3, 11, 40))
    with pytest.raises(ValueError, match="scale_factor"):
        ZeroDCEPP(scale_factor=0)


def _fixed_action_rellie(actions: tuple) -> ReLLIENet:
    """A ReLLIENet whose head c always picks actions[c] (zero weights, one-hot bias)."""
    net = ReLLIENet()
    with torch.no_grad():
        for head, action in zip(net.policy_heads, actions):
            head.weight.zero_()
            head.bias.zero_()
            head.bias[action] = 1.0
    return net


def test_rellie_rollout_coupling_and_bgr_known_value():
    # Heads act on the network's BGR channels: blue -> a=26 (m=+1.0), green -> a=6 (m=0), red -> a=0 (m=-0.3).
    net = _fixed_action_rellie((26, 6, 0))
    x = torch.full((1, 3, 6, 6), 0.5)
    out = rellie_enhance(net, x, steps=1)
    m_b, m_g, m_r = 1.0, 0.0, -0.3
    alpha_bgr = [m_b, 0.9 * m_b + 0.1 * m_g, 0.9 * m_b + 0.1 * m_r]
    expected_bgr = [0.8 * (0.5 + a * 0.25) + 0.2 * 0.5 for a in alpha_bgr]
    expected_rgb = torch.tensor(expected_bgr[::-1]).view(1, 3, 1, 1).expand_as(x)
    assert torch.allclose(out, expected_rgb, atol=1e-6)  # R 0.674, G 0.68, B 0.7
    assert out[0, 2, 0, 0] > out[0, 1, 0, 0] > out[0, 0, 0, 0]


def test_rellie_rollout_steps():
    net = _fixed_action_rellie((16, 16, 16))  # m = 0.5 everywhere, coupled alpha = 0.5
    x = torch.rand(1, 3, 5, 7)
    assert torch.equal(rellie_enhance(net, x, steps=0), x)
    expected = x.double()
    for _ in range(3):
        expected = 0.8 * (expected + 0.5 * expected * (1 - expected)) + 0.2 * expected
    assert torch.allclose(rellie_enhance(net, x, steps=3).double(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="steps"):
        rellie_enhance(net, x, steps=-1)


# ---------------------------------------------------------------- official weights

def _sice_low(shared_dir, size: int) -> torch.Tensor:
    folder = shared_dir / "data" / "sice_pairs" / "train" / "low"
    first = sorted(folder.iterdir())[0]
    bgr = cv2.imread(str(first), cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0


def _weights(shared_dir, name):
    path = shared_dir / "weights" / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="module")
def official(shared_dir):
    return {
        "zero_dce": load_zero_dce(_weights(shared_dir, ZERO_DCE_FILE)),
        "zero_dcepp": load_zero_dcepp(_weights(shared_dir, ZERO_DCEPP_FILE)),
        "rellie": load_rellie(_weights(shared_dir, RELLIE_FILE)),
    }


def test_official_weights_brighten_a_real_low_light_image(shared_dir, official):
    x = _sice_low(shared_dir, 128)
    with torch.no_grad():
        outputs = {
            "zero_dce": official["zero_dce"](x)[0],
            "zero_dcepp": official["zero_dcepp"](x)[0],
            "rellie": rellie_enhance(official["rellie"], x),
        }
    for name, out in outputs.items():
        assert out.shape == x.shape, name
        assert out.min() >= 0 and out.max() <= 1, name
        assert out.mean() > x.mean() + 0.1, (name, x.mean().item(), out.mean().item())


def _dce_net(conv, x: torch.Tensor) -> torch.Tensor:
    """DCE-Net's seven convolutions ``conv(h, i)`` with the official skip connections: the curve maps, tanh."""
    x1 = F.relu(conv(x, 1))
    x2 = F.relu(conv(x1, 2))
    x3 = F.relu(conv(x2, 3))
    x4 = F.relu(conv(x3, 4))
    x5 = F.relu(conv(torch.cat([x3, x4], 1), 5))
    x6 = F.relu(conv(torch.cat([x2, x5], 1), 6))
    return torch.tanh(conv(torch.cat([x1, x6], 1), 7))


def _zero_dce_oracle(state: dict, x: torch.Tensor) -> torch.Tensor:
    """The official Zero-DCE forward, written with functional ops on the raw state_dict."""
    def conv(h, i):
        return F.conv2d(h, state[f"e_conv{i}.weight"], state[f"e_conv{i}.bias"], padding=1)
    r = _dce_net(conv, x)
    for r_t in torch.split(r, 3, dim=1):
        x = x + r_t * (x * x - x)
    return x


def _zero_dcepp_oracle(state: dict, x: torch.Tensor, scale: int = 12) -> torch.Tensor:
    """The official Zero-DCE++ forward (scale_factor 12, H and W multiples of 12)."""
    def conv(h, i):
        h = F.conv2d(h, state[f"e_conv{i}.depth_conv.weight"], state[f"e_conv{i}.depth_conv.bias"],
                     padding=1, groups=h.shape[1])
        return F.conv2d(h, state[f"e_conv{i}.point_conv.weight"], state[f"e_conv{i}.point_conv.bias"])
    small = F.interpolate(x, scale_factor=1 / scale, mode="bilinear")
    r = torch.nn.UpsamplingBilinear2d(scale_factor=scale)(_dce_net(conv, small))
    for _ in range(8):
        x = x + r * (x * x - x)
    return x


def test_official_zero_dce_matches_reference_forward(shared_dir, official):
    state = torch.load(_weights(shared_dir, ZERO_DCE_FILE), map_location="cpu", weights_only=True)
    x = _sice_low(shared_dir, 48)
    with torch.no_grad():
        assert torch.allclose(official["zero_dce"](x)[0], _zero_dce_oracle(state, x), atol=1e-5)


def test_official_zero_dcepp_matches_reference_forward(shared_dir, official):
    state = torch.load(_weights(shared_dir, ZERO_DCEPP_FILE), map_location="cpu", weights_only=True)
    x = _sice_low(shared_dir, 48)  # a multiple of 12, as the official test script crops to
    with torch.no_grad():
        assert torch.allclose(official["zero_dcepp"](x)[0], _zero_dcepp_oracle(state, x), atol=1e-5)


def test_official_rellie_matches_numpy_rollout(shared_dir, official):
    """Released pipeline: BGR state, Chainer-layout conv weights, step_el's coupling and damping."""
    arrays = dict(np.load(_weights(shared_dir, RELLIE_FILE)))
    x = _sice_low(shared_dir, 40)

    def conv(h, name, dilation=1):
        w, b = torch.from_numpy(arrays[f"{name}/W"]), torch.from_numpy(arrays[f"{name}/b"])
        return F.conv2d(h, w, b, padding=dilation, dilation=dilation)

    state = x[:, [2, 1, 0]].numpy().copy()  # what cv2.imread gives the released code
    for _ in range(2):
        h = torch.from_numpy(state)
        h = F.relu(conv(h, "conv1"))
        for k, d in ((2, 2), (3, 3), (4, 4)):
            h = F.relu(conv(h, f"diconv{k}/diconv", d))
        h = F.relu(conv(h, "diconv5_pi/diconv", 3))
        h = F.relu(conv(h, "diconv6_pi/diconv", 2))
        acts = np.stack([conv(h, f"conv7_{c}_pi/model").argmax(1).numpy() for c in "rgb"], axis=1)
        moves = (acts.astype(np.float32) - 6) / 20
        c0, c1, c2 = state[:, 0], state[:, 1], state[:, 2]
        moved = np.stack([c0 + moves[:, 0] * c0 * (1 - c0),
                          c1 + (0.1 * moves[:, 1] + 0.9 * moves[:, 0]) * c1 * (1 - c1),
                          c2 + (0.1 * moves[:, 2] + 0.9 * moves[:, 0]) * c2 * (1 - c2)], axis=1)
        state = 0.8 * moved + 0.2 * state
    expected_rgb = torch.from_numpy(state[:, ::-1].copy())
    assert torch.allclose(rellie_enhance(official["rellie"], x, steps=2), expected_rgb, atol=1e-5)


def test_subnormal_flush_does_not_change_outputs(shared_dir, official):
    raw = load_zero_dce(_weights(shared_dir, ZERO_DCE_FILE), flush_subnormals=False)
    x = _sice_low(shared_dir, 32)
    with torch.no_grad():
        assert torch.allclose(raw(x)[0], official["zero_dce"](x)[0], atol=1e-6)


# ---------------------------------------------------------------- broken weights

def test_nan_weights_are_refused(shared_dir, tmp_path):
    state = torch.load(_weights(shared_dir, ZERO_DCE_FILE), map_location="cpu", weights_only=True)
    state["e_conv5.bias"][3] = float("nan")
    path = tmp_path / "nan.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="'e_conv5.bias'") as info:
        load_zero_dce(path)
    assert str(path) in str(info.value)

    arrays = dict(np.load(_weights(shared_dir, RELLIE_FILE)))
    arrays["diconv3/diconv/W"][0, 0, 0, 0] = np.inf
    npz = tmp_path / "inf.npz"
    np.savez(npz, **arrays)
    with pytest.raises(CheckpointError, match="'diconv3/diconv/W'"):
        load_rellie(npz)


def test_truncated_and_mismatched_weights_are_refused(shared_dir, tmp_path):
    source = _weights(shared_dir, ZERO_DCEPP_FILE)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(source.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="cannot be read") as info:
        load_zero_dcepp(cut)
    assert str(cut) in str(info.value)
    with pytest.raises(CheckpointError, match="do not fit ZeroDCE"):
        load_zero_dce(source)  # Zero-DCE++ weights into Zero-DCE
    with pytest.raises(CheckpointError, match="absent.pth: no such file"):
        load_zero_dce(tmp_path / "absent.pth")

    rellie = _weights(shared_dir, RELLIE_FILE)
    cut_npz = tmp_path / "cut.npz"
    cut_npz.write_bytes(rellie.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="npz"):
        load_rellie(cut_npz)
    copy = tmp_path / "copy.npz"
    shutil.copy(rellie, copy)
    arrays = dict(np.load(copy))
    del arrays["conv7_V/b"]
    np.savez(copy, **arrays)
    with pytest.raises(CheckpointError, match=r"missing arrays \['conv7_V/b'\]"):
        load_rellie(copy)
    assert len(RELLIE_NPZ_KEYS) == 24 and set(RELLIE_NPZ_KEYS) == set(np.load(rellie).files)


def test_a_rellie_npz_is_checked_before_its_members_are_read(tmp_path, peak_memory):
    net = ReLLIENet()
    state = {name: tensor.numpy() for name, tensor in net.state_dict().items()}
    arrays = {chainer: state[ours] for chainer, ours in _rellie_key_map().items()}
    path = tmp_path / "model.npz"
    np.savez_compressed(path, **arrays)
    loaded = load_rellie(path, flush_subnormals=False)
    assert all(torch.equal(loaded.state_dict()[name], tensor) for name, tensor in net.state_dict().items())
    zeros = np.zeros(2**24, np.float32)  # 64 MiB that deflate to ~64 KB
    for changes, message in (({"extra": zeros}, r"not the released ReLLIE layout: missing arrays \[\], unexpected "
                                                r"arrays \['extra'\]"),
                             ({"conv1/b": zeros}, r"member 'conv1/b\.npy' declares 67,108,9\d\d bytes uncompressed")):
        np.savez_compressed(tmp_path / "bomb.npz", **{**arrays, **changes})
        with peak_memory() as peak, pytest.raises(CheckpointError, match=rf"bomb\.npz: {message}"):
            load_rellie(tmp_path / "bomb.npz")
        assert peak.bytes < 2**24


# ---------------------------------------------------------------- runtime

def test_flush_denormals_flushes_on_this_thread():
    assert runtime.flush_denormals() is True  # x86 with SSE3
    assert (torch.tensor([1e-40]) * 1.0).item() == 0.0


def test_select_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.select_device().type == expected
    assert runtime.select_device(" CPU ") == torch.device("cpu")
    assert runtime.select_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match='accepted: "auto"'):
        runtime.select_device("gpu")
    with pytest.raises(ValueError, match="accepted"):
        runtime.select_device("cuda:x")
    with pytest.raises(ValueError, match="string or torch.device"):
        runtime.select_device(0)
    if not torch.cuda.is_available():
        for spec in ("cuda", "cuda:1"):
            with pytest.raises(ValueError, match="CUDA is not available"):
                runtime.select_device(spec)


def test_seed_everything_reproduces_all_generators():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))
    runtime.seed_everything(123)
    first = draw()
    runtime.seed_everything(123)
    assert draw() == first
    runtime.seed_everything(124)
    assert draw() != first
    for bad in (-1, 2**32, 1.5, "7", True):
        with pytest.raises(ValueError, match="seed"):
            runtime.seed_everything(bad)


def test_flush_denormals_before_first_op_covers_worker_threads():
    """Calling it at import time (before torch's thread pool starts) flushes in every thread."""
    code = (
        "from rlenhance import runtime; runtime.flush_denormals()\n"
        "import torch; torch.set_num_threads(2)\n"
        "den = torch.full((1_000_000,), 1 << 20, dtype=torch.int32).view(torch.float32)  # denormal bits\n"
        "print(int(((den * 1.0).view(torch.int32) != 0).sum()))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"
