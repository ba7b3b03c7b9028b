"""The MRPNet seed's inference-and-submission path: batch prediction over a test folder
(``rlenhance enhance --model mrpnet ... FOLDER``, a 4x super-resolving checkpoint) and the
competition CSV (``rlenhance export-csv``, :mod:`rlenhance.submission`)."""

import numpy as np
import pytest
import torch
from PIL import Image

from rlenhance.checkpoint import SupervisedSpec, save_checkpoint
from rlenhance.cli import main
from rlenhance.io import load_image, save_image
from rlenhance.models.mrpnet import CombinedModel
from rlenhance.restore import SupervisedRestorer
from rlenhance.submission import gray_levels, image_id, submission_row, write_submission


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)
    return path


def test_gray_levels_are_pillows_convert_l(tmp_path):
    """Pillow's integer luma, bit for bit (the seed's Image.open(...).convert("L"))."""
    rgb = np.random.default_rng(0).integers(0, 256, (31, 23, 3), dtype=np.uint8)
    path = _png(tmp_path / "x.png", rgb)
    expected = np.asarray(Image.open(path).convert("L"))
    assert np.array_equal(gray_levels(load_image(path)), expected)
    assert np.array_equal(submission_row(load_image(path)), expected.flatten()[::8])
    gray = rgb[..., 0]
    assert np.array_equal(gray_levels(load_image(_png(tmp_path / "g.png", gray))), gray)


def test_export_csv_writes_the_exact_format_on_a_tiny_image(tmp_path, capsys):
    """2x5 images, every 8th pixel: flat indices 0 and 8 (row 1, column 3), so two columns."""
    first = np.zeros((2, 5, 3), np.uint8)
    first[0, 0] = (255, 0, 0)  # (255 * 19595 + 32768) >> 16 = 76
    first[1, 3] = (0, 0, 255)  # (255 * 7471 + 32768) >> 16 = 29
    _png(tmp_path / "pred" / "test_1.png", first)
    _png(tmp_path / "pred" / "test_2.png", np.full((2, 5, 3), 200))
    out = tmp_path / "submission.csv"
    assert main(["export-csv", str(tmp_path / "pred"), "-o", str(out), "--id-prefix", "test_", "gt_"]) == 0
    assert out.read_bytes() == b"ID,pixel_0,pixel_1\ngt_1,76,29\ngt_2,200,200\n"
    assert "2 row(s)" in capsys.readouterr().out
    assert main(["export-csv", str(tmp_path / "pred" / "test_2.png"), "-o", str(tmp_path / "one.csv"),
                 "--stride", "3"]) == 0  # indices 0, 3, 6, 9; the ID is the stem
    assert (tmp_path / "one.csv").read_text() == "ID,pixel_0,pixel_1,pixel_2,pixel_3\ntest_2,200,200,200,200\n"


def test_export_csv_refuses_what_would_lose_a_file_or_misalign_rows(tmp_path, capsys):
    pred = tmp_path / "pred"
    a = _png(pred / "a.png", np.zeros((4, 4, 3)))
    out = tmp_path / "sub.csv"
    out.write_text("keep")
    assert main(["export-csv", str(pred), "-o", str(out)]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "keep"
    assert main(["export-csv", str(pred), "-o", str(a), "--overwrite"]) == 2  # an input
    assert "one of the input images" in capsys.readouterr().err and load_image(a).shape == (4, 4, 3)
    _png(pred / "b.png", np.zeros((4, 6, 3)))
    assert main(["export-csv", str(pred), "-o", str(out), "--overwrite"]) == 1  # another size
    err = capsys.readouterr().err
    assert "b.png is 4x6" in err and "a.png is 4x4" in err and out.read_text() == "keep"
    with pytest.raises(ValueError, match=r"a.png and .*a.jpg both give the ID 'a'"):
        write_submission([a, _png(pred / "a.jpg", np.zeros((4, 4, 3)))], tmp_path / "x.csv")
    (tmp_path / "empty").mkdir()
    assert main(["export-csv", str(tmp_path / "empty"), "-o", str(tmp_path / "y.csv")]) == 2
    assert "without images" in capsys.readouterr().err
    assert main(["export-csv", str(a), "-o", str(tmp_path / "z.csv"), "--stride", "0"]) == 2
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "z.csv").exists()
    assert image_id("p/test_3.png", ("test_", "gt_")) == "gt_3" and image_id("p/x_test_3.png", ("test_", "gt_")) \
        == "x_test_3"


@pytest.mark.parametrize("stem", ["=HYPERLINK(1)", "+1", "-2+3", "@SUM(1)", "\tx"])
def test_export_csv_refuses_ids_a_spreadsheet_runs_as_formulas(tmp_path, capsys, stem):
    """CSV injection (OWASP): an ID starting with = + - @ or a tab is refused, naming the file; a quote
    prefix would neutralise it but change the ID the grader matches, so the row would score nothing."""
    image = _png(tmp_path / "pred" / f"{stem}.png", np.zeros((2, 5, 3)))
    out = tmp_path / "sub.csv"
    assert main(["export-csv", str(image), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(image) in err and "formula" in err and not out.exists()
    plain = _png(tmp_path / "pred" / "x_1.png", np.zeros((2, 5, 3)))  # a prefix that makes one is refused too
    assert main(["export-csv", str(plain), "-o", str(out), "--id-prefix", "x_", "=1+"]) == 2
    assert "--id-prefix" in capsys.readouterr().err and not out.exists()


def test_export_csv_writes_non_ascii_ids_as_utf8(tmp_path, capsys):
    _png(tmp_path / "pred" / "test_café_東京.png", np.full((2, 5, 3), 9))
    out = tmp_path / "sub.csv"
    assert main(["export-csv", str(tmp_path / "pred"), "-o", str(out), "--id-prefix", "test_", "gt_"]) == 0
    assert out.read_bytes() == "ID,pixel_0,pixel_1\ngt_café_東京,9,9\n".encode()


def test_export_csv_keeps_a_file_that_appears_while_it_writes(tmp_path, monkeypatch):
    """Without overwrite, the CSV is put in place create-exclusively: another writer's file is kept."""
    import rlenhance.submission as submission

    image = _png(tmp_path / "pred" / "a.png", np.zeros((2, 5, 3)))
    out = tmp_path / "sub.csv"
    real = submission.load_image

    def load_while_another_writes(*args, **kwargs):
        out.write_text("another run")
        return real(*args, **kwargs)

    monkeypatch.setattr(submission, "load_image", load_while_another_writes)
    with pytest.raises(FileExistsError, match="appeared"):
        write_submission([image], out)
    assert out.read_text() == "another run" and sorted(p.name for p in tmp_path.iterdir()) == ["pred", "sub.csv"]


def test_the_seed_path_predicts_a_test_folder_at_4x_and_exports_it(tmp_path, capsys):
    """A folder argument stands for its images; a 4x checkpoint writes 4x outputs; their CSV has
    (4 H)(4 W)/8 pixel columns and one row per test image."""
    torch.manual_seed(0)
    model = CombinedModel(3, width=8, upscale=4).eval()
    spec = SupervisedSpec(model="mrpnet", task="lowlight", channels=3, prefill="none", upscale=4)
    ckpt = save_checkpoint(tmp_path / "sr.pt", model=model, arch=model.arch(), extra={"spec": spec})
    rng = np.random.default_rng(1)
    for i in (1, 2):
        save_image(tmp_path / "test" / f"test_{i}.png", rng.uniform(0, 0.3, (10, 12, 3)).astype(np.float32))
    (tmp_path / "test" / "notes.txt").write_text("not an image")
    pred = tmp_path / "pred"
    assert main(["enhance", "--model", "mrpnet", "--checkpoint", str(ckpt), "--device", "cpu",
                 str(tmp_path / "test"), "-o", str(pred)]) == 0
    assert "12x10 -> 48x40" in capsys.readouterr().out
    assert sorted(p.name for p in pred.iterdir()) == ["test_1.png", "test_2.png"]
    expected = SupervisedRestorer(ckpt, device="cpu").restore(load_image(tmp_path / "test" / "test_2.png"))
    np.testing.assert_allclose(load_image(pred / "test_2.png"), expected, atol=0.5 / 255 + 1e-6)
    assert main(["export-csv", str(pred), "-o", str(tmp_path / "sub.csv"), "--id-prefix", "test_", "gt_"]) == 0
    lines = (tmp_path / "sub.csv").read_text().splitlines()
    assert len(lines) == 3 and [line.split(",")[0] for line in lines] == ["ID", "gt_1", "gt_2"]
    assert all(len(line.split(",")) == 1 + 40 * 48 // 8 for line in lines)
