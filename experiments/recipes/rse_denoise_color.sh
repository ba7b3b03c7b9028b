#!/bin/sh
# The RSE-RL colour denoiser over ffdnet_denoise.pt's output: about 12 min on 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.rse_train --data "$DATA/sice_pairs/train/high" --threads 1 --rounds 1 --vae-steps 3000 \
    --episodes 200 --eval-every 25 --pool-crops 256 --eval-images 8 --baselines bilateral --seed 0 \
    --predictor rlenhance/weights/ffdnet_denoise.pt --sac-critic-warmup 200 --sac-init-alpha 0.01 --sac-updates 4 \
    --out runs/rse_denoise_color
cp runs/rse_denoise_color/checkpoints/best.pt rlenhance/weights/rse_denoise_color.pt
