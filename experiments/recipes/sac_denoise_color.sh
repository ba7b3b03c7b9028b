#!/bin/sh
# The colour SAC PixelRL filter policy, sigma 25: about 14 min on 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.denoise_train --preset color-sac --data "$DATA/sice_pairs/train/high" --threads 1 \
    --out runs/sac_denoise_color
cp runs/sac_denoise_color/checkpoints/best.pt rlenhance/weights/sac_denoise_color.pt
