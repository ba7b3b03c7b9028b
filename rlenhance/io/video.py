"""Video files: :func:`transcode` streams a clip's frames through a function of RGB arrays into a new clip
of the same container, with PyAV (FFmpeg in its wheels: ``pip install 'rlenhance[video]'``), imported on
first use.

Every frame is handed to the function as RGB uint8 (H, W, 3) (converted with the frame's own colour matrix
and range) and encoded again at its own timestamp: the frame count and rate, the colour tags and the display
rotation are the input's; the video codec is the input's when this FFmpeg can encode it into the container
(H.264 as x264 at CRF :data:`CRF` with :data:`X264_OPTIONS`), else the container's default. Audio streams are
remuxed; subtitle and data streams are left out. Decoding, processing and encoding overlap in three threads.
The clip is written atomically (:func:`rlenhance.atomic.atomic_path`): a file that cannot be read, holds no
video stream or no frame, or ends before its header says, leaves nothing behind.

Example:
    >>> transcode("clip.mp4", "out/clip.mp4", lambda rgb: 255 - rgb)   # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from queue import Full, Queue

import numpy as np

from rlenhance.atomic import atomic_path
from rlenhance.errors import ImageError
from rlenhance.io.read import DEFAULT_MAX_PIXELS

__all__ = ["CRF", "VIDEO_EXTENSIONS", "X264_OPTIONS", "VideoSummary", "is_video", "transcode", "video_decodes"]

#: Lower-case extensions of the containers read as videos (FFmpeg reads them; the output keeps the extension).
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts",
                                     ".mts", ".m2ts", ".flv", ".wmv", ".ogv", ".3gp")
#: x264's and x265's constant quality for the re-encoded video (18: visually lossless).
CRF = 18
#: x264's speed: preset ultrafast with 3 B-frames, which give back most of the size ultrafast alone loses
#: (docs/deploy.md#video has the measurements); one thread, so the stream does not depend on the core count.
X264_OPTIONS = {"preset": "ultrafast", "x264-params": "bframes=3", "threads": "1"}
#: x265's preset.
X265_OPTIONS = {"preset": "veryfast"}


@dataclass(frozen=True)
class VideoSummary:
    """What :func:`transcode` did: frames, their size, the video stream's average frame rate (frames/s,
    0 when unknown), the audio streams copied, and the wall seconds it took."""

    frames: int
    width: int
    height: int
    rate: float
    audio_streams: int
    seconds: float


def is_video(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a video by its extension (:data:`VIDEO_EXTENSIONS`, case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _pyav():
    try:
        import av
    except ModuleNotFoundError as exc:
        raise ImageError("videos need PyAV (FFmpeg in its wheels): pip install 'rlenhance[video]'") from exc
    return av


def transcode(source: str | os.PathLike[str], target: str | os.PathLike[str],
              process: Callable[[np.ndarray], np.ndarray], *, overwrite: bool = False,
              max_pixels: int | None = DEFAULT_MAX_PIXELS, progress: bool = False) -> VideoSummary:
    """Write ``target``, the clip ``source`` with every frame replaced by ``process(frame)`` (see the module
    notes); ``process`` takes and returns RGB uint8 (H, W, 3), the frames in order.

    Args:
        overwrite: replace an existing ``target``; False: claim it create-exclusively when the clip is done.
        max_pixels: the largest frame (width x height) accepted (None: any).
        progress: show a progress bar of the frames on stderr (when it is a terminal).

    Raises:
        ImageError: naming ``source``: not a file FFmpeg reads (corrupt, truncated, not a video), no video
            stream (an audio-only file), a frame above ``max_pixels``, no frame, fewer frames than the
            header announces, a frame the decoder rejects; PyAV missing. Nothing is left at ``target``.
        FileExistsError: ``overwrite`` is False and ``target`` exists by the end (it is left as it is).
    """
    av = _pyav()
    source, target = Path(source), Path(target)
    start = time.perf_counter()
    try:
        container = av.open(str(source))
    except av.FFmpegError as exc:
        raise ImageError(f"{source}: not a video FFmpeg can read (corrupt, truncated or another format): "
                         f"{_reason(exc)}") from None
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams})
            what = "an audio-only file" if kinds == ["audio"] else f"its streams: {', '.join(kinds) or 'none'}"
            raise ImageError(f"{source}: no video stream ({what})")
        video = container.streams.video[0]
        video.thread_type = "AUTO"  # the decoder's frame threads
        width, height = video.codec_context.width, video.codec_context.height
        if max_pixels is not None and width * height > max_pixels:
            raise ImageError(f"{source}: {width}x{height} frames = {width * height:,} pixels, above the limit of "
                             f"{max_pixels:,} (--max-pixels)")
        audio = list(container.streams.audio)
        with atomic_path(target, replace=overwrite) as tmp:
            try:
                rotation = _rotation(av, source)
                frames, ends = _stream(av, container, video, audio, tmp, process, progress, rotation)
            except av.FFmpegError as exc:
                raise ImageError(f"{source}: the video cannot be decoded or written: {_reason(exc)}") from None
            if frames == 0:
                raise ImageError(f"{source}: the video stream holds no frame")
            if video.frames and frames < video.frames:
                raise ImageError(f"{source}: truncated or corrupt: {frames} of the {video.frames} frames its header "
                                 "announces could be decoded")
            declared, end = _declared_end(container, video, ends)
            if declared is not None and end is not None and declared - end > max(TRUNCATED_SECONDS, 2 / _rate(video)):
                raise ImageError(f"{source}: truncated or corrupt: its packets end at {end:.2f} s of the "
                                 f"{declared:.2f} s its header announces")
    return VideoSummary(frames, width, height, float(video.average_rate or 0), len(audio), time.perf_counter() - start)


#: How much sooner (seconds) than its header says a clip may end before it counts as truncated.
TRUNCATED_SECONDS = 0.5


def _declared_end(container, video, ends: dict[str, float]) -> tuple[float | None, float | None]:
    """``(declared, reached)``: when the video stream's header says it ends and when its packets did (seconds),
    or, where the stream declares no duration, the container's and all the streams' packets; None: unknown."""
    if video.duration:
        return float(((video.start_time or 0) + video.duration) * video.time_base), ends.get("video")
    if container.duration:
        return ((container.start_time or 0) + container.duration) / 1_000_000, ends.get("all")  # AV_TIME_BASE
    return None, None


def _rate(video) -> float:
    """The video's frame rate (frames/s), 25 when the file gives none."""
    return float(video.average_rate or video.guessed_rate or 25)


def _reason(exc: Exception) -> str:
    """FFmpeg's message of an error, without the file name PyAV appends."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip() or type(exc).__name__


def _rotation(av, source: Path) -> int:
    """The rotation (degrees counter-clockwise) a player gives the clip's frames: its first frame's
    display matrix (a phone's portrait clip), 0 without one."""
    with av.open(str(source)) as container:
        frame = next(container.decode(video=0), None)
        return 0 if frame is None else int(round(frame.rotation or 0))


def _stream(av, container, video, audio: list, path: Path, process: Callable[[np.ndarray], np.ndarray],
            progress: bool, rotation: int) -> tuple[int, dict[str, float]]:
    """Decode, process, encode and mux into ``path``; the frames written, and when the packets end (seconds:
    ``"video"``, the video stream's, ``"all"``, every stream's). A thread decodes, this thread runs ``process``,
    a thread encodes and muxes; the queues between them hold :data:`QUEUED_FRAMES` frames each."""
    from tqdm import tqdm

    frames, ends = 0, {}
    with av.open(str(path), "w") as output, tqdm(total=video.frames or None, unit="frame", leave=False,
                                                desc=Path(container.name).name,
                                                disable=None if progress else True) as bar:
        encoder = _video_stream(av, output, video)
        if rotation:
            encoder.set_display_rotation(rotation)
        copies = {stream.index: output.add_stream_from_template(stream) for stream in audio}
        to_encoder = _converter(av)

        def write(item) -> None:  # in the writer thread
            if item[0] == "packet":
                item[1].stream = copies[item[1].stream.index]
                output.mux(item[1])
                return
            _, rgb, pts, colorspace, color_range = item
            frame = av.VideoFrame.from_numpy_buffer(rgb, format="rgb24")  # the array's memory, not a copy of it
            frame = to_encoder(frame, format=encoder.pix_fmt, dst_colorspace=colorspace, dst_color_range=color_range)
            frame.pts, frame.time_base = pts, video.time_base
            output.mux(encoder.encode(frame))

        with _Writer(write) as writer:
            for item in _background(_decoded(av, container, video, audio, encoder, ends)):
                if item[0] == "frame":
                    _, rgb, pts, colorspace, color_range = item
                    pts = pts if pts is not None else int(round(frames / (_rate(video) * video.time_base)))
                    item = ("frame", np.ascontiguousarray(process(rgb)), pts, colorspace, color_range)
                    frames += 1
                    bar.update()
                writer.send(item)
        output.mux(encoder.encode(None))
    return frames, ends


#: Frames waiting between two stages of :func:`_stream`.
QUEUED_FRAMES = 2


def _converter(av) -> Callable:
    """``convert(frame, **options)``: :meth:`av.VideoFrame.reformat` of the frames of one stage of a clip
    through one swscale context, on the calling thread."""
    context = av.video.reformatter.VideoReformatter()
    return lambda frame, **options: context.reformat(frame, threads=1, **options)


def _decoded(av, container, video, audio: list, encoder, ends: dict[str, float]):
    """``("packet", audio packet)`` and ``("frame", rgb, pts, colorspace, color_range)`` in the file's order;
    ``ends`` gets when the video's packets and all packets end (seconds)."""
    indices = {stream.index for stream in audio}
    to_rgb = _converter(av)
    for packet in container.demux(video, *audio):
        if packet.pts is not None:
            end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            ends["all"] = max(ends.get("all", end), end)
            if packet.stream.index == video.index:
                ends["video"] = max(ends.get("video", end), end)
        if packet.stream.index in indices:
            if packet.dts is not None:  # not the demuxer's end-of-stream marker
                yield "packet", packet
            continue
        for frame in packet.decode():
            if (frame.width, frame.height) != (encoder.width, encoder.height):
                raise ImageError(f"{container.name}: the frame size changes from {encoder.width}x{encoder.height} to "
                                 f"{frame.width}x{frame.height}")
            rgb = to_rgb(frame, format="rgb24", src_color_range=frame.color_range).to_ndarray()
            yield "frame", rgb, frame.pts, frame.colorspace, frame.color_range


def _background(items):
    """The items of the iterator ``items``, produced in a thread up to :data:`QUEUED_FRAMES` ahead; its
    exception is raised here. Closing this generator stops the thread."""
    queue: Queue = Queue(QUEUED_FRAMES)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put(item, timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(done)
        except BaseException as exc:  # handed to the consumer
            queue.put(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class _Writer:
    """A thread that calls ``write`` on each item :meth:`send` gives it, in order; leaving the ``with`` block
    waits for it and raises its exception (or, on an exception in the block, stops it)."""

    def __init__(self, write: Callable) -> None:
        self.queue: Queue = Queue(QUEUED_FRAMES)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(write,), daemon=True)

    def _run(self, write: Callable) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    write(item)
                except BaseException as exc:  # raised in the sender's thread
                    self.error = exc

    def send(self, item) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def __enter__(self) -> _Writer:
        self.thread.start()
        return self

    def __exit__(self, *failed) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None and failed[0] is None:
            raise self.error


def _video_stream(av, output, video):
    """The output's video stream: the input's codec when this FFmpeg encodes it into ``output``'s container,
    else the container's default; the input's size, rate, time base and colour tags."""
    context = video.codec_context
    name = context.name if context.name in output.supported_codecs and _encodes(av, context.name) \
        else output.default_video_codec
    stream = output.add_stream(name, rate=video.average_rate or video.guessed_rate)
    stream.width, stream.height = context.width, context.height
    formats = [f.name for f in stream.codec_context.codec.video_formats or ()]
    stream.pix_fmt = context.pix_fmt if context.pix_fmt in formats or not formats else formats[0]
    stream.time_base = video.time_base
    for tag in ("colorspace", "color_range", "color_primaries", "color_trc"):
        value = getattr(context, tag, None)
        if value is not None:
            setattr(stream.codec_context, tag, value)
    encoder = {"libx264": X264_OPTIONS, "libx265": X265_OPTIONS}.get(stream.codec_context.name)
    if encoder is not None:
        stream.options = {"crf": str(CRF), **encoder}
    elif context.bit_rate:
        stream.bit_rate = context.bit_rate
    return stream


def _encodes(av, name: str) -> bool:
    try:
        av.Codec(name, "w")
    except (av.FFmpegError, ValueError):
        return False
    return True


def video_decodes(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a video whose container opens and whose first frame decodes (``--skip-existing``
    keeps such an output: :func:`transcode` writes a whole clip or nothing)."""
    av = _pyav()
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.video) and next(container.decode(video=0), None) is not None
    except av.FFmpegError:
        return False
