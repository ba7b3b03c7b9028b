"""benchmarks.eval_batch: it times every batch size and reports equal outputs (tiny images)."""

from benchmarks import eval_batch


def test_every_batch_size_is_timed_and_gives_the_same_outputs(capsys):
    rows = eval_batch.main(["--batches", "2", "1", "--images", "2", "--repeats", "1", "--eval-size", "32"])
    assert [row["eval_batch"] for row in rows] == [2, 1]
    assert all(row["equal_outputs"] and row["cpu_s_per_image"] >= 0 for row in rows)
    assert "eval_batch" in capsys.readouterr().out
