#!/bin/sh
# The gray MRPNet denoiser, sigma 25: about 20 min on 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.supervised_train --preset mrpnet-denoise --data "$DATA/bsd/train432" --out runs/mrpnet_denoise
cp runs/mrpnet_denoise/checkpoints/best.pt rlenhance/weights/mrpnet_denoise.pt
