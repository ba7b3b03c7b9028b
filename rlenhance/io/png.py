"""The PNG encoder of :func:`rlenhance.io.save_image`: Up-filtered rows deflated in parallel bands
into one zlib stream."""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

try:  # ISA-L's deflate (the isal package, a dependency), much faster than zlib's
    from isal import isal_zlib as _deflate
except ImportError:
    _deflate = zlib

#: PNG writing: the compressobj arguments, raw deflate at level 1 (zlib: OpenCV's settings), and about
#: this many filtered bytes a band.
_DEFLATE_ARGS = (1, _deflate.DEFLATED, -15, 9, zlib.Z_RLE if _deflate is zlib else _deflate.Z_DEFAULT_STRATEGY)
_PNG_BAND_BYTES = 1 << 21
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The zlib stream header of a deflate stream with a 32 KiB window at the fastest level (RFC 1950).
_ZLIB_HEADER = b"\x78\x01"
_ADLER_BASE = 65521


def encode_png(samples: np.ndarray, threads: int | None = None) -> bytes:
    """The bytes of a PNG file of integer samples (H, W) gray or (H, W, 3) RGB, uint8 or uint16.

    Rows get PNG's Up filter and are deflated at level 1 by ISA-L (without ``isal``: zlib's run-length strategy;
    ``docs/performance.md`` has the measurements) in bands of about 2 MB by ``threads`` threads (None: one a
    core), joined into one zlib stream as pigz does (sync flushes, combined Adler-32 checksums); one IDAT a band.
    """
    samples = np.ascontiguousarray(samples)
    height, width = samples.shape[:2]
    channels = 1 if samples.ndim == 2 else samples.shape[2]
    rows = samples.reshape(height, width * channels)
    row_bytes = rows.shape[1] * samples.itemsize
    band_rows = max(1, _PNG_BAND_BYTES // (row_bytes + 1))
    bands = [(top, min(height, top + band_rows)) for top in range(0, height, band_rows)]

    def deflate_band(band: tuple[int, int]) -> tuple[bytes, int, int]:
        top, bottom = band
        # PNG stores 16-bit samples big-endian; the filters act on the bytes
        raw = rows[max(0, top - 1):bottom].astype(">u2" if samples.itemsize == 2 else np.uint8, copy=False)
        raw = raw.view(np.uint8)
        filtered = np.empty((bottom - top, 1 + row_bytes), dtype=np.uint8)
        filtered[:, 0] = 2  # Up
        if top == 0:
            filtered[0, 1:] = raw[0]
            np.subtract(raw[1:], raw[:-1], out=filtered[1:, 1:])
        else:
            np.subtract(raw[1:], raw[:-1], out=filtered[:, 1:])
        compressor = _deflate.compressobj(*_DEFLATE_ARGS)
        end = _deflate.Z_FINISH if bottom == height else _deflate.Z_SYNC_FLUSH
        deflated = compressor.compress(filtered) + compressor.flush(end)
        return deflated, _deflate.adler32(filtered), filtered.size

    workers = min(len(bands), threads or os.cpu_count() or 1)
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            deflated = list(pool.map(deflate_band, bands))
    else:
        deflated = [deflate_band(band) for band in bands]
    header = struct.pack(">IIBBBBB", width, height, samples.itemsize * 8, 0 if channels == 1 else 2, 0, 0, 0)
    pieces = [_PNG_SIGNATURE, _png_chunk(b"IHDR", header)]
    adler = 1
    for index, (data, band_adler, size) in enumerate(deflated):
        adler = _adler32_combine(adler, band_adler, size)
        if index == 0:
            data = _ZLIB_HEADER + data
        if index == len(deflated) - 1:
            data += struct.pack(">I", adler)
        pieces.append(_png_chunk(b"IDAT", data))
    pieces.append(_png_chunk(b"IEND", b""))
    return b"".join(pieces)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of two byte strings one after the other, from theirs (zlib's ``adler32_combine``)."""
    rem = second_length % _ADLER_BASE
    sum1 = first & 0xFFFF
    sum2 = rem * sum1 % _ADLER_BASE
    sum1 = (sum1 + (second & 0xFFFF) + _ADLER_BASE - 1) % _ADLER_BASE
    sum2 = (sum2 + (first >> 16) + (second >> 16) + _ADLER_BASE - rem) % _ADLER_BASE
    return sum1 | sum2 << 16
