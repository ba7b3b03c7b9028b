"""PixelReplayBuffer: quantisation error bounds, memory bound, ring order, seeded sampling, errors."""

import pytest
import torch

from agents.buffers import MB, PixelReplayBuffer
from rlenhance.errors import ImageError


def batch(b=4, size=(8, 8), start=0, discrete=True, gen=None, lo=0.0, hi=1.0):
    """A batch of B transitions whose cond vector holds the transition's index start..start+B-1."""
    gen = gen if gen is not None else torch.Generator().manual_seed(start)
    h, w = size
    idx = torch.arange(start, start + b, dtype=torch.float32)

    def obs():
        return {"image": lo + (hi - lo) * torch.rand(b, 3, h, w, generator=gen),
                "mask": (torch.rand(b, 1, h, w, generator=gen) > 0.5).float(),
                "cond": torch.stack([idx, -idx], dim=1)}

    if discrete:
        actions = torch.randint(0, 9, (b, 1, h, w), generator=gen)
    else:
        actions = torch.rand(b, 3, h, w, generator=gen) * 2 - 1
    reward = torch.randn(b, 1, h, w, generator=gen) * 3
    done = torch.arange(b) % 2 == 0
    return obs(), actions, reward, obs(), done


def test_uint8_round_trip_within_half_a_level():
    buf = PixelReplayBuffer(1.0, storage="uint8", n_actions=9)
    obs, actions, reward, nxt, done = batch(b=5)
    buf.add(obs, actions, reward, nxt, done)
    s = buf.get(torch.arange(5))
    for got, ref in ((s.obs, obs), (s.next_obs, nxt)):
        assert got["image"].dtype == torch.float32
        assert (got["image"] - ref["image"]).abs().max() <= 1 / 510 + 1e-6
        assert torch.equal(got["mask"], ref["mask"])          # constant levels come back exactly
        assert torch.equal(got["cond"], ref["cond"])          # vectors are float32
    assert s.actions.dtype == torch.int64 and torch.equal(s.actions, actions)
    assert (s.reward_map - reward).abs().max() <= reward.abs().max() * 2**-11
    assert torch.equal(s.done, done.float())
    assert buf._store["actions"].dtype == torch.int8 and buf._store["obs/image"].dtype == torch.uint8


def test_uint8_keeps_values_outside_unit_range():
    # Denoise states leave [0, 1]: the per-entry range keeps them, error <= (max - min) / 510
    buf = PixelReplayBuffer(1.0, storage="uint8")
    obs, actions, reward, nxt, done = batch(b=3, lo=-0.4, hi=1.5)
    buf.add(obs, actions, reward, nxt, done)
    got = buf.get(torch.arange(3)).obs["image"]
    span = obs["image"].flatten(1).amax(1) - obs["image"].flatten(1).amin(1)
    err = (got - obs["image"]).abs().flatten(1).amax(1)
    assert torch.all(err <= span / 510 + 1e-6)
    assert got.min() < 0 and got.max() > 1


def test_float16_round_trip_and_continuous_actions():
    buf = PixelReplayBuffer(1.0, storage="float16")
    obs, actions, reward, nxt, done = batch(b=4, discrete=False)
    buf.add(obs, actions, reward, nxt, done)
    s = buf.get(torch.arange(4))
    # float16 keeps 11 significant bits: relative error <= 2**-11
    assert torch.all((s.obs["image"] - obs["image"]).abs() <= obs["image"].abs() * 2**-11 + 1e-8)
    assert s.actions.dtype == torch.float32
    assert torch.all((s.actions - actions).abs() <= actions.abs() * 2**-11 + 1e-8)
    assert buf._store["obs/image"].dtype == torch.float16 and buf._store["actions"].dtype == torch.float16


#: Bytes of one transition of ``batch()`` in uint8 storage: per observation the image 3*8*8 uint8 +
#: its float32 (offset, scale), the mask 1*8*8 + range, cond 2 float32 - twice (obs, next_obs);
#: actions 64 int8; reward map 64 float16; done 1 bool.
TRANSITION_BYTES = 2 * ((192 + 8) + (64 + 8) + 8) + 64 + 128 + 1


def test_transition_size_and_memory_never_exceeds_the_bound():
    obs, actions, reward, nxt, done = batch(b=1)
    expected = TRANSITION_BYTES
    bound_mb = 10.5 * expected / MB
    buf = PixelReplayBuffer(bound_mb, storage="uint8", n_actions=9)
    assert buf.nbytes == 0 and len(buf) == 0
    buf.add(obs, actions, reward, nxt, done)
    assert buf.transition_nbytes == expected
    assert buf.capacity == 10
    for i in range(6):
        buf.add(*batch(b=3, start=1 + 3 * i))
        assert buf.nbytes <= bound_mb * MB and len(buf) <= buf.capacity
        assert buf.used_mb * MB <= buf.nbytes
    assert len(buf) == 10


def test_ring_overwrites_the_oldest_in_order():
    buf = PixelReplayBuffer(5.5 * TRANSITION_BYTES / MB, n_actions=9)

    def held():
        return buf.get(torch.arange(len(buf))).obs["cond"][:, 0].tolist()

    buf.add(*batch(b=3, start=0))
    assert held() == [0, 1, 2]
    buf.add(*batch(b=3, start=3))            # 5 fits, 5 overwrites slot 0
    assert buf.capacity == 5 and held() == [5, 1, 2, 3, 4]
    buf.add(*batch(b=7, start=6))            # larger than the buffer: only its last 5 are kept
    assert sorted(held()) == [8, 9, 10, 11, 12]
    # write position continues the ring: next item goes after 12
    slot_of_12 = held().index(12)
    buf.add(*batch(b=1, start=13))
    assert held()[(slot_of_12 + 1) % 5] == 13
    # next_obs travels with obs
    s = buf.get(torch.arange(5))
    assert torch.equal(s.obs["cond"], s.next_obs["cond"])


def test_seeded_sampling_is_reproducible():
    buf = PixelReplayBuffer(1.0, n_actions=9)
    for i in range(4):
        buf.add(*batch(b=4, start=4 * i))
    a = buf.sample(6, torch.Generator().manual_seed(7))
    b = buf.sample(6, torch.Generator().manual_seed(7))
    c = buf.sample(6, torch.Generator().manual_seed(8))
    assert torch.equal(a.obs["image"], b.obs["image"]) and torch.equal(a.actions, b.actions)
    assert not torch.equal(a.obs["cond"], c.obs["cond"])
    assert a.obs["image"].shape == (6, 3, 8, 8) and a.reward_map.shape == (6, 1, 8, 8)
    assert a.done.shape == (6,) and a.done.dtype == torch.float32
    assert a.obs["image"].device == buf.device
    # samples are the transitions at those positions (cond = transition index)
    idx = a.obs["cond"][:, 0].long()
    torch.testing.assert_close(a.obs["cond"][:, 1], -idx.float())


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="capacity_mb"):
        PixelReplayBuffer(0)
    with pytest.raises(ValueError, match="storage"):
        PixelReplayBuffer(1, storage="int4")
    with pytest.raises(ValueError, match="holds no transition"):
        PixelReplayBuffer(100 / MB).add(*batch(b=2))
    with pytest.raises(ValueError, match="empty"):
        PixelReplayBuffer(1).sample(2)
    buf = PixelReplayBuffer(1.0, n_actions=9)
    buf.add(*batch(b=2))
    with pytest.raises(ImageError, match="actions has shape"):
        buf.add(*batch(b=2, size=(8, 9)))
    obs, actions, reward, nxt, done = batch(b=2)
    with pytest.raises(ImageError, match=r"obs/image has shape \(2, 3, 8, 9\); expected \(B, 3, 8, 8\)"):
        buf.add({**obs, "image": torch.rand(2, 3, 8, 9)}, actions, reward, nxt, done)
    with pytest.raises(ImageError, match="batch sizes"):
        buf.add(obs, actions[:1], reward, nxt, done)
    with pytest.raises(ImageError, match="keys"):
        buf.add({"image": obs["image"], "cond": obs["cond"]}, actions, reward,
                {"image": nxt["image"], "cond": nxt["cond"]}, done)
    with pytest.raises(ImageError, match="next_obs"):
        buf.add(obs, actions, reward, {"image": nxt["image"]}, done)
    with pytest.raises(ValueError, match=r"\[0, 8\]"):
        buf.add(obs, actions + 9, reward, nxt, done)
    cont = PixelReplayBuffer(1.0)
    obs, actions, reward, nxt, done = batch(b=2, discrete=False)
    cont.add(obs, actions, reward, nxt, done)
    with pytest.raises(ValueError, match="continuous"):
        cont.add(obs, actions.round().long(), reward, nxt, done)
