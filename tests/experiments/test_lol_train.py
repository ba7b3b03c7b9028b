"""Smoke tests of experiments.lol_train / lol_eval and the `rlenhance enhance` CLI on tiny settings; a failed
start, Ctrl-C and --resume of a finished run."""

import csv
import itertools
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
from experiments.runs import read_metrics, scalar_rows
from rlenhance.checkpoint import load_checkpoint
from rlenhance.io import load_image, save_image

ROOT = Path(__file__).resolve().parents[2]


def S(*pairs: str) -> list[str]:
    """``--set`` arguments: S("a.b=1", "c.d=2") -> ["--set", "a.b=1", "--set", "c.d=2"]."""
    return [x for pair in pairs for x in ("--set", pair)]


#: global-light varies every reward weight; one-value ranges fix the ones a test does not vary.
FIXED_WEIGHTS = S("ranges.w_exposure=300,300", "ranges.w_color=20,20", "ranges.w_spatial=1,1")
#: A run a test trains in seconds; TINY: in the shipped default's MDP (the defaults train in uneven light).
SMALL = ["--episodes", "4", "--eval-every", "2", "--batch", "2", "--crop", "32", "--steps", "2",
        "--test-steps", "2", "--eval-size", "48", "--width", "8", "--samples", "2", "--threads", "1",
        *S("task.min_steps=none")]
TINY = ["--preset", "global-light", *SMALL]


def run_module(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lol") / "run"
    proc = run_module("experiments.lol_train", *TINY, "--out", str(out))
    return out, proc


def test_run_folder_contents(tiny_run):
    out, proc = tiny_run
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["episodes"] == 4 and config["reward"]["conditioned"] is True
    rows = list(scalar_rows(out))
    metrics = {r["metric"] for r in rows}
    assert {"charts/episode_return", "losses/value_loss", "eval/psnr", "eval/ssim", "eval/uqi",
            "eval/exposure_loss", "eval/brightness"} <= metrics
    assert max(int(r["step"]) for r in rows) == 4
    # a conditioned run also checks --exposure customisation; 0.4 (the default setting) is among its targets
    last_eval = {r["metric"]: float(r["value"]) for r in rows if r["step"] == 4}
    assert config["reward"]["exposure_target"] == 0.4
    assert last_eval["eval/exposure_gap_max"] >= abs(last_eval["eval/brightness"] - 0.4) - 1e-6
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert (out / "samples" / "episode_000002.png").is_file() and (out / "samples" / "episode_000004.png").is_file()
    grid = load_image(out / "samples" / "episode_000004.png")
    assert grid.shape[1] > 3 * 48  # input | output | reference side by side
    # the embedded photos' tuning split holds one: the grid's second row is a training photo, and says so
    assert "sample grids: the 1 tuning image(s), then 1 training image(s) (unscored)" in proc.stdout
    assert 0.0 < last_eval["eval/top_action_share"] <= 1.0
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    assert last["extra"]["episode"] == 4 and "state" in last["extra"]
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    assert "state" not in best["extra"] and best["extra"]["spec"].conditioned is True
    # the run's config travels with its checkpoints
    assert {**best["extra"]["config"], "world_size": 1, "trainer": "experiments.lol_train"} == config
    assert "| episodes |" in proc.stdout and (out / "summary.md").is_file()
    # best.pt is picked on the tuning split and reported once on the validation split
    episode = best["extra"]["best_episode"]
    assert f"best.pt (episode {episode}, picked on the tuning split): validation psnr " in proc.stdout
    summary = (out / "summary.md").read_text()
    assert "| tune_images | val_images |" in summary and "| tune_psnr |" in summary and "| val_psnr |" in summary
    assert "best.pt picked on the tuning split: tune_*, best_*; val_*: best.pt on the validation split" in summary
    assert len([r for r in rows if r["metric"] == "eval/psnr"]) == 2 and last["extra"]["report"]["eval/psnr"] > 0
    # the defaults are the shipped model's recipe: conditioned on the exposure target and every weight
    assert dict(best["extra"]["spec"].setting_ranges) == {
        "exposure_target": (0.3, 0.8), "w_exposure": (100.0, 1000.0), "w_color": (20.0, 10000.0),
        "w_spatial": (1.0, 1000.0), "w_smooth": (0.1, 100.0)}
    task, reward = config["task"], config["reward"]
    assert task["alpha_channels"] == 1 and task["exposure_gap"] and reward["smooth_on_mean"]
    assert task["alpha_min"] == 0 and task["action"] == "discrete"  # resolved for the agent, and recorded
    assert reward["exposure_mean"] > 0 and reward["exposure_relative"]
    # it ends by saying where the model is and how to use it
    best_path = out / "checkpoints" / "best.pt"
    assert f"model: {best_path}" in proc.stdout
    assert f"use it: rlenhance enhance photo.jpg -o enhanced/ --checkpoint {best_path} --exposure 0.4" in proc.stdout
    assert "exposure 0.3..0.8, w_exposure 100..1000, w_color 20..10000" in proc.stdout


def test_the_sample_grid_shows_run_samples_images_when_the_tuning_split_holds_fewer():
    from experiments import lol_train
    from experiments.rl_common import make_agent

    cfg = lol_train.parse_args([*TINY, "--samples", "3"])
    device = torch.device("cpu")
    venv = envs.make_vec(lol_train.ENV_ID, num_envs=1, **lol_train.env_kwargs(cfg))
    policy = make_agent(cfg, venv, steps=cfg.task.steps, keys=("image", "original", "exposure_gap"),
                        cond_film=cfg.reward.conditioned).policy.eval()
    names, low, high = lol_train.load_validation(cfg, device)
    fill = lol_train.grid_fill(cfg, device, len(names))
    assert len(names) == 1 and len(fill.names) == 2  # the embedded photos' tuning split holds one
    scores, rows = lol_train.evaluate(policy, venv.task, cfg, low, high, fill=fill)
    assert len(rows) == 3 and torch.equal(rows[0][0], low[0]) and torch.equal(rows[1][0], fill.low[0])
    alone = lol_train.evaluate(policy, venv.task, cfg, low, high)[0]
    assert {k: v for k, v in scores.items() if k != "eval/ms_per_image"} == \
        {k: v for k, v in alone.items() if k != "eval/ms_per_image"}  # the training photos are not scored
    assert lol_train.grid_fill(lol_train.parse_args([*TINY, "--samples", "1"]), device, 1) is None


@pytest.mark.slow
def test_resume_continues_to_the_same_weights(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    constant = [*TINY, *S("a3c.lr_decay=none")]  # the poly schedule follows --episodes, which the first half shortens
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
    steps = [int(r["step"]) for r in scalar_rows(split) if r["metric"] == "charts/episode_return"]
    assert steps == [1, 2, 3, 4]


@pytest.mark.slow
def test_new_run_refuses_a_used_folder_and_resume_needs_a_checkpoint(tiny_run, tmp_path):
    out, _ = tiny_run
    proc = run_module("experiments.lol_train", *TINY, "--out", str(out), check=False)
    assert proc.returncode != 0 and "--resume" in proc.stderr
    proc = run_module("experiments.lol_train", *TINY, "--out", str(tmp_path / "none"), "--resume", check=False)
    assert proc.returncode != 0 and "no checkpoint" in proc.stderr


@pytest.mark.slow
def test_help_names_the_common_flags_and_every_setting_is_in_print_config():
    proc = run_module("experiments.lol_train", "--help")
    for flag in ("--data", "--episodes", "--crop", "--batch", "--steps", "--device", "--seed", "--out", "--resume",
                 "--preset", "--config", "--set", "--print-config", "shipped:", "rellie:"):
        assert flag in proc.stdout, flag
    printed = json.loads(run_module("experiments.lol_train", "--print-config").stdout)
    for section, key in (("reward", "w_exposure"), ("reward", "conditioned"), ("a3c", "gamma"), ("a3c", "lr"),
                         ("model", "downscale"), ("a3c", "workers"), ("ranges", "w_smooth")):
        assert key in printed[section], (section, key)


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
    for method in ("rlenhance (ours)", "auto-gamma", "histeq", "clahe", "global-curve", "ours, exposure 0.4",
                   "ours, exposure 0.7"):
        assert method in proc.stdout
    with open(tmp_path / "r.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 7
    tuned = run_module("experiments.lol_eval", "--data", str(tmp_path / "pairs"), "--split", "tune", "--no-classical",
                       "--checkpoint", str(out / "checkpoints" / "best.pt"), "--threads", "1")
    assert f"1 image(s) of {tmp_path / 'pairs'} (split tune)" in tuned.stdout  # the tuning split: one of 3 scenes
    gaps = [np.mean([float(r["brightness"]) for r in rows if r["method"] == f"ours, exposure {t}"]) - t
            for t in (0.4, 0.7)]
    assert f"0.4: {gaps[0]:+.3f}, 0.7: {gaps[1]:+.3f}; largest |gap| {max(map(abs, gaps)):.3f}" in proc.stdout
    from experiments import lol_eval

    (tmp_path / "refs").mkdir()
    (tmp_path / "pairs" / "high").rename(tmp_path / "refs" / "high")  # references alone; then dark photos alone
    for data, said in ((tmp_path / "refs", r"001_1.png has no dark capture \(low/\); references alone .*compare"),
                       (tmp_path / "pairs" / "low", r"001_1.png has no reference \(high/\)")):
        with pytest.raises(ValueError, match=said):
            lol_eval.main(["--data", str(data), "--split", "all", "--no-classical", "--threads", "1"])


@pytest.mark.slow
def test_asynchronous_workers_log_every_episode_and_are_reproducible(tmp_path):
    weights = []
    for name in ("a", "b"):
        out = tmp_path / name
        run_module("experiments.lol_train", *TINY, *S("a3c.workers=2"), "--out", str(out))
        assert [r["step"] for r in read_metrics(out / "train.csv")] == [1, 2, 3, 4]  # each episode as it ends
        last = load_checkpoint(out / "checkpoints" / "last.pt")
        assert last["extra"]["episode"] == 4
        weights.append(last["state_dict"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_sac_agent_trains_continuous_alphas_the_enhancer_applies(tmp_path):
    from experiments import lol_train
    from rlenhance.enhance import Enhancer

    args = list(SMALL)  # global-light's gamma is A3C's
    args[args.index("--episodes") + 1] = "2"
    out = lol_train.main([*args, "--agent", "sac", *S("sac.learning_starts=2", "sac.batch=2"),
                          "--out", str(tmp_path / "sac")])
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    assert best["extra"]["algorithm"] == "sac" and best["extra"]["spec"].transition.action_type == "continuous"
    assert best["arch"]["kwargs"]["bounded_mean"] is False and best["arch"]["kwargs"]["n_actions"] is None
    config = json.loads((out / "config.json").read_text())
    assert config["task"]["action"] == "continuous" and config["sac"]["gamma"] < 1
    dark = np.full((24, 40, 3), 0.1, np.float32)
    result = Enhancer(out / "checkpoints" / "best.pt", device="cpu").enhance(dark)
    assert result.shape == dark.shape and np.isfinite(result).all()


def test_exposure_gap_and_smooth_on_mean_reach_the_checkpoint_and_the_enhancer(tmp_path):
    from experiments import lol_train
    from rlenhance.enhance import Enhancer

    args = list(TINY)
    args[args.index("--episodes") + 1] = "2"
    out = lol_train.main([*args, *S("task.policy_side=48", "model.downscale=4"), "--out", str(tmp_path / "gap")])
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    assert best["extra"]["spec"].transition.observe_exposure_gap is True
    assert best["arch"]["kwargs"]["in_channels"] == 7  # image, original, exposure gap
    assert best["arch"]["kwargs"]["out_channels"] == 1  # one alpha map for R, G and B
    enhancer = Enhancer(out / "checkpoints" / "best.pt", device="cpu")
    assert best["extra"]["spec"].max_side == enhancer.max_side == 48  # trained at 48 px, runs at 48 px
    # the default setting reaches the policy as the cond it was evaluated with in training (with
    # --smooth-on-mean the env keeps w_smooth as a setting and hands it to the A3C loss)
    run_cfg = lol_train.parse_args(["--config", str(out)])
    task = envs.make_vec(lol_train.ENV_ID, num_envs=1, **lol_train.env_kwargs(run_cfg)).task
    assert torch.allclose(enhancer.cond(), task.setting_cond(1))
    dark = np.random.default_rng(0).uniform(0.02, 0.2, (24, 40, 3)).astype(np.float32)
    low, high = enhancer.enhance(dark, exposure=0.4), enhancer.enhance(dark, exposure=0.7)
    assert not np.array_equal(low, high)  # the target reaches the policy through the gap plane
    gray = np.repeat(dark[..., :1], 3, axis=2)
    out_gray = enhancer.enhance(gray)  # one curve for all channels: a gray picture stays gray
    assert np.array_equal(out_gray[..., 0], out_gray[..., 1]) and np.array_equal(out_gray[..., 1], out_gray[..., 2])
    with pytest.raises(ValueError, match="reward.smooth_on_mean: needs a3c with discrete actions"):
        lol_train.main([*SMALL, "--agent", "sac", *S("task.action=discrete"), "--out", str(tmp_path / "sac")])
    assert not (tmp_path / "sac").exists()


def test_split_seed_holds_out_the_same_images_across_seeds():
    from experiments import lol_train

    def val_names(*argv):
        cfg = lol_train.parse_args(["--threads", "1", "--eval-size", "32", *argv])
        return lol_train.load_validation(cfg, torch.device("cpu"))[0]

    base = val_names("--seed", "0")
    other = next(s for s in range(1, 20) if val_names("--seed", str(s)) != base)  # a seed whose own split differs
    assert val_names("--seed", str(other), "--split-seed", "0") == base
    with pytest.raises(ValueError, match="run.split_seed -1"):
        lol_train.parse_args(["--split-seed", "-1"])


@pytest.mark.parametrize("policy_side", [0, 96])
def test_validation_images_of_other_aspect_ratios_batch(policy_side):
    """Each split of the embedded photos (aspect ratios 1.0-1.5) stacks, also when --policy-side
    makes them smaller than --eval-size (64x96 next to 65x96 used to fail to stack)."""
    from experiments import lol_train

    for seed, split in itertools.product(range(4), ("tune", "val")):
        args = lol_train.parse_args(["--threads", "1", "--seed", str(seed), *S(f"task.policy_side={policy_side}")])
        names, low, high = lol_train.load_validation(args, torch.device("cpu"), split=split)
        assert low.shape == high.shape and low.shape[:2] == (len(names), 3)
        if policy_side:  # never upscaled: the longer side is the policy's (a square photo alone: both)
            assert max(low.shape[-2:]) == policy_side and min(low.shape[-2:]) <= policy_side
        else:
            assert low.shape[-2:] == (256, 256)


def test_validation_images_of_one_size_keep_their_whole_frame(monkeypatch):
    """Paired images all of one size (e.g. SICE at --policy-side 128: 85x128) are not cropped."""
    from experiments import lol_train

    args = lol_train.parse_args(["--threads", "1", "--data", str(ROOT / "tests" / "no_such_folder")])
    images = [{"name": f"im{i}", "low": torch.rand(3, 85, 128), "high": torch.rand(3, 85, 128)} for i in range(3)]
    monkeypatch.setattr(lol_train, "open_dataset", lambda *a, **kw: images)
    names, low, high = lol_train.load_validation(args, torch.device("cpu"))
    assert names == ["im0", "im1", "im2"] and low.shape == high.shape == (3, 3, 85, 128)
    torch.testing.assert_close(high[1], images[1]["high"])


@pytest.mark.slow
def test_lr_decay_poly_follows_pixelrl_schedule(tmp_path):
    out = tmp_path / "decay"
    run_module("experiments.lol_train", *TINY, *S("a3c.lr_decay=poly", "a3c.lr=0.001"), "--out", str(out))
    lrs = {int(r["step"]): float(r["value"]) for r in scalar_rows(out) if r["metric"] == "charts/lr"}
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
                         r"continue with the same settings and --resume", proc.message)
    assert match, proc.message
    episode = int(match[1])
    last = load_checkpoint(out / "checkpoints" / "last.pt")["extra"]
    assert last["episode"] == episode >= 1 and last["eval_episode"] == 0 and "state" in last
    lol_train.main([*argv, "--episodes", str(episode + 1), "--out", str(out), "--resume"])
    assert load_checkpoint(out / "checkpoints" / "last.pt")["extra"]["episode"] == episode + 1
    rows = list(scalar_rows(out))
    assert [int(r["step"]) for r in rows if r["metric"] == "charts/episode_return"] == list(range(1, episode + 2))
    assert [int(r["step"]) for r in rows if r["metric"] == "eval/psnr"] == [episode + 1]
    assert "| episodes |" in (out / "summary.md").read_text()


def test_resume_of_a_finished_run_changes_nothing(tiny_run, capsys):
    """summary.md keeps its evaluation columns; no file of the run changes, no TensorBoard file is added."""
    from experiments import lol_train

    out, _ = tiny_run
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert lol_train.main([*TINY, "--out", str(out), "--resume"]) == out
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    assert "already finished at episode 4; nothing to do; raise the total to train on" in capsys.readouterr().out


def test_resume_refuses_settings_that_differ_and_names_them(tiny_run):
    """--resume continues a run with its own settings: another reward weight is refused, naming it and the
    run's value; the episode total may change."""
    from experiments import lol_train

    out, _ = tiny_run
    with pytest.raises(ValueError, match=r"reward.w_exposure 200.0 \(the run has 300.0\)"):
        lol_train.main([*TINY, *S("reward.w_exposure=200"), "--out", str(out), "--resume"])


# --- presets, per-knob ranges -------------------------------------------------------------------------
def test_rellie_preset_sets_rellies_configuration_and_later_flags_override_it():
    from experiments import lol_train

    cfg = lol_train.parse_args(["--preset", "rellie"])
    t, r, a3c = cfg.task, cfg.reward, cfg.a3c
    assert (t.channel_coupling, t.damping, a3c.gamma, r.terms) == (0.9, 0.2, 1.05, ("color_ratio=20",))
    assert (r.w_exposure, r.w_smooth, r.w_spatial, r.w_color, r.exposure_target) == (80, 200, 1, 0, 0.6)
    assert (t.alpha_channels, t.steps, t.test_steps, t.alpha_mode) == (3, 10, 6, "argmax")
    assert not r.conditioned and not r.smooth_on_mean
    # ReLLIE's full alpha table and plain patch exposure term, whatever our recipe's defaults are
    assert (t.alpha_min, r.exposure_mean, r.exposure_relative) == (-0.3, 0.0, False)
    assert lol_train.env_kwargs(cfg)["weight_ranges"] == {}  # an unconditioned policy draws no weights
    assert lol_train.parse_args(["--preset", "rellie", *S("task.damping=0.1")]).task.damping == 0.1
    assert lol_train.parse_args(["--preset=rellie", "--episodes", "7"]).run.episodes == 7
    assert lol_train.parse_args([]).task.channel_coupling == 0.0
    with pytest.raises(ValueError, match=r"ranges.w_color: reward.conditioned is false"):
        lol_train.parse_args(["--preset", "rellie", *S("ranges.w_color=1,10")])  # refused, not ignored
    # the preset's A3C settings do not apply to SAC: left out, at their defaults; a user's own is refused
    assert lol_train.parse_args(["--preset", "rellie", "--agent", "sac"]).a3c == lol_train.Config().a3c
    with pytest.raises(ValueError, match=r"^a3c.lr: the agent is sac"):
        lol_train.parse_args(["--preset", "rellie", "--agent", "sac", *S("a3c.lr=0.01")])


def test_shipped_sac_preset_is_the_shipped_recipe_with_sac_to_the_episodes_end():
    from experiments import config, lol_train
    from experiments.rl_common import sac_config

    cfg = lol_train.parse_args(["--preset", "shipped-sac"])
    assert cfg.agent == "sac" and cfg.task.action == "continuous"
    assert (sac_config(cfg).gamma, sac_config(cfg).end_is_terminal) == (1.0, True)
    shipped = config.flatten(config.to_dict(lol_train.parse_args(["--preset", "shipped"])))
    differ = {k for k, v in config.flatten(config.to_dict(cfg)).items() if shipped[k] != v}
    assert differ == {"agent", "task.action", "task.alpha_min", "sac.gamma", "sac.end_is_terminal", "a3c.gamma"}
    # switching the agent leaves the other agent's settings out: back to the shipped recipe, A3C's from the preset
    assert lol_train.parse_args(["--preset", "shipped-sac", "--agent", "a3c"]) == lol_train.parse_args(
        ["--preset", "shipped"])
    assert lol_train.parse_args(["--preset", "shipped", "--agent", "sac", *S("sac.gamma=1", "sac.end_is_terminal=1")]
                                ) == cfg


def test_a_preset_run_with_the_other_agent_re_runs_and_resumes_under_its_preset(tmp_path):
    """A run records the unused agent's section at its defaults: --config RUN and --resume read it back under
    the preset that sets that section otherwise."""
    from experiments import config, lol_train

    for i, argv in enumerate((["--preset", "shipped-sac"], ["--preset", "shipped-sac", "--agent", "a3c"],
                              ["--preset", "shipped", "--agent", "sac"])):
        out = tmp_path / str(i)
        cfg = lol_train.parse_args([*argv, "--out", str(out)])
        out.mkdir()
        (out / "config.json").write_text(json.dumps({**config.to_dict(cfg), "trainer": "experiments.lol_train"}))
        assert lol_train.parse_args([*argv, "--config", str(out)]) == cfg
        resumed = lol_train.parse_args([*argv, "--resume", "--out", str(out)])
        assert resumed == config.replace_path(cfg, {"run.resume": True})


def test_rellie_preset_run_records_the_coupling_the_enhancer_applies(tmp_path):
    from experiments import lol_train
    from rlenhance.enhance import Enhancer

    args = list(TINY)
    args[args.index("--episodes") + 1] = "2"
    out = lol_train.main([*args, "--preset", "rellie", "--crop", "24", *S("task.min_steps=none"),
                          "--out", str(tmp_path / "rellie")])
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
    out = lol_train.main([*args, *S("reward.smooth_on_mean=false", "reward.w_color=20", "ranges.w_color=5,50",
                                    "reward.w_smooth=40", "ranges.w_smooth=10,400", "ranges.w_exposure=300,300",
                                    "ranges.w_spatial=1,1"), "--out", str(tmp_path / "knobs")])
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
    out = lol_train.main([*args, *S("reward.w_smooth=100", "ranges.w_smooth=20,500"), *FIXED_WEIGHTS,
                          "--out", str(tmp_path / "smooth")])
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    assert last["extra"]["state"]["config"]["action_penalty"] == lol_train.SMOOTH_ON_MEAN["action_penalty"] == 1.0
    spec = last["extra"]["spec"]
    assert spec.setting["w_smooth"] == 100.0 and dict(spec.setting_ranges)["w_smooth"] == (20.0, 500.0)
    run_cfg = lol_train.parse_args(["--config", str(out)])
    venv = envs.make_vec(lol_train.ENV_ID, num_envs=2, **lol_train.env_kwargs(run_cfg))
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
    """The weights are log-encoded: the checkpoint records which fields are, and the Enhancer encodes
    any setting in the ranges exactly as the training env did; each range's ends are -1 and +1."""
    from experiments import lol_train
    from rlenhance.enhance import Enhancer

    args = list(TINY)
    args[args.index("--episodes") + 1] = "1"
    args[args.index("--eval-every") + 1] = "1"
    ranges = {"w_exposure": (100.0, 600.0), "w_color": (1.0, 100.0), "w_spatial": (0.5, 20.0),
              "w_smooth": (2.0, 500.0)}
    flags = S(*(f"ranges.{name}={lo},{hi}" for name, (lo, hi) in ranges.items()))
    out = lol_train.main([*args, *S("ranges.exposure=0.3,0.8", "reward.exposure_mean=2", "reward.w_color=10"), *flags,
                          "--out", str(tmp_path / "log")])
    spec = load_checkpoint(out / "checkpoints" / "best.pt")["extra"]["spec"]
    assert spec.transition.cond_encodings == ("linear", "log", "log", "log", "log")
    enhancer = Enhancer(out / "checkpoints" / "best.pt", device="cpu")
    assert enhancer.setting_ranges == {"exposure": (0.3, 0.8), **ranges}
    task = envs.make_vec(lol_train.ENV_ID, num_envs=1,
                         **lol_train.env_kwargs(lol_train.parse_args(["--config", str(out)]))).task
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
    (["--preset", "rellie", *S("ranges.w_color=1,10")], "ranges.w_color: reward.conditioned is false"),
    (S("ranges.w_color=1,2,3"), "ranges.w_color: expected 2 values"),
    (S("ranges.w_color=30,40"), r"ranges.w_color 30 40: must hold reward.w_color 20"),
    (S("task.channel_coupling=0.9"), "task.alpha_channels 3"),
    (S("task.alpha_min=1.0"), "task.alpha_min 1: expected a value in"),
    (["--preset", "shipped-sac", *S("task.alpha_min=0")], "continuous actions"),
    (["--agent", "sac", *S("a3c.entropy=0.5")], "a3c.entropy: the agent is sac"),
    (S("sac.batch=4"), "sac.batch: the agent is a3c"),
    (S("task.min_steps=3"), r"task.min_steps 3: expected an integer from 1 to task.steps \(2\)"),
    (S("task.min_steps=0"), r"task.min_steps 0: expected an integer from 1 to task.steps \(2\)"),
    (S("reward.w_expo=3"), "unknown setting 'reward.w_expo'"),
    (S("task.alpha_mode=best"), "task.alpha_mode: 'best' is not one of mean, argmax"),
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

    extra = [] if alpha_min is None else S(f"task.alpha_min={alpha_min}")
    out = lol_train.main([*TINY, *extra, "--out", str(tmp_path / "run")])
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

    out = lol_train.main([*TINY, "--keep-evals", "--out", str(tmp_path / "run")])
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

    args = lol_train.parse_args([*TINY, *S("reward.smooth_on_mean=false", "task.min_steps=1"), "--steps", "4",
                                 "--test-steps", "3"])
    venv = envs.make_vec(lol_train.ENV_ID, num_envs=2, **lol_train.env_kwargs(args))
    assert (venv.task.min_episode_steps, venv.max_episode_steps) == (1, 4)
    agent = make_agent(args, venv, steps=args.task.steps, keys=("image", "original", "exposure_gap"),
                       cond_film=True)
    assert isinstance(agent, A3C)
    steps = [agent.train_episode(venv, seed=0 if e == 0 else None)["steps"] for e in range(12)]
    assert set(steps) == {1.0, 2.0, 3.0, 4.0}  # the episode's drawn length, one update at its end
    assert lol_train.inference_spec(args, venv.task).transition.steps == 3


def test_the_cap_is_the_shipped_models_recorded_for_inference_never_in_training(tmp_path):
    """By default the checkpoint carries the shipped model's cap (weighted by w_exposure) and the training env runs
    without it; none (or inf): no cap."""
    from experiments import lol_train
    from rlenhance.enhance import Enhancer

    args = list(TINY)
    args[args.index("--episodes") + 1] = "2"
    shipped = Enhancer(device="cpu").spec.transition
    default = lol_train.parse_args(args)
    assert default.task.max_overshoot == shipped.max_overshoot and shipped.overshoot_reference is not None
    training = envs.make_vec(lol_train.ENV_ID, num_envs=1, device="cpu", **lol_train.env_kwargs(default))
    assert training.task.transition.max_overshoot is None  # the shipped policy was trained without it
    out = lol_train.main([*args, *S("task.max_overshoot=0.05"), "--out", str(tmp_path / "cap")])
    path = out / "checkpoints" / "best.pt"
    spec = load_checkpoint(path)["extra"]["spec"].transition
    assert (spec.max_overshoot, spec.overshoot_reference is not None) == (0.05, True)
    assert Enhancer(path, device="cpu").max_overshoot == 0.05
    for spelling in ("inf", "none"):
        assert lol_train.parse_args([*args, *S(f"task.max_overshoot={spelling}")]).task.max_overshoot is None
    assert lol_train.parse_args(["--preset", "rellie"]).task.max_overshoot is None  # ReLLIE has no cap
    for bad in ("1.5", "-0.1", "nan"):  # refused while parsing, before any training or file
        with pytest.raises(ValueError, match="task.max_overshoot: (expected a number with 0 <= task.max_overshoot < 1"
                                             "|got NaN)"):
            lol_train.parse_args([*args, *S(f"task.max_overshoot={bad}")])
    with pytest.raises(ValueError, match="task.max_overshoot: the cap is weighted by the exposure weight"):
        lol_train.parse_args([*args, *S("ranges.w_exposure=0,1000")])


def test_a_training_step_lifts_by_the_uncapped_curve_and_earns_the_drop_of_the_loss():
    """One step of global-light's training env with a fixed action map on a grey crop at the default setting:
    the curve LE(s) = s + alpha s (1 - s) with alpha 1 lifts 0.3 to 0.51, past the cap's 0.44 (0.4 + 0.04), which
    training never applies; the reward is the drop of the loss, here its exposure terms alone (a grey, flat image
    has no colour or spatial loss): w_exposure (1 + exposure_mean) ((0.3 - 0.4)^2 - (0.51 - 0.4)^2)."""
    from experiments import lol_train

    cfg = lol_train.parse_args(["--preset", "global-light"])
    r = cfg.reward
    venv = envs.make_vec(lol_train.ENV_ID, num_envs=2, device="cpu", **{**lol_train.env_kwargs(cfg), "crop": 16})
    venv.reset(seed=0, options={"low": torch.full((2, 3, 16, 16), 0.3), "cond": venv.task.setting_cond(2)})
    top = len(venv.task.action_values) - 1
    assert venv.task.action_values[top] == 1.0
    obs, reward, *_, info = venv.step(torch.full((2, 1, 16, 16), top))
    assert torch.allclose(obs["image"], torch.full_like(obs["image"], 0.51), atol=1e-6)
    e = r.exposure_target
    expected = r.w_exposure * (1.0 + r.exposure_mean) * ((0.3 - e) ** 2 - (0.51 - e) ** 2)
    assert torch.allclose(info["reward_map"], torch.full_like(info["reward_map"], expected), atol=1e-3)
    assert torch.allclose(torch.as_tensor(reward, dtype=torch.float32), torch.full((2,), expected), atol=1e-3)


def test_the_blur_is_no_setting():
    """Nothing blurs an enhanced image: no setting records a blur."""
    from experiments import lol_train

    with pytest.raises(ValueError, match="blur_sigma"):
        lol_train.parse_args([*TINY, *S("task.blur_sigma=0.65")])


def test_the_sample_grid_shows_the_alpha_maps_of_the_first_and_last_step_and_evaluation_shows_progress():
    from experiments import lol_train
    from experiments.grids import heatmap
    from experiments.rl_common import make_agent

    cfg = lol_train.parse_args([*TINY, "--preset", "rellie", *S("task.policy_side=48")])
    venv = envs.make_vec(lol_train.ENV_ID, num_envs=1, **lol_train.env_kwargs(cfg))
    _, low, high = lol_train.load_validation(cfg, torch.device("cpu"), split="val")  # two images
    policy = make_agent(cfg, venv, steps=cfg.task.steps, keys=("image", "original", "exposure_gap"),
                        cond_film=cfg.reward.conditioned).policy.eval()
    shown = []  # the evaluation's progress: every batch of images under a bar
    _, rows = lol_train.evaluate(policy, venv.task, cfg, low, high,
                                 track=lambda items, desc: shown.append((desc, len(items))) or items)
    assert shown == [("validation", -(-low.shape[0] // cfg.run.eval_batch))]
    assert lol_train.grid_captions(cfg) == ("input", "output", "reference", "alpha, step 1", "alpha, step 2", "key")
    assert lol_train.grid_captions(cfg, references=False)[:3] == ("input", "output", "alpha, step 1")
    assert [len(row) for row in rows] == [6, 5]  # --samples 2; the key after the first row
    _, maps = lol_train.rollout_at(policy, venv.task, cfg, low[:1])
    low_alpha, high_alpha = lol_train.inference_spec(cfg, venv.task).transition.alpha_range
    assert (low_alpha, high_alpha) == pytest.approx((-0.3, 1.0))  # ReLLIE's table
    torch.testing.assert_close(rows[0][3], heatmap(maps[0][0].mean(0), low_alpha, high_alpha))
    torch.testing.assert_close(rows[0][4], heatmap(maps[-1][0].mean(0), low_alpha, high_alpha))


def test_rellie_evaluates_one_image_a_rollout_with_the_scores_of_one_batch():
    """--preset rellie rolls out one image at a time (the fastest on a CPU, less memory at full
    resolution): its outputs and scores are exactly those of all the images in one batch."""
    from experiments import lol_train
    from experiments.rl_common import make_agent

    fast = lol_train.parse_args([*TINY, "--preset", "rellie"])
    assert fast.run.eval_batch == 1
    whole = lol_train.parse_args([*TINY, "--preset", "rellie", *S("run.eval_batch=64")])
    venv = envs.make_vec(lol_train.ENV_ID, num_envs=1, **lol_train.env_kwargs(fast))
    _, low, high = lol_train.load_validation(fast, torch.device("cpu"), split="val")  # two images
    assert low.shape[0] > 1
    torch.manual_seed(0)
    policy = make_agent(fast, venv, steps=fast.task.steps, keys=("image", "original", "exposure_gap"),
                        cond_film=fast.reward.conditioned).policy.eval()
    with torch.no_grad():  # alphas that differ over the image and between the images
        policy.policy_head.weight.normal_(0, 1.0)
        outputs = [lol_train.rollout_at(policy, venv.task, cfg, low)[0] for cfg in (fast, whole)]
    assert torch.equal(*outputs) and not torch.equal(outputs[0], low)
    scores = [lol_train.evaluate(policy, venv.task, cfg, low, high)[0] for cfg in (fast, whole)]
    assert {k: v for k, v in scores[0].items() if k != "eval/ms_per_image"} == \
        {k: v for k, v in scores[1].items() if k != "eval/ms_per_image"}


@pytest.mark.parametrize("preset", [[], ["--preset", "rellie"]])
def test_validation_in_batches_scores_as_one_batch(preset):
    """``run.eval_batch`` images a rollout (less memory at ReLLIE's full resolution): the scores of one
    batch of every image."""
    from experiments import lol_train
    from experiments.rl_common import make_agent

    argv = [*TINY, *preset, *S("task.policy_side=48", "model.downscale=1")]
    one, whole = (lol_train.parse_args([*argv, *S(f"run.eval_batch={n}")]) for n in (1, 64))
    venv = envs.make_vec(lol_train.ENV_ID, num_envs=1, **lol_train.env_kwargs(one))
    names, low, high = lol_train.load_validation(one, torch.device("cpu"), split="val")  # two images
    assert len(names) > 1
    policy = make_agent(one, venv, steps=one.task.steps, keys=("image", "original", "exposure_gap"),
                        cond_film=one.reward.conditioned).policy.eval()
    a, b = (lol_train.evaluate(policy, venv.task, cfg, low, high)[0] for cfg in (one, whole))
    for key in ("eval/psnr", "eval/ssim", "eval/brightness", "eval/exposure_loss"):
        assert a[key] == pytest.approx(b[key], abs=1e-5), key


def test_a_run_with_uneven_light_validates_on_relit_images_against_the_global_curve(tmp_path):
    """task.uneven adds the relit tuning images' PSNR (after GT-mean alignment) and its gain over
    rlenhance.baselines.global_curve to the evaluation, and joins that share of it to what picks best.pt."""
    from experiments import lol_train
    from rlenhance import metrics

    out = tmp_path / "run"
    lol_train.main([*TINY, *S("task.uneven=0.5", "run.samples=0"), "--out", str(out)])
    rows = read_metrics(out / "metrics.csv")
    assert all("eval/uneven_psnr" in row and "eval/uneven_gain" in row for row in rows)
    cfg = lol_train.check(lol_train.parse_args([*TINY, *S("task.uneven=0.5")]))
    relit = lol_train.load_uneven(cfg, torch.device("cpu"))
    assert relit.low.mean() < relit.high.mean()
    unchanged = metrics.psnr(metrics.gt_mean_align(relit.low, relit.high), relit.high).mean()
    assert relit.global_curve_psnr != pytest.approx(float(unchanged), abs=1e-3)  # the curve did something
    row = rows[-1]
    assert float(row["eval/uneven_gain"]) == pytest.approx(float(row["eval/uneven_psnr"]) - relit.global_curve_psnr,
                                                            abs=2e-3)
    scores = {"eval/psnr": 20.0, "eval/exposure_loss": 0.1}
    assert lol_train.best_score({**scores, "eval/uneven_psnr": 18.0}, 0.5) == 19.0
    assert lol_train.best_score(scores, 0.5) == 20.0
    assert lol_train.load_uneven(lol_train.check(lol_train.parse_args(TINY)), torch.device("cpu")) is None


@pytest.mark.parametrize("preset, env_id", [(None, "rlenhance/UnevenLight-v0"),
                                            ("global-light", "rlenhance/LowLight-v1")])
def test_the_default_run_and_global_light_train_in_their_envs_defaults_but_for_crop_and_episode_lengths(preset,
                                                                                                         env_id):
    from experiments.lol_train import ENV_ID, PRESETS, Config, check, env_kwargs

    assert ENV_ID == "rlenhance/UnevenLight-v0"
    defaults, kwargs = envs.env_defaults(env_id), env_kwargs(check(PRESETS[preset]() if preset else Config()))
    assert set(kwargs) <= set(defaults)  # every setting the trainer passes is one the env takes
    # the trainer's own choices: smaller crops, episodes of 4-10 steps
    assert {name: kwargs[name] for name in kwargs if kwargs[name] != defaults[name]} == {
        "crop": 80, "min_episode_steps": 4}


def test_the_default_run_on_dark_photos_alone_is_refused_naming_the_preset_that_takes_them(tmp_path):
    """The default relights references: a folder of dark photos without them is refused before anything is
    written, naming the preset that trains on them and the layout of references alone, which it trains on."""
    from experiments import lol_train

    for i in range(6):
        save_image(tmp_path / "dark" / f"n{i}.png", np.full((40, 40, 3), 0.05 * (i + 1), np.float32))
        save_image(tmp_path / "lit" / "high" / f"n{i}.png", np.full((40, 40, 3), 0.1 * (i + 3), np.float32))
    with pytest.raises(ValueError, match=r"task.uneven 1: .*n\d.png has none \(.*in a high/ folder\).*--preset "
                                         r"global-light"):
        lol_train.main([*SMALL, "--data", str(tmp_path / "dark"), "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match=r"terms: needs references .* the reward is the distance to them"):
        lol_train.main([*SMALL, *S("task.uneven=0"), "--data", str(tmp_path / "dark"), "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()
    lol_train.main([*TINY, "--data", str(tmp_path / "dark"), "--out", str(tmp_path / "run")])
    assert (tmp_path / "run" / "checkpoints" / "best.pt").exists()
    for args in (SMALL, TINY):  # references alone: relit, or darkened evenly
        out = tmp_path / f"lit_{args[0]}"
        lol_train.main([*args, "--data", str(tmp_path / "lit"), "--out", str(out)])
        assert (out / "checkpoints" / "best.pt").exists()
