"""Env throughput: batched torch envs vs a per-image numpy/OpenCV implementation of the same step.

    python -m benchmarks.envs [--batch 32] [--crop 64] [--steps 10] [--repeats 7] [--threads 2] [--env Denoise]

Prints steps/s and megapixel-steps/s (image pixels x steps per second) for each env, batched
(B crops) and single (one 600x400 image), next to a straightforward per-image numpy/OpenCV
implementation of the same transition and reward (the way PixelRL and ReLLIE step their states:
a Python loop over the batch calling OpenCV per image). Numbers only; nothing is asserted.

Both run in this process on the same start state and actions, after a warm-up, in alternation
(torch block, numpy block, torch block, ...), so that load from other processes hits both alike;
each figure is the median over ``--repeats`` blocks of ``--steps`` steps, and the speed-up is the
median of the per-block ratios. Resets are outside the timed blocks. The load average is printed
before and after: figures from a busy machine are not comparable with quiet ones.

On a machine whose cores are busy with other processes, torch's OpenMP worker threads (GNU
libgomp's default wait policy) can stall every parallelised op by a scheduler time slice, which
makes ``--threads 2`` runs many times slower than ``--threads 1`` (see
:func:`rlenhance.runtime.configure_threads` and docs/performance.md#threads).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import cv2
import numpy as np
import torch

import envs
from envs.lowlight import RELLIE_ALPHAS
from rlenhance.data import BuiltinImages


# --- per-image numpy/OpenCV baselines (one image (H, W, C) float32 at a time) ----------------
def lowlight_step_numpy(image, original, actions, *, alphas, target=0.6, patch=16, w=(10.0, 5.0, 1.0, 20.0)):
    """LE-curve step and non-reference reward for one image, numpy + OpenCV."""
    alpha = alphas[actions]  # (H, W, 3)
    new = np.clip(image + alpha * image * (1 - image), 0, 1)

    def state_loss(x):
        gray = x.mean(axis=2)
        h, w_ = gray.shape
        pooled = cv2.resize(gray, (w_ // patch, h // patch), interpolation=cv2.INTER_AREA)
        exposure = cv2.resize((pooled - target) ** 2, (w_, h), interpolation=cv2.INTER_NEAREST)
        m = x.mean(axis=(0, 1))
        color = np.sqrt((m[0] - m[1]) ** 4 + (m[0] - m[2]) ** 4 + (m[1] - m[2]) ** 4)
        e = cv2.resize(gray, (w_ // 4, h // 4), interpolation=cv2.INTER_AREA)
        o = cv2.resize(original.mean(axis=2), (w_ // 4, h // 4), interpolation=cv2.INTER_AREA)
        spatial = np.zeros_like(e)
        for axis, shift in ((0, 1), (0, -1), (1, 1), (1, -1)):
            spatial += (np.abs(e - np.roll(e, shift, axis)) - np.abs(o - np.roll(o, shift, axis))) ** 2
        spatial = cv2.resize(spatial, (w_, h), interpolation=cv2.INTER_NEAREST)
        return w[0] * exposure + w[1] * color + w[2] * spatial

    tv = np.zeros(alpha.shape[:2], np.float32)
    tv[:-1] += ((alpha[1:] - alpha[:-1]) ** 2).sum(axis=2)
    tv[:, :-1] += ((alpha[:, 1:] - alpha[:, :-1]) ** 2).sum(axis=2)
    reward = state_loss(image) - state_loss(new) - w[3] * tv
    return new, reward


def denoise_step_numpy(image, clean, actions):
    """PixelRL's State.step for one image: all 9 filters with OpenCV, per-pixel choice, reward."""
    candidates = [
        image - 1 / 255, image, image + 1 / 255,
        cv2.GaussianBlur(image, (5, 5), 0.5),
        cv2.bilateralFilter(image, 5, 0.1, 5),
        cv2.medianBlur(image, 5),
        cv2.GaussianBlur(image, (5, 5), 1.5),
        cv2.bilateralFilter(image, 5, 1.0, 5),
        cv2.boxFilter(image, -1, (5, 5)),
    ]
    new = np.choose(actions, candidates)
    reward = ((clean - image) ** 2 - (clean - new) ** 2) * 255
    return new, reward


def completion_step_numpy(image, original, mask, actions):
    """Completion step for one image (H, W, 3): fill candidates with OpenCV, masked choice, reward."""
    kernel = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float32)
    total = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    count = cv2.filter2D(np.ones(image.shape[:2], np.float32), -1, kernel, borderType=cv2.BORDER_CONSTANT)
    padded = cv2.copyMakeBorder(image, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    h, w = image.shape[:2]
    candidates = [image, total / count[..., None], padded[1:h + 1, 0:w], padded[1:h + 1, 2:w + 2],
                  padded[0:h, 1:w + 1], padded[2:h + 2, 1:w + 1],
                  cv2.GaussianBlur(image, (5, 5), 1.5), cv2.medianBlur(image, 5)]
    chosen = np.choose(actions[..., None].repeat(3, axis=2), candidates)
    new = np.where(mask[..., None] > 0, chosen, image)
    reward = (((original - image) ** 2).mean(2) - ((original - new) ** 2).mean(2)) * 255 * mask
    return new, reward


def time_blocks(fns, repeats):
    """Median seconds per call of each function, timed in alternation after one warm-up call each.

    Returns:
        (medians, ratios): the median time of each function and, per repeat, the time of each
        function divided by the time of the first one.
    """
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, t in zip(fns, times):
            start = time.perf_counter()
            fn()
            t.append(time.perf_counter() - start)
    ratios = [[t[i] / times[0][i] for i in range(repeats)] for t in times]
    return [statistics.median(t) for t in times], [statistics.median(r) for r in ratios]


def bench(env_id, num_envs, size, steps, repeats, device):
    # the 600x400 single-image run uses scikit-image's coffee photo (400x600), the only one that big
    data = BuiltinImages(names=("coffee",), gray=env_id == "rlenhance/Denoise-v0") if num_envs == 1 else None
    # one long episode, reset once outside the timed loops: only steps are timed, as for the baseline
    venv = envs.make_vec(env_id, num_envs=num_envs, crop=size, device=device, data=data,
                         max_episode_steps=steps * (repeats + 1))
    obs, _ = venv.reset(seed=0)
    gen = torch.Generator(device=device).manual_seed(0)
    actions = torch.randint(0, venv.n_actions, venv.action_space.shape, generator=gen, device=device)

    def torch_steps():
        for _ in range(steps):
            venv.step(actions)
        if device.type == "cuda":
            torch.cuda.synchronize()

    rng = np.random.default_rng(0)
    images = [v.permute(1, 2, 0).cpu().numpy().copy() for v in obs["image"]]
    acts = actions.cpu().numpy()
    if env_id == "rlenhance/LowLight-v1":
        alphas = np.asarray(RELLIE_ALPHAS, np.float32)
        originals = [x.copy() for x in images]
        per_image = lambda i, x: lowlight_step_numpy(x, originals[i], acts[i].transpose(1, 2, 0), alphas=alphas)[0]  # noqa: E731
    elif env_id == "rlenhance/Denoise-v0":
        cleans = [np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1).astype(np.float32) for x in images]
        per_image = lambda i, x: denoise_step_numpy(x[..., 0], cleans[i][..., 0], acts[i, 0])[0][..., None]  # noqa: E731
    else:
        originals = [x.copy() for x in images]
        masks = [m[0].cpu().numpy() for m in obs["mask"]]
        per_image = lambda i, x: completion_step_numpy(x, originals[i], masks[i], acts[i, 0])[0]  # noqa: E731

    def numpy_steps():
        state = [x.copy() for x in images]
        for _ in range(steps):
            state = [per_image(i, x) for i, x in enumerate(state)]

    (t_torch, t_numpy), (_, ratio) = time_blocks([torch_steps, numpy_steps], repeats)
    h, w = venv.single_action_space.shape[-2:]
    mpix = num_envs * h * w / 1e6
    return t_torch / steps, t_numpy / steps, ratio, mpix


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32, help="images per batched env")
    parser.add_argument("--crop", type=int, default=64, help="crop size of the batched run")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=7, help="timed blocks per run (medians are reported)")
    parser.add_argument("--env", action="append", default=None,
                        help="only env ids containing this text (repeatable), e.g. --env Denoise")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="torch device of the batched env")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {device}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average {os.getloadavg()[0]:.2f}")
    header = f"{'env':26s} {'run':>18s} {'torch steps/s':>14s} {'torch MP-steps/s':>17s} " \
             f"{'numpy steps/s':>14s} {'numpy MP-steps/s':>17s} {'speed-up':>9s}"
    print(header)
    env_ids = [e for e in envs.ENV_IDS if args.env is None or any(part in e for part in args.env)]
    for env_id in env_ids:
        for label, num_envs, size in ((f"{args.batch}x{args.crop}x{args.crop}", args.batch, args.crop),
                                      ("1x400x600", 1, (400, 600))):
            t_torch, t_numpy, ratio, mpix = bench(env_id, num_envs, size, args.steps, args.repeats, device)
            print(f"{env_id:26s} {label:>18s} {1 / t_torch:14.1f} {mpix / t_torch:17.2f} "
                  f"{1 / t_numpy:14.1f} {mpix / t_numpy:17.2f} {ratio:8.2f}x", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
