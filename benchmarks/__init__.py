"""Scripts that print numbers (``python -m benchmarks.NAME``).

``rlenhance`` is imported first, before any module of this package imports torch, so that its
process-wide CPU settings (OpenMP threads that sleep while they wait, denormal flushing) take
effect: see ``rlenhance/__init__.py``.
"""

import rlenhance  # noqa: F401 - before torch, on purpose
