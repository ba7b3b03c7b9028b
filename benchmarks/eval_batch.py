"""Seconds per validation image of ``lol_train``'s evaluation at each ``run.eval_batch``, for a preset.

    python -m benchmarks.eval_batch [--preset rellie] [--batches 4 2 1] [--images 4] [--repeats 2]
        [--threads 1] [--device cpu|cuda]

Builds the preset's policy (random weights: the time does not depend on them), loads its validation
images (``--images`` of them, the first repeated where there are fewer), and times the greedy rollouts of
``lol_train.evaluate`` (:func:`experiments.lol_train.rollout_at`) in batches of each ``--batches``
value, ``--repeats`` times in turn, on ``--device``. Prints the CPU time of this process and the wall
time per image (on a shared machine the CPU time is the steadier; on a GPU the wall time is the one),
and whether the outputs equal those of the first batch size bit for bit.
"""

from __future__ import annotations

import argparse
import time

import torch

import envs
from experiments import config, lol_train
from experiments.rl_common import make_agent
from experiments.run_files import markdown_table


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.eval_batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="rellie", choices=tuple(lol_train.PRESETS), help="lol_train preset")
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 2, 1], help="run.eval_batch values")
    parser.add_argument("--images", type=int, default=4, help="validation images timed")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over the batch sizes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--eval-size", type=int, default=None, help="validation side (default: the preset's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    changes = {} if args.eval_size is None else {"task.eval_size": args.eval_size}
    cfg = config.replace_path(lol_train.check(lol_train.PRESETS[args.preset]()), changes)
    device = torch.device(args.device)
    venv = envs.make_vec(lol_train.ENV_ID, num_envs=1, device=device, **lol_train.env_kwargs(cfg))
    _, low, _ = lol_train.load_validation(cfg, device)
    low = low[torch.arange(args.images) % low.shape[0]]
    torch.manual_seed(0)
    policy = make_agent(cfg, venv, steps=cfg.task.steps, keys=("image", "original", "exposure_gap"),
                        cond_film=cfg.reward.conditioned).policy.to(device).eval()
    rows, first = [], None
    for repeat in range(args.repeats):
        for batch in args.batches:
            run_cfg = config.replace_path(cfg, {"run.eval_batch": batch})
            cpu, wall = time.process_time(), time.perf_counter()
            with torch.no_grad():
                out, _ = lol_train.rollout_at(policy, venv.task, run_cfg, low)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            first = out if first is None else first
            rows.append({"preset": args.preset, "eval_batch": batch, "repeat": repeat + 1,
                         "cpu_s_per_image": round(cpu / len(low), 3), "wall_s_per_image": round(wall / len(low), 3),
                         "equal_outputs": bool(torch.equal(out, first))})
            print(rows[-1], flush=True)
    print(markdown_table(rows))
    return rows


if __name__ == "__main__":
    main()
