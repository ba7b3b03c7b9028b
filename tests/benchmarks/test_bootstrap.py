"""benchmarks.bootstrap: bootstrapped vs random-backbone runs on the same seeds."""

import pytest
import torch

from benchmarks import bootstrap
from rlenhance.checkpoint import save_checkpoint
from rlenhance.models.mrpnet import MRPNet


@pytest.fixture(scope="module")
def denoiser(tmp_path_factory):
    torch.manual_seed(0)
    net = MRPNet(1, width=4)
    return save_checkpoint(tmp_path_factory.mktemp("sup") / "sup.pt", model=net, arch=net.arch(), extra={})


def tiny(path):
    return ["--set", "model.backbone=mrpnet", "--set", f"model.init_backbone={path}", "--episodes", "2",
            "--eval-every", "1",
            "--batch", "1", "--crop", "16", "--steps", "2", "--width", "4", "--eval-images", "1", "--threads", "1"]


def test_runs_both_agents_per_seed_and_compares_every_evaluation(denoiser, tmp_path, capsys):
    out = tmp_path / "bench"
    summary = bootstrap.main(["--seeds", "0", "3", "--jobs", "2", "--out", str(out), "--", *tiny(denoiser)])
    assert [row["episode"] for row in summary] == [1, 2]
    for row in summary:
        assert row["higher"] + row["equal"] + row["lower"] == 2
    for seed in (0, 3):
        logs = {v: (out / f"{v}_seed{seed}.log").read_text() for v in bootstrap.VARIANTS}
        assert "model.random_backbone" in logs["random"] and "copied into the mrpnet backbone" not in logs["random"]
        assert "copied into the mrpnet backbone" in logs["bootstrapped"]
        for v in bootstrap.VARIANTS:
            config = (out / f"{v}_seed{seed}" / "config.json").read_text()
            assert f'"seed": {seed}' in config
    text = capsys.readouterr().out
    assert "eval/psnr over 2 seed(s)" in text
    # the table's scores are the runs' own
    psnr = bootstrap.read_metric(out / "bootstrapped_seed3", "eval/psnr")
    assert set(psnr) == {1, 2} and "| 2 | 3 | " in text and f"{psnr[2]:.3f}" in text
    # a second call finds the runs and resumes them instead of refusing the used folders
    assert bootstrap.main(["--seeds", "0", "3", "--out", str(out), "--", *tiny(denoiser)]) == summary


@pytest.mark.parametrize("extra, words", [
    (["--", "--set", "model.backbone=mrpnet"], "model.init_backbone"),
    (["--seeds", "0", "--", "--set", "model.init_backbone=x.pt", "--seed", "1"], "--seed and --out"),
    (["--jobs", "0", "--", "--set", "model.init_backbone=x.pt"], "--jobs 0"),
])
def test_bad_arguments_are_refused_before_any_run(extra, words, tmp_path, capsys):
    with pytest.raises(SystemExit):
        bootstrap.main(["--out", str(tmp_path / "bench"), *extra])
    assert words in capsys.readouterr().err
    assert not (tmp_path / "bench").exists()


def test_a_failing_run_reports_its_log(tmp_path):
    failed = "(?s)(random|bootstrapped)_seed0: the run failed .*_seed0.log ends:.*no such file"
    with pytest.raises(RuntimeError, match=failed):
        bootstrap.main(["--seeds", "0", "--out", str(tmp_path / "bench"), "--",
                        "--set", "model.backbone=mrpnet", "--set", f"model.init_backbone={tmp_path / 'missing.pt'}"])


def test_read_metric_names_the_file_when_the_metric_is_missing(tmp_path):
    (tmp_path / "metrics.csv").write_text("step,wall_time,charts/lr\n1,0.1,0.001\n")
    with pytest.raises(ValueError, match="metrics.csv: no 'eval/psnr' rows"):
        bootstrap.read_metric(tmp_path, "eval/psnr")
