#!/bin/sh
# The gray MRPNet denoiser, sigma 25.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.supervised_train --model mrpnet --no-generator --task denoise --data "$DATA/bsd/train432" \
    --sigma 25 --crop 64 --batch 16 --lr 1e-3 --epochs 30 --steps-per-epoch 40 --threads 1 --out runs/mrpnet_denoise
cp runs/mrpnet_denoise/checkpoints/best.pt rlenhance/weights/mrpnet_denoise.pt
