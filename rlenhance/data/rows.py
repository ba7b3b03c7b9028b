"""Counter-based random numbers for the rows of a batch, drawn for every row at once.

Row ``i`` of a batch drawn from one seed gets numbers that depend only on (seed, ``i``), so a row is the same in
a batch of any size and whichever process draws it (data-parallel ranks draw only their rows), without a Python
loop over per-row generators: each number is a hash of (seed, row, stream, position). :class:`RowDraws` holds
the seed and the rows; each named :class:`RowStream` is read in order as a numpy ``Generator`` is, one call for
all the rows, on the host (numpy) or, for large fields, on the device (torch).

The hash is a bijective 32-bit integer mix (two multiply-xorshift rounds, constant ``0x45D9F3B``), applied twice
with two keys per (seed, row, stream): one 32-bit word per position. Uniform floats take its top 24 (float32) or
all 32 bits (float64 on the host); normal numbers come in pairs by the Box-Muller transform. The integer words
are the same on every device; the normal numbers agree to float32 rounding.

Example:
    >>> draws = RowDraws(seed=7, rows=range(2, 5))
    >>> stream = draws.stream("crop")
    >>> stream.integers(0, 10, size=3).shape
    (3,)
    >>> bool((RowDraws(7, [3]).stream("crop").random(1) == RowDraws(7, range(5)).stream("crop").random(5)[3]).all())
    True
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["RowDraws", "RowStream"]

#: The multiplier of the 32-bit mix: below 2**31, so its products with 32-bit words fit the torch path's int64.
_MUL = 0x45D9F3B
_MASK = 0xFFFFFFFF
#: Words (positions) a stream may hand a row in one call.
_MAX_POSITIONS = 2**32
#: Float scales of the top 24 bits (float32 uniforms) and of the whole word (float64 uniforms).
_F24, _F32 = 2.0**-24, 2.0**-32
#: Distinguishes the two keys of a (seed, row, stream).
_SECOND_KEY = 0x9E3779B9
#: Words a row's stream computes at least at once on the host (kept for the next draws), and the most a draw
#: for another device takes from the host.
_BLOCK = 16


def _mix(x: np.ndarray) -> np.ndarray:
    """A bijective mix of the 32-bit words of a numpy uint32 array, in place (its products wrap)."""
    shifted = np.empty_like(x)
    for multiply in (True, True, False):
        x ^= np.right_shift(x, 16, out=shifted)
        if multiply:
            x *= _MUL
    return x


def _mix_tensor(x: torch.Tensor) -> torch.Tensor:
    """:func:`_mix` of a torch int64 tensor of words in [0, 2**32), in place: the same words on any device."""
    for multiply in (True, True, False):
        x ^= x >> 16
        if multiply:
            x *= _MUL
            x &= _MASK
    return x


class RowDraws:
    """The random source of rows ``rows`` of a batch started with ``seed``.

    Args:
        seed: the batch's seed, an int in [0, 2**64).
        rows: the global indices of the rows held (e.g. ``rank * B`` .. ``rank * B + B - 1`` of a data-parallel
            job), ints in [0, 2**32).

    Raises:
        ValueError: a seed or a row out of range.
    """

    def __init__(self, seed: int, rows: Iterable[int]):
        seed = int(seed)
        if not 0 <= seed < 2**64:
            raise ValueError(f"seed: expected an int in [0, 2**64), got {seed}")
        self.seed = seed
        self.rows = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.int64).reshape(-1)
        if self.rows.size and (self.rows.min() < 0 or self.rows.max() >= 2**32):
            raise ValueError(f"rows: expected indices in [0, 2**32), got {self.rows.min()}..{self.rows.max()}")

    def __len__(self) -> int:
        return int(self.rows.size)

    def __repr__(self) -> str:
        return f"RowDraws(seed={self.seed}, rows={len(self)})"

    def stream(self, name: str) -> RowStream:
        """The stream ``name`` of every row, from its first number (each call gives a new reader)."""
        return RowStream(self, name)

    def select(self, which: np.ndarray | Sequence[int] | Sequence[bool]) -> RowDraws:
        """The rows picked by ``which`` (a boolean mask over the rows, or their positions), with their numbers."""
        return RowDraws(self.seed, self.rows[np.asarray(which)])

    def keys(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The two 32-bit keys (uint32 (B,) each) of stream ``name`` of every row: the row mixed with the seed's
        two halves and the stream's name (its CRC-32, the same in every process), in two orders."""
        seed_lo, seed_hi, stream = self.seed & _MASK, self.seed >> 32, zlib.crc32(name.encode("utf-8"))
        salts = np.array([[seed_lo, seed_hi], [seed_hi, stream], [stream, seed_lo ^ _SECOND_KEY]], dtype=np.uint32)
        keys = self.rows.astype(np.uint32)[None, :] ^ salts[0][:, None]
        for salt in salts[1:]:
            keys = _mix(keys)
            keys ^= salt[:, None]
        first, second = _mix(keys)
        return first, second


class RowStream:
    """One named stream of numbers of every row of a :class:`RowDraws`, read in order.

    Each call takes the next numbers of every row (one position each, a normal pair two), so a sequence of
    calls gives row ``i`` the same numbers whatever the other rows. ``random``, ``uniform``, ``integers`` mirror
    a numpy ``Generator``'s with ``size`` = the number of rows B, or (B, k) for k numbers a row; ``rand`` and
    ``randn`` give torch tensors computed on a device.
    """

    def __init__(self, draws: RowDraws, name: str):
        self.draws, self.name = draws, name
        self.keys = draws.keys(name)
        #: positions taken so far (the same for every row)
        self.position = 0
        self._device_keys: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        #: (first position, words (B, k)) computed on the host ahead of the draws
        self._ahead: tuple[int, np.ndarray] = (0, np.zeros((len(draws), 0), dtype=np.uint32))

    def __len__(self) -> int:
        return len(self.draws)

    def __repr__(self) -> str:
        return f"RowStream({self.name!r}, rows={len(self)}, position={self.position})"

    def _take(self, n: int) -> int:
        if n < 0 or self.position + n > _MAX_POSITIONS:
            raise ValueError(f"stream {self.name!r}: {n} more numbers a row after {self.position}; at most "
                             f"{_MAX_POSITIONS} in all")
        start, self.position = self.position, self.position + n
        return start

    def _per_row(self, size: int | Sequence[int] | None) -> tuple[int, ...]:
        """``size`` as (B, *per_row); refused unless it starts with the number of rows."""
        shape = (len(self),) if size is None else (int(size),) if isinstance(size, (int, np.integer)) \
            else tuple(int(s) for s in size)
        if not shape or shape[0] != len(self):
            raise ValueError(f"size: expected the number of rows ({len(self)}) or ({len(self)}, ...), got {size!r}")
        return shape

    def bits(self, n: int) -> np.ndarray:
        """The next ``n`` 32-bit words of every row, uint32 (B, n), on the host."""
        start = self._take(n)
        first, ahead = self._ahead
        if start + n > first + ahead.shape[1]:  # compute from here on, at least a block
            words = self._words(start, max(n, _BLOCK))
            if words.shape[1] == n:
                return words
            first, ahead = self._ahead = start, words
        return ahead[:, start - first: start - first + n].copy()

    def _words(self, start: int, n: int) -> np.ndarray:
        """The words of positions ``start`` .. ``start + n - 1`` of every row, uint32 (B, n)."""
        first, second = self.keys
        return _mix(_mix(np.arange(start, start + n, dtype=np.uint32)[None, :] ^ first[:, None]) ^ second[:, None])

    def _device_bits(self, n: int, device: torch.device) -> torch.Tensor:
        """:meth:`bits` computed on ``device``: int64 (B, n) holding the same words."""
        start = self._take(n)
        if device not in self._device_keys:
            self._device_keys[device] = tuple(torch.from_numpy(k.astype(np.int64)).to(device)[:, None]
                                              for k in self.keys)
        first, second = self._device_keys[device]
        words = torch.arange(start, start + n, dtype=torch.int64, device=device)[None, :] ^ first
        return _mix_tensor(_mix_tensor(words) ^ second)

    # --- numpy Generator-like draws, on the host ---------------------------------------------
    def random(self, size: int | Sequence[int] | None = None) -> np.ndarray:
        """Uniform float64 numbers in [0, 1), shape ``size`` = B or (B, ...)."""
        shape = self._per_row(size)
        return (self.bits(math.prod(shape[1:])).astype(np.float64) * _F32).reshape(shape)

    def uniform(self, low: Any = 0.0, high: Any = 1.0, size: int | Sequence[int] | None = None) -> np.ndarray:
        """Uniform float64 numbers in [low, high) (bounds broadcast against ``size``)."""
        return np.asarray(low) + (np.asarray(high) - np.asarray(low)) * self.random(size)

    def integers(self, low: Any, high: Any = None, size: int | Sequence[int] | None = None) -> np.ndarray:
        """Integers in [low, high) (one argument: [0, low)), int64 of shape ``size``; the bounds broadcast
        against it (a bound per row: shape (B,) with ``size`` B)."""
        low, high = (0, low) if high is None else (low, high)
        low, high = np.asarray(low, dtype=np.int64), np.asarray(high, dtype=np.int64)
        if np.any(high <= low):
            raise ValueError(f"integers: expected low < high, got {low} and {high}")
        return low + np.floor(self.random(size) * (high - low)).astype(np.int64)

    # --- torch tensors on a device --------------------------------------------------------------
    def rand(self, n: int, device: str | torch.device = "cpu") -> torch.Tensor:
        """The next ``n`` uniform numbers in [0, 1) of every row, float32 (B, n) on ``device``."""
        device = torch.device(device)
        if device.type == "cpu" or n <= _BLOCK:  # a few numbers: from the host (one small copy)
            return torch.from_numpy((self.bits(n) >> 8).astype(np.float32) * np.float32(_F24)).to(device)
        return (self._device_bits(n, device) >> 8).to(torch.float32) * _F24

    def randn(self, shape: Sequence[int], device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard normal numbers of every row, ``dtype`` (B, *shape) on ``device``: Box-Muller pairs of the next
        ``2 ceil(n / 2)`` words (n numbers a row), computed on the device (the words on the CPU by numpy)."""
        device = torch.device(device)
        n = math.prod(shape)
        half = (n + 1) // 2
        words = (torch.from_numpy((self.bits(2 * half) >> 8).astype(np.int32)) if device.type == "cpu"
                 else self._device_bits(2 * half, device) >> 8)
        radius = ((words[:, :half].to(torch.float32) + 0.5) * _F24).log_().mul_(-2.0).sqrt_()
        angle = words[:, half:].to(torch.float32).mul_(2 * math.pi * _F24)
        normal = torch.cat([radius * torch.cos(angle), radius.mul_(angle.sin_())], dim=1)
        return normal[:, :n].to(dtype).reshape(len(self), *shape)
