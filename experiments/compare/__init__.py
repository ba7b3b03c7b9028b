"""RL vs supervised vs classical methods on the same images, with the same metrics.

    python -m experiments.compare --task lowlight                      # the embedded photos, darkened
    python -m experiments.compare --task lowlight --data ../shared/data/sice_pairs/train --split val \
        --zero-dce ../shared/weights/zero_dce_Epoch99.pth --zero-dcepp ../shared/weights/zero_dcepp_Epoch99.pth \
        --psnr-on y --gt-mean --out runs/compare_lowlight
    python -m experiments.compare --task lowlight --data PHOTOS --paired-against input \
        --out runs/compare_photos                            # real photos without references: no-reference scores
    python -m experiments.compare --task lowlight --data ../shared/data/sice_pairs/train --light uneven \
        --methods input,rl,global-curve,oracle-global --gt-mean --out runs/compare_uneven  # non-uniform light
    python -m experiments.compare --task denoise --data ../shared/data/bsd/BSD68 --split all --sigma 25 \
        --a3c runs/denoise_train/checkpoints/best.pt --mrpnet runs/supervised_denoise/checkpoints/best.pt \
        --out runs/compare_denoise
    python -m experiments.compare --task denoise --no-gray --rse runs/rse/checkpoints/best.pt \
        --out runs/compare_denoise_color                     # colour: the embedded photos, sigma 25 per channel
    python -m experiments.compare --task denoise --no-gray --data SIDD_Small_sRGB_Only --split val \
        --out runs/compare_sidd                              # real noise: noisy/ + clean/ or SIDD's folders
    python -m experiments.compare --task completion --data ../shared/data/bedroom/train \
        --gated-pixelrnn runs/supervised_completion/checkpoints/best.pt --out runs/compare_completion

The images of each task (``--split val``: the held-out split the trainers never see, the same
scene-level split for the same ``--split-seed``; ``--split all``: every image; ``--limit N``: the
first N). Without ``--data`` every task runs on the embedded scikit-image photos, degraded
synthetically from ``--seed`` (no download needed; all of them, no split):

==========  ===========================================  =============================================
task        ``--data``                                   input -> reference
==========  ===========================================  =============================================
lowlight    ``low/`` + ``high/`` (or a LOL parent)        ``low`` -> ``high``, RGB (as experiments.lol_eval)
lowlight    a folder of photos without references         the photo -> none: no-reference scores only
            (default ``--split all``)
lowlight    unset: the embedded colour photos             :func:`rlenhance.data.synthetic_low_light` of
                                                         the photo (seeded by ``--seed`` and its name)
                                                         -> the photo
denoise     a folder of clean images, gray unless        clean + N(0, (sigma/255)^2) noise on every
            ``--no-gray`` (unset: the embedded photos)   channel, not clipped (DnCNN / PixelRL
                                                         protocol) -> clean
denoise     real noisy / clean pairs: ``noisy/`` +       ``noisy`` -> ``clean`` (real noise;
            ``clean/``, or SIDD's folders (NoisyPairs)   ``--sigma`` unused)
completion  ``occluded_images/`` + ``original_images/``  occluded + the mask from the pair -> original
            (unset: the embedded photos, synthetic holes)
==========  ===========================================  =============================================

``--light uneven``: every reference relit by smooth, spatially varying light (:func:`rlenhance.data.uneven_capture`,
seeded by ``--seed`` and the image's name) replaces its low frame. Synthetic noise is seeded alike
(:func:`rlenhance.data.noisy_test_set`, the trainers' own test noise). Methods never see the reference.

Noise level of the classical denoisers and of ``ffdnet``'s map: ``--sigma``; with real noise (or
``--sigma-estimate``) each image's own level, estimated inside the method's timed run
(:func:`rlenhance.noise_estimate.estimate_noise_sigma`).

Channels (``--task denoise``): gray by default (``--gray``, the PixelRL protocol), RGB with ``--no-gray``; a gray
checkpoint on RGB runs per channel, a colour one on gray images is refused, a checkpoint not given defaults to
the registry's file for the images' planes (:mod:`experiments.compare.methods`).

Methods (``--methods a,b,...`` picks a subset; :data:`~experiments.compare.methods.TASK_METHODS` lists each
task's): every method of the task in :mod:`rlenhance.registry` (the ``rlenhance`` command's and the app's
table too), ``input``, the low-light peers ``zero-dce``, ``zero-dce++``, ``rellie`` from their official weights
given by path, ``ffdnet-local`` / ``ffdnet-oracle`` (denoise), ``oracle-global`` (low light, with references:
the upper bound of every global curve) and each ``--checkpoints`` network of your own
(``examples/supervised_baseline.py``); :mod:`experiments.compare.methods` builds them. A learned method without
a checkpoint or a baseline without its optional package is reported as ``missing: <why>`` on stdout and in
report.md, never dropped silently; a run in which no method can run, or a checkpoint that cannot be read, is an
error (exit code 2).

Scores, per image (:mod:`experiments.compare.scoring`, the metrics of :data:`rlenhance.metrics.table.METRICS`;
docs/evaluation.md): with references PSNR / SSIM / UQI of the output clipped to [0, 1] (on Y with ``--psnr-on y``,
GT-mean aligned with ``--gt-mean``), completion's hole scores, low light's no-reference scores, ``--metrics``'
own (``examples/entropy_metric.py``); ``ms``: wall time of the method alone, after an untimed warm-up unless
``--no-warmup``. Written to ``--out``:

* ``report.md``: "mean ± std" over images per metric and method, ms/image, learned parameters, the
  command line, the data, the protocol, missing methods; with ``--paired-against M``, per method the
  mean ± standard error of its per-image difference to M and "better on k of n" images;
* ``results.csv``: one row per image and method, ``image`` and ``method`` columns first (identical
  across runs with the same arguments, the ``ms`` column aside);
* ``quality_vs_time.png``: mean PSNR (NIQE without references) against ms/image (log scale), one
  labelled point per method (:func:`experiments.plots.quality_vs_time`);
* ``samples.png``: input | every method | reference (if any) for the first ``--samples`` images,
  the method names as captions;
* with RL methods (:mod:`experiments.compare.actions`): what their agents did, from each one's
  :class:`rlenhance.trace.ActionTrace` of every image (run after, and apart from, the timed run):
  ``actions.csv`` (per method, step and action: the share of pixel-steps that took it), report.md's
  "Actions of the RL methods" (the share that took the predictor's pixel, and of each action taken)
  and ``actions.png`` (every step's action map of the first ``--samples`` images, colour-coded, with
  the legend of the actions and their shares).

The package splits the work by job (``config``, ``methods``, ``samples``, ``scoring``, ``report``, ``actions``);
:func:`main` below wires them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from experiments.compare.actions import action_figure, actions_section, trace_methods, write_actions_csv
from experiments.compare.config import (
    Args,
    check_args,
    given_checkpoints,
    ignored_flags,
    requested_methods,
    requested_metrics,
)
from experiments.compare.methods import REFERENCE_METHODS, TASK_METHODS, Method, build_methods, own_methods
from experiments.compare.report import labelled_grid, write_csv, write_report
from experiments.compare.samples import Sample, load_samples
from experiments.compare.scoring import (
    TIMING_FIELD,
    evaluate,
    paired_differences,
    paired_fields,
    summarize,
    task_metrics,
)
from experiments.config import flat_flags, parse
from experiments.plots import quality_vs_time, save_figure
from rlenhance.io import save_image
from rlenhance.metrics.table import METRICS
from rlenhance.runtime import configure_threads, flush_denormals, seed_everything, select_device

__all__ = ["TASK_METHODS", "Args", "Method", "Sample", "labelled_grid", "load_samples", "main", "paired_differences"]


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run the comparison; returns the summary (one dict per method: means, stds, ms, params, source)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(Args, argv, flags=flat_flags(Args), prog="compare")
    check_args(args)
    wanted = requested_methods(args)
    flush_denormals()
    configure_threads(args.threads)
    seed_everything(args.seed)
    device = select_device(args.device)
    out = Path(args.out)

    samples = load_samples(args)
    reference = samples[0].reference is not None
    if args.methods is None and not reference:  # the reference-fitted bounds, unasked, only where there are references
        wanted = [name for name in wanted if name not in REFERENCE_METHODS]
    notes = ignored_flags(args)
    methods, missing = build_methods(args.task, wanted, device, checkpoints=given_checkpoints(args), sigma=args.sigma,
                                     channels=samples[0].input.shape[2],
                                     sigma_estimate=samples[0].sigma is not None, ensemble=args.ensemble,
                                     known_level=samples[0].level is not None, reference=reference)
    methods.update(own_methods(args.task, args.checkpoints, device, channels=samples[0].input.shape[2],
                               ensemble=args.ensemble))
    for note in notes:
        print(f"note: {note}")
    for name, why in missing.items():
        print(f"{name}: missing: {why}", flush=True)
    if not methods:
        raise ValueError(f"no method can run: {'; '.join(f'{name}: {why}' for name, why in missing.items())}")
    for name, method in methods.items():
        if method.note:
            print(f"{name}: {method.note}", flush=True)
    scored = task_metrics(args.task, reference=reference, extra=requested_metrics(args))
    fields = [metric.name for metric in scored]
    main = METRICS.get(paired_fields(args.task, reference=reference)[0])
    keep = min(args.samples, len(samples))
    rows: list[dict[str, Any]] = []
    outputs: dict[str, list[np.ndarray]] = {}
    for name, method in methods.items():
        method_rows, outputs[name] = evaluate(method, samples, scored, warmup=args.warmup, keep=keep,
                                              psnr_on=args.psnr_on, gt_mean=args.gt_mean)
        rows += method_rows
        print(f"{name}: {len(samples)} image(s), {main.label} "
              f"{np.nanmean([r[main.name] for r in method_rows]):.3f}, "
              f"{np.mean([r[TIMING_FIELD] for r in method_rows]):.1f} ms/image", flush=True)

    traces = trace_methods(methods, samples)  # what the RL methods' agents did, after their timed runs
    summary = summarize(rows, methods, fields)
    paired = [entry for field in paired_fields(args.task, reference=reference)
              for entry in paired_differences(rows, args.paired_against, field)
              ] if args.paired_against in methods else []  # a method missing its checkpoint is listed as such
    report = write_report(out / "report.md", args=args, argv=argv, summary=summary, scored=scored, samples=samples,
                          missing=missing, notes=notes, device=device, paired=paired, actions=actions_section(traces))
    write_csv(out / "results.csv", rows, fields)
    if traces:
        write_actions_csv(out / "actions.csv", traces)
        save_image(out / "actions.png", action_figure(traces, samples, keep=keep))
    save_figure(quality_vs_time([(e["method"], e[TIMING_FIELD], e[main.name]) for e in summary
                                 if e["method"] != "input"], title=f"{args.task}: quality vs time",
                                ylabel=main.label + (" (lower is better)" if main.higher_is_better is False
                                                     else "")), out / "quality_vs_time.png")
    shown = [name for name in methods if name != "input"]  # the input has its own column
    grid = [[s.input, *(outputs[name][i] for name in shown), *([s.reference] if reference else [])]
            for i, s in enumerate(samples[:keep])]
    save_image(out / "samples.png", labelled_grid(grid, ["input", *shown, *(["reference"] if reference else [])]))
    print("\n" + report)
    return summary
