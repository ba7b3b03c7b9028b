"""Data-parallel training is the same math as one process: K updates with a global batch B on 2
gloo ranks (torchrun) give the weights of one process with batch B, for A3C, SAC and a supervised
model with batch norm; plus the single-process pieces of :mod:`agents.distributed`."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.distributed import GlobalBatchNorm, Ranks, sync_batch_norm
from rlenhance.models.mrpnet import CombinedModel

ROOT = Path(__file__).resolve().parents[2]
JOB = Path(__file__).with_name("ddp_job.py")
RANKS = 2
TIMEOUT_S = 600


def _load_job():
    spec = importlib.util.spec_from_file_location("ddp_job", JOB)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


job = _load_job()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """Every scenario of tests/agents/ddp_job.py run once by 2 gloo ranks; the folder of their weights."""
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(RANKS), str(JOB), str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return out


def _assert_same(distributed: dict[str, torch.Tensor], single: dict[str, torch.Tensor], skip: tuple[str, ...] = ()):
    assert set(distributed) == set(single)
    for key in sorted(set(single) - set(skip)):
        torch.testing.assert_close(distributed[key], single[key], msg=lambda m, key=key: f"{key}: {m}")


@pytest.mark.slow
def test_ddp_a3c_two_ranks_match_one_process(two_ranks):
    single = job.a3c_weights(Ranks())
    distributed = torch.load(two_ranks / "a3c.pt")
    _assert_same(distributed, single)
    initial = job.a3c_weights(Ranks(), episodes=0)  # the updates moved the weights: no two untrained nets compared
    assert not all(torch.allclose(initial[k], single[k]) for k in single)


@pytest.mark.slow
def test_ddp_a3c_per_row_smoothness_weights_are_each_ranks_own(two_ranks):
    """Each rank's env hands A3C the smoothness weights of the rows it steps: the job's update is that of
    one process weighting the global batch's rows."""
    single = job.a3c_smooth_weights(Ranks())
    _assert_same(torch.load(two_ranks / "a3c_smooth.pt"), single)
    initial = job.a3c_smooth_weights(Ranks(), episodes=0)
    assert not all(torch.allclose(initial[k], single[k]) for k in single)


@pytest.mark.slow
def test_ddp_sac_two_ranks_match_one_process(two_ranks):
    single = job.sac_weights(Ranks())
    distributed = torch.load(two_ranks / "sac.pt")
    _assert_same(distributed, single)
    initial = job.sac_weights(Ranks(), episodes=0)  # actor, critics, targets and alpha all moved
    for prefix in ("policy.", "critics.", "targets.", "log_alpha"):
        assert not all(torch.allclose(initial[k], single[k]) for k in single if k.startswith(prefix)), prefix


@pytest.mark.slow
def test_ddp_batch_norm_uses_the_global_batch(two_ranks):
    single = job.batch_norm_values(Ranks())
    distributed = torch.load(two_ranks / "batch_norm.pt")
    _assert_same(distributed, single)


@pytest.mark.slow
def test_ddp_supervised_two_ranks_match_one_process(two_ranks, tmp_path):
    single = job.supervised_weights(tmp_path / "one")
    distributed = torch.load(two_ranks / "supervised.pt")
    # A convolution's bias feeding batch norm has a zero gradient in exact arithmetic: Adam turns its
    # float noise (~1e-9) into steps of size lr in both runs, so that bias and its norm's running mean
    # (which follows it) drift by noise, and the network's output does not depend on the bias.
    noise_driven = ("generator.blocks.0.conv.bias", "generator.blocks.0.bn.running_mean")
    _assert_same(distributed, single, skip=noise_driven)
    config = (two_ranks / "supervised_run" / "config.json").read_text()
    assert '"world_size": 2' in config
    assert '"world_size": 1' in (tmp_path / "one" / "config.json").read_text()


# --- one process -----------------------------------------------------------------------------------------------
def test_ranks_from_torchrun_environment():
    assert Ranks.from_env({}) == Ranks()
    ranks = Ranks.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert (ranks.rank, ranks.world_size, ranks.local_rank, ranks.local_world_size) == (3, 4, 1, 2)
    assert ranks.distributed and not ranks.writes and ranks.shard == (3, 4)
    with pytest.raises(ValueError, match="LOCAL_RANK"):
        Ranks.from_env({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="rank"):
        Ranks(rank=2, world_size=2)


def test_global_batch_split_refuses_uneven_shares():
    ranks = Ranks(rank=1, world_size=4, local_rank=1, local_world_size=4)
    assert ranks.split(16, "--batch") == 4 and ranks.rows(4) == slice(4, 8)
    with pytest.raises(ValueError, match=r"--batch 6: .* 4 processes .* multiple of 4 \(e.g. 4 or 8\)"):
        ranks.split(6, "--batch")
    # rank 1's rows of one global draw
    draw = ranks.draw_rows(lambda n: torch.arange(n * 2).view(n, 2), 2)
    assert draw.tolist() == [[4, 5], [6, 7]]
    assert Ranks().draw_rows(lambda n: torch.arange(n), 3).tolist() == [0, 1, 2]


def test_single_process_collectives_are_identities():
    ranks = Ranks()
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    ranks.average_gradients([p])
    assert p.grad.tolist() == [2.0, 2.0, 2.0]
    assert ranks.mean_stats({"loss": 1.5, "name": "x"}) == {"loss": 1.5, "name": "x"}
    assert ranks.stop_signal(None) is None and ranks.stop_signal(15) == 15
    assert ranks.on_rank0(lambda: 7) == 7


def test_sync_batch_norm_keeps_weights_and_state_dict_keys():
    model = CombinedModel(3, width=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.generator.blocks[0].bn.weight.requires_grad_(False)
    sync_batch_norm(model)
    assert isinstance(model.generator.blocks[0].bn, GlobalBatchNorm)
    assert not model.generator.blocks[0].bn.weight.requires_grad
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(before[k], after[k]) for k in before)
    x = torch.rand(2, 3, 16, 16)
    assert model(x).shape == (2, 3, 16, 16)  # no process group: plain batch norm
