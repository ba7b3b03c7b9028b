#!/bin/sh
# The blind gray SAC denoising policy over ffdnet_denoise.pt's pixel: about 16 min per 25 episodes on 1 CPU core.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.denoise_train --preset shipped-sac --data "$DATA/bsd/train432" --threads 1 --out runs/sac_denoise
cp runs/sac_denoise/checkpoints/best.pt rlenhance/weights/sac_denoise.pt
