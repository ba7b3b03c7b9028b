#!/bin/sh
# The colour A3C PixelRL filter policy, sigma 25: about 45 min on 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.denoise_train --no-gray --data "$DATA/sice_pairs/train/high" --sigma 25 --crop 70 --batch 16 \
    --episodes 400 --eval-every 100 --eval-images 6 --lr-decay poly --threads 1 --seed 0 --out runs/a3c_denoise_color
cp runs/a3c_denoise_color/checkpoints/best.pt rlenhance/weights/a3c_denoise_color.pt
