"""The run folder people read (experiments.runs): metrics.csv with one row per evaluation and one
column per metric, train.csv, captioned sample grids (also in TensorBoard), evaluation progress, the
closing "use it" line, and one clear line for each damaged file of a run folder on ``--resume``."""

import csv
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments import grids
from experiments import runs as run_folder
from experiments.config import arg
from experiments.grids import action_colours, action_key, action_map, heatmap, make_grid
from experiments.process import run_cli
from experiments.runs import (
    Run,
    RunFolderError,
    metric_series,
    read_config,
    read_metrics,
    usage_lines,
)
from rlenhance.io import load_image
from rlenhance.trace import PREDICT_COLOUR


@dataclass
class Config:
    """A trainer's settings."""

    lr: float = arg(0.1, "learning rate")
    out: str = arg("runs/x", "run folder")
    resume: bool = arg(False, "continue")


def checkpointed(folder: Path) -> Path:
    """``folder`` made to hold a run with a last.pt (what --resume continues)."""
    if not (folder / "config.json").exists():
        (folder / "config.json").write_text(json.dumps({"lr": 0.1, "trainer": Config.__module__}))
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.pt").write_bytes(b"")
    return folder


def table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# --- metrics.csv / train.csv ---------------------------------------------------------------------
def test_metrics_csv_has_one_row_per_evaluation_and_a_column_per_metric(tmp_path):
    run = Run(tmp_path / "run", Config())
    for step in range(1, 5):
        run.log(step, {"charts/episode_return": step * 0.5, "losses/loss": 1.0 / step})
        if step % 2 == 0:
            run.log(step, {"eval/psnr": 20.0 + step, "eval/ssim": 0.5})
    run.log(4, {"test/psnr": 30.0})  # a later scalar of the same evaluation joins its row, widening the table
    run.close()
    rows = table(tmp_path / "run" / "metrics.csv")
    assert list(rows[0]) == ["step", "wall_time", "eval/psnr", "eval/ssim", "test/psnr"]
    assert [r["step"] for r in rows] == ["2", "4"]
    assert [float(r["eval/psnr"]) for r in rows] == [22.0, 24.0]
    assert rows[0]["test/psnr"] == "" and float(rows[1]["test/psnr"]) == 30.0
    train = table(tmp_path / "run" / "train.csv")
    assert [r["step"] for r in train] == ["1", "2", "3", "4"]
    assert list(train[0]) == ["step", "wall_time", "charts/episode_return", "losses/loss"]
    assert metric_series(tmp_path / "run", "eval/psnr") == {2: 22.0, 4: 24.0}
    assert metric_series(tmp_path / "run", "charts/episode_return")[3] == 1.5


def test_a_resumed_run_drops_the_rows_after_its_checkpoint(tmp_path):
    run = Run(tmp_path, Config())
    for step in range(1, 7):
        run.log(step, {"losses/loss": float(step)})
        run.log(step, {"eval/psnr": float(step)})
    run.close()
    with open(tmp_path / "metrics.csv", "a") as handle:
        handle.write("7,0.5,")  # a row cut short by a kill
    resumed = Run(checkpointed(tmp_path), Config(), resume=True)
    resumed.truncate_metrics(3)
    resumed.log(4, {"eval/psnr": 40.0})
    resumed.close()
    assert [(r["step"], r["eval/psnr"]) for r in read_metrics(tmp_path / "metrics.csv")] == \
        [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]
    assert [r["step"] for r in read_metrics(tmp_path / "train.csv")] == [1, 2, 3]


def test_wall_time_goes_on_from_the_resumed_runs_time(tmp_path):
    (tmp_path / "metrics.csv").write_text("step,wall_time,eval/psnr\n2,100.5,20\n4,250,21\n")
    (tmp_path / "train.csv").write_text("step,wall_time,losses/loss\n3,180,0.5\n4,260.25,0.4\n5,300,0.3\n")
    resumed = Run(checkpointed(tmp_path), Config(), resume=True)
    resumed.truncate_metrics(4)  # the checkpoint's step: the rows after it are redone
    resumed.log(5, {"losses/loss": 0.2})
    resumed.log(6, {"eval/psnr": 22.0})
    resumed.close()
    train, metrics = read_metrics(tmp_path / "train.csv"), read_metrics(tmp_path / "metrics.csv")
    assert [r["step"] for r in train] == [3, 4, 5] and [r["step"] for r in metrics] == [2, 4, 6]
    assert 260.25 <= train[-1]["wall_time"] < 260.25 + 60  # from the last kept row's time, not from zero
    assert train[-1]["wall_time"] <= metrics[-1]["wall_time"] < 260.25 + 60


# --- sample grids ------------------------------------------------------------------------------------
def test_a_grid_captions_each_column_in_a_band_above_the_images():
    gray = torch.full((3, 120, 100), 0.5)
    plain = make_grid([[gray, gray, gray]])
    grid = make_grid([[gray, gray, gray]], captions=("input", "output", "reference"))
    band = grids.CAPTION_HEIGHT
    assert grid.shape == (plain.shape[0] + band, plain.shape[1], 3)
    np.testing.assert_array_equal(grid[band:], plain)
    for c in range(3):  # dark caption pixels over each column, the band white elsewhere
        column = grid[:band, c * 102:c * 102 + 100]
        assert (column < 0.3).any() and (column > 0.99).mean() > 0.5
    assert make_grid([[gray, gray, gray]], captions=("a", "b", "c"))[:band].tolist() != grid[:band].tolist()


def test_small_images_are_enlarged_so_their_caption_fits():
    patch = torch.rand(1, 16, 16)
    grid = make_grid([[patch, patch]], captions=("noisy", "clean"), gap=0)
    zoom = -(-grids.MIN_COLUMN_WIDTH // 16)
    assert grid.shape == (grids.CAPTION_HEIGHT + 16 * zoom, 2 * 16 * zoom, 3)
    np.testing.assert_allclose(grid[grids.CAPTION_HEIGHT, :zoom, 0], patch[0, 0, 0].item(), atol=1e-6)
    with pytest.raises(ValueError, match="1 caption"):
        make_grid([[patch, patch]], captions=("noisy",))


def test_a_saved_grid_is_captioned_and_shown_in_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = Run(tmp_path, Config())
    image = torch.rand(3, 100, 100)
    alpha = heatmap(torch.linspace(-1, 1, 100).expand(100, 100), -1.0, 1.0)
    path = run.save_grid("episode_000010", [[image, image, image, alpha]],
                         captions=("input", "output", "reference", "alpha"), step=10)
    run.close()
    saved = load_image(path)
    assert saved.shape[0] == grids.CAPTION_HEIGHT + 100
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    assert "samples" in events.Tags()["images"]
    shown = events.Images("samples")[0]
    assert shown.step == 10 and (shown.height, shown.width) == saved.shape[:2]


def test_an_action_map_gives_each_action_its_own_colour_and_the_key_lists_them():
    names = [f"a{i}" for i in range(8)] + ["predict"]
    colours = action_colours(names)
    assert colours.shape == (9, 3) and len({tuple(c.tolist()) for c in colours}) == 9
    # the colours of compare's and the app's action maps: predict red
    assert tuple(round(float(c) * 255) for c in colours[8]) == PREDICT_COLOUR
    actions = torch.tensor([[[0, 8], [3, 0]]])
    image = action_map(actions, names)
    assert image.shape == (3, 2, 2)
    assert torch.equal(image[:, 0, 0], colours[0]) and torch.equal(image[:, 0, 1], colours[8])
    assert torch.equal(image[:, 1, 1], image[:, 0, 0]) and not torch.equal(image[:, 1, 0], image[:, 0, 0])
    key = action_key([f"a{i}" for i in range(9)])
    assert key.shape == (3, grids.KEY_ROW_HEIGHT * 9 + 2, grids.MIN_COLUMN_WIDTH)
    swatch = key[:, 2 + grids.KEY_ROW_HEIGHT * 4 + 3, 5]  # the fifth line's swatch
    torch.testing.assert_close(swatch, colours[4], atol=1 / 255, rtol=0)
    wrapped = action_key([f"a{i}" for i in range(9)], height=40)  # three lines a column
    assert wrapped.shape[1] <= 40 and wrapped.shape[2] == 3 * grids.MIN_COLUMN_WIDTH
    with pytest.raises(ValueError, match="21 actions"):
        action_colours([f"a{i}" for i in range(21)])


def test_a_heatmap_runs_from_dark_blue_at_low_to_yellow_at_high():
    colours = heatmap(torch.tensor([[0.0, 1.0]]), 0.0, 1.0)
    assert colours.shape == (3, 1, 2)
    low, high = colours[:, 0, 0], colours[:, 0, 1]
    assert low.sum() < 1.0 and high[0] > 0.9 and high[1] > 0.8 and high[2] < 0.3


# --- progress and the closing lines --------------------------------------------------------------------
def test_track_yields_every_item_under_a_bar_that_is_cleared(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(run_folder, "_is_terminal", lambda stream: True)
    run = Run(tmp_path, Config())
    assert list(run.track(range(5), desc="eval")) == list(range(5))
    assert "eval" in capsys.readouterr().err


def test_progress_off_a_terminal_is_plain_lines_now_and_then(tmp_path, capsys, monkeypatch):
    """stderr not a terminal (a log file, a pipe): no bar redrawn with carriage returns or escape codes,
    one line at most every PLAIN_PROGRESS_S seconds and one at the end; an evaluation's quick bar
    (leave=False) prints nothing."""
    run = Run(tmp_path, Config())
    assert list(run.track(range(3), desc="eval")) == [0, 1, 2]
    bar = run.progress(4, desc="episode")
    bar.update(1)
    bar.set_postfix({"ret": "1.000", "best": "-"})
    bar.update(1)
    assert capsys.readouterr().err == ""  # quicker than the interval
    monkeypatch.setattr(run_folder, "PLAIN_PROGRESS_S", 0.0)
    bar.update(1)
    bar.set_description_str("evaluating")
    bar.update(1)
    bar.close()
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and not any(c in "".join(lines) for c in "\r\x1b")
    assert re.fullmatch(r"episode 3/4 \(75%\) \d+ s, [\d.e+-]+ episode/s, ret=1.000, best=-", lines[0])
    assert lines[1].startswith("evaluating 4/4 (100%)")
    assert list(run.track(range(2), desc="eval")) == [0, 1]
    assert [line.split(" (")[0] for line in capsys.readouterr().err.splitlines()] == ["eval 1/2", "eval 2/2"]


def test_the_use_it_line_is_shell_quoted(tmp_path):
    model = tmp_path / "my runs" / "it's" / "best.pt"
    lines = usage_lines(model, ["denoise", "photo 1.png", "-o", "out/", "--checkpoint", model])
    assert lines[0] == f"model: {model}"
    command = lines[1].removeprefix("use it: ")
    assert shlex.split(command) == ["rlenhance", "denoise", "photo 1.png", "-o", "out/", "--checkpoint", str(model)]


# --- damaged run folders -------------------------------------------------------------------------------
CONFIGS = {"list": ("[]", "holds a list"), "empty": ("{}", "no settings"), "cut": ('{"lr": 0.1, "ou', "not valid JSON"),
           "latin1": (b'{"lr": "\xe9"}', "not UTF-8"),
           "nested": ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply")}


@pytest.mark.parametrize("name", CONFIGS)
def test_a_damaged_config_json_is_named(tmp_path, name):
    content, why = CONFIGS[name]
    path = tmp_path / "config.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(RunFolderError, match=rf"{path}.*{why}.*delete {tmp_path}"):
        read_config(tmp_path)
    with pytest.raises(RunFolderError, match=str(path)):
        Run(checkpointed(tmp_path), Config(), resume=True)


METRICS = {"latin1": (b"step,wall_time,eval/psnr\n1,0.1,2\xe9\n", "not UTF-8"),
           "folder": (None, "is a folder"),
           "garbled": (b"step,wall_time,eval/psnr\n1,0.1,abc\n2,0.2,3\n", "line 2 is not a row of numbers")}


@pytest.mark.parametrize("name", METRICS)
def test_a_damaged_metrics_csv_is_named(tmp_path, name):
    content, why = METRICS[name]
    path = tmp_path / "metrics.csv"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(RunFolderError, match=rf"{path}.*{why}"):
        Run(checkpointed(tmp_path), Config(), resume=True).truncate_metrics(1)


def test_resume_names_the_trainer_that_made_the_run(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"lr": 0.1, "trainer": "experiments.lol_train"}))
    with pytest.raises(RunFolderError, match=r"run of experiments\.lol_train, not of tests\.experiments\.test_runs; "
                                             r"continue it with python -m experiments\.lol_train --resume"):
        Run(tmp_path, Config(), resume=True)
    (tmp_path / "config.json").write_text(json.dumps({"lr": 0.1}))  # no trainer named: not continued
    with pytest.raises(RunFolderError, match="a run of another trainer or version, not of"):
        Run(tmp_path, Config(), resume=True)


def test_a_full_disk_while_saving_a_checkpoint_is_one_line(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0\nmore")

    run = Run(tmp_path, Config())
    model = torch.nn.Linear(2, 2)
    arch = {"class": "Linear", "kwargs": {}}
    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(RunFolderError, match=r"could not write .*last\.pt \(\[enforce fail.*\); free space .*--resume"):
        run.save("last", model=model, arch=arch, extra={})


def test_a_full_disk_while_saving_last_pt_says_no_space_and_keeps_the_previous_one(tmp_path, full_disk):
    run = Run(tmp_path, Config())
    arch = {"class": "Linear", "kwargs": {}}
    path = run.save("last", model=torch.nn.Linear(2, 2), arch=arch, extra={})
    before = path.read_bytes()
    full_disk("last.pt")
    with pytest.raises(RunFolderError, match=rf"^could not write {re.escape(str(path))} \(No space left on device\); "
                                             r"the previous last\.pt is intact; free space on that disk"):
        run.save("last", model=torch.nn.Linear(64, 64), arch=arch, extra={})
    assert path.read_bytes() == before


# --- one run per folder ---------------------------------------------------------------------------
def test_a_folder_another_run_writes_is_refused_before_anything_is_written(tmp_path):
    first, second = Run(tmp_path / "run", Config()), Run(tmp_path / "run", Config())  # both find it empty
    first.log(1, {"eval/psnr": 20.0})  # holds the folder from its first write
    with pytest.raises(FileExistsError, match="in use by another run"):
        second.log(1, {"eval/psnr": 30.0})
    first.close()
    with pytest.raises(FileExistsError, match="written by another run since this one started"):
        second.log(1, {"eval/psnr": 30.0})  # the first has ended: its files are not taken over either
    assert [row["eval/psnr"] for row in table(tmp_path / "run" / "metrics.csv")] == ["20"]
    third = Run(tmp_path / "run", Config(), resume=True)  # checked after the first ended: it may go on
    with pytest.raises(FileExistsError, match="already holds a run"):
        Run(checkpointed(tmp_path / "run"), Config())
    third.close()


_HOLDER = """
import sys
from dataclasses import dataclass
from experiments.runs import Run

@dataclass
class Config:
    lr: float = 0.1

run = Run(sys.argv[1], Config())
run.log(1, {"eval/psnr": 1.0})
print("holding", flush=True)
sys.stdin.read()  # until the test closes it
run.close()
"""


@pytest.mark.slow
def test_a_second_trainer_on_a_folder_a_running_one_holds_is_refused_in_one_line(tmp_path):
    """Two processes: one holds ``--out`` (a run that has written it and is still running); a trainer
    started on the same folder exits 2 with one line and writes nothing into it."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], cwd=root, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        before = sorted(p.name for p in out.iterdir())
        second = subprocess.run([sys.executable, "-m", "experiments.supervised_train", *TINY, "--out", str(out)],
                                cwd=root, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stderr[-2000:]
        lines = [line for line in second.stderr.splitlines() if "error" in line]
        assert len(lines) == 1 and f"--out {out} is in use by another run" in lines[0], second.stderr[-2000:]
        assert sorted(p.name for p in out.iterdir()) == before
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0


# --- the same through a trainer's command line ---------------------------------------------------------
TINY = ["--epochs", "1", "--steps-per-epoch", "1", "--batch", "2", "--crop", "32", "--width", "8",
        "--set", "data.val_samples=2", "--set", "run.samples=1", "--threads", "1"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from experiments import supervised_train

    out = tmp_path_factory.mktemp("supervised") / "run"
    supervised_train.main([*TINY, "--out", str(out)])
    return out


def resume_error(out: Path, capsys) -> str:
    from experiments import supervised_train

    with pytest.raises(SystemExit) as stopped:
        run_cli(lambda _: supervised_train.main(["--resume", "--epochs", "2", "--out", str(out)]), "supervised_train")
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


@pytest.mark.parametrize("damage", ["config-list", "config-empty", "config-cut", "metrics-latin1", "metrics-folder",
                                    "other-trainer"])
def test_resume_of_a_damaged_run_says_which_file_in_one_line(finished_run, tmp_path, capsys, damage):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    config, metrics = out / "config.json", out / "metrics.csv"
    if damage == "config-list":
        config.write_text("[]")
    elif damage == "config-empty":
        config.write_text("{}")
    elif damage == "config-cut":
        config.write_text(config.read_text()[:40])
    elif damage == "metrics-latin1":
        metrics.write_bytes(metrics.read_bytes() + b"2,0.5,\xe9\n")
    elif damage == "metrics-folder":
        metrics.unlink()
        metrics.mkdir()
    else:
        config.write_text(json.dumps({**json.loads(config.read_text()), "trainer": "experiments.rse_train"}))
    line = resume_error(out, capsys)
    named = metrics if damage.startswith("metrics") else out if damage == "other-trainer" else config
    assert line.startswith("supervised_train: error: ") and str(named) in line


def test_a_full_disk_during_training_ends_with_one_line(tmp_path, capsys, monkeypatch):
    from experiments import supervised_train

    def full(*args, **kwargs):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(SystemExit) as stopped:
        run_cli(lambda _: supervised_train.main([*TINY, "--out", str(tmp_path / "run")]), "supervised_train")
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    line = err.strip().split("\n")[-1].split("\r")[-1]  # the last line, as a terminal shows it past the bars
    line = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line).strip()  # the closing bar's cursor moves
    assert line.startswith("supervised_train: error: could not write ") and "Traceback" not in err
    assert "best.pt (PytorchStreamWriter failed" in line and "free space on that disk" in line
