"""benchmarks.completion_headroom: the per-block oracle of completion action sets over the U-Net."""

import re

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks import completion_headroom

SIZE = 64


def test_block_errors_sum_each_block_pad_with_zeros_and_block_0_is_the_image():
    error = torch.stack([torch.ones(3, 5), torch.full((3, 5), 2.0)])
    blocks = completion_headroom.block_errors(error, 2)
    assert blocks.shape == (2, 2, 3)
    assert blocks[0].tolist() == [[4, 4, 2], [2, 2, 1]]
    assert torch.equal(blocks[1], 2 * blocks[0])
    assert completion_headroom.block_errors(error, 0).flatten().tolist() == [15, 30]


def test_rings_are_the_known_pixels_outside_and_the_hole_pixels_inside_the_border():
    mask = torch.zeros(1, 1, 20, 20)
    mask[..., 6:14, 6:14] = 1
    outer, inner = completion_headroom._ring(mask, 2)
    assert float(outer.sum()) == 12 * 12 - 8 * 8 and float((outer * mask).sum()) == 0
    assert float(inner.sum()) == 8 * 8 - 4 * 4 and float((inner * (1 - mask)).sum()) == 0


def _write_pairs(root, count):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    for k in range(count):
        photo = np.stack([0.5 + 0.3 * np.sin(2 * np.pi * (f * xx + g * yy) + p)
                          for f, g, p in rng.uniform(0.5, 2.0, (3, 3))], -1)
        original = (np.clip(photo, 0, 1) * 255).round().astype(np.uint8)
        occluded = original.copy()
        top, left = rng.integers(8, SIZE - 28, 2)
        occluded[top:top + 20, left:left + 20] = 0
        for folder, name, image in (("original_images", f"{k}.png", original),
                                    ("occluded_images", f"occluded_{k}.png", occluded)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / folder / name)


def _rows(out):
    return {line.split("|")[1].strip(): line.split("|")[2:-1] for line in out.splitlines()
            if line.startswith("| ") and not line.startswith("| action set")}


def test_the_oracle_never_loses_to_the_unet_and_finer_blocks_win_more(tmp_path, capsys):
    _write_pairs(tmp_path, 2)
    completion_headroom.main(["--data", str(tmp_path), "--split", "all", "--blocks", "2", "8"])
    out = capsys.readouterr().out
    assert out.startswith("2 images of")
    rows = _rows(out)
    assert set(rows) == set(completion_headroom.SETS)
    for name, cells in rows.items():
        assert int(cells[0]) == len(completion_headroom.SETS[name])
        base = float(cells[1])
        oracle = [float(cell.split()[0]) for cell in cells[3:]]  # 2x2, 8x8, per image
        # the U-Net's own output is a candidate, and 2x2 blocks nest in 8x8 ones in the image
        assert oracle[0] >= oracle[1] >= oracle[2] >= float(cells[2].split()[0]) >= base - 0.005
    # more candidates, more headroom: every set's are in "all"
    assert all(float(rows["all"][3].split()[0]) >= float(cells[3].split()[0]) - 0.005 for cells in rows.values())
    assert "candidates alone: unet" in out
    assert re.search(r"^rule \(Telea half-way in the hole's outer 2 px, no oracle\): [+-]\d+\.\d{3} dB \(s\.e\. "
                     r"\d+\.\d{3}\), better on [012] of 2$", out, re.MULTILINE)


def test_bad_block_sizes_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        completion_headroom.main(["--data", str(tmp_path), "--blocks", "0"])
    assert "--blocks" in capsys.readouterr().err
