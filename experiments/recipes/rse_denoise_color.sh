#!/bin/sh
# The RSE-RL colour denoiser over ffdnet_denoise.pt's output: about 12 min on 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.rse_train --preset rse-denoise-color --data "$DATA/sice_pairs/train/high" \
    --out runs/rse_denoise_color
cp runs/rse_denoise_color/checkpoints/best.pt rlenhance/weights/rse_denoise_color.pt
