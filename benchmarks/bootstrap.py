"""Bootstrapped vs randomly initialised policy backbone, trained on the same seeds.

    python -m benchmarks.bootstrap [--experiment denoise_train] [--seeds 0 1 2 3] [--jobs 2]
        [--metric eval/psnr] [--out runs/bench_bootstrap] -- TRAINING ARGUMENTS

For each seed the training experiment runs twice with the same arguments and ``--seed``: as
given (they must set ``model.backbone`` and ``model.init_backbone``: the bootstrapped agent) and with
``model.random_backbone`` (the checkpoint's backbone architecture, randomly initialised). Prints, for every evaluation
episode, each seed's two scores (``--metric``, read from the runs' metrics.csv) and how many seeds
the bootstrapped agent is higher, equal (within 1e-3) or lower on. Numbers only; nothing is
asserted. Whether a trained trunk helps is a property of learning speed: it shows after enough
updates that the policy makes per-pixel choices (see the README), so give it a real budget, e.g.
PixelRL's denoising protocol on a GPU::

    python -m benchmarks.bootstrap --seeds 0 1 2 3 4 5 6 7 --jobs 16 --out runs/bench_bootstrap -- \\
        --set model.backbone=mrpnet --set model.init_backbone=rlenhance/weights/mrpnet_denoise.pt \\
        --data ../shared/data/bsd/train432 --test ../shared/data/bsd/BSD68 --sigma 25 --crop 70 --batch 32 \\
        --episodes 400 --eval-every 100 --eval-images 16 --device cuda --threads 1

Runs go to ``--out/{bootstrapped,random}_seed{S}`` with a log each; a folder that already holds a
run is resumed (the experiments' ``--resume``), so an interrupted benchmark continues.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from experiments.runs import markdown_table, metric_series

VARIANTS = ("random", "bootstrapped")
TIE = 1e-3


def read_metric(run_dir: Path, metric: str) -> dict[int, float]:
    """``{episode: value}`` of one scalar in a run's metrics.csv (:func:`experiments.runs.metric_series`)."""
    values = metric_series(run_dir, metric)
    if not values:
        raise ValueError(f"{run_dir / 'metrics.csv'}: no {metric!r} rows; pass the experiment's evaluation metric "
                         "with --metric (e.g. eval/hole_psnr for completion_train) and an --eval-every")
    return values


def run_all(jobs: list[tuple[list[str], Path]], parallel: int) -> None:
    """Run ``(command, run folder)`` jobs, ``parallel`` at a time; raise with the log tail of a failure."""
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < parallel:
            cmd, run_dir = pending.pop(0)
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            log = open(run_dir.parent / f"{run_dir.name}.log", "w")
            running.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log, run_dir))
        time.sleep(0.5)
        for item in list(running):
            proc, log, run_dir = item
            if proc.poll() is None:
                continue
            log.close()
            running.remove(item)
            if proc.returncode != 0:
                for p, lg, _ in running:
                    p.terminate()
                    p.wait()
                    lg.close()
                tail = Path(log.name).read_text().splitlines()[-15:]
                raise RuntimeError(f"{run_dir}: the run failed (exit {proc.returncode}); {log.name} ends:\n"
                                   + "\n".join(tail))


def main(argv: Sequence[str] | None = None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, train_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     usage="%(prog)s [options] -- TRAINING ARGUMENTS")
    parser.add_argument("--experiment", default="denoise_train",
                        choices=("denoise_train", "lol_train", "completion_train"),
                        help="the training module of experiments/ to run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="training seeds (--seed)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (each is a process)")
    parser.add_argument("--metric", default="eval/psnr", help="evaluation scalar compared (metrics.csv name)")
    parser.add_argument("--out", default="runs/bench_bootstrap", help="folder of the runs and their logs")
    args = parser.parse_args(own)
    if not any(a.startswith("model.init_backbone=") for a in train_args):
        parser.error("the training arguments (after --) must name --set model.init_backbone=CHECKPOINT "
                     "(and --set model.backbone=mrpnet|pixelrnn): that is the bootstrapped agent")
    if any(a == "--seed" or a.startswith("--seed=") or a == "--out" or a.startswith("--out=") for a in train_args):
        parser.error("--seed and --out are set by the benchmark; leave them out of the training arguments")
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: expected >= 1")
    out = Path(args.out)
    jobs, dirs = [], {}
    for seed in args.seeds:
        for variant, given in zip(VARIANTS, (train_args + ["--set", "model.random_backbone=true"], train_args)):
            run_dir = out / f"{variant}_seed{seed}"
            dirs[variant, seed] = run_dir
            cmd = [sys.executable, "-m", f"experiments.{args.experiment}", *given, "--seed", str(seed),
                   "--out", str(run_dir)]
            jobs.append((cmd + ["--resume"] if (run_dir / "config.json").exists() else cmd, run_dir))
    print(f"{len(jobs)} runs of experiments.{args.experiment}, {args.jobs} at a time, in {out}", flush=True)
    run_all(jobs, args.jobs)

    scores = {key: read_metric(d, args.metric) for key, d in dirs.items()}
    episodes = sorted(set.intersection(*(set(s) for s in scores.values())))
    rows, summary = [], []
    for ep in episodes:
        diffs = []
        for seed in args.seeds:
            r, b = scores["random", seed][ep], scores["bootstrapped", seed][ep]
            diffs.append(b - r)
            rows.append({"episode": ep, "seed": seed, "random": f"{r:.3f}", "bootstrapped": f"{b:.3f}",
                         "difference": f"{b - r:+.3f}"})
        n = len(diffs)
        summary.append({
            "episode": ep,
            "random (mean)": f"{sum(scores['random', s][ep] for s in args.seeds) / n:.3f}",
            "bootstrapped (mean)": f"{sum(scores['bootstrapped', s][ep] for s in args.seeds) / n:.3f}",
            "mean difference": f"{sum(diffs) / n:+.3f}",
            "higher": sum(d > TIE for d in diffs), "equal": sum(abs(d) <= TIE for d in diffs),
            "lower": sum(d < -TIE for d in diffs)})
    print(f"\n{args.metric} per seed (bootstrapped - random)\n\n{markdown_table(rows)}")
    print(f"\n{args.metric} over {len(args.seeds)} seed(s); equal = within {TIE}\n\n{markdown_table(summary)}")
    return summary


if __name__ == "__main__":
    main()
