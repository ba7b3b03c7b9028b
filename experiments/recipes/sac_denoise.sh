#!/bin/sh
# The blind gray SAC denoising policy over ffdnet_denoise.pt's pixel: about 16 min per 25 episodes on 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.denoise_train --agent sac --data "$DATA/bsd/train432" --sigma 15 25 50 \
    --predictor rlenhance/weights/ffdnet_denoise.pt --observe-prediction --width 32 --downscale 2 \
    --batch 16 --crop 70 --episodes 150 --eval-every 25 --eval-images 16 --sac-updates 100 \
    --sac-all-action-rewards --sac-actor-updates 100 --threads 1 --seed 0 --out runs/sac_denoise
cp runs/sac_denoise/checkpoints/best.pt rlenhance/weights/sac_denoise.pt
