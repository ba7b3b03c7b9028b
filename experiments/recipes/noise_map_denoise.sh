#!/bin/sh
# FFDNet's noise-level map set by A3C, gray, noise of 10-50 that varies across the image: about 7 min on
# 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.denoise_train --preset noise-map --data "$DATA/bsd/train432" --threads 1 --out runs/noise_map
cp runs/noise_map/checkpoints/best.pt rlenhance/weights/noise_map_denoise.pt
