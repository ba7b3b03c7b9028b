"""A data set held on the device, from which a batch's crops are gathered in a few tensor operations.

:meth:`ImageBank.sample` cuts the batch that :func:`rlenhance.data.sample_batch` cuts from the data set
with the same row stream (:class:`rlenhance.data.RowStream`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rlenhance.data.rows import RowStream
from rlenhance.data.transforms import _common_grid, row_windows, to_float
from rlenhance.errors import DatasetError

__all__ = ["BANK_BYTES", "ImageBank"]

#: The most bytes an :class:`ImageBank` takes by default (a larger data set is cut row by row).
BANK_BYTES = 2**30


class ImageBank:
    """Every image of a data set kept as tensors on one device, from which a batch of crops is gathered.

    Each tensor key's images are padded to the largest of them, channels last: (N, H_max, W_max, C) in
    the data set's own dtype (uint8 for 8-bit images; float32 when an item holds another). A batch
    (:meth:`sample`) is the one :func:`sample_batch` cuts from the data set with the same row stream.

    Args:
        items: the data set's raw items (dicts of (C, H, W) tensors plus ``"name"``), all with the
            same tensor keys and channels.
        device: where the images live.

    Raises:
        DatasetError: no items, items with other tensor keys, channels or scale factors than the
            first, or tensors not integer multiples of the item's smallest.
    """

    def __init__(self, items: Sequence[dict[str, Any]], device: str | torch.device = "cpu"):
        if not items:
            raise DatasetError("ImageBank: the data set is empty")
        self.device = torch.device(device)
        self.names = [item.get("name", "") for item in items]
        grids = [_common_grid(item) for item in items]
        #: (H, W) of each item's smallest grid, int64 (N, 2)
        self.sizes = np.array([grid[:2] for grid in grids], dtype=np.int64)
        self.factors = grids[0][2]
        self.images: dict[str, torch.Tensor] = {}
        for key, k in self.factors.items():
            values = [item.get(key) for item in items]
            channels = values[0].shape[0]
            if any(grid[2] != self.factors or value.shape[0] != channels for grid, value in zip(grids, values)):
                raise DatasetError(f"ImageBank: the items differ in their tensors ({key!r}: channels, size factor or "
                                   "presence); expected the first item's")
            dtypes = {value.dtype for value in values}
            dtype = dtypes.pop() if len(dtypes) == 1 else torch.float32
            store = torch.zeros((len(items), int(self.sizes[:, 0].max()) * k, int(self.sizes[:, 1].max()) * k,
                                 channels), dtype=dtype)
            for i, value in enumerate(values):
                store[i, :value.shape[1], :value.shape[2]] = (value if value.dtype == dtype
                                                              else to_float(value)).permute(1, 2, 0)
            self.images[key] = store.to(self.device)

    @classmethod
    def of(cls, dataset: Any, device: str | torch.device = "cpu", max_bytes: int = BANK_BYTES) -> ImageBank | None:
        """The bank of ``dataset``, or None when it does not keep its images in memory (its ``cache``
        attribute), its items differ in their tensors, or the bank would take more than ``max_bytes``."""
        if not getattr(dataset, "cache", False) or len(dataset) == 0:
            return None
        raw = getattr(dataset, "raw_item", None)
        items = [raw(i) if raw is not None else dataset[i] for i in range(len(dataset))]
        try:
            grids = [_common_grid(item) for item in items]
        except DatasetError:
            return None
        sizes = np.array([grid[:2] for grid in grids], dtype=np.int64).max(axis=0)
        first = items[0]
        total = sum(len(items) * int(sizes[0] * sizes[1]) * grids[0][2][key] ** 2 * first[key].shape[0]
                    * first[key].element_size() for key in grids[0][2])
        if total > max_bytes:
            return None
        try:
            return cls(items, device)
        except DatasetError:
            return None

    def __len__(self) -> int:
        return len(self.names)

    def sample(self, stream: RowStream, crop: int | Sequence[int] | None, *, flip: bool = True,
               vertical_flip: bool = True) -> dict[str, Any]:
        """One random item per row of ``stream``, cut and flipped: :func:`sample_batch` of the data set
        with ``rng=stream``, as float32 (B, C, h, w) tensors on the bank's device, and ``"names"``."""
        indices = stream.integers(0, len(self), size=len(stream))
        windows = row_windows(stream, self.sizes[indices], crop, flip=flip, vertical_flip=vertical_flip,
                              names=[self.names[i] for i in indices])
        batch: dict[str, Any] = {}
        for key, k in self.factors.items():
            store = self.images[key]
            _, height, width, channels = store.shape
            # each row's first pixel of its window's rows, in the flattened (N * H_max * W_max, C) store,
            # and its columns: every pixel's index is one sum, the batch one gather (indices made on the device)
            rows = _positions(windows.top * k, windows.size[0] * k, windows.up_down) + indices[:, None] * height
            cols = _positions(windows.left * k, windows.size[1] * k, windows.left_right)
            rows, cols = (torch.from_numpy(a).to(self.device) for a in (rows * width, cols))
            pixels = (rows[:, :, None] + cols[:, None, :]).view(-1)
            cut = store.view(-1, channels).index_select(0, pixels).view(len(indices), rows.shape[1], -1, channels)
            batch[key] = to_float(cut.permute(0, 3, 1, 2).contiguous())
        batch["names"] = [self.names[i] for i in indices]
        return batch


def _positions(start: np.ndarray, length: int, flipped: np.ndarray) -> np.ndarray:
    """int64 (B, length): the pixel positions of each row's window, ``start`` on, reversed where ``flipped``."""
    steps = np.arange(length, dtype=np.int64)
    return start[:, None] + np.where(flipped[:, None], length - 1 - steps, steps)
