#!/bin/sh
# The blind colour MRPNet denoiser (sigma 5-50): about 6 min on 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.supervised_train --preset mrpnet-denoise-color --data "$DATA/sice_pairs/train/high" \
    --out runs/mrpnet_denoise_color
cp runs/mrpnet_denoise_color/checkpoints/best.pt rlenhance/weights/mrpnet_denoise_color.pt
