"""The real photographs shipped with scikit-image: the embedded default data set.

They load offline (they are part of the scikit-image package), so environments, examples and
tests work on a machine without any data folder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import numpy as np
import torch

from rlenhance.data.base import ImageDataset, Record, encode_image, resolve_split
from rlenhance.data.transforms import TUNE_FRACTION
from rlenhance.errors import DatasetError
from rlenhance.io import BT601_LUMA_WEIGHTS

__all__ = ["BuiltinImages", "BUILTIN_IMAGES", "DEFAULT_COLOR_IMAGES", "DEFAULT_GRAY_IMAGES"]

_UINT8_MAX = 255.0


def _photo(name: str, index: int | None = None) -> Callable[[], np.ndarray]:
    """Loader of ``skimage.data.<name>()`` (item ``index`` of it), importing scikit-image (slow) on the first call."""
    def load() -> np.ndarray:
        from skimage import data as skdata

        photo = getattr(skdata, name)()
        return photo if index is None else photo[index]
    return load


#: Every available photo: name -> loader returning a uint8 array (H, W, 3) RGB or (H, W) gray.
BUILTIN_IMAGES: Mapping[str, Callable[[], np.ndarray]] = MappingProxyType({
    # colour photographs
    "astronaut": _photo("astronaut"),  # 512x512, portrait, NASA
    "chelsea": _photo("chelsea"),  # 300x451, cat
    "coffee": _photo("coffee"),  # 400x600, cup of coffee
    "rocket": _photo("rocket"),  # 427x640, launch pad at dusk
    "motorcycle_left": _photo("stereo_motorcycle", 0),  # 500x741, stereo pair (left view)
    "motorcycle_right": _photo("stereo_motorcycle", 1),  # 500x741, stereo pair (right view)
    "immunohistochemistry": _photo("immunohistochemistry"),  # 512x512, microscopy
    "hubble_deep_field": _photo("hubble_deep_field"),  # 872x1000, mostly black sky
    # grayscale photographs
    "camera": _photo("camera"),  # 512x512, cameraman
    "coins": _photo("coins"),  # 303x384
    "moon": _photo("moon"),  # 512x512
    "clock": _photo("clock"),  # 300x400
})

#: Default colour set: everyday scenes (not the microscopy and deep-sky images, atypical for photo enhancement).
DEFAULT_COLOR_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right")
#: Default gray set: the gray photographs plus the luma of the colour set.
DEFAULT_GRAY_IMAGES = ("camera", "coins", "moon", "clock") + DEFAULT_COLOR_IMAGES


def _to_channels(img: np.ndarray, gray: bool) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) -> float32 (H, W, 1) BT.601 luma or (H, W, 3) RGB in [0, 1]."""
    x = img.astype(np.float64) / _UINT8_MAX
    if x.ndim == 2:
        x = x[..., None]
    if gray and x.shape[-1] == 3:
        x = (x * np.asarray(BT601_LUMA_WEIGHTS)).sum(axis=-1, keepdims=True)
    elif not gray and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return x.astype(np.float32)


class BuiltinImages(ImageDataset):
    """scikit-image's real photographs as clean references: items ``{"high", "name"}``.

    ``high`` is a float32 tensor (C, H, W) in [0, 1]: RGB (gray photos repeated over three channels)
    or, with ``gray=True``, one channel (BT.601 luma for colour photos, as :func:`rlenhance.io.load_image`
    computes it). Sizes differ (300x400 to 872x1000), so draw batches with a crop. Low-light or noisy
    inputs are made with :mod:`rlenhance.data.degrade`.

    Args:
        names: photos to include, from :data:`BUILTIN_IMAGES`; None = :data:`DEFAULT_COLOR_IMAGES`
            (or :data:`DEFAULT_GRAY_IMAGES` with ``gray=True``).
        gray: one channel instead of RGB.
        split: "train", "tune", "val" or None (all of ``names``): the part of ``names`` kept, in their
            order, as the folder data sets split theirs (each photo a scene of its own).
        val_fraction, tune_fraction, seed: the split's (:func:`rlenhance.data.split_names`).

    Raises:
        ValueError: an unknown photo, no ``names``, or a bad ``split`` or fraction.
        DatasetError: ``split`` leaves no photo (a "tune" or "val" split of fraction 0).

    Example:
        >>> ds = BuiltinImages(names=["astronaut", "camera"])
        >>> ds.names, ds[0]["high"].shape
        (['astronaut', 'camera'], torch.Size([3, 512, 512]))
    """

    def __init__(self, *, names: Sequence[str] | None = None, gray: bool = False, split: str | None = None,
                 val_fraction: float = 0.1, tune_fraction: float = TUNE_FRACTION, seed: int = 0):
        super().__init__(gray=gray, cache=True, max_pixels=None)
        if names is None:
            names = DEFAULT_GRAY_IMAGES if gray else DEFAULT_COLOR_IMAGES
        names = list(names)
        unknown = [n for n in names if n not in BUILTIN_IMAGES]
        if unknown or not names:
            raise ValueError(f"names: unknown builtin image(s) {unknown or names}; "
                             f"accepted: {', '.join(BUILTIN_IMAGES)}")
        what = f"the embedded photos {', '.join(names)}"
        kept = resolve_split(names, split, val_fraction=val_fraction, tune_fraction=tune_fraction, seed=seed,
                             group=None, what=what)
        names = [n for n in names if n in kept]
        if not names:
            raise DatasetError(f"{what}: none left for the {split} split (val_fraction {val_fraction:g})")
        self._records = [Record(n, {}) for n in names]
        self._cached = [{"high": self._photo(n)} for n in names]

    def _photo(self, name: str) -> torch.Tensor:
        return encode_image(_to_channels(BUILTIN_IMAGES[name](), self.gray))
