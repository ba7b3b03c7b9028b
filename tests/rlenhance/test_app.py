"""The web app (`rlenhance app`): its logic (rlenhance.app_support) and the page, driven by Streamlit's AppTest.

The real-browser test is in test_app_browser.py.
"""

import importlib.util
import io
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from rlenhance import app_support as kit
from rlenhance import registry
from rlenhance.cli import main
from rlenhance.data.builtin import BUILTIN_IMAGES
from rlenhance.denoisers import load_denoiser
from rlenhance.enhance import Enhancer
from rlenhance.errors import ImageError
from rlenhance.restore import hole_mask

APP = Path(kit.__file__).resolve().parent / "app.py"
NO_STREAMLIT = "streamlit not installed (pip install 'rlenhance[app]')"


def png(image: np.ndarray) -> bytes:
    return kit.png_bytes(image)


def photo(height: int = 40, width: int = 56, *, seed: int = 0, low: float = 0.0, high: float = 0.3) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, (height, width, 3)).astype(np.float32)


@pytest.fixture()
def private_tmp(tmp_path, monkeypatch):
    """tempfile's folder moved under tmp_path, and the working directory too: what the app writes shows up."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --------------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------------


def test_decode_image_reads_an_upload_and_leaves_nothing_behind(private_tmp):
    image = photo()
    out = kit.decode_image(png(image), "dark.png")
    assert out.shape == image.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, np.round(image * 255) / 255, atol=1e-6)
    assert kit.decode_image(png(image), "dark.png", gray=True).shape == (40, 56, 1)
    assert sorted(p.name for p in private_tmp.iterdir()) == ["tmp"] and not any((private_tmp / "tmp").iterdir())


@pytest.mark.parametrize("data, found", [
    (b"", "empty"),
    (b"hello, not an image", "not a PNG, JPEG, BMP or TIFF image"),
    (png(photo())[:200], "truncated or corrupt"),
])
def test_decode_image_refuses_bad_uploads_naming_the_upload(private_tmp, data, found):
    with pytest.raises(ImageError, match=found) as info:
        kit.decode_image(data, "holiday.jpg")
    assert "holiday.jpg" in str(info.value) and str(private_tmp) not in str(info.value)
    assert not any((private_tmp / "tmp").iterdir())


def test_decode_image_refuses_an_oversized_image_from_its_header():
    with pytest.raises(ImageError, match=r"56 x 40 = 2240 pixels is more than max_pixels=2000"):
        kit.decode_image(png(photo()), "big.png", max_pixels=2000)


def test_read_mask_binarises_and_checks_the_size():
    mask = np.zeros((40, 56), np.float32)
    mask[10:20, 5:15] = 1.0
    data = png(np.repeat(mask[..., None], 3, axis=2))
    hole = kit.read_mask(data, "mask.png", (40, 56))
    assert hole.dtype == bool and hole.sum() == 100
    half = kit.read_mask(data, "mask.png", (20, 28))  # the full-size mask on a half-size work image
    assert half.shape == (20, 28) and half.sum() == 25
    with pytest.raises(ImageError, match=r"mask 'mask.png' is 56x40 but the image is 40x40"):
        kit.read_mask(data, "mask.png", (40, 40))


def test_work_image_previews_crops_or_keeps():
    small = photo(30, 50)
    for task in kit.TASKS:
        work, how = kit.work_image(small, task)
        assert how == "full" and np.array_equal(work, small)
    wide = photo(200, 1400)
    preview, how = kit.work_image(wide, "lowlight")
    assert how == "downscaled" and preview.shape == (183, kit.PREVIEW_SIDE, 3)
    np.testing.assert_allclose(preview.mean(), wide.mean(), atol=2e-3)
    crop, how = kit.work_image(wide, "denoise")
    assert how == "crop" and crop.shape == (200, kit.DENOISE_CROP, 3)
    np.testing.assert_array_equal(crop, wide[:, 508:892])  # 100%: pixels untouched
    work, how = kit.work_image(wide, "completion")
    assert how == "downscaled" and work.shape[1] == kit.COMPLETE_SIDE


def test_noisy_copy_is_reproducible_unclipped_gaussian_noise():
    clean = np.full((64, 64, 3), 0.5, np.float32)
    noisy = kit.noisy_copy(clean, 25)
    np.testing.assert_array_equal(noisy, kit.noisy_copy(clean, 25))
    assert abs(float((noisy - clean).std()) * 255 - 25) < 1.0
    assert kit.noisy_copy(np.zeros((16, 16, 3), np.float32), 25).min() < 0  # not clipped (the training protocol)


@pytest.mark.parametrize("task", kit.TASKS)
def test_sample_photos_decode(task):
    name, data, reference = kit.sample_photo(task)
    image, clean = kit.decode_image(data, name), kit.decode_image(reference, "ref.png")
    assert image.shape == clean.shape
    if task == "lowlight":
        assert image.mean() < 0.5 * clean.mean()
    if task == "completion":
        assert hole_mask(image).sum() == 64 * 64


# --------------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------------


def test_pictures_are_uint8_rgb_of_the_right_size():
    before, after = np.zeros((10, 20, 3), np.float32), np.ones((10, 20, 3), np.float32)
    split = kit.split_view(before, after, 0.5)
    assert split.dtype == np.uint8 and split.shape == (10, 20, 3)
    assert (split[:, :9] == 0).all() and (split[:, 9:11] == 255).all() and (split[:, 11:] == 255).all()
    mask = np.zeros((10, 20), bool)
    mask[2:4, 2:4] = True
    overlay = kit.mask_overlay(np.full((10, 20, 3), 0.5, np.float32), mask)
    assert overlay[3, 3, 0] > overlay[3, 3, 1] and (overlay[0, 0] == 128).all()
    with pytest.raises(ImageError):
        kit.split_view(before, after[:5], 0.5)
    decoded = np.asarray(Image.open(io.BytesIO(kit.png_bytes(np.full((4, 6, 1), 0.2, np.float32)))))
    assert decoded.shape == (4, 6, 3) and (decoded == 51).all()


def test_alpha_and_step_pictures_show_what_the_agent_did():
    ramp = torch.linspace(0.2, 0.6, 16).view(1, 1, 1, 16).expand(1, 1, 8, 16)
    maps = [ramp, torch.zeros(1, 1, 8, 16), torch.full((1, 3, 8, 16), -0.3)]
    pictures, captions = kit.alpha_pictures(maps, width=64)
    assert [p.shape for p in pictures] == [(32, 64, 3)] * 3
    assert captions == ["step 1: +0.20…+0.60", "step 2: +0.00…+0.00", "step 3: -0.30…-0.30"]
    assert pictures[0][0, 0].max() == 0 and pictures[0][0, -1].min() == 255  # stretched: least black, most white
    assert (pictures[1] == 128).all()  # a uniform map is mid gray
    steps = kit.step_pictures(np.full((40, 80, 3), 0.2, np.float32), maps, width=64)
    assert len(steps) == 3 and steps[0].mean() > 0.2 * 255 + 10  # alpha > 0 brightens
    assert steps[1].mean() == steps[0].mean() and steps[2].mean() < steps[1].mean()  # 0 keeps, < 0 darkens
    # a square working map of a 3:1 photo is drawn at the photo's shape
    square = [torch.zeros(1, 1, 16, 16)]
    assert kit.alpha_pictures(square, width=60, aspect=1 / 3)[0][0].shape == (20, 60, 3)
    assert kit.step_pictures(np.full((30, 90, 3), 0.2, np.float32), square, width=60)[0].shape == (20, 60, 3)


# --------------------------------------------------------------------------------------------
# Knobs
# --------------------------------------------------------------------------------------------


SETTING = {"exposure_target": 0.4, "w_exposure": 300.0, "w_color": 5.0, "w_spatial": 1.0, "w_smooth": 0.0}


def stand_in(ranges):
    """An object with what enhance_knobs reads from an Enhancer: its spec and its ``setting_ranges``."""
    spec = SimpleNamespace(setting=SETTING, conditioned=bool(ranges), transition=SimpleNamespace(steps=8))
    return SimpleNamespace(spec=spec, setting_ranges=ranges)


def test_the_shipped_model_has_a_slider_for_every_knob_in_its_trained_range():
    enhancer = Enhancer(device="cpu")
    knobs = kit.enhance_knobs(enhancer)
    assert [(k.name, k.low, k.high, k.default) for k in knobs.sliders] == [
        ("exposure", 0.3, 0.8, 0.4), ("w_exposure", 100.0, 1000.0, 300.0), ("w_color", 20.0, 10000.0, 20.0),
        ("w_spatial", 1.0, 1000.0, 1.0), ("w_smooth", 0.1, 100.0, 10.0)]
    assert knobs.fixed == {} and knobs.conditioned
    assert [k.log for k in knobs.sliders] == [False, True, True, True, True]  # the weights: log-uniform in training
    steps = enhancer.spec.transition.steps  # the shipped model's (10): the slider offers up to twice as many
    assert steps == 10 and (knobs.steps.low, knobs.steps.high, knobs.steps.default) == (1, 2 * steps, steps)


def test_a_wide_weight_range_gets_log_stops_with_its_ends_and_default():
    knob = kit.Knob("w_color", "Colour", 20.0, 10000.0, 35.0)
    stops = knob.stops()
    assert knob.log and stops[0] == 20.0 and stops[-1] == 10000.0 and 35.0 in stops
    assert list(stops) == sorted(set(stops))
    assert np.diff(np.log(stops)).max() < 2 * np.log(10000 / 20) / 24  # about even on a log scale
    assert not kit.Knob("w_color", "Colour", 5.0, 20.0, 10.0).log  # a narrow range: a linear slider
    assert not kit.Knob("exposure", "Exposure", 0.01, 0.9, 0.4).log


def test_knobs_follow_what_the_model_was_trained_to_vary():
    fixed = kit.enhance_knobs(stand_in({}))
    assert fixed.sliders == () and fixed.fixed["exposure"] == 0.4 and not fixed.conditioned
    ranges = {"exposure": (0.2, 0.8), "w_color": (1.0, 9.0), "w_spatial": (2.0, 3.0)}
    chosen = kit.enhance_knobs(stand_in(ranges))
    assert {k.name: (k.low, k.high) for k in chosen.sliders} == ranges and chosen.conditioned
    assert {k.name: k.default for k in chosen.sliders} == {"exposure": 0.4, "w_color": 5.0, "w_spatial": 2.0}
    assert chosen.fixed == {"w_exposure": 300.0, "w_smooth": 0.0}
    assert (chosen.steps.low, chosen.steps.high, chosen.steps.default) == (1, 16, 8)


# --------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [m for m in kit.METHODS if m.family != "RL" or m.task == "lowlight"],
                         ids=lambda m: f"{m.task}-{m.key}")
def test_every_method_restores_an_image(method):
    if kit.method_missing(method):
        pytest.skip(kit.method_missing(method))
    image = photo(32, 40, low=0.1, high=0.6)
    mask = np.zeros((32, 40), bool)
    mask[8:16, 10:20] = True
    model = kit.load_model(method, device="cpu")
    out = kit.restore(method, model, image, mask=mask, setting={"exposure": 0.5} if method.key == "rl" else None)
    assert out.shape == image.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    if method.task == "completion":
        np.testing.assert_array_equal(out[~mask], image[~mask])


def test_only_methods_that_ship_are_offered():
    """The RL policies that ship no checkpoint (their recipe's policy took the predictor's output
    everywhere) are not on the page: the Complete tab offers no RL family."""
    assert all(registry.ships(m) for m in kit.METHODS)
    assert {(m.task, m.key) for m in registry.methods()} - {(m.task, m.key) for m in kit.METHODS} == {
        ("denoise", "rse"), ("completion", "a3c")}
    assert kit.methods_for("completion", "RL") == [] and kit.methods_for("denoise", "RL")


@pytest.mark.parametrize("task", ["denoise"])
def test_rl_rollout_methods_restore_an_image(task):
    method = kit.methods_for(task, "RL")[0]
    assert kit.method_missing(method) is None  # the library runs every shipped policy
    image = kit.noisy_copy(photo(24, 24, low=0.2, high=0.8), 25) if task == "denoise" else photo(24, 24)
    mask = np.zeros((24, 24), bool)
    mask[8:14, 8:14] = True
    out = kit.restore(method, kit.load_model(method, device="cpu"), image, mask=mask)
    assert out.shape == (24, 24, 3) and 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("task", [task for task in kit.TASKS if kit.methods_for(task, "RL")])
def test_rl_methods_say_what_their_agent_did_and_the_others_nothing(task):
    """restore_traced: restore's output and, for an RL method, its restorer's trace (the Denoise and
    Complete tabs' "What the agent did"); None for a supervised or classical method."""
    image = kit.noisy_copy(photo(24, 24, low=0.2, high=0.8), 25) if task == "denoise" else photo(24, 24)
    mask = np.zeros((24, 24), bool)
    mask[8:14, 8:14] = True
    setting = {"exposure": 0.5} if task == "lowlight" else None
    for method in (kit.methods_for(task, "RL")[0], kit.methods_for(task, "Supervised")[0],
                   kit.methods_for(task, "Classical")[0]):
        model = kit.load_model(method, device="cpu")
        out, trace = kit.restore_traced(method, model, image, mask=mask, setting=setting)
        np.testing.assert_array_equal(out, kit.restore(method, model, image, mask=mask, setting=setting))
        assert (trace is not None) == (method.family == "RL")
    assert trace is None and out.shape == (24, 24, 3)
    rl = kit.methods_for(task, "RL")[0]
    _, trace = kit.restore_traced(rl, kit.load_model(rl, device="cpu"), image, mask=mask, setting=setting)
    assert trace.steps >= 1 and np.isclose(trace.usage().sum(), 1.0)
    if task == "completion":
        assert (trace.region == mask).all()


@pytest.mark.parametrize("key", ["a3c", "ffdnet"])
def test_learned_denoisers_are_the_command_lines_own(key):
    """The page's result is `rlenhance denoise --model KEY`'s: the library denoiser (its gray default
    where one ships: a colour photo in its opponent colour planes; else the colour one), a gray photo
    once."""
    method = kit.find_method("denoise", key)
    model = kit.load_model(method, device="cpu")
    colour = kit.noisy_copy(photo(24, 32, low=0.2, high=0.8), 25)
    expected = load_denoiser(key, channels=min(method.weights), device="cpu").restore(colour)
    np.testing.assert_allclose(kit.restore(method, model, colour), np.clip(expected, 0, 1), atol=1e-6)
    gray = np.repeat(colour[..., :1], 3, axis=2)
    out = kit.restore(method, model, gray)
    assert np.abs(out - np.clip(gray, 0, 1)).mean() > 1e-3  # it denoised
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    np.testing.assert_allclose(out[..., :1], model.restore(gray[..., :1])[..., :1], atol=1e-6)


def test_learned_restorers_offer_the_self_ensemble_of_the_command_line():
    """A supervised network offers --ensemble's sizes, and the page's x2 result is `rlenhance denoise
    --model KEY --ensemble 2`'s; the classical, low-light and RL methods offer none (the shipped
    policies have no predictor)."""
    offered = {(m.task, m.key) for m in kit.METHODS if m.ensembles == (1, 2, 4, 8)}
    assert offered == {("denoise", k) for k in ("ffdnet", "mrpnet")} | {
        ("completion", k) for k in ("unet", "gated-pixelrnn", "pixelrnn")}
    assert all(m.ensembles == (1,) for m in kit.METHODS if (m.task, m.key) not in offered)
    method = kit.find_method("denoise", "ffdnet")
    colour = kit.noisy_copy(photo(24, 32, low=0.2, high=0.8), 25)
    twice = kit.restore(method, kit.load_model(method, device="cpu", ensemble=2), colour)
    expected = load_denoiser("ffdnet", channels=1, device="cpu", ensemble=2).restore(colour)
    np.testing.assert_allclose(twice, np.clip(expected, 0, 1), atol=1e-6)
    assert np.abs(twice - kit.restore(method, kit.load_model(method, device="cpu"), colour)).max() > 1e-4
    with pytest.raises(ValueError, match=r"ensemble: Telea inpainting offers \(1,\), got 2"):
        kit.load_model(kit.find_method("completion", "telea"), ensemble=2)
    with pytest.raises(ValueError, match="ensemble: FFDNet .* got 3"):
        kit.load_model(method, ensemble=3)


def test_methods_are_found_by_key_and_slow_rollouts_are_not_offered_at_full_size():
    rl, supervised = kit.find_method("denoise", "a3c"), kit.find_method("denoise", "mrpnet")
    assert (rl.family, supervised.family) == ("RL", "Supervised")
    with pytest.raises(ValueError, match="denoise: no method 'dncnn'; accepted: a3c, sac, ffdnet, noise-map, mrpnet"):
        kit.find_method("denoise", "dncnn")
    assert "up to 1 MP" in kit.full_size_refused(rl, 12_000_000)
    assert kit.full_size_refused(rl, 500_000) is None and kit.full_size_refused(supervised, 12_000_000) is None
    assert kit.full_size_refused(kit.find_method("denoise", "noise-map"), 12_000_000) is None  # FFDNet's speed


def test_importing_the_app_logic_imports_no_higher_layer_nor_streamlit():
    code = ("import sys, rlenhance.app_support, rlenhance.cli; "
            "print(sorted({'agents', 'envs', 'experiments', 'streamlit'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_quality_scores_against_a_reference():
    reference = photo(32, 32, low=0.2, high=0.8)
    scores = kit.quality(np.clip(reference + 0.01, 0, 1), reference)
    assert set(scores) == {"PSNR", "SSIM"} and 38 < scores["PSNR"] < 41 and scores["SSIM"] > 0.99
    with pytest.raises(ImageError, match="the reference is 32x32 but the result is 32x16"):
        kit.quality(reference[:16], reference)


# --------------------------------------------------------------------------------------------
# The `rlenhance app` command
# --------------------------------------------------------------------------------------------


def test_app_without_streamlit_says_how_to_install_it(monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "streamlit" else find_spec(name, *a))
    assert main(["app", "--no-browser"]) == 2
    assert "pip install 'rlenhance[app]'" in capsys.readouterr().err


def test_app_refuses_bad_options_before_serving(tmp_path, capsys):
    pytest.importorskip("streamlit", reason=NO_STREAMLIT)
    assert main(["app", "--port", "70000"]) == 2
    assert "--port 70000" in capsys.readouterr().err
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["app", "--checkpoint", str(bad)]) == 2
    assert "model.pt" in capsys.readouterr().err


def test_serve_runs_streamlit_headless_with_the_page_options(monkeypatch):
    pytest.importorskip("streamlit", reason=NO_STREAMLIT)
    started = []

    class Server:
        def __init__(self, command):
            started.append(command)

        def wait(self, timeout=None):
            return 0

        def poll(self):
            return 0

    assert kit.serve(port=8600, host="127.0.0.1", checkpoint="m.pt", device="cpu", max_pixels=1000,
                     open_browser=False, run=Server) == 0
    command = started[0]
    assert command[1:5] == ["-m", "streamlit", "run", str(kit.APP_SCRIPT)]
    flags = dict(zip(command[5:command.index("--"):2], command[6:command.index("--"):2]))
    assert flags["--server.port"] == "8600" and flags["--server.address"] == "127.0.0.1"
    assert flags["--server.headless"] == "true" and flags["--browser.gatherUsageStats"] == "false"
    page = kit.page_options(command[command.index("--") + 1:] + ["--unknown", "x"])
    assert (page.device, page.max_pixels, Path(page.checkpoint).name) == ("cpu", 1000, "m.pt")


# --------------------------------------------------------------------------------------------
# The page (Streamlit's AppTest)
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def app(monkeypatch, private_tmp):
    """The page in AppTest, run once, with --max-pixels 300000 (argv as `rlenhance app` passes it)."""
    testing = pytest.importorskip("streamlit.testing.v1", reason=NO_STREAMLIT)
    if not hasattr(testing.AppTest, "file_uploader"):
        pytest.skip("streamlit >= 1.56 needed (AppTest.file_uploader): pip install -U 'rlenhance[test]'")
    monkeypatch.setattr(sys, "argv", [str(APP), "--device", "cpu", "--max-pixels", "300000"])
    at = testing.AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception
    return at


def captions(at) -> list[str]:
    return [c for image in at.image for c in image.captions]


def shown(markdown: str) -> str:
    """The text a Markdown source shows when it holds nothing but backslash-escaped punctuation."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def plain_markdown(markdown: str) -> bool:
    """Whether every ASCII punctuation character of ``markdown`` is backslash-escaped (shown as itself)."""
    return re.fullmatch(r"(?:[^!-/:-@\[-`{-~]|\\[!-/:-@\[-`{-~])*", markdown) is not None


def run(at):
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_enhance_tab_live_knobs_steps_split_and_download(app):
    assert [s.label for s in app.slider][:2] == ["Target brightness (exposure)", "Curve steps"]
    assert [s.label for s in app.select_slider if s.key.startswith("enhance_")] == [
        "Exposure weight", "Colour-constancy weight", "Spatial-consistency weight", "Smoothness weight"]
    assert app.select_slider(key="enhance_w_smooth").value == 10.0  # the model's default, on a log scale
    assert not any("fixed reward weights" in c.value for c in app.caption)
    name, data, _ = kit.sample_photo("lowlight")
    app.file_uploader(key="enhance_files").set_value((name, data, "image/png"))
    run(app)
    after = [c for c in captions(app) if c.startswith("After")]
    steps = Enhancer(device="cpu").steps  # one caption per curve step the shipped model runs
    assert len(after) == 1 and len([c for c in captions(app) if c.startswith("step ")]) == steps
    assert len([c for c in captions(app) if c.startswith("actions at step ")]) == steps  # what the agent did
    assert any(e.label.startswith("What the agent of the RL curve policy did") for e in app.expander)
    app.slider(key="enhance_exposure").set_value(0.7)
    run(app)
    brighter = [c for c in captions(app) if c.startswith("After")]
    assert brighter != after and float(brighter[0].split()[3]) > float(after[0].split()[3]) + 0.1
    app.slider(key="enhance_steps").set_value(3)
    run(app)
    assert len([c for c in captions(app) if c.startswith("step ")]) == 3
    app.radio(key="enhance_view").set_value("Split")
    run(app)
    assert any(c.startswith("Before ◀ ▶ after") for c in captions(app))
    assert [b.label for b in app.download_button] == ["Download the result (PNG, 512×512)"]
    assert not app.error


def test_enhance_tab_reports_bad_uploads_and_keeps_going(app, private_tmp):
    good = png(photo(40, 56, low=0.0, high=0.2))
    app.file_uploader(key="enhance_files").set_value([
        ("notes.png", b"shopping list", "image/png"), ("broken.jpg", good[:100], "image/jpeg"),
        ("huge.png", png(np.zeros((600, 600, 3), np.float32)), "image/png"), ("dark.png", good, "image/png")])
    run(app)
    errors = [shown(e.value) for e in app.error]
    assert len(errors) == 3
    assert "notes.png" in errors[0] and "not a PNG, JPEG, BMP or TIFF image" in errors[0]
    assert "broken.jpg" in errors[1] and "huge.png" in errors[2] and "more than max_pixels=300000" in errors[2]
    assert len([c for c in captions(app) if c.startswith("After")]) == 1  # the good photo is enhanced
    assert sorted(p.name for p in private_tmp.iterdir()) == ["tmp"] and not any((private_tmp / "tmp").iterdir())


def test_enhance_tab_previews_a_large_photo_and_computes_the_full_size_on_request(app):
    app.file_uploader(key="enhance_files").set_value(("wide.png", png(photo(100, 1500)), "image/png"))
    run(app)
    assert any("1500×100 photo, shown at 1280×85" in c for c in captions(app))
    assert [b.label for b in app.download_button] == ["Download this preview (PNG)"]
    [compute] = [b for b in app.button if b.label.startswith("Compute the full-size result")]
    compute.click()
    run(app)
    assert [b.label for b in app.download_button][-1] == "Download the full-size result (PNG, 1500×100)"
    app.slider(key="enhance_exposure").set_value(0.5)  # a new setting: the full size is computed on request again
    run(app)
    assert [b.label for b in app.download_button] == ["Download this preview (PNG)"]


def test_denoise_tab_scores_against_the_clean_upload(app):
    clean = np.repeat(BUILTIN_IMAGES["camera"]()[200:264, 200:264, None], 3, axis=2).astype(np.float32) / 255
    app.file_uploader(key="denoise_files").set_value(("clean.png", png(clean), "image/png"))
    app.checkbox(key="denoise_add").check()
    for family, method in (("Classical", "Gaussian blur"), ("Supervised", "FFDNet (blind)"), ("RL", "PixelRL (A3C)")):
        app.radio(key="denoise_family").set_value(family)
        run(app)
        noisy, out = [c for c in captions(app) if c.startswith(("Noisy", method))]
        assert "PSNR" in noisy and "PSNR" in out and out.startswith(method)
        assert float(out.split("PSNR ")[1].split()[0]) > float(noisy.split("PSNR ")[1].split()[0])
        agent = [e for e in app.expander if e.label.startswith(f"What the agent of {method} did")]
        assert len(agent) == (family == "RL")  # the A3C's action maps and usage; nothing for the others
    steps = kit.load_model(kit.find_method("denoise", "a3c"), device="cpu").steps
    assert len([c for c in captions(app) if c.startswith("actions at step ")]) == steps
    app.radio(key="denoise_family").set_value("Supervised")
    run(app)
    app.select_slider(key="denoise_ensemble").set_value(2)  # FFDNet over 2 flips
    run(app)
    noisy, out = [c for c in captions(app) if c.startswith(("Noisy", "FFDNet (blind)"))]
    assert out.startswith("FFDNet (blind) x2 (")
    assert float(out.split("PSNR ")[1].split()[0]) > float(noisy.split("PSNR ")[1].split()[0])
    assert not app.error and not app.warning


def test_complete_tab_finds_or_reads_the_hole_and_explains_a_wrong_mask(app):
    image = photo(48, 64, low=0.3, high=0.9)
    image[10:26, 20:36] = 0.0
    app.file_uploader(key="complete_files").set_value(("occluded.png", png(image), "image/png"))
    run(app)
    assert any("hole: 256 px" in c for c in captions(app))
    assert [o for o in app.radio(key="complete_family").options] == ["Supervised", "Classical"]  # no RL ships
    assert any(c.startswith("Completion U-Net") for c in captions(app))
    app.radio(key="complete_family").set_value("Classical")
    run(app)
    assert any(c.startswith("Telea inpainting") for c in captions(app))
    assert not any(c.startswith("actions at step ") for c in captions(app))
    app.radio(key="complete_mask_source").set_value("Upload a mask (white = missing)")
    run(app)
    assert any("Upload the mask" in i.value for i in app.info)
    app.file_uploader(key="complete_mask_file").set_value(("mask.png", png(np.ones((20, 20, 3), np.float32)),
                                                            "image/png"))
    run(app)
    assert any("mask 'mask.png' is 20x20 but the image is 64x48" in shown(e.value) for e in app.error)
    app.radio(key="complete_mask_source").set_value("Find it (near-black pixels)")
    run(app)
    app.slider(key="complete_threshold").set_value(0.0)
    app.file_uploader(key="complete_files").set_value(("bright.png", png(photo(48, 64, low=0.5, high=0.9)),
                                                       "image/png"))
    run(app)
    assert any("No hole found" in w.value for w in app.warning)


def test_complete_tab_runs_the_self_ensemble_it_is_asked_for(app):
    image = photo(48, 64, low=0.3, high=0.9)
    image[10:26, 20:36] = 0.0
    app.file_uploader(key="complete_files").set_value(("occluded.png", png(image), "image/png"))
    app.radio(key="complete_family").set_value("Supervised")
    run(app)
    plain = [c for c in captions(app) if c.startswith("Completion U-Net")]
    assert plain and not plain[0].startswith("Completion U-Net x")
    app.select_slider(key="complete_ensemble").set_value(4)
    run(app)
    assert any(c.startswith("Completion U-Net x4 (") for c in captions(app))
    app.radio(key="complete_family").set_value("Classical")
    run(app)
    assert not [s for s in app.select_slider if s.key == "complete_ensemble"]  # Telea has none
    assert not app.error and not app.warning


def test_compare_tab_ranks_the_methods_against_a_reference(app):
    reference = photo(48, 64, seed=1, low=0.3, high=0.9)
    app.file_uploader(key="compare_lowlight_files").set_value(("dark.png", png(reference * 0.2), "image/png"))
    app.file_uploader(key="compare_lowlight_reference").set_value(("ref.png", png(reference), "image/png"))
    run(app)
    [table] = app.table
    rows = table.value
    assert list(rows["method"])[0] == "input" and {"RL", "Supervised", "Classical"} <= set(rows["kind"])
    assert "PSNR" in rows.columns and "SSIM" in rows.columns
    rl = kit.methods_for("lowlight", "RL")[0].label  # what the RL policy's agent did, under the pictures
    assert [e.label for e in app.expander if e.label.startswith("What the agent of")] == [
        f"What the agent of {rl} did: its action at every pixel and step"]
    app.file_uploader(key="compare_lowlight_reference").set_value(("other.png", png(reference[:20]), "image/png"))
    run(app)
    assert any("the reference 'other.png' is 64×20 but the image is 64×48" in shown(e.value) for e in app.error)


def test_upload_names_are_shown_as_text_not_markdown(app, private_tmp):
    """A file name is the uploader's text: bold, links, colours or maths in it are shown, not rendered,
    in the photo's heading and in the message about a bad upload."""
    good = "**bold** [click me](http://evil.example) :red[red] $x$ <b>_a_</b>.png"
    bad = "[open](javascript:alert(1)) `code` *x*.png"  # no '/': a message names what follows the last one
    app.file_uploader(key="enhance_files").set_value([(good, png(photo()), "image/png"),
                                                     (bad, b"not an image", "image/png")])
    run(app)
    headings = [m.value for m in app.markdown if m.value.startswith("#### ")]
    assert [shown(h[5:]) for h in headings] == [good, bad]
    assert all(plain_markdown(h[5:]) for h in headings)
    (error,) = [e.value for e in app.error]
    assert bad in shown(error) and plain_markdown(error)
    assert len([c for c in captions(app) if c.startswith("After")]) == 1
