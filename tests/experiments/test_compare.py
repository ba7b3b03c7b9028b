"""experiments.compare on tiny data: every task end to end, missing methods, determinism, errors;
low-light photos without references, PSNR on RGB / Y with or without GT-mean, the peers; colour
denoising (--no-gray: colour, gray-per-channel and RSE-RL checkpoints, BM3D), real noisy
pairs with estimated noise levels, and FFDNet given the true or the estimated noise level.

Tiny untrained checkpoints are saved the way the trainers save them (lol_train's LowLightPolicySpec
for low-light policies, the RolloutPolicySpec of denoise_train / completion_train, the
SupervisedSpec of supervised_train). One run goes through the command line as a subprocess
(started first, so it overlaps the in-process runs)."""

import contextlib
import csv
import io
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

import envs
from agents.a3c import policy_kwargs_from_env
from experiments.compare import TASK_METHODS, Args, labelled_grid, load_samples, main, paired_differences
from experiments.compare import methods as compare_methods
from experiments.compare.config import EMBEDDED_DATA, data_label, ignored_flags, requested_methods, resolved_split
from experiments.compare.samples import Sample
from experiments.compare.scoring import score, task_metrics
from experiments.plots import quality_vs_time, save_figure
from rlenhance import registry
from rlenhance.baselines import baseline_missing, gaussian_denoise
from rlenhance.checkpoint import (
    LowLightPolicySpec,
    RSEDenoiserSpec,
    SupervisedSpec,
    save_checkpoint,
)
from rlenhance.data import PairedImages
from rlenhance.denoisers import load_denoiser
from rlenhance.enhance import Enhancer
from rlenhance.errors import CheckpointError, DatasetError
from rlenhance.io import load_image, save_image
from rlenhance.metrics import dark_colour_noise, gt_mean_align, loe, niqe, psnr, rgb_to_y, ssim
from rlenhance.metrics.hole import hole_ssim
from rlenhance.models.ffdnet import FFDNet
from rlenhance.models.inpaint import CompletionUNet
from rlenhance.models.mrpnet import CombinedModel, MRPNet
from rlenhance.models.peers import ZeroDCE, ZeroDCEPP
from rlenhance.models.pixelrnn import GatedPixelRNN
from rlenhance.models.policy import PixelActorCritic
from rlenhance.models.rse import RSEDenoiser
from rlenhance.noise_estimate import estimate_noise_sigma
from rlenhance.restore import SupervisedRestorer
from tests.specs import lowlight_spec, rollout_spec

ROOT = Path(__file__).resolve().parents[2]
SIZE = 40
FILES = ("report.md", "results.csv", "quality_vs_time.png", "samples.png")
COND = {"cond_fields": ["exposure_target", "w_exposure", "w_color", "w_spatial", "w_smooth"],
        "cond_scale": [1.0, 10.0, 5.0, 1.0, 20.0],
        "setting": {"exposure_target": 0.6, "w_exposure": 10.0, "w_color": 5.0, "w_spatial": 1.0, "w_smooth": 20.0}}
LOWLIGHT_ENV = {"alpha_table": [round((a - 6) / 20, 2) for a in range(27)], "damping": 0.2, "action_type": "discrete",
                "test_steps": 2, **COND}
SAC_ENV = {"alpha_table": [], "damping": 0.0, "action_type": "continuous", "test_steps": 2, **COND}
#: The no-reference scores of low light, in report order.
NO_REFERENCE = ["niqe", "loe", "brightness", "clipped", "dark_noise"]


def scored(output: np.ndarray, sample: Sample, field: str = "psnr") -> float:
    """One score of an output, as compare takes it (PSNR; or hole PSNR, a completion metric)."""
    return score(output, sample, task_metrics("completion" if field.startswith("hole") else "denoise"))[field]


# --- data and checkpoints ------------------------------------------------------------------------------
def _scene(seed: int, channels: int = 3) -> np.ndarray:
    """A smooth random colour field (H, W, C) in [0.1, 0.9]."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0.1, 0.9, (5, 5, channels)).astype(np.float32)
    return cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC).clip(0.1, 0.9).reshape(SIZE, SIZE, channels)


def _lowlight_spec(env: dict) -> LowLightPolicySpec:
    return lowlight_spec(**env, alpha_mode="mean", cond_offset=[0.0] * 5, observe_exposure_gap=False,
                         max_side=None, conditioned=False)


def _save_rollout_policy(path: Path, env_id: str, task: str, env_kwargs: dict) -> Path:
    venv = envs.make_vec(env_id, num_envs=1, crop=32, **env_kwargs)
    policy = PixelActorCritic(**policy_kwargs_from_env(venv, width=8))
    spec = rollout_spec(task, env_kwargs, steps=2)
    return save_checkpoint(path, model=policy, arch=policy.arch(), extra={"spec": spec, "algorithm": "a3c"})


def _save_supervised(path: Path, model, name: str, task: str, channels: int) -> Path:
    spec = SupervisedSpec(model=name, task=task, channels=channels, prefill="none")
    return save_checkpoint(path, model=model, arch=model.arch(), extra={"spec": spec})


def _save_rse(path: Path, channels: int) -> Path:
    """A tiny untrained RSE-RL denoiser as experiments.rse_train saves it (one round applied)."""
    model = RSEDenoiser(channels=channels, patch=8, stride=4, latent_dim=4, hidden=16, bank_size=32, clusters=4,
                        neighbours=2, width=8, max_rounds=2)
    spec = RSEDenoiserSpec(sigma=25.0, channels=channels, rounds=1)
    return save_checkpoint(path, model=model, arch=model.arch(), extra={"spec": spec})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Data folders of each task and tiny untrained checkpoints."""
    base = tmp_path_factory.mktemp("compare")
    for i in range(3):  # low-light pairs, RGB
        high = _scene(i)
        save_image(base / "lowlight" / "high" / f"{i:03d}.png", high)
        save_image(base / "lowlight" / "low" / f"{i:03d}.png", 0.25 * high ** 1.5)
    for i in range(4):  # clean gray images
        save_image(base / "clean" / f"img{i}.png", _scene(10 + i, 1))
    for i in range(3):  # occluded / original pairs with one black square each
        original = _scene(20 + i)
        occluded = original.copy()
        occluded[8 + 3 * i:22 + 3 * i, 10:24] = 0.0
        save_image(base / "occluded" / "original_images" / f"bed_{i}.png", original)
        save_image(base / "occluded" / "occluded_images" / f"occluded_bed_{i}.png", occluded)
    torch.manual_seed(0)
    ck = base / "checkpoints"
    lowlight = PixelActorCritic(in_channels=6, out_channels=3, n_actions=27, width=8, downscale=2, cond_dim=5)
    sac = PixelActorCritic(in_channels=6, out_channels=3, n_actions=None, width=8, cond_dim=5, bounded_mean=False)
    zero_dce = ck / "zero_dce.pth"
    ck.mkdir()
    torch.save(ZeroDCE().state_dict(), zero_dce)  # the official file is a bare state_dict
    return {
        "base": base,
        "a3c-lowlight": save_checkpoint(ck / "a3c_lowlight.pt", model=lowlight, arch=lowlight.arch(),
                                        extra={"spec": _lowlight_spec(LOWLIGHT_ENV)}),
        "sac-lowlight": save_checkpoint(ck / "sac_lowlight.pt", model=sac, arch=sac.arch(),
                                        extra={"spec": _lowlight_spec(SAC_ENV)}),
        "zero-dce": zero_dce,
        "mrpnet-lowlight": _save_supervised(ck / "mrpnet_lowlight.pt", CombinedModel(3, width=8), "mrpnet",
                                            "lowlight", 3),
        "a3c-denoise": _save_rollout_policy(ck / "a3c_denoise.pt", "rlenhance/Denoise-v0", "denoise",
                                            {"sigma": 25.0}),
        "mrpnet-denoise": _save_supervised(ck / "mrpnet_denoise.pt", MRPNet(1, width=8), "mrpnet", "denoise", 1),
        "a3c-completion": _save_rollout_policy(ck / "a3c_completion.pt", "rlenhance/Completion-v0", "completion",
                                               {}),
        "gated-completion": _save_supervised(ck / "gated.pt", GatedPixelRNN(3, width=8), "gated-pixelrnn",
                                             "completion", 3),
        "unet-completion": _save_supervised(ck / "unet.pt", CompletionUNet(3, width=8, levels=2), "unet",
                                            "completion", 3),
    }


def in_process(*args: str):
    """main(argv) with stdout captured: (summary, stdout)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        summary = main(["--threads", "1", "--device", "cpu", *args])
    return summary, buffer.getvalue()


def read_rows(folder: Path) -> list[dict]:
    with open(folder / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def runs(tiny):
    """One run per task (the denoise one twice: as a subprocess and in process)."""
    base = tiny["base"]
    denoise = ["--task", "denoise", "--data", str(base / "clean"), "--split", "all", "--sigma", "25", "--seed", "3",
               "--a3c", str(tiny["a3c-denoise"]), "--mrpnet", str(tiny["mrpnet-denoise"]),
               "--sac", str(base / "absent.pt"), "--samples", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "experiments.compare", *denoise, "--threads", "1", "--device", "cpu",
                             "--out", str(base / "denoise_cli")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    results = {
        "lowlight": in_process(
            "--task", "lowlight", "--data", str(base / "lowlight"), "--split", "all",
            "--methods", "input,rl,mrpnet,zero-dce,zero-dce++,auto-gamma,clahe",
            "--rl", str(tiny["sac-lowlight"]), "--mrpnet", str(tiny["mrpnet-lowlight"]),
            "--zero-dce", str(tiny["zero-dce"]), "--out", str(base / "lowlight_out")),
        "denoise": in_process(*denoise, "--out", str(base / "denoise_out")),
        "completion": in_process(
            "--task", "completion", "--data", str(base / "occluded"), "--split", "all", "--no-warmup",
            "--a3c", str(tiny["a3c-completion"]), "--gated-pixelrnn", str(tiny["gated-completion"]),
            "--unet", str(tiny["unet-completion"]),
            "--methods", "input,a3c,unet,gated-pixelrnn,pixelrnn,diffusion-fill,telea,navier-stokes",
            "--zero-dce", str(tiny["zero-dce"]), "--pixelrnn", str(base / "absent.pt"),
            "--paired-against", "telea", "--out", str(base / "completion_out")),
    }
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"compare failed ({proc.returncode}):\n{out[-2000:]}\n{err[-4000:]}"
    results["denoise_cli"] = (None, out)
    return results


# --- end to end --------------------------------------------------------------------------------------------
EXPECTED = {  # task: (images, methods that run, methods reported missing)
    "lowlight": (3, ["input", "rl", "mrpnet", "zero-dce", "auto-gamma", "clahe"], ["zero-dce++"]),
    "denoise": (4, ["input", "a3c", "ffdnet", "noise-map", "mrpnet", "gaussian", "median", "bilateral"]  # shipped
                + ([] if baseline_missing("bm3d") else ["bm3d"]),
                ["sac"] + (["bm3d"] if baseline_missing("bm3d") else [])),  # rse: none ships, not run by default
    "completion": (3, ["input", "a3c", "unet", "gated-pixelrnn", "telea", "navier-stokes", "diffusion-fill"],
                   ["pixelrnn"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_each_task_writes_the_four_files_with_a_row_per_image_and_method(tiny, runs, task):
    images, ran, absent = EXPECTED[task]
    folder = tiny["base"] / f"{task}_out"
    for name in FILES:
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    rows = read_rows(folder)
    assert len(rows) == images * len(ran)
    assert sorted({(r["image"], r["method"]) for r in rows}) == sorted(
        {(r["image"], m) for r in rows for m in ran}) and len({r["image"] for r in rows}) == images
    summary, stdout = runs[task]
    assert [entry["method"] for entry in summary] == ran
    report = (folder / "report.md").read_text()
    for name in absent:
        assert f"- {name}: missing: " in report
        assert f"{name}: missing: " in stdout
    for name in ran:
        assert f"| {name} |" in report
    assert "experiments.compare" in report and "--task " + task in report  # the command line
    columns = set(rows[0])
    assert {"psnr", "ssim", "uqi", "ms"} <= columns
    assert ({"hole_psnr", "hole_ssim"} <= columns) == (task == "completion")
    grid = load_image(folder / "samples.png")
    shown = len([m for m in ran if m != "input"]) + 2  # input | methods | reference
    assert grid.shape[1] == shown * 160 + (shown - 1) * 4


RL_METHODS = {"lowlight": "rl", "denoise": "a3c", "completion": "a3c"}


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_rl_methods_report_the_share_of_each_action_over_all_pixel_steps(tiny, runs, task):
    """actions.csv: per RL method, step and action, the pixel-steps that took it, pooled over the images
    (completion: the hole's pixels only); report.md's section says the same; actions.png shows the maps."""
    folder = tiny["base"] / f"{task}_out"
    name = RL_METHODS[task]
    with open(folder / "actions.csv", newline="") as handle:
        every = list(csv.DictReader(handle))
    rows = [row for row in every if row["method"] == name]
    assert {row["method"] for row in rows} == {name}
    steps = sorted({row["step"] for row in rows} - {"all"}, key=int)
    assert steps == [str(k) for k in range(1, len(steps) + 1)] and steps
    for step in ["all", *steps]:
        mine = [row for row in rows if row["step"] == step]
        assert sum(float(row["share"]) for row in mine) == pytest.approx(1.0)
        total = sum(int(row["pixel_steps"]) for row in mine)
        for row in mine:
            assert float(row["share"]) == pytest.approx(int(row["pixel_steps"]) / total)
    samples = load_samples(Args(task=task, data=str(tiny["base"] / {"lowlight": "lowlight", "denoise": "clean",
                                                                     "completion": "occluded"}[task]), split="all"))
    pixel_steps = sum(int(row["pixel_steps"]) for row in rows if row["step"] == "all")
    if task == "completion":  # the hole's pixels, at every step
        assert pixel_steps == len(steps) * sum(int(s.mask.sum()) for s in samples)
    elif task == "denoise":  # every pixel of the gray images
        assert pixel_steps == len(steps) * sum(s.input.shape[0] * s.input.shape[1] for s in samples)
    report = (folder / "report.md").read_text()
    assert "## Actions of the RL methods" in report and f"### {name}" in report
    top = max((row for row in rows if row["step"] == "all"), key=lambda row: float(row["share"]))
    assert f"| {top['action']} | {100 * float(top['share']):.1f}%" in report
    picture = load_image(folder / "actions.png")
    most = max(int(row["step"]) for row in every if row["step"] != "all")  # the RL method of the most steps
    assert picture.shape[1] == (most + 1) * 160 + most * 4  # input | one map per step


def test_the_actions_section_never_rounds_a_share_to_all_or_nothing():
    from experiments.compare.actions import actions_section
    from rlenhance.trace import ActionTrace

    maps = np.full((1, 1, 100, 100), 1, np.int16)
    maps[0, 0, 0, 0] = 0  # one pixel of 10,000 keeps: predict 99.99%, not 100.0%
    section = actions_section({"a3c": [ActionTrace(("keep", "predict"), maps)]})
    assert "| a3c | 2 | 1 | 10,000 | 99.9900% | predict (99.9900%) |" in section
    assert "| keep | 0.0100% | 0.0100% |" in section and actions_section({}) == ""


@pytest.mark.slow
def test_learned_methods_report_their_parameter_count(tiny, runs):
    summary = {entry["method"]: entry for entry in runs["lowlight"][0]}
    assert summary["zero-dce"]["params"] == 79_416  # the published count
    assert summary["mrpnet"]["params"] == sum(p.numel() for p in CombinedModel(3, width=8).parameters())
    sac = sum(p.numel() for p in Enhancer(tiny["sac-lowlight"], device="cpu").policy.parameters())
    assert summary["rl"]["params"] == sac > 0  # the SAC low-light policy, through rlenhance.Enhancer
    assert summary["clahe"]["params"] is None and summary["input"]["params"] is None


@pytest.mark.slow
def test_missing_checkpoint_names_the_given_path(tiny, runs):
    report = (tiny["base"] / "denoise_out" / "report.md").read_text()
    assert f"- sac: missing: --sac {tiny['base'] / 'absent.pt'}: no such file" in report
    assert "gray, Gaussian noise sigma 25 (0-255 scale, not clipped), noise seed 3; classical denoisers given " \
           "sigma 25" in report  # the gray default, as before colour denoising
    assert "run on R, G and B" not in report  # gray models on gray images run as they are


@pytest.mark.slow
def test_runs_are_deterministic_apart_from_timing(tiny, runs):
    first, second = read_rows(tiny["base"] / "denoise_out"), read_rows(tiny["base"] / "denoise_cli")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "ms"} for r in rows]  # noqa: E731
    assert strip(first) == strip(second)
    assert [r["ms"] for r in first] != [r["ms"] for r in second] or len(first) == 0  # timing is measured


@pytest.mark.slow
def test_completion_scores_fill_the_hole_and_keep_known_pixels(tiny, runs):
    summary = {entry["method"]: entry for entry in runs["completion"][0]}
    # the black hole is far from the smooth originals; inpainting brings it close
    assert summary["telea"]["hole_psnr"] > summary["input"]["hole_psnr"] + 10
    assert summary["telea"]["psnr"] > summary["input"]["psnr"]
    assert summary["diffusion-fill"]["hole_ssim"] > summary["input"]["hole_ssim"]


# --- colour and real noise ---------------------------------------------------------------------------------
REAL_SIGMA = 25.0


def _quantized(image: np.ndarray) -> np.ndarray:
    """An image as an 8-bit file stores it, so the file loads back exactly."""
    return (np.rint(np.clip(image, 0.0, 1.0) * 255) / 255).astype(np.float32)


@pytest.fixture(scope="module")
def colour(tiny):
    """RGB clean images, real noisy / clean pairs (noisy/ + clean/, Gaussian noise of REAL_SIGMA
    stored as 8-bit files), colour MRPNet and RSE-RL checkpoints and a gray RSE-RL one."""
    base = tiny["base"]
    for i in range(3):
        save_image(base / "clean_rgb" / f"rgb{i}.png", _scene(30 + i))
    rng = np.random.default_rng(7)
    for i in range(2):
        clean = _quantized(0.3 + 0.4 * cv2.resize(_scene(40 + i), (64, 64), interpolation=cv2.INTER_CUBIC))
        save_image(base / "real" / "clean" / f"pair{i}.png", clean)
        save_image(base / "real" / "noisy" / f"pair{i}.png",
                   _quantized(clean + rng.normal(0, REAL_SIGMA / 255, clean.shape)))
    torch.manual_seed(1)
    ck = base / "checkpoints"
    return {"base": base,
            "mrpnet-color": _save_supervised(ck / "mrpnet_denoise_color.pt", MRPNet(3, width=8), "mrpnet", "denoise",
                                             3),
            "rse-color": _save_rse(ck / "rse_color.pt", 3), "rse-gray": _save_rse(ck / "rse_gray.pt", 1)}


@pytest.mark.slow
def test_colour_denoise_end_to_end_with_colour_and_per_channel_gray_checkpoints(tiny, colour):
    out = tiny["base"] / "colour_out"
    summary, stdout = in_process(
        "--task", "denoise", "--no-gray", "--data", str(tiny["base"] / "clean_rgb"), "--split", "all", "--seed", "2",
        "--methods", "input,a3c,rse,mrpnet,sac,bilateral,median", "--a3c", str(tiny["a3c-denoise"]),
        "--sac", str(tiny["base"] / "absent.pt"),
        "--rse", str(colour["rse-color"]), "--mrpnet", str(colour["mrpnet-color"]), "--samples", "1",
        "--out", str(out))
    ran = ["input", "a3c", "mrpnet", "rse", "median", "bilateral"]
    assert [entry["method"] for entry in summary] == ran
    rows = read_rows(out)
    assert len(rows) == 3 * len(ran)
    by = {entry["method"]: entry for entry in summary}
    assert by["bilateral"]["psnr"] > by["input"]["psnr"] + 3  # RGB noise of sigma 25, smooth scenes
    report = (out / "report.md").read_text()
    assert "RGB, Gaussian noise sigma 25 on every channel" in report and "classical denoisers given sigma 25" in report
    per_channel = compare_methods.PER_CHANNEL_NOTE
    assert f"- a3c: `{tiny['a3c-denoise']}` ({per_channel})" in report  # the gray policy, per channel
    assert f"- mrpnet: `{colour['mrpnet-color']}`\n" in report and f"- rse: `{colour['rse-color']}`\n" in report
    assert f"a3c: {per_channel}" in stdout and f"mrpnet: {per_channel}" not in stdout
    assert f"- sac: missing: --sac {tiny['base'] / 'absent.pt'}: no such file" in report
    assert by["rse"]["params"] == sum(p.numel() for p in RSEDenoiser(
        channels=3, patch=8, stride=4, latent_dim=4, hidden=16, bank_size=32, clusters=4, neighbours=2, width=8,
        max_rounds=1).parameters())  # the round applied, not every round held
    assert load_image(out / "samples.png").shape[1] == 7 * 160 + 6 * 4


def test_gray_models_run_per_channel_on_colour_and_colour_models_refuse_gray(tiny, colour):
    """A gray checkpoint on RGB restores each channel as the gray image it would be given alone."""
    image = _scene(50) + np.random.default_rng(0).normal(0, 0.1, (SIZE, SIZE, 3)).astype(np.float32)
    cpu = torch.device("cpu")
    given = {"mrpnet": str(tiny["mrpnet-denoise"]), "a3c": str(tiny["a3c-denoise"]), "rse": str(colour["rse-gray"])}
    on_rgb, _ = compare_methods.build_methods("denoise", list(given), cpu, checkpoints=given, sigma=25.0, channels=3)
    on_gray, _ = compare_methods.build_methods("denoise", list(given), cpu, checkpoints=given, sigma=25.0, channels=1)
    for name in given:
        assert on_rgb[name].note == compare_methods.PER_CHANNEL_NOTE and on_gray[name].note == ""
        planes = [on_gray[name].run(np.ascontiguousarray(image[..., c:c + 1])) for c in range(3)]
        np.testing.assert_allclose(on_rgb[name].run(image), np.concatenate(planes, axis=-1), atol=1e-5)
    for name, path in (("mrpnet", colour["mrpnet-color"]), ("rse", colour["rse-color"])):
        with pytest.raises(CheckpointError, match=r"colour\) model, but the images are gray.*--no-gray"):
            compare_methods.build_methods("denoise", [name], cpu, checkpoints={name: str(path)}, sigma=25.0, channels=1)


def test_colour_runs_default_to_the_colour_checkpoints(tmp_path, monkeypatch):
    """Defaults are the registry's files for the images' planes: the colour one of a denoiser on RGB."""
    monkeypatch.setattr(registry, "WEIGHTS", tmp_path)
    gray, color = tmp_path / "mrpnet_denoise.pt", tmp_path / "mrpnet_denoise_color.pt"
    path, why = compare_methods.checkpoint_path("denoise", "mrpnet", None, planes=3)
    assert path is None and str(color) in why and "--mrpnet PATH" in why and "gray checkpoint" not in why
    gray.touch()
    path, why = compare_methods.checkpoint_path("denoise", "mrpnet", None, planes=3)
    assert path is None and f"a gray checkpoint runs per channel: --mrpnet {gray}" in why
    assert compare_methods.checkpoint_path("denoise", "mrpnet", None, planes=1) == (gray, "")
    color.touch()
    assert compare_methods.checkpoint_path("denoise", "mrpnet", None, planes=3) == (color, "")
    (tmp_path / "mrpnet_lowlight.pt").touch()
    assert compare_methods.checkpoint_path("lowlight", "mrpnet", None, planes=3) == (
        tmp_path / "mrpnet_lowlight.pt", "")  # colour is denoise's
    _, missing = compare_methods.build_methods("denoise", ["a3c", "rse"], torch.device("cpu"), checkpoints={},
                                               sigma=25.0, channels=3)
    assert set(missing) == {"a3c", "rse"} and "a3c_denoise_color.pt" in missing["a3c"]


def test_compare_methods_are_the_registry_methods_of_each_task():
    """compare runs every registry method of a task, and besides them only the input, the peers,
    FFDNet's map baselines and the reference-fitted global bound."""
    for task in registry.TASKS:
        ours = compare_methods.TASK_METHODS[task]
        assert [m.name for m in registry.methods(task)] == [
            name for name in ours if name not in ("input", *compare_methods.PEER_METHODS,
                                                  *compare_methods.LEVEL_MAP_METHODS,
                                                  *compare_methods.REFERENCE_METHODS)]
        assert ours[0] == "input" and (set(compare_methods.PEER_METHODS) <= set(ours)) == (task == "lowlight")
        assert (set(compare_methods.REFERENCE_METHODS) <= set(ours)) == (task == "lowlight")
        assert (set(compare_methods.LEVEL_MAP_METHODS) <= set(ours)) == (task == "denoise")
    for name in compare_methods.LEARNED_METHODS:  # a flag for every learned method
        assert getattr(Args(), compare_methods.method_flag(name).replace("-", "_")) is None


def test_by_default_a_method_that_ships_no_checkpoint_runs_only_when_one_is_given():
    """Without --methods, the RL policies that ship nothing (their recipe's policy took the predictor's
    output everywhere) are left out unless their flag gives a checkpoint; --methods still names them."""
    denoise, completion = (requested_methods(Args(task=task)) for task in ("denoise", "completion"))
    assert "rse" not in denoise and {"a3c", "sac", "ffdnet", "input"} <= set(denoise)
    assert "a3c" not in completion and {"unet", "telea", "input"} <= set(completion)
    assert "rse" in requested_methods(Args(task="denoise", rse="runs/rse/checkpoints/best.pt"))
    assert "a3c" in requested_methods(Args(task="completion", a3c="policy.pt"))
    assert requested_methods(Args(task="completion", methods="a3c,unet")) == ["a3c", "unet"]
    _, missing = compare_methods.build_methods("completion", ["a3c"], torch.device("cpu"), checkpoints={}, sigma=25.0)
    assert "no a3c completion model ships" in missing["a3c"] and "0.00 dB over the U-Net" in missing["a3c"]


def test_by_default_the_peers_run_only_from_their_files_and_are_reported_missing_only_when_asked(tmp_path,
                                                                                             monkeypatch):
    """Nothing of the peers ships: a default run leaves them out quietly (no "missing" line nobody asked
    for); their flag, --methods or their official file in the weights folder brings them in."""
    monkeypatch.setattr(registry, "WEIGHTS", tmp_path)
    lowlight = requested_methods(Args(task="lowlight"))
    assert not set(compare_methods.PEER_METHODS) & set(lowlight) and {"input", "rl"} <= set(lowlight)
    assert "zero-dce" in requested_methods(Args(task="lowlight", zero_dce="Epoch99.pth"))
    assert "rellie" in requested_methods(Args(task="lowlight", methods="rl,rellie"))
    (tmp_path / compare_methods.PEER_FILES["zero-dce++"]).write_bytes(b"")
    assert "zero-dce++" in requested_methods(Args(task="lowlight"))


@pytest.mark.skipif(baseline_missing("bm3d") is not None, reason="bm3d is not installed (optional)")
def test_bm3d_denoises_colour_images(tiny, colour):
    out = tiny["base"] / "bm3d_out"
    summary, _ = in_process("--task", "denoise", "--no-gray", "--data", str(tiny["base"] / "clean_rgb"), "--split",
                            "all", "--limit", "1", "--no-warmup", "--methods", "input,bm3d,median", "--out", str(out))
    by = {entry["method"]: entry for entry in summary}
    assert by["bm3d"]["images"] == 1 and by["bm3d"]["psnr"] > by["median"]["psnr"] > by["input"]["psnr"]


def test_real_pairs_are_scored_as_they_are_with_estimated_noise_levels(tiny, colour):
    real = tiny["base"] / "real"
    args = Args(task="denoise", data=str(real), split="all", gray=False, sigma=5.0)
    samples = load_samples(args)
    assert [s.name for s in samples] == ["pair0.png", "pair1.png"] and all(s.real_noise for s in samples)
    for s in samples:
        np.testing.assert_array_equal(s.input, load_image(real / "noisy" / s.name))  # no synthetic noise
        np.testing.assert_array_equal(s.reference, load_image(real / "clean" / s.name))
        assert s.sigma == pytest.approx(REAL_SIGMA, rel=0.15) and s.sigma == estimate_noise_sigma(s.input)
    assert load_samples(Args(task="denoise", data=str(real), split="all"))[0].input.shape[2] == 1  # --gray

    out = tiny["base"] / "real_out"
    summary, _ = in_process("--task", "denoise", "--no-gray", "--data", str(real), "--split", "all", "--sigma", "5",
                            "--methods", "input,gaussian,bilateral", "--out", str(out))
    rows = {r["image"]: float(r["psnr"]) for r in read_rows(out) if r["method"] == "gaussian"}
    for s in samples:  # the classical methods got the estimate, not --sigma 5
        estimated = scored(gaussian_denoise(s.input, sigma=estimate_noise_sigma(s.input)), s)
        assert rows[s.name] == pytest.approx(estimated, abs=1e-9)
        assert rows[s.name] != pytest.approx(scored(gaussian_denoise(s.input, sigma=5.0), s), abs=1e-3)
    report = (out / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("Data: "))
    assert "RGB, real noise" in header and "Gaussian noise" not in header
    mean = float(header.split("estimated sigma")[1].split("mean ")[1].split(",")[0])
    assert mean == pytest.approx(np.mean([s.sigma for s in samples]), abs=0.01)
    assert {e["method"]: e for e in summary}["gaussian"]["psnr"] > {e["method"]: e for e in summary}["input"]["psnr"]


def test_sigma_estimate_on_synthetic_noise_and_the_colour_defaults(tiny, colour):
    args = Args(task="denoise", data=str(tiny["base"] / "clean_rgb"), split="all", gray=False, sigma=25.0)
    assert all(s.sigma is None and not s.real_noise for s in load_samples(args))
    estimated = load_samples(Args(**{**vars(args), "sigma_estimate": True}))
    assert all(s.sigma == pytest.approx(25.0, rel=0.2) for s in estimated)
    assert all(s.input.shape == (SIZE, SIZE, 3) for s in estimated)
    # no --data: the embedded photos, gray or colour
    assert data_label(Args(task="denoise")) == EMBEDDED_DATA["denoise"] and resolved_split(Args()) == "all"
    (first,) = load_samples(Args(task="denoise", gray=False, limit=1))
    assert first.name == "astronaut" and first.input.shape[2] == 3
    (first,) = load_samples(Args(task="denoise", limit=1))
    assert first.name == "camera" and first.input.shape[2] == 1
    assert ignored_flags(Args(task="lowlight", gray=False, sigma_estimate=True)) == [
        "--no-gray is ignored: it is a --task denoise option", "--sigma-estimate is ignored: it is a --task denoise "
        "option"]
    assert "no held-out split" in ignored_flags(Args(task="denoise", gray=False, split="val"))[0]
    assert "--split tune is ignored" in ignored_flags(Args(task="denoise", gray=False, split="tune"))[0]
    assert all(EMBEDDED_DATA[task].startswith("the embedded") for task in TASK_METHODS)


def test_split_tune_is_the_trainers_tuning_split_and_val_their_validation_split(tiny):
    """--split tune (where checkpoints and constants are chosen) and --split val (what the docs report)
    load the trainers' two held-out splits, disjoint."""
    folder = tiny["base"] / "lowlight"
    names = {split: [s.name for s in load_samples(Args(task="lowlight", data=str(folder), split=split))]
             for split in ("tune", "val")}
    assert names == {split: [item["name"] for item in PairedImages(folder, split=split)] for split in ("tune", "val")}
    assert names["tune"] and names["val"] and not set(names["tune"]) & set(names["val"])


def test_ffdnet_gets_the_map_of_the_true_level_or_of_each_images_estimate(tiny, tmp_path):
    """--ffdnet: the noise-map denoiser given sigma / 255 of --sigma (synthetic noise), each image's
    estimated level with --sigma-estimate (as the classical denoisers), and reported missing for a
    --sigma outside the levels it was trained over."""
    net = FFDNet(1, width=8, depth=3)
    spec = SupervisedSpec(model="ffdnet", task="denoise", channels=1, prefill="none", noise="gaussian", sigma=50.0,
                          sigmas=(0.0, 50.0))
    path = save_checkpoint(tmp_path / "ffdnet.pt", model=net, arch=net.arch(), extra={"spec": spec})
    base = ["--task", "denoise", "--data", str(tiny["base"] / "clean"), "--split", "all", "--limit", "2",
            "--methods", "input,ffdnet", "--ffdnet", str(path), "--no-warmup", "--samples", "1"]
    samples = load_samples(Args(task="denoise", data=str(tiny["base"] / "clean"), split="all", limit=2, sigma=25.0))
    for options, level in ((["--sigma", "25"], 25.0), (["--sigma", "25", "--sigma-estimate"], None)):
        out = tmp_path / ("estimated" if level is None else "known")
        summary, stdout = in_process(*base, *options, "--out", str(out))
        assert [entry["method"] for entry in summary] == ["input", "ffdnet"]
        note = "noise map of " + ("each image's estimated sigma" if level is None else "sigma 25")
        assert f"ffdnet: {note}" in stdout and f"- ffdnet: `{path}` ({note})" in (out / "report.md").read_text()
        denoiser = load_denoiser("ffdnet", path, device="cpu", sigma=level)
        rows = {r["image"]: float(r["psnr"]) for r in read_rows(out) if r["method"] == "ffdnet"}
        for sample in samples:
            assert rows[sample.name] == pytest.approx(scored(denoiser.restore(sample.input), sample), abs=1e-9)
    summary, stdout = in_process(*base, "--sigma", "60", "--out", str(tmp_path / "beyond"))
    assert [entry["method"] for entry in summary] == ["input"]
    assert "ffdnet: missing: " in stdout and "expected a noise level in [0, 50]" in stdout


def test_ffdnets_map_baselines_get_the_level_of_each_window_or_the_true_level(tiny, tmp_path):
    """ffdnet-local: FFDNet given estimate_noise_map's levels; ffdnet-oracle: given the true level map of
    the synthetic noise (a ramp here), and missing on real noise, whose level nobody knows."""
    from rlenhance.data import noise_ramp
    from rlenhance.noise_estimate import estimate_noise_map

    net = FFDNet(1, width=8, depth=3)
    spec = SupervisedSpec(model="ffdnet", task="denoise", channels=1, prefill="none", noise="gaussian", sigma=50.0,
                          sigmas=(0.0, 50.0))
    path = save_checkpoint(tmp_path / "ffdnet.pt", model=net, arch=net.arch(), extra={"spec": spec})
    args = ["--task", "denoise", "--data", str(tiny["base"] / "clean"), "--split", "all", "--limit", "2",
            "--sigma", "10", "--sigma-to", "40", "--sigma-estimate", "--methods", "ffdnet,ffdnet-local,ffdnet-oracle",
            "--ffdnet", str(path), "--no-warmup", "--samples", "1", "--out", str(tmp_path / "out")]
    summary, stdout = in_process(*args)
    assert [entry["method"] for entry in summary] == ["ffdnet", "ffdnet-local", "ffdnet-oracle"]
    assert "ffdnet-oracle: noise map of the true level (an oracle)" in stdout
    denoiser = load_denoiser("ffdnet", path, device="cpu")
    samples = load_samples(Args(task="denoise", data=str(tiny["base"] / "clean"), split="all", limit=2, sigma=10.0,
                                sigma_to=40.0, sigma_estimate=True))
    rows = {(r["method"], r["image"]): float(r["psnr"]) for r in read_rows(tmp_path / "out")}
    for sample in samples:
        truth = noise_ramp(sample.input.shape[:2], 10.0, 40.0)[0, 0].numpy()
        np.testing.assert_allclose(sample.level, truth)
        for method, levels in (("ffdnet-local", estimate_noise_map(sample.input)), ("ffdnet-oracle", truth)):
            expected = denoiser.restorer.restore(sample.input, noise_map=np.clip(levels, 0, 50) / 255)
            assert rows[method, sample.name] == pytest.approx(scored(expected, sample), abs=1e-9)
    _, real = compare_methods.build_methods("denoise", ["ffdnet-local", "ffdnet-oracle"], torch.device("cpu"),
                                            checkpoints={"ffdnet": str(path)}, sigma=25.0, channels=1,
                                            sigma_estimate=True, known_level=False)  # real noise
    assert set(real) == {"ffdnet-oracle"} and "synthetic noise" in real["ffdnet-oracle"]


def test_ensemble_runs_the_learned_denoisers_self_ensemble_and_says_so(tiny, tmp_path):
    """--ensemble N: ffdnet (and mrpnet, the policies' predictors) as load_denoiser(ensemble=N) runs
    it, said in its note; ignored, with a note, by the other tasks."""
    net = FFDNet(1, width=8, depth=3)
    spec = SupervisedSpec(model="ffdnet", task="denoise", channels=1, prefill="none", noise="gaussian", sigma=50.0,
                          sigmas=(0.0, 50.0))
    path = save_checkpoint(tmp_path / "ffdnet.pt", model=net, arch=net.arch(), extra={"spec": spec})
    out = tmp_path / "ensemble"
    _, stdout = in_process("--task", "denoise", "--data", str(tiny["base"] / "clean"), "--split", "all", "--limit",
                           "2", "--methods", "input,ffdnet", "--ffdnet", str(path), "--no-warmup", "--samples", "1",
                           "--sigma", "25", "--ensemble", "2", "--out", str(out))
    note = "noise map of sigma 25; x2 self-ensemble"
    assert f"- ffdnet: `{path}` ({note})" in (out / "report.md").read_text()
    denoiser = load_denoiser("ffdnet", path, device="cpu", sigma=25.0, ensemble=2)
    plain = load_denoiser("ffdnet", path, device="cpu", sigma=25.0)
    rows = {r["image"]: float(r["psnr"]) for r in read_rows(out) if r["method"] == "ffdnet"}
    samples = load_samples(Args(task="denoise", data=str(tiny["base"] / "clean"), split="all", limit=2, sigma=25.0))
    for sample in samples:
        assert rows[sample.name] == pytest.approx(scored(denoiser.restore(sample.input), sample), abs=1e-9)
        assert rows[sample.name] != pytest.approx(scored(plain.restore(sample.input), sample), abs=1e-6)
    assert "--ensemble is ignored: it is a --task denoise / completion option" in ignored_flags(
        Args(task="lowlight", ensemble=8))
    with pytest.raises(ValueError, match="ensemble: '3' is not one of 1, 2, 4, 8"):
        in_process("--task", "denoise", "--ensemble", "3", "--out", str(tmp_path / "bad"))


def test_ensemble_runs_the_completion_networks_self_ensemble_and_says_so(tiny, tmp_path):
    """--ensemble N on completion: a supervised network as SupervisedRestorer(ensemble=N) runs it, said
    in its note; a policy without a predictor runs once, with a note."""
    out = tmp_path / "ensemble"
    in_process("--task", "completion", "--data", str(tiny["base"] / "occluded"), "--split", "all", "--no-warmup",
               "--samples", "1", "--methods", "input,a3c,gated-pixelrnn", "--a3c", str(tiny["a3c-completion"]),
               "--gated-pixelrnn", str(tiny["gated-completion"]), "--ensemble", "2", "--out", str(out))
    report = (out / "report.md").read_text()
    assert f"- gated-pixelrnn: `{tiny['gated-completion']}` (x2 self-ensemble)" in report
    assert "runs once (no predictor to self-ensemble)" in report
    ensembled = SupervisedRestorer(tiny["gated-completion"], device="cpu", task="completion", ensemble=2)
    plain = SupervisedRestorer(tiny["gated-completion"], device="cpu", task="completion")
    rows = {r["image"]: float(r["hole_psnr"]) for r in read_rows(out) if r["method"] == "gated-pixelrnn"}
    samples = load_samples(Args(task="completion", data=str(tiny["base"] / "occluded"), split="all"))
    for sample in samples:
        assert rows[sample.name] == pytest.approx(
            scored(ensembled.restore(sample.input, mask=sample.mask), sample, "hole_psnr"), abs=1e-9)
        assert rows[sample.name] != pytest.approx(
            scored(plain.restore(sample.input, mask=sample.mask), sample, "hole_psnr"), abs=1e-6)


def test_a_gray_ffdnet_denoises_colour_in_opponent_planes_and_serves_colour_runs(tmp_path, monkeypatch):
    """On RGB images a gray --ffdnet denoises the opponent colour planes (the library's route, said in
    its note); a colour run without a colour ffdnet default takes the gray default."""
    net = FFDNet(1, width=8, depth=3)
    spec = SupervisedSpec(model="ffdnet", task="denoise", channels=1, prefill="none", noise="gaussian", sigma=50.0,
                          sigmas=(0.0, 50.0))
    path = save_checkpoint(tmp_path / "ffdnet.pt", model=net, arch=net.arch(), extra={"spec": spec})
    image = _scene(50) + np.random.default_rng(0).normal(0, 0.1, (SIZE, SIZE, 3)).astype(np.float32)
    cpu = torch.device("cpu")
    given, _ = compare_methods.build_methods("denoise", ["ffdnet"], cpu, checkpoints={"ffdnet": str(path)},
                                             sigma=25.0, channels=3)
    assert given["ffdnet"].note == f"noise map of sigma 25; {compare_methods.OPPONENT_NOTE}"
    expected = load_denoiser("ffdnet", path, device="cpu", sigma=25).restore(image)
    assert expected.shape == image.shape
    np.testing.assert_allclose(given["ffdnet"].run(image), expected, atol=1e-6)
    monkeypatch.setattr(registry, "WEIGHTS", tmp_path)  # no colour ffdnet_denoise_color.pt: the gray one
    path = path.rename(tmp_path / "ffdnet_denoise.pt")
    default, missing = compare_methods.build_methods("denoise", ["ffdnet"], cpu, checkpoints={}, sigma=25.0, channels=3)
    assert missing == {} and default["ffdnet"].source == str(path)


# --- data ------------------------------------------------------------------------------------------------
def test_denoise_noise_is_fixed_by_seed_and_name_as_in_denoise_train(tiny):
    args = Args(task="denoise", data=str(tiny["base"] / "clean"), split="all", sigma=25.0, seed=3)
    first, again, other = load_samples(args), load_samples(args), load_samples(Args(**{**vars(args), "seed": 4}))
    noise = [s.input - s.reference for s in first]
    assert all(np.array_equal(a.input, b.input) for a, b in zip(first, again))
    assert not any(np.array_equal(a.input, b.input) for a, b in zip(first, other))
    assert not np.array_equal(noise[0], noise[1])  # each image its own draw
    assert abs(float(np.concatenate([n.ravel() for n in noise]).std()) - 25 / 255) < 0.1 * 25 / 255
    assert min(float(s.input.min()) for s in first) < 0 or max(float(s.input.max()) for s in first) > 1  # unclipped
    from rlenhance.data import noisy_test_set, open_dataset
    trainer = noisy_test_set(open_dataset(args.data, kind="clean", split=None, gray=True, seed=0), 25.0, seed=3)
    assert [t.name for t in trainer] == [s.name for s in first]
    assert all(np.array_equal(t.noisy.permute(1, 2, 0).numpy(), s.input) for t, s in zip(trainer, first))


def test_completion_samples_carry_the_mask_of_the_pair(tiny):
    samples = load_samples(Args(task="completion", data=str(tiny["base"] / "occluded"), split="all"))
    assert samples[0].mask.dtype == bool and samples[0].mask.sum() == 14 * 14
    assert np.all(samples[0].input[samples[0].mask] == 0)


def test_val_split_holds_out_images(tiny):
    samples = load_samples(Args(task="denoise", data=str(tiny["base"] / "clean"), split="val"))
    assert 1 <= len(samples) < 4


# --- errors ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_paired_section_matches_the_per_image_rows(tiny, runs):
    rows = read_rows(tiny["base"] / "completion_out")
    report = (tiny["base"] / "completion_out" / "report.md").read_text()
    section = report.split("## Paired with telea")[1].split("\n## ")[0]
    telea = {r["image"]: float(r["hole_psnr"]) for r in rows if r["method"] == "telea"}
    for method in ("a3c", "gated-pixelrnn", "unet", "diffusion-fill"):
        diffs = np.array([float(r["hole_psnr"]) - telea[r["image"]] for r in rows if r["method"] == method])
        line = next(row for row in section.splitlines() if row.startswith(f"| {method} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == "hole PSNR (dB)" and float(cells[2].split(" ± ")[0]) == pytest.approx(diffs.mean(), abs=6e-4)
        assert cells[3] == f"{int((diffs > 0).sum())} of {len(diffs)}"
    assert "| telea |" not in section


def test_paired_differences_skip_nan_and_count_strict_wins():
    rows = [{"image": i, "method": m, "psnr": v} for i, m, v in [
        ("a", "base", 10.0), ("b", "base", 20.0), ("c", "base", 30.0),
        ("a", "x", 11.0), ("b", "x", 20.0), ("c", "x", float("nan"))]]
    (entry,) = paired_differences(rows, "base", "psnr")
    assert entry == {"method": "x", "field": "psnr", "images": 2, "mean": 0.5, "sem": pytest.approx(0.5), "better": 1}
    lower = [{**row, "niqe": row.pop("psnr")} for row in rows]
    (entry,) = paired_differences(lower, "base", "niqe")  # lower is better: x is better on no image
    assert entry["better"] == 0 and entry["mean"] == 0.5
    with pytest.raises(ValueError, match="--paired-against 'clahe'"):
        in_process("--task", "denoise", "--data", str(Path("/nonexistent")), "--methods", "median",
                   "--paired-against", "clahe", "--out", "/nonexistent/out")


def test_unknown_method_lists_the_accepted_names(tiny):
    with pytest.raises(ValueError) as info:
        in_process("--task", "denoise", "--data", str(tiny["base"] / "clean"), "--methods", "median,telea",
                   "--out", str(tiny["base"] / "bad"))
    message = str(info.value)
    assert "telea" in message and all(name in message for name in TASK_METHODS["denoise"])
    assert not (tiny["base"] / "bad").exists()


def test_checkpoint_of_another_task_is_refused(tiny):
    with pytest.raises(CheckpointError, match="denoise"):
        in_process("--task", "completion", "--data", str(tiny["base"] / "occluded"), "--methods", "a3c",
                   "--a3c", str(tiny["a3c-denoise"]), "--out", str(tiny["base"] / "bad2"))


# --- pieces ------------------------------------------------------------------------------------------------
def test_lol_eval_builds_its_methods_from_the_compare_registry(tiny):
    """lol_eval's ours / Zero-DCE / classical methods are compare's rl / zero-dce / baselines."""
    from experiments import lol_eval
    from experiments.compare.methods import Method, build_methods

    args = lol_eval.Args(checkpoint=str(tiny["a3c-lowlight"]), zero_dce=str(tiny["zero-dce"]), device="cpu")
    ours = lol_eval.build_methods(args, torch.device("cpu"))
    names = ["rl", "zero-dce", "auto-gamma", "histeq", "clahe", "global-curve"]
    theirs, missing = build_methods("lowlight", names, torch.device("cpu"), sigma=25.0,
                                    checkpoints={"rl": str(tiny["a3c-lowlight"]), "zero-dce": str(tiny["zero-dce"])})
    assert not missing and all(isinstance(method, Method) for method in ours.values())
    assert list(ours) == ["rlenhance (ours)", "auto-gamma", "histeq", "clahe", "global-curve", "Zero-DCE"]
    image = _scene(5) * 0.3
    for mine, name in zip(["rlenhance (ours)", "Zero-DCE", "auto-gamma", "histeq", "clahe", "global-curve"], names):
        np.testing.assert_array_equal(ours[mine].run(image), theirs[name].run(image))
        assert ours[mine].params == theirs[name].params


def test_lol_eval_noise_sigma_reaches_a_noise_map_denoiser(tiny):
    """--noise-sigma sets the dark level the shipped blind FFDNet reads after the curves."""
    from experiments import lol_eval
    from rlenhance.denoisers import DENOISER_CHECKPOINTS
    from rlenhance.enhance import DARK_NOISE_SIGMA

    ffdnet = str(DENOISER_CHECKPOINTS["ffdnet", 1])
    image = _scene(5) * 0.3
    outs = {}
    for level in (None, 1.0, DARK_NOISE_SIGMA):
        args = lol_eval.Args(checkpoint=str(tiny["a3c-lowlight"]), denoiser=ffdnet, noise_sigma=level, classical=False,
                             device="cpu")
        outs[level] = lol_eval.build_methods(args, torch.device("cpu"))["rlenhance (ours) + denoiser"].run(image)
    np.testing.assert_array_equal(outs[None], outs[DARK_NOISE_SIGMA])  # the default
    assert np.abs(outs[1.0] - outs[None]).max() > 1e-4


def test_hole_ssim_is_the_mean_of_the_ssim_map_over_the_hole():
    rng = np.random.default_rng(0)
    x, y = _scene(1, 1)[..., 0], np.clip(_scene(1, 1)[..., 0] + rng.normal(0, 0.05, (SIZE, SIZE)), 0, 1)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[10:25, 5:30] = True
    _, full = structural_similarity(x, y.astype(np.float32), data_range=1.0, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, full=True)
    t = lambda a: torch.from_numpy(np.asarray(a, np.float32))[None, None]  # noqa: E731
    value = hole_ssim(t(x), t(y), t(mask))
    assert float(value[0]) == pytest.approx(float(full[mask].mean()), abs=1e-4)
    assert torch.isnan(hole_ssim(t(x), t(y), t(np.zeros_like(mask))))[0]


def test_grid_and_plot_sizes(tmp_path):
    rows = [[np.zeros((20, 30, 1), np.float32), np.ones((30, 20, 3), np.float32)]] * 2
    grid = labelled_grid(rows, ["a", "b"], tile=50, gap=4, header=20)
    assert grid.shape == (20 + 2 * 50 + 4, 2 * 50 + 4, 3) and grid.dtype == np.float32
    assert grid[20 + 25, 25].max() == 0.0 and grid[20 + 25, 54 + 25].min() == 1.0  # gray black, RGB white
    figure = quality_vs_time([("fast", 1.0, 20.0), ("slow", 1000.0, 30.0), ("nan", 5.0, float("nan"))],
                             size=(400, 300))
    plot = load_image(save_figure(figure, tmp_path / "plot.png"))  # the matplotlib figure's file
    assert plot.shape == (300, 400, 3) and 0.0 <= plot.min() and plot.max() <= 1.0


def test_lol_eval_alpha_mode_reaches_our_enhancer(tiny):
    """--alpha-mode argmax runs our policy with its most probable alphas: the same as an Enhancer built
    with alpha_mode="argmax", not what the checkpoint's own "mean" gives."""
    from experiments import lol_eval

    image = _scene(5) * 0.3
    outputs = {}
    for mode in ("mean", "argmax"):
        args = lol_eval.Args(checkpoint=str(tiny["a3c-lowlight"]), classical=False, device="cpu", alpha_mode=mode)
        outputs[mode] = lol_eval.build_methods(args, torch.device("cpu"))["rlenhance (ours)"].run(image)
        direct = Enhancer(tiny["a3c-lowlight"], device="cpu", alpha_mode=mode).enhance(image)
        np.testing.assert_array_equal(outputs[mode], direct)
    assert np.abs(outputs["mean"] - outputs["argmax"]).max() > 1e-3


# --- low light: photos without references, full-reference options, peers, the embedded default ----------
PHOTO_SHAPE = (100, 128)  # NIQE needs 96 x 96 pixels


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A flat folder of three dark colour photos without references (crops of scikit-image's photos)."""
    from skimage import data as skdata

    folder = tmp_path_factory.mktemp("photos")
    for name in ("chelsea", "coffee", "astronaut"):
        photo = getattr(skdata, name)()[:PHOTO_SHAPE[0] * 2:2, :PHOTO_SHAPE[1] * 2:2] / 255.0
        save_image(folder / f"{name}.png", (0.3 * photo ** 2).astype(np.float32))
    return folder


def test_photos_without_references_get_the_no_reference_scores_per_image(photos, tmp_path):
    out = tmp_path / "photos_out"
    summary, stdout = in_process("--task", "lowlight", "--data", str(photos), "--methods", "input,auto-gamma,histeq",
                                 "--paired-against", "input", "--no-warmup", "--out", str(out))
    rows = read_rows(out)
    assert list(rows[0]) == ["image", "method", *NO_REFERENCE, "ms"]  # no PSNR without references
    assert len(rows) == 9 and {r["method"] for r in rows} == {"input", "auto-gamma", "histeq"}  # split: all
    low = load_image(photos / "coffee.png")
    by = {(r["method"], r["image"]): r for r in rows}
    assert float(by["input", "coffee.png"]["loe"]) == 0.0
    assert float(by["input", "coffee.png"]["niqe"]) == pytest.approx(niqe(low))
    assert float(by["input", "coffee.png"]["dark_noise"]) == pytest.approx(dark_colour_noise(low, low))
    brightened = {name: float(by["histeq", name]["brightness"]) - float(by["input", name]["brightness"])
                  for name in ("chelsea.png", "coffee.png", "astronaut.png")}
    assert min(brightened.values()) > 0.1
    report = (out / "report.md").read_text()
    assert "without references" in report and "| input | 3 |" in report and " ± " in report
    assert "| histeq | NIQE |" in report and " of 3 |" in report and "| histeq | dark colour noise |" in report
    assert "PSNR" not in report.split("## Paired")[0]
    grid = load_image(out / "samples.png")
    assert grid.shape[1] == 3 * 160 + 2 * 4  # input | auto-gamma | histeq: no reference column
    assert {e["method"]: e["images"] for e in summary} == {"input": 3, "auto-gamma": 3, "histeq": 3}


def test_pairs_get_full_reference_and_no_reference_scores_on_rgb_or_y_with_or_without_gt_mean(tiny, tmp_path):
    data = tiny["base"] / "lowlight"
    common = ("--task", "lowlight", "--data", str(data), "--split", "all", "--methods", "input,clahe", "--no-warmup")
    runs = {}
    for options in ((), ("--psnr-on", "y"), ("--gt-mean",), ("--psnr-on", "y", "--gt-mean")):
        out = tmp_path / ("_".join(options) or "plain")
        in_process(*common, *options, "--out", str(out))
        runs[options] = ({(r["method"], r["image"]): r for r in read_rows(out)}, (out / "report.md").read_text())
    low, high = load_image(data / "low" / "001.png"), load_image(data / "high" / "001.png")
    x, y = (torch.from_numpy(a).permute(2, 0, 1)[None] for a in (low, high))
    aligned = gt_mean_align(x, y)
    expected = {(): psnr(x, y), ("--psnr-on", "y"): psnr(rgb_to_y(x), rgb_to_y(y)), ("--gt-mean",): psnr(aligned, y),
                ("--psnr-on", "y", "--gt-mean"): psnr(rgb_to_y(aligned), rgb_to_y(y))}
    for options, value in expected.items():
        rows, report = runs[options]
        row = rows["input", "001.png"]
        assert float(row["psnr"]) == pytest.approx(float(value[0]), abs=1e-4), options
        assert {"niqe", "loe", "dark_noise", "clipped", "brightness"} <= set(row)  # (nan niqe: 40 px images)
        assert ("on Y (BT.601" in report) == ("y" in options) and ("(GT-mean)" in report) == ("--gt-mean" in options)
    assert float(runs[("--gt-mean",)][0]["input", "001.png"]["ssim"]) == pytest.approx(float(ssim(aligned, y)[0]),
                                                                                      abs=1e-5)
    assert len({float(runs[o][0]["input", "001.png"]["psnr"]) for o in expected}) == 4
    with pytest.raises(ValueError, match="--psnr-on y"):
        in_process("--task", "denoise", "--data", str(tiny["base"] / "clean"), "--psnr-on", "y",
                   "--out", str(tmp_path / "gray_y"))


def test_peers_run_from_the_weights_given_by_path(tiny, tmp_path, shared_dir):
    zero_dcepp = tmp_path / "zero_dcepp.pth"
    torch.manual_seed(0)
    torch.save(ZeroDCEPP().state_dict(), zero_dcepp)
    out = tmp_path / "peers"
    summary, stdout = in_process("--task", "lowlight", "--data", str(tiny["base"] / "lowlight"), "--split", "all",
                                 "--methods", "input,zero-dce,zero-dce++,rellie", "--no-warmup", "--limit", "1",
                                 "--zero-dce", str(tiny["zero-dce"]), "--zero-dcepp", str(zero_dcepp),
                                 "--rellie", str(shared_dir / "weights" / "rellie_model.npz"), "--out", str(out))
    assert [e["method"] for e in summary] == ["input", "zero-dce", "zero-dce++", "rellie"]
    assert {e["method"]: e["params"] for e in summary}["zero-dce++"] == 10_561  # the published count
    assert f"- zero-dce++: `{zero_dcepp}`" in (out / "report.md").read_text()
    _, stdout = in_process("--task", "lowlight", "--data", str(tiny["base"] / "lowlight"), "--split", "all",
                           "--methods", "input,zero-dce++", "--out", str(tmp_path / "absent"))
    assert "zero-dce++: missing: no checkpoint: --zero-dcepp not given" in stdout


def test_a_bad_ffdnet_file_is_an_error_not_an_empty_report(tiny, tmp_path):
    garbage = tmp_path / "bad.pt"
    garbage.write_bytes(b"not a checkpoint")
    common = ["--task", "denoise", "--data", str(tiny["base"] / "clean"), "--methods", "ffdnet"]
    with pytest.raises(CheckpointError, match="bad.pt"):
        in_process(*common, "--ffdnet", str(garbage), "--out", str(tmp_path / "out"))
    with pytest.raises(ValueError, match="no method can run: ffdnet: --ffdnet .*absent.pt: no such file"):
        in_process(*common, "--ffdnet", str(tmp_path / "absent.pt"), "--out", str(tmp_path / "out"))
    proc = subprocess.run([sys.executable, "-m", "experiments.compare", *common, "--ffdnet", str(garbage),
                           "--out", str(tmp_path / "cli")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "bad.pt" in proc.stderr and not (tmp_path / "cli").exists()


def test_the_embedded_default_is_darkened_synthetically_from_the_seed():
    (first,) = load_samples(Args(task="lowlight", limit=1))
    (again,) = load_samples(Args(task="lowlight", limit=1))
    (other,) = load_samples(Args(task="lowlight", limit=1, seed=1))
    assert first.name == "astronaut" and first.reference.shape == first.input.shape
    assert first.input.mean() < 0.5 * first.reference.mean()
    assert np.array_equal(first.input, again.input) and not np.array_equal(first.input, other.input)
    assert "--split val is ignored" in ignored_flags(Args(task="lowlight", split="val"))[0]


def test_no_reference_scores_of_a_tiny_output_leave_niqe_undefined():
    image = np.full((40, 40, 3), 0.1, np.float32)
    scores = score(np.clip(image * 3, 0, 1), Sample("x", image, None), task_metrics("lowlight", reference=False))
    assert list(scores) == NO_REFERENCE and np.isnan(scores["niqe"])
    assert scores["loe"] == loe(image, image * 3) and scores["brightness"] == pytest.approx(0.3)


# --- non-uniform light and the global baselines ---------------------------------------------------------------
def test_uneven_light_relights_each_reference_from_the_seed_and_its_name(tiny):
    """--light uneven: every pair's low frame is replaced by its reference relit (rlenhance.data.uneven_capture
    of --seed and the name), the same whatever the order or subset, another with another seed."""
    folder = tiny["base"] / "lowlight"
    common = {"task": "lowlight", "data": str(folder), "split": "all", "light": "uneven"}
    first = load_samples(Args(**common))
    again, other = load_samples(Args(**common)), load_samples(Args(**common, seed=1))
    (alone,) = load_samples(Args(**common, limit=1))
    pairs = {s.name: s for s in load_samples(Args(task="lowlight", data=str(folder), split="all"))}
    for sample, twin, third in zip(first, again, other):
        assert np.array_equal(sample.reference, pairs[sample.name].reference)
        assert not np.array_equal(sample.input, pairs[sample.name].input)  # not the pair's own low frame
        assert np.array_equal(sample.input, twin.input) and not np.array_equal(sample.input, third.input)
        assert sample.input.mean() < 0.8 * sample.reference.mean()
    assert alone.name == first[0].name and np.array_equal(alone.input, first[0].input)
    (embedded,) = load_samples(Args(task="lowlight", light="uneven", limit=1))  # the embedded photos too
    (uniform,) = load_samples(Args(task="lowlight", limit=1))
    assert np.array_equal(embedded.reference, uniform.reference) and not np.array_equal(embedded.input, uniform.input)
    assert "--light uneven is ignored" in ignored_flags(Args(task="denoise", light="uneven"))[0]
    assert "relit by non-uniform light" in data_label(Args(**common))


def test_references_alone_are_darkened_as_the_embedded_photos_or_relit(tiny, tmp_path):
    """A folder with high/ alone: each reference darkened synthetically (seeded by --seed and its name), or
    relit with --light uneven, scored against itself."""
    shutil.copytree(tiny["base"] / "lowlight" / "high", tmp_path / "refs" / "high")
    common = {"task": "lowlight", "data": str(tmp_path / "refs"), "split": "all"}
    for light in ("data", "uneven"):
        samples = load_samples(Args(**common, light=light))
        again = load_samples(Args(**common, light=light))
        assert samples and all(s.reference is not None and s.input.mean() < 0.8 * s.reference.mean() for s in samples)
        assert all(np.array_equal(s.input, t.input) for s, t in zip(samples, again))
    assert not np.array_equal(samples[0].input, load_samples(Args(**common))[0].input)


def test_uneven_light_needs_references(photos):
    with pytest.raises(DatasetError, match="--light uneven relights each image's reference, but .* has none"):
        load_samples(Args(task="lowlight", data=str(photos), light="uneven"))


def test_the_global_oracle_beats_the_global_curve_and_the_input_under_uneven_light(tiny, tmp_path):
    out = tmp_path / "uneven"
    summary, stdout = in_process("--task", "lowlight", "--data", str(tiny["base"] / "lowlight"), "--split", "all",
                                 "--light", "uneven", "--methods", "input,global-curve,oracle-global", "--gt-mean",
                                 "--no-warmup", "--out", str(out))
    assert [e["method"] for e in summary] == ["input", "global-curve", "oracle-global"]
    by = {(r["method"], r["image"]): r for r in read_rows(out)}
    for name in ("000.png", "001.png", "002.png"):
        oracle, curve, low = (float(by[m, name]["psnr"]) for m in ("oracle-global", "global-curve", "input"))
        assert oracle > curve and oracle > low
        assert abs(float(by["global-curve", name]["brightness"]) - 0.4) < 0.03  # luma; the RGB mean is 0.4
    assert "oracle-global: an upper bound fitted with the reference" in stdout
    sample = load_samples(Args(task="lowlight", data=str(tiny["base"] / "lowlight"), split="all", light="uneven"))[0]
    curve = compare_methods.baseline_method("lowlight", "global-curve").run(sample.input)
    assert abs(float(curve.mean()) - 0.4) < 0.01  # the shipped policy's exposure target


def test_a_method_fitted_to_references_is_refused_without_them(photos, tmp_path):
    with pytest.raises(ValueError, match="no method can run: oracle-global: it is fitted to each image's reference, "
                                         "and these images have none"):
        in_process("--task", "lowlight", "--data", str(photos), "--methods", "oracle-global",
                   "--out", str(tmp_path / "alone"))
    summary, stdout = in_process("--task", "lowlight", "--data", str(photos), "--methods", "input,oracle-global",
                                 "--no-warmup", "--limit", "1", "--out", str(tmp_path / "named"))
    assert [e["method"] for e in summary] == ["input"] and "oracle-global: missing: it is fitted" in stdout
    assert "oracle-global" in requested_methods(Args(task="lowlight"))  # by default where there are references
    with pytest.raises(TypeError, match="reference"):  # its run needs the reference
        compare_methods.reference_method("oracle-global").run(np.zeros((4, 4, 3), np.float32))
