"""python -m rlenhance.data.samples: example folders that the data sets of every task read."""

import errno

import pytest

from rlenhance.data import open_dataset, samples
from rlenhance.data.samples import main, write_samples
from rlenhance.io import load_image


def test_samples_are_read_by_every_task_and_share_one_size(tmp_path):
    written = write_samples(tmp_path, size=40)
    assert {load_image(p).shape[:2] for p in written} == {(40, 40)}
    pairs = open_dataset(tmp_path / "pairs", kind="paired", split=None, gray=False, seed=0)
    assert len(pairs) == 4 and pairs[0]["high"].shape == (3, 40, 40)
    assert pairs[0]["low"].mean() < pairs[0]["high"].mean()  # darkened
    noisy = open_dataset(tmp_path, kind="clean", split=None, gray=True, seed=0)
    assert len(noisy) == 4 and set(noisy[0]) >= {"noisy", "clean"}
    occluded = open_dataset(tmp_path / "bedroom", kind="occluded", split=None, gray=False, seed=0)
    assert len(occluded) == 4 and occluded[0]["mask"].sum() == 10 * 10
    masks = sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert masks == sorted(p.name for p in (tmp_path / "occluded").iterdir())


def test_samples_are_the_same_on_every_run(tmp_path):
    first = [p.read_bytes() for p in write_samples(tmp_path / "a", size=32)]
    assert first == [p.read_bytes() for p in write_samples(tmp_path / "b", size=32)]


@pytest.mark.parametrize("size", [8, 100_000])
def test_a_size_out_of_range_is_refused_in_one_line(tmp_path, capsys, size):
    with pytest.raises(ValueError, match="size"):
        write_samples(tmp_path, size=size)
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path), "--size", str(size)])
    assert info.value.code == 2
    assert capsys.readouterr().err == (f"python -m rlenhance.data.samples: error: size: expected 32 to 4096 pixels "
                                       f"(the photos are 300 to 512), got {size}\n")
    assert not any(tmp_path.iterdir())


def test_a_folder_that_is_not_one_or_cannot_be_written_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("mine")
    for folder, message in (("/dev/null", "/dev/null is a character device, not a folder"),
                            (tmp_path / "file", f"{tmp_path / 'file'} is a file, not a folder")):
        with pytest.raises(SystemExit) as info:
            main([str(folder)])
        assert info.value.code == 2
        assert capsys.readouterr().err.splitlines() == [f"python -m rlenhance.data.samples: error: {message}; give a "
                                                        "folder to write the samples in"]
    assert (tmp_path / "file").read_text() == "mine"

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, f"cannot write {path}: No space left on device")

    monkeypatch.setattr(samples, "save_image", full)
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "out")])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"python -m rlenhance.data.samples: error: cannot write "
                                                    f"{tmp_path / 'out' / 'dark' / 'astronaut.png'}: No space left "
                                                    "on device"]


def test_existing_files_are_kept_unless_overwrite(tmp_path, capsys):
    mine = tmp_path / "dark" / "astronaut.png"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own file")
    with pytest.raises(FileExistsError):
        write_samples(tmp_path, size=32)
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path), "--size", "32"])
    assert info.value.code == 2 and "astronaut.png exists; it was kept" in capsys.readouterr().err
    assert mine.read_bytes() == b"my own file"
    written = write_samples(tmp_path, size=32, overwrite=True)
    assert mine in written and mine.read_bytes() != b"my own file"
