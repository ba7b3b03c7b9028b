#!/bin/sh
# The gated PixelRNN (width 16) on the diffusion fill: about 75 min on 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.supervised_train --model gated-pixelrnn --task completion --data "$DATA/bedroom/train" \
    --width 16 --crop 224 --batch 4 --lr 5e-4 --epochs 30 --steps-per-epoch 30 --threads 1 \
    --out runs/gated_pixelrnn_completion
cp runs/gated_pixelrnn_completion/checkpoints/best.pt rlenhance/weights/gated_pixelrnn_completion.pt
