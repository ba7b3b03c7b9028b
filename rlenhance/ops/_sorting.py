"""Comparator networks compiled into elementwise torch ops (the median's machinery).

A comparator (i, j), i < j, puts min(v_i, v_j) on wire i and the max on wire j. Networks are built from
Batcher's odd-even merge, pruned (:func:`_prune`) and compiled to ``out=`` min / max calls (:func:`_compile`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


def _odd_even_merge_sort_pow2(n: int, *, merge_only: bool = False) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort on ``n`` wires (a power of two), as comparators (i, j).

    With ``merge_only`` only the last merge is returned: it sorts wires whose two halves
    [0, n/2) and [n/2, n) are already sorted.
    """
    comparators = []
    p = n // 2 if merge_only else 1
    while p < n:  # merge sorted runs of length p into runs of length 2p
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        comparators.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return comparators


def _next_pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def _sorting_network(n: int) -> tuple[tuple[int, int], ...]:
    """Comparators sorting ``n`` wires ascending (odd-even merge sort, n padded to a power of two).

    Padding wires hold +inf: a comparator touching one never moves a value, so it is dropped.
    """
    return tuple((i, j) for i, j in _odd_even_merge_sort_pow2(_next_pow2(n)) if j < n)


def _merging_network(a: int, b: int) -> tuple[tuple[int, int], ...]:
    """Comparators merging sorted wires [0, a) and [a, a + b) into one sorted run (the runs padded to a power of
    two with infinities, whose comparators are dropped)."""
    m = _next_pow2(max(a, b))
    low = m - a
    return tuple((i - low, j - low) for i, j in _odd_even_merge_sort_pow2(2 * m, merge_only=True)
                 if i >= low and j < m + b)


def _tree_merging_network(lengths: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Comparators merging consecutive sorted runs (of the given lengths) pairwise into one run."""
    runs, start = [], 0
    for length in lengths:
        runs.append((start, length))
        start += length
    comparators: list[tuple[int, int]] = []
    while len(runs) > 1:
        merged = []
        for (s1, n1), (_, n2) in zip(runs[0::2], runs[1::2]):
            comparators += [(s1 + i, s1 + j) for i, j in _merging_network(n1, n2)]
            merged.append((s1, n1 + n2))
        runs = merged + runs[len(merged) * 2:]
    return tuple(comparators)


def _prune(network: Sequence[tuple[int, int]],
           outputs: Sequence[int]) -> tuple[tuple[tuple[int, int, bool, bool], ...], frozenset[int]]:
    """Keep the comparators the ``outputs`` wires depend on, and which of min/max each must compute.

    Returns:
        ``((i, j, need_min, need_max), ...)`` in network order, and the set of input wires read.
    """
    live = set(outputs)
    kept = []
    for i, j in reversed(network):
        need_min, need_max = i in live, j in live
        if need_min or need_max:
            kept.append((i, j, need_min, need_max))
            live.update((i, j))
    return tuple(reversed(kept)), frozenset(live)


@dataclass(frozen=True)
class _Program:
    """A pruned network compiled to ``out=`` ops on buffers ("slots").

    Attributes:
        steps: ``(is_max, a, b, dst)``: ``slot[dst] = max|min(ref a, ref b)``, where a ref >= 0 is a
            slot and a ref < 0 is input wire ``-1 - ref`` (read only).
        n_slots: Number of buffers the steps write to.
        outputs: Refs holding the requested output wires after the last step.
    """

    steps: tuple[tuple[bool, int, int, int], ...]
    n_slots: int
    outputs: tuple[int | None, ...]


def _compile(pruned: Sequence[tuple[int, int, bool, bool]], n_inputs: int, outputs: Sequence[int], *,
             writable_inputs: bool = False) -> _Program:
    """Assign buffers to a pruned network, reusing consumed values' buffers. With ``writable_inputs`` the inputs
    are the first ``n_inputs`` slots, which the program may overwrite (run it with no inputs)."""
    refs: list[int | None] = list(range(n_inputs)) if writable_inputs else [-1 - w for w in range(n_inputs)]
    free: list[int] = []
    n_slots = n_inputs if writable_inputs else 0

    def new_slot() -> int:
        nonlocal n_slots
        if free:
            return free.pop()
        n_slots += 1
        return n_slots - 1

    steps = []
    for i, j, need_min, need_max in pruned:
        a, b = refs[i], refs[j]
        if need_min and need_max:
            lo = new_slot()  # min cannot go into a or b: both are still read by the max
            hi = b if b >= 0 else a if a >= 0 else new_slot()
            steps += [(False, a, b, lo), (True, a, b, hi)]
            if a >= 0 and a != hi:
                free.append(a)
            refs[i], refs[j] = lo, hi
        else:
            kept, other = (a, b) if need_min else (b, a)
            dst = kept if kept >= 0 else other if other >= 0 else new_slot()
            steps.append((need_max, a, b, dst))
            free.extend(s for s in (a, b) if s >= 0 and s != dst)
            refs[i], refs[j] = (dst, None) if need_min else (None, dst)
    return _Program(tuple(steps), n_slots, tuple(refs[w] for w in outputs))


def _run(program: _Program, inputs: Sequence[torch.Tensor | None],
         slots: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
    """Execute a program; returns its output tensors (slots or inputs; None where pruned away)."""
    values = list(slots) + list(reversed(inputs))  # ref r -> values[r] (a negative ref counts from the end)
    for is_max, a, b, dst in program.steps:
        (torch.maximum if is_max else torch.minimum)(values[a], values[b], out=values[dst])
    return [None if ref is None else values[ref] for ref in program.outputs]


def _view(t: torch.Tensor | None, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor | None:
    return None if t is None else fn(t)
