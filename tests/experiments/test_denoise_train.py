"""experiments.denoise_train on tiny folders: run folder, fixed test noise, best.pt chosen on the
tuning split (never on --test) and reported on the validation split, resume, SAC, a blind colour
policy (several --sigma levels), bad arguments, SIGTERM and kills between the run folder's writes."""

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

import envs
from experiments import denoise_train
from experiments.rl_common import make_agent
from experiments.runs import scalar_rows
from experiments.sigmas import noise_text
from rlenhance.checkpoint import load_checkpoint
from rlenhance.data import TUNE_FRACTION, UnpairedImages, noisy_test_set
from rlenhance.denoisers import PolicyDenoiser
from rlenhance.errors import DatasetError
from rlenhance.io import save_image
from tests.rollouts import stepped

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--episodes", "4", "--eval-every", "2", "--batch", "2", "--crop", "16", "--steps", "2", "--width", "8",
        "--samples", "2", "--threads", "1", "--sigma", "25"]  # one level (the default is the shipped blind three)
SIGMA = 25.0
TEST_NAMES = frozenset({"wide.png", "tall.png"})  # the --test images of `folders`


def smooth_image(rng, height, width):
    """A gray test picture with structure (a gradient and a square), float32 (H, W) in [0, 1]."""
    y, x = np.mgrid[0:height, 0:width]
    img = 0.2 + 0.5 * x / width + 0.1 * rng.random((height, width))
    img[height // 4:height // 2, width // 4:width // 2] = 0.9
    return img.astype(np.float32)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("denoise_data")
    rng = np.random.default_rng(0)
    for k in range(4):
        save_image(root / "train" / f"train{k}.png", smooth_image(rng, 32, 32))
    save_image(root / "test" / "wide.png", smooth_image(rng, 20, 28))  # mixed orientations, as BSD68
    save_image(root / "test" / "tall.png", smooth_image(rng, 28, 20))
    return root


def tiny_args(folders, out, *extra):
    return [*TINY, "--data", str(folders / "train"), "--test", str(folders / "test"), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def tiny_run(folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("denoise") / "run"
    return denoise_train.main(tiny_args(folders, out))


def test_run_folder_contents(tiny_run):
    out = Path(tiny_run)
    config = json.loads((out / "config.json").read_text())
    assert config["task"]["sigma"] == [SIGMA] and config["a3c"]["gamma"] == 0.95 and config["agent"] == "a3c"
    rows = list(scalar_rows(out))
    names = {r["metric"] for r in rows}
    assert {"charts/episode_return", "losses/value_loss", "losses/policy_loss", "eval/psnr", "eval/ssim",
            "eval/input_psnr", "test/psnr", "test/ssim", "test/input_psnr"} <= names
    assert max(int(r["step"]) for r in rows) == 4
    assert (out / "samples" / "episode_000002.png").is_file() and (out / "samples" / "episode_000004.png").is_file()
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    assert last["extra"]["episode"] == 4 and "state" in last["extra"] and "state" not in best["extra"]
    spec = best["extra"]["spec"]
    assert spec.task == "denoise" and spec.transition.steps == 2 and spec.env_kwargs["sigma"] == SIGMA
    assert (spec.channels, spec.sigmas) == (1, (SIGMA,))  # one level: gray, not blind
    assert not any("_sigma" in name for name in names)  # one level: no per-level columns
    logged = [float(r["value"]) for r in rows if r["metric"] == "eval/psnr"]
    assert best["extra"]["best"] == pytest.approx(max(logged), abs=1e-3)  # csv keeps 6 digits
    summary = (out / "summary.md").read_text()
    assert "| episodes |" in summary and "| tune_input_psnr |" in summary and "| test_input_psnr |" in summary
    assert "| best_tune_psnr |" in summary and "| tune_images | val_images | test_images |" in summary
    assert "| val_psnr |" in summary and "| val_input_psnr |" in summary  # best.pt's report
    assert "best.pt picked on the tuning split: tune_*, best_*; val_*: best.pt on the validation split" in summary
    assert len([r for r in rows if r["metric"] == "eval/psnr"]) == 2  # one row per evaluation, none for the report


def test_the_sample_grid_shows_each_images_actions_at_the_first_and_last_step_and_evaluation_shows_progress(
        folders):
    from experiments.grids import action_map
    from experiments.sigmas import noisy_test_sets

    cfg = denoise_train.parse_args(tiny_args(folders, "unused"))
    images = noisy_test_sets(denoise_train.open_data(cfg).tune, denoise_train.sigma_value(cfg), seed=0,
                             device=torch.device("cpu"), limit=0)
    venv = envs.make_vec(denoise_train.ENV_ID, num_envs=1, **denoise_train.env_kwargs(cfg))
    torch.manual_seed(0)
    policy = make_agent(cfg, venv, steps=cfg.task.steps).policy.eval()
    with torch.no_grad():  # a policy whose actions vary over the image
        policy.policy_head.weight.normal_(0, 2.0)
    shown = []  # the evaluation's progress: the rollouts' batches and the scored images under bars
    _, rows = denoise_train.evaluate(policy, images, cfg,
                                     track=lambda items, desc: shown.append((desc, len(items))) or items)
    count = len(next(iter(images.values())))
    assert [desc for desc, _ in shown] == ["rollouts", "scores at sigma 25"] and shown[1][1] == count
    assert denoise_train.grid_captions(cfg) == ("noisy", "output", "clean", "actions, step 1", "actions, step 2",
                                                "key")
    assert len(rows[0]) == 6 and all(len(row) == 5 for row in rows[1:])  # the key after the first row
    first = next(iter(images.values()))[0]
    single = envs.make_vec(denoise_train.ENV_ID, num_envs=1, **{**denoise_train.env_kwargs(cfg),
                                                                  "crop": tuple(first.noisy.shape[-2:])})
    _, actions = stepped(policy, single, {"clean": first.clean, "noisy": first.noisy}, steps=2)
    assert torch.equal(rows[0][3], action_map(actions[0, 0], venv.task.actions))
    assert torch.equal(rows[0][4], action_map(actions[0, 1], venv.task.actions))
    assert len(rows[0][3].flatten(1).unique(dim=1).T) > 1  # several actions, several colours
    assert rows[0][5].shape[1] <= first.noisy.shape[1]  # the key fits beside the image


def test_best_is_picked_on_the_tuning_split_never_on_the_test_images_and_reported_on_validation(
        folders, tmp_path, monkeypatch, capsys):
    """--data is split into train, tune and val by scene. The tuning split picks best.pt; the --test
    images are scored at the same evaluations under test/... only; after the run best.pt's weights (not
    the last ones) are scored once on the validation split: printed and in the summary's val_* columns,
    not in metrics.csv. Rigged scores make them disagree: the tuning PSNR falls from one evaluation to
    the next, the test PSNR rises."""
    real, calls = denoise_train.evaluate, []

    def rigged(policy, images, args, predictor=None, **kwargs):
        scores, rows = real(policy, images, args, predictor, **kwargs)
        names = frozenset(im.name for level in images.values() for im in level)
        calls.append((names, {k: v.clone() for k, v in policy.state_dict().items()}))
        k = [called for called, _ in calls].count(names)  # the k-th evaluation of these images
        scores["eval/psnr"] = 10.0 + k if names == TEST_NAMES else 0.0 if len(calls) == 5 else 40.0 - k  # 5: val
        return scores, rows

    monkeypatch.setattr(denoise_train, "evaluate", rigged)
    out = Path(denoise_train.main(tiny_args(folders, tmp_path / "run")))
    data = denoise_train.open_data(denoise_train.parse_args(tiny_args(folders, tmp_path / "x")))
    train, tune, val = ({item["name"] for item in part} for part in (data.train, data.tune, data.val))
    assert tune and val and not (train & tune or train & val or tune & val)  # held out of training, disjoint
    assert train | tune | val == {f"train{k}.png" for k in range(4)} and data.split == "tune"
    assert {item["name"] for item in data.test} == TEST_NAMES
    assert [names for names, _ in calls] == [tune, TEST_NAMES, tune, TEST_NAMES, val]  # val once, at the end
    at = {(r["metric"], int(r["step"])): float(r["value"]) for r in scalar_rows(out)}
    assert [at["eval/psnr", s] for s in (2, 4)] == [39.0, 38.0] and [at["test/psnr", s] for s in (2, 4)] == [11.0, 12.0]
    assert len([key for key in at if key[0] == "eval/psnr"]) == 2
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    assert (best["extra"]["best"], best["extra"]["best_episode"], best["extra"]["metric"]) == (39.0, 2, "eval/psnr")
    reported, last = calls[-1][1], load_checkpoint(out / "checkpoints" / "last.pt")
    assert all(torch.equal(value, best["state_dict"][key]) for key, value in reported.items())  # best.pt's weights
    assert not all(torch.equal(value, last["state_dict"][key]) for key, value in reported.items())
    assert last["extra"]["report"]["eval/psnr"] == 0.0
    assert "best.pt (episode 2, picked on the tuning split): validation psnr 0, ssim" in capsys.readouterr().out
    summary = (out / "summary.md").read_text().splitlines()
    header, cells = ([c.strip() for c in line.strip("|").split("|")] for line in (summary[2], summary[4]))
    row = dict(zip(header, cells))
    assert (row["val_psnr"], row["best_tune_psnr"], row["tune_psnr"], row["test_psnr"]) == ("0", "39", "38", "12")
    # without --test: the same splits, no test scores
    no_test = [a for a in tiny_args(folders, tmp_path / "y") if a != str(folders / "test") and a != "--test"]
    same = denoise_train.open_data(denoise_train.parse_args(no_test))
    assert same.test is None and {item["name"] for item in same.tune} == tune
    assert {item["name"] for item in same.val} == val


def test_tune_fraction_0_picks_on_the_validation_split_as_the_unshipped_policies_presets_do(folders):
    """task.tune_fraction 0: no tuning split; the validation split is the same as with one (the tuning
    scenes go back to training) and picks best.pt. The presets of the unshipped policies whose figures
    are quoted have it; the shipped files' presets pick on the tuning split."""
    default = denoise_train.open_data(denoise_train.parse_args(tiny_args(folders, "unused")))
    untuned = denoise_train.open_data(denoise_train.parse_args(tiny_args(folders, "unused", "--set",
                                                                         "task.tune_fraction=0")))
    names = lambda part: {item["name"] for item in part}  # noqa: E731
    assert untuned.tune is None and untuned.split == "val" and untuned.picking is untuned.val
    assert names(untuned.val) == names(default.val)
    assert names(untuned.train) == names(default.train) | names(default.tune)
    for preset in ("over-ffdnet", "over-ffdnet-sac"):
        assert denoise_train.parse_args(["--preset", preset]).task.tune_fraction == 0.0, preset
    for preset in ("color", "color-sac", "noise-map", "noise-map-color"):
        assert denoise_train.parse_args(["--preset", preset]).task.tune_fraction == TUNE_FRACTION, preset
    assert denoise_train.parse_args([]).task.tune_fraction == TUNE_FRACTION
    with pytest.raises(ValueError, match="task.tune_fraction"):
        denoise_train.parse_args(["--set", "task.tune_fraction=1"])


def test_too_few_scenes_for_a_tuning_split_is_one_clear_error(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(2):
        save_image(tmp_path / "two" / f"img{k}.png", smooth_image(rng, 32, 32))
    with pytest.raises(DatasetError, match=r"--data .*two: .*no scenes left for the tuning split"):
        denoise_train.open_data(denoise_train.parse_args([*TINY, "--data", str(tmp_path / "two")]))
    data = denoise_train.open_data(denoise_train.parse_args([*TINY, "--data", str(tmp_path / "two"), "--set",
                                                             "task.tune_fraction=0"]))
    assert len(data.train) == len(data.val) == 1


def test_input_psnr_is_the_noisy_images_psnr_per_image_averaged(tiny_run, folders):
    """Against skimage: the noisy inputs, rebuilt from the documented seeding, clipped to [0, 1]."""
    scores = load_checkpoint(Path(tiny_run) / "checkpoints" / "last.pt")["extra"]["scores"]
    images = noisy_test_set(UnpairedImages(folders / "test", gray=True), SIGMA, seed=0)
    values = [peak_signal_noise_ratio(im.clean.numpy(), np.clip(im.noisy.numpy(), 0, 1), data_range=1.0)
              for im in images]
    assert scores["test/input_psnr"] == pytest.approx(np.mean(values), abs=1e-4)
    assert 19.0 < scores["test/input_psnr"] < 23.0  # sigma 25: 20.17 dB before clipping


def test_test_noise_depends_on_the_image_name_only(folders):
    dataset = UnpairedImages(folders / "test", gray=True)
    forward = noisy_test_set(dataset, SIGMA, seed=3)
    backward = noisy_test_set([dataset[1], dataset[0]], SIGMA, seed=3)
    assert torch.equal(forward[0].noisy, backward[1].noisy) and torch.equal(forward[1].noisy, backward[0].noisy)
    other_seed = noisy_test_set(dataset, SIGMA, seed=4)
    assert not torch.equal(forward[0].noisy, other_seed[0].noisy)
    noise = torch.cat([(im.noisy - im.clean).flatten() for im in forward])
    assert float(noise.std()) == pytest.approx(SIGMA / 255, rel=0.1)  # not clipped: exactly Gaussian
    assert len(noisy_test_set(dataset, SIGMA, limit=1)) == 1


def test_best_checkpoint_restores_the_whole_test_images(tiny_run, folders):
    """The users' path, rlenhance.denoisers.PolicyDenoiser (the trainer's evaluation runs the same
    rollout), reproduces the logged PSNR."""
    best = load_checkpoint(Path(tiny_run) / "checkpoints" / "best.pt")
    restorer = PolicyDenoiser(Path(tiny_run) / "checkpoints" / "best.pt", device="cpu")
    images = noisy_test_set(UnpairedImages(folders / "test", gray=True), SIGMA, seed=0)
    outputs = [restorer.restore(im.noisy.permute(1, 2, 0).numpy()) for im in images]
    assert [o.shape[:2] for o in outputs] == [im.clean.shape[-2:] for im in images]
    psnr = np.mean([peak_signal_noise_ratio(im.clean.permute(1, 2, 0).numpy(), o, data_range=1.0)
                    for im, o in zip(images, outputs)])
    assert psnr == pytest.approx(best["extra"]["scores"]["test/psnr"], abs=1e-3)


def test_resume_continues_to_the_same_weights(folders, tmp_path):
    straight = denoise_train.main(tiny_args(folders, tmp_path / "straight"))
    half = tiny_args(folders, tmp_path / "split")
    half[half.index("--episodes") + 1] = "2"
    denoise_train.main(half)
    split = denoise_train.main(tiny_args(folders, tmp_path / "split", "--resume"))
    a = load_checkpoint(Path(straight) / "checkpoints" / "last.pt")
    b = load_checkpoint(Path(split) / "checkpoints" / "last.pt")
    assert b["extra"]["episode"] == 4
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert a["extra"]["scores"]["eval/psnr"] == b["extra"]["scores"]["eval/psnr"]
    steps = [int(r["step"]) for r in scalar_rows(Path(split)) if r["metric"] == "charts/episode_return"]
    assert steps == [1, 2, 3, 4]


def test_sac_smoke(folders, tmp_path):
    out = denoise_train.main(tiny_args(folders, tmp_path / "sac", "--agent", "sac", "--set", "sac.learning_starts=2",
                                       "--set", "sac.batch=2", "--episodes", "2", "--eval-every", "2"))
    last = load_checkpoint(Path(out) / "checkpoints" / "last.pt")
    assert last["extra"]["algorithm"] == "sac" and "critics" in last["extra"]["state"]
    assert last["arch"]["kwargs"]["n_actions"] == 9  # discrete SAC over the nine filters
    config = json.loads((Path(out) / "config.json").read_text())
    assert config["sac"]["lr"] == 3e-4 and config["sac"]["batch"] == 2
    names = {r["metric"] for r in scalar_rows(Path(out))}
    assert {"losses/value_loss", "losses/policy_loss", "charts/alpha", "eval/psnr"} <= names


def test_pixelrl_network_options(folders):
    args = denoise_train.parse_args(["--preset", "pixelrl", "--width", "8", "--crop", "16", "--batch", "1"])
    t = args.task
    assert (t.crop, t.steps, args.a3c.gamma, t.sigma, t.gray) == (16, 5, 0.95, (25.0,), True)
    venv = envs.make_vec(denoise_train.ENV_ID, num_envs=1, data=UnpairedImages(folders / "train", gray=True),
                         **denoise_train.env_kwargs(args))
    agent = make_agent(args, venv, steps=t.steps)
    assert agent.policy.gru is not None and agent.rmc is not None and agent.policy.in_channels == 1


@pytest.mark.parametrize("model", ["MRPNet", "CombinedModel"])
def test_init_backbone_reads_the_shape_from_the_checkpoint(model, folders, tmp_path):
    """--backbone mrpnet --init-backbone: the width comes from the file and its weights are copied."""
    from rlenhance.checkpoint import save_checkpoint
    from rlenhance.models.mrpnet import CombinedModel, MRPNet

    torch.manual_seed(1)
    net = MRPNet(1, width=4) if model == "MRPNet" else CombinedModel(1, width=4)
    path = save_checkpoint(tmp_path / "sup.pt", model=net, arch=net.arch(), extra={})
    argv = ["--width", "8", "--crop", "16", "--batch", "1", "--set", "model.backbone=mrpnet",
            "--set", f"model.init_backbone={path}"]
    args = denoise_train.parse_args(argv)
    venv = envs.make_vec(denoise_train.ENV_ID, num_envs=1, data=UnpairedImages(folders / "train", gray=True),
                         **denoise_train.env_kwargs(args))
    policy = make_agent(args, venv, steps=5).policy
    assert policy.arch()["kwargs"]["backbone_width"] == 4
    source = net if model == "MRPNet" else net.denoiser
    for name, value in source.state_dict().items():
        if not name.startswith("head."):
            assert torch.equal(policy.trunk.net.state_dict()[name], value), name
    # --random-backbone: the same shape, none of the file's weights; on the same seed the policy is
    # the bootstrapped one with the random trunk it had before the copy (the control of a comparison)
    torch.manual_seed(0)
    control = make_agent(denoise_train.parse_args([*argv, "--set", "model.random_backbone=true"]), venv,
                         steps=5).policy
    torch.manual_seed(0)
    fresh = make_agent(denoise_train.parse_args(argv), venv, steps=5).policy
    assert control.arch() == fresh.arch() == policy.arch()
    control_state, fresh_state = control.state_dict(), fresh.state_dict()
    conv = [name for name in source.state_dict() if name.endswith("weight") and not name.startswith("head.")]
    assert conv and not any(torch.equal(control.trunk.net.state_dict()[n], source.state_dict()[n]) for n in conv)
    differ = {name for name in fresh_state if not torch.equal(fresh_state[name], control_state[name])}
    assert differ and all(name.startswith("trunk.net.") for name in differ)  # heads identical, trunk not


@pytest.mark.parametrize("argv, error, words", [
    (["--sigma", "-5"], ValueError, "--sigma"),
    (["--sigma", "nan"], ValueError, r"task.sigma: got NaN \(not a number\)"),
    (["--sigma", "15", "inf"], ValueError, "--sigma 15.0 inf: expected noise levels that are finite"),
    (["--sigma", "15", "15"], ValueError, "--sigma 15.0 15.0: .*repeated"),
    (["--eval-every", "0"], ValueError, "run.eval_every 0: expected an integer >= 1"),
    (["--agent", "sac", "--set", "model.conv_gru=true"], ValueError, "model.conv_gru: an A3C option"),
    (["--agent", "sac", "--set", "a3c.lr_decay=poly"], ValueError, "a3c.lr_decay: the agent is sac"),
    (["--agent", "sac", "--set", "sac.gamma=1.0"], ValueError, "gamma"),
    (["--set", "sac.batch=4"], ValueError, "sac.batch: the agent is a3c"),
    (["--set", "model.init_backbone=model.pt"], ValueError, "set model.backbone"),
    (["--set", "model.backbone=mrpnet", "--set", "model.init_backbone=/nonexistent/model.pt"], FileNotFoundError,
     "model.init_backbone"),
    (["--set", "model.backbone=mrpnet", "--set", "model.random_backbone=true"], ValueError,
     "model.random_backbone .* model.init_backbone"),
    (["--data", "/nonexistent/folder"], DatasetError, "--data"),
])
def test_bad_arguments_raise_clear_errors(argv, error, words, tmp_path):
    with pytest.raises(error, match=words):
        denoise_train.main([*argv, "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()  # nothing written before the arguments are checked


def test_an_empty_sigma_is_refused_by_name(capsys):
    with pytest.raises(SystemExit):
        denoise_train.parse_args(["--sigma"])
    assert "argument --sigma: expected at least one argument" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--sigma : expected one noise level or more"):
        denoise_train.parse_args(["--set", "task.sigma=[]"])


def test_a_blind_colour_policy_is_scored_at_every_level(folders, tmp_path):
    """--no-gray --sigma 40 10: an RGB policy trained on both levels (each crop draws one); every
    evaluation scores the held-out images at each level, eval/psnr is their mean and picks best.pt;
    the spec records both levels and three channels, and the policy restores colour images."""
    out = Path(denoise_train.main(tiny_args(folders, tmp_path / "blind", "--no-gray", "--sigma", "40", "10")))
    config = json.loads((out / "config.json").read_text())
    assert config["task"]["sigma"] == [10.0, 40.0] and config["task"]["gray"] is False  # ascending
    rows = list(scalar_rows(out))
    at = {(r["metric"], int(r["step"])): float(r["value"]) for r in rows}
    for step in (2, 4):
        for name in ("psnr", "ssim", "input_psnr"):
            pair = at[f"eval/{name}_sigma10", step], at[f"eval/{name}_sigma40", step]
            assert at[f"eval/{name}", step] == pytest.approx(sum(pair) / 2, abs=1e-4)
        assert at["eval/input_psnr_sigma10", step] > at["eval/input_psnr_sigma40", step] + 8  # 12 dB apart
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    assert best["extra"]["best"] == pytest.approx(max(at["eval/psnr", s] for s in (2, 4)), abs=1e-3)
    spec = best["extra"]["spec"]
    assert (spec.channels, spec.sigmas, spec.env_kwargs["sigma"]) == (3, (10.0, 40.0), [10.0, 40.0])
    assert best["arch"]["kwargs"]["in_channels"] == 3
    restorer = PolicyDenoiser(out / "checkpoints" / "best.pt", device="cpu")
    assert restorer.spec.sigmas == (10.0, 40.0) and restorer.channels == 3
    test = UnpairedImages(folders / "test", gray=False)
    for sigma in (10.0, 40.0):  # the logged per-level PSNR is what the restorer gets on those images
        images = noisy_test_set(test, sigma, seed=0)
        outputs = [restorer.restore(im.noisy.permute(1, 2, 0).numpy()) for im in images]
        psnr = np.mean([peak_signal_noise_ratio(im.clean.permute(1, 2, 0).numpy(), o, data_range=1.0)
                        for im, o in zip(images, outputs)])
        assert psnr == pytest.approx(best["extra"]["scores"][f"test/psnr_sigma{sigma:g}"], abs=1e-3)
    summary = (out / "summary.md").read_text()
    assert "| sigma 10 40 |" in summary and "psnr_sigma10" in summary and "input_psnr_sigma40" in summary
    denoise_train.main(tiny_args(folders, out, "--no-gray", "--sigma", "10", "40", "--resume"))  # the same levels
    with pytest.raises(ValueError, match=r"task.sigma \[25.0\] \(the run has \[10.0, 40.0\]\)"):
        denoise_train.main(tiny_args(folders, out, "--no-gray", "--resume"))


def test_used_folder_needs_resume_and_resume_keeps_the_arguments(tiny_run, folders):
    with pytest.raises(FileExistsError, match="--resume"):
        denoise_train.main(tiny_args(folders, tiny_run))
    config = (Path(tiny_run) / "config.json").read_text()
    with pytest.raises(ValueError, match=r"task.sigma \[50.0\] .the run has \[25.0\]"):
        denoise_train.main(tiny_args(folders, tiny_run, "--resume", "--sigma", "50"))
    assert (Path(tiny_run) / "config.json").read_text() == config
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        denoise_train.main(tiny_args(folders, Path(tiny_run) / "elsewhere", "--resume"))


@pytest.mark.slow
def test_cli_help_and_errors():
    proc = subprocess.run([sys.executable, "-m", "experiments.denoise_train", "--sigma", "-1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "denoise_train: error: --sigma" in proc.stderr and "Traceback" not in proc.stderr


def test_help_names_the_common_flags_and_the_presets(capsys):
    with pytest.raises(SystemExit):
        denoise_train.parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in ("--data", "--test", "--sigma", "--agent", "--episodes", "--crop", "--steps", "--width",
                 "--predictor", "--observe-prediction", "--eval-every", "--resume", "--set", "--config",
                 "over-ffdnet:", "over-ffdnet-sac:", "color:", "color-sac:", "pixelrl:"):
        assert flag in text, flag


# --- a run folder never dead-ends: signals, kills between writes, dead starts ---------------------
def episode_steps(out, metric="charts/episode_return"):
    return [int(r["step"]) for r in scalar_rows(Path(out)) if r["metric"] == metric]


@pytest.mark.slow
def test_sigterm_saves_the_episode_reached_and_resume_finishes(folders, tmp_path, signalled_run):
    """SIGTERM in a real run: exit code 143, one line on stderr (no traceback), last.pt at the
    episode reached; --resume continues from there (to a shortened total, to keep the test short)."""
    out = tmp_path / "run"
    argv = [*TINY, "--data", str(folders / "train"), "--test", str(folders / "test"), "--episodes", "1000",
            "--eval-every", "500"]
    proc = signalled_run("experiments.denoise_train", argv, out, signal.SIGTERM)
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and proc.stderr.count("interrupted") == 1
    match = re.fullmatch(r"denoise_train: interrupted at episode (\d+) of 1000 \(SIGTERM\); \S+last\.pt saved; "
                         r"continue with the same settings and --resume", proc.message)
    assert match, proc.message
    episode = int(match[1])
    assert load_checkpoint(out / "checkpoints" / "last.pt")["extra"]["episode"] == episode >= 1
    denoise_train.main([*argv, "--episodes", str(episode + 1), "--out", str(out), "--resume"])
    assert load_checkpoint(out / "checkpoints" / "last.pt")["extra"]["episode"] == episode + 1
    assert episode_steps(out) == list(range(1, episode + 2)) and (out / "summary.md").is_file()


def test_a_kill_between_best_and_last_at_the_first_evaluation_is_recoverable(folders, tmp_path, capsys):
    """kill -9 after best.pt and before last.pt at the first evaluation: a new run still needs
    --resume (the folder holds a checkpoint), and --resume starts the run anew, with one line
    saying so, and ends where an uninterrupted run does."""
    straight = denoise_train.main(tiny_args(folders, tmp_path / "straight"))
    killed = tmp_path / "killed"
    half = tiny_args(folders, killed)
    half[half.index("--episodes") + 1] = "2"
    denoise_train.main(half)
    (killed / "checkpoints" / "last.pt").unlink()  # and what is written after last.pt
    shutil.rmtree(killed / "samples")
    (killed / "summary.md").unlink()
    with pytest.raises(FileExistsError, match="--resume"):
        denoise_train.main(tiny_args(folders, killed))
    capsys.readouterr()
    denoise_train.main(tiny_args(folders, killed, "--resume"))
    assert "holds no checkpoints/last.pt (the run stopped before its first checkpoint); starting it anew" \
        in capsys.readouterr().out
    a = load_checkpoint(Path(straight) / "checkpoints" / "last.pt")["state_dict"]
    b = load_checkpoint(killed / "checkpoints" / "last.pt")["state_dict"]
    assert all(torch.equal(value, b[key]) for key, value in a.items())
    assert episode_steps(killed) == [1, 2, 3, 4] and len(list((killed / "tb").iterdir())) == 1


def test_a_start_that_never_reached_a_checkpoint_starts_anew(folders, tmp_path, capsys):
    """A start killed before its first checkpoint (config.json, tb/, metrics.csv): a new run starts
    there, with one line saying so, instead of asking for a --resume that has nothing to resume."""
    out = tmp_path / "run"
    half = tiny_args(folders, out)
    half[half.index("--episodes") + 1] = "2"
    denoise_train.main(half)
    for name in ("checkpoints", "samples"):
        shutil.rmtree(out / name)
    (out / "summary.md").unlink()
    capsys.readouterr()
    denoise_train.main(tiny_args(folders, out))
    assert "holds the start of a run that never reached a checkpoint; starting the run anew" in capsys.readouterr().out
    assert episode_steps(out) == [1, 2, 3, 4] and len(list((out / "tb").iterdir())) == 1
    assert load_checkpoint(out / "checkpoints" / "last.pt")["extra"]["episode"] == 4


def test_resume_takes_over_a_best_checkpoint_newer_than_last(folders, tmp_path, capsys):
    """kill -9 between best.pt and last.pt at a later evaluation leaves last.pt one evaluation behind.
    If the resumed run's evaluation there scores lower (SAC, whose replay buffer is not saved; here a
    best.pt that records a higher score stands for it), best.pt stays and last.pt records it."""
    out = Path(denoise_train.main(tiny_args(folders, tmp_path / "run")))
    half = tiny_args(folders, tmp_path / "half")
    half[half.index("--episodes") + 1] = "2"
    shutil.copy(Path(denoise_train.main(half)) / "checkpoints" / "last.pt", out / "checkpoints" / "last.pt")
    best_path = out / "checkpoints" / "best.pt"
    best = torch.load(best_path, weights_only=True)
    best["extra"].update(best=99.0, best_episode=4, episode=4)
    torch.save(best, best_path)
    before = best_path.read_bytes()
    capsys.readouterr()
    denoise_train.main(tiny_args(folders, out, "--resume"))
    last = load_checkpoint(out / "checkpoints" / "last.pt")["extra"]
    assert (last["episode"], last["best"], last["best_episode"]) == (4, 99.0, 4)
    assert best_path.read_bytes() == before
    assert "differs from last.pt's record" in capsys.readouterr().out


def test_a_kill_before_the_summary_is_recoverable(folders, tmp_path, capsys):
    """kill -9 between the last checkpoint and summary.md: --resume on the finished run writes the
    summary it would have written, and changes nothing else (config.json records the --resume)."""
    out = Path(denoise_train.main(tiny_args(folders, tmp_path / "run")))
    summary, config = (out / "summary.md").read_bytes(), json.loads((out / "config.json").read_text())
    (out / "summary.md").unlink()
    others = {path: path.read_bytes() for path in out.rglob("*") if path.is_file() and path.name != "config.json"}
    capsys.readouterr()
    denoise_train.main(tiny_args(folders, out, "--resume"))
    assert "already finished at episode 4" in capsys.readouterr().out
    assert (out / "summary.md").read_bytes() == summary
    assert {path: path.read_bytes() for path in others} == others
    assert json.loads((out / "config.json").read_text()) == {**config, "run": {**config["run"], "resume": True}}


def test_real_pairs_are_reported_as_real_noise(tmp_path):
    """--data / --test folders of real noisy / clean pairs: the summary's noise says "real noise",
    not --sigma; a run whose training and held-out noise differ says both."""
    rng = np.random.default_rng(1)
    for split, count in (("train", 3), ("test", 1)):
        for k in range(count):
            clean = smooth_image(rng, 24, 24)
            save_image(tmp_path / split / "clean" / f"{split}{k}.png", clean)
            save_image(tmp_path / split / "noisy" / f"{split}{k}.png", np.clip(clean + rng.normal(0, 0.05, clean.shape),
                                                                               0, 1).astype(np.float32))
    out = Path(denoise_train.main([*TINY, "--data", str(tmp_path / "train"), "--test", str(tmp_path / "test"),
                                   "--out", str(tmp_path / "run")]))
    summary = (out / "summary.md").read_text()
    assert "| noise |" in summary and "| real noise |" in summary and "sigma 25" not in summary
    clean, real = [{"high": torch.zeros(1, 4, 4), "name": "a"}], [{"clean": torch.zeros(1, 4, 4),
                                                                    "noisy": torch.zeros(1, 4, 4), "name": "a"}]
    assert noise_text((5.0, 25.0), clean, clean) == "sigma 5 25"
    assert noise_text(25.0, real, real) == "real noise"
    assert noise_text(25.0, clean, real) == "sigma 25 (training), real noise (held-out)"
    assert noise_text(25.0, real, clean) == "real noise (training), sigma 25 (held-out)"
