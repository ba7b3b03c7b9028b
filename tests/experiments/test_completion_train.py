"""experiments.completion_train on a tiny pair folder: run folder, hole metrics, best.pt chosen on the
tuning split (never on --test) and reported on the validation split, predictor (also shipped beside
the policy), backbone, resume, Ctrl-C between and before evaluations."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from experiments import completion_train
from experiments.runs import scalar_rows
from rlenhance.checkpoint import SupervisedSpec, load_checkpoint, save_checkpoint
from rlenhance.completion import PolicyCompleter
from rlenhance.data import OccludedPairs
from rlenhance.errors import CheckpointError, DatasetError
from rlenhance.io import save_image
from rlenhance.models.mrpnet import MRPNet
from rlenhance.models.pixelrnn import GatedPixelRNN
from rlenhance.predictors import CompletionPredictor
from tests.rollouts import stepped

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--episodes", "4", "--eval-every", "2", "--batch", "2", "--crop", "20", "--steps", "2", "--width", "8",
        "--samples", "2", "--threads", "1", "--val-fraction", "0.4"]
GATED = {"width": 4, "n_gated": 1, "n_res": 0}


def picture(rng, size):
    """An RGB picture with smooth structure, float32 (H, W, 3) in [0, 1]."""
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * x * y], axis=-1) + 0.05 * rng.random((size, size, 3))
    return np.clip(img, 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Five 32x32 pairs (PNG, so the estimated mask is the exact black square), two test pairs
    (``test/``: held_0, held_1) and two checkpoints."""
    root = tmp_path_factory.mktemp("completion_data")
    rng = np.random.default_rng(0)
    for folder, name, k in [("pairs", f"bed_{k}", k) for k in range(5)] + [("test", f"held_{k}", k) for k in range(2)]:
        original = picture(rng, 32)
        occluded = original.copy()
        top, left = 6 + 2 * k, 8 + k
        occluded[top:top + 10, left:left + 12] = 0.0
        save_image(root / folder / "original_images" / f"{name}.png", original)
        save_image(root / folder / "occluded_images" / f"occluded_{name}.png", occluded)
    torch.manual_seed(0)
    gated = GatedPixelRNN(3, **GATED)
    save_checkpoint(root / "gated.pt", model=gated, arch=gated.arch(), extra={
        "spec": SupervisedSpec(model="gated-pixelrnn", task="completion", channels=3, prefill="none")})
    mrpnet = MRPNet(1, width=4)
    save_checkpoint(root / "denoiser.pt", model=mrpnet, arch=mrpnet.arch(), extra={
        "spec": SupervisedSpec(model="mrpnet", task="denoise", channels=1, prefill="none")})
    return root


def tiny_args(data, out, *extra):
    return [*TINY, "--data", str(data / "pairs"), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def tiny_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("completion") / "run"
    return Path(completion_train.main(tiny_args(data, out, "--predictor", str(data / "gated.pt"))))


def test_run_folder_contents(tiny_run, data):
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["task"]["predictor"] == str(data / "gated.pt") and config["run"]["episodes"] == 4
    rows = list(scalar_rows(tiny_run))
    names = {r["metric"] for r in rows}
    assert {"charts/episode_return", "losses/value_loss", "eval/hole_psnr", "eval/hole_ssim", "eval/psnr",
            "eval/input_hole_psnr", "eval/predictor_hole_psnr"} <= names
    assert max(int(r["step"]) for r in rows) == 4
    assert (tiny_run / "samples" / "episode_000004.png").is_file()
    best = load_checkpoint(tiny_run / "checkpoints" / "best.pt")
    last = load_checkpoint(tiny_run / "checkpoints" / "last.pt")
    assert "state" in last["extra"] and "state" not in best["extra"]
    spec = best["extra"]["spec"]
    restorer = PolicyCompleter(tiny_run / "checkpoints" / "best.pt", device="cpu")  # its predictor from its path
    assert spec.task == "completion" and restorer.transition.actions[-1] == "predict"
    assert Path(spec.predictor) == (data / "gated.pt").resolve()
    assert best["arch"]["kwargs"]["n_actions"] == 9 and best["arch"]["kwargs"]["in_channels"] == 4  # image + mask
    assert "| episodes |" in (tiny_run / "summary.md").read_text()


def test_the_sample_grid_shows_each_images_actions_at_the_first_and_last_step_and_evaluation_shows_progress(
        data):
    import envs
    from experiments.grids import action_map
    from experiments.rl_common import make_agent
    from rlenhance.data import occluded_test_set

    cfg = completion_train.parse_args(tiny_args(data, "unused"))
    images = occluded_test_set(completion_train.open_data(cfg).val, occlusion=cfg.task.occlusion,
                               seed=cfg.task.occlusion_seed, device=torch.device("cpu"), limit=0,
                               max_side=cfg.task.eval_size)
    venv = envs.make_vec(completion_train.ENV_ID, num_envs=1, **completion_train.env_kwargs(cfg))
    torch.manual_seed(0)
    policy = make_agent(cfg, venv, steps=cfg.task.steps).policy.eval()
    with torch.no_grad():  # a policy whose actions vary over the image
        policy.policy_head.weight.normal_(0, 2.0)
    shown = []  # the evaluation's progress: the rollouts' batches and the scored images under bars
    _, rows = completion_train.evaluate(policy, images, cfg,
                                        track=lambda items, desc: shown.append((desc, len(items))) or items)
    assert shown == [("rollouts", -(-len(images) // cfg.run.eval_batch)), ("scores", len(images))]
    assert completion_train.grid_captions(cfg) == ("occluded", "output", "original", "actions, step 1",
                                                   "actions, step 2", "key")
    assert [len(row) for row in rows] == [6, 5]  # --samples 2; the key after the first row
    first = images[0]
    single = envs.make_vec(completion_train.ENV_ID, num_envs=1, **{**completion_train.env_kwargs(cfg),
                                                                     "crop": tuple(first.occluded.shape[-2:])})
    _, actions = stepped(policy, single, {"occluded": first.occluded, "original": first.original,
                                          "mask": first.mask}, steps=2)
    hole = first.mask.bool().expand(3, -1, -1)  # the actions show in the hole, white around it
    for column, step in ((3, 0), (4, 1)):
        expected = action_map(actions[0, step], venv.task.actions)
        assert torch.equal(rows[0][column][hole], expected[hole]) and bool((rows[0][column][~hole] == 1).all())
    assert bool(hole.any()) and not bool(hole.all())


def test_hole_metrics_match_a_reference(tiny_run, data):
    """The starting fill's hole PSNR against a numpy / skimage computation on the pairs evaluated (the
    tuning split)."""
    from rlenhance.ops.fill import diffusion_fill

    scores = load_checkpoint(tiny_run / "checkpoints" / "last.pt")["extra"]["scores"]
    val = OccludedPairs(data / "pairs", split="tune", val_fraction=0.4, seed=0)
    assert len(val) == 1
    hole, whole = [], []
    for i in range(len(val)):
        item = val[i]
        mask = item["mask"].float()
        assert int(mask.sum()) == 10 * 12  # the exact square
        fill = diffusion_fill(item["occluded"][None], mask[None], smooth_iters=20)[0].numpy()
        original, m = item["original"].numpy(), mask.numpy()[0] > 0
        hole.append(10 * np.log10(1.0 / np.mean((fill[:, m] - original[:, m]) ** 2)))
        whole.append(peak_signal_noise_ratio(original, fill, data_range=1.0))
    assert scores["eval/input_hole_psnr"] == pytest.approx(np.mean(hole), abs=1e-3)
    assert scores["eval/input_psnr"] == pytest.approx(np.mean(whole), abs=1e-3)
    assert scores["eval/psnr"] > scores["eval/hole_psnr"]  # known pixels are exact outside the hole


def test_best_is_chosen_on_the_tuning_split_never_on_the_test_pairs_and_reported_on_validation(data, tmp_path,
                                                                                                 monkeypatch):
    """With --test, the tuning split of --data still picks best.pt; the --test pairs are scored at the
    same evaluations under test/... only; best.pt is scored once on the validation split after the run.
    Rigged scores make them disagree: the tuning hole PSNR rises from one evaluation to the next, the
    test one falls."""
    real, calls = completion_train.evaluate, []
    test_names = frozenset({"held_0.png", "held_1.png"})

    def rigged(policy, images, args, predictor=None, **kwargs):
        scores, rows = real(policy, images, args, predictor, **kwargs)
        names = frozenset(im.name for im in images)
        calls.append(names)
        k = calls.count(names)  # the k-th evaluation of these images
        scores["eval/hole_psnr"] = 40.0 - k if names == test_names else 10.0 + k
        return scores, rows

    monkeypatch.setattr(completion_train, "evaluate", rigged)
    argv = tiny_args(data, tmp_path / "run", "--test", str(data / "test"))
    out = Path(completion_train.main(argv))
    def names(dataset):
        return frozenset(item["name"] for item in dataset)

    val_names = names(OccludedPairs(data / "pairs", split="val", val_fraction=0.4, seed=0))  # as without --test
    split = completion_train.open_data(completion_train.parse_args(argv))
    tune_names = names(split.tune)
    assert (names(split.val), names(split.test)) == (val_names, test_names)
    assert len(val_names) == 2 and len(tune_names) == 1 and not names(split.train) & (val_names | tune_names)
    assert calls == [tune_names, test_names] * 2 + [val_names]  # both at each evaluation; val once at the end
    at = {(r["metric"], int(r["step"])): float(r["value"]) for r in scalar_rows(out)}
    assert [at["eval/hole_psnr", s] for s in (2, 4)] == [11.0, 12.0]
    assert [at["test/hole_psnr", s] for s in (2, 4)] == [39.0, 38.0]
    best = load_checkpoint(out / "checkpoints" / "best.pt")["extra"]
    assert (best["best"], best["best_episode"]) == (12.0, 4)  # not the test's 39 at episode 2
    summary = (out / "summary.md").read_text()
    assert "| tune_images | val_images | test_images |" in summary and "| best_tune_hole_psnr |" in summary
    assert "| test_hole_psnr |" in summary and "| tune_input_hole_psnr |" in summary
    assert "| val_hole_psnr |" in summary and "best.pt picked on the tuning split" in summary
    assert completion_train.parse_args(["--preset", "over-unet"]).task.tune_fraction == 0.0  # as its figures were


def test_a_policy_shipped_with_its_predictor_beside_it_loads_anywhere(data, tmp_path):
    """The spec records the trainer's predictor path; moved with the policy into one folder, the
    predictor is found beside it (PolicyCompleter); missing there, the error names the places."""
    trainer, shipped = tmp_path / "trainer", tmp_path / "shipped"
    trainer.mkdir()
    shipped.mkdir()
    shutil.copy(data / "gated.pt", trainer / "gated.pt")
    run = Path(completion_train.main(tiny_args(data, trainer / "run", "--predictor", str(trainer / "gated.pt"),
                                               "--episodes", "2")))
    policy = Path(shutil.copy(run / "checkpoints" / "best.pt", shipped / "policy.pt"))
    shutil.move(trainer / "gated.pt", shipped / "gated.pt")
    restorer = PolicyCompleter(policy, device="cpu")
    assert restorer.transition.actions[-1] == "predict"
    occluded, mask = torch.rand(1, 3, 12, 12), torch.zeros(1, 1, 12, 12)
    mask[..., 3:8, 4:9] = 1.0
    expected = CompletionPredictor(data / "gated.pt", device="cpu")(occluded, mask)
    torch.testing.assert_close(restorer.predictor(occluded, mask), expected)
    ensembled = CompletionPredictor(data / "gated.pt", device="cpu", ensemble=4)(occluded, mask)  # the policy's, x4
    torch.testing.assert_close(PolicyCompleter(policy, device="cpu", ensemble=4).predictor(occluded, mask), ensembled)
    assert not torch.allclose(ensembled, expected)
    torch.testing.assert_close(ensembled[mask.expand_as(occluded) == 0], occluded[mask.expand_as(occluded) == 0])
    (shipped / "gated.pt").unlink()
    with pytest.raises(CheckpointError, match=r"predictor gated.pt: no such file at .*trainer/gated.pt, "
                                              r".*shipped/gated.pt, .*weights/gated.pt; .*its spec.s predictor"):
        PolicyCompleter(policy, device="cpu")


def test_resume_continues_to_the_same_weights(data, tmp_path):
    straight = completion_train.main(tiny_args(data, tmp_path / "straight"))
    half = tiny_args(data, tmp_path / "split")
    half[half.index("--episodes") + 1] = "2"
    completion_train.main(half)
    split = completion_train.main(tiny_args(data, tmp_path / "split", "--resume"))
    a = load_checkpoint(Path(straight) / "checkpoints" / "last.pt")
    b = load_checkpoint(Path(split) / "checkpoints" / "last.pt")
    assert b["extra"]["episode"] == 4
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


def test_pixelrnn_backbone_starts_from_the_checkpoint_and_stays_frozen(data, tmp_path):
    """--init-backbone copies the gated PixelRNN; --freeze-backbone 2 keeps it for episodes 0-1 only."""
    out = tmp_path / "backbone"
    args = tiny_args(data, out, "--set", "model.backbone=pixelrnn", "--set", f"model.init_backbone={data / 'gated.pt'}",
                     "--set", "model.freeze_backbone=2")
    half = list(args)
    half[half.index("--episodes") + 1] = "2"
    completion_train.main(half)
    supervised = load_checkpoint(data / "gated.pt")["state_dict"]
    frozen = load_checkpoint(out / "checkpoints" / "last.pt")
    assert frozen["arch"]["kwargs"]["backbone_mask"] is True and frozen["arch"]["kwargs"]["backbone_width"] == 4
    copied = {k[len("trunk.net."):]: v for k, v in frozen["state_dict"].items() if k.startswith("trunk.net.")}
    assert copied and all(torch.equal(v, supervised[k]) for k, v in copied.items())
    completion_train.main([*args, "--resume"])  # episodes 2-3 train the backbone
    trained = load_checkpoint(out / "checkpoints" / "last.pt")["state_dict"]
    assert any(not torch.equal(trained["trunk.net." + k], v) for k, v in copied.items())


def test_sac_smoke(data, tmp_path):
    out = completion_train.main(tiny_args(data, tmp_path / "sac", "--agent", "sac", "--set", "sac.learning_starts=2",
                                          "--set", "sac.batch=2", "--episodes", "2"))
    last = load_checkpoint(Path(out) / "checkpoints" / "last.pt")
    assert last["extra"]["algorithm"] == "sac" and "critics" in last["extra"]["state"]
    assert np.isfinite(last["extra"]["scores"]["eval/hole_psnr"])


def test_synthetic_holes_are_seeded_per_image():
    photos = [{"high": torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(k)), "name": f"p{k}"}
              for k in range(2)]
    a = completion_train.occluded_test_set(photos, seed=1)
    b = completion_train.occluded_test_set(photos[::-1], seed=1)
    assert torch.equal(a[0].mask, b[1].mask) and a[0].mask.sum() > 0
    assert torch.equal(a[0].occluded * a[0].mask, torch.zeros_like(a[0].occluded))
    small = completion_train.occluded_test_set(photos, seed=1, max_side=12)
    assert small[0].original.shape == (3, 12, 12) and small[0].mask.shape == (1, 12, 12)
    torch.testing.assert_close(small[0].original, torch.nn.functional.avg_pool2d(photos[0]["high"][None], 2)[0])


@pytest.mark.parametrize("argv, error, words", [
    (["--predictor", "/nonexistent/model.pt"], FileNotFoundError, "--predictor"),
    (["--val-fraction", "1.5"], ValueError, "task.val_fraction 1.5"),
    (["--set", "task.tune_fraction=-0.1"], ValueError, "task.tune_fraction -0.1"),
    (["--occlusion", "blob"], ValueError, "task.occlusion: 'blob' is not one of box, stroke, mixed"),
])
def test_bad_arguments_raise_clear_errors(argv, error, words, tmp_path):
    with pytest.raises(error, match=words):
        completion_train.main([*argv, "--out", str(tmp_path / "run")])


def test_wrong_data_and_predictor_files_are_named(data, tmp_path):
    with pytest.raises(DatasetError, match="--data .*occluded_images"):
        completion_train.main([*TINY, "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    with pytest.raises(CheckpointError, match="completion"):
        completion_train.main(tiny_args(data, tmp_path / "run", "--predictor", str(data / "denoiser.pt")))


@pytest.mark.slow
def test_cli_error_exit_code(data):
    proc = subprocess.run([sys.executable, "-m", "experiments.completion_train", "--predictor",
                           str(data / "missing.pt")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "completion_train: error: --predictor" in proc.stderr


# --- an interrupted run resumes where it stopped ------------------------------------------------------
def steps_of(out, metric):
    return [int(r["step"]) for r in scalar_rows(Path(out)) if r["metric"] == metric]


@pytest.fixture(scope="module")
def straight_run(data, tmp_path_factory):
    return Path(completion_train.main(tiny_args(data, tmp_path_factory.mktemp("completion") / "straight")))


@pytest.mark.parametrize("after", [1, 2], ids=["between-evaluations", "before-an-evaluation"])
def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(after, data, straight_run, tmp_path,
                                                                          signal_on_call):
    """Ctrl-C during episode ``after``: the run stops before the next episode (or before the
    evaluation due at episode 2, which --resume then runs first) with last.pt of that point, and
    the resumed run ends with the uninterrupted run's weights, metrics and schedule."""
    from agents.a3c import A3C

    out = tmp_path / "run"
    undo = signal_on_call(A3C, "train_episode", after)
    with pytest.raises(KeyboardInterrupt) as stopped:
        completion_train.main(tiny_args(data, out))
    undo()
    assert str(stopped.value).startswith(f"interrupted at episode {after} of 4 (SIGINT)")
    assert stopped.value.exit_code == 130
    last = load_checkpoint(out / "checkpoints" / "last.pt")["extra"]
    assert (last["episode"], last["eval_episode"]) == (after, 0) and not (out / "checkpoints" / "best.pt").exists()
    completion_train.main(tiny_args(data, out, "--resume"))
    a = load_checkpoint(straight_run / "checkpoints" / "last.pt")
    b = load_checkpoint(out / "checkpoints" / "last.pt")
    assert all(torch.equal(value, b["state_dict"][key]) for key, value in a["state_dict"].items())
    assert a["extra"]["scores"]["eval/hole_psnr"] == b["extra"]["scores"]["eval/hole_psnr"]
    assert steps_of(out, "charts/episode_return") == [1, 2, 3, 4] and steps_of(out, "eval/hole_psnr") == [2, 4]


def test_a_second_ctrl_c_stops_at_once_and_the_last_checkpoint_still_resumes(data, straight_run, tmp_path,
                                                                              signal_on_call):
    """Two Ctrl-C in episode 3: the second stops the run where it is, without saving; last.pt is
    still that of the evaluation at episode 2, and --resume ends where an uninterrupted run does."""
    from agents.a3c import A3C

    out = tmp_path / "run"
    undo = signal_on_call(A3C, "train_episode", 3, times=2)
    with pytest.raises(KeyboardInterrupt, match="SIGINT again: stopped at once without saving") as stopped:
        completion_train.main(tiny_args(data, out))
    undo()
    assert stopped.value.exit_code == 130
    assert load_checkpoint(out / "checkpoints" / "last.pt")["extra"]["episode"] == 2
    completion_train.main(tiny_args(data, out, "--resume"))
    a = load_checkpoint(straight_run / "checkpoints" / "last.pt")["state_dict"]
    b = load_checkpoint(out / "checkpoints" / "last.pt")["state_dict"]
    assert all(torch.equal(value, b[key]) for key, value in a.items())
    assert steps_of(out, "charts/episode_return") == [1, 2, 3, 4]


def test_an_interrupted_sac_run_resumes(data, tmp_path, signal_on_call):
    """SAC stops between evaluations too; its replay buffer is not saved, so the resumed run refills it."""
    from agents.sac import SAC

    argv = tiny_args(data, tmp_path / "sac", "--agent", "sac", "--set", "sac.learning_starts=2",
                     "--set", "sac.batch=2")
    undo = signal_on_call(SAC, "train_episode", 3)
    with pytest.raises(KeyboardInterrupt, match="interrupted at episode 3 of 4"):
        completion_train.main(argv)
    undo()
    last = load_checkpoint(tmp_path / "sac" / "checkpoints" / "last.pt")["extra"]
    assert (last["episode"], last["eval_episode"], last["best_episode"]) == (3, 2, 2) and "critics" in last["state"]
    completion_train.main([*argv, "--resume"])
    last = load_checkpoint(tmp_path / "sac" / "checkpoints" / "last.pt")["extra"]
    assert last["episode"] == 4 and np.isfinite(last["scores"]["eval/hole_psnr"])
    assert steps_of(tmp_path / "sac", "charts/episode_return") == [1, 2, 3, 4]
