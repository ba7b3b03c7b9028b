"""What a reset of the trainers' training envs costs per crop, at several batch sizes, on one device; with
``--before DIR``, the same from another copy of the repository (e.g. the commit before a change) in the
same run.

    python -m benchmarks.resets [--device cpu] [--batch 32 512] [--resets 5] [--threads 1] [--before DIR]
                                [--trainers lol_train denoise_train] [--lol-data DIR] [--denoise-data DIR]

Each trainer's env is built as its ``main`` builds it (its defaults: the embedded photos, or
``--lol-data`` / ``--denoise-data``) at each batch; one untimed reset (it may build what the env keeps,
e.g. the data set on the device), then the median of ``--resets`` resets (each waited for on CUDA), in
ms per crop: wall time on CUDA, the process's CPU time on the CPU (so that the machine's other work does
not count; with one thread they are the same on a quiet machine). Each tree runs in a process of its
own, with ``--threads`` torch threads. Prints a markdown table; ``before / after`` is the speed-up.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRAINERS = ("lol_train", "denoise_train")
#: Runs :func:`probe` of this file in a process whose imports come from its working folder (a tree).
_PROBE = ("import importlib.util, json, sys\n"
          "spec = importlib.util.spec_from_file_location('reset_probe', sys.argv[1])\n"
          "module = importlib.util.module_from_spec(spec)\n"
          "spec.loader.exec_module(module)\n"
          "print(json.dumps(module.probe(**json.loads(sys.argv[2]))))")


def training_venv(trainer: str, batch: int, device: str, data: str | None) -> Any:
    """``trainer``'s training env at ``batch`` on ``device``, as its ``main`` makes it (in the tree imported)."""
    import envs

    module = importlib.import_module(f"experiments.{trainer}")
    cfg = module.parse_args(["--batch", str(batch), "--device", device, *(["--data", data] if data else [])])
    if trainer == "lol_train":
        return envs.make_vec(module.ENV_ID, device=device, data=module.training_data(cfg), num_envs=batch,
                             **module.env_kwargs(cfg))
    from rlenhance.denoisers import DenoisePredictor

    predictor = DenoisePredictor.for_policy(module.inference_spec(cfg), device=device)
    return envs.make_vec(module.ENV_ID, device=device, num_envs=batch, data=module.open_data(cfg).train,
                         predictor=predictor, **module.env_kwargs(cfg))


def probe(trainers: Sequence[str], batches: Sequence[int], device: str, resets: int, threads: int,
          data: dict[str, str | None]) -> list[dict[str, Any]]:
    """Ms per crop of a reset of each trainer's env at each batch (this process's tree)."""
    import torch

    torch.set_num_threads(threads)
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    clock = time.perf_counter if cuda else time.process_time  # on the CPU: this process's time, not the machine's
    records = []
    for trainer in trainers:
        for batch in batches:
            venv = training_venv(trainer, batch, device, data.get(trainer))
            venv.reset(seed=0)
            times = []
            for _ in range(resets):
                sync()
                start = clock()
                venv.reset()
                sync()
                times.append(clock() - start)
            records.append({"trainer": trainer, "batch": batch, "ms_per_crop": 1000 * statistics.median(times) / batch})
            del venv
    return records


def probe_tree(root: Path, **settings: Any) -> list[dict[str, Any]]:
    """:func:`probe` run in a new process on the tree at ``root`` (first on its import path); RuntimeError with
    the last line of its stderr when it fails."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(Path(__file__).resolve()), json.dumps(settings)],
                          cwd=root, env=env, capture_output=True, text=True)
    if proc.returncode:
        last = next((line for line in reversed(proc.stderr.splitlines()) if line.strip()), "no stderr")
        raise RuntimeError(f"the reset probe of {root} exited with {proc.returncode}: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(device: str, batches: Sequence[int], resets: int, threads: int, before: Path | None,
            trainers: Sequence[str] = TRAINERS, data: dict[str, str | None] | None = None) -> list[dict[str, Any]]:
    """Ms per crop of each trainer's reset at each batch in this tree and ``before``'s: one record each,
    ``ms_per_crop`` and ``before_ms_per_crop`` (None without ``before``)."""
    settings = dict(trainers=list(trainers), batches=list(batches), device=device, resets=resets, threads=threads,
                    data=data or {})
    after = probe_tree(ROOT, **settings)
    earlier = probe_tree(before, **settings) if before is not None else [{} for _ in after]
    return [{**record, "device": device, "threads": threads, "resets": resets,
             "before_ms_per_crop": old.get("ms_per_crop")} for record, old in zip(after, earlier)]


def table(records: Sequence[dict[str, Any]]) -> str:
    """The records as a markdown table (``before / after``: the speed-up)."""
    from experiments.runs import markdown_table

    rows = [{"trainer": r["trainer"], "batch": r["batch"], "device": r["device"],
             "ms per crop": f"{r['ms_per_crop']:.4f}",
             "before: ms per crop": "-" if r["before_ms_per_crop"] is None else f"{r['before_ms_per_crop']:.4f}",
             "before / after": "-" if r["before_ms_per_crop"] is None
             else f"{r['before_ms_per_crop'] / r['ms_per_crop']:.2f}x"} for r in records]
    return markdown_table(rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 512], help="batch sizes (default: 32 512)")
    parser.add_argument("--resets", type=int, default=5, help="timed resets per batch (default: 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each tree's process (default: 1)")
    parser.add_argument("--trainers", nargs="+", choices=TRAINERS, default=list(TRAINERS))
    parser.add_argument("--before", type=Path, help="another copy of the repository, measured in the same run")
    parser.add_argument("--lol-data", help="lol_train --data (default: its embedded photos)")
    parser.add_argument("--denoise-data", help="denoise_train --data (default: its embedded photos)")
    args = parser.parse_args(argv)
    if min(args.batch) < 1 or args.resets < 1 or args.threads < 1:
        parser.error("--batch, --resets, --threads: integers >= 1")
    if args.before is not None and not (args.before / "envs" / "base.py").is_file():
        parser.error(f"--before {args.before}: no envs/base.py there (expected a copy of the repository)")
    return args


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    records = measure(args.device, args.batch, args.resets, args.threads,
                      args.before.resolve() if args.before is not None else None, args.trainers,
                      {"lol_train": args.lol_data, "denoise_train": args.denoise_data})
    print(f"Reset of each trainer's training env, ms per crop (median of {args.resets}, {args.threads} torch "
          f"thread(s), {args.device})" + (f"; before: {args.before}" if args.before is not None else "")
          + "\n\n" + table(records))
    return records


if __name__ == "__main__":
    main()
