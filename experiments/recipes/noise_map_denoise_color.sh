#!/bin/sh
# FFDNet's noise-level map set by A3C, colour (FFDNet on the opponent colour planes), noise of 10-50 that
# varies across the image: about 30 min on 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.denoise_train --preset noise-map-color --data "$DATA/sice_pairs/train/high" --threads 1 \
    --out runs/noise_map_color
cp runs/noise_map_color/checkpoints/best.pt rlenhance/weights/noise_map_denoise_color.pt
