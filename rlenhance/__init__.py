"""rlenhance: reinforcement-learning image enhancement (ReLLIE / PixelRL / RSE-RL style).

Channel order is RGB everywhere inside the library; images are float32 in [0, 1].

Importing rlenhance turns on flushing of denormal floats in torch's CPU ops before torch starts
its thread pool (threads started later keep denormals on): official peer weights are ~25%
denormals and run many times slower without it on some CPUs.

It also sets ``OMP_WAIT_POLICY=PASSIVE`` unless the variable is already set, so that torch's
OpenMP threads sleep instead of spinning while they wait: next to another busy process (a
second training run, a test suite) spinning threads take the cores that the working threads
need, and every parallel op can stall for a scheduler slice. The OpenMP runtime reads the variable
once, when torch is first imported, so the entry points (the ``rlenhance`` command,
``python -m experiments.*`` and ``python -m benchmarks.*``) import rlenhance before torch; a
program that imports torch first keeps its own setting. ``python -m benchmarks.contention``
measures the effect.
"""

import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before the first import of torch: see above

from rlenhance.runtime import flush_denormals  # noqa: E402 - after the OpenMP setting on purpose

flush_denormals()

from rlenhance.enhance import Enhancer  # noqa: E402 - after the denormal flag on purpose
from rlenhance.errors import CheckpointError, DatasetError, ImageError  # noqa: E402
from rlenhance.io import load_image, save_image  # noqa: E402
from rlenhance.restore import SupervisedRestorer  # noqa: E402

__version__ = "0.1.0"

__all__ = ["CheckpointError", "DatasetError", "Enhancer", "ImageError", "SupervisedRestorer", "__version__", "load_image", "save_image"]
