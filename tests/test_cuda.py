r"""What needs a CUDA device (every test here skips without one): CUDA gives the CPU's results (the
shipped Enhancer and denoisers, an A3C loss and its gradients, the envs' starts), and the trainers run
on CUDA, as one process and under torchrun, writing checkpoints that load on the CPU. Each takes
seconds on a GPU.

    python -m pytest -p no:xdist -q -k cuda tests/test_cuda.py tests/agents/test_sac.py \
        tests/rlenhance/test_data_degrade.py

(``-k cuda`` also selects the CUDA tests that live next to the code they test.) On Ampere and later
GPUs cuDNN's convolutions round float32 to TF32 (10-bit mantissas) by default; the comparisons run
with TF32 off (:func:`full_float32`), so CUDA and the CPU differ by float rounding alone.
"""

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import envs
from agents.a3c import A3C, A3CConfig, a3c_loss, nstep_returns, policy_kwargs_from_env
from experiments import denoise_train, lol_train
from rlenhance import Enhancer, load_denoiser
from rlenhance.checkpoint import load_checkpoint
from rlenhance.data import BuiltinImages, add_gaussian_noise
from rlenhance.metrics import psnr
from rlenhance.models.policy import PixelActorCritic, build_policy_input

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

ROOT = Path(__file__).resolve().parents[1]
#: Two-episode runs on the embedded photos, one evaluation at the end.
LOL_TINY = ["--preset", "global-light", "--episodes", "2", "--eval-every", "2", "--batch", "2", "--crop", "32",
            "--steps", "2", "--test-steps", "2", "--eval-size", "48", "--width", "8", "--samples", "0", "--threads",
            "1", "--device", "cuda", "--set", "task.min_steps=none"]
DENOISE_TINY = ["--episodes", "2", "--eval-every", "2", "--batch", "2", "--crop", "16", "--steps", "2", "--width", "8",
                "--eval-images", "1", "--samples", "0", "--threads", "1", "--device", "cuda"]


@pytest.fixture
def full_float32():
    """cuDNN's convolutions in full float32 (no TF32) for the test; torch's own defaults afterwards."""
    with torch.backends.cudnn.flags(enabled=None, benchmark=None, deterministic=None, allow_tf32=False):
        yield


def noisy_camera(height=48, width=64, sigma=25.0):
    """(clean, noisy): a crop of scikit-image's camera, float32 (H, W, 1); noisy has Gaussian noise
    of ``sigma`` (0-255 scale), not clipped."""
    clean = BuiltinImages(names=["camera"], gray=True)[0]["high"][None, :, 200:200 + height, 200:200 + width]
    noisy = add_gaussian_noise(clean, sigma, generator=torch.Generator().manual_seed(0))
    return tuple(t[0].permute(1, 2, 0).numpy().astype(np.float32) for t in (clean, noisy))


def psnr_of(image: np.ndarray, clean: np.ndarray) -> float:
    as_batch = [torch.from_numpy(np.clip(a, 0.0, 1.0)).permute(2, 0, 1)[None] for a in (image, clean)]
    return float(psnr(*as_batch)[0])


def test_enhancer_on_cuda_matches_cpu(full_float32):
    """The shipped policy on CUDA (torch path of the curves) gives the CPU's image (native kernels),
    for float input and for the command's uint8 samples in and out."""
    rng = np.random.default_rng(0)
    image = rng.uniform(0.0, 0.2, (40, 60, 3)).astype(np.float32)
    samples = rng.integers(0, 48, (40, 60, 3), dtype=np.uint8)
    cpu, gpu = Enhancer(device="cpu"), Enhancer(device="cuda")
    assert next(gpu.policy.parameters()).device.type == "cuda"
    out_cpu, out_gpu = cpu.enhance(image, exposure=0.6), gpu.enhance(image, exposure=0.6)
    assert out_gpu.dtype == np.float32 and out_gpu.shape == image.shape
    assert out_cpu.mean() > image.mean() + 0.2  # brightened: not two copies of the input
    np.testing.assert_allclose(out_gpu, out_cpu, atol=1e-3)
    levels_cpu = cpu.enhance_array(samples, dtype=np.uint8).image
    levels_gpu = gpu.enhance_array(samples, dtype=np.uint8).image
    assert levels_gpu.dtype == np.uint8 and np.abs(levels_gpu.astype(int) - levels_cpu).max() <= 1


@pytest.mark.parametrize("model, channels", [("mrpnet", 1), ("a3c", 3)])
def test_default_denoiser_on_cuda_matches_cpu(model, channels, full_float32):
    """``load_denoiser`` on CUDA gives the CPU's result (the gray MRPNet; the colour A3C, the one that
    ships, on the gray photo as RGB). The a3c policy picks a filter per pixel by its most probable
    action, where float rounding can flip a near-tie (and so a few pixels near it): at most 1% of its
    pixels may differ by more than 1e-3."""
    clean, noisy = (np.repeat(a, channels, axis=2) for a in noisy_camera())
    out_cpu = load_denoiser(model, channels=channels, device="cpu").restore(noisy)
    gpu = load_denoiser(model, channels=channels, device="cuda")
    out_gpu = gpu.restore(noisy)
    assert out_gpu.shape == out_cpu.shape == clean.shape and out_gpu.dtype == np.float32
    assert psnr_of(out_cpu, clean) > psnr_of(noisy, clean) + 2.0  # it denoised
    if model == "mrpnet":
        np.testing.assert_allclose(out_gpu, out_cpu, atol=2e-3)
    else:
        assert np.mean(np.abs(out_gpu - out_cpu) > 1e-3) < 0.01
        assert abs(psnr_of(out_gpu, clean) - psnr_of(out_cpu, clean)) < 0.05


def test_a3c_loss_and_gradients_on_cuda_match_cpu(full_float32):
    """One A3C update's loss (policy, value and entropy parts) and its gradients, for the same
    observations, actions and rewards, on CUDA and on the CPU."""
    venv = envs.make_vec("rlenhance/Denoise-v0", num_envs=2, crop=24, max_episode_steps=2)
    obs, _ = venv.reset(seed=0)
    torch.manual_seed(0)
    policy = PixelActorCritic(**policy_kwargs_from_env(venv, width=8))
    draws = torch.Generator().manual_seed(1)
    actions = torch.randint(0, policy.n_actions, (2, 1, 24, 24), generator=draws)
    rewards = torch.randn(1, 2, 1, 24, 24, generator=draws)  # (T, B, 1, H, W): one step
    results = {}
    for device in ("cpu", "cuda"):
        agent = A3C(copy.deepcopy(policy), A3CConfig(), device=device)
        x, cond = build_policy_input({k: v.to(device) for k, v in obs.items()})
        out = agent.policy(x, cond)
        dist = agent.policy.distribution(out)
        dones = torch.ones(1, 2, dtype=torch.bool, device=device)
        returns = nstep_returns(rewards.to(device), dones, torch.zeros_like(out.value), agent.config.gamma)
        loss, parts = a3c_loss(dist.log_prob(actions.to(device))[None], dist.entropy()[None], out.value[None],
                               returns, agent.config.value_coef, agent.config.entropy_coef)
        loss.backward()
        assert loss.device.type == device
        results[device] = ({"loss": loss.detach().cpu(), **{k: v.detach().cpu() for k, v in parts.items()}},
                           [p.grad.cpu() for p in agent.parameters()])
    (losses_cpu, grads_cpu), (losses_gpu, grads_gpu) = results["cpu"], results["cuda"]
    for name, value in losses_cpu.items():
        torch.testing.assert_close(losses_gpu[name], value, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
    assert len(grads_gpu) == len(grads_cpu) and any(g.abs().max() > 0 for g in grads_cpu)
    for grad_gpu, grad_cpu in zip(grads_gpu, grads_cpu):
        torch.testing.assert_close(grad_gpu, grad_cpu, rtol=1e-3, atol=1e-5 * max(1.0, float(grad_cpu.abs().max())))


@pytest.mark.parametrize("env_id, kwargs", [("rlenhance/LowLight-v1", {"crop": 32, "uneven": 0.5}),
                                             ("rlenhance/Denoise-v0", {"crop": 24, "sigma": (15.0, 50.0)})])
def test_cuda_resets_give_the_cpu_starts(env_id, kwargs):
    """A reset on CUDA (the crops gathered from the data set held there, the noise drawn there) starts
    the episodes the CPU's does, within float rounding; a shard's rows are its rows of the whole batch."""
    starts = {}
    for device, shard in (("cpu", None), ("cuda", None), ("cuda", (1, 2))):
        venv = envs.make_vec(env_id, num_envs=8 if shard is None else 4, device=device, max_episode_steps=2,
                             shard=shard, **kwargs)
        starts[device, shard] = [{k: v.cpu() for k, v in venv.reset(seed=seed)[0].items()} for seed in (3, None)]
    for cpu, cuda, half in zip(starts["cpu", None], starts["cuda", None], starts["cuda", (1, 2)]):
        for key in cpu:
            torch.testing.assert_close(cuda[key], cpu[key], rtol=1e-4, atol=1e-5, msg=lambda m, k=key: f"{k}: {m}")
            torch.testing.assert_close(half[key], cuda[key][4:], rtol=0, atol=0)


def test_lol_train_on_cuda_writes_a_checkpoint_the_cpu_enhancer_loads(tmp_path, full_float32):
    out = Path(lol_train.main([*LOL_TINY, "--out", str(tmp_path / "run")]))
    assert json.loads((out / "config.json").read_text())["run"]["device"] == "cuda"
    best = out / "checkpoints" / "best.pt"
    assert load_checkpoint(best)["extra"]["episode"] == 2
    image = np.random.default_rng(0).uniform(0.0, 0.2, (40, 60, 3)).astype(np.float32)
    on_cpu = Enhancer(best, device="cpu").enhance(image)
    assert on_cpu.shape == image.shape and np.isfinite(on_cpu).all()
    np.testing.assert_allclose(Enhancer(best, device="cuda").enhance(image), on_cpu, atol=1e-3)


def test_denoise_train_on_cuda_writes_a_checkpoint_the_cpu_denoiser_loads(tmp_path):
    out = Path(denoise_train.main([*DENOISE_TINY, "--out", str(tmp_path / "run")]))
    assert json.loads((out / "config.json").read_text())["run"]["device"] == "cuda"
    best = out / "checkpoints" / "best.pt"
    assert load_checkpoint(best)["extra"]["episode"] == 2
    clean, noisy = noisy_camera(24, 32)
    restored = load_denoiser("a3c", best, device="cpu").restore(noisy)
    assert restored.shape == clean.shape and np.isfinite(restored).all()
    assert restored.min() >= 0.0 and restored.max() <= 1.0


def test_lol_train_under_torchrun_on_cuda(tmp_path):
    """``torchrun --nproc_per_node 1 ... --device cuda``: the rank takes cuda:0 and the run folder
    records a world of 1 (which makes no process group: NCCL itself needs two ranks, two GPUs)."""
    out = tmp_path / "run"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
    proc = subprocess.run([*torchrun, "-m", "experiments.lol_train", *LOL_TINY, "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 1 and config["run"]["device"] == "cuda"
    assert load_checkpoint(out / "checkpoints" / "last.pt")["extra"]["episode"] == 2
