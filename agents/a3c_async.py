"""Asynchronous A3C on one machine: ``workers`` processes (torch.multiprocessing) take the episodes in turn,
each with its own environment and a copy of the shared network taken at its episode's turn, and update the
shared parameters (a :class:`~agents.a3c_update.SharedAdam` whose moments live in shared memory) in episode
order, on a fixed schedule, so a seeded run is reproducible (:meth:`agents.a3c.A3C.train_async`).
"""

from __future__ import annotations

import copy
import multiprocessing as _std_mp
import queue as _queue
import signal
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp
from torch import Tensor

from agents.a3c import A3C, A3CConfig, _EpisodeRunner
from agents.a3c_update import RewardMapConv, SharedAdam, _apply_update
from rlenhance.models.policy import PixelActorCritic

__all__ = ["train_async"]


def train_async(agent: A3C, make_venv: Callable[[int], Any], workers: int, seeds: Sequence[int], *,
                start_method: str | None = None, threads_per_worker: int = 1,
                on_episode: Callable[[dict[str, Any]], None] | None = None,
                stop: Callable[[], bool] | None = None, poll_s: float = 0.2,
                join_timeout_s: float = 10.0) -> dict[str, Any]:
    """Asynchronous A3C: ``workers`` processes take the episodes in turn and update the shared policy and
    optimiser in episode order.

    Episode ``i`` of the call is run by worker ``i % workers``, which builds its env once with
    ``make_venv(rank)`` (inside the worker), resets it with ``seeds[i]``, samples from a generator seeded with
    (``config.seed``, episode) and rolls out with a copy of the shared weights taken after update
    ``i - workers + 1``. Its update is applied after update ``i - 1``, at its episode's learning rate. The
    schedule is fixed, so a call gives the same weights for the same seeds and worker count.

    Args:
        make_venv: ``rank -> vector env``.
        workers: number of processes (>= 1).
        seeds: the reset seed of each episode; its length is the number of episodes.
        start_method: multiprocessing start method; None = 'fork' on CPU where available, else 'spawn'.
        threads_per_worker: ``torch.set_num_threads`` in each worker.
        on_episode: called in this process with each episode's stats, in episode order.
        stop: polled in this process while the workers run; once True, no further update is made and the call
            returns.
        poll_s: how often the parent checks ``stop`` and for dead workers while waiting.
        join_timeout_s: how long to wait for a worker to exit before terminating it.

    Returns:
        dict: ``episodes`` (int, the updates applied), ``history`` (per-episode stats dicts, with ``worker`` and
        ``episode``, in episode order), ``episode_return_mean``.

    Raises:
        RuntimeError: when a worker fails (its traceback is in the message).
    """
    seeds = [int(s) for s in seeds]
    if workers < 1:
        raise ValueError(f"train_async: workers={workers}; expected an integer >= 1")
    if agent.ranks.distributed:
        raise ValueError(f"train_async: the workers share one machine's memory; this agent is rank "
                         f"{agent.ranks.rank} of a {agent.ranks.world_size}-process job (train_episode runs "
                         "data-parallel instead)")
    if start_method is None:
        fork_ok = agent.device.type == "cpu" and "fork" in _std_mp.get_all_start_methods()
        start_method = "fork" if fork_ok else "spawn"
    ctx = mp.get_context(start_method)
    agent.policy.share_memory()
    if agent.rmc is not None:
        agent.rmc.share_memory()
    agent.optimizer.share_memory()
    schedule = _Schedule(ctx, len(seeds), workers)
    msgs = ctx.Queue()
    procs = [ctx.Process(target=_async_worker, daemon=True,
                         args=(rank, agent.policy, agent.rmc, agent.optimizer, agent.config, str(agent.device),
                               make_venv, agent.episodes, seeds, schedule, threads_per_worker, msgs))
             for rank in range(min(workers, len(seeds)))]
    for p in procs:
        p.start()
    history: list[dict[str, Any]] = []
    waiting: dict[int, dict[str, Any]] = {}
    finished: set[int] = set()
    try:
        while len(finished) < len(procs):
            if stop is not None and stop():
                schedule.stop()
            try:
                kind, rank, payload = msgs.get(timeout=poll_s)
            except _queue.Empty:
                dead = [r for r, p in enumerate(procs) if r not in finished and not p.is_alive()]
                if dead:
                    raise RuntimeError(f"train_async: worker(s) {dead} exited with codes "
                                       f"{[procs[r].exitcode for r in dead]} without reporting") from None
                continue
            if kind == "stats":
                waiting[payload["episode"]] = payload
                while agent.episodes + len(history) in waiting:  # in episode order
                    history.append(waiting.pop(agent.episodes + len(history)))
                    if on_episode is not None:
                        on_episode(history[-1])
            elif kind == "done":
                finished.add(rank)
            else:
                raise RuntimeError(f"train_async: worker {rank} failed:\n{payload}")
    finally:
        schedule.stop()  # after a failure: the other workers stop at their next turn
        for p in procs:
            p.join(timeout=join_timeout_s)
            if p.is_alive():
                p.terminate()
                p.join()
    agent.episodes += len(history)
    rets = [s["episode_return"] for s in history]
    return {"episodes": len(history), "history": history,
            "episode_return_mean": float(np.mean(rets)) if rets else float("nan")}


class _Schedule:
    """The turns of :func:`train_async`'s workers, in shared memory: ``copied`` / ``applied`` episodes have taken
    their weights / applied their update; ``end`` is the number of episodes (lowered by :meth:`stop`)."""

    def __init__(self, ctx: Any, episodes: int, workers: int):
        self.workers = workers
        self.cond = ctx.Condition()
        self.copied, self.applied, self.end = ctx.RawValue("l", 0), ctx.RawValue("l", 0), ctx.RawValue("l", episodes)

    def _wait(self, ready: Callable[[], bool]) -> bool:
        """Wait (holding the lock on return) until ``ready()`` or the schedule ended; True when ready."""
        self.cond.wait_for(lambda: ready() or self.applied.value >= self.end.value)
        return ready()

    def copy_turn(self, i: int, copy: Callable[[], None]) -> bool:
        """``copy()`` the weights at episode ``i``'s turn; False when the schedule ended first."""
        with self.cond:
            if i >= self.end.value or not self._wait(
                    lambda: self.copied.value == i and self.applied.value == max(0, i - self.workers + 1)):
                return False
            copy()
            self.copied.value = i + 1
            self.cond.notify_all()
            return True

    def apply_turn(self, i: int, apply: Callable[[], Any]) -> Any:
        """``apply()`` episode ``i``'s update at its turn and return its result; None when the schedule ended first."""
        with self.cond:
            ready = self._wait(lambda: self.applied.value == i and
                               self.copied.value >= min(i + self.workers, self.end.value))
            if not ready or i >= self.end.value:
                return None
            out = apply()
            self.applied.value = i + 1
            self.cond.notify_all()
            return out

    def stop(self) -> None:
        """End the schedule after the updates applied so far."""
        with self.cond:
            self.end.value = min(self.end.value, self.applied.value)
            self.cond.notify_all()


def _async_worker(rank: int, policy: PixelActorCritic, rmc: RewardMapConv | None, optimizer: SharedAdam,
                  config: A3CConfig, device: str, make_venv: Callable[[int], Any], first_episode: int,
                  seeds: list[int], schedule: _Schedule, threads: int, msgs: Any) -> None:
    """One worker of :func:`train_async` (module level so that 'spawn' can pickle it)."""
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):  # the parent stops the run, at an update
            signal.signal(signum, signal.SIG_IGN)
        torch.set_num_threads(threads)
        dev = torch.device(device)
        local_policy = copy.deepcopy(policy)
        local_rmc = copy.deepcopy(rmc) if rmc is not None else None
        shared_params = list(policy.parameters()) + (list(rmc.parameters()) if rmc is not None else [])
        local_params = list(local_policy.parameters()) + (
            list(local_rmc.parameters()) if local_rmc is not None else [])
        generator = torch.Generator(device=dev)
        venv = make_venv(rank)
        runner = _EpisodeRunner(local_policy, local_rmc, config, dev, generator)

        def copy_weights() -> None:
            with torch.no_grad():
                for lp, sp in zip(local_params, shared_params):
                    lp.copy_(sp)

        for i in range(rank, len(seeds), schedule.workers):
            episode = first_episode + i
            if not schedule.copy_turn(i, copy_weights):
                break
            generator.manual_seed(int(np.random.SeedSequence([config.seed, episode]).generate_state(1)[0]))
            lr = config.lr_at(episode)
            applied = []

            def update(loss: Tensor, i: int = i, lr: float = lr, applied: list[bool] = applied) -> dict[str, float]:
                if applied:
                    raise RuntimeError("train_async applies one update per episode; this episode is longer than "
                                       f"A3CConfig.n_steps ({config.n_steps})")
                for p in local_params:
                    p.grad = None
                loss.backward()
                out = schedule.apply_turn(i, lambda: _apply_update(None, local_params, shared_params, optimizer,
                                                                   lr, config.max_grad_norm))
                applied.append(out is not None)
                return out or {"grad_norm": float("nan"), "lr": lr}

            stats: dict[str, Any] = runner.run(venv, seeds[i], update)
            if not all(applied):
                break
            stats.update(worker=rank, episode=episode)
            msgs.put(("stats", rank, stats))
        msgs.put(("done", rank, None))
    except BaseException:  # noqa: BLE001 - report everything to the parent
        msgs.put(("error", rank, traceback.format_exc()))
