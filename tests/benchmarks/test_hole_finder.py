"""benchmarks.hole_finder: the finder's IoU table over the example photos and a pair folder."""

from benchmarks import hole_finder
from rlenhance.data.samples import write_samples


def test_prints_one_row_per_set_with_the_iou_and_the_doubts(tmp_path, capsys):
    write_samples(tmp_path, size=96)
    hole_finder.main(["--sizes", "96", "--seeds", "1", "--data", str(tmp_path / "bedroom")])
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[0] for row in rows] == ["| example photos, 96 px, seeds 0-0", f"| {tmp_path / 'bedroom'} (all)"]
    for row in rows:
        assert row[1] == "4" and float(row[2]) == 1.0  # the same four photos: every hole found
        assert row[5] == "1" and row[6] == "0 |"  # the astronaut's hole touches its black background: said
