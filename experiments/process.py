"""An experiment's process: its settings (:func:`setup_process`), a clean stop on SIGINT / SIGTERM at a step
boundary (:class:`StopSignals`, :class:`Interrupted`) and the command's exit (:func:`run_cli`)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch

from agents.distributed import Ranks, init_process_group, rank_device, shutdown
from rlenhance.runtime import configure_threads, flush_denormals, seed_everything

#: A process stopped by signal ``N`` exits with ``128 + N`` (130 for SIGINT, 143 for SIGTERM), as a shell reports it.
SIGNAL_EXIT_BASE = 128


def setup_process(*, threads: int, seed: int, device: str, ranks: Ranks | None = None) -> torch.device:
    """Process-wide settings: denormal flushing, CPU threads (0: every core of this node, shared by its ranks), the
    seeds, the device (returned) and, with several ranks, the process group."""
    ranks = ranks if ranks is not None else Ranks()
    flush_denormals()
    configure_threads(threads, processes=ranks.local_world_size, spare=0)
    seed_everything(seed)
    chosen = rank_device(device, ranks)
    init_process_group(ranks, chosen)
    return chosen


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM (a KeyboardInterrupt: no ``except Exception`` swallows it)."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = int(signum)
        self.exit_code = SIGNAL_EXIT_BASE + self.signum


class StopSignals:
    """Within ``with StopSignals(ranks) as stop:``, SIGINT and SIGTERM only set :attr:`signum`, read by :meth:`check`
    at a step boundary (any rank's stops all); a second signal stops at once. A no-op outside the main thread."""

    def __init__(self, ranks: Ranks) -> None:
        self.signum: int | None = None  # the signal this process received
        self.ranks = ranks
        self._previous: dict[int, Any] = {}

    def check(self) -> int | None:
        """The signal that stops the run at this boundary (any rank's), or None."""
        return self.ranks.stop_signal(self.signum)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            return
        raise Interrupted(f"{signal.Signals(signum).name} again: stopped at once without saving; --resume continues "
                          "from the last checkpoint written", signum)


def run_cli(main: Callable[[Sequence[str] | None], Any], prog: str) -> None:
    """Run ``main()`` as a command: bad arguments, data or checkpoints end with one line on stderr and exit
    code 2; a run stopped by SIGINT / SIGTERM with its one line and 130 / 143 (under torchrun every rank,
    with the code they agreed on; errors named ``prog[rank k]`` past rank 0)."""
    ranks = Ranks.from_env()
    name = prog if ranks.writes else f"{prog}[rank {ranks.rank}]"
    code = 0
    try:
        main(None)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:  # ImageError, DatasetError, CheckpointError too
        print(f"{name}: error: {exc}", file=sys.stderr)
        code = 2
    except Interrupted as exc:
        # Every rank stops here together. torchrun answers the first rank to exit by sending SIGTERM
        # to the others: they have saved and are leaving, so it must not end them with another code.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if ranks.writes:
            print(f"{prog}: {exc}", file=sys.stderr, flush=True)
        shutdown(wait=True, ignore_errors=True)
        code = exc.exit_code
    except KeyboardInterrupt:  # outside a training loop (loading data, writing the summary)
        print(f"{name}: interrupted (SIGINT)", file=sys.stderr)
        code = SIGNAL_EXIT_BASE + signal.SIGINT
    else:
        shutdown()
    if code and not ranks.distributed:
        sys.exit(code)
    if ranks.distributed:
        # A rank of a torchrun job leaves at once (os._exit): the interpreter's finalisation can destroy tensors
        # that gloo's threads still hold and abort the process (SIGABRT). Every file is in place by then.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
