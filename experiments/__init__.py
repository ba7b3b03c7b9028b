"""Runnable experiments (``python -m experiments.NAME``).

Denormal flushing is turned on here, before any module of this package runs a torch op, so that it
reaches every thread of torch's pool (:func:`rlenhance.runtime.flush_denormals`; ``import rlenhance``
changes no global state). :func:`experiments.process.setup_process` then sets the threads and seeds.
"""

from rlenhance.runtime import flush_denormals

flush_denormals()
