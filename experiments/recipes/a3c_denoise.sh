#!/bin/sh
# The blind gray A3C denoising policy over ffdnet_denoise.pt's pixel: about 70 min per 3,600 episodes
# on 1 CPU core (every evaluation scores the predictor's own figure; best.pt is the first).
set -e
DATA=${DATA:-../shared/data}
python -m experiments.denoise_train --data "$DATA/bsd/train432" --sigma 15 25 50 \
    --predictor rlenhance/weights/ffdnet_denoise.pt --observe-prediction --width 32 --downscale 2 \
    --batch 32 --crop 70 --episodes 3600 --eval-every 300 --eval-images 16 --lr-decay poly \
    --threads 1 --seed 0 --out runs/a3c_denoise
cp runs/a3c_denoise/checkpoints/best.pt rlenhance/weights/a3c_denoise.pt
