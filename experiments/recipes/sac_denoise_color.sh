#!/bin/sh
# The colour SAC PixelRL filter policy, sigma 25: about 21 min on 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.denoise_train --agent sac --no-gray --data "$DATA/sice_pairs/train/high" --sigma 25 --crop 70 \
    --batch 16 --episodes 60 --eval-every 30 --eval-images 6 --threads 1 --seed 0 --out runs/sac_denoise_color
cp runs/sac_denoise_color/checkpoints/best.pt rlenhance/weights/sac_denoise_color.pt
