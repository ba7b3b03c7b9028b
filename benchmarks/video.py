"""Videos in ``rlenhance enhance``: throughput, memory against the clip's length, and flicker.

    python -m benchmarks.video [--photos ../shared/data/sice_pairs/train/low] [--size 1280x720] [--frames 150]
                               [--encoder-frames 50] [--flicker-frames 30] [--noise 0.01 0.03] [--scenes 6]
                               [--parts throughput encoder flicker]

Prints:

1. throughput: a ``--size`` H.264 + AAC clip of ``--frames`` frames at 25 frames/s (a static dark scene, the
   first photo of ``--photos``, with fresh noise of the largest ``--noise`` per frame, CRF 18) through
   ``python -m rlenhance enhance clip.mp4 -o OUT`` in a fresh process: the frames/s it prints and its peak
   resident memory; then a clip three times as long (memory should not grow with the length), and the
   CPU milliseconds a frame, all threads (from the two runs' CPU times);
2. encoder: ``--encoder-frames`` frames of that scene at each ``--noise``, enhanced as the command does,
   encoded by x264 at CRF :data:`rlenhance.io.video.CRF` with the shipped options and with preset
   veryfast (:data:`ENCODERS`): CPU ms and kilobytes a frame, and the PSNR of the decoded frames against
   the encoder's input (8-bit Y, U, V), both ways and their ratios;
3. flicker: ``--scenes`` photos of ``--photos`` resized to ``--size``, ``--flicker-frames`` noisy frames
   each, enhanced one by one and with :class:`rlenhance.temporal.TemporalSmoothing`: the jitter of the
   mean brightness (:func:`jitter`), both ways, and their ratio.

The machine's load average is printed with each part: on a shared machine, compare figures of one run.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from benchmarks.export import DEFAULT_PHOTOS, photos
from benchmarks.inference import timed_run
from rlenhance.io.video import CRF, X264_OPTIONS

RATE = 25
SAMPLE_RATE = 44_100
#: The parts of the benchmark (``--parts``), in the order they run.
PARTS = ("throughput", "encoder", "flicker")


def noisy(base: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``base`` (float32 RGB in [0, 1]) with fresh Gaussian noise of standard deviation ``noise``, as uint8."""
    return np.rint(np.clip(base + rng.normal(0, noise, base.shape).astype(np.float32), 0, 1) * 255).astype(np.uint8)


def write_clip(path: Path, frames: Iterable[np.ndarray], *, rate: int = RATE, codec: str = "h264",
               audio: bool = True, rotation: int = 0, sample_rate: int = SAMPLE_RATE) -> Path:
    """A clip of ``frames`` (RGB uint8, one size) at ``rate`` frames/s (H.264 at CRF 18), with a stereo AAC
    tone as long as the clip when ``audio``, shown turned by ``rotation`` degrees."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=rate)
        sound = out.add_stream("aac", rate=sample_rate) if audio else None
        if sound is not None:
            sound.layout = "stereo"
        chunk = sample_rate // rate
        for i, rgb in enumerate(frames):
            if i == 0:
                video.width, video.height, video.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p"
                video.options = {"crf": "18", "preset": "veryfast"} if codec == "h264" else {}
                if rotation:
                    video.set_display_rotation(rotation)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
            if sound is not None:
                tone = (0.1 * np.sin(2 * np.pi * 220 * (np.arange(chunk) + i * chunk) / sample_rate)).astype(np.float32)
                samples = av.AudioFrame.from_ndarray(np.repeat(tone[None], 2, 0).reshape(1, -1), format="flt",
                                                     layout="stereo")
                samples.sample_rate, samples.pts = sample_rate, i * chunk
                out.mux(sound.encode(samples))
        out.mux(video.encode(None))
        if sound is not None:
            out.mux(sound.encode(None))
    return path


def run_command(clip: Path, out: Path) -> tuple[str, float, int]:
    """``rlenhance enhance clip -o out`` in a fresh process (:func:`benchmarks.inference.timed_run`): its line,
    CPU seconds, peak RSS (KiB)."""
    _wall, peak, cpu, line = timed_run([sys.executable, "-m", "rlenhance", "enhance", str(clip), "-o", str(out),
                                        "--overwrite"])
    return line.strip(), cpu, peak


#: The encoder settings compared (x264 options beside the CRF): the shipped ones and x264's preset veryfast.
ENCODERS = {"shipped (" + ", ".join(f"{k} {v}" for k, v in X264_OPTIONS.items()) + ")": X264_OPTIONS,
            "preset veryfast": {"preset": "veryfast"}}
#: Rounds of the encoder comparison (its CPU: the least of the rounds).
ENCODER_ROUNDS = 3


def encoded(frames: list[np.ndarray], options: dict[str, str]) -> tuple[float, float, float]:
    """``frames`` (RGB uint8) as an in-memory H.264 MP4 (x264 at CRF :data:`CRF` with ``options``): the encoder's
    CPU ms a frame, kilobytes a frame, and the mean PSNR (dB) of the decoded YUV samples against its input."""
    import av
    import torch

    from rlenhance.metrics import psnr

    planar = [av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p") for rgb in frames]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"crf": str(CRF), **options}
        start = time.process_time()
        for index, frame in enumerate(planar):
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        cpu = time.process_time() - start
    size = buffer.tell()
    buffer.seek(0)
    with av.open(buffer) as clip:
        scores = [float(psnr(*(torch.from_numpy(f.to_ndarray())[None].float() for f in pair), data_range=255.0))
                  for pair in zip(planar, clip.decode(video=0), strict=True)]
    return cpu * 1000 / len(frames), size / 1000 / len(frames), float(np.mean(scores))


def decoded(path: Path) -> list[np.ndarray]:
    """The frames of the clip ``path``, RGB uint8."""
    import av

    with av.open(str(path)) as clip:
        return [frame.to_ndarray(format="rgb24") for frame in clip.decode(video=0)]


def jitter(frames: list[np.ndarray]) -> float:
    """The standard deviation of the frame-to-frame change of the mean brightness (0-1 scale)."""
    return float(np.std(np.diff([frame.mean() / 255 for frame in frames])))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of real dark photos")
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the clips")
    parser.add_argument("--frames", type=int, default=150, help="frames of the throughput clip")
    parser.add_argument("--flicker-frames", type=int, default=30, help="frames of each flicker clip")
    parser.add_argument("--noise", type=float, nargs="+", default=[0.01, 0.03],
                        help="standard deviations of the frames' noise (0-1 scale)")
    parser.add_argument("--scenes", type=int, default=6, help="photos of the flicker check")
    parser.add_argument("--encoder-frames", type=int, default=50, help="frames of each encoder comparison")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="the parts run")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    scenes = [cv2.resize(p, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
              for p in photos(args.photos, args.scenes)]
    source = args.photos if args.photos.is_dir() else "builtin photos x 0.15"
    if "throughput" in args.parts:
        with tempfile.TemporaryDirectory() as folder:
            print(f"throughput: {width}x{height} H.264 + AAC at {RATE} frames/s, a static scene of {source} with "
                  f"noise {max(args.noise):g} (load average {os.getloadavg()[0]:.2f})")
            cpu = {}
            for frames in (args.frames, 3 * args.frames):
                rng = np.random.default_rng(0)
                clip = write_clip(Path(folder) / f"clip{frames}.mp4",
                                  (noisy(scenes[0], max(args.noise), rng) for _ in range(frames)))
                line, cpu[frames], peak = run_command(clip, Path(folder) / "out")
                print(f"  {frames} frames: {line.split('  ')[-1]}, peak RSS {peak / 1024:.0f} MiB")
                os.remove(clip)
            print(f"  {(cpu[3 * args.frames] - cpu[args.frames]) * 1000 / (2 * args.frames):.1f} ms CPU a frame, all "
                  f"threads (load average {os.getloadavg()[0]:.2f})")

    if not {"encoder", "flicker"} & set(args.parts):
        return
    from rlenhance.enhance import Enhancer
    from rlenhance.runtime import configure_threads, flush_denormals
    from rlenhance.temporal import TemporalSmoothing

    flush_denormals()
    configure_threads()
    enhancer = Enhancer(device="cpu")
    if "encoder" in args.parts:
        print(f"encoder: x264 at CRF {CRF} on the enhanced frames of the throughput scene, {args.encoder_frames} "
              f"frames: CPU a frame, size a frame, PSNR against its input (load average {os.getloadavg()[0]:.2f})")
        for noise in args.noise:
            rng, smoothing = np.random.default_rng(0), TemporalSmoothing()
            with tempfile.TemporaryDirectory() as folder:
                clip = write_clip(Path(folder) / "clip.mp4", (noisy(scenes[0], noise, rng)
                                                              for _ in range(args.encoder_frames)), audio=False)
                frames = [enhancer.enhance_array(frame, dtype=np.uint8, temporal=smoothing).image
                          for frame in decoded(clip)]
            runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in ENCODERS}
            for _ in range(ENCODER_ROUNDS):  # in turn: a load spike hits both alike
                for name, options in ENCODERS.items():
                    runs[name].append(encoded(frames, options))
            best = {name: (min(run[0] for run in rows), *rows[0][1:]) for name, rows in runs.items()}
            for name, (cpu, size, score) in best.items():
                print(f"  noise {noise:g}, {name}: {cpu:.1f} ms CPU (least of {ENCODER_ROUNDS}), {size:.0f} kB, "
                      f"PSNR {score:.2f} dB")
            (ms, kb, db), (ref_ms, ref_kb, ref_db) = best.values()
            print(f"  noise {noise:g}, shipped / veryfast: {ms / ref_ms:.2f}x the CPU, {kb / ref_kb:.2f}x the size, "
                  f"{db - ref_db:+.2f} dB")
    if "flicker" not in args.parts:
        return
    print(f"flicker: {len(scenes)} static scenes of {source} at {width}x{height}, {args.flicker_frames} frames of "
          f"fresh noise each; jitter of the mean brightness, one by one -> smoothed (load average "
          f"{os.getloadavg()[0]:.2f})")
    ratios = []
    for noise in args.noise:
        for index, base in enumerate(scenes):
            rng = np.random.default_rng(index)
            clip = [noisy(base, noise, rng) for _ in range(args.flicker_frames)]
            alone = [enhancer.enhance_array(frame, dtype=np.uint8).image for frame in clip]
            smoothing = TemporalSmoothing()
            smoothed = [enhancer.enhance_array(frame, dtype=np.uint8, temporal=smoothing).image for frame in clip]
            ratio = jitter(smoothed) / jitter(alone)
            ratios.append(ratio)
            print(f"  scene {index}, noise {noise:g}: {jitter(alone):.2e} -> {jitter(smoothed):.2e}, ratio {ratio:.2f}"
                  f" (mean brightness {np.mean(alone) / 255:.3f} -> {np.mean(smoothed) / 255:.3f}, cuts "
                  f"{smoothing.cuts})")
    print(f"  ratio: median {np.median(ratios):.2f}, largest {max(ratios):.2f}")


if __name__ == "__main__":
    main()
