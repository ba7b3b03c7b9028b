"""experiments.loop's time estimate: a run says beforehand how long it will take, from the measured cost
of the preset it is, when that is long; the evaluations a schedule still has to run; the run section
every trainer's config takes from RunSettings; the report of best.pt on the validation split."""

import dataclasses
import json
import os
import pickle
import signal
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch

from experiments import completion_train, config, denoise_train, lol_train, rse, rse_train, supervised_train
from experiments.config import Preset
from experiments.loop import (
    LONG_RUN_S,
    Callback,
    Loop,
    LoopState,
    StuckHint,
    TimeEstimate,
    evaluations_left,
    preset_estimate,
    run_seconds,
    split_note,
)
from experiments.process import Interrupted
from experiments.rl_common import top_action_share
from experiments.run_settings import (
    RUN_COST_FREE,
    RunSettings,
    check_run,
)
from experiments.runs import Run, RunFolderError, read_metrics
from rlenhance.checkpoint import load_checkpoint
from rlenhance.models.mrpnet import MRPNet


def fake_loop(total, step=0, eval_every=10):
    said = []
    loop = SimpleNamespace(total=total, eval_every=eval_every, unit="episode", state=LoopState(step=step),
                           run=SimpleNamespace(say=said.append))
    return loop, said


@pytest.mark.parametrize("step, total, every, left", [(0, 10, 5, 2), (0, 11, 5, 3), (5, 11, 5, 2), (10, 11, 5, 1),
                                                      (11, 11, 5, 0), (3, 9, 1, 6)])
def test_evaluations_left_counts_the_scheduled_ones_and_the_last(step, total, every, left):
    assert evaluations_left(step, total, every) == left
    assert evaluations_left(step, total, lambda s: s % every == 0) == left  # a schedule function, the same


def test_a_long_run_says_its_time_before_the_first_step_and_a_short_one_says_nothing():
    loop, said = fake_loop(total=100, step=20)
    TimeEstimate(cost=(30.0, 60.0), source="a preset").on_start(loop)  # 80 x 30 + 8 x 60 = 2880 s
    assert said == ["estimated time: 48 min (80 episodes at 30 s and 8 evaluations at 60 s: a preset)"]
    loop, said = fake_loop(total=100)
    TimeEstimate(cost=(1.0, 1.0)).on_start(loop)
    assert said == [] and run_seconds(100, 10, (1.0, 1.0)) == 110 < LONG_RUN_S


def test_a_run_whose_evaluations_look_alike_says_why_once():
    image = torch.rand(3, 8, 8)
    loop, said = fake_loop(total=10)
    hint = StuckHint()
    hint.on_evaluation(loop, {"eval/psnr": 20.0}, [[image, image * 0.5]])
    hint.on_evaluation(loop, {"eval/psnr": 21.0}, [[image, image * 0.6]])  # the outputs changed
    assert said == []
    hint.on_evaluation(loop, {"eval/psnr": 21.0}, [[image, image * 0.6]])  # the same outputs again
    hint.on_evaluation(loop, {"eval/psnr": 21.0}, [[image, image * 0.6]])
    assert len(said) == 1 and "outputs are those of the previous one" in said[0] and "--episodes" in said[0]
    loop, said = fake_loop(total=10)
    StuckHint().on_evaluation(loop, {"eval/top_action_share": 1.0}, [[image, image]])
    assert len(said) == 1 and "one action everywhere" in said[0] and "docs/training.md" in said[0]


def test_top_action_share_is_one_for_one_action_everywhere():
    one = torch.full((2, 1, 4, 4), 3.0)  # 2 steps of action 3 everywhere
    mixed = one.clone()
    mixed[0, 0, :2] = 1.0  # half of step 1 takes another action
    assert top_action_share([one, one]) == 1.0
    assert top_action_share([mixed]) == pytest.approx(0.75)
    assert top_action_share([one + 0.004 * torch.rand_like(one)]) == 1.0  # alphas within 0.01: one action
    where = torch.zeros(1, 4, 4)
    where[0, 2:] = 1  # only the rows the other action did not touch count
    assert top_action_share([mixed], [where]) == 1.0


def test_a_config_has_the_cost_of_the_preset_it_is_on_that_device():
    """The run's length, seed and hardware may differ from the preset's; any other setting makes another
    config, whose time is measured once it runs. A preset without a GPU figure gives none on a GPU."""
    per_step = lambda cost: (cost.step_s, cost.eval_s)  # noqa: E731
    rellie = lol_train.parse_args(["--preset", "rellie", "--episodes", "40", "--seed", "3", "--threads", "1"])
    estimate = preset_estimate(rellie, lol_train.PRESETS, "cpu", ignore=RUN_COST_FREE, check=lol_train.check,
                               per_step=per_step)
    preset = lol_train.PRESETS["rellie"]
    assert estimate.cost == (preset.cpu.step_s, preset.cpu.eval_s) and "--preset rellie on cpu" in estimate.source
    loop, said = fake_loop(total=40, eval_every=rellie.run.eval_every)
    estimate.on_start(loop)
    assert len(said) == 1 and said[0].startswith("estimated time: ") and "40 episodes" in said[0]
    assert preset_estimate(rellie, lol_train.PRESETS, "cuda", ignore=RUN_COST_FREE, check=lol_train.check,
                           per_step=per_step).cost == (preset.cuda.step_s, preset.cuda.eval_s)
    unmeasured = {"rellie": Preset(lol_train.rellie, cpu=preset.cpu)}
    assert preset_estimate(rellie, unmeasured, "cuda", ignore=RUN_COST_FREE, check=lol_train.check,
                           per_step=per_step).cost is None
    other = lol_train.parse_args(["--preset", "rellie", "--width", "32"])
    assert preset_estimate(other, lol_train.PRESETS, "cpu", ignore=RUN_COST_FREE, check=lol_train.check,
                               per_step=per_step).cost is None
    shipped = lol_train.parse_args(["--preset", "shipped"])
    assert preset_estimate(shipped, lol_train.PRESETS, "cuda", ignore=RUN_COST_FREE, check=lol_train.check,
                               per_step=per_step).cost == (
        lol_train.PRESETS["shipped"].cuda.step_s, lol_train.PRESETS["shipped"].cuda.eval_s)


def test_a_supervised_epoch_costs_its_steps():
    cfg = supervised_train.parse(["--preset", "mrpnet-denoise", "--epochs", "3"])
    cost = config.Cost(0.5, eval_s=2.0)
    assert supervised_train.epoch_cost(cfg, cost) == (cfg.train.steps_per_epoch * 0.5, 2.0)
    assert supervised_train.estimate_seconds(cfg, cost) == pytest.approx(3 * (cfg.train.steps_per_epoch * 0.5 + 2.0))


#: Each trainer's config class and the run settings it reads.
RUN_FIELDS = {
    lol_train.Config: ("episodes", "batch", "eval_every", "eval_batch", "samples", "keep_evals", "seed", "split_seed",
                       "device", "threads", "out", "resume"),
    rse.Config: ("samples", "seed", "split_seed", "device", "threads", "out", "resume"),
    supervised_train.Config: ("out", "resume", "device", "threads", "seed", "samples", "save_every"),
}


@pytest.mark.parametrize("config_class", RUN_FIELDS)
def test_every_run_section_is_run_settings_with_its_fields_and_defaults(config_class):
    section = type(config_class().run)
    assert tuple(f.name for f in dataclasses.fields(section)) == RUN_FIELDS[config_class]
    docs, own = config.field_docs(RunSettings), config.field_docs(section)
    assert own == {name: docs[name] for name in RUN_FIELDS[config_class]}  # one doc of each setting
    cfg = config_class()
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # Hogwild and torchrun workers may get it pickled


def test_trainers_set_their_own_run_defaults():
    assert (lol_train.Config().run.episodes, denoise_train.Config().run.episodes) == (600, RunSettings.episodes)
    assert {m.Config().run.out for m in (lol_train, denoise_train, completion_train, supervised_train)} == {
        "runs/lol_train", "runs/denoise_train", "runs/completion_train", "runs/supervised_train"}
    assert rse.Config().run.samples == 2 != RunSettings.samples
    with pytest.raises(AttributeError):
        supervised_train.Config().run.episodes  # noqa: B018 (a supervised run's length is train.epochs)


@pytest.mark.parametrize("setting, message", [("run.seed=-1", "run.seed -1: expected an integer in"),
                                              ("run.samples=-1", "run.samples -1: expected an integer >= 0"),
                                              ("run.threads=-2", "run.threads -2: expected an integer >= 0")])
@pytest.mark.parametrize("parse", [lol_train.parse_args, rse_train.parse, supervised_train.parse])
def test_every_trainer_checks_its_run_section_alike(parse, setting, message):
    with pytest.raises(ValueError, match=message):
        parse(["--set", setting])


def test_check_run_checks_the_settings_a_section_has():
    with pytest.raises(ValueError, match="run.eval_every 0: expected an integer >= 1"):
        check_run(lol_train.RLRunSettings(eval_every=0))
    check_run(supervised_train.RunConfig(save_every=3))
    with pytest.raises(ValueError, match="run.save_every -1: expected an integer >= 0"):
        check_run(supervised_train.RunConfig(save_every=-1))


@pytest.mark.parametrize("module, parse, trainer", [
    (lol_train, lol_train.parse_args, "experiments.lol_train"),
    (rse_train, rse_train.parse, "experiments.rse_train"),
    (supervised_train, supervised_train.parse, "experiments.supervised_train")])
def test_resume_starts_from_the_runs_own_config_under_the_command_line(tmp_path, module, parse, trainer):
    """Every trainer: --resume reads the run's config.json, the flags given win; another trainer's run is refused."""
    out = tmp_path / "run"
    out.mkdir()
    saved = config.to_dict(parse(["--set", "run.samples=1", "--seed", "7", "--out", str(out)]))
    (out / "config.json").write_text(json.dumps({**saved, "trainer": trainer, "world_size": 1}))
    resumed = parse(["--resume", "--out", str(out), "--threads", "1"])
    assert (resumed.run.seed, resumed.run.samples, resumed.run.threads, resumed.run.resume) == (7, 1, 1, True)
    assert parse(["--out", str(out)]).run.seed == 0  # a new run in a run's folder: its own settings
    (out / "config.json").write_text(json.dumps({**saved, "trainer": "experiments.other_train"}))
    with pytest.raises(RunFolderError, match="is a run of experiments.other_train"):
        parse(["--resume", "--out", str(out)])


# --- the report: best.pt scored once on the validation split ----------------------------------------
@dataclass(frozen=True)
class _Config:
    steps: int = 2


def _report_loop(out, *, resume=False, said=None):
    """A two-step loop whose tuning score falls (best.pt: step 1) and whose report reads the weights."""
    torch.manual_seed(0)
    model = MRPNet(1, width=2)
    run = Run(out, _Config(), resume=resume)

    def train(step, until):
        with torch.no_grad():
            next(model.parameters()).add_(1.0)  # each step moves the weights
        return step + 1, {"losses/loss": 1.0}

    first = lambda: float(next(model.parameters()).detach().sum())  # noqa: E731
    loop = Loop(run, total=2, eval_every=1, train=train, evaluate=lambda: ({"eval/psnr": 10.0 - loop.state.step}, []),
                metric="eval/psnr", model=model, state=dict, load_state=lambda state: None, extra=dict,
                summary=lambda state: {"steps": state.step},
                split="tune", report=lambda: ({"eval/psnr": first(), "eval/ssim": 0.5}, []))
    return loop, model, first


def test_the_report_scores_best_pt_on_the_validation_split_once(tmp_path, capsys):
    """split "tune": the evaluations pick best.pt (here the first, the score falls); after the last one the
    report scores best.pt's weights (not the last ones, which the model gets back): printed, the summary's
    val_* columns, recorded in last.pt; metrics.csv keeps one row per evaluation. A finished run resumed does
    not score it again, and writes the same summary when it was lost."""
    loop, model, first = _report_loop(tmp_path / "run")
    loop.fit()
    best, last = (load_checkpoint(tmp_path / "run" / "checkpoints" / f"{name}.pt") for name in ("best", "last"))
    best_value = float(next(iter(best["state_dict"].values())).sum())
    assert best["extra"]["best_episode"] == 1 and first() != best_value  # the model keeps its last weights
    assert last["extra"]["report"] == {"eval/psnr": pytest.approx(best_value), "eval/ssim": 0.5,
                                       "eval/seconds": pytest.approx(last["extra"]["report"]["eval/seconds"])}
    out = capsys.readouterr().out
    assert f"best.pt (episode 1, picked on the tuning split): validation psnr {best_value:.4g}, ssim 0.5" in out
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert f"test_loop: {tmp_path / 'run'} (best.pt picked on the tuning split: tune_*, best_*; val_*: best.pt on " \
        "the validation split)" \
        in summary and "| steps | val_psnr | val_ssim |" in summary and "val_seconds" not in summary
    assert [row["step"] for row in read_metrics(tmp_path / "run" / "metrics.csv")] == [1, 2]
    (tmp_path / "run" / "summary.md").unlink()
    again, _, _ = _report_loop(tmp_path / "run", resume=True)
    again.report = lambda: pytest.fail("a finished run is not reported again")
    again.fit()
    assert (tmp_path / "run" / "summary.md").read_text() == summary


def test_split_note_names_each_column_group():
    assert split_note("val", reported=False, tested=False) == "best.pt picked on the validation split: val_*, best_*"
    assert split_note("tune", reported=True, tested=True) == (
        "best.pt picked on the tuning split: tune_*, best_*; val_*: best.pt on the validation split; "
        "test_*: the --test images, reported only")


# --- a train call that runs several steps ------------------------------------------------------------
class _Counting(Callback):
    def __init__(self):
        self.steps = []

    def on_train(self, loop, scalars, steps):
        self.steps.append((loop.state.step, steps, dict(scalars)))


def test_a_train_call_of_several_steps_reports_each_as_it_ends_and_stops_on_a_signal(tmp_path):
    """train may run to ``until`` and report each step with Loop.advance (logged, the callbacks told);
    a signal during it (Loop.stop_requested) ends it early, and the loop stops at the step reached."""
    model = MRPNet(1, width=2)
    counting = _Counting()

    def train(step, until):
        for done in range(step + 1, until + 1):
            loop.advance(done, {"losses/loss": float(done)})
            if done == 3:
                os.kill(os.getpid(), signal.SIGINT)
            if loop.stop_requested():
                return done, {}
        return until, {}

    loop = Loop(Run(tmp_path / "run", _Config()), total=6, eval_every=6, train=train,
                evaluate=lambda: ({"eval/psnr": 1.0}, []), metric="eval/psnr", model=model, state=dict,
                load_state=lambda state: None, extra=dict, callbacks=[counting])
    with pytest.raises(Interrupted, match="interrupted at episode 3 of 6"):
        loop.fit()
    assert [(step, n) for step, n, _ in counting.steps] == [(1, 1), (2, 1), (3, 1), (3, 0)]
    assert [row["step"] for row in read_metrics(tmp_path / "run" / "train.csv")] == [1, 2, 3]
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["extra"]["episode"] == 3
    assert not loop.stop_requested()  # outside fit
