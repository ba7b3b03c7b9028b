"""Videos in ``rlenhance enhance`` (rlenhance.io.video, the Enhancer's TemporalSmoothing): every frame, its
timing and the audio kept, bad files refused with nothing left behind, no flicker, scene cuts."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import benchmarks.video
from rlenhance.cli import main
from rlenhance.data.builtin import BUILTIN_IMAGES
from rlenhance.enhance import Enhancer
from rlenhance.errors import ImageError
from rlenhance.io import save_image
from rlenhance.io.video import CRF, X264_OPTIONS, is_video, transcode, video_decodes
from rlenhance.temporal import TemporalSmoothing

av = pytest.importorskip("av")

SIZE = (96, 64)  # width, height
SAMPLE_RATE = 8000


def dark_frames(count: int, *, seed: int = 0, photo: str = "coffee", noise: float = 0.01) -> list[np.ndarray]:
    """``count`` frames of a static dark scene (a real photo) with fresh sensor noise in each: uint8 RGB."""
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.resize(BUILTIN_IMAGES[photo](), SIZE, interpolation=cv2.INTER_AREA).astype(np.float32) / 255 * 0.15
    return [np.rint(np.clip(base + rng.normal(0, noise, base.shape), 0, 1) * 255).astype(np.uint8)
            for _ in range(count)]


def write_clip(path: Path, frames: list[np.ndarray], **options) -> Path:
    """:func:`benchmarks.video.write_clip` at 12 frames/s, its audio at 8 kHz."""
    return benchmarks.video.write_clip(path, frames, **{"rate": 12, "sample_rate": SAMPLE_RATE, **options})


def read_clip(path: Path) -> tuple[list[np.ndarray], list[int], Fraction, list[bytes]]:
    """The frames (RGB), their timestamps, the video's average rate and the audio packets' bytes."""
    with av.open(str(path)) as clip:
        video = clip.streams.video[0]
        frames, stamps = [], []
        for frame in clip.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            stamps.append(frame.pts)
        rate = video.average_rate
    with av.open(str(path)) as clip:
        audio = [bytes(p) for p in clip.demux(audio=0) if p.size] if clip.streams.audio else []
    return frames, stamps, rate, audio


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_every_frame_the_rate_the_timestamps_and_the_audio_are_kept(tmp_path):
    frames = dark_frames(7)
    source = write_clip(tmp_path / "clip.mp4", frames)
    seen = []

    def invert(rgb):
        seen.append(rgb)
        return 255 - rgb

    done = transcode(source, tmp_path / "out" / "clip.mp4", invert)
    assert (done.frames, done.width, done.height, done.audio_streams) == (7, *SIZE, 1)
    got, stamps, rate, audio = read_clip(tmp_path / "out" / "clip.mp4")
    given, given_stamps, given_rate, given_audio = read_clip(source)
    assert len(got) == 7 and rate == given_rate == 12
    assert [s * 1.0 for s in stamps] == pytest.approx([s * 1.0 for s in given_stamps])
    assert audio == given_audio and len(audio) > 3  # remuxed: the same packets
    for i in (0, 6):  # in order, each processed (x264 at CRF 18: within a few levels)
        assert np.abs(got[i].astype(int) - (255 - seen[i].astype(int))).mean() < 3
    assert leftovers(tmp_path / "out") == ["clip.mp4"]


def test_frames_are_encoded_as_processed_whatever_their_memory_layout(tmp_path):
    ramp = np.repeat(np.linspace(0, 255, SIZE[0]).astype(np.uint8)[None, :, None], 3, axis=2).repeat(SIZE[1], axis=0)
    source = write_clip(tmp_path / "clip.mp4", [ramp] * 3, audio=False)
    transcode(source, tmp_path / "out.mp4", lambda rgb: rgb[:, ::-1])  # a mirrored view: negative strides
    got = read_clip(tmp_path / "out.mp4")[0]
    assert len(got) == 3
    for frame in got:  # x264 at CRF 18: within a few levels of the mirrored ramp
        assert np.abs(frame.astype(int) - ramp[:, ::-1]).mean() < 3


def test_h264_is_encoded_with_the_shipped_x264_options(tmp_path):
    source = write_clip(tmp_path / "clip.mp4", dark_frames(3), audio=False)
    transcode(source, tmp_path / "out.mp4", lambda rgb: rgb)
    written = (tmp_path / "out.mp4").read_bytes()  # x264 writes its settings into the stream
    settings = written[written.index(b"x264 - core"):].split(b"\x00")[0].decode()
    for option in (f"crf={CRF}.0", "cabac=0", "subme=0", "bframes=3", "b_adapt=0", "threads=1", "sliced_threads=0"):
        assert f" {option} " in settings + " "
    ms, kb, db = benchmarks.video.encoded(dark_frames(3), X264_OPTIONS)  # the benchmark's encoder part
    assert ms > 0 and kb > 0 and db > 35


def test_a_portrait_phone_clip_keeps_its_rotation(tmp_path):
    source = write_clip(tmp_path / "phone.mp4", dark_frames(3), rotation=90)
    transcode(source, tmp_path / "out.mp4", lambda rgb: rgb)
    with av.open(str(tmp_path / "out.mp4")) as clip:
        assert next(clip.decode(video=0)).rotation == 90


def test_a_clip_without_audio_in_another_container(tmp_path):
    source = write_clip(tmp_path / "clip.mkv", dark_frames(4), codec="mpeg4", audio=False)
    done = transcode(source, tmp_path / "clip_out.mkv", lambda rgb: rgb)
    assert (done.frames, done.audio_streams) == (4, 0)
    with av.open(str(tmp_path / "clip_out.mkv")) as clip:
        assert clip.streams.video[0].codec_context.name == "mpeg4"  # the input's codec, encoded again
    assert len(read_clip(tmp_path / "clip_out.mkv")[0]) == 4


def _bad_inputs(folder: Path) -> dict[str, Path]:
    """A corrupt file, a truncated clip, a clip without frames and an audio-only file, each named as a video."""
    good = write_clip(folder / "good.mp4", dark_frames(6))
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    data = good.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) * 2 // 3])
    mkv = write_clip(folder / "whole.mkv", dark_frames(24), codec="mpeg4", audio=False).read_bytes()
    (folder / "truncated.mkv").write_bytes(mkv[: len(mkv) * 9 // 10])  # its header says 2 s; 17 frames decode
    with av.open(str(folder / "empty.avi"), "w") as out:  # (an MP4 drops a track without frames)
        video = out.add_stream("mpeg4", rate=12)
        video.width, video.height, video.pix_fmt = *SIZE, "yuv420p"
        out.start_encoding()
    with av.open(str(folder / "audio_only.mp4"), "w") as out:
        sound = out.add_stream("aac", rate=SAMPLE_RATE)
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 2048), np.float32), format="flt", layout="mono")
        chunk.sample_rate, chunk.pts = SAMPLE_RATE, 0
        out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    return {name: folder / name for name in ("corrupt.mp4", "truncated.mp4", "truncated.mkv", "empty.avi",
                                             "audio_only.mp4")}


@pytest.mark.parametrize("name, message", [
    ("corrupt.mp4", "not a video FFmpeg can read"),
    ("truncated.mp4", "not a video FFmpeg can read|truncated or corrupt"),
    ("truncated.mkv", r"truncated or corrupt: its packets end at 1\.\d\d s of the 2\.00 s"),
    ("empty.avi", "the video stream holds no frame"),
    ("audio_only.mp4", r"no video stream \(an audio-only file\)"),
])
def test_bad_videos_are_refused_with_nothing_left(tmp_path, name, message):
    source = _bad_inputs(tmp_path)[name]
    out = tmp_path / "out"
    with pytest.raises(ImageError, match=message):
        transcode(source, out / name, lambda rgb: rgb)
    assert leftovers(out) == []


def test_frames_above_the_size_limit_are_refused(tmp_path):
    source = write_clip(tmp_path / "clip.mp4", dark_frames(2), audio=False)
    with pytest.raises(ImageError, match=r"96x64 frames = 6,144 pixels, above the limit of 6,000 \(--max-pixels\)"):
        transcode(source, tmp_path / "out" / "clip.mp4", lambda rgb: rgb, max_pixels=6000)
    assert leftovers(tmp_path / "out") == []


@pytest.mark.slow
def test_a_16k_frame_is_refused_before_it_is_decoded(tmp_path):
    with av.open(str(tmp_path / "k16.mkv"), "w") as out:
        video = out.add_stream("mjpeg", rate=1)
        video.width, video.height, video.pix_fmt = 15360, 8640, "yuvj420p"
        frame = av.VideoFrame(15360, 8640, "yuvj420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.pts = 0
        out.mux(video.encode(frame))
        out.mux(video.encode(None))
    with pytest.raises(ImageError, match="15360x8640 frames = 132,710,400 pixels, above the limit"):
        transcode(tmp_path / "k16.mkv", tmp_path / "out" / "k16.mkv", lambda rgb: pytest.fail("decoded"))
    assert leftovers(tmp_path / "out") == []


def test_the_command_enhances_videos_beside_images_and_reports_bad_ones(tmp_path, capsys):
    bad = _bad_inputs(tmp_path)
    save_image(tmp_path / "photo.png", dark_frames(1)[0])
    good = tmp_path / "good.mp4"
    out = tmp_path / "out"
    argv = ["enhance", str(good), str(tmp_path / "photo.png"), *map(str, bad.values()), "-o", str(out)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert f"{good} -> {out / 'good.mp4'}  96x64, 6 frames at 12 frames/s, 1 audio stream(s) copied" in captured.out
    assert captured.err.count("FAILED") == len(bad) and f"{len(bad)} of 7 image(s) failed" in captured.err
    assert leftovers(out) == ["good.mp4", "photo.png"]  # nothing partial under the bad inputs' names
    frames, _, _, audio = read_clip(out / "good.mp4")
    assert len(frames) == 6 and audio == read_clip(good)[3]
    assert np.mean(frames) > np.mean(read_clip(good)[0]) + 20  # brightened
    # the rules of images: an existing output is kept unless asked, skipped with --skip-existing
    assert main(["enhance", str(good), "-o", str(out)]) == 2
    assert "1 output file(s) already exist" in capsys.readouterr().err
    assert main(["enhance", str(good), "-o", str(out), "--skip-existing"]) == 0
    assert "skipping 1 input(s)" in capsys.readouterr().out
    (out / "good.mp4").write_bytes(b"")  # broken: redone
    assert not video_decodes(out / "good.mp4")
    assert main(["enhance", str(good), "-o", str(out), "--skip-existing"]) == 0
    assert video_decodes(out / "good.mp4") and len(read_clip(out / "good.mp4")[0]) == 6


def test_two_clips_of_one_name_collide_and_other_commands_take_no_video(tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_clip(tmp_path / folder / "clip.mp4", dark_frames(2), audio=False)
    assert main(["enhance", str(tmp_path / "a/clip.mp4"), str(tmp_path / "b/clip.mp4"), "-o",
                 str(tmp_path / "out")]) == 2
    assert "would both be written to" in capsys.readouterr().err
    assert is_video(tmp_path / "a/clip.mp4") and not is_video(tmp_path / "a/clip.png")
    assert main(["denoise", str(tmp_path / "a/clip.mp4"), "-o", str(tmp_path / "den")]) == 1
    assert "videos are enhanced by rlenhance enhance --model rl" in capsys.readouterr().err


def _jitter(frames: list[np.ndarray]) -> float:
    """The standard deviation of the frame-to-frame change of the mean brightness."""
    return float(np.std(np.diff([frame.mean() for frame in frames])))


def test_a_static_noisy_scene_flickers_at_most_half_as_much_smoothed():
    enhancer = Enhancer(device="cpu")
    frames = dark_frames(16, noise=0.02)
    alone = [enhancer.enhance_array(f).image for f in frames]
    smoothing = TemporalSmoothing()
    smoothed = [enhancer.enhance_array(f, temporal=smoothing).image for f in frames]
    assert smoothing.cuts == 0
    assert _jitter(smoothed) <= 0.5 * _jitter(alone)
    assert abs(np.mean(smoothed) - np.mean(alone)) < 0.01  # the same brightness, steadier


def test_a_clips_frames_reuse_its_working_planes_and_return_frames_of_their_own():
    enhancer = Enhancer(device="cpu")
    frames = dark_frames(3)
    shared, fresh = TemporalSmoothing(), TemporalSmoothing()
    out, addresses = [], []
    for frame in frames:
        out.append(enhancer.enhance_array(frame, dtype=np.uint8, temporal=shared).image)
        addresses.append({name: plane.ctypes.data for name, plane in shared.scratch.items()})
    assert {"result", "curved", "chroma_blur"} <= set(addresses[0]) and addresses[0] == addresses[1] == addresses[2]
    for index, frame in enumerate(frames):  # the same levels as with new planes for each frame
        fresh.scratch = {}
        np.testing.assert_array_equal(out[index], enhancer.enhance_array(frame, dtype=np.uint8, temporal=fresh).image)
    smoothing = TemporalSmoothing()
    floats = [enhancer.enhance_array(frame, temporal=smoothing).image for frame in frames[:2]]
    for images, planes in ((out, shared.scratch), (floats, smoothing.scratch)):
        # no result is a working plane, which the next frame overwrites
        assert not any(np.shares_memory(image, plane) for image in images for plane in planes.values())
        assert not np.shares_memory(images[0], images[1])


def test_a_scene_cut_restarts_the_smoothing():
    enhancer = Enhancer(device="cpu")
    first, second = dark_frames(4, photo="coffee"), dark_frames(3, photo="rocket", seed=1)
    smoothing = TemporalSmoothing()
    out = [enhancer.enhance_array(f, dtype=np.uint8, temporal=smoothing).image for f in first + second]
    assert smoothing.cuts == 1
    np.testing.assert_array_equal(out[4], enhancer.enhance_array(second[0], dtype=np.uint8).image)  # as if alone
    assert not np.array_equal(out[5], enhancer.enhance_array(second[1], dtype=np.uint8).image)  # then blended
    with pytest.raises(ValueError, match="maps_weight: expected the current frame's share"):
        TemporalSmoothing(maps_weight=0)
