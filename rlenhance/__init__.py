"""rlenhance: reinforcement-learning image enhancement (ReLLIE / PixelRL / RSE-RL style).

Channel order is RGB everywhere inside the library; images are float32 in [0, 1].

Importing rlenhance turns on flushing of denormal floats in torch's CPU ops before torch starts
its thread pool (threads started later keep denormals on): official peer weights are ~25%
denormals and run many times slower without it on some CPUs.

The entry points (the ``rlenhance`` command, ``python -m experiments.*``) set torch's CPU threads
with :func:`rlenhance.runtime.configure_threads`: every core but one, so that a busy neighbour
process costs little (``python -m benchmarks.contention`` measures it).
"""

from rlenhance.runtime import flush_denormals

flush_denormals()

from rlenhance.denoisers import load_denoiser  # noqa: E402 - after the denormal flag on purpose
from rlenhance.enhance import Enhancer  # noqa: E402
from rlenhance.errors import CheckpointError, DatasetError, ImageError  # noqa: E402
from rlenhance.io import load_image, save_image  # noqa: E402
from rlenhance.restore import SupervisedRestorer  # noqa: E402

__version__ = "0.1.0"

__all__ = ["CheckpointError", "DatasetError", "Enhancer", "ImageError", "SupervisedRestorer", "__version__",
           "load_denoiser", "load_image", "save_image"]
