"""benchmarks.denoise_headroom: the per-block oracle of an action set over a denoiser."""

from pathlib import Path

import numpy as np
import pytest

from benchmarks import denoise_headroom
from rlenhance.io import save_image

WEIGHTS = Path(__file__).resolve().parents[2] / "rlenhance" / "weights"


def test_block_errors_sum_each_block_and_pad_with_zeros():
    clean = np.zeros((3, 5))
    cands = np.stack([np.ones((3, 5)), np.full((3, 5), 2.0)])
    err = denoise_headroom.block_errors(cands, clean, 2)
    assert err.shape == (2, 2, 3)
    np.testing.assert_array_equal(err[0], [[4, 4, 2], [2, 2, 1]])
    np.testing.assert_array_equal(err[1], 4 * err[0])


def _rows(out: str) -> dict[str, list[str]]:
    return {line.split("|")[1].strip(): line.split("|")[2:-1] for line in out.splitlines()
            if line.startswith("| filters") or line.startswith("| levels")}


def test_the_oracle_never_loses_to_the_denoiser_and_finer_blocks_win_more(tmp_path, capsys):
    ramp = np.tile(np.linspace(0.15, 0.85, 40, dtype=np.float32), (36, 1))
    save_image(tmp_path / "a.png", (ramp * ramp.T[:36, :36].mean())[..., None].repeat(3, axis=2))
    save_image(tmp_path / "b.png", np.roll(ramp, 7, axis=1)[..., None].repeat(3, axis=2))
    denoise_headroom.main(["--data", str(tmp_path), "--blocks", "2", "8", "32", "--level-scales", "0.5", "2"])
    rows = _rows(capsys.readouterr().out)
    assert set(rows) == {"filters", "levels"}  # the shipped blind FFDNet reads a noise map
    for name, cells in rows.items():
        assert int(cells[0]) == (9 if name == "filters" else 3)
        base = float(cells[1])
        oracle = [float(cell.split()[0]) for cell in cells[3:]]
        # the denoiser's own output is a candidate, and 2x2 blocks nest in 8x8 ones in 32x32 ones
        assert oracle[0] >= oracle[1] >= oracle[2] >= base - 0.005
        assert float(cells[2].split()[0]) >= base - 0.005
    assert float(rows["filters"][3].split()[0]) > float(rows["filters"][1])  # 2x2 blocks fit some noise


def test_a_plain_denoiser_has_no_levels_and_a_non_denoiser_is_refused(tmp_path, capsys):
    save_image(tmp_path / "a.png", np.full((24, 24, 3), 0.5, dtype=np.float32))
    denoise_headroom.main(["--data", str(tmp_path), "--checkpoint", str(WEIGHTS / "mrpnet_denoise.pt")])
    assert set(_rows(capsys.readouterr().out)) == {"filters"}
    with pytest.raises(SystemExit):
        denoise_headroom.main(["--data", str(tmp_path), "--checkpoint", str(WEIGHTS / "unet_completion.pt")])
    assert "not a denoiser checkpoint" in capsys.readouterr().err


def test_a_noise_ramp_scores_ffdnet_given_the_true_map(tmp_path, capsys):
    ramp = np.tile(np.linspace(0.2, 0.8, 64, dtype=np.float32), (48, 1))
    save_image(tmp_path / "a.png", ramp[..., None].repeat(3, axis=2))
    denoise_headroom.main(["--data", str(tmp_path), "--sigma", "5", "--sigma-to", "60", "--blocks", "8"])
    out = capsys.readouterr().out
    assert "sigma 5 (left) to 60 (right)" in out
    known = [line for line in out.splitlines() if line.startswith("known map")]
    base = float(_rows(out)["levels"][1])
    # given the level of every pixel, FFDNet does better than at one level for the whole image
    assert len(known) == 1 and float(known[0].split(": ")[1].split()[0]) > base
