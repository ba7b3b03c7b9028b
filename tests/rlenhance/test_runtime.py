"""Process-wide runtime settings: the CPU thread count the entry points choose."""

import os

import cv2
import pytest
import torch

from rlenhance.runtime import configure_threads


@pytest.mark.parametrize("cores, expected", [(1, 1), (2, 1), (4, 3), (16, 15), (None, 1)])
def test_default_leaves_one_core_free(monkeypatch, cores, expected):
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert configure_threads() == expected
    assert torch.get_num_threads() == expected


@pytest.mark.parametrize("cores, processes, expected", [(2, 2, 1), (16, 2, 7), (16, 4, 3), (4, 8, 1)])
def test_default_is_shared_by_the_ranks_of_a_machine(monkeypatch, cores, processes, expected):
    """torchrun's N processes on one machine share its cores but one (2 ranks on 2 cores: one thread each)."""
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert configure_threads(0, processes=processes) == expected == torch.get_num_threads() == cv2.getNumThreads()
    assert configure_threads(5, processes=processes) == 5  # an explicit count is taken as given
    with pytest.raises(ValueError, match="processes"):
        configure_threads(0, processes=0)


@pytest.mark.parametrize("cores, processes, expected", [(1, 1, 1), (2, 1, 2), (16, 2, 8), (4, 8, 1)])
def test_no_spare_core_takes_every_core(monkeypatch, cores, processes, expected):
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert configure_threads(0, processes=processes, spare=0) == expected == torch.get_num_threads()


def test_explicit_count_and_bad_values():
    assert configure_threads(3) == 3 and torch.get_num_threads() == 3
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads"):
            configure_threads(bad)


def test_the_command_line_and_the_trainers_use_it(monkeypatch, tmp_path):
    """`rlenhance enhance` leaves a core free (the busy-neighbour fix); the trainers' --threads 0 takes
    every core."""
    from experiments.lol_train import parse_args
    from experiments.rl_common import setup
    from rlenhance.cli import main

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    torch.set_num_threads(1)
    assert main(["enhance", str(tmp_path / "missing.png"), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 1
    assert torch.get_num_threads() == 3
    torch.set_num_threads(1)
    setup(parse_args(["--out", str(tmp_path / "run")]))
    assert torch.get_num_threads() == 4


def test_constant_tensor_is_made_once_per_values_dtype_and_device():
    from rlenhance.runtime import constant_tensor

    table = constant_tensor((0.0, 0.5, 1.0), torch.float32, torch.device("cpu"))
    assert torch.equal(table, torch.tensor([0.0, 0.5, 1.0]))
    assert constant_tensor((0.0, 0.5, 1.0), torch.float32, torch.device("cpu")) is table
    assert constant_tensor((0.0, 0.5, 1.0), torch.float64, torch.device("cpu")).dtype == torch.float64
    assert constant_tensor(((1, 2), (3, 4)), torch.long, torch.device("cpu")).shape == (2, 2)
