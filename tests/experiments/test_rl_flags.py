"""The RL trainers' --sac-* flags come from agents.sac.SACConfig: the field each sets, its default and
its help (experiments.rl_common.config_arg / config_flags)."""

import dataclasses
import typing

import pytest

from agents.sac import SACConfig
from experiments.rl_common import RLArgs, config_flags, resolve_args, sac_config
from experiments.runs import parse_config

FLAGS = {"sac_buffer_mb": "buffer_mb", "sac_tau": "tau", "sac_batch": "batch_size",
         "sac_updates": "updates_per_episode", "sac_learning_starts": "learning_starts",
         "sac_alpha_lr": "alpha_lr", "sac_init_alpha": "init_alpha", "sac_all_action_rewards": "all_action_rewards",
         "sac_actor_updates": "actor_updates", "sac_trust_region_kl": "trust_region_kl",
         "sac_critic_warmup": "critic_warmup"}


def test_each_sac_flag_sets_one_sacconfig_field_of_the_same_type():
    assert config_flags(RLArgs, SACConfig) == FLAGS
    ours, theirs = typing.get_type_hints(RLArgs), typing.get_type_hints(SACConfig)
    for flag, name in FLAGS.items():
        assert ours[flag] == theirs[name] | None  # unset (None): the config's default
        assert next(f for f in dataclasses.fields(RLArgs) if f.name == flag).default is None


def test_help_is_the_config_fields_docstring_and_default(capsys):
    with pytest.raises(SystemExit):
        parse_config(RLArgs, ["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--sac-tau SAC_TAU sac: Polyak factor of the target critics: target <- (1 - tau) target + tau critic " \
           f"(unset: {SACConfig.tau:g})" in text
    assert f"sac: Transitions (images) per update (unset: {SACConfig.batch_size})" in text
    assert "sac: Gradient updates after each collected episode; None = one per environment step (default" in text


def test_unset_flags_take_the_config_defaults_and_given_ones_reach_the_config():
    args = resolve_args(RLArgs(agent="sac"))
    defaults = SACConfig()
    assert {flag: getattr(args, flag) for flag in FLAGS} == {f: getattr(defaults, name) for f, name in FLAGS.items()}
    config = sac_config(resolve_args(RLArgs(agent="sac", sac_batch=3, sac_updates=2, sac_tau=0.5, lr=1e-3)))
    assert (config.batch_size, config.updates_per_episode, config.tau, config.actor_lr) == (3, 2, 0.5, 1e-3)
    assert resolve_args(RLArgs()).sac_batch is None  # a3c runs record no SAC settings
    with pytest.raises(ValueError, match="--sac-\\* flags"):
        resolve_args(RLArgs(agent="sac", sac_tau=2.0))


def test_an_optional_bool_field_is_a_flag_pair_left_none_when_not_given():
    """``bool | None`` (a config field whose None means "the other config's default") parses as --x / --no-x:
    as ``type=bool`` it would read ``--x False`` as True."""

    @dataclasses.dataclass
    class Config:
        switch: bool | None = None
        number: float | None = None

    assert parse_config(Config, []) == Config(None, None)
    assert parse_config(Config, ["--switch"]).switch is True
    assert parse_config(Config, ["--no-switch"]).switch is False
    assert parse_config(Config, ["--number", "0.5"]).number == 0.5
    with pytest.raises(SystemExit):  # a value after the flag is refused, not read as a truthy string
        parse_config(Config, ["--switch", "False"])


def test_the_critic_lr_has_its_own_flag():
    """--sac-critic-lr, CleanRL's --q-lr: unset, the critics learn at --lr as the actor does."""
    args = resolve_args(parse_config(RLArgs, ["--agent", "sac", "--lr", "1e-3"]))
    assert (sac_config(args).actor_lr, sac_config(args).critic_lr) == (1e-3, 1e-3)
    args = resolve_args(parse_config(RLArgs, ["--agent", "sac", "--sac-critic-lr", "3e-3"]))
    assert (sac_config(args).actor_lr, sac_config(args).critic_lr) == (SACConfig.actor_lr, 3e-3)
    for bad in ("0", "nan", "inf"):
        with pytest.raises(ValueError, match="critic_lr=.*a finite number > 0"):
            resolve_args(parse_config(RLArgs, ["--agent", "sac", "--sac-critic-lr", bad]))
