"""A sharded vector env (``shard=(rank, world_size)``, one per rank of a data-parallel job) holds its
rows of the env of the whole batch: the same images, crops, noise, masks and settings for the same
seed, and the same rewards for the same actions; it draws only its own rows, and a row's start does
not depend on the batch size."""

import pytest
import torch

import envs
from envs.rse import make_rse_vec

CASES = [
    ("rlenhance/LowLight-v1", {"crop": 16, "conditioned": True}),
    ("rlenhance/LowLight-v1", {"crop": 16, "action_type": "continuous"}),
    ("rlenhance/Denoise-v0", {"crop": 16, "sigma": (15.0, 50.0)}),
    ("rlenhance/Completion-v0", {"crop": 24}),
]
BATCH, WORLD = 6, 3


def _actions(venv, n: int, seed: int) -> torch.Tensor:
    space = venv.single_action_space
    generator = torch.Generator().manual_seed(seed)
    if hasattr(space, "nvec"):
        return torch.randint(int(space.nvec.flat[0]), (n, *space.shape), generator=generator)
    return torch.rand((n, *space.shape), generator=generator) * 2 - 1


def _assert_rows(full: dict, parts: list[dict]) -> None:
    for key, value in full.items():
        torch.testing.assert_close(torch.cat([part[key] for part in parts]), value, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("env_id, kwargs", CASES, ids=[f"{c[0].split('/')[1]}-{i}" for i, c in enumerate(CASES)])
def test_shards_are_the_rows_of_the_whole_batch(env_id, kwargs):
    full = envs.make_vec(env_id, num_envs=BATCH, max_episode_steps=2, **kwargs)
    shards = [envs.make_vec(env_id, num_envs=BATCH // WORLD, max_episode_steps=2, shard=(rank, WORLD), **kwargs)
              for rank in range(WORLD)]
    for episode, seed in enumerate((11, None)):  # a seeded reset, then one that continues the env's RNG
        obs, _ = full.reset(seed=seed)
        _assert_rows(obs, [shard.reset(seed=seed)[0] for shard in shards])
        actions = _actions(full, BATCH, episode)
        step = full.step(actions)
        local = BATCH // WORLD
        parts = [shard.step(actions[r * local:(r + 1) * local]) for r, shard in enumerate(shards)]
        _assert_rows(step[0], [p[0] for p in parts])
        _assert_rows({"reward": step[1], "reward_map": step[4]["reward_map"]},
                     [{"reward": p[1], "reward_map": p[4]["reward_map"]} for p in parts])
    # a rank's shard differs from another's (the test compares rows, not one repeated batch)
    assert not torch.equal(shards[0].reset(seed=3)[0]["image"], shards[1].reset(seed=3)[0]["image"])


class _CountingItems:
    """A task's data set, counting the items drawn from it."""

    def __init__(self, dataset):
        self.dataset, self.drawn = dataset, 0

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        self.drawn += 1
        return self.dataset[index]


@pytest.mark.parametrize("env_id, kwargs", CASES, ids=[f"{c[0].split('/')[1]}-{i}" for i, c in enumerate(CASES)])
def test_a_shard_draws_its_own_rows_only(env_id, kwargs):
    local = BATCH // WORLD
    shard = envs.make_vec(env_id, num_envs=local, max_episode_steps=2, shard=(WORLD - 1, WORLD), **kwargs)
    shard.task.dataset = _CountingItems(shard.task.dataset)
    shard.reset(seed=5)
    shard.reset()
    assert shard.task.dataset.drawn == 2 * local  # not 2 * BATCH: the other ranks' rows are not drawn


@pytest.mark.parametrize("env_id, kwargs", CASES, ids=[f"{c[0].split('/')[1]}-{i}" for i, c in enumerate(CASES)])
def test_a_row_does_not_depend_on_the_batch_size(env_id, kwargs):
    small = envs.make_vec(env_id, num_envs=2, max_episode_steps=2, **kwargs)
    large = envs.make_vec(env_id, num_envs=4, max_episode_steps=2, **kwargs)
    for seed in (4, None):  # a seeded reset, then one that continues the env's RNG
        obs, wide = small.reset(seed=seed)[0], large.reset(seed=seed)[0]
        _assert_rows({k: v[:2] for k, v in wide.items()}, [obs])
        assert not torch.equal(wide["image"][2:], obs["image"])


def test_rse_shards_are_the_rows_of_the_whole_batch():
    full = make_rse_vec(4, crop=16)
    shards = [make_rse_vec(2, crop=16, shard=(rank, 2)) for rank in range(2)]
    obs, _ = full.reset(seed=2)
    parts = [shard.reset(seed=2)[0] for shard in shards]
    for key, value in obs.items():  # the candidates: the same VAE on each image, batched differently
        torch.testing.assert_close(torch.cat([part[key] for part in parts]), value, msg=key)


def test_reset_options_are_taken_as_given_by_a_shard():
    shard = envs.make_vec("rlenhance/Denoise-v0", num_envs=2, crop=8, shard=(1, 2))
    clean = torch.rand(2, 1, 8, 8)
    obs, _ = shard.reset(seed=0, options={"clean": clean, "noisy": clean})
    assert torch.equal(obs["image"], clean)


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0), (1,)])
def test_bad_shard_is_refused(shard):
    with pytest.raises(ValueError, match="shard"):
        envs.make_vec("rlenhance/Denoise-v0", num_envs=2, crop=8, shard=shard)
