"""experiments.denoise_train --predictor: a tenth action takes the supervised denoiser's pixel, the
checkpoints record its path, the run reports the predictor's own scores, and the trained policy
runs with its predictor through the env and in the library alike, also shipped to another folder
with its predictor beside it."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from envs.checkpoints import make_for_checkpoint
from experiments import denoise_train
from experiments.compare.methods import rollout_method
from experiments.runs import scalar_rows
from rlenhance import load_denoiser
from rlenhance.checkpoint import load_checkpoint
from rlenhance.errors import CheckpointError
from rlenhance.io import save_image
from tests.rollouts import env_restore

ROOT = Path(__file__).resolve().parents[2]
MRPNET = ROOT / "rlenhance" / "weights" / "mrpnet_denoise.pt"
TINY = ["--episodes", "2", "--eval-every", "2", "--batch", "2", "--crop", "16", "--steps", "2", "--width", "8",
        "--samples", "1", "--threads", "1", "--eval-images", "1"]


@pytest.fixture(scope="module")
def predictor_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("denoise_predictor") / "run"  # the embedded photos
    return Path(denoise_train.main([*TINY, "--predictor", str(MRPNET), "--out", str(out)]))


def test_the_run_records_the_predictor_and_scores_it(predictor_run):
    spec = load_checkpoint(predictor_run / "checkpoints" / "best.pt")["extra"]["spec"]
    assert Path(spec.predictor) == MRPNET.resolve() and "predictor" not in spec.env_kwargs
    scores = {row["metric"]: float(row["value"]) for row in scalar_rows(predictor_run)}
    # MRPNet, trained for sigma 25, denoises far above the noisy input
    assert scores["eval/predictor_psnr"] > scores["eval/input_psnr"] + 5
    assert 0 < scores["eval/predictor_ssim"] <= 1


def test_the_policy_runs_with_its_predictor_in_the_env_and_in_the_library(predictor_run):
    path = predictor_run / "checkpoints" / "best.pt"
    library = load_denoiser(model="a3c", checkpoint=path, device="cpu")
    assert len(library.action_names) == 10 and library.predictor is not None
    # its size (compare's params) counts the predictor's network as well as the policy's
    sizes = [sum(p.numel() for p in net.parameters()) for net in (library.policy, library.predictor.model)]
    assert rollout_method("a3c", path, torch.device("cpu"), task="denoise").params == sum(sizes) > sizes[0]
    rng = np.random.default_rng(0)
    clean = np.tile(np.linspace(0.1, 0.9, 40, dtype=np.float32), (30, 1))[..., None]
    noisy = clean + rng.normal(0, 25 / 255, clean.shape).astype(np.float32)
    np.testing.assert_allclose(library.restore(noisy), env_restore(path, noisy), atol=1e-5, rtol=0)


def test_a_policy_shipped_with_its_predictor_beside_it_loads_anywhere(tmp_path):
    """The spec records the trainer's absolute predictor path; once the policy and its predictor
    are moved into one folder (another machine), the library and the env find the predictor beside the
    policy; without it there, both name the places tried. (With --test, the predictor is scored on
    the test images too, for reporting.)"""
    trainer = tmp_path / "trainer"
    save_image(trainer / "test" / "t.png", np.tile(np.linspace(0.1, 0.9, 24, dtype=np.float32), (20, 1)))
    shutil.copy(MRPNET, trainer / "denoiser.pt")  # a name rlenhance/weights/ does not hold
    run = Path(denoise_train.main([*TINY, "--predictor", str(trainer / "denoiser.pt"), "--test", str(trainer / "test"),
                                   "--out", str(trainer / "run")]))
    names = {row["metric"] for row in scalar_rows(run)}
    assert {"eval/predictor_psnr", "test/predictor_psnr", "test/predictor_ssim"} <= names
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    policy = Path(shutil.copy(run / "checkpoints" / "best.pt", shipped / "a3c_denoise.pt"))
    shutil.move(trainer / "denoiser.pt", shipped / "denoiser.pt")
    assert load_checkpoint(policy)["extra"]["spec"].predictor == str((trainer / "denoiser.pt").resolve())
    library = load_denoiser(model="a3c", checkpoint=policy, device="cpu")
    assert make_for_checkpoint(policy).task.predictor.path == library.predictor.path == shipped / "denoiser.pt"
    noisy = np.random.default_rng(1).random((20, 24, 1), dtype=np.float32)
    np.testing.assert_allclose(library.restore(noisy), env_restore(policy, noisy), atol=1e-5, rtol=0)
    (shipped / "denoiser.pt").unlink()
    for load in (make_for_checkpoint, lambda path: load_denoiser(model="a3c", checkpoint=path, device="cpu")):
        with pytest.raises(CheckpointError, match=r"predictor denoiser.pt: no such file at .*trainer/denoiser.pt, "
                                                  r".*shipped/denoiser.pt, .*weights/denoiser.pt; "
                                                  r".*its spec.s predictor"):
            load(policy)


def test_a_missing_or_wrong_predictor_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="--predictor /nonexistent/denoiser.pt: no such file"):
        denoise_train.main([*TINY, "--predictor", "/nonexistent/denoiser.pt", "--out", str(tmp_path / "a")])
    with pytest.raises(CheckpointError, match="a gray .* denoiser; the model denoises RGB"):
        denoise_train.main([*TINY, "--no-gray", "--predictor", str(MRPNET), "--out", str(tmp_path / "b")])
    assert not (tmp_path / "b").exists()  # refused before the run folder is made


@pytest.mark.parametrize("agent", ["a3c", "sac"])
def test_a_policy_that_observes_its_prediction_reads_it_in_the_env_and_in_the_library(tmp_path, agent):
    """--observe-prediction: the policy reads the image and the prediction (two gray planes), the
    spec records it, and the env rollout and the library's tiled denoiser give the same image."""
    out = tmp_path / agent
    sac = ["--set", "sac.learning_starts=2"] if agent == "sac" else []
    denoise_train.main([*TINY, "--agent", agent, *sac, "--predictor", str(MRPNET), "--observe-prediction",
                        "--out", str(out)])
    path = out / "checkpoints" / "best.pt"
    ckpt = load_checkpoint(path)
    assert ckpt["extra"]["spec"].env_kwargs["observe_prediction"] is True
    assert ckpt["arch"]["kwargs"]["in_channels"] == 2
    library = load_denoiser(model=agent, checkpoint=path, device="cpu", tile=16)
    spaces = make_for_checkpoint(path).task.single_observation_space.spaces
    assert library.observe_prediction and set(spaces) == {"image", "prediction"}
    rng = np.random.default_rng(1)
    clean = np.tile(np.linspace(0.1, 0.9, 40, dtype=np.float32), (30, 1))[..., None]
    noisy = clean + rng.normal(0, 25 / 255, clean.shape).astype(np.float32)
    np.testing.assert_allclose(library.restore(noisy), env_restore(path, noisy), atol=1e-5, rtol=0)


def test_observe_prediction_needs_a_predictor(tmp_path):
    with pytest.raises(ValueError, match="--observe-prediction: .*give --predictor"):
        denoise_train.main([*TINY, "--observe-prediction", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()
