"""rlenhance: reinforcement-learning image enhancement (ReLLIE / PixelRL / RSE-RL style).

Channel order is RGB everywhere inside the library; images are float32 in [0, 1].
"""

from rlenhance.errors import CheckpointError, DatasetError, ImageError

__version__ = "0.1.0"

__all__ = ["CheckpointError", "DatasetError", "ImageError", "__version__"]
