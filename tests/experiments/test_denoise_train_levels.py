"""experiments.denoise_train task.level_scales (the ``noise-map`` preset's actions): the policy scales
the predictor FFDNet's noise-level map; the spec records the transition; the env rollout, the
library's denoiser and compare's method give the same image; bad settings are named."""

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from envs.checkpoints import make_for_checkpoint
from experiments import config, denoise_train
from experiments.runs import scalar_rows
from rlenhance import load_denoiser
from rlenhance.checkpoint import load_checkpoint
from rlenhance.data import noise_ramp
from tests.rollouts import env_restore

ROOT = Path(__file__).resolve().parents[2]
FFDNET = ROOT / "rlenhance" / "weights" / "ffdnet_denoise.pt"
TINY = ["--episodes", "2", "--eval-every", "2", "--batch", "2", "--crop", "16", "--steps", "2", "--width", "8",
        "--samples", "1", "--threads", "1", "--eval-images", "1"]
LEVELS = ["--predictor", str(FFDNET), "--set", "task.level_scales=0.5,1,2", "--sigma", "10", "50",
          "--set", "task.noise_ramp=true"]


@pytest.fixture(scope="module")
def levels_printed(tmp_path_factory):
    """The run folder of a tiny noise-map run and what it printed."""
    out = tmp_path_factory.mktemp("denoise_levels") / "run"  # the embedded photos
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        folder = Path(denoise_train.main([*TINY, *LEVELS, "--out", str(out)]))
    return folder, printed.getvalue()


@pytest.fixture(scope="module")
def levels_run(levels_printed):
    return levels_printed[0]


def test_the_run_ends_with_the_command_of_the_noise_map_model(levels_printed):
    folder, printed = levels_printed
    assert f"--model noise-map --checkpoint {folder / 'checkpoints' / 'best.pt'}" in printed.splitlines()[-1]


def test_the_run_records_the_map_transition_and_scores_ffdnet(levels_run):
    ckpt = load_checkpoint(levels_run / "checkpoints" / "best.pt")
    spec = ckpt["extra"]["spec"]
    assert spec.transition.level_scales == (0.5, 1.0, 2.0) and spec.transition.steps == 2
    assert spec.env_kwargs["noise_ramp"] is True and ckpt["arch"]["kwargs"]["in_channels"] == 3
    scores = {row["metric"]: float(row["value"]) for row in scalar_rows(levels_run)}
    assert scores["eval/predictor_psnr"] > scores["eval/input_psnr"]
    # scored on the ramp and at each level; their mean picks best.pt
    parts = [scores[f"eval/psnr_{part}"] for part in ("ramp", "sigma10", "sigma50")]
    assert scores["eval/psnr"] == pytest.approx(sum(parts) / 3, abs=1e-3)  # the csv rounds


def test_the_policy_runs_alike_in_the_env_and_in_the_library(levels_run):
    path = levels_run / "checkpoints" / "best.pt"
    library = load_denoiser(model="noise-map", checkpoint=path, device="cpu")
    transition = make_for_checkpoint(path).task.transition
    assert transition.sets_level and library.transition == transition
    assert load_checkpoint(path)["arch"]["kwargs"]["in_channels"] == 3  # the image, the map, the noise strength
    clean = np.tile(np.linspace(0.1, 0.9, 40, dtype=np.float32), (30, 1))[..., None]
    sigma = noise_ramp((30, 40), 10.0, 50.0)[0, 0, ..., None].numpy() / 255
    noisy = clean + np.random.default_rng(0).normal(0, 1, clean.shape).astype(np.float32) * sigma
    out = library.restore(noisy)
    np.testing.assert_allclose(out, env_restore(path, noisy), atol=1e-5, rtol=0)
    # the library's rollout (the trainer's evaluation too) runs FFDNet once, on the final map
    calls, with_level = [], library.predictor.with_level
    library.predictor.with_level = lambda *args: calls.append(1) or with_level(*args)
    np.testing.assert_allclose(library.restore(noisy), out, atol=1e-5, rtol=0)
    assert len(calls) == 1
    # the map's policy is FFDNet's map set per pixel: its output is FFDNet's for some map
    ffdnet = load_denoiser("ffdnet", FFDNET, channels=1, device="cpu")
    assert np.abs(out - ffdnet.restore(noisy)).max() < 0.5


def test_a_noise_map_policy_needs_ffdnet_and_a3c(tmp_path):
    with pytest.raises(ValueError, match="task.level_scales: .*give --predictor"):
        denoise_train.main([*TINY, "--set", "task.level_scales=0.5,1", "--out", str(tmp_path / "a")])
    with pytest.raises(ValueError, match="task.level_scales: .*for A3C"):
        denoise_train.main([*TINY, *LEVELS, "--agent", "sac", "--out", str(tmp_path / "b")])
    with pytest.raises(ValueError, match="task.noise_ramp: .*two levels"):
        denoise_train.main([*TINY, "--set", "task.noise_ramp=true", "--sigma", "25", "--out", str(tmp_path / "c")])
    assert not any(tmp_path.iterdir())


def test_the_noise_map_preset_is_the_documented_recipe():
    cfg = denoise_train.parse_args(["--preset", "noise-map"])
    assert cfg.task.level_scales == denoise_train.LEVEL_SCALES and cfg.task.noise_ramp
    assert cfg.task.predictor.endswith("ffdnet_denoise.pt") and cfg.task.sigma == (10.0, 25.0, 50.0)
    assert 1.0 in cfg.task.level_scales  # the map can stay as it is
    color = denoise_train.parse_args(["--preset", "noise-map-color"])
    assert not color.task.gray and color.task.data.endswith("sice_pairs/train/high")
    assert config.replace_path(color, {"task.gray": True, "task.data": cfg.task.data}) == cfg  # the same task in RGB
