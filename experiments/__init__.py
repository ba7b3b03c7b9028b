"""Runnable experiments (``python -m experiments.NAME``).

Denormal flushing is turned on here, before any torch op, so that it reaches every thread of torch's pool.
"""

from rlenhance.runtime import flush_denormals

flush_denormals()
