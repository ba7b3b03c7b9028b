"""experiments.supervised_train on tiny settings: every model/task pair, its run folder, --resume of a
stopped, an extended and a finished run, Ctrl-C, the config (presets, --set, settings that do not apply,
--help), --data folders of each task, a blind colour denoiser, and the pieces of experiments.supervised.

One run goes through the command line as a subprocess (started first, so it overlaps the rest); the
others call ``main(argv)`` in this process."""

import contextlib
import io
import json
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments import supervised_train
from experiments.runs import metric_series, read_metrics
from experiments.supervised import Example, compute_loss, draw_example, make_example, open_datasets, validation_set
from experiments.supervised_train import PRESETS, main, parse, settings
from rlenhance.checkpoint import SupervisedSpec, build_model, load_checkpoint, save_checkpoint
from rlenhance.data import TUNE_FRACTION
from rlenhance.errors import CheckpointError
from rlenhance.io import load_image, save_image
from rlenhance.models import MODELS as REGISTRY
from rlenhance.restore import SupervisedRestorer

ROOT = Path(__file__).resolve().parents[2]
CROP = 32
TINY = ["--epochs", "2", "--steps-per-epoch", "2", "--batch", "2", "--crop", str(CROP), "--width", "8",
        "--set", "data.val_samples=4", "--set", "run.samples=2", "--threads", "1"]
COMBOS = {  # name -> extra arguments; every model/task pair the experiment accepts
    "gated-completion": ["--model", "gated-pixelrnn", "--task", "completion"],  # the subprocess run
    "mrpnet-lowlight": ["--model", "mrpnet", "--task", "lowlight"],
    "mrpnet-denoise": ["--model", "mrpnet", "--task", "denoise", "--sigma", "15"],
    "mrpnet-completion": ["--model", "mrpnet", "--task", "completion", "--set", "model.generator=false"],
    "pixelrnn-lowlight": ["--model", "pixelrnn", "--task", "lowlight"],
    "pixelrnn-denoise": ["--model", "pixelrnn", "--task", "denoise"],
    "pixelrnn-completion": ["--model", "pixelrnn", "--task", "completion", "--set", "data.prefill=none"],
    "unet-completion": ["--model", "unet", "--task", "completion"],
}
SUBPROCESS = "gated-completion"
TERMS = {"mrpnet": ["mse"], "pixelrnn": ["mse", "ssim_loss"], "gated-pixelrnn": ["hole_l1", "ssim_loss"],
         "unet": ["hole_mse"]}
CLASSES = {"mrpnet-completion": "MRPNet", "gated-completion": "GatedPixelRNN", "unet-completion": "CompletionUNet"}


def resolved(argv):
    """The flat settings of a command line."""
    return settings(parse(list(argv)))


def launch(*args):
    return subprocess.Popen([sys.executable, "-m", "experiments.supervised_train", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def in_process(*args):
    """Run main(argv) here; return (0, stdout, "") like a finished subprocess."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        main(list(args))
    return 0, buffer.getvalue(), ""


def check_ok(result, name):
    code, out, err = result
    assert code == 0, f"{name} failed ({code}):\n{out[-2000:]}\n{err[-4000:]}"
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every combination (2 epochs), a 1-epoch run, and a rejected combination."""
    base = tmp_path_factory.mktemp("supervised")
    procs = {SUBPROCESS: launch(*TINY, *COMBOS[SUBPROCESS], "--out", str(base / SUBPROCESS)),
             "bad": launch(*TINY, "--model", "gated-pixelrnn", "--task", "denoise", "--out", str(base / "bad"))}
    results = {name: in_process(*TINY, *extra, "--out", str(base / name))
               for name, extra in COMBOS.items() if name != SUBPROCESS}
    half = list(TINY)
    half[half.index("--epochs") + 1] = "1"
    results["half"] = in_process(*half, *COMBOS[SUBPROCESS], "--out", str(base / "half"))
    results.update({name: (p.wait(timeout=300), *p.communicate()) for name, p in procs.items()})
    return base, results


@pytest.fixture(scope="module")
def resumed(runs):
    """Resume a killed run, extend the 1-epoch run to 2 epochs, and resume a finished run."""
    base, results = runs
    straight = base / SUBPROCESS
    check_ok(results[SUBPROCESS], SUBPROCESS)
    # A run killed after logging epoch 2 but before saving its checkpoint: last.pt still at epoch 1.
    killed = base / "killed"
    shutil.copytree(straight, killed)
    shutil.copy(base / "half" / "checkpoints" / "last.pt", killed / "checkpoints" / "last.pt")
    finished = base / "finished"
    shutil.copytree(straight, finished)
    return base, {"killed": in_process("--out", str(killed), "--resume"),
                  "extended": in_process("--out", str(base / "half"), "--resume", "--epochs", "2"),
                  "finished": in_process("--out", str(finished), "--resume")}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COMBOS))
def test_each_combination_fills_its_run_folder(runs, name):
    base, results = runs
    stdout = check_ok(results[name], name)
    out = base / name
    config = json.loads((out / "config.json").read_text())
    model = config["model"]["name"]
    defaults = {"mrpnet": 1e-4, "pixelrnn": 1e-3, "gated-pixelrnn": 1e-4, "unet": 1e-3}
    assert config["train"]["lr"] == defaults[model] and config["model"]["width"] == 8  # resolved
    assert config["trainer"] == "experiments.supervised_train"
    evaluations = read_metrics(out / "metrics.csv")
    assert [r["step"] for r in evaluations] == [1, 2]
    columns = ["eval/loss", "eval/psnr", "eval/ssim"] + (["eval/hole_psnr", "eval/hole_l1"]
                                                         if config["data"]["task"] == "completion" else [])
    assert all(np.isfinite(r[c]) for r in evaluations for c in columns)
    training = read_metrics(out / "train.csv")
    assert [r["step"] for r in training] == [1, 2]
    assert {"charts/lr", "losses/loss", *(f"losses/{t}" for t in TERMS[model])} <= set(training[0])
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert load_image(out / "loss_curve.png").shape == (400, 640, 3)
    grid = load_image(out / "samples" / "epoch_000002.png")  # 2 rows of input | output | reference, captioned
    zoom = -(-96 // CROP)
    assert grid.shape == (18 + 2 * CROP * zoom + 2, 3 * CROP * zoom + 2 * 2, 3)
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    assert best["extra"]["epoch"] == 1 + int(np.argmin([r["eval/loss"] for r in evaluations]))
    assert best["extra"]["spec"].task == config["data"]["task"]
    prefill = {"pixelrnn-completion": "none", "gated-completion": "diffusion", "mrpnet-completion": "diffusion",
               "unet-completion": "diffusion"}
    assert best["extra"]["spec"].prefill == prefill.get(name, "none")  # the restorer applies it
    net = build_model(best, REGISTRY)
    assert type(net).__name__ == CLASSES.get(name, {"mrpnet": "CombinedModel", "pixelrnn": "PixelRNN"}.get(model))
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    assert last["extra"]["epoch"] == 2 and "optimizer" in last["extra"]["state"]
    assert "| params |" in stdout and (out / "summary.md").is_file()
    command = re.search(r"^use it: (rlenhance .*)$", stdout, re.M)[1]
    assert command.endswith(f"--checkpoint {out / 'checkpoints' / 'best.pt'}")


@pytest.mark.slow
def test_a_rejected_combination_exits_with_a_message(runs):
    _, results = runs
    code, _, err = results["bad"]
    assert code == 2 and "completion only" in err and "Traceback" not in err


def test_resume_of_a_killed_run_matches_the_uninterrupted_run(resumed):
    base, results = resumed
    stdout = check_ok(results["killed"], "killed")
    assert "resumed" in stdout and "epoch 1" in stdout
    straight = load_checkpoint(base / SUBPROCESS / "checkpoints" / "last.pt")
    again = load_checkpoint(base / "killed" / "checkpoints" / "last.pt")
    assert again["extra"]["epoch"] == 2
    for key, value in straight["state_dict"].items():
        assert torch.allclose(value.float(), again["state_dict"][key].float(), atol=1e-6), key
    assert [r["step"] for r in read_metrics(base / "killed" / "metrics.csv")] == [1, 2]
    assert sorted(metric_series(base / "killed", "losses/loss")) == [1, 2]


def test_resume_can_extend_a_run_and_a_finished_run_stays_finished(resumed):
    base, results = resumed
    check_ok(results["extended"], "extended")
    straight = load_checkpoint(base / SUBPROCESS / "checkpoints" / "last.pt")
    extended = load_checkpoint(base / "half" / "checkpoints" / "last.pt")
    assert extended["extra"]["epoch"] == 2
    assert json.loads((base / "half" / "config.json").read_text())["train"]["epochs"] == 2
    for key, value in straight["state_dict"].items():
        assert torch.allclose(value.float(), extended["state_dict"][key].float(), atol=1e-6), key
    stdout = check_ok(results["finished"], "finished")
    assert "already finished at epoch 2; nothing to do" in stdout
    finished = base / "finished"
    assert (finished / "summary.md").read_bytes() == (base / SUBPROCESS / "summary.md").read_bytes()
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, load_checkpoint(finished / "checkpoints" / "last.pt")["state_dict"][key]), key


@pytest.mark.slow
def test_resume_refuses_a_changed_setting_and_a_used_folder(tmp_path, runs):
    base, _ = runs
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        main([*TINY, "--out", str(tmp_path / "none"), "--resume"])
    with pytest.raises(FileExistsError, match="--resume"):
        main([*TINY, "--out", str(base / "mrpnet-lowlight")])
    with pytest.raises(ValueError, match=r"train\.lr 0\.5 \(the run has 0\.0001\)"):
        main(["--out", str(base / "mrpnet-lowlight"), "--resume", "--lr", "0.5"])


@pytest.mark.parametrize("bad, match", [
    (["--crop", "8"], "train.crop 8"),
    (["--model", "gated-pixelrnn"], "completion only"), (["--model", "unet"], "completion only"),
    (["--task", "completion", "--set", "data.shift_holes=true"], "data.shift_holes .* with data.data"),
    (["--task", "completion", "--set", "train.hole_loss=psnr"], "train.hole_loss psnr: .* model.name unet"),
    (["--model", "unet", "--task", "completion", "--set", "model.variant=seed"], "unet takes model.variant default"),
    (["--sigma", "25"], r"data\.sigma: settings of data\.task denoise \(got data\.task lowlight\)"),
    (["--task", "completion", "--set", "data.gray=false"], "data.gray: settings of data.task denoise"),
    (["--set", "data.prefill=none"], "settings of data.task completion"),
    (["--model", "pixelrnn", "--set", "model.generator=false"], "the Generator follows MRPNet only"),
    (["--set", "model.upscale=4", "--set", "model.generator=false"], "model.upscale 4: the Generator"),
    (["--set", "data.occlusion=stroke"], "unknown setting 'data.occlusion'"),
    (["--batch", "100000000"], r"train.batch 100,000,000 of 128 px crops: the batch's float32 targets alone: at least "
                               r"[\d,.]+ GiB, more than this machine's"),
])
def test_a_setting_that_does_not_apply_is_an_error(bad, match):
    with pytest.raises(ValueError, match=match):
        parse(bad)


def test_a_flag_that_became_a_setting_names_its_key(capsys):
    with pytest.raises(SystemExit):
        parse(["--hole-loss", "psnr"])
    assert "--set train.hole_loss=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_resolves(name, capsys):
    """Each preset is a valid config whose resolved settings print as a --config file that gives it back."""
    with pytest.raises(SystemExit):
        parse(["--preset", name, "--print-config"])
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(__import__("dataclasses").asdict(parse(["--preset", name])), default=list))
    assert supervised_train.PRESETS[name].doc


def test_best_is_picked_on_the_tuning_crops_and_reported_on_the_validation_crops(tmp_path, monkeypatch):
    """The photos split into train, tune and val: the tuning split's crops pick best.pt, whose weights are
    scored once on the validation split's crops after the last epoch (printed; the summary's val_*
    columns; metrics.csv keeps one row per epoch). data.tune_fraction 0 (the presets of the files picked on
    val): the same validation split picks, and the tuning photos train."""
    args = resolved(TINY)
    data, untuned = open_datasets(args), open_datasets(resolved([*TINY, "--set", "data.tune_fraction=0"]))
    names = lambda part: {item["name"] for item in part}  # noqa: E731
    assert names(data.tune) and names(data.val) and not names(data.tune) & names(data.val)
    assert not names(data.train) & (names(data.tune) | names(data.val))
    assert untuned.tune is None and names(untuned.val) == names(data.val)
    assert names(untuned.train) == names(data.train) | names(data.tune)
    real, seen = supervised_train.evaluate, []

    def spy(model, args, val, *rest, **kwargs):
        seen.append((val.target.clone(), {k: v.clone() for k, v in model.state_dict().items()}))
        return real(model, args, val, *rest, **kwargs)

    monkeypatch.setattr(supervised_train, "evaluate", spy)
    stdout = check_ok(in_process(*TINY, "--out", str(tmp_path / "run")), "run")
    out = tmp_path / "run"
    tune_crops, val_crops = (validation_set(args, part).target for part in (data.tune, data.val))
    assert len(seen) == 3 and all(torch.equal(target, tune_crops) for target, _ in seen[:2])
    assert torch.equal(seen[2][0], val_crops)
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    assert all(torch.equal(value, best["state_dict"][key]) for key, value in seen[2][1].items())
    assert [r["step"] for r in read_metrics(out / "metrics.csv")] == [1, 2]
    assert f"best.pt (epoch {best['extra']['epoch']}, picked on the tuning split): validation psnr " in stdout
    summary = (out / "summary.md").read_text()
    assert "| tune_loss |" in summary and "| val_loss |" in summary and "best.pt picked on the tuning split" in summary
    picked_on_val = ("mrpnet-denoise", "ffdnet-denoise", "unet-completion")
    for name in PRESETS:
        assert parse(["--preset", name]).data.tune_fraction == (0.0 if name in picked_on_val else TUNE_FRACTION), name


def test_a_preset_gives_the_model_card_s_settings():
    args = resolved(["--preset", "mrpnet-denoise"])
    assert (args.model, args.task, args.generator, args.sigma, args.crop, args.batch, args.lr, args.epochs,
            args.steps_per_epoch) == ("mrpnet", "denoise", False, 25.0, 64, 16, 1e-3, 30, 40)
    unet = resolved(["--preset", "unet-completion"])
    assert (unet.hole_loss, unet.flips, unet.shift_holes, unet.save_every, unet.lr_decay) == \
        ("psnr", "horizontal", True, 16, "cosine")


def _folders(root):
    """Tiny --data folders of every layout: pairs (3 scenes), clean gray images, occluded pairs."""
    rng = np.random.default_rng(0)
    for name in ("001_0.png", "002_0.png", "003_0.png"):
        high = rng.uniform(0.2, 0.8, (40, 44, 3)).astype(np.float32)
        save_image(root / "pairs" / "high" / name, high)
        save_image(root / "pairs" / "low" / name, high * 0.2)
        save_image(root / "clean" / name, high[..., 0])
        occluded = high.copy()
        occluded[8:24, 10:30] = 0
        save_image(root / "occ" / "original_images" / name, high)
        save_image(root / "occ" / "occluded_images" / f"occluded_{name}", occluded)


@pytest.mark.parametrize("task, folder, model, extra", [
    ("lowlight", "pairs", "mrpnet", []), ("denoise", "clean", "mrpnet", []),
    ("completion", "occ", "gated-pixelrnn", []), ("completion", "occ", "unet", ["--set", "data.shift_holes=true"])])
def test_data_folders_of_each_task(tmp_path, task, folder, model, extra):
    _folders(tmp_path)
    argv = [*TINY, "--epochs", "1", "--task", task, "--model", model, *extra,
            "--data", str(tmp_path / folder), "--out", str(tmp_path / "run")]
    out = main(argv)
    rows = read_metrics(out / "metrics.csv")
    assert len(rows) == 1 and np.isfinite(rows[0]["eval/psnr"])
    if task == "completion":  # every 32x32 crop of these 40x44 images holds most of the 16x20 hole
        assert np.isfinite(rows[0]["eval/hole_l1"])
    channels = load_checkpoint(out / "checkpoints" / "best.pt")["extra"]["spec"].channels
    assert channels == (1 if task == "denoise" else 3)


def test_validation_set_scores_every_held_out_image_once():
    """data.val_samples = the number of validation images: each is in the fixed validation set once."""

    class Images(torch.utils.data.Dataset):  # image i is flat at (i + 1) / 10
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return {"high": torch.full((1, 20, 20), (i + 1) / 10), "name": f"{i}.png"}

    args = resolved(["--model", "mrpnet", "--task", "denoise", "--set", "model.generator=false", "--crop", "16",
                     "--set", "data.val_samples=6"])
    val = validation_set(args, Images())
    levels = sorted(round(float(t.mean()) * 10) for t in val.target)
    assert levels == [1, 2, 3, 4, 5, 6]
    again = validation_set(args, Images())
    assert torch.equal(again.input, val.input) and torch.equal(again.target, val.target)  # fixed across runs


# --- a run folder never dead-ends: failed starts, signals ---------------------------------------------
def test_a_start_that_fails_before_its_first_checkpoint_leaves_nothing(tmp_path, monkeypatch):
    """A failure in the first epoch (here: the validation) leaves no checkpoint, so the same command
    runs again without --resume (starting the run anew)."""
    def broken(*args, **kwargs):
        raise RuntimeError("validation failed")

    argv = [*TINY, "--epochs", "1", "--out", str(tmp_path / "run")]
    with monkeypatch.context() as patch:
        patch.setattr(supervised_train, "evaluate", broken)
        with pytest.raises(RuntimeError, match="validation failed"):
            main(argv)
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert load_checkpoint(main(argv) / "checkpoints" / "last.pt")["extra"]["epoch"] == 1


def test_resume_without_a_checkpoint_starts_anew_with_the_saved_config(tmp_path, capsys):
    out = tmp_path / "run"
    main([*TINY, "--epochs", "1", "--out", str(out)])
    for name in ("checkpoints", "samples"):  # a start killed in its first epoch, after config.json
        shutil.rmtree(out / name)
    capsys.readouterr()
    main(["--out", str(out), "--resume"])
    assert "holds no checkpoints/last.pt (the run stopped before its first checkpoint); starting it anew" \
        in capsys.readouterr().out
    last = load_checkpoint(out / "checkpoints" / "last.pt")["extra"]
    assert last["epoch"] == 1 and last["config"]["train"]["crop"] == CROP
    assert [r["step"] for r in read_metrics(out / "metrics.csv")] == [1]


@pytest.mark.slow
def test_sigint_saves_the_epoch_reached_and_resume_finishes(tmp_path, signalled_run):
    """Ctrl-C in a real run: exit code 130, one line on stderr (no traceback); --resume continues
    (to a shortened total, to keep the test short)."""
    out = tmp_path / "run"
    argv = [*TINY, *COMBOS["mrpnet-lowlight"], "--epochs", "1000"]
    proc = signalled_run("experiments.supervised_train", argv, out, signal.SIGINT)
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and proc.stderr.count("interrupted") == 1
    match = re.fullmatch(r"supervised_train: interrupted at epoch (\d+) of 1000 \(SIGINT\); \S+last\.pt saved; "
                         r"continue with the same settings and --resume", proc.message)
    assert match, proc.message
    epoch = int(match[1])
    assert load_checkpoint(out / "checkpoints" / "last.pt")["extra"]["epoch"] == epoch >= 1
    main(["--out", str(out), "--resume", "--epochs", str(epoch + 1)])
    assert load_checkpoint(out / "checkpoints" / "last.pt")["extra"]["epoch"] == epoch + 1
    assert [r["step"] for r in read_metrics(out / "metrics.csv")] == list(range(1, epoch + 2))
    assert (out / "summary.md").is_file()


# --- colour and blind denoisers ---------------------------------------------------------------------
def test_a_blind_colour_denoiser_end_to_end(tmp_path):
    """A gray=false denoiser over sigma 30 and 10: an RGB network trained on both levels; the
    validation crops are scored at each level, eval/loss is their mean and picks best.pt; the spec
    records three channels and both levels; the checkpoint restores colour images."""
    out = main([*TINY, "--model", "mrpnet", "--set", "model.generator=false", "--task", "denoise",
                "--set", "data.gray=false", "--sigma", "30", "10", "--out", str(tmp_path / "blind")])
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["sigma"] == [10.0, 30.0] and config["data"]["gray"] is False
    rows = read_metrics(out / "metrics.csv")
    for row in rows:
        for name in ("loss", "psnr", "ssim"):
            pair = row[f"eval/{name}_sigma10"], row[f"eval/{name}_sigma30"]
            assert row[f"eval/{name}"] == pytest.approx(sum(pair) / 2, rel=1e-4)
        assert row["eval/loss_sigma10"] < row["eval/loss_sigma30"]  # less noise, lower loss
    assert "| tune_psnr_sigma30 |" in (out / "summary.md").read_text()  # best.pt's; val_*: its report
    assert "| val_psnr_sigma30 |" in (out / "summary.md").read_text()
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    assert best["extra"]["epoch"] == 1 + int(np.argmin([r["eval/loss"] for r in rows]))
    spec = best["extra"]["spec"]
    assert (spec.channels, spec.noise, spec.sigma, spec.sigmas) == (3, "gaussian", 30.0, (10.0, 30.0))
    assert best["arch"]["kwargs"]["in_channels"] == 3
    restorer = SupervisedRestorer(out / "checkpoints" / "best.pt", device="cpu", task="denoise")
    assert restorer.channels == 3
    image = np.random.default_rng(0).uniform(0.2, 0.8, (20, 24, 3)).astype(np.float32)
    restored = restorer.restore(image)
    assert restored.shape == image.shape and not np.allclose(restored[..., 0], restored[..., 1])  # colour out


def test_blind_examples_draw_one_level_per_crop():
    argv = ["--task", "denoise", "--sigma", "5", "60"]
    args = resolved(argv)

    clean = torch.full((32, 1, 24, 24), 0.5)
    example = make_example(args, {"high": clean}, torch.Generator().manual_seed(0), torch.device("cpu"))
    std = (example.input - clean).flatten(1).std(dim=1) * 255
    low, high = std < 20, std > 40
    assert bool((low | high).all()) and 4 < int(low.sum()) < 28  # each crop at 5 or at 60, both drawn
    one = resolved_denoise("--sigma", "5")
    again = make_example(one, {"high": clean}, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert float(((again.input - clean).std() * 255 - 5).abs()) < 0.5


class CountingImages:
    """Five random 24 x 24 images (``{"high", "name"}`` items) that count the items read."""

    def __init__(self, channels: int):
        self.images = torch.rand(5, channels, 24, 24, generator=torch.Generator().manual_seed(1))
        self.reads = 0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        self.reads += 1
        return {"high": self.images[index], "name": f"image{index}"}


@pytest.mark.parametrize("argv", [
    ["--task", "lowlight"],                                          # synthetic darkening
    ["--task", "denoise", "--sigma", "5", "60"],                     # a level and noise per crop
    ["--task", "denoise", "--set", "data.noise=amplified", "--sigma", "10"],  # darkening, noise, curves and the map
    ["--model", "ffdnet", "--task", "denoise", "--set", "data.noise=gaussian", "--sigma", "0", "50",
     "--set", "data.sigma_draw=uniform"],                                     # a level of the range per crop, its map
    ["--task", "completion"],                                        # occlusion masks
])
@pytest.mark.parametrize("world", [2, 4])
def test_a_rank_draws_only_its_rows_of_the_batch_one_process_draws(argv, world):
    """draw_example: rank r of n reads B / n items and gets rows r B / n .. of one process's batch
    (item, crop, flips and degradation all per row); the ranks' rows together are that batch."""
    from agents.distributed import Ranks

    argv = [*argv, "--crop", "16", "--batch", "4"]
    args = resolved(argv)
    data = CountingImages(channels=1 if args.task == "denoise" else 3)
    one = draw_example(args, data, 7, Ranks().rows(4), torch.device("cpu"))
    assert data.reads == 4
    parts = []
    for rank in range(world):
        ranks = Ranks(rank=rank, world_size=world)
        data.reads = 0
        parts.append(draw_example(args, data, 7, ranks.rows(ranks.split(args.batch)), torch.device("cpu")))
        assert data.reads == 4 // world and parts[-1].input.shape[0] == 4 // world
    for field, whole in one._asdict().items():
        if whole is not None:
            assert torch.equal(torch.cat([getattr(part, field) for part in parts]), whole), field
    assert not torch.equal(one.input[0], one.input[1])  # rows of their own, not one row repeated
    other = draw_example(args, data, 8, Ranks().rows(4), torch.device("cpu"))
    assert not torch.equal(other.input, one.input)  # the batch seed matters


@pytest.mark.parametrize("flips, up_down_seen", [("both", True), ("horizontal", False)])
def test_flips_horizontal_never_turns_a_training_crop_upside_down(flips, up_down_seen):
    """--flips horizontal: training crops are flipped left-right only; the default flips up-down too."""

    argv = ["--task", "denoise", "--sigma", "0", "--crop", "24", "--batch", "8", "--set", f"data.flips={flips}"]
    args = resolved(argv)
    data = CountingImages(channels=1)
    data.images = torch.linspace(0, 1, 24).view(1, 1, 24, 1).expand(5, 1, 24, 24).clone()  # darker at the top
    targets = torch.cat([draw_example(args, data, seed, slice(0, 8), torch.device("cpu")).target
                         for seed in range(4)])
    upside_down = targets[:, 0, 0, 0] > targets[:, 0, -1, 0]
    assert bool(upside_down.any()) == up_down_seen
    assert not bool(upside_down.all())


def resolved_denoise(*argv):
    argv = ["--task", "denoise", *argv]
    return resolved(argv)


@pytest.mark.parametrize("argv, match", [
    (["--sigma", "-5"], "--sigma -5.0: expected noise levels that are finite numbers >= 0"),
    (["--sigma", "nan"], r"data.sigma: got NaN \(not a number\)"),
    (["--sigma", "10", "inf"], "10.0 inf: expected noise levels that are finite"),
    (["--sigma", "10", "10"], "10.0 10.0: .*repeated"),
    (["--set", "data.noise=amplified", "--sigma", "5", "10"], "data.sigma 5 10: data.noise amplified draws"),
])
def test_bad_sigma_is_refused_by_name(argv, match):
    with pytest.raises(ValueError, match=match):
        resolved_denoise(*argv)


def test_an_empty_sigma_is_refused_by_name(capsys):
    with pytest.raises(SystemExit):
        parse(["--sigma"])
    assert "argument --sigma: expected at least one argument" in capsys.readouterr().err


def test_one_level_checkpoints_load_and_a_spec_without_sigmas_is_refused(tmp_path):
    """A one-level checkpoint records that level in ``sigmas``; a spec without the field (an older
    format) is refused naming it; a run resumes with an equal --sigma and refuses another."""
    out = main([*TINY, "--epochs", "1", "--model", "mrpnet", "--set", "model.generator=false", "--task", "denoise",
                "--sigma", "15", "--out", str(tmp_path / "one")])
    assert json.loads((out / "config.json").read_text())["data"]["sigma"] == [15.0]
    path = out / "checkpoints" / "best.pt"
    spec = load_checkpoint(path)["extra"]["spec"]
    assert (spec.channels, spec.sigma, spec.sigmas) == (1, 15.0, (15.0,))
    raw = torch.load(path, weights_only=True)
    del raw["extra"]["spec"]["sigmas"]  # as written by an older format
    old = tmp_path / "old.pt"
    torch.save(raw, old)
    with pytest.raises(CheckpointError, match=r"missing key\(s\) \['sigmas'\]"):
        load_checkpoint(old)
    restorer = SupervisedRestorer(path, device="cpu", task="denoise")
    assert restorer.spec.sigmas == (15.0,) and restorer.channels == 1
    raw["extra"]["spec"]["sigmas"] = [10.0, 15.0]  # a spec whose sigma is not its largest level is refused
    raw["extra"]["spec"]["sigma"] = 10.0
    torch.save(raw, old)
    with pytest.raises(CheckpointError, match="sigma 10.0 is not the largest of sigmas"):
        load_checkpoint(old)
    argv = ["--out", str(out), "--resume", "--sigma", "15"]  # an equal level: no conflict
    assert resolved(argv).sigma == 15.0
    with pytest.raises(ValueError, match=r"data.sigma \[15.0, 25.0\] \(the run has \[15.0\]\)"):
        main(["--out", str(out), "--resume", "--sigma", "15", "25"])
    assert SupervisedSpec(model="mrpnet", task="denoise", channels=3, prefill="none", noise="gaussian",
                          sigma=25.0).sigmas == (25.0,)


def test_shift_holes_moves_each_pair_s_hole_onto_its_original():

    original = torch.rand(3, 3, 40, 44, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(3, 1, 40, 44)
    mask[:, :, 8:24, 10:30] = 1
    batch = {"occluded": original * (1 - mask), "original": original, "mask": mask}
    args = resolved(["--task", "completion", "--data", "x", "--set", "data.shift_holes=true"])
    generators = [torch.Generator().manual_seed(k) for k in range(3)]
    example = make_example(args, batch, generators, torch.device("cpu"))
    assert torch.equal(example.target, original)
    assert torch.equal(example.mask.sum(dim=(1, 2, 3)), mask.sum(dim=(1, 2, 3)))  # same 16x20 holes
    assert not torch.equal(example.mask, mask)  # moved (each to its own place)
    assert len({tuple(torch.nonzero(m[0]).min(0).values.tolist()) for m in example.mask}) == 3
    assert torch.equal(example.input, original * (1 - example.mask))  # the original, black in the new hole
    again = make_example(args, batch, [torch.Generator().manual_seed(k) for k in range(3)], torch.device("cpu"))
    assert torch.equal(again.mask, example.mask)  # the positions come from the generators
    kept = make_example(replace(args, shift_holes=False), batch, generators, torch.device("cpu"))
    assert torch.equal(kept.mask, mask) and torch.equal(kept.input, batch["occluded"])


def test_hole_loss_psnr_is_minus_each_hole_s_psnr_and_weighs_images_by_their_relative_error():
    """--hole-loss psnr: 10 log10(hole MSE + floor) per image, so an image with a small hole error gets
    the larger gradient (the mean hole PSNR's weighting), where plain MSE gives it the smaller one."""

    target = torch.full((2, 3, 16, 16), 0.5)
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    errors = torch.tensor([0.01, 0.3]).view(2, 1, 1, 1)
    example = Example(input=target * (1 - mask), target=target, mask=mask)
    gradients = {}
    for loss_name in ("mse", "psnr"):
        args = resolved(["--model", "unet", "--task", "completion", "--set", f"train.hole_loss={loss_name}"])
        pred = (target + errors * mask).requires_grad_(True)
        loss, terms = compute_loss(args, pred, example)
        assert torch.allclose(terms["hole_mse"], errors.flatten() ** 2)
        if loss_name == "psnr":
            assert torch.allclose(loss, 10 * torch.log10(errors.flatten() ** 2 + 1e-5))
        loss.sum().backward()
        gradients[loss_name] = pred.grad.flatten(1).norm(dim=1)
    assert gradients["mse"][0] < gradients["mse"][1]  # MSE: the badly missed hole dominates
    assert gradients["psnr"][0] > gradients["psnr"][1]  # minus PSNR: the nearly right one counts more


def test_validation_keeps_the_pairs_own_holes_with_shift_holes(tmp_path):

    _folders(tmp_path)
    argv = ["--task", "completion", "--model", "unet", "--data", str(tmp_path / "occ"), "--crop", "32",
            "--set", "data.val_samples=2"]
    shifted = resolved([*argv, "--set", "data.shift_holes=true"])
    plain = resolved(argv)
    val = open_datasets(plain).val
    a, b = validation_set(shifted, val), validation_set(plain, val)
    assert torch.equal(a.mask, b.mask) and torch.equal(a.input, b.input)


def test_init_widens_a_narrower_completion_unet_and_refuses_a_wider_one(runs, tmp_path):
    """--model unet --init of a width-8 run at --width 12: the run starts from the function the narrow
    net computed (at a learning rate of 1e-9 it ends there); a narrower --width is refused."""
    base, results = runs
    check_ok(results["unet-completion"], "unet-completion")
    source = base / "unet-completion" / "checkpoints" / "best.pt"
    tiny = [*TINY, *COMBOS["unet-completion"]]
    tiny[tiny.index("--width") + 1] = "12"
    check_ok(in_process(*tiny, "--init", str(source), "--lr", "1e-9", "--out", str(tmp_path / "wide")), "wide")
    narrow, wide = (build_model(load_checkpoint(p), REGISTRY).eval()
                    for p in (source, tmp_path / "wide" / "checkpoints" / "last.pt"))
    assert wide.arch()["kwargs"]["width"] == 12
    image, mask = torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)
    mask[..., 20:44, 16:40] = 1
    with torch.no_grad():
        assert float((narrow(image, mask) - image).abs().amax()) > 1e-4  # trained: it corrects the hole
        assert torch.allclose(wide(image, mask), narrow(image, mask), atol=1e-6)
    with pytest.raises(CheckpointError, match=r"--init .*: a checkpoint of another kind of run: prefill 'diffusion'"):
        in_process(*tiny, "--set", "data.prefill=none", "--init", str(source), "--out", str(tmp_path / "other"))
    ckpt = load_checkpoint(source)  # a narrower U-Net by its arch, whose weights do not fit it
    broken = build_model(ckpt, REGISTRY)
    broken.head.bias = torch.nn.Parameter(torch.zeros(5))
    save_checkpoint(tmp_path / "broken.pt", model=broken, arch=ckpt["arch"], extra=ckpt["extra"])
    with pytest.raises(CheckpointError, match=r"--init .*broken.pt: widen_from: head.bias of shape \(5,\)"):
        in_process(*tiny, "--init", str(tmp_path / "broken.pt"), "--out", str(tmp_path / "broken"))
    tiny[tiny.index("--width") + 1] = "4"
    with pytest.raises(CheckpointError, match=r"--init: .*architecture mismatch.*\"width\": 8.*\"width\": 4"):
        in_process(*tiny, "--init", str(source), "--out", str(tmp_path / "narrow"))
    assert not any((tmp_path / name).exists() for name in ("other", "broken", "narrow"))


def test_the_model_cards_commands_parse_and_name_every_shipped_preset():
    """Every supervised_train / rse_train command of rlenhance/weights/README.md parses, and every preset
    of theirs that makes a shipped file (its docstring names the .pt) is the command of that file's card."""
    import importlib
    import shlex

    cards = (ROOT / "rlenhance" / "weights" / "README.md").read_text()
    commands = re.findall(r"`(python -m experiments\.(supervised_train|rse_train)[^`]*)`", cards)
    named = set()
    for command, trainer in commands:
        module = importlib.import_module(f"experiments.{trainer}")
        argv = shlex.split(command)[3:]
        module.parse(argv)
        if "--preset" in argv:
            named.add((trainer, argv[argv.index("--preset") + 1]))
    for trainer in ("supervised_train", "rse_train"):
        module = importlib.import_module(f"experiments.{trainer}")
        for name, preset in module.PRESETS.items():
            shipped = re.search(r"\b(\w+\.pt)\b", " ".join(preset.doc))
            if shipped and (ROOT / "rlenhance" / "weights" / shipped.group(1)).exists():
                assert (trainer, name) in named, f"{trainer} --preset {name} makes {shipped.group(1)}: not in its card"
                card = re.split(r"^## ", cards, flags=re.M)
                assert any(shipped.group(1) in c.splitlines()[0] and f"--preset {name}" in c for c in card[1:]), name


@pytest.mark.parametrize("trainer", ["supervised_train", "rse_train"])
def test_every_setting_has_a_docstring(trainer):
    import importlib

    from experiments import config as configs

    module = importlib.import_module(f"experiments.{trainer}")
    for path, (_, holder) in configs.paths(module.Config).items():
        assert configs.field_docs(holder).get(path.rsplit(".", 1)[-1]), path


def test_a_runs_config_json_reruns_it_exactly(tmp_path):
    """``--config RUN`` with another --out trains the same weights (a new run: the saved resume flag is not taken)."""
    first = main([*TINY, "--epochs", "1", "--out", str(tmp_path / "a")])
    again = main(["--config", str(first), "--out", str(tmp_path / "b")])
    a, b = (load_checkpoint(Path(run) / "checkpoints" / "last.pt") for run in (first, again))
    assert all(torch.equal(v, b["state_dict"][k]) for k, v in a["state_dict"].items())
