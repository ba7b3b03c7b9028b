#!/bin/sh
# The A3C completion policy over a completion U-Net's pixel: about 13 min on 2 CPU cores. It was trained
# over the first U-Net run of unet_completion.sh and runs with the shipped U-Net (found by name).
set -e
DATA=${DATA:-../shared/data}
test -f runs/unet1/checkpoints/best.pt || python -m experiments.supervised_train --model unet --task completion \
    --data "$DATA/bedroom/train" --set data.shift_holes=true --steps-per-epoch 100 --set train.lr_decay=cosine \
    --set data.val_samples=90 --set run.samples=4 --epochs 30 --lr 1e-3 --threads 2 --seed 0 --out runs/unet1
# under the shipped U-Net's name, so that the policy's spec names a file every checkout has
mkdir -p runs/unet1/predictor && cp runs/unet1/checkpoints/best.pt runs/unet1/predictor/unet_completion.pt
python -m experiments.completion_train --preset shipped --data "$DATA/bedroom/train" \
    --predictor runs/unet1/predictor/unet_completion.pt --threads 2 --out runs/a3c_completion
cp runs/a3c_completion/checkpoints/best.pt rlenhance/weights/a3c_completion.pt
