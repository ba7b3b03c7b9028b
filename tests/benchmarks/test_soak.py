"""benchmarks.soak --megapixels: one synthetic photo per size through the command, its time and peak memory."""

import numpy as np
import pytest
import torch

from benchmarks import soak
from rlenhance.io import load_image
from rlenhance.ops.fill import hole_boxes


@pytest.mark.parametrize("command", ["denoise", "complete"])
def test_large_photo_has_the_size_and_what_the_command_needs(tmp_path, command):
    path = tmp_path / "photo.png"
    width, height = soak.large_photo(path, 0.06, command, seed=0)
    image = load_image(path, samples=True)
    assert image.shape == (height, width, 3) and abs(width * height - 60_000) < 600 and width == round(1.5 * height)
    black = (image.max(axis=-1) == 0).mean()
    if command == "complete":
        assert 0.008 < black < 0.012  # the square hole, 1% of the area
    else:
        assert black < 0.001 and np.diff(image.astype(int), axis=1).std() > 5  # noisy, no hole


def test_megapixels_prints_a_row_per_size_and_the_line_through_them(capsys):
    soak.main(["--megapixels", "0.01", "0.02", "--commands", "complete"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| complete |")]
    assert len(rows) == 2, out
    assert all(float(row.split("|")[-2]) > 50 for row in rows)  # a peak RSS in MB
    assert "CPU s per megapixel" in out and "at 50 megapixels" in out


def test_megapixels_must_be_positive():
    with pytest.raises(SystemExit):
        soak.main(["--megapixels", "0"])


def test_models_gives_denoise_a_row_per_model_with_its_command(capsys):
    soak.main(["--megapixels", "0.01", "--commands", "denoise", "--models", "mrpnet"])
    out = capsys.readouterr().out
    assert "`rlenhance denoise --model mrpnet PHOTO -o OUT --device cpu`" in out
    rows = [line for line in out.splitlines() if line.startswith("| denoise --model mrpnet |")]
    assert len(rows) == 1 and float(rows[0].split("|")[-2]) > 50, out


def test_masks_spreads_16_holes_and_writes_their_mask_file(tmp_path):
    path = tmp_path / "photo.png"
    width, height = soak.large_photo(path, 0.2, "complete", seed=0, masks=tmp_path / "masks")
    image, mask = load_image(path, samples=True), load_image(tmp_path / "masks" / "photo.png", gray=True)[..., 0]
    assert mask.shape == (height, width) and 0.008 < (mask > 0.5).mean() < 0.012
    np.testing.assert_array_equal(image.max(axis=-1) == 0, mask > 0.5)  # the holes are black in the photo
    assert len(hole_boxes(torch.from_numpy(mask > 0.5))) == 16  # spread: one box each


def test_complete_models_take_checkpoints_and_masks_and_gray_denoisers_get_gray_photos(capsys):
    weights = soak.ROOT / "rlenhance" / "weights"
    soak.main(["--megapixels", "0.01", "--commands", "complete", "denoise", "--masks",
               "--complete-models", f"gated-pixelrnn={weights / 'gated_pixelrnn_completion.pt'}",
               "--models", f"mrpnet={weights / 'mrpnet_denoise.pt'}"])
    out = capsys.readouterr().out
    assert ("`rlenhance complete --model gated-pixelrnn --checkpoint gated_pixelrnn_completion.pt --masks DIR PHOTO "
            "-o OUT --device cpu` (RGB photo)") in out
    assert ("`rlenhance denoise --model mrpnet --checkpoint mrpnet_denoise.pt PHOTO -o OUT --device cpu` "
            "(gray photo)") in out
    rows = [line for line in out.splitlines() if line.startswith(("| complete --model", "| denoise --model"))]
    assert len(rows) == 2 and all(float(row.split("|")[-2]) > 50 for row in rows), out
    with pytest.raises(SystemExit):
        soak.main(["--megapixels", "0.01", "--complete-models", "bm3d"])
