"""benchmarks.resets: each tree's reset probe runs in a process of its own and the table says the
speed-up; bad arguments are refused."""

import pytest

from benchmarks import resets


@pytest.mark.slow
def test_both_trees_are_probed_and_tabled(capsys):
    records = resets.main(["--batch", "2", "4", "--resets", "1", "--trainers", "denoise_train",
                           "--before", str(resets.ROOT)])
    assert [(r["trainer"], r["batch"]) for r in records] == [("denoise_train", 2), ("denoise_train", 4)]
    assert all(r["ms_per_crop"] > 0 and r["before_ms_per_crop"] > 0 for r in records)
    text = capsys.readouterr().out
    assert "| trainer | batch | device | ms per crop | before: ms per crop | before / after |" in text
    assert "| denoise_train | 4 | cpu | " in text


def test_the_table_without_a_before_tree():
    text = resets.table([{"trainer": "lol_train", "batch": 8, "device": "cpu", "ms_per_crop": 0.5,
                          "before_ms_per_crop": None},
                         {"trainer": "lol_train", "batch": 16, "device": "cpu", "ms_per_crop": 0.25,
                          "before_ms_per_crop": 1.0}])
    assert "| lol_train | 8 | cpu | 0.5000 | - | - |" in text
    assert "| lol_train | 16 | cpu | 0.2500 | 1.0000 | 4.00x |" in text


@pytest.mark.parametrize("argv", [["--batch", "0"], ["--resets", "0"], ["--before", "/nonexistent"],
                                  ["--trainers", "sac"]])
def test_bad_arguments_are_refused(argv):
    with pytest.raises(SystemExit):
        resets.parse_args(argv)


def test_a_failing_probe_says_why():
    with pytest.raises(RuntimeError, match="the reset probe of .* exited with 1: ModuleNotFoundError"):
        resets.probe_tree(resets.ROOT, trainers=["no_train"], batches=[2], device="cpu", resets=1, threads=1, data={})
