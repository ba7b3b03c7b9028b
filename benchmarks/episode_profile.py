"""Where a training episode's time goes (``benchmarks.gpu --parts profile``): a trainer's episodes under
``torch.profiler`` in this process, with the env's resets, its steps and A3C's update labelled.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import math
import shlex
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.trainer_runs import EVAL_ARGS, NOT_RUN, TRAINERS, Budget
from experiments.runs import markdown_table


class _Labelled:
    """Within ``with``: the env's resets, steps and A3C's update run under profiler :data:`LABELS`; steps counted."""

    LABELS = ("env.reset", "env.step", "a3c.update")

    def __init__(self) -> None:
        from agents import a3c
        from envs.base import PixelVectorEnv

        self.patches = [(PixelVectorEnv, "reset", "env.reset"), (PixelVectorEnv, "step", "env.step"),
                        (a3c._EpisodeRunner, "_learn", "a3c.update")]
        self.saved: list[tuple[type, str, Any]] = []
        self.steps = 0

    def __enter__(self) -> _Labelled:
        for owner, name, label in self.patches:
            original = getattr(owner, name)
            self.saved.append((owner, name, original))

            def labelled(*a: Any, _original: Any = original, _label: str = label, **k: Any) -> Any:
                if _label == "env.step":
                    self.steps += 1
                with torch.profiler.record_function(_label):
                    return _original(*a, **k)

            setattr(owner, name, labelled)
        return self

    def __exit__(self, *exc: Any) -> None:
        for owner, name, original in self.saved:
            setattr(owner, name, original)


def profile_trainer(trainer: str, device: str, args: argparse.Namespace) -> dict[str, Any]:
    """One trainer's ``--profile-episodes`` at ``--profile-batch`` on ``device`` under ``torch.profiler``, after one."""
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    from agents.a3c import A3C

    module = importlib.import_module(TRAINERS[trainer])
    cuda = device == "cuda"
    episodes = args.profile_episodes
    seen = {"episodes": 0, "start": 0.0, "wall": 0.0}
    original = A3C.train_episode
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    prof = profile(activities=activities)
    labels = _Labelled()
    active = contextlib.ExitStack()

    def profiled(agent: A3C, venv: Any, seed: int | None = None) -> dict[str, float]:
        seen["episodes"] += 1
        if seen["episodes"] == 2:  # the profiled episodes, after one untimed
            if cuda:
                torch.cuda.synchronize()
            active.enter_context(prof)
            active.enter_context(labels)
            seen["start"] = time.perf_counter()
        stats = original(agent, venv, seed)
        if seen["episodes"] == 1 + episodes:
            if cuda:
                torch.cuda.synchronize()
            seen["wall"] = time.perf_counter() - seen["start"]
            active.close()
        return stats

    data = args.lol_data if trainer == "lol_train" else args.denoise_data
    argv = ["--episodes", str(1 + episodes), "--eval-every", str(1 + episodes), "--samples", "0", "--device", device,
            "--batch", str(args.profile_batch), *EVAL_ARGS[trainer], *(["--data", str(data)] if data else [])]
    A3C.train_episode = profiled
    said = io.StringIO()  # the trainer's own lines (its summary, progress), shown only when it fails
    try:
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            module.main([*argv, "--out", str(Path(tmp) / "run")])
    except Exception as exc:
        last = next((line for line in reversed(said.getvalue().splitlines()) if line.strip()), "")
        raise RuntimeError(f"{TRAINERS[trainer]} {shlex.join(argv)}: {exc}" + (f" ({last})" if last else "")) from exc
    finally:
        A3C.train_episode = original
        active.close()
    if seen["episodes"] < 1 + episodes:
        raise RuntimeError(f"{trainer}: {seen['episodes']} episodes ran, {1 + episodes} expected")
    events = prof.key_averages()
    by_name = {e.key: e for e in events}
    steps = max(1, labels.steps)
    share = {label: by_name[label].cpu_time_total / 1e6 / seen["wall"] if label in by_name else 0.0
             for label in _Labelled.LABELS}
    record: dict[str, Any] = {
        "trainer": trainer, "device": device, "batch": args.profile_batch, "episodes": episodes,
        "steps_per_episode": labels.steps / episodes, "ms_per_episode": 1000 * seen["wall"] / episodes,
        "crops_per_s": args.profile_batch * episodes / seen["wall"],
        **{f"share_{label.replace('.', '_')}": value for label, value in share.items()}}
    if cuda:
        kernels = sum(e.count for e in events if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA)
        syncs = sum(e.count for e in events if e.key in ("cudaStreamSynchronize", "cudaDeviceSynchronize",
                                                          "cudaEventSynchronize", "cudaMemcpy"))
        copies = sum(e.count for e in events if e.key.startswith("Memcpy"))
        record.update(kernels_per_step=kernels / steps, syncs_per_step=syncs / steps, copies_per_step=copies / steps)
    else:
        ops = sum(e.count for e in events if e.key.startswith("aten::"))
        record.update(torch_ops_per_step=ops / steps)
    return record


def profile_table(args: argparse.Namespace, gpus: int, budget: Budget) -> list[dict[str, Any]]:
    device = "cuda" if gpus else "cpu"
    records, rows = [], []
    for trainer in TRAINERS:
        if budget.timeout(math.inf) is None:
            record: dict[str, Any] = {"trainer": trainer, "device": device, "error": f"{NOT_RUN}: out of time"}
        else:
            start = time.perf_counter()
            try:
                record = profile_trainer(trainer, device, args)
            except Exception as exc:  # noqa: BLE001 - reported, the benchmark goes on
                record = {"trainer": trainer, "device": device,
                          "error": " ".join(f"{type(exc).__name__}: {exc}".split())}
            print(f"  profile {trainer} on {device}: {time.perf_counter() - start:.0f} s", flush=True)
        records.append(record)
        per_step = ("kernels_per_step", "syncs_per_step", "copies_per_step") if device == "cuda" \
            else ("torch_ops_per_step",)
        rows.append({"trainer": trainer, "device": device, "batch": args.profile_batch,
                     "steps / episode": _cell(record.get("steps_per_episode")),
                     "ms / episode": _cell(record.get("ms_per_episode")), "crops/s": _cell(record.get("crops_per_s")),
                     **{f"{label} share": _cell(record.get(f"share_{label.replace('.', '_')}"), percent=True)
                        for label in _Labelled.LABELS},
                     **{name.replace("_per_step", "").replace("_", " ") + " / step": _cell(record.get(name))
                        for name in per_step}})
    print(f"\n### Where a training episode's time goes ({args.profile_episodes} episodes after one, "
          f"torch.profiler)\n\n{markdown_table(rows)}\n")
    for record in records:
        if record.get("error"):
            print(f"- {record['trainer']}: {record['error']}")
    print("Shares: of the episode's wall time, in the env's resets, its steps and A3C's update (the policy's "
          "forward passes are the rest); kernels: GPU kernels launched; syncs: host waits for the device; copies: "
          "between host and device.", flush=True)
    return records


def _cell(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.0f}%" if percent else f"{value:.4g}"
