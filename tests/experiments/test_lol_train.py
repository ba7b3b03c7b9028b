"""Smoke tests of experiments.lol_train / lol_eval and the `rlenhance enhance` CLI on tiny settings; a failed
start, Ctrl-C and --resume of a finished run."""

import csv
import dataclasses
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import envs
from rlenhance.checkpoint import load_checkpoint
from rlenhance.io import load_image, save_image

ROOT = Path(__file__).resolve().parents[2]
#: The defaults vary every reward weight; one-value ranges fix the ones a test does not vary.
FIXED_WEIGHTS = ["--w-exposure-range", "300", "300", "--w-color-range", "20", "20", "--w-spatial-range", "1", "1"]
TINY = ["--episodes", "4", "--eval-every", "2", "--batch", "2", "--crop", "32", "--steps", "2",
        "--test-steps", "2", "--eval-size", "48", "--width", "8", "--samples", "2", "--threads", "1"]


def run_module(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lol") / "run"
    proc = run_module("experiments.lol_train", *TINY, "--conditioned", "--out", str(out))
    return out, proc


def test_run_folder_contents(tiny_run):
    out, proc = tiny_run
    config = json.loads((out / "config.json").read_text())
    assert config["episodes"] == 4 and config["conditioned"] is True
    with open(out / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    metrics = {r["metric"] for r in rows}
    assert {"charts/episode_return", "losses/value_loss", "eval/psnr", "eval/ssim", "eval/uqi",
            "eval/exposure_loss", "eval/brightness"} <= metrics
    assert max(int(r["step"]) for r in rows) == 4
    # a conditioned run also checks --exposure customisation; 0.4 (the default setting) is among its targets
    last_eval = {r["metric"]: float(r["value"]) for r in rows if r["step"] == "4"}
    assert config["exposure_target"] == 0.4
    assert last_eval["eval/exposure_gap_max"] >= abs(last_eval["eval/brightness"] - 0.4) - 1e-6
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert (out / "samples" / "episode_000002.png").is_file() and (out / "samples" / "episode_000004.png").is_file()
    grid = load_image(out / "samples" / "episode_000004.png")
    assert grid.shape[1] > 3 * 48  # input | output | reference side by side
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    assert last["extra"]["episode"] == 4 and "agent" in last["extra"]
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    assert "agent" not in best["extra"] and best["extra"]["spec"].conditioned is True
    assert "| episodes |" in proc.stdout and (out / "summary.md").is_file()
    # the defaults are the shipped model's recipe: conditioned on the exposure target and every weight
    assert dict(best["extra"]["spec"].setting_ranges) == {
        "exposure_target": (0.3, 0.8), "w_exposure": (100.0, 1000.0), "w_color": (20.0, 10000.0),
        "w_spatial": (1.0, 1000.0), "w_smooth": (0.1, 100.0)}
    assert config["alpha_channels"] == 1 and config["exposure_gap"] and config["smooth_on_mean"]
    assert config["cond_film"] and config["weight_draw"] == "one" and config["alpha_min"] == 0
    assert config["exposure_mean"] > 0 and config["exposure_relative"]
    # it ends by saying where the model is and how to use it
    best_path = out / "checkpoints" / "best.pt"
    assert f"model: {best_path}" in proc.stdout
    assert f"rlenhance enhance photo.jpg -o enhanced/ --checkpoint {best_path} [--exposure 0.4]" in proc.stdout
    assert "exposure 0.3..0.8, w_exposure 100..1000, w_color 20..10000" in proc.stdout


@pytest.mark.slow
def test_resume_continues_to_the_same_weights(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    constant = [*TINY, "--lr-decay", "none"]  # the poly schedule follows --episodes, which the first half shortens
    run_module("experiments.lol_train", *constant, "--out", str(straight))
    half = list(constant)
    half[half.index("--episodes") + 1] = "2"
    run_module("experiments.lol_train", *half, "--out", str(split))
    proc = run_module("experiments.lol_train", *constant, "--out", str(split), "--resume")
    assert "resumed" in proc.stdout
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(split / "checkpoints" / "last.pt")
    assert b["extra"]["episode"] == 4
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    with open(split / "metrics.csv") as handle:
        steps = [int(r["step"]) for r in csv.DictReader(handle) if r["metric"] == "charts/episode_return"]
    assert steps == [1, 2, 3, 4]


@pytest.mark.slow
def test_new_run_refuses_a_used_folder_and_resume_needs_a_checkpoint(tiny_run, tmp_path):
    out, _ = tiny_run
    proc = run_module("experiments.lol_train", *TINY, "--out", str(out), check=False)
    assert proc.returncode != 0 and "--resume" in proc.stderr
    proc = run_module("experiments.lol_train", *TINY, "--out", str(tmp_path / "none"), "--resume", check=False)
    assert proc.returncode != 0 and "no checkpoint" in proc.stderr


@pytest.mark.slow
def test_help_documents_every_argument():
    proc = run_module("experiments.lol_train", "--help")
    for flag in ("--data", "--reward", "--w-exposure", "--w-color", "--w-spatial", "--w-smooth",
                 "--exposure-target", "--conditioned", "--episodes", "--crop", "--batch", "--steps",
                 "--gamma", "--lr", "--downscale", "--device", "--seed", "--out", "--resume", "--workers"):
        assert flag in proc.stdout, flag


@pytest.mark.slow
def test_cli_enhance_writes_outputs_and_reports_bad_files(tiny_run, tmp_path):
    out, _ = tiny_run
    rng = np.random.default_rng(0)
    good = tmp_path / "dark.png"
    save_image(good, rng.uniform(0.02, 0.15, (40, 56, 3)).astype(np.float32))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    outdir = tmp_path / "out"
    proc = run_module("rlenhance", "enhance", str(good), str(bad), "-o", str(outdir),
                      "--checkpoint", str(out / "checkpoints" / "best.pt"), "--exposure", "0.6", check=False)
    assert proc.returncode == 1
    assert "broken.jpg" in proc.stderr and "not" in proc.stderr
    line = next(row for row in proc.stdout.splitlines() if "dark.png" in row)
    assert "56x40" in line and "ms" in line and "mean" in line
    result = load_image(outdir / "dark.png")
    assert result.shape == (40, 56, 3)
    proc = run_module("rlenhance", "enhance", str(good), "-o", str(outdir), "--checkpoint",
                      str(out / "checkpoints" / "best.pt"), "--exposure", "1.5", check=False)
    assert proc.returncode == 2 and "exposure" in proc.stderr


@pytest.mark.slow
def test_lol_eval_on_a_tiny_paired_folder(tiny_run, tmp_path):
    out, _ = tiny_run
    rng = np.random.default_rng(1)
    for name in ("001_1", "002_1", "003_1"):
        high = rng.uniform(0.2, 0.8, (32, 32, 3)).astype(np.float32)
        save_image(tmp_path / "pairs" / "high" / f"{name}.png", high)
        save_image(tmp_path / "pairs" / "low" / f"{name}.png", high * 0.15)
    proc = run_module("experiments.lol_eval", "--data", str(tmp_path / "pairs"), "--split", "all",
                      "--checkpoint", str(out / "checkpoints" / "best.pt"), "--csv", str(tmp_path / "r.csv"),
                      "--threads", "1", "--sweep-exposure", "0.4", "0.7")
    for method in ("rlenhance (ours)", "auto-gamma", "histeq", "clahe", "ours, exposure 0.4", "ours, exposure 0.7"):
        assert method in proc.stdout
    with open(tmp_path / "r.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 6
    gaps = [np.mean([float(r["brightness"]) for r in rows if r["method"] == f"ours, exposure {t}"]) - t
            for t in (0.4, 0.7)]
    assert f"0.4: {gaps[0]:+.3f}, 0.7: {gaps[1]:+.3f}; largest |gap| {max(map(abs, gaps)):.3f}" in proc.stdout


@pytest.mark.slow
def test_asynchronous_hogwild_workers(tmp_path):
    out = tmp_path / "hogwild"
    run_module("experiments.lol_train", *TINY, "--workers", "2", "--out", str(out))
    with open(out / "metrics.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["metric"] == "charts/episodes"]
    assert sum(float(r["value"]) for r in rows) == 4  # the episode count is shared by the workers
    assert load_checkpoint(out / "checkpoints" / "last.pt")["extra"]["episode"] == 4


def test_sac_agent_trains_continuous_alphas_the_enhancer_applies(tmp_path):
    from experiments import lol_train
    from rlenhance.enhance import Enhancer

    args = list(TINY)
    args[args.index("--episodes") + 1] = "2"
    out = lol_train.main([*args, "--agent", "sac", "--sac-learning-starts", "2", "--sac-batch", "2",
                          "--out", str(tmp_path / "sac")])
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    assert best["extra"]["algorithm"] == "sac" and best["extra"]["spec"].transition.action_type == "continuous"
    assert best["arch"]["kwargs"]["bounded_mean"] is False and best["arch"]["kwargs"]["n_actions"] is None
    config = json.loads((out / "config.json").read_text())
    assert config["action"] == "continuous" and config["gamma"] < 1
    dark = np.full((24, 40, 3), 0.1, np.float32)
    result = Enhancer(out / "checkpoints" / "best.pt", device="cpu").enhance(dark)
    assert result.shape == dark.shape and np.isfinite(result).all()


def test_exposure_gap_and_smooth_on_mean_reach_the_checkpoint_and_the_enhancer(tmp_path):
    from experiments import lol_train
    from rlenhance.enhance import Enhancer

    args = list(TINY)
    args[args.index("--episodes") + 1] = "2"
    out = lol_train.main([*args, "--conditioned", "--exposure-gap", "--smooth-on-mean", "--alpha-channels", "1",
                          "--policy-side", "48", "--downscale", "4", "--out", str(tmp_path / "gap")])
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    assert best["extra"]["spec"].transition.observe_exposure_gap is True
    assert best["arch"]["kwargs"]["in_channels"] == 7  # image, original, exposure gap
    assert best["arch"]["kwargs"]["out_channels"] == 1  # one alpha map for R, G and B
    enhancer = Enhancer(out / "checkpoints" / "best.pt", device="cpu")
    assert best["extra"]["spec"].max_side == enhancer.max_side == 48  # trained at 48 px, runs at 48 px
    # the default setting reaches the policy as the cond it was evaluated with in training (with
    # --smooth-on-mean the env keeps w_smooth as a setting and hands it to the A3C loss)
    run_args = lol_train.Args(**{k: v for k, v in json.loads((out / "config.json").read_text()).items()
                                 if k in {f.name for f in dataclasses.fields(lol_train.Args)}})
    task = envs.make_vec(lol_train.ENV_ID, num_envs=1, **lol_train.env_kwargs(run_args)).task
    assert torch.allclose(enhancer.cond(), task.setting_cond(1))
    dark = np.random.default_rng(0).uniform(0.02, 0.2, (24, 40, 3)).astype(np.float32)
    low, high = enhancer.enhance(dark, exposure=0.4), enhancer.enhance(dark, exposure=0.7)
    assert not np.array_equal(low, high)  # the target reaches the policy through the gap plane
    gray = np.repeat(dark[..., :1], 3, axis=2)
    out_gray = enhancer.enhance(gray)  # one curve for all channels: a gray picture stays gray
    assert np.array_equal(out_gray[..., 0], out_gray[..., 1]) and np.array_equal(out_gray[..., 1], out_gray[..., 2])
    with pytest.raises(ValueError, match="smooth-on-mean"):
        lol_train.main([*args, "--agent", "sac", "--action", "discrete", "--smooth-on-mean",
                        "--out", str(tmp_path / "sac")])
    assert not (tmp_path / "sac").exists()


def test_split_seed_holds_out_the_same_images_across_seeds():
    from experiments import lol_train
    from experiments.rl_common import resolve_args

    def val_names(**kw):
        args = resolve_args(lol_train.Args(threads=1, eval_size=32, **kw))
        return lol_train.load_validation(args, torch.device("cpu"))[0]

    base = val_names(seed=0)
    other = next(s for s in range(1, 20) if val_names(seed=s) != base)  # a seed whose own split differs
    assert val_names(seed=other, split_seed=0) == base
    with pytest.raises(ValueError, match="--split-seed -1"):
        resolve_args(lol_train.Args(split_seed=-1))


@pytest.mark.parametrize("policy_side", [0, 96])
def test_validation_images_of_other_aspect_ratios_batch(policy_side):
    """Each split of the embedded photos (aspect ratios 1.0-1.5) stacks, also when --policy-side
    makes them smaller than --eval-size (64x96 next to 65x96 used to fail to stack)."""
    from experiments import lol_train
    from experiments.rl_common import resolve_args

    for seed in range(4):
        args = resolve_args(lol_train.Args(threads=1, seed=seed, policy_side=policy_side))
        names, low, high = lol_train.load_validation(args, torch.device("cpu"))
        assert low.shape == high.shape and low.shape[:2] == (len(names), 3)
        if policy_side:  # never upscaled: the longer side is the policy's
            assert max(low.shape[-2:]) == policy_side and min(low.shape[-2:]) < policy_side
        else:
            assert low.shape[-2:] == (256, 256)


def test_validation_images_of_one_size_keep_their_whole_frame(monkeypatch):
    """Paired images all of one size (e.g. SICE at --policy-side 128: 85x128) are not cropped."""
    from experiments import lol_train
    from experiments.rl_common import resolve_args

    args = resolve_args(lol_train.Args(threads=1, data=str(ROOT / "tests" / "no_such_folder")))
    images = [{"name": f"im{i}", "low": torch.rand(3, 85, 128), "high": torch.rand(3, 85, 128)} for i in range(3)]
    monkeypatch.setattr(lol_train, "open_dataset", lambda *a, **kw: images)
    names, low, high = lol_train.load_validation(args, torch.device("cpu"))
    assert names == ["im0", "im1", "im2"] and low.shape == high.shape == (3, 3, 85, 128)
    torch.testing.assert_close(high[1], images[1]["high"])


@pytest.mark.slow
def test_lr_decay_poly_follows_pixelrl_schedule(tmp_path):
    out = tmp_path / "decay"
    run_module("experiments.lol_train", *TINY, "--lr-decay", "poly", "--lr", "0.001", "--out", str(out))
    with open(out / "metrics.csv") as handle:
        lrs = {int(r["step"]): float(r["value"]) for r in csv.DictReader(handle) if r["metric"] == "charts/lr"}
    assert sorted(lrs) == [1, 2, 3, 4]
    for step, lr in lrs.items():  # episode k = step - 1 of 4
        assert lr == pytest.approx(1e-3 * (1 - (step - 1) / 4) ** 0.9, rel=1e-5)  # csv: 6 digits


# --- a run folder never dead-ends: failed starts, signals, finished runs ---------------------------
def test_a_failed_start_writes_nothing_and_the_fixed_command_runs(tmp_path):
    """A missing --data fails before anything is written: --out stays absent (or empty), so the
    same command with the data fixed starts without --resume."""
    from experiments import lol_train
    from rlenhance.errors import DatasetError

    args = list(TINY)
    args[args.index("--episodes") + 1] = "2"
    out, empty = tmp_path / "run", tmp_path / "empty"
    empty.mkdir()
    for folder in (out, empty):
        with pytest.raises(DatasetError, match="not a folder"):
            lol_train.main([*args, "--data", str(tmp_path / "missing"), "--out", str(folder)])
    assert not out.exists() and list(empty.iterdir()) == []
    lol_train.main([*args, "--out", str(out)])
    assert load_checkpoint(out / "checkpoints" / "last.pt")["extra"]["episode"] == 2


@pytest.mark.slow
def test_sigint_saves_the_episode_reached_and_resume_finishes(tmp_path, signalled_run):
    """Ctrl-C in a real run: exit code 130, one line on stderr (no traceback), last.pt at the
    episode reached; --resume continues from there (to a shortened total, to keep the test short)."""
    from experiments import lol_train

    out = tmp_path / "run"
    argv = [*TINY, "--episodes", "1000", "--eval-every", "500"]  # far longer than the test waits
    proc = signalled_run("experiments.lol_train", argv, out, signal.SIGINT)
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and proc.stderr.count("interrupted") == 1
    match = re.fullmatch(r"lol_train: interrupted at episode (\d+) of 1000 \(SIGINT\); \S+last\.pt saved; "
                         r"continue with the same arguments and --resume", proc.message)
    assert match, proc.message
    episode = int(match[1])
    last = load_checkpoint(out / "checkpoints" / "last.pt")["extra"]
    assert last["episode"] == episode >= 1 and last["eval_episode"] == 0 and "agent" in last
    lol_train.main([*argv, "--episodes", str(episode + 1), "--out", str(out), "--resume"])
    assert load_checkpoint(out / "checkpoints" / "last.pt")["extra"]["episode"] == episode + 1
    with open(out / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows if r["metric"] == "charts/episode_return"] == list(range(1, episode + 2))
    assert [int(r["step"]) for r in rows if r["metric"] == "eval/psnr"] == [episode + 1]
    assert "| episodes |" in (out / "summary.md").read_text()


def test_resume_of_a_finished_run_changes_nothing(tiny_run, capsys):
    """summary.md keeps its evaluation columns; no file of the run changes, no TensorBoard file is added."""
    from experiments import lol_train

    out, _ = tiny_run
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert lol_train.main([*TINY, "--conditioned", "--out", str(out), "--resume"]) == out
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    assert "already finished at episode 4; nothing to do; raise --episodes" in capsys.readouterr().out


def test_resume_of_a_run_saved_before_the_cap_flags_keeps_its_cap_or_says_how(tiny_run, tmp_path):
    """A run saved before --overshoot-weighted / --cap-in-training existed: one with a cap had it fixed and in
    training, so resuming it with today's defaults is refused, naming both; one without a cap is told to give
    --max-overshoot inf. With its own settings spelled out it resumes."""
    import shutil

    from experiments import lol_train

    out, _ = tiny_run
    for cap in (0.05, None):
        run = tmp_path / f"old{cap}"
        shutil.copytree(out, run)
        last = run / "checkpoints" / "last.pt"
        payload = torch.load(last, weights_only=False)
        args = payload["extra"]["args"]
        del args["overshoot_weighted"], args["cap_in_training"]
        args["max_overshoot"] = cap
        torch.save(payload, last)
        argv = [*TINY, "--conditioned", "--out", str(run), "--resume"]
        if cap is None:
            with pytest.raises(ValueError, match=r"--max-overshoot 0.04 \(the run has None: --max-overshoot inf\)"):
                lol_train.main(argv)
            assert lol_train.main([*argv, "--max-overshoot", "inf"]) == run
        else:
            with pytest.raises(ValueError, match=r"--cap-in-training False \(the run has True\).*"
                                                 r"--overshoot-weighted True \(the run has False\)"):
                lol_train.main([*argv, "--max-overshoot", "0.05"])
            assert lol_train.main([*argv, "--max-overshoot", "0.05", "--cap-in-training",
                                   "--no-overshoot-weighted"]) == run


# --- presets, per-knob ranges -------------------------------------------------------------------------
def test_rellie_preset_sets_rellies_configuration_and_later_flags_override_it():
    from experiments import lol_train
    from experiments.rl_common import resolve_args
    from experiments.runs import parse_config

    def parsed(*argv):
        return resolve_args(parse_config(lol_train.Args, lol_train.expand_preset(argv)))

    args = parsed("--preset", "rellie")
    assert (args.channel_coupling, args.damping, args.gamma, args.w_color_ratio) == (0.9, 0.2, 1.05, 20.0)
    assert (args.w_exposure, args.w_smooth, args.w_spatial, args.w_color, args.exposure_target) == (80, 200, 1, 0, 0.6)
    assert (args.alpha_channels, args.steps, args.test_steps, args.alpha_mode) == (3, 10, 6, "argmax")
    assert not args.conditioned and not args.smooth_on_mean and args.preset == "rellie"
    # ReLLIE's full alpha table and plain patch exposure term, whatever our recipe's defaults are
    assert (args.alpha_min, args.exposure_mean, args.exposure_relative) == (-0.3, 0.0, False)
    # the recipe's conditioning defaults do not apply to an unconditioned policy: set neutral, not refused
    checked = lol_train.check_lowlight_args(args, ["--preset", "rellie"])
    assert not checked.cond_film and lol_train.weight_ranges(checked) == {} and checked.smooth_power == 2
    assert parsed("--damping", "0.1", "--preset", "rellie").damping == 0.1  # given flags win, before or after
    assert parsed("--preset=rellie", "--episodes", "7").episodes == 7
    assert parsed().channel_coupling == 0.0 and parsed().preset is None


def test_rellie_preset_run_records_the_coupling_the_enhancer_applies(tmp_path):
    from experiments import lol_train
    from rlenhance.enhance import Enhancer

    args = list(TINY)
    args[args.index("--episodes") + 1] = "2"
    out = lol_train.main(["--preset", "rellie", *args, "--crop", "24", "--out", str(tmp_path / "rellie")])
    spec = load_checkpoint(out / "checkpoints" / "best.pt")["extra"]["spec"]
    assert (spec.transition.channel_coupling, spec.transition.damping, spec.alpha_mode, spec.conditioned) == \
        (0.9, 0.2, "argmax", False)
    enhancer = Enhancer(out / "checkpoints" / "best.pt", device="cpu")
    image = torch.rand(1, 3, 16, 16) * 0.3
    for alpha in enhancer.alpha_maps(image, enhancer.cond()):
        r, g, b = alpha[0]
        # R and G are 0.9 B + 0.1 their own, so they lie within a tenth of the alpha range of B
        assert (r - b).abs().max() <= 0.1 * 1.3 * 0.8 + 1e-6 and (g - b).abs().max() <= 0.1 * 1.3 * 0.8 + 1e-6
    with pytest.raises(ValueError, match="not conditioned"):
        enhancer.cond(exposure=0.5)  # trained at one setting: refused, not ignored


def test_per_knob_ranges_reach_the_checkpoint_and_the_enhancer_refuses_outside_them(tmp_path):
    from experiments import lol_train
    from rlenhance.enhance import Enhancer

    args = list(TINY)
    args[args.index("--episodes") + 1] = "2"
    # a one-value range fixes a weight the defaults vary (w_exposure, w_spatial)
    out = lol_train.main([*args, "--no-smooth-on-mean", "--w-color", "20", "--w-color-range", "5", "50",
                          "--w-smooth", "40", "--w-smooth-range", "10", "400", "--w-exposure-range", "300", "300",
                          "--w-spatial-range", "1", "1", "--out", str(tmp_path / "knobs")])
    spec = load_checkpoint(out / "checkpoints" / "best.pt")["extra"]["spec"]
    assert dict(spec.setting_ranges) == {"exposure_target": (0.3, 0.8), "w_color": (5.0, 50.0),
                                         "w_smooth": (10.0, 400.0)}
    enhancer = Enhancer(out / "checkpoints" / "best.pt", device="cpu")
    assert enhancer.setting_ranges == {"exposure": (0.3, 0.8), "w_color": (5.0, 50.0), "w_smooth": (10.0, 400.0)}
    enhancer.cond(w_color=50.0, w_smooth=10.0, exposure=0.3)  # the ends are in range
    with pytest.raises(ValueError, match=r"w_color: 60 is outside .*\[5, 50\]"):
        enhancer.cond(w_color=60.0)
    with pytest.raises(ValueError, match=r"w_spatial: .*fixed \(w_spatial = 1\).*accepts: exposure in \[0.3, 0.8\]"):
        enhancer.cond(w_spatial=2.0)


def test_smoothness_weight_on_the_mean_is_a_setting_of_the_model(tmp_path):
    """--smooth-on-mean --w-smooth-range: the policy is conditioned on w_smooth, which weights each crop's
    penalty in the A3C loss (action_penalty 1); the Enhancer takes w_smooth over the range, and so does
    benchmarks.knobs."""
    from benchmarks import knobs
    from experiments import lol_train
    from rlenhance.enhance import Enhancer

    args = list(TINY)
    args[args.index("--episodes") + 1] = "2"
    out = lol_train.main([*args, "--smooth-on-mean", "--w-smooth", "100", "--w-smooth-range", "20", "500",
                          *FIXED_WEIGHTS, "--out", str(tmp_path / "smooth")])
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    assert last["extra"]["agent"]["config"]["action_penalty"] == lol_train.SMOOTH_ON_MEAN_COEF == 1.0
    spec = last["extra"]["spec"]
    assert spec.setting["w_smooth"] == 100.0 and dict(spec.setting_ranges)["w_smooth"] == (20.0, 500.0)
    run_args = lol_train.Args(**{k: v for k, v in json.loads((out / "config.json").read_text()).items()
                                 if k in {f.name for f in dataclasses.fields(lol_train.Args)}})
    venv = envs.make_vec(lol_train.ENV_ID, num_envs=2, **lol_train.env_kwargs(run_args))
    assert venv.reset(seed=0)[1]["action_penalty_weight"].shape == (2,)  # the weights the A3C loss got
    enhancer = Enhancer(out / "checkpoints" / "best.pt", device="cpu")
    assert enhancer.setting_ranges == {"exposure": (0.3, 0.8), "w_smooth": (20.0, 500.0)}
    assert float(enhancer.cond(w_smooth=20.0)[0, 4]) == pytest.approx(-1.0)
    assert float(enhancer.cond(w_smooth=500.0)[0, 4]) == pytest.approx(1.0)
    assert torch.allclose(enhancer.cond(), venv.task.setting_cond(1))
    dark = np.random.default_rng(0).uniform(0.02, 0.2, (24, 40, 3)).astype(np.float32)
    for w_smooth in (20.0, 500.0):
        result = enhancer.enhance(dark, w_smooth=w_smooth)
        assert result.shape == dark.shape and np.isfinite(result).all()
    with pytest.raises(ValueError, match=r"w_smooth: 600 is outside .*\[20, 500\]"):
        enhancer.cond(w_smooth=600.0)
    for name in ("001_1", "002_1"):
        save_image(tmp_path / "pairs" / "low" / f"{name}.png", dark)
        save_image(tmp_path / "pairs" / "high" / f"{name}.png", np.clip(dark * 4, 0, 1))
    report = knobs.main(["--checkpoint", str(out / "checkpoints" / "best.pt"), "--data", str(tmp_path / "pairs"),
                         "--split", "all", "--exposures", "0.4", "--threads", "1"])["pick"]
    # log-encoded (the default --cond-encoding): the benchmark's middle is the geometric one
    assert [r["value"] for r in report["table"] if r["knob"] == "w_smooth"] == pytest.approx([20.0, 100.0, 500.0])
    assert "w_smooth" in report["verdicts"] and "w_smooth" not in report["refused"]


def test_log_encoded_checkpoint_encodes_settings_as_its_env(tmp_path):
    """--cond-encoding log: the checkpoint records which fields are log-encoded, and the Enhancer encodes
    any setting in the ranges exactly as the training env did; each range's ends are -1 and +1."""
    from experiments import lol_train
    from rlenhance.enhance import Enhancer

    args = list(TINY)
    args[args.index("--episodes") + 1] = "1"
    args[args.index("--eval-every") + 1] = "1"
    ranges = {"w_exposure": (100.0, 600.0), "w_color": (1.0, 100.0), "w_spatial": (0.5, 20.0),
              "w_smooth": (2.0, 500.0)}
    flags = [x for name, (lo, hi) in ranges.items() for x in (f"--{name.replace('_', '-')}-range", str(lo), str(hi))]
    out = lol_train.main([*args, "--exposure-range", "0.3", "0.8", *flags, "--cond-encoding", "log",
                          "--weight-draw", "one", "--exposure-mean", "2", "--out", str(tmp_path / "log")])
    spec = load_checkpoint(out / "checkpoints" / "best.pt")["extra"]["spec"]
    assert spec.transition.cond_encodings == ("linear", "log", "log", "log", "log")
    enhancer = Enhancer(out / "checkpoints" / "best.pt", device="cpu")
    assert enhancer.setting_ranges == {"exposure": (0.3, 0.8), **ranges}
    run_args = lol_train.Args(**{k: v for k, v in json.loads((out / "config.json").read_text()).items()
                                 if k in {f.name for f in dataclasses.fields(lol_train.Args)}})
    task = envs.make_vec(lol_train.ENV_ID, num_envs=1, **lol_train.env_kwargs(run_args)).task
    assert task.weight_draw == "one"  # the run's draw reaches the env (and its config, so a resume keeps it)
    assert task.exposure_mean == 2.0
    rng = np.random.default_rng(0)
    for _ in range(5):
        setting = {name: float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) for name, (lo, hi) in ranges.items()}
        exposure = float(rng.uniform(0.3, 0.8))
        values = np.array([[exposure, *setting.values()]])
        torch.testing.assert_close(enhancer.cond(exposure=exposure, **setting), task._encode_cond(values))
    low = enhancer.cond(exposure=0.3, **{name: lo for name, (lo, _) in ranges.items()})
    high = enhancer.cond(exposure=0.8, **{name: hi for name, (_, hi) in ranges.items()})
    torch.testing.assert_close(low, -torch.ones(1, 5))
    torch.testing.assert_close(high, torch.ones(1, 5))
    middle = enhancer.cond(w_color=10.0)  # the geometric middle of 1..100 is the middle of the encoding
    assert float(middle[0, 2]) == pytest.approx(0.0, abs=1e-6)
    dark = np.random.default_rng(1).uniform(0.02, 0.2, (24, 40, 3)).astype(np.float32)
    assert np.isfinite(enhancer.enhance(dark, w_color=100.0, exposure=0.8)).all()


@pytest.mark.parametrize("extra, message", [
    (["--no-conditioned", "--w-color-range", "1", "10"], "only with --conditioned"),
    (["--w-color-range", "1", "2", "3"], "two numbers"),
    (["--w-color-range", "30", "40"], r"weight_ranges\['w_color'\]"),  # must hold --w-color (20)
    (["--channel-coupling", "0.9"], "--alpha-channels 3"),
    (["--alpha-min", "1.0"], "--alpha-min: expected a value in"),
    (["--alpha-min", "0", "--agent", "sac"], "continuous actions"),
    (["--smooth-power", "1", "--agent", "sac"], "--smooth-power 1: shapes A3C"),
    (["--smooth-power", "1", "--no-smooth-on-mean"], "--smooth-power 1: shapes A3C"),
    (["--cond-film", "--no-conditioned"], "--cond-film: .* needs --conditioned"),
    (["--min-steps", "3"], r"--min-steps 3: expected an int from 1 to --steps \(2\)"),
    (["--min-steps", "0"], r"--min-steps 0: expected an int from 1 to --steps \(2\)"),
])
def test_bad_knob_arguments_are_refused_before_anything_is_written(tmp_path, extra, message):
    from experiments import lol_train

    with pytest.raises(ValueError, match=message):
        lol_train.main([*TINY, *extra, "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("alpha_min", [-0.3, None])
def test_alpha_min_zero_trains_a_model_that_never_darkens_a_pixel(tmp_path, alpha_min):
    """The default (alpha_min 0) keeps only the brightening curves; ReLLIE's table (-0.3) darkens."""
    from experiments import lol_train
    from rlenhance.enhance import Enhancer

    extra = [] if alpha_min is None else ["--alpha-min", str(alpha_min)]
    out = lol_train.main([*TINY, "--conditioned", *extra, "--out", str(tmp_path / "run")])
    # the curves alone: the default clean stage smooths a brightened pixel with its neighbours
    enhancer = Enhancer(out / "checkpoints" / "last.pt", device="cpu", denoise=0)
    assert min(enhancer.transition.alpha_table) == pytest.approx(0.0 if alpha_min is None else -0.3)
    with torch.no_grad():  # the policy's most darkening choice everywhere: its lowest alpha, always
        head = enhancer.policy.policy_head
        head.weight.zero_()
        head.bias.copy_(torch.where(torch.arange(head.bias.numel()) == 0, 50.0, 0.0))
    image = np.random.default_rng(2).uniform(0.0, 1.0, (40, 56, 3)).astype(np.float32)
    darker = (enhancer.enhance(image) < image - 1e-4).mean()
    if alpha_min is not None:
        assert darker > 0.5  # ReLLIE's table: alpha -0.3 darkens every mid-tone pixel
    else:
        assert darker == 0.0


def test_keep_evals_keeps_each_evaluations_policy(tmp_path):
    from experiments import lol_train
    from rlenhance.enhance import Enhancer

    out = lol_train.main([*TINY, "--conditioned", "--keep-evals", "--out", str(tmp_path / "run")])
    kept = sorted(p.name for p in (out / "checkpoints").glob("episode_*.pt"))
    assert kept == ["episode_000002.pt", "episode_000004.pt"]  # --eval-every 2 of 4 episodes
    last = Enhancer(out / "checkpoints" / "last.pt", device="cpu")
    early, final = (Enhancer(out / "checkpoints" / name, device="cpu") for name in kept)
    for name, param in final.policy.state_dict().items():  # the final evaluation's policy is last.pt's
        torch.testing.assert_close(param, last.policy.state_dict()[name])
    assert any(not torch.equal(p, early.policy.state_dict()[n]) for n, p in final.policy.state_dict().items())


def test_min_steps_trains_on_episodes_of_drawn_lengths():
    """--min-steps L --steps H: each training episode lasts L..H steps (drawn by the env at reset); the
    A3C runner follows the env's length, and evaluation and the checkpoint keep --test-steps."""
    from agents.a3c import A3C
    from experiments import lol_train
    from experiments.rl_common import make_agent

    args = lol_train.parse_args([*TINY, "--no-smooth-on-mean", "--min-steps", "1", "--steps", "4", "--test-steps", "3"])
    venv = envs.make_vec(lol_train.ENV_ID, num_envs=2, **lol_train.env_kwargs(args))
    assert (venv.task.min_episode_steps, venv.max_episode_steps) == (1, 4)
    agent = make_agent(args, venv, keys=("image", "original", "exposure_gap"), cond_film=args.cond_film)
    assert isinstance(agent, A3C)
    steps = [agent.train_episode(venv, seed=0 if e == 0 else None)["steps"] for e in range(12)]
    assert set(steps) == {1.0, 2.0, 3.0, 4.0}  # the episode's drawn length, one update at its end
    assert lol_train.inference_spec(args, venv.task).transition.steps == 3


def test_the_cap_is_the_shipped_models_recorded_for_inference_and_trained_with_only_when_asked(tmp_path):
    """By default the checkpoint carries the shipped model's cap (weighted by w_exposure) and the training env runs
    without it; --cap-in-training puts it in the env; inf: none."""
    from experiments import lol_train
    from rlenhance.enhance import Enhancer

    args = list(TINY)
    args[args.index("--episodes") + 1] = "2"
    shipped = Enhancer(device="cpu").spec.transition
    default = lol_train.parse_args(args)
    assert (default.max_overshoot, default.overshoot_weighted) == (shipped.max_overshoot, True)
    assert shipped.overshoot_reference == default.w_exposure
    assert lol_train.env_kwargs(default)["max_overshoot"] is None  # the shipped policy was trained without it
    assert not lol_train.env_kwargs(default)["overshoot_weighted"]
    trained = lol_train.env_kwargs(lol_train.parse_args([*args, "--cap-in-training"]))
    assert (trained["max_overshoot"], trained["overshoot_weighted"]) == (shipped.max_overshoot, True)
    path = lol_train.main([*args, "--out", str(tmp_path / "d")]) / "checkpoints" / "best.pt"
    spec = load_checkpoint(path)["extra"]["spec"].transition
    assert (spec.max_overshoot, spec.overshoot_reference) == (shipped.max_overshoot, default.w_exposure)
    fixed = [*args, "--max-overshoot", "0.05", "--no-overshoot-weighted"]
    path = lol_train.main([*fixed, "--out", str(tmp_path / "cap")]) / "checkpoints" / "best.pt"
    assert load_checkpoint(path)["extra"]["spec"].transition.max_overshoot == 0.05
    assert load_checkpoint(path)["extra"]["spec"].transition.overshoot_reference is None
    assert Enhancer(path, device="cpu").max_overshoot == 0.05
    assert lol_train.env_kwargs(lol_train.parse_args([*fixed, "--cap-in-training"]))["max_overshoot"] == 0.05
    none = lol_train.parse_args([*args, "--max-overshoot", "inf"])  # no cap: the weighting has nothing to weight
    assert none.max_overshoot is None and not none.overshoot_weighted
    assert lol_train.parse_args(["--preset", "rellie"]).max_overshoot is None  # ReLLIE has no cap
    for bad in ("1.5", "-0.1", "nan"):  # refused while parsing, before any training or file
        with pytest.raises(ValueError, match="--max-overshoot: expected a number with 0 <= --max-overshoot < 1"):
            lol_train.parse_args([*args, "--max-overshoot", bad])
    zero = lol_train.parse_args([*args, "--cond-encoding", "linear", "--w-exposure-range", "0", "1000"])
    assert not zero.overshoot_weighted and zero.max_overshoot == shipped.max_overshoot  # no weight to scale by: fixed
    for flag in ("--overshoot-weighted", "--cap-in-training"):
        with pytest.raises(ValueError, match=f"{flag}: .*needs --max-overshoot"):
            lol_train.parse_args([*args, "--max-overshoot", "inf", flag])


def test_blur_sigma_is_recorded_for_the_enhancer_and_the_rellie_preset_has_none(tmp_path):
    from experiments import lol_train

    args = list(TINY)
    args[args.index("--episodes") + 1] = "1"
    parsed = lol_train.parse_args(args)
    assert parsed.blur_sigma == 0.65  # the shipped model's, by default
    path = lol_train.main([*args, "--blur-sigma", "1.2", "--out", str(tmp_path / "b")]) / "checkpoints" / "best.pt"
    assert load_checkpoint(path)["extra"]["spec"].blur_sigma == 1.2
    assert lol_train.parse_args(["--preset", "rellie"]).blur_sigma == 0.0
    for bad in ("-1", "4", "nan"):
        with pytest.raises(ValueError, match="--blur-sigma: expected the blur's sigma in pixels"):
            lol_train.parse_args([*args, "--blur-sigma", bad])
