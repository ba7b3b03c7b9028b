"""benchmarks.noise_map at a tiny budget: every method is trained on the same batches and scored on
the held-out photos, the wrong-map rows re-score the map-driven FFDNet, the CSV holds the table.
(Its numbers are reported, not asserted; the PSNR claim is tests/rlenhance/test_models_ffdnet.py's.)"""

import csv

import pytest

from benchmarks import noise_map


def test_tiny_run_prints_and_writes_every_method(tmp_path, capsys):
    rows = noise_map.main(["--steps", "2", "--eval-draws", "1", "--seeds", "0", "1", "--csv", str(tmp_path / "t.csv")])
    names = [r["method"] for r in rows]
    assert names == ["noisy input", *noise_map.TRAINED, *noise_map.WRONG_MAPS]
    by_name = {r["method"]: r for r in rows}
    assert by_name["MRPNet (plain)"]["params"] == 19_105 and by_name[noise_map.MAP_DRIVEN]["params"] == 18_724
    assert by_name["FFDNet, no map (plain)"]["params"] == by_name[noise_map.MAP_DRIVEN]["params"]  # the same net
    assert all(r["seconds"] > 0 for r in rows if r["method"] in noise_map.TRAINED)
    assert by_name["noisy input"]["psnr_per_seed"].split() == [f"{by_name['noisy input']['psnr']:.2f}"] * 2
    # x 0.5 and x 2 change what the same trained net is given, so its scores move
    assert by_name["FFDNet + map x 0.5"]["psnr"] != by_name["FFDNet + map x 2"]["psnr"]
    with open(tmp_path / "t.csv", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [r["method"] for r in written] == names
    assert float(written[0]["psnr"]) == pytest.approx(by_name["noisy input"]["psnr"])
    assert "FFDNet + map (ReLLIE)" in capsys.readouterr().out


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        noise_map.main(["--steps", "0"])
