"""Exception types raised by rlenhance. All are ``ValueError`` subclasses so callers that
already catch ``ValueError`` for bad input keep working."""


class ImageError(ValueError):
    """An image file or array is unusable. The message names the file and the cause."""


class DatasetError(ValueError):
    """A dataset folder is unusable (empty, missing partners, mismatched sizes, ...).
    The message names the offending files."""


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded: wrong architecture, non-finite weights, bad file."""
