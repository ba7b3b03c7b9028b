#!/bin/sh
# The blind colour MRPNet denoiser (sigma 5-50): about 16 min on 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.supervised_train --model mrpnet --no-generator --task denoise --no-gray \
    --data "$DATA/sice_pairs/train/high" --sigma 5 15 25 35 50 --crop 64 --batch 16 --lr 1e-3 --epochs 30 \
    --steps-per-epoch 40 --threads 1 --seed 0 --out runs/mrpnet_denoise_color
cp runs/mrpnet_denoise_color/checkpoints/best.pt rlenhance/weights/mrpnet_denoise_color.pt
