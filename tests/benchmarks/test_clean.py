"""benchmarks.clean: the comparison table of the clean stage, on a synthetic noisy photo."""

from __future__ import annotations

import math

import pytest

from benchmarks import clean


def test_the_table_compares_the_clean_stage_with_the_curves_alone(capsys):
    results = clean.main(["--sets", "photos", "--photos", "coffee", "--strengths", "1", "2", "--no-mrpnet",
                          "--zero-dcepp", "", "--threads", "1"])["photos"]
    out = capsys.readouterr().out
    assert "| method | NIQE | dark noise | clipped % | ms | PSNR | SSIM |" in out
    assert list(results) == ["input", "old default (blur 0.65)", "blur 0", "clean denoise 1", "clean denoise 2"]
    assert all(math.isfinite(v) for row in results.values() for v in row.values())
    # the amplified sensor noise: the clean stage removes colour noise the curves alone leave, more at 2
    assert results["clean denoise 1"]["dark noise"] < 0.8 * results["blur 0"]["dark noise"]
    assert results["clean denoise 2"]["dark noise"] < results["clean denoise 1"]["dark noise"]
    assert results["input"]["ms"] == 0 and results["clean denoise 1"]["ms"] > 0


def test_a_variant_replaces_constants_of_the_clean_stage_only_while_it_runs(capsys):
    before = clean.clean.KNEE
    results = clean.main(["--sets", "photos", "--photos", "coffee", "--strengths", "1", "--no-mrpnet",
                          "--zero-dcepp", "", "--variant", "CHROMA_SIGMA=0.5 KNEE=0.7"])["photos"]
    assert clean.clean.KNEE == before
    assert results["variant CHROMA_SIGMA=0.5 KNEE=0.7"]["dark noise"] > results["clean denoise 1"]["dark noise"]
    with pytest.raises(SystemExit, match="not a float constant"):
        clean.main(["--sets", "photos", "--variant", "BAND_PIXELS=5"])
