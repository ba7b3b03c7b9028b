"""benchmarks.fill runs at a tiny size and prints both ways' times and their equal fill."""

import contextlib
import io

from benchmarks.fill import main


def test_fill_benchmark_prints_both_ways_and_their_equal_result():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["--batch", "3", "--size", "24", "--hole", "7", "--repeats", "1", "--threads", "1"])
    text = out.getvalue()
    assert "same fill both ways: True" in text
    assert "one stack" in text and "image by image" in text and "speed-up" in text
