#!/bin/sh
# The ConvLSTM PixelRNN (width 24) on the diffusion fill: about 20 min on 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.supervised_train --preset pixelrnn-completion --data "$DATA/bedroom/train" \
    --out runs/pixelrnn_completion
cp runs/pixelrnn_completion/checkpoints/best.pt rlenhance/weights/pixelrnn_completion.pt
