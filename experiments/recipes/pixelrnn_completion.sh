#!/bin/sh
# The ConvLSTM PixelRNN (width 24) on the diffusion fill: about 50 min on 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.supervised_train --model pixelrnn --task completion --data "$DATA/bedroom/train" --width 24 \
    --crop 224 --batch 8 --lr 1e-3 --epochs 30 --steps-per-epoch 30 --threads 1 --out runs/pixelrnn_completion
cp runs/pixelrnn_completion/checkpoints/best.pt rlenhance/weights/pixelrnn_completion.pt
