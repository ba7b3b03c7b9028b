"""experiments.rse_train on tiny data: the run folder (per-round table, pictures, checkpoints), the
denoiser it ships (load_rse), a blind denoiser (several --sigma levels), a one-level checkpoint written
before the spec recorded levels, Ctrl-C with --resume (the VAE continues exactly), bad arguments."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.distributed import Ranks
from envs.base import episode_rows
from experiments import rse, rse_train
from experiments.compare.methods import rse_method
from experiments.process import Interrupted
from experiments.runs import scalar_rows
from rlenhance.checkpoint import RSEDenoiserSpec, SupervisedSpec, load_checkpoint, save_checkpoint
from rlenhance.denoisers import DenoisePredictor, load_denoiser
from rlenhance.errors import CheckpointError
from rlenhance.io import save_image
from rlenhance.models.ffdnet import FFDNet
from rlenhance.models.rse import rse_blend
from rlenhance.rse import load_rse

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--rounds", "2", "--vae-steps", "6", "--episodes", "2", "--eval-every", "1", "--samples", "1",
        "--threads", "1", "--device", "cpu", *(item for setting in (
            "rse.vae_finetune_steps=3", "rse.vae_batch=16", "rse.hidden=16", "rse.latent_dim=4", "rse.patch=8",
            "rse.stride=4", "rse.bank_size=64", "rse.clusters=4", "rse.neighbours=2", "rse.pool_crops=4",
            "rse.pool_size=24", "sac.batch=2", "sac.crop=16", "sac.width=4", "sac.update_batch=2",
            "sac.learning_starts=0", "sac.updates=1", "rse.min_gain=-100") for item in ("--set", setting))]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("rse_data")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:32, 0:32] / 32.0
    for k in range(3):
        img = np.stack([0.2 + 0.5 * x, 0.3 + 0.4 * y, 0.5 + 0.1 * rng.random((32, 32))], axis=-1)
        save_image(root / "train" / f"train{k}.png", img.astype(np.float32))
    save_image(root / "test" / "held.png", np.stack([0.6 - 0.4 * x, 0.2 + 0.6 * y, 0.4 + 0 * x], -1).astype(np.float32))
    return root


def resolved(argv):
    """The checked flat settings of a command line."""
    return rse.resolve(rse.settings(rse_train.parse(list(argv))))


def tiny(folders, out, *extra):
    return [*TINY, "--data", str(folders / "train"), "--test", str(folders / "test"), "--out", str(out), *extra]


@pytest.mark.slow
def test_run_folder_per_round_table_pictures_and_the_shipped_denoiser(folders, tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "experiments.rse_train", *tiny(folders, out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = (out / "summary.md").read_text()
    assert "RSE-RL round 1" in summary and "RSE-RL round 2" in summary and "noisy input" in summary
    assert "bilateral" in summary and "psnr | ssim | uqi" in summary
    with open(out / "rounds.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["round"] for r in rows] == ["1", "2"] and all(float(r["psnr"]) > 0 for r in rows)
    for name in ("round1_clusters", "round1_neighbours", "round1_heldout", "round2_clusters"):
        assert (out / "samples" / f"{name}.png").is_file(), name
    metrics = {r["metric"] for r in scalar_rows(out)}
    assert {"losses/vae_loss", "eval/psnr", "eval/uqi", "charts/episode_return", "eval/input_psnr"} <= metrics
    model, spec = load_rse(out / "checkpoints" / "best.pt")
    assert isinstance(spec, RSEDenoiserSpec) and spec.rounds == 2 and spec.sigma == 25.0
    noisy = torch.rand(1, 3, 20, 28)
    assert model(noisy, rounds=spec.rounds).shape == noisy.shape
    again = subprocess.run([sys.executable, "-m", "experiments.rse_train", *tiny(folders, out), "--resume"],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already finished" in again.stdout


def test_ctrl_c_saves_and_resume_continues_the_vae_exactly(folders, tmp_path, signal_on_call):
    args_one_round = ["--rounds", "1"]
    straight = rse_train.main(tiny(folders, tmp_path / "straight", *args_one_round))
    undo = signal_on_call(rse_train, "vae_loss", 3)  # Ctrl-C during the third VAE step
    with pytest.raises(Interrupted, match="--resume"):
        rse_train.main(tiny(folders, tmp_path / "stopped", *args_one_round))
    undo()
    last = load_checkpoint(tmp_path / "stopped" / "checkpoints" / "last.pt")
    progress = last["extra"]["state"]["progress"]
    assert progress["phase"] == "vae" and progress["step"] == 3
    resumed = rse_train.main(tiny(folders, tmp_path / "stopped", *args_one_round, "--resume"))
    a = load_checkpoint(Path(straight) / "checkpoints" / "best.pt")["state_dict"]
    b = load_checkpoint(Path(resumed) / "checkpoints" / "best.pt")["state_dict"]
    for key in (k for k in a if ".vae." in k or ".bank." in k):
        assert torch.equal(a[key], b[key]), key
    assert (Path(resumed) / "summary.md").is_file()


def _values(path: Path) -> list[dict[str, str]]:
    """A metrics file's rows without the wall-clock columns."""
    with open(path) as handle:
        return [{k: v for k, v in row.items() if v and not k.endswith(("wall_time", "seconds", "ms_per_image"))}
                for row in csv.DictReader(handle)]


def test_a_run_stopped_in_its_second_round_resumes_to_the_same_metrics(folders, tmp_path, signal_on_call):
    """Ctrl-C during round 2's VAE: --resume recomputes round 1's outputs (round 2's inputs) and goes on
    through the one loop's resume; metrics.csv and train.csv end as an uninterrupted run's."""
    with contextlib.redirect_stdout(io.StringIO()):
        straight = Path(rse_train.main(tiny(folders, tmp_path / "straight")))
        undo = signal_on_call(rse_train, "vae_loss", 8)  # round 1: 6 VAE steps; round 2's second
        with pytest.raises(Interrupted, match="--resume"):
            rse_train.main(tiny(folders, tmp_path / "stopped"))
        undo()
        progress = load_checkpoint(tmp_path / "stopped" / "checkpoints" / "last.pt")["extra"]["state"]["progress"]
        assert (progress["round"], progress["phase"], progress["step"]) == (1, "vae", 2)
        resumed = Path(rse_train.main(tiny(folders, tmp_path / "stopped", "--resume")))
    for name in ("metrics.csv", "train.csv"):
        assert _values(resumed / name) == _values(straight / name), name
    assert [r["round"] for r in csv.DictReader(open(resumed / "rounds.csv"))] == ["1", "2"]


def test_resume_refuses_other_arguments(folders, tmp_path, signal_on_call):
    out = tmp_path / "run"
    signal_on_call(rse_train, "vae_loss", 2)
    with pytest.raises(Interrupted):
        rse_train.main(tiny(folders, out, "--rounds", "1"))
    with pytest.raises(ValueError, match="rse.hidden"):
        rse_train.main(tiny(folders, out, "--rounds", "1", "--resume", "--set", "rse.hidden=8"))


@pytest.mark.parametrize("extra,match", [
    (["--set", "rse.stride=9"], "rse.stride"),
    (["--set", "rse.clusters=100"], "rse.clusters"),
    (["--baselines", "nlm"], "task.baselines"),
    (["--set", "sac.gamma=1.0"], "gamma"),
    (["--sigma", "-1"], "--sigma"),
    (["--sigma", "nan"], r"task.sigma: got NaN \(not a number\)"),
    (["--sigma", "10", "inf"], "--sigma 10.0 inf"),
    (["--sigma", "10", "10"], "--sigma 10.0 10.0: .*repeated"),
])
def test_bad_arguments_are_refused_before_anything_is_written(folders, tmp_path, extra, match):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        rse_train.main(tiny(folders, out, *extra))
    assert not out.exists()


@pytest.mark.parametrize("setting, match", [
    ("rse.pool_crops=100000000", "rse.pool_crops 100,000,000 of 96 px crops: the pool's float32 crops alone"),
    ("rse.vae_batch=100000000", "rse.vae_batch 100,000,000 of 16 px patches: the batch's float32 patches alone"),
])
def test_sizes_beyond_the_machines_memory_are_refused_before_anything_is_allocated(setting, match):
    with pytest.raises(ValueError, match=rf"{match}: at least [\d,.]+ GiB, more than this machine's"):
        resolved(["--set", setting])


def test_trust_region_reaches_the_agent():
    args = resolved(["--set", "sac.trust_region_kl=0.02"])
    assert rse.sac_config(args).trust_region_kl == 0.02
    default = resolved([])
    assert rse.sac_config(default).trust_region_kl == 0.01
    off = resolved(["--set", "sac.trust_region_kl=0"])
    assert rse.sac_config(off).trust_region_kl is None
    config = rse.sac_config(resolved(["--set", "sac.init_alpha=0.05", "--set", "sac.critic_warmup=30"]))
    assert (config.init_alpha, config.critic_warmup) == (0.05, 30)
    unset = rse.sac_config(default)
    assert (unset.target_entropy, unset.init_alpha, unset.critic_warmup) == (None, 1.0, 0)  # SACConfig's own
    with pytest.raises(ValueError, match="SAC: .*sac"):
        resolved(["--set", "sac.critic_warmup=-1"])


def test_an_empty_sigma_is_refused_by_name(capsys):
    with pytest.raises(SystemExit):
        rse_train.parse(["--sigma"])
    assert "argument --sigma: expected at least one argument" in capsys.readouterr().err
    with pytest.raises(ValueError, match="sigma : expected one noise level or more"):
        resolved(["--set", "task.sigma=[]"])


def test_every_preset_resolves():
    shipped = resolved(["--preset", "rse-denoise-color"])
    assert (shipped.rounds, shipped.vae_steps, shipped.episodes, shipped.eval_every, shipped.pool_crops,
            shipped.sac_critic_warmup, shipped.sac_init_alpha, shipped.sac_updates) == (1, 3000, 200, 25, 256, 200,
                                                                                       0.01, 4)
    assert resolved(["--preset", "rse-rl"]).rounds == 2


def test_a_blind_denoiser_is_scored_per_level_and_records_its_levels(folders, tmp_path):
    """--sigma 40 10: the held-out image is scored at both levels (per-level columns in rounds.csv,
    metrics.csv and the summary, the plain scores their mean); the spec records both levels."""
    with contextlib.redirect_stdout(io.StringIO()):
        out = Path(rse_train.main(tiny(folders, tmp_path / "blind", "--rounds", "1", "--sigma", "40", "10")))
    assert json.loads((out / "config.json").read_text())["task"]["sigma"] == [10.0, 40.0]
    with open(out / "rounds.csv") as handle:
        (row,) = list(csv.DictReader(handle))
    for name in ("psnr", "ssim", "uqi"):
        pair = float(row[f"{name}_sigma10"]), float(row[f"{name}_sigma40"])
        assert float(row[name]) == pytest.approx(sum(pair) / 2, rel=1e-5)
    at = {r["metric"]: float(r["value"]) for r in scalar_rows(out)}
    assert at["eval/input_psnr_sigma10"] > at["eval/input_psnr_sigma40"] + 8  # 12 dB apart
    assert at["eval/baseline_bilateral_psnr"] == pytest.approx(
        (at["eval/baseline_bilateral_psnr_sigma10"] + at["eval/baseline_bilateral_psnr_sigma40"]) / 2, rel=1e-5)
    summary = (out / "summary.md").read_text()
    assert "sigma 10 40," in summary and "| psnr_sigma10 | psnr_sigma40 |" in summary
    model, spec = load_rse(out / "checkpoints" / "best.pt")
    assert (spec.sigma, spec.sigmas, spec.channels) == (40.0, (10.0, 40.0), 3)
    assert model(torch.rand(1, 3, 20, 28), rounds=spec.rounds).shape == (1, 3, 20, 28)


def test_a_predictor_is_every_rounds_third_candidate_and_the_model_finds_it_again(folders, tmp_path):
    """--predictor: a gray FFDNet serves the colour rounds (opponent planes) as a third candidate and
    action; the summary has its row; best.pt records the path, and load_rse attaches it again (beside
    the model once moved there with it; missing, the error names the places tried)."""
    net = FFDNet(1, width=8, depth=3)
    spec = SupervisedSpec(model="ffdnet", task="denoise", channels=1, prefill="none", noise="gaussian", sigma=50.0,
                          sigmas=(0.0, 50.0))
    ffdnet = save_checkpoint(tmp_path / "ffd.pt", model=net, arch=net.arch(), extra={"spec": spec})
    with contextlib.redirect_stdout(io.StringIO()):
        out = Path(rse_train.main(tiny(folders, tmp_path / "pred", "--rounds", "1", "--predictor", str(ffdnet))))
    summary = (out / "summary.md").read_text()
    assert "| predictor |" in summary and "predictor: the --predictor (ffd.pt) alone" in summary
    model, spec = load_rse(out / "checkpoints" / "best.pt")
    assert spec.predictor == str(ffdnet.resolve()) and model.predicted
    stage = model.rounds[0]
    assert stage.n_candidates == 3 and stage.policy.out_channels == 3
    noisy = torch.rand(1, 3, 20, 28)
    candidates = stage.candidates(noisy)
    expected = DenoisePredictor(ffdnet, channels=3, device="cpu")(noisy)
    torch.testing.assert_close(candidates[:, 6:], expected)
    torch.testing.assert_close(model(noisy, rounds=1), rse_blend(noisy, candidates, stage.act(noisy, candidates)))
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    moved = shipped / "rse.pt"
    moved.write_bytes((out / "checkpoints" / "best.pt").read_bytes())
    (shipped / "ffd.pt").write_bytes(ffdnet.read_bytes())
    ffdnet.unlink()
    again, _ = load_rse(moved)
    torch.testing.assert_close(again(noisy, rounds=1), model(noisy, rounds=1))
    ensembled = load_rse(moved, ensemble=2)[0].rounds[0].candidates(noisy)[:, 6:]  # its predictor's self-ensemble
    torch.testing.assert_close(ensembled, DenoisePredictor(shipped / "ffd.pt", channels=3, device="cpu",
                                                           ensemble=2)(noisy))
    assert not torch.allclose(ensembled, candidates[:, 6:])
    library = load_denoiser("rse", moved, device="cpu", ensemble=2)  # rlenhance denoise --model rse --ensemble 2
    image = noisy[0].permute(1, 2, 0).numpy()
    expected = load_rse(moved, ensemble=2)[0](noisy, rounds=1).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(library.restore(image), expected, atol=1e-6, rtol=0)
    method = rse_method("rse", moved, torch.device("cpu"), channels=3, ensemble=2)  # compare's rse
    rounds = sum(p.numel() for p in again.rounds[0].parameters())
    assert method.params == rounds + sum(p.numel() for p in net.parameters())  # counted with its predictor
    with pytest.raises(ValueError, match=r"ensemble: expected one of \(1, 2, 4, 8\)"):
        load_rse(moved, ensemble=3)
    (shipped / "ffd.pt").unlink()
    with pytest.raises(CheckpointError, match=r"predictor ffd.pt: no such file at .*ffd.pt, .*shipped/ffd.pt"):
        load_rse(moved)


def test_patch_pairs_draw_one_level_per_patch():
    clean = torch.full((2, 3, 24, 24), 0.5)
    source, target = rse.sample_patch_pairs(clean, None, episode_rows(0, range(64), "cpu"), 8, (5.0, 60.0))
    std = (source - target).flatten(1).std(dim=1) * 255
    low, high = std < 20, std > 40
    assert bool((low | high).all()) and 8 < int(low.sum()) < 56  # each patch at 5 or at 60, both drawn


@pytest.mark.parametrize("pool_inputs", [False, True])
@pytest.mark.parametrize("world", [2, 3])
def test_a_rank_draws_only_its_rows_of_the_vae_batch_one_process_draws(monkeypatch, pool_inputs, world):
    """vae_batch: rank r of n draws the rows r B / n .. of the --vae-batch (B) alone, and gets what one
    process drawing the batch gives them: patches, noise levels and values, reparameterisation noise."""
    args = resolved(["--set", "rse.patch=8", "--set", "rse.vae_batch=6", "--sigma", "5", "60"])
    clean = torch.rand(3, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    inputs = (clean + 0.1 * torch.rand(clean.shape, generator=torch.Generator().manual_seed(1))) if pool_inputs \
        else None
    drawn = []

    def counted(seed, indices, device):
        indices = list(indices)
        drawn.extend(indices)
        return episode_rows(seed, indices, device)

    monkeypatch.setattr(rse, "episode_rows", counted)
    one = rse.vae_batch(args, clean, inputs, 4, 11, Ranks().rows(6))
    parts = []
    for rank in range(world):
        ranks = Ranks(rank=rank, world_size=world)
        drawn.clear()
        parts.append(rse.vae_batch(args, clean, inputs, 4, 11, ranks.rows(ranks.split(6))))
        local = 6 // world
        assert drawn == list(range(rank * local, (rank + 1) * local)) and parts[-1][0].shape[0] == local
    source, target, noise = one
    assert torch.equal(torch.cat([part[0] for part in parts]), source)
    assert torch.equal(torch.cat([part[1] for part in parts]), target)
    for k in range(2):
        assert torch.equal(torch.cat([part[2][k] for part in parts]), noise[k])
    assert source.shape == (6, 3, 8, 8) and noise[0].shape == (6, 4) and not torch.equal(source, target)
    assert not torch.equal(rse.vae_batch(args, clean, inputs, 4, 12, Ranks().rows(6))[0], source)


@pytest.fixture(scope="module")
def real_pairs(tmp_path_factory):
    """noisy/ + clean/ folders (real pairs) whose degradation is a constant +0.1: no Gaussian draw gives it."""
    root = tmp_path_factory.mktemp("rse_real")
    y, x = np.mgrid[0:32, 0:32] / 32.0
    for split, count in (("train", 3), ("test", 1)):
        for k in range(count):
            clean = np.stack([0.2 + 0.4 * x, 0.3 + 0.3 * y, 0.4 + 0.1 * np.sin(6 * x + k)], -1).astype(np.float32)
            save_image(root / split / "clean" / f"{split}{k}.png", clean)
            save_image(root / split / "noisy" / f"{split}{k}.png", clean + np.float32(0.1))
    return root


def table_rows(summary: str) -> dict[str, dict[str, str]]:
    """The summary's markdown table as {method: {column: cell}}; every row has a cell per column."""
    lines = [line for line in summary.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == len(header), line
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def test_real_pairs_train_the_first_vae_on_their_noisy_crops_and_the_summary_says_real_noise(real_pairs, tmp_path,
                                                                                             monkeypatch):
    """--data / --test real pairs: round 1's VAE learns the pairs' own degradation (not fresh
    Gaussian noise), the summary says "real noise" and each value sits under its header (the
    bilateral row: its scores, then its own time per image under ms_per_image)."""
    residuals = []

    def spy(vae, source, target, **kwargs):
        residuals.append((source - target).detach())
        return vae_loss(vae, source, target, **kwargs)

    vae_loss = rse_train.vae_loss
    monkeypatch.setattr(rse_train, "vae_loss", spy)
    argv = [*TINY, "--data", str(real_pairs / "train"), "--test", str(real_pairs / "test"), "--rounds", "1",
            "--baselines", "bilateral", "--out", str(tmp_path / "real")]
    with contextlib.redirect_stdout(io.StringIO()):
        out = Path(rse_train.main(argv))
    assert len(residuals) == 6  # --vae-steps 6
    assert float((torch.cat(residuals) - 0.1).abs().max()) < 2 / 255  # the pairs' +0.1 (8-bit files)
    summary = (out / "summary.md").read_text()
    assert "(real noise, 1 held-out image(s);" in summary and "sigma 25" not in summary
    rows = table_rows(summary)
    (baseline,) = load_checkpoint(out / "checkpoints" / "last.pt")["extra"]["state"]["baselines"]
    assert rows["bilateral"] == {"method": "bilateral", **{k: f"{baseline[k]:.4g}" for k in ("psnr", "ssim", "uqi")},
                                 "gain_db": "", "ms_per_image": f"{baseline['ms_per_image']:.4g}",
                                 "vae_only_psnr": ""}
    with open(out / "rounds.csv") as handle:
        (row,) = list(csv.DictReader(handle))
    kept = rows["RSE-RL round 1 (kept: yes)"]
    for name in ("psnr", "gain_db", "ms_per_image", "vae_only_psnr"):
        assert kept[name] == f"{float(row[name]):.4g}", name


def test_without_test_images_the_tuning_split_picks_and_best_pt_is_reported_on_validation(folders, tmp_path,
                                                                                          capsys):
    """No --test: the tuning split of --data is the held-out set (each round's policy, the rounds kept); after
    the run best.pt's rounds are scored once on the validation split: printed, the summary's last row, in
    last.pt. task.tune_fraction 0 (and --test) hold no tuning split out."""
    argv = [a for a in tiny(folders, tmp_path / "run", "--rounds", "1") if a not in ("--test", str(folders / "test"))]
    train, held, report = rse_train.open_data(rse_train.parse(argv))
    names = [{item["name"] for item in part} for part in (train, held, report)]
    assert all(names) and len(set.union(*names)) == 3 == sum(map(len, names))  # disjoint, all three images
    out = rse_train.main(argv)
    last = load_checkpoint(Path(out) / "checkpoints" / "last.pt")["extra"]
    reported = last["report"]["eval/psnr"]
    assert f"picked on the tuning split): validation psnr {reported:.4g}" in capsys.readouterr().out
    summary = (Path(out) / "summary.md").read_text()
    assert f"| best.pt (1 round(s)) on the validation split | {reported:.4g} |" in summary
    assert "1 tuning-split image(s);" in summary
    untuned = rse_train.open_data(rse_train.parse([*argv, "--set", "task.tune_fraction=0"]))
    assert untuned[2] is None and {item["name"] for item in untuned[1]} == names[2]  # the validation split picks
    assert rse_train.open_data(rse_train.parse(tiny(folders, tmp_path / "x")))[2] is None
    assert rse_train.parse(["--preset", "rse-denoise-color"]).task.tune_fraction == 0.0
    with pytest.raises(ValueError, match="task.tune_fraction 1.5"):
        rse_train.parse(["--set", "task.tune_fraction=1.5"])
