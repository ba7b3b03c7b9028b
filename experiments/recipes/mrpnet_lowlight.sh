#!/bin/sh
# MRPNet + Generator, low light.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.supervised_train --model mrpnet --task lowlight --data "$DATA/sice_pairs/train" --width 32 \
    --crop 96 --batch 8 --lr 5e-4 --epochs 8 --steps-per-epoch 30 --threads 1 --out runs/mrpnet_lowlight
cp runs/mrpnet_lowlight/checkpoints/best.pt rlenhance/weights/mrpnet_lowlight.pt
