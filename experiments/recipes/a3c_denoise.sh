#!/bin/sh
# The blind gray A3C denoising policy over ffdnet_denoise.pt's pixel: about 70 min per 3,600 episodes
# on 1 CPU core (every evaluation scores the predictor's own figure; best.pt is the first).
set -e
DATA=${DATA:-../shared/data}
python -m experiments.denoise_train --preset shipped --data "$DATA/bsd/train432" --threads 1 --out runs/a3c_denoise
cp runs/a3c_denoise/checkpoints/best.pt rlenhance/weights/a3c_denoise.pt
