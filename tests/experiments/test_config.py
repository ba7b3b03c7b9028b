"""experiments.config (nested dataclasses, presets, files, --set, --print-config) and the trainers' command
lines built on it: short help, documented presets, errors that name the setting, a run's config re-runs it."""

import json
import re
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import torch

from experiments import completion_train, config, denoise_train, lol_train, rse_train, supervised_train
from rlenhance.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TRAINERS = {"lol_train": lol_train, "denoise_train": denoise_train, "completion_train": completion_train}
#: Words that name a run, a session or an experiment's history: help texts describe the product.
HISTORY = re.compile(r"(?i:\bsession|tried in)|\b[hk]\d+[a-z]?\d*\b|\bruns? [a-z]\d|\bruns/[a-z]+\d")


@dataclass(frozen=True)
class Inner:
    """A section."""

    count: int = 3
    """how many"""
    span: tuple[float, float] = (0.5, 2.0)
    """a range"""
    cap: float | None = 0.1
    """a cap (none: no cap)"""
    mode: Literal["a", "b"] = "a"
    """a choice"""
    on: bool = True
    """a switch"""
    path: str | None = "file.pt"
    """a file (none: no file)"""
    limit: int | None = 5
    """a limit (none: no limit)"""


@dataclass(frozen=True)
class Outer:
    """A config of one section."""

    name: str = "x"
    """a name"""
    inner: Inner = Inner()


def big() -> Outer:
    """A preset."""
    return config.replace_path(Outer(), {"inner.count": 10, "name": "big"})


def parse(*argv, **kw):
    return config.parse(Outer, list(argv), presets={"big": config.Preset(big)},
                        flags={"count": "inner.count", "on": "inner.on"}, prog="t", **kw)


def test_defaults_then_preset_then_file_then_flags_then_set(tmp_path):
    assert parse() == Outer()
    assert parse("--preset", "big") == Outer("big", Inner(count=10))
    path = tmp_path / "c.toml"
    path.write_text('name = "file"\n[inner]\ncount = 4\nspan = [1, 3]\n')
    assert parse("--preset", "big", "--config", str(path)) == Outer("file", Inner(count=4, span=(1.0, 3.0)))
    assert parse("--config", str(path), "--count", "5").inner.count == 5
    assert parse("--config", str(path), "--count", "5", "--set", "inner.count=6").inner.count == 6
    assert parse("--no-on").inner.on is False


@pytest.mark.parametrize("text, value", [("inner.cap=none", None), ("inner.cap=inf", float("inf")),
                                         ("inner.span=0.1,0.2", (0.1, 0.2)), ("inner.span=[1, 2]", (1.0, 2.0)),
                                         ("inner.on=false", False), ("inner.mode=b", "b"), ("name=none", "none")])
def test_set_reads_each_type(text, value):
    key = text.split("=")[0]
    assert config.get_path(parse("--set", text), key) == value


@pytest.mark.parametrize("key", ["inner.path", "inner.limit", "inner.cap"])
@pytest.mark.parametrize("spelling", ["none", "None", "NULL", " null "])
def test_none_sets_an_optional_setting_of_any_type_to_none(key, spelling):
    assert config.get_path(parse("--set", f"{key}={spelling}"), key) is None
    flags = {"path": "inner.path", "limit": "inner.limit", "cap": "inner.cap"}
    flagged = config.parse(Outer, [f"--{key.split('.')[1]}", spelling], flags=flags)
    assert config.get_path(flagged, key) is None
    assert parse("--set", f"name={spelling}").name.strip() == spelling.strip()  # a plain str keeps the word


@pytest.mark.parametrize("argv, message", [
    (["--set", "inner.cout=1"], "unknown setting 'inner.cout'; inner has: cap, count, limit, mode, on, path, span"),
    (["--set", "inner.count=1.5"], r"inner.count: expected an integer, got '1.5'"),
    (["--set", "inner.span=1,2,3"], "inner.span: expected 2 values"),
    (["--set", "inner.mode=c"], "inner.mode: 'c' is not one of a, b"),
    (["--set", "inner.on=maybe"], "inner.on: expected true or false"),
    (["--set", "inner"], "--set 'inner': expected KEY=VALUE"),
    (["--set", "inner=3"], "inner: expected a section"),
    (["--set", "inner.cap=nan"], r"^inner.cap: got NaN \(not a number\); expected a number$"),
    (["--set", "inner.span=1,NaN"], r"^inner.span: got NaN \(not a number\); expected a number$"),
])
def test_bad_settings_name_the_key(argv, message):
    with pytest.raises(ValueError, match=message):
        parse(*argv)


def test_print_config_is_a_config_file_that_gives_the_same_config(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        parse("--preset", "big", "--set", "inner.cap=none", "--print-config")
    assert stop.value.code == 0
    printed = capsys.readouterr().out
    path = tmp_path / "c.json"
    path.write_text(printed)
    assert parse("--config", str(path)) == parse("--preset", "big", "--set", "inner.cap=none")
    assert json.loads(printed)["inner"] == {"count": 10, "span": [0.5, 2.0], "cap": None, "mode": "a", "on": True,
                                            "path": "file.pt", "limit": 5}


def test_a_missing_or_broken_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="--config .*nope.toml: no such file"):
        parse("--config", str(tmp_path / "nope.toml"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="--config .*bad.json"):
        parse("--config", str(tmp_path / "bad.json"))


def test_a_hostile_config_file_is_refused_with_one_line_naming_it(tmp_path):
    deep = 100_000
    (tmp_path / "deep.json").write_text('{"inner": ' + "[" * deep + "]" * deep + "}")
    (tmp_path / "deep.toml").write_text("name = " + "[" * deep + "]" * deep + "\n")
    for name in ("deep.json", "deep.toml"):
        with pytest.raises(ValueError, match=rf"^--config .*{name}: nested too deeply to read"):
            parse("--config", str(tmp_path / name))
    (tmp_path / "binary.toml").write_bytes(b"name = 'x'\n\xff\xfe\x00")
    with pytest.raises(ValueError, match=r"^--config .*binary\.toml: not UTF-8 text \(byte 0xff at offset 11\); "):
        parse("--config", str(tmp_path / "binary.toml"))
    with pytest.raises(ValueError, match=r"^--config /dev/zero: not a regular file \(a character device\); expected"):
        parse("--config", "/dev/zero")
    (tmp_path / "huge.json").write_text("{}" + " " * config.CONFIG_BYTES_MOST)
    with pytest.raises(ValueError, match=r"^--config .*huge\.json: 1,048,578 bytes, more than a config's 1,048,576"):
        parse("--config", str(tmp_path / "huge.json"))
    (tmp_path / "nan.json").write_text('{"inner": {"cap": NaN}}')
    with pytest.raises(ValueError, match=r"^inner.cap: got NaN"):
        parse("--config", str(tmp_path / "nan.json"))


def test_a_trainer_refuses_a_hostile_config_or_batch_in_one_line_with_exit_code_2(tmp_path):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    for argv, message in ((["--config", str(tmp_path / "deep.json")], "deep.json: nested too deeply to read"),
                          (["--set", "reward.w_exposure=nan"], "reward.w_exposure: got NaN (not a number)"),
                          (["--batch", "100000000"], "num_envs 100,000,000: the vector env's spaces alone")):
        proc = subprocess.run([sys.executable, "-m", "experiments.lol_train", *argv, "--episodes", "1", "--out",
                               str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True, timeout=300,
                              preexec_fn=_limit_memory)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
        assert proc.stderr.startswith("lol_train: error: ") and message in proc.stderr


def _limit_memory() -> None:
    """At most 4 GiB of address space (torch's start needs about 2): a regression fails, not the machine."""
    resource.setrlimit(resource.RLIMIT_AS, (2**32, 2**32))


def test_a_flag_that_became_a_setting_says_which(capsys):
    with pytest.raises(SystemExit):
        lol_train.parse_args(["--w-exposure", "80"])
    assert "--set reward.w_exposure=VALUE" in capsys.readouterr().err


def test_a_mistyped_value_or_option_gets_one_line_and_the_closest_match(capsys):
    """No usage block: the error, what was meant and the accepted values."""
    for argv, hint in ((["--preset", "shiped"], "did you mean 'shipped'? (choose from global-light, shipped, "
                                                "shipped-sac, rellie, uneven-light, local-light, list)"),
                       (["--episods", "3"], "did you mean --episodes?")):
        with pytest.raises(SystemExit) as exit_info:
            lol_train.parse_args(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "usage:" not in err and len(err.splitlines()) == 2, err
        assert err.startswith("lol_train: error: ") and hint in err.splitlines()[0], err


@pytest.mark.parametrize("name", ["lol_train", "supervised_train"])
def test_preset_list_prints_each_preset_with_what_it_is_for_and_its_cost(name, capsys):
    module, parse_args, _ = ALL_TRAINERS[name]
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--preset", "list"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    starts = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert starts == list(module.PRESETS)
    flat = " ".join(out.split())
    for preset_name, preset in module.PRESETS.items():
        first = " ".join(preset.doc).split(". ")[0]
        assert re.search(rf"{re.escape(preset_name)} {re.escape(first)}.*?Time: (about|not measured) ", flat), \
            preset_name


def test_unused_section_refuses_a_section_changed_from_its_base_and_resets_it():
    cfg = config.replace_path(lol_train.Config(), {"sac.batch": 2})
    with pytest.raises(ValueError, match="sac.batch: the agent is a3c; these settings would be ignored"):
        config.unused_section(cfg, "sac", "the agent is a3c")
    assert config.unused_section(lol_train.Config(), "sac", "the agent is a3c") == lol_train.Config()
    # set by the base (a preset), not by the user: left out of the run, at the defaults
    assert config.unused_section(cfg, "sac", "the agent is a3c", base=cfg) == lol_train.Config()
    with pytest.raises(ValueError, match="sac.batch: the agent is a3c"):
        config.unused_section(config.replace_path(cfg, {"sac.batch": 3}), "sac", "the agent is a3c", base=cfg)


# --- the trainers' command lines ----------------------------------------------------------------------
#: Every trainer: its module, the function that reads its command line, the one that checks a config.
ALL_TRAINERS = {**{name: (m, m.parse_args, m.check) for name, m in TRAINERS.items()},
                "rse_train": (rse_train, rse_train.parse, rse_train.check),
                "supervised_train": (supervised_train, supervised_train.parse, supervised_train.resolve)}


@pytest.mark.parametrize("name", ALL_TRAINERS)
def test_help_is_short_names_no_run_and_every_preset_says_its_time(name, capsys):
    module, parse_args, check = ALL_TRAINERS[name]
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = capsys.readouterr().out
    options = [line for line in text.splitlines() if re.match(r"\s{2}-", line)]
    assert len(options) <= 30 and len(text.splitlines()) <= 120, (len(options), len(text.splitlines()))
    assert not HISTORY.search(text), HISTORY.search(text)
    flat = " ".join(text.split())
    for preset_name, preset in module.PRESETS.items():
        assert isinstance(preset, config.Preset) and preset.doc, preset_name
        doc = " ".join(preset.doc)
        assert not re.search(r"\d+ (s|min|h)\b", doc), doc  # a cost is stated once: in the Preset's fields
        assert re.search(rf"{re.escape(preset_name)}: .*?Time: (about \S+ \S+|not measured) on 2 CPU cores; "
                         r"(about \S+ \S+|not measured) on one H100 GPU\.", flat), preset_name
        start = preset()
        check(start, start)  # every preset is a valid config


@pytest.mark.parametrize("name", TRAINERS)
def test_every_setting_has_a_docstring(name):
    module = TRAINERS[name]
    for path, (_, holder) in config.paths(module.Config).items():
        assert config.field_docs(holder).get(path.rsplit(".", 1)[-1]), path


def test_a_runs_config_json_reruns_it_exactly(tmp_path):
    """``--config RUN`` (its config.json) with another --out trains the same weights."""
    tiny = ["--episodes", "2", "--eval-every", "2", "--batch", "2", "--crop", "16", "--steps", "2", "--width", "8",
            "--samples", "0", "--threads", "1", "--eval-images", "1", "--set", "model.downscale=2"]
    first = denoise_train.main([*tiny, "--out", str(tmp_path / "a")])
    again = denoise_train.main(["--config", str(first), "--out", str(tmp_path / "b")])
    a, b = (load_checkpoint(Path(run) / "checkpoints" / "last.pt") for run in (first, again))
    assert all(torch.equal(v, b["state_dict"][k]) for k, v in a["state_dict"].items())
    assert {**a["extra"]["config"]["run"], "out": ""} == {**b["extra"]["config"]["run"], "out": ""}


@pytest.mark.slow
def test_print_config_of_a_trainer_answers_without_training(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "experiments.lol_train", "--preset", "rellie", "--print-config",
                           "--out", str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["task"]["channel_coupling"] == 0.9 and printed["task"]["alpha_min"] == -0.3
    assert not (tmp_path / "run").exists()


#: Flat settings recorded by the trainers that wrote the shipped weights -> this config's paths.
RECORDED = {
    "episodes": "run.episodes", "batch": "run.batch", "eval_every": "run.eval_every", "seed": "run.seed",
    "split_seed": "run.split_seed", "keep_evals": "run.keep_evals", "crop": "task.crop", "steps": "task.steps",
    "data": "task.data", "width": "model.width", "downscale": "model.downscale", "agent": "agent",
}
LOWLIGHT = {**{k: f"reward.{k}" for k in ("w_exposure", "w_color", "w_spatial", "w_smooth", "exposure_target",
                                         "exposure_patch", "exposure_mean", "exposure_relative", "smooth_on_mean",
                                         "conditioned")},
            **{f"{k}_range": f"ranges.{k}" for k in ("w_exposure", "w_color", "w_spatial", "w_smooth")},
            "exposure_range": "ranges.exposure", "gamma": "a3c.gamma", "lr": "a3c.lr", "entropy": "a3c.entropy",
            "lr_decay": "a3c.lr_decay", **{k: f"task.{k}" for k in ("min_steps", "alpha_channels", "alpha_min",
                                                                   "channel_coupling", "damping", "policy_side",
                                                                   "exposure_gap")}}
DENOISE = {"sigma": "task.sigma", "predictor": "task.predictor", "observe_prediction": "task.observe_prediction",
           "eval_images": "task.eval_images", "gray": "task.gray"}


@pytest.mark.parametrize("name", ALL_TRAINERS)
def test_the_episode_a_preset_says_its_shipped_file_was_picked_at_is_the_files(name):
    """A preset's "(the card picks episode N)" is the episode its shipped checkpoint records."""
    module = ALL_TRAINERS[name][0]
    for preset_name, preset in module.PRESETS.items():
        doc = " ".join(preset.doc)
        weights, episode = re.search(r"rlenhance/weights/(\w+\.pt)", doc), re.search(r"episode ([\d,]+)", doc)
        if weights and episode:
            extra = load_checkpoint(ROOT / "rlenhance" / "weights" / weights.group(1))["extra"]
            assert int(episode.group(1).replace(",", "")) == extra["episode"], (preset_name, weights.group(1))


@pytest.mark.parametrize("module, preset, weights, names", [
    (lol_train, "shipped", "lowlight_a3c.pt", LOWLIGHT),
    (lol_train, "local-light", "lowlight_local.pt", LOWLIGHT),
    (denoise_train, "color", "a3c_denoise_color.pt", {**DENOISE, "lr_decay": "a3c.lr_decay"}),
    (denoise_train, "color-sac", "sac_denoise_color.pt", DENOISE),
])
def test_each_shipped_preset_is_the_training_settings_its_weights_record(module, preset, weights, names):
    """The settings the shipped weights were trained with (their checkpoint's record) are their preset's."""
    extra = load_checkpoint(ROOT / "rlenhance" / "weights" / weights)["extra"]
    cfg = module.check(module.PRESETS[preset]())
    if "config" in extra:  # the whole resolved config: all of it but where the run started and went, its machine
        machine = {"init_policy", "out", "threads", "device", "resume"}
        # read as --config reads a run's config.json: a setting added since takes its default, the run's behaviour
        record = config.from_dict(module.Config, extra["config"])
        recorded, preset_config = (config.flatten(config.to_dict(c)) for c in (record, cfg))
        assert ({k: v for k, v in recorded.items() if k.rsplit(".", 1)[-1] not in machine}
                == {k: v for k, v in preset_config.items() if k.rsplit(".", 1)[-1] not in machine})
        return
    recorded = extra.get("args")
    if recorded is None:
        pytest.skip(f"{weights} records no training settings")
    for flat, path in {**RECORDED, **names}.items():
        if flat not in recorded or (flat == "predictor" and not str(recorded[flat]).startswith("rlenhance/")):
            continue
        want, have = (list(v) if isinstance(v, (list, tuple)) else v
                      for v in (recorded[flat], config.get_path(cfg, path)))
        want = [want] if path == "task.sigma" and not isinstance(want, list) else want  # one level: a number
        assert have == want, (flat, path)


def test_an_older_config_reads_as_the_run_it_recorded_its_colour_ratio_weight_a_term_its_light_uniform():
    from experiments import lol_train

    old = config.from_dict(lol_train.Config, {"reward": {"w_color_ratio": 20.0, "terms": ["reference=300"]}})
    assert old.reward.terms == ("reference=300", "color_ratio=20")
    recorded = {"agent": "a3c", "run": {}, "task": {"crop": 64}, "reward": {"w_color_ratio": 0.0}}
    older = config.from_dict(lol_train.Config, recorded)  # a whole record from before uneven light
    assert (older.reward.terms, older.task.uneven, older.task.crop) == ((), 0.0, 64)
    for partial in ({"task": {"crop": 64}, "reward": {"w_color_ratio": 0.0}}, {"reward": {"w_color": 5.0}}):
        now = config.from_dict(lol_train.Config, partial)  # a setting or two: the defaults hold the rest
        assert (now.reward.terms, now.task.uneven) == (lol_train.Config().reward.terms, 1.0)
    with pytest.raises(ValueError, match=r"reward.w_color_ratio: expected a number, got \[1, 2\]"):
        config.from_dict(lol_train.Config, {"reward": {"w_color_ratio": [1, 2]}})

