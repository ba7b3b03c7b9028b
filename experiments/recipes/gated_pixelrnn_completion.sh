#!/bin/sh
# The gated PixelRNN (width 16) on the diffusion fill: about 32 min on 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.supervised_train --preset gated-pixelrnn-completion --data "$DATA/bedroom/train" \
    --out runs/gated_pixelrnn_completion
cp runs/gated_pixelrnn_completion/checkpoints/best.pt rlenhance/weights/gated_pixelrnn_completion.pt
