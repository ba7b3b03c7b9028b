"""Data-parallel training over ``torch.distributed``: one module for every trainer and agent.

A trainer started by ``torchrun --nproc_per_node N`` (or multi-node, ``--nnodes M
--rdzv-endpoint HOST:PORT``) runs as ``N * M`` processes, the *ranks*. This module turns the
environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``) into a
:class:`Ranks` and gives the pieces a training step needs::

    ranks = Ranks.from_env()                        # world_size 1 without torchrun
    device = rank_device("auto", ranks)             # cuda:LOCAL_RANK on a GPU node, else cpu
    init_process_group(ranks, device)               # gloo on CPU, NCCL on CUDA; nothing for one process
    local = ranks.split(args.batch, "--batch")      # the global batch, split evenly (or refused)
    noise = ranks.draw_rows(lambda n: torch.rand(n, 8, generator=g), local)   # this rank's rows of one global draw
    loss.backward(); ranks.average_gradients(params); optimizer.step()        # the global batch's mean gradient
    if ranks.stop_signal(stop.signum): ...          # SIGTERM on any rank stops every rank at this step
    ranks.on_rank0(lambda: load_checkpoint(path))   # rank 0 reads, every rank gets the result
    shutdown()

**Same math as one process.** A job of ``N`` ranks with global batch ``B`` computes what one process with
batch ``B`` computes, up to float rounding:

* every random draw is made for the *global* batch on every rank, from the one shared seed, and each rank
  keeps its rows (:meth:`Ranks.draw_rows`); a sharded env draws only its rows (:class:`rlenhance.data.RowDraws`).
  Ranks hold identical generators: nothing is seeded per rank;
* each rank's loss is the mean over its rows, and the gradients averaged over ranks are the gradient of the
  global mean: :func:`wrap` (DistributedDataParallel) for a supervised model, :meth:`Ranks.average_gradients`
  for the RL agents, whose updates freeze parts of their nets on the way (DDP does not allow that);
* what is not per-sample is made global: batch normalisation (:func:`sync_batch_norm`), a trust region's
  mean KL, SAC's temperature gradient and replay buffer.

Without torchrun a :class:`Ranks` is ``Ranks()`` (rank 0 of 1): every method is then the identity or a direct
call, and nothing touches ``torch.distributed``.
"""

from __future__ import annotations

import copyreg
import datetime
import io
import os
import pickle
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from rlenhance.runtime import select_device

__all__ = [
    "TORCHRUN_VARIABLES",
    "GlobalBatchNorm",
    "Ranks",
    "init_process_group",
    "rank_device",
    "shutdown",
    "sync_batch_norm",
    "wrap",
]

#: The environment variables torchrun sets for each process (all four, or none of them).
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
#: How long a collective waits for the other ranks (rank 0 evaluating whole test sets included).
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in a data-parallel job; the default is a single process.

    Attributes:
        rank: this process's index in the job, 0 .. world_size - 1 (rank 0 writes the run folder).
        world_size: processes in the job (all nodes).
        local_rank: this process's index on its node (its GPU, ``cuda:local_rank``).
        local_world_size: processes on this node (they share its CPU cores).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    def __post_init__(self) -> None:
        if not (self.world_size >= 1 and 0 <= self.rank < self.world_size and self.local_world_size >= 1
                and 0 <= self.local_rank < self.local_world_size):
            raise ValueError(f"Ranks: rank {self.rank} of {self.world_size}, local rank {self.local_rank} of "
                             f"{self.local_world_size}; expected 0 <= rank < world_size and 0 <= local_rank < "
                             "local_world_size")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Ranks:
        """The ranks torchrun describes in ``environ`` (default ``os.environ``); ``Ranks()`` without torchrun.

        Raises:
            ValueError: some of the variables are set and others not, or a value is not an integer.
        """
        environ = os.environ if environ is None else environ
        present = [name for name in TORCHRUN_VARIABLES if name in environ]
        if not present:
            return cls()
        if len(present) != len(TORCHRUN_VARIABLES):
            missing = [name for name in TORCHRUN_VARIABLES if name not in environ]
            raise ValueError(f"torchrun environment: {', '.join(present)} set but not {', '.join(missing)}; "
                             "start the job with torchrun (python -m torch.distributed.run)")
        try:
            rank, world, local, local_world = (int(environ[name]) for name in TORCHRUN_VARIABLES)
        except ValueError as exc:
            raise ValueError(f"torchrun environment: {exc}") from None
        return cls(rank=rank, world_size=world, local_rank=local, local_world_size=local_world)

    @property
    def distributed(self) -> bool:
        """More than one process: collectives run."""
        return self.world_size > 1

    @property
    def writes(self) -> bool:
        """This process writes the run folder, logs and prints (rank 0)."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int] | None:
        """``(rank, world_size)`` for an env's ``shard`` argument; None for a single process."""
        return (self.rank, self.world_size) if self.distributed else None

    # --- splitting the global batch --------------------------------------------------------------
    def split(self, total: int, name: str = "batch") -> int:
        """This rank's share of a global batch of ``total`` items: ``total / world_size``.

        Raises:
            ValueError: ``total`` is not a multiple of ``world_size``; the message names ``name``.
        """
        if total % self.world_size:
            lower = total // self.world_size * self.world_size or self.world_size
            raise ValueError(f"{name} {total}: the global batch is split evenly over the {self.world_size} "
                             f"processes of this job; use a multiple of {self.world_size} (e.g. {lower} or "
                             f"{lower + self.world_size})")
        return total // self.world_size

    def rows(self, local: int) -> slice:
        """This rank's rows of a global batch of ``local * world_size`` rows."""
        return slice(self.rank * local, (self.rank + 1) * local)

    def draw_rows(self, draw: Callable[[int], T], local: int) -> T:
        """``draw(local * world_size)`` (a tensor or a dict of tensors, rows first) cut to this rank's rows;
        ``draw(local)`` for a single process."""
        if not self.distributed:
            return draw(local)
        full = draw(local * self.world_size)
        rows = self.rows(local)
        if isinstance(full, Mapping):
            return {k: v[rows] for k, v in full.items()}  # type: ignore[return-value]
        return full[rows]

    # --- collectives -------------------------------------------------------------------------------
    def average_gradients(self, params: Iterable[Tensor]) -> None:
        """Replace every parameter's ``.grad`` by its mean over the ranks (one all-reduce; no-grad ones skipped)."""
        if not self.distributed:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat.div_(self.world_size)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def mean(self, value: Tensor) -> Tensor:
        """The mean of ``value`` over the ranks (a new tensor; ``value`` itself for one process)."""
        if not self.distributed:
            return value
        out = value.detach().clone()
        dist.all_reduce(out)
        return out.div_(self.world_size)

    def mean_stats(self, stats: Mapping[str, Any]) -> dict[str, Any]:
        """Numeric entries of ``stats`` averaged over the ranks, others unchanged; every rank passes the same keys."""
        if not self.distributed:
            return dict(stats)
        keys = sorted(k for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        values = self.mean(torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64,
                                         device=_comm_device()))
        return {**stats, **{k: float(v) for k, v in zip(keys, values.tolist())}}

    def gather(self, value: Tensor) -> Tensor:
        """The ranks' ``value`` tensors (equal shapes) concatenated along dim 0 in rank order."""
        if not self.distributed:
            return value
        is_bool = value.dtype == torch.bool
        local = value.to(torch.uint8) if is_bool else value
        local = local.contiguous()
        parts = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(parts, local)
        out = torch.cat(parts)
        return out.bool() if is_bool else out

    def stop_signal(self, signum: int | None) -> int | None:
        """The signal that stops the job at this step: the largest ``signum`` any rank received, or None.
        Every rank must call this at the same step."""
        if not self.distributed:
            return signum or None
        flag = torch.tensor([int(signum or 0)], dtype=torch.int64, device=_comm_device())
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item()) or None

    def on_rank0(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 and give every rank its pickled result (or raise its exception on every rank);
        ``fn()`` for a single process."""
        if not self.distributed:
            return fn()
        if self.rank != 0:
            payload: list[Any] = [None]
            dist.broadcast_object_list(payload, src=0)
            ok, value = pickle.loads(payload[0])
            if not ok:
                raise value
            return value
        try:
            value = fn()
            data = _dumps((True, value))
        except Exception as exc:
            try:
                data = _dumps((False, exc))
            except Exception:  # noqa: BLE001 - an exception that does not pickle: its message
                data = _dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
            dist.broadcast_object_list([data], src=0)
            raise
        dist.broadcast_object_list([data], src=0)
        return value

    def barrier(self) -> None:
        """Wait until every rank is here (e.g. after rank 0 wrote a checkpoint)."""
        if self.distributed:
            dist.barrier()


def _mapping_proxy(mapping: dict[Any, Any]) -> types.MappingProxyType:
    return types.MappingProxyType(mapping)


def _reduce_mapping_proxy(mapping: types.MappingProxyType) -> tuple[Any, tuple[dict[Any, Any]]]:
    return _mapping_proxy, (dict(mapping),)


def _dumps(value: Any) -> bytes:
    """``value`` pickled, ``types.MappingProxyType`` mappings as themselves."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, types.MappingProxyType: _reduce_mapping_proxy}
    pickler.dump(value)
    return buffer.getvalue()


def _comm_device() -> torch.device:
    """Where collectives' small tensors live: the current GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# --- the process group -------------------------------------------------------------------------------
def rank_device(spec: str, ranks: Ranks) -> torch.device:
    """The device of ``--device spec`` for this rank: under torchrun ``auto`` and ``cuda`` mean
    ``cuda:LOCAL_RANK``; one process gets :func:`rlenhance.runtime.select_device`'s answer.

    Raises:
        ValueError: an unknown spec, CUDA asked without it, ``cuda:N`` with several processes on the node,
            or fewer GPUs than processes on the node.
    """
    device = select_device(spec)
    if not ranks.distributed or device.type != "cuda":
        return device
    text = spec.strip().lower()
    if text not in ("auto", "cuda"):
        if ranks.local_world_size > 1:
            raise ValueError(f"--device {spec}: under torchrun each of the {ranks.local_world_size} processes of "
                             "this node takes its own GPU (cuda:LOCAL_RANK); use --device cuda or auto")
        return device
    count = torch.cuda.device_count()
    if ranks.local_rank >= count:
        raise ValueError(f"--device {spec}: local rank {ranks.local_rank} needs cuda:{ranks.local_rank} but this node "
                         f"has {count} GPU(s); start at most {count} processes a node (--nproc_per_node)")
    return torch.device("cuda", ranks.local_rank)


def init_process_group(ranks: Ranks, device: torch.device) -> None:
    """Join the job's process group (``env://``): NCCL on CUDA (made the current GPU), gloo on the CPU.
    Nothing for one process or when the group exists already."""
    if not ranks.distributed or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://", rank=ranks.rank,
                            world_size=ranks.world_size, timeout=COLLECTIVE_TIMEOUT)


def shutdown(*, wait: bool = True, ignore_errors: bool = False) -> None:
    """Leave the process group after a last barrier (``wait``); ``ignore_errors``: a failed barrier is no error."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if wait:
            dist.barrier()
    except RuntimeError:  # gloo and NCCL errors (DistBackendError) are RuntimeErrors
        if not ignore_errors:
            raise
    finally:
        dist.destroy_process_group()


def wrap(model: nn.Module, ranks: Ranks, device: torch.device) -> nn.Module:
    """``model`` after :func:`sync_batch_norm` in DistributedDataParallel for several ranks (reach it through
    ``.module``); the model itself for one process."""
    if not ranks.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    model = sync_batch_norm(model)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


# --- batch normalisation over the global batch ----------------------------------------------------------------
class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) with its gradient: the gradient of a sum over ranks is the ranks' summed gradient."""

    @staticmethod
    def forward(ctx: Any, value: Tensor) -> Tensor:
        out = value.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        out = grad.contiguous().clone()
        dist.all_reduce(out)
        return out


class GlobalBatchNorm(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode statistics are those of the global batch (all-reduced
    differentiably in float32, on CPU and CUDA alike); plain batch norm in eval mode or for one process.
    Every rank must run the training-mode forward passes in the same order."""

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        self._check_input_dim(x)
        channels, dims = x.shape[1], [d for d in range(x.dim()) if d != 1]
        shape = [1, channels] + [1] * (x.dim() - 2)
        xf = x.float()
        count = torch.full((1,), xf.numel() // channels, dtype=xf.dtype, device=xf.device)
        sums = _SumOverRanks.apply(torch.cat([xf.sum(dim=dims), count]))
        n = sums[-1]
        mean = sums[:channels] / n
        centred = xf - mean.view(shape)
        var = _SumOverRanks.apply(centred.square().sum(dim=dims)) / n  # two passes, as F.batch_norm
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                unbiased = var.detach() * n / (n - 1).clamp_min(1.0)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.float().view(shape) + self.bias.float().view(shape)
        return y.to(x.dtype)


def sync_batch_norm(module: nn.Module) -> nn.Module:
    """``module`` with every ``nn.BatchNorm2d`` replaced in place (weights kept) by a :class:`GlobalBatchNorm`;
    a BatchNorm2d given itself is returned converted."""
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, GlobalBatchNorm):
        converted = GlobalBatchNorm(module.num_features, eps=module.eps, momentum=module.momentum,
                                    affine=module.affine, track_running_stats=module.track_running_stats)
        state = module.state_dict()
        if state:
            converted.to(next(iter(state.values())).device)
            converted.load_state_dict(state)
        for mine, theirs in zip(converted.parameters(), module.parameters()):
            mine.requires_grad_(theirs.requires_grad)
        return converted.train(module.training)
    for name, child in module.named_children():
        new = sync_batch_norm(child)
        if new is not child:
            setattr(module, name, new)
    return module
