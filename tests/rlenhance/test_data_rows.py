"""Counter-based draws of a batch's rows (rlenhance.data.rows), the crops an ImageBank gathers, and the
degradations driven by a row stream: a row's numbers depend on (seed, row) alone, whatever the batch."""

import numpy as np
import pytest
import torch

from rlenhance.data import (
    BuiltinImages,
    ImageBank,
    ResizedImages,
    RowDraws,
    add_gaussian_noise,
    random_occlusion,
    sample_batch,
    synthetic_low_light,
)
from rlenhance.data.illumination import uneven_low_light
from rlenhance.data.rows import _mix_tensor
from rlenhance.errors import DatasetError

SEED = 2**61 + 12345


def test_a_rows_numbers_do_not_depend_on_the_other_rows():
    everyone, some = RowDraws(SEED, range(10)).stream("a"), RowDraws(SEED, [7, 2]).stream("a")
    for draw in (lambda s: s.random((len(s), 3)), lambda s: s.integers(0, 1000, size=len(s)),
                 lambda s: s.randn((2, 5)), lambda s: s.rand(4)):
        wide, narrow = draw(everyone), draw(some)
        assert np.array_equal(np.asarray(wide)[[7, 2]], np.asarray(narrow))


def test_streams_read_in_order_and_differ_by_seed_name_and_row():
    draws = RowDraws(SEED, range(4))
    at_once = draws.stream("a").bits(6)
    parts = draws.stream("a")
    assert np.array_equal(np.concatenate([parts.bits(2), parts.bits(4)], axis=1), at_once)
    assert parts.position == 6
    others = [RowDraws(SEED + 1, range(4)).stream("a").bits(6), draws.stream("b").bits(6)]
    assert all(not np.any(other == at_once) for other in others)
    assert len({tuple(row) for row in at_once.tolist()}) == 4  # every row its own numbers


def test_uniform_and_normal_numbers_have_their_distribution():
    stream = RowDraws(SEED, range(8)).stream("stats")
    u = stream.random((8, 50_000))
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    z = stream.randn((3, 99, 101)).double()  # an odd number a row: the last pair's second number dropped
    assert z.shape == (8, 3, 99, 101) and abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    assert abs(float((z.abs() > 2).double().mean()) - 0.0455) < 0.003  # the tails of a standard normal
    picks = stream.integers(3, np.array([4, 5, 6, 7, 8, 9, 10, 11]), size=8)
    assert np.all((picks >= 3) & (picks < np.arange(4, 12)))
    counts = np.bincount(stream.integers(0, 5, size=(8, 1000)).ravel(), minlength=5)
    assert counts.min() > 1400  # each of 5 values about 1600 times


def test_the_device_words_are_the_host_words():
    """The torch path (what a GPU runs) computes the same 32-bit words as numpy does on the host."""
    draws = RowDraws(SEED, [0, 3, 2**32 - 1])
    host = draws.stream("words").bits(1000)
    device = draws.stream("words")._device_bits(1000, torch.device("cpu"))
    assert np.array_equal(device.numpy().astype(np.uint32), host)
    words = torch.randint(0, 2**32, (4096,), dtype=torch.int64)
    from rlenhance.data.rows import _mix

    assert np.array_equal(_mix_tensor(words.clone()).numpy().astype(np.uint32), _mix(words.numpy().astype(np.uint32)))


@pytest.mark.parametrize("size", [4, (3, 2), None])
def test_a_size_must_start_with_the_rows(size):
    with pytest.raises(ValueError, match="number of rows"):
        RowDraws(0, range(2)).stream("a").random(size if size is not None else 5)


@pytest.mark.parametrize("seed, rows", [(-1, [0]), (2**64, [0]), (0, [-1]), (0, [2**32])])
def test_bad_seeds_and_rows_are_refused(seed, rows):
    with pytest.raises(ValueError, match="seed|rows"):
        RowDraws(seed, rows)


def test_select_keeps_the_rows_numbers():
    draws = RowDraws(SEED, range(2, 8))
    picked = draws.select(np.array([False, True, False, False, True, False]))
    assert list(picked.rows) == [3, 6]
    assert np.array_equal(picked.stream("s").bits(3), draws.stream("s").bits(3)[[1, 4]])


# ------------------------------------------------------------------ crops: sample_batch and ImageBank
class _Items(torch.utils.data.Dataset):
    """Items of several sizes held in memory (``cache``): uint8 ``low``, its twice-as-large ``high``
    (a super-resolution target) and a bool ``mask``."""

    cache = True

    def __init__(self, sizes=((20, 24), (30, 26), (22, 22), (25, 21))):
        gen = torch.Generator().manual_seed(0)
        self.items = []
        for i, (h, w) in enumerate(sizes):
            low = torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
            high = low.repeat_interleave(2, 1).repeat_interleave(2, 2)
            mask = torch.rand((1, h, w), generator=gen) < 0.3
            self.items.append({"low": low, "high": high, "mask": mask, "name": f"{i}.png"})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return dict(self.items[i])

    raw_item = __getitem__


@pytest.mark.parametrize("crop, vertical", [((8, 10), True), (6, False)])
def test_the_bank_gathers_the_crops_sample_batch_cuts(crop, vertical):
    data = _Items()
    bank = ImageBank.of(data)
    draws = RowDraws(SEED, range(40))
    cut = sample_batch(data, 40, crop=crop, rng=draws.stream("item"), vertical_flip=vertical)
    gathered = bank.sample(draws.stream("item"), crop, vertical_flip=vertical)
    assert gathered["names"] == cut["names"] and len(set(cut["names"])) == 4
    for key in ("low", "high", "mask"):
        assert gathered[key].dtype == torch.float32 and gathered[key].is_contiguous()
        assert torch.equal(gathered[key], cut[key]), key
    h, w = (crop, crop) if isinstance(crop, int) else crop
    assert cut["high"].shape == (40, 3, 2 * h, 2 * w)
    assert torch.equal(cut["high"][:, :, ::2, ::2], cut["low"])  # the target cut at the window scaled by 2
    flipped = [not torch.equal(c, data[int(n[0])]["low"][:, :h, :w].float() / 255)
               for c, n in zip(cut["low"], cut["names"])]
    assert any(flipped)


def test_rows_of_a_stream_are_cut_the_same_in_any_batch():
    data = _Items()
    wide = sample_batch(data, 6, crop=5, rng=RowDraws(SEED, range(6)).stream("item"))
    narrow = sample_batch(data, 2, crop=5, rng=RowDraws(SEED, [4, 1]).stream("item"))
    assert narrow["names"] == [wide["names"][4], wide["names"][1]]
    assert torch.equal(narrow["low"], wide["low"][[4, 1]])


def test_whole_images_of_several_sizes_and_too_large_crops_are_refused():
    data = _Items()
    with pytest.raises(DatasetError, match="crop=None needs images of one size"):
        ImageBank.of(data).sample(RowDraws(0, range(8)).stream("item"), None)
    with pytest.raises(DatasetError, match="crop 21x8 is larger than the image"):
        sample_batch(data, 8, crop=(21, 8), rng=RowDraws(0, range(8)).stream("item"))
    same = _Items(((9, 7), (9, 7)))
    whole = ImageBank.of(same).sample(RowDraws(0, range(3)).stream("item"), None, flip=False)
    assert whole["low"].shape == (3, 3, 9, 7)


def test_a_bank_is_made_only_of_a_data_set_held_in_memory_and_small_enough():
    data = _Items()
    assert ImageBank.of(data, max_bytes=100) is None
    data.cache = False
    assert ImageBank.of(data) is None
    photos = ResizedImages(BuiltinImages(names=["camera", "coins"], gray=True), 32, cache=True)
    bank = ImageBank.of(photos)
    assert bank is not None and bank.images["high"].dtype == torch.float32 and len(bank) == 2


def test_a_row_stream_of_another_size_is_refused():
    with pytest.raises(ValueError, match="RowStream of 3"):
        sample_batch(_Items(), 2, crop=4, rng=RowDraws(0, range(3)).stream("item"))


# ------------------------------------------------------------------ degradations driven by a row stream
@pytest.mark.parametrize("degrade", [
    lambda x, g: synthetic_low_light(x, generator=g),
    lambda x, g: add_gaussian_noise(x, 25.0, generator=g),
    lambda x, g: random_occlusion(x, generator=g, kind="mixed")[0],
    lambda x, g: uneven_low_light(x, generator=g),
], ids=["synthetic_low_light", "add_gaussian_noise", "random_occlusion", "uneven_low_light"])
def test_an_images_degradation_is_its_rows(degrade):
    x = torch.rand(5, 3, 24, 20, generator=torch.Generator().manual_seed(0))
    wide = degrade(x, RowDraws(SEED, range(5)).stream("d"))
    narrow = degrade(x[[3, 0]], RowDraws(SEED, [3, 0]).stream("d"))
    assert torch.equal(narrow, wide[[3, 0]])
    assert not torch.equal(wide[1], degrade(x[[1]], RowDraws(SEED + 1, [1]).stream("d"))[0])
    with pytest.raises(ValueError, match="RowStream of 4 rows for 5 images"):
        degrade(x, RowDraws(SEED, range(4)).stream("d"))
