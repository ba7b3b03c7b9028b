#!/bin/sh
# The colour A3C PixelRL filter policy, sigma 25: about 25 min on 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.denoise_train --preset color --data "$DATA/sice_pairs/train/high" --threads 1 \
    --out runs/a3c_denoise_color
cp runs/a3c_denoise_color/checkpoints/best.pt rlenhance/weights/a3c_denoise_color.pt
