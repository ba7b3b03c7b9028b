"""Scripts that print numbers (``python -m benchmarks.NAME``).

``rlenhance`` is imported first, before any module of this package runs a torch op, so that its
denormal flushing reaches every thread of torch's pool: see ``rlenhance/__init__.py``.
"""

import rlenhance  # noqa: F401 - before torch, on purpose
