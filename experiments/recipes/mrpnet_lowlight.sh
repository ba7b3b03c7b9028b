#!/bin/sh
# MRPNet + Generator, low light: about 5 min on 1 CPU core; best.pt picked on the tuning split.
set -e
DATA=${DATA:-../shared/data}
python -m experiments.supervised_train --preset mrpnet-lowlight --data "$DATA/sice_pairs/train" --out runs/mrpnet_lowlight
cp runs/mrpnet_lowlight/checkpoints/best.pt rlenhance/weights/mrpnet_lowlight.pt
